"""Row scaling, log-normalisation and other passes over the stored entries of CSR count matrices.

``sparse.diags(f) @ x`` runs a general sparse product that costs seconds per 100k cells where one pass
over the stored entries does the same.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def scale_rows(x, factors: np.ndarray, *, dtype=np.float32) -> sp.csr_matrix:
    """A new CSR matrix: row ``i`` of ``x`` times ``factors[i]`` (``x`` is not modified)."""
    x = sp.csr_matrix(x)
    data = x.data.astype(dtype, copy=True)
    data *= np.repeat(np.asarray(factors, dtype=dtype), np.diff(x.indptr))
    return sp.csr_matrix((data, x.indices.copy(), x.indptr.copy()), shape=x.shape)


def lognorm(counts, *, target: float = 1e4, dtype=np.float32) -> sp.csr_matrix:
    """log1p of counts scaled to ``target`` per cell (cells with no counts stay zero)."""
    counts = sp.csr_matrix(counts)
    tot = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    scale = np.divide(target, tot, out=np.zeros_like(tot), where=tot > 0)
    x = scale_rows(counts, scale, dtype=dtype)
    np.log1p(x.data, out=x.data)
    return x


def group_sums(x, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Column sums of the rows of each group (``codes[i]`` in ``0..n_groups-1``): dense groups × columns.

    One sparse product with a group indicator instead of a boolean row selection per group.
    """
    codes = np.asarray(codes)
    ind = sp.csr_matrix(
        (np.ones(codes.size), (codes, np.arange(codes.size))), shape=(n_groups, codes.size)
    )
    out = ind @ x
    return np.asarray(out.toarray() if sp.issparse(out) else out, dtype=np.float64)


def entry_bounds(indptr: np.ndarray, n_parts: int) -> np.ndarray:
    """Bounds of up to ``n_parts`` consecutive rows (CSR) or columns (CSC) with about equal stored entries.

    The work of a row or column is its entries, so parts split by entries balance threads where parts
    split by rows would not. Empty parts are dropped: ``bounds[i]:bounds[i + 1]`` is part ``i``.
    """
    m = indptr.size - 1
    cuts = np.searchsorted(indptr, np.linspace(0, indptr[-1], n_parts + 1)[1:-1])
    return np.unique(np.r_[0, np.clip(cuts, 0, m), m]).astype(np.int64)


_SLICE = 1 << 22


def nonzero_count(x, *, axis: int) -> np.ndarray:
    """Positive entries per column (``axis=0``) or per row (``axis=1``); stored zeros do not count.

    Sparse matrices are counted from their index arrays, without the boolean copy ``(x > 0)`` makes.
    """
    if not sp.issparse(x):
        return (np.asarray(x) > 0).sum(axis=axis)
    x = x if x.format in ("csr", "csc") else sp.csr_matrix(x)
    n = x.shape[1 - axis]
    positive = x.data > 0
    if (axis == 1) != (x.format == "csr"):  # counting along the uncompressed axis: by index
        # in slices: bincount copies int32 indices to int64 first, and one copy of all of them was
        # 0.3 GB of fresh memory per 40M entries
        counts = np.zeros(n, dtype=np.int64)
        for a in range(0, x.indices.size, _SLICE):
            indices, keep = x.indices[a : a + _SLICE], positive[a : a + _SLICE]
            counts += np.bincount(indices if keep.all() else indices[keep], minlength=n)
        return counts
    counts = np.diff(x.indptr).astype(np.int64)
    if not positive.all():
        major = np.searchsorted(x.indptr, np.flatnonzero(~positive), side="right") - 1
        counts -= np.bincount(major, minlength=n)
    return counts
