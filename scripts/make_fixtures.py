#!/usr/bin/env python
"""Write the small example cohort in data/test_h5ad/ and configs/example.yaml.

One simulated patient per mechanism, in different input formats so that every reader is exercised:

===  ===========================  =====  ============================================
P1   preexisting_negative_clone   h5     10x HDF5 with Antibody Capture (CITE-seq)
P2   antigen_downregulation       h5     a Cell Ranger multi folder per sample (path names the folder):
                                         10x HDF5, contigs and the raw matrix with empty droplets
P3   antigen_retained             h5ad   AnnData files
P4   mixed                        mtx    10x matrix folders
===  ===========================  =====  ============================================

Each sample has 600 cells at ~2k UMIs; the genes are trimmed to ~1,300 (every program/marker
gene, the most expressed genes, and a floor per chromosome for CNV windows) plus the genes of the
patient's subclone expression programs, to keep the folder small.
The truth of each patient is in ``data/test_h5ad/<patient>/truth/``.

Usage::

    python scripts/make_fixtures.py [--out data/test_h5ad] [--n-cells 600] [--n-genes 1300]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from cd7escape.datasets import simulate_patient, write_simulated
from cd7escape.datasets._params import load_params
from cd7escape.datasets._simulate import BLAST_UP, MATURE_DOWN, MYELOID_UP, T_PROGRAM

REPO = Path(__file__).resolve().parents[1]
#: patients written as Cell Ranger output folders (the others: one folder of files per sample)
LAYOUTS = {"P2": "multi"}
PATIENTS = [
    ("P1", "preexisting_negative_clone", "h5", {"negative_fraction": 0.2, "protein": True}),
    ("P2", "antigen_downregulation", "h5", {"empty_droplets": True}),  # Cell Ranger multi layout
    ("P3", "antigen_retained", "h5ad", {}),
    ("P4", "mixed", "mtx", {"negative_fraction": 0.2}),
]
MARKERS = [
    "CD3E", "CD3D", "CD3G", "CD2", "NKG7", "GNLY", "KLRD1", "MS4A1", "CD79A", "CD79B", "CD19", "LYZ", "CD14",
    "FCGR3A", "S100A8", "S100A9", "HBB", "HBA1", "HBA2", "CD7", "CD5", "CD1A", "DNTT", "CD34", "CD99", "KIT",
    "CD38", "MKI67", "PTPRC", "CD4", "CD8A",
]  # fmt: skip


def choose_genes(n_genes: int) -> np.ndarray:
    """Marker/program genes, mitochondrial genes, then the most expressed genes with a floor per chromosome."""
    P = load_params()
    keep = set(P.index([*MARKERS, *BLAST_UP, *MATURE_DOWN, *T_PROGRAM, *MYELOID_UP]))
    keep |= set(np.flatnonzero(P.chromosome == "chrM"))
    top = np.max(np.vstack(list(P.mu.values())), axis=0)
    order = np.argsort(-top)
    for ch in pd.unique(P.chromosome):
        if ch in ("chrM", "chrY"):
            continue
        on = [i for i in order if P.chromosome[i] == ch]
        keep |= set(on[:25])
    for i in order:
        if len(keep) >= n_genes:
            break
        keep.add(int(i))
    return np.sort(np.fromiter(keep, int))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=REPO / "data" / "test_h5ad")
    ap.add_argument("--n-cells", type=int, default=600)
    ap.add_argument("--n-genes", type=int, default=1300)
    ap.add_argument(
        "--depth", type=float, default=2000, help="median UMIs per cell after gene trimming"
    )
    args = ap.parse_args()

    P = load_params()
    genes = choose_genes(args.n_genes)
    car = "CAR_CD7"
    coverage = float(np.mean([P.mu[c][genes].sum() for c in ("T",)]))
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    sheets = []
    for k, (patient, mechanism, fmt, extra) in enumerate(PATIENTS):
        adata = simulate_patient(
            mechanism,
            seed=100 + k,
            n_cells=args.n_cells,
            depth=args.depth / coverage,
            patient=patient,
            car_feature=car,
            **extra,
        )
        # the genes carrying each subclone's expression program stay (real data would have them all)
        program = P.index(
            [g for gs in adata.uns["truth"]["subclone_program_genes"].values() for g in gs]
        )
        cols = np.append(np.union1d(genes, program), len(P.genes))
        adata = adata[:, cols].copy()
        if "empty_droplets" in adata.uns:  # trim the empty droplets' genes alike
            for e in adata.uns["empty_droplets"].values():
                e["counts"] = e["counts"][:, cols]
        layout = LAYOUTS.get(patient, "files")
        sheet = write_simulated(adata, args.out / patient, fmt=fmt, layout=layout)
        s = pd.read_csv(sheet)
        for col in ("path", "vdj", "raw_path"):
            if col in s:
                s[col] = s[col].map(
                    lambda p, patient=patient: f"{patient}/{p}" if isinstance(p, str) else p
                )
        sheet.unlink()
        sheets.append(s)
        tot = np.asarray(adata.layers["counts"].sum(1)).ravel()
        mal = adata.obs["truth_malignant"].to_numpy()
        print(
            f"{patient} {mechanism:28s} {fmt:5s} cells {adata.n_obs} genes {adata.n_vars} "
            f"median UMIs {np.median(tot):.0f}; truth negative fraction of malignant cells: "
            + ", ".join(
                f"{t} {adata.obs.loc[mal & (adata.obs['timepoint'] == t).to_numpy(), 'truth_antigen_negative'].mean():.2f}"
                for t in ("baseline", "relapse")
            )
        )
    sheet = pd.concat(sheets, ignore_index=True)
    cols = [
        c
        for c in ("patient", "sample", "timepoint", "path", "vdj", "tissue", "raw_path")
        if c in sheet
    ]
    sheet[cols].to_csv(args.out / "samples.csv", index=False)
    config = REPO / "configs" / "example.yaml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(
        "# Example cohort: four simulated patients, one per relapse mechanism (scripts/make_fixtures.py).\n"
        "# Paths are relative to this file. Truth: data/test_h5ad/<patient>/truth/.\n"
        "# P2's samples are Cell Ranger multi output folders: the sheet's path names the folder, and\n"
        "# the filtered matrix, raw matrix and contigs are found in it (cd7escape validate lists them).\n"
        "antigen: CD7\n"
        "antigen_protein: null        # P1 has CITE-seq: CD7_TotalSeqC\n"
        f"car_feature: {car}\n"
        "outdir: ../results\n"
        "samples: ../data/test_h5ad/samples.csv\n"
        "integration: pca\n"
        "seed: 0\n"
    )
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"wrote {args.out} ({size / 1e6:.2f} MB) and {config}")


if __name__ == "__main__":
    main()
