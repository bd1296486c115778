"""The bad-input corpus through the real command line: exit 2, one message naming file and problem,
no traceback, no partial output. Plus the real failed library CAR-T10593347 (../shared/data)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from corpus import CASES, Case, build

CLI = [sys.executable, "-m", "cd7escape.cli"]
DRIVER = Path(__file__).with_name("driver.py")


def _jobs(case: Case) -> list[tuple[str, list[str]]]:
    jobs = [("validate", ["validate", str(case.config)])]
    if case.run_code is not None:
        args = case.extra_run_args or ("--outdir", str(case.outdir))
        jobs.append(("run", ["run", str(case.config), *args]))
    return jobs


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> tuple[dict[str, Case], dict[str, dict]]:
    """Every case written once and run through ``cd7escape.cli.main`` in one child process."""
    root = tmp_path_factory.mktemp("bad_inputs")
    cases = build(root)
    jobs = [
        {"id": f"{name}:{cmd}", "argv": argv}
        for name, case in cases.items()
        if case.skip is None
        for cmd, argv in _jobs(case)
    ]
    (root / "jobs.json").write_text(json.dumps(jobs))
    proc = subprocess.run(
        [sys.executable, str(DRIVER), str(root / "jobs.json"), str(root / "results.json")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cases, json.loads((root / "results.json").read_text())


def _has_results(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def test_corpus_is_large_enough():
    assert len(CASES) >= 90


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name: str, corpus):
    cases, results = corpus
    case = cases[name]
    if case.skip:
        pytest.skip(case.skip)
    for cmd, _ in _jobs(case):
        got = results[f"{name}:{cmd}"]
        output = got["stderr"] + got["stdout"]
        expected = case.code if cmd == "validate" else case.run_code
        assert got["code"] == expected, f"{cmd}: exit {got['code']}\n{output[-3000:]}"
        assert "Traceback" not in output, output[-3000:]
        needles = case.needles
        if cmd == "validate" and case.validate_needles is not None:
            needles = case.validate_needles
        for needle in needles:
            assert needle in output, f"{cmd}: {needle!r} not in\n{output[-3000:]}"
        if expected == 2:
            # one message: the final summary names the file (or field) and the problem once per problem
            assert output.count("cd7escape:") == 1, output
            if cmd == "run":
                assert not _has_results(case.outdir), sorted(case.outdir.iterdir())
    if name == "every_sample_fails_qc":
        result = json.loads((case.outdir / "P1" / "result.json").read_text())
        assert result["mechanism"] == "indeterminate"
        assert "passed QC" in result["reason"]
        assert "base" in result["reason"]
        assert {r["sample"]: r["status"] for r in result["qc"]} == {
            "base": "failed",
            "rel": "failed",
        }


@pytest.mark.parametrize("name", ["png_as_h5", "outdir_option_is_file"])
def test_same_outcome_as_separate_process(name: str, corpus, tmp_path: Path):
    """The in-process driver reports what ``python -m cd7escape.cli`` itself does."""
    _cases, results = corpus
    case = build(tmp_path, [name])[name]
    for cmd, argv in _jobs(case):
        proc = subprocess.run([*CLI, *argv], capture_output=True, text=True)
        assert proc.returncode == results[f"{name}:{cmd}"]["code"]
        assert "Traceback" not in proc.stderr
        for needle in case.needles if cmd == "run" or case.code == 2 else ():
            assert needle in proc.stderr


@pytest.mark.shared
@pytest.mark.slow
def test_real_failed_library(shared_data: Path, tmp_path: Path):
    """CAR-T10593347 (5,055 barcodes, median 2 UMIs, 0-byte VDJ file) is reported and dropped.

    Patient B has another baseline sample: it runs (exit 0) and names the failed sample with its reason.
    Patient A had no other baseline: 'indeterminate' with that reason, not a crash. Both exit 0.
    """
    carpall = shared_data / "carpall"
    failed, other, relapse = "CAR-T10593347", "CAR-T11816471", "CAR-T10593349"
    vdj = {failed: failed, other: "CAR-T11816479", relapse: relapse}

    def row(patient: str, sample: str, tp: str, lib: str) -> str:
        return f"{patient},{sample},{tp},{carpall}/gex/{lib}.h5,{carpall}/vdj/{vdj[lib]}.csv"

    rows = [
        row("A", "A_failed", "baseline", failed),
        row("A", "A_relapse", "relapse", relapse),
        row("B", "B_failed", "baseline", failed),
        row("B", "B_baseline", "baseline", other),
        row("B", "B_relapse", "relapse", relapse),
    ]
    (tmp_path / "samples.csv").write_text("patient,sample,timepoint,path,vdj\n" + "\n".join(rows))
    config = tmp_path / "config.yaml"
    config.write_text(
        "antigen: CD7\ncar_feature: CAT_scFv\nsamples: samples.csv\noutdir: out\n"
        # lighter steps: this test is about the failed library, not about the analysis
        "qc: {doublets: false}\nembed: {umap: false}\nmalignant: {cnv: false}\n"
        "classify: {n_bootstrap: 5}\n"
    )
    proc = subprocess.run([*CLI, "validate", str(config)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "VDJ file is empty" in proc.stderr
    assert f"{failed}.csv" in proc.stderr
    proc = subprocess.run([*CLI, "run", str(config)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    for patient in ("A", "B"):
        result = json.loads((tmp_path / "out" / patient / "result.json").read_text())
        qc = {r["sample"]: r for r in result["qc"]}
        assert qc[f"{patient}_failed"]["status"] == "failed"
        assert "median 2 UMIs" in qc[f"{patient}_failed"]["reason"]
        assert any("VDJ file is empty" in w for w in result["warnings"])
    a = json.loads((tmp_path / "out" / "A" / "result.json").read_text())
    assert a["mechanism"] == "indeterminate"
    assert "no baseline cells passed qc" in a["reason"].lower()
    assert "A_failed" in a["reason"]
    b = json.loads((tmp_path / "out" / "B" / "result.json").read_text())
    assert b["mechanism_called"]
    assert {r["sample"]: r["status"] for r in b["qc"]} == {
        "B_failed": "failed",
        "B_baseline": "passed",
        "B_relapse": "passed",
    }
    # these are sorted CAR-T cells: no blasts, so the call is 'indeterminate' and says why
    assert b["reason"]
    assert (tmp_path / "out" / "B" / "report.html").is_file()
