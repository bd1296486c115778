"""Recall and time of the kNN used by cd7escape (pp._knn) against exact search and pynndescent.

On the PCA of a finished run (``obsm['X_pca']`` of a ``cells.h5ad``), the 15 nearest neighbours of every
cell from: faiss exact (the truth), faiss inverted file at the default ``nprobe`` (what cd7escape uses above
50k cells), and pynndescent with scanpy's settings (what ``sc.pp.neighbors`` uses by default). Recall is
the share of true neighbours found, over all cells.

    python benchmarks/knn_recall.py results/P1/cells.h5ad [--k 15]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def recall(truth: np.ndarray, found: np.ndarray) -> float:
    hits = sum(np.intersect1d(t, f).size for t, f in zip(truth, found, strict=True))
    return hits / truth.size


def main(path: str, k: int) -> None:
    import anndata as ad

    from cd7escape.pp._knn import nearest_neighbors

    x = np.asarray(ad.read_h5ad(path, backed="r").obsm["X_pca"], dtype=np.float32)
    print(f"{x.shape[0]} cells × {x.shape[1]} PCs, k = {k}")
    t = time.perf_counter()
    _, exact = nearest_neighbors(x, k, exact_max_cells=x.shape[0])
    print(f"  faiss exact          {time.perf_counter() - t:6.1f} s  recall 1")
    t = time.perf_counter()
    _, ivf = nearest_neighbors(x, k, exact_max_cells=0)
    print(
        f"  faiss IVF (default)  {time.perf_counter() - t:6.1f} s  recall {recall(exact, ivf):.4f}"
    )
    from pynndescent import NNDescent

    t = time.perf_counter()
    index = NNDescent(
        x,
        n_neighbors=k,
        n_trees=min(64, 5 + round(x.shape[0] ** 0.5 / 20.0)),
        n_iters=max(5, round(np.log2(x.shape[0]))),
        random_state=0,
    )
    nnd, _ = index.neighbor_graph
    print(
        f"  pynndescent          {time.perf_counter() - t:6.1f} s  recall {recall(exact, nnd):.4f}"
        "  (includes its JIT compilation)"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("h5ad")
    p.add_argument("--k", type=int, default=15)
    a = p.parse_args()
    main(a.h5ad, a.k)
