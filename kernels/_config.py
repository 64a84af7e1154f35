"""Settings shared by the kernels: activation and loss-head codes, and whether numba may cache."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile

# One integer code per activation: the scalar math in scalar.py switches on it, and the CPU
# dense kernels are compiled once per code (see cpu.dense_kernels).
ACT_CODES = {"linear": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 3, "tanh": 4, "swish": 5, "gelu": 6}

# The loss heads the kernels compute, by (loss name, from_logits); scalar.loss_element and the
# kernels switch on these codes.
MSE, BCE_LOGITS, CCE_LOGITS = 0, 1, 2
LOSS_HEADS = {("mse", False): MSE, ("mse", True): MSE, ("binary_crossentropy", True): BCE_LOGITS,
              ("categorical_crossentropy", True): CCE_LOGITS}


# Where numba caches compiled kernels (and online.py writes the sources it generates).
CACHE_DIR = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(os.path.dirname(__file__), "__pycache__")


def _cache_writable() -> bool:
    """numba's cache=True raises at import when its cache dir is read-only: probe it first."""
    try:
        os.makedirs(CACHE_DIR, exist_ok=True)
        with tempfile.TemporaryFile(dir=CACHE_DIR):
            return True
    except OSError:
        return False


CACHE = _cache_writable()


@functools.cache
def sources_digest() -> str:
    """A digest of the kernel sources. numba's cache checks only the file that defines a kernel,
    not the helpers it inlines from scalar.py: the generated epochs (online.py) carry this in
    their file names, so that a changed helper never runs as stale cached machine code. Read on
    the first compile, not at import."""
    folder = os.path.dirname(__file__)
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()

