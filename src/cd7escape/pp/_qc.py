"""Per-sample adaptive quality control."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from .._docs import (
    doc_adata,
    doc_batch_key,
    doc_copy,
    doc_layer,
    doc_params,
    doc_returns_copy,
    doc_seed,
)
from .._logging import logger, timed
from .._sparse import nonzero_count
from .._uns import record

if TYPE_CHECKING:
    from anndata import AnnData

_QC_COLUMNS = [
    "total_counts",
    "n_genes_by_counts",
    "pct_counts_mt",
    "doublet_score",
    "predicted_doublet",
    "qc_pass",
]


@doc_params(
    doc_adata=doc_adata,
    doc_batch_key=doc_batch_key,
    doc_layer=doc_layer,
    doc_seed=doc_seed,
    doc_copy=doc_copy,
    doc_returns_copy=doc_returns_copy,
)
def qc(
    adata: AnnData,
    *,
    n_mads_counts: float = 5.0,
    n_mads_genes: float = 5.0,
    n_mads_mito: float = 3.0,
    max_mito_pct: float = 25.0,
    min_counts: int = 300,
    min_genes: int = 150,
    min_cells: int = 50,
    doublets: bool = True,
    expected_doublet_rate: float = 0.06,
    doublet_max_cells: int = 10000,
    batch_key: str = "sample",
    layer: str = "counts",
    filter: bool = True,
    seed: int = 0,
    copy: bool = False,
) -> AnnData | None:
    """Flag low-quality cells and doublets per sample with adaptive thresholds.

    Thresholds are set per sample as median ± ``n_mads`` median absolute deviations of log total counts,
    log genes detected and mitochondrial percentage, never looser than the absolute floors
    ``min_counts``/``min_genes`` or the ceiling ``max_mito_pct``. Doublets are flagged per sample with
    Scrublet's method (``pp._doublets``). A sample left with fewer than ``min_cells`` passing cells fails as a whole:
    it is reported in ``uns['cd7escape']['qc']['samples']`` and dropped, never silently kept.

    Parameters
    ----------
    {doc_adata}
    n_mads_counts, n_mads_genes, n_mads_mito
        Width of the adaptive windows, in median absolute deviations.
    max_mito_pct, min_counts, min_genes
        Absolute limits applied whatever the MADs say.
    min_cells
        Fewest passing cells for a sample to be kept.
    doublets
        Score doublets per sample with Scrublet's method (Wolock et al. 2019; scanpy's defaults,
        vectorised, see ``pp._doublets``).
    expected_doublet_rate
        Scrublet's prior doublet rate.
    doublet_max_cells
        A sample with more passing cells is scored for doublets in random parts of at most this many
        cells (each part a random sample of the same population, so the simulated doublets and the
        neighbour counts are those of the whole sample). Parts bound the memory and the neighbour search
        of one score (a part of n cells is 3n points with the simulated doublets).
    {doc_batch_key}
    {doc_layer}
    filter
        Remove failing cells and failed samples; otherwise only annotate ``obs['qc_pass']``.
    {doc_seed}
    {doc_copy}

    Returns
    -------
    {doc_returns_copy}
    Writes ``obs['total_counts', 'n_genes_by_counts', 'pct_counts_mt', 'doublet_score',
    'predicted_doublet', 'qc_pass']`` and ``uns['cd7escape']['qc']``; with ``filter=True`` failing cells
    and failed samples are removed.
    """
    if copy:
        adata = adata.copy()
    counts = adata.layers.get(layer, adata.X)
    counts = sparse.csr_matrix(counts)
    total = np.asarray(counts.sum(axis=1)).ravel()
    genes = nonzero_count(counts, axis=1)
    mito = adata.var_names.str.upper().str.startswith("MT-")
    mt_counts = counts @ mito.astype(counts.dtype)  # a product, not a column slice of a CSR matrix
    pct_mt = np.divide(
        100 * mt_counts, total, out=np.zeros(len(total), dtype=float), where=total > 0
    )
    adata.obs["total_counts"] = total.astype(np.float64)
    adata.obs["n_genes_by_counts"] = genes.astype(np.int64)
    adata.obs["pct_counts_mt"] = pct_mt

    keep = np.zeros(adata.n_obs, dtype=bool)
    rows = []
    samples = adata.obs[batch_key].astype(str).to_numpy()
    for sample in pd.unique(samples):
        idx = np.flatnonzero(samples == sample)
        lo_c, hi_c = _mad_window(np.log1p(total[idx]), n_mads_counts)
        lo_g, hi_g = _mad_window(np.log1p(genes[idx]), n_mads_genes)
        med_mt = np.median(pct_mt[idx])
        mad_mt = _mad(pct_mt[idx])
        mt_max = min(max_mito_pct, med_mt + n_mads_mito * max(mad_mt, 1.0))
        c_lo, c_hi = max(min_counts, np.expm1(lo_c)), np.expm1(hi_c)
        g_lo, g_hi = max(min_genes, np.expm1(lo_g)), np.expm1(hi_g)
        ok = (
            (total[idx] >= c_lo)
            & (total[idx] <= c_hi)
            & (genes[idx] >= g_lo)
            & (genes[idx] <= g_hi)
            & (pct_mt[idx] <= mt_max)
        )
        n_pass = int(ok.sum())
        status, reason = "passed", ""
        if n_pass < min_cells:
            status = "failed"
            reason = (
                f"only {n_pass} of {len(idx)} cells pass QC (median {np.median(total[idx]):.0f} UMIs and "
                f"{np.median(genes[idx]):.0f} genes per cell; at least {min_cells} passing cells are needed)"
            )
            logger.warning("sample %s failed QC and is dropped: %s", sample, reason)
            ok[:] = False
        keep[idx] = ok
        rows.append(
            dict(
                sample=sample,
                cells_before=len(idx),
                cells_after=n_pass if status == "passed" else 0,
                median_counts=float(np.median(total[idx])),
                median_genes=float(np.median(genes[idx])),
                median_pct_mt=float(med_mt),
                min_counts=float(c_lo),
                max_counts=float(c_hi),
                min_genes=float(g_lo),
                max_genes=float(g_hi),
                max_pct_mt=float(mt_max),
                doublets=0,
                status=status,
                reason=reason,
            )
        )
    table = pd.DataFrame(rows).set_index("sample")

    adata.obs["doublet_score"] = np.nan
    adata.obs["predicted_doublet"] = False
    if doublets:
        _flag_doublets(
            adata, counts, keep, samples, table, expected_doublet_rate, doublet_max_cells, seed
        )
        keep &= ~adata.obs["predicted_doublet"].to_numpy(dtype=bool)
    adata.obs["qc_pass"] = keep
    for sample, n in pd.Series(keep).groupby(samples).sum().items():
        table.loc[sample, "cells_after"] = int(n)

    params = dict(
        n_mads_counts=n_mads_counts,
        n_mads_genes=n_mads_genes,
        n_mads_mito=n_mads_mito,
        max_mito_pct=max_mito_pct,
        min_counts=min_counts,
        min_genes=min_genes,
        min_cells=min_cells,
        doublets=doublets,
        expected_doublet_rate=expected_doublet_rate,
        doublet_max_cells=doublet_max_cells,
        filter=filter,
        seed=seed,
    )
    record(adata, "qc", params, obs=_QC_COLUMNS, results={"samples": table.reset_index()})
    logger.info(
        "qc: %d of %d cells pass; failed samples: %s",
        int(keep.sum()),
        adata.n_obs,
        ", ".join(table.index[table.status == "failed"]) or "none",
    )
    if filter:
        _keep_cells(adata, keep)
    return adata if copy else None


def _keep_cells(adata, keep: np.ndarray) -> None:
    """Subset ``adata`` to the cells ``keep``, in place, gathering each count matrix once.

    anndata's own in-place subset copies the gathered rows a second time: 4.8 s of the QC stage at 100k
    cells, against 1.3 s for the one gather.
    """
    idx = np.flatnonzero(keep)
    matrices = {key: adata.layers[key] for key in list(adata.layers)}
    x = adata.X
    for key in matrices:
        del adata.layers[key]
    adata.X = None
    adata._inplace_subset_obs(keep)  # obs, obsm, obsp and uns only now
    if x is not None:
        adata.X = x[idx]
    for key, m in matrices.items():
        adata.layers[key] = m[idx]


def _mad(x: np.ndarray) -> float:
    return float(np.median(np.abs(x - np.median(x)))) * 1.4826


def _mad_window(x: np.ndarray, n_mads: float) -> tuple[float, float]:
    med, mad = np.median(x), _mad(x)
    return med - n_mads * mad, med + n_mads * mad


def _flag_doublets(adata, counts, keep, samples, table, rate, max_cells, seed) -> None:
    """Scrublet per sample (in random parts of at most ``max_cells``), on cells passing the other filters.

    Parts are independent (each scored with the same seed), so they run on the available CPUs; each
    part's scores are the same whichever thread scores it.
    """
    from .._parallel import map_threads
    from ._doublets import score_doublets

    scores = np.full(adata.n_obs, np.nan)
    calls = np.zeros(adata.n_obs, dtype=bool)
    with timed("qc: scrublet doublet detection per sample"):
        parts, scored = [], []
        for sample in table.index[table.status == "passed"]:
            idx = np.flatnonzero((samples == sample) & keep)
            if len(idx) < 100:  # scrublet's simulation needs a population to compare against
                continue
            n_parts = -(-len(idx) // max(max_cells, 100))
            split = np.array_split(np.random.default_rng(seed).permutation(idx), n_parts)
            parts += [np.sort(part) for part in split]
            scored.append((sample, idx))
        results = map_threads(
            lambda part: score_doublets(counts[part], expected_doublet_rate=rate, seed=seed),
            parts,
            one_library_thread=True,
        )
        for part, result in zip(parts, results, strict=True):
            scores[part] = result.scores
            calls[part] = result.predicted
        for sample, idx in scored:
            table.loc[sample, "doublets"] = int(calls[idx].sum())
    adata.obs["doublet_score"] = scores
    adata.obs["predicted_doublet"] = calls
