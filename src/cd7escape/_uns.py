"""``uns['cd7escape']``: writing results the same way everywhere (parameters stored, keys logged), and
reading them back (h5ad storage undone) for the plots and the report."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ._logging import logger
from ._version import __version__

NS = "cd7escape"


def record(
    adata,
    step: str,
    params: Mapping[str, Any],
    *,
    obs: Iterable[str] = (),
    obsm: Iterable[str] = (),
    layers: Iterable[str] = (),
    results: Mapping[str, Any] | None = None,
) -> None:
    """Store ``params`` (and ``results``) under ``adata.uns['cd7escape'][step]`` and log added keys."""
    entry: dict[str, Any] = {"params": _plain(dict(params)), "version": __version__}
    if results:
        entry.update(results)
    adata.uns.setdefault(NS, {})[step] = entry
    added = [f"'{k}'" for k in obs]
    lines = []
    if added:
        lines.append(f"    .obs {', '.join(added)}")
    if obsm:
        lines.append(f"    .obsm {', '.join(repr(k) for k in obsm)}")
    if layers:
        lines.append(f"    .layers {', '.join(repr(k) for k in layers)}")
    lines.append(f"    .uns['{NS}']['{step}']")
    logger.info("%s: added\n%s", step, "\n".join(lines))


def _plain(value: Any) -> Any:
    """Make parameters storable in h5ad (no None, tuples or numpy scalars)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None:
        return "None"
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


# --- reading ---------------------------------------------------------------------------------------


def step(adata, name: str) -> Mapping[str, Any] | None:
    """``uns['cd7escape'][name]`` or ``None``."""
    try:
        value = adata.uns[NS][name]
    except (KeyError, TypeError):
        return None
    if not isinstance(value, Mapping) and callable(getattr(value, "to_dict", None)):
        value = value.to_dict()  # e.g. a RelapseCall stored by hand
    return value if isinstance(value, Mapping) else None


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


def lineage_of(adata, lineage: str | None, antigen: str):
    """The run's :class:`~cd7escape._lineages.Lineage`: given, else the one ``tl.call_malignant`` used,
    else the antigen's (T for an antigen of no lineage)."""
    from ._lineages import resolve_lineage

    if lineage is None:
        entry = step(adata, "malignant")
        params = entry.get("params", {}) if entry is not None else {}
        if isinstance(params, Mapping) and isinstance(params.get("lineage"), str):
            lineage = params["lineage"]
    return resolve_lineage(lineage, antigen)


def normal_cells_label(adata, key: str = "burden") -> str:
    """How reports name the normal cells ``tl.sample_burden`` followed: 'normal T cells' (T-ALL),
    'normal B cells' (B-ALL), 'normal plasma cells' (myeloma)."""
    entry = step(adata, key) or {}
    cls = entry.get("normal_class", "normal_T") if hasattr(entry, "get") else "normal_T"
    name = {"normal_T": "T", "B": "B", "plasma": "plasma"}.get(str(cls), str(cls))
    return f"normal {name} cells"


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
    """The antigen model's negative fraction (pi, ci_low, ci_high, source) of a timepoint or a subclone in it.

    A timepoint's is :func:`timepoint_fraction`'s (the patient's one number). A subclone's is read from
    the subclone table of ``tl.subclones`` (``pi_<timepoint>`` …), else from a group of
    ``tl.antigen_state`` matching the timepoint and subclone columns. ``None`` when none has it.
    """
    if subclone is None:
        tp = timepoint_fraction(adata, timepoint)
        if tp is None or tp["pi"] is None:
            return None
        return {k: tp[k] for k in ("pi", "ci_low", "ci_high", "source")}
    sub = table(adata, "subclones", "table")
    if sub is not None and f"pi_{timepoint}" in sub.columns:
        sub = sub.reset_index() if "subclone" not in sub.columns else sub
        if "subclone" not in sub.columns and "index" in sub.columns:
            sub = sub.rename(columns={"index": "subclone"})
        m = sub["subclone"].astype(str) == subclone
        if m.any():
            rec = sub.loc[m].iloc[0]
            pi = finite_float(rec.get(f"pi_{timepoint}"))
            if pi is not None:
                return {
                    "pi": pi,
                    "ci_low": finite_float(rec.get(f"ci_low_{timepoint}")),
                    "ci_high": finite_float(rec.get(f"ci_high_{timepoint}")),
                    "source": "subclones",
                }
    rec = _antigen_group(adata, timepoint, subclone)
    pi = None if rec is None else finite_float(rec.get("pi"))
    if pi is None:
        return None
    return {
        "pi": pi,
        "ci_low": finite_float(rec.get("ci_low")),
        "ci_high": finite_float(rec.get("ci_high")),
        "source": "antigen",
    }


