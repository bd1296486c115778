"""Memory-allocator settings for a long batch run: reuse freed memory instead of faulting in fresh pages.

A run allocates and frees arrays of hundreds of MB hundreds of times. By default glibc serves every
allocation above 32 MB with a fresh ``mmap`` and unmaps it on ``free``, and NumPy asks the kernel for
2 MB transparent huge pages on large arrays; so every large temporary is faulted in and zero-filled
again. On the 2-CPU development VM the kernel's page clearing was 38 % of all CPU samples of the
subclones stage at 100k cells (``perf``); with these settings the stage took 30 s instead of 40 s
and its process peaked 0.4 GB higher (memory freed is kept for reuse, not returned at once).
Between stages the runner hands the free pages back (:func:`release_free_memory`), so what one stage
kept does not add to the next stage's peak.

:func:`tune_allocator` is called by the command line, before NumPy is imported; the settings reach
the worker processes it spawns through the environment. Library users keep their process's defaults.
``CD7ESCAPE_TUNE_ALLOCATOR=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
#: Free memory at the top of the heap kept for reuse before any is returned (mallopt takes an int).
TRIM_THRESHOLD = 2**31 - 1


_libc = None


def tune_allocator() -> bool:
    """Apply the settings to this process and its future children; True when glibc's were applied."""
    if os.environ.get("CD7ESCAPE_TUNE_ALLOCATOR", "1") == "0":
        return False
    # NumPy reads this when imported (here and in spawned workers): ordinary 4 KB pages
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    if not sys.platform.startswith("linux"):
        return False
    # spawned workers start a new program: glibc reads its settings from the environment
    os.environ.setdefault(
        "GLIBC_TUNABLES",
        f"glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold={TRIM_THRESHOLD}",
    )
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to set
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # large blocks from the heap, where freed ones are reused, instead of a fresh mapping each time
    if not (mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return False
    global _libc
    _libc = libc
    return True


def release_free_memory() -> None:
    """Return the free pages kept by :func:`tune_allocator` to the system (no-op when it was not applied)."""
    if _libc is not None:
        _libc.malloc_trim(0)
