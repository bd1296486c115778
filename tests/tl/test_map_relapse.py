"""The sparse shortcuts of the reference space equal their dense definitions; the label transfer."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from cd7escape.pp._knn import nearest_neighbors
from cd7escape.tl._clones._map_relapse import (
    _lognorm,
    _residuals,
    correlated_genes,
    detected_share,
    genomic_windows,
    knn_transfer,
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


def test_detected_share_equals_scipys_mean():
    rng = np.random.default_rng(1)
    dense = rng.random((1100, 40)) < rng.random(40)
    dense[:, 0] = np.arange(1100) < 55  # 55 of 1,100: scipy's mean gives 0.04999..., below 0.05
    x = sp.csr_matrix(dense)
    want = np.asarray(x.mean(axis=0)).ravel()
    k = np.asarray(x.sum(axis=0)).ravel()
    np.testing.assert_array_equal(detected_share(k, x.shape[0]), want)
    assert detected_share(k, x.shape[0])[0] < 0.05


def test_genomic_windows_group_means_and_shifts():
    import anndata as ad

    rng = np.random.default_rng(2)
    n_genes = 240
    x = rng.poisson(1.0, size=(120, n_genes)).astype(np.float32)
    x[60:, :50] = rng.poisson(2.5, size=(60, 50))  # cells 60+ gain a segment at the start of chr1
    adata = ad.AnnData(
        sp.csr_matrix(x),
        var={
            "chromosome": ["chr1"] * 120 + ["chr2"] * 119 + ["chrX"],
            "start": np.r_[np.arange(120)[::-1], np.arange(119), 0],  # chr1 listed backwards
        },
    )
    adata.var_names = [f"g{i}" for i in range(n_genes)]
    cells = np.arange(120)[::-1]  # rows of the windows follow the given order
    win = genomic_windows([adata.X[cells]], adata.var, antigen="g5", window=50, step=25)
    # the same windows from two blocks of cells (baseline, relapse), never stacked
    split = genomic_windows(
        [adata.X[cells[:45]], adata.X[cells[45:]]], adata.var, antigen="g5", window=50, step=25
    )
    assert split.names == win.names
    assert sum(b.shape[0] for b in split.blocks) == 120
    for rows in (np.arange(10, 40), np.arange(50, 110)):  # within one block
        np.testing.assert_array_equal(split.mean(rows), win.mean(rows))
    np.testing.assert_allclose(split.mean(np.arange(120)), win.mean(np.arange(120)), rtol=1e-12)
    placed = [f"g{i}" for i in range(119, -1, -1) if i != 5] + [f"g{i}" for i in range(120, 239)]
    assert win.blocks[0].shape[0] == 120
    assert win.blocks[0].shape[1] == len(placed)
    assert win.names == ["chr1:0", "chr1:25", "chr1:50", "chr2:0", "chr2:25", "chr2:50"]
    want = _lognorm(sp.csr_matrix(x)).toarray()[cells][:, [int(g[1:]) for g in placed]]
    rows = np.array([3, 0, 77, 119])
    np.testing.assert_allclose(win.mean(rows), want[rows].mean(0), rtol=1e-12)
    gained, plain = np.arange(60), np.arange(60, 120)  # window rows of cells 119..60 and 59..0
    assert win.change(plain, gained) == [2]  # chr1:50 holds g69..g20, chr1:25 five gained genes
    assert win.change(plain[:30], plain[30:]) == []
    assert win.change(plain[:4], gained) == []  # fewer than 5 cells: no call


def test_residuals_from_csc_equal_csr(counts):
    genes = np.array([4, 0, 33])
    p = np.array([0.01, 0.02, 0.03])
    np.testing.assert_array_equal(
        _residuals(counts.tocsc(), genes, p, 100.0), _residuals(counts, genes, p, 100.0)
    )


def test_given_reference_distances_equal_searched_ones():
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=5, size=(3, 6))
    labels = rng.integers(0, 3, 600)
    ref = centers[labels] + rng.normal(size=(600, 6))
    query = np.vstack([centers[rng.integers(0, 3, 100)] + rng.normal(size=(100, 6)),
                       rng.normal(scale=40, size=(5, 6))])  # fmt: skip
    names = np.array(["a", "b", "c"], dtype=object)[labels]
    searched = knn_transfer(ref, names, query, n_neighbors=10)
    own = nearest_neighbors(ref, 12)[0]  # more columns than needed: the first k + 1 count
    given = knn_transfer(ref, names, query, n_neighbors=10, ref_distances=own)
    for a, b in zip(searched, given, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (searched[1][-5:] == 0).all()  # far-away cells: novel, confidence 0
    with pytest.raises(ValueError, match="k \\+ 1 columns"):
        knn_transfer(ref, names, query, n_neighbors=10, ref_distances=own[:, :5])
