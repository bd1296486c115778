"""CAR-transduced blasts: a CAR-positive cell with leukemic evidence is malignant, not a CAR-T cell."""

from __future__ import annotations

import numpy as np
import pytest

import cd7escape as ce
from cd7escape.report._findings import car_transduced_finding
from cd7escape.report._narrative import paragraph


@pytest.fixture(scope="module")
def transduced_patient():
    adata = ce.datasets.simulate_patient(
        "antigen_downregulation", seed=0, n_cells=400, car_transduced=0.2
    )
    ce.pp.embed(adata, umap=False, exclude=("CAR_CD7",), seed=0)
    ce.tl.call_malignant(adata, car_feature="CAR_CD7", seed=0)
    return adata


def test_transduced_blasts_are_malignant_and_marked(transduced_patient):
    obs = transduced_patient.obs
    truth = obs["truth_car_transduced"].to_numpy(bool)
    assert truth.sum() >= 30
    called = obs["malignant"].to_numpy(bool)
    flag = obs["car_transduced"].to_numpy(bool)
    assert called[truth].mean() >= 0.9
    # marked where the CAR is detected: those cells are malignant, not car_T
    detected = truth & obs["car_detected"].to_numpy(bool)
    assert detected.sum() >= 10
    assert flag[detected].mean() >= 0.9
    assert (obs["cell_class"].astype(str).to_numpy()[flag] == "malignant").all()
    # only blasts are marked
    assert obs["truth_malignant"].to_numpy(bool)[flag].all()


def test_car_t_cells_stay_car_t(transduced_patient):
    obs = transduced_patient.obs
    car_t = (obs["truth_cell_type"] == "car_T").to_numpy()
    assert car_t.sum() > 20
    assert obs["malignant"].to_numpy(bool)[car_t].mean() <= 0.01
    assert not obs["car_transduced"].to_numpy(bool)[car_t].any()
    assert (obs["cell_class"].astype(str).to_numpy()[car_t] == "car_T").mean() > 0.5


def test_counts_recorded_per_sample_and_finding(transduced_patient):
    entry = transduced_patient.uns["cd7escape"]["malignant"]["car_transduced"]
    flag = transduced_patient.obs["car_transduced"].to_numpy(bool)
    assert entry["n_cells"] == int(flag.sum()) > 0
    per = dict(
        zip(entry["per_sample"]["sample"], entry["per_sample"]["n_car_transduced"], strict=True)
    )
    assert per["P1_baseline"] == 0
    assert per["P1_relapse"] == int(flag.sum())
    found = car_transduced_finding(transduced_patient, "CD7")
    assert [f["finding"] for f in found] == ["car_transduced_blasts"]
    assert found[0]["per_timepoint"]["relapse"]["car_transduced"] == int(flag.sum())
    assert found[0]["per_sample"]["P1_baseline"]["car_transduced"] == 0
    text = paragraph({"antigen": "CD7", "mechanism": "antigen_retained", "findings": found})
    assert text.startswith("CAR-transduced blasts:")


def test_no_finding_without_transduced_cells(transduced_patient):
    adata = transduced_patient.copy()
    adata.obs["car_transduced"] = np.zeros(adata.n_obs, dtype=bool)
    assert car_transduced_finding(adata) == []


def test_stray_car_reads_in_a_few_blasts_are_not_transduction():
    """No CAR UMI among the background cells does not make the ambient rate zero: three blasts with one
    stray CAR read among 300 (the example's P4) are what ambient explains; forty are not."""
    from cd7escape.tl._malignant._call import _beyond_ambient
    from cd7escape.tl._malignant._car import ambient_positive_chance

    n_bg, n_mal = 150, 300
    total = np.full(n_bg + n_mal, 2000.0)
    background = np.r_[np.ones(n_bg, bool), np.zeros(n_mal, bool)]
    malignant = ~background
    samples = np.full(n_bg + n_mal, "S1", dtype=object)
    for k, expected in ((3, False), (40, True)):
        car = np.zeros(n_bg + n_mal)
        car[n_bg : n_bg + k] = 1.0
        chance = ambient_positive_chance(car, total, background, rate=0.0)
        flagged = _beyond_ambient(car > 0, malignant, samples, chance)
        assert bool(flagged.any()) == expected
    # without the ambient estimate only the fixed false-call rate stands: 3 of 300 pass
    plain = _beyond_ambient(np.r_[np.zeros(n_bg, bool), np.arange(n_mal) < 3], malignant, samples)
    assert plain.any()
