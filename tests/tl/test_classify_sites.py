"""classify_relapse with two relapse sites: one call per relapse sample beside the patient's."""

from __future__ import annotations

import pytest

import cd7escape as ce
from cd7escape._errors import InputError


@pytest.fixture(scope="module")
def two_sites():
    adata = ce.datasets.simulate_patient(
        "preexisting_negative_clone",
        seed=2,
        n_cells=600,
        negative_fraction=0.15,
        relapse_sites=("BM", "mediastinum"),
    )
    adata.obs["malignant"] = adata.obs["truth_malignant"].to_numpy()
    adata.obs["cell_class"] = adata.obs["truth_cell_type"].astype(str).replace({"": "other"})
    return adata, ce.tl.classify_relapse(adata, n_bootstrap=8)


def test_simulator_deals_relapse_cells_to_sites(two_sites):
    adata, _ = two_sites
    rel = adata.obs[adata.obs["timepoint"] == "relapse"]
    assert set(rel["sample"].astype(str)) == {"P1_relapse_BM", "P1_relapse_mediastinum"}
    assert set(rel["tissue"].astype(str)) == {"BM", "mediastinum"}
    for sample, tissue in zip(rel["sample"].astype(str), rel["tissue"].astype(str), strict=True):
        assert sample == f"P1_relapse_{tissue}"
    contigs = adata.uns["vdj_contigs"]
    assert set(contigs["sample"]) <= set(adata.obs["sample"].astype(str))
    assert "P1_relapse" not in set(contigs["sample"])


def test_one_call_per_relapse_sample(two_sites):
    adata, call = two_sites
    per = call.numbers["relapse_samples"]
    assert [r["sample"] for r in per] == ["P1_relapse_BM", "P1_relapse_mediastinum"]
    assert [r["tissue"] for r in per] == ["BM", "mediastinum"]
    mal = adata.obs["malignant"].to_numpy()
    for r in per:
        assert r["malignant_cells"] == int((mal & (adata.obs["sample"] == r["sample"])).sum())
        assert r["mechanism"] == "preexisting_negative_clone", r["reason"]
        assert 0 <= r["confidence"] <= 1
    # the patient's call pools both samples' cells
    assert call.mechanism == "preexisting_negative_clone"
    assert call.numbers["timepoints"]["relapse"]["malignant_cells"] == sum(
        r["malignant_cells"] for r in per
    )


def test_per_sample_loss_is_held_below_the_founder_ceiling():
    # each site's downregulation of antigen-negative cells is held as the patient's is, and says so
    adata = ce.datasets.simulate_patient(
        "antigen_downregulation", seed=4, n_cells=600, relapse_sites=("BM", "CNS")
    )
    adata.obs["malignant"] = adata.obs["truth_malignant"].to_numpy()
    adata.obs["cell_class"] = adata.obs["truth_cell_type"].astype(str).replace({"": "other"})
    call = ce.tl.classify_relapse(adata, n_bootstrap=8, negative_loss_max_confidence=0.6)
    per = call.numbers["relapse_samples"]
    assert len(per) == 2
    losses = [r for r in per if r["mechanism"] == "antigen_downregulation"]
    assert losses, [r["reason"] for r in per]
    for r in losses:
        held = r["confidence_ceiling"]
        assert held is not None, r
        assert held["ceiling"] == 0.6
        assert r["confidence"] == 0.6 < held["bootstrap_agreement"]
        assert "confidence held at 0.60" in r["reason"]
    assert all(r["confidence_ceiling"] is None for r in per if r not in losses)


def test_one_relapse_sample_has_no_per_sample_calls(simulated):
    adata = simulated("antigen_retained", malignant=True, cell_class=True)
    call = ce.tl.classify_relapse(adata, n_bootstrap=0)
    assert call.numbers["relapse_samples"] == []


@pytest.mark.parametrize("sites", [(), ("BM", "BM"), "BM"])
def test_bad_relapse_sites(sites):
    with pytest.raises(InputError, match="relapse_sites"):
        ce.datasets.simulate_patient("antigen_retained", n_cells=100, relapse_sites=sites)
