from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

import cd7escape as ce


@pytest.fixture
def patient(simulated):
    """A test's own copy of the shared antigen-retained patient (2 x 400 cells)."""
    return simulated("antigen_retained")


def test_qc_keeps_good_cells_and_records_thresholds(patient):
    adata = patient.copy()
    ce.pp.qc(adata, doublets=False)
    table = adata.uns["cd7escape"]["qc"]["samples"]
    assert set(table["status"]) == {"passed"}
    assert adata.n_obs > 0.9 * patient.n_obs
    assert adata.uns["cd7escape"]["qc"]["params"]["n_mads_counts"] == 5.0
    assert {"total_counts", "pct_counts_mt", "qc_pass"} <= set(adata.obs.columns)


def test_qc_removes_damaged_cells(patient):
    adata = patient
    counts = adata.layers["counts"].tolil()
    damaged = np.arange(0, 40)
    for i in damaged:  # near-empty droplets: keep a handful of UMIs
        row = counts.rows[i][:20]
        counts.rows[i], counts.data[i] = row, [1] * len(row)
    adata.layers["counts"] = sparse.csr_matrix(counts)
    names = adata.obs_names[damaged]
    ce.pp.qc(adata, doublets=False)
    assert not adata.obs_names.isin(names).any()


def test_failed_sample_is_reported_and_dropped(patient):
    adata = patient
    rng = np.random.default_rng(0)
    relapse = (adata.obs["timepoint"] == "relapse").to_numpy()
    counts = adata.layers["counts"].tocsr().astype(np.float32)
    # a failed library: thin the relapse sample to ~0.1 % of its UMIs (a median of a couple of UMIs)
    rows = sparse.diags(relapse.astype(np.float32)) @ counts
    thinned = rows.copy()
    thinned.data = rng.binomial(thinned.data.astype(np.int64), 0.001).astype(np.float32)
    adata.layers["counts"] = sparse.csr_matrix(counts - rows + thinned)
    ce.pp.qc(adata, doublets=False)
    table = adata.uns["cd7escape"]["qc"]["samples"].set_index("sample")
    failed = table.index[table["status"] == "failed"].tolist()
    assert failed == [s for s in table.index if s.endswith("relapse")]
    assert "cells pass QC" in table.loc[failed[0], "reason"]
    assert set(adata.obs["timepoint"]) == {"baseline"}


def test_real_failed_library_is_dropped(shared_data):
    from cd7escape._config import SampleSpec

    gex = shared_data / "carpall" / "gex"
    specs = [
        SampleSpec(patient="P06", sample=s, timepoint=t, path=str(gex / f"{s}.h5"))
        for s, t in (("CAR-T10593347", "baseline"), ("CAR-T10593344", "relapse"))
    ]
    adata = ce.io.read_patient(specs)
    ce.pp.qc(adata, doublets=False)
    table = adata.uns["cd7escape"]["qc"]["samples"].set_index("sample")
    assert table.loc["CAR-T10593347", "status"] == "failed"
    assert table.loc["CAR-T10593347", "cells_before"] == 5055
    assert table.loc["CAR-T10593344", "status"] == "passed"
    assert set(adata.obs["sample"]) == {"CAR-T10593344"}


def test_doublets_scored_in_parts_cover_every_cell(patient):
    """A sample larger than doublet_max_cells is scored in random parts; every passing cell gets a score."""
    whole, parts = patient, patient.copy()
    ce.pp.qc(whole, filter=False)
    ce.pp.qc(parts, filter=False, doublet_max_cells=150)
    assert parts.uns["cd7escape"]["qc"]["params"]["doublet_max_cells"] == 150
    passing = parts.obs["total_counts"].to_numpy() > 0
    assert np.isfinite(parts.obs["doublet_score"].to_numpy()[passing]).mean() > 0.9
    # the same cells are scored either way, and the scores agree in rank (same population, same method)
    both = np.isfinite(whole.obs["doublet_score"]) & np.isfinite(parts.obs["doublet_score"])
    assert both.sum() > 0.9 * passing.sum()
    rho = np.corrcoef(
        whole.obs["doublet_score"][both].rank(), parts.obs["doublet_score"][both].rank()
    )[0, 1]
    assert rho > 0.3


def test_doublet_parts_on_threads_score_as_one_thread(patient, monkeypatch):
    """Parts are scored on the available CPUs; each cell's score does not depend on how many there are."""
    got = {}
    for cpus in (1, 2):
        monkeypatch.setattr("cd7escape._parallel.available_cpus", lambda cpus=cpus: cpus)
        a = patient.copy()
        ce.pp.qc(a, filter=False, doublet_max_cells=120)
        got[cpus] = a.obs[["doublet_score", "predicted_doublet"]]
    assert got[1]["doublet_score"].notna().sum() > 300
    assert got[1].equals(got[2])


@pytest.mark.parametrize("with_x", [True, False])
def test_keep_cells_equals_anndata_subset(with_x):
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    from cd7escape.pp._qc import _keep_cells

    rng = np.random.default_rng(1)
    counts = sp.random(300, 40, density=0.2, format="csr", dtype=np.float32, random_state=1)
    obs = pd.DataFrame({"v": rng.random(300)}, index=[f"c{i}" for i in range(300)])
    var = pd.DataFrame(index=[f"g{j}" for j in range(40)])
    ours = ad.AnnData(X=counts.copy() if with_x else None, obs=obs, var=var)
    ours.layers["counts"] = counts.copy()
    ours.obsm["e"] = rng.random((300, 3))
    theirs = ours.copy()
    keep = rng.random(300) < 0.7
    _keep_cells(ours, keep)
    theirs._inplace_subset_obs(keep)
    assert ours.shape == theirs.shape == (int(keep.sum()), 40)
    assert (ours.layers["counts"] != theirs.layers["counts"]).nnz == 0
    assert (ours.X is None) == (not with_x)
    if with_x:
        assert (ours.X != theirs.X).nnz == 0
    pd.testing.assert_frame_equal(ours.obs, theirs.obs)
    np.testing.assert_array_equal(ours.obsm["e"], theirs.obsm["e"])
