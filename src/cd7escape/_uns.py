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
        out = {"pi": pi, "ci_low": finite_float(lo), "ci_high": finite_float(hi), "source": source}
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


def finite_float(x: Any) -> float | None:
    """``x`` as a float, or ``None`` when it is not a finite number (``'None'``, NaN, text)."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None
