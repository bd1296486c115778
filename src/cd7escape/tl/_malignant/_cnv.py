"""Copy-number evidence with infercnvpy's method, for :func:`cd7escape.tl.call_malignant`.

Reference: confidently normal cells of the same patient — normal non-T lineages (B, myeloid, erythroid, NK)
and, when a TCR is available, polyclonal T cells (each lineage its own reference category, so infercnvpy's
bounded difference removes lineage-specific expression, e.g. T-cell genes, from the CNV signal). Each
reference category is split in two: one half defines the reference, the held-out half is the null against
which per-cell scores are calibrated. Gene positions come from the shipped table
(:func:`cd7escape.io.gene_table`) or a user TSV/GTF.

Speed: only the ``max_genes`` most expressed positioned genes enter, the reference is subsampled, and the
profile is infercnvpy's computed with matrix products (``tl._infercnv_core``: equal output, 3-4x faster).

Without blasts to learn the leukemic profile from (no blast program), copy number is read where it is
deep: an expanded clonotype's cells summed (:func:`clone_copy_number`, every expressed gene, blocks of 40
and 80 genes), and a cell's own counts in the segments such a clonotype has lost or gained
(:func:`segment_statistic`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..._errors import InputError
from ..._logging import logger
from ..._sparse import scale_rows
from ._infercnv_core import genome_order, infercnv_profile

# Genes whose expression reflects clonotype or HLA type rather than copy number.
_EXCLUDE = re.compile(r"^(TR[ABDG][VDJC]|IG[HKL][VDJC]|HLA-|MT-|RP[SL]\d)")
MAX_GENES = 3000
WINDOW_SIZE = 75
STEP = 5
MAX_REF_CELLS = 300  # per reference category, for the reference mean; as many again held out
# Cells a reference category needs (half make its mean, half its held-out null): the tumour lineage's
# normal cells (polyclonal T cells in T-ALL), against which the leukemic copy-number change is measured,
# need 20; another lineage needs 10 — without a reference of its own, a few B, NK or erythroid cells (a
# 600-cell baseline screen) are compared with myeloid cells and their lineage's genes read as
# copy-number changes.
MIN_REF_CELLS = 20
MIN_LINEAGE_REF_CELLS = 10
# Robust z of the CNV score at which evidence starts / saturates.
Z_LOW, Z_HIGH = 3.0, 8.0

# CNV subclones closer than this × the median profile norm are merged.
MERGE = 0.3


def z_evidence(z: np.ndarray) -> np.ndarray:
    """A copy-number robust z as evidence in [0, 1]: 0 up to ``Z_LOW``, 1 from ``Z_HIGH``, linear between."""
    return np.clip((z - Z_LOW) / (Z_HIGH - Z_LOW), 0.0, 1.0)


def gene_positions_frame(gene_positions: str | Path | pd.DataFrame | None) -> pd.DataFrame:
    """Gene positions as a DataFrame indexed by symbol with chromosome, start, end (and ensembl_id)."""
    if gene_positions is None:
        from ...io import gene_table

        return gene_table()
    if isinstance(gene_positions, pd.DataFrame):
        table = gene_positions.copy()
    else:
        path = Path(gene_positions)
        if not path.is_file():
            raise InputError.single(
                "gene position file not found", field="gene_positions", file=str(path)
            )
        if path.name.endswith((".gtf", ".gtf.gz")):
            table = _read_gtf(path)
        else:
            table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    cols = {c.lower(): c for c in table.columns}
    sym = cols.get("symbol") or cols.get("gene_symbol") or cols.get("gene_name")
    if sym is not None:
        table = table.set_index(sym)
    missing = {"chromosome", "start", "end"} - {c.lower() for c in table.columns}
    if missing:
        raise InputError.single(
            f"gene positions lack column(s) {sorted(missing)} (need symbol, chromosome, start, end)",
            field="gene_positions",
        )
    table = table.rename(columns={c: c.lower() for c in table.columns})
    table["chromosome"] = table["chromosome"].astype(str)
    table.loc[~table["chromosome"].str.startswith("chr"), "chromosome"] = (
        "chr" + table["chromosome"]
    )
    table["start"] = pd.to_numeric(table["start"], errors="coerce")
    table["end"] = pd.to_numeric(table["end"], errors="coerce")
    return table[table["start"].notna()]


def _read_gtf(path: Path) -> pd.DataFrame:
    gtf = pd.read_csv(path, sep="\t", comment="#", header=None, usecols=[0, 2, 3, 4, 8], dtype=str)
    gtf = gtf[gtf[2] == "gene"]
    name = gtf[8].str.extract(r'gene_name "([^"]+)"')[0]
    ens = gtf[8].str.extract(r'gene_id "([^".]+)')[0]
    out = pd.DataFrame(
        {"symbol": name, "ensembl_id": ens, "chromosome": gtf[0], "start": gtf[3], "end": gtf[4]}
    )
    return out.dropna(subset=["symbol"]).drop_duplicates("symbol").reset_index(drop=True)


def positions_for(var: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """chromosome/start/end for each var row: by Ensembl id when var has ``gene_ids``, else by symbol."""
    out = pd.DataFrame(index=var.index, columns=["chromosome", "start", "end"], dtype=object)
    by_symbol = table.loc[~table.index.duplicated()]
    common = var.index.intersection(by_symbol.index)
    out.loc[common, ["chromosome", "start", "end"]] = by_symbol.loc[
        common, ["chromosome", "start", "end"]
    ].to_numpy()
    if "gene_ids" in var.columns and "ensembl_id" in table.columns:
        ens = table["ensembl_id"].astype(str).str.split(";").explode()
        ens = ens[ens.str.len() > 0]
        lookup = table.loc[ens.index, ["chromosome", "start", "end"]].set_axis(ens.to_numpy())
        lookup = lookup[~lookup.index.duplicated()]
        ids = var["gene_ids"].astype(str).str.split(".").str[0]
        hit = ids.isin(lookup.index).to_numpy()
        out.loc[hit, ["chromosome", "start", "end"]] = lookup.loc[ids[hit]].to_numpy()
    return out


def select_genes(
    var: pd.DataFrame,
    pos: pd.DataFrame,
    mean_counts: np.ndarray,
    antigen: str,
    *,
    max_genes: int | None = MAX_GENES,
) -> np.ndarray:
    """Indices of the genes entering the CNV inference (positioned autosomal, expressed, not the antigen).

    At most ``max_genes`` (the most expressed; ``None``: all), in var order.
    """
    ok = pos["chromosome"].notna().to_numpy()
    chrom = pos["chromosome"].astype(str)
    ok &= ~chrom.isin(["chrX", "chrY", "chrM", "nan"]).to_numpy()
    ok &= ~var.index.str.match(_EXCLUDE)
    ok &= var.index.str.upper() != antigen.upper()
    ok &= mean_counts > 0.02
    idx = np.flatnonzero(ok)
    if max_genes is not None and idx.size > max_genes:
        idx = idx[np.argsort(-mean_counts[idx])[:max_genes]]
    return np.sort(idx)


def infer_cnv(
    counts: sp.csr_matrix,
    var: pd.DataFrame,
    table: pd.DataFrame,
    reference_labels: np.ndarray,
    lineage: np.ndarray,
    smooth,
    *,
    total: np.ndarray,
    antigen: str,
    prior_altered: np.ndarray | None = None,
    segments: pd.DataFrame | None = None,
    seed: int = 0,
    tumour_category: str = "normal_T",
) -> dict | None:
    """Infer copy-number profiles (infercnvpy's method) and score every cell against held-out reference cells.

    Each cell is compared with normal cells of its own lineage when there are enough of them (T-lineage
    cells with polyclonal normal T cells, category ``'normal_T'``; myeloid with myeloid …), so that lineage
    genes do not read as copy-number changes; other cells with all normal categories at once (infercnvpy's
    bounded difference across categories).

    Parameters
    ----------
    counts
        Raw counts (cells × all genes).
    reference_labels
        Per cell the reference category (e.g. ``'B'``, ``'myeloid'``, ``'normal_T'``) or ``''`` for none.
    lineage
        Lineage per cell (``'T'``, ``'NK'``, ``'B'``, ``'myeloid'``, ``'erythroid'``, ``'other'``).
    smooth
        Maps a cells × k array to its neighbourhood average over the expression kNN graph.
    total
        Library size per cell (without the antigen) for depth normalisation.
    prior_altered
        Cells that other evidence (blast program) marks as leukemic: when there are ≥ 20, their mean
        profile is the consensus altered profile onto which every cell is projected (``method`` =
        ``'consensus_projection'``); otherwise the score is the profile amplitude (``'amplitude'``).
    segments
        Chromosome segments (``chromosome``, ``start``, ``end``, ``log2_ratio``) found altered in leukemic
        clonotypes (:func:`clone_copy_number`). When given, a cell's score is its own copy number there
        instead of a projection (``method`` = ``'clone_segments'``): the log2 ratio of its counts in the
        genes of the lost (gained) segments to those its depth predicts from its reference category's
        rates, signed so that the leukemic change is positive, as a robust z against the held-out reference
        cells (:func:`segment_statistic`). Gene by gene and at any resolution, where the profile's windows
        of 75 of the 3,000 most expressed genes blur an arm; and blind to expression differences outside
        the segments (phenotype, batch, quality). Only cells compared with the polyclonal T cells are
        scored so (others score 0): the segments were found against them.
    tumour_category
        The reference category of the tumour lineage's normal cells: ``'normal_T'`` (polyclonal T cells)
        in T-ALL; in B-ALL and myeloma the lineage's name (``'B'``, ``'plasma'``: polyclonal B or plasma
        cells), which cells of that lineage are compared with.

    Returns
    -------
    dict with ``score`` (robust z per cell, of its neighbourhood-smoothed profile or segment statistic),
    ``own_score`` (the same of the cell's own, unsmoothed profile or counts; NaN without a consensus
    profile or segments), ``evidence`` (0–1), ``profile`` (smoothed CNV matrix),
    ``chr_pos``, ``null`` (held-out mask) and reference bookkeeping; ``None`` when no usable reference.
    """
    rng = np.random.default_rng(seed)
    n = counts.shape[0]
    prior_altered = np.zeros(n, dtype=bool) if prior_altered is None else prior_altered
    held_out = np.zeros(n, dtype=bool)
    ref_cells = np.zeros(n, dtype=bool)
    ref_rows: dict[str, np.ndarray] = {}
    for cat in sorted(set(reference_labels) - {""}):
        cells = np.flatnonzero(reference_labels == cat)
        if cells.size < (MIN_REF_CELLS if cat == tumour_category else MIN_LINEAGE_REF_CELLS):
            continue
        cells = rng.permutation(cells)
        half = min(cells.size // 2, MAX_REF_CELLS)
        ref_cells[cells[:half]] = True
        held_out[cells[half : 2 * half]] = True
        ref_rows[cat] = cells[:half]
    if not ref_rows:
        return None

    mean_counts = np.asarray(counts.sum(axis=0)).ravel() / max(counts.shape[0], 1)
    pos = positions_for(var, table)
    genes = select_genes(var, pos, mean_counts, antigen)
    genes = genes[genome_order(pos.iloc[genes])[0]]  # the profile then needs no second gather
    if genes.size < 200:
        logger.warning(
            "call_malignant: only %d genes with positions; CNV inference skipped", genes.size
        )
        return None
    x = scale_rows(sp.csr_matrix(counts)[:, genes], 1e4 / np.maximum(total, 1))
    np.log1p(x.data, out=x.data)
    gvar = pos.iloc[genes].copy()
    gvar["start"] = gvar["start"].astype(np.int64)
    gvar["end"] = gvar["end"].astype(np.int64)
    gvar["chromosome"] = gvar["chromosome"].astype(str)
    gvar = gvar.set_axis(var.index[genes])

    # which reference each cell is compared with: its own lineage's normal cells when there are enough,
    # otherwise all normal non-T categories (bounded difference)
    groups = []
    assigned = np.zeros(n, dtype=bool)
    for cat in ref_rows:
        cells = lineage == _lineage_of(cat)
        groups.append((cells, [cat]))
        assigned |= cells
    non_t_cats = [c for c in ref_rows if c != tumour_category]
    if (~assigned).any():
        groups.append((~assigned, non_t_cats or list(ref_rows)))
    raw = None
    chr_pos = None
    group_of = np.full(n, -1)
    used = {}
    null_of: dict[int, np.ndarray] = {}
    raw_null_of: dict[int, np.ndarray] = {}
    for gi, (cells, cats) in enumerate(groups):
        rows = np.flatnonzero(cells)
        if rows.size == 0:
            continue
        null = held_out & np.isin(reference_labels, cats)
        # A group compared with other lineages' references has no held-out cells of its own: score the
        # reference lineages against the same reference too, so its null is calibrated on the same scale.
        extra = (
            np.flatnonzero(~cells & np.isin(lineage, [_lineage_of(c) for c in cats]))
            if not (null & cells).any()
            else np.array([], dtype=int)
        )
        reference = np.vstack([np.asarray(x[ref_rows[c]].mean(axis=0)).ravel() for c in cats])
        chr_pos, res = infercnv_profile(
            x[np.concatenate([rows, extra])],
            gvar,
            reference,
            window_size=WINDOW_SIZE,
            step=STEP,
        )
        if raw is None:
            raw = np.zeros((n, res.shape[1]), dtype=np.float32)
        raw[rows] = res[: rows.size]
        group_of[rows] = gi
        used["+".join(cats)] = int(rows.size)
        if extra.size:
            other = np.zeros_like(raw)
            other[extra] = res[rows.size :]
            other[rows] = res[: rows.size]
            null_of[gi] = smooth(other)[null]
            raw_null_of[gi] = other[null]
    profile = smooth(raw)

    # Per group: amplitude against its held-out null; then projection onto the consensus altered profile.
    centred = np.zeros_like(profile)
    z_amp = np.zeros(n)
    nulls: dict[int, np.ndarray] = {}
    for gi in range(len(groups)):
        cells = group_of == gi
        null_profile = null_of[gi] if gi in null_of else profile[cells & held_out]
        if null_profile.shape[0] < 5:
            continue
        offset = null_profile.mean(axis=0)
        centred[cells] = profile[cells] - offset
        nulls[gi] = null_profile - offset
        amp = np.sqrt((centred[cells] ** 2).mean(axis=1))
        z_amp[cells] = _robust_z(amp, np.sqrt((nulls[gi] ** 2).mean(axis=1)))
    # The leukemic CNV profile is learnt only from cells that other evidence marks as leukemic: in data
    # without such cells (no leukemia) high-amplitude cells are batch or program artefacts, not a clone.
    candidates = prior_altered & ~ref_cells & ~held_out
    score = z_amp
    own = np.full(n, np.nan)
    method = "amplitude"
    if candidates.sum() >= 20:
        direction = centred[candidates].mean(axis=0)
        norm = np.linalg.norm(direction)
        if norm > 0:
            unit = direction / norm
            proj = centred @ unit
            score = np.zeros(n)
            for gi, null_centred in nulls.items():
                cells = group_of == gi
                score[cells] = _robust_z(proj[cells], null_centred @ unit)
                # the same projection of the cell's own, unsmoothed profile (not its neighbours')
                raw_null = raw_null_of[gi] if gi in raw_null_of else raw[cells & held_out]
                offset = raw_null.mean(axis=0)
                own[cells] = _robust_z((raw[cells] - offset) @ unit, (raw_null - offset) @ unit)
            method = "consensus_projection"
    # segments found in T-cell clonotypes against polyclonal T cells are read in T cells only: other
    # lineages' subsets (granulocytes among monocytes) differ there by expression
    t_groups = [(cells, cats) for cells, cats in groups if cats == [tumour_category]]
    if segments is not None and len(segments) and t_groups:
        stat = segment_statistic(
            counts, total, var, pos, segments, t_groups, ref_rows, antigen=antigen
        )
        if stat is not None:
            smoothed = smooth(stat)
            score, own = np.zeros(n), np.full(n, np.nan)
            for cells, cats in t_groups:
                null = held_out & np.isin(reference_labels, cats)
                if null.sum() < 5:
                    continue
                score[cells] = _robust_z(smoothed[cells], smoothed[null])
                own[cells] = _robust_z(stat[cells], stat[null])
            method = "clone_segments"
    evidence = z_evidence(score)
    return {
        "score": score,
        "own_score": own,
        "evidence": evidence,
        "profile": centred,
        "chr_pos": chr_pos,
        "null": held_out,
        "reference": ref_cells,
        "categories": {c: int(r.size) for c, r in ref_rows.items()},
        "compared": used,
        "n_genes": int(genes.size),
        "method": method,
    }


def _lineage_of(category: str) -> str:
    return "T" if category == "normal_T" else category


def _robust_z(x: np.ndarray, null: np.ndarray) -> np.ndarray:
    med = np.median(null)
    mad = 1.4826 * np.median(np.abs(null - med))
    if not np.isfinite(mad) or mad <= 0:
        mad = np.std(null) or 1.0
    return (x - med) / mad


def segment_statistic(
    counts: sp.csr_matrix,
    total: np.ndarray,
    var: pd.DataFrame,
    pos: pd.DataFrame,
    segments: pd.DataFrame,
    groups: list[tuple[np.ndarray, list[str]]],
    ref_rows: dict[str, np.ndarray],
    *,
    antigen: str,
) -> np.ndarray | None:
    """Per cell: its own copy number in the altered segments, as a signed log2 ratio of counts.

    The expressed genes (mean > 0.02 UMIs, positioned autosomal, as in :func:`select_genes` without a
    cap; never the antigen) inside the segments with a loss, and those inside segments with a gain (a gene
    in both is left out), are summed per cell; each sum is compared with what the cell's depth predicts
    from the rates of its group's reference cells (``groups``: cells and the reference categories they are
    compared with): ``log2((y + 0.5) / (total * rate + 0.5))``, the loss term negated, so that the
    leukemic change scores positive. ``None`` when no expressed gene lies in a segment.
    """
    mean_counts = np.asarray(counts.sum(axis=0)).ravel() / max(counts.shape[0], 1)
    genes = select_genes(var, pos, mean_counts, antigen, max_genes=None)
    chrom = pos["chromosome"].to_numpy()[genes].astype(str)
    start = pd.to_numeric(pos["start"].iloc[genes]).to_numpy()
    lost, gained = np.zeros(genes.size, dtype=bool), np.zeros(genes.size, dtype=bool)
    for seg in segments.itertuples():
        inside = (chrom == str(seg.chromosome)) & (start >= seg.start) & (start <= seg.end)
        (lost if seg.log2_ratio < 0 else gained)[inside] = True
    stat = np.zeros(counts.shape[0])
    found = False
    x = sp.csr_matrix(counts)
    for cols, sign in ((genes[lost & ~gained], -1.0), (genes[gained & ~lost], 1.0)):
        if cols.size == 0:
            continue
        found = True
        y = np.asarray(x[:, cols].sum(axis=1)).ravel().astype(np.float64)
        for cells, cats in groups:
            rows = np.concatenate([ref_rows[c] for c in cats])
            rate = y[rows].sum() / max(total[rows].sum(), 1.0)
            stat[cells] += sign * np.log2((y[cells] + 0.5) / (rate * total[cells] + 0.5))
    return stat if found else None


def cnv_subclones(
    profile: np.ndarray,
    altered: np.ndarray,
    clusters: np.ndarray,
    *,
    assign: np.ndarray | None = None,
    min_cells: int = 10,
    merge: float = MERGE,
) -> np.ndarray:
    """CNV subclone per cell: Leiden clusters of altered cells grouped by their mean CNV profile.

    Subclones are defined on ``altered`` cells (clear CNV evidence): their Leiden clusters' mean profiles
    are merged by average linkage when closer than ``merge`` × the median profile norm. Every cell of
    ``assign`` (default: the altered cells) then gets the subclone whose mean profile is nearest, or
    ``'none'`` when its profile is nearer to no change at all. Labels ``cnv0``, ``cnv1`` … by size.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    n = profile.shape[0]
    assign = altered if assign is None else assign
    labels = np.full(n, "none", dtype=object)
    keys, means = [], []
    for c in pd.unique(clusters[altered]):
        cells = altered & (clusters == c)
        if cells.sum() >= min_cells:
            keys.append(c)
            means.append(profile[cells].mean(axis=0))
    if not keys:
        if altered.any():
            keys, means = ["all"], [profile[altered].mean(axis=0)]
        else:
            return labels
    means = np.vstack(means)
    if len(keys) == 1:
        groups = np.array([1])
    else:
        scale = merge * np.median(np.linalg.norm(means, axis=1))
        groups = fcluster(
            linkage(means, method="average"), t=max(scale, 1e-9), criterion="distance"
        )
    group_means = np.vstack([means[groups == g].mean(axis=0) for g in np.unique(groups)])
    rows = np.flatnonzero(assign)
    if rows.size == 0:
        return labels
    d = ((profile[rows][:, None, :] - group_means[None, :, :]) ** 2).sum(axis=2)
    nearest = d.argmin(axis=1)
    to_zero = (profile[rows] ** 2).sum(axis=1)
    has = d[np.arange(rows.size), nearest] < to_zero
    # order subclones by size (cnv0 the largest)
    sizes = np.bincount(nearest[has], minlength=group_means.shape[0])
    order = np.argsort(-sizes, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    labels[rows[has]] = [f"cnv{rank[k]}" for k in nearest[has]]
    return labels


# ---- copy number of a clonotype (pseudo-bulk), independent of any blast program ----------------------
# An expanded clonotype whose cells, summed, lack (or gain) a chromosome segment against the polyclonal
# normal T cells carries a copy-number change. Summing a clonotype's cells gives a deep profile per gene;
# a segment is tested as a block of consecutive expressed genes, by the weighted median of the genes' log2
# ratios, so that single genes of a phenotype (an effector clone's granzymes, chemokines) cannot move it.
CLONE_MIN_CELLS = 20  # clonotypes with at least this many cells are tested
CLONE_BLOCKS = (40, 80)  # genes per block (blocks overlap by half); ~40 genes ≈ 12 Mb at 10k genes
CLONE_MIN_EXPECTED = 1.0  # a gene enters a group's test with at least this many expected UMIs
CLONE_Z = 5.0  # |z| of a block's change beyond what normal groups show ...
CLONE_Z_SUPPORT = 3.0  # a retest's bar for the block that confirms the strongest (call_malignant)
CLONE_MIN_LOG2 = 0.35  # ... and its size in log2 (one copy of two lost: -1; one gained: +0.58)
NULL_MIN_CELLS = (
    20  # normal groups (reference cells of one Leiden cluster or sample) that bound changes
)
_LN2 = np.log(2.0)
CLONE_COLUMNS = [
    "clone_id", "n_cells", "z", "log2_ratio", "beyond_normal", "chromosome", "start", "end",
    "n_genes", "altered",
]  # fmt: skip
SEGMENT_COLUMNS = ["clone_id", "chromosome", "start", "end", "z", "log2_ratio"]


def clone_copy_number(
    counts: sp.csr_matrix,
    total: np.ndarray,
    var: pd.DataFrame,
    table: pd.DataFrame,
    reference: np.ndarray,
    clone_id: pd.Series,
    null_labels: list[np.ndarray],
    *,
    antigen: str,
    min_cells: int = CLONE_MIN_CELLS,
    z_support: float = CLONE_Z,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test each expanded clonotype for a copy-number change against the polyclonal normal T cells.

    The counts of a clonotype's cells are summed (pseudo-bulk) and compared gene by gene with the rates of
    the ``reference`` cells at the same depth: ``log2((c + 0.5) / (e + 0.5))`` for the genes with ≥ 1
    expected UMI, centred on the genome's median. Along each chromosome, blocks of 40 and 80 consecutive
    expressed genes (positioned autosomal genes, not TCR/IG/HLA/MT/ribosomal, never the antigen; blocks
    overlap by half) get the weighted median of their genes' log2 ratios (weights: inverse Poisson variance
    plus the clonotype's own gene-to-gene scatter beyond it, estimated over the genome), standard error
    ``1.2533 / sqrt(Σw)``, centred on the median block. Normal T cells differ among themselves too (an NK
    receptor cluster on 12p13 in cytotoxic cells, GC-rich chr19 in damaged cells, batches): the reference
    cells of each Leiden cluster and each sample (≥ 20 cells, against the rest of the reference) give the
    range of block values normal groups show (each shrunk by its standard error), and a clonotype's change
    counts only beyond that range, as infercnv's bounded difference does. A block is altered when its
    change beyond the normal range is ≥ 0.35 in log2 with ``|z| ≥ 5``; overlapping altered blocks of one
    sign make a segment, which needs two of them (one block may be a cluster of co-expressed genes); a
    clonotype with a segment is ``altered``. With ``z_support`` below 5, the second block of a segment
    needs only that ``|z|`` (the change as large): the bar of a retest where nothing passed (see
    :func:`~._call.call_malignant`).

    Parameters
    ----------
    counts
        Raw counts, cells × all genes.
    total
        Library size per cell (without the antigen and CAR).
    var
        ``var`` of the data indexed by gene name (``gene_ids`` used for positions when present).
    table
        Gene positions (:func:`gene_positions_frame`).
    reference
        Mask of the normal reference cells (polyclonal normal T cells).
    clone_id
        Clonotype per cell (NaN without a productive TCR).
    null_labels
        Groupings of the cells (e.g. Leiden clusters, samples) whose reference subsets bound normal changes.
    antigen
        Never used.
    min_cells
        Clonotypes with fewer cells are not tested.
    z_support
        ``|z|`` of a segment's blocks besides its strongest, which needs ``CLONE_Z`` (default: all of them).

    Returns
    -------
    ``clones``: one row per tested clonotype (columns ``CLONE_COLUMNS``): ``clone_id``, ``n_cells``; of the
    most altered block ``z``, ``log2_ratio``, ``beyond_normal`` (the part of it outside the normal range),
    its ``chromosome``, ``start``, ``end`` (first and last gene) and ``n_genes``; ``altered``. Empty when
    no clonotype is large enough or the reference has fewer than 40 cells.
    ``segments``: the altered segments of the altered clonotypes (``SEGMENT_COLUMNS``: clone_id,
    chromosome, start, end, the largest |z| of its blocks and their median log2 ratio).
    """
    empty = pd.DataFrame(columns=CLONE_COLUMNS), pd.DataFrame(columns=SEGMENT_COLUMNS)
    ids = clone_id.astype(object).where(clone_id.notna(), None)
    sizes = ids.value_counts()
    tested = [c for c, k in sizes.items() if k >= min_cells]
    if not tested or reference.sum() < 2 * NULL_MIN_CELLS:
        return empty
    pos = positions_for(var, table)
    mean_counts = np.asarray(counts.sum(axis=0)).ravel() / max(counts.shape[0], 1)
    genes = select_genes(var, pos, mean_counts, antigen, max_genes=None)
    order, code, _ = genome_order(pos.iloc[genes])
    genes = genes[order]
    chrom = pos["chromosome"].to_numpy()[genes].astype(str)
    start = pd.to_numeric(pos["start"].iloc[genes]).to_numpy()
    end = pd.to_numeric(pos["end"].iloc[genes]).to_numpy()
    scales = [_blocks(code, size) for size in CLONE_BLOCKS]
    if not any(scales):
        return empty
    x = sp.csr_matrix(counts)[:, genes]

    def summed(mask: np.ndarray) -> tuple[np.ndarray, float]:
        return np.asarray(x[mask].sum(axis=0)).ravel().astype(np.float64), float(total[mask].sum())

    ref_counts, ref_total = summed(reference)
    lo = [np.zeros(len(b)) for b in scales]
    hi = [np.zeros(len(b)) for b in scales]
    for labels in null_labels:
        labels = np.asarray(labels).astype(str)
        for value in pd.unique(labels[reference]):
            group = reference & (labels == value)
            if group.sum() < NULL_MIN_CELLS or group.sum() > 0.8 * reference.sum():
                continue
            c, t = summed(group)
            for k, blocks in enumerate(scales):
                est, se = _block_log2(c, t, ref_counts - c, ref_total - t, blocks)
                shrunk = np.nan_to_num(np.sign(est) * np.maximum(np.abs(est) - se, 0.0))
                lo[k] = np.minimum(lo[k], shrunk)
                hi[k] = np.maximum(hi[k], shrunk)
    rows, segments = [], []
    for clone in tested:
        cells = (ids == clone).to_numpy()
        c, t = summed(cells)
        rc, rt = ref_counts, ref_total
        if (reference & cells).any():  # CAR-T cells of an expanded clonotype may be reference cells
            drop_c, drop_t = summed(reference & cells)
            rc, rt = rc - drop_c, rt - drop_t
        # the most altered block over both scales (large enough first, then by |z|), and every altered one
        best: tuple = (-1.0, np.nan, np.nan, np.nan, None)
        hits = []
        for k, blocks in enumerate(scales):
            est, se = _block_log2(c, t, rc, rt, blocks)
            beyond = est - np.clip(est, lo[k], hi[k])
            z = beyond / se
            for i in np.flatnonzero(np.isfinite(z)):
                big = abs(beyond[i]) >= CLONE_MIN_LOG2
                rank = abs(z[i]) + (1e6 if big else 0.0)
                if rank > best[0]:
                    best = (rank, float(z[i]), float(est[i]), float(beyond[i]), blocks[i])
                if big and abs(z[i]) >= z_support:
                    b = blocks[i]
                    hits.append((chrom[b[0]], int(start[b[0]]), int(end[b[-1]]), z[i], est[i]))
        found_segments = _merge_blocks(hits)
        segments += [(str(clone), *seg) for seg in found_segments]
        _, z, est, beyond, block = best
        found = block is not None
        rows.append(
            {
                "clone_id": str(clone),
                "n_cells": int(cells.sum()),
                "z": z,
                "log2_ratio": est,
                "beyond_normal": beyond,
                "chromosome": chrom[block[0]] if found else "",
                "start": int(start[block[0]]) if found else -1,
                "end": int(end[block[-1]]) if found else -1,
                "n_genes": len(block) if found else 0,
                "altered": bool(found_segments),
            }
        )
    return pd.DataFrame(rows, columns=CLONE_COLUMNS), pd.DataFrame(
        segments, columns=SEGMENT_COLUMNS
    )


def _merge_blocks(hits: list[tuple]) -> list[tuple]:
    """Altered blocks (chromosome, start, end, z, log2 ratio) merged into segments where they overlap
    with the same sign; a segment needs two blocks, one of them at ``|z| ≥ CLONE_Z`` (the others passed
    the caller's bar: a change over one block of neighbouring genes may be a gene cluster's expression).
    Each segment: chromosome, start, end, the largest |z| (signed) and the median log2 ratio of its
    blocks."""
    out = []
    ordered = sorted(hits, key=lambda h: (h[0], np.sign(h[4]), h[1]))
    i = 0
    while i < len(ordered):
        chrom, sign, end = ordered[i][0], np.sign(ordered[i][4]), ordered[i][2]
        group = [ordered[i]]
        j = i + 1
        while (
            j < len(ordered)
            and ordered[j][0] == chrom
            and np.sign(ordered[j][4]) == sign
            and ordered[j][1] <= end
        ):
            group.append(ordered[j])
            end = max(end, ordered[j][2])
            j += 1
        z = max((h[3] for h in group), key=abs)
        if len(group) >= 2 and abs(z) >= CLONE_Z:
            out.append((chrom, group[0][1], end, float(z), float(np.median([h[4] for h in group]))))
        i = j
    return out


def _blocks(code: np.ndarray, size: int) -> list[np.ndarray]:
    """Blocks of ``size`` consecutive genes on each chromosome, overlapping by half (the last one ending
    at the chromosome's last gene); chromosomes with fewer than half a block have none."""
    out = []
    step = max(size // 2, 1)
    for c in np.unique(code):
        idx = np.flatnonzero(code == c)
        if idx.size < size // 2:
            continue
        starts = list(range(0, max(idx.size - size, 0) + 1, step))
        if starts[-1] + size < idx.size:
            starts.append(idx.size - size)
        out += [idx[s : s + size] for s in starts]
    return out


def _block_log2(
    c: np.ndarray, t: float, ref_c: np.ndarray, ref_t: float, blocks: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Per block: weighted median log2 ratio of a pseudo-bulk against the reference, and its standard error."""
    n = len(blocks)
    est, se = np.full(n, np.nan), np.full(n, np.nan)
    if t <= 0 or ref_t <= 0:
        return est, se
    e = t * ref_c / ref_t
    use = e >= CLONE_MIN_EXPECTED
    if use.sum() < 100:
        return est, se
    lr = np.log2((c + 0.5) / (e + 0.5))
    lr -= np.median(lr[use])
    v = (1.0 / (c + 0.5) + 1.0 / (ref_c + 0.5)) / _LN2**2
    tau2 = _extra_variance(lr[use], v[use])
    w = np.where(use, 1.0 / (v + tau2), 0.0)
    min_genes = 3 * len(blocks[0]) // 8 if blocks else 0
    for b, idx in enumerate(blocks):
        sel = idx[use[idx]]
        if sel.size < min_genes:
            continue
        est[b] = _weighted_median(lr[sel], w[sel])
        se[b] = 1.2533 / np.sqrt(w[sel].sum())
    if np.isfinite(est).any():
        est -= np.nanmedian(est)
    return est, se


def _extra_variance(lr: np.ndarray, v: np.ndarray) -> float:
    """Gene-to-gene variance beyond Poisson: the smallest τ² making the standardised log ratios' MAD 1."""

    def mad(tau2: float) -> float:
        return 1.4826 * float(np.median(np.abs(lr) / np.sqrt(v + tau2)))

    if mad(0.0) <= 1.0:
        return 0.0
    lo, hi = 0.0, 1.0
    while mad(hi) > 1.0 and hi < 1e3:
        hi *= 4.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mad(mid) > 1.0 else (lo, mid)
    return hi


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


MIN_LLR_CELLS = 30  # cells of each class needed to learn the per-cell CNV likelihood ratio


def cnv_llr(
    own_score: np.ndarray, blast_cells: np.ndarray, normal_cells: np.ndarray
) -> np.ndarray | None:
    """Per-cell log-likelihood ratio, leukemic vs normal, of the cell's own CNV projection.

    ``own_score`` (the cell's unsmoothed profile projected on the leukemic CNV profile, a robust z against
    held-out normal cells) is modelled as normal in each class with a common scale, location and scale
    learnt robustly (median, MAD) from ``blast_cells`` and ``normal_cells`` (as for the blast program's
    ratio); the ratio is then linear in the score, so it cannot turn at extreme values. It weighs a cell's
    own copy number where the expression neighbourhood mixes blasts and normal T cells (blasts without a
    blast program look like mature T cells). ``None`` when either class has fewer than 30 cells with a
    score or the leukemic cells do not score higher; 0 for cells without a score.
    """
    ok = np.isfinite(own_score)
    b, m = own_score[blast_cells & ok], own_score[normal_cells & ok]
    if b.size < MIN_LLR_CELLS or m.size < MIN_LLR_CELLS:
        return None
    mb, mn = np.median(b), np.median(m)
    sb = 1.4826 * np.median(np.abs(b - mb))
    sn = 1.4826 * np.median(np.abs(m - mn))
    var = (b.size * sb**2 + m.size * sn**2) / (b.size + m.size)
    if not mb > mn or not var > 0:
        return None
    return np.where(ok, (mb - mn) / var * (np.nan_to_num(own_score) - 0.5 * (mb + mn)), 0.0)
