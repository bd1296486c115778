"""Lineage annotation by marker scores, for :func:`cd7escape.tl.call_malignant`.

The antigen (CD7 by default) is never a marker: every gene set here is checked against it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..._lineages import LINEAGES, MARKERS, Lineage
from ._copy_number_llr import PRIOR_BOUNDS, mixture_share
from ._negative_binomial import dispersion, log_nb

# Marker genes, per-lineage programs and the T-specific transcripts live in one table (``_lineages``).
LINEAGE_MARKERS: dict[str, tuple[str, ...]] = {k: MARKERS[k] for k in LINEAGES["T"].scored}
# Transcripts of T cells (blasts included) that NK cells lack: a cell with none of them detected gives no
# evidence of its own that it is a T cell, whatever its neighbours are.
T_SPECIFIC: tuple[str, ...] = LINEAGES["T"].specific
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


def lineage_scores(
    logx, var_names: pd.Index, antigen: str, lineage: Lineage = LINEAGES["T"]
) -> pd.DataFrame:
    """Per-cell marker score of each lineage the run scores (``lineage.scored``: T, NK, B, myeloid,
    erythroid, and plasma for a myeloma run); never the antigen."""
    markers = {k: without_antigen(MARKERS[k], antigen) for k in lineage.scored}
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


def t_transcripts(
    counts, var_names: pd.Index, antigen: str, lineage: Lineage = LINEAGES["T"]
) -> np.ndarray:
    """Per cell: UMIs of the lineage's specific transcripts (``lineage.specific`` without the antigen;
    for T cells ``T_SPECIFIC``, which NK cells lack)."""
    return transcript_counts(counts, var_names, lineage.specific, antigen)


def transcript_counts(
    counts, var_names: pd.Index, genes: tuple[str, ...], antigen: str
) -> np.ndarray:
    """Per cell: UMIs of ``genes`` (without the antigen) present in ``var_names``."""
    genes = without_antigen(genes, antigen)
    check_antigen_free(genes, antigen)
    idx = var_names.get_indexer([g for g in genes if g in var_names])
    idx = idx[idx >= 0]
    if idx.size == 0:
        return np.zeros(counts.shape[0])
    return np.asarray(counts[:, idx].sum(axis=1)).ravel()


# Pseudo-cells of the lymphoid cells' overall T share shrinking a cluster's (the prior of T identity).
T_PRIOR_CELLS = 20.0
# UMIs of the read T cells' overall rate shrinking a cluster's T-transcript rate.
T_RATE_PSEUDO_UMIS = 20.0
MIN_IDENTITY_CELLS = 20  # NK cells and read T cells needed to learn the T-transcript rates


def t_identity(
    t_counts: np.ndarray,
    total: np.ndarray,
    lineage: np.ndarray,
    read_t: np.ndarray,
    nk_ref: np.ndarray,
    clusters: np.ndarray | None,
    nk_counts: np.ndarray | None = None,
) -> np.ndarray | None:
    """Per cell: log-odds that a lymphoid (T- or NK-lineage) cell is a T cell, not an NK cell.

    T-ALL blasts are T cells, but their T-specific transcripts (``T_SPECIFIC``; CD3D/E/G and CD5 lie on
    11q, lost in some leukemias) can all drop out of a shallow cell: having none is evidence against a T
    cell only as far as its depth makes some expected. The likelihood of a cell's T-specific UMIs is a
    negative binomial at its depth with the rate of its Leiden cluster's T cells whose TCR was read
    (``read_t``; shrunk towards all of theirs by 20 UMIs) and a dispersion learnt from them, against a
    Poisson with the rate of NK cells (``nk_ref``: NK lineage, no TCR). The prior is the share of T cells
    among the lymphoid cells of the cluster, learnt by EM from those likelihoods (shrunk towards all
    lymphoid cells' by 20 pseudo-cells, within [0.02, 0.98]): not the lineage labels, which are smoothed
    over neighbours. ``None`` when either class has fewer than 20 cells or the rates do not differ.

    ``nk_counts`` (UMIs of ``Lineage.confusable_specific``, NK transcripts T cells have little of) add
    their own ratio (:func:`_nk_transcripts_llr`): a cell whose T transcripts dropped out is told from an NK
    cell by what it does express, not only by what it lacks.
    """
    rates = _class_rates(t_counts, total, read_t, nk_ref, MIN_IDENTITY_CELLS)
    if rates is None:
        return None
    y, d, r_t, r_nk = rates
    rate = np.full(y.size, r_t)
    if clusters is not None:
        frame = pd.DataFrame(
            {"c": clusters, "y": np.where(read_t, y, 0.0), "d": np.where(read_t, d, 0.0)}
        )
        g = frame.groupby("c")
        y_c = g["y"].transform("sum").to_numpy()
        d_c = g["d"].transform("sum").to_numpy()
        rate = (y_c + T_RATE_PSEUDO_UMIS) / (d_c + T_RATE_PSEUDO_UMIS / r_t)
    mu_t, mu_nk = rate * d, r_nk * d
    # method-of-moments dispersion of the read T cells' counts about their expected ones
    phi = dispersion(y[read_t], mu_t[read_t])
    llr = log_nb(y, mu_t, phi) - log_nb(y, mu_nk, 0.0)
    if nk_counts is not None:
        llr = llr + _nk_transcripts_llr(nk_counts, d, read_t, nk_ref)
    lymphoid = np.isin(lineage, ["T", "NK"])
    if not lymphoid.any():
        return None
    overall = mixture_share(llr[lymphoid], 0.5, 0.0, 0.5, bounds=PRIOR_BOUNDS)
    share = np.full(y.size, overall)
    if clusters is not None:
        for c in pd.unique(clusters[lymphoid]):
            members = lymphoid & (clusters == c)
            share[members] = mixture_share(
                llr[members], overall, T_PRIOR_CELLS, overall, bounds=PRIOR_BOUNDS
            )
    return np.log(share / (1.0 - share)) + llr


def _nk_transcripts_llr(
    counts: np.ndarray, depth: np.ndarray, read_t: np.ndarray, nk_ref: np.ndarray
) -> np.ndarray | float:
    """Log-likelihood ratio, T cell vs NK cell, of a cell's UMIs of NK transcripts at its depth: a
    negative binomial per class with its rate per UMI (half a UMI added to each class's sum, so that T
    cells with none read give a finite ratio) and a method-of-moments dispersion, learnt from the read T
    cells and the NK cells. 0 where either class has fewer than 20 cells or NK cells have no more of them.
    """
    y = np.asarray(counts, dtype=np.float64)
    if read_t.sum() < MIN_IDENTITY_CELLS or nk_ref.sum() < MIN_IDENTITY_CELLS:
        return 0.0
    d_t, d_nk = depth[read_t].sum(), depth[nk_ref].sum()
    if not y[nk_ref].sum() / d_nk > y[read_t].sum() / d_t:
        return 0.0
    r_t, r_nk = (y[read_t].sum() + 0.5) / d_t, (y[nk_ref].sum() + 0.5) / d_nk
    return _nb_class_llr(y, depth, read_t, r_t, nk_ref, r_nk)


# Cells of each class (the tumour lineage's, the other lineages') needed to learn the identity rates.
MIN_LINEAGE_IDENTITY_CELLS = 20


def lineage_identity(
    own_counts: np.ndarray,
    total: np.ndarray,
    tumour_ref: np.ndarray,
    other_ref: np.ndarray,
) -> np.ndarray | None:
    """Per cell: log-likelihood ratio that it is of the tumour lineage, not of another lineage, from its
    UMIs of the lineage's specific transcripts (``Lineage.specific``, e.g. the immunoglobulin and
    plasma-cell genes of myeloma) at its depth.

    Each class's counts are a negative binomial at the cell's depth with the class's rate per UMI and a
    method-of-moments dispersion, learnt from ``tumour_ref`` (cells of the tumour lineage by their own
    markers and their neighbourhood's) and ``other_ref`` (cells of other lineages by both: their rate is
    the ambient one). The neighbourhood's lineage of a shallow cell is its neighbours' (an NK cell among
    shallow myeloma cells takes the plasma lineage); this ratio is the cell's own. ``None`` when either
    class has fewer than 20 cells or the tumour lineage's rate is not higher.
    """
    rates = _class_rates(own_counts, total, tumour_ref, other_ref, MIN_LINEAGE_IDENTITY_CELLS)
    if rates is None:
        return None
    y, d, r_t, r_o = rates
    return _nb_class_llr(y, d, tumour_ref, r_t, other_ref, r_o)


def _nb_class_llr(
    y: np.ndarray,
    depth: np.ndarray,
    one: np.ndarray,
    r_one: float,
    other: np.ndarray,
    r_other: float,
) -> np.ndarray:
    """``log NB(y | r_one · depth) − log NB(y | r_other · depth)`` per cell, each class's dispersion
    estimated by the method of moments from its own cells (``one``, ``other``) about those means."""
    phi_one = dispersion(y[one], r_one * depth[one])
    phi_other = dispersion(y[other], r_other * depth[other])
    return log_nb(y, r_one * depth, phi_one) - log_nb(y, r_other * depth, phi_other)


def _class_rates(
    counts: np.ndarray, total: np.ndarray, ref: np.ndarray, other: np.ndarray, min_cells: int
) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    """``(counts, depths ≥ 1, rate per UMI of ref cells, of other cells ≥ 1e-6)`` as floats, or ``None``
    when either class has fewer than ``min_cells`` cells or ``ref``'s rate is not the higher."""
    if ref.sum() < min_cells or other.sum() < min_cells:
        return None
    y = np.asarray(counts, dtype=np.float64)
    d = np.maximum(np.asarray(total, dtype=np.float64), 1.0)
    r_ref = y[ref].sum() / d[ref].sum()
    r_other = max(y[other].sum() / d[other].sum(), 1e-6)
    if not r_ref > r_other:
        return None
    return y, d, float(r_ref), float(r_other)
