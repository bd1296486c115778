"""scVI integration: the missing extra is a bad config; scArches query mapping of the relapse onto the baseline.

A small simulated patient (2 x 600 cells, 3 epochs on the CPU, one torch thread): the latent space, what was
recorded, the fallback to a joint model for a patient with one timepoint, and ``tl.subclones`` running on it.
The validation tests hide the extra by patching ``importlib.util.find_spec`` (no torch import at validation).
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import subprocess
import sys

import numpy as np
import pytest

import cd7escape as ce
from cd7escape._config import EmbedParams
from cd7escape._errors import InputError

pytest.importorskip("scvi")

EPOCHS = 3
N_LATENT = 8


@pytest.fixture
def no_scvi_extra(monkeypatch):
    """``find_spec`` answers None for scvi and torch, as when the extra is not installed."""
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name.split(".")[0] in ("scvi", "torch"):
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.fixture
def scvi_config(tmp_path, repo):
    sheet = repo / "data" / "test_h5ad" / "samples.csv"
    config = tmp_path / "scvi.yaml"
    config.write_text(f"antigen: CD7\nsamples: {sheet}\noutdir: out\nintegration: scvi\n")
    return config


def test_validate_reports_missing_scvi_extra(scvi_config, no_scvi_extra):
    from cd7escape.io import validate_config

    config, problems = validate_config(scvi_config)
    assert config is None
    (problem,) = [p for p in problems if p.field == "integration"]
    assert problem.file == str(scvi_config)
    assert "pip install 'cd7escape[scvi]'" in problem.message


def test_validate_cli_exits_2_and_run_writes_nothing(
    scvi_config, no_scvi_extra, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from cd7escape._logging import logger
    from cd7escape.cli import app
    from cd7escape.pipeline import run_config

    # the command adds a console handler to the package logger: keep it to this test
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))
    monkeypatch.setattr(logger, "level", logger.level)
    result = CliRunner().invoke(app, ["validate", str(scvi_config)])
    assert result.exit_code == 2
    text = result.output + (result.stderr if hasattr(result, "stderr") else "")
    assert "field=integration" in text
    assert str(scvi_config) in text
    assert "pip install 'cd7escape[scvi]'" in text
    out = tmp_path / "run_out"
    with pytest.raises(InputError, match="cd7escape\\[scvi\\]"):
        run_config(scvi_config, outdir=out, progress=False)
    assert not out.exists()


def test_validate_with_scvi_installed_is_valid_and_imports_no_torch(scvi_config):
    code = (
        "import sys\nfrom cd7escape.io import validate_config\n"
        f"config, problems = validate_config({str(scvi_config)!r})\n"
        "assert not problems, problems\n"
        "assert 'torch' not in sys.modules and 'scvi' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_embed_without_the_extra_is_an_input_error(simulated, no_scvi_extra):
    adata = simulated("antigen_retained")
    with pytest.raises(InputError, match="cd7escape\\[scvi\\]"):
        ce.pp.embed(adata, integration="scvi", umap=False)


def test_scvi_mode_default_matches_config():
    default = inspect.signature(ce.pp.embed).parameters["scvi_mode"].default
    assert default == EmbedParams().scvi_mode == "query"


@pytest.fixture(scope="module")
def scvi_patient():
    """2 x 600 cells; subclone S2 is (almost) only at relapse; query-mapped scVI, then subclones on it."""
    import scvi
    import torch

    torch.set_num_threads(1)
    scvi.settings.num_threads = 1
    adata = ce.datasets.simulate_patient(
        "preexisting_negative_clone", seed=3, n_cells=600, negative_fraction=0.004
    )
    ce.pp.embed(
        adata,
        integration="scvi",
        scvi_max_epochs=EPOCHS,
        scvi_n_latent=N_LATENT,
        n_top_genes=500,
        exclude=("CAR_CD7",),
        umap=False,
    )
    adata.obs["malignant"] = adata.obs["truth_malignant"].to_numpy(dtype=bool)
    ce.tl.subclones(adata)
    return adata


def test_query_mapping_writes_the_latent_and_records_it(scvi_patient):
    adata = scvi_patient
    z = adata.obsm["X_scvi"]
    assert z.shape == (adata.n_obs, N_LATENT)
    assert np.isfinite(z).all()
    entry = adata.uns["cd7escape"]["embed"]
    assert entry["use_rep"] == "X_scvi"
    assert entry["params"]["scvi_mode"] == "query"
    info = entry["scvi"]
    assert info["mode"] == "query"
    assert list(info["reference_samples"]) == ["P1_baseline"]
    assert list(info["query_samples"]) == ["P1_relapse"]
    assert 1 <= info["epochs_reference"] <= EPOCHS
    assert 1 <= info["epochs_query"] <= EPOCHS
    assert adata.uns["neighbors"]["params"]["use_rep"] == "X_scvi"
    assert adata.obs["leiden"].nunique() > 1


def test_relapse_normal_cells_land_among_baseline_cells(scvi_patient):
    """The query is mapped into the reference's space (not a space of its own): its normal cells have
    baseline neighbours."""
    adata = scvi_patient
    base = (adata.obs["timepoint"] == "baseline").to_numpy()
    z = adata.obsm["X_scvi"]
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=16).fit(z)
    rel_normal = np.flatnonzero(~base & ~adata.obs["truth_malignant"].to_numpy(dtype=bool))
    idx = nn.kneighbors(z[rel_normal], return_distance=False)[:, 1:]
    assert base[idx].mean() > 0.05


def test_subclones_run_in_the_scvi_space(scvi_patient):
    entry = scvi_patient.uns["cd7escape"]["subclones"]
    assert entry["space"] == "obsm['X_scvi']"
    mal = scvi_patient.obs["malignant"].to_numpy()
    assert scvi_patient.obs.loc[mal, "subclone"].notna().all()


def test_one_timepoint_falls_back_to_the_joint_model(simulated, caplog):
    adata = simulated("antigen_retained")
    adata = adata[(adata.obs["timepoint"] == "baseline").to_numpy()].copy()
    with caplog.at_level(logging.INFO, logger="cd7escape"):
        ce.pp.embed(
            adata, integration="scvi", scvi_max_epochs=2, scvi_n_latent=4, n_top_genes=300,
            umap=False,
        )  # fmt: skip
    info = adata.uns["cd7escape"]["embed"]["scvi"]
    assert info["mode"] == "joint"
    assert list(info["query_samples"]) == []
    assert adata.obsm["X_scvi"].shape == (adata.n_obs, 4)
    assert "falls back to a joint model" in caplog.text
