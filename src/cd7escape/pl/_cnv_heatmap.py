"""Inferred copy-number profile per cell along the genome (infercnvpy's ``obsm['X_cnv']``)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from .._docs import doc_params, doc_returns_plot, doc_show_save_ax
from .._errors import InputError
from . import _utils

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@doc_params(doc_show_save_ax=doc_show_save_ax, doc_returns_plot=doc_returns_plot)
def cnv_heatmap(
    adata: AnnData,
    *,
    groupby: str | Sequence[str] = ("cell_class", "subclone"),
    key: str = "cnv",
    max_cells: int = 1500,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
) -> Figure | Axes | None:
    """Heatmap of inferred copy-number changes: cells (rows, grouped) × genomic windows (columns).

    Reads ``obsm['X_' + key]`` and the chromosome starts ``uns[key]['chr_pos']`` that infercnvpy wrote
    during ``tl.call_malignant``. Cells are grouped by the first ``groupby`` columns present (a coloured strip
    on the left names the groups) and subsampled to ``max_cells`` (seeded, proportional per group).

    Parameters
    ----------
    adata
        AnnData after ``tl.call_malignant`` with CNV inference on.
    groupby
        obs column(s) to group and order cells by; absent ones are skipped.
    key
        infercnvpy's key (``obsm['X_<key>']``, ``uns[key]``).
    max_cells
        Rows drawn at most.
    {doc_show_save_ax}

    Returns
    -------
    {doc_returns_plot}
    """
    okey = f"X_{key}"
    if okey not in adata.obsm:
        raise InputError.single(
            f"adata.obsm has no {okey!r}; run ce.tl.call_malignant with cnv=True first", field="key"
        )
    cols = [groupby] if isinstance(groupby, str) else [g for g in groupby if g in adata.obs]
    cols = [c for c in cols if c in adata.obs]
    labels = (
        adata.obs[cols]
        .astype(object)
        .apply(lambda r: " · ".join(str(v) for v in r if not pd.isna(v)) or "n/a", axis=1)
        .to_numpy(dtype=str)
        if cols
        else np.array(["all"] * adata.n_obs)
    )
    # group order: malignant first, subclones in order
    order_groups = sorted(set(labels), key=lambda g: (not g.startswith("malignant"), g))
    rng = np.random.default_rng(0)
    frac = min(1.0, max_cells / max(adata.n_obs, 1))
    rows = []
    for g in order_groups:
        idx = np.flatnonzero(labels == g)
        k = max(1, round(len(idx) * frac))
        rows.append(np.sort(rng.choice(idx, k, replace=False)) if k < len(idx) else idx)
    idx = np.concatenate(rows)
    X = adata.obsm[okey]
    X = X[idx].toarray() if sparse.issparse(X) else np.asarray(X)[idx]
    X = X.astype(np.float32, copy=False)
    lim = float(np.nanquantile(np.abs(X), 0.99)) or 1.0

    if ax is None:
        fig = _utils.new_figure(figsize=(11, 5.5))
        strip, ax = fig.subplots(1, 2, width_ratios=[0.03, 1.0], sharey=True)
    else:
        fig, strip = ax.figure, None
    im = ax.imshow(
        X,
        aspect="auto",
        cmap="RdBu_r",
        vmin=-lim,
        vmax=lim,
        interpolation="nearest",
        rasterized=True,
    )
    fig.colorbar(im, ax=ax, shrink=0.6, label="inferred CNV (log ratio)")
    chr_pos = _chr_pos(adata, key)
    if chr_pos:
        starts = sorted(chr_pos.items(), key=lambda kv: kv[1])
        bounds = [s for _, s in starts] + [X.shape[1]]
        for b in bounds[1:-1]:
            ax.axvline(b - 0.5, color="k", lw=0.5)
        ax.set_xticks(
            [(a + b) / 2 for a, b in itertools.pairwise(bounds)],
            [c.replace("chr", "") for c, _ in starts],
            fontsize=7,
        )
    else:
        ax.set_xticks([])
    ax.set_xlabel("genomic position (chromosomes)")
    sizes = [len(r) for r in rows]
    edges = np.cumsum([0, *sizes])
    for e in edges[1:-1]:
        ax.axhline(e - 0.5, color="k", lw=0.6)
    target = strip if strip is not None else ax
    colors = _utils.categorical_colors("cnv_groups", order_groups)
    if strip is not None:
        import matplotlib

        rgb = np.array([matplotlib.colors.to_rgb(colors[g]) for g in order_groups])
        strip.imshow(
            rgb[np.repeat(np.arange(len(order_groups)), sizes)][:, None, :],
            aspect="auto",
            interpolation="nearest",
        )
        strip.set_xticks([])
    centers = (edges[:-1] + edges[1:]) / 2 - 0.5
    named = _spaced(centers, sizes, min_gap=len(idx) * _LABEL_HEIGHT / _axes_height(target))
    target.set_yticks(centers[named], [order_groups[i] for i in named], fontsize=8)
    ax.set_title(f"inferred copy number, {len(idx)} cells")
    return _utils.finish(fig, ax, show=show, save=save, return_fig=return_fig)


_LABEL_HEIGHT = 0.13  # inches a row label of 8 points needs


def _axes_height(ax) -> float:
    """Height of the axes in inches (before layout: the figure's share the axes were given)."""
    return max(ax.get_position().height * ax.figure.get_figheight(), 0.5)


def _spaced(centers: np.ndarray, sizes: list[int], *, min_gap: float) -> list[int]:
    """Groups to name, largest first, each at least ``min_gap`` rows from every other named one: thin
    bands of many small subclones would print their names over each other (their colours still show)."""
    keep: list[int] = []
    for i in sorted(range(len(centers)), key=lambda i: -sizes[i]):
        if all(abs(centers[i] - centers[j]) >= min_gap for j in keep):
            keep.append(i)
    return sorted(keep)


def _chr_pos(adata, key: str) -> dict[str, int]:
    entry = adata.uns.get(key)
    if not isinstance(entry, dict) or "chr_pos" not in entry:
        return {}
    pos = entry["chr_pos"]
    if isinstance(pos, pd.Series):
        pos = pos.to_dict()
    try:
        return {str(k): int(v) for k, v in dict(pos).items()}
    except (TypeError, ValueError):
        return {}
