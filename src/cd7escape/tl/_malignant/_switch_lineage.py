"""Blasts that switched lineage at relapse and whose receptor was not read, by their own copy number.

For :func:`cd7escape.tl.call_malignant`. A B-ALL or myeloma relapse may switch to the myeloid lineage
(``Lineage.switch_to``): its blasts keep the leukemia's genome (copy-number changes, the rearranged receptor
locus) but take the new lineage's expression, and their receptor transcripts are read in fewer of them
than in the original blasts, while the normal cells of that lineage have no receptor to read. The clonal
make-up of the read cells of a cluster therefore says nothing about its unread cells, and a cluster's
mean evidence drags a cluster of switched blasts towards its unread majority. Instead, as for T cells
whose TCR was not read, each unread cell of the switch lineage weighs its own copy number (a likelihood
ratio of kernel density estimates of ``infer_cnv``'s own score, learnt from switched cells whose leukemic
receptor was read, or else from the tumour-lineage blasts, against that lineage's copy-number reference
cells), and the share of blasts among the unread cells of its cluster and sample is learnt by EM from
those ratios (:func:`~._copy_number_llr.mixture_prior`): a cluster of normal myeloid cells keeps a share
near the floor, a cluster of switched blasts learns its own.
"""

from __future__ import annotations

import numpy as np

from ._cnv import MIN_LLR_CELLS
from ._copy_number_llr import PRIOR_BOUNDS, PRIOR_CELLS, mixture_prior

KERNEL_POINTS = 1000  # quantiles of a class standing for it in the kernel estimate
# A cell's own ratio rests on one projection of its unsmoothed profile, whose tails are heavy (in a
# cluster of normal myeloid cells a few reach the switched blasts' z): bounded to half the range of a
# cluster's share (log-odds ±3.9), it moves a cluster that is clearly one or the other by at most half way
# and decides within clusters that mix both
OWN_CLIP = 0.5 * float(np.log(PRIOR_BOUNDS[1] / PRIOR_BOUNDS[0]))


