"""The command line end to end: the example cohort, resume, validation errors, simulate."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

CLI = [sys.executable, "-m", "cd7escape.cli"]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd)


# example_run: the session fixture of tests/conftest.py (one example run shared with other modules)


def _truth(repo: Path) -> dict[str, str]:
    sheet = pd.read_csv(repo / "data" / "test_h5ad" / "samples.csv")
    return {
        p: json.loads((repo / "data" / "test_h5ad" / p / "truth" / f"{p}.json").read_text())[
            "mechanism"
        ]
        for p in sheet["patient"].unique()
    }


def test_example_calls_the_true_mechanism(example_run: Path, repo: Path):
    for patient, mechanism in _truth(repo).items():
        result = json.loads((example_run / patient / "result.json").read_text())
        assert result["mechanism"] == mechanism, (patient, result["reason"])
        assert result["patient"] == patient
        for tp in ("baseline", "relapse"):
            numbers = result["timepoints"][tp]
            assert numbers["ci_low"] <= numbers["antigen_negative_fraction"] <= numbers["ci_high"]
            assert 0 <= numbers["zero_count_fraction"] <= 1


def test_example_writes_every_output(example_run: Path, repo: Path):
    summary = pd.read_csv(example_run / "cohort_summary.tsv", sep="\t")
    assert sorted(summary["patient"]) == sorted(_truth(repo))
    for patient in summary["patient"]:
        pdir = example_run / patient
        for name in ("result.json", "report.html", "cells.h5ad"):
            assert (pdir / name).stat().st_size > 0
        assert list((pdir / "figures").glob("*.png"))
    prov = json.loads((example_run / "provenance.json").read_text())
    assert prov["seed"] == 0
    assert "scanpy" in prov["versions"]
    assert set(prov["patients"]) == set(summary["patient"])
    assert "stage 'classify' finished" in (example_run / "run.log").read_text()


def test_rerun_resumes_and_gives_identical_results(example_run: Path, repo: Path):
    before = {p: (example_run / p / "result.json").read_bytes() for p in _truth(repo)}
    start = time.time()
    proc = _cli(
        "run",
        str(repo / "configs" / "example.yaml"),
        "--outdir",
        str(example_run),
        "--patient",
        "P1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming after stage 'classify'" in (example_run / "run.log").read_text()
    assert (example_run / "P1" / "result.json").read_bytes() == before["P1"]
    assert time.time() - start < 60


def test_validate_lists_every_problem(tmp_path: Path):
    sheet = tmp_path / "samples.csv"
    sheet.write_text(
        "patient,sample,timepoint,path\nP1,S1,baseline,missing.h5\nP1,S1,later,also_missing.h5\n"
    )
    config = tmp_path / "config.yaml"
    config.write_text("antigen: CD7\nsamples: samples.csv\nunknown_key: 1\n")
    proc = _cli("validate", str(config))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    for needle in ("unknown_key", "missing.h5", "later", "S1"):
        assert needle in proc.stderr, needle


def test_run_bad_config_exits_2_without_output(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text("samples: [\n")
    proc = _cli("run", str(config), "--outdir", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert str(config) in proc.stderr
    assert not (tmp_path / "out").exists()


def test_simulate_writes_a_runnable_sample_sheet(tmp_path: Path):
    proc = _cli(
        "simulate",
        str(tmp_path / "sim"),
        "--mechanism",
        "antigen_retained",
        "--n-cells",
        "300",
        "--seed",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    sheet = pd.read_csv(tmp_path / "sim" / "samples.csv")
    assert set(sheet["timepoint"]) == {"baseline", "relapse"}
    config = tmp_path / "sim" / "config.yaml"
    config.write_text("antigen: CD7\ncar_feature: CAR_CD7\nsamples: samples.csv\n")
    assert _cli("validate", str(config)).returncode == 0


def test_simulate_unknown_mechanism_exits_2(tmp_path: Path):
    proc = _cli("simulate", str(tmp_path / "sim"), "--mechanism", "nonsense")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
