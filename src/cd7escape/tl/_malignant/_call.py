"""Malignant-cell identification from combined evidence (DESIGN §5 'malignant')."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..._anndata import counts_matrix
from ..._config import MalignantParams
from ..._errors import InputError
from ..._lineages import Lineage, antigen_gene, resolve_lineage
from ..._logging import logger, timed
from ..._sparse import scale_rows
from ..._uns import record
from ._blast_program import blast_evidence, blast_score, program_llr
from ._car import ambient_positive_chance, detect_car, find_car_feature
from ._cell_types import (
    assign_lineage,
    lineage_identity,
    lineage_scores,
    t_identity,
    t_transcripts,
    transcript_counts,
)
from ._cnv import (
    CLONE_Z,
    CLONE_Z_SUPPORT,
    clone_copy_number,
    cnv_llr,
    cnv_subclones,
    gene_positions_frame,
    infer_cnv,
    positions_for,
    z_evidence,
)
from ._copy_number_llr import mixture_prior, segment_count_llr
from ._none_found import none_found_reason
from ._switch_lineage import switched_unread_logodds
from ._tcr_evidence import (
    clone_sizes,
    clonotype_families,
    leukemic_by_copy_number,
    split_clone_families,
    tcr_evidence,
)

_D = MalignantParams()
CELL_CLASSES = (
    "malignant", "normal_T", "car_T", "NK", "B", "plasma", "myeloid", "erythroid", "other",
)  # fmt: skip

# Log-odds model of malignancy (per cell, before smoothing). Each evidence is in [0, 1]; a cell's own
# productive clonotype (TCR in {-1, 0, 1}) sets its log-odds outright.
W_PRIOR = -4.0
W_BLAST = 8.0  # blast/ETP program, counted for T-lineage (or unassigned) cells only
W_CNV = 8.0  # copy-number alteration against the normal reference
LOGIT_CLIP = 8.0
W_TCR_LEUKEMIC = LOGIT_CLIP  # the log-odds of a cell carrying the leukemic clonotype ...
W_TCR_OTHER = (
    -LOGIT_CLIP
)  # ... and of one carrying another productive clonotype (polyclonal/normal)
W_TCR_LEUKEMIC_OWN, W_TCR_OTHER_OWN = 4.0, -6.0  # added again to the cell after smoothing
# Mean CNV z of a Leiden cluster at which its CNV evidence starts / saturates (normal clusters: |mean| < 1).
CLUSTER_Z_LOW, CLUSTER_Z_HIGH = 2.0, 4.0
# Without a leukemic CNV profile (fewer than 20 blast-program cells and no leukemic clonotype with a
# copy-number change), CNV evidence is capped here.
AMPLITUDE_EV_CAP = 0.4
CELL_WEIGHT = 0.5  # share of the cell's own log-odds; the rest is its Leiden cluster's mean
CONTEXT_CLIP = 6.0  # T cells: the neighbourhood log-odds are bounded by this ...
LLR_CLIP = (
    12.0  # ... and the cell's own blast-vs-normal-T likelihood ratios are added (bounded by this)
)
# The blast program's ratio is learnt only when the clearly malignant T cells' median blast evidence is this.
PROGRAM_LLR_MIN_EVIDENCE = 0.5
# CNV scores that compare cells with the leukemic copy-number profile (not a bare amplitude)
LEUKEMIC_PROFILE = ("consensus_projection", "clone_segments")
# Polyclonal T cells below this number make a thin reference: CAR-T cells join it.
MIN_NORMAL_T = 40
# Cells with a blast program (evidence at least this) from which the leukemic CNV profile is learnt (as
# in infer_cnv).
BLAST_PRIOR_EVIDENCE = 0.8
MIN_PRIOR_CELLS = 20
# Share of a cluster's NK-lineage cells with a productive TCR that makes them T cells.
NK_TCR_SHARE = 0.2
# T cells of a cluster whose TCR was read that make its clonal make-up the context of its unread T cells.
MIN_TYPED = 10
# A CAR-positive cell is a CAR-transduced blast (malignant) when its malignancy score reaches this (and
# min_score) and its own evidence (its clonotype, or the log-likelihood ratio of its own counts, blast vs
# normal T; for other lineages its own blast and copy-number evidence) reaches CAR_OWN_MIN: its
# neighbourhood alone never makes a CAR-positive cell malignant. CAR-T cells outnumber transduced blasts
# by orders of magnitude (about one in a thousand CAR-positive cells or fewer), so the cell's own
# likelihood ratio must overcome those prior odds (log 1000 ~ 6.9): at 2, real CAR-T cells of the
# semi-synthetic patients (activated, proliferating) passed on their own counts (16 of 3090 in P11).
CAR_MIN_SCORE = 0.5
CAR_OWN_MIN = 7.0
# CAR-positive blasts of a sample are CAR-transduced when more of them carry the CAR than ambient
# transcripts explain: the strong call's false-positive rate per cell (at most 1e-3) times the sample's
# malignant cells, Poisson tail below this.
CAR_SAMPLE_P = 0.01
CAR_FALSE_RATE = 1e-3
# Log-likelihood ratio (tumour lineage vs another, from the lineage's specific transcripts at the cell's
# depth) below which a cell the neighbourhood places in the tumour's lineage is of another lineage.
FOREIGN_LLR = 5.0


def call_malignant(
    adata,
    *,
    antigen: str = "CD7",
    lineage: str | None = None,
    car_feature: str | None = None,
    gene_positions: str | Path | pd.DataFrame | None = _D.gene_positions,
    min_score: float = _D.min_score,
    cnv: bool = _D.cnv,
    car_min_counts: int | None = _D.car_min_counts,
    key_added: str = "malignant",
    seed: int = 0,
    copy: bool = False,
):
    """Call malignant cells from CNV, TCR, blast program, CAR, donor and user evidence.

    The antigen is never evidence: it is excluded from every gene set and from the CNV genes, so that
    antigen-negative normal T cells (which expand after CD7 CAR-T) and CAR-T cells are not mistaken for a
    CD7-negative tumour.

    Evidence per cell (each kept in ``obs``); no piece is a gate, each adds:

    - ``blast_score``: blast/ETP program (CD1A, DNTT, CD34, KIT, PTCRA, CD99, …), evidence for T-lineage cells.
    - ``cnv_score``: robust z of the inferred copy-number alteration (infercnvpy's method) against held-out normal
      reference cells of the same patient (normal non-T lineages; polyclonal T cells when a TCR is present,
      joined by CAR-T cells when fewer than 40); ``cnv_subclone`` groups altered cells by CNV profile. It
      compares a cell with the leukemic CNV profile, learnt from blast-program cells, or, without them, the
      segments a leukemic clonotype has lost or gained (the cell's own counts there; ``'clone_segments'``);
      a bare amplitude (no leukemic profile at all) is capped and never makes a cell malignant.
    - ``clone_expanded``: the cell's clonotype (``obs['clone_id']``) is carried by ≥ 3 cells. A clonotype is
      leukemic when its cells carry the other evidence, or when its cells, summed, carry a copy-number change
      against the polyclonal T cells beyond what normal T-cell groups show and it is seen at more than one
      timepoint (``uns[...]['clone_copy_number']``): an expanded clonotype shared across timepoints whose
      cells carry a copy-number change is leukemic with or without a blast program, while a normal expansion
      (virus-specific, CAR-T) carries none. A clonotype that is a leukemic one read with fewer chains or
      another TRA is leukemic too. Cells of another productive clonotype count as normal; cells without a
      productive TCR get no TCR evidence.
    - ``lineage``: by marker scores; an NK-scoring cell with a productive TCR, or in a Leiden cluster where
      ≥ 20 % of the NK-scoring cells have one, is a T cell (NK cells carry no TCR; cytotoxic T cells and
      blasts with few CD3 reads score as NK). Where the tumour's lineage has specific transcripts and no
      confusable lineage (myeloma: immunoglobulin and plasma-cell genes), a cell whose neighbourhood
      gives it the tumour's lineage but whose own counts of them, at its depth, are another lineage's
      (log-likelihood ratio < -5; an NK, T or erythroid cell among shallow myeloma cells) and whose
      receptor was not read takes its own markers' lineage, weighs its own copy number only (not its
      smoothed profile, nor its cluster's) and its own log-odds only; it is no copy-number reference
      (``uns[...]['other_lineage_cells']``). A cell's cluster mean is then over its Leiden cluster's
      cells of its lineage.
    - ``car_detected``: CAR transgene counts above ambient. A CAR-positive cell is class ``car_T`` and not
      malignant, unless it carries leukemic evidence of its own: then it is a CAR-transduced blast (leukemic
      cells collected into the product and transduced), malignant with ``obs['car_transduced']``. That
      takes its malignancy score (all the evidence, the CAR aside) ≥ ``min_score`` and its own evidence
      for a blast: the leukemic clonotype, or (a T cell) its own counts' log-likelihood ratio (blast
      program and leukemic copy number, blast vs normal T) ≥ 7, the prior odds against a CAR-positive
      cell being a blast; without those ratios, or for a cell of another lineage (a lineage-switched
      blast), its own blast program and copy-number evidence.
      A CAR-T cell of another clonotype (polyclonal or an expanded CAR-T clonotype, which has no
      copy-number change and so is not leukemic) or of a normal genome is never malignant; CAR-positive
      cells sitting among blasts are not learnt from as normal genomes. ``obs['car_transduced']`` marks the
      CAR-positive malignant cells of the samples where they outnumber what ambient CAR transcripts
      explain (the strong call's ≤ 1e-3 false positives per malignant cell; Poisson tail < 0.01).
    - ``donor`` (when ``obs['donor']`` exists): in a donor-derived product/transplant setting the leukemia is
      recipient-derived, so cells assigned to the donor are never malignant. The recipient label is
      ``'recipient'`` when present, otherwise the assignment group with the highest mean evidence;
      unassigned/doublet/missing assignments are neutral.
    - ``user_malignant`` (when present): user labels override everything (missing values are not labels).

    Combination (log-odds): the blast and CNV evidence, smoothed over the kNN graph, give a cell's log-odds;
    a cell's own productive clonotype sets it (±8: leukemic or another one). It is averaged half-and-half
    with its Leiden cluster's mean (``obs['leiden']``) or, for a T cell whose TCR was not read in a cluster
    with a leukemic clonotype and ≥ 10 T cells read, with the log-odds of the leukemic clonotype among
    them. For T cells this neighbourhood value (bounded at ±6) is then corrected by the cell's own counts:
    a Poisson likelihood ratio, blast vs normal T, over the blast and mature-T gene panels with rates learnt
    from the clearly malignant and clearly normal T cells of the data (``obs['program_llr']``; only when
    those malignant cells carry the blast program, skipped when either class has < 30 cells), and a
    likelihood ratio of the cell's own copy number on the leukemic profile learnt the same way
    (``obs['cnv_llr']``). Where a leukemic clonotype carries a copy-number change, that ratio is of the
    cell's counts in the clonotype's altered regions carried by (nearly) all its cells: a negative binomial
    at the cell's depth with the rates, per Leiden cluster, of the clonotype's cells and of cells of a
    normal genome (T cells of another clonotype, CAR-T cells, NK cells without a TCR); and a lymphoid (T-
    or NK-lineage) cell whose TCR was not read (and no CAR) takes as its neighbourhood its probability of
    being a T cell times the share of blasts among the unread T cells of its cluster and sample, learnt by
    EM from their own ratios (``uns[...]['copy_number_regions']``, ``'unread_t_leukemic_share'``), not
    the clonal make-up of the read ones (VDJ capture differs between blasts and normal T cells). Its
    probability of being a T cell weighs its T-specific UMIs (none is likely in a shallow cell, and CD3D/E/G
    and CD5 lie on 11q, lost in some leukemias) at its depth against its cluster's T share: having no
    T-specific transcript is evidence, not a gate. A cell's
    own TCR counts again after smoothing. The logistic of the result is
    ``malignant_score``; CAR-T (strong CAR signal, without leukemic evidence of its own, see above) and
    donor cells are set to 0, user labels to 0/1. The antigen is in none of this.
    ``uns['cd7escape'][key_added]['car_transduced']``: counts of CAR-transduced blasts per sample and per
    timepoint (``n_cells``, ``per_sample``, ``per_timepoint``, the thresholds). When no cell is
    malignant, ``uns['cd7escape'][key_added]['none_found']`` says why in words: the clonotypes' strongest
    copy-number blocks against the bar and the reference they were read against
    (``clone_copy_number['reference_cells']``, ``'reference_car_t'``, ``'reference_nk'``,
    ``'reference_nk_tried'``, ``'reference_thin'``), and the cells with the blast program
    (``'blast_program_cells'``).

    Parameters
    ----------
    adata
        One patient (all samples), raw counts in ``layers['counts']`` (or ``X``); ``obs['leiden']`` and the
        neighbour graph from :func:`cd7escape.pp.embed` are used when present.
    antigen
        The CAR target; asserted absent from every gene set used.
    lineage
        The tumour's lineage, ``'T'``, ``'B'`` or ``'plasma'`` (default: the antigen's, see
        :mod:`cd7escape._lineages`): its program genes, its normal cells (compared with for copy number,
        and whose other clonotypes are normal), the lineages of the copy-number reference and of the CAR
        ambient. The evidence above is written for T-ALL; for B-ALL and myeloma read "B cell" or "plasma
        cell" for "T cell", their receptor (IGH/IGK/IGL) for the TCR, and the B-precursor or aberrant
        plasma-cell genes for the blast program; the NK-versus-T steps apply to T-ALL only.
    car_feature
        Feature name or regex of the CAR transgene (``None``: no CAR evidence).
    gene_positions
        TSV (symbol, chromosome, start, end), GTF, or DataFrame; the shipped hg38 table when ``None``.
    min_score
        Cells with ``malignant_score`` at or above this are malignant.
    cnv
        Infer copy-number changes (the slowest step).
    car_min_counts
        CAR UMIs that call a CAR-T cell; ``None`` chooses the threshold from ambient counts.
    key_added
        ``obs[key_added]`` (bool), ``obs[f'{key_added}_score']`` and ``uns['cd7escape'][key_added]``.
    seed
        Seed of the reference subsampling.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the annotated copy when ``copy=True``.
    """
    if copy:
        adata = adata.copy()
    if adata.n_obs == 0:
        raise InputError.single("no cells to call malignant cells on", field="adata")
    if not 0.0 <= min_score <= 1.0:
        raise InputError.single(
            f"min_score must be in [0, 1], got {min_score}", field="malignant.min_score"
        )
    antigen = antigen_gene(antigen)  # BCMA -> TNFRSF17: the gene must be what is kept out
    spec = resolve_lineage(lineage, antigen)
    params = {
        "antigen": antigen,
        "lineage": spec.name,
        "car_feature": car_feature,
        "gene_positions": gene_positions
        if not isinstance(gene_positions, pd.DataFrame)
        else "<DataFrame>",
        "min_score": min_score,
        "cnv": cnv,
        "car_min_counts": car_min_counts,
        "key_added": key_added,
        "seed": seed,
    }
    with timed("calling malignant cells"):
        results = _call(
            adata,
            antigen,
            spec,
            car_feature,
            gene_positions,
            min_score,
            cnv,
            car_min_counts,
            key_added,
            seed,
        )
    obs_keys = [
        key_added,
        f"{key_added}_score",
        "cell_class",
        "lineage",
        "blast_score",
        "cnv_score",
    ]
    obs_keys += ["cnv_subclone", "clone_expanded", "tcr_evidence", "car_detected", "program_llr"]
    obs_keys += ["cnv_llr", "car_transduced"]
    if "donor" in adata.obs:
        obs_keys.append("donor")
    obsm_keys = ["X_cnv"] if "X_cnv" in adata.obsm else []
    record(adata, key_added, params, obs=obs_keys, obsm=obsm_keys, results=results)
    return adata if copy else None


def _counts(adata) -> sp.csr_matrix:
    x = counts_matrix(adata)
    x = sp.csr_matrix(x) if not sp.issparse(x) else x.tocsr()
    sample = x.data[: min(x.data.size, 10000)]
    if sample.size and (np.any(sample < 0) or not np.allclose(sample, np.round(sample))):
        raise InputError.single(
            "call_malignant needs raw integer counts in layers['counts'] (or X)",
            field="layers['counts']",
        )
    return x


def _smoother(adata):
    """Row-normalised (connectivities + I): averages a per-cell quantity over each cell's neighbours."""
    conn = adata.obsp.get("connectivities") if hasattr(adata, "obsp") else None
    if conn is None:
        logger.warning(
            "call_malignant: no neighbour graph (run cd7escape.pp.embed); evidence is not smoothed"
        )
        return lambda v: v
    w = sp.csr_matrix(conn, dtype=np.float32) + sp.identity(
        adata.n_obs, dtype=np.float32, format="csr"
    )
    w = scale_rows(w, 1.0 / np.asarray(w.sum(axis=1)).ravel())

    def smooth(v):
        out = w @ v
        return np.asarray(out)

    return smooth


def _uses_identity(spec: Lineage) -> bool:
    """Whether cells of other lineages are told from the tumour's by its specific transcripts."""
    return spec.confusable is None and bool(spec.specific)


def _foreign_cells(
    counts: sp.csr_matrix,
    total: np.ndarray,
    var_names: pd.Index,
    antigen: str,
    spec: Lineage,
    lineage: np.ndarray,
    scores: pd.DataFrame,
    read: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Cells of the tumour's lineage by their neighbourhood that are of another lineage by their own
    counts of the lineage's specific transcripts (``spec.specific``; a log-likelihood ratio below
    ``-FOREIGN_LLR``, :func:`~._cell_types.lineage_identity`) and whose receptor was not read.

    For tumour lineages without a designated confusable lineage only (myeloma: any cell among shallow
    myeloma cells may take their lineage; T-ALL weighs NK against T cells its own way). The rates are
    learnt from cells whose own markers agree with their neighbourhood's lineage. ``read``: cells with a
    receptor clonotype. Also returned: the lineage the cells take, by their own markers (unsmoothed)
    where they are foreign, else the given one."""
    none = np.zeros(len(lineage), dtype=bool)
    if not _uses_identity(spec):
        return none, lineage
    own = assign_lineage(scores, lambda v: v)
    in_tumour = lineage == spec.tumour
    tumour_ref = in_tumour & (own == spec.tumour)
    other_ref = ~in_tumour & (own == lineage) & (lineage != "other")
    llr = lineage_identity(
        t_transcripts(counts, var_names, antigen, spec), total, tumour_ref, other_ref
    )
    if llr is None:
        return none, lineage
    foreign = in_tumour & (llr < -FOREIGN_LLR) & ~read
    # a foreign cell whose own markers still say the tumour's lineage is of no named lineage
    own = np.where(own == spec.tumour, "other", own)
    return foreign, np.where(foreign, own, lineage).astype(object)


def _cluster_mean(values: np.ndarray, clusters: np.ndarray | None) -> np.ndarray:
    if clusters is None:
        return values
    s = pd.Series(values).groupby(clusters).transform("mean")
    return s.to_numpy()


def _clonal_composition(
    tcr: np.ndarray, is_t: np.ndarray, clusters: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, of its cluster's T cells with a productive TCR: log((leukemic + 1) / (other + 1)),
    bounded by ±LOGIT_CLIP, and whether at least ``MIN_TYPED`` of them were read."""
    frame = pd.DataFrame({"c": clusters, "k": is_t & (tcr > 0), "m": is_t & (tcr < 0)})
    k = frame.groupby("c")["k"].transform("sum").to_numpy(dtype=float)
    m = frame.groupby("c")["m"].transform("sum").to_numpy(dtype=float)
    log_odds = np.clip(np.log((k + 1.0) / (m + 1.0)), -LOGIT_CLIP, LOGIT_CLIP)
    return log_odds, (k + m) >= MIN_TYPED


def _beyond_ambient(
    transduced: np.ndarray,
    malignant: np.ndarray,
    samples: np.ndarray | None,
    ambient_chance: np.ndarray | None = None,
) -> np.ndarray:
    """CAR-positive malignant cells of the samples where they are more than ambient CAR transcripts
    explain; elsewhere they are not called transduced.

    A sample's expected number from ambient alone is the sum over its malignant cells of
    ``ambient_chance`` (:func:`~._car.ambient_positive_chance`), never below ``CAR_FALSE_RATE`` per
    malignant cell; flagged when the observed number's Poisson tail is < ``CAR_SAMPLE_P``."""
    from scipy import stats

    groups = samples if samples is not None else np.zeros(len(transduced), dtype=object)
    out = transduced.copy()
    for g in np.unique(groups[transduced]):
        at = groups == g
        k, m = int((transduced & at).sum()), int((malignant & at).sum())
        expected = CAR_FALSE_RATE * m
        if ambient_chance is not None:
            expected = max(expected, float(ambient_chance[malignant & at].sum()))
        if stats.poisson.sf(k - 1, max(expected, 1e-12)) >= CAR_SAMPLE_P:
            out[at] = False
    return out


def _transduced_counts(obs: pd.DataFrame, transduced: np.ndarray, malignant: np.ndarray) -> dict:
    """CAR-transduced blasts per sample and per timepoint (with the malignant cells beside them)."""
    out: dict = {
        "n_cells": int(transduced.sum()),
        "min_score": CAR_MIN_SCORE,
        "own_evidence_min": CAR_OWN_MIN,
    }
    frame = pd.DataFrame({"car_transduced": transduced, "malignant": malignant})
    for col in ("sample", "timepoint"):
        if col in obs:
            frame[col] = obs[col].astype(str).to_numpy()
    for key, col in (("per_sample", "sample"), ("per_timepoint", "timepoint")):
        if col not in frame:
            continue
        table = frame.groupby(col, sort=True)[["car_transduced", "malignant"]].sum().reset_index()
        if col == "sample" and "timepoint" in frame:
            tp = frame.groupby("sample")["timepoint"].first()
            table.insert(1, "timepoint", table["sample"].map(tp))
        table = table.rename(
            columns={"car_transduced": "n_car_transduced", "malignant": "n_malignant"}
        )
        out[key] = {
            c: [v.item() if hasattr(v, "item") else v for v in table[c]] for c in table.columns
        }
    return out


def _donor_mask(donor: pd.Series, evidence: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Cells assigned to the donor (never malignant) and the label taken as the recipient."""
    lab = donor.astype(object).where(donor.notna(), "").astype(str)
    low = lab.str.lower()
    neutral = low.isin(["", "nan", "unassigned", "doublet", "none", "na"]).to_numpy()
    groups = sorted(set(lab[~neutral]))
    if not groups:
        return np.zeros(len(lab), dtype=bool), None
    if "recipient" in set(low[~neutral]):
        recipient = lab[low == "recipient"].iloc[0]
    else:
        means = {g: float(evidence[(lab == g).to_numpy()].mean()) for g in groups}
        recipient = max(means, key=means.get)
    return (~neutral) & (lab != recipient).to_numpy(), recipient


def _call(
    adata,
    antigen: str,
    spec: Lineage,
    car_feature,
    gene_positions,
    min_score,
    cnv,
    car_min_counts,
    key_added,
    seed,
) -> dict:
    counts = _counts(adata)
    var_names = pd.Index(adata.var_names.astype(str))
    # Size factors leave out the antigen (and the CAR feature) so that its counts cannot move any call.
    car_name = find_car_feature(var_names, car_feature)
    keep = np.ones(len(var_names), dtype=bool)
    keep[var_names.str.upper() == antigen.upper()] = False
    if car_name is not None:
        keep[var_names.get_loc(car_name)] = False
    total = counts @ keep.astype(np.float64)  # a product, not a column slice
    logx = scale_rows(counts, 1e4 / np.maximum(total, 1))
    np.log1p(logx.data, out=logx.data)
    smooth = _smoother(adata)
    clusters = adata.obs["leiden"].astype(str).to_numpy() if "leiden" in adata.obs else None
    if clusters is None:
        logger.warning(
            "call_malignant: no obs['leiden'] (run cd7escape.pp.embed); no per-cluster smoothing"
        )
    n = adata.n_obs

    # lineage and blast program (the antigen is asserted absent from both gene sets)
    tumour = spec.tumour  # the marker lineage of the tumour's cells ("T", "B", "plasma")
    # the reference category of the tumour lineage's normal cells (polyclonal T cells in T-ALL)
    normal_category = spec.normal_class
    scores = lineage_scores(logx, var_names, antigen, spec)
    lineage = assign_lineage(
        scores, lambda v: 0.5 * smooth(v) + 0.5 * _cluster_mean(smooth(v), clusters)
    )
    # NK cells carry no productive TCR: an NK-lineage cell with one, or in a Leiden cluster where a fifth
    # or more of the NK-lineage cells have one, is a T cell (cytotoxic T cells, blasts too, with few CD3
    # reads score as NK)
    read = (
        adata.obs["clone_id"].notna().to_numpy()
        if "clone_id" in adata.obs
        else np.zeros(n, dtype=bool)
    )
    if spec.confusable is not None and "clone_id" in adata.obs and clusters is not None:
        nk = lineage == spec.confusable
        frame = pd.DataFrame({"c": clusters, "nk": nk, "read": nk & read}).groupby("c")
        share = frame["read"].transform("sum") / frame["nk"].transform("sum").clip(lower=1)
        to_t = nk & (read | (share.to_numpy() >= NK_TCR_SHARE))
        lineage = np.where(to_t, tumour, lineage).astype(object)
    # A cell of the tumour's lineage by its neighbourhood whose own counts of the lineage's specific
    # transcripts (myeloma: immunoglobulin and plasma-cell genes) are those of another lineage, and whose
    # receptor was not read, is of that other lineage: an NK or T cell among shallow myeloma cells is not a
    # plasma cell (T-ALL has its own NK-versus-T steps)
    foreign, lineage = _foreign_cells(
        counts, total, var_names, antigen, spec, lineage, scores, read
    )
    # ... and the cluster a cell's evidence is averaged over is then its Leiden cluster's cells of its
    # lineage: shallow cells of every lineage cluster together, and the NK and erythroid cells among them
    # are not evidence for or against the myeloma cells there (nor the reverse)
    context = clusters
    if _uses_identity(spec) and clusters is not None:
        context = np.asarray([f"{c}|{lin}" for c, lin in zip(clusters, lineage, strict=True)])
    t_like = lineage == tumour
    blast = blast_score(logx, var_names, antigen, spec)
    blast_ev = blast_evidence(_cluster_mean(smooth(blast), context) * 0.5 + smooth(blast) * 0.5)
    blast_ev = np.where(t_like, blast_ev, 0.0)

    # CAR transgene
    if car_name is not None:
        car_counts = counts[:, var_names.get_loc(car_name)].toarray().ravel()
        background = np.isin(lineage, spec.car_background)
        car, car_weak, car_info = detect_car(
            car_counts,
            total,
            background,
            car_min_counts=car_min_counts,
        )
        car_info["feature"] = car_name
        ambient_chance = (
            ambient_positive_chance(car_counts, total, background, car_info["ambient_rate_per_umi"])
            if car_info["method"] == "ambient_poisson"
            else None
        )
    else:
        car, car_info = np.zeros(n, dtype=bool), {"method": "none"}
        car_weak = car
        ambient_chance = None

    # TCR
    has_clone = "clone_id" in adata.obs
    clone_id = (
        adata.obs["clone_id"] if has_clone else pd.Series([np.nan] * n, index=adata.obs_names)
    )
    sizes = clone_sizes(clone_id)
    # a clone whose second chain went uncaptured in some cells is one clone, tested with all its cells
    families = clonotype_families(clone_id)
    timepoint = adata.obs.get("timepoint", None)
    samples = adata.obs["sample"].astype(str).to_numpy() if "sample" in adata.obs else None
    clone_cnv = clone_segments = None
    cnv_clones: list[str] = []
    reference_thin, reference_car_t, clone_reference = False, 0, np.zeros(n, dtype=bool)
    reference_nk = nk_tried = 0  # NK cells joined to a thin reference, and tried (see below)
    support_bar = (
        CLONE_Z  # |z| of a segment's confirming block (lowered where the retest below finds it)
    )
    retested = False
    # cells of the clonotypes (or families of clonotypes) leukemic by copy number
    cnv_units = np.zeros(n, dtype=bool)
    # cells with the blast program: the leukemic CNV profile is learnt from them
    blast_prior = blast_ev >= BLAST_PRIOR_EVIDENCE

    # CNV
    cnv_score = np.full(n, np.nan)
    cnv_ev = np.zeros(n)
    cnv_info: dict = {"run": False}
    cnv_res = None
    if cnv:
        ref = np.full(n, "", dtype=object)
        # Reference: normal non-T lineages without a productive TCR (a non-T cell carrying a TCR may be a
        # lineage-switched blast), taken from baseline samples when there are enough there (lineage-switched
        # relapse blasts look myeloid), and polyclonal T cells (productive TCR carried by 1-2 cells).
        calm = (blast_ev < 0.05) & ~car
        tp = (
            adata.obs["timepoint"].astype(str).to_numpy()
            if "timepoint" in adata.obs
            else np.full(n, "")
        )
        for lin in spec.cnv_reference:
            cand = (lineage == lin) & calm & (sizes == 0) & ~foreign
            if (cand & (tp == "baseline")).sum() >= 40:
                cand &= tp == "baseline"
            ref[cand] = lin
        # none of the cells of an expanded clone seen with fewer chains is a polyclonal normal T cell
        family_sizes = clone_sizes(families)
        normal_t = (lineage == tumour) & calm & (family_sizes >= 1) & (family_sizes <= 2)
        reference_thin = tumour == "T" and normal_t.sum() < MIN_NORMAL_T
        if reference_thin:
            # few polyclonal T cells with a TCR (a sample's VDJ library failed or was not made): CAR-T
            # cells are T cells of a normal genome, whatever their clonotype
            normal_t |= (lineage == "T") & car & (blast_ev < 0.05)
        ref[normal_t] = normal_category
        clone_reference = ref == normal_category
        reference_car_t = int((clone_reference & car).sum())
        table = gene_positions_frame(gene_positions)
        # Expanded clonotypes whose cells, summed, carry a copy-number change against the polyclonal
        # normal T cells: leukemic (when seen at more than one timepoint) with or without a blast program,
        # and the cells from which the leukemic CNV profile is learnt.
        if has_clone:
            with timed("testing expanded clonotypes for copy-number changes"):
                var = adata.var.set_axis(var_names)
                groups = [labels for labels in (clusters, samples) if labels is not None]

                def test_clones(reference: np.ndarray, z_support: float = CLONE_Z):
                    return _clones_with_copy_number(
                        counts, total, var, table, reference, clone_id, families, groups,
                        timepoint, antigen=antigen, z_support=z_support,
                    )  # fmt: skip

                clone_cnv, clone_segments, cnv_clones, cnv_units = test_clones(clone_reference)
                nk = ref == spec.confusable if spec.confusable is not None else np.zeros(n, bool)
                if reference_thin and not cnv_clones and nk.any():
                    # A reference of CAR-T cells is one activated state, read with few cells: a leukemic
                    # clonotype's change can fall short against it (a 9p loss of 109 blasts at 40 %
                    # depth read z -4.5 against 69 cells, 51 of them CAR-T). Where it finds none, the
                    # sample's NK cells (a normal genome, the lineage closest to T cells) join it, their
                    # Leiden clusters among the groups that bound a normal change, and the test is
                    # repeated once. Not always: NK cells mixed into a reference that does find a
                    # change raise the gene-to-gene scatter and can hide it (a 6q loss fell from z -15
                    # to -5.9 with 14 NK cells among 76).
                    retry = test_clones(clone_reference | nk)
                    nk_tried = int(nk.sum())
                    if retry[2]:
                        clone_cnv, clone_segments, cnv_clones, cnv_units = retry
                        clone_reference = clone_reference | nk
                        reference_nk = nk_tried
                if not cnv_clones:
                    # Nothing passed two blocks at |z| >= 5. A clonotype of a few dozen cells reaches that
                    # in one block of an arm-level change and falls just short in the block beside it (a 6q
                    # loss of 181 cells: |z| 5.4, its neighbours below 5; no malignant cell was called).
                    # The clonotypes are tested once more with the strongest block confirmed by an
                    # overlapping one that carries the change as large at |z| >= 3; only here, so that
                    # where the strict bar finds the leukemia its segments stand (a looser bar widens them
                    # into neighbouring genes, which blurs the cells' ratios).
                    retry = test_clones(clone_reference, z_support=CLONE_Z_SUPPORT)
                    retested = True
                    if retry[2]:
                        clone_cnv, clone_segments, cnv_clones, cnv_units = retry
                        support_bar = CLONE_Z_SUPPORT
        prior = blast_prior | cnv_units
        # Without blasts to learn it from, the leukemic CNV profile is the clonotypes' altered segments only
        segments = None
        if blast_prior.sum() < MIN_PRIOR_CELLS and cnv_clones:
            segments = clone_segments[clone_segments["clone_id"].isin(cnv_clones)]
        with timed("inferring copy-number changes (infercnvpy's method)"):
            cnv_res = infer_cnv(
                counts,
                adata.var.set_axis(var_names),
                table,
                ref,
                lineage,
                smooth,
                total=total,
                antigen=antigen,
                prior_altered=prior,
                segments=segments,
                seed=seed,
                tumour_category=normal_category,
            )
        if cnv_res is None:
            logger.warning("call_malignant: too few normal reference cells; no CNV evidence")
            cnv_info = {"run": False, "reason": "too few normal reference cells"}
        else:
            cnv_score = cnv_res["score"]
            if cnv_res["method"] in LEUKEMIC_PROFILE:
                # similarity to the leukemic CNV profile; a cluster's mean z is far less noisy than a
                # cell's, so it saturates sooner
                cluster_z = _cluster_mean(cnv_res["score"], context)
                cluster_ev = np.clip(
                    (cluster_z - CLUSTER_Z_LOW) / (CLUSTER_Z_HIGH - CLUSTER_Z_LOW), 0.0, 1.0
                )
                cnv_ev = 0.5 * cnv_res["evidence"] + 0.5 * cluster_ev
            else:
                # no leukemic profile to compare with: CNV amplitude alone never makes a cell malignant
                cnv_ev = 0.5 * cnv_res["evidence"] + 0.5 * _cluster_mean(
                    cnv_res["evidence"], context
                )
                cnv_ev = np.minimum(cnv_ev, AMPLITUDE_EV_CAP)
            cnv_ev = np.where(
                cnv_res["reference"] | cnv_res["null"],
                np.minimum(cnv_ev, cnv_res["evidence"]),
                cnv_ev,
            )
            # a cell of another lineage among the tumour's cells weighs its own copy number only (its
            # smoothed profile and its cluster's are its neighbours')
            own_z = np.nan_to_num(cnv_res["own_score"], nan=0.0)
            cnv_ev = np.where(foreign, z_evidence(own_z), cnv_ev)
            # the per-cell profile for heatmaps; half precision keeps a 200k-cell patient affordable
            adata.obsm["X_cnv"] = cnv_res["profile"].astype(np.float16)
            adata.uns["cnv"] = {
                "chr_pos": {str(k): int(v) for k, v in (cnv_res["chr_pos"] or {}).items()}
            }
            cnv_info = {
                "run": True,
                "reference_cells": cnv_res["categories"],
                "n_genes": cnv_res["n_genes"],
                "score": cnv_res["method"],
                "compared_with": cnv_res["compared"],
            }

    # A clonotype is leukemic when its cells carry the other evidence, or a copy-number change of their own
    other = np.maximum(blast_ev, cnv_ev)
    # every clonotype of an altered family (the clone seen with fewer chains too) is leukemic on that ground
    cnv_members = sorted(set(clone_id[cnv_units & clone_id.notna().to_numpy()].astype(str)))
    tcr, expanded, leukemic = tcr_evidence(
        clone_id, other, timepoint, copy_number_clones=cnv_members
    )

    logit = W_PRIOR + W_BLAST * blast_ev + W_CNV * cnv_ev
    logit = np.clip(logit, -LOGIT_CLIP, LOGIT_CLIP)
    # A cell's own productive clonotype settles its log-odds (the leukemic one, or another, normal one),
    # so that its neighbours see it for what it is: a cell without a TCR among cells of the leukemic
    # clonotype is most likely a blast whose TCR was not captured, even without a blast program.
    logit = np.where(tcr > 0, W_TCR_LEUKEMIC, np.where(tcr < 0, W_TCR_OTHER, logit))
    smoothed = CELL_WEIGHT * logit + (1 - CELL_WEIGHT) * _cluster_mean(logit, context)
    # cells of the tumour's lineage ("T cells" below, as in T-ALL; B or plasma cells in B-ALL and myeloma)
    is_t = lineage == tumour
    # T cells by their own transcripts too, not only by their neighbourhood's: a cell among T cells with
    # none of CD3D/E/G, CD5, BCL11B, TRAC, TRBC1/2 (an NK cell) is not a T cell whose TCR went unread,
    # and weighs on its own evidence, not on that of the T cells around it
    t_counts = t_transcripts(counts, var_names, antigen, spec)
    not_t = (t_counts == 0) if spec.confusable is not None else np.zeros(n, dtype=bool)
    smoothed = np.where(is_t & not_t, logit, smoothed)
    # ... and so does a cell of another lineage found among the tumour's cells by its own transcripts
    smoothed = np.where(foreign, logit, smoothed)
    # A T cell whose TCR was not read takes, as its neighbourhood, the clonal make-up of its cluster's T
    # cells whose TCR was read (capture does not depend on being a blast): where the leukemia has a
    # clonotype and enough of the cluster's T cells were read.
    if clusters is not None and (tcr > 0).any():
        composition, informative = _clonal_composition(tcr, is_t, clusters)
        untyped = is_t & ~not_t & (tcr == 0) & informative
        smoothed = np.where(
            untyped, CELL_WEIGHT * logit + (1 - CELL_WEIGHT) * composition, smoothed
        )
    # A cell's own expression of the blast/mature-T programs, weighed by its depth (likelihood ratio learnt
    # from the clearly malignant and clearly normal T cells), corrects the neighbourhood for T cells that
    # the clustering placed among blasts (and the reverse).
    # Learnt only where the clearly malignant T cells carry the blast program: otherwise the panel's
    # differences are those of T-cell phenotypes (a cytotoxic normal subset, a naive one), not of blasts.
    prob = 1.0 / (1.0 + np.exp(-smoothed))
    blast_t, normal_t = is_t & (prob > 0.9), is_t & (prob < 0.1) & ~car
    # CAR-positive cells teach a normal genome only when they are not of the leukemic clonotype and not
    # among blasts: a CAR-transduced blast is a blast
    car_normal = car & (tcr <= 0) & (prob < 0.5)
    llr = None
    if blast_t.any() and np.median(blast_ev[blast_t]) >= PROGRAM_LLR_MIN_EVIDENCE:
        llr = program_llr(counts, total, var_names, blast_t, normal_t, antigen, spec)
    # ... and so does its own copy number (its unsmoothed profile projected on the leukemic one, or its own
    # counts in the leukemic clonotypes' altered segments), which tells blasts without a blast program from
    # the normal T cells they cluster with. Learnt from clear neighbourhoods and from the cells' own
    # clonotypes (leukemic, or another productive one).
    llr_cnv = None
    # the clear blasts of the tumour's lineage: of the leukemic clonotype, or in a clear neighbourhood
    clear_blasts = is_t & ((prob > 0.9) | (tcr > 0)) & (tcr >= 0)
    if cnv_res is not None and cnv_res["method"] in LEUKEMIC_PROFILE:
        llr_cnv = cnv_llr(
            cnv_res["own_score"],
            clear_blasts,
            is_t & ((prob < 0.1) | (tcr < 0) | car_normal) & (tcr <= 0),  # CAR-T: a normal genome
        )
    # Where a leukemic clonotype carries a copy-number change, a cell's own counts in its altered regions
    # give a likelihood ratio, leukemic vs normal genome, with the rates of the clonotype's cells and of T
    # cells of a normal genome (another clonotype, CAR-T cells) and a depth-aware negative binomial: this
    # replaces the projection's ratio above.
    count_llr, region_info = None, []
    if has_clone and cnv_res is not None and cnv_clones and clone_segments is not None:
        leukemic_segments = clone_segments[clone_segments["clone_id"].isin(cnv_clones)]
        count_llr, region_info = segment_count_llr(
            counts,
            total,
            adata.var.set_axis(var_names),
            positions_for(adata.var.set_axis(var_names), table),
            leukemic_segments,
            tcr > 0,
            is_t & ~not_t & (tcr <= 0) & ((tcr < 0) | car_normal),
            clusters=clusters,
            other_normal=(lineage == spec.confusable) & (sizes == 0) & ~car
            if spec.confusable is not None
            else None,
            antigen=antigen,
        )
        if count_llr is not None:
            llr_cnv = count_llr
    # Lymphoid cells whose TCR was not read (and no CAR) may be T cells (blasts among them) or NK cells:
    # where a leukemic clonotype's copy-number change gives each its own ratio, the probability that it is
    # a T cell (its cluster's T share, and its T-specific transcripts at its depth) weighs it, not a gate
    # on having any T-specific transcript (CD3D/E/G and CD5 lie on 11q, lost in some leukemias)
    t_logodds = None
    if count_llr is not None and spec.confusable is not None:
        t_logodds = t_identity(
            t_counts,
            total,
            lineage,
            is_t & (tcr != 0),
            (lineage == spec.confusable) & (sizes == 0) & ~car,
            clusters,
            nk_counts=transcript_counts(counts, var_names, spec.confusable_specific, antigen),
        )
    if llr_cnv is not None and t_logodds is None:
        # read against normal T cells, a cell's own copy number is evidence for T cells only
        llr_cnv = np.where(not_t, 0.0, llr_cnv)
    unread_share = None
    own = None
    if llr is not None or llr_cnv is not None:
        own = np.clip(
            (llr if llr is not None else 0.0) + (llr_cnv if llr_cnv is not None else 0.0),
            -LLR_CLIP,
            LLR_CLIP,
        )
        context = np.clip(smoothed, -CONTEXT_CLIP, CONTEXT_CLIP)
        if count_llr is not None:
            # T cells whose TCR was not read (and no CAR): their neighbourhood is the share of blasts among
            # the unread T cells of their cluster, learnt from those cells' own likelihood ratios (the share
            # among the read ones is biased: VDJ capture differs between blasts and normal T cells)
            if t_logodds is None:
                unread = is_t & ~not_t & (tcr == 0) & ~car
            else:
                unread = np.isin(lineage, [tumour, spec.confusable]) & (tcr == 0) & ~car
            prior = mixture_prior(own, unread, clusters, samples, t_logodds=t_logodds)
            context = np.where(unread, prior, context)
            unread_share = (
                float(np.mean(1.0 / (1.0 + np.exp(-prior[unread])))) if unread.any() else None
            )
            smoothed = np.where(unread, context + own, smoothed)
        smoothed = np.where(is_t, context + own, smoothed)
    # Cells of the lineage a relapse may switch to (myeloid) whose receptor was not read: their own copy
    # number and the share of blasts among such cells of their cluster, not their cluster's mean (normal
    # cells of that lineage have no receptor to read, switched blasts fewer reads than the original ones)
    switch_info = None
    if cnv_res is not None and cnv_res["method"] in LEUKEMIC_PROFILE and spec.switch_to:
        in_switch = (lineage == spec.switch_to) & ~car
        switched = switched_unread_logodds(
            cnv_res["own_score"],
            in_switch,
            cnv_res["reference"] | cnv_res["null"],
            tcr,
            clear_blasts,
            clusters=clusters,
            samples=samples,
        )
        if switched is not None:
            cells, logodds, learnt_from = switched
            # it adds what the cluster mean hid and removes nothing: with no switched cell read, the ratio
            # is learnt from the tumour's own blasts, whose lineage's expression shifts the leukemic class,
            # and a cluster of switched blasts learns too low a share (a B-ALL switch at 8,000 UMIs that
            # its strong cluster copy number had found lost 80 of 500 blasts)
            smoothed = np.where(cells, np.maximum(logodds, smoothed), smoothed)
            switch_info = {
                "lineage": spec.switch_to,
                "unread_cells": int(cells.sum()),
                "learnt_from": learnt_from,
            }
    # A cell's own TCR is its own: it counts again after smoothing (a T cell with a productive clonotype
    # other than the leukemic one is normal even when its neighbours are blasts).
    smoothed = np.where(tcr < 0, np.minimum(smoothed, logit) + W_TCR_OTHER_OWN, smoothed)
    smoothed = np.where(tcr > 0, np.maximum(smoothed, logit) + W_TCR_LEUKEMIC_OWN, smoothed)
    score = 1.0 / (1.0 + np.exp(-smoothed))

    # vetoes and overrides: a CAR-positive cell is a CAR-T cell (never malignant) unless, besides its
    # score, its own evidence says blast (its clonotype, its own counts): a CAR-transduced blast
    # the cell's own blast program and copy number: where no ratio was learnt, and for cells that are not
    # T cells (the ratios are read against normal T cells; a lineage-switched blast is not a T cell)
    own_cnv = cnv_res["evidence"] if cnv_res is not None else np.zeros(n)
    # (a CAR-T cell is a T cell: for a cell of another lineage, its own evidence is weighed without the
    # prior against malignancy)
    own_plain = W_BLAST * blast_evidence(blast) + W_CNV * own_cnv
    t_cell = is_t & ~not_t
    # CAR-T cells are T cells whatever the tumour's lineage: in B-ALL and myeloma a CAR-positive T cell
    # keeps the prior against malignancy too
    car_t_lineage = (lineage == "T") if tumour != "T" else np.zeros(n, dtype=bool)
    own_plain = np.where(t_cell | car_t_lineage, own_plain + W_PRIOR, own_plain)
    own_evidence = own_plain if own is None else np.where(t_cell, own, own_plain)
    own_evidence = np.where(tcr > 0, np.inf, np.where(tcr < 0, -np.inf, own_evidence))
    car_blast = car & (score >= max(min_score, CAR_MIN_SCORE)) & (own_evidence >= CAR_OWN_MIN)
    car_strong = car.copy()
    score = np.where(car & ~car_blast, 0.0, score)
    donor_info = None
    if "donor" in adata.obs:
        donor_cells, recipient = _donor_mask(adata.obs["donor"], score)
        score = np.where(donor_cells, 0.0, score)
        donor_info = {"recipient_label": recipient, "donor_cells": int(donor_cells.sum())}
    user_info = None
    if "user_malignant" in adata.obs:
        lab = adata.obs["user_malignant"]
        given = lab.notna().to_numpy()
        val = lab.astype(object).where(lab.notna(), False).astype(bool).to_numpy()
        score = np.where(given, val.astype(float), score)
        user_info = {
            "labelled_cells": int(given.sum()),
            "labelled_malignant": int((given & val).sum()),
        }
    malignant = score >= min_score

    transduced = car_strong & malignant
    if transduced.any():
        transduced = _beyond_ambient(transduced, malignant, samples, ambient_chance)
    # a weak CAR signal (often one UMI) makes a non-malignant T cell a CAR-T cell
    car = car | (car_weak & ~malignant & (lineage == "T"))
    cell_class = np.where(lineage == "T", "normal_T", lineage).astype(object)
    cell_class[car] = "car_T"
    cell_class[malignant] = "malignant"
    subclone = np.full(n, "none", dtype=object)
    if cnv_res is not None:
        altered = malignant & (cnv_res["evidence"] > 0.5)
        subclone = cnv_subclones(
            cnv_res["profile"],
            altered,
            clusters if clusters is not None else np.zeros(n),
            assign=malignant,
        )

    obs = adata.obs
    obs[key_added] = malignant
    obs[f"{key_added}_score"] = score.astype(np.float32)
    obs["cell_class"] = pd.Categorical(cell_class, categories=CELL_CLASSES)
    obs["lineage"] = pd.Categorical(lineage)
    obs["blast_score"] = blast.astype(np.float32)
    obs["cnv_score"] = cnv_score.astype(np.float32)
    obs["cnv_subclone"] = pd.Categorical(subclone)
    obs["clone_expanded"] = expanded
    obs["tcr_evidence"] = pd.Categorical(
        np.select([tcr > 0, tcr < 0], ["leukemic", "other_clonotype"], "none"),
        categories=["leukemic", "other_clonotype", "none"],
    )
    obs["car_detected"] = car
    obs["program_llr"] = (llr if llr is not None else np.full(n, np.nan)).astype(np.float32)
    obs["cnv_llr"] = (llr_cnv if llr_cnv is not None else np.full(n, np.nan)).astype(np.float32)
    obs["car_transduced"] = transduced

    n_mal = int(malignant.sum())
    logger.info(
        "call_malignant: %d of %d cells malignant (%.1f %%), %d CAR-T",
        n_mal,
        n,
        100 * n_mal / n,
        int(car.sum()),
    )
    results = {
        "n_malignant": n_mal,
        "cell_class_counts": {k: int((cell_class == k).sum()) for k in CELL_CLASSES},
        "cnv": cnv_info,
        "car": car_info,
        "leukemic_clonotypes": leukemic.to_dict(orient="list"),
        "clone_copy_number": (
            {
                "clones": clone_cnv.to_dict(orient="list"),
                "segments": clone_segments.to_dict(orient="list"),
                "leukemic": list(cnv_clones),
                # what the clonotypes were read against: a thin reference hides a change
                "reference_cells": int(clone_reference.sum()),
                "reference_car_t": reference_car_t,
                "reference_nk": reference_nk,
                "reference_nk_tried": nk_tried,
                "reference_thin": bool(reference_thin),
                # |z| of the block confirming a segment's strongest (CLONE_Z_SUPPORT: the retest found
                # the change), and whether the retest ran
                "z_support": support_bar,
                "retested": retested,
            }
            if clone_cnv is not None
            else {"run": False}
        ),
        "tcr_available": bool(has_clone),
        "weights": {
            "prior": W_PRIOR,
            "blast": W_BLAST,
            "cnv": W_CNV,
            "tcr_leukemic": W_TCR_LEUKEMIC,
            "tcr_other": W_TCR_OTHER,
            "tcr_leukemic_own": W_TCR_LEUKEMIC_OWN,
            "tcr_other_own": W_TCR_OTHER_OWN,
            "cell_weight": CELL_WEIGHT,
            "cluster_cnv_z": [CLUSTER_Z_LOW, CLUSTER_Z_HIGH],
            "context_clip": CONTEXT_CLIP,
            "llr_clip": LLR_CLIP,
            "program_llr": llr is not None,
            "cnv_llr": llr_cnv is not None,
            "cnv_llr_from_counts": count_llr is not None,
        },
        "copy_number_regions": pd.DataFrame(region_info).to_dict(orient="list"),
        "unread_t_leukemic_share": unread_share,
        "switch_lineage_unread": switch_info,
        # cells of the tumour's lineage by their neighbourhood, of another by their own transcripts
        "other_lineage_cells": int(foreign.sum()),
    }
    results["car_transduced"] = _transduced_counts(obs, transduced, malignant)
    results["blast_program_cells"] = int(blast_prior.sum())
    if n_mal == 0:
        results["none_found"] = none_found_reason(
            results,
            min_blast_cells=MIN_PRIOR_CELLS,
            min_score=min_score,
            max_score=float(np.max(score)) if n else 0.0,
        )
        logger.warning("call_malignant: %s", results["none_found"])
    if donor_info:
        results["donor"] = donor_info
    if user_info:
        results["user_labels"] = user_info
    if "sample" in obs:
        per = pd.Series(malignant).groupby(obs["sample"].astype(str).to_numpy()).mean()
        results["malignant_fraction_per_sample"] = {str(k): float(v) for k, v in per.items()}
    return results


def _clones_with_copy_number(
    counts,
    total,
    var,
    table,
    reference,
    clone_id,
    families,
    null_labels,
    timepoint,
    *,
    antigen,
    z_support: float = CLONE_Z,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], np.ndarray]:
    """Expanded clonotypes, and families of clonotypes of one clone seen with fewer chains, tested for a
    copy-number change (:func:`~._cnv.clone_copy_number`): the clone tables and segments of both, the
    units leukemic on that ground (:func:`~._tcr_evidence.leukemic_by_copy_number`) and their cells.

    A family counts only where none of its clonotypes shows a change by itself: where one chain went
    uncaptured in half the cells, each half may be too small to show the change its whole shows (a 9p
    loss in a clone of ~320 cells read as two clonotypes of ~160: no malignant cell was called). Where a
    clonotype shows it, its own segments stand: the whole's greater power also passes expression
    artefacts (a chr19p13.3 block, in damaged cells, was the only change a family of 289 cells kept, and
    its 12p loss, found in one of its clonotypes, was lost). And one of its clonotypes must have been large
    enough to be tested: a normal clone of 22 cells in forms of fewer than 20, tested only as a family,
    showed a chr1q/chr19q expression artefact and was taken for leukemic."""
    clones, segments = clone_copy_number(
        counts, total, var, table, reference, clone_id, null_labels, antigen=antigen,
        z_support=z_support,
    )  # fmt: skip
    altered = leukemic_by_copy_number(
        clone_id, list(clones.loc[clones["altered"], "clone_id"]), timepoint
    )
    units = clone_id.astype("string").isin(altered).fillna(False).to_numpy(dtype=bool)
    split = split_clone_families(clone_id, families)
    if split.notna().any():
        fam_clones, fam_segments = clone_copy_number(
            counts, total, var, table, reference, split, null_labels, antigen=antigen,
            z_support=z_support,
        )  # fmt: skip
        # a family counts where one of its clonotypes was large enough to be tested and none showed a
        # change by itself (where one does, its own segments stand, as before)
        tested = clone_id.isin(set(clones["clone_id"])).to_numpy(bool)
        eligible = set(split[tested].dropna()) - set(split[units].dropna())
        fam_altered = [
            c
            for c in leukemic_by_copy_number(
                split, list(fam_clones.loc[fam_clones["altered"], "clone_id"]), timepoint
            )
            if c in eligible
        ]
        fam_segments = fam_segments[fam_segments["clone_id"].isin(fam_altered)]
        units |= split.astype("string").isin(fam_altered).fillna(False).to_numpy(dtype=bool)
        altered += fam_altered
        clones = pd.concat([clones, fam_clones], ignore_index=True)
        segments = pd.concat([segments, fam_segments], ignore_index=True)
    return clones, segments, altered, units
