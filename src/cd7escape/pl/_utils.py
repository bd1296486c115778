"""The one shared helper of every ``pl`` function: axes, palettes, reading tl results, show/save/return."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._uns import NS

#: Shared parameter text (numpydoc), appended to every plotting function's docstring.
DOC_SHOW_SAVE = """\
ax
    Matplotlib axes to draw into; a new figure is made when ``None``.
show
    Show the figure (``plt.show()``); by default only on an interactive backend and when neither
    ``save`` nor ``return_fig`` is given.
save
    Write the figure to this path (format from the suffix, e.g. ``.png``, ``.pdf``).
return_fig
    Return the :class:`~matplotlib.figure.Figure` instead of the axes."""

#: Fixed colours, so that the same category has the same colour in every figure and report.
PALETTES: dict[str, dict[str, str]] = {
    "timepoint": {"baseline": "#1f77b4", "relapse": "#d62728", "other": "#7f7f7f"},
    "cell_class": {
        "malignant": "#d62728",
        "normal_T": "#1f77b4",
        "car_T": "#9467bd",
        "NK": "#17becf",
        "B": "#2ca02c",
        "myeloid": "#ff7f0e",
        "erythroid": "#8c564b",
        "other": "#bcbd22",
    },
    "antigen_cell_state": {
        "positive": "#2ca02c",
        "dim": "#ff7f0e",
        "negative": "#d62728",
        "uncertain": "#bdbdbd",
    },
}
NA_COLOR = "#d9d9d9"


def new_axes(ax, *, figsize: tuple[float, float]):
    """``(fig, ax)``: the given axes and their figure, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def new_figure(*, figsize: tuple[float, float]):
    """A new figure, registered with pyplot only when it will be shown."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def finish(fig, ax, *, show: bool | None, save: str | Path | None, return_fig: bool):
    """Save and/or show ``fig``; return it (``return_fig``), the axes (not shown) or ``None``."""
    if save is not None:
        path = Path(save)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, metadata=_metadata(path))
    if show is None:
        show = _interactive() and save is None and not return_fig
    if show:
        _display(fig)
        return None
    if return_fig:
        return fig
    return ax


def _metadata(path: Path) -> dict[str, Any] | None:
    # no software version or dates in files, so identical runs give identical bytes
    suffix = path.suffix.lower()
    if suffix == ".png":
        return {"Software": None}
    if suffix == ".pdf":
        return {"Creator": None, "Producer": None, "CreationDate": None}
    if suffix == ".svg":
        return {"Date": None, "Creator": None}
    return None


def _interactive() -> bool:
    import matplotlib

    backend = matplotlib.get_backend().lower()
    return not any(b in backend for b in ("agg", "pdf", "svg", "ps", "cairo", "template"))


def _display(fig) -> None:
    """Show ``fig``: as an image in a notebook, in a window on an interactive desktop backend."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        get_ipython = None  # type: ignore[assignment]
    if get_ipython is not None and get_ipython() is not None:
        import io

        from IPython.display import Image, display

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        display(Image(data=buf.getvalue(), format="png"))
        return
    import matplotlib.pyplot as plt  # pragma: no cover - desktop sessions

    manager = plt.figure().canvas.manager
    manager.canvas.figure = fig
    fig.set_canvas(manager.canvas)
    plt.show()


def step(adata, name: str) -> Mapping[str, Any] | None:
    """``uns['cd7escape'][name]`` or ``None``."""
    try:
        value = adata.uns[NS][name]
    except (KeyError, TypeError):
        return None
    if not isinstance(value, Mapping) and callable(getattr(value, "to_dict", None)):
        value = value.to_dict()  # e.g. a RelapseCall stored by hand
    return value if isinstance(value, Mapping) else None


def require_obs(adata, keys: Sequence[str], *, by: str) -> None:
    """Raise :class:`~cd7escape._errors.InputError` naming the step to run when obs keys are absent."""
    from .._errors import InputError

    missing = [k for k in keys if k not in adata.obs.columns]
    if missing:
        raise InputError.single(
            f"adata.obs has no {', '.join(repr(k) for k in missing)}; run {by} first",
            field="adata.obs",
        )


def categorical_colors(key: str, categories: Sequence[str]) -> dict[str, str]:
    """Colour per category: the fixed palette of ``key`` when it has one, tab10/tab20 otherwise."""
    import matplotlib

    fixed = PALETTES.get(key, {})
    cmap = matplotlib.colormaps["tab10" if len(categories) <= 10 else "tab20"]
    out: dict[str, str] = {}
    free = 0
    for cat in categories:
        if cat in fixed:
            out[cat] = fixed[cat]
        elif cat in ("unmapped", "nan", "n/a", "None", ""):
            out[cat] = NA_COLOR
        else:
            out[cat] = matplotlib.colors.to_hex(cmap(free % cmap.N))
            free += 1
    return out


def ordered_categories(values) -> list[str]:
    """Categories in their categorical order when categorical, else sorted; missing values dropped."""
    import pandas as pd

    s = pd.Series(values)
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.dropna().astype(str))
        return [str(c) for c in s.cat.categories if str(c) in present]
    return sorted({str(v) for v in s.dropna()})


