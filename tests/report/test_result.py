"""report/_result.py directly: what build_result reports for a real RelapseCall, its JSON types and NaN
handling, and the conversions of plain/dumps. (write_patient's file contract, byte identity and the
report without a classification are in test_patient.py.)"""

from __future__ import annotations

import json
import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import cd7escape as ce
from cd7escape._uns import NS, detection_limit
from cd7escape.report._result import DIGITS, TIMEPOINT_FIELDS, build_result, dumps, plain


def _expected(value):
    """The reference for what result.json holds: floats rounded to DIGITS, NaN and inf as None."""
    if isinstance(value, dict):
        return {str(k): _expected(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_expected(v) for v in value]
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, DIGITS) + 0.0
    return value


def _worded(tp: dict) -> dict:
    """A timepoint of the call as result.json words it: the detection limit in the one wording
    (cd7escape._uns.detection_limit, at the call's alpha 0.05) and the source of the numbers."""
    limit = detection_limit(
        tp["malignant_cells"], tp["antigen_negative_fraction"], tp["ci_low"], tp["ci_high"],
        tp["lrt_pvalue"], alpha=0.05,
    )  # fmt: skip
    return {**tp, "detection_limit": limit, "source": "classify"}


@pytest.fixture(scope="module")
def called():
    """A pre-existing negative clone, 2 x 250 cells, classified by tl.classify_relapse (10 replicates)
    on the simulator's malignant cells and subclones; the subclone table has a NaN fold."""
    adata = ce.datasets.simulate_patient(
        "preexisting_negative_clone", seed=2, n_cells=250, negative_fraction=0.2, fold=4.0
    )
    mal = adata.obs["truth_malignant"].to_numpy(dtype=bool)
    adata.obs["malignant"] = mal
    adata.obs["subclone"] = adata.obs["truth_subclone"].astype(str).where(mal).to_numpy()
    counts = pd.crosstab(adata.obs["subclone"], adata.obs["timepoint"])
    table = pd.DataFrame({"n_baseline": counts["baseline"], "n_relapse": counts["relapse"]})
    table["freq_baseline"] = table["n_baseline"] / table["n_baseline"].sum()
    table["freq_relapse"] = table["n_relapse"] / table["n_relapse"].sum()
    table["expansion_fold"] = table["freq_relapse"] / table["freq_baseline"]
    table.loc[table.index[1], "expansion_fold"] = np.nan
    table.index.name = "subclone"
    adata.uns[NS] = {"subclones": {"params": {"resolution": 0.5}, "table": table}}
    call = ce.tl.classify_relapse(adata, antigen="CD7", n_bootstrap=10, seed=0)
    return adata, call


@pytest.fixture(scope="module")
def result(called, config):
    return build_result(called[0], config=config, patient="P7")


def test_the_call_is_reported_as_classify_relapse_made_it(called, result):
    _, call = called
    assert result["patient"] == "P7"
    assert result["mechanism"] == call.mechanism == "preexisting_negative_clone"
    assert result["mechanism_called"] is True
    assert result["confidence"] == _expected(call.confidence)
    assert result["reason"] == call.reason
    assert result["evidence"] == call.evidence
    for tp in ("baseline", "relapse"):
        assert result["timepoints"][tp] == _worded(_expected(call.numbers["timepoints"][tp]))
    assert result["subclones"] == _expected(call.numbers["subclones"])
    assert result["numbers"] == _expected(
        {
            k: v
            for k, v in call.numbers.items()
            if k not in ("timepoints", "subclones", "findings", "relapse_samples", "screen")
        }
    )
    assert result["relapse_samples"] == _expected(call.numbers["relapse_samples"]) == []
    assert result["screen"] is call.numbers["screen"] is None
    assert result["findings"] == _expected(call.numbers["findings"])
    assert result["antigen_measured_by"] == call.numbers["measured_by"] == "RNA"
    assert result["missing"] == [
        "no per-sample QC table (pp.qc)",
        "no per-sample numbers (tl.sample_burden was not run)",
    ]


