"""One patient's machine-readable result, read defensively from what the steps wrote.

The keys are described in ``docs/inputs_outputs.md#resultjson``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._uns import NS
from .._version import __version__

MECHANISMS = (
    "preexisting_negative_clone",
    "antigen_downregulation",
    "antigen_retained",
    "mixed",
    "lineage_switch",
    "indeterminate",
)
TIMEPOINT_FIELDS = (
    "malignant_cells",
    "antigen_negative_fraction",
    "ci_low",
    "ci_high",
    "zero_count_fraction",
)
#: The JSON Schema (draft 2020-12) that every result.json follows; shipped with the package.
RESULT_SCHEMA = Path(__file__).with_name("schema") / "result.schema.json"
#: Digits kept for floats in result.json (enough for any reported number, stable across platforms).
DIGITS = 6
_PACKAGES = ("numpy", "scipy", "pandas", "anndata", "scanpy", "faiss-cpu", "matplotlib", "jinja2")


def build_result(adata, *, config, patient: str) -> dict[str, Any]:
    """The result dictionary of ``patient``; absent inputs are named under ``missing``, never invented."""
    ns = _ns(adata)
    missing: list[str] = []
    from .._uns import classify_entry, decode, finite_float
    from ._findings import car_transduced_finding

    classify = classify_entry(adata)
    if classify is None:
        missing.append(
            "uns['cd7escape']['classify'] is absent (tl.classify_relapse was not run): no mechanism call"
        )
        classify = {}
    mechanism = classify.get("mechanism")
    if mechanism is None and classify:
        missing.append("the classification has no 'mechanism'")
    confidence = finite_float(classify.get("confidence"))
    reason = classify.get("reason")
    if reason is None:
        reason = (
            "No relapse-mechanism call was made: the classification step did not run."
            if not classify
            else "The classification gave no reason."
        )

    timepoints = {}
    given = _mapping(classify.get("timepoints")) or {}
    for tp in ("baseline", "relapse"):
        timepoints[tp] = entry = _timepoint(adata, tp, _mapping(given.get(tp)), config.antigen)
        for key in TIMEPOINT_FIELDS:
            if entry.get(key) is None:
                entry[key] = None
                missing.append(f"timepoints.{tp}.{key} is not available")

    subclones = classify.get("subclones")
    if subclones is None:
        sub = _mapping(ns.get("subclones"))
        subclones = None if sub is None else decode(sub.get("table"))
    if subclones is None:
        missing.append("no subclone table (tl.subclones / tl.classify_relapse)")
    evidence = classify.get("evidence")
    if evidence is None:
        missing.append("no evidence list (tl.classify_relapse)")

    antigen_entry = _mapping(ns.get("antigen"))
    groups = None if antigen_entry is None else decode(antigen_entry.get("groups"))
    if groups is None:
        missing.append("no per-group antigen table (tl.antigen_state)")
    else:
        groups = _groups_worded(_records(groups), antigen_entry)

    qc_entry = _mapping(ns.get("qc"))
    qc = None if qc_entry is None else decode(qc_entry.get("samples"))
    if qc is None:
        missing.append("no per-sample QC table (pp.qc)")

    ingest = _mapping(ns.get("ingest")) or {}
    inputs = _records(decode(ingest.get("samples")))
    warnings = decode(ingest.get("warnings"))
    tps: dict[str, str] = {}
    for row in inputs or []:
        if isinstance(row, dict) and row.get("sample") is not None and row.get("timepoint"):
            tps[str(row["sample"])] = str(row["timepoint"])
    if "timepoint" in adata.obs and "sample" in adata.obs:
        tps.update(
            adata.obs.groupby("sample", observed=True)["timepoint"].first().astype(str).to_dict()
        )
    qc = _records(qc)
    if qc:
        for row in qc:
            if isinstance(row, dict) and "timepoint" not in row and row.get("sample") in tps:
                row["timepoint"] = tps[row["sample"]]
    numbers = _mapping(classify.get("numbers")) or {}
    steps = {
        name: entry.get("params")
        for name, entry in sorted(ns.items())
        if isinstance(entry, Mapping) and "params" in entry
    }
    result = {
        "patient": patient,
        "antigen": config.antigen,
        "lineage": config.lineage_spec.name,
        "mechanism": mechanism if mechanism is not None else "indeterminate",
        "mechanism_called": mechanism is not None,
        "confidence": confidence,
        "reason": reason,
        "timepoints": timepoints,
        "subclones": _records(subclones),
        "copy_number_states": copy_number_states(adata),
        "evidence": _records(evidence),
        "findings": (_records(decode(numbers.get("findings"))) or [])
        + car_transduced_finding(adata, config.antigen),
        "antigen_measured_by": str(numbers.get("measured_by") or "RNA"),
        "relapse_samples": _records(decode(numbers.get("relapse_samples"))) or [],
        "screen": decode(numbers.get("screen")),
        "antigen_groups": _records(groups),
        "samples": _sample_rows(adata, missing),
        "qc": qc,
        "inputs": inputs,
        "warnings": [str(w) for w in warnings] if isinstance(warnings, list) else warnings,
        "cells": _cell_counts(adata),
        "version": __version__,
        "versions": _versions(),
        "parameters": json.loads(config.model_dump_json()),
        "step_parameters": steps,
        "numbers": {
            k: v
            for k, v in numbers.items()
            if k not in ("timepoints", "subclones", "findings", "relapse_samples", "screen")
        },
        "missing": missing,
    }
    return plain(result)


def copy_number_states(adata) -> list[dict[str, Any]] | None:
    """The copy-number states the relapse carries more than the baseline (``tl.subclones``), one record each
    with its ``segment`` and ``change`` in the words the report and the cohort summary use; None when the
    step recorded none (not run, or an older version)."""
    from .. import _uns

    frame = _uns.table(adata, "subclones", "relapse_cn_states")
    if frame is None:
        return None
    out = []
    for rec in _records(frame) or []:
        where = str(rec.get("chromosome"))
        start, end = rec.get("start"), rec.get("end")
        if start is not None and end is not None and start >= 0 and end >= 0:
            where += f" {start / 1e6:.1f}–{end / 1e6:.1f} Mb"
        change = "loss" if (rec.get("sign") or 0) < 0 else "gain"
        out.append({"segment": where, "change": change, **rec})
    return out


def result_schema() -> dict[str, Any]:
    """The JSON Schema of result.json (:data:`RESULT_SCHEMA`), e.g. for ``jsonschema.validate``."""
    return json.loads(RESULT_SCHEMA.read_text(encoding="utf-8"))


def dumps(result: Mapping[str, Any]) -> str:
    """Deterministic JSON: sorted keys, rounded floats, no NaN, trailing newline."""
    return (
        json.dumps(plain(result), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
        + "\n"
    )


def plain(value: Any) -> Any:
    """JSON-ready: numpy scalars/arrays and pandas objects converted, floats rounded, NaN → None."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, pd.DataFrame):
        return _records(value)
    if isinstance(value, pd.Series):
        return plain(value.to_dict())
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple, set)) and not isinstance(value, str):
        items = sorted(value, key=str) if isinstance(value, set) else value
        return [plain(v) for v in items]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            return None
        r = round(f, DIGITS)
        return 0.0 if r == 0 else r
    if value is None or (isinstance(value, str) and value == "None"):
        return None  # _uns.record stores None as the string 'None'
    if value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "to_dict") and callable(value.to_dict):  # e.g. a RelapseCall
        return plain(value.to_dict())
    if isinstance(value, str):
        return value
    return str(value)


