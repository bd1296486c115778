"""Tracing relapse cells back to the baseline cells they resemble, without a clustering resolution.

A subclone partition answers "which cluster does this relapse cell belong to?", and a small antigen-negative
state merged into a larger positive cluster disappears in the answer. The trace asks instead, for every
baseline malignant cell, how much more of the antigen-negative relapse population lies where it lies than
baseline cells do: the density ratio of negative relapse mass to baseline cells in the joint antigen-free
space of both timepoints. Under selection the ancestors of the negative relapse cells are the baseline cells
weighted by that ratio (importance weights), and the antigen model on the baseline cells so weighted
(:func:`cd7escape.tl._antigen.anchored_fit`) says whether those ancestors were already negative.

The ratio is estimated by probabilistic classification (Sugiyama, Suzuki & Kanamori 2012, ch. 4): an
L2-penalised logistic regression separates baseline cells from negative relapse mass; its odds at a baseline
cell, predicted by a model that did not see that cell (cross-fitting), is the cell's weight. On real data a
small negative state overlaps larger positive ones in any few-component space, and a neighbourhood count
(the idea of Milo) spreads the state's weight over its positive neighbours; the classifier's direction is
chosen by the negative relapse cells themselves and keeps it on the state. The relapse cells that are not
negative may join the baseline cells as the other class (``background``): a change every relapse blast
shares (a therapy-induced program, a batch) then no longer separates the negative mass from that class, and
the direction is left to what sets the negatives apart. Confirmed copy-number subclones enter as indicator
features (an independent clone link). Every bootstrap replicate refits it on its drawn
cells: the clone link is redone, not held fixed.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: Neighbours listed per neighbourhood beyond ``k``: replicates skip cells that were not drawn (about a
#: third of them), so ``3 k`` nearest hold ``k`` drawn ones nearly always.
LIST_FACTOR = 3


def joint_space(
    xb,
    xr,
    var_names: np.ndarray,
    *,
    antigen: str,
    excluded_genes: list[str],
    n_top_genes: int,
    n_pcs: int,
    seed: int = 0,
    max_fit_cells: int = 10_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Baseline and relapse malignant cells in one antigen-free space fit on both timepoints.

    The subclone space is fit on baseline cells, where a small subclone adds too little variance to own a
    component; here the relapse cells, in which such a subclone may dominate, shape the space as much as
    the baseline does (at most ``max_fit_cells / 2`` cells of each timepoint fit it; all are projected).
    The genes are chosen again by Pearson residual variance on the fitting cells of both timepoints, with the
    baseline space's exclusions left out (the antigen, genes correlated with it among baseline cells, and
    ``pp.embed``'s list); no new correlation search is made across timepoints, where a negative subclone's
    own program would correlate with the antigen and be dropped.
    """
    from ._map_relapse import fit_reference

    rng = np.random.default_rng(seed)
    half = max_fit_cells // 2

    def part(x):
        n = x.shape[0]
        return x if n <= half else x[np.sort(rng.choice(n, half, replace=False))]

    fit = (
        sp.vstack([part(xb), part(xr)]).tocsr()
        if sp.issparse(xb)
        else np.vstack([part(xb), part(xr)])
    )
    space, _ = fit_reference(
        fit, var_names, antigen=antigen, excluded_genes=excluded_genes, n_top_genes=n_top_genes,
        n_pcs=n_pcs, antigen_corr_max=None, seed=seed,
    )  # fmt: skip
    return space.project(xb), space.project(xr)


