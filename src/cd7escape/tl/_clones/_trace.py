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


def neighbourhood_lists(
    z: np.ndarray,
    centres: np.ndarray,
    k: int,
    *,
    labels: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The nearest cells (rows of ``z``, nearest first, the centre itself included) of each centre.

    Parameters
    ----------
    z
        Coordinates of all malignant cells of both timepoints in one antigen-free space.
    centres
        Rows of ``z`` whose neighbourhoods are wanted (the baseline cells).
    k
        Neighbourhood size; ``LIST_FACTOR * k`` neighbours are listed (``-1`` pads short lists).
    labels
        Optional clone label per row of ``z`` (a confirmed copy-number subclone, None otherwise). A centre with
        a label gets neighbours of that label only, when the label has at least ``k`` cells.
    seed
        Seed of the approximate search on large data.
    """
    from ...pp._knn import nearest_neighbors

    width = LIST_FACTOR * k
    out = np.full((centres.size, width), -1, dtype=np.int64)
    if centres.size == 0:
        return out
    groups: list[tuple[np.ndarray, np.ndarray]] = []
    rest = np.ones(centres.size, dtype=bool)
    if labels is not None:
        lab = np.array([None if v is None or v != v else str(v) for v in labels], dtype=object)
        for label in sorted({v for v in lab[centres] if v is not None}):
            members = np.flatnonzero(lab == label)
            mine = np.flatnonzero(rest & (lab[centres] == label))
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
            query=np.ascontiguousarray(z[centres[mine]], dtype=np.float32),
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
