"""Every option of the config reaches the stages that use it (no default objects stand in for it)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cd7escape._config import Config
from cd7escape._uns import NS
from cd7escape.pipeline._stages import STAGES

_BY_NAME = {stage.name: stage for stage in STAGES}


@pytest.fixture(scope="module")
def patient(simulated_patients):
    """A downregulation patient (fold 4, 2 x 500 cells) with the simulator's malignant calls."""
    return simulated_patients.copy("dim_downregulation", malignant=True, cell_class=True)


def _run(patient, **sections):
    """Antigen → clones → classify as the pipeline runs them, with ``sections`` changed in the config."""
    base = {"classify": {"n_bootstrap": 0}}
    for name, options in sections.items():
        base.setdefault(name, {}).update(options)
    config = Config(samples="unused.csv", **base)
    adata = patient.copy()
    for name in ("antigen", "clones", "classify"):
        _BY_NAME[name].run(adata, config)
    return adata.uns[NS]


@pytest.fixture(scope="module")
def default_run(patient):
    return _run(patient)


def _table(uns) -> np.ndarray:
    table = uns["subclones"]["table"]
    return table[["pi_baseline", "ci_high_baseline", "pi_relapse", "ci_high_relapse"]].to_numpy(
        float
    )


def _changed(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape != b.shape or not np.allclose(a, b, equal_nan=True)


@pytest.mark.parametrize(
    ("option", "value"),
    [("alpha", 0.2), ("min_cells", 60), ("dim_fold", 0.99)],
)
def test_antigen_model_options_reach_clones_and_classify(patient, default_run, option, value):
    uns = _run(patient, antigen_model={option: value})
    assert uns["antigen"]["params"][option] == value
    assert uns["subclones"]["params"]["antigen_model"][option] == value
    assert uns["classify"]["params"][option] == value
    if option == "dim_fold":
        # a subclone expressing below 0.99 of the baseline level, and not below 0.5 of it
        before, after = (u["subclones"]["table"]["state_relapse"] for u in (default_run, uns))
        assert not (before == "dim").any()
        assert (after == "dim").any()
    else:
        assert _changed(_table(default_run), _table(uns))


@pytest.mark.parametrize(
    ("option", "value"),
    [("theta_prior_median", 30.0), ("theta_prior_sd", 0.05), ("theta_cox_reid", False)],
)
def test_theta_options_give_the_theta_that_clones_and_classify_use(
    patient, default_run, option, value
):
    uns = _run(patient, antigen_model={option: value})
    theta = uns["antigen"]["theta"]
    assert theta != pytest.approx(default_run["antigen"]["theta"], rel=1e-6)
    # one theta and one ambient rate per patient: the antigen step's
    for step in ("subclones",):
        assert uns[step]["theta"] == theta
        assert uns[step]["ambient_rate"] == uns["antigen"]["ambient_rate"]
    numbers = uns["classify"]["numbers"]  # nested JSON is stored as text in uns
    assert json.loads(numbers)["theta"] == theta
    assert _changed(_table(default_run), _table(uns))


@pytest.mark.parametrize(("option", "value"), [("n_top_genes", 150), ("antigen_corr_max", 0.02)])
def test_embed_options_reach_the_subclone_space(patient, default_run, option, value):
    uns = _run(patient, embed={option: value})
    assert uns["subclones"]["params"][option] == value
    before = default_run["subclones"]
    if option == "antigen_corr_max":
        assert set(uns["subclones"]["excluded_genes"]) > set(before["excluded_genes"])
    else:
        assert (
            _changed(_table(default_run), _table(uns))
            or uns["subclones"]["table"].shape[0] != before["table"].shape[0]
        )


def test_min_cells_above_a_timepoint_gives_indeterminate(patient):
    uns = _run(patient, antigen_model={"min_cells": 10_000})
    assert uns["classify"]["mechanism"] == "indeterminate"
    assert "min_cells" in uns["classify"]["reason"]
