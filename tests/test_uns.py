"""``cd7escape._uns``: what a step records is read back the same, also after an h5ad round trip."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from cd7escape._uns import (
    NS,
    antigen_name,
    classify_entry,
    decode,
    finite_float,
    model_fraction,
    record,
    step,
    table,
)


def _adata(**uns) -> ad.AnnData:
    obs = pd.DataFrame(
        {
            "timepoint": ["baseline"] * 3 + ["relapse"] * 3,
            "sample": ["P_BL"] * 3 + ["P_REL"] * 3,
        },
        index=[f"c{i}" for i in range(6)],
    )
    a = ad.AnnData(np.zeros((6, 2), dtype=np.float32), obs=obs)
    a.uns[NS] = uns
    return a


def _groups(**extra) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sample": ["P_BL", "P_REL"],
            "pi": [0.1, 0.7],
            "ci_low": [0.05, 0.6],
            "ci_high": [0.2, 0.8],
        }
        | extra
    )


def test_record_then_step():
    a = _adata()
    record(a, "qc", {"min_counts": 300, "mt": None, "span": (1, 2)}, obs=["qc_pass"])
    entry = step(a, "qc")
    assert entry["params"] == {"min_counts": 300, "mt": "None", "span": [1, 2]}
    assert "version" in entry
    assert step(a, "embed") is None
    assert step(ad.AnnData(np.zeros((1, 1))), "qc") is None  # no uns['cd7escape'] at all


def test_step_reads_an_object_with_to_dict_and_ignores_other_values():
    class Call:
        def to_dict(self):
            return {"mechanism": "antigen_loss"}

    a = _adata(classify=Call(), broken=3)
    assert step(a, "classify") == {"mechanism": "antigen_loss"}
    assert step(a, "broken") is None


@pytest.mark.parametrize(
    ("stored", "read"),
    [
        ("None", None),
        (' {"a": [1, 2]}', {"a": [1, 2]}),
        ("[1, 2", "[1, 2"),  # not JSON: kept as text
        ("plain", "plain"),
        (np.array([1, 2]), [1, 2]),
        ({"x": "None", "y": np.array(["a"])}, {"x": None, "y": ["a"]}),
        (3.5, 3.5),
    ],
)
def test_decode(stored, read):
    assert decode(stored) == read


def test_classify_entry_survives_h5ad(tmp_path):
    timepoints = {"relapse": {"antigen_negative_fraction": 0.7, "ci_low": 0.6, "ci_high": 0.8}}
    a = _adata(classify={"mechanism": "antigen_loss", "timepoints": json.dumps(timepoints)})
    a.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    entry = classify_entry(back)
    assert entry["mechanism"] == "antigen_loss"
    assert entry["timepoints"] == timepoints
    assert classify_entry(_adata()) is None


def test_table_from_a_dataframe_or_decoded_records():
    df = _groups()
    a = _adata(antigen={"groups": df}, subclones={"table": json.dumps([{"subclone": "S0"}])})
    assert table(a, "antigen", "groups") is df
    assert table(a, "subclones", "table")["subclone"].tolist() == ["S0"]
    assert table(a, "antigen", "absent") is None
    assert table(a, "classify", "table") is None
    assert table(_adata(x={"t": "not a table"}), "x", "t") is None


def test_antigen_name_given_then_recorded_then_cd7():
    assert antigen_name(_adata(antigen={"params": {"antigen": "CD5"}}), "CD2") == "CD2"
    assert antigen_name(_adata(antigen={"params": {"antigen": "CD5"}}), None) == "CD5"
    assert antigen_name(_adata(embed={"params": {"antigen": "CD1A"}}), None) == "CD1A"
    assert antigen_name(_adata(), None) == "CD7"


def test_model_fraction_prefers_classify_then_antigen_groups():
    tps = {"relapse": {"antigen_negative_fraction": 0.72, "ci_low": 0.6, "ci_high": "nan"}}
    a = _adata(classify={"timepoints": json.dumps(tps)}, antigen={"groups": _groups()})
    assert model_fraction(a, "relapse") == {
        "pi": 0.72,
        "ci_low": 0.6,
        "ci_high": None,
        "source": "classify",
    }
    # baseline is not among classify's timepoints: the group of the timepoint's only sample
    assert model_fraction(a, "baseline") == {
        "pi": 0.1,
        "ci_low": 0.05,
        "ci_high": 0.2,
        "source": "antigen",
    }
    assert model_fraction(a, "other") is None


def test_model_fraction_by_timepoint_column_and_subclone():
    groups = pd.DataFrame(
        {
            "timepoint": ["relapse", "relapse"],
            "subclone": ["S0", "S1"],
            "pi": [0.1, np.nan],
            "ci_low": [0.0, 0.0],
            "ci_high": [0.2, 0.2],
        }
    )
    a = _adata(antigen={"groups": groups})
    assert model_fraction(a, "relapse", "S0")["source"] == "antigen"
    assert model_fraction(a, "relapse", "S1") is None  # pi NaN
    assert model_fraction(a, "relapse") is None  # groups split by subclone: no timepoint total


def test_model_fraction_of_a_subclone_from_the_subclone_table():
    sub = pd.DataFrame(
        {"pi_relapse": [0.05, 0.94], "ci_low_relapse": [0.0, 0.88], "ci_high_relapse": [0.1, 0.98]},
        index=pd.Index(["S0", "S1"], name="subclone"),
    )
    a = _adata(subclones={"table": sub})
    assert model_fraction(a, "relapse", "S1") == {
        "pi": 0.94,
        "ci_low": 0.88,
        "ci_high": 0.98,
        "source": "subclones",
    }
    assert model_fraction(a, "relapse", "S9") is None
    assert model_fraction(a, "baseline", "S1") is None


def test_model_fraction_needs_one_sample_per_timepoint():
    a = _adata(antigen={"groups": _groups()})
    a.obs["sample"] = ["P_BL", "P_BL2", "P_BL", "P_REL", "P_REL", "P_REL"]
    assert model_fraction(a, "baseline") is None
    assert model_fraction(a, "relapse")["pi"] == 0.7


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.5, 0.5),
        ("0.25", 0.25),
        (np.float32(2), 2.0),
        ("None", None),
        (None, None),
        (np.nan, None),
        (np.inf, None),
        ("x", None),
    ],
)
def test_finite_float(value, expected):
    assert finite_float(value) == expected
