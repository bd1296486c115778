"""Per-sample numbers across the patient's samples in time order (lines with 95 % intervals)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import _uns
from .._docs import doc_params, doc_returns_plot, doc_show_save_ax
from . import _utils

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: (column prefix, label, colour) of each series; the share column is ``<prefix>_share`` unless named.
SERIES = (
    ("malignant", "malignant share of cells", "#d62728"),
    ("car_t", "CAR-T share of cells", "#9467bd"),
    ("normal_t", "antigen-negative fraction of normal T cells (model)", "#1f77b4"),
    ("donor", "donor chimerism", "#7f7f7f"),
)
_VALUE = {"normal_t": "normal_t_negative_fraction", "donor": "donor_chimerism"}


@doc_params(doc_show_save_ax=doc_show_save_ax, doc_returns_plot=doc_returns_plot)
def sample_timeline(
    adata: AnnData,
    *,
    key: str = "burden",
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
) -> Figure | Axes | None:
    """Malignant share, CAR-T share and normal T cells' antigen loss per sample, in time order.

    Reads the table ``tl.sample_burden`` recorded (``uns['cd7escape'][key]['table']``): one point per
    sample (baseline, product, remission, relapse, other), each with its 95 % interval as an error bar.
    The normal T cells' antigen-negative fraction is the antigen model's, not the zero-count share; a
    sample without one (too few normal T cells) has no point. Donor chimerism is drawn when a donor
    assignment was given.

    Parameters
    ----------
    adata
        AnnData after ``tl.sample_burden``.
    key
        The record of ``tl.sample_burden`` (its ``key_added``).
    {doc_show_save_ax}

    Returns
    -------
    {doc_returns_plot}
    """
    from .._errors import InputError

    table = _uns.table(adata, key, "table")
    if table is None or not len(table):
        raise InputError.single(
            f"uns['cd7escape']['{key}'] has no per-sample table; run ce.tl.sample_burden first",
            field="adata.uns",
        )
    table = table.sort_values("order") if "order" in table else table
    antigen = _uns.antigen_name(adata, None)
    step = _uns.step(adata, key) or {}
    params = step.get("params", {})
    if hasattr(params, "get") and isinstance(params.get("antigen"), str):
        antigen = params["antigen"]
    n = len(table)
    fig, ax = _utils.new_axes(ax, figsize=(max(5.0, 1.2 + 1.8 * n), 5.0))
    x = np.arange(n)
    offsets = np.linspace(-0.12, 0.12, len(SERIES))
    for (prefix, label, color), dx in zip(SERIES, offsets, strict=True):
        col = _VALUE.get(prefix, f"{prefix}_share")
        if col not in table:
            continue
        v = table[col].to_numpy(dtype=float)
        if not np.isfinite(v).any():
            continue
        lo = table[f"{prefix}_ci_low"].to_numpy(dtype=float)
        hi = table[f"{prefix}_ci_high"].to_numpy(dtype=float)
        ok = np.isfinite(v)
        err = np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])
        err = np.where(np.isfinite(err), err, 0.0)
        if prefix == "normal_t":
            label = f"{antigen}-negative fraction of {_uns.normal_cells_label(adata, key)} (model)"
        ax.errorbar(
            x[ok] + dx, v[ok], yerr=err[:, ok], color=color, marker="o", ms=5, capsize=3, lw=1.4,
            ls="--" if prefix == "donor" else "-", label=label,
        )  # fmt: skip
    ticks = [
        f"{r.timepoint}" + (f" · {r.tissue}" if getattr(r, "tissue", "") else "") + f"\n{r.sample}"
        + f"\n(n={int(r.cells)})"
        for r in table.itertuples()
    ]  # fmt: skip
    ax.set_xticks(x, ticks, fontsize="small")
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_ylabel("share (95% CI)")
    ax.set_title("per sample, in time order")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False, fontsize="small")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _utils.finish(fig, ax, show=show, save=save, return_fig=return_fig)
