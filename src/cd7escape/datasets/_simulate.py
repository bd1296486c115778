"""Simulated T-ALL, B-ALL and myeloma patients (baseline + relapse after CAR-T) with known relapse mechanism."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._docs import doc_params, doc_seed
from .._errors import InputError
from .._lineages import LINEAGE_NAMES, LINEAGES, MARKERS, antigen_gene, default_lineage, without
from .._logging import logger
from . import _lineage_sim as L
from ._params import FittedParams, load_params
from ._tcr import contig_rows, contig_table, ig_contig_rows, random_chains, random_ig_chains

if TYPE_CHECKING:
    from anndata import AnnData

Mechanism = Literal[
    "preexisting_negative_clone",
    "antigen_downregulation",
    "antigen_retained",
    "mixed",
    "lineage_switch",
]
MECHANISMS = get_args(Mechanism)

# Blast / ETP program of T-ALL (share of UMIs in the blast profile) and mature T genes turned down.
BLAST_UP = {
    "CD1A": 1.0e-3, "CD1E": 4e-4, "CD1B": 3e-4, "DNTT": 1.5e-3, "CD34": 5e-4, "CD99": 6e-3, "KIT": 2e-4,
    "CD38": 1e-3, "MKI67": 6e-4, "TOP2A": 6e-4, "STMN1": 3e-3, "HMGB2": 4e-3, "TUBB": 3e-3, "SOX4": 2e-3,
    "PTCRA": 3e-4, "RAG1": 2e-4, "LMO2": 3e-4, "MYB": 5e-4, "LYL1": 2e-4, "HES1": 3e-4, "NOTCH3": 2e-4,
    "BAALC": 2e-4, "CD5": 8e-4,
}  # fmt: skip
MATURE_DOWN = ["CCR7", "SELL", "IL7R", "GZMA", "GZMB", "GZMK", "PRF1", "CCL5", "KLRB1", "NKG7", "GNLY",
               "CD69", "FOS", "JUN", "CD27", "CD28"]  # fmt: skip
T_PROGRAM = ["CD3E", "CD3D", "CD3G", "CD247", "CD2", "CD5", "CD7", "CD1A", "CD1B", "CD1E", "LCK", "ZAP70",
             "BCL11B", "TCF7", "GATA3", "PTCRA", "CD4", "CD8A", "CD8B", "IL7R", "RAG1", "DNTT"]  # fmt: skip
MYELOID_UP = {"MPO": 3e-3, "CD33": 5e-4, "CEBPA": 4e-4, "SPI1": 6e-4, "CSF3R": 5e-4, "LYZ": 8e-3, "ELANE": 2e-3,
              "AZU1": 1.5e-3, "PRTN3": 1.5e-3, "CD34": 6e-4, "MEIS1": 2e-4, "HOXA9": 2e-4}  # fmt: skip

# shares of non-malignant cells; normal T cells that are antigen-negative; CAR-T only at relapse
COMPOSITION = {
    "baseline": {"normal_T": 0.40, "NK": 0.10, "B": 0.08, "myeloid": 0.30, "erythroid": 0.12},
    "relapse": {
        "normal_T": 0.32,
        "car_T": 0.18,
        "NK": 0.10,
        "B": 0.05,
        "myeloid": 0.25,
        "erythroid": 0.10,
    },
}
NORMAL_T_NEGATIVE = {"baseline": 0.08, "relapse": 0.30}
BASE_TYPE = {"malignant": "T", "normal_T": "T", "car_T": "T", "NK": "NK", "B": "B", "myeloid": "myeloid",
             "erythroid": "erythroid"}  # fmt: skip
# share of T cells with a VDJ library (CARPALL sorted T cells: median 53 %, range 8-87 % per sample)
TCR_CAPTURE = 0.7
IG_CAPTURE = 0.8  # share of B-lineage cells with a VDJ-B library
# B-ALL and myeloma patients: shares of non-malignant cells (few normal B cells at relapse: CD19 and BCMA
# CARs kill them; normal plasma cells are few) and the heavy-chain isotype of normal B cells' contigs
COMPOSITION_B = {
    "B": {
        "baseline": {"normal_T": 0.35, "NK": 0.10, "B": 0.10, "myeloid": 0.30, "erythroid": 0.15},
        "relapse": {"normal_T": 0.30, "car_T": 0.18, "NK": 0.10, "B": 0.02, "myeloid": 0.28,
                    "erythroid": 0.12},
    },
    "plasma": {
        "baseline": {"normal_T": 0.35, "NK": 0.10, "B": 0.08, "plasma": 0.02, "myeloid": 0.30,
                     "erythroid": 0.15},
        "relapse": {"normal_T": 0.30, "car_T": 0.18, "NK": 0.10, "B": 0.06, "plasma": 0.01,
                    "myeloid": 0.26, "erythroid": 0.09},
    },
}  # fmt: skip
B_HEAVY = {"IGHM": 0.75, "IGHD": 0.1, "IGHG1": 0.1, "IGHA1": 0.05}
LIB_REL_B = {"B": {"malignant": 1.2}, "plasma": {"malignant": 2.5, "plasma": 2.5}}
N_PROGRAM = 80  # genes of each subclone's own expression program
LIB_REL = {"malignant": 1.2}  # blasts are larger cells than resting T cells
ADT = ("CD3", "CD19", "CD33")


@doc_params(doc_seed=doc_seed)
def simulate_patient(
    mechanism: Mechanism = "antigen_downregulation",
    *,
    seed: int = 0,
    n_cells: int = 2000,
    depth: float = 3000,
    negative_fraction: float = 0.1,
    fold: float = np.inf,
    antigen: str = "CD7",
    lineage: Literal["T", "B", "plasma"] | None = None,
    blast_fraction_baseline: float = 0.6,
    blast_fraction_relapse: float = 0.5,
    tcr: bool = True,
    ig: bool = True,
    n_subclones: int = 3,
    minor_subclone_without_cnv: bool = True,
    decoy_negative_minor: bool = False,
    relapse_shift: float = 0.0,
    car_product: Literal["knockout", "pebl"] = "knockout",
    car_feature: str | None = None,
    car_transduced: float = 0.0,
    protein: bool = False,
    protein_loss: bool = False,
    empty_droplets: bool = False,
    relapse_sites: tuple[str, ...] = ("BM",),
    ambient: float = 0.02,
    patient: str = "P1",
) -> AnnData:
    """Simulate one patient (a baseline and a relapse sample) with a known relapse mechanism.

    Counts are negative-binomial draws from gene proportions, dispersions and library-size
    distributions fitted per cell type to real 10x data (CARPALL; ``scripts/fit_simulator_params.py``),
    with cell-specific library sizes and ambient contamination from each sample's own pool. So a cell
    that expresses the antigen gives a zero count as often as real cells do at that depth (dropout),
    while a cell that does not express it has only ambient counts.

    Cells: blasts (T profile plus a blast/ETP program and subclone-specific programs; trunk and
    subclone copy-number changes as dosage ×0.5/×1.5 over large gene segments; one monoclonal TCR),
    normal polyclonal T cells (some antigen-negative, more at relapse), CAR-T cells at relapse (T cells
    with the CAR transgene feature), NK (antigen-expressing for CD7), B, myeloid and erythroid cells.

    The tumour's lineage follows the antigen (``cd7escape._lineages``): CD7 (T-ALL) as above; CD19 or
    CD22 give a B-ALL patient, BCMA (gene TNFRSF17) a myeloma patient, with the same mechanisms,
    subclones and copy-number changes. B-ALL blasts: the B profile with a B-precursor program (DNTT,
    CD34, VPREB1, IGLL1, VPREB3, RAG1/2, MME, SOX4, CD99, CD38, ERG, proliferation) and the mature B
    genes down; normal polyclonal B cells (kappa or lambda) beside T, NK, myeloid and erythroid cells.
    Myeloma cells: a plasma-cell profile (JCHAIN, MZB1, XBP1, PRDM1, SDC1, DERL3, TXNDC5 and one
    isotype and light chain at plasma-cell levels; MS4A1, CD19, PAX5, CD79B down) with aberrant CCND1
    and NCAM1; a few normal polyclonal plasma cells and normal B cells beside them. The tumour carries
    one IG clonotype (IGH plus IGK or IGL), B and plasma cells polyclonal IG, T cells TCRs. The antigen
    is expressed by the tumour and the lineage's normal cells (B cells for CD19/CD22, plasma cells for
    BCMA), never by CAR-T cells or other lineages. The gene universe of these patients adds the IG
    constant genes, TNFRSF17 and the plasma-cell and B-precursor genes the fitted parameters lack
    (``datasets/_lineage_sim.py``); a T-ALL patient's genes and counts do not change.

    Parameters
    ----------
    mechanism
        ``preexisting_negative_clone``: a baseline subclone holding ``negative_fraction`` of the blasts
        is antigen-negative and dominates the relapse. ``antigen_downregulation``: the dominant clone,
        positive at baseline, is negative (``fold=inf``) or dim (expression ÷ ``fold``) at relapse.
        ``antigen_retained``: relapse blasts keep the antigen. ``mixed``: both, each about half of the
        relapse blasts. ``lineage_switch``: relapse blasts lose the lineage program (T in T-ALL, B in
        B-ALL, plasma cell in myeloma; and the antigen) and gain a myeloid program, keeping the
        leukemic CNVs and receptor (TCR, or IG clonotype).
    {doc_seed}
    n_cells
        Cells per sample.
    depth
        Median UMIs per cell in each sample (over the simulated genes).
    negative_fraction
        Share of baseline blasts in the antigen-negative subclone (pre-existing, mixed, decoy).
    fold
        Downregulation fold of the antigen at relapse; ``inf`` is complete loss.
    antigen
        Gene symbol or common name of the CAR target (``'BCMA'`` is the gene TNFRSF17; must be among
        the simulated genes). ``uns['truth']['antigen']`` holds the gene symbol.
    lineage
        The tumour's lineage: ``'T'`` (T-ALL), ``'B'`` (B-ALL) or ``'plasma'`` (myeloma); ``None``
        (default): the antigen's (``cd7escape._lineages.resolve_lineage``: CD7 → T, CD19/CD22 → B,
        BCMA → plasma; T for other antigens). Kept in ``uns['truth']['lineage']``.
    blast_fraction_baseline, blast_fraction_relapse
        Share of blasts among the cells of each sample.
    tcr
        Whether T-ALL blasts carry a productive TCR (one clonotype for all blasts); no effect on other
        lineages.
    ig
        Whether B-ALL or myeloma cells carry a productive IG (one clonotype: IGH plus IGK or IGL; the
        light chain is often not recovered from pre-B blasts); no effect in T-ALL.
    n_subclones
        Baseline subclones ``S0`` (dominant) … ``S{n-1}``; the antigen-negative one is the last.
    minor_subclone_without_cnv
        Subclone ``S1`` has no CNV of its own (only the trunk CNVs), as happens in real leukemias.
    decoy_negative_minor
        With ``antigen_downregulation``: the last subclone is antigen-negative at baseline
        (``negative_fraction`` of blasts) but does not expand, while the main clone downregulates.
    relapse_shift
        Size (log2 s.d.) of a therapy-induced transcriptional shift shared by all relapse blasts.
    car_product
        ``knockout``: CAR-T cells have no antigen RNA; ``pebl``: antigen RNA retained (protein
        blocked, visible with ``protein=True``).
    car_feature
        Feature name of the CAR transgene, added as a gene-expression feature; ``None`` (default):
        ``CAR_<antigen>`` with the antigen as given (``CAR_CD7``, ``CAR_CD19``, ``CAR_BCMA``).
    car_transduced
        Share of relapse blasts, in [0, 1), that carry the CAR transgene (leukemic cells collected into
        the CAR-T product and transduced): their blast profile with the CAR feature at the share of
        CAR-T cells, their leukemic TCR and copy-number changes intact, marked in
        ``obs['truth_car_transduced']`` (a column added only when the share is > 0). The cells are
        chosen with a generator of their own (seeded from ``seed``), so that ``0`` (the default) gives
        exactly the counts of a call without it.
    protein
        Add Antibody Capture counts in ``obsm['protein']`` (the antigen, CD3, CD19, CD33; background
        plus foreground, features named ``<marker>_TotalSeqC``).
    protein_loss
        Relapse blasts lose the antigen's surface protein while keeping its RNA (post-transcriptional
        loss or masking of the epitope; needs ``protein=True``). What the CAR sees is then a loss:
        ``uns['truth']['mechanism']`` becomes ``antigen_downregulation`` when the RNA mechanism
        (``uns['truth']['rna_mechanism']``) is ``antigen_retained``; ``obs['truth_protein_negative']``
        marks the cells without surface protein.
    empty_droplets
        Also simulate empty droplets (ambient only) per sample, kept in ``uns['empty_droplets']`` and
        written as the raw matrix by :func:`write_simulated`.
    relapse_sites
        Tissues of the relapse samples. One (default ``('BM',)``): one relapse sample
        ``<patient>_relapse``. Several (e.g. ``('BM', 'mediastinum')``): the relapse cells are dealt at
        random to one sample per site, ``<patient>_relapse_<site>``, each with its tissue, so that the
        per-sample calls of :func:`cd7escape.tl.classify_relapse` can be checked against the patient's.
    ambient
        Share of each cell's UMIs drawn from the sample's ambient pool.
    patient
        Patient identifier; samples are ``<patient>_baseline`` and ``<patient>_relapse``.

    Returns
    -------
    AnnData with integer CSR counts in ``X`` and ``layers['counts']`` (genes plus the CAR feature;
    ``var['gene_ids','feature_types','chromosome','start','end']``), ``obs`` with ``patient``,
    ``sample``, ``timepoint``, ``tissue``, ``barcode``, ``clone_id`` (``'TRB:<nt>;TRA:<nt>'``,
    ``'IGH:<nt>;IGK:<nt>'`` …), ``receptor_chains`` (loci with a productive chain, sorted, joined by
    ``+``: ``'TRA+TRB'``, ``'IGH+IGK'``, ``'none'``) and ``<locus>_cdr3`` (``trb_cdr3``, ``tra_cdr3``;
    in B-ALL and myeloma ``igh_cdr3``, ``igk_cdr3``, ``igl_cdr3``: the lineage's loci, so T cells'
    TCRs are in the contigs only) as the VDJ reader gives them for the lineage, and the truth: ``truth_cell_type``,
    ``truth_malignant``, ``truth_subclone`` (``''`` for normal cells), ``truth_antigen_negative`` (the
    cell does not express the antigen), ``truth_antigen_level`` (expected antigen expression relative
    to baseline blasts); ``uns['truth']`` (mechanism, lineage, every parameter, subclone table, CNVs,
    ``blast_receptor``),
    ``uns['vdj_contigs']`` (10x contig rows of all cells: TR chains of T cells, IG chains of B-lineage
    cells) and, when asked, ``obsm['protein']`` and
    ``uns['empty_droplets']``; ``obs['truth_car_transduced']`` when ``car_transduced > 0``.

    Raises
    ------
    InputError
        Unknown mechanism, lineage or product, antigen not among the simulated genes, or impossible
        shares.
    """
    params = {k: v for k, v in locals().items()}
    if lineage is not None and lineage not in LINEAGES:
        raise InputError.single(
            f"lineage must be one of {', '.join(LINEAGE_NAMES)}, not {lineage!r}",
            field="simulate_patient",
        )
    name = str(antigen).strip()
    params["antigen"] = antigen_gene(name)
    params["lineage"] = lineage or default_lineage(name) or "T"
    params["car_feature"] = car_feature if car_feature is not None else f"CAR_{name}"
    P = load_params() if params["lineage"] == "T" else L.extended_params()
    _check(params, P)
    rng = np.random.default_rng(seed)
    sim = _Simulator(P, params, rng)
    adata = sim.run()
    logger.info(
        "simulated patient %s (%s, %s): %d cells, %d features",
        patient,
        LINEAGES[params["lineage"]].disease,
        mechanism,
        adata.n_obs,
        adata.n_vars,
    )
    return adata


def _check(p: dict, P: FittedParams) -> None:
    problems = []
    if p["mechanism"] not in MECHANISMS:
        problems.append(f"mechanism must be one of {', '.join(MECHANISMS)}, not {p['mechanism']!r}")
    if p["car_product"] not in ("knockout", "pebl"):
        problems.append(f"car_product must be 'knockout' or 'pebl', not {p['car_product']!r}")
    if p["antigen"] not in set(P.genes):
        problems.append(f"antigen {p['antigen']!r} is not among the {len(P.genes)} simulated genes")
    if p["n_cells"] < 50:
        problems.append("n_cells must be at least 50")
    if not p["depth"] > 0:
        problems.append("depth must be positive")
    if not 0 <= p["negative_fraction"] < 0.9:
        problems.append("negative_fraction must be in [0, 0.9)")
    if not p["fold"] >= 1:
        problems.append("fold must be ≥ 1 (np.inf for complete loss)")
    for k in ("blast_fraction_baseline", "blast_fraction_relapse"):
        if not 0 < p[k] < 1:
            problems.append(f"{k} must be in (0, 1)")
    ct_share = p["car_transduced"]
    if (
        isinstance(ct_share, bool)
        or not isinstance(ct_share, (int, float))
        or not 0 <= ct_share < 1
    ):
        problems.append(f"car_transduced must be a share in [0, 1), not {ct_share!r}")
    if not 0 <= p["ambient"] < 0.5:
        problems.append("ambient must be in [0, 0.5)")
    needs_negative = p["mechanism"] in ("preexisting_negative_clone", "mixed") or (
        p["decoy_negative_minor"] and p["mechanism"] == "antigen_downregulation"
    )
    if needs_negative and p["n_subclones"] < 2:
        problems.append("this mechanism needs n_subclones ≥ 2 (the negative subclone is the last)")
    if needs_negative and p["negative_fraction"] <= 0:
        problems.append("this mechanism needs negative_fraction > 0")
    if p["n_subclones"] < 1:
        problems.append("n_subclones must be ≥ 1")
    sites = p["relapse_sites"]
    if isinstance(sites, str) or not len(sites) or len(set(map(str, sites))) != len(sites):
        problems.append("relapse_sites must be a non-empty list of distinct tissue names")
    if p["protein_loss"] and not p["protein"]:
        problems.append("protein_loss needs protein=True (the loss is only visible in ADT counts)")
    if problems:
        from .._errors import Problem

        raise InputError([Problem(m, field="simulate_patient") for m in problems])


class _Simulator:
    def __init__(self, P: FittedParams, p: dict, rng: np.random.Generator) -> None:
        self.P, self.p, self.rng = P, p, rng
        self.G = len(P.genes)
        self.a = int(P.index([p["antigen"]])[0])
        self.idx = {g: i for i, g in enumerate(P.genes)}
        self.lin = LINEAGES[p["lineage"]]
        self.is_T = self.lin.name == "T"
        # the tumour's base cell type (library sizes, dispersions) and the program a switch loses
        self.base_type = dict(BASE_TYPE)
        if not self.is_T:
            self.base_type.update(malignant="B", plasma="B")
        self.blast_phi = P.phi[self.base_type["malignant"]]
        self.switch_program = T_PROGRAM if self.is_T else list(self.lin.program)
        self.ig_of: dict[int, tuple[str, str]] = {}  # profile id -> (heavy C gene, light locus)

    # ---- profiles -------------------------------------------------------------------------------
    def _set(self, prof: np.ndarray, shares: dict[str, float]) -> None:
        for g, v in shares.items():
            if g in self.idx:
                prof[self.idx[g]] = v

    def _scale(self, prof: np.ndarray, genes, factor: float) -> None:
        prof[self.P.index(genes)] *= factor

    def base_profiles(self) -> None:
        if not self.is_T:
            return self.base_profiles_b()
        P, a = self.P, self.a
        prof = {ct: P.mu[ct].copy() for ct in P.mu}
        top = max(prof[ct][a] for ct in prof)
        # lineages that (nearly) do not express the antigen do not at all: their counts are ambient
        for ct in prof:
            if prof[ct][a] < 0.1 * top:
                prof[ct][a] = 0.0
        blast = prof["T"].copy()
        self._scale(blast, MATURE_DOWN, 0.15)
        self._set(blast, BLAST_UP)
        self.blast_level = 1.5 * max(prof["T"][a], 1e-4)
        blast[a] = self.blast_level
        self.prof = prof
        self.blast = blast / blast.sum()
        self.blast_level = self.blast[a]

    def b_cell(self, light: str) -> np.ndarray:
        """A normal B cell's profile with one light chain (the fitted B profile carries both)."""
        prof = self.prof["B"].copy()
        self._scale(prof, [g for genes in L.LIGHT_GENES.values() for g in genes], 0.0)
        self._set(prof, L.LIGHT_GENES[light])
        return prof / prof.sum()

    def plasma_cell(self, heavy: str, light: str) -> np.ndarray:
        """A plasma cell: the B profile without its B program, with the plasma-cell program and one
        isotype and light chain at the plasma cell's high immunoglobulin levels."""
        prof = self.prof["B"].copy()
        self._scale(prof, without(L.PLASMA_DOWN, self.p["antigen"]), 0.03)
        self._scale(prof, L.IG_GENES, 0.0)
        self._set(prof, L.PLASMA_UP)
        self._set(prof, {heavy: L.PLASMA_HEAVY_SHARE[heavy], **L.PLASMA_LIGHT[light]})
        return prof / prof.sum()

    def base_profiles_b(self) -> None:
        """Profiles of a B-ALL or myeloma patient: normal cells as fitted (B cells by light chain,
        plasma cells by isotype and light chain), the antigen only where it is a real marker, and the
        tumour (B-precursor blasts or myeloma cells, of one light chain)."""
        P, a, lin, rng = self.P, self.a, self.lin, self.rng
        prof = {ct: P.mu[ct].copy() for ct in P.mu}
        self.prof = prof
        # the fitted B dispersions come from 5 cells (B-cell aplasia): genes of the programs set here
        # get the dispersion of a typical expressed gene
        own = [*L.B_BLAST_UP, *L.PLASMA_UP, *L.MYELOMA_UP, *L.IG_GENES, *MARKERS["B"],
               *MARKERS["plasma"], *lin.program, *lin.blast_specific, *lin.blast_supporting,
               *MYELOID_UP, self.p["antigen"]]  # fmt: skip
        phi = P.phi["B"].copy()
        phi[P.index(own)] = np.minimum(phi[P.index(own)], L.PROGRAM_PHI)
        self.blast_phi = self.b_phi = phi
        self.blast_light = "IGK" if rng.random() < L.LIGHT_USAGE["IGK"] else "IGL"
        self.blast_heavy = "IGHM" if lin.name == "B" else "IGHG1"
        cells = {("B", lt): self.b_cell(lt) for lt in L.LIGHT_USAGE}
        if lin.name == "plasma":
            cells |= {
                ("plasma", h, lt): self.plasma_cell(h, lt)
                for h in L.PLASMA_HEAVY
                for lt in L.LIGHT_USAGE
            }
        everything = [*prof.values(), *cells.values()]
        top = max(x[a] for x in everything)
        for x in everything:  # lineages that (nearly) do not express the antigen do not at all
            if x[a] < 0.1 * top or x[a] < 1e-6:
                x[a] = 0.0
        self.cells = {k: v / v.sum() for k, v in cells.items()}
        if lin.name == "B":
            blast = self.b_cell(self.blast_light)
            self._scale(blast, without(lin.mature, self.p["antigen"]), 0.15)
            self._scale(blast, ["IGHM"], 0.3)
            self._scale(blast, ["IGHD", "IGHG1", "IGHA1"], 0.05)
            self._scale(blast, list(L.LIGHT_GENES[self.blast_light]), 0.15)
            self._set(blast, L.B_BLAST_UP)
            normal = self.cells[("B", self.blast_light)]
        else:
            blast = self.plasma_cell(self.blast_heavy, self.blast_light)
            self._scale(blast, without(lin.mature, self.p["antigen"]), 0.15)
            self._set(blast, L.MYELOMA_UP)
            normal = self.cells[("plasma", self.blast_heavy, self.blast_light)]
        blast[a] = 1.5 * max(normal[a], 1e-4)
        self.blast = blast / blast.sum()
        self.blast_level = self.blast[a]

    def cnv_events(self) -> list[dict]:
        P, rng, p = self.P, self.rng, self.p
        excluded = {"chrX", "chrY", "chrM", P.chromosome[self.a]}
        chroms = [
            c
            for c in pd.unique(P.chromosome)
            if c not in excluded and (P.chromosome == c).sum() >= 60
        ]
        owners = ["trunk", "trunk"] + [
            f"S{k}"
            for k in range(p["n_subclones"])
            if not (k == 1 and p["minor_subclone_without_cnv"])
        ]
        picked = rng.choice(chroms, size=min(len(owners), len(chroms)), replace=False)
        events = []
        for j, (owner, ch) in enumerate(zip(owners, picked, strict=False)):
            genes = np.flatnonzero(P.chromosome == ch)
            kind = rng.choice(["whole", "first", "second"], p=[0.3, 0.35, 0.35])
            half = len(genes) // 2
            sel = genes if kind == "whole" else (genes[:half] if kind == "first" else genes[half:])
            dosage = 1.5 if (j % 2 == 0) else 0.5
            events.append(
                {
                    "owner": owner,
                    "chromosome": str(ch),
                    "start": int(P.start[sel[0]]),
                    "end": int(P.end[sel[-1]]),
                    "first_gene": str(P.genes[sel[0]]),
                    "last_gene": str(P.genes[sel[-1]]),
                    "n_genes": len(sel),
                    "dosage": dosage,
                    "_idx": sel,
                }
            )
        return events

    def subclone_profiles(self) -> None:
        P, rng, p = self.P, self.rng, self.p
        n = p["n_subclones"]
        self.events = self.cnv_events()
        if self.is_T:
            special = set(P.index([*BLAST_UP, *MATURE_DOWN, *T_PROGRAM, *MYELOID_UP, p["antigen"]]))
        else:
            lin = self.lin
            special = set(
                P.index(
                    [*L.B_BLAST_UP, *L.PLASMA_UP, *L.MYELOMA_UP, *L.IG_GENES, *lin.mature,
                     *lin.program, *lin.blast_specific, *MYELOID_UP, p["antigen"]]
                )
            )  # fmt: skip
        own = self.prof[self.base_type["malignant"]]
        visible = np.flatnonzero((own > 1e-4) & (own < 3e-3))
        visible = np.array([g for g in visible if g not in special])
        self.programs = {}
        self.sub_prof = {}
        for k in range(n):
            dose = np.ones(self.G)
            for e in self.events:
                if e["owner"] in ("trunk", f"S{k}"):
                    dose[e["_idx"]] *= e["dosage"]
            prog = np.zeros(self.G)
            if n > 1:  # each subclone: N_PROGRAM genes up or down 2-4 fold
                genes = rng.choice(visible, size=N_PROGRAM, replace=False)
                prog[genes] = rng.choice([-1.0, 1.0], size=N_PROGRAM) * rng.uniform(
                    1.0, 2.0, size=N_PROGRAM
                )
                self.programs[f"S{k}"] = [str(P.genes[g]) for g in genes]
            self.sub_prof[f"S{k}"] = (dose, prog)
        shift_genes = rng.choice(visible, size=150, replace=False)
        self.shift = np.zeros(self.G)
        self.shift[shift_genes] = p["relapse_shift"] * rng.normal(0, 1, size=150)
        self.shift_genes = [str(P.genes[g]) for g in shift_genes] if p["relapse_shift"] else []

    def blast_profile(self, sub: str, timepoint: str, level: float, switched: bool) -> np.ndarray:
        dose, prog = self.sub_prof[sub]
        base = self.blast.copy()
        if switched:
            base = 0.4 * base + 0.6 * self.prof["myeloid"]
            self._scale(base, self.switch_program, 0.02)
            self._set(base, MYELOID_UP)
        logfc = prog + (self.shift if timepoint == "relapse" else 0.0)
        prof = base * dose * np.exp2(logfc)
        prof[self.a] = 0.0
        prof *= (1 - self.blast_level * level) / prof.sum()
        prof[self.a] = self.blast_level * level * (self.sub_prof[sub][0][self.a])
        return prof / prof.sum()

    # ---- design of the two samples ----------------------------------------------------------------
    def shares(self) -> tuple[dict, dict, dict]:
        """Subclone shares at baseline and relapse, and antigen level per (subclone, timepoint)."""
        p = self.p
        n, mech, nf = p["n_subclones"], p["mechanism"], p["negative_fraction"]
        subs = [f"S{k}" for k in range(n)]
        neg = subs[-1] if n > 1 else None
        has_neg = mech in ("preexisting_negative_clone", "mixed") or (
            mech == "antigen_downregulation" and p["decoy_negative_minor"]
        )
        base = dict.fromkeys(subs, 0.0)
        minors = [s for s in subs[1:] if not (has_neg and s == neg)]
        if has_neg:
            base[neg] = nf
        for s in minors:
            base[s] = 0.25 / len(minors) if minors else 0.0
        base["S0"] = 1.0 - sum(base[s] for s in subs[1:])
        if base["S0"] < 0.05:
            raise InputError.single(
                f"negative_fraction={nf} leaves no room for the dominant subclone",
                field="negative_fraction",
            )
        rel = dict.fromkeys(subs, 0.0)

        def spread(total: float, among: list[str]) -> None:
            for s in among:
                rel[s] = total / len(among)

        if mech == "preexisting_negative_clone":
            rel[neg] = 0.85 if minors else 0.9
            rel["S0"] = 0.10
            spread(0.05, minors) if minors else None
        elif mech == "mixed":
            rel[neg], rel["S0"] = 0.45, 0.50
            spread(0.05, minors) if minors else None
            if not minors:
                rel["S0"] = 0.55
        elif mech in ("antigen_downregulation", "lineage_switch"):
            if has_neg:
                rel[neg] = min(0.5 * nf, 0.03)
            rest = 1 - sum(rel.values())
            others = minors
            rel["S0"] = rest - (0.15 if others else 0.0)
            spread(0.15, others) if others else None
        else:  # retained: the composition of baseline
            rel = dict(base)
        total = sum(rel.values())
        rel = {s: v / total for s, v in rel.items()}
        level = {}
        for s in subs:
            for t in ("baseline", "relapse"):
                lv = 1.0
                if has_neg and s == neg:
                    lv = 0.0
                if t == "relapse" and s == "S0" and mech in ("antigen_downregulation", "mixed"):
                    lv = 0.0 if np.isinf(p["fold"]) else 1.0 / p["fold"]
                if t == "relapse" and mech == "lineage_switch":
                    lv = 0.0
                level[(s, t)] = lv
        return base, rel, level

    # ---- cells ------------------------------------------------------------------------------------
    def run(self) -> AnnData:
        p, rng, P = self.p, self.rng, self.P
        self.base_profiles()
        self.subclone_profiles()
        base_share, rel_share, level = self.shares()
        n = p["n_cells"]
        G1 = self.G + 1  # genes + CAR feature
        car_share = P.car_prop[0] / P.info.get("coverage_T", 1.0)

        # TCR repertoires (and the tumour's IG clonotype in B-ALL and myeloma)
        if self.is_T:
            blast_clone = random_chains(rng) if p["tcr"] else None
        else:
            blast_clone = (
                random_ig_chains(rng, self.blast_heavy, self.blast_light) if p["ig"] else None
            )
        expanded_T = [random_chains(rng) for _ in range(6)]
        expanded_car = [random_chains(rng) for _ in range(8)]

        profiles: list[np.ndarray] = []
        phis: list[np.ndarray] = []
        keys: dict[tuple, int] = {}

        def profile_id(key: tuple, make) -> int:
            if key not in keys:
                prof, phi = make()
                full = np.zeros(G1)
                full[: self.G] = prof
                if key[0] in ("car_T", "car_blast"):
                    full[: self.G] *= 1 - car_share
                    full[self.G] = car_share
                profiles.append(full / full.sum())
                phis.append(np.append(phi, P.car_prop[2]))
                keys[key] = len(profiles) - 1
            return keys[key]

        obs_parts, pid_all, lib_all, contigs, empties = [], [], [], [], {}
        ambient_pools = {}
        for t, bf, shares in (
            ("baseline", p["blast_fraction_baseline"], base_share),
            ("relapse", p["blast_fraction_relapse"], rel_share),
        ):
            sample = f"{p['patient']}_{t}"
            n_blast = round(n * bf)
            comp = COMPOSITION[t] if self.is_T else COMPOSITION_B[self.lin.name][t]
            counts_ct = _apportion(n - n_blast, comp)
            subs = list(shares)
            n_sub = _apportion(n_blast, shares)
            rows = []
            for s in subs:
                lv = level[(s, t)]
                switched = t == "relapse" and p["mechanism"] == "lineage_switch"
                k = profile_id(
                    ("malignant", s, t, lv, switched),
                    lambda s=s, lv=lv, sw=switched, t=t: (
                        self.blast_profile(s, t, lv, sw),
                        self.blast_phi,
                    ),
                )
                rows += [("malignant", s, lv, k)] * n_sub[s]
                if not self.is_T:
                    self.ig_of[k] = (self.blast_heavy, self.blast_light)
            for ct, m in counts_ct.items():
                if not self.is_T and ct in ("normal_T", "car_T", "B", "plasma"):
                    rows += self.rows_b(ct, m, profile_id)
                elif ct == "normal_T":
                    m_neg = round(m * NORMAL_T_NEGATIVE[t])
                    k1 = profile_id(("normal_T", 1.0), lambda: (self.prof["T"], P.phi["T"]))
                    k0 = profile_id(
                        ("normal_T", 0.0), lambda: (_without(self.prof["T"], self.a), P.phi["T"])
                    )
                    rows += [("normal_T", "", 1.0, k1)] * (m - m_neg) + [
                        ("normal_T", "", 0.0, k0)
                    ] * m_neg
                elif ct == "car_T":
                    keep = p["car_product"] == "pebl"
                    prof = self.prof["T"] if keep else _without(self.prof["T"], self.a)
                    k = profile_id(("car_T", keep), lambda prof=prof: (prof, P.phi["T"]))
                    rows += [("car_T", "", 1.0 if keep else 0.0, k)] * m
                else:
                    lv = 1.0 if self.prof[ct][self.a] > 0 else 0.0
                    k = profile_id((ct,), lambda ct=ct: (self.prof[ct], P.phi[ct]))
                    rows += [(ct, "", lv, k)] * m
            order = rng.permutation(len(rows))
            rows = [rows[i] for i in order]
            ctype = np.array([r[0] for r in rows], dtype=object)
            pid = np.array([r[3] for r in rows])
            transduced = np.zeros(len(rows), dtype=bool)
            if t == "relapse" and p["car_transduced"] > 0:
                pid, transduced = self.transduce(rows, pid, profile_id)
            # library sizes: log-normal per cell type, then the sample median set to `depth`
            loglib = np.empty(len(rows))
            for ct in np.unique(ctype):
                sel = ctype == ct
                m_, s_ = P.loglib[self.base_type[ct]]
                rel = m_ - P.loglib["T"][0] + np.log(self.lib_rel(ct))
                loglib[sel] = rel + rng.normal(0, min(s_, 0.7), size=sel.sum())
            lib = np.exp(loglib)
            lib *= p["depth"] / np.median(lib)
            barcodes = _barcodes(rng, len(rows))
            obs = pd.DataFrame(
                {
                    "patient": p["patient"],
                    "sample": sample,
                    "timepoint": t,
                    "tissue": "BM",
                    "barcode": barcodes,
                    "truth_cell_type": ctype,
                    "truth_malignant": ctype == "malignant",
                    "truth_subclone": [r[1] for r in rows],
                    "truth_antigen_level": [r[2] for r in rows],
                    **({"truth_car_transduced": transduced} if p["car_transduced"] > 0 else {}),
                },
                index=[f"{sample}_{b}" for b in barcodes],
            )
            # TCR of T-lineage cells
            switched_sample = t == "relapse" and p["mechanism"] == "lineage_switch"
            clone_rows = []
            for b, ct, k in zip(barcodes, ctype, pid, strict=True):
                clone, has, cid = None, (False, False), ""
                if ct == "malignant" and blast_clone is not None:
                    clone, cid = blast_clone, "clonotype1"
                    # lineage-switched blasts keep the rearrangement but transcribe little TCR
                    capture = 0.35 if switched_sample else None
                    if self.is_T:
                        has = _tcr_capture(rng, capture or TCR_CAPTURE, 0.55)
                    else:  # pre-B blasts often lack a light chain; myeloma cells have one
                        light = 0.6 if self.lin.name == "B" else 0.95
                        has = _tcr_capture(rng, capture or IG_CAPTURE, light)
                elif ct in ("normal_T", "car_T"):
                    pool = expanded_T if ct == "normal_T" else expanded_car
                    frac = 0.12 if ct == "normal_T" else 0.3
                    if rng.random() < frac:
                        j = int(rng.integers(len(pool)))
                        clone, cid = pool[j], f"clonotype{(2 if ct == 'normal_T' else 10) + j}"
                    else:
                        clone, cid = random_chains(rng), f"clonotype_{b[:8]}"
                    has = _tcr_capture(rng, TCR_CAPTURE, 0.65)
                elif not self.is_T and ct in ("B", "plasma"):  # polyclonal IG
                    heavy, light = self.ig_of[int(k)]
                    if ct == "B":
                        heavy = str(rng.choice(list(B_HEAVY), p=list(B_HEAVY.values())))
                    clone, cid = random_ig_chains(rng, heavy, light), f"clonotype_{b[:8]}"
                    has = _tcr_capture(rng, IG_CAPTURE, 0.9)
                elif (
                    ct == "malignant" and rng.random() < 0.3
                ):  # no productive TCR: non-productive only
                    rows_of = contig_rows if self.is_T else ig_contig_rows
                    contigs += [dict(r, sample=sample) for r in rows_of(b, None, has, "None", rng)]
                if clone is not None and (has[0] or has[1]):
                    rows_of = ig_contig_rows if "light" in clone else contig_rows
                    contigs += [dict(r, sample=sample) for r in rows_of(b, clone, has, cid, rng)]
                clone_rows.append(
                    _clone_fields(clone, has)
                    if self.is_T
                    else _receptor_fields(clone, has, RECEPTOR_COLUMNS_B)
                )
            cf = pd.DataFrame(clone_rows, index=obs.index)
            obs = pd.concat([obs, cf], axis=1)
            obs_parts.append(obs)
            pid_all.append(pid)
            lib_all.append(lib)
            prof_mat = np.vstack(profiles)
            pool = np.bincount(pid, weights=lib, minlength=len(profiles)) @ prof_mat
            ambient_pools[sample] = pool / pool.sum()
            if p["empty_droplets"]:
                empties[sample] = self.empties(ambient_pools[sample], n)

        prof_mat = np.vstack(profiles)
        phi_mat = np.vstack(phis)
        X_parts = []
        for obs, pid, lib in zip(obs_parts, pid_all, lib_all, strict=True):
            amb = ambient_pools[obs["sample"].iloc[0]]
            X_parts.append(self.counts(prof_mat[pid], phi_mat[pid], lib, amb))
        X = sp.vstack(X_parts).tocsr()
        obs = pd.concat(obs_parts)
        obs["truth_antigen_level"] = obs["truth_antigen_level"].astype(float)
        obs["truth_antigen_negative"] = obs["truth_antigen_level"].to_numpy() == 0
        lev = prof_mat[np.concatenate(pid_all), self.a] / self.blast_level
        obs["truth_antigen_level"] = lev
        obs["truth_car"] = obs["truth_cell_type"] == "car_T"
        for c in ("patient", "sample", "timepoint", "tissue", "truth_cell_type", "receptor_chains"):
            obs[c] = obs[c].astype("category")

        var = pd.DataFrame(
            {
                "gene_ids": np.append(P.gene_ids, p["car_feature"]),
                "feature_types": "Gene Expression",
                "chromosome": np.append(P.chromosome, ""),
                "start": np.append(P.start, -1),
                "end": np.append(P.end, -1),
            },
            index=pd.Index(np.append(P.genes, p["car_feature"]), name=None),
        )
        adata = ad.AnnData(X=X, obs=obs, var=var)
        adata.layers["counts"] = X.copy()
        if p["protein"]:
            adata.obsm["protein"] = self.adt(obs)
            adata.obs["truth_protein_negative"] = self.protein_negative(obs)
        adata.uns["truth"] = self.truth(base_share, rel_share, level)
        adata.uns["vdj_contigs"] = (
            contig_table(contigs).assign(sample=[c["sample"] for c in contigs])
            if contigs
            else contig_table([]).assign(sample=pd.Series(dtype=str))
        )
        if empties:
            adata.uns["empty_droplets"] = empties
        return self.split_relapse(adata)

    def lib_rel(self, ct: str) -> float:
        """Library size of a cell type relative to its base type (blasts and plasma cells are larger)."""
        if self.is_T:
            return LIB_REL.get(ct, 1.0)
        return LIB_REL_B[self.lin.name].get(ct, 1.0)

    def rows_b(self, ct: str, m: int, profile_id) -> list[tuple]:
        """Rows of ``m`` normal T, CAR-T, B or plasma cells of a B-ALL or myeloma patient: T cells do
        not express the antigen (no antigen-negative subset, no knockout needed); B and plasma cells
        are dealt to light chains (and plasma cells to isotypes) by usage."""
        P, a = self.P, self.a
        if ct in ("normal_T", "car_T"):
            prof = self.prof["T"] if ct == "normal_T" else _without(self.prof["T"], a)
            lv = 1.0 if prof[a] > 0 else 0.0
            k = profile_id((ct, lv), lambda prof=prof: (prof, P.phi["T"]))
            return [(ct, "", lv, k)] * m
        if ct == "B":
            kinds = {("B", lt): share for lt, share in L.LIGHT_USAGE.items()}
        else:
            kinds = {
                ("plasma", h, lt): hs * ls
                for h, hs in L.PLASMA_HEAVY.items()
                for lt, ls in L.LIGHT_USAGE.items()
            }
        rows = []
        for key, mm in _apportion(m, kinds).items():
            prof = self.cells[key]
            k = profile_id(key, lambda prof=prof: (prof, self.b_phi))
            self.ig_of[k] = ("IGHM", key[1]) if ct == "B" else (key[1], key[2])
            rows += [(ct, "", 1.0 if prof[a] > 0 else 0.0, k)] * mm
        return rows

    def transduce(self, rows: list, pid: np.ndarray, profile_id) -> tuple[np.ndarray, np.ndarray]:
        """Give ``car_transduced`` of the relapse blasts the CAR transgene (their own blast profile plus
        the CAR feature at the CAR-T cells' share): chosen with a generator of their own, so that the
        main random stream is that of a patient without them."""
        p = self.p
        blasts = np.flatnonzero(np.array([r[0] == "malignant" for r in rows], dtype=bool))
        k = round(p["car_transduced"] * len(blasts))
        transduced = np.zeros(len(rows), dtype=bool)
        if k == 0:
            return pid, transduced
        own = np.random.default_rng([int(p["seed"]), 7])
        chosen = own.choice(blasts, size=k, replace=False)
        pid = pid.copy()
        switched = p["mechanism"] == "lineage_switch"
        for i in chosen:
            _, s, lv, _ = rows[i]
            pid[i] = profile_id(
                ("car_blast", s, "relapse", lv, switched),
                lambda s=s, lv=lv: (
                    self.blast_profile(s, "relapse", lv, switched),
                    self.blast_phi,
                ),
            )
        transduced[chosen] = True
        return pid, transduced

    def split_relapse(self, adata: ad.AnnData) -> ad.AnnData:
        """Deal the relapse cells to one sample per relapse site (nothing to do for one site)."""
        p, sites = self.p, [str(s) for s in self.p["relapse_sites"]]
        obs = adata.obs
        relapse = (obs["timepoint"].astype(str) == "relapse").to_numpy()
        if len(sites) == 1:
            obs["tissue"] = obs["tissue"].astype(str).where(~relapse, sites[0]).astype("category")
            return adata
        old = f"{p['patient']}_relapse"
        site = self.rng.integers(len(sites), size=int(relapse.sum()))
        sample = obs["sample"].astype(str).to_numpy().copy()
        tissue = obs["tissue"].astype(str).to_numpy().copy()
        sample[relapse] = [f"{old}_{sites[k]}" for k in site]
        tissue[relapse] = [sites[k] for k in site]
        obs["sample"] = pd.Categorical(sample)
        obs["tissue"] = pd.Categorical(tissue)
        adata.obs_names = [f"{s}_{b}" for s, b in zip(sample, obs["barcode"], strict=True)]
        contigs = adata.uns["vdj_contigs"]
        if len(contigs):
            where = dict(zip(obs["barcode"].astype(str)[relapse], sample[relapse], strict=True))
            rel = contigs["sample"].astype(str) == old
            contigs.loc[rel, "sample"] = contigs.loc[rel, "barcode"].astype(str).map(where)
        empties = adata.uns.get("empty_droplets")
        if empties and old in empties:  # the sites shared one ambient pool: each gets its empties
            for s in sites:
                empties[f"{old}_{s}"] = empties[old]
            del empties[old]
        return adata

    def counts(
        self, prof: np.ndarray, phi: np.ndarray, lib: np.ndarray, amb: np.ndarray
    ) -> sp.csr_matrix:
        """Gamma-Poisson (NB) counts of the cells' own RNA plus Poisson ambient counts."""
        rng, a = self.rng, self.p["ambient"]
        shape = (1.0 / phi).astype(np.float32)
        lam = rng.standard_gamma(shape, dtype=np.float32)
        lam *= (prof * phi).astype(
            np.float32
        )  # Gamma(1/φ, φ) · profile = standard_gamma · φ · profile
        lam *= ((1 - a) * lib).astype(np.float32)[:, None]
        lam += (a * lib).astype(np.float32)[:, None] * amb.astype(np.float32)[None, :]
        y = rng.poisson(lam).astype(np.int32)
        return sp.csr_matrix(y)

    def empties(self, amb: np.ndarray, n: int) -> dict:
        rng = self.rng
        m = 2 * n
        lib = np.exp(rng.normal(np.log(25), 0.8, size=m))
        y = rng.poisson(lib[:, None] * amb[None, :]).astype(np.int32)
        out = {"counts": sp.csr_matrix(y), "barcodes": np.array(_barcodes(rng, m), dtype=object)}
        if self.p["protein"]:  # free antibody in empty droplets: background only
            k = len(_adt_names(self.p))
            out["protein"] = rng.poisson(rng.gamma(2.0, 2.0, size=(m, k))).astype(np.int32)
        return out

    def adt(self, obs: pd.DataFrame) -> pd.DataFrame:
        rng, p = self.rng, self.p
        names = _adt_names(p)
        ct = obs["truth_cell_type"].astype(str).to_numpy()
        switched = (
            (p["mechanism"] == "lineage_switch")
            & (obs["timepoint"].astype(str).to_numpy() == "relapse")
            & (ct == "malignant")
        )
        level = obs["truth_antigen_level"].to_numpy()
        fg = {}
        ag = np.where(self.protein_negative(obs), 0.0, 150.0 * np.minimum(level, 2.0))
        fg[p["antigen"]] = ag
        t_like = np.isin(ct, ["normal_T", "car_T"])
        blast = (ct == "malignant") & ~switched
        if self.is_T:  # T-ALL blasts: some (cytoplasmic) CD3
            fg["CD3"] = np.where(t_like, 200.0, np.where(blast, 30.0, 0.0))
            fg["CD19"] = np.where(ct == "B", 150.0, 0.0)
        else:  # B-ALL blasts are CD19-positive; plasma and myeloma cells are not
            fg["CD3"] = np.where(t_like, 200.0, 0.0)
            b_like = (ct == "B") | (blast & (self.lin.name == "B"))
            fg["CD19"] = np.where(b_like, 150.0, 0.0)
            fg[p["antigen"]] = ag  # the antigen's own foreground (CD19 as a CAR target)
        fg["CD33"] = np.where((ct == "myeloid") | switched, 120.0, 0.0)
        out = {}
        for name in names:
            bg = rng.gamma(2.0, 4.0, size=len(obs))  # background: mean 8, overdispersed
            fgm = fg.get(name, np.zeros(len(obs))) * rng.gamma(4.0, 0.25, size=len(obs))
            out[f"{name}_TotalSeqC"] = rng.poisson(bg + fgm).astype(np.int32)
        return pd.DataFrame(out, index=obs.index)

    def protein_negative(self, obs: pd.DataFrame) -> np.ndarray:
        """Cells without the antigen's surface protein: no RNA, a PEBL-like product (protein kept inside
        the CAR-T cell) or, with ``protein_loss``, relapse blasts (RNA kept, protein lost)."""
        p = self.p
        ct = obs["truth_cell_type"].astype(str).to_numpy()
        out = obs["truth_antigen_negative"].to_numpy(bool).copy()
        if p["car_product"] == "pebl":
            out |= ct == "car_T"
        if p["protein_loss"]:
            out |= (ct == "malignant") & (obs["timepoint"].astype(str).to_numpy() == "relapse")
        return out

    def truth(self, base_share: dict, rel_share: dict, level: dict) -> dict:
        p = self.p
        subs = list(base_share)
        table = {
            "subclone": subs,
            "share_baseline": [float(base_share[s]) for s in subs],
            "share_relapse": [float(rel_share[s]) for s in subs],
            "antigen_level_baseline": [float(level[(s, "baseline")]) for s in subs],
            "antigen_level_relapse": [float(level[(s, "relapse")]) for s in subs],
            "has_own_cnv": [any(e["owner"] == s for e in self.events) for s in subs],
        }
        neg_b = sum(base_share[s] for s in subs if level[(s, "baseline")] == 0)
        neg_r = sum(rel_share[s] for s in subs if level[(s, "relapse")] == 0)
        params = {k: (str(v) if v is None else v) for k, v in p.items()}
        params["fold"] = float(p["fold"])
        params["relapse_sites"] = [
            str(s) for s in p["relapse_sites"]
        ]  # h5ad stores lists, not tuples
        seen = p["mechanism"]
        if p["protein_loss"] and seen == "antigen_retained":
            seen = "antigen_downregulation"  # what the CAR sees: the protein went, the RNA stayed
        return {
            "mechanism": seen,
            "rna_mechanism": p["mechanism"],
            "params": params,
            **{
                k: params[k]
                for k in ("negative_fraction", "fold", "depth", "seed", "antigen", "n_cells")
            },
            "negative_fraction_baseline": float(neg_b),
            "negative_fraction_relapse": float(neg_r),
            "subclones": table,
            "cnvs": {
                k: [e[k] for e in self.events]
                for k in (
                    "owner",
                    "chromosome",
                    "start",
                    "end",
                    "first_gene",
                    "last_gene",
                    "n_genes",
                    "dosage",
                )
            },
            "subclone_program_genes": self.programs,
            "relapse_shift_genes": self.shift_genes,
            "lineage": self.lin.name,
            "blast_tcr": "none" if not (p["tcr"] and self.is_T) else "clonotype1",
            "blast_receptor": "none" if not (p["tcr"] if self.is_T else p["ig"]) else "clonotype1",
            "blast_receptor_loci": list(self.lin.loci[:2])
            if self.is_T
            else ["IGH", getattr(self, "blast_light", "IGK")],
            "normal_T_negative_fraction": dict(NORMAL_T_NEGATIVE)
            if self.is_T
            else dict.fromkeys(NORMAL_T_NEGATIVE, 0.0),
            "tcr_capture": TCR_CAPTURE,
            "ig_capture": IG_CAPTURE,
            "simulator_params": "carpall_params.npz (fitted to CARPALL 10x data)",
        }


