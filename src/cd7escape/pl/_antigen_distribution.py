"""Antigen counts per timepoint and subclone, with the model's negative fraction beside the naive zero share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import _uns
from .._anndata import gene_counts
from .._docs import doc_layer, doc_params, doc_returns_plot, doc_show_save_ax
from . import _utils

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_TICKS = np.array([0, 1, 2, 5, 10, 20, 50, 100, 200, 500])


@doc_params(
    doc_layer=doc_layer, doc_show_save_ax=doc_show_save_ax, doc_returns_plot=doc_returns_plot
)
def antigen_distribution(
    adata: AnnData,
    *,
    groupby: Sequence[str] = ("timepoint", "subclone"),
    antigen: str | None = None,
    layer: str = "counts",
    max_points: int = 400,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
) -> Figure | Axes | None:
    """Antigen counts of malignant cells per group, with the model's negative fraction and CI.

    One row per timepoint (all its malignant cells) and per subclone within it. The left panel shows
    every cell's antigen UMIs (log scale, jittered, coloured by ``obs['antigen_cell_state']`` when
    ``tl.antigen_state`` ran); the right panel the negative fraction the model estimated for that
    group (``pi`` with ``ci_low``–``ci_high``, filled) next to the naive share of cells with zero counts
    (open circle). The naive share includes dropout of expressing cells and so overstates loss; the gap
    between the two is the point of the model. Groups the model did not estimate show only the naive
    share. With ``ax`` given, only the right (fractions) panel is drawn into it.

    A timepoint's row shows the patient's negative fraction at that timepoint, the one number the report,
    ``result.json`` and the cohort summary give (:func:`cd7escape._uns.timepoint_fraction`: the
    classification's, else ``tl.antigen_state``'s group of the timepoint), also written under its label
    in the report's rounding; a subclone's row shows the subclone's own (``tl.subclones``' table).

    Parameters
    ----------
    adata
        AnnData after ``tl.call_malignant`` (and ideally ``tl.antigen_state`` and ``tl.subclones``).
    groupby
        The outer (timepoint) and inner (subclone) obs columns; the inner one may be absent.
    antigen
        Gene of the CAR target; by default the one ``tl.antigen_state`` used.
    {doc_layer}
    max_points
        Cells drawn per group in the left panel (a fixed, seeded subsample beyond that).
    {doc_show_save_ax}

    Returns
    -------
    {doc_returns_plot}
    """
    _utils.require_obs(adata, ["malignant"], by="ce.tl.call_malignant")
    outer, *rest = list(groupby)
    inner = rest[0] if rest and rest[0] in adata.obs else None
    _utils.require_obs(adata, [outer], by="ce.io (timepoints)")
    antigen = _uns.antigen_name(adata, antigen)
    y = gene_counts(adata, antigen, layer=layer)
    obs = adata.obs
    mal = obs["malignant"].fillna(False).to_numpy(dtype=bool)
    state = (
        obs["antigen_cell_state"].astype(str).to_numpy() if "antigen_cell_state" in obs else None
    )
    state_colors = (
        _utils.categorical_colors(
            "antigen_cell_state",
            [c for c in ("positive", "dim", "uncertain", "negative") if c in set(state[mal])],
        )
        if state is not None
        else {}
    )

    rows = []  # (label, cell mask, model row, the number written under the label)
    outer_vals = obs[outer].astype(str).to_numpy()
    for o in _order(_utils.ordered_categories(obs[outer][mal]), outer):
        m = mal & (outer_vals == o)
        model = _uns.model_fraction(adata, o)
        rows.append((f"{o} · all", m, model, _written(model)))
        if inner is not None:
            inner_vals = obs[inner].astype(str).to_numpy()
            for i in _utils.ordered_categories(obs[inner][m]):
                mi = m & (inner_vals == i)
                rows.append((f"{o} · {i}", mi, _uns.model_fraction(adata, o, i), None))

    if ax is None:
        fig = _utils.new_figure(figsize=(10.5, 0.55 * max(len(rows), 2) + 1.6))
        ax_counts, ax_frac = fig.subplots(1, 2, sharey=True, width_ratios=[1.4, 1.0])
    else:
        fig, ax_counts, ax_frac = ax.figure, None, ax

    rng = np.random.default_rng(0)
    labels = []
    for k, (label, m, model, written) in enumerate(rows):
        idx = np.flatnonzero(m)
        labels.append(f"{label} (n={len(idx)})" + (f"\n{written}" if written else ""))
        zero = float(np.mean(y[idx] == 0)) if len(idx) else np.nan
        if ax_counts is not None and len(idx):
            sub = (
                idx
                if len(idx) <= max_points
                else np.sort(rng.choice(idx, max_points, replace=False))
            )
            jitter = rng.uniform(-0.3, 0.3, len(sub))
            xjitter = rng.uniform(-0.12, 0.12, len(sub))  # integer counts: spread the stacks
            colors = (
                [state_colors.get(s, _utils.NA_COLOR) for s in state[sub]]
                if state is not None
                else "#636363"
            )
            ax_counts.scatter(
                np.log1p(y[sub]) + xjitter, k + jitter, s=5, c=colors, linewidths=0,
                alpha=0.8, rasterized=True,
            )  # fmt: skip
            ax_counts.plot(
                [np.log1p(np.median(y[idx]))] * 2, [k - 0.42, k + 0.42], color="k", lw=1.2
            )
        if model is not None and _finite(model.get("pi")):
            lo, hi = model.get("ci_low"), model.get("ci_high")
            if _finite(lo) and _finite(hi):
                ax_frac.plot([lo, hi], [k, k], color="#b2182b", lw=2.5, solid_capstyle="butt")
            ax_frac.plot(model["pi"], k, "o", color="#b2182b", ms=7)
        if np.isfinite(zero):
            ax_frac.plot(zero, k, "o", mfc="none", mec="#404040", ms=7, mew=1.5)

    ax_frac.set_xlim(-0.02, 1.02)
    # the legends sit under the axes' labels, at the distance 12 rows give: a fixed fraction of the axes'
    # height, which grows with the rows, put them about 7 inches below a 104-row figure's axes
    below = -0.25 if len(rows) <= 3 else -0.12 * min(1.0, 12 / len(rows))
    ax_frac.set_xlabel(f"{antigen}-negative fraction")
    ax_frac.grid(axis="x", color="#e5e5e5", lw=0.8)
    ax_frac.set_axisbelow(True)
    from matplotlib.lines import Line2D

    ax_frac.legend(
        [
            Line2D([], [], color="#b2182b", marker="o", lw=2.5),
            Line2D([], [], color="#404040", marker="o", mfc="none", lw=0),
        ],
        ["model π (95% CI)", "naive zero-count share"],
        loc="upper center",
        bbox_to_anchor=(0.5, below),
        frameon=False,
        ncols=2,
        fontsize="small",
    )
    if ax_counts is not None and state_colors:
        ax_counts.legend(
            [Line2D([], [], color=c, marker="o", lw=0) for c in state_colors.values()],
            [f"cell: {s}" for s in state_colors],
            loc="upper center",
            bbox_to_anchor=(0.5, below),
            frameon=False,
            ncols=len(state_colors),
            fontsize="small",
        )
    first = ax_counts if ax_counts is not None else ax_frac
    first.set_yticks(range(len(rows)), labels)
    first.set_ylim(len(rows) - 0.5, -0.5)
    if ax_counts is not None:
        top = max(float(np.log1p(y[mal].max())) if mal.any() else 1.0, np.log1p(5))
        ticks = _TICKS[np.log1p(_TICKS) <= top * 1.05]
        ax_counts.set_xticks(np.log1p(ticks), [str(t) for t in ticks])
        ax_counts.set_xlabel(f"{antigen} UMIs per cell (log scale; bar = median)")
        ax_counts.grid(axis="x", color="#e5e5e5", lw=0.8)
        ax_counts.set_axisbelow(True)
        ax_counts.set_title(f"{antigen} counts, malignant cells")
        ax_frac.set_title("negative fraction: model vs naive")
    return _utils.finish(
        fig,
        ax if ax is not None else [ax_counts, ax_frac],
        show=show,
        save=save,
        return_fig=return_fig,
    )


def _written(model) -> str | None:
    """A timepoint's negative fraction as the report writes it: ``'22.7% neg. (95% CI 14.1%–32.0%)'``."""
    if model is None or not _finite(model.get("pi")):
        return None
    lo, hi = model.get("ci_low"), model.get("ci_high")
    ci = f" (95% CI {_uns.percent(lo)}–{_uns.percent(hi)})" if _finite(lo) and _finite(hi) else ""
    return f"{_uns.percent(model['pi'])} neg.{ci}"


def _finite(x) -> bool:
    try:
        return bool(np.isfinite(float(x)))
    except (TypeError, ValueError):
        return False


def _order(values: list[str], key: str) -> list[str]:
    if key == "timepoint":
        rank = {"baseline": 0, "relapse": 1}
        return sorted(values, key=lambda v: (rank.get(v, 2), v))
    return values
