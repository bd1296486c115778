"""Normalisation, features that exclude the antigen, PCA or scVI, kNN graph, Leiden, UMAP."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .._docs import (
    doc_adata,
    doc_antigen,
    doc_batch_key,
    doc_copy,
    doc_layer,
    doc_params,
    doc_returns_copy,
    doc_seed,
)
from .._logging import logger, timed
from .._uns import record

if TYPE_CHECKING:
    from anndata import AnnData


@doc_params(
    doc_adata=doc_adata,
    doc_antigen=doc_antigen,
    doc_batch_key=doc_batch_key,
    doc_layer=doc_layer,
    doc_seed=doc_seed,
    doc_copy=doc_copy,
    doc_returns_copy=doc_returns_copy,
)
def embed(
    adata: AnnData,
    *,
    antigen: str = "CD7",
    integration: str = "pca",
    n_top_genes: int = 2000,
    n_pcs: int = 30,
    n_neighbors: int = 15,
    resolution: float = 1.0,
    antigen_corr_max: float = 0.3,
    umap: bool = True,
    scvi_max_epochs: int = 100,
    scvi_n_latent: int = 20,
    scvi_mode: str = "query",
    exclude: tuple[str, ...] = (),
    batch_key: str = "sample",
    layer: str = "counts",
    seed: int = 0,
    copy: bool = False,
    graph_ready: Callable[[Any], None] | None = None,
) -> AnnData | None:
    """Embed cells without letting the antigen shape the embedding.

    Counts are depth-normalised (10,000 per cell) and log-transformed into ``X``. Highly variable genes
    are chosen per sample; the antigen, every gene whose correlation with it across cells exceeds
    ``antigen_corr_max``, and the names in ``exclude`` never enter the features. Otherwise the clusters
    would split on the antigen and any later comparison of the antigen between clusters would be circular.

    Parameters
    ----------
    {doc_adata}
    {doc_antigen}
    integration
        ``'pca'`` (PCA on the log data) or ``'scvi'`` (scVI latent space with ``batch_key`` as batch).
    n_top_genes
        Number of highly variable genes.
    n_pcs
        Principal components (PCA mode).
    n_neighbors
        Neighbours of the kNN graph (faiss: exact up to 50k cells, an inverted-file index beyond; see
        ``pp._knn``). numba's compiled UMAP code is cached on disk, so it is compiled
        once per machine rather than in every process (``pp._numba.cache_numba_compilation``).
    resolution
        Leiden resolution.
    antigen_corr_max
        Genes with Pearson correlation (log-normalised values) above this with the antigen are excluded.
    umap
        Compute ``obsm['X_umap']``.
    scvi_max_epochs, scvi_n_latent
        Bound on scVI training epochs and latent size. Training stops at the smaller of this and
        scvi-tools' own heuristic (fewer epochs above 20k cells), or earlier when the validation ELBO has
        not improved for 10 epochs; on a GPU when one is present (lightning ``accelerator='auto'``).
    scvi_mode
        ``'query'``: baseline cells train an scVI reference (batch = baseline samples) and the other
        samples are mapped onto it scArches-style (only their own batch weights are trained), so a state
        only the relapse shows is not integrated away; a patient with one timepoint gets the joint model.
        ``'joint'``: one scVI model of all cells (batch = ``batch_key``). See ``pp._scvi.scvi_latent``.
    exclude
        Further feature names kept out of the embedding (e.g. the CAR transgene).
    {doc_batch_key}
    {doc_layer}
    {doc_seed}
    {doc_copy}
    graph_ready
        Called with the AnnData as soon as the kNN graph is in ``obsp`` (before Leiden): work that needs
        only the graph can start there (``cd7escape run`` sends it to the UMAP worker).

    Returns
    -------
    {doc_returns_copy}
    Writes ``X`` (log-normalised), ``var['highly_variable']``,
    ``obsm['X_pca']`` or ``obsm['X_scvi']``, ``obsp['connectivities'|'distances']``, ``obs['leiden']``,
    ``obsm['X_umap']`` and ``uns['cd7escape']['embed']`` (with ``excluded_genes``; with scVI, ``scvi``:
    the mode used, reference and query samples, epochs of each).
    """
    import scanpy as sc
    import scipy.sparse as sp

    from .._lineages import antigen_gene
    from ._pca import arpack_pca

    antigen = antigen_gene(antigen)  # BCMA -> TNFRSF17: the gene must be what is kept out
    if copy:
        adata = adata.copy()
    if integration not in ("pca", "scvi"):
        raise ValueError(f"integration must be 'pca' or 'scvi', not {integration!r}")
    scvi_info: dict[str, Any] = {}
    if integration == "scvi":
        from ._scvi import require_scvi

        require_scvi()  # before any work
        if scvi_mode not in ("query", "joint"):
            raise ValueError(f"scvi_mode must be 'query' or 'joint', not {scvi_mode!r}")
    if layer not in adata.layers:
        adata.layers[layer] = adata.X.copy()

    with timed("embed: normalise and log-transform"):
        normalize_log(adata, layer=layer)

    excluded = _antigen_linked_genes(adata, antigen, antigen_corr_max) + [
        g for g in exclude if g in adata.var_names
    ]
    with timed("embed: highly variable genes"):
        import anndata as ad
        import pandas as pd

        n_batches = adata.obs[batch_key].nunique() if batch_key in adata.obs else 1
        # scanpy copies the whole AnnData per batch (the counts layer too): give it X alone
        light = ad.AnnData(
            X=adata.X,
            obs=adata.obs[[batch_key]] if batch_key in adata.obs else None,
            var=pd.DataFrame(index=adata.var_names),
        )
        sc.pp.highly_variable_genes(
            light,
            n_top_genes=min(n_top_genes + len(excluded), adata.n_vars),
            batch_key=batch_key if n_batches > 1 else None,
            flavor="seurat",
        )
        for col in light.var.columns:
            adata.var[col] = light.var[col].to_numpy()
        adata.uns["hvg"] = light.uns["hvg"]
        hvg = adata.var["highly_variable"].to_numpy().copy()
        hvg[adata.var_names.isin(excluded)] = False
        if (
            hvg.sum() > n_top_genes
        ):  # the excluded genes were not all among the top: keep the best n
            score = np.nan_to_num(adata.var["dispersions_norm"].to_numpy(), nan=-np.inf)
            ranked = np.flatnonzero(hvg)[np.argsort(-score[hvg], kind="stable")]
            hvg[ranked[n_top_genes:]] = False
        adata.var["highly_variable"] = hvg

    if integration == "pca":
        rep = "X_pca"
        with timed(f"embed: PCA on {int(hvg.sum())} genes"):
            n_comps = int(min(n_pcs, hvg.sum() - 1, adata.n_obs - 1))
            if sp.issparse(adata.X):
                arpack_pca(adata, n_comps, mask_var=hvg, seed=seed)
            else:
                sc.pp.pca(adata, n_comps=n_comps, mask_var="highly_variable", random_state=seed)
                adata.uns.pop("pca", None)
    else:
        from ._scvi import scvi_latent

        rep = "X_scvi"
        adata.obsm[rep], scvi_info = scvi_latent(
            adata, hvg, batch_key=batch_key, layer=layer, n_latent=scvi_n_latent,
            max_epochs=scvi_max_epochs, mode=scvi_mode, seed=seed,
        )  # fmt: skip

    from ._knn import KnnTransformer
    from ._numba import cache_numba_compilation

    cache_numba_compilation()
    with timed("embed: kNN graph, Leiden" + (", UMAP" if umap else "")):
        sc.pp.neighbors(
            adata,
            n_neighbors=n_neighbors,
            use_rep=rep,
            transformer=KnnTransformer(n_neighbors, seed=seed),
        )
        if graph_ready is not None:
            graph_ready(adata)
        sc.tl.leiden(
            adata,
            resolution=resolution,
            flavor="igraph",
            n_iterations=2,
            directed=False,
            random_state=seed,
        )
        adata.uns.pop("leiden", None)
        if umap:
            umap_layout(adata, seed=seed)

    params = dict(
        antigen=antigen,
        integration=integration,
        n_top_genes=n_top_genes,
        n_pcs=n_pcs,
        n_neighbors=n_neighbors,
        resolution=resolution,
        antigen_corr_max=antigen_corr_max,
        umap=umap,
        scvi_max_epochs=scvi_max_epochs,
        scvi_n_latent=scvi_n_latent,
        scvi_mode=scvi_mode,
        exclude=list(exclude),
        seed=seed,
    )
    record(
        adata,
        "embed",
        params,
        obs=["leiden"],
        obsm=[rep] + (["X_umap"] if umap else []),
        results={"excluded_genes": excluded, "use_rep": rep}
        | ({"scvi": scvi_info} if scvi_info else {}),
    )
    return adata if copy else None


def umap_layout(adata, *, seed: int = 0) -> None:
    """``obsm['X_umap']`` from the kNN graph in ``obsp`` (scanpy's UMAP, seeded).

    On a PCA graph the layout starts from the first two principal components, scaled to ±10 as
    umap-learn scales its starts, rather than from scanpy's spectral start: an informative start keeps
    the global layout as well as a spectral one does (Kobak & Linderman 2021, Nat Biotechnol 39:156),
    and the graph Laplacian's eigenvectors cost 8 of the 65 CPU-s of a 100k-cell layout. The start is
    taken from ``obsm['X_pca']`` as it is, not recomputed (umap-learn's ``init='pca'`` runs a BLAS PCA
    whose last bits depend on memory alignment, and UMAP magnifies them). Other representations (scVI)
    keep the spectral start.
    """
    import scanpy as sc

    rep = adata.uns.get("neighbors", {}).get("params", {}).get("use_rep")
    start = "spectral"
    if rep == "X_pca" and adata.obsm["X_pca"].shape[1] >= 2:
        start = np.array(adata.obsm["X_pca"][:, :2], dtype=np.float64)
        start *= 10.0 / max(float(np.abs(start).max()), 1e-12)
        start = start.astype(np.float32)
    sc.tl.umap(adata, random_state=seed, init_pos=start)
    adata.uns.pop("umap", None)


def normalize_log(adata, *, layer: str = "counts") -> None:
    """``X`` = log1p of counts scaled to 10,000 per cell (deterministic, so caches can recompute it)."""
    from .._sparse import lognorm

    adata.X = lognorm(adata.layers[layer])


def _antigen_linked_genes(adata, antigen: str, corr_max: float) -> list[str]:
    """The antigen plus genes that track it across cells (their clusters would proxy the antigen)."""
    if antigen not in adata.var_names:
        logger.warning(
            "embed: antigen %s is not among the genes; nothing to exclude for it", antigen
        )
        return []
    X = adata.X
    a = np.asarray(X[:, adata.var_names.get_loc(antigen)].todense()).ravel()
    n = X.shape[0]
    # sums over the stored entries (sparse .mean() first copies the matrix scaled by 1/n)
    mean_x = np.asarray(X.sum(axis=0, dtype=np.float64)).ravel() / n
    sq = X.copy()
    sq.data **= 2
    mean_sq = np.asarray(sq.sum(axis=0, dtype=np.float64)).ravel() / n
    sd_x = np.sqrt(np.maximum(mean_sq - mean_x**2, 0))
    cov = np.asarray(X.T @ a).ravel() / n - mean_x * a.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cov / (sd_x * a.std())
    r = np.nan_to_num(r)
    linked = adata.var_names[r > corr_max].tolist()
    if antigen not in linked:
        linked.insert(0, antigen)
    logger.info(
        "embed: keeping %d antigen-linked genes out of the features: %s",
        len(linked),
        ", ".join(linked[:10]),
    )
    return linked
