"""A cell's own copy number in the leukemic segments, as a likelihood ratio of its counts.

For :func:`cd7escape.tl.call_malignant`, where a leukemic clonotype carries a copy-number change
(:func:`~cd7escape.tl._malignant._cnv.clone_copy_number`): the leukemic blasts whose TCR was not read carry
the same change. Per altered region, the counts of a cell in its expressed genes are, at the cell's depth,
those of the leukemic clonotype's cells (rate ``p1``) or those of T cells of a normal genome (rate ``p0``:
T cells with another productive clonotype, and CAR-T cells); a negative binomial with one dispersion per
region, learnt from both classes, makes the log-likelihood ratio of the two (:func:`segment_count_llr`).
Unlike a z of the cell's log ratio, it weighs a deep cell more than a shallow one, and a region by how much
it changes.

Which share of the T cells whose TCR was not read are blasts is not the share among those whose TCR was
read (VDJ capture differs between blasts and normal T cells, between samples): it is learnt from the
unread cells' own likelihood ratios, per Leiden cluster, shrunk towards all unread cells'
(:func:`mixture_prior`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._cnv import select_genes
from ._negative_binomial import dispersion, nb_llr

MIN_CLASS_CELLS = 30  # cells of each class (leukemic clonotype, normal genome) to learn the rates
MIN_REGION_UMIS = 200  # UMIs of a region summed over each class's cells for the region to be used
PRIOR_CELLS = 20.0  # pseudo-cells of the all-unread share shrinking a cluster's share
PRIOR_BOUNDS = (0.02, 0.98)  # a share of blasts among unread T cells is never taken as certain
TRUNK_SHARE = (
    0.8  # share of the leukemic clonotype's cells carrying a region's change for it to count
)
CLUSTER_TRUNK_SHARE = 0.5  # ... and of them in each Leiden cluster holding >= 30 of them
CLUSTER_PSEUDO_UMIS = 200.0  # a cluster's leukemic rate of a region is shrunk by this many UMIs
MIN_GENE_UMIS = (
    20  # a gene's UMIs, both classes summed, for its own ratio to count in the shift test
)
MIN_SHIFT_GENES = (
    5  # genes with a ratio, in the region and outside every region, for the shift test
)
# shares of a passing segment's genes cut from either end, each cut tried as a region too
TRIM_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5)
SHIFT_ALPHA = 0.01  # one-sided rank-sum test of the region's genes against the rest of the genome


def segment_groups(
    segments: pd.DataFrame,
) -> list[tuple[tuple[str, int, int, int], list[tuple[str, int, int, int]]]]:
    """Overlapping segments of one sign (across clonotypes) grouped: each group's union and its distinct
    member segments, widest first; each as (chromosome, start, end, sign)."""
    out: list = []
    if segments is None or len(segments) == 0:
        return out
    frame = segments.assign(sign=np.sign(segments["log2_ratio"]).astype(int))
    for (chrom, sign), part in frame.groupby(["chromosome", "sign"], sort=True):
        part = part.sort_values("start")
        group: list[tuple[int, int]] = []
        end = -1
        for s, e in zip(part["start"].astype(int), part["end"].astype(int), strict=True):
            if group and s > end:
                out.append(_group(str(chrom), int(sign), group))
                group = []
            end = max(end, e) if group else e
            group.append((s, e))
        if group:
            out.append(_group(str(chrom), int(sign), group))
    return out


def _group(chrom: str, sign: int, members: list[tuple[int, int]]):
    union = (chrom, min(m[0] for m in members), max(m[1] for m in members), sign)
    distinct = sorted(set(members), key=lambda m: (m[0] - m[1], m[0]))
    return union, [(chrom, s, e, sign) for s, e in distinct]


def segment_count_llr(
    counts: sp.csr_matrix,
    total: np.ndarray,
    var: pd.DataFrame,
    pos: pd.DataFrame,
    segments: pd.DataFrame,
    leukemic: np.ndarray,
    normal: np.ndarray,
    *,
    clusters: np.ndarray | None = None,
    other_normal: np.ndarray | None = None,
    antigen: str,
) -> tuple[np.ndarray | None, list[dict]]:
    """Per cell: log-likelihood ratio, leukemic vs normal genome, of its counts in the altered regions.

    Parameters
    ----------
    counts
        Raw counts, cells × all genes.
    total
        Library size per cell (without the antigen and the CAR).
    var, pos
        ``var`` indexed by gene name and the genes' positions (:func:`~._cnv.positions_for`).
    segments
        Altered segments of the leukemic clonotypes (``chromosome``, ``start``, ``end``, ``log2_ratio``);
        overlapping ones of one sign form a group, used as one region (see Returns).
    leukemic, normal
        Cells of the leukemic clonotype(s), and T cells of a normal genome (another productive clonotype,
        CAR-T cells): the rates of each region are learnt from them.
    clusters
        Leiden cluster per cell: each class's rate per cluster (shrunk towards its overall rate).
    other_normal
        Further cells of a normal genome (NK cells without a TCR), for the normal rate per cluster only.
    antigen
        Never among the genes.

    Returns
    -------
    The per-cell ratio (natural log; summed over the regions whose rates differ in the segment's
    direction and hold ≥ 200 UMIs in each class), or ``None`` when a class has fewer than 30 cells or no
    region qualifies; and one dict per region tried (chromosome, start, end, sign, n_genes, rate_ratio,
    leukemic_share, min_cluster_share, dispersion, gene_shift, shift_pvalue, class_gap, used). A region
    passes when its genes as a whole shift against the rest of the genome, ≥ 80 % of the clonotype's
    cells carry it and, in every Leiden cluster holding ≥ 30 of them, most do. Of overlapping segments
    of one sign (:func:`segment_groups`) the union and each segment are tried (the union first, then
    widest first), and each that passes is tried again with ``TRIM_FRACTIONS`` of its genes cut from
    either end; of those that pass, the one with the largest ``class_gap`` (mean ratio of the
    clonotype's cells minus that of the normal genome's) is used for the group, the earlier on a tie.
    """
    info: list[dict] = []
    if leukemic.sum() < MIN_CLASS_CELLS or normal.sum() < MIN_CLASS_CELLS:
        return None, info
    groups = segment_groups(segments)
    if not groups:
        return None, info
    regions = [union for union, _ in groups]
    mean_counts = np.asarray(counts.sum(axis=0)).ravel() / max(counts.shape[0], 1)
    genes = select_genes(var, pos, mean_counts, antigen, max_genes=None)
    chrom = pos["chromosome"].to_numpy()[genes].astype(str)
    start = pd.to_numeric(pos["start"].iloc[genes]).to_numpy()
    x = sp.csr_matrix(counts)

    def within(region: tuple[str, int, int, int]) -> np.ndarray:
        c, s, e, _ = region
        return (chrom == c) & (start >= s) & (start <= e)

    def trimmed(region: tuple[str, int, int, int]) -> list[tuple[str, int, int, int]]:
        """The region with each of ``TRIM_FRACTIONS`` of its genes cut from its end, then from its start
        (a cut of at most half its genes always leaves some)."""
        c, s, e, sign = region
        at = np.sort(start[within(region)])
        cut = sorted({round(f * at.size) for f in TRIM_FRACTIONS} - {0})
        return [(c, s, int(at[-k - 1]), sign) for k in cut] + [
            (c, int(at[k]), e, sign) for k in cut
        ]

    inside = [within(r) for r in regions]
    # a gene in a lost and a gained region (of different clonotypes) is left out of both
    lost = np.any([m for m, r in zip(inside, regions, strict=True) if r[3] < 0] or [False], axis=0)
    gained = np.any(
        [m for m, r in zip(inside, regions, strict=True) if r[3] > 0] or [False], axis=0
    )
    ambiguous = lost & gained
    gene_ratio = gene_log_ratios(
        np.asarray(x[leukemic].sum(axis=0)).ravel()[genes],
        np.asarray(x[normal].sum(axis=0)).ravel()[genes],
        max(total[leukemic].sum(), 1.0),
        max(total[normal].sum(), 1.0),
    )
    outside = ~np.any(inside, axis=0)
    base = normal if other_normal is None else (normal | other_normal)

    def region_llr(
        region: tuple[str, int, int, int], block: sp.csc_matrix, in_block: np.ndarray
    ) -> tuple[dict, np.ndarray | None]:
        """The region's row of ``info`` and, where it passes, its per-cell ratio; its counts are read from
        ``block``, the columns of the genes ``in_block`` (a region within the group's union)."""
        c, s, e, sign = region
        mask = within(region) & ~ambiguous
        n_genes = int(mask.sum())
        row = {"chromosome": c, "start": s, "end": e, "sign": sign, "n_genes": n_genes}
        row.update(rate_ratio=np.nan, leukemic_share=np.nan, min_cluster_share=np.nan)
        row.update(dispersion=np.nan, gene_shift=np.nan, shift_pvalue=np.nan, class_gap=np.nan)
        row["used"] = False
        if n_genes == 0:
            return row, None
        y = np.asarray(block[:, mask[in_block]].sum(axis=1)).ravel().astype(np.float64)
        y1, y0 = y[leukemic].sum(), y[normal].sum()
        if min(y1, y0) < MIN_REGION_UMIS:
            return row, None
        p1 = y1 / max(total[leukemic].sum(), 1.0)
        p0 = y0 / max(total[normal].sum(), 1.0)
        ratio = p1 / p0
        row["rate_ratio"] = float(ratio)
        # the region counts only where the leukemic cells differ in the direction of the change
        if np.sign(np.log(ratio)) != sign:
            return row, None
        # A copy-number change scales every gene of the region; a difference of phenotype between the
        # clonotype's cells and the normal T cells (ribosomal, cytotoxic transcripts: CCL5 on 17q, NKG7
        # on 19q) moves a few highly expressed ones, and reads as a loss in any cell that lacks them (a
        # shallow cell, a cell of another lineage). The region counts only where its genes as a whole sit
        # beyond the rest of the genome's, whose own spread is that of the phenotypes.
        shift, pvalue = region_shift(gene_ratio[mask], gene_ratio[outside], sign)
        row.update(gene_shift=shift, shift_pvalue=pvalue)
        if not pvalue < SHIFT_ALPHA:
            return row, None
        # Rates per Leiden cluster: a region's genes are expressed at a level of the cells' phenotype, not
        # only of their copy number (11q and 12p hold lineage and activation genes). Each class's rate of a
        # cluster is its pooled counts there, with 200 UMIs of its overall rate; the normal genome's are of
        # T cells of a normal genome and of NK cells without a TCR (``other_normal``), so that a cytotoxic
        # or NK-like cell is compared with cells like it.
        p1_cell = np.full(counts.shape[0], p1)
        p0_cell = np.full(counts.shape[0], p0)
        if clusters is not None:
            for c_ in pd.unique(clusters[leukemic | base]):
                members = clusters == c_
                y_c, t_c = y[members & leukemic].sum(), total[members & leukemic].sum()
                p1_cell[members] = (y_c + CLUSTER_PSEUDO_UMIS) / (t_c + CLUSTER_PSEUDO_UMIS / p1)
                y_c, t_c = y[members & base].sum(), total[members & base].sum()
                p0_cell[members] = (y_c + CLUSTER_PSEUDO_UMIS) / (t_c + CLUSTER_PSEUDO_UMIS / p0)
        mu1 = p1_cell * total
        mu0 = p0_cell * total
        phi = dispersion(y[normal], mu0[normal])
        # a cluster where the two rates do not differ in the change's direction is told nothing by it
        ok = (total > 0) & (sign * np.log(p1_cell / p0_cell) > 0)
        lr = np.zeros(counts.shape[0])
        lr[ok] = nb_llr(y[ok], mu1[ok], mu0[ok], phi)
        # A change carried by a share of the leukemic clonotype's cells only (a subclone's; or a region
        # where expression, not copy number, differs) does not tell blasts from normal T cells: a blast
        # without it is a blast. Only the trunk's regions count.
        share = mixture_share(lr[leukemic & ok], 0.5, 0.0, 0.5, bounds=(0.0, 1.0))
        # ... and in every Leiden cluster holding >= 30 of the clonotype's cells, most of them carry it
        # (judged with the overall rates: a cluster's own would make a subclone's cluster carry its
        # change by construction); a subclone's change, however many cells it has at relapse, or a
        # phenotype's expression, is absent from some of them
        cluster_share = share
        if clusters is not None:
            lr_all = nb_llr(y, p1 * total, p0 * total, phi)
            for c_ in pd.unique(clusters[leukemic]):
                cells = leukemic & (clusters == c_) & (total > 0)
                if cells.sum() >= MIN_CLASS_CELLS:
                    cluster_share = min(
                        cluster_share,
                        mixture_share(lr_all[cells], 0.5, 0.0, 0.5, bounds=(0.0, 1.0)),
                    )
        row.update(dispersion=phi, leukemic_share=share, min_cluster_share=cluster_share)
        if share < TRUNK_SHARE or cluster_share < CLUSTER_TRUNK_SHARE:
            return row, None
        row["class_gap"] = float(lr[leukemic].mean() - lr[normal].mean())
        return row, lr

    def group_llr(union: tuple[str, int, int, int], members: list) -> np.ndarray | None:
        """The ratio of the group's region that passes and tells the classes apart best (its row of
        ``info`` marked used), or ``None`` when none passes."""
        # Clonotypes of one clone (read with fewer chains, another TRA) find one change with different
        # ends: a block of genes that straddles its edge (80 genes reach across a centromere) carries it
        # into unaltered genes. The union then dilutes the change (half of its genes unaltered: a rate
        # ratio of 0.87 where the change's own is 0.5) and a narrower member leaves some of it out. Of the
        # union and its members that pass, the region used is the one whose ratio tells the two classes
        # apart best: the largest gap between the mean ratio of the clonotype's cells and that of the
        # normal genome's (each cell at its own depth), the widest on a tie.
        # The segments' ends themselves are those of gene blocks: a segment that passes is also tried with
        # a tenth to a half of its genes cut from either end, so that a change's edge within a block is
        # found too (a refinement of a change found, never a new one: only passing segments are cut).
        # Every candidate lies within the union: its genes' counts are sliced from the matrix once.
        in_block = within(union) & ~ambiguous
        block = x[:, genes[in_block]].tocsc()
        passed: list[tuple[int, np.ndarray]] = []  # (row of info, ratio)

        def consider(region: tuple[str, int, int, int]) -> bool:
            row, lr = region_llr(region, block, in_block)
            info.append(row)
            if lr is not None:
                passed.append((len(info) - 1, lr))
            return lr is not None

        found = [union] + [m for m in members if m != union]
        cuts = []
        for region in found:
            if consider(region):
                cuts += trimmed(region)
        for region in dict.fromkeys(cuts):
            if region not in found:
                consider(region)
        if not passed:
            return None
        best, lr = max(passed, key=lambda p: (info[p[0]]["class_gap"], -p[0]))
        for i, _ in passed:
            info[i]["used"] = i == best
        return lr

    ratios = [lr for union, members in groups if (lr := group_llr(union, members)) is not None]
    llr = np.sum(ratios, axis=0) if ratios else None
    return llr, info


def gene_log_ratios(
    gene_1: np.ndarray, gene_0: np.ndarray, depth_1: float, depth_0: float
) -> np.ndarray:
    """Per gene, the log ratio of the leukemic clonotype's rate to the normal genome's (half a UMI added to
    each class), NaN where both classes together hold fewer than ``MIN_GENE_UMIS`` UMIs."""
    ratio = np.log((gene_1 + 0.5) / depth_1) - np.log((gene_0 + 0.5) / depth_0)
    return np.where(gene_1 + gene_0 >= MIN_GENE_UMIS, ratio, np.nan)


def region_shift(region: np.ndarray, rest: np.ndarray, sign: int) -> tuple[float, float]:
    """Median log ratio of a region's genes minus that of the genes outside every region, and the one-sided
    rank-sum p-value that the region's genes sit beyond the rest in the change's direction (``sign``); a
    p-value of 1 where either side has fewer than 5 genes."""
    from scipy import stats

    region, rest = region[np.isfinite(region)], rest[np.isfinite(rest)]
    if region.size < MIN_SHIFT_GENES or rest.size < MIN_SHIFT_GENES:
        return float("nan"), 1.0
    shift = float(np.median(region) - np.median(rest))
    side = "less" if sign < 0 else "greater"
    return shift, float(stats.mannwhitneyu(region, rest, alternative=side).pvalue)


def mixture_share(
    llr: np.ndarray,
    prior: float,
    weight: float,
    start: float,
    *,
    bounds: tuple[float, float] = (0.02, 0.98),
    t: np.ndarray | None = None,
    copies: np.ndarray | None = None,
    tol: float = 1e-6,
    max_iter: int = 200,
) -> float:
    """EM for the share of cells of the first kind given each cell's likelihood ratio (a Beta-like pull
    of ``weight`` pseudo-cells towards ``prior``), kept within ``bounds``.

    ``t``: per cell, the probability that it belongs to the population the share is of (a T cell, not an
    NK cell): its prior of being of the first kind is then ``t * share``. ``copies``: per cell, how many
    times it counts (a bootstrap replicate's copies, a posterior mass); the start, clipped, when they sum
    to nothing."""
    lo, hi = bounds
    pi = float(np.clip(start, lo, hi))
    ratio = np.exp(np.clip(llr, -30.0, 30.0))
    t = np.ones(llr.size) if t is None else t
    n_eff = float(t.sum()) if copies is None else float((copies * t).sum())
    if n_eff + weight <= 0:
        return pi
    for _ in range(max_iter):
        q = t * pi
        post = q * ratio / (q * ratio + 1.0 - q)
        mass = post.sum() if copies is None else (copies * post).sum()
        new = float(np.clip((mass + weight * prior) / (n_eff + weight), lo, hi))
        if abs(new - pi) < tol:
            return new
        pi = new
    return pi


def mixture_prior(
    llr: np.ndarray,
    cells: np.ndarray,
    clusters: np.ndarray | None,
    samples: np.ndarray | None = None,
    *,
    t_logodds: np.ndarray | None = None,
) -> np.ndarray:
    """Per cell of ``cells``, the prior log-odds that it is leukemic, from the share of leukemic cells
    among them learnt by EM.

    The share over all ``cells`` is the maximum-likelihood mixing weight of their likelihood ratios
    (``llr``: leukemic vs normal); per Leiden cluster, the same among its ``cells``, shrunk towards it by
    20 pseudo-cells; and per cluster and sample (CAR-T cells, whose CAR went undetected, are in the
    samples after infusion only), shrunk towards the cluster's. Shares are kept within [0.02, 0.98].
    With ``t_logodds`` (log-odds that a cell is a T cell, :func:`~._cell_types.t_identity`) the share is
    that among T cells and a cell's prior is its probability of being a T cell times it. NaN outside
    ``cells``.
    """
    out = np.full(llr.size, np.nan)
    if not cells.any():
        return out
    t = (
        np.ones(llr.size)
        if t_logodds is None
        else 1.0 / (1.0 + np.exp(-np.clip(t_logodds, -30.0, 30.0)))
    )
    overall = mixture_share(llr[cells], 0.5, 0.0, 0.5, bounds=PRIOR_BOUNDS, t=t[cells])
    share = np.full(llr.size, overall)
    levels = [lv for lv in (clusters, samples) if lv is not None]
    groups = np.zeros(llr.size, dtype=object)
    groups[:] = ""
    for level in levels:
        parent = share.copy()
        groups = groups + "|" + np.asarray(level).astype(str)
        for g in pd.unique(groups[cells]):
            members = cells & (groups == g)
            prior = float(parent[members][0])
            share[members] = mixture_share(
                llr[members], prior, PRIOR_CELLS, prior, bounds=PRIOR_BOUNDS, t=t[members]
            )
    q = t[cells] * share[cells]
    out[cells] = np.log(q / (1.0 - q))
    return out
