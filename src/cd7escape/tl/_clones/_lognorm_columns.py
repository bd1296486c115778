"""log1p(10,000 × count / total) in some columns of a CSR count matrix, scaled in one compiled pass.

The genomic windows of the subclone checks hold this for every malignant cell (68M entries at 100k
cells). NumPy's ``data * np.repeat(scale, row_lengths)`` fills an entry-sized array of row scales
first; at that size each such temporary is fresh memory the kernel zero-fills page by page (1.4 of
the 4 s the windows took). The product here is the same float64 multiplication, and the logarithm is
NumPy's, so the values equal the NumPy formula bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp


def lognorm_columns(counts, genes: np.ndarray) -> sp.csr_matrix:
    """log1p(10,000 × count / total) of the columns ``genes`` (totals over all columns), CSR float64.

    Parameters
    ----------
    counts
        Raw counts, cells × genes (CSR or anything ``scipy.sparse.csr_matrix`` takes).
    genes
        Columns to keep, in the order wanted.

    Returns
    -------
    Cells × ``genes``; each row's entries keep ``counts``' column order. Cells without counts are empty.
    """
    counts = sp.csr_matrix(counts)
    tot = np.asarray(counts.sum(axis=1)).ravel().astype(float)
    tot[tot == 0] = 1.0
    sub = counts[:, np.asarray(genes)]
    data = np.empty(sub.nnz)
    _scale_rows(sub.indptr, sub.data, 1e4 / tot, data)
    np.log1p(data, out=data)
    return sp.csr_matrix((data, sub.indices, sub.indptr), shape=sub.shape)


@numba.njit(cache=True, nogil=True)
def _scale_rows(indptr, values, scale, out):  # pragma: no cover - compiled
    for i in range(indptr.size - 1):
        s = scale[i]
        for e in range(indptr[i], indptr[i + 1]):
            out[e] = np.float64(values[e]) * s
