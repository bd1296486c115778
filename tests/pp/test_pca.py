from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp

from cd7escape import _parallel
from cd7escape.pp._pca import _RowBlocks, arpack_pca


def _lognormal(n_cells: int, n_genes: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    programs = rng.gamma(0.5, 1.0, size=(4, n_genes))
    counts = rng.poisson(programs[rng.integers(0, 4, n_cells)] * rng.gamma(2, 1, (n_cells, 1)))
    x = sp.csr_matrix(counts.astype(np.float32))
    x.data = np.log1p(x.data)
    return x


@pytest.mark.parametrize("cpus", [1, 2, 3])
def test_equals_scanpy_bit_for_bit(cpus, monkeypatch):
    monkeypatch.setattr(_parallel, "available_cpus", lambda: cpus)
    x = _lognormal(1500, 300, seed=cpus)
    mask = np.ones(300, dtype=bool)
    mask[::5] = False
    ours, theirs = ad.AnnData(x.copy()), ad.AnnData(x.copy())
    arpack_pca(ours, 20, mask_var=mask, seed=3)
    sc.pp.pca(theirs, n_comps=20, mask_var=mask, random_state=3)
    assert ours.obsm["X_pca"].dtype == np.float32
    np.testing.assert_array_equal(ours.obsm["X_pca"], theirs.obsm["X_pca"])
    np.testing.assert_array_equal(ours.varm["PCs"], theirs.varm["PCs"])
    assert not ours.varm["PCs"][~mask].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_blocks_product_equals_scipy(dtype, monkeypatch):
    monkeypatch.setattr(_parallel, "available_cpus", lambda: 2)
    x = _lognormal(700, 90, seed=1)
    blocks = _RowBlocks(x)
    assert blocks.bounds.size == 3
    rng = np.random.default_rng(0)
    v, m = rng.standard_normal(90).astype(dtype), rng.standard_normal((90, 6)).astype(dtype)
    for other in (v, m):
        got = blocks @ other
        assert got.dtype == (x @ other).dtype
        np.testing.assert_array_equal(got, x @ other)
