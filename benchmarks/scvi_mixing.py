"""Does scVI integration pull a relapse-only state onto baseline cells? scArches query mapping vs joint scVI vs PCA.

Simulated patients (``simulate_patient``) with states only the relapse has:

- ``new_clone``: ``preexisting_negative_clone`` with ``negative_fraction=0.004``: subclone S2 (its own program
  and CNVs) is ~1 baseline cell and most relapse blasts;
- ``lineage_switch``: relapse blasts lose the T program and gain a myeloid one;
- in both, CAR-T cells exist at relapse only.

For each embedding (``pp.embed`` with ``integration='pca'``, scVI ``scvi_mode='joint'``, ``'query'``) and each
relapse-only group: the share of its cells' 15 nearest neighbours (in ``obsm['X_pca'|'X_scvi']``, all cells)
that are baseline cells. Low = kept apart. Against it, the same share for relapse cells of the cell types both
timepoints have (B, NK, myeloid, erythroid, normal T): high (toward the baseline's share of those cells,
~0.5) = the samples are integrated, and whether their cell type is the majority among their 15 nearest
baseline cells (label transfer, as a query mapping is used). For ``new_clone`` also the share of relapse S2 cells ``tl.subclones``
leaves ``unmapped`` (truth as malignant calls) in that space.

Usage: nice python benchmarks/scvi_mixing.py [--seeds 0 1 2] [--epochs 100] [--cells 600]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

SHARED = ["B", "NK", "myeloid", "erythroid", "normal_T"]
PATIENTS = {
    "new_clone": ("preexisting_negative_clone", {"negative_fraction": 0.004}),
    "lineage_switch": ("lineage_switch", {}),
}


def baseline_share(rep: np.ndarray, is_base: np.ndarray, rows: np.ndarray, k: int = 15) -> float:
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1).fit(rep)
    idx = nn.kneighbors(rep[rows], return_distance=False)[:, 1:]
    return float(is_base[idx].mean())


def transfer_accuracy(
    rep: np.ndarray, is_base: np.ndarray, rows: np.ndarray, labels: np.ndarray, k: int = 15
) -> float:
    """Share of ``rows`` whose majority label among their k nearest baseline cells is their own."""
    from sklearn.neighbors import NearestNeighbors

    base = np.flatnonzero(is_base)
    nn = NearestNeighbors(n_neighbors=k).fit(rep[base])
    idx = base[nn.kneighbors(rep[rows], return_distance=False)]
    votes = pd.DataFrame(labels[idx]).mode(axis=1)[0].to_numpy()
    return float((votes == labels[rows]).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--cells", type=int, default=600)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import scvi
    import torch

    torch.set_num_threads(1)
    scvi.settings.num_threads = 1
    import cd7escape as ce

    rows = []
    for name, (mechanism, extra) in PATIENTS.items():
        for seed in args.seeds:
            sim = ce.datasets.simulate_patient(mechanism, seed=seed, n_cells=args.cells, **extra)
            obs = sim.obs
            rel = (obs["timepoint"] == "relapse").to_numpy()
            is_base = (obs["timepoint"] == "baseline").to_numpy()
            ctype = obs["truth_cell_type"].astype(str).to_numpy()
            groups = {
                "car_T": np.flatnonzero(rel & (ctype == "car_T")),
                "shared types": np.flatnonzero(rel & np.isin(ctype, SHARED)),
            }
            if name == "new_clone":
                s2 = rel & (obs["truth_subclone"].astype(str).to_numpy() == "S2")
                groups["S2 (relapse-only clone)"] = np.flatnonzero(s2)
            else:
                groups["switched blasts"] = np.flatnonzero(rel & (ctype == "malignant"))
            for label, kw in (
                ("pca", dict(integration="pca")),
                ("scvi joint", dict(integration="scvi", scvi_mode="joint")),
                ("scvi query", dict(integration="scvi", scvi_mode="query")),
            ):
                adata = sim.copy()
                t0 = time.perf_counter()
                ce.pp.embed(
                    adata, umap=False, exclude=("CAR_CD7",), scvi_max_epochs=args.epochs,
                    seed=seed, **kw,
                )  # fmt: skip
                secs = time.perf_counter() - t0
                rep = adata.obsm["X_pca" if label == "pca" else "X_scvi"]
                info = dict(adata.uns["cd7escape"]["embed"].get("scvi", {}))
                row = {"patient": name, "seed": seed, "space": label, "embed_s": round(secs, 1)}
                row["epochs"] = (
                    f"{info.get('epochs_reference', '')}+{info.get('epochs_query', '')}"
                    if info
                    else ""
                )
                for g, idx in groups.items():
                    row[g] = round(baseline_share(rep, is_base, idx), 3)
                row["shared types: label transfer"] = round(
                    transfer_accuracy(rep, is_base, groups["shared types"], ctype), 3
                )
                if name == "new_clone":  # relapse blasts of the clones the baseline has
                    clone = obs["truth_subclone"].astype(str).to_numpy()
                    old_clones = np.flatnonzero(rel & np.isin(clone, ["S0", "S1"]))
                    row["S0/S1: label transfer"] = round(
                        transfer_accuracy(rep, is_base, old_clones, clone), 3
                    )
                if name == "new_clone":
                    adata.obs["malignant"] = adata.obs["truth_malignant"].to_numpy(dtype=bool)
                    if label == "pca":
                        adata.obsm["X_pca_rep"] = rep
                    ce.tl.subclones(adata, use_rep="X_pca_rep" if label == "pca" else "X_scvi")
                    sub = adata.obs["subclone"].astype(str).to_numpy()
                    row["S2 unmapped"] = round(
                        float((sub[groups["S2 (relapse-only clone)"]] == "unmapped").mean()), 3
                    )
                rows.append(row)
                print(row, flush=True)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(
        "\nshare of baseline cells among the 15 nearest neighbours (low for relapse-only groups = kept apart)"
    )
    print(table.to_string(index=False))
    num = (
        table.drop(columns=["seed", "epochs"]).groupby(["patient", "space"]).mean(numeric_only=True)
    )
    print("\nmean over seeds")
    print(num.round(3).to_string())


if __name__ == "__main__":
    main()
