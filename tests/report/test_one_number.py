"""One number per quantity (issue 19 item 4): the patient's baseline and relapse antigen-negative fraction,
its interval and its detection-limit sentence are the same in result.json, cohort_summary.tsv,
cohort.html, report.html (table and text) and the antigen figure, all read through
``cd7escape._uns.timepoint_fraction``; per-sample fits are labelled as such and never stand for a
timepoint.

The end-to-end part runs a simulated patient (2 x 300 cells, 4 bootstrap replicates) through
``cd7escape run`` (~30 s); the rest checks the helpers on hand-built entries.
"""

from __future__ import annotations

import csv
import html as html_lib
import json
import re
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

import cd7escape as ce
from cd7escape._uns import NS, detection_limit, percent, timepoint_fraction

TPS = ("baseline", "relapse")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A pre-existing negative clone (15 % negative at baseline) through the command line."""
    root = tmp_path_factory.mktemp("one_number")
    adata = ce.datasets.simulate_patient(
        "preexisting_negative_clone", seed=4, n_cells=300, negative_fraction=0.15, fold=4.0
    )
    ce.datasets.write_simulated(adata, root / "sim")
    config = {
        "antigen": "CD7",
        "car_feature": "CAR_CD7",
        "samples": "sim/samples.csv",
        "outdir": "out",
        "qc": {"doublets": False},
        "embed": {"umap": False},
        "classify": {"n_bootstrap": 4},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [sys.executable, "-m", "cd7escape.cli", "run", str(root / "config.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "out"


def _text(markup: str) -> str:
    """The visible text of some HTML, whitespace collapsed."""
    markup = re.sub(r"<style>.*?</style>", " ", markup, flags=re.S)
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def _timepoint_row(page: str, tp: str) -> str:
    """The row of ``tp`` in the report's 'Numbers per timepoint' table, as text."""
    table = page[page.index("Numbers per timepoint") :]
    row = re.search(rf"<tr><td>{tp}</td>(.*?)</tr>", table, flags=re.S)
    assert row, f"no {tp} row in 'Numbers per timepoint'"
    return _text(row.group(1))


def _figure_labels(adata) -> dict[str, str]:
    """The antigen figure's row labels by row name ('baseline · all' …)."""
    fig = ce.pl.antigen_distribution(adata, return_fig=True)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    return {label.split(" (n=")[0]: label for label in labels}


def _check_one_number(pdir: Path, adata, *, source: str, cohort: dict[str, str] | None) -> None:
    """Every output of ``pdir`` shows the timepoints' one negative fraction, interval and sentence."""
    result = json.loads((pdir / "result.json").read_text())
    page = (pdir / "report.html").read_text()
    text = _text(page)
    labels = _figure_labels(adata)
    for tp in TPS:
        one = timepoint_fraction(adata, tp)
        assert one is not None
        assert one["source"] == source
        entry = result["timepoints"][tp]
        pi, lo, hi, limit = (
            entry["antigen_negative_fraction"],
            entry["ci_low"],
            entry["ci_high"],
            entry["detection_limit"],
        )
        assert entry["source"] == source
        # result.json: the source's numbers (6 digits) and the sentence worded from them
        assert pi == round(one["pi"], 6)
        assert (lo, hi) == (round(one["ci_low"], 6), round(one["ci_high"], 6))
        assert limit == one["detection_limit"]
        assert limit == detection_limit(
            one["n_cells"], pi, lo, hi, one["lrt_pvalue"], alpha=one["alpha"]
        )
        assert str(one["n_cells"]) in limit
        shown = [percent(pi), percent(lo), percent(hi)]
        # report.html: the table row and the paragraph of the verdict
        row = _timepoint_row(page, tp).split()
        assert row[0] == str(entry["malignant_cells"])
        assert row[1] == shown[0]
        assert " ".join(row[2:5]) == f"{shown[1]} – {shown[2]}"
        assert " ".join(row).endswith(limit)
        start = text.index(f"At {tp}, ")
        sentence = text[start : text.index("(dropout included)", start)]
        assert f"(95% CI {shown[1]}–{shown[2]})" in sentence
        if not limit.startswith("none detected"):
            assert f"estimates {shown[0]} " in sentence
        # every detection-limit sentence about this many cells is the timepoint's
        n = one["n_cells"]
        worded = re.findall(rf"(?:none detected in|[\d.]+ % of) {n} cells(?: \([^)]*\))?", text)
        assert set(worded) == {limit}, worded
        # the figure: the timepoint's row carries the same number in the same rounding
        assert labels[f"{tp} · all"].endswith(f"{shown[0]} neg. (95% CI {shown[1]}–{shown[2]})")
        # the evidence the classification wrote (shown in the report) agrees in the same rounding
        for statement in result.get("evidence") or []:
            m = re.match(rf"{tp}: \d+ malignant cells, CD7-negative ([\d.]+) %", str(statement))
            if m:
                assert f"{m.group(1)}%" == shown[0], statement
        if cohort is not None:
            # cohort_summary.tsv: result.json's numbers to the digit, the same sentence
            assert float(cohort[f"{tp}_negative_fraction"]) == pi
            assert float(cohort[f"{tp}_ci_low"]) == lo
            assert float(cohort[f"{tp}_ci_high"]) == hi
            assert cohort[f"{tp}_detection_limit"] == limit
            assert int(cohort[f"{tp}_malignant_cells"]) == entry["malignant_cells"]
    # per-sample fits: never in the patient's table; a timepoint's only sample is not repeated
    section = page[page.index('id="antigen"') : page.index('id="subclones"')]
    assert "tl.antigen_state's own fit of each sample" in _text(section)
    for group in result["antigen_groups"]:
        if group["sample"] in ("P1_baseline", "P1_relapse"):  # one sample per timepoint
            assert f"<td>{group['sample']}</td>" not in section
            differs = group["detection_limit"] not in {
                result["timepoints"][tp]["detection_limit"] for tp in TPS
            }
            if differs:  # the per-sample sentence is nowhere in the report
                assert group["detection_limit"] not in text


