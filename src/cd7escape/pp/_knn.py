"""Nearest neighbours in a low-dimensional embedding, with faiss (BLAS-backed, no JIT compilation) or a k-d tree.

scanpy's default kNN (pynndescent) compiles its numba code anew in every process (~10-20 s) and is
approximate; scikit-learn's brute force is exact but selects neighbours from the full distance matrix
row by row. faiss computes the same exact distances with BLAS and keeps the k smallest on the fly: at 20k
cells in 30 dimensions ~1 s on 2 cores. Above ``EXACT_MAX_CELLS`` cells an inverted-file index (coarse
k-means cells, ``nprobe`` of them searched per query) keeps the cost near-linear; its recall at the
defaults was 0.993 on a 20k-cell simulated patient's PCA (benchmarks/knn_recall.py; pynndescent 0.942)
and 0.990 on 98k points made from it. faiss trains that index and picks the lists; a compiled loop
(:mod:`._ivf_scan`, numba cached on disk) scans them, faster than faiss's own search for many neighbours.
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
        index.add(ref)
        d2, idx = index.search(qry, k)
    else:
        from ._ivf_scan import ivf_search

        n_lists = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, n_lists)
        index.cp.seed = seed
        # k-means on a seeded subsample (faiss's own sampling is seeded too; this keeps training cheap)
        train = ref[np.random.default_rng(seed).choice(n, min(n, 256 * n_lists), replace=False)]
        index.train(train)
        # faiss's lists and probes, scanned by our compiled loop (see _ivf_scan); as many threads as
        # faiss would use here (one inside a part of map_threads(one_library_thread=True))
        d2, idx = ivf_search(
            index.quantizer, ref, qry, k, nprobe, n_threads=faiss.omp_get_max_threads()
        )
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

    tree = cKDTree(ref)
    # queries in the tree's leaf order: consecutive queries visit the same nodes (about 9 % faster on
    # 30k cells in 10 dimensions); every query is answered on its own, so the result is the same
    order = tree.indices if self_query else cKDTree(qry).indices
    d_sorted, i_sorted = tree.query(qry[order], k, workers=available_cpus())
    d = np.empty((qry.shape[0], k), dtype=d_sorted.dtype)
    idx = np.empty((qry.shape[0], k), dtype=i_sorted.dtype)
    d[order], idx[order] = d_sorted.reshape(-1, k), i_sorted.reshape(-1, k)
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
    itself first (distance 0), as scanpy expects. ``neighbors``: distances and indices of a self-query of
    the same points (:func:`nearest_neighbors`, at least ``n_neighbors`` columns) to use instead of
    searching again.
    """

    def __init__(
        self,
        n_neighbors: int = 15,
        *,
        seed: int = 0,
        neighbors: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.seed = seed
        self.neighbors = neighbors

    def get_params(self, deep: bool = True) -> dict:
        return {"n_neighbors": self.n_neighbors, "seed": self.seed}

    def fit_transform(self, x) -> sparse.csr_matrix:
        x = np.asarray(x)
        if self.neighbors is None:
            d, idx = nearest_neighbors(x, self.n_neighbors, seed=self.seed)
        else:  # a self-query of x the caller already has (at least n_neighbors columns)
            d, idx = (a[:, : self.n_neighbors] for a in self.neighbors)
            if d.shape[0] != x.shape[0] or d.shape[1] < self.n_neighbors:
                raise ValueError("neighbors must hold n_neighbors columns for every row of x")
        n, k = idx.shape
        return sparse.csr_matrix(
            (d.ravel().astype(np.float64), idx.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n)
        )
