"""Copy-number states the relapse carries more (or less) than the baseline, and each cell's evidence of them.

A negative subclone that grew from a few baseline cells often carries a change of its own (a further loss
of a chromosome arm). Pooled, the relapse then departs from the baseline over that segment, and each
malignant cell's counts there say whether it carries it: an antigen-free clone link that does not depend on
the transcriptome, and the one a small subclone whose expression overlaps the main clone still has.

The relapse's state is found from the timepoints alone (all relapse malignant cells against all baseline
malignant cells; the antigen never defines the groups): genomic windows whose median log expression moves
(:meth:`~._map_relapse.GenomicWindows.change`), consecutive ones of one sign joined, kept where the
segment's genes as a whole shift against the rest of the genome (a one-sided rank-sum of per-gene log
ratios, as :func:`~cd7escape.tl._malignant._copy_number_llr.segment_count_llr` tests a clone's regions).

A subclone's phenotype moves windows too: where genes of one program cluster (HLA on 6p, the dense
clusters of chr19), a window's median moves as much as a loss carried by part of the relapse does. A
window alone must therefore stand out by 5 robust s.d.; a run of windows that all move by 3, none by 5,
is a segment when it spans ``WIDE_BP`` of the genome, since a program's gene cluster spans a few Mb and a
copy-number change readable from expression spans an arm or much of one.

Each cell's counts in the segment are then a two-class negative-binomial mixture (carrier or not, shares
per timepoint) fit by EM: the per-cell log-likelihood ratio of carrying the state is what the trace uses
(:func:`~._trace.density_ratio`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ._map_relapse import (
    WINDOW_MIN_SHIFT,
    WINDOW_SD,
    GenomicWindows,
    window_medians,
    windows_beyond,
)

MIN_CELLS = 20  # malignant cells of each timepoint for a relapse state to be looked for
MAX_GAP = 1  # changed windows this many apart (in window steps) belong to one segment
SHIFT_ALPHA = 0.01  # one-sided rank-sum test of the segment's genes against the rest of the genome
MIN_LOG2 = (
    0.35  # carriers' rate against the others', in log2 (one copy of two lost: -1; gained: +0.58)
)
WIDE_BP = 20e6  # a run of windows at least this wide (first to last gene) is read at the lower bar:
WIDE_SD = (
    3.0  # ... robust s.d. of all windows that each of its windows moves (one alone: WINDOW_SD)
)
WIDE_MIN_SHIFT = 0.04  # ... and least shift, in log units (one alone: WINDOW_MIN_SHIFT)
STATE_COLUMNS = [
    "chromosome", "start", "end", "first_window", "last_window", "sign", "window_shift", "n_genes",
    "gene_shift", "shift_pvalue", "rate_ratio", "baseline_share", "relapse_share",
]  # fmt: skip


def relapse_copy_number(
    win: GenomicWindows,
    xb,
    xr,
    *,
    max_iter: int = 200,
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Segments where the relapse's copy number departs from the baseline's, and every cell's evidence.

    Parameters
    ----------
    win
        Genomic windows over the baseline cells, then the relapse cells (the rows of ``xb`` then ``xr``),
        with the placed genes' columns (``win.genes``).
    xb, xr
        Raw counts of the baseline and the relapse malignant cells, cells × all genes.
    max_iter
        EM iterations per segment at most.

    Returns
    -------
    One dict per state kept (chromosome; start and end, the first and last gene's start; first and last
    window, sign, window shift, n_genes, gene_shift,
    shift_pvalue, rate_ratio of carriers to the others, carrier share at baseline and at relapse) and the
    per-cell log-likelihood ratios of carrying each (rows: the baseline cells, then the relapse cells;
    columns: the states).
    """
    from .._malignant._copy_number_llr import gene_log_ratios, region_shift

    nb, nr = xb.shape[0], xr.shape[0]
    none = np.zeros((nb + nr, 0))
    if win.genes is None or nb < MIN_CELLS or nr < MIN_CELLS:
        return [], none
    # the windows' medians once; the two bars (a run, a window alone) and the segments' shifts read them
    stat, spread = window_medians(
        win.mean(np.arange(nb)), win.mean(nb + np.arange(nr)), win.windows
    )
    changed = windows_beyond(stat, spread, min_shift=WIDE_MIN_SHIFT, n_sd=WIDE_SD)
    if not changed:
        return [], none
    strong = set(windows_beyond(stat, spread, min_shift=WINDOW_MIN_SHIFT, n_sd=WINDOW_SD))
    segments = _segments(win, changed, strong, stat)
    xb, xr = sp.csr_matrix(xb), sp.csr_matrix(xr)
    total = np.r_[_row_sums(xb), _row_sums(xr)]
    is_b = np.r_[np.ones(nb, bool), np.zeros(nr, bool)]
    # per-gene log ratios, relapse against baseline, for the segments' shift test
    placed = win.genes
    gene_b = np.asarray(xb.sum(axis=0)).ravel()[placed]
    gene_r = np.asarray(xr.sum(axis=0)).ravel()[placed]
    ratio = gene_log_ratios(
        gene_r, gene_b, max(total[~is_b].sum(), 1.0), max(total[is_b].sum(), 1.0)
    )
    in_any = np.zeros(placed.size, bool)
    for _, members in segments:
        for i in members:
            in_any[win.windows[i]] = True
    states, llrs = [], []
    for sign, members in segments:
        pos = np.unique(np.concatenate([win.windows[i] for i in members]))
        shift, pvalue = region_shift(ratio[pos], ratio[~in_any], sign)
        row: dict[str, Any] = {
            "chromosome": win.names[members[0]].split(":")[0],
            "start": int(win.starts[pos[0]]) if win.starts is not None else -1,
            "end": int(win.starts[pos[-1]]) if win.starts is not None else -1,
            "first_window": win.names[members[0]],
            "last_window": win.names[members[-1]],
            "sign": int(sign),
            "window_shift": float(np.mean(stat[members])),
            "n_genes": int(pos.size),
            "gene_shift": shift,
            "shift_pvalue": pvalue,
        }
        # a window median moved by a few genes of a phenotype (HLA on 6p, a cytotoxic cluster) is not a
        # change of copy number: the segment's genes as a whole must move
        if not pvalue < SHIFT_ALPHA:
            continue
        cols = placed[pos]
        y = np.r_[_row_sums(xb[:, cols]), _row_sums(xr[:, cols])]
        fit = _carrier_mixture(y, total, is_b, sign, max_iter=max_iter)
        if fit is None:
            continue
        llr, rate_ratio, share_b, share_r = fit
        row.update(rate_ratio=rate_ratio, baseline_share=share_b, relapse_share=share_r)
        # the relapse's state is carried by more relapse cells than baseline cells, and moves the carriers'
        # rate as a copy-number change would
        if abs(np.log2(rate_ratio)) < MIN_LOG2 or share_r <= share_b:
            continue
        states.append(row)
        llrs.append(llr)
    return states, (np.column_stack(llrs) if llrs else none)


