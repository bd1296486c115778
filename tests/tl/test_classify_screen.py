"""A patient with baseline samples only: the baseline screen of classify_relapse and of cd7escape run."""

from __future__ import annotations

import json

import pytest

import cd7escape as ce


def _baseline_only(mechanism: str, seed: int, **kw):
    adata = ce.datasets.simulate_patient(mechanism, seed=seed, n_cells=600, **kw)
    adata = adata[adata.obs["timepoint"] == "baseline"].copy()
    adata.obs["malignant"] = adata.obs["truth_malignant"].to_numpy()
    adata.obs["cell_class"] = adata.obs["truth_cell_type"].astype(str).replace({"": "other"})
    return adata


def test_screen_finds_the_negative_subclone():
    adata = _baseline_only("preexisting_negative_clone", 2, negative_fraction=0.15)
    call = ce.tl.classify_relapse(adata, n_bootstrap=5)
    assert call.mechanism == "indeterminate"
    assert call.numbers["rule"] == "baseline_screen"
    screen = call.numbers["screen"]
    truth = adata.obs["truth_antigen_negative"].to_numpy() & adata.obs["malignant"].to_numpy()
    subclone = adata.obs["subclone"].astype(str).to_numpy()
    # the subclone holding most of the truly negative blasts is reported, its negative share covered
    holder = max(set(subclone[truth]), key=lambda s: (truth & (subclone == s)).sum())
    found = {r["subclone"]: r for r in screen["negative_subclones"]}
    assert holder in found
    share = (truth & (subclone == holder)).sum() / (subclone == holder).sum()
    assert found[holder]["ci_low"] <= share <= found[holder]["ci_high"]
    assert found[holder]["ci_low"] > 0.05
    assert "baseline screen" in call.reason
    assert holder in call.reason


def test_screen_without_negative_subclone_gives_the_detection_limit():
    adata = _baseline_only("antigen_retained", 3)
    call = ce.tl.classify_relapse(adata, n_bootstrap=5)
    screen = call.numbers["screen"]
    assert screen["negative_subclones"] == []
    assert 0 < screen["detection_limit"] < 0.15
    assert screen["detection_limit"] == screen["ci_high"]
    assert f"{100 * screen['detection_limit']:.1f} %" in call.reason
    assert call.confidence == 1.0


def test_a_relapse_patient_has_no_screen(simulated):
    call = ce.tl.classify_relapse(
        simulated("antigen_retained", malignant=True, cell_class=True), n_bootstrap=0
    )
    assert call.numbers["screen"] is None


@pytest.mark.slow
def test_run_on_a_baseline_only_patient(tmp_path):
    """cd7escape run takes a patient with no relapse sample, says it is a screen, writes the screen."""
    from cd7escape.pipeline import run_config

    adata = ce.datasets.simulate_patient(
        "preexisting_negative_clone", seed=4, n_cells=500, negative_fraction=0.15
    )
    ce.datasets.write_simulated(adata, tmp_path / "data")
    sheet = (tmp_path / "data" / "samples.csv").read_text().splitlines()
    (tmp_path / "data" / "samples.csv").write_text(
        "\n".join(row for row in sheet if "relapse" not in row) + "\n"
    )
    (tmp_path / "config.yaml").write_text(
        "samples: data/samples.csv\noutdir: out\nclassify:\n  n_bootstrap: 4\n"
    )
    run_config(tmp_path / "config.yaml")
    result = json.loads((tmp_path / "out" / "P1" / "result.json").read_text())
    assert result["numbers"]["rule"] == "baseline_screen"
    assert result["screen"]["malignant_cells"] > 100
    assert result["timepoints"]["relapse"]["malignant_cells"] == 0
    assert "baseline screen" in (tmp_path / "out" / "run.log").read_text()
