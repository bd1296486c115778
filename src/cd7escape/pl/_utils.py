"""The one shared helper of every ``pl`` function: axes, palettes, show/save/return.

What the steps recorded in ``uns['cd7escape']`` is read through :mod:`cd7escape._uns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
