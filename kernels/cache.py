"""Where numba caches compiled kernels, and whether it may: `cache=True` raises when the cache
dir is read-only, so every kernel compiles with `cache=CACHE`."""

from __future__ import annotations

import functools
import hashlib
import os
import re
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
def sources_digest(source: str) -> str:
    """A digest of the kernel modules that generated `source` imports (`from fastnn.kernels.X
    import ...`). numba's cache checks only the file that defines a kernel, not the helpers it
    inlines: the generated epochs carry this in their file names, so a changed helper never runs
    as stale cached machine code, and a change to any other kernel file keeps them."""
    folder = os.path.dirname(__file__)
    digest = hashlib.sha256()
    for name in sorted(set(re.findall(r"^from fastnn\.kernels\.(\w+) import", source, flags=re.MULTILINE))):
        with open(os.path.join(folder, f"{name}.py"), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()
