"""The report's UMAP, computed in a second process while the later stages run.

UMAP only draws the report's figure: no stage after embed reads it. Its layout is single-threaded
(seeded umap-learn does not run in parallel) and takes about as long as the rest of the embedding at
100k cells, so on a machine with a second CPU it runs beside malignant, antigen, clones and classify
instead of before them. The coordinates are those of :func:`cd7escape.pp._embed.umap_layout` in this
process: same graph, same seed, same code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._logging import logger
from .._uns import NS

#: Cells from which a worker process (a few seconds to start and import scanpy) pays off.
BACKGROUND_MIN_CELLS = 10_000


def start_umap(adata, config) -> UmapJob | None:
    """Start the UMAP the configuration asks for when the embedded ``adata`` lacks it.

    Returns the running job, or None when there is nothing to do or the layout was computed here at
    once (one CPU, or too few cells for a worker to pay off).
    """
    from .._parallel import available_cpus
    from ..pp._embed import umap_layout

    if not config.embed.umap or "embed" not in adata.uns.get(NS, {}) or "X_umap" in adata.obsm:
        return None
    if available_cpus() < 2 or adata.n_obs < BACKGROUND_MIN_CELLS:
        umap_layout(adata, seed=config.seed)
        _mark(adata)
        return None
    return UmapJob(adata, seed=config.seed)


def _mark(adata) -> None:
    """The embedding's record says it has a UMAP, as ``pp.embed(umap=True)`` would."""
    entry = adata.uns.get(NS, {}).get("embed")
    if entry is not None:
        entry["params"]["umap"] = True
    logger.info("embed: added\n    .obsm 'X_umap'")


class UmapJob:
    """``obsm['X_umap']`` of an embedded AnnData, computed in a spawned process.

    Parameters
    ----------
    adata
        Embedded cells (``obsp['connectivities']``, ``uns['neighbors']`` and its representation).
    seed
        UMAP's random state.
    """

    def __init__(self, adata, *, seed: int) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self.seed = seed
        self.obs_names = adata.obs_names.copy()
        neighbors = adata.uns["neighbors"]
        rep = neighbors["params"].get("use_rep", "X_pca")
        self._pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))
        self._future = self._pool.submit(
            _layout,
            adata.obsp[neighbors.get("connectivities_key", "connectivities")],
            rep,
            np.asarray(adata.obsm[rep]),
            _plain_neighbors(neighbors),
            seed,
        )
        logger.info("embed: UMAP of %d cells started in a second process", adata.n_obs)

    def done(self) -> bool:
        return self._future.done()

    def attach(self, adata) -> None:
        """Wait for the coordinates and write them into ``adata`` (recomputed here if the worker failed)."""
        import time

        from ..pp._embed import umap_layout

        t = time.perf_counter()
        try:
            coords = self._future.result()
            waited = time.perf_counter() - t
            if waited > 1:
                logger.info("embed: waited %.1f s for the UMAP worker", waited)
        except Exception as err:  # a dead worker (e.g. killed for memory) must not lose the run
            logger.warning("embed: the UMAP worker failed (%s); computing it here", err)
            coords = None
        finally:
            self.close()
        if coords is None:
            umap_layout(adata, seed=self.seed)
        else:
            pos = self.obs_names.get_indexer(adata.obs_names)
            if (pos < 0).any():
                raise RuntimeError("cells changed after embed; the UMAP cannot be attached")
            adata.obsm["X_umap"] = coords[pos]
        _mark(adata)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _plain_neighbors(neighbors: dict[str, Any]) -> dict[str, Any]:
    return {
        "connectivities_key": "connectivities",
        "distances_key": "distances",
        "params": dict(neighbors["params"]),
    }


def _layout(connectivities, rep: str, x: np.ndarray, neighbors: dict[str, Any], seed: int):
    """Worker: scanpy's UMAP on a light AnnData holding the graph and its representation."""
    import anndata as ad
    from threadpoolctl import threadpool_limits

    from ..pp._embed import umap_layout
    from ..pp._numba import cache_numba_compilation

    cache_numba_compilation()
    light = ad.AnnData(obs=None, shape=(x.shape[0], 0))
    light.obsm[rep] = x
    light.obsp["connectivities"] = connectivities
    light.uns["neighbors"] = neighbors
    with threadpool_limits(1):  # the main process keeps the other CPU
        umap_layout(light, seed=seed)
    return np.asarray(light.obsm["X_umap"])