def _tcr_capture(rng: np.random.Generator, capture: float, p_tra: float) -> tuple[bool, bool]:
    """(TRB, TRA) productive chains recovered in one cell: the cell's VDJ library is captured at all
    with ``capture``; then TRB with 0.95, TRA with ``p_tra`` (as in CARPALL: TRA mostly with TRB)."""
    if rng.random() >= capture:
        return False, False
    return bool(rng.random() < 0.95), bool(rng.random() < p_tra)


def _adt_names(p: dict) -> list[str]:
    return [p["antigen"], *[m for m in ADT if m != p["antigen"]]]


def _without(prof: np.ndarray, i: int) -> np.ndarray:
    out = prof.copy()
    out[i] = 0.0
    return out / out.sum()


def _apportion(n: int, shares: dict[str, float]) -> dict[str, int]:
    """Integer counts summing to n in proportion to shares (largest remainder)."""
    keys = list(shares)
    w = np.array([shares[k] for k in keys], dtype=float)
    w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / len(w))
    raw = w * n
    base = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - base))[: n - base.sum()]:
        base[i] += 1
    return dict(zip(keys, base.tolist(), strict=True))


def _barcodes(rng: np.random.Generator, n: int) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    letters = np.array(list("ACGT"))
    while len(out) < n:
        codes = rng.integers(0, 4, size=(n, 16))
        for row in codes:
            b = "".join(letters[row]) + "-1"
            if b not in seen:
                seen.add(b)
                out.append(b)
                if len(out) == n:
                    break
    return out