@pytest.mark.slow
def test_every_output_shows_one_number(run):
    pdir = run / "P1"
    with (run / "cohort_summary.tsv").open(encoding="utf-8") as fh:
        [cohort] = list(csv.DictReader(fh, delimiter="\t"))
    adata = ad.read_h5ad(pdir / "cells.h5ad")
    _check_one_number(pdir, adata, source="classify", cohort=cohort)
    # the stored classification is the source: result.json is its numbers, not another fit
    stored = json.loads(adata.uns[NS]["classify"]["timepoints"])
    result = json.loads((pdir / "result.json").read_text())
    for tp in TPS:
        for key in ("antigen_negative_fraction", "ci_low", "ci_high", "malignant_cells"):
            assert result["timepoints"][tp][key] == pytest.approx(stored[tp][key], abs=5e-7)
    # cohort.html: the same fractions in the report's rounding, the same sentences
    cohort_page = _text((run / "cohort.html").read_text())
    for tp in TPS:
        entry = result["timepoints"][tp]
        for key in ("antigen_negative_fraction", "ci_low", "ci_high"):
            assert percent(entry[key]) in cohort_page
        assert entry["detection_limit"] in cohort_page


@pytest.mark.slow
def test_the_antigen_model_stands_in_only_without_a_classification(run, config, tmp_path):
    """Without tl.classify_relapse, every output shows tl.antigen_state's group of the timepoint."""
    from cd7escape.report import write_cohort, write_patient

    adata = ad.read_h5ad(run / "P1" / "cells.h5ad")
    del adata.uns[NS]["classify"]
    write_patient(adata, tmp_path / "P1", config=config)
    write_cohort(tmp_path, ["P1"])
    with (tmp_path / "cohort_summary.tsv").open(encoding="utf-8") as fh:
        [cohort] = list(csv.DictReader(fh, delimiter="\t"))
    _check_one_number(tmp_path / "P1", adata, source="antigen", cohort=cohort)
    groups = adata.uns[NS]["antigen"]["groups"]
    result = json.loads((tmp_path / "P1" / "result.json").read_text())
    for tp in TPS:
        [pi] = groups.loc[groups["sample"] == f"P1_{tp}", "pi"]
        assert result["timepoints"][tp]["antigen_negative_fraction"] == round(float(pi), 6)
    assert "No classification: a timepoint" in _text((tmp_path / "P1" / "report.html").read_text())


# --- the helpers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "alpha", "expected"),
    [
        ((176, 0.227, 0.1408, 0.3202, 0.0), 0.05, "22.7 % of 176 cells (95 % CI 14.1–32.0 %)"),
        ((176, 0.227, 0.0, 0.3819, 0.07), 0.05, "none detected in 176 cells (95 % CI 0.0–38.2 %)"),
        ((176, 0.227, 0.0, 0.3819, 0.07), 0.1, "22.7 % of 176 cells (90 % CI 0.0–38.2 %)"),
        ((50, 0.3, None, 0.5, None), 0.05, "30.0 % of 50 cells"),
        ((50, 0.3, 0.1, 0.5, "None"), 0.025, "30.0 % of 50 cells (97.5 % CI 10.0–50.0 %)"),
        ((8, None, None, None, None), 0.05, "8 malignant cells: too few for an estimate"),
        ((8, float("nan"), None, None, None), 0.05, "8 malignant cells: too few for an estimate"),
        ((0, None, None, None, None), 0.05, None),
        ((None, 0.2, 0.1, 0.3, 0.0), 0.05, None),
    ],
)
def test_detection_limit_wording(args, alpha, expected):
    assert detection_limit(*args, alpha=alpha) == expected


