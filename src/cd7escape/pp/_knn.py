"""Nearest neighbours in a low-dimensional embedding, with faiss (BLAS-backed, no JIT compilation) or a k-d tree.

scanpy's default kNN (pynndescent) compiles its numba code anew in every process (~10-20 s) and is
approximate; scikit-learn's brute force is exact but selects neighbours from the full distance matrix
row by row. faiss computes the same exact distances with BLAS and keeps the k smallest on the fly: at 20k
cells in 30 dimensions ~1 s on 2 cores. Above ``EXACT_MAX_CELLS`` cells an inverted-file index (coarse
k-means cells, ``nprobe`` of them searched per query) keeps the cost near-linear; its recall at the
defaults was 0.993 on a 20k-cell simulated patient's PCA (benchmarks/knn_recall.py; pynndescent 0.942)
and 0.990 on 98k points made from it.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

EXACT_MAX_CELLS = 50_000
# Exact search in few dimensions (the 10-component subclone space): a k-d tree prunes most distances
# that a flat index computes, 0.8 vs 2.1 s on a 20k-cell patient's first 10 PCs. In 30 dimensions it
# prunes little and is slower than faiss (8.1 vs 2.5 s).
KDTREE_MAX_DIM = 12


def nearest_neighbors(
    data: np.ndarray,
    n_neighbors: int,
    *,
    query: np.ndarray | None = None,
    exact_max_cells: int = EXACT_MAX_CELLS,
    nprobe: int = 96,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_neighbors`` nearest rows of ``data`` (Euclidean) for each row of ``query``.

    Parameters
    ----------
    data
        Reference points, cells × dimensions.
    n_neighbors
        Neighbours per query point (capped at the number of reference points). When ``query`` is None
        the reference is queried against itself and each point is its own first neighbour.
    query
        Points to find neighbours for; the reference itself when None.
    exact_max_cells
        Up to this many reference points the search is exact; beyond, an inverted-file index.
    nprobe
        Inverted-file cells searched per query (approximate mode).
    seed
        Seed of the k-means that builds the inverted file.

    Returns
    -------
    Distances (ascending) and indices into ``data``, each query × ``n_neighbors``.
    """
    import faiss

    ref = np.ascontiguousarray(data, dtype=np.float32)
    qry = ref if query is None else np.ascontiguousarray(query, dtype=np.float32)
    n, dim = ref.shape
    k = int(min(n_neighbors, n))
    if n <= exact_max_cells and dim <= KDTREE_MAX_DIM:
        return _kdtree(ref, qry, k, self_query=query is None)
    if n <= exact_max_cells:
        index = faiss.IndexFlatL2(dim)
    else:
        n_lists = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, n_lists)
        index.cp.seed = seed
        # k-means on a seeded subsample (faiss's own sampling is seeded too; this keeps training cheap)
        train = ref[np.random.default_rng(seed).choice(n, min(n, 256 * n_lists), replace=False)]
        index.train(train)
        index.nprobe = int(min(nprobe, n_lists))
    index.add(ref)
    d2, idx = index.search(qry, k)
    if query is None:
        idx, d2 = _self_first(idx, d2)
    missing = idx < 0  # approximate search found fewer than k: fill with the farthest found
    if missing.any():
        last = np.maximum(np.argmax(missing, axis=1) - 1, 0)[:, None]
        fill_i = np.take_along_axis(idx, last, 1)
        fill_d = np.take_along_axis(d2, last, 1)
        idx = np.where(missing, fill_i, idx)
        d2 = np.where(missing, fill_d, d2)
    return np.sqrt(np.maximum(d2, 0)).astype(np.float32), idx.astype(np.int64)


def _kdtree(ref: np.ndarray, qry: np.ndarray, k: int, *, self_query: bool):
    from scipy.spatial import cKDTree

    from .._parallel import available_cpus

    d, idx = cKDTree(ref).query(qry, k, workers=available_cpus())
    d, idx = d.reshape(qry.shape[0], k), idx.reshape(qry.shape[0], k)
    if self_query:
        idx, d = _self_first(idx, d)
    return d.astype(np.float32), idx.astype(np.int64)


def _self_first(idx: np.ndarray, d2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Put each point first among its own neighbours (duplicates of a point may tie with it at 0)."""
    rows = np.arange(idx.shape[0])
    is_self = idx == rows[:, None]
    has = is_self.any(1)
    # where present, move self to the front; where absent (approximate), prepend it and drop the last
    pos = np.where(has, np.argmax(is_self, axis=1), idx.shape[1] - 1)
    order = np.tile(np.arange(idx.shape[1]), (idx.shape[0], 1))
    shifted = order <= pos[:, None]
    order = np.where(shifted, order - 1, order)
    order[:, 0] = pos
    idx = np.take_along_axis(idx, order, 1)
    d2 = np.take_along_axis(d2, order, 1)
    idx[:, 0] = rows
    d2[:, 0] = 0.0
    return idx, d2


class KnnTransformer:
    """scikit-learn ``KNeighborsTransformer``-like wrapper of :func:`nearest_neighbors` for ``sc.pp.neighbors``.

    ``fit_transform`` returns the sparse distance matrix with ``n_neighbors`` entries per row, the point
    itself first (distance 0), as scanpy expects.
    """

    def __init__(self, n_neighbors: int = 15, *, seed: int = 0) -> None:
        self.n_neighbors = n_neighbors
        self.seed = seed

    def get_params(self, deep: bool = True) -> dict:
        return {"n_neighbors": self.n_neighbors, "seed": self.seed}

    def fit_transform(self, x) -> sparse.csr_matrix:
        x = np.asarray(x)
        d, idx = nearest_neighbors(x, self.n_neighbors, seed=self.seed)
        n, k = idx.shape
        return sparse.csr_matrix(
            (d.ravel().astype(np.float64), idx.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n)
        )
