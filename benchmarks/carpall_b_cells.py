"""Can real CARPALL cells play B-lineage subclones (issue 21, item 4)? Count the B cells they hold.

A semi-synthetic B-ALL patient would take groups of real B cells as its subclones, as
``semisynthetic.py`` takes groups of real T cells for T-ALL. CARPALL's children were treated with a CD19
CAR, which depletes normal B cells (B-cell aplasia is the sign that the CAR persists), so the unsorted
samples are counted here: per sample, cells with at least two UMIs of CD19, MS4A1, CD79A, CD79B and none
of CD3D/CD3E ("B-like"), and those among them with a CD19 UMI.

    python benchmarks/carpall_b_cells.py

Needs ../shared/data/carpall (exits quietly otherwise). Reads only; writes nothing.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "carpall"
B_GENES = ("CD19", "MS4A1", "CD79A", "CD79B")
T_GENES = ("CD3D", "CD3E")


def main() -> None:
    if not DATA.is_dir():
        print(f"{DATA} is absent: nothing to do")
        return
    import numpy as np
    import pandas as pd
    import scanpy as sc

    warnings.filterwarnings("ignore")
    meta = pd.read_csv(DATA / "metadata.tsv", sep="\t")
    rows = []
    for _, r in meta[meta["Sort"] == "NoSo"].iterrows():
        a = sc.read_10x_h5(DATA / "gex" / f"{r['GEX_Sample']}.h5")
        a.var_names_make_unique()
        b = np.asarray(a[:, list(B_GENES)].X.sum(axis=1)).ravel()
        t = np.asarray(a[:, list(T_GENES)].X.sum(axis=1)).ravel()
        cd19 = np.asarray(a[:, "CD19"].X.sum(axis=1)).ravel()
        like = (b >= 2) & (t == 0)
        rows.append(
            {
                "patient": r["Patient"], "sample": r["GEX_Sample"], "source": r["Source"],
                "timepoint": r["Timepoint"], "cells": a.n_obs, "b_like": int(like.sum()),
                "b_like_cd19": int((like & (cd19 > 0)).sum()),
            }
        )  # fmt: skip
    df = pd.DataFrame(rows)
    df.to_csv(sys.stdout, sep="\t", index=False)
    print(
        f"\n{len(df)} unsorted samples, {df['cells'].sum()} cells: {df['b_like'].sum()} B-like, "
        f"{df['b_like_cd19'].sum()} of them with a CD19 UMI (at most {df['b_like'].max()} in one sample)"
    )


if __name__ == "__main__":
    main()
