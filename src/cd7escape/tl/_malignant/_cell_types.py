"""Lineage annotation by marker scores, for :func:`cd7escape.tl.call_malignant`.

The antigen (CD7 by default) is never a marker: every gene set here is checked against it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

# Canonical lineage markers. T-ALL blasts keep (cytoplasmic) CD3 transcripts, so they score as T lineage;
# their blast/ETP program is scored separately (``_blast_program``).
LINEAGE_MARKERS: dict[str, tuple[str, ...]] = {
    "T": ("CD3D", "CD3E", "CD3G", "CD2", "CD5", "TRAC", "TRBC1", "TRBC2", "LCK", "CD247", "BCL11B"),
    "NK": ("NKG7", "GNLY", "KLRD1", "KLRF1", "NCAM1", "PRF1", "KLRC1", "SH2D1B"),
    "B": ("CD79A", "CD79B", "MS4A1", "CD19", "PAX5", "IGHM", "BANK1", "CD22"),
    "myeloid": ("LYZ", "CD14", "S100A8", "S100A9", "CST3", "FCN1", "CSF1R", "CD68", "LST1"),
    "erythroid": ("HBB", "HBA1", "HBA2", "HBD", "GYPA", "ALAS2", "CA1", "AHSP"),
}
# Transcripts of T cells (blasts included) that NK cells lack: a cell with none of them detected gives no
# evidence of its own that it is a T cell, whatever its neighbours are.
T_SPECIFIC: tuple[str, ...] = ("CD3D", "CD3E", "CD3G", "CD5", "BCL11B", "TRAC", "TRBC1", "TRBC2")
# Lineages that count as "normal non-T" and may serve as the CNV reference.
NON_T = ("NK", "B", "myeloid", "erythroid")
# Log-normalised expression at which a marker counts as fully on (scores are in [0, 1]).
_CAP = 2.5


def check_antigen_free(
    gene_sets: dict[str, tuple[str, ...]] | tuple[str, ...], antigen: str
) -> None:
    """Raise ``AssertionError`` if the antigen is in any gene set used as evidence (it must never be)."""
    sets = gene_sets.values() if isinstance(gene_sets, dict) else [gene_sets]
    for genes in sets:
        if antigen.upper() in {g.upper() for g in genes}:
            raise AssertionError(f"antigen {antigen} would be used as evidence")


def set_score(logx, var_names: pd.Index, genes: tuple[str, ...]) -> np.ndarray:
    """Mean over the present genes of ``min(log-expression, cap) / cap`` (0 when none present)."""
    idx = var_names.get_indexer([g for g in genes if g in var_names])
    idx = idx[idx >= 0]
    if idx.size == 0:
        return np.zeros(logx.shape[0])
    sub = logx[:, idx]
    sub = sub.toarray() if sp.issparse(sub) else np.asarray(sub)
    return np.minimum(sub, _CAP).mean(axis=1) / _CAP


def without_antigen(genes: tuple[str, ...], antigen: str) -> tuple[str, ...]:
    """The gene set minus the antigen (e.g. CD5 for a CD5 CAR: a T marker that must not be evidence)."""
    return tuple(g for g in genes if g.upper() != antigen.upper())


def lineage_scores(logx, var_names: pd.Index, antigen: str) -> pd.DataFrame:
    """Per-cell marker score of each lineage (columns T, NK, B, myeloid, erythroid); never the antigen."""
    markers = {k: without_antigen(v, antigen) for k, v in LINEAGE_MARKERS.items()}
    check_antigen_free(markers, antigen)
    return pd.DataFrame({k: set_score(logx, var_names, v) for k, v in markers.items()})


def assign_lineage(scores: pd.DataFrame, smooth, *, min_score: float = 0.05) -> np.ndarray:
    """Lineage per cell from graph-smoothed scores; NK needs the T score to be clearly lower.

    ``smooth`` maps a per-cell vector to its neighbourhood average (identity when there is no graph).
    """
    sm = pd.DataFrame({k: smooth(scores[k].to_numpy()) for k in scores.columns})
    # NK and cytotoxic T cells share NKG7/GNLY/PRF1: NK requires CD3 to be low.
    nk_ok = sm["NK"].to_numpy() > 1.5 * sm["T"].to_numpy()
    sm.loc[~nk_ok, "NK"] = 0.0
    best = sm.to_numpy().argmax(axis=1)
    labels = np.asarray(sm.columns)[best].astype(object)
    labels[sm.to_numpy().max(axis=1) < min_score] = "other"
    return labels


def t_transcripts(counts, var_names: pd.Index, antigen: str) -> np.ndarray:
    """Per cell: UMIs of the T-specific transcripts (``T_SPECIFIC`` without the antigen)."""
    genes = without_antigen(T_SPECIFIC, antigen)
    check_antigen_free(genes, antigen)
    idx = var_names.get_indexer([g for g in genes if g in var_names])
    idx = idx[idx >= 0]
    if idx.size == 0:
        return np.zeros(counts.shape[0])
    return np.asarray(counts[:, idx].sum(axis=1)).ravel()
