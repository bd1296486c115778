"""How many CPUs this process may use (a cluster job's allocation, not the node's core count)."""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs in this process's affinity mask (what SLURM and taskset grant); ``os.cpu_count()`` elsewhere."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