def density_ratio(
    z: np.ndarray,
    baseline: np.ndarray,
    mass: np.ndarray,
    *,
    penalty: float,
    labels: np.ndarray | None = None,
    copy_number: np.ndarray | None = None,
    background: np.ndarray | None = None,
    folds: int = 5,
    max_fit: int = 2_000,
    seed: int = 0,
) -> np.ndarray:
    """Cross-fitted odds of "negative relapse mass rather than baseline cell" at every baseline point.

    Parameters
    ----------
    z
        Coordinates of the distinct cells (one row each) in the joint antigen-free space.
    baseline
        Weight of each row as a baseline cell (its copies in a bootstrap replicate; 0 for relapse cells).
    mass
        Weight of each row as a negative relapse cell (its negative posterior times its copies; 0 for
        baseline cells).
    penalty
        L2 penalty on the coefficients against the weighted sum of the log-losses (scikit-learn's ``1 / C``):
        the larger, the smoother the log ratio; its weight falls as cells are added.
    labels
        Optional clone label per row (a confirmed copy-number subclone, None otherwise), given to the
        classifier as indicator features.
    copy_number
        Optional log-likelihood ratios per row (rows × states) of carrying each copy-number state the
        relapse carries more than the baseline (:func:`~._relapse_copy_number.relapse_copy_number`; NaN: no
        evidence). Each state enters as a known offset, not a fitted feature: the log ratio of the two
        classes' densities of the cell's evidence, ``log((f1 e^l + 1 - f1) / (f0 e^l + 1 - f0))``, with each
        class's carrier share ``f`` fit to its rows (EM). The mixture keeps the ratio bounded where the
        evidence is strong, where a coefficient on ``l`` would be flattened by the many cells of either
        class whose evidence is weak; the classifier then learns only what the expression adds.
    background
        Optional weight of each row as a relapse cell that is not negative (its positive posterior times its
        copies), contrasted with the negative mass beside the baseline cells. A change that all relapse
        cells share (a therapy-induced program, a batch) then no longer tells the negative mass from the
        rest, and the classifier's direction is left to what sets the negatives apart within the relapse.
    folds
        Each row's odds come from a model fit without the rows of its fold, so that a baseline cell does not
        weight itself by having been learnt as a baseline cell.
    max_fit
        At most this many rows of each class fit a fold's model (a seeded draw); all rows are predicted.
        A few dozen coefficients are well determined by that many rows; large patients (tens of thousands
        of malignant cells) then cost no more per replicate than a patient of a few thousand.
    seed
        Seed of the fold assignment and of the draw.

    Returns
    -------
    Odds per row (``nan`` where ``baseline`` is 0); proportional to the density ratio of negative relapse
    mass to baseline cells.
    """
    z = np.asarray(z, dtype=np.float64)
    # one scale for all components (their root mean variance), so that the penalty means the same on any
    # space while minor components keep their smaller spread (and so their stronger shrinkage)
    z = z - z.mean(axis=0)
    rms = float(np.sqrt(np.mean(z.var(axis=0)))) if z.size else 1.0
    z = z / (rms if rms > 0 else 1.0)
    if labels is not None:
        names = sorted({str(v) for v in labels if v is not None and v == v})
        if names:
            ind = np.stack([np.array([str(v) == n for v in labels], float) for n in names], axis=1)
            z = np.hstack([z, ind])
    out = np.full(z.shape[0], np.nan)
    rows_b = np.flatnonzero(baseline > 0)
    rows_r = np.flatnonzero(mass > 0)
    if rows_b.size == 0:
        return out
    if rows_r.size == 0 or mass.sum() <= 0:
        out[rows_b] = 1.0
        return out
    # class 0: the baseline cells, and the relapse cells that are not negative where given
    weight0 = baseline if background is None else baseline + background
    offset = copy_number_offset(copy_number, mass, weight0)
    rows_0 = np.flatnonzero(weight0 > 0)
    rng = np.random.default_rng(seed)
    # the fold of a row depends on the row alone: copies of a cell in a replicate share it
    fold = np.random.default_rng(seed).permutation(z.shape[0]) % max(folds, 2)
    start = None  # each fold's fit starts at the last one's optimum: the same optimum, fewer steps
    for f in range(max(folds, 2)):
        fit_0, fit_r = rows_0[fold[rows_0] != f], rows_r[fold[rows_r] != f]
        if fit_0.size > max_fit:
            fit_0 = np.sort(rng.choice(fit_0, max_fit, replace=False))
        if fit_r.size > max_fit:
            fit_r = np.sort(rng.choice(fit_r, max_fit, replace=False))
        pred = rows_b[fold[rows_b] == f]
        if pred.size == 0:
            continue
        if fit_r.size == 0 or fit_0.size == 0:
            out[pred] = 1.0
            continue
        x = np.vstack([z[fit_0], z[fit_r]])
        yb = np.r_[np.zeros(fit_0.size), np.ones(fit_r.size)]
        w = np.r_[weight0[fit_0], mass[fit_r]].astype(float)
        off = np.r_[offset[fit_0], offset[fit_r]]
        coef, intercept = penalised_logistic(x, yb, w, penalty, start=start, offset=off)
        start = np.r_[coef, intercept]
        out[pred] = np.exp(np.clip(z[pred] @ coef + intercept + offset[pred], -50, 50))
    return out


