"""Receptor clonotypes (TCR, or IG in B-ALL and myeloma) shared between timepoints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._docs import doc_params, doc_returns_plot, doc_show_save_ax
from . import _utils

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@doc_params(doc_show_save_ax=doc_show_save_ax, doc_returns_plot=doc_returns_plot)
def clonotype_sharing(
    adata: AnnData,
    *,
    n_top: int = 12,
    key: str = "clone_id",
    timepoint_key: str = "timepoint",
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
) -> Figure | Axes | None:
    """The most frequent receptor clonotypes and their share of cells at each timepoint.

    Clonotypes are ranked by cell count over all timepoints and named C1, C2 … in that order (the full
    CDR3 sequences are long; they stay in ``obs[key]``). A clonotype marked ``malignant`` is one whose cells
    ``tl.call_malignant`` called malignant in the majority.

    Parameters
    ----------
    adata
        AnnData with ``obs[key]`` from the VDJ reader.
    n_top
        Clonotypes shown.
    key
        obs column of clonotypes (NaN for cells without a productive chain).
    timepoint_key
        obs column with timepoints.
    {doc_show_save_ax}

    Returns
    -------
    {doc_returns_plot}
    """
    _utils.require_obs(adata, [key], by="ce.io with VDJ data")
    _utils.require_obs(adata, [timepoint_key], by="ce.io (timepoints)")
    top = top_clonotypes(adata, n_top=n_top, key=key, timepoint_key=timepoint_key)
    tps = [c.removeprefix("share_") for c in top.columns if c.startswith("share_")]
    share = top[[f"share_{t}" for t in tps]].set_axis(tps, axis=1)

    fig, ax = _utils.new_axes(ax, figsize=(7.5, 0.38 * max(len(share), 3) + 1.5))
    colors = _utils.categorical_colors(timepoint_key, tps)
    h = 0.8 / max(len(tps), 1)
    yy = np.arange(len(share))
    for k, t in enumerate(tps):
        ax.barh(yy - 0.4 + h * (k + 0.5), share[t].to_numpy(), height=h, color=colors[t], label=t)
    labels = []
    for name, row in top.iterrows():
        tag = " malignant" if row["malignant_share"] > 0.5 else ""
        labels.append(f"{name}{tag}{' (shared)' if row['shared'] else ''}")
    ax.set_yticks(yy, labels)
    ax.set_ylim(len(share) - 0.5, -0.5)
    ax.set_xlabel("share of all cells at the timepoint")
    ax.set_title(f"top {len(share)} clonotypes")
    ax.legend(title=timepoint_key, frameon=False, loc="lower right", fontsize="small")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _utils.finish(fig, ax, show=show, save=save, return_fig=return_fig)


def top_clonotypes(
    adata, *, n_top: int = 12, key: str = "clone_id", timepoint_key: str = "timepoint"
) -> pd.DataFrame:
    """The ``n_top`` most frequent clonotypes (index C1, C2 …): ``clone_id``, cells and share per timepoint,
    ``shared`` (seen at more than one timepoint) and ``malignant_share`` (NaN without ``obs['malignant']``)."""
    obs = adata.obs
    has = obs[key].notna().to_numpy() & (obs[key].astype(str) != "").to_numpy()
    clone = obs.loc[has, key].astype(str)
    tp = obs.loc[has, timepoint_key].astype(str)
    totals = obs[timepoint_key].astype(str).value_counts()
    counts = pd.crosstab(clone, tp)
    # most cells first, ties by clonotype name (a stable sort of the name-sorted table)
    counts = counts.sort_index()
    total = counts.to_numpy().sum(axis=1)
    counts = counts.iloc[np.argsort(-total, kind="stable")[:n_top]]
    rank = {"baseline": 0, "relapse": 1}
    tps = sorted(counts.columns, key=lambda v: (rank.get(v, 2), v))
    out = pd.DataFrame({"clone_id": counts.index.to_numpy()})
    for t in tps:
        out[f"cells_{t}"] = counts[t].to_numpy()
    for t in tps:
        out[f"share_{t}"] = counts[t].to_numpy() / totals[t]
    out["shared"] = (counts[tps].to_numpy() > 0).sum(axis=1) > 1
    if "malignant" in obs:
        mal = obs.loc[has, "malignant"].fillna(False).astype(bool)
        out["malignant_share"] = (
            mal.groupby(clone.to_numpy()).mean().reindex(counts.index).to_numpy()
        )
    else:
        out["malignant_share"] = np.nan
    out.index = [f"C{i + 1}" for i in range(len(out))]
    return out
