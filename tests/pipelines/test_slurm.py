"""The cohort workflow through ``pipelines/profiles/slurm`` on a real single-node SLURM (Debian's packages).

The module fixture installs ``slurm-wlm`` and ``munge`` with apt-get when they are missing (root only),
starts munged, slurmctld and slurmd under a temporary folder (no accounting database: job states come from
``squeue``, as the profile says), and stops them at the end even when a test fails. Where SLURM cannot be
brought up (not root, no apt-get, the install or a daemon fails) the tests skip with the reason.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from _slurm_cluster import SlurmCluster, Unavailable, ensure_installed, start_cluster

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "pipelines" / "Snakefile"
PROFILE = REPO / "pipelines" / "profiles" / "slurm"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
SNAKEMAKE = str(SNAKEMAKE) if SNAKEMAKE.exists() else shutil.which("snakemake")
PATIENTS = {"P1": "antigen_downregulation", "P2": "preexisting_negative_clone"}
N_CELLS = 300  # per sample (baseline + relapse)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed"),
]


@pytest.fixture(scope="module")
def slurm() -> SlurmCluster:
    """A running one-node SLURM cluster (partition ``debug``), stopped after the module's tests."""
    pytest.importorskip(
        "snakemake_executor_plugin_slurm", reason="snakemake-executor-plugin-slurm not installed"
    )
    try:
        ensure_installed(install=os.environ.get("CD7ESCAPE_TEST_INSTALL_SLURM", "1") != "0")
        cluster = start_cluster()
    except Unavailable as err:
        pytest.skip(f"no single-node SLURM here: {str(err).splitlines()[0]}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Two simulated patients (2 x 300 cells each) with a config that keeps the run short."""
    from cd7escape.datasets import simulate_patient, write_simulated

    root = tmp_path_factory.mktemp("slurm_cohort")
    sheets = []
    for i, (pid, mechanism) in enumerate(PATIENTS.items()):
        adata = simulate_patient(mechanism, seed=i, n_cells=N_CELLS, patient=pid)
        write_simulated(adata, root / pid, fmt="h5")
        sheet = pd.read_csv(root / pid / "samples.csv")
        for col in ("path", "vdj"):
            sheet[col] = [f"{pid}/{p}" if isinstance(p, str) else p for p in sheet[col]]
        sheets.append(sheet)
    pd.concat(sheets).to_csv(root / "samples.csv", index=False)
    (root / "config.yaml").write_text(
        "antigen: CD7\ncar_feature: CAR_CD7\noutdir: results\nsamples: samples.csv\n"
        "integration: pca\nseed: 0\nclassify:\n  n_bootstrap: 5\n"
    )
    return root


def _scontrol_job(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    """``scontrol show job`` as key → value (finished jobs stay visible for MinJobAge seconds)."""
    out = cluster.run("scontrol", "show", "job", job_id).stdout
    return dict(re.findall(r"(\w[\w:/]*)=(\S*)", out))


def test_slurm_profile_runs_cohort(slurm, cohort, record_property):
    """The profile as shipped (squeue status, retries, resources from the Snakefile) on the cluster."""
    env = slurm.env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # account from the environment, partition from --config: neither is in the profile
    env["CD7ESCAPE_SLURM_ACCOUNT"] = "cd7lab"
    for key in ("CD7ESCAPE_SLURM_PARTITION", "SBATCH_ACCOUNT", "SBATCH_PARTITION"):
        env.pop(key, None)
    cmd = [
        SNAKEMAKE,
        "-s",
        str(SNAKEFILE),
        "--profile",
        str(PROFILE),
        "--config",
        f"cd7config={cohort / 'config.yaml'}",
        "slurm_partition=debug",
        "patient_threads=1",  # both patients at once on a 2-CPU node
        # test speed only: the first status check after 2 s instead of 40 s
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--latency-wait",
        "5",
    ]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=cohort, env=env, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"snakemake did not finish in 900 s\n{(err.stderr or '')[-3000:]}")
    wall = time.monotonic() - start
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{log[-5000:]}\n{slurm.logs()}"

    out = cohort / "results"
    summary = pd.read_csv(out / "cohort_summary.tsv", sep="\t")
    assert sorted(summary["patient"]) == sorted(PATIENTS)
    assert summary["mechanism"].notna().all()
    for pid in PATIENTS:
        result = json.loads((out / pid / "result.json").read_text())
        assert result["mechanism"], result
        assert (out / pid / "report.html").exists()
        assert (out / "logs" / f"{pid}.log").exists()

    # one SLURM job per patient (the summary is a local rule), with the resources sized from the data
    job_ids = re.findall(r"SLURM jobid (\d+)", log)
    assert len(set(job_ids)) == len(PATIENTS), log[-3000:]
    cells = 2 * N_CELLS
    expected_mem = math.ceil((1500 + 60 * cells / 1000) / 500) * 500
    expected_minutes = math.ceil(20 + 0.2 * cells / 1000)
    requested = {}
    for job_id in sorted(set(job_ids)):
        job = _scontrol_job(slurm, job_id)
        assert job.get("JobState") == "COMPLETED", job
        assert job.get("Partition") == "debug", job
        assert job.get("Account") == "cd7lab", job
        name = job.get("Comment") or job.get("JobName", "")
        requested[job_id] = {
            "name": name,
            "cpus": job.get("NumCPUs"),
            "account": job.get("Account"),
            "mem": job.get("MinMemoryNode"),
            "time_limit": job.get("TimeLimit"),
            "run_time": job.get("RunTime"),
        }
        assert job.get("NumCPUs") == "1", job
        assert job.get("MinMemoryNode") in (f"{expected_mem}M", f"{expected_mem // 1024}G"), job
        assert job.get("TimeLimit") == f"00:{expected_minutes:02d}:00", job
    record_property("wall_s", round(wall, 1))
    record_property("requested", requested)
    print(f"\nSLURM cohort: {wall:.1f} s; per patient job: {json.dumps(requested)}")


@pytest.mark.skipif(
    os.environ.get("CD7ESCAPE_SLURM_OOM_TEST") != "1",
    reason="opt-in (CD7ESCAPE_SLURM_OOM_TEST=1; ~80 s): an out-of-memory kill, then the retry with 2x memory",
)
def test_slurm_retry_after_out_of_memory(slurm, cohort):
    """P1 again (its stages cached by the test above) at 300 MB: SLURM kills it, the retry gets 600 MB."""
    if not (cohort / "results" / "P1" / "result.json").exists():
        pytest.skip("needs the cohort run of test_slurm_profile_runs_cohort (cached stages)")
    env = slurm.env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [
        SNAKEMAKE,
        "-s",
        str(SNAKEFILE),
        "--profile",
        str(PROFILE),
        "--config",
        f"cd7config={cohort / 'config.yaml'}",
        "slurm_partition=debug",
        "patients=P1",
        "patient_mem_mb=300",  # below snakemake + cd7escape's imports; 600 MB suffices for a resumed run
        "--forcerun",
        "patient",
        "--slurm-init-seconds-before-status-checks",
        "2",
    ]
    proc = subprocess.run(cmd, cwd=cohort, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{log[-5000:]}\n{slurm.logs()}"
    job_ids = sorted(set(re.findall(r"SLURM jobid (\d+)", log)), key=int)
    assert len(job_ids) == 2, log[-3000:]
    first, retry = (_scontrol_job(slurm, j) for j in job_ids)
    assert first["MinMemoryNode"] == "300M", first
    assert first["JobState"] in ("FAILED", "OUT_OF_MEMORY"), first
    slurm_log = "".join(
        p.read_text() for p in (cohort / ".snakemake" / "slurm_logs").rglob(f"{job_ids[0]}.log")
    )
    assert "exceeded memory limit" in slurm_log, slurm_log[-2000:]
    assert retry["MinMemoryNode"] == "600M", retry
    assert retry["JobState"] == "COMPLETED", retry
    assert retry["TimeLimit"] == "00:42:00", retry  # 2 x 21 min
