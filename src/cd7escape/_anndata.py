"""Reading what the stages share from a patient's AnnData: raw counts, the antigen's counts, cell masks.

One home for these reads, so that every step sees the same counts (``layers['counts']``, else ``X``), the
same size factors (total UMIs per cell) and the same error when a key is missing.
"""

from __future__ import annotations

import numpy as np

from ._errors import InputError

COUNTS_LAYER = "counts"


def counts_matrix(adata, layer: str | None = COUNTS_LAYER):
    """Raw counts: ``layers[layer]`` when present, else ``X`` (``layer=None``: ``X``)."""
    if layer is None:
        return adata.X
    return adata.layers.get(layer, adata.X)


def gene_counts(
    adata, gene: str, *, layer: str | None = COUNTS_LAYER, field: str = "antigen"
) -> np.ndarray:
    """Raw counts of one gene per cell, as float (``InputError`` naming ``field`` when it is absent)."""
    import scipy.sparse as sp

    if gene not in adata.var_names:
        raise InputError.single(
            f"{field} gene {gene!r} is not among the genes of the data", field=field
        )
    col = counts_matrix(adata, layer)[:, adata.var_names.get_loc(gene)]
    col = col.toarray() if sp.issparse(col) else np.asarray(col)
    return np.asarray(col, dtype=float).ravel()


def antigen_counts(
    adata, antigen: str, *, layer: str | None = COUNTS_LAYER
) -> tuple[np.ndarray, np.ndarray]:
    """The antigen's UMI counts and the size factors (total UMIs) of every cell."""
    y = gene_counts(adata, antigen, layer=layer)
    s = np.asarray(counts_matrix(adata, layer).sum(axis=1), dtype=float).ravel()
    return y, s


def malignant_mask(adata) -> np.ndarray:
    """Boolean malignant calls (``obs['malignant']``, written by :func:`cd7escape.tl.call_malignant`)."""
    if "malignant" not in adata.obs:
        raise InputError.single(
            "obs['malignant'] is missing: run ce.tl.call_malignant first (or provide malignant labels)",
            field="malignant",
        )
    return adata.obs["malignant"].fillna(False).astype(bool).to_numpy()


def timepoint_masks(adata) -> tuple[np.ndarray, np.ndarray]:
    """Baseline and relapse cells (``obs['timepoint']``)."""
    if "timepoint" not in adata.obs:
        raise InputError.single("obs['timepoint'] is missing (baseline/relapse)", field="timepoint")
    tp = adata.obs["timepoint"].astype(str).to_numpy()
    return tp == "baseline", tp == "relapse"
