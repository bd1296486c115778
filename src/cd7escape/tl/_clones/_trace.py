"""Tracing relapse cells back to the baseline cells they resemble, without a clustering resolution.

A subclone partition answers "which cluster does this relapse cell belong to?", and a small antigen-negative
state merged into a larger positive cluster disappears in the answer. The trace asks the finer question
directly: for each relapse malignant cell, its ``k`` nearest baseline malignant cells in the antigen-free
space (its *ancestors*), restricted to baseline cells of the same confirmed copy-number subclone when the cell
has one seen at baseline (an independent clone link). Summed over the antigen-negative relapse cells, the
ancestors' weights say which baseline cells the negative relapse population looks like; the antigen model on
those cells (weighted, :func:`cd7escape.tl._antigen.anchored_fit`) says whether they were already negative.

The neighbour lists are kept longer than ``k`` so that a bootstrap replicate, which draws baseline cells with
replacement, can take each relapse cell's ``k`` nearest *drawn* baseline cells without a new search: the
clone link is redone in every replicate.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: Neighbours kept per relapse cell beyond ``k``: replicates skip baseline cells that were not drawn (about a
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
    max_fit_cells: int = 20_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Baseline and relapse malignant cells in one antigen-free space fit on both timepoints.

    The subclone space is fit on baseline cells, where a small subclone adds too little variance to own a
    component; here the relapse cells, in which such a subclone may dominate, shape the space as much as
    the baseline does (at most ``max_fit_cells / 2`` cells of each timepoint fit it; all are projected).
    The genes are those of the baseline space minus its exclusions (the antigen, genes correlated with it
    among baseline cells, and ``pp.embed``'s list); no new correlation search is made across timepoints,
    where a negative subclone's own program would correlate with the antigen and be dropped.
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


def ancestor_lists(
    zb: np.ndarray,
    zr: np.ndarray,
    k: int,
    *,
    labels_b: np.ndarray | None = None,
    labels_r: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Nearest baseline cells of every relapse cell, nearest first (``-1`` pads short lists).

    Parameters
    ----------
    zb, zr
        Coordinates of the baseline and relapse malignant cells in one antigen-free space.
    k
        Ancestors per relapse cell; ``LIST_FACTOR * k`` are listed.
    labels_b, labels_r
        Optional clone labels (confirmed copy-number subclones, NaN/None when a cell has none). A relapse
        cell whose label is seen at baseline gets ancestors of that label only.
    seed
        Seed of the approximate search on large data.

    Returns
    -------
    Integer array ``(n_relapse, LIST_FACTOR * k)`` of row indices into ``zb``.
    """
    from ...pp._knn import nearest_neighbors

    n_b, n_r = zb.shape[0], zr.shape[0]
    width = max(1, min(LIST_FACTOR * k, n_b))
    out = np.full((n_r, LIST_FACTOR * k), -1, dtype=np.int64)
    if n_b == 0 or n_r == 0:
        return out
    groups: list[tuple[np.ndarray, np.ndarray]] = []
    rest = np.ones(n_r, dtype=bool)
    if labels_b is not None and labels_r is not None:
        lb = np.asarray(labels_b, dtype=object)
        lr = np.asarray(labels_r, dtype=object)
        known_b = np.array(
            [v is not None and v == v and str(v) not in ("", "none", "nan") for v in lb]
        )
        for label in sorted({str(v) for v in lb[known_b]}):
            in_b = np.flatnonzero(known_b & (lb.astype(str) == label))
            in_r = np.flatnonzero(rest & (lr.astype(str) == label))
            if in_r.size and in_b.size >= k:
                groups.append((in_b, in_r))
                rest[in_r] = False
    groups.append((np.arange(n_b), np.flatnonzero(rest)))
    for in_b, in_r in groups:
        if in_r.size == 0:
            continue
        m = min(width, in_b.size)
        _, idx = nearest_neighbors(
            np.ascontiguousarray(zb[in_b], dtype=np.float32),
            m,
            query=np.ascontiguousarray(zr[in_r], dtype=np.float32),
            seed=seed,
        )
        out[in_r, :m] = in_b[idx[:, :m]]
    return out


def ancestor_weights(
    lists: np.ndarray, mass: np.ndarray, k: int, n_baseline: int, drawn: np.ndarray | None = None
) -> np.ndarray:
    """Weight of every baseline cell as an ancestor of the relapse cells' ``mass``.

    Each relapse cell ``r`` spreads ``mass[r]`` evenly over its ``k`` nearest baseline cells; with ``drawn``
    (how many times each baseline cell was drawn in a bootstrap replicate) the ``k`` places go to the nearest
    drawn cells, a cell drawn twice taking two places, as two cells at one position would.

    Returns
    -------
    Float array of length ``n_baseline``: the summed mass per baseline cell (drawn copies together).
    """
    valid = lists >= 0
    copies = (
        np.where(valid, 1, 0) if drawn is None else np.where(valid, drawn[np.maximum(lists, 0)], 0)
    )
    before = np.cumsum(copies, axis=1) - copies
    places = np.clip(k - before, 0, copies)
    per_place = mass / np.maximum(places.sum(axis=1), 1)
    return np.bincount(
        np.maximum(lists, 0).ravel(),
        weights=(places * per_place[:, None]).ravel(),
        minlength=n_baseline,
    )
