#!/usr/bin/env python
"""Fit the simulator's parameters to real 10x counts (CARPALL, ../shared/data/carpall).

Reads every Cell Ranger ``filtered_feature_bc_matrix.h5`` with h5py, drops the failed library and
low-quality cells, annotates cell types with marker genes (T, NK, B, myeloid, erythroid), and fits
per cell type

- gene mean proportions (pooled counts / pooled library size),
- per-gene negative-binomial dispersion φ (Var = μ + φ μ², method of moments on library-size
  normalised counts, which corrects for the cell-specific depth),
- the library-size distribution (log-normal: mean and sd of log total UMIs),

plus the CAR transgene's share of UMIs in CAR-detected T cells, the real CD7 detection rate in T
cells, and the share of UMIs falling on the kept genes. It keeps ~5k genes (expressed, informative,
housekeeping, every marker the simulator uses) that have hg38 positions, and ensures every
chromosome holds genes for CNV windows. The output is derived statistics only (no cells):
``src/cd7escape/datasets/_params/carpall_params.npz`` (float32).

Usage::

    python scripts/fit_simulator_params.py [--data ../shared/data] [--n-genes 5000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
FAILED = {"CAR-T10593347"}
CAR_FEATURE = "CAT_scFv"

MARKERS = {
    "T": ["CD3E", "CD3D", "CD3G", "CD2", "TRAC"],
    "NK": ["NKG7", "GNLY", "KLRD1", "KLRF1", "NCAM1"],
    "B": [
        "MS4A1",
        "CD79A",
        "CD79B",
        "CD19",
        "PAX5",
        "BANK1",
        "CD22",
        "TCL1A",
        "FCER2",
        "VPREB3",
        "SPIB",
    ],
    "myeloid": ["LYZ", "CD14", "FCGR3A", "S100A8", "S100A9", "CSF1R"],
    "erythroid": ["HBB", "HBA1", "HBA2", "GYPA", "ALAS2"],
}
# every gene the simulator programs touch (blast/ETP, mature T, CNV-free markers, targets, ADT partners)
PROGRAM_GENES = [
    "CD7",
    "CD5",
    "CD2",
    "CD1A",
    "CD1B",
    "CD1E",
    "DNTT",
    "CD34",
    "CD99",
    "KIT",
    "CD38",
    "MKI67",
    "TOP2A",
    "STMN1",
    "TUBB",
    "HMGB2",
    "LMO2",
    "LYL1",
    "MYB",
    "TAL1",
    "NOTCH1",
    "NOTCH3",
    "HES1",
    "PTCRA",
    "RAG1",
    "RAG2",
    "CD4",
    "CD8A",
    "CD8B",
    "CD3E",
    "CD3D",
    "CD3G",
    "CD247",
    "TRAC",
    "TRBC1",
    "TRBC2",
    "LCK",
    "ZAP70",
    "BCL11B",
    "TCF7",
    "GATA3",
    "IL7R",
    "CCR7",
    "SELL",
    "CD27",
    "CD28",
    "GZMB",
    "GZMK",
    "GZMA",
    "PRF1",
    "CCL5",
    "KLRB1",
    "CD69",
    "FOS",
    "JUN",
    "CD19",
    "CD33",
    "MPO",
    "CEBPA",
    "CEBPB",
    "SPI1",
    "CSF3R",
    "ITGAM",
    "CD36",
    "FCER1G",
    "TYROBP",
    "ELANE",
    "AZU1",
    "PRTN3",
    "MEIS1",
    "HOXA9",
    "HOXA10",
    "MEF2C",
    "BAALC",
    "MN1",
    "SOX4",
    "ID2",
    "CD44",
    "PTPRC",
    "B2M",
    "ACTB",
    "GAPDH",
    "MALAT1",
    "TMSB4X",
    "EEF1A1",
    "RPL13",
    "RPS27",
    "CD74",
    "HLA-DRA",
    "IRF8",
    "FCN1",
    "VCAN",
    "CST3",
    "MS4A7",
    "LST1",
]
PROGRAM_GENES += [
    "HBD", "HBM", "CA1", "AHSP", "SLC4A1", "PRDX2", "SNCA", "TFRC", "GATA1", "KLF1", "HMBS", "BLVRB", "RHAG",
    "BANK1", "CD22", "TCL1A", "FCER2", "VPREB3", "SPIB", "HLA-DRB1", "HLA-DPA1", "HLA-DPB1", "CD37",
]  # fmt: skip
MT_POSITIONS = {  # rCRS (NC_012920) coordinates of the 13 protein-coding mitochondrial genes
    "MT-ND1": (3307, 4262),
    "MT-ND2": (4470, 5511),
    "MT-CO1": (5904, 7445),
    "MT-CO2": (7586, 8269),
    "MT-ATP8": (8366, 8572),
    "MT-ATP6": (8527, 9207),
    "MT-CO3": (9207, 9990),
    "MT-ND3": (10059, 10404),
    "MT-ND4L": (10470, 10766),
    "MT-ND4": (10760, 12137),
    "MT-ND5": (12337, 14148),
    "MT-ND6": (14149, 14673),
    "MT-CYB": (14747, 15887),
}
CELL_TYPES = ["T", "NK", "B", "myeloid", "erythroid"]


def read_10x_h5(path: Path, *, ids: bool = False):
    """Cells × features CSR, feature names, barcodes (Cell Ranger v3 layout) [, feature ids]."""
    with h5py.File(path, "r") as f:
        m = f["matrix"]
        n_feat, n_cells = m["shape"][:]
        mat = sp.csc_matrix(
            (m["data"][:], m["indices"][:], m["indptr"][:]), shape=(n_feat, n_cells)
        )
        names = m["features/name"][:].astype(str)
        barcodes = m["barcodes"][:].astype(str)
        fids = m["features/id"][:].astype(str)
    if ids:
        return mat.T.tocsr(), names, barcodes, fids
    return mat.T.tocsr(), names, barcodes


def annotate(X: sp.csr_matrix, names: np.ndarray) -> np.ndarray:
    """Marker-based cell types: mean log1p(CP10k) of each marker set; T needs CD3, NK needs no CD3."""
    idx = {g: i for i, g in enumerate(names)}
    tot = np.asarray(X.sum(1)).ravel()
    norm = sp.diags(1e4 / tot) @ X
    norm.data = np.log1p(norm.data)
    scores = {}
    for ct, genes in MARKERS.items():
        cols = [idx[g] for g in genes if g in idx]
        scores[ct] = np.asarray(norm[:, cols].mean(1)).ravel()
    cd3 = np.asarray(norm[:, [idx["CD3E"], idx["CD3D"]]].max(1).todense()).ravel()
    b_umis = np.asarray(X[:, [idx[g] for g in ("MS4A1", "CD79A", "CD79B")]].sum(1)).ravel()
    label = np.full(X.shape[0], "unknown", dtype=object)
    other = ["B", "myeloid", "erythroid"]
    So = np.column_stack([scores[c] for c in other])
    lymph = np.maximum(scores["T"], scores["NK"])
    is_other = (So.max(1) > 0.5) & (So.max(1) > lymph)
    top_other = np.array(other, dtype=object)[So.argmax(1)]
    # B cells are rare after CD19 CAR-T (B-cell aplasia): accept ≥2 B-marker UMIs
    is_b = (b_umis >= 2) & (cd3 == 0) & (scores["B"] > scores["myeloid"])
    label[(cd3 > 0) & ~is_other & (scores["T"] > 0.3)] = "T"
    label[(cd3 == 0) & ~is_other & (scores["NK"] > 0.3)] = "NK"
    label[is_other & (cd3 == 0)] = top_other[is_other & (cd3 == 0)]
    label[is_b] = "B"
    return label.astype(str)


def nb_moments(X: sp.csr_matrix, lib: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pooled proportions μ_g and moment dispersions φ_g of counts y_ig ~ NB(s_i μ_g, φ_g).

    With x = y / s: E[x] = μ, Var[x] = μ E[1/s] + φ μ², hence φ = (Var[x] - μ E[1/s]) / μ².
    """
    mu = np.asarray(X.sum(0)).ravel() / lib.sum()
    xn = sp.diags(1.0 / lib) @ X
    m1 = np.asarray(xn.mean(0)).ravel()
    m2 = np.asarray(xn.multiply(xn).mean(0)).ravel()
    var = m2 - m1**2
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = (var - m1 * np.mean(1.0 / lib)) / m1**2
    phi = np.where(np.isfinite(phi), phi, np.nan)
    return mu, phi


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--n-genes", type=int, default=5000)
    ap.add_argument(
        "--out", type=Path, default=REPO / "src/cd7escape/datasets/_params/carpall_params.npz"
    )
    args = ap.parse_args()

    meta = pd.read_csv(args.data / "carpall/metadata.tsv", sep="\t")
    meta = meta[~meta.GEX_Sample.isin(FAILED)]
    mats, sorts, samples, names0 = [], [], [], None
    for row in meta.itertuples():
        X, names, _, fids = read_10x_h5(args.data / f"carpall/gex/{row.GEX_Sample}.h5", ids=True)
        if names0 is None:
            names0 = names
        assert (names == names0).all()
        mats.append(X)
        sorts += [row.Sort] * X.shape[0]
        samples += [row.GEX_Sample] * X.shape[0]
    X = sp.vstack(mats).tocsr()
    names = names0
    sorts, samples = np.array(sorts), np.array(samples)
    idx = {g: i for i, g in enumerate(names)}
    lib_all = np.asarray(X.sum(1)).ravel()
    mt = np.array([n.startswith("MT-") for n in names])
    pct_mt = np.asarray(X[:, mt].sum(1)).ravel() / np.maximum(lib_all, 1)
    ngenes = np.diff(X.indptr)
    ok = (lib_all >= 500) & (ngenes >= 200) & (pct_mt < 0.15)
    print(f"cells: {X.shape[0]}, passing QC: {ok.sum()}")
    X, sorts, samples, lib_all = X[ok], sorts[ok], samples[ok], lib_all[ok]

    car = np.asarray(X[:, idx[CAR_FEATURE]].todense()).ravel()
    gene_mask = np.array([n != CAR_FEATURE for n in names])
    labels = annotate(X[:, gene_mask], names[gene_mask])
    # sorted CD3+CAT+ samples hold T cells only: CD3-dropout cells there are not NK cells
    labels[(sorts == "CD3+CAT+") & (labels == "NK")] = "unknown"
    print(pd.crosstab(labels, sorts))

    # candidate genes: positioned, not the CAR, expressed somewhere
    pos = pd.read_csv(args.data / "gene_positions_hg38.tsv", sep="\t")
    pos = pos[pos.chromosome.isin([f"chr{c}" for c in [*range(1, 23), "X", "Y"]])]
    pos = pos.drop_duplicates("gene_symbol").set_index("gene_symbol")
    for g, (s, e) in MT_POSITIONS.items():
        pos.loc[g, ["chromosome", "start", "end"]] = ["chrM", s, e]

    fits = {}
    for ct in CELL_TYPES:
        sel = labels == ct
        if ct == "T":  # unsorted and sorted T cells alike
            pass
        Xi, li = X[sel], lib_all[sel]
        mu, phi = nb_moments(Xi, li)
        fits[ct] = dict(
            mu=mu, phi=phi, n=sel.sum(), loglib=np.log(li), gene_umis=np.asarray(Xi.sum(0)).ravel()
        )
        print(f"{ct}: {sel.sum()} cells, median UMIs {np.median(li):.0f}")

    # B cells are few (B-cell aplasia after CD19 CAR-T): shrink their proportions towards the
    # lymphocyte (T/NK) profile with the weight of 20k UMIs, and borrow NK dispersions for genes
    # with fewer than 200 B-cell UMIs.
    fb, w = fits["B"], 2e4
    prior = (fits["T"]["mu"] + fits["NK"]["mu"]) / 2
    fb["mu"] = (fb["gene_umis"] + w * prior) / (np.exp(fb["loglib"]).sum() + w)
    fb["phi"] = np.where(fb["gene_umis"] >= 200, fb["phi"], fits["NK"]["phi"])
    # Too few real B cells remain for a profile (the "B" markers of the rest are monocyte leak), so
    # the B profile is semi-synthetic: that lymphocyte base, T/NK genes silenced, and typical 10x
    # B-cell levels (share of UMIs) of the B program. Recorded in info["b_profile"].
    for gname in [
        "CD3E",
        "CD3D",
        "CD3G",
        "CD2",
        "CD7",
        "CD5",
        "CD247",
        "NKG7",
        "GNLY",
        "GZMA",
        "GZMB",
        "GZMK",
        "GZMH",
        "PRF1",
        "CCL5",
        "KLRB1",
        "KLRD1",
        "IL7R",
        "LCK",
        "BCL11B",
        "CD8A",
        "CD8B",
        "CD4",
        "CD28",
        "ZAP70",
    ]:
        if gname in idx:
            fb["mu"][idx[gname]] *= 0.02
    for gname, share in {
        "CD74": 2.5e-2,
        "HLA-DRA": 8e-3,
        "HLA-DRB1": 4e-3,
        "HLA-DPA1": 2e-3,
        "HLA-DPB1": 2.5e-3,
        "CD79A": 2.5e-3,
        "CD79B": 1.5e-3,
        "MS4A1": 2e-3,
        "CD19": 3e-4,
        "PAX5": 2e-4,
        "BANK1": 5e-4,
        "CD22": 3e-4,
        "TCL1A": 1e-3,
        "FCER2": 3e-4,
        "CD37": 2e-3,
        "VPREB3": 3e-4,
        "IRF8": 5e-4,
        "SPIB": 3e-4,
    }.items():
        if gname in idx:
            fb["mu"][idx[gname]] = share
    fb["mu"] /= fb["mu"].sum()
    # No real erythroblasts either (hemoglobin ≥5 % of UMIs in 6 of 17k cells: red cells are removed
    # before loading); the cells called "erythroid" are other cells with ambient hemoglobin. Their
    # fitted profile is the base; immune genes are turned down and typical erythroblast levels of the
    # hemoglobin/erythroid program set. Recorded in info["erythroid_profile"].
    fe = fits["erythroid"]
    for gname in [
        "PTPRC",
        "CD74",
        "HLA-DRA",
        "HLA-DRB1",
        "HLA-DPA1",
        "HLA-DPB1",
        "LYZ",
        "S100A8",
        "S100A9",
        "S100A4",
        "B2M",
        "HLA-A",
        "HLA-B",
        "HLA-C",
        "CD3E",
        "CD3D",
        "CD7",
        "CD2",
        "NKG7",
        "GNLY",
        "CCL5",
        "FTL",
        "TMSB4X",
        "CD52",
        "CORO1A",
        "LCP1",
    ]:
        if gname in idx:
            fe["mu"][idx[gname]] *= 0.05
    for gname, share in {
        "HBB": 0.22,
        "HBA1": 0.08,
        "HBA2": 0.07,
        "HBD": 8e-3,
        "HBM": 2e-3,
        "ALAS2": 4e-3,
        "CA1": 6e-3,
        "AHSP": 4e-3,
        "GYPA": 2e-3,
        "SLC4A1": 2e-3,
        "PRDX2": 5e-3,
        "SNCA": 1.5e-3,
        "TFRC": 2e-3,
        "GATA1": 3e-4,
        "KLF1": 3e-4,
        "HMBS": 1e-3,
        "BLVRB": 3e-3,
        "RHAG": 5e-4,
    }.items():
        if gname in idx:
            fe["mu"][idx[gname]] = share
    fe["mu"] /= fe["mu"].sum()

    # gene choice
    cand = np.array([n in pos.index for n in names]) & gene_mask
    mus = np.column_stack([fits[c]["mu"] for c in CELL_TYPES])
    mean_mu = mus.mean(1)
    logmu = np.log10(mus + 1e-7)
    spread = logmu.max(1) - np.median(logmu, 1)
    chosen: set[int] = set()
    must = {g for gs in MARKERS.values() for g in gs} | set(PROGRAM_GENES) | set(MT_POSITIONS)
    chosen |= {idx[g] for g in must if g in idx and cand[idx[g]]}
    missing = sorted(g for g in must if g not in idx or not cand[idx[g]])
    print("markers without position or absent:", missing)
    # informative: high max expression and spread between cell types
    order_inf = np.argsort(-(spread * (mus.max(1) > 2e-5)))
    for i in order_inf:
        if len(chosen) >= args.n_genes * 0.3:
            break
        if cand[i] and mus[i].max() > 2e-5:
            chosen.add(i)
    # expressed / housekeeping: by mean
    for i in np.argsort(-mean_mu):
        if len(chosen) >= args.n_genes * 0.9:
            break
        if cand[i]:
            chosen.add(i)
    # every chromosome: top expressed genes per chromosome up to a floor
    chrom_of = np.array([pos.chromosome.get(n, "") if cand[i] else "" for i, n in enumerate(names)])
    floor = {f"chr{c}": 60 for c in [*range(1, 23), "X"]} | {"chrY": 5}
    for ch, k in floor.items():
        have = sum(chrom_of[i] == ch for i in chosen)
        for i in np.argsort(-mean_mu):
            if have >= k:
                break
            if chrom_of[i] == ch and i not in chosen and mean_mu[i] > 0:
                chosen.add(i)
                have += 1
    for i in np.argsort(-mean_mu):
        if len(chosen) >= args.n_genes:
            break
        if cand[i]:
            chosen.add(i)
    genes_idx = np.array(
        sorted(chosen, key=lambda i: (_chrom_key(chrom_of[i]), pos.start[names[i]]))
    )
    genes = names[genes_idx]
    print(f"genes kept: {len(genes)}")
    print(pd.Series(chrom_of[genes_idx]).value_counts().sort_index().to_dict())

    out: dict[str, np.ndarray] = {
        "genes": genes.astype("U"),
        "gene_ids": fids[genes_idx].astype("U"),
        "chromosome": chrom_of[genes_idx].astype("U"),
        "start": pos.loc[genes, "start"].to_numpy(np.int64),
        "end": pos.loc[genes, "end"].to_numpy(np.int64),
        "cell_types": np.array(CELL_TYPES, dtype="U"),
    }
    info: dict[str, object] = {
        "b_profile": "semi-synthetic: T/NK lymphocyte base, T/NK genes x0.02, B program at typical 10x levels "
        "(the data have B-cell aplasia after CD19 CAR-T)",
        "erythroid_profile": "semi-synthetic: profile of cells with ambient hemoglobin, immune genes x0.05, "
        "erythroblast program at typical 10x levels (the data hold no erythroblasts)",
        "source": "CARPALL (natedandy/CAT_CART_paper_2023), 10x 5' GEX",
        "n_cells_used": int(ok.sum()),
        "excluded_libraries": sorted(FAILED),
    }
    for ct in CELL_TYPES:
        f = fits[ct]
        mu = f["mu"][genes_idx]
        coverage = float(mu.sum())
        phi = f["phi"][genes_idx]
        # genes too sparse for a moment estimate get the median of similarly expressed genes
        bad = ~np.isfinite(phi) | (f["mu"][genes_idx] < 1e-7)
        phi = np.where(bad, np.nanmedian(phi[~bad]), phi)
        phi = np.clip(phi, 0.01, 50.0)
        out[f"mu_{ct}"] = (np.maximum(mu, 1e-9) / coverage).astype(np.float32)
        out[f"phi_{ct}"] = phi.astype(np.float32)
        out[f"loglib_{ct}"] = np.array([f["loglib"].mean(), f["loglib"].std()], dtype=np.float32)
        info[f"coverage_{ct}"] = round(coverage, 4)
        info[f"n_cells_{ct}"] = int(f["n"])
        info[f"median_umis_{ct}"] = float(np.median(np.exp(f["loglib"])))

    # CAR transgene in T cells of sorted CAR-T samples (CD3+CAT+): share of UMIs and its spread
    tcar = (labels == "T") & (sorts == "CD3+CAT+")
    car_prop = car[tcar] / lib_all[tcar]
    out["car_prop"] = np.array(
        [
            np.mean(car_prop),
            np.mean(car[tcar] > 0),
            float(nb_moments(sp.csr_matrix(car[tcar, None]), lib_all[tcar])[1][0]),
        ],
        dtype=np.float32,
    )
    info["car_detected_in_sorted_T"] = round(float(np.mean(car[tcar] > 0)), 3)

    # real CD7 detection in T cells, per sort type and per depth bin (calibration target)
    cd7 = np.asarray(X[:, idx["CD7"]].todense()).ravel()
    t = labels == "T"
    calib = {}
    for lo, hi in [(1000, 2000), (2000, 3000), (3000, 4000), (4000, 6000)]:
        s = t & (lib_all >= lo) & (lib_all < hi)
        calib[f"{lo}-{hi}"] = {
            "n": int(s.sum()),
            "cd7_zero_fraction": round(float(np.mean(cd7[s] == 0)), 3),
        }
    calib["all_T"] = {
        "n": int(t.sum()),
        "cd7_zero_fraction": round(float(np.mean(cd7[t] == 0)), 3),
        "median_umis": float(np.median(lib_all[t])),
    }
    info["cd7_real_T"] = calib
    print(json.dumps(calib, indent=1))
    out["info_json"] = np.array(json.dumps(info))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


def _chrom_key(ch: str) -> int:
    c = ch.removeprefix("chr")
    return {"X": 23, "Y": 24, "M": 25}.get(c, int(c) if c.isdigit() else 26)


if __name__ == "__main__":
    main()