def test_the_numbers_equal_those_in_uns(called, result):
    adata, _ = called
    stored = adata.uns[NS]["classify"]  # nested values are JSON text in uns
    assert result["confidence"] == _expected(stored["confidence"])
    stored_tps = _expected(json.loads(stored["timepoints"]))
    assert result["timepoints"] == {tp: _worded(v) for tp, v in stored_tps.items()}
    numbers = json.loads(stored["numbers"])
    assert result["numbers"]["shares"] == _expected(numbers["shares"])
    assert (
        result["numbers"]["bootstrap"] == numbers["bootstrap"] == {"preexisting_negative_clone": 10}
    )
    assert result["step_parameters"]["classify"] == _expected(stored["params"])
    assert result["step_parameters"]["classify"]["n_bootstrap"] == 10
    groups = adata.uns[NS]["antigen"]["groups"]
    assert [g["group"] for g in result["antigen_groups"]] == list(groups.index)
    for row, (_, expected) in zip(result["antigen_groups"], groups.iterrows(), strict=True):
        assert row["pi"] == _expected(float(expected["pi"]))
        assert row["n_cells"] == int(expected["n_cells"])
    assert result["cells"] == {"total": 500, "by_timepoint": {"baseline": 250, "relapse": 250}}


def test_nan_in_a_table_becomes_null(called, result):
    _, call = called
    folds = [row["expansion_fold"] for row in result["subclones"]]
    assert folds[1] is None
    assert all(isinstance(f, float) for f in folds[:1] + folds[2:])
    assert call.numbers["subclones"][1]["expansion_fold"] is None  # the call says so too


def test_the_result_is_plain_json(result):
    def walk(value, where="result"):
        if isinstance(value, dict):
            for k, v in value.items():
                assert isinstance(k, str), where
                walk(v, f"{where}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{where}[{i}]")
        elif isinstance(value, float):
            assert math.isfinite(value), where
            assert round(value, DIGITS) == value, where
        else:
            assert value is None or isinstance(value, (str, bool, int)), (where, type(value))
            assert not isinstance(value, np.generic) or isinstance(value, np.str_), where

    walk(result)
    text = dumps(result)
    assert text.endswith("}\n")
    assert json.loads(text) == result
    assert text == json.dumps(result, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_same_result_after_h5ad_round_trip(called, result, config, tmp_path):
    adata, _ = called
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = build_result(ad.read_h5ad(tmp_path / "a.h5ad"), config=config, patient="P7")
    assert dumps(back) == dumps(result)


_DROP = object()


def _with_classify(adata, **changes):
    out = adata.copy()
    entry = dict(out.uns[NS]["classify"])
    for key, value in changes.items():
        if value is _DROP:
            del entry[key]
        else:
            entry[key] = value
    out.uns[NS]["classify"] = entry
    return out


def test_a_nan_confidence_and_a_missing_interval_are_null_and_named(called, config):
    adata, _ = called
    tps = json.loads(adata.uns[NS]["classify"]["timepoints"])
    tps["baseline"]["ci_low"] = None
    tps["relapse"]["antigen_negative_fraction"] = float("nan")
    changed = _with_classify(adata, confidence=np.float64("nan"), timepoints=json.dumps(tps))
    result = build_result(changed, config=config, patient="P7")
    assert result["confidence"] is None
    assert result["timepoints"]["baseline"]["ci_low"] is None
    # the classification reported the timepoint: its model numbers are not replaced by others
    assert result["timepoints"]["relapse"]["antigen_negative_fraction"] is None
    assert "timepoints.baseline.ci_low is not available" in result["missing"]
    assert "NaN" not in dumps(result)


def test_a_classification_without_a_mechanism_is_not_invented(called, config):
    adata, _ = called
    result = build_result(_with_classify(adata, mechanism=_DROP), config=config, patient="P7")
    assert result["mechanism"] == "indeterminate"
    assert result["mechanism_called"] is False
    assert "the classification has no 'mechanism'" in result["missing"]


def test_without_classification_the_cells_give_the_zero_fraction(called, config):
    """Read from the counts (checked here against the count matrix itself) and the antigen model."""
    adata, _ = called
    bare = adata.copy()
    del bare.uns[NS]["classify"]
    result = build_result(bare, config=config, patient="P7")
    y = np.asarray(bare[:, "CD7"].layers["counts"].todense()).ravel()
    groups = bare.uns[NS]["antigen"]["groups"]
    for tp in ("baseline", "relapse"):
        cells = bare.obs["malignant"].to_numpy(bool) & (bare.obs["timepoint"] == tp).to_numpy()
        entry = result["timepoints"][tp]
        assert set(entry) == {*TIMEPOINT_FIELDS, "lrt_pvalue", "detection_limit", "source"}
        assert entry["source"] == "antigen"  # tl.antigen_state's group of the timepoint's sample
        assert entry["malignant_cells"] == int(cells.sum())
        assert entry["zero_count_fraction"] == _expected(float(np.mean(y[cells] == 0)))
        [pi] = groups.loc[groups["sample"] == f"P1_{tp}", "pi"]
        assert entry["antigen_negative_fraction"] == _expected(float(pi))
    assert result["subclones"] == _expected(
        json.loads(bare.uns[NS]["subclones"]["table"].reset_index().to_json(orient="records"))
    )


# --- plain / dumps -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.float32(0.1), 0.1),
        (np.float64(1 / 3), 0.333333),
        (float("nan"), None),
        (np.float64("inf"), None),
        (-float("inf"), None),
        (-0.0, 0.0),
        (-1e-9, 0.0),
        (np.int64(7), 7),
        (np.bool_(True), True),
        ("None", None),  # how _uns.record stores None
        (pd.NA, None),
        (pd.NaT, None),
        ({3, 1, 2}, [1, 2, 3]),
        ((1, np.int32(2)), [1, 2]),
        (np.array([[1.0, np.nan], [0.5, 2.0]]), [[1.0, None], [0.5, 2.0]]),
        ({1: np.float64(0.25)}, {"1": 0.25}),
        (pd.Series({"a": 1, "b": np.nan}), {"a": 1.0, "b": None}),
    ],
)
def test_plain(value, expected):
    out = plain(value)
    assert out == expected
    assert type(out) is type(expected)


