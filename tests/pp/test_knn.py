import numpy as np
import pytest

from cd7escape.pp._knn import KnnTransformer, nearest_neighbors


def _brute(data, query, k):
    d = ((query[:, None, :] - data[None, :, :]) ** 2).sum(-1)
    return np.sort(np.sqrt(d), axis=1)[:, :k]


@pytest.mark.parametrize("dim", [8, 20])  # k-d tree, flat faiss index
def test_exact_neighbours_match_brute_force(dim):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, dim))
    d, idx = nearest_neighbors(x, 10)
    assert (idx[:, 0] == np.arange(300)).all()
    np.testing.assert_allclose(d, _brute(x, x, 10), atol=1e-4)


@pytest.mark.parametrize("dim", [5, 20])
def test_query_against_reference(dim):
    rng = np.random.default_rng(1)
    ref, qry = rng.normal(size=(200, dim)), rng.normal(size=(50, dim))
    d, idx = nearest_neighbors(ref, 7, query=qry)
    assert idx.shape == (50, 7)
    assert idx.max() < 200
    np.testing.assert_allclose(d, _brute(ref, qry, 7), atol=1e-4)


@pytest.mark.parametrize("dim", [3, 20])
def test_duplicated_points_keep_self_first(dim):
    x = np.repeat(np.random.default_rng(2).normal(size=(50, dim)), 3, axis=0)
    d, idx = nearest_neighbors(x, 5)
    assert (idx[:, 0] == np.arange(len(x))).all()
    assert (d[:, 0] == 0).all()


def test_approximate_index_recall_on_clustered_data():
    rng = np.random.default_rng(3)
    centers = rng.normal(scale=5, size=(20, 10))
    x = centers[rng.integers(0, 20, 4000)] + rng.normal(size=(4000, 10))
    _, exact = nearest_neighbors(x, 15)
    _, approx = nearest_neighbors(x, 15, exact_max_cells=100, seed=0)
    assert (approx[:, 0] == np.arange(len(x))).all()
    recall = np.mean([len(set(a) & set(b)) / 15 for a, b in zip(exact, approx, strict=True)])
    assert recall > 0.95


def test_transformer_feeds_scanpy_neighbors():
    sc = pytest.importorskip("scanpy")
    import anndata as ad

    rng = np.random.default_rng(4)
    a = ad.AnnData(rng.normal(size=(400, 20)).astype(np.float32))
    a.obsm["X_pca"] = a.X[:, :10]
    sc.pp.neighbors(a, use_rep="X_pca", transformer=KnnTransformer(12))
    b = a.copy()
    sc.pp.neighbors(b, use_rep="X_pca", n_neighbors=12, transformer="sklearn")
    np.testing.assert_allclose(
        a.obsp["distances"].toarray(), b.obsp["distances"].toarray(), atol=1e-4
    )
    np.testing.assert_allclose(
        a.obsp["connectivities"].toarray(), b.obsp["connectivities"].toarray(), atol=1e-5
    )


def test_transformer_takes_a_self_query_with_more_columns():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    own = nearest_neighbors(x, 16)
    given = KnnTransformer(15, neighbors=own).fit_transform(x)
    searched = KnnTransformer(15).fit_transform(x)
    assert (given != searched).nnz == 0
    with pytest.raises(ValueError, match="n_neighbors columns"):
        KnnTransformer(20, neighbors=own).fit_transform(x)


@pytest.mark.parametrize("dim", [4, 10])  # the k-d tree answers queries in its own leaf order
def test_kdtree_answers_in_the_callers_order(dim):
    rng = np.random.default_rng(6)
    ref, qry = rng.normal(size=(500, dim)), rng.normal(size=(80, dim))
    d, idx = nearest_neighbors(ref, 5, query=qry)
    for row in range(0, 80, 7):
        dist = np.sqrt(((ref - qry[row]) ** 2).sum(1))
        np.testing.assert_array_equal(idx[row], np.argsort(dist)[:5])
        np.testing.assert_allclose(d[row], np.sort(dist)[:5], rtol=1e-5)
