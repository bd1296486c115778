"""Copy-number evidence with infercnvpy's method, for :func:`cd7escape.tl.call_malignant`.

Reference: confidently normal cells of the same patient — normal non-T lineages (B, myeloid, erythroid, NK)
and, when a TCR is available, polyclonal T cells (each lineage its own reference category, so infercnvpy's
bounded difference removes lineage-specific expression, e.g. T-cell genes, from the CNV signal). Each
reference category is split in two: one half defines the reference, the held-out half is the null against
which per-cell scores are calibrated. Gene positions come from the shipped table
(:func:`cd7escape.io.gene_table`) or a user TSV/GTF.

Speed: only the ``max_genes`` most expressed positioned genes enter, the reference is subsampled, and the
profile is infercnvpy's computed with matrix products (``tl._infercnv_core``: equal output, 3-4x faster).
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
MIN_REF_CELLS = 20
# Robust z of the CNV score at which evidence starts / saturates.
Z_LOW, Z_HIGH = 3.0, 8.0
# CNV subclones closer than this × the median profile norm are merged.
MERGE = 0.3


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
    var: pd.DataFrame, pos: pd.DataFrame, mean_counts: np.ndarray, antigen: str
) -> np.ndarray:
    """Indices of the genes entering the CNV inference (positioned autosomal, expressed, not the antigen)."""
    ok = pos["chromosome"].notna().to_numpy()
    chrom = pos["chromosome"].astype(str)
    ok &= ~chrom.isin(["chrX", "chrY", "chrM", "nan"]).to_numpy()
    ok &= ~var.index.str.match(_EXCLUDE)
    ok &= var.index.str.upper() != antigen.upper()
    ok &= mean_counts > 0.02
    idx = np.flatnonzero(ok)
    if idx.size > MAX_GENES:
        idx = idx[np.argsort(-mean_counts[idx])[:MAX_GENES]]
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
    seed: int = 0,
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

    Returns
    -------
    dict with ``score`` (robust z per cell), ``evidence`` (0–1), ``profile`` (smoothed CNV matrix),
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
        if cells.size < MIN_REF_CELLS:
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
    non_t_cats = [c for c in ref_rows if c != "normal_T"]
    if (~assigned).any():
        groups.append((~assigned, non_t_cats or list(ref_rows)))
    raw = None
    chr_pos = None
    group_of = np.full(n, -1)
    used = {}
    null_of: dict[int, np.ndarray] = {}
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
    method = "amplitude"
    if candidates.sum() >= 20:
        direction = centred[candidates].mean(axis=0)
        norm = np.linalg.norm(direction)
        if norm > 0:
            proj = centred @ (direction / norm)
            score = np.zeros(n)
            for gi, null_centred in nulls.items():
                cells = group_of == gi
                score[cells] = _robust_z(proj[cells], null_centred @ (direction / norm))
            method = "consensus_projection"
    evidence = np.clip((score - Z_LOW) / (Z_HIGH - Z_LOW), 0.0, 1.0)
    return {
        "score": score,
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
