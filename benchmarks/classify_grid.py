"""classify_relapse on a grid of simulated patients, with the naive approach side by side (issue 5).

Grid (114 patients): pre-existing negative subclone at {0.2, 0.5, 1, 3, 10} % of baseline blasts × depth
{1k, 3k, 8k} × TCR yes/no; downregulation fold {2, 4, 10, complete} × depth × TCR; decoys: a negative minor
subclone (3 or 10 %) that does not expand while the main clone loses the antigen, antigen-retained relapses at
low depth (500, 1,000 UMIs), therapy-shifted relapse blasts (shift 1 and 2 log2 s.d.; downregulation,
pre-existing 10 %, retained); mixed (a 10 % negative subclone, and 25 or 30 %, which cannot grow 2-fold);
lineage switch. ``--cells`` cells per sample (default 1,000).

The malignant calls are the simulator's truth (``truth_malignant``; ``cell_class`` from ``truth_cell_type``)
so the benchmark measures subclones + classify_relapse, not call_malignant. Without ``--cnv`` no
``obs['cnv_subclone']`` exists, so subclones see no CNV-subclone label (only the genomic-window check); with
``--cnv`` each patient is embedded and ``call_malignant`` runs first for its ``cnv_subclone`` (the malignant
mask stays the truth), as ``cd7escape run`` would provide it (about +10 s per patient).

Identifiable (issue 5): pre-existing/mixed with ≥ 20 baseline cells of the negative subclone; downregulation
with fold ≥ 4 (fold 2 with ≥ 20 … is counted as not identifiable); retained, lineage switch, decoys with
complete loss: identifiable. Metrics: accuracy where identifiable, confident wrong calls (confidence ≥ 0.8)
over the whole grid, indeterminate share and reasons; the naive approach has no confidence, so all its wrong
calls are confident.

    nice python benchmarks/classify_grid.py [--cells 1000] [--boot 50] [--out benchmarks/out/classify_grid.csv]
    [--limit N] [--only IDS] [--cnv] [--summary-only] [--antigen CD7] [--labels yes|no] [--depths 1000,3000,8000]
    [--seed-base 1000]

Per lineage (issue 21): ``--antigen CD19`` or ``CD22`` simulates B-ALL patients, ``--antigen BCMA`` myeloma
(the simulator's lineage follows the antigen; B-ALL's lineage switch is B → myeloid). ``--labels no``
embeds each patient and takes ``call_malignant``'s calls (no truth labels) for every step, and adds the
malignant F1 and the CAR-T cells called malignant to each row. ``--depths`` keeps only those depths (the
grid's other axes are unchanged). ``--seed-base`` (default 1000; patient ``i`` has seed ``base + i``) draws
held-out patients of the same design: the figures at the default base are the ones the methods were
developed against, another base gives patients nobody looked at.

Rows are appended as they finish; a rerun skips patients already in ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))


def grid(depths: tuple[int, ...] = (1000, 3000, 8000), *, seed_base: int = 1000) -> list[dict]:
    rows: list[dict] = []

    def each(group: str, mechanism: str, at: tuple[int, ...] = depths, **kw) -> None:
        """One patient per depth × TCR (with/without) of a setting."""
        for d in at:
            for tcr in (True, False):
                rows.append(dict(group=group, mechanism=mechanism, **kw, depth=d, tcr=tcr))

    for nf in (0.002, 0.005, 0.01, 0.03, 0.10):
        each("preexisting", "preexisting_negative_clone", negative_fraction=nf)
    for fold in (2.0, 4.0, 10.0, np.inf):
        each("downregulation", "antigen_downregulation", fold=fold)
    for nf in (0.03, 0.10):
        each(
            "decoy_minor_negative", "antigen_downregulation", fold=np.inf,
            decoy_negative_minor=True, negative_fraction=nf,
        )  # fmt: skip
    for d in sorted({500, 1000, *depths}):
        group = "decoy_retained_low_depth" if d <= 1000 else "retained"
        each(group, "antigen_retained", at=(d,))
    for shift in (1.0, 2.0):
        for mech, kw in (
            ("antigen_downregulation", {"fold": np.inf}),
            ("antigen_downregulation", {"fold": 4.0}),
            ("preexisting_negative_clone", {"negative_fraction": 0.10}),
            ("antigen_retained", {}),
        ):
            each("decoy_therapy_shift", mech, at=(3000,), relapse_shift=shift, **kw)
    each("mixed", "mixed", negative_fraction=0.10)
    each("lineage_switch", "lineage_switch")
    # a large negative subclone cannot grow 2-fold: 25-30 % at baseline, 45 % of the relapse (appended so that
    # the earlier patients keep their ids and seeds)
    for nf in (0.25, 0.30):
        each("mixed_large_negative", "mixed", negative_fraction=nf)
    for i, r in enumerate(rows):
        r["id"] = i
        r["seed"] = seed_base + i
    return rows


def identifiable(row: dict, n_neg_baseline: int) -> bool:
    m = row["mechanism"]
    if m in ("preexisting_negative_clone", "mixed"):
        return n_neg_baseline >= 20
    if m == "antigen_downregulation":
        return float(row.get("fold", np.inf)) >= 4
    return True


def grid_oracle(adata, gene: str, numbers: dict) -> dict:
    """:func:`oracle_trace.oracle_trace` on a simulated patient (true blasts, subclones and levels)."""
    from oracle_trace import lost_at_relapse, oracle_trace

    from cd7escape._anndata import antigen_counts

    obs = adata.obs
    y, s = antigen_counts(adata, gene)
    tm = obs["truth_malignant"].to_numpy(bool)
    tp = obs["timepoint"].astype(str).to_numpy()
    sub = obs["truth_subclone"].astype(str).to_numpy()
    level = obs["truth_antigen_level"].to_numpy(float)
    b, r = tm & (tp == "baseline"), tm & (tp == "relapse")
    return oracle_trace(y, s, b, r, sub, lost_at_relapse(level, b, r, sub), numbers)


def expressing_zero_share(adata, gene: str) -> float:
    """Share of the truly expressing baseline blasts that read no UMI of the antigen: how far dropout hides
    a negative subclone at this depth (the simulator's truth, not the model's)."""
    from cd7escape._anndata import gene_counts

    obs = adata.obs
    cells = (
        (obs["timepoint"] == "baseline")
        & obs["truth_malignant"].astype(bool)
        & ~obs["truth_antigen_negative"].astype(bool)
    ).to_numpy()
    if not cells.any():
        return float("nan")
    return round(float(np.mean(gene_counts(adata, gene)[cells] == 0)), 3)


def run_one(
    row: dict,
    *,
    cells: int,
    boot: int,
    cnv: bool = False,
    antigen: str = "CD7",
    labels: bool = True,
) -> dict:
    from naive_baseline import naive_call

    import cd7escape as ce

    kw = {
        k: row[k]
        for k in (
            "negative_fraction",
            "fold",
            "depth",
            "tcr",
            "decoy_negative_minor",
            "relapse_shift",
        )
        if k in row
    }
    t0 = time.perf_counter()
    if "tcr" in kw:
        kw["ig"] = kw["tcr"]  # the tumour's receptor, IG in B-ALL and myeloma
    adata = ce.datasets.simulate_patient(
        row["mechanism"], seed=row["seed"], n_cells=cells, antigen=antigen, **kw
    )
    from cd7escape._lineages import antigen_gene

    gene = antigen_gene(antigen)
    car_feature = next(v for v in adata.var_names if v.startswith("CAR_"))
    cnv_info: dict = {}
    if cnv or not labels:
        ce.pp.embed(adata, antigen=gene, umap=False, exclude=(car_feature,), seed=0)
        ce.tl.call_malignant(adata, antigen=gene, car_feature=car_feature, seed=0)
        cs = adata.obs["cnv_subclone"].astype(str).to_numpy()
        tm = adata.obs["truth_malignant"].to_numpy(bool)
        negs = adata.uns["truth"]["subclones"]["subclone"][-1]
        neg = tm & (adata.obs["truth_subclone"].astype(str).to_numpy() == negs)
        vals, cnt = np.unique(cs[neg], return_counts=True) if neg.any() else ([], [])
        cnv_info = {
            "cnv_labels": len(set(cs[tm]) - {"none"}),
            "cnv_none_share": round(float((cs[tm] == "none").mean()), 3),
            "neg_cnv_label": str(vals[int(np.argmax(cnt))]) if len(vals) else "",
            "neg_cnv_purity": round(float(max(cnt) / sum(cnt)), 3) if len(vals) else np.nan,
        }
    truth = adata.obs["truth_malignant"].to_numpy(bool)
    if labels:
        adata.obs["malignant"] = truth
        adata.obs["cell_class"] = adata.obs["truth_cell_type"].astype(str).to_numpy()
    else:
        called = adata.obs["malignant"].to_numpy(bool)
        car = (adata.obs["truth_cell_type"] == "car_T").to_numpy()
        cnv_info["malignant_f1"] = round(
            float(2 * np.sum(truth & called) / max(truth.sum() + called.sum(), 1)), 4
        )
        cnv_info["car_T"] = int(car.sum())
        cnv_info["car_T_called_malignant"] = int((called & car).sum())
    t1 = time.perf_counter()
    call = ce.tl.classify_relapse(adata, antigen=gene, n_bootstrap=boot, seed=0)
    t2 = time.perf_counter()
    nv = naive_call(adata, antigen=gene)
    obs = adata.obs
    negsub = adata.uns["truth"]["subclones"]["subclone"][-1]
    n_neg_b = int(
        (
            (obs["timepoint"] == "baseline")
            & obs["truth_malignant"]
            & (obs["truth_subclone"] == negsub)
        ).sum()
    )
    if row["mechanism"] not in ("preexisting_negative_clone", "mixed") and not row.get(
        "decoy_negative_minor"
    ):
        n_neg_b = 0
    tp = call.numbers["timepoints"]
    return {
        **{
            k: row.get(k)
            for k in (
                "id",
                "group",
                "mechanism",
                "negative_fraction",
                "fold",
                "depth",
                "tcr",
                "relapse_shift",
                "seed",
            )
        },
        "decoy_negative_minor": bool(row.get("decoy_negative_minor", False)),
        "n_neg_baseline": n_neg_b,
        "identifiable": identifiable(row, n_neg_b),
        "call": call.mechanism,
        "confidence": call.confidence,
        "rule": call.numbers.get("rule"),
        "reason": call.reason,
        "pi_baseline": tp["baseline"]["antigen_negative_fraction"],
        "pi_relapse": tp["relapse"]["antigen_negative_fraction"],
        "zero_baseline": tp["baseline"]["zero_count_fraction"],
        "zero_relapse": tp["relapse"]["zero_count_fraction"],
        "expressing_zero_baseline": expressing_zero_share(adata, gene),
        **{f"share_{k}": round(float(v), 3) for k, v in call.numbers.get("shares", {}).items()},
        "n_unmapped_relapse": call.numbers.get("n_unmapped_relapse"),
        "subclone_call": (call.numbers.get("subclone_call") or {}).get("mechanism"),
        **{
            f"trace_{k}": call.numbers.get("trace", {}).get(k)
            for k in ("pi", "ci_low", "ci_high", "n_effective", "n_effective_uncapped")
        },
        **nv,
        **cnv_info,
        **(
            grid_oracle(adata, gene, call.numbers)
            if row["mechanism"] in ("preexisting_negative_clone", "mixed", "antigen_downregulation")
            and not row.get("decoy_negative_minor")
            else {"oracle_call": None}
        ),
        "seconds_classify": round(t2 - t1, 1),
        "seconds_total": round(time.perf_counter() - t0, 1),
        "cells": cells,
        "boot": boot,
        "antigen": antigen,
        "labels": "yes" if labels else "no",
    }


def summarize(df: pd.DataFrame, label: str = "grid") -> str:
    lines = [f"== {label}: {len(df)} patients"]
    if "malignant_f1" in df:
        car_t = df["car_T"].sum()
        lines.append(
            f"malignant calls (no labels): F1 min {df['malignant_f1'].min():.4f}, median "
            f"{df['malignant_f1'].median():.4f}, patients with F1 >= 0.97: "
            f"{int((df['malignant_f1'] >= 0.97).sum())}/{len(df)}; CAR-T called malignant "
            f"{df['car_T_called_malignant'].sum()}/{car_t} ({100 * df['car_T_called_malignant'].sum() / max(car_t, 1):.2f} %)"
        )
    df = df.copy()
    df["correct"] = df["call"] == df["mechanism"]
    df["naive_correct"] = df["naive_call"] == df["mechanism"]
    df["confident_wrong"] = (
        (~df["correct"]) & (df["call"] != "indeterminate") & (df["confidence"] >= 0.8)
    )
    df["wrong_not_indet"] = (~df["correct"]) & (df["call"] != "indeterminate")
    ident = df[df["identifiable"]]
    lines.append(
        f"classify_relapse: accuracy where identifiable {ident['correct'].mean():.3f} ({ident['correct'].sum()}/{len(ident)}); "
        f"confident wrong (conf ≥ 0.8) {df['confident_wrong'].mean():.3f} ({df['confident_wrong'].sum()}/{len(df)}); "
        f"any wrong (not indeterminate) {df['wrong_not_indet'].sum()}/{len(df)}; indeterminate {(df['call'] == 'indeterminate').sum()}/{len(df)} "
        f"(of them identifiable: {((df['call'] == 'indeterminate') & df['identifiable']).sum()})"
    )
    if "oracle_call" in df:
        # where even a trace that knew every cell's subclone could not decide, the antigen measurement at that
        # depth is the limit (oracle_trace); the rows it leaves are those the clone linking must get right
        decided = ident[ident["oracle_call"].isna() | (ident["oracle_call"] == ident["mechanism"])]
        lines.append(
            f"  where the oracle trace (true subclones) also decides: {decided['correct'].mean():.3f} "
            f"({decided['correct'].sum()}/{len(decided)}); identifiable rows it cannot decide: "
            f"{len(ident) - len(decided)} (ids {', '.join(str(int(i)) for i in sorted(set(ident['id']) - set(decided['id'])))})"
        )
    lines.append(
        f"naive:            accuracy where identifiable {ident['naive_correct'].mean():.3f} ({ident['naive_correct'].sum()}/{len(ident)}); "
        f"confident wrong {(~df['naive_correct']).mean():.3f} ({(~df['naive_correct']).sum()}/{len(df)})"
    )
    g = df.groupby("group").agg(
        n=("id", "size"),
        identifiable=("identifiable", "sum"),
        correct=("correct", "sum"),
        indeterminate=("call", lambda s: int((s == "indeterminate").sum())),
        confident_wrong=("confident_wrong", "sum"),
        naive_correct=("naive_correct", "sum"),
    )
    lines.append(g.to_string())
    sub = df[df["group"] == "preexisting"]
    if len(sub):
        t = sub.groupby("negative_fraction").agg(
            n=("id", "size"),
            n_neg_baseline=("n_neg_baseline", "median"),
            correct=("correct", "sum"),
            indeterminate=("call", lambda s: int((s == "indeterminate").sum())),
            naive_correct=("naive_correct", "sum"),
        )
        lines.append("pre-existing by share of baseline blasts:\n" + t.to_string())
    sub = df[df["group"] == "downregulation"]
    if len(sub):
        t = sub.groupby("fold").agg(
            n=("id", "size"),
            correct=("correct", "sum"),
            indeterminate=("call", lambda s: int((s == "indeterminate").sum())),
            naive_correct=("naive_correct", "sum"),
        )
        lines.append("downregulation by fold:\n" + t.to_string())
    t = df.groupby("depth").agg(
        n=("id", "size"), correct=("correct", "sum"), naive_correct=("naive_correct", "sum")
    )
    lines.append("by depth:\n" + t.to_string())
    cm = pd.crosstab(df["mechanism"], df["call"])
    lines.append("truth × call (classify_relapse):\n" + cm.to_string())
    cm = pd.crosstab(df["mechanism"], df["naive_call"])
    lines.append("truth × call (naive):\n" + cm.to_string())
    wrong = df[df["wrong_not_indet"]]
    if len(wrong):
        lines.append(
            "wrong calls:\n"
            + wrong[
                [
                    "id",
                    "group",
                    "mechanism",
                    "negative_fraction",
                    "fold",
                    "depth",
                    "tcr",
                    "call",
                    "confidence",
                    "reason",
                ]
            ].to_string()
        )
    ind = df[df["call"] == "indeterminate"]
    if len(ind):
        lines.append(
            "indeterminate reasons (rule counts): "
            + ind["rule"].value_counts().to_dict().__repr__()
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cells", type=int, default=1000)
    ap.add_argument("--boot", type=int, default=50)
    ap.add_argument("--out", default=str(Path(__file__).parent / "out" / "classify_grid.csv"))
    ap.add_argument(
        "--limit", type=int, default=None, help="run only the first N patients not yet done"
    )
    ap.add_argument("--only", default=None, help="comma-separated ids to run")
    ap.add_argument(
        "--cnv", action="store_true", help="run call_malignant first for obs['cnv_subclone']"
    )
    ap.add_argument("--summary-only", action="store_true")
    ap.add_argument(
        "--antigen", default="CD7", help="CD7 (T-ALL), CD19/CD22 (B-ALL), BCMA (myeloma)"
    )
    ap.add_argument("--labels", choices=["yes", "no"], default="yes")
    ap.add_argument("--depths", default="1000,3000,8000")
    ap.add_argument(
        "--seed-base",
        type=int,
        default=1000,
        help="patient i is simulated with seed SEED_BASE + i (another base: held-out patients of the "
        "same design)",
    )
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("cd7escape").setLevel(logging.WARNING)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = pd.read_csv(out) if out.exists() else pd.DataFrame()
    depths = tuple(int(d) for d in args.depths.split(","))
    todo = [
        r
        for r in grid(depths, seed_base=args.seed_base)
        if done.empty or r["id"] not in set(done["id"])
    ]
    # interleave the groups so that a partial run (time box) covers every group
    todo = [todo[i] for i in np.random.default_rng(0).permutation(len(todo))]
    if args.only:
        ids = {int(i) for i in args.only.split(",")}
        todo = [r for r in todo if r["id"] in ids]
    if args.limit is not None:
        todo = todo[: args.limit]
    if not args.summary_only:
        for k, row in enumerate(todo):
            res = run_one(
                row,
                cells=args.cells,
                boot=args.boot,
                cnv=args.cnv,
                antigen=args.antigen,
                labels=args.labels == "yes",
            )
            # rows differ in their keys (shares, routes): the file is rewritten with the union of columns
            done = pd.concat([done, pd.DataFrame([res])], ignore_index=True)
            done.to_csv(out, index=False)
            print(
                f"[{k + 1}/{len(todo)}] id={row['id']} {row['group']:24s} {row['mechanism']:27s} → {res['call']:27s} "
                f"conf={res['confidence']:.2f} naive={res['naive_call']} ({res['seconds_total']} s)",
                flush=True,
            )
    df = pd.read_csv(out)

    def setting(col: str, given) -> str:
        # what the rows were run with (a --summary-only call does not know it); older files lack the column
        vals = sorted(map(str, df[col].dropna().unique())) if col in df else []
        return "/".join(vals) if vals else f"{given}?"

    print(
        summarize(
            df,
            f"simulated grid, antigen {setting('antigen', args.antigen)}, labels "
            f"{setting('labels', args.labels)} ({setting('cells', args.cells)} cells per sample, "
            f"{setting('boot', args.boot)} bootstrap replicates)",
        )
    )


if __name__ == "__main__":
    main()
