"""Accuracy and cost of ``cd7escape.tl.call_malignant``.

Three parts (run all, or pick with ``--part``):

- ``sim``: simulated patients (baseline + relapse) over seeds × mechanisms, with and without a blast TCR,
  a minor subclone without its own CNV (the simulator's default), two depths. Per run and pooled: malignant
  F1, CAR-T cells called malignant, antigen-negative normal T cells called malignant.
- ``real``: CARPALL (../shared/data/carpall; B-ALL after CD19 CAR-T, no T-ALL): per patient all samples
  together (cells with ≥ 500 UMIs), share called malignant per sample; CAR-T calls vs the authors'
  CARTcell_barcodes.txt on the sorted (CD3+CAT+) samples, where the authors annotated cells.
- ``car``: simulated patients whose relapse blasts are partly CAR-transduced (``car_transduced`` 5 % and
  20 %, by default, over seeds × mechanisms, with and without a blast TCR): recall of the transduced blasts
  (called malignant), the share marked ``car_transduced`` (of all, and of those whose CAR is detected),
  cells wrongly marked, CAR-T cells called malignant, beside the overall F1.
- ``timing``: a 20k-cell simulated patient run through the whole pipeline (``cd7escape run``), the share
  of the malignant stage in the total.

Usage::

    nice python benchmarks/malignant_accuracy.py [--part sim|real|car|timing] [--seeds 20] [--n-cells 1000]
        [--car-transduced 0.05 0.2] [--antigen CD7]

``--antigen`` picks the lineage of the simulated parts (issue 21): CD7 T-ALL (default), CD19 or CD22 B-ALL,
BCMA myeloma; the "antigen-negative normal T cells" are then the antigen's normal lineage (B or plasma
cells) that are antigen-negative.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CARPALL = ROOT.parent / "shared" / "data" / "carpall"
MECHANISMS = [
    "preexisting_negative_clone",
    "antigen_downregulation",
    "antigen_retained",
    "mixed",
    "lineage_switch",
]


def _f1(truth: np.ndarray, called: np.ndarray) -> float:
    return float(2 * np.sum(truth & called) / max(truth.sum() + called.sum(), 1))


def simulated(n_seeds: int, n_cells: int, antigen: str = "CD7") -> pd.DataFrame:
    import cd7escape as ce
    from cd7escape._lineages import antigen_gene, resolve_lineage

    gene = antigen_gene(antigen)
    normal_class = resolve_lineage(None, gene).normal_class

    rows, pooled = [], []
    for seed in range(n_seeds):
        mechanism = MECHANISMS[seed % len(MECHANISMS)]
        tcr = seed % 2 == 0
        depth = 3000 if seed % 4 < 2 else 1500
        adata = ce.datasets.simulate_patient(
            mechanism,
            seed=100 + seed,
            n_cells=n_cells,
            depth=depth,
            tcr=tcr,
            ig=tcr,  # the tumour's receptor (IG in B-ALL and myeloma) present or not
            minor_subclone_without_cnv=True,
            negative_fraction=0.15,
            antigen=antigen,
        )
        car_feature = next(v for v in adata.var_names if v.startswith("CAR_"))
        ce.pp.embed(adata, antigen=gene, umap=False, exclude=(car_feature,), seed=seed)
        t = time.perf_counter()
        ce.tl.call_malignant(adata, antigen=gene, car_feature=car_feature, seed=seed)
        seconds = time.perf_counter() - t
        obs = adata.obs
        truth = obs["truth_malignant"].to_numpy(bool)
        called = obs["malignant"].to_numpy(bool)
        car = (obs["truth_cell_type"] == "car_T").to_numpy()
        neg_t = ((obs["truth_cell_type"] == normal_class) & obs["truth_antigen_negative"]).to_numpy(
            bool
        )
        s1 = (obs["truth_subclone"] == "S1").to_numpy()
        row = {
            "seed": 100 + seed,
            "mechanism": mechanism,
            "tcr": tcr,
            "depth": depth,
            "cells": adata.n_obs,
            "malignant_true": int(truth.sum()),
            "f1": round(_f1(truth, called), 4),
            "sensitivity": round(float(called[truth].mean()), 4),
            "minor_S1_no_cnv_sensitivity": round(float(called[s1].mean()), 4)
            if s1.any()
            else np.nan,
            "car_T": int(car.sum()),
            "car_T_called_malignant_pct": round(100 * float(called[car].mean()), 3),
            "car_T_classed_car_T_pct": round(
                100 * float((obs["cell_class"].to_numpy()[car] == "car_T").mean()), 1
            ),
            "neg_normal_T": int(neg_t.sum()),
            "neg_normal_T_called_malignant_pct": round(100 * float(called[neg_t].mean()), 3),
            "seconds": round(seconds, 2),
        }
        rows.append(row)
        pooled.append((truth, called, car, neg_t))
        print(json.dumps(row), flush=True)
    table = pd.DataFrame(rows)
    truth = np.concatenate([p[0] for p in pooled])
    called = np.concatenate([p[1] for p in pooled])
    car = np.concatenate([p[2] for p in pooled])
    neg_t = np.concatenate([p[3] for p in pooled])
    print("\n== simulated: per run ==")
    print(table.to_string(index=False))
    print("\n== simulated: summary ==")
    print(
        f"runs {len(table)}; F1 min {table.f1.min():.4f}, median {table.f1.median():.4f}, pooled {_f1(truth, called):.4f}"
    )
    print(
        f"CAR-T called malignant: pooled {100 * called[car].mean():.3f} % ({called[car].sum()}/{car.sum()}), max per run {table.car_T_called_malignant_pct.max():.3f} %"
    )
    print(
        f"antigen-negative normal T called malignant: pooled {100 * called[neg_t].mean():.3f} % "
        f"({called[neg_t].sum()}/{neg_t.sum()}), max per run {table.neg_normal_T_called_malignant_pct.max():.3f} %"
    )
    print(
        f"minor subclone S1 (no CNV of its own) sensitivity: min {table.minor_S1_no_cnv_sensitivity.min():.4f}"
    )
    for tcr, sub in table.groupby("tcr"):
        print(f"tcr={tcr}: F1 min {sub.f1.min():.4f} median {sub.f1.median():.4f}")
    return table


def car_transduced(n_seeds: int, n_cells: int, shares: list[float]) -> pd.DataFrame:
    import cd7escape as ce

    rows, pooled = [], []
    for share in shares:
        for seed in range(n_seeds):
            mechanism = MECHANISMS[seed % len(MECHANISMS)]
            tcr = seed % 3 != 2
            adata = ce.datasets.simulate_patient(
                mechanism,
                seed=200 + seed,
                n_cells=n_cells,
                tcr=tcr,
                negative_fraction=0.15,
                car_transduced=share,
            )
            ce.pp.embed(adata, umap=False, exclude=("CAR_CD7",), seed=seed)
            ce.tl.call_malignant(adata, car_feature="CAR_CD7", seed=seed)
            obs = adata.obs
            truth = obs["truth_malignant"].to_numpy(bool)
            called = obs["malignant"].to_numpy(bool)
            tr = obs["truth_car_transduced"].to_numpy(bool)
            flag = obs["car_transduced"].to_numpy(bool)
            detected = obs["car_detected"].to_numpy(bool)
            car = (obs["truth_cell_type"] == "car_T").to_numpy()
            row = {
                "share": share,
                "seed": 200 + seed,
                "mechanism": mechanism,
                "tcr": tcr,
                "transduced": int(tr.sum()),
                "recall_transduced": round(float(called[tr].mean()), 4),
                "marked_of_transduced": round(float(flag[tr].mean()), 4),
                "marked_of_car_detected": round(float(flag[tr & detected].mean()), 4)
                if (tr & detected).any()
                else np.nan,
                "marked_not_transduced": int((flag & ~tr).sum()),
                "car_T": int(car.sum()),
                "car_T_called_malignant_pct": round(100 * float(called[car].mean()), 3),
                "f1": round(_f1(truth, called), 4),
            }
            rows.append(row)
            pooled.append((truth, called, tr, flag, car))
            print(json.dumps(row), flush=True)
    table = pd.DataFrame(rows)
    print("\n== CAR-transduced blasts: per run ==")
    print(table.to_string(index=False))
    print("\n== CAR-transduced blasts: summary ==")
    for share, sub in table.groupby("share"):
        idx = [i for i, r in enumerate(rows) if r["share"] == share]
        tr = np.concatenate([pooled[i][2] for i in idx])
        called = np.concatenate([pooled[i][1] for i in idx])
        flag = np.concatenate([pooled[i][3] for i in idx])
        car = np.concatenate([pooled[i][4] for i in idx])
        truth = np.concatenate([pooled[i][0] for i in idx])
        print(
            f"share {share}: runs {len(sub)}; recall of transduced blasts pooled {called[tr].mean():.4f} "
            f"(min per run {sub.recall_transduced.min():.4f}); marked car_transduced {flag[tr].mean():.4f} "
            f"of them ({sub.marked_not_transduced.sum()} cells marked wrongly); CAR-T called malignant "
            f"{100 * called[car].mean():.3f} % ({called[car].sum()}/{car.sum()}, max per run "
            f"{sub.car_T_called_malignant_pct.max():.3f} %); F1 pooled {_f1(truth, called):.4f}, min "
            f"{sub.f1.min():.4f}, median {sub.f1.median():.4f}"
        )
    return table


def real() -> pd.DataFrame:
    import anndata as ad

    import cd7escape as ce
    from cd7escape._config import SampleSpec

    meta = pd.read_csv(CARPALL / "metadata.tsv", sep="\t")
    authors = set(pd.read_csv(CARPALL / "CARTcell_barcodes.txt", sep="\t")["CellID"])
    rows, car_rows = [], []
    for patient, samples in meta.groupby("Patient"):
        parts = []
        for r in samples.itertuples():
            vdj = CARPALL / "vdj" / f"{r.TCR_Sample}.csv"
            spec = SampleSpec(
                patient=patient,
                sample=r.GEX_Sample,
                timepoint="other",
                path=str(CARPALL / "gex" / f"{r.GEX_Sample}.h5"),
                vdj=str(vdj) if vdj.stat().st_size > 0 else None,
            )
            a = ce.io.read_sample(spec, car_feature="CAT_scFv")
            a = a[np.asarray(a.layers["counts"].sum(axis=1)).ravel() >= 500].copy()
            if a.n_obs >= 20:
                parts.append(a)
        adata = ad.concat(parts, merge="same")
        ce.pp.embed(adata, umap=False, exclude=("CAT_scFv",))
        t = time.perf_counter()
        ce.tl.call_malignant(adata, car_feature="CAT_scFv")
        seconds = time.perf_counter() - t
        obs = adata.obs
        total = np.asarray(adata.layers["counts"].sum(axis=1)).ravel()
        for sample, idx in obs.groupby("sample", observed=True).indices.items():
            sort = meta.set_index("GEX_Sample").loc[sample, "Sort"]
            theirs = obs_names_in(adata.obs_names[idx], authors)
            ours = obs["car_detected"].to_numpy()[idx]
            rows.append(
                {
                    "patient": patient,
                    "sample": sample,
                    "sort": sort,
                    "cells": len(idx),
                    "malignant_pct": round(100 * float(obs["malignant"].to_numpy()[idx].mean()), 3),
                    "car_T_ours": int(ours.sum()),
                    "car_T_authors": int(theirs.sum()),
                    "seconds_patient": round(seconds, 2),
                }
            )
            if sort != "NoSo" and theirs.sum() > 0:
                for min_umi in (500, 2000):
                    keep = total[idx] >= min_umi
                    car_rows.append(
                        {
                            "sample": sample,
                            "min_umi": min_umi,
                            "authors": int(theirs[keep].sum()),
                            "ours": int(ours[keep].sum()),
                            "both": int((theirs & ours)[keep].sum()),
                        }
                    )
        print(
            f"{patient}: {adata.n_obs} cells, {int(obs['malignant'].sum())} malignant, {seconds:.1f} s",
            flush=True,
        )
    table = pd.DataFrame(rows)
    print("\n== CARPALL: malignant share per sample (no leukemia in these data) ==")
    print(table.to_string(index=False))
    print(f"max malignant share in any sample: {table.malignant_pct.max():.3f} %")
    car = pd.DataFrame(car_rows)
    print("\n== CARPALL: CAR-T calls vs the authors' CARTcell_barcodes.txt (sorted samples) ==")
    for min_umi, sub in car.groupby("min_umi"):
        both, a, o = sub.both.sum(), sub.authors.sum(), sub.ours.sum()
        print(
            f"cells ≥ {min_umi} UMIs: authors {a}, ours {o}, both {both}: sensitivity {both / a:.3f}, precision {both / o:.3f}"
        )
    return table


def obs_names_in(names, authors: set) -> np.ndarray:
    return np.array([n in authors for n in names])


def timing(n_cells: int = 10000) -> dict:
    import cd7escape as ce
    from cd7escape.pipeline import run_config

    adata = ce.datasets.simulate_patient("antigen_downregulation", seed=1, n_cells=n_cells)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ce.datasets.write_simulated(adata, tmp / "data")
        (tmp / "config.yaml").write_text(
            "antigen: CD7\ncar_feature: CAR_CD7\noutdir: out\nsamples: data/samples.csv\nseed: 0\n"
        )
        t = time.perf_counter()
        outcomes = run_config(tmp / "config.yaml", force=True, progress=False)
        wall = time.perf_counter() - t
    timings = outcomes[0].timings
    print(f"patient status: {outcomes[0].status} {getattr(outcomes[0], 'error', '') or ''}")
    total = sum(timings.values())
    share = timings.get("malignant", np.nan) / total
    print("\n== timing: whole run of a 20k-cell simulated patient ==")
    print(json.dumps(timings))
    print(
        f"cells {adata.n_obs}; stages total {total:.1f} s (wall {wall:.1f} s); malignant {timings.get('malignant')} s = {100 * share:.1f} %"
    )
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["sim", "real", "car", "timing", "all"], default="all")
    parser.add_argument(
        "--car-transduced",
        type=float,
        nargs="+",
        default=[0.05, 0.2],
        help="shares of relapse blasts carrying the CAR in the `car` part",
    )
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument(
        "--antigen", default="CD7", help="CD7 (T-ALL), CD19/CD22 (B-ALL), BCMA (myeloma)"
    )
    parser.add_argument(
        "--n-cells", type=int, default=1000, help="cells per sample in the simulated runs"
    )
    args = parser.parse_args()
    if args.part in ("sim", "all"):
        simulated(args.seeds, args.n_cells, args.antigen)
    if args.part in ("car", "all"):
        car_transduced(args.seeds, args.n_cells, args.car_transduced)
    if args.part in ("real", "all"):
        if CARPALL.is_dir():
            real()
        else:
            print("../shared/data/carpall is absent: real part skipped")
    if args.part in ("timing", "all"):
        timing()


if __name__ == "__main__":
    main()
