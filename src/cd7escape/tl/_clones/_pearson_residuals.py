"""Clipped analytic Pearson residuals of raw counts (Lause et al. 2021), and their variance per gene.

For cell ``i`` with total ``t_i`` and gene ``j`` with share ``p_j`` of the reference, the expected count
is ``mu = t_i p_j`` and the residual ``(count - mu) / sqrt(mu + mu^2 / theta)``, clipped to
``±sqrt(n_cells)``. Compiled loops (numba, cached on disk) fill one cell or gene at a time: NumPy's
version needs one pass over a cells × genes matrix per arithmetic step. The residual matrix is
computed with the same float64 operations in the same order as the plain NumPy formula, so it equals
it bit for bit; the variance sums in cell order (NumPy sums pairwise), so it equals ``numpy.var`` up to
the last bits. Cells (matrix) or genes (variance) are split into fixed parts run on the available
CPUs, so results do not depend on how many there are.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp

#: Cells per part of the residual matrix, genes per part of the variance (fixed: results never
#: depend on the number of CPUs).
ROWS_PER_PART = 4096
GENES_PER_PART = 256


def pearson_residuals(counts, genes: np.ndarray, p: np.ndarray, theta: float, tot) -> np.ndarray:
    """Residuals of the cells of ``counts`` (cells × all genes) in the columns ``genes``, dense float64.

    ``p`` holds the shares of ``genes`` (same order), ``tot`` each cell's total count.
    """
    from ..._parallel import map_threads

    sub = _columns(counts, genes, "csr")
    n = sub.shape[0]
    out = np.empty((n, np.size(genes)))
    # the stored arrays as they are (compiled per dtype): a float32 count is exact in float64 arithmetic
    args = (sub.indptr, sub.indices, sub.data, np.asarray(tot, np.float64),
            np.asarray(p, np.float64), float(theta), _limit(n), out)  # fmt: skip
    map_threads(
        lambda r0: _fill_rows(*args, r0, min(r0 + ROWS_PER_PART, n)), _starts(n, ROWS_PER_PART)
    )
    return out


def residual_variance(
    counts, genes: np.ndarray, p: np.ndarray, theta: float, tot: np.ndarray
) -> np.ndarray:
    """Variance over cells of each gene's residuals (``p`` as in :func:`pearson_residuals`), no dense matrix."""
    from ..._parallel import map_threads

    sub = _columns(counts, genes, "csc")
    n, g = sub.shape
    out = np.zeros(g)
    # the stored arrays as they are (compiled per dtype): a float32 count is exact in float64 arithmetic
    args = (sub.indptr, sub.indices, sub.data, np.asarray(tot, np.float64),
            np.asarray(p, np.float64), float(theta), _limit(n), out)  # fmt: skip
    map_threads(
        lambda j0: _column_variance(*args, j0, min(j0 + GENES_PER_PART, g)),
        _starts(g, GENES_PER_PART),
    )
    return out


def _columns(counts, genes: np.ndarray, fmt: str):
    genes = np.asarray(genes)
    if sp.issparse(counts):
        # CSC is sliced by column directly; CSR keeps its row layout (scipy's compiled selection)
        sub = (
            counts[:, genes] if counts.format in ("csr", "csc") else sp.csr_matrix(counts)[:, genes]
        )
    else:
        sub = sp.csr_matrix(np.asarray(counts)[:, genes])
    return sub.asformat(fmt)


def _limit(n: int) -> float:
    return float(np.sqrt(max(n, 1)))


def _starts(size: int, step: int) -> list[int]:
    return list(range(0, size, step))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _fill_rows(
    indptr, indices, data, tot, p, theta, lim, out, r0, r1
):  # pragma: no cover - compiled
    g = p.size
    for i in range(r0, r1):
        t = tot[i]
        for j in range(g):
            mu = t * p[j]
            z = mu * mu
            z = z / theta
            z = z + mu
            out[i, j] = -(mu / np.sqrt(z))
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            m = t * p[j]
            out[i, j] = (data[e] - m) / np.sqrt(m + m * m / theta)
        for j in range(g):
            out[i, j] = _clip(out[i, j], lim)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _column_variance(indptr, indices, data, tot, p, theta, lim, out, j0, j1):  # pragma: no cover
    n = tot.size
    z = np.empty(n)
    for j in range(j0, j1):
        pj = p[j]
        for i in range(n):
            mu = tot[i] * pj
            z[i] = -(mu / np.sqrt(mu * mu / theta + mu))
        for e in range(indptr[j], indptr[j + 1]):
            i = indices[e]
            m = tot[i] * pj
            z[i] = (data[e] - m) / np.sqrt(m + m * m / theta)
        s = 0.0
        for i in range(n):
            z[i] = _clip(z[i], lim)
            s += z[i]
        mean = s / n
        ss = 0.0
        for i in range(n):
            d = z[i] - mean
            ss += d * d
        out[j] = ss / n


@numba.njit(cache=True, inline="always")
def _clip(v, lim):  # pragma: no cover - compiled
    # as numpy.clip: NaN (a cell without counts) stays NaN
    if v < -lim:
        return -lim
    if v > lim:
        return lim
    return v
