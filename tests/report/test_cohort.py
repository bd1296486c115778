"""write_cohort: one TSV row per patient (missing ones too) and an index page with relative links."""

from __future__ import annotations

import csv
import json
import re

from cd7escape.report import write_cohort


def _result(patient, mechanism="antigen_downregulation"):
    tp = {
        "malignant_cells": 120,
        "antigen_negative_fraction": 0.05,
        "ci_low": 0.0,
        "ci_high": 0.12,
        "zero_count_fraction": 0.4,
    }
    return {
        "patient": patient,
        "mechanism": mechanism,
        "confidence": 0.84,
        "reason": "The dominant clone lost CD7;\tsee\nevidence.",
        "timepoints": {"baseline": tp, "relapse": {**tp, "antigen_negative_fraction": 0.9}},
    }


def test_summary_rows_and_missing(tmp_path):
    for p in ("P1", "P3"):
        (tmp_path / p).mkdir()
        (tmp_path / p / "result.json").write_text(json.dumps(_result(p)))
        (tmp_path / p / "report.html").write_text("<html></html>")
    (tmp_path / "P4").mkdir()
    (tmp_path / "P4" / "result.json").write_text("{not json")
    rows = write_cohort(tmp_path, ["P1", "P2", "P3", "P4"])
    assert [r["status"] for r in rows] == ["ok", "missing", "ok", "unreadable"]
    with (tmp_path / "cohort_summary.tsv").open() as fh:
        table = list(csv.DictReader(fh, delimiter="\t"))
    assert [r["patient"] for r in table] == ["P1", "P2", "P3", "P4"]
    p1 = table[0]
    assert p1["mechanism"] == "antigen_downregulation"
    assert p1["confidence"] == "0.84"
    assert p1["relapse_negative_fraction"] == "0.9"
    assert p1["relapse_ci_high"] == "0.12"
    assert p1["baseline_zero_count_fraction"] == "0.4"
    assert p1["baseline_malignant_cells"] == "120"
    assert (
        p1["reason"] == "The dominant clone lost CD7; see evidence."
    )  # no tabs/newlines in a field
    assert table[1]["status"] == "missing"
    assert table[1]["mechanism"] == ""
    html = (tmp_path / "cohort.html").read_text()
    assert re.findall(r'href="([^"]+)"', html) == [
        "P1/report.html", "P1/result.json", "P3/report.html", "P3/result.json",
    ]  # fmt: skip
    assert 'Antigen downregulation in the dominant clone</td><td class="num">2' in html
    assert 'No result (not run or failed)</td><td class="num">1' in html
    assert "<script" not in html


def test_user_strings_escaped_and_links_quoted(tmp_path):
    evil = 'P"><img src=x onerror=alert(1)>'
    (tmp_path / evil).mkdir()
    (tmp_path / evil / "result.json").write_text(json.dumps(_result(evil, "<b>x</b>")))
    (tmp_path / evil / "report.html").write_text("")
    write_cohort(tmp_path, [evil])
    html = (tmp_path / "cohort.html").read_text()
    assert "<img" not in html
    assert "<b>x</b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    href = re.findall(r'href="([^"]+)"', html)[0]
    assert href.endswith("/report.html")
    assert "<" not in href
    assert '"' not in href


def test_rewrites_atomically_and_identically(tmp_path):
    (tmp_path / "P1").mkdir()
    (tmp_path / "P1" / "result.json").write_text(json.dumps(_result("P1")))
    write_cohort(tmp_path, ["P1"])
    first = (tmp_path / "cohort_summary.tsv").read_bytes()
    write_cohort(tmp_path, ["P1"])
    assert (tmp_path / "cohort_summary.tsv").read_bytes() == first
    assert not list(tmp_path.glob(".*.tmp"))
