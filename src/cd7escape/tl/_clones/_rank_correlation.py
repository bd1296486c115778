"""Spearman correlation of the columns of a sparse non-negative matrix with one vector, column by column.

Zeros tie at one average rank, so only the stored entries of a column need ranking: O(stored entries)
and never a dense ranked matrix. A compiled loop ranks each column on its own (a sort of a few thousand
values) instead of one sort of every entry with many whole-matrix temporaries; columns are split over
the available CPUs (the loop releases the GIL). Numba's on-disk cache keeps the compiled code, so it is
compiled once per machine.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp


def sparse_spearman(x, a: np.ndarray) -> np.ndarray:
    """Spearman correlation of each column of non-negative ``x`` with the vector ``a`` (0 for a constant column).

    Equal to ``scipy.stats.spearmanr`` column by column (average ranks for ties) up to float rounding.
    """
    from scipy import stats

    from ..._parallel import available_cpus, map_threads
    from ..._sparse import entry_bounds

    x = sp.csc_matrix(x)
    x.eliminate_zeros()
    n, m = x.shape
    ra = stats.rankdata(a)
    ra_c = ra - ra.mean()
    sd_a = float(np.sqrt(np.mean(ra_c**2)))
    rho = np.zeros(m)
    if m == 0 or sd_a == 0:
        return rho
    indptr, indices, data = x.indptr, x.indices, x.data
    bounds = entry_bounds(indptr, max(1, min(available_cpus(), m)))  # one part per CPU

    def part(k: int) -> None:
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        _columns(indptr, indices, data, n, ra_c, sd_a, lo, hi, rho)

    map_threads(part, list(range(bounds.size - 1)))
    return rho


@numba.njit(cache=True, nogil=True)
def _columns(indptr, indices, data, n, ra_c, sd_a, lo, hi, out):  # pragma: no cover - compiled
    mean_r = (n + 1) / 2.0
    for j in range(lo, hi):
        start, end = indptr[j], indptr[j + 1]
        k = end - start
        vals = data[start:end]
        order = np.argsort(vals, kind="mergesort")
        n0 = n - k
        r0 = (n0 + 1) / 2.0  # zeros take ranks 1..n0
        cov = 0.0
        ss = 0.0
        i = 0
        while i < k:
            e = i
            while e + 1 < k and vals[order[e + 1]] == vals[order[i]]:
                e += 1
            rank = n0 + (i + e + 2) / 2.0  # the average of ranks i+1..e+1 above the zeros
            for q in range(i, e + 1):
                cov += (rank - r0) * ra_c[indices[start + order[q]]]
                ss += (rank - mean_r) ** 2
            i = e + 1
        sd = np.sqrt((n0 * (r0 - mean_r) ** 2 + ss) / n)
        out[j] = (cov / n) / (sd * sd_a) if sd > 0 else 0.0
