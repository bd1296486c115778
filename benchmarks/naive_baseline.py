"""The naive approach the classifier is compared with (no dropout model, no clone link).

Malignant cells of both timepoints are clustered together (normalize, log1p, 2,000 HVGs, 30 PCs, Leiden
0.5; the antigen is not removed from the features, as in a default scanpy workflow) and a cell counts as
antigen-negative when its antigen count is zero. Then:

- relapse zero-count fraction below 0.5 → ``antigen_retained``;
- else, a cluster with ≥ 10 baseline cells whose baseline zero-count fraction is ≥ 0.5 ("a negative subclone
  existed before therapy") → ``preexisting_negative_clone``;
- else → ``antigen_downregulation``.

It never says ``indeterminate`` and has no confidence: every call is a confident call.
"""

from __future__ import annotations

import numpy as np


def naive_call(adata, *, antigen: str = "CD7", min_cluster_cells: int = 10, seed: int = 0) -> dict:
    import anndata as ad
    import scanpy as sc
    import scipy.sparse as sp

    mal = adata.obs["malignant"].to_numpy().astype(bool)
    tp = adata.obs["timepoint"].astype(str).to_numpy()
    cells = mal & np.isin(tp, ["baseline", "relapse"])
    x = sp.csr_matrix(adata.layers.get("counts", adata.X)[cells])
    y = np.asarray(x[:, adata.var_names.get_loc(antigen)].todense()).ravel()
    t = tp[cells]
    zero = y == 0
    b, r = t == "baseline", t == "relapse"
    out = {
        "naive_zero_baseline": float(zero[b].mean()) if b.any() else np.nan,
        "naive_zero_relapse": float(zero[r].mean()) if r.any() else np.nan,
    }
    if b.sum() < 3 or r.sum() < 3:
        out["naive_call"] = "antigen_retained"
        return out
    tmp = ad.AnnData(x.astype(np.float32))
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    sc.pp.highly_variable_genes(tmp, n_top_genes=min(2000, tmp.n_vars - 1))
    tmp = tmp[:, tmp.var["highly_variable"].to_numpy()].copy()
    sc.pp.scale(tmp, max_value=10)
    sc.pp.pca(tmp, n_comps=min(30, tmp.n_obs - 1, tmp.n_vars - 1), random_state=seed)
    sc.pp.neighbors(tmp, n_neighbors=15, random_state=seed)
    sc.tl.leiden(
        tmp, resolution=0.5, flavor="igraph", n_iterations=2, directed=False, random_state=seed
    )
    cl = tmp.obs["leiden"].to_numpy()
    neg_clusters = [
        c
        for c in np.unique(cl)
        if (b & (cl == c)).sum() >= min_cluster_cells and zero[b & (cl == c)].mean() >= 0.5
    ]
    out["naive_negative_baseline_clusters"] = len(neg_clusters)
    if out["naive_zero_relapse"] < 0.5:
        out["naive_call"] = "antigen_retained"
    elif neg_clusters:
        out["naive_call"] = "preexisting_negative_clone"
    else:
        out["naive_call"] = "antigen_downregulation"
    return out
