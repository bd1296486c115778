"""result.json's per-sample numbers (tl.sample_burden) and the report's timeline: the schema, the one number
per quantity (result.json = uns table), figures/sample_timeline.png in report.html."""

from __future__ import annotations

import json

import pytest

import cd7escape as ce
from cd7escape.report import write_patient
from cd7escape.report._result import result_schema


@pytest.fixture(scope="module")
def written(simulated_patients, config, tmp_path_factory):
    adata = simulated_patients.copy("preexisting_700", malignant=True, cell_class=True)
    ce.tl.antigen_state(adata, "CD7", groupby="sample")
    # no tl.sample_burden: write_patient computes it from the recorded antigen model
    out = tmp_path_factory.mktemp("samples") / "P"
    write_patient(adata, out, config=config)
    return adata, out


def test_samples_in_result_json_follow_the_schema(written):
    jsonschema = pytest.importorskip("jsonschema")
    adata, out = written
    result = json.loads((out / "result.json").read_text())
    rows = result["samples"]
    assert [r["timepoint"] for r in rows] == ["baseline", "relapse"]
    validator = jsonschema.Draft202012Validator(result_schema())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(result)]
    assert errors == []
    broken = {**result, "samples": [{**rows[0], "malignant_share": 1.5}]}
    assert any("samples" in str(e.absolute_path) for e in validator.iter_errors(broken))
    # one number per quantity: the file holds the recorded table's values
    table = ce._uns.table(adata, "burden", "table")
    for row, rec in zip(rows, table.itertuples(), strict=True):
        assert row["malignant_share"] == pytest.approx(rec.malignant_share, abs=1e-6)
        assert row["normal_t_negative_fraction"] == pytest.approx(
            rec.normal_t_negative_fraction, abs=1e-6
        )
        assert row["donor_chimerism"] is None
        assert "no donor assignment" in row["donor_reason"]
    assert rows[0]["car_t_share"] == 0
    assert rows[1]["car_t_share"] > 0


def test_report_shows_the_timeline(written):
    _, out = written
    assert (out / "figures" / "sample_timeline.png").stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert 'alt="sample_timeline"' in html
    assert "Per sample, in time order" in html
    assert "-negative normal T (model, 95% CI)" in html
