"""A small hand-built patient AnnData carrying every documented key (docs/architecture.md).

Built without running the analysis steps, so that plot baselines and report tests depend only on
``pl``/``report`` code, not on the numbers of the models.
"""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse


def make_patient(patient: str = "P01", *, n_cells: int = 600, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    genes = ["CD7", "CD3E", "CD5", "CD1A", "MS4A1", "LYZ", "HBB", *[f"G{i}" for i in range(43)]]
    n = n_cells
    tp = np.where(np.arange(n) < n // 2, "baseline", "relapse")
    sample = np.where(tp == "baseline", f"{patient}_BL", f"{patient}_REL")
    cls = rng.choice(
        ["malignant", "normal_T", "car_T", "B", "myeloid"], size=n, p=[0.6, 0.15, 0.1, 0.08, 0.07]
    )
    mal = cls == "malignant"
    sub = np.full(n, None, dtype=object)
    sub[mal & (tp == "baseline")] = rng.choice(
        ["S0", "S1"], size=(mal & (tp == "baseline")).sum(), p=[0.85, 0.15]
    )
    sub[mal & (tp == "relapse")] = rng.choice(
        ["S0", "S1", "unmapped"], size=(mal & (tp == "relapse")).sum(), p=[0.2, 0.75, 0.05]
    )
    negative = mal & (sub == "S1")
    size = rng.gamma(4, 600, n) + 500
    mu = rng.gamma(1.0, 1.0, len(genes)) * 2e-3
    counts = rng.poisson(np.outer(size, mu)).astype(np.float32)
    cd7_rate = np.where(negative | np.isin(cls, ["B", "myeloid"]), 2e-5, 8e-4)
    counts[:, 0] = rng.poisson(size * cd7_rate)
    a = ad.AnnData(sparse.csr_matrix(counts), var=pd.DataFrame(index=genes))
    a.obs_names = [f"{s}_{i:05d}" for i, s in enumerate(sample)]
    a.layers["counts"] = a.X.copy()
    a.obs["patient"] = pd.Categorical([patient] * n)
    a.obs["sample"] = pd.Categorical(sample)
    a.obs["timepoint"] = pd.Categorical(tp, categories=["baseline", "relapse"])
    a.obs["total_counts"] = counts.sum(1)
    a.obs["qc_pass"] = True
    a.obs["cell_class"] = pd.Categorical(cls)
    a.obs["malignant"] = mal
    a.obs["malignant_score"] = np.where(mal, 0.9, 0.1)
    a.obs["subclone"] = pd.Categorical(sub, categories=["S0", "S1", "unmapped"])
    p_neg = np.where(negative, 0.95, np.where(mal, 0.05, np.nan))
    a.obs["antigen_p_negative"] = p_neg
    state = np.where(np.isnan(p_neg), None, np.where(p_neg > 0.8, "negative", "positive"))
    a.obs["antigen_cell_state"] = pd.Categorical(
        state, categories=["positive", "uncertain", "negative"]
    )
    clones = np.array([f"TRB:TGT{k:03d};TRA:TGC{k:03d}" for k in range(40)], dtype=object)
    cid = clones[rng.integers(1, 40, n)]
    cid[mal] = clones[0]
    cid[rng.random(n) < 0.15] = None
    a.obs["clone_id"] = cid
    # an embedding with structure: classes and subclones apart
    centers = {
        "malignant": (0, 0),
        "normal_T": (6, 0),
        "car_T": (6, 4),
        "B": (-6, 4),
        "myeloid": (-6, -4),
    }
    xy = np.array([centers[c] for c in cls], dtype=float) + rng.normal(0, 0.8, (n, 2))
    xy[negative] += (0, 3)
    a.obsm["X_umap"] = xy
    n_win = 120
    cnv = rng.normal(0, 0.02, (n, n_win))
    cnv[mal, 10:25] += 0.25
    cnv[negative, 70:85] -= 0.25
    a.obsm["X_cnv"] = sparse.csr_matrix(cnv)
    a.uns["cnv"] = {"chr_pos": {f"chr{c}": int(i * 10) for i, c in enumerate(range(1, 13))}}

    ns = a.uns.setdefault("cd7escape", {})
    ns["ingest"] = {
        "params": {"antigen": "CD7"},
        "samples": pd.DataFrame(
            {
                "sample": [f"{patient}_BL", f"{patient}_REL", f"{patient}_REL2"],
                "timepoint": ["baseline", "relapse", "relapse"],
                "format": ["10x_h5"] * 3,
                "path": [
                    f"/data/{patient}/<BL>&.h5",
                    f"/data/{patient}/REL.h5",
                    f"/data/{patient}/REL2.h5",
                ],
                "n_cells": [n // 2 + 20, n // 2 + 15, 40],
            }
        ).set_index("sample"),
        "warnings": [f"[sample={patient}_REL] car_feature 'CAR_CD7' matches no gene"],
    }
    ns["qc"] = {
        "params": {"min_cells": 50},
        "samples": pd.DataFrame(
            {
                "sample": [f"{patient}_BL", f"{patient}_REL", f"{patient}_REL2"],
                "cells_before": [n // 2 + 20, n // 2 + 15, 40],
                "cells_after": [n // 2, n // 2, 0],
                "median_counts": [2400.0, 2300.0, 150.0],
                "median_genes": [1100.0, 1050.0, 90.0],
                "median_pct_mt": [3.1, 3.4, 40.2],
                "doublets": [5, 4, 0],
                "status": ["passed", "passed", "failed"],
                "reason": ["", "", "only 0 of 40 cells pass QC (median 150 UMIs)"],
            }
        ),
    }
    groups = pd.DataFrame(
        {
            "sample": [f"{patient}_BL", f"{patient}_REL"],
            "group": [f"{patient}_BL", f"{patient}_REL"],
            "n_cells": [int((mal & (tp == t)).sum()) for t in ("baseline", "relapse")],
            "pi": [0.12, 0.71],
            "ci_low": [0.07, 0.63],
            "ci_high": [0.18, 0.78],
            "upper_bound": [0.17, 0.77],
            "zero_fraction": [0.41, 0.83],
            "state": ["positive", "negative"],
            "detection_limit": [np.nan, np.nan],
        }
    ).set_index("group", drop=True)
    groups.index.name = None
    ns["antigen"] = {"params": {"antigen": "CD7", "groupby": ["sample"]}, "groups": groups}
    table = pd.DataFrame(
        {
            "subclone": ["S0", "S1", "unmapped"],
            "n_baseline": [150, 27, 0],
            "n_relapse": [36, 135, 9],
            "freq_baseline": [0.85, 0.15, 0.0],
            "freq_relapse": [0.2, 0.75, 0.05],
            "expansion_fold": [0.24, 5.0, np.nan],
            "fold_ci_low": [0.17, 3.4, np.nan],
            "fold_ci_high": [0.33, 7.5, np.nan],
            "pi_baseline": [0.02, 0.93, np.nan],
            "ci_low_baseline": [0.0, 0.78, np.nan],
            "ci_high_baseline": [0.06, 0.99, np.nan],
            "pi_relapse": [0.05, 0.94, np.nan],
            "ci_low_relapse": [0.0, 0.88, np.nan],
            "ci_high_relapse": [0.17, 0.98, np.nan],
            "state_baseline": ["positive", "negative", "uncertain"],
            "state_relapse": ["positive", "negative", "uncertain"],
        }
    ).set_index("subclone")
    ns["subclones"] = {"params": {"resolution": 0.5}, "table": table}
    timepoints = {
        "baseline": {
            "malignant_cells": int((mal & (tp == "baseline")).sum()),
            "antigen_negative_fraction": 0.12,
            "ci_low": 0.07,
            "ci_high": 0.18,
            "zero_count_fraction": 0.41,
        },
        "relapse": {
            "malignant_cells": int((mal & (tp == "relapse")).sum()),
            "antigen_negative_fraction": 0.71,
            "ci_low": 0.63,
            "ci_high": 0.78,
            "zero_count_fraction": 0.83,
        },
    }
    # stored the way tl.classify_relapse stores it: nested values as JSON text
    ns["classify"] = {
        "params": {"antigen": "CD7", "min_relapse_cells": 30, "n_bootstrap": 50},
        "mechanism": "preexisting_negative_clone",
        "confidence": 0.92,
        "reason": "The CD7-negative subclone S1 was present at baseline (15%) and expanded 5-fold.",
        "evidence": [
            "baseline: S1 is CD7-negative (pi 0.93, 95 % CI 0.78–0.99)",
            "relapse: 75 % of malignant cells map to S1 (fold 5.0, CI 3.4–7.5)",
            "S1 shares the leukemic TRB clonotype and a chr9 deletion",
        ],
        "timepoints": json.dumps(timepoints),
        "subclones": json.dumps(json.loads(table.reset_index().to_json(orient="records"))),
        "version": "0.1.0",
    }
    # as tl.sample_burden records it: one row per sample in time order
    rows = []
    for i, (t, s) in enumerate((("baseline", f"{patient}_BL"), ("relapse", f"{patient}_REL"))):
        at = tp == t
        n, k, c = int(at.sum()), int((mal & at).sum()), int((at & (cls == "car_T")).sum())
        nt = int((at & (cls == "normal_T")).sum())
        rows.append(
            {"sample": s, "timepoint": t, "tissue": "BM", "order": i, "cells": n,
             "malignant_cells": k, "malignant_share": k / n, "malignant_ci_low": k / n - 0.05,
             "malignant_ci_high": k / n + 0.05, "car_t_cells": c, "car_t_share": c / n,
             "car_t_ci_low": max(c / n - 0.03, 0.0), "car_t_ci_high": c / n + 0.03,
             "normal_t_cells": nt, "normal_t_negative_fraction": [0.08, 0.3][i],
             "normal_t_ci_low": [0.02, 0.2][i], "normal_t_ci_high": [0.18, 0.42][i],
             "normal_t_zero_count_fraction": [0.4, 0.6][i], "normal_t_state": "positive",
             "normal_t_reason": "", "donor_assigned_cells": np.nan, "donor_cells": np.nan,
             "donor_chimerism": np.nan, "donor_ci_low": np.nan, "donor_ci_high": np.nan,
             "donor_reason": "no donor assignment (obs['donor'] is absent)"}
        )  # fmt: skip
    burden = pd.DataFrame(rows)
    burden.index = burden["sample"].to_numpy()
    ns["burden"] = {"params": {"antigen": "CD7"}, "table": burden}
    return a