def timepoint_fraction(adata, timepoint: str) -> dict[str, Any] | None:
    """The patient's antigen-negative fraction at ``timepoint``: the one number every output shows.

    The numbers ``tl.classify_relapse`` reported for the timepoint (``numbers['timepoints']``, the
    malignant cells of the timepoint fitted at the baseline expression level) whenever the
    classification has the timepoint, even when it made no estimate there (too few cells); only
    without them the group of ``tl.antigen_state`` holding the timepoint's malignant cells (its only
    sample, fitted on its own). The report's tables and text, ``result.json``, the cohort summary and
    the figures all read it here.

    Returns
    -------
    ``None`` when neither step has the timepoint, else a dict: ``pi``, ``ci_low``, ``ci_high``,
    ``lrt_pvalue`` (finite floats or None), ``n_cells`` (the cells fitted), ``alpha`` (the test level),
    ``detection_limit`` (:func:`detection_limit`'s sentence) and ``source`` (``'classify'`` or
    ``'antigen'``).
    """
    call = classify_entry(adata)
    tps = None if call is None else call.get("timepoints")
    if isinstance(tps, Mapping) and isinstance(tps.get(timepoint), Mapping):
        t = tps[timepoint]
        return _fraction_record(
            t.get("malignant_cells"), t.get("antigen_negative_fraction"), t.get("ci_low"),
            t.get("ci_high"), t.get("lrt_pvalue"), alpha=recorded_alpha(call), source="classify",
        )  # fmt: skip
    rec = _antigen_group(adata, timepoint, None)
    if rec is None:
        return None
    return _fraction_record(
        rec.get("n_cells"), rec.get("pi"), rec.get("ci_low"), rec.get("ci_high"),
        rec.get("lrt_pvalue"), alpha=recorded_alpha(step(adata, "antigen")), source="antigen",
    )  # fmt: skip


#: How :func:`detection_limit` begins when the test finds no negative cells.
NONE_DETECTED = "none detected"


def detection_limit(
    n_cells: Any, pi: Any, ci_low: Any, ci_high: Any, lrt_pvalue: Any, *, alpha: float = 0.05
) -> str | None:
    """The detection-limit sentence of a negative fraction: its one wording, wherever it is shown.

    ``'none detected in 176 cells (95 % CI 0.0–38.2 %)'`` when the test of ``pi == 0`` is not
    significant at ``alpha``, ``'22.7 % of 176 cells (95 % CI 14.1–32.0 %)'`` when it is (or when no
    p-value is given), ``'8 malignant cells: too few for an estimate'`` without an estimate, ``None``
    without cells. The numbers are those shown beside it, in :func:`percent`'s rounding.
    """
    n = finite_float(n_cells)
    if not n:
        return None
    n = int(n)
    pi = finite_float(pi)
    if pi is None:
        return f"{n} malignant cells: too few for an estimate"
    lo, hi, p = finite_float(ci_low), finite_float(ci_high), finite_float(lrt_pvalue)
    ci = (
        f" ({100 * (1 - alpha):g} % CI {_digits(lo)}–{_digits(hi)} %)"
        if lo is not None and hi is not None
        else ""
    )
    if p is not None and p >= alpha:
        return f"{NONE_DETECTED} in {n} cells{ci}"
    return f"{_digits(pi)} % of {n} cells{ci}"


def percent(x: Any) -> str:
    """A fraction as people read it, the rounding of every shown fraction: ``0.2270 -> '22.7%'``."""
    f = finite_float(x)
    return "n/a" if f is None else f"{_digits(f)}%"


def _digits(f: float) -> str:
    return f"{100 * f:.1f}"


def _fraction_record(n, pi, lo, hi, p, *, alpha: float, source: str) -> dict[str, Any]:
    n = finite_float(n)
    n = None if n is None else int(n)
    return {
        "pi": finite_float(pi),
        "ci_low": finite_float(lo),
        "ci_high": finite_float(hi),
        "lrt_pvalue": finite_float(p),
        "n_cells": n,
        "alpha": alpha,
        "detection_limit": detection_limit(n, pi, lo, hi, p, alpha=alpha),
        "source": source,
    }


def recorded_alpha(entry: Mapping[str, Any] | None) -> float:
    """The test level a step recorded (its ``params['alpha']``), else the antigen model's default."""
    params = None if entry is None else entry.get("params")
    alpha = finite_float(params.get("alpha")) if isinstance(params, Mapping) else None
    if alpha is None or not 0 < alpha < 1:
        from ._config import AntigenParams

        alpha = AntigenParams.model_fields["alpha"].default
    return alpha


def _antigen_group(adata, timepoint: str, subclone: str | None) -> Mapping[str, Any] | None:
    """The row of ``tl.antigen_state``'s groups holding exactly the timepoint's (subclone's) cells."""
    import pandas as pd

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
    return groups.loc[m].iloc[0]


def finite_float(x: Any) -> float | None:
    """``x`` as a float, or ``None`` when it is not a finite number (``'None'``, NaN, text)."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None
