#!/usr/bin/env python
"""Write the small example cohorts in data/test_h5ad/ and their configs (configs/example.yaml, example_b_all.yaml).

The CD7 (T-ALL) example: one simulated patient per mechanism and two clinical findings, in different
input formats so that every reader is exercised:

===  ===========================  =====  ============================================
P1   preexisting_negative_clone   h5     10x HDF5 with Antibody Capture (CITE-seq, no protein loss)
P2   antigen_downregulation       h5     a Cell Ranger multi folder per sample (path names the folder):
                                         10x HDF5, contigs and the raw matrix with empty droplets
P3   antigen_retained             h5ad   AnnData files
P4   mixed                        mtx    10x matrix folders (a 10 % negative subclone, 3,000 UMIs)
P5   antigen_downregulation       h5     20 % of the relapse blasts carry the CAR transgene
                                         (finding ``car_transduced_blasts``)
P6   antigen_downregulation       h5     CITE-seq; the relapse blasts lose the CD7 protein and keep its
                                         RNA (RNA alone: retained; finding ``protein_lost_rna_kept``)
P8   antigen_downregulation       h5ad   two relapse sites (marrow and a mediastinal mass): one call per
                                         relapse sample beside the patient's
P9   (baseline screen)            h5     baseline sample only (a pre-existing 20 % negative subclone):
                                         a screen, no relapse call (``screen`` in result.json)
===  ===========================  =====  ============================================

The CD19 (B-ALL) example (``configs/example_b_all.yaml``, ``samples_b_all.csv``):

===  ===========================  =====  ============================================
P7   antigen_downregulation       h5     a Cell Ranger multi folder per sample; IG contigs in ``vdj_b``
===  ===========================  =====  ============================================

Each sample has 600 cells at ~2k UMIs; the genes are trimmed to ~1,300 (every program/marker
gene, the most expressed genes, and a floor per chromosome for CNV windows) plus the genes of the
patient's subclone expression programs, to keep the folder small; the B-ALL patient also keeps the
B-lineage, B-precursor and IG genes the simulator adds (``datasets/_lineage_sim.py``).
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

from cd7escape._lineages import LINEAGES
from cd7escape._lineages import MARKERS as LINEAGE_MARKERS
from cd7escape.datasets import _lineage_sim as L
from cd7escape.datasets import simulate_patient, write_simulated
from cd7escape.datasets._params import load_params
from cd7escape.datasets._simulate import BLAST_UP, MATURE_DOWN, MYELOID_UP, T_PROGRAM

REPO = Path(__file__).resolve().parents[1]
#: patients written as Cell Ranger output folders (the others: one folder of files per sample)
LAYOUTS = {"P2": "multi", "P7": "multi"}
#: patient, mechanism, format, simulate_patient options (seed 100 + position)
PATIENTS = [
    ("P1", "preexisting_negative_clone", "h5", {"negative_fraction": 0.2, "protein": True}),
    ("P2", "antigen_downregulation", "h5", {"empty_droplets": True}),  # Cell Ranger multi layout
    ("P3", "antigen_retained", "h5ad", {}),
    # the simulator grid's mixed design (10 % negative subclone, 3,000 UMIs): at 2,000 UMIs and 20 % the
    # call was mixed with confidence 0.42 (the grid's mixed patients at 1,000 UMIs: 0.48, 0.68)
    ("P4", "mixed", "mtx", {"negative_fraction": 0.1, "median_umis": 3000}),
    # CAR-transduced blasts: a fifth of the relapse blasts carry CAR_CD7
    ("P5", "antigen_downregulation", "h5", {"car_transduced": 0.2}),
    # protein lost with RNA kept: the RNA says retained, the CAR sees a loss (truth: downregulation)
    ("P6", "antigen_retained", "h5", {"protein": True, "protein_loss": True}),
    # two relapse sites: the relapse cells are dealt to a marrow and a mediastinal-mass sample
    ("P8", "antigen_downregulation", "h5ad", {"relapse_sites": ("BM", "mediastinum")}),
    # a baseline screen: only the baseline sample is written (the patient's truth is of the relapse
    # that was simulated; the run makes no relapse call)
    ("P9", "preexisting_negative_clone", "h5", {"negative_fraction": 0.2, "baseline_only": True}),
]
#: the B-ALL example (CD19): patient, mechanism, format, options (seed 200 + position)
PATIENTS_B_ALL = [
    ("P7", "antigen_downregulation", "h5", {"antigen": "CD19"}),  # Cell Ranger multi, IG in vdj_b
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


def b_lineage_genes() -> list[str]:
    """Genes a B-ALL patient keeps beside the T example's: B programs, IG and marker genes."""
    B = LINEAGES["B"]
    light = [g for genes in L.LIGHT_GENES.values() for g in genes]
    markers = [g for genes in LINEAGE_MARKERS.values() for g in genes]
    return [*L.B_BLAST_UP, *L.B_EXTRA, *L.IG_GENES, *light, *B.program, *B.mature,
            *B.blast_specific, *B.blast_supporting, *markers]  # fmt: skip


