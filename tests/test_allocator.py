"""The command line's allocator settings reach this process and the workers it spawns."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cd7escape import _allocator


def _python(code: str) -> list[str]:
    """What a fresh Python process running ``code`` prints, split into words."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.fixture
def clean_env(monkeypatch):
    for key in ("NUMPY_MADVISE_HUGEPAGE", "GLIBC_TUNABLES", "CD7ESCAPE_TUNE_ALLOCATOR"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc settings")
def test_settings_reach_spawned_workers(clean_env):
    code = (
        "from cd7escape._allocator import tune_allocator; import os, subprocess, sys; "
        "print(tune_allocator()); "
        "subprocess.run([sys.executable, '-c', 'import numpy, os; "
        'print(os.environ["GLIBC_TUNABLES"]); '
        'core = getattr(numpy, "_core", None) or numpy.core; '  # numpy 1.26 has no numpy._core
        "print(core.multiarray._get_madvise_hugepage())'])"
    )
    out = _python(code)
    assert out[0] == "True"  # mallopt accepted both settings
    assert (
        out[1] == f"glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold={_allocator.TRIM_THRESHOLD}"
    )
    assert out[2] == "False"  # NumPy in the worker does not ask for huge pages


def test_opt_out_and_user_settings_win(clean_env):
    clean_env.setenv("CD7ESCAPE_TUNE_ALLOCATOR", "0")
    assert _allocator.tune_allocator() is False
    assert "NUMPY_MADVISE_HUGEPAGE" not in os.environ
    clean_env.setenv("CD7ESCAPE_TUNE_ALLOCATOR", "1")
    clean_env.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    _allocator.tune_allocator()
    assert os.environ["NUMPY_MADVISE_HUGEPAGE"] == "1"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc settings")
def test_free_memory_is_released(clean_env):
    code = (
        "from cd7escape._allocator import tune_allocator, release_free_memory; import numpy as np\n"
        "tune_allocator()\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * 4096\n"
        "a = np.ones(200_000_000 // 8); b = np.ones(10); kept = rss(); del a\n"
        "before = rss(); release_free_memory(); after = rss()\n"
        "print(kept - before, before - after)\n"
    )
    kept_after_free, released = map(int, _python(code))
    assert kept_after_free < 50e6  # freed, but kept by the process for reuse …
    assert released > 150e6  # … until handed back
