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
    from ..pp._embed import umap_layout

    if not config.embed.umap or "embed" not in adata.uns.get(NS, {}) or "X_umap" in adata.obsm:
        return None
    if not _worth_a_worker(adata):
        umap_layout(adata, seed=config.seed)
        _mark(adata)
        return None
    job = UmapJob(seed=config.seed)
    job.submit(adata)
    return job


def prepare_umap(adata, config) -> UmapJob | None:
    """Before embed: a worker that starts (imports, loads numba's cache) while embed runs, or None.

    Pass its :meth:`UmapJob.submit` as ``pp.embed(graph_ready=...)``, so the layout starts as soon as
    the kNN graph exists, before Leiden. None when a worker would not pay off (then
    :func:`start_umap` after embed computes the layout here).
    """
    if not config.embed.umap or "X_umap" in adata.obsm or not _worth_a_worker(adata):
        return None
    return UmapJob(seed=config.seed)


def _worth_a_worker(adata) -> bool:
    from .._parallel import available_cpus

    return available_cpus() >= 2 and adata.n_obs >= BACKGROUND_MIN_CELLS


def _mark(adata) -> None:
    """The embedding's record says it has a UMAP, as ``pp.embed(umap=True)`` would."""
    entry = adata.uns.get(NS, {}).get("embed")
    if entry is not None:
        entry["params"]["umap"] = True
    logger.info("embed: added\n    .obsm 'X_umap'")


class UmapJob:
    """``obsm['X_umap']`` of an embedded AnnData, computed in a spawned process.

    The process starts at once and gets ready (imports, numba's cached code); :meth:`submit` sends it
    the graph.

    Parameters
    ----------
    seed
        UMAP's random state.
    """

    def __init__(self, *, seed: int) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self.seed = seed
        self.obs_names = None
        self._pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))
        self._pool.submit(_warm_up)
        self._future = None

    def submit(self, adata) -> None:
        """Send the kNN graph of ``adata`` (``obsp['connectivities']``, ``uns['neighbors']``, its
        representation) to the worker."""
        self.obs_names = adata.obs_names.copy()
        neighbors = adata.uns["neighbors"]
        rep = neighbors["params"].get("use_rep", "X_pca")
        self._future = self._pool.submit(
            _layout,
            adata.obsp[neighbors.get("connectivities_key", "connectivities")],
            rep,
            np.asarray(adata.obsm[rep]),
            _plain_neighbors(neighbors),
            self.seed,
        )
        logger.info("embed: UMAP of %d cells started in a second process", adata.n_obs)

    @property
    def submitted(self) -> bool:
        return self._future is not None

    def done(self) -> bool:
        return self.submitted and self._future.done()

    def attach(self, adata) -> None:
        """Wait for the coordinates and write them into ``adata`` (recomputed here if the worker failed)."""
        import time

        from ..pp._embed import umap_layout

        t = time.perf_counter()
        coords = None
        try:
            if self._future is None:
                raise RuntimeError("no graph was sent to the worker")
            coords = self._future.result()
            waited = time.perf_counter() - t
            if waited > 1:
                logger.info("embed: waited %.1f s for the UMAP worker", waited)
        except Exception as err:  # a dead worker (e.g. killed for memory) must not lose the run
            logger.warning("embed: the UMAP worker failed (%s); computing it here", err)
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


def _warm_up() -> None:
    """Worker: the imports and numba's cached code that the layout needs, while embed still runs."""
    import anndata  # noqa: F401
    import scanpy  # noqa: F401

    from ..pp._numba import cache_numba_compilation

    cache_numba_compilation()


def _layout(connectivities, rep: str, x: np.ndarray, neighbors: dict[str, Any], seed: int):
    """Worker: scanpy's UMAP on a light AnnData holding the graph and its representation."""
    import anndata as ad
    from threadpoolctl import threadpool_limits

    from ..pp._embed import umap_layout

    _warm_up()  # done already unless the warm-up failed
    light = ad.AnnData(obs=None, shape=(x.shape[0], 0))
    light.obsm[rep] = x
    light.obsp["connectivities"] = connectivities
    light.uns["neighbors"] = neighbors
    with threadpool_limits(1):  # the main process keeps the other CPU
        umap_layout(light, seed=seed)
    return np.asarray(light.obsm["X_umap"])
