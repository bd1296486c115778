"""classify_relapse with measured protein (CITE-seq): the protein decides, the RNA call stays beside it.

Small seeded patients with ADT counts: blasts that keep the antigen's RNA but lose its surface protein at
relapse (``protein_loss``) are an antigen loss by protein and ``antigen_retained`` by RNA; the finding
"protein lost with RNA kept" names them per sample. Without the loss, the protein call agrees with the RNA's.
"""

from __future__ import annotations

import numpy as np
import pytest

import cd7escape as ce
from cd7escape._errors import InputError

N_CELLS = 500


def _called(mechanism: str, *, seed: int, protein_loss: bool):
    adata = ce.datasets.simulate_patient(
        mechanism, seed=seed, n_cells=N_CELLS, protein=True, protein_loss=protein_loss
    )
    adata.obs["malignant"] = adata.obs["truth_malignant"].to_numpy()
    adata.obs["cell_class"] = adata.obs["truth_cell_type"].astype(str).replace({"": "other"})
    ce.tl.antigen_state(adata, "CD7", groupby="sample", antigen_protein="CD7")
    return adata, ce.tl.classify_relapse(adata, n_bootstrap=8)


@pytest.fixture(scope="module")
def lost():
    return _called("antigen_retained", seed=4, protein_loss=True)


def test_protein_loss_with_rna_kept_is_antigen_loss(lost):
    adata, call = lost
    assert adata.uns["truth"]["mechanism"] == "antigen_downregulation"
    assert call.mechanism == "antigen_downregulation", call.reason
    # the replicates agree; a protein-negative (not dim) relapse is held at the founder ceiling
    held = call.numbers["confidence_ceiling"]
    assert held["bootstrap_agreement"] >= 0.8
    assert call.confidence == held["ceiling"] < held["bootstrap_agreement"]
    assert call.numbers["measured_by"] == "protein (CD7_TotalSeqC)"
    assert call.numbers["rna_call"]["mechanism"] == "antigen_retained"
    assert "protein lost with RNA kept" in call.reason


def test_finding_counts_the_relapse_blasts(lost):
    adata, call = lost
    (finding,) = call.numbers["findings"]
    assert finding["finding"] == "protein_lost_rna_kept"
    per = finding["per_sample"]
    rel, base = per["P1_relapse"], per["P1_baseline"]
    truth_rel = int((adata.obs["truth_malignant"] & (adata.obs["timepoint"] == "relapse")).sum())
    assert rel["malignant_cells"] == truth_rel
    # most relapse blasts are RNA-positive and protein-negative; baseline blasts keep the protein
    assert rel["rna_present_protein_absent"] >= 0.7 * truth_rel
    assert base["rna_present_protein_absent"] <= 0.05 * base["malignant_cells"]


@pytest.mark.parametrize(
    ("mechanism", "seed"), [("antigen_retained", 5), ("preexisting_negative_clone", 6)]
)
def test_without_protein_loss_protein_and_rna_agree(mechanism, seed):
    _adata, call = _called(mechanism, seed=seed, protein_loss=False)
    assert call.mechanism == mechanism, call.reason
    assert call.numbers["rna_call"]["mechanism"] == mechanism
    assert call.numbers["findings"] == []


def test_protein_loss_needs_protein():
    with pytest.raises(InputError, match="protein_loss needs protein"):
        ce.datasets.simulate_patient("antigen_retained", n_cells=100, protein_loss=True)


def test_negative_posterior_with_adt_background():
    """With an NB background, a count well inside the background is negative, a foreground count is not."""
    from cd7escape.tl._antigen import negative_posterior

    x = np.array([2.0, 8.0, 150.0])
    p = negative_posterior(
        x, np.ones(3), pi=0.5, mu_ref=150.0, ambient=8.0, theta=4.0, null_theta=2.0
    )
    assert p[0] > 0.95
    assert p[1] > 0.9
    assert p[2] < 0.01