def _clone_fields(clone: dict | None, has: tuple[bool, bool]) -> dict:
    """The VDJ reader's columns of a T-ALL patient's cell (TRB, TRA)."""
    from ._tcr import translate

    b, a = (clone is not None and has[0]), (clone is not None and has[1])
    parts = ([f"TRB:{clone['TRB_nt']}"] if b else []) + ([f"TRA:{clone['TRA_nt']}"] if a else [])
    return {
        "clone_id": ";".join(parts) if parts else np.nan,
        "receptor_chains": "TRA+TRB" if a and b else ("TRA" if a else ("TRB" if b else "none")),
        "trb_cdr3": translate(clone["TRB_nt"]) if b else np.nan,
        "tra_cdr3": translate(clone["TRA_nt"]) if a else np.nan,
    }


#: receptor loci whose chains make a B-ALL or myeloma patient's clonotypes (``LINEAGES[...].loci``, as
#: ``io.read_vdj(loci=...)`` reads them in a B-lineage run; T cells' TCRs are in the contigs only)
RECEPTOR_COLUMNS_B = ("IGH", "IGK", "IGL")


def _receptor_fields(clone: dict | None, has: tuple[bool, bool], loci: tuple[str, ...]) -> dict:
    """The VDJ reader's columns of one cell with a TCR (TRB, TRA) or an IG (IGH, light chain), counting
    the chains of ``loci`` only: ``clone_id`` (``'<locus>:<cdr3 nt>'`` joined by ``;``, heavy/beta
    chain first), ``receptor_chains`` (loci with a productive chain, sorted, joined by ``+``;
    ``'none'``) and ``<locus>_cdr3`` (amino acids) for every locus in ``loci``."""
    from ._tcr import translate

    chains = []
    if clone is not None:
        first, second = ("IGH", clone["light"]) if "light" in clone else ("TRB", "TRA")
        chains = [c for c, on in ((first, has[0]), (second, has[1])) if on and c in loci]
    out = {
        "clone_id": ";".join(f"{c}:{clone[f'{c}_nt']}" for c in chains) if chains else np.nan,
        "receptor_chains": "+".join(sorted(chains)) if chains else "none",
    }
    for locus in loci:
        out[f"{locus.lower()}_cdr3"] = (
            translate(clone[f"{locus}_nt"]) if locus in chains else np.nan
        )
    return out