def switched_unread_logodds(
    own_score: np.ndarray,
    switch_lineage: np.ndarray,
    reference: np.ndarray,
    tcr: np.ndarray,
    tumour_blasts: np.ndarray,
    *,
    clusters: np.ndarray | None,
    samples: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Log-odds of malignancy of the unread cells of the switch lineage, or ``None``.

    Parameters
    ----------
    own_score
        Each cell's own (unsmoothed) copy-number projection on the leukemic profile, a robust z against
        held-out reference cells (``infer_cnv``'s ``own_score``).
    switch_lineage
        Cells of the lineage the tumour may switch to (no CAR).
    reference
        Copy-number reference (or held-out null) cells of that lineage: a normal genome.
    tcr
        Receptor evidence per cell: +1 the leukemic clonotype, -1 another, 0 none read.
    tumour_blasts
        Clear blasts of the tumour's own lineage, the leukemic class where fewer than ``MIN_LLR_CELLS``
        switched cells carry the leukemic receptor.
    clusters, samples
        Leiden cluster and sample per cell: the levels of the blast share.

    Returns
    -------
    ``(cells, logodds, learnt_from)``: the unread switch-lineage cells, their log-odds (prior share plus
    own ratio; NaN elsewhere) and which cells taught the leukemic class (``'switched_receptor'`` or
    ``'tumour_blasts'``); ``None`` when no ratio can be learnt.
    """
    read_switched = switch_lineage & (tcr > 0)
    if read_switched.sum() >= MIN_LLR_CELLS:
        leukemic, learnt_from = read_switched, "switched_receptor"
    else:
        leukemic, learnt_from = tumour_blasts, "tumour_blasts"
    cells = switch_lineage & (tcr == 0)
    if clusters is not None:
        # a share is learnt where a cluster holds enough cells of the lineage; a few of them in another
        # lineage's cluster would take the share of all such cells (the switched blasts') and be decided
        # on their own ratio alone: they keep their neighbourhood's evidence
        labels, inverse = np.unique(np.asarray(clusters).astype(str), return_inverse=True)
        held = np.bincount(inverse[switch_lineage], minlength=labels.size)
        cells &= held[inverse] >= PRIOR_CELLS
    if not cells.any():
        return None
    normal = switch_lineage & reference & (tcr <= 0)
    llr = _kernel_llr(own_score, leukemic, normal, cells)
    if llr is None:
        return None
    own = np.clip(llr, -OWN_CLIP, OWN_CLIP)
    if learnt_from == "switched_receptor":
        prior = mixture_prior(own, cells, clusters, samples)
    else:
        prior = _share_beyond_normal(own_score, normal, cells, clusters)
    return cells, np.where(cells, prior + own, np.nan), learnt_from


# Storey's lambda: p-values above it are counted as normal cells' (uniform there)
STOREY_LAMBDA = 0.5


def _share_beyond_normal(
    score: np.ndarray, normal: np.ndarray, cells: np.ndarray, clusters: np.ndarray | None
) -> np.ndarray:
    """Per cell of ``cells``: log-odds of the share of blasts among its cluster's ``cells``, learnt from
    the normal cells' scores alone.

    Learnt from the tumour's own blasts, the leukemic class is shifted by their lineage's expression: the
    switched blasts score between it and the normal cells, and a mixture of the two classes gives a pure
    cluster of them too low a share (a myeloma switch without a read receptor: 0.39 for a cluster of 500
    switched blasts, 315 of them missed). Here each cell's upper-tail p-value under the normal cells' scores
    is uniform for normal cells, so the share of normal cells in a cluster is at most
    ``#{p > λ} / ((1 − λ) n)`` (Storey 2002, λ = 0.5) and the blasts' share is the rest, whatever their
    score's shape: a cluster of normal cells keeps a share near the floor, one of switched blasts its own.
    Shrunk towards the share over all ``cells`` by ``PRIOR_CELLS`` pseudo-cells, within ``PRIOR_BOUNDS``.
    """
    out = np.full(score.size, np.nan)
    ref = np.sort(score[normal & np.isfinite(score)])
    p = 1.0 - np.searchsorted(ref, np.nan_to_num(score, nan=-np.inf), side="left") / ref.size
    high = p > STOREY_LAMBDA

    def share(members: np.ndarray) -> float:
        return 1.0 - min(1.0, high[members].sum() / ((1.0 - STOREY_LAMBDA) * members.sum()))

    overall = share(cells)
    groups = np.asarray(clusters).astype(str) if clusters is not None else np.zeros(score.size, str)
    for g in np.unique(groups[cells]):
        members = cells & (groups == g)
        n = members.sum()
        s = np.clip((n * share(members) + PRIOR_CELLS * overall) / (n + PRIOR_CELLS), *PRIOR_BOUNDS)
        out[members] = np.log(s / (1.0 - s))
    return out


def _kernel_llr(
    score: np.ndarray, one: np.ndarray, other: np.ndarray, at: np.ndarray
) -> np.ndarray | None:
    """log f1(x) − log f0(x) of each cell's ``score``, the two densities Gaussian kernel estimates from the
    cells of ``one`` and ``other`` (Silverman's bandwidth), each mixed with 2 % of a normal three times as
    wide so that no score is impossible under either. Unlike a normal model, the kernel keeps the normal
    cells' heavy tail (a few reach the switched blasts' scores), so that a cluster of normal cells does
    not learn a share of blasts from it. Computed for the cells of ``at`` only (0 elsewhere and for cells
    without a score); ``None`` when either class has fewer than ``MIN_LLR_CELLS`` scored cells or ``one``
    does not score higher."""
    ok = np.isfinite(score)
    a, b = score[one & ok], score[other & ok]
    if a.size < MIN_LLR_CELLS or b.size < MIN_LLR_CELLS or not np.median(a) > np.median(b):
        return None
    out = np.zeros(score.size)
    rows = np.flatnonzero(ok & at)
    out[rows] = _log_density(score[rows], a) - _log_density(score[rows], b)
    return out


def _log_density(x: np.ndarray, sample: np.ndarray) -> np.ndarray:
    sd = max(float(np.std(sample)), 1e-6)
    h = 1.06 * sd * sample.size ** (-0.2)
    if sample.size > KERNEL_POINTS:  # its quantiles stand for a large class (memory, time)
        sample = np.quantile(sample, (np.arange(KERNEL_POINTS) + 0.5) / KERNEL_POINTS)
    kernel = np.empty(x.size)
    for i in range(0, x.size, 4096):
        d = (x[i : i + 4096, None] - sample[None, :]) / h
        kernel[i : i + 4096] = np.exp(-0.5 * d**2).mean(axis=1) / h
    wide = np.exp(-0.5 * ((x - np.median(sample)) / (3 * sd)) ** 2) / (3 * sd)
    # both densities lack the same 1/sqrt(2 pi), which cancels in the ratio
    return np.log(0.98 * kernel + 0.02 * wide + 1e-300)
