import numpy as np
import pytest

from cd7escape.pp._ivf_scan import QUERIES_PER_PART, ivf_search

faiss = pytest.importorskip("faiss")


def _index(x, n_lists, seed=0):
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(x.shape[1]), x.shape[1], n_lists)
    index.cp.seed = seed
    index.train(x)
    index.add(x)
    return index


@pytest.mark.parametrize("k", [5, 60])  # few neighbours, and more than half a list's candidates
def test_same_neighbours_as_faiss_ivf_search(k):
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=4, size=(15, 12))
    x = (centers[rng.integers(0, 15, 3000)] + rng.normal(size=(3000, 12))).astype(np.float32)
    q = (centers[rng.integers(0, 15, 500)] + rng.normal(size=(500, 12))).astype(np.float32)
    index = _index(x, 40)
    index.nprobe = 6
    d_ref, i_ref = index.search(q, k)
    d, i = ivf_search(index.quantizer, x, q, k, 6)
    # the same candidates: the same neighbour sets and distances up to float32 rounding
    assert all(set(a) == set(b) for a, b in zip(i, i_ref, strict=True))
    np.testing.assert_allclose(d, d_ref, rtol=1e-5, atol=1e-4)
    assert (np.diff(d, axis=1) >= 0).all()


def test_ties_break_by_index_whatever_the_scan_order():
    # every point duplicated: equal distances everywhere, the lower index must come first
    rng = np.random.default_rng(1)
    base = rng.normal(size=(400, 6)).astype(np.float32)
    x = np.concatenate([base, base, base])
    index = _index(x, 8)
    d, i = ivf_search(index.quantizer, x, base, 9, 8)
    for row_d, row_i in zip(d, i, strict=True):
        for a in range(8):
            if row_d[a] == row_d[a + 1]:
                assert row_i[a] < row_i[a + 1]
    assert (i[:, 0] == np.arange(400)).all()  # the point itself (distance 0, lowest copy) first


def test_fewer_candidates_than_k_are_marked_missing():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    index = _index(x, 20)
    d, i = ivf_search(index.quantizer, x, x[:30], 50, 1)  # one list of ~10 points
    assert (i[:, -1] == -1).all()
    assert np.isinf(d[:, -1]).all()
    found = i >= 0
    assert (found[:, :-1] >= found[:, 1:]).all()  # the found ones first
    assert found.sum(1).min() >= 1


def test_threads_do_not_change_the_result():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(QUERIES_PER_PART + 700, 8)).astype(np.float32)
    index = _index(x, 30)
    one = ivf_search(index.quantizer, x, x, 7, 5, n_threads=1)
    two = ivf_search(index.quantizer, x, x, 7, 5, n_threads=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
