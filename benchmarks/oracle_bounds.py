"""Oracles told the truth of a semi-synthetic patient, for two steps (benchmarks only).

Each helper is told what cd7escape cannot know, so that a miss of the tool can be read against what one
kind of evidence gives at best:

- :func:`malignant_copy_number_oracle`: the malignant call from a cell's own counts in the arm its blasts
  truly lost, with its Leiden cluster as context, told the true rates of blasts and of normal cells per
  cluster, the true share of blasts among the cells whose TCR was not read, and which clonotype is the
  leukemia's. It bounds what copy number and cluster give, not the tool, which weighs more (its
  neighbours, T identity): cd7escape's F1 is at or above it in about half the patients.
- :func:`supervised_trace_purity`: the share of true negative-subclone cells among the baseline ancestors
  that a classifier trained on the true subclone labels (cross-fitted) weights, capped as the trace caps
  its weights. Where it is low, the negative subclone's cells do not stand apart in expression from
  their positive neighbours, and no trace from expression can make their ancestors pure.
- :func:`trace_space_purity`: the same share for the run's own trace (its joint space, copy-number features,
  classifier, penalty and cap) told which relapse cells truly belong to the negative subclone: its mass is
  those cells instead of each relapse cell's negative posterior. It separates the two limits of a trace
  that cannot decide: where this share is high and the run's is not, the antigen model's negative mass
  (dropout) blurs the trace; where it is low, the space itself does not set the subclone apart from the
  positive cells that resemble it.

``semisynthetic.py`` adds them to each row (``oracle_cn_malignant_f1``, ``supervised_trace_purity``,
``trace_space_purity``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PRIOR_BOUNDS = (0.02, 0.98)  # as the tool's: a cluster's share is never taken as certain
MIN_CLASS = 3  # cells of each class in a cluster for its rates; otherwise the cluster's majority
FOLDS = 5
PCS = 30
TRACE_MIN_CELLS = 10  # the trace's own cap (no weight above a tenth of the total)


def malignant_copy_number_oracle(
    counts,
    total: np.ndarray,
    arm_cols: np.ndarray,
    blast: np.ndarray,
    clusters: np.ndarray,
    clone_id: pd.Series,
    leukemic_clone: set[str],
) -> dict:
    """Precision, recall and F1 of the Bayes call described in the module docstring.

    ``counts`` are the cells' raw counts, ``total`` their library sizes without the antigen and CAR,
    ``arm_cols`` the columns of the truly lost arm, ``blast`` the true malignant cells, ``clone_id`` the
    clonotype per cell (NaN where not read) and ``leukemic_clone`` the leukemia's clonotypes.
    """
    from cd7escape.tl._malignant._negative_binomial import dispersion, log_nb

    y = np.asarray(counts[:, arm_cols].sum(axis=1)).ravel().astype(float)
    d = np.maximum(np.asarray(total, dtype=float), 1.0)
    read = clone_id.notna().to_numpy()
    leukemic = read & clone_id.astype(str).isin(leukemic_clone).to_numpy()
    call = leukemic.copy()
    for c in pd.unique(clusters):
        cells = clusters == c
        one, zero = cells & blast, cells & ~blast
        unread = cells & ~read
        if not unread.any():
            continue
        if one.sum() < MIN_CLASS or zero.sum() < MIN_CLASS:
            call[unread] = one.sum() > zero.sum()
            continue
        p1, p0 = y[one].sum() / d[one].sum(), y[zero].sum() / d[zero].sum()
        phi1, phi0 = dispersion(y[one], p1 * d[one]), dispersion(y[zero], p0 * d[zero])
        llr = log_nb(y[unread], p1 * d[unread], phi1) - log_nb(y[unread], p0 * d[unread], phi0)
        share = float(np.clip((unread & blast).sum() / unread.sum(), *PRIOR_BOUNDS))
        call[unread] = np.log(share / (1 - share)) + llr > 0
    tp = int((call & blast).sum())
    fp, fn = int((call & ~blast).sum()), int((~call & blast).sum())
    return {
        "oracle_cn_malignant_precision": tp / (tp + fp) if tp + fp else np.nan,
        "oracle_cn_malignant_recall": tp / (tp + fn) if tp + fn else np.nan,
        "oracle_cn_malignant_f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else np.nan,
    }


def supervised_trace_purity(adata, baseline_blast: np.ndarray, negative: np.ndarray, antigen: str):
    """Capped-odds share of true negative-subclone cells among the baseline blasts, from a logistic
    classifier on the first 30 principal components of their antigen-free expression, cross-fitted over
    five folds; NaN with fewer than ``FOLDS`` negative cells."""
    import scanpy as sc
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from cd7escape.tl._clones._trace import cap_weights

    target = negative[baseline_blast].astype(int)
    if target.sum() < FOLDS:
        return np.nan
    a = adata[baseline_blast].copy()
    a.X = a.layers["counts"].copy() if "counts" in a.layers else a.X.copy()
    a = a[:, ~a.var_names.str.upper().isin([antigen.upper()])].copy()
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    sc.pp.highly_variable_genes(a, n_top_genes=2000)
    sc.pp.pca(a, n_comps=min(PCS, a.n_obs - 1), mask_var="highly_variable", random_state=0)
    x = a.obsm["X_pca"]
    score = np.zeros(len(target))
    for fit, pred in StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(x, target):
        model = LogisticRegression(max_iter=5000).fit(x[fit], target[fit])
        score[pred] = model.decision_function(x[pred])
    w = cap_weights(np.exp(score - score.max()), TRACE_MIN_CELLS)
    return float((w * target).sum() / w.sum())


def trace_space_purity(adata, negative: np.ndarray) -> float:
    """Capped-weight share of the true negative subclone's baseline cells in a trace whose negative mass is
    that subclone's relapse cells (see the module docstring); NaN without a trace space, or without
    ``FOLDS`` negative cells at either timepoint.

    ``negative``: per cell of ``adata``, true blast of the negative subclone. The cells, their coordinates,
    copy-number features, penalty, cap and seed are the run's (``classify_relapse``'s record).
    """
    from cd7escape.tl._classify._relapse import _trace_space
    from cd7escape.tl._clones import cap_weights, density_ratio

    entry = adata.uns.get("cd7escape", {}).get("classify", {})
    params = entry.get("params", {}) if hasattr(entry, "get") else {}
    if "trace_penalty" not in params or "malignant" not in adata.obs:
        return np.nan
    tp = adata.obs["timepoint"].astype(str).to_numpy()
    cells = np.flatnonzero(
        adata.obs["malignant"].to_numpy(bool) & np.isin(tp, ["baseline", "relapse"])
    )
    space = _trace_space(adata, cells)
    if space is None:
        return np.nan
    z, labels, copy_number = space
    base = (tp[cells] == "baseline").astype(float)
    neg = np.asarray(negative, bool)[cells]
    mass = ((1 - base) * neg).astype(float)
    if (neg & (base > 0)).sum() < FOLDS or mass.sum() < FOLDS:
        return np.nan
    odds = density_ratio(
        z, base, mass, penalty=float(params["trace_penalty"]), labels=labels, copy_number=copy_number,
        background=(1 - base) * (1 - mass), seed=int(params.get("seed", 0)),
    )  # fmt: skip
    rows = np.flatnonzero(base > 0)
    w = cap_weights(
        np.nan_to_num(odds[rows], nan=0.0), int(params.get("min_cells", TRACE_MIN_CELLS))
    )
    return float((w * neg[rows]).sum() / w.sum()) if w.sum() > 0 else np.nan
