"""The report's words for the screen, the per-sample calls and the protein findings (report/_narrative.py)."""

from __future__ import annotations

from cd7escape.report._narrative import caveats, paragraph

BASE = {
    "antigen": "CD7",
    "mechanism": "antigen_downregulation",
    "mechanism_called": True,
    "confidence": 0.9,
    "reason": "they lost CD7",
    "timepoints": {},
}


def test_per_relapse_sample_calls_are_named_with_their_tissue():
    result = dict(
        BASE,
        relapse_samples=[
            {"sample": "P1_relapse_BM", "tissue": "BM", "mechanism": "antigen_downregulation", "confidence": 1.0},
            {"sample": "P1_relapse_med", "tissue": "mediastinum", "mechanism": "indeterminate", "confidence": 0.5},
        ],
    )  # fmt: skip
    text = paragraph(result)
    assert "Per relapse sample: P1_relapse_BM (BM)" in text
    assert "P1_relapse_med (mediastinum)" in text


def test_screen_is_said_instead_of_an_undecided_relapse():
    result = dict(BASE, mechanism="indeterminate", screen={"malignant_cells": 300})
    text = paragraph(result)
    assert "baseline screen" in text
    assert "could not decide" not in text


def test_protein_finding_and_the_rna_only_caveat():
    finding = {"finding": "protein_lost_rna_kept", "text": "CD7 protein lost with RNA kept: …"}
    with_protein = dict(BASE, findings=[finding], antigen_measured_by="protein (CD7_TotalSeqC)")
    assert "CD7 protein lost with RNA kept" in paragraph(with_protein)
    assert not any("RNA only" in c for c in caveats(with_protein))
    assert any("RNA only" in c for c in caveats(dict(BASE, antigen_measured_by="RNA")))


def test_a_held_confidence_is_said_to_be_the_ceiling_not_the_replicates():
    held = dict(
        BASE,
        confidence=0.75,
        numbers={"confidence_ceiling": {"ceiling": 0.75, "bootstrap_agreement": 0.96}},
    )
    text, notes = paragraph(held), " ".join(caveats(held))
    assert "the ceiling of a loss that a hidden negative founder would mimic" in text
    assert "share of bootstrap replicates" not in text
    assert "held at 75" in notes
    assert "96" in notes
    # said once in the reason; the caveat names the limit and its size, without repeating the why
    assert "not dim" not in notes
    founders = dict(held, numbers={**held["numbers"], "trace": {"hidden_founder_cells": 44}})
    assert "founder below the detection limit (up to 44 cells)" in " ".join(caveats(founders))
    assert "resampling the cells changes the call" not in notes
    # the same confidence from the replicates themselves reads as their disagreement
    plain = dict(BASE, confidence=0.75)
    assert "share of bootstrap replicates giving the same call" in paragraph(plain)
    assert "resampling the cells changes the call" in " ".join(caveats(plain))
