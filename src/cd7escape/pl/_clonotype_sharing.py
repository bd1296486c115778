"""TCR clonotypes shared between timepoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import _utils


def clonotype_sharing(
    adata,
    *,
    n_top: int = 12,
    key: str = "clone_id",
    timepoint_key: str = "timepoint",
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
):
    """The most frequent TCR clonotypes and their share of cells at each timepoint.

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
    {show_save}

    Returns
    -------
    The figure (``return_fig``), the axes when not shown, else ``None``.
    """
    _utils.require_obs(adata, [key], by="ce.io with VDJ data")
    _utils.require_obs(adata, [timepoint_key], by="ce.io (timepoints)")
    obs = adata.obs
    has = obs[key].notna().to_numpy() & (obs[key].astype(str) != "").to_numpy()
    clone = obs.loc[has, key].astype(str)
    tp = obs.loc[has, timepoint_key].astype(str)
    totals = obs[timepoint_key].astype(str).value_counts()
    counts = pd.crosstab(clone, tp)
    counts = counts.loc[sorted(counts.index, key=lambda c: (-counts.loc[c].sum(), c))].head(n_top)
    rank = {"baseline": 0, "relapse": 1}
    tps = sorted(counts.columns, key=lambda v: (rank.get(v, 2), v))
    share = counts[tps].div(totals.reindex(tps).to_numpy(), axis=1)
    malignant = None
    if "malignant" in obs:
        mal = obs.loc[has, "malignant"].fillna(False).astype(bool)
        malignant = mal.groupby(clone.to_numpy()).mean()

    fig, ax = _utils.new_axes(ax, figsize=(7.5, 0.38 * max(len(share), 3) + 1.5))
    colors = _utils.categorical_colors(timepoint_key, tps)
    h = 0.8 / max(len(tps), 1)
    yy = np.arange(len(share))
    for k, t in enumerate(tps):
        ax.barh(yy - 0.4 + h * (k + 0.5), share[t].to_numpy(), height=h, color=colors[t], label=t)
    labels = []
    for i, c in enumerate(share.index):
        tag = " malignant" if malignant is not None and malignant.get(c, 0) > 0.5 else ""
        shared = (counts.loc[c, tps] > 0).sum() > 1
        labels.append(f"C{i + 1}{tag}{' (shared)' if shared else ''}")
    ax.set_yticks(yy, labels)
    ax.set_ylim(len(share) - 0.5, -0.5)
    ax.set_xlabel("share of all cells at the timepoint")
    ax.set_title(f"top {len(share)} TCR clonotypes")
    ax.legend(title=timepoint_key, frameon=False, loc="lower right", fontsize="small")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _utils.finish(fig, ax, show=show, save=save, return_fig=return_fig)


clonotype_sharing.__doc__ = clonotype_sharing.__doc__.replace(
    "{show_save}", _utils.DOC_SHOW_SAVE.replace("\n", "\n    ")
)
