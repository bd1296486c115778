"""The whole pipeline on semi-synthetic patients made of real CARPALL cells (issue 19, item 5).

Each patient is built from real 10x counts of ../shared/data/carpall, written as a user's files (per-sample
10x HDF5 + ``filtered_contig_annotations.csv`` + a sample sheet + a config), read back with
``ce.io.load_config``/``ce.io.read_patient`` and run through the stages as ``cd7escape run`` runs them
(``qc → embed(umap=False) → call_malignant → antigen_state → subclones → classify_relapse``, public API,
the arguments of a default config with ``car_feature: CAT_scFv`` and ``n_bootstrap = --boot``), once with
malignant labels (a ``malignant_labels`` barcode file per sample → ``obs['user_malignant']``) and once
without (the tool finds the malignant cells itself).

Raw material, per source pool (one CARPALL child, so that every cell of a patient shares one genome):

- **blasts**: real T cells (CD3 or a productive TRA/TRB) of the pool's sorted CD3+CAT+ samples. They are
  clustered once (normalize, log1p, 2,000 HVGs without CD7 and the CAR, 20 PCs, Leiden 0.5); a cluster is a
  subclone. A subclone that must express CD7 (S0, dominant; S1, minor) is drawn only from clusters whose
  pooled CD7 rate (UMIs per 10k) is at least ``--positive-min-rate`` (0.5) times the highest cluster's of all
  pools, a model-free criterion; the negative subclone (Sneg) may be any other cluster. The CAR transcript
  of a blast is removed (p = 0 thinning of ``CAT_scFv``: blasts are not transduced). Every blast carries one
  leukemic clonotype (random TRB and TRA CDR3 per patient), written into the blast's own real contig rows:
  a chain is present where the real cell had a productive one, so TCR detection stays real.
- **copy number**: heterozygous losses made by binomial thinning (p = 0.5) of every gene on a chromosome arm
  (positions from ``ce.io.gene_table``): a trunk loss in all blasts (9p, 6q, 12p or 11q) and a subclonal
  loss (5q, 13q, 17p, 4q or 18q) in one subclone (Sneg for seeds 0 and 2 when the patient has one,
  else S1).
- **normal background** from the pool's unsorted (NoSo, not product) samples: real non-T cells (no CD3, no
  productive TRA/TRB; myeloid, NK, granulocytes, a few B/erythroid) and real polyclonal T cells (without CAR
  counts), with their real contigs; up to 200 non-T and 100 T cells per sample.
- **CAR-T cells** at relapse: 80 real cells with ``CAT_scFv`` counts from the sorted samples (not blasts of
  the same patient), with their real contigs.
- **CD7 loss**: binomial thinning of the real CD7 counts with p = 0 for negative cells and 1/fold for
  downregulation, so the remaining cells keep their real dropout. Baseline and relapse draw disjoint cells.

Design (300 baseline blasts, 250 relapse blasts, or ``--blasts``; shares of blasts, baseline → relapse):

- ``preexisting`` (truth pre-existing negative clone): Sneg at 1, 2, 3, 5, 10 % of baseline blasts, S1 15 %,
  S0 the rest → relapse Sneg 85 %, S0 10 %, S1 5 %.
- ``downregulation`` (truth downregulation): S0 85 %, S1 15 % at both; S0 keeps CD7 with p = 1/fold at relapse,
  fold 2, 4, 10, complete.
- ``retained``: S0 85 %, S1 15 %, CD7 unchanged.
- decoys: ``decoy_minor_negative`` (Sneg 5 % at both timepoints, does not expand, S0 loses CD7 completely:
  truth downregulation); ``decoy_retained_negative_minor`` (Sneg 5 % at both, nothing else changes: truth
  retained); ``decoy_low_depth`` (retained, every relapse count thinned to 40 %: truth retained).
- ``mixed`` (truth mixed): Sneg at 10 or 30 % of baseline blasts, S1 15 %, S0 the rest → relapse Sneg 45 %,
  S0 50 % (CD7 lost completely), S1 5 %. At 30 % the negative subclone grows only 1.5-fold yet supplies
  half the negative relapse cells.

15 settings × ``--seeds`` (3) × pools (``--pools P02,P11``) = 90 patients, each run with and without labels
(the two mixed settings are numbered last, ids 78-89 at the defaults, so that the others keep their ids).
Identifiable: pre-existing and mixed with ≥ 10 baseline Sneg cells after QC, downregulation with fold ≥ 4,
the others always. The naive zero-count call (``naive_baseline.naive_call``: Leiden clusters of the malignant cells,
share of zero CD7 counts at relapse vs baseline, no dropout model, no clone link) runs on the same patients
and the same malignant cells (the labels, or the tool's own calls without labels).

    nice python benchmarks/semisynthetic.py [--boot 25] [--jobs 1] [--limit N] [--only IDS]
        [--seeds 3] [--pools P02,P11] [--blasts 300,250] [--pipeline-seed 0]
        [--out benchmarks/out/semisynthetic.csv] [--summary-only]

Only P02 and P11 have a CD7-expressing cluster large enough to play S0 at 300 + 250 blasts; with
``--pools P10 --blasts 150,125`` a third child (four CD7-expressing clusters of 37-241 cells) plays
patients of half the size.

To measure one commit while others edit the tree, run a snapshot of its ``src`` (PYTHONPATH comes before
the editable install)::

    mkdir -p /tmp/snap && git archive <commit> src | tar -x -C /tmp/snap && PYTHONPATH=/tmp/snap/src nice python \
        benchmarks/semisynthetic.py --out benchmarks/out/semisynthetic_<commit>.csv

One csv row per patient and labels setting, appended as it finishes; a rerun skips rows already in
``--out``. Needs ../shared/data/carpall (skips otherwise). Nothing is written into the repository except
``--out``; the real-cell pool is cached under /tmp and each patient's files live in a temporary folder.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "carpall"
CACHE = Path("/tmp/cd7escape_semisynthetic_v1")
FAILED = {"CAR-T10593347"}  # a failed library (median 2 UMIs)
CAR = "CAT_scFv"
ANTIGEN = "CD7"
MIN_UMIS = 500
N_BASELINE, N_RELAPSE = 300, 250
N_NONT, N_NORMAL_T, N_CAR_T = 200, 100, 80
LOW_DEPTH = 0.4

# GRCh38 centromere midpoints (Mb) of the chromosomes whose arms lose a copy
CENTROMERE_MB = {"chr4": 50.0, "chr5": 48.8, "chr6": 59.8, "chr9": 43.0, "chr11": 53.4,
                 "chr12": 35.5, "chr13": 17.7, "chr17": 24.7, "chr18": 17.2}  # fmt: skip
TRUNK_ARMS = ("9p", "6q", "12p", "11q")
SUBCLONE_ARMS = ("5q", "13q", "17p", "4q", "18q")

#: the trace's numbers (``numbers['trace']``) a row carries: its negative share among the ancestors, their
#: effective number (capped and not) and the negative founder that the share's upper bound cannot exclude
TRACE_KEYS = (
    "pi", "ci_low", "ci_high", "n_effective", "n_effective_uncapped", "n_cells", "hidden_founder_cells",
    "negative_relapse_cells",
)  # fmt: skip

#: the csv's columns, in order (every row has all of them, so that appended rows stay aligned)
COLUMNS = [
    "id", "pool", "seed", "group", "mechanism", "negative_fraction", "fold", "depth", "labels",
    "S0", "S1", "Sneg", "rate_S0", "rate_S1", "trunk_arm", "subclone_arm", "subclone_cnv_owner",
    "n_trunk_genes", "n_subclone_genes", "n_cells_qc", "n_blasts_qc", "n_blasts_built", "n_neg_baseline", "n_neg_baseline_built", "identifiable",
    "call", "confidence", "rule", "reason", "pi_baseline", "pi_relapse", "zero_baseline", "zero_relapse",
    "malignant_baseline", "malignant_relapse", "share_preexisting", "share_downregulation",
    "share_persisting", "share_unresolved", "share_unmapped", "malignant_precision", "malignant_recall",
    "malignant_f1", "n_car_t", "car_t_called_malignant", "normal_called_malignant", "blasts_cnv_altered",
    "blasts_tcr_leukemic", "naive_call", "naive_zero_baseline", "naive_zero_relapse",
    "naive_negative_baseline_clusters", "seconds_build", "seconds_ingest", "seconds_qc", "seconds_embed",
    "seconds_malignant", "seconds_antigen", "seconds_clones", "seconds_classify", "seconds_total",
    "subclone_call", *(f"trace_{k}" for k in TRACE_KEYS),
    "oracle_call", "oracle_pi", "oracle_ci_low", "oracle_ci_high", "oracle_cn_malignant_precision",
    "oracle_cn_malignant_recall", "oracle_cn_malignant_f1", "supervised_trace_purity", "trace_space_purity",
    "pipeline_seed",
    "bootstrap_calls",
]  # fmt: skip

#: answers that are no call (the naive approach without malignant cells cannot call)
NO_CALL = ["indeterminate", "no_malignant_cells"]

TRUTH = {
    "preexisting": "preexisting_negative_clone",
    "downregulation": "antigen_downregulation",
    "retained": "antigen_retained",
    "decoy_minor_negative": "antigen_downregulation",
    "decoy_retained_negative_minor": "antigen_retained",
    "decoy_low_depth": "antigen_retained",
    "mixed": "mixed",
}


# ----------------------------------------------------------------------------------------------- the pool
def _dense(a, gene: str) -> np.ndarray:
    return np.asarray(a[:, gene].X.todense()).ravel()


_POOL: tuple | None = None


def pool():
    """Real cells of the CARPALL children, roles and clusters, with their contig rows (cached)."""
    import anndata as ad

    global _POOL
    if _POOL is not None:
        return _POOL
    h5, csv = CACHE.with_suffix(".h5ad"), CACHE.with_suffix(".contigs.csv.gz")
    if h5.exists() and csv.exists():
        _POOL = ad.read_h5ad(h5), pd.read_csv(csv, dtype=str, keep_default_na=False)
        return _POOL
    import scanpy as sc

    import cd7escape as ce

    md = pd.read_csv(DATA / "metadata.tsv", sep="\t")
    parts, contigs = [], []
    for _, row in md.iterrows():
        s = row["GEX_Sample"]
        if s in FAILED or row["Source"] == "PROD":
            continue
        a = ce.io.read_10x_h5(DATA / "gex" / f"{s}.h5")
        raw = pd.read_csv(
            DATA / "vdj" / f"{row['TCR_Sample']}.csv", dtype=str, keep_default_na=False
        )
        vdj = ce.io.read_vdj(DATA / "vdj" / f"{row['TCR_Sample']}.csv")
        productive = a.obs_names.isin(vdj.index[vdj["clone_id"].notna()])
        total = np.asarray(a.X.sum(1)).ravel()
        cd3 = sum(_dense(a, g) for g in ("CD3E", "CD3D", "CD3G"))
        t_cell = (cd3 > 0) | productive
        car = _dense(a, CAR) > 0
        if row["Sort"] == "CD3+CAT+":
            role = np.where(t_cell, "sorted_T", "")
        else:
            role = np.select([car, t_cell], ["", "normal_T"], "nonT")
        keep = (total >= MIN_UMIS) & (role != "")
        a = a[keep].copy()
        a.obs["barcode"] = a.obs_names.astype(str)
        a.obs["source"] = s
        a.obs["person"] = row["Patient"]
        a.obs["role"] = role[keep]
        a.obs["car"] = car[keep]
        a.obs_names = [f"{s}_{b}" for b in a.obs_names]
        r = raw[raw["barcode"].isin(set(a.obs["barcode"]))].copy()
        r["cell"] = s + "_" + r["barcode"]
        contigs.append(r)
        parts.append(a)
    full = ad.concat(parts, join="inner", merge="same")
    full.obs["cluster"] = ""
    for person in sorted(full.obs["person"].unique()):
        sel = (full.obs["person"] == person).to_numpy() & (
            full.obs["role"] == "sorted_T"
        ).to_numpy()
        if sel.sum() < 300:
            continue
        t = full[sel].copy()
        sc.pp.normalize_total(t, target_sum=1e4)
        sc.pp.log1p(t)
        sc.pp.highly_variable_genes(t, n_top_genes=2000)
        t.var.loc[[ANTIGEN, CAR], "highly_variable"] = False
        t = t[:, t.var["highly_variable"].to_numpy()].copy()
        sc.pp.scale(t, max_value=10)
        sc.pp.pca(t, n_comps=20, random_state=0)
        sc.pp.neighbors(t, random_state=0)
        sc.tl.leiden(t, resolution=0.5, flavor="igraph", n_iterations=2, directed=False, random_state=0)  # fmt: skip
        full.obs.loc[t.obs_names, "cluster"] = f"{person}:c" + t.obs["leiden"].astype(str)
    full.layers.clear()
    for key in ("source", "person", "role", "cluster", "barcode"):
        full.obs[key] = full.obs[key].astype(str)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    full.write_h5ad(h5)
    pd.concat(contigs, ignore_index=True).to_csv(csv, index=False)
    _POOL = full, pd.read_csv(csv, dtype=str, keep_default_na=False)
    return _POOL


def cluster_table(P) -> pd.DataFrame:
    """Size and pooled CD7 UMIs per 10k UMIs of every cluster of sorted T cells."""
    obs = P.obs
    t = (obs["role"] == "sorted_T").to_numpy() & (obs["cluster"] != "").to_numpy()
    x = P.X[t]
    cd7 = np.asarray(x[:, P.var_names.get_loc(ANTIGEN)].todense()).ravel()
    tot = np.asarray(x.sum(1)).ravel()
    cl = obs["cluster"].to_numpy()[t]
    g = pd.DataFrame({"cd7": cd7, "tot": tot, "det": cd7 > 0, "cl": cl}).groupby("cl")
    out = pd.DataFrame({"n": g.size(), "rate": 1e4 * g["cd7"].sum() / g["tot"].sum(),
                        "detected": g["det"].mean()})  # fmt: skip
    out["person"] = [c.split(":")[0] for c in out.index]
    return out


# ----------------------------------------------------------------------------------------------- the grid
def grid(pools: list[str], seeds: int) -> list[dict]:
    settings = [
        dict(group="preexisting", negative_fraction=f) for f in (0.01, 0.02, 0.03, 0.05, 0.10)
    ]
    settings += [dict(group="downregulation", fold=f) for f in (2.0, 4.0, 10.0, np.inf)]
    settings += [dict(group="retained")]
    settings += [dict(group="decoy_minor_negative", negative_fraction=0.05, fold=np.inf)]
    settings += [dict(group="decoy_retained_negative_minor", negative_fraction=0.05)]
    settings += [dict(group="decoy_low_depth", depth=LOW_DEPTH)]
    # added later, numbered after the others so that those keep their ids (a patient's draws follow its id):
    # mixed relapses, one with a negative subclone too large to grow 2-fold
    later = [dict(group="mixed", negative_fraction=f, fold=np.inf) for f in (0.10, 0.30)]
    rows = []
    for block in (settings, later):
        for seed in range(
            seeds
        ):  # seeds outermost: a partial run (--limit) covers every setting and pool
            for p in pools:
                for s in block:
                    rows.append({"id": len(rows), "pool": p, "seed": seed, "mechanism": TRUTH[s["group"]],
                                 "negative_fraction": 0.0, "fold": 1.0, "depth": 1.0, **s})  # fmt: skip
    return rows


def compositions(row: dict) -> tuple[dict, dict]:
    g, nf = row["group"], row["negative_fraction"]
    if g == "preexisting":
        return {"S0": 0.85 - nf, "S1": 0.15, "Sneg": nf}, {"S0": 0.10, "S1": 0.05, "Sneg": 0.85}
    if g == "mixed":
        return {"S0": 0.85 - nf, "S1": 0.15, "Sneg": nf}, {"S0": 0.50, "S1": 0.05, "Sneg": 0.45}
    if g in ("decoy_minor_negative", "decoy_retained_negative_minor"):
        base = {"S0": 0.80, "S1": 0.15, "Sneg": nf}
        return base, dict(base)
    return {"S0": 0.85, "S1": 0.15}, {"S0": 0.85, "S1": 0.15}


def cd7_keep(row: dict, sub: str, tp: str) -> float:
    if sub == "Sneg":
        return 0.0
    if (
        tp == "relapse"
        and sub == "S0"
        and row["group"] in ("downregulation", "decoy_minor_negative", "mixed")
    ):
        return 0.0 if np.isinf(row["fold"]) else 1.0 / row["fold"]
    return 1.0


# -------------------------------------------------------------------------------------------- a patient
_AA = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
_CODON = {a + b + c: _AA[16 * i + 4 * j + k] for i, a in enumerate("TCAG")
          for j, b in enumerate("TCAG") for k, c in enumerate("TCAG")}  # fmt: skip


def _cdr3(rng) -> tuple[str, str]:
    """(nt, aa) of a productive-looking CDR3: Cys, 10-15 codons without a stop, Phe."""
    sense = [c for c, a in _CODON.items() if a != "*"]
    mid = [sense[i] for i in rng.integers(0, len(sense), int(rng.integers(10, 16)))]
    nt = "TGT" + "".join(mid) + str(rng.choice(["TTT", "TTC"]))
    return nt, "".join(_CODON[nt[i : i + 3]] for i in range(0, len(nt), 3))


def leukemic_clonotype(rng) -> dict:
    b_nt, b_aa = _cdr3(rng)
    a_nt, a_aa = _cdr3(rng)
    bj = str(rng.choice(["TRBJ1-1", "TRBJ1-2", "TRBJ1-5", "TRBJ2-1", "TRBJ2-3", "TRBJ2-7"]))
    return {
        "TRB": dict(v_gene=str(rng.choice(["TRBV5-1", "TRBV7-9", "TRBV12-3", "TRBV20-1", "TRBV28"])),
                    j_gene=bj, c_gene="TRBC1" if bj.startswith("TRBJ1") else "TRBC2",
                    d_gene="TRBD1", cdr3=b_aa, cdr3_nt=b_nt),
        "TRA": dict(v_gene=str(rng.choice(["TRAV1-2", "TRAV8-4", "TRAV12-2", "TRAV21", "TRAV38-2/DV8"])),
                    j_gene=str(rng.choice(["TRAJ20", "TRAJ33", "TRAJ42", "TRAJ49"])), c_gene="TRAC",
                    d_gene="", cdr3=a_aa, cdr3_nt=a_nt),
    }  # fmt: skip


def _true(s: pd.Series) -> np.ndarray:
    return s.str.strip().str.lower().isin(["true", "t", "1", "yes"]).to_numpy()


def blast_contigs(rows: pd.DataFrame, clone: dict) -> pd.DataFrame:
    """A real cell's contigs with its productive TRA/TRB replaced by the leukemic chains (best one kept)."""
    counted = (
        _true(rows["productive"])
        & rows["chain"].isin(["TRA", "TRB"]).to_numpy()
        & _true(rows["is_cell"])
        & _true(rows["high_confidence"])
        & (rows["cdr3_nt"].str.strip() != "").to_numpy()
    )
    out = [rows[~counted]]
    for chain in ("TRB", "TRA"):
        c = rows[counted & (rows["chain"] == chain).to_numpy()]
        if c.empty:
            continue
        order = np.lexsort(
            (-pd.to_numeric(c["reads"]).to_numpy(), -pd.to_numeric(c["umis"]).to_numpy())
        )
        best = c.iloc[[order[0]]].copy()
        for k, v in clone[chain].items():
            best[k] = v
        best["raw_clonotype_id"] = "clonotype_leukemic"
        out.append(best)
    return pd.concat(out)