def copy_number_offset(llr: np.ndarray | None, mass: np.ndarray, weight0: np.ndarray) -> np.ndarray:
    """Per row, the log density ratio of its copy-number evidence between the negative relapse mass and the
    other class, summed over the states (see :func:`density_ratio`); zeros without states. Each class's
    carrier share is the EM share of its rows' likelihood ratios, rows counted by their class weight."""
    from .._malignant._copy_number_llr import mixture_share

    n = mass.size
    if llr is None or np.size(llr) == 0:
        return np.zeros(n)
    llr = np.nan_to_num(np.asarray(llr, dtype=np.float64).reshape(n, -1), nan=0.0)
    out = np.zeros(n)
    for col in llr.T:
        f1, f0 = (
            mixture_share(
                col, 0.5, 0.0, 0.5, bounds=(1e-4, 1 - 1e-4), copies=w, tol=1e-8, max_iter=500
            )
            for w in (mass, weight0)
        )
        lr = np.exp(np.clip(col, -30.0, 30.0))
        out += np.log((f1 * lr + 1.0 - f1) / (f0 * lr + 1.0 - f0))
    return out


def penalised_logistic(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    penalty: float,
    *,
    start: np.ndarray | None = None,
    offset: np.ndarray | None = None,
    tol: float = 1e-10,
) -> tuple[np.ndarray, float]:
    """Coefficients and intercept minimising ``sum_i w_i logloss_i + penalty / 2 · |coef|²`` (Newton).

    ``offset``: a known term added to each row's linear predictor (not fitted).

    The objective of scikit-learn's ``LogisticRegression(C=1 / penalty)`` with ``sample_weight=w``
    (intercept not penalised). The trace fits it once per fold and bootstrap replicate on a few dozen
    features: Newton's method with a step-halving line search converges in a handful of steps, each one
    weighted cross-product. The objective is strictly convex, so ``start`` (coefficients then intercept,
    e.g. a neighbouring fold's solution) changes the number of steps, not the optimum.
    """
    n, d = x.shape
    xa = np.hstack([x, np.ones((n, 1))])
    ridge = np.full(d + 1, float(penalty))
    ridge[-1] = 0.0
    beta = np.zeros(d + 1) if start is None else np.array(start, dtype=float)
    off = np.zeros(n) if offset is None else np.asarray(offset, dtype=float)

    def objective(b: np.ndarray) -> float:
        eta = xa @ b + off
        # log(1 + e^eta) - y eta, summed with the weights
        return float(w @ (np.logaddexp(0.0, eta) - y * eta) + 0.5 * b @ (ridge * b))

    f = objective(beta)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(xa @ beta + off)))
        grad = xa.T @ (w * (p - y)) + ridge * beta
        hess = (xa * (w * p * (1 - p))[:, None]).T @ xa + np.diag(ridge)
        hess[-1, -1] += 1e-12 * max(float(w.sum()), 1.0)  # one class only: keep it solvable
        step = np.linalg.solve(hess, grad)
        size = 1.0
        while True:
            trial = beta - size * step
            f_trial = objective(trial)
            if f_trial <= f + 1e-12 * abs(f) or size < 1e-8:
                break
            size /= 2
        beta, f_old, f = trial, f, f_trial
        if np.max(np.abs(size * step)) < tol or f_old - f <= tol * max(abs(f), 1.0) * 1e-3:
            break
    return beta[:-1], float(beta[-1])


def cap_weights(w: np.ndarray, min_cells: int) -> np.ndarray:
    """``min(w, t)`` with the level ``t`` at which no weight exceeds ``1 / min_cells`` of the total.

    ``t`` solves ``sum(min(w, t)) = min_cells · t`` (water-filling): the capped weights hold at least
    ``min_cells`` cells' worth. Weights already spread over that many cells are returned unchanged.
    """
    w = np.asarray(w, dtype=float)
    m = max(int(min_cells), 1)
    pos = np.sort(w[w > 0])[::-1]
    if pos.size <= m:
        return np.where(w > 0, 1.0, 0.0)
    # with the j largest capped, t = (sum of the others) / (m - j); the j that keeps pos[j] <= t <= pos[j-1]
    # exists and is unique (sum(min(w, t)) - m t is concave, rising at 0, falling beyond max(w))
    rest = np.cumsum(pos[::-1])[::-1]  # rest[j] = sum(pos[j:])
    for j in range(m):
        t = rest[j] / (m - j)
        if pos[j] <= t and (j == 0 or t <= pos[j - 1]):
            return np.minimum(w, t)
    raise AssertionError("water-filling level not found")  # pragma: no cover
