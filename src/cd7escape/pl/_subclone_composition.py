"""Subclone composition of the malignant cells, baseline vs relapse (stacked bars)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _uns
from .._docs import doc_params, doc_returns_plot, doc_show_save_ax
from . import _utils

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@doc_params(doc_show_save_ax=doc_show_save_ax, doc_returns_plot=doc_returns_plot)
def subclone_composition(
    adata: AnnData,
    *,
    key: str = "subclone",
    timepoint_key: str = "timepoint",
    annotate: bool = True,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
) -> Figure | Axes | None:
    """Share of malignant cells in each subclone per timepoint, as stacked bars.

    Reads ``obs[key]`` written by ``tl.subclones`` (baseline subclones; relapse cells carry the label of
    the subclone they map to, or ``unmapped``). When ``tl.antigen_state`` estimated a negative fraction
    per subclone and timepoint, segments are labelled with it.

    Parameters
    ----------
    adata
        AnnData after ``tl.call_malignant`` and ``tl.subclones``.
    key
        obs column with subclone labels.
    timepoint_key
        obs column with timepoints.
    annotate
        Label segments of at least 5 % with their share (and the model's negative fraction).
    {doc_show_save_ax}

    Returns
    -------
    {doc_returns_plot}
    """
    _utils.require_obs(adata, ["malignant"], by="ce.tl.call_malignant")
    _utils.require_obs(adata, [key], by="ce.tl.subclones")
    _utils.require_obs(adata, [timepoint_key], by="ce.io (timepoints)")
    obs = adata.obs
    mal = obs["malignant"].fillna(False).to_numpy(dtype=bool)
    sub = obs.loc[mal, key].astype(object).where(obs.loc[mal, key].notna(), "unmapped").astype(str)
    tp = obs.loc[mal, timepoint_key].astype(str)
    counts = pd.crosstab(tp, sub)
    rank = {"baseline": 0, "relapse": 1}
    counts = counts.loc[sorted(counts.index, key=lambda v: (rank.get(v, 2), v))]
    cats = [c for c in _utils.ordered_categories(obs.loc[mal, key]) if c in counts.columns]
    cats += [c for c in counts.columns if c not in cats]
    counts = counts[cats]
    frac = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
    colors = _utils.categorical_colors(key, cats)
    negative = {
        (t, c): r["pi"]
        for t in frac.index
        for c in cats
        if (r := _uns.model_fraction(adata, t, c)) is not None
    }

    # a legend column holds up to 18 entries: with dozens of subclones one tall column is higher
    # than the figure and the layout collapses
    n_cols = int(np.ceil(len(cats) / 18))
    fig, ax = _utils.new_axes(ax, figsize=(1.4 + 1.4 * len(frac) + 0.8 * n_cols, 4.2))
    x = np.arange(len(frac))
    bottom = np.zeros(len(frac))
    for c in cats:
        h = frac[c].to_numpy()
        ax.bar(x, h, bottom=bottom, color=colors[c], width=0.6, label=c, edgecolor="white", lw=0.8)
        if annotate:
            for j, (b, v) in enumerate(zip(bottom, h, strict=True)):
                if v >= 0.05:
                    text = f"{100 * v:.0f}%"
                    neg = negative.get((frac.index[j], c))
                    if neg is not None and v >= 0.1:
                        text += f"\n{100 * neg:.0f}% neg"
                    ax.text(j, b + v / 2, text, ha="center", va="center", fontsize=8, color="white")
        bottom += h
    ax.set_xticks(x, [f"{t}\n(n={int(n)})" for t, n in counts.sum(axis=1).items()])
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of malignant cells")
    ax.set_title("subclone composition")
    ax.legend(
        title=key,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
        fontsize="small",
        ncols=n_cols,
    )
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _utils.finish(fig, ax, show=show, save=save, return_fig=return_fig)
