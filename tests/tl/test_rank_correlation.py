"""The compiled sparse Spearman correlation equals scipy's, column by column."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from cd7escape.tl._clones._rank_correlation import sparse_spearman


def _matrix(rng, n: int = 300, m: int = 40) -> np.ndarray:
    x = np.log1p(rng.negative_binomial(1, 0.6, size=(n, m)) * rng.uniform(1, 3, size=(n, 1)))
    x[:, 0] = 0  # an all-zero column
    x[:, 1] = rng.integers(0, 3, n)  # heavy ties among stored values
    x[:, 2] = rng.uniform(1, 2, n)  # no zeros at all
    x[:, 3] = 5.0  # constant, no zeros
    x[:5, 4], x[5:, 4] = 1.0, 0.0  # a single tied run above the zeros
    return x


@pytest.mark.parametrize("cpus", [1, 2, 3])
def test_sparse_spearman_equals_scipy(monkeypatch, cpus):
    monkeypatch.setattr("cd7escape._parallel.available_cpus", lambda: cpus)
    rng = np.random.default_rng(5)
    x = _matrix(rng)
    for a in (x[:, 6], rng.normal(size=x.shape[0]), rng.integers(0, 2, x.shape[0]).astype(float)):
        m = sp.csc_matrix(x)
        m.data[::11] = 0  # stored zeros are zeros
        got = sparse_spearman(m, a)
        dense = m.toarray()
        for j in range(x.shape[1]):
            want = 0.0 if np.ptp(dense[:, j]) == 0 else stats.spearmanr(dense[:, j], a)[0]
            assert got[j] == pytest.approx(want, abs=1e-12), j


def test_sparse_spearman_of_a_constant_vector_is_zero():
    x = _matrix(np.random.default_rng(0), n=50, m=6)
    np.testing.assert_array_equal(sparse_spearman(sp.csr_matrix(x), np.ones(50)), np.zeros(6))
