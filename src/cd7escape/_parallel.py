"""CPUs this process may use (a cluster job's allocation, not the node's core count), and threads on them.

Threads pay off where numpy or h5py release the GIL (dense arithmetic, compression); every caller splits
work into pieces whose values do not depend on the split, so results stay identical.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import Future


def available_cpus() -> int:
    """CPUs in this process's affinity mask (what SLURM and taskset grant); ``os.cpu_count()`` elsewhere."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def map_threads(fn: Callable[[Any], Any], parts: list, *, max_threads: int = 2) -> list:
    """``[fn(x) for x in parts]``, on up to ``max_threads`` threads of the available CPUs."""
    n = max(1, min(max_threads, available_cpus(), len(parts)))
    if n == 1:
        return [fn(x) for x in parts]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(fn, parts))


def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
    """Start ``fn(*args, **kwargs)`` in a thread of its own; ``.result()`` waits and re-raises."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(fn, *args, **kwargs)
    finally:
        pool.shutdown(wait=False)  # the submitted call still runs; the thread ends with it
