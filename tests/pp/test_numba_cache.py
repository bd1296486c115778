"""numba's on-disk cache for umap-learn/pynndescent: compilation paid once per machine."""

from __future__ import annotations

import os
import subprocess
import sys


def test_cache_numba_compilation_enables_caching():
    code = (
        "from cd7escape.pp._numba import cache_numba_compilation\n"
        "cache_numba_compilation()\n"
        "from numba.core.caching import NullCache\n"
        "import umap.layouts, umap.umap_, pynndescent.utils\n"
        "fns = [umap.layouts._nb_optimize_layout_euclidean_single_epoch,"
        " umap.umap_.smooth_knn_dist, pynndescent.utils.deheap_sort]\n"
        "print(sum(not isinstance(f._cache, NullCache) for f in fns), len(fns))\n"
        "import numba; print(numba.njit.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    cached, total = out.stdout.split()[:2]
    assert cached == total
    assert out.stdout.split()[2] == "njit"  # the decorator is restored after the imports


def test_cache_can_be_switched_off():
    code = (
        "from cd7escape.pp._numba import cache_numba_compilation\n"
        "cache_numba_compilation()\n"
        "import sys; print('umap' in sys.modules)\n"
    )
    env = {**os.environ, "CD7ESCAPE_NUMBA_CACHE": "0"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False"
