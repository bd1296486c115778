from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

import cd7escape as ce
from cd7escape.pipeline import _umap_job
from cd7escape.pipeline._umap_job import UmapJob, prepare_umap, start_umap


@pytest.fixture(scope="module")
def embedded(simulated_patients):
    adata = simulated_patients.copy("antigen_downregulation")  # 2 x 400 cells
    ce.pp.embed(adata, antigen="CD7", n_top_genes=400, umap=False)
    return adata


def test_worker_layout_equals_in_process_layout(embedded):
    here = embedded.copy()
    ce.pp._embed.umap_layout(here, seed=4)
    there = embedded.copy()
    job = UmapJob(seed=4)
    job.submit(there)
    # attach aligns by cell name, whatever order the cells have now
    there = there[::-1].copy()
    job.attach(there)
    np.testing.assert_array_equal(there.obsm["X_umap"], here[::-1].obsm["X_umap"])
    assert there.uns["cd7escape"]["embed"]["params"]["umap"] is True


def test_failed_worker_falls_back_to_this_process(embedded):
    adata = embedded.copy()
    job = UmapJob(seed=4)
    job.submit(adata)

    class Dead:
        def result(self):
            raise RuntimeError("worker killed")

    job._future = Dead()
    job.attach(adata)
    assert adata.obsm["X_umap"].shape == (adata.n_obs, 2)


def test_start_umap_lays_out_here_below_the_worker_threshold(embedded, monkeypatch):
    from cd7escape._config import Config

    config = Config.model_validate({"samples": [{"sample": "b", "patient": "P", "timepoint": "baseline",
                                                 "path": "x.h5"}]})  # fmt: skip
    adata = embedded.copy()
    assert start_umap(adata, config) is None
    assert "X_umap" in adata.obsm
    assert start_umap(adata, config) is None  # already there: nothing to do
    config.embed.umap = False
    fresh = embedded.copy()
    assert start_umap(fresh, config) is None
    assert "X_umap" not in fresh.obsm
    config.embed.umap = True
    monkeypatch.setattr(_umap_job, "BACKGROUND_MIN_CELLS", 10)
    monkeypatch.setattr("cd7escape._parallel.available_cpus", lambda: 2)
    job = start_umap(fresh, config)
    assert isinstance(job, UmapJob)
    job.attach(fresh)
    assert "X_umap" in fresh.obsm


def test_graph_sent_from_embed_before_leiden_gives_the_same_layout(
    embedded, simulated, monkeypatch
):
    """The pipeline's worker gets ready during embed and receives the graph before Leiden runs."""
    from cd7escape._config import Config

    config = Config.model_validate({"samples": [{"sample": "b", "patient": "P", "timepoint": "baseline",
                                                 "path": "x.h5"}]})  # fmt: skip
    assert prepare_umap(embedded, config) is None  # 800 cells: not worth a worker
    monkeypatch.setattr(_umap_job, "BACKGROUND_MIN_CELLS", 10)
    monkeypatch.setattr("cd7escape._parallel.available_cpus", lambda: 2)
    fresh = simulated("antigen_downregulation")
    job = prepare_umap(fresh, config)
    seen = {}

    def graph_ready(adata):
        seen.update(graph="connectivities" in adata.obsp, leiden="leiden" in adata.obs)
        job.submit(adata)

    ce.pp.embed(fresh, antigen="CD7", n_top_genes=400, umap=False, seed=4, graph_ready=graph_ready)
    assert seen == {"graph": True, "leiden": False}
    job.attach(fresh)
    here = fresh.copy()
    del here.obsm["X_umap"]
    ce.pp._embed.umap_layout(here, seed=config.seed)  # the worker's seed is the run's
    np.testing.assert_array_equal(fresh.obsm["X_umap"], here.obsm["X_umap"])


def test_report_draws_the_other_figures_while_the_worker_lays_out(tmp_path, simulated, monkeypatch):
    """A run whose UMAP is still in its worker at the end: the report waits for it last, and the
    last stage's cache gets the layout, so a rerun resumes without laying it out again."""
    import json

    from cd7escape.pipeline import run_config
    from cd7escape.report import _patient

    adata = simulated("antigen_downregulation")  # 2 x 400 cells: the worker threshold is patched
    ce.datasets.write_simulated(adata, tmp_path / "sim")
    config = tmp_path / "sim" / "config.yaml"
    config.write_text("antigen: CD7\ncar_feature: CAR_CD7\nsamples: samples.csv\noutdir: out\n")
    monkeypatch.setattr(_umap_job, "BACKGROUND_MIN_CELLS", 10)
    monkeypatch.setattr("cd7escape._parallel.available_cpus", lambda: 2)
    monkeypatch.setattr(
        _umap_job.UmapJob, "done", lambda self: False
    )  # still running at every stage's end
    seen = {}
    write_patient = _patient.write_patient

    def spy(adata, pdir, **kw):
        attach = kw["umap"]

        def hook():
            seen["drawn first"] = sorted(p.stem for p in (pdir / "figures").glob("*.png"))
            attach()

        return write_patient(adata, pdir, **{**kw, "umap": hook})

    monkeypatch.setattr(_patient, "write_patient", spy)
    monkeypatch.setattr("cd7escape.report.write_patient", spy)
    [outcome] = run_config(config, progress=False)
    assert outcome.status == "done", outcome.error
    pdir = tmp_path / "sim" / "out" / outcome.patient
    assert "umap" not in seen["drawn first"]
    assert "antigen_distribution" in seen["drawn first"]
    assert (pdir / "figures" / "umap.png").stat().st_size > 0
    result = json.loads((pdir / "result.json").read_text())
    assert result["step_parameters"]["embed"]["umap"] is True
    [last] = sorted((pdir / "stages").glob("06-classify-*.h5ad"))
    assert "X_umap" in ad.read_h5ad(last).obsm

    monkeypatch.setattr(_patient, "write_patient", write_patient)
    monkeypatch.setattr("cd7escape.report.write_patient", write_patient)
    run_config(config, progress=False)
    log = (tmp_path / "sim" / "out" / "run.log").read_text()
    assert log.count("UMAP of") == 1  # the rerun found the layout in the cache
    assert json.loads((pdir / "result.json").read_text()) == result