def arm_genes(var_names: pd.Index, arm: str) -> np.ndarray:
    import cd7escape as ce

    chrom, side = "chr" + arm[:-1], arm[-1]
    gt = ce.io.gene_table()
    gt = gt[gt["chromosome"].astype(str) == chrom]
    cen = CENTROMERE_MB[chrom] * 1e6
    names = gt.index[(gt["end"] <= cen) if side == "p" else (gt["start"] >= cen)]
    cols = var_names.get_indexer(pd.Index(names).unique())
    return np.unique(cols[cols >= 0])


def make_patient(P, contigs: pd.DataFrame, clusters: pd.DataFrame, row: dict, outdir: Path,
                 *, positive_min_rate: float) -> dict:  # fmt: skip
    """Write the patient's inputs into ``outdir``; return the truth (per cell) and the design."""
    import anndata as ad
    import scipy.sparse as sp

    import cd7escape as ce

    rng = np.random.default_rng([20250519, row["id"]])
    pid = f"ss{row['id']:03d}"
    base, rel = compositions(row)
    n_b, n_r = row.get("n_baseline", N_BASELINE), row.get("n_relapse", N_RELAPSE)
    n = {(tp, s): round(N * share) for tp, comp, N in
         (("baseline", base, n_b), ("relapse", rel, n_r)) for s, share in comp.items()}  # fmt: skip
    need = {s: n.get(("baseline", s), 0) + n.get(("relapse", s), 0) for s in ("S0", "S1", "Sneg")}
    cl = clusters[clusters["person"] == row["pool"]]
    top = clusters.loc[clusters["n"] >= 50, "rate"].max()
    positive = cl.index[cl["rate"] >= positive_min_rate * top]
    groups: dict[str, str] = {}
    for sub in ("S0", "S1", "Sneg"):
        if need[sub] == 0:
            continue
        pick_from = positive if sub != "Sneg" else cl.index
        ok = [c for c in pick_from if c not in groups.values() and cl.loc[c, "n"] >= need[sub]]
        if not ok:
            raise RuntimeError(
                f"{pid}: no cluster of {row['pool']} can play {sub} ({need[sub]} cells)"
            )
        groups[sub] = str(rng.choice(sorted(ok)))
    obs = P.obs
    role, car = obs["role"].to_numpy(), obs["car"].to_numpy(bool)
    person = (obs["person"] == row["pool"]).to_numpy()
    used = np.zeros(P.n_obs, bool)

    def draw(mask: np.ndarray, k: int) -> np.ndarray:
        avail = np.flatnonzero(mask & ~used)
        k = min(k, avail.size)
        idx = np.sort(rng.choice(avail, k, replace=False))
        used[idx] = True
        return idx

    picks = []  # (indices, timepoint, class, subclone)
    n_nt = min(N_NORMAL_T, int((person & (role == "normal_T")).sum()) // 2)
    n_non = min(N_NONT, int((person & (role == "nonT")).sum()) // 2)
    for tp, comp in (("baseline", base), ("relapse", rel)):
        for sub in comp:
            if n[(tp, sub)]:
                mask = person & (obs["cluster"] == groups[sub]).to_numpy()
                picks.append((draw(mask, n[(tp, sub)]), tp, "malignant", sub))
        picks.append((draw(person & (role == "normal_T"), n_nt), tp, "normal_T", ""))
        picks.append((draw(person & (role == "nonT"), n_non), tp, "nonT", ""))
    picks.append((draw(person & (role == "sorted_T") & car, N_CAR_T), "relapse", "car_T", ""))
    idx = np.concatenate([p[0] for p in picks])
    truth = pd.DataFrame({
        "timepoint": np.concatenate([[p[1]] * len(p[0]) for p in picks]),
        "truth_class": np.concatenate([[p[2]] * len(p[0]) for p in picks]),
        "truth_subclone": np.concatenate([[p[3]] * len(p[0]) for p in picks]),
        "pool_cell": obs_names_of(P, idx),
    })  # fmt: skip
    blast = (truth["truth_class"] == "malignant").to_numpy()
    keep = np.array([cd7_keep(row, s, t) if b else 1.0 for s, t, b in
                     zip(truth["truth_subclone"], truth["timepoint"], blast, strict=True)])  # fmt: skip
    trunk = str(rng.choice(TRUNK_ARMS))
    sub_arm = str(rng.choice(SUBCLONE_ARMS))
    owner = "Sneg" if ("Sneg" in groups and row["seed"] % 2 == 0) else "S1"
    # every change is a binomial thinning of the real counts; independent thinnings multiply, so one draw
    # per stored count with the product of the keep-probabilities that apply to it
    x = sp.csr_matrix(P.X[idx], dtype=np.float32)
    x.sort_indices()
    rows_of = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    cols = x.indices
    p = np.ones(x.nnz)
    j_cd7, j_car = P.var_names.get_loc(ANTIGEN), P.var_names.get_loc(CAR)
    p[cols == j_cd7] *= keep[rows_of[cols == j_cd7]]
    p[(cols == j_car) & blast[rows_of]] = 0.0
    trunk_cols = np.zeros(x.shape[1], bool)
    trunk_cols[arm_genes(P.var_names, trunk)] = True
    sub_cols = np.zeros(x.shape[1], bool)
    sub_cols[arm_genes(P.var_names, sub_arm)] = True
    owners = blast & (truth["truth_subclone"] == owner).to_numpy()
    p[trunk_cols[cols] & blast[rows_of]] *= 0.5
    p[sub_cols[cols] & owners[rows_of]] *= 0.5
    if row["depth"] < 1:
        p[(truth["timepoint"] == "relapse").to_numpy()[rows_of]] *= row["depth"]
    x.data = rng.binomial(x.data.astype(np.int64), p).astype(np.float32)
    x.eliminate_zeros()
    # barcodes: the real ones, with the suffix naming the source sample (as cellranger aggr does)
    src = obs["source"].to_numpy()[idx]
    sources = sorted(set(obs.loc[obs["person"] == row["pool"], "source"]))
    bc = [b.split("-")[0] + f"-{sources.index(s) + 1}" for b, s in
          zip(obs["barcode"].to_numpy()[idx], src, strict=True)]  # fmt: skip
    sample = np.where(truth["timepoint"] == "baseline", f"{pid}-baseline", f"{pid}-relapse")
    truth.index = pd.Index([f"{s}_{b}" for s, b in zip(sample, bc, strict=True)])
    truth["barcode"] = bc
    truth["sample"] = sample
    truth["cd7_keep"] = keep
    # contigs: real rows of every cell, the leukemic chains in the blasts' rows
    clone = leukemic_clonotype(rng)
    by_cell = contigs[contigs["cell"].isin(set(truth["pool_cell"]))].groupby("cell")
    vdj = []
    for name, pc, b, s in zip(truth.index, truth["pool_cell"], blast, sample, strict=True):
        if pc not in by_cell.groups:
            continue
        r = by_cell.get_group(pc).copy()
        if b:
            r = blast_contigs(r, clone)
        barcode = truth.loc[name, "barcode"]
        r["barcode"] = barcode
        r["contig_id"] = [f"{barcode}_contig_{k + 1}" for k in range(len(r))]
        r["sample"] = s
        vdj.append(r.drop(columns="cell"))
    a = ad.AnnData(X=x, var=P.var[["gene_ids", "feature_types"]].copy())
    a.obs_names = truth.index
    a.obs["patient"] = pid
    a.obs["sample"] = sample
    a.obs["timepoint"] = truth["timepoint"].to_numpy()
    a.obs["tissue"] = "BM"
    a.obs["barcode"] = bc
    a.layers["counts"] = a.X
    a.uns["vdj_contigs"] = pd.concat(vdj, ignore_index=True)
    sheet = ce.datasets.write_simulated(a, outdir, fmt="h5")
    # the same sheet with malignant labels (one barcode per line, as a user gives them)
    s = pd.read_csv(sheet)
    for smp in s["sample"]:
        lab = truth.loc[(truth["sample"] == smp) & (truth["truth_class"] == "malignant"), "barcode"]
        (outdir / smp / "malignant_barcodes.txt").write_text("\n".join(lab) + "\n")
    s["malignant_labels"] = [f"{smp}/malignant_barcodes.txt" for smp in s["sample"]]
    s.to_csv(outdir / "samples_labels.csv", index=False)
    boot = row["boot"]
    for name, sh in (("config.yaml", "samples.csv"), ("config_labels.yaml", "samples_labels.csv")):
        (outdir / name).write_text(
            f"antigen: {ANTIGEN}\ncar_feature: {CAR}\nsamples: {sh}\noutdir: results\n"
            f"seed: {row.get('pipeline_seed', 0)}\n"
            f"classify:\n  n_bootstrap: {boot}\n"
        )
    return {
        "truth": truth,
        "design": {
            "S0": groups.get("S0", ""), "S1": groups.get("S1", ""), "Sneg": groups.get("Sneg", ""),
            "rate_S0": round(float(cl.loc[groups["S0"], "rate"]), 2),
            "rate_S1": round(float(cl.loc[groups["S1"], "rate"]), 2),
            "trunk_arm": trunk, "subclone_arm": sub_arm, "subclone_cnv_owner": owner,
            "n_trunk_genes": int(trunk_cols.sum()), "n_subclone_genes": int(sub_cols.sum()),
        },
    }  # fmt: skip


def obs_names_of(P, idx: np.ndarray) -> np.ndarray:
    return P.obs_names.to_numpy()[idx]


# ---------------------------------------------------------------------------------------- running one
def run_pipeline(config_path: Path):
    """The stages of ``cd7escape run`` on one patient, in this process: (adata, call dict, timings)."""
    import cd7escape as ce
    from cd7escape._errors import InputError
    from cd7escape.pipeline._stages import STAGES

    by_name = {stage.name: stage for stage in STAGES}

    config = ce.io.load_config(config_path)
    timings = {}
    t = time.perf_counter()
    adata = ce.io.read_patient(
        config.samples, antigen=config.antigen, car_feature=config.car_feature, counts_only=True
    )
    timings["ingest"] = time.perf_counter() - t
    car = tuple(adata.uns["cd7escape"]["ingest"]["car_features"])
    sub_kw = {}
    sig = inspect.signature(ce.tl.subclones).parameters
    for k in ("n_top_genes", "antigen_corr_max"):  # passed by the runner when subclones takes them
        if k in sig:
            sub_kw[k] = getattr(config.embed, k)
    stages = [
        ("qc", lambda: ce.pp.qc(adata, **config.qc.model_dump(), seed=config.seed)),
        ("embed", lambda: ce.pp.embed(adata, antigen=config.antigen, integration=config.integration,
                                      exclude=car, seed=config.seed,
                                      **{**config.embed.model_dump(), "umap": False})),
        # the runner's own stage: it ends a patient with no malignant cell, saying why (none_found)
        ("malignant", lambda: by_name["malignant"].run(adata, config)),
        ("antigen", lambda: ce.tl.antigen_state(adata, antigen=config.antigen, groupby="sample",
                                                antigen_protein=config.antigen_protein,
                                                **config.antigen_model.model_dump())),
        ("clones", lambda: ce.tl.subclones(adata, antigen=config.antigen, seed=config.seed,
                                           **sub_kw, **config.clones.model_dump())),
        ("classify", lambda: ce.tl.classify_relapse(adata, antigen=config.antigen, seed=config.seed,
                                                    **config.classify.model_dump())),
    ]  # fmt: skip
    call = None
    for name, fn in stages:
        if name != "qc":
            tps = set(adata.obs["timepoint"].astype(str))
            if not {"baseline", "relapse"} <= tps:
                call = {"mechanism": "indeterminate", "confidence": 1.0, "rule": "timepoint_failed_qc",
                        "reason": "no baseline or relapse cells passed QC", "numbers": {}}  # fmt: skip
                break
        t = time.perf_counter()
        try:
            out = fn()
        except InputError as err:
            why = "; ".join(pr.message for pr in err.problems)
            if name == "clones":
                timings[name] = time.perf_counter() - t
                continue
            call = {"mechanism": "indeterminate", "confidence": 1.0, "rule": f"{name}_failed",
                    "reason": f"the {name} step cannot run on these data: {why}", "numbers": {}}  # fmt: skip
            break
        timings[name] = time.perf_counter() - t
        if name == "classify":
            call = {"mechanism": out.mechanism, "confidence": out.confidence, "reason": out.reason,
                    "rule": out.numbers.get("rule"), "numbers": out.numbers}  # fmt: skip
    return adata, call, timings


def run_one(row: dict, *, positive_min_rate: float) -> list[dict]:
    """Build one patient and run it with and without labels: two result rows."""
    import logging

    warnings.filterwarnings("ignore")
    logging.getLogger("cd7escape").setLevel(logging.ERROR)
    from naive_baseline import naive_call

    P, contigs = pool()
    clusters = cluster_table(P)
    tmp = Path(tempfile.mkdtemp(prefix="cd7escape_semisynthetic_", dir="/tmp"))
    results = []
    try:
        t0 = time.perf_counter()
        made = make_patient(P, contigs, clusters, row, tmp, positive_min_rate=positive_min_rate)
        t_build = time.perf_counter() - t0
        truth = made["truth"]
        for labels in row["labels"]:
            t1 = time.perf_counter()
            adata, call, timings = run_pipeline(
                tmp / ("config_labels.yaml" if labels else "config.yaml")
            )
            secs = time.perf_counter() - t1
            results.append(
                score(row, labels, made, truth, adata, call, timings, secs, t_build, naive_call)
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def semi_oracle(row, adata, tr: pd.DataFrame, numbers: dict) -> dict:
    """:func:`oracle_trace.oracle_trace` on a semi-synthetic patient (true blasts, subclones and thinning)."""
    if row["mechanism"] not in ("preexisting_negative_clone", "mixed", "antigen_downregulation"):
        return {"oracle_call": None}
    if row["group"] == "decoy_minor_negative":
        return {"oracle_call": None}
    from oracle_trace import lost_at_relapse, oracle_trace

    from cd7escape._anndata import antigen_counts

    y, s = antigen_counts(adata, ANTIGEN)
    blast = (tr["truth_class"] == "malignant").to_numpy()
    tp = adata.obs["timepoint"].astype(str).to_numpy()
    sub = tr["truth_subclone"].astype(str).to_numpy()
    keep = tr["cd7_keep"].to_numpy(float)
    b, r = blast & (tp == "baseline"), blast & (tp == "relapse")
    return oracle_trace(y, s, b, r, sub, lost_at_relapse(keep, b, r, sub), numbers)


def semi_oracles(made: dict, adata, tr: pd.DataFrame) -> dict:
    """:mod:`oracle_bounds` on a semi-synthetic patient: the malignant call of an oracle from the truly lost
    trunk arm, the purity a supervised trace would reach on the negative subclone's ancestors, and the purity
    of the run's own trace told the negative subclone's relapse cells."""
    import scipy.sparse as sp
    from oracle_bounds import (
        malignant_copy_number_oracle,
        supervised_trace_purity,
        trace_space_purity,
    )

    blast = (tr["truth_class"] == "malignant").to_numpy()
    tp = adata.obs["timepoint"].astype(str).to_numpy()
    x = sp.csr_matrix(adata.layers.get("counts", adata.X))
    other = adata.var_names.isin([ANTIGEN, CAR])
    total = np.asarray(x[:, np.flatnonzero(~other)].sum(axis=1)).ravel()
    clone = (
        adata.obs["clone_id"]
        if "clone_id" in adata.obs
        else pd.Series(np.nan, index=adata.obs_names)
    )
    leukemic = set(clone[blast].dropna().astype(str))
    res = malignant_copy_number_oracle(x, total, arm_genes(adata.var_names, made["design"]["trunk_arm"]), blast,
                            adata.obs["leiden"].astype(str).to_numpy(), clone, leukemic)  # fmt: skip
    negative = (tr["truth_subclone"] == "Sneg").to_numpy() & blast
    res["supervised_trace_purity"] = supervised_trace_purity(
        adata, blast & (tp == "baseline"), negative, ANTIGEN
    )
    res["trace_space_purity"] = trace_space_purity(adata, negative)
    return res


def score(row, labels, made, truth, adata, call, timings, secs, t_build, naive_call) -> dict:
    obs = adata.obs
    tr = truth.reindex(obs.index)
    cls = tr["truth_class"].to_numpy()
    blast = cls == "malignant"
    tp = obs["timepoint"].astype(str).to_numpy()
    n_neg_b = int((blast & (tr["truth_subclone"] == "Sneg").to_numpy() & (tp == "baseline")).sum())
    built_neg = (truth["truth_subclone"] == "Sneg") & (truth["timepoint"] == "baseline")
    if row["group"] in ("preexisting", "mixed"):
        ident = n_neg_b >= 10
    elif row["group"] == "downregulation":
        ident = row["fold"] >= 4
    else:
        ident = True
    res = {
        k: row[k]
        for k in ("id", "pool", "seed", "group", "mechanism", "negative_fraction", "fold", "depth")
    }
    res["pipeline_seed"] = row.get("pipeline_seed", 0)
    res.update({"labels": "yes" if labels else "no", **made["design"], "n_cells_qc": int(adata.n_obs),
                "n_blasts_qc": int(blast.sum()), "n_blasts_built": int((truth["truth_class"] == "malignant").sum()),
                "n_neg_baseline": n_neg_b, "n_neg_baseline_built": int(built_neg.sum()), "identifiable": bool(ident),
                "call": call["mechanism"], "confidence": round(float(call["confidence"]), 3),
                "rule": call.get("rule"), "reason": call["reason"]})  # fmt: skip
    numbers = call.get("numbers") or {}
    tps = numbers.get("timepoints", {})
    for t in ("baseline", "relapse"):
        d = tps.get(t, {})
        res[f"pi_{t}"] = d.get("antigen_negative_fraction")
        res[f"zero_{t}"] = d.get("zero_count_fraction")
        res[f"malignant_{t}"] = d.get("malignant_cells")
    for k, v in numbers.get("shares", {}).items():
        res[f"share_{k}"] = round(float(v), 3)
    res["subclone_call"] = (numbers.get("subclone_call") or {}).get("mechanism")
    # the replicates' calls, so that a rule over them (their mode, say) can be measured from the csv
    res["bootstrap_calls"] = json.dumps(numbers.get("bootstrap") or {}, sort_keys=True)
    for k in TRACE_KEYS:
        res[f"trace_{k}"] = (numbers.get("trace") or {}).get(k)
    res.update(semi_oracle(row, adata, tr, numbers))
    res.update(semi_oracles(made, adata, tr))
    if "malignant" in obs:
        mal = obs["malignant"].to_numpy(bool)
        tp_, fp, fn = int((mal & blast).sum()), int((mal & ~blast).sum()), int((~mal & blast).sum())
        res["malignant_precision"] = tp_ / (tp_ + fp) if tp_ + fp else np.nan
        res["malignant_recall"] = tp_ / (tp_ + fn) if tp_ + fn else np.nan
        res["malignant_f1"] = 2 * tp_ / (2 * tp_ + fp + fn) if tp_ + fp + fn else np.nan
        car = cls == "car_T"
        res["n_car_t"] = int(car.sum())
        res["car_t_called_malignant"] = int((mal & car).sum())
        res["normal_called_malignant"] = int((mal & np.isin(cls, ["normal_T", "nonT"])).sum())
        if "cnv_subclone" in obs:
            res["blasts_cnv_altered"] = round(
                float((obs["cnv_subclone"].astype(str)[blast] != "none").mean()), 3
            )
        if "tcr_evidence" in obs:
            res["blasts_tcr_leukemic"] = round(
                float((obs["tcr_evidence"].astype(str)[blast] == "leukemic").mean()), 3
            )
        few = min((mal & (tp == t)).sum() for t in ("baseline", "relapse")) < 3
        # the naive approach has no malignant caller of its own: without malignant cells it cannot call
        res.update(
            {"naive_call": "no_malignant_cells"} if few else naive_call(adata, antigen=ANTIGEN)
        )
    else:
        res["naive_call"] = "not_run"
    res.update({f"seconds_{k}": round(v, 1) for k, v in timings.items()})
    res["seconds_build"] = round(t_build, 1)
    res["seconds_total"] = round(secs, 1)
    return res


# ------------------------------------------------------------------------------------------ summaries
def _md(df: pd.DataFrame) -> str:
    """A markdown table (no dependency on tabulate)."""
    df = df.reset_index()

    def fmt(v) -> str:
        if isinstance(v, (float, np.floating)):
            return f"{v:.3g}" if np.isfinite(v) else ""
        return str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(fmt(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.0f} %)" if n else "0/0"


def _setting(r) -> str:
    if r["group"] == "preexisting":
        return f"preexisting {100 * r['negative_fraction']:g} %"
    if r["group"] == "mixed":
        return f"mixed {100 * r['negative_fraction']:g} %"
    if r["group"] == "downregulation":
        return f"downregulation fold {'complete' if np.isinf(r['fold']) else f'{r.fold:g}'}"
    return r["group"]


def summarize(df: pd.DataFrame) -> str:
    df = df.copy()
    df["fold"] = df["fold"].astype(float)
    df["setting"] = df.apply(_setting, axis=1)
    out = []
    for labels in ("yes", "no"):
        d = df[df["labels"] == labels]
        if d.empty:
            continue
        n = len(d)
        out.append(f"\n## Malignant labels: {labels} ({n} patients; pools {', '.join(sorted(d['pool'].unique()))}; "
                   f"seeds {', '.join(map(str, sorted(d['seed'].unique())))})\n")  # fmt: skip
        lines = ["| method | accuracy where identifiable | wrong calls, confidence ≥ 0.8 | pre-existing → downregulation ≥ 0.8 | downregulation → pre-existing ≥ 0.8 | precision of calls ≥ 0.8 | indeterminate (naive: no malignant cells) |",
                 "|---|---|---|---|---|---|---|"]  # fmt: skip
        ident = d["identifiable"].astype(bool)
        pre, down = (
            d["mechanism"] == TRUTH["preexisting"],
            d["mechanism"] == TRUTH["downregulation"],
        )
        for method, col, conf in (("cd7escape", "call", d["confidence"]), ("naive zero-count", "naive_call", pd.Series(1.0, index=d.index))):  # fmt: skip
            c = d[col]
            correct = c == d["mechanism"]
            sure = (conf >= 0.8) & ~c.isin(NO_CALL)
            wrong = sure & ~correct
            p2d = int((pre & sure & (c == TRUTH["downregulation"])).sum())
            d2p = int((down & sure & (c == TRUTH["preexisting"])).sum())
            ind = int(c.isin(NO_CALL).sum())
            lines.append(f"| {method} | {_pct(int((correct & ident).sum()), int(ident.sum()))} | {_pct(int(wrong.sum()), n)} "
                         f"| {p2d}/{int(pre.sum())} | {d2p}/{int(down.sum())} | {_pct(int((sure & correct).sum()), int(sure.sum()))} "
                         f"| {_pct(ind, n)} |")  # fmt: skip
        out.append("\n".join(lines))
        if "oracle_call" in d:
            # a trace that knew every cell's subclone (oracle_trace): where it decides and cd7escape does not,
            # the clone linking is the limit; where it cannot decide either, the antigen measurement is
            decided = ident & (d["oracle_call"].isna() | (d["oracle_call"] == d["mechanism"]))
            right = d["call"] == d["mechanism"]
            out.append(f"\nWhere the oracle trace (true subclones) also decides: {_pct(int((right & decided).sum()), int(decided.sum()))}; "
                       f"identifiable patients it cannot decide: {int((ident & ~decided).sum())}")  # fmt: skip
        d = d.assign(correct=d["call"] == d["mechanism"], naive_correct=d["naive_call"] == d["mechanism"],
                     indet=d["call"] == "indeterminate",
                     wrong=(d["call"] != d["mechanism"]) & (d["call"] != "indeterminate"),
                     sure_wrong=(d["call"] != d["mechanism"]) & (d["call"] != "indeterminate") & (d["confidence"] >= 0.8),
                     naive_wrong=(d["naive_call"] != d["mechanism"]) & ~d["naive_call"].isin(NO_CALL))  # fmt: skip
        order = list(
            dict.fromkeys(d.sort_values(["group", "negative_fraction", "fold"])["setting"])
        )
        g = d.groupby("setting").agg(n=("id", "size"), identifiable=("identifiable", "sum"), correct=("correct", "sum"),
                                     indeterminate=("indet", "sum"), wrong=("wrong", "sum"),
                                     wrong_conf_08=("sure_wrong", "sum"), median_conf=("confidence", "median"),
                                     naive_correct=("naive_correct", "sum"), naive_wrong=("naive_wrong", "sum"),
                                     n_neg_baseline=("n_neg_baseline", "median")).reindex(order)  # fmt: skip
        out.append("\nPer setting (correct = call equals truth):\n\n" + _md(g))
        g = d.groupby(["pool", "seed"]).agg(n=("id", "size"), correct=("correct", "sum"), indeterminate=("indet", "sum"),
                                            wrong_conf_08=("sure_wrong", "sum"), naive_correct=("naive_correct", "sum"))  # fmt: skip
        out.append("\nPer pool and seed:\n\n" + _md(g))
        out.append("\nTruth × call (cd7escape):\n\n" + _md(pd.crosstab(d["mechanism"], d["call"])))
        out.append(
            "\nTruth × call (naive):\n\n" + _md(pd.crosstab(d["mechanism"], d["naive_call"]))
        )
        ind = d[d["indet"]]
        if len(ind):
            out.append("\nIndeterminate, by rule (settings; one reason as an example):\n")
            for rule, r in ind.groupby("rule"):
                settings = ", ".join(f"{k} {v}" for k, v in r["setting"].value_counts().items())
                out.append(f"- `{rule}` {len(r)}x ({settings}); e.g. {r['reason'].iloc[0]}")
        if "malignant_f1" in d:
            f1 = d["malignant_f1"].astype(float)
            n_car = int(d["n_car_t"].fillna(0).sum())
            car_mal = int(d["car_t_called_malignant"].fillna(0).sum())
            car = car_mal / max(1, n_car)
            out.append(f"\nMalignant calls vs truth: F1 per patient min {np.nanmin(f1):.3f}, median {np.nanmedian(f1):.3f}"
                       f" (precision median {np.nanmedian(d['malignant_precision'].astype(float)):.3f}, recall median "
                       f"{np.nanmedian(d['malignant_recall'].astype(float)):.3f}); patients with F1 < 0.5: "
                       f"{int((f1.fillna(0) < 0.5).sum())}/{n}; CAR-T cells called malignant {car:.1%} "
                       f"({car_mal}/{n_car}); normal cells called "
                       f"malignant: median {d['normal_called_malignant'].median():.0f} per patient")  # fmt: skip
        if "oracle_cn_malignant_f1" in d:
            # what the truly lost arm and the cluster give an oracle (oracle_bounds.malignant_copy_number_oracle)
            low = d[f1 < 0.95]
            oracle = low["oracle_cn_malignant_f1"].astype(float)
            out.append(f"\nPatients with malignant F1 < 0.95: {len(low)}; of them, {int((oracle < 0.95).sum())} where a "
                       f"copy-number oracle (true rates and shares, the lost arm's counts, the cluster) is below 0.95 too: "
                       + ", ".join(f"{i} {a:.3f} (oracle {b:.3f})" for i, a, b in zip(low["id"], f1[low.index], oracle, strict=True)))  # fmt: skip
        if "supervised_trace_purity" in d:
            # how pure a trace's ancestors could be (oracle_bounds.supervised_trace_purity) where it missed
            missed = d[
                ident & (d["mechanism"] == TRUTH["preexisting"]) & (d["call"] != d["mechanism"])
            ]
            if len(missed):
                space = missed.get(
                    "trace_space_purity", pd.Series(np.nan, index=missed.index)
                ).astype(float)
                out.append("\nIdentifiable pre-existing clones not called: trace π against the purity a classifier "
                           "trained on the true subclones reaches, and the run's own trace told the negative "
                           "subclone's relapse cells (space): " + ", ".join(
                               f"{i} {p:.2f} / {q:.2f} / space {v:.2f}" for i, p, q, v in
                               zip(missed["id"], missed["trace_pi"].astype(float), missed["supervised_trace_purity"].astype(float), space, strict=True)))  # fmt: skip
        out.append(f"\nRun time per patient: pipeline (this labels setting) median {d['seconds_total'].median():.1f} s, "
                   f"max {d['seconds_total'].max():.1f} s; building its files median {d['seconds_build'].median():.1f} s")  # fmt: skip
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--boot", type=int, default=25, help="bootstrap replicates (classify.n_bootstrap)"
    )
    ap.add_argument("--jobs", type=int, default=1, help="patients run in parallel processes")
    ap.add_argument(
        "--limit", type=int, default=None, help="run only the first N patients not yet done"
    )
    ap.add_argument("--only", default=None, help="comma-separated patient ids to run")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument(
        "--pools", default="P02,P11", help="CARPALL children whose cells make the patients"
    )
    ap.add_argument("--blasts", default=f"{N_BASELINE},{N_RELAPSE}",
                    help="baseline,relapse blasts per patient (fewer lets a child with smaller clusters play)")  # fmt: skip
    ap.add_argument("--positive-min-rate", type=float, default=0.5,
                    help="clusters playing CD7+ subclones pool at least this x the top cluster's CD7 rate")  # fmt: skip
    ap.add_argument("--labels", choices=("both", "yes", "no"), default="both")
    ap.add_argument("--pipeline-seed", type=int, default=0,
                    help="the config's seed (QC, embedding, clustering, bootstrap); the patients stay the "
                         "same, so a second seed measures how far the calls move with it alone")  # fmt: skip
    ap.add_argument("--out", default=str(Path(__file__).parent / "out" / "semisynthetic.csv"))
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    if args.summary_only:
        print(summarize(pd.read_csv(out)))
        return
    if not DATA.is_dir():
        print(f"{DATA} is absent: nothing to do")
        return
    t0 = time.perf_counter()
    P, _ = pool()
    cl = cluster_table(P)
    top = cl.loc[cl["n"] >= 50, "rate"].max()
    pools = args.pools.split(",")
    import cd7escape as ce

    print(f"cd7escape from {Path(ce.__file__).parent}")
    print(f"pool ready ({time.perf_counter() - t0:.0f} s): " + "; ".join(
        f"{p}: {int(((P.obs['person'] == p) & (P.obs['role'] == r)).sum())} {r}" for p in pools
        for r in ("sorted_T", "normal_T", "nonT")))  # fmt: skip
    for p in pools:
        c = cl[cl["person"] == p].sort_values("n", ascending=False)
        print(f"  {p} clusters (cells, CD7 UMIs/10k, * may play CD7+): " + ", ".join(
            f"{i.split(':')[1]} {r.n} {r.rate:.1f}{'*' if r.rate >= args.positive_min_rate * top else ''}"
            for i, r in c.iterrows()))  # fmt: skip
    labels = {"both": (True, False), "yes": (True,), "no": (False,)}[args.labels]
    n_b, n_r = (int(v) for v in args.blasts.split(","))
    rows = [
        {
            **r,
            "boot": args.boot,
            "n_baseline": n_b,
            "n_relapse": n_r,
            "pipeline_seed": args.pipeline_seed,
        }
        for r in grid(pools, args.seeds)
    ]
    done = pd.read_csv(out) if out.exists() else pd.DataFrame(columns=COLUMNS)
    if list(done.columns) != COLUMNS:
        raise SystemExit(f"{out}: written with other columns (an older version of this script); "
                         "give a new --out")  # fmt: skip
    if (done["pipeline_seed"] != args.pipeline_seed).any():
        raise SystemExit(f"{out}: holds rows of another --pipeline-seed; give a new --out")
    have = set(zip(done["id"].astype(int), done["labels"].astype(str), strict=True))
    todo = []
    for r in rows:
        missing = tuple(lab for lab in labels if (r["id"], "yes" if lab else "no") not in have)
        if missing:
            todo.append({**r, "labels": missing})
    if args.only:
        ids = {int(i) for i in args.only.split(",")}
        todo = [r for r in todo if r["id"] in ids]
    if args.limit is not None:
        todo = todo[: args.limit]
    out.parent.mkdir(parents=True, exist_ok=True)

    def emit(k: int, res: list[dict]) -> None:
        for x in res:
            pd.DataFrame([x]).reindex(columns=COLUMNS).to_csv(
                out, mode="a", header=not out.exists(), index=False
            )
            print(f"[{k}/{len(todo)}] id={x['id']} {x['pool']} seed={x['seed']} {x['group']:29s} "
                  f"nf={x['negative_fraction']:g} fold={x['fold']:g} labels={x['labels']:3s} → {x['call']:27s} "
                  f"conf={x['confidence']:.2f} naive={x['naive_call']} F1={x.get('malignant_f1', np.nan):.2f} "
                  f"({x['seconds_total']} s)", flush=True)  # fmt: skip

    kw = {"positive_min_rate": args.positive_min_rate}
    if args.jobs <= 1:
        for k, r in enumerate(todo, 1):
            emit(k, run_one(r, **kw))
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(args.jobs) as ex:
            futs = [ex.submit(run_one, r, **kw) for r in todo]
            for k, f in enumerate(as_completed(futs), 1):
                emit(k, f.result())
    if out.exists():
        print(summarize(pd.read_csv(out)))


if __name__ == "__main__":
    main()
