import numpy as np
import pytest
from scipy import sparse, stats

from cd7escape.pp._doublets import score_doublets


@pytest.fixture(scope="module")
def cells_with_doublets():
    """Two distinct populations plus 8 % doublets summed across them."""
    rng = np.random.default_rng(0)
    n, g = 1500, 600
    profiles = rng.gamma(0.3, 1.0, size=(3, g))
    kind = rng.integers(0, 3, n)
    lib = rng.lognormal(np.log(2000), 0.3, n)
    mean = profiles[kind] / profiles[kind].sum(1, keepdims=True) * lib[:, None]
    x = rng.poisson(mean)
    i, j = rng.integers(0, n, (2, 400))
    hetero = np.flatnonzero(kind[i] != kind[j])[:120]
    dbl = x[i[hetero]] + x[j[hetero]]
    truth = np.r_[np.zeros(n, bool), np.ones(len(hetero), bool)]
    return sparse.csr_matrix(np.vstack([x, dbl])), truth


def test_injected_doublets_score_high(cells_with_doublets):
    x, truth = cells_with_doublets
    r = score_doublets(x, seed=0)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(truth, r.scores) > 0.95
    assert r.predicted[~truth].mean() < 0.05
    assert r.predicted[truth].mean() > 0.5


def test_agrees_with_scanpy_scrublet(cells_with_doublets):
    import anndata as ad
    import scanpy as sc

    x, _ = cells_with_doublets
    ours = score_doublets(x, seed=0)
    a = ad.AnnData(x.astype(np.float32))
    sc.pp.scrublet(a, use_approx_neighbors=False, random_state=0, expected_doublet_rate=0.06)
    # the simulated pairs differ (different generators): scanpy against itself with another seed
    # gives a rank correlation of 0.89 on these cells, so ~0.85 is agreement up to simulation noise
    assert stats.spearmanr(a.obs["doublet_score"], ours.scores).statistic > 0.8
    assert np.mean(a.obs["predicted_doublet"].to_numpy(bool) == ours.predicted) > 0.99


def test_seeded():
    x = sparse.csr_matrix(np.random.default_rng(5).poisson(1.0, size=(300, 200)))
    a, b = score_doublets(x, seed=3), score_doublets(x, seed=3)
    np.testing.assert_array_equal(a.scores, b.scores)
