"""Where numba caches compiled kernels, and whether it may: `cache=True` raises when the cache
dir is read-only, so every kernel compiles with `cache=CACHE`."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile

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

