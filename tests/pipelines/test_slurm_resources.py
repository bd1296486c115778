"""Per-patient SLURM resources of ``pipelines/Snakefile``, seen in dry runs (no cluster needed).

Memory and runtime come from the number of cells of the patient's samples (read from the files' stored
shapes, so the count files here are HDF5 shells with a ``matrix/shape`` and nothing else), threads from
``patient_threads``; account and partition from ``--config`` or the environment; a GPU partition and GRES
for ``integration: scvi``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "pipelines" / "Snakefile"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
SNAKEMAKE = str(SNAKEMAKE) if SNAKEMAKE.exists() else shutil.which("snakemake")
#: patient -> cells of each of its two samples
CELLS = {"BIG": (120_000, 80_000), "SMALL": (1_200, 800)}
ENV_KEYS = (
    "CD7ESCAPE_SLURM_ACCOUNT",
    "CD7ESCAPE_SLURM_PARTITION",
    "SBATCH_ACCOUNT",
    "SBATCH_PARTITION",
    "CD7ESCAPE_GPU_PARTITION",
    "CD7ESCAPE_GPU_GRES",
)

pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")


def _shell_h5(path: Path, n_cells: int) -> None:
    """A 10x HDF5 that only says its shape: enough for sizing, never read as counts here."""
    with h5py.File(path, "w") as f:
        f.create_group("matrix").create_dataset("shape", data=np.array([100, n_cells]))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sizing")
    rows = ["patient,sample,timepoint,path"]
    for pid, cells in CELLS.items():
        for timepoint, n in zip(("baseline", "relapse"), cells, strict=True):
            _shell_h5(root / f"{pid}_{timepoint}.h5", n)
            rows.append(f"{pid},{pid}_{timepoint},{timepoint},{pid}_{timepoint}.h5")
    (root / "samples.csv").write_text("\n".join(rows) + "\n")
    for integration in ("pca", "scvi"):
        (root / f"{integration}.yaml").write_text(
            f"antigen: CD7\noutdir: results\nsamples: samples.csv\nintegration: {integration}\n"
        )
    return root


def _dry_run(
    cohort: Path,
    config: str,
    *extra: str,
    env: dict[str, str] | None = None,
    patients: tuple[str, ...] = tuple(CELLS),
) -> dict:
    """patient -> {'threads': int, resource: value} of a dry run's patient jobs."""
    environ = {k: v for k, v in os.environ.items() if k not in ENV_KEYS} | (env or {})
    proc = subprocess.run(
        [
            SNAKEMAKE,
            "-s",
            str(SNAKEFILE),
            "--cores",
            "8",
            "--dry-run",
            "--config",
            f"cd7config={cohort / config}",
            *extra,
        ],
        cwd=cohort,
        env=environ,
        capture_output=True,
        text=True,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    jobs = {}
    for block in text.split("rule patient:")[1:]:
        patient = re.search(r"wildcards: patient=(\S+)", block).group(1)
        threads = re.search(r"threads: (\d+)", block)
        resources = dict(
            re.findall(r"(\w+)=([^,\s]+)", re.search(r"resources: (.*)", block).group(1))
        )
        jobs[patient] = {"threads": int(threads.group(1)) if threads else 1, **resources}
    assert sorted(jobs) == sorted(patients), text[-3000:]
    assert ("rule cohort:" in text) == (set(patients) == set(CELLS)), text[-3000:]
    return jobs


def _expected_mem(cells: int, extra: int = 0) -> int:
    return math.ceil((1500 + 60 * cells / 1000 + extra) / 500) * 500


def test_memory_and_runtime_follow_cells(cohort):
    jobs = _dry_run(
        cohort,
        "pca.yaml",
        "patient_threads=4",
        "slurm_account=lab",
        env={"CD7ESCAPE_SLURM_PARTITION": "short", "SBATCH_PARTITION": "ignored"},
    )
    big, small = jobs["BIG"], jobs["SMALL"]
    # 200k cells: 13.5 GB (measured peak 11.2 GB, README Performance); 2k cells: 2 GB
    assert int(big["mem_mb"]) == _expected_mem(200_000) == 13_500
    assert int(small["mem_mb"]) == _expected_mem(2_000) == 2_000
    assert int(big["runtime"]) == 60
    assert int(small["runtime"]) == 21
    assert big["threads"] == small["threads"] == 4
    # --config beats the environment; CD7ESCAPE_* beats SBATCH_*
    assert big["slurm_account"] == small["slurm_account"] == "lab"
    assert big["slurm_partition"] == small["slurm_partition"] == "short"
    assert "gres" not in big


def test_nothing_set_leaves_account_and_partition_to_the_cluster(cohort):
    jobs = _dry_run(cohort, "pca.yaml", "patient_mem_mb=5000", "patient_runtime=30")
    for job in jobs.values():
        assert not {"slurm_account", "slurm_partition", "gres"} & set(job)
        assert int(job["mem_mb"]) == 5000
        assert int(job["runtime"]) == 30


def test_scvi_on_a_gpu_partition(cohort):
    jobs = _dry_run(
        cohort,
        "scvi.yaml",
        env={"SBATCH_ACCOUNT": "lab2", "SBATCH_PARTITION": "cpu", "CD7ESCAPE_GPU_PARTITION": "gpu"},
    )
    big = jobs["BIG"]
    assert big["slurm_partition"] == "gpu"
    assert big["gres"] == "gpu:1"
    assert big["slurm_account"] == "lab2"
    assert int(big["mem_mb"]) == _expected_mem(200_000, 2000)  # + torch and the model
    assert int(big["runtime"]) == 60  # on the GPU: no CPU-training factor


def test_scvi_on_cpus_gets_more_time(cohort):
    jobs = _dry_run(cohort, "scvi.yaml")
    assert int(jobs["BIG"]["runtime"]) == 180
    assert int(jobs["SMALL"]["runtime"]) == 62
    assert "gres" not in jobs["BIG"]


def test_rerun_one_patient_alone(cohort):
    """`--config patients=SMALL`: only that patient's job, no cohort summary (README: rerun a failed one)."""
    jobs = _dry_run(cohort, "pca.yaml", "patients=SMALL", patients=("SMALL",))
    assert int(jobs["SMALL"]["mem_mb"]) == 2000
