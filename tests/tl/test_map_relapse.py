"""The sparse shortcuts of the reference space equal their dense definitions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from cd7escape.tl import _map_relapse
from cd7escape.tl._map_relapse import (
    _lognorm,
    _lognorm_columns,
    _residual_variance,
    _residuals,
    _sparse_spearman,
    correlated_genes,
)


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(4)
    x = rng.negative_binomial(1, 0.7, size=(300, 60)).astype(np.float32)
    x[:, 5] = 0  # an all-zero gene
    x[:, 7] = rng.integers(0, 2, 300)  # heavy ties
    m = sp.csr_matrix(x)
    m.data[::17] = 0  # explicitly stored zeros must count as zeros
    return m


def _dense_residuals(x, genes, p, theta):
    tot = x.sum(1)
    mu = tot[:, None] * p[None, :]
    z = (x[:, genes] - mu) / np.sqrt(mu + mu**2 / theta)
    lim = np.sqrt(x.shape[0])
    return np.clip(z, -lim, lim)


@pytest.mark.parametrize("theta", [100.0, 0.5])
def test_residuals_equal_the_dense_formula(counts, theta):
    x = counts.toarray().astype(float)
    genes = np.array([0, 3, 5, 7, 59])
    p = (x.sum(0) / x.sum())[genes] + 1e-6
    want = _dense_residuals(x, genes, p, theta)
    for given in (counts, x):
        got = _residuals(given, genes, p, theta)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)  # same float64 operations: identical


def test_residual_blocks_on_threads_equal_one_pass(counts, monkeypatch):
    x = counts.toarray().astype(float)
    genes = np.array([0, 3, 5, 7, 11, 20, 42, 59])
    p_all = x.sum(0) / x.sum() + 1e-6
    want = _dense_residuals(x, genes, p_all[genes], 100.0)
    monkeypatch.setattr(_map_relapse, "_BLOCK", 3)  # three blocks, the last one short
    monkeypatch.setattr("cd7escape._parallel.available_cpus", lambda: 2)
    np.testing.assert_array_equal(_residuals(counts, genes, p_all[genes], 100.0), want)
    tot = x.sum(1)
    np.testing.assert_array_equal(_residual_variance(counts, genes, p_all, 100.0, tot), want.var(0))


def test_sparse_spearman_equals_scipy(counts):
    xl = _lognorm(counts).toarray()
    a = xl[:, 1]
    rho = _sparse_spearman(sp.csr_matrix(xl), a)
    for j in range(xl.shape[1]):
        want = 0.0 if np.ptp(xl[:, j]) == 0 else stats.spearmanr(xl[:, j], a)[0]
        assert rho[j] == pytest.approx(want, abs=1e-10), j


def test_correlated_genes_reads_counts(counts):
    xl = _lognorm(counts).toarray()
    cand = np.arange(2, 60)
    rho = np.array(
        [0.0 if np.ptp(xl[:, j]) == 0 else stats.spearmanr(xl[:, j], xl[:, 1])[0] for j in cand]
    )
    for cut in (0.05, 0.1):
        for given in (counts, counts.toarray()):
            np.testing.assert_array_equal(
                correlated_genes(given, 1, cand, max_corr=cut), np.abs(rho) > cut
            )


def test_lognorm_columns_matches_lognorm(counts, monkeypatch):
    cols = np.array([9, 0, 33])
    want = _lognorm(counts).toarray()[:, cols]
    whole = _lognorm_columns(counts, cols)
    np.testing.assert_allclose(whole, want, rtol=1e-6)
    np.testing.assert_allclose(_lognorm_columns(counts.toarray(), cols), want, rtol=1e-6)
    monkeypatch.setattr(_map_relapse, "_ROWS", 7)  # many row blocks, the last one short
    for given in (counts, counts.tocsc(), counts.toarray()):
        np.testing.assert_array_equal(_lognorm_columns(given, cols), whole)


def test_residuals_from_csc_equal_csr(counts):
    genes = np.array([4, 0, 33])
    p = np.array([0.01, 0.02, 0.03])
    np.testing.assert_array_equal(
        _residuals(counts.tocsc(), genes, p, 100.0), _residuals(counts, genes, p, 100.0)
    )