def write_cohort(
    out: Path, patients: list, *, seed0: int, args: argparse.Namespace, extra_genes: list[str] = ()
) -> pd.DataFrame:
    """Simulate and write ``patients`` under ``out``; returns their sample sheet rows (paths under ``out``).

    The genes kept are :func:`choose_genes` (by symbol, so that a B-ALL patient's larger gene universe
    keeps the same ones), ``extra_genes``, each patient's subclone program genes and the CAR feature.
    """
    base = load_params().genes[choose_genes(args.n_genes)]
    sheets = []
    for k, (patient, mechanism, fmt, extra) in enumerate(patients):
        extra = dict(extra)
        baseline_only = extra.pop("baseline_only", False)
        median_umis = float(extra.pop("median_umis", args.depth))
        lineage = "T" if extra.get("antigen", "CD7") == "CD7" else "B"
        P = load_params() if lineage == "T" else L.extended_params()
        genes = np.union1d(P.index(base), P.index(extra_genes))
        coverage = float(P.mu[lineage][genes].sum())
        adata = simulate_patient(
            mechanism,
            seed=seed0 + k,
            n_cells=args.n_cells,
            depth=median_umis / coverage,
            patient=patient,
            **extra,
        )
        # the genes carrying each subclone's expression program stay (real data would have them all)
        program = P.index(
            [g for gs in adata.uns["truth"]["subclone_program_genes"].values() for g in gs]
        )
        cols = np.append(np.union1d(genes, program), len(P.genes))  # the CAR feature is the last
        adata = adata[:, cols].copy()
        if baseline_only:
            adata = adata[(adata.obs["timepoint"] == "baseline").to_numpy()].copy()
        if "empty_droplets" in adata.uns:  # trim the empty droplets' genes alike
            for e in adata.uns["empty_droplets"].values():
                e["counts"] = e["counts"][:, cols]
        layout = LAYOUTS.get(patient, "files")
        sheet = write_simulated(adata, out / patient, fmt=fmt, layout=layout)
        s = pd.read_csv(sheet)
        for col in ("path", "vdj", "raw_path"):
            if col in s:
                s[col] = s[col].map(
                    lambda p, patient=patient: f"{patient}/{p}" if isinstance(p, str) else p
                )
        sheet.unlink()
        sheets.append(s)
        tot = np.asarray(adata.layers["counts"].sum(1)).ravel()
        obs = adata.obs
        mal = obs["truth_malignant"].to_numpy()
        negative = ", ".join(
            f"{t} {obs.loc[mal & (obs['timepoint'] == t).to_numpy(), 'truth_antigen_negative'].mean():.2f}"
            for t in ("baseline", "relapse")
        )
        notes = []
        if "truth_car_transduced" in obs:
            notes.append(f"CAR-transduced blasts {int(obs['truth_car_transduced'].sum())}")
        if extra.get("protein_loss"):
            notes.append(
                f"cells without surface protein {int(obs['truth_protein_negative'].sum())}"
            )
        print(
            f"{patient} {adata.uns['truth']['mechanism']:28s} {fmt:5s} cells {adata.n_obs} genes "
            f"{adata.n_vars} median UMIs {np.median(tot):.0f}; truth negative fraction of malignant "
            f"cells: {negative}" + "".join(f"; {n}" for n in notes)
        )
    sheet = pd.concat(sheets, ignore_index=True)
    cols = [
        c
        for c in ("patient", "sample", "timepoint", "path", "vdj", "tissue", "raw_path")
        if c in sheet
    ]
    return sheet[cols]


def write_config(path: Path, comment: str, **fields: str) -> None:
    """An example config: the comment's lines, then ``fields`` in order, then integration and seed."""
    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [f"{k}: {v}" for k, v in {**fields, "integration": "pca", "seed": "0"}.items()]
    path.write_text("\n".join(lines) + "\n")


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

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    configs = REPO / "configs"
    configs.mkdir(exist_ok=True)
    sheet = write_cohort(args.out, PATIENTS, seed0=100, args=args)
    sheet.to_csv(args.out / "samples.csv", index=False)
    write_config(
        configs / "example.yaml",
        "Example cohort (T-ALL, CD7 CAR-T): eight simulated patients (scripts/make_fixtures.py), one per\n"
        "relapse mechanism (P1-P4), two findings (P5 has CAR-transduced blasts at relapse, P6 lost the CD7\n"
        "protein while keeping its RNA), two relapse sites (P8) and a baseline screen (P9).\n"
        "Paths are relative to this file. Truth: data/test_h5ad/<patient>/truth/.\n"
        "P2's samples are Cell Ranger multi output folders: the sheet's path names the folder, and\n"
        "the filtered matrix, raw matrix and contigs are found in it (cd7escape validate lists them).\n"
        "P1 and P6 have CITE-seq (Antibody Capture): the CD7 protein decides their calls; the patients\n"
        "without ADT counts are measured by RNA.",
        antigen="CD7",
        antigen_protein="CD7_TotalSeqC",
        car_feature="CAR_CD7",
        outdir="../results",
        samples="../data/test_h5ad/samples.csv",
    )
    sheet_b = write_cohort(
        args.out, PATIENTS_B_ALL, seed0=200, args=args, extra_genes=b_lineage_genes()
    )
    sheet_b.to_csv(args.out / "samples_b_all.csv", index=False)
    write_config(
        configs / "example_b_all.yaml",
        "Example B-ALL patient (CD19 CAR-T; scripts/make_fixtures.py). Paths are relative to this file.\n"
        "Truth: data/test_h5ad/P7/truth/. P7's samples are Cell Ranger multi output folders whose\n"
        "receptor contigs are IG chains in vdj_b (the B lineage's loci: IGH, IGK, IGL).",
        antigen="CD19",
        lineage="B",
        antigen_protein="null",
        car_feature="CAR_CD19",
        outdir="../results/b_all",
        samples="../data/test_h5ad/samples_b_all.csv",
    )
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(
        f"wrote {args.out} ({size / 1e6:.2f} MB), configs/example.yaml and configs/example_b_all.yaml"
    )


if __name__ == "__main__":
    main()
