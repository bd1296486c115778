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


# example_run, example_b_all_run: session fixtures of tests/conftest.py (one run of each example config,
# shared with other modules)


def _truth(repo: Path, sheet: str = "samples.csv", *, screens: bool = True) -> dict[str, str]:
    """Each patient of an example sheet and its true mechanism (data/test_h5ad/<patient>/truth/);
    ``screens=False`` leaves out the patients with baseline samples only (no relapse to call)."""
    rows = pd.read_csv(repo / "data" / "test_h5ad" / sheet)
    with_relapse = set(rows.loc[rows["timepoint"] == "relapse", "patient"])
    patients = [p for p in rows["patient"].unique() if screens or p in with_relapse]
    return {p: _truth_json(repo, p)["mechanism"] for p in patients}


def _truth_json(repo: Path, patient: str) -> dict:
    return json.loads(
        (repo / "data" / "test_h5ad" / patient / "truth" / f"{patient}.json").read_text()
    )


def _result(run: Path, patient: str) -> dict:
    return json.loads((run / patient / "result.json").read_text())


def test_example_calls_the_true_mechanism(example_run: Path, example_b_all_run: Path, repo: Path):
    """Every patient of both examples gets its true mechanism; a pre-existing clone with confidence ≥ 0.8."""
    cohorts = [
        (example_run, _truth(repo, screens=False)),
        (example_b_all_run, _truth(repo, "samples_b_all.csv")),
    ]
    assert sum(len(t) for _, t in cohorts) == 8
    for run, truth in cohorts:
        for patient, mechanism in truth.items():
            result = _result(run, patient)
            assert result["mechanism"] == mechanism, (patient, result["reason"])
            assert result["patient"] == patient
            if mechanism == "preexisting_negative_clone":
                assert result["confidence"] >= 0.8, (patient, result["confidence"])
            for tp in ("baseline", "relapse"):
                numbers = result["timepoints"][tp]
                assert (
                    numbers["ci_low"] <= numbers["antigen_negative_fraction"] <= numbers["ci_high"]
                )
                assert 0 <= numbers["zero_count_fraction"] <= 1


def test_example_car_transduced_blasts(example_run: Path, repo: Path):
    """P5: relapse blasts carrying CAR_CD7 are counted per sample and named at the top of the report."""
    cells = pd.read_csv(repo / "data" / "test_h5ad" / "P5" / "truth" / "P5_cells.csv.gz")
    truth = cells.groupby("sample")["truth_car_transduced"].sum()
    assert truth["P5_baseline"] == 0
    assert truth["P5_relapse"] >= 30
    result = _result(example_run, "P5")
    found = [f for f in result["findings"] if f["finding"] == "car_transduced_blasts"]
    assert len(found) == 1
    per_sample = found[0]["per_sample"]
    assert set(per_sample) == {"P5_baseline", "P5_relapse"}
    assert per_sample["P5_baseline"]["car_transduced"] == 0
    # a lower bound (CAR capture misses cells), yet most of the transduced blasts
    n = per_sample["P5_relapse"]["car_transduced"]
    assert 0.5 * truth["P5_relapse"] <= n <= truth["P5_relapse"] + 5
    assert n <= per_sample["P5_relapse"]["malignant_cells"]
    assert found[0]["n_cells"] == n
    html = (example_run / "P5" / "report.html").read_text()
    top = html.find("CAR-transduced blasts")
    assert 0 <= top < html.find("<h2"), "the finding is not at the top of the report"
    assert top < html.find("The relapse was classified")


def test_example_protein_lost_rna_kept(example_run: Path, repo: Path):
    """P6: CD7 protein lost with RNA kept, measured by protein; P1's CITE-seq decides too; the patients
    without ADT counts are measured by RNA, with a note in the log."""
    truth = _truth_json(repo, "P6")
    assert truth["rna_mechanism"] == "antigen_retained"
    result = _result(example_run, "P6")
    assert result["antigen_measured_by"].startswith("protein"), result["antigen_measured_by"]
    found = [f for f in result["findings"] if f["finding"] == "protein_lost_rna_kept"]
    assert len(found) == 1
    relapse = found[0]["per_sample"]["P6_relapse"]
    assert relapse["rna_present_protein_absent"] >= 0.5 * relapse["malignant_cells"]
    assert _result(example_run, "P1")["antigen_measured_by"].startswith("protein")
    without_adt = ["P2", "P3", "P4", "P5", "P8", "P9"]
    for patient in without_adt:
        r = _result(example_run, patient)
        assert r["antigen_measured_by"] == "RNA", patient
        assert not any(f["finding"] == "protein_lost_rna_kept" for f in r["findings"]), patient
    log = (example_run / "run.log").read_text()
    assert log.count("no ADT counts (obsm['protein'])") == len(without_adt)


def test_example_relapse_sites(example_run: Path, repo: Path):
    """P8: a marrow and a mediastinal-mass relapse sample, each with its own call and tissue."""
    result = _result(example_run, "P8")
    sites = {r["sample"]: r for r in result["relapse_samples"]}
    assert sorted(sites) == ["P8_relapse_BM", "P8_relapse_mediastinum"]
    assert sorted(r["tissue"] for r in sites.values()) == ["BM", "mediastinum"]
    truth = _truth_json(repo, "P8")["mechanism"]
    for r in sites.values():
        assert r["mechanism"] == truth, r
        assert r["malignant_cells"] > 50
    html = (example_run / "P8" / "report.html").read_text()
    assert "mediastinum" in html


def test_example_baseline_screen(example_run: Path, repo: Path):
    """P9 (baseline only, a 20 % CD7-negative subclone): a screen naming that subclone, its overall
    negative fraction's interval holding the truth; the few B, NK and erythroid cells of its 600 are not
    called malignant (too few for a copy-number reference of their own: they were once compared with
    myeloid cells and read as altered, making false negative 'subclones')."""
    result = _result(example_run, "P9")
    assert result["mechanism"] == "indeterminate"
    screen = result["screen"]
    assert screen is not None
    cells = pd.read_csv(repo / "data" / "test_h5ad" / "P9" / "truth" / "P9_cells.csv.gz")
    mal = cells[cells["truth_malignant"]]
    truth = float(mal["truth_antigen_negative"].mean())
    assert screen["ci_low"] <= truth <= screen["ci_high"], (truth, screen)
    negative = screen["negative_subclones"]
    assert len(negative) == 1, negative
    assert abs(negative[0]["share"] - truth) < 0.08
    summary = result["cells"]["by_cell_class"]
    assert summary.get("malignant", 0) <= 1.05 * len(mal)


def test_example_b_all(example_b_all_run: Path, repo: Path):
    """P7 (CD19 B-ALL, Cell Ranger multi with IG contigs in vdj_b): lineage B and its true mechanism."""
    truth = _truth_json(repo, "P7")
    assert truth["lineage"] == "B"
    vdj_b = list(
        (repo / "data" / "test_h5ad" / "P7").rglob("vdj_b/filtered_contig_annotations.csv")
    )
    assert len(vdj_b) == 2
    result = _result(example_b_all_run, "P7")
    assert result["lineage"] == "B"
    assert result["antigen"] == "CD19"
    assert result["mechanism"] == truth["mechanism"] != "antigen_retained"
    summary = pd.read_csv(example_b_all_run / "cohort_summary.tsv", sep="\t")
    assert summary["patient"].tolist() == ["P7"]


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