def antigen_counts(adata, antigen: str, *, layer: str = "counts") -> np.ndarray:
    """Raw counts of ``antigen`` per cell (``layers[layer]``, else ``X``)."""
    from scipy import sparse

    from .._errors import InputError

    if antigen not in adata.var_names:
        raise InputError.single(f"the antigen {antigen!r} is not among the genes", field="antigen")
    j = adata.var_names.get_loc(antigen)
    m = adata.layers.get(layer, adata.X)
    col = m[:, j]
    col = col.toarray() if sparse.issparse(col) else np.asarray(col)
    return np.asarray(col, dtype=float).ravel()


def antigen_name(adata, antigen: str | None) -> str:
    """The antigen: given, else the one ``tl.antigen_state`` (or ``pp.embed``) used, else CD7."""
    if antigen:
        return antigen
    for name in ("antigen", "embed"):
        entry = step(adata, name)
        if entry is not None:
            params = entry.get("params", {})
            if isinstance(params, Mapping) and isinstance(params.get("antigen"), str):
                return params["antigen"]
    return "CD7"


def decode(value: Any) -> Any:
    """Undo h5ad storage: JSON text of nested values back to lists/dicts, ``'None'`` to None, arrays to lists."""
    import json

    if isinstance(value, str):
        text = value.strip()
        if text == "None":
            return None
        if text[:1] in "[{":
            try:
                return json.loads(text)
            except ValueError:
                return value
        return value
    if isinstance(value, np.ndarray):
        return [decode(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {k: decode(v) for k, v in value.items()}
    return value


def classify_entry(adata) -> dict[str, Any] | None:
    """``uns['cd7escape']['classify']`` decoded (tl.classify_relapse stores nested values as JSON text)."""
    entry = step(adata, "classify")
    return None if entry is None else decode(dict(entry))


def table(adata, name: str, key: str):
    """A DataFrame a step stored (``uns['cd7escape'][name][key]``), or ``None``."""
    import pandas as pd

    entry = step(adata, name)
    value = None if entry is None else entry.get(key)
    if value is None:
        return None
    if isinstance(value, pd.DataFrame):
        return value
    try:
        return pd.DataFrame(decode(value))
    except (ValueError, TypeError):
        return None


def model_fraction(adata, timepoint: str, subclone: str | None = None) -> dict[str, Any] | None:
    """The antigen model's negative fraction (pi, ci_low, ci_high) of a timepoint or a subclone in it.

    Looks, in order, at the numbers ``tl.classify_relapse`` reported per timepoint, the subclone table of
    ``tl.subclones`` (``pi_<timepoint>`` …), and the group table of ``tl.antigen_state`` (a group matching
    the timepoint and subclone columns, or the timepoint's only sample). ``None`` when none has it.
    """
    import pandas as pd

    def _row(pi, lo, hi, source):
        try:
            pi = float(pi)
        except (TypeError, ValueError):
            return None
        if not np.isfinite(pi):
            return None
        out = {"pi": pi, "ci_low": _float(lo), "ci_high": _float(hi), "source": source}
        return out

    if subclone is None:
        call = classify_entry(adata)
        tps = None if call is None else call.get("timepoints")
        if isinstance(tps, Mapping) and isinstance(tps.get(timepoint), Mapping):
            t = tps[timepoint]
            r = _row(
                t.get("antigen_negative_fraction"), t.get("ci_low"), t.get("ci_high"), "classify"
            )
            if r is not None:
                return r
    else:
        sub = table(adata, "subclones", "table")
        if sub is not None and f"pi_{timepoint}" in sub.columns:
            sub = sub.reset_index() if "subclone" not in sub.columns else sub
            if "subclone" not in sub.columns and "index" in sub.columns:
                sub = sub.rename(columns={"index": "subclone"})
            m = sub["subclone"].astype(str) == subclone
            if m.any():
                rec = sub.loc[m].iloc[0]
                r = _row(
                    rec.get(f"pi_{timepoint}"), rec.get(f"ci_low_{timepoint}"),
                    rec.get(f"ci_high_{timepoint}"), "subclones",
                )  # fmt: skip
                if r is not None:
                    return r
    groups = table(adata, "antigen", "groups")
    if groups is None or "pi" not in groups.columns:
        return None
    m = np.ones(len(groups), dtype=bool)
    if "timepoint" in groups.columns:
        m &= groups["timepoint"].astype(str).to_numpy() == timepoint
    elif "sample" in groups.columns and "sample" in adata.obs and "timepoint" in adata.obs:
        obs = adata.obs
        samples = pd.unique(
            obs.loc[obs["timepoint"].astype(str) == timepoint, "sample"].astype(str)
        )
        if len(samples) != 1:
            return None
        m &= groups["sample"].astype(str).to_numpy() == samples[0]
    else:
        return None
    if subclone is not None:
        if "subclone" not in groups.columns:
            return None
        m &= groups["subclone"].astype(str).to_numpy() == subclone
    elif "subclone" in groups.columns:
        return None
    if m.sum() != 1:
        return None
    rec = groups.loc[m].iloc[0]
    return _row(rec.get("pi"), rec.get("ci_low"), rec.get("ci_high"), "antigen")


def _float(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None
