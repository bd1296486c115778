"""When no cell is malignant, call_malignant says why and the pipeline ends the patient with that."""

from __future__ import annotations

import pytest

import cd7escape as ce
from cd7escape._config import Config
from cd7escape._errors import InputError
from cd7escape._uns import NS
from cd7escape.pipeline._stages import STAGES
from cd7escape.tl._malignant._none_found import none_found_reason


@pytest.fixture(scope="module")
def normal_cells(simulated_patients):
    """The normal cells of a simulated patient (TCR, CAR-T, NK, myeloid), embedded without the blasts."""
    adata = simulated_patients.copy("preexisting_negative_clone")
    adata = adata[~adata.obs["truth_malignant"].to_numpy(bool)].copy()
    ce.pp.embed(adata, umap=False)
    return adata


def test_no_blasts_are_found_and_the_reason_is_recorded(normal_cells):
    adata = normal_cells.copy()
    ce.tl.call_malignant(adata, car_feature="CAR_CD7")
    out = adata.uns[NS]["malignant"]
    assert out["n_malignant"] == 0
    assert out["blast_program_cells"] == 0
    assert out["none_found"].startswith("no malignant cell was found: ")
    assert "0 cells carry the blast program" in out["none_found"]


def test_the_pipeline_ends_the_patient_with_that_reason(normal_cells):
    adata = normal_cells.copy()
    stage = {s.name: s for s in STAGES}["malignant"]
    config = Config(samples="unused.csv", car_feature="CAR_CD7")
    with pytest.raises(InputError) as err:
        stage.run(adata, config)
    assert err.value.problems[0].message == adata.uns[NS]["malignant"]["none_found"]
    assert err.value.problems[0].field == "malignant"


def _why(results: dict) -> str:
    return none_found_reason(results, min_blast_cells=20, min_score=0.5, max_score=0.31)


def _results(**clone_copy_number) -> dict:
    """call_malignant's record for a patient whose three clonotypes were tested and none passed."""
    clones = {
        "clone_id": ["TRB:CASS1", "TRB:CASS2", "family:TRB:CASS1"],
        "n_cells": [109, 122, 238],
        "z": [-4.46, -3.79, 4.77],
        "log2_ratio": [-0.79, -0.54, 0.48],
        "chromosome": ["chr9", "chr15", "chr2"],
        "start": [19_053_140, 64_095_981, 137_964_472],
        "end": [37_592_639, 74_843_156, 191_014_250],
        "altered": [False, False, False],
    }
    test = {"clones": clones, "segments": {}, "leukemic": [], "reference_cells": 69}
    test.update(reference_car_t=51, reference_thin=True)
    test.update(clone_copy_number)
    return {"tcr_available": True, "clone_copy_number": test, "blast_program_cells": 3}


def test_the_reason_names_the_strongest_blocks_and_the_reference():
    why = _why(_results())
    assert "none of the 3 expanded clonotypes tested" in why
    assert "against 69 reference T cells, 51 of them CAR-T cells" in why
    # strongest first, each with its place, size and |z|
    first, second = (
        why.index("chr2 138.0–191.0 Mb"),
        why.index("chr9 19.1–37.6 Mb, log2 -0.79, |z| 4.5"),
    )
    assert first < second < why.index("chr15")
    assert (
        "3 cells carry the blast program (the leukemic copy-number profile is learnt from 20" in why
    )
    assert "malignant_labels" in why
    assert "a CD7 CAR depletes them" in why


def test_a_reference_of_polyclonal_t_cells_gets_no_thin_reference_remark():
    why = _why(_results(reference_thin=False, reference_car_t=0))
    assert "against 69 reference T cells (" in why
    assert "CAR-T" not in why


def test_a_change_seen_at_one_timepoint_is_named_as_such():
    results = _results()
    results["clone_copy_number"]["clones"]["altered"] = [True, False, False]
    why = _why(results)
    assert "clonotype(s) TRB:CASS1 carry a copy-number change" in why
    assert "seen at one timepoint only" in why


def test_without_tcr_or_reference_the_reason_says_what_is_missing():
    assert "no TCR data" in _why({"tcr_available": False})
    thin = {"tcr_available": True, "clone_copy_number": {"clones": {}, "reference_cells": 12}}
    assert "only 12 normal T cells" in _why(thin)


def test_labels_that_mark_no_cell_malignant_are_named():
    results = {"user_labels": {"labelled_cells": 800, "labelled_malignant": 0}, **_results()}
    why = _why(results)
    assert "malignant_labels mark none of the 800 labelled cells malignant" in why


def test_evidence_that_no_cell_turned_into_a_call_names_the_score():
    results = _results()
    results["leukemic_clonotypes"] = {"clone_id": ["TRB:CASS1"], "n_cells": [231]}
    why = _why(results)
    assert "the leukemic clonotype(s) TRB:CASS1 were found" in why
    assert (
        "no cell reached the malignancy score malignant.min_score = 0.5 (the highest was 0.310)"
        in why
    )
    # without a leukemic clonotype or blasts enough to learn from, the score is not what stopped it
    assert "malignant.min_score" not in _why(_results())


def test_a_leukemic_clonotype_is_named_even_where_no_clonotype_was_large_enough_to_test():
    results = {
        "tcr_available": True,
        "clone_copy_number": {"run": False},
        "blast_program_cells": 40,
    }
    results["leukemic_clonotypes"] = {"clone_id": ["TRB:CASS9"], "n_cells": [12]}
    why = _why(results)
    assert "the leukemic clonotype(s) TRB:CASS9 were found" in why
    assert "no clonotype of 20 or more cells" not in why


def test_nk_cells_joined_to_the_reference_are_named():
    why = _why(_results(reference_cells=137, reference_nk=68))
    assert "against 137 reference cells, 51 of them CAR-T cells and 68 NK cells (joined when" in why


def test_a_repeat_with_nk_cells_that_found_nothing_is_said():
    why = _why(_results(reference_nk_tried=40))
    assert "nor with the sample's 40 NK cells joining the reference" in why
    assert "nor with" not in _why(_results())
