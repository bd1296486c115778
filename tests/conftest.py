from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cd7escape.datasets import MECHANISMS

if TYPE_CHECKING:
    from anndata import AnnData

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real validation data beside the repository; tests using it skip on a user's clone."""
    if not (SHARED_DATA / "carpall").is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def _run_example(config: Path, out: Path) -> Path:
    proc = subprocess.run(
        [sys.executable, "-m", "cd7escape.cli", "run", str(config), "--outdir", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def example_run(tmp_path_factory) -> Path:
    """The example cohort (configs/example.yaml) run once through the CLI; shared by every test module."""
    return _run_example(REPO / "configs" / "example.yaml", tmp_path_factory.mktemp("example"))


@pytest.fixture(scope="session")
def example_b_all_run(tmp_path_factory) -> Path:
    """The B-ALL example (configs/example_b_all.yaml, CD19) run once through the CLI."""
    return _run_example(
        REPO / "configs" / "example_b_all.yaml", tmp_path_factory.mktemp("example_b_all")
    )


# Simulated patients shared by the test modules: name -> (mechanism, simulate_patient options). Each is
# simulated at most once per session, when a test first asks for it; tests get copies (``simulated``).
SIMULATED: dict[str, tuple[str, dict]] = {
    # one small patient per mechanism: 2 x 400 cells at 2,000 UMIs, a 20 % negative subclone where one is
    **{
        m: (m, {"seed": 11, "n_cells": 400, "depth": 2000, "negative_fraction": 0.2})
        for m in MECHANISMS
    },
    # the main clone downregulates; a 15 % negative minor subclone exists at baseline and does not expand
    "decoy": (
        "antigen_downregulation",
        {
            "seed": 12,
            "n_cells": 400,
            "depth": 2000,
            "negative_fraction": 0.15,
            "decoy_negative_minor": True,
        },
    ),
    # dim downregulation: the relapse main clone at a quarter of its baseline antigen level, 2 x 500 cells
    "dim_downregulation": ("antigen_downregulation", {"seed": 5, "n_cells": 500, "fold": 4.0}),
    # CITE-seq proteins and empty droplets (raw matrices), 2 x 200 cells
    "protein_empties": (
        "preexisting_negative_clone",
        {
            "seed": 7,
            "n_cells": 200,
            "negative_fraction": 0.2,
            "protein": True,
            "empty_droplets": True,
        },
    ),
    # the classifier's size (tests/tl/test_classify.py): 2 x 700 cells, seed 3, a 15 % negative subclone
    "preexisting_700": (
        "preexisting_negative_clone",
        {"seed": 3, "n_cells": 700, "negative_fraction": 0.15},
    ),
}


class SimulatedPatients:
    """The session's simulated patients (``SIMULATED``), each simulated once, on first use.

    ``patients[name]`` is the shared object: read it, never change it. ``patients.copy(name)`` is a copy
    of one's own, optionally with the truth standing in for the malignant calls (``obs['malignant']``)
    and the cell classes (``obs['cell_class']``).
    """

    def __init__(self) -> None:
        self._cache: dict[str, AnnData] = {}

    def options(self, name: str) -> dict:
        """The ``simulate_patient`` options of ``name`` (the mechanism under ``'mechanism'``)."""
        mechanism, options = SIMULATED[name]
        return {"mechanism": mechanism, **options}

    def __getitem__(self, name: str) -> AnnData:
        if name not in self._cache:
            from cd7escape.datasets import simulate_patient

            mechanism, options = SIMULATED[name]
            self._cache[name] = simulate_patient(mechanism, **options)
        return self._cache[name]

    def copy(self, name: str, *, malignant: bool = False, cell_class: bool = False) -> AnnData:
        adata = self[name].copy()
        if malignant:
            adata.obs["malignant"] = adata.obs["truth_malignant"].to_numpy(dtype=bool)
        if cell_class:
            adata.obs["cell_class"] = adata.obs["truth_cell_type"].astype(str).to_numpy()
        return adata


@pytest.fixture(scope="session")
def simulated_patients() -> SimulatedPatients:
    """The shared simulated patients; module fixtures take ``simulated_patients.copy(name)``."""
    return SimulatedPatients()


@pytest.fixture
def simulated(simulated_patients) -> Callable[..., AnnData]:
    """A test's own copy of a shared simulated patient: ``simulated(name, malignant=..., cell_class=...)``."""
    return simulated_patients.copy


@pytest.fixture(scope="session")
def malignant_f1() -> Callable[[AnnData], float]:
    """F1 of ``obs['malignant']`` against a simulated patient's ``obs['truth_malignant']``."""

    def f1(adata: AnnData) -> float:
        truth = adata.obs["truth_malignant"].to_numpy(bool)
        called = adata.obs["malignant"].to_numpy(bool)
        return 2 * float((truth & called).sum()) / max(float(truth.sum() + called.sum()), 1.0)

    return f1