def test_percent_is_the_rounding_of_every_shown_fraction():
    from cd7escape.report._render import pct

    assert percent(0.227047) == pct(0.227047) == "22.7%"
    assert percent(0.0) == "0.0%"
    assert percent(None) == percent(float("nan")) == percent("None") == "n/a"


def _adata(**steps) -> ad.AnnData:
    obs = pd.DataFrame(
        {"sample": ["A", "A", "B", "B"], "timepoint": ["baseline"] * 2 + ["relapse"] * 2},
        index=[f"c{i}" for i in range(4)],
    )
    a = ad.AnnData(obs=obs)
    a.uns[NS] = steps
    return a


def _groups() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sample": ["A", "B"],
            "n_cells": [120, 80],
            "pi": [0.04, 0.6],
            "ci_low": [0.0, 0.45],
            "ci_high": [0.11, 0.72],
            "lrt_pvalue": [0.3, 0.0],
        },
        index=["A", "B"],
    )


def test_the_classification_is_the_source_even_without_an_estimate():
    """A timepoint the classification reported stays its own (too few cells: no number), never the
    per-sample fit's; a timepoint it did not report falls back to the antigen model's group."""
    tps = {
        "relapse": {
            "malignant_cells": 8,
            "antigen_negative_fraction": None,
            "ci_low": None,
            "ci_high": None,
        }
    }
    a = _adata(
        classify={"params": {"alpha": 0.05}, "timepoints": json.dumps(tps)},
        antigen={"params": {"alpha": 0.1}, "groups": _groups()},
    )
    rel = timepoint_fraction(a, "relapse")
    assert rel["source"] == "classify"
    assert rel["pi"] is None
    assert rel["detection_limit"] == "8 malignant cells: too few for an estimate"
    assert ce._uns.model_fraction(a, "relapse") is None  # the figure draws no model there
    base = timepoint_fraction(a, "baseline")
    assert base["source"] == "antigen"
    assert (base["pi"], base["n_cells"], base["alpha"]) == (0.04, 120, 0.1)
    assert base["detection_limit"] == "none detected in 120 cells (90 % CI 0.0–11.0 %)"
    assert timepoint_fraction(a, "other") is None


def test_the_figure_writes_the_timepoint_number_not_the_subclones():
    a = _adata(antigen={"params": {}, "groups": _groups()})
    b = ad.AnnData(
        X=np.ones((4, 1), dtype=np.float32), obs=a.obs, var=pd.DataFrame(index=["CD7"]), uns=a.uns
    )
    b.obs["malignant"] = True
    b.obs["subclone"] = pd.Categorical(["S0", "S1", "S0", "S1"])
    fig = ce.pl.antigen_distribution(b, return_fig=True)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == "baseline · all (n=2)\n4.0% neg. (95% CI 0.0%–11.0%)"
    assert labels[1] == "baseline · S0 (n=1)"  # a subclone's own number is not written
    assert labels[3] == "relapse · all (n=2)\n60.0% neg. (95% CI 45.0%–72.0%)"


def test_per_sample_rows_are_labelled_and_a_timepoints_only_sample_left_out():
    from cd7escape.report._patient import _group_rows

    groups = [
        {"sample": s, "n_cells": n, "pi": pi, "ci_low": 0.0, "ci_high": 0.5, "state": "uncertain",
         "zero_fraction": 0.4, "detection_limit": f"limit of {s}"}
        for s, n, pi in (("BL", 120, 0.1), ("REL_BM", 60, 0.3), ("REL_PB", 40, 0.2))
    ]  # fmt: skip
    result = {
        "antigen": "CD7",
        "antigen_groups": groups,
        "step_parameters": {"antigen": {"groupby": ["sample"]}},
    }
    rows, note = _group_rows(result, {"BL"})
    assert [r["sample"] for r in rows] == ["REL_BM", "REL_PB"]
    assert rows[0]["CD7-negative fraction of this sample (95% CI)"] == "30.0% (0.0%–50.0%)"
    assert rows[0]["detection limit of this sample"] == "limit of REL_BM"
    assert not any("baseline" in key or "relapse" in key for r in rows for key in r)
    assert note.startswith("Per sample: tl.antigen_state's fit")
    assert "Not repeated here: BL, the only sample of its timepoint" in note
    rows, note = _group_rows(result, {"BL", "REL_BM", "REL_PB"})
    assert rows is None
    assert note.startswith("Each timepoint has one sample")
