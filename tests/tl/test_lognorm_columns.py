from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cd7escape.tl._clones._lognorm_columns import lognorm_columns


def test_equals_the_numpy_formula_bit_for_bit():
    rng = np.random.default_rng(4)
    counts = sp.csr_matrix(rng.poisson(0.7, size=(300, 120)).astype(np.float32))
    counts[7] = 0  # a cell without counts stays empty
    counts.eliminate_zeros()
    genes = rng.permutation(120)[:70]
    got = lognorm_columns(counts, genes)
    tot = np.asarray(counts.sum(axis=1)).ravel().astype(float)
    tot[tot == 0] = 1.0
    want = np.log1p(counts[:, genes].toarray() * (1e4 / tot)[:, None])
    assert got.dtype == np.float64
    assert got.shape == (300, 70)
    np.testing.assert_array_equal(got.toarray(), want)
    assert got[7].nnz == 0
