"""Tracing relapse cells back to the baseline cells they resemble, without a clustering resolution.

A subclone partition answers "which cluster does this relapse cell belong to?", and a small antigen-negative
state merged into a larger positive cluster disappears in the answer. The trace asks the finer question with
neighbourhoods of the joint antigen-free graph of baseline and relapse malignant cells (the idea of Milo,
Dann et al. 2022): around every baseline cell, the share of its ``k`` nearest cells that are antigen-negative
relapse cells. Where that share exceeds the patient-wide share, the baseline cell's state is where the
negative relapse population grew; the excess weights the baseline cell. The antigen model on the baseline
cells, so weighted (:func:`cd7escape.tl._antigen.anchored_fit`), says whether the baseline cells that look
like the negative relapse were already negative. Confirmed copy-number subclones keep neighbourhoods within
one subclone (an independent clone link).

The neighbour lists are kept longer than ``k`` so that a bootstrap replicate, which draws cells with
replacement, takes each neighbourhood's ``k`` nearest *drawn* cells without a new search: the clone link is
redone in every replicate.
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
    max_fit_cells: int = 20_000,
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


def neighbourhood_lists(
    z: np.ndarray,
    centres: np.ndarray,
    k: int,
    *,
    labels: np.ndarray | None = None,
    seed: int = 0,
    query: np.ndarray | None = None,
    query_labels: np.ndarray | None = None,
) -> np.ndarray:
    """The nearest rows of ``z`` (nearest first, a centre itself included) of each centre or query point.

    Parameters
    ----------
    z
        Coordinates of the cells to search among.
    centres
        Rows of ``z`` whose neighbourhoods are wanted (ignored when ``query`` is given).
    k
        Neighbourhood size; ``LIST_FACTOR * k`` neighbours are listed (``-1`` pads short lists).
    labels
        Optional clone label per row of ``z`` (a confirmed copy-number subclone, None otherwise). A point with
        a label gets neighbours of that label only, when the label has at least ``k`` cells.
    seed
        Seed of the approximate search on large data.
    query, query_labels
        Points (and their labels) to find neighbours for instead of the centres.
    """
    from ...pp._knn import nearest_neighbors

    points = z[centres] if query is None else query
    plabels = None
    if labels is not None:
        plabels = labels[centres] if query is None else query_labels
    width = LIST_FACTOR * k
    out = np.full((points.shape[0], width), -1, dtype=np.int64)
    if points.shape[0] == 0 or z.shape[0] == 0:
        return out

    def clean(values) -> np.ndarray:
        return np.array([None if v is None or v != v else str(v) for v in values], dtype=object)

    groups: list[tuple[np.ndarray, np.ndarray]] = []
    rest = np.ones(points.shape[0], dtype=bool)
    if labels is not None and plabels is not None:
        lab, plab = clean(labels), clean(plabels)
        for label in sorted({v for v in plab if v is not None}):
            members = np.flatnonzero(lab == label)
            mine = np.flatnonzero(rest & (plab == label))
            if mine.size and members.size >= k:
                groups.append((members, mine))
                rest[mine] = False
    groups.append((np.arange(z.shape[0]), np.flatnonzero(rest)))
    for members, mine in groups:
        if mine.size == 0:
            continue
        m = min(width, members.size)
        _, idx = nearest_neighbors(
            np.ascontiguousarray(z[members], dtype=np.float32),
            m,
            query=np.ascontiguousarray(points[mine], dtype=np.float32),
            seed=seed,
        )
        out[mine, :m] = members[idx[:, :m]]
    return out


def neighbourhood_shares(
    lists: np.ndarray, value: np.ndarray, k: int, drawn: np.ndarray | None = None
) -> np.ndarray:
    """Mean ``value`` over the ``k`` nearest (drawn) cells of each neighbourhood.

    With ``drawn`` (copies of each cell in a bootstrap replicate) the ``k`` places go to the nearest drawn
    cells, a cell drawn twice taking two places, as two cells at one position would; ``value`` is per copy.
    """
    valid = lists >= 0
    at = np.maximum(lists, 0)
    copies = np.where(valid, 1, 0) if drawn is None else np.where(valid, drawn[at], 0)
    before = np.cumsum(copies, axis=1) - copies
    places = np.clip(k - before, 0, copies)
    return (places * value[at]).sum(axis=1) / np.maximum(places.sum(axis=1), 1)


def attribute(
    lists: np.ndarray,
    mass: np.ndarray,
    k: int,
    affinity: np.ndarray,
    drawn: np.ndarray | None = None,
) -> np.ndarray:
    """Spread each relapse cell's ``mass`` over its ``k`` nearest (drawn) baseline cells by ``affinity``.

    Parameters
    ----------
    lists
        Per relapse cell, its nearest baseline cells as positions (nearest first, ``-1`` pads).
    mass
        What each relapse cell carries (its posterior probability of being antigen-negative).
    k
        Baseline cells sharing a relapse cell's mass.
    affinity
        Per position, how strongly a baseline cell draws the mass (1 + its neighbourhood's relative
        expansion): the mass of a relapse cell next to an expanded state goes to that state, not to the
        positive cells at its border; with no expansion anywhere it is shared evenly.
    drawn
        Copies of each position in a bootstrap replicate: the ``k`` places go to the nearest drawn copies.

    Returns
    -------
    The mass received per position (all its copies together); it sums to the mass of the relapse cells
    that have a baseline cell in reach.
    """
    valid = lists >= 0
    at = np.maximum(lists, 0)
    copies = np.where(valid, 1, 0) if drawn is None else np.where(valid, drawn[at], 0)
    before = np.cumsum(copies, axis=1) - copies
    places = np.clip(k - before, 0, copies) * affinity[at]
    total = places.sum(axis=1)
    share = places * (mass / np.where(total > 0, total, 1.0))[:, None]
    return np.bincount(at.ravel(), weights=share.ravel(), minlength=affinity.size)
