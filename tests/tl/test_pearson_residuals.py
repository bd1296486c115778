"""The compiled Pearson residuals equal the NumPy formula: the matrix bit for bit, the variance closely."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from cd7escape.tl._clones import _pearson_residuals as pr


@pytest.fixture(scope="module")
def counts() -> np.ndarray:
    rng = np.random.default_rng(4)
    x = rng.negative_binomial(1, 0.7, size=(300, 60)).astype(np.float32)
    x[:, 5] = 0  # an all-zero gene
    x[:, 7] = rng.integers(0, 2, 300)  # heavy ties
    x[0, 11] = 400  # one huge count of a low gene: its residual hits the clip at sqrt(n)
    return x


def _dense_residuals(x, genes, p, theta):
    x = x.astype(np.float64)
    mu = x.sum(1)[:, None] * p[None, :]
    z = (x[:, genes] - mu) / np.sqrt(mu + mu**2 / theta)
    lim = np.sqrt(x.shape[0])
    return np.clip(z, -lim, lim)


def _inputs(x):
    """The counts as CSR with explicitly stored zeros, CSC, and dense (the dense values they hold)."""
    m = sp.csr_matrix(x)
    m.data[::17] = 0  # stored zeros count as zeros
    return m.toarray(), [m, m.tocsc(), m.toarray()]


@pytest.fixture(params=[1, 2], ids=["1cpu", "2cpus"])
def small_parts(request, monkeypatch):
    """Many parts, the last one short, on one or two CPUs: the results must not change."""
    monkeypatch.setattr(pr, "ROWS_PER_PART", 7)
    monkeypatch.setattr(pr, "GENES_PER_PART", 3)
    monkeypatch.setattr("cd7escape._parallel.available_cpus", lambda: request.param)


@pytest.mark.parametrize("theta", [100.0, 0.5])
def test_residuals_equal_the_dense_formula_bit_for_bit(counts, small_parts, theta):
    counts = counts.copy()
    counts[3] = 0  # a cell without counts: NaN, as NumPy gives it
    genes = np.array([59, 0, 3, 5, 7, 11, 20])
    p = (counts.sum(0) / counts.sum())[genes].astype(np.float64) + 1e-6
    x, inputs = _inputs(counts)
    want = _dense_residuals(x, genes, p, theta)
    assert (want == np.sqrt(x.shape[0])).any() or theta < 1  # a small theta bounds them
    tot = x.sum(1).astype(np.float64)
    for given in inputs:
        got = pr.pearson_residuals(given, genes, p, theta, tot)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)  # same float64 operations in the same order
    assert np.isnan(want[3]).all()


@pytest.mark.parametrize("theta", [100.0, 0.5])
def test_residual_variance_equals_numpy_var(counts, small_parts, theta):
    genes = np.array([0, 3, 5, 7, 11, 20, 42, 59])
    p = (counts.sum(0) / counts.sum())[genes].astype(np.float64) + 1e-6
    x, inputs = _inputs(counts)
    want = _dense_residuals(x, genes, p, theta).var(0)
    tot = x.sum(1).astype(np.float64)
    for given in inputs:
        np.testing.assert_allclose(
            pr.residual_variance(given, genes, p, theta, tot), want, rtol=1e-12
        )