def test_plain_keeps_bools_apart_from_ints_and_reads_to_dict():
    assert plain(True) is True
    assert plain(np.bool_(False)) is False
    call = ce.tl.RelapseCall("mixed", np.float64(0.123456789), "r", ["e"], {"x": np.nan})
    out = plain(call)
    assert out["confidence"] == 0.123457
    assert out["numbers"] == {"x": None}
    assert plain(_Opaque()) == "opaque"


class _Opaque:
    def __str__(self) -> str:
        return "opaque"


def test_plain_tables_become_records():
    ranged = pd.DataFrame({"a": [1, 2], "b": [0.5, np.nan]})
    assert plain(ranged) == [{"a": 1, "b": 0.5}, {"a": 2, "b": None}]
    # an index written by h5ad as strings '0', '1' is still a range: no index column
    assert plain(ranged.set_axis(["0", "1"])) == plain(ranged)
    named = ranged.set_axis(pd.Index(["x", "y"], name="subclone"))
    assert plain(named) == [
        {"subclone": "x", "a": 1, "b": 0.5},
        {"subclone": "y", "a": 2, "b": None},
    ]
    assert [r["group"] for r in plain(ranged.set_axis(["x", "y"]))] == ["x", "y"]
    grouped = ranged.assign(group=["g", "h"]).set_axis(["x", "y"])
    assert [(r["index"], r["group"]) for r in plain(grouped)] == [("x", "g"), ("y", "h")]


def test_dumps_is_sorted_rounded_and_never_writes_nan():
    text = dumps({"b": np.float64(np.pi), "a": [np.nan, np.inf], "c": {"z": 1, "y": -0.0}})
    assert text == (
        '{\n  "a": [\n    null,\n    null\n  ],\n  "b": 3.141593,\n'
        '  "c": {\n    "y": 0.0,\n    "z": 1\n  }\n}\n'
    )
