"""The Snakemake cohort workflow: local profile end to end on two small simulated patients; SLURM profile parses
(run on a real single-node SLURM in test_slurm.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "pipelines" / "Snakefile"
PROFILES = REPO / "pipelines" / "profiles"

pytestmark = pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake not installed")


def _snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe) if exe.exists() else "snakemake", "-s", str(SNAKEFILE), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Two simulated patients (300 cells per sample) in one sample sheet, with a config."""
    from cd7escape.datasets import simulate_patient, write_simulated

    root = tmp_path_factory.mktemp("cohort")
    sheets = []
    for i, mechanism in enumerate(("antigen_downregulation", "preexisting_negative_clone")):
        pid = f"P{i + 1}"
        adata = simulate_patient(mechanism, seed=i, n_cells=300, patient=pid)
        write_simulated(adata, root / pid, fmt="h5")
        sheet = pd.read_csv(root / pid / "samples.csv")
        for col in ("path", "vdj"):
            sheet[col] = [f"{pid}/{p}" if isinstance(p, str) else p for p in sheet[col]]
        sheets.append(sheet)
    pd.concat(sheets).to_csv(root / "samples.csv", index=False)
    (root / "config.yaml").write_text(
        "antigen: CD7\ncar_feature: CAR_CD7\noutdir: results\nsamples: samples.csv\n"
        "integration: pca\nseed: 0\n"
    )
    return root


@pytest.mark.slow
def test_local_profile_runs_cohort(cohort):
    proc = _snakemake(
        "--profile",
        str(PROFILES / "local"),
        "--config",
        f"cd7config={cohort / 'config.yaml'}",
        cwd=cohort,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = cohort / "results"
    summary = pd.read_csv(out / "cohort_summary.tsv", sep="\t")
    assert sorted(summary["patient"]) == ["P1", "P2"]
    assert summary["mechanism"].notna().all()
    for pid in ("P1", "P2"):
        assert (out / pid / "result.json").exists()
        assert (out / pid / "report.html").exists()
        assert (out / "logs" / f"{pid}.log").exists()
    # nothing left to do: a second invocation is a no-op
    again = _snakemake(
        "--profile",
        str(PROFILES / "local"),
        "--config",
        f"cd7config={cohort / 'config.yaml'}",
        "--dry-run",
        cwd=cohort,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Nothing to be done" in again.stdout + again.stderr


def test_slurm_profile_is_valid(cohort, tmp_path):
    """Every option of the SLURM profile is accepted by snakemake (the executor plugin itself may be absent)."""
    profile = yaml.safe_load((PROFILES / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    # job states by squeue (clusters without accounting); account/partition from --config or the
    # environment, never placeholders in the profile (tests/pipelines/test_slurm*.py run it for real)
    assert profile["slurm-status-command"] == "squeue"
    for key in ("mem_mb", "runtime"):
        assert key in profile["default-resources"]
    assert not {"slurm_account", "slurm_partition"} & set(profile["default-resources"])
    # the same profile without the executor line must pass a dry run: the options and resources parse
    local = tmp_path / "slurm-like"
    local.mkdir()
    (local / "config.yaml").write_text(
        yaml.safe_dump({k: v for k, v in profile.items() if k != "executor"})
    )
    proc = _snakemake(
        "--profile",
        str(local),
        "--cores",
        "2",
        "--config",
        f"cd7config={cohort / 'config.yaml'}",
        "outdir=" + str(tmp_path / "dry"),
        "--dry-run",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = proc.stdout + proc.stderr
    # one patient job per patient, then the summary
    assert re.search(r"^patient\s+2$", text, re.M), text[-2000:]
    assert re.search(r"^cohort\s+1$", text, re.M), text[-2000:]