def _records(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, pd.DataFrame):
        df = value
        trivial = [str(i) for i in range(len(df))]
        if [str(i) for i in df.index] == trivial:  # a RangeIndex, also after an h5ad round trip
            df = df.reset_index(drop=True)
        if not isinstance(df.index, pd.RangeIndex):
            name = df.index.name or ("group" if "group" not in df.columns else "index")
            df = df.reset_index(drop=name in df.columns, names=name)
        return [
            plain(dict(zip(df.columns, row, strict=True))) for row in df.itertuples(index=False)
        ]
    if isinstance(value, Mapping):
        # a table stored column-wise ({column: [values]}) or one record
        cols = {k: v for k, v in value.items() if isinstance(v, (list, tuple, np.ndarray))}
        if cols and len(cols) == len(value) and len({len(v) for v in cols.values()}) == 1:
            return _records(pd.DataFrame({k: list(v) for k, v in cols.items()}))
        return [plain(value)]
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    return [plain(value)]


def _ns(adata) -> Mapping[str, Any]:
    ns = adata.uns.get(NS, {})
    return ns if isinstance(ns, Mapping) else {}


def _mapping(value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value
    if hasattr(value, "to_dict"):
        d = value.to_dict()
        return d if isinstance(d, Mapping) else None
    return None


def _timepoint(adata, tp: str, given: Mapping[str, Any] | None, antigen: str) -> dict[str, Any]:
    """One timepoint's numbers: the patient's negative fraction, its interval and detection-limit
    sentence from :func:`~cd7escape._uns.timepoint_fraction` (the classification's, else the antigen
    model's group of the timepoint), the cell counts from the classification or else the cells."""
    from .._uns import timepoint_fraction

    entry = dict(given or {})
    if entry.get("malignant_cells") is None or entry.get("zero_count_fraction") is None:
        for key, value in _from_cells(adata, tp, antigen).items():
            if entry.get(key) is None:
                entry[key] = value
    one = timepoint_fraction(adata, tp)
    if one is None:  # no model fit of the timepoint: nothing to word
        entry.update(detection_limit=None, source=None)
        return entry
    entry["antigen_negative_fraction"] = one["pi"]
    entry["ci_low"] = one["ci_low"]
    entry["ci_high"] = one["ci_high"]
    if one["lrt_pvalue"] is not None:
        entry["lrt_pvalue"] = one["lrt_pvalue"]
    entry["detection_limit"] = one["detection_limit"]
    entry["source"] = one["source"]
    return entry


def _sample_rows(adata, missing: list[str]) -> list[Any]:
    """tl.sample_burden's table: one record per sample in time order ([] with a note when absent)."""
    from .._uns import table

    burden = table(adata, "burden", "table")
    if burden is None:
        missing.append("no per-sample numbers (tl.sample_burden was not run)")
        return []
    if "order" in burden:
        burden = burden.sort_values("order")
    rows = _records(burden.reset_index(drop=True)) or []
    for row in rows:
        for key, value in row.items():
            if value == "" and key not in ("sample", "timepoint"):
                row[key] = None  # empty text in the table is 'nothing to say'
            elif (key == "cells" or key.endswith("_cells")) and isinstance(value, float):
                row[key] = int(value)  # a count column holding NaN elsewhere is float
    return rows


def _groups_worded(rows: list[Any] | None, antigen_entry: Mapping[str, Any]) -> list[Any] | None:
    """The per-group (per-sample) table with its detection-limit sentences in the one wording."""
    from .._uns import detection_limit, recorded_alpha

    if not rows:
        return rows
    alpha = recorded_alpha(antigen_entry)
    out = []
    for row in rows:
        if isinstance(row, dict) and "pi" in row:
            row = {
                **row,
                "detection_limit": detection_limit(
                    row.get("n_cells"), row.get("pi"), row.get("ci_low"), row.get("ci_high"),
                    row.get("lrt_pvalue"), alpha=alpha,
                ),
            }  # fmt: skip
        out.append(row)
    return out


def _from_cells(adata, tp: str, antigen: str) -> dict[str, Any]:
    """What is read straight from the cells: malignant cells and the naive zero-count share."""
    from .._anndata import gene_counts

    obs = adata.obs
    if "timepoint" not in obs or "malignant" not in obs:
        return {}
    mal = obs["malignant"].fillna(False).to_numpy(dtype=bool)
    at = (obs["timepoint"].astype(str) == tp).to_numpy()
    sel = mal & at
    out: dict[str, Any] = {"malignant_cells": int(sel.sum())}
    if sel.any() and antigen in adata.var_names:
        y = gene_counts(adata, antigen)
        out["zero_count_fraction"] = float(np.mean(y[sel] == 0))
    return out


def _cell_counts(adata) -> dict[str, Any]:
    obs = adata.obs
    out: dict[str, Any] = {"total": int(adata.n_obs)}
    if "timepoint" in obs:
        out["by_timepoint"] = {
            str(k): int(v)
            for k, v in obs["timepoint"].astype(str).value_counts().sort_index().items()
        }
    if "cell_class" in obs:
        out["by_cell_class"] = {
            str(k): int(v)
            for k, v in obs["cell_class"].astype(str).value_counts().sort_index().items()
        }
    return out


def _versions() -> dict[str, str]:
    import sys
    from importlib.metadata import PackageNotFoundError, version

    out = {"cd7escape": __version__, "python": sys.version.split()[0]}
    for pkg in _PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
