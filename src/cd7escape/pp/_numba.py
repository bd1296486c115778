"""Numba's on-disk cache for the JIT-compiled kNN/UMAP code that scanpy calls (umap-learn, pynndescent)."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import warnings

_PACKAGES = ("pynndescent", "umap")
_SKIP = {"plot", "parametric_umap", "aligned_umap"}  # optional heavy dependencies, never used here
_enabled = False


def cache_numba_compilation() -> None:
    """Import umap-learn and pynndescent with numba's on-disk cache switched on.

    Their numba functions are compiled on first use in every new process (tens of seconds on 2 cores)
    and pynndescent compiles a few hundred signatures when it is imported. With ``cache=True`` the
    machine code is kept in numba's cache (``__pycache__`` beside the package, or ``NUMBA_CACHE_DIR``,
    or the user's cache folder when the package folder is read-only), so compilation is paid once per
    machine and package version instead of once per process. Numba keys the cache on the source files,
    so an upgrade recompiles. Functions numba cannot cache (dynamic globals, e.g. pynndescent's
    ``nn_descent``) compile as before. ``CD7ESCAPE_NUMBA_CACHE=0`` turns this off.
    """
    global _enabled
    if _enabled or os.environ.get("CD7ESCAPE_NUMBA_CACHE", "1") == "0":
        return
    _enabled = True
    import numba
    from numba.core.errors import NumbaWarning

    warnings.filterwarnings(
        "ignore", message="Cannot cache compiled function", category=NumbaWarning
    )
    fresh = [p for p in _PACKAGES if p not in sys.modules]
    if fresh:
        njit = numba.njit

        def cached_njit(*args, **kwargs):
            kwargs.setdefault("cache", True)
            return njit(*args, **kwargs)

        numba.njit = cached_njit  # only while these packages are imported: their decorators read it
        try:
            for name in fresh:
                _import_all(name)
        finally:
            numba.njit = njit
    # packages imported before (or modules they load lazily): cache what compiles from now on
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    for name in _PACKAGES:
        for mod in [m for k, m in list(sys.modules.items()) if k.split(".")[0] == name]:
            for value in list(vars(mod).values()):
                if isinstance(value, CPUDispatcher) and isinstance(value._cache, NullCache):
                    value.enable_caching()


def _import_all(package: str) -> None:
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name in _SKIP:
            continue
        try:
            importlib.import_module(f"{package}.{info.name}")
        except Exception:
            continue
