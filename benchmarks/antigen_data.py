"""Real CARPALL counts for the antigen benchmarks: per-cell antigen counts and library sizes (read with h5py).

Nothing is copied into the repository; the files are read from ../shared/data/carpall.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from scipy import sparse

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "carpall"
FAILED = {"CAR-T10593347"}  # failed library (median 2 UMIs)
MARKERS = ("CD7", "CD3E", "CD3D", "LYZ", "CD79A", "MS4A1", "HBB", "NKG7", "GNLY", "CD14")


def metadata() -> pd.DataFrame:
    return pd.read_csv(DATA / "metadata.tsv", sep="\t")


def read_sample(name: str, genes=MARKERS) -> pd.DataFrame:
    """One row per cell: total UMIs (gene expression) and counts of ``genes``."""
    with h5py.File(DATA / "gex" / f"{name}.h5", "r") as f:
        m = f["matrix"]
        shape = tuple(m["shape"][:])
        X = sparse.csc_matrix(
            (m["data"][:], m["indices"][:], m["indptr"][:]), shape=shape
        )  # genes x cells
        names = m["features/name"][:].astype(str)
        ftype = m["features/feature_type"][:].astype(str)
        barcodes = m["barcodes"][:].astype(str)
    gex = ftype == "Gene Expression"
    Xc = X.T.tocsr()
    out = pd.DataFrame({"total": np.asarray(Xc[:, gex].sum(axis=1)).ravel()}, index=barcodes)
    for g in genes:
        j = np.flatnonzero(names == g)
        out[g] = np.asarray(Xc[:, j[0]].todense()).ravel() if j.size else 0
    out["sample"] = name
    return out


def sorted_t_cells(min_total: int = 500) -> pd.DataFrame:
    """Cells of the sorted CD3+CAT+ samples (real T cells), library size at least ``min_total``."""
    md = metadata()
    names = [s for s in md.loc[md["Sort"] == "CD3+CAT+", "GEX_Sample"] if s not in FAILED]
    cells = pd.concat([read_sample(s) for s in names])
    return cells[cells["total"] >= min_total]


def non_t_cells(min_total: int = 500) -> pd.DataFrame:
    """Cells of unsorted samples that are clearly B, myeloid or erythroid (no CD3, no NK markers)."""
    md = metadata()
    names = [s for s in md.loc[md["Sort"] == "NoSo", "GEX_Sample"] if s not in FAILED]
    cells = pd.concat([read_sample(s) for s in names])
    cells = cells[cells["total"] >= min_total]
    no_t = (cells["CD3E"] + cells["CD3D"] == 0) & (cells["NKG7"] + cells["GNLY"] == 0)
    lineage = (cells["LYZ"] >= 5) | (cells["CD79A"] + cells["MS4A1"] >= 2) | (cells["HBB"] >= 20)
    return cells[no_t & lineage]


def library_sizes() -> np.ndarray:
    """Library sizes of all passing cells of all samples (for resampling in simulations)."""
    md = metadata()
    names = [s for s in md["GEX_Sample"] if s not in FAILED]
    tot = np.concatenate([read_sample(s, genes=())["total"].to_numpy() for s in names])
    return tot[tot >= 300]