def _row_sums(x) -> np.ndarray:
    return np.asarray(x.sum(axis=1)).ravel().astype(np.float64)


def _segments(
    win: GenomicWindows, changed: list[int], strong: set[int], stat: np.ndarray
) -> list[tuple[int, list[int]]]:
    """The changed windows joined into segments. Where a segment holds windows that stand out alone
    (``strong``), those are the segment (joined again): they place the change more sharply than the run at
    the lower bar, whose ends take in windows the change only partly covers (17p's run reaches into 17q).
    Otherwise the whole run is kept when it spans ``WIDE_BP``."""
    chrom = [n.split(":")[0] for n in win.names]
    out: list[tuple[int, list[int]]] = []
    for sign, members in _join(changed, stat, chrom):
        kept = [i for i in members if i in strong]
        if kept:
            out.extend(_join(kept, stat, chrom))
        elif win.starts is not None:
            first, last = win.windows[members[0]], win.windows[members[-1]]
            if win.starts[last].max() - win.starts[first].min() >= WIDE_BP:
                out.append((sign, members))
    return out


def _join(changed: list[int], stat: np.ndarray, chrom: list[str]) -> list[tuple[int, list[int]]]:
    """Changed windows joined into segments: consecutive (up to ``MAX_GAP`` apart), one chromosome, one sign."""
    out: list[tuple[int, list[int]]] = []
    for i in changed:
        sign = int(np.sign(stat[i]))
        if (
            out
            and out[-1][0] == sign
            and chrom[out[-1][1][-1]] == chrom[i]
            and i - out[-1][1][-1] <= MAX_GAP + 1
        ):
            out[-1][1].append(i)
        else:
            out.append((sign, [i]))
    return out


def _carrier_mixture(
    y: np.ndarray, total: np.ndarray, is_b: np.ndarray, sign: int, *, max_iter: int
) -> tuple[np.ndarray, float, float, float] | None:
    """EM of a two-class NB mixture of a segment's counts: carriers (rate ``p1``) and the others (``p0``),
    the carrier share per timepoint. Returns the per-cell log-likelihood ratio at the fitted rates, the rate
    ratio and the two shares; None when a class empties."""
    from .._malignant._negative_binomial import dispersion, nb_llr

    ok = total > 0
    depth = np.maximum(total, 1.0)  # cells without counts read as no evidence (llr 0)
    p0 = y[is_b & ok].sum() / max(total[is_b & ok].sum(), 1.0)
    if p0 <= 0:
        return None
    # start from the baseline as non-carriers and the change a copy lost or gained
    p1 = p0 * (0.5 if sign < 0 else 1.5)
    share = np.array([0.1, 0.5])  # baseline, relapse
    phi = dispersion(y[is_b & ok], p0 * total[is_b & ok])
    tp = (~is_b).astype(int)
    for _ in range(max_iter):
        llr = nb_llr(y, p1 * depth, p0 * depth, phi)
        prior = share[tp]
        post = 1.0 / (1.0 + np.exp(-np.clip(llr + np.log(prior / (1.0 - prior)), -30.0, 30.0)))
        post = np.where(ok, post, prior)
        w1, w0 = (post * total)[ok].sum(), ((1.0 - post) * total)[ok].sum()
        if w1 <= 0 or w0 <= 0:
            return None
        new_p1, new_p0 = (post * y)[ok].sum() / w1, ((1.0 - post) * y)[ok].sum() / w0
        new_share = np.clip([post[is_b].mean(), post[~is_b].mean()], 1e-3, 1 - 1e-3)
        done = (
            abs(new_p1 / p1 - 1) < 1e-8
            and abs(new_p0 / p0 - 1) < 1e-8
            and np.abs(new_share - share).max() < 1e-6
        )
        p1, p0, share = new_p1, new_p0, new_share
        if done or p1 <= 0 or p0 <= 0:
            break
    if p1 <= 0 or p0 <= 0:
        return None
    llr = np.where(ok, nb_llr(y, p1 * depth, p0 * depth, phi), 0.0)
    return llr, float(p1 / p0), float(share[0]), float(share[1])
