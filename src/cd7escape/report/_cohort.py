"""The cohort: one summary row per patient (TSV) and an HTML index linking every report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .._files import atomic_write_text
from .._logging import logger
from .._version import __version__
from . import _narrative, _render

COLUMNS = [
    "patient",
    "status",
    "mechanism",
    "confidence",
    "reason",
    "baseline_malignant_cells",
    "relapse_malignant_cells",
    "baseline_negative_fraction",
    "baseline_ci_low",
    "baseline_ci_high",
    "baseline_zero_count_fraction",
    "relapse_negative_fraction",
    "relapse_ci_low",
    "relapse_ci_high",
    "relapse_zero_count_fraction",
    "baseline_detection_limit",
    "relapse_detection_limit",
    "relapse_copy_number_states",
]
_TP = {
    "malignant_cells": "malignant_cells",
    "negative_fraction": "antigen_negative_fraction",
    "ci_low": "ci_low",
    "ci_high": "ci_high",
    "zero_count_fraction": "zero_count_fraction",
    "detection_limit": "detection_limit",
}
#: Columns cohort.html shows as percentages, in the patient report's rounding.
_FRACTIONS = frozenset(
    f"{tp}_{c}"
    for tp in ("baseline", "relapse")
    for c in ("negative_fraction", "ci_low", "ci_high", "zero_count_fraction")
)


def write_cohort(outdir: Path, patients: Sequence[str]) -> list[dict[str, Any]]:
    """Summarise the patients' ``result.json`` files into ``cohort_summary.tsv`` and ``cohort.html``.

    Parameters
    ----------
    outdir
        The run's output folder, holding ``<patient>/result.json``.
    patients
        Patients to list, in this order. One without a result is listed with status ``missing``
        (``unreadable`` when its result.json cannot be parsed).

    Returns
    -------
    The rows written (dicts with the TSV columns).
    """
    outdir = Path(outdir)
    rows = [_row(outdir, str(p)) for p in dict.fromkeys(patients)]
    lines = ["\t".join(COLUMNS)]
    lines += ["\t".join(_cell(r[c]) for c in COLUMNS) for r in rows]
    atomic_write_text(outdir / "cohort_summary.tsv", "\n".join(lines) + "\n")
    counts: dict[str, int] = {}
    for r in rows:
        key = r["mechanism"] if r["status"] == "ok" else r["status"]
        counts[str(key)] = counts.get(str(key), 0) + 1
    html = _render.render(
        "cohort.html.j2",
        rows=rows,
        columns=COLUMNS,
        version=__version__,
        counts=sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])),
        label=_narrative.label,
        show=_show,
    )
    atomic_write_text(outdir / "cohort.html", html)
    logger.info(
        "cohort: %d patient(s), %d with a result -> %s",
        len(rows),
        sum(r["status"] == "ok" for r in rows),
        outdir / "cohort_summary.tsv",
    )
    return rows


def _row(outdir: Path, patient: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row["patient"] = patient
    path = outdir / patient / "result.json"
    row["href"] = None
    row["links"] = []
    if not path.is_file():
        row["status"] = "missing"
        return row
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("cohort: cannot read %s: %s", path, exc)
        row["status"] = "unreadable"
        return row
    row["status"] = "ok"
    for key in ("mechanism", "confidence", "reason"):
        row[key] = result.get(key)
    tps = result.get("timepoints") or {}
    for tp in ("baseline", "relapse"):
        entry = tps.get(tp) or {}
        for col, key in _TP.items():
            row[f"{tp}_{col}"] = entry.get(key)
    states = result.get("copy_number_states")
    if isinstance(states, list):
        row["relapse_copy_number_states"] = (
            "; ".join(
                f"{s.get('segment')} {s.get('change')}" for s in states if isinstance(s, dict)
            )
            or "none"
        )
    base = quote(patient, safe="")
    if (outdir / patient / "report.html").is_file():
        row["href"] = f"{base}/report.html"
    row["links"] = [
        (name, f"{base}/{name}") for name in ("report.pdf", "result.json")
        if (outdir / patient / name).is_file()
    ]  # fmt: skip
    return row


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(round(value, 6))
    return " ".join(str(value).split())  # no tabs or newlines inside a field


def _show(column: str, value: Any) -> str:
    """A cell of cohort.html: fractions as the patient's report shows them (22.7%), the rest as is."""
    return _render.pct(value) if column in _FRACTIONS and value is not None else _render.fmt(value)
