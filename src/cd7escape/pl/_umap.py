"""UMAP coloured by any obs column (timepoint, cell class, antigen state, subclone …)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._docs import doc_params, doc_returns_plot, doc_show_save_ax
from .._errors import InputError
from . import _utils

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Categories beyond which a column's names go on the cells instead of a legend beside the panel (a
#: taller legend than the panel squeezes the panel to nothing, e.g. 50 subclones of a large patient).
LEGEND_MAX = 20


@doc_params(doc_show_save_ax=doc_show_save_ax, doc_returns_plot=doc_returns_plot)
def umap(
    adata: AnnData,
    color: str | Sequence[str] = "timepoint",
    *,
    basis: str = "X_umap",
    size: float | None = None,
    ncols: int = 3,
    title: str | Sequence[str] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
) -> Figure | Axes | list[Axes] | None:
    """Cells on the embedding ``pp.embed`` computed, coloured by obs columns.

    Categorical columns get one colour per category (fixed colours for ``timepoint``, ``cell_class`` and
    ``antigen_cell_state``, so figures agree with each other) and a legend, or, beyond ``LEGEND_MAX``
    categories, each name at the median of its cells; numeric columns a continuous colour map.

    Parameters
    ----------
    adata
        AnnData with ``obsm[basis]``.
    color
        One obs column or several (one panel each).
    basis
        The 2-D embedding in ``obsm``.
    size
        Point size; by default scaled to the number of cells.
    ncols
        Panels per row when ``color`` has several columns.
    title
        Panel title(s); the column names by default.
    {doc_show_save_ax}

    Returns
    -------
    {doc_returns_plot}
    With several ``color`` columns, the axes are a list (one per panel).
    """
    colors = [color] if isinstance(color, str) else list(color)
    if not colors:
        raise InputError.single("give at least one obs column to colour by", field="color")
    if basis not in adata.obsm:
        raise InputError.single(
            f"adata.obsm has no {basis!r}; run ce.pp.embed first", field="basis"
        )
    _utils.require_obs(adata, colors, by="the step that writes them")
    titles = [title] if isinstance(title, str) else list(title) if title is not None else colors
    if len(titles) != len(colors):
        raise InputError.single("give one title per colour", field="title")
    if ax is not None and len(colors) > 1:
        raise InputError.single("ax takes one panel; give one colour or ax=None", field="ax")

    xy = np.asarray(adata.obsm[basis])[:, :2]
    n = xy.shape[0]
    s = size if size is not None else float(np.clip(12000 / max(n, 1), 1.0, 30.0))
    if ax is None:
        nc = min(ncols, len(colors))
        nr = int(np.ceil(len(colors) / nc))
        fig = _utils.new_figure(figsize=(4.6 * nc, 4.0 * nr))
        axes = list(np.atleast_1d(fig.subplots(nr, nc)).ravel())
        for extra in axes[len(colors) :]:
            extra.set_visible(False)
        axes = axes[: len(colors)]
    else:
        fig, axes = ax.figure, [ax]
    for key, a, t in zip(colors, axes, titles, strict=True):
        _panel(a, xy, adata.obs[key], key, s)
        a.set_title(t)
    return _utils.finish(
        fig, axes[0] if len(axes) == 1 else axes, show=show, save=save, return_fig=return_fig
    )


def _panel(ax, xy, values: pd.Series, key: str, size: float) -> None:
    # a fixed drawing order (not random) keeps images reproducible
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        v = values.to_numpy(dtype=float)
        order = np.argsort(np.nan_to_num(v, nan=-np.inf), kind="stable")
        sc = ax.scatter(
            xy[order, 0],
            xy[order, 1],
            c=v[order],
            s=size,
            cmap="viridis",
            linewidths=0,
            rasterized=True,
            plotnonfinite=True,
        )
        ax.figure.colorbar(sc, ax=ax, shrink=0.7)
    else:
        labels = values.astype(object).where(values.notna(), "n/a").astype(str).to_numpy()
        cats = _utils.ordered_categories(values)
        if (labels == "n/a").any() and "n/a" not in cats:
            cats.append("n/a")
        cmap = _utils.categorical_colors(key, cats)
        # largest categories first so that small ones stay visible
        counts = {c: int((labels == c).sum()) for c in cats}
        for cat in sorted(cats, key=lambda c: -counts[c]):
            m = labels == cat
            ax.scatter(
                xy[m, 0],
                xy[m, 1],
                s=size,
                color=cmap[cat],
                linewidths=0,
                rasterized=True,
                label=f"{cat} ({counts[cat]})",
            )
        if len(cats) > LEGEND_MAX:
            _name_on_data(ax, xy, labels, cats)
        else:
            handles, names = ax.get_legend_handles_labels()
            order = [names.index(f"{c} ({counts[c]})") for c in cats]
            ax.legend(
                [handles[i] for i in order],
                [names[i] for i in order],
                loc="center left",
                bbox_to_anchor=(1.0, 0.5),
                frameon=False,
                markerscale=max(1.0, 4 / np.sqrt(size)),
                fontsize="small",
            )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("UMAP1")
    ax.set_ylabel("UMAP2")
    ax.set_aspect("equal", adjustable="datalim")


def _name_on_data(ax, xy, labels: np.ndarray, cats: list[str]) -> None:
    """Each category's name at the median of its cells (``n/a`` left unnamed)."""
    import matplotlib.patheffects as pe

    halo = [pe.withStroke(linewidth=2, foreground="white")]
    for cat in cats:
        m = labels == cat
        if cat == "n/a" or not m.any():
            continue
        x, y = np.median(xy[m], axis=0)
        ax.text(x, y, cat, fontsize=6, ha="center", va="center", path_effects=halo)
