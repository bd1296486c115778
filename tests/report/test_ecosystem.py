"""The outputs other tools read: cells.h5ad in scirpy (AIRR layout) and cellxgene, result.json against
its published JSON Schema, cohort_summary.tsv against its documentation.

cellxgene itself is not installed (it pins old anndata/Flask and needs a browser); ``cellxgene_problems``
checks what its documentation asks of an h5ad (chanzuckerberg/cellxgene-documentation,
desktop/data-reqs.md: matrix in X, an ``X_``-prefixed embedding in obsm, unique obs and var index) and
what its AnnData adaptor checks on loading (server/data_anndata/anndata_adaptor.py and
common/utils/type_conversion_utils.py: unique column names; annotation dtypes bool, int, float, object
strings or categorical; a layout is an ndarray of ints or floats, n_obs x >= 2, no infinity, not all NaN).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

import cd7escape as ce
from cd7escape.report._cells_file import AIRR_FIELDS, airr_chains, scverse_layout
from cd7escape.report._cohort import COLUMNS
from cd7escape.report._result import RESULT_SCHEMA, result_schema

REPO = Path(__file__).resolve().parents[2]


def cellxgene_problems(adata: ad.AnnData) -> list[str]:
    """What cellxgene (desktop) would refuse or ignore in ``adata``; empty when it opens as intended."""
    problems = []
    if adata.X is None:
        problems.append("no matrix in X")
    for axis in ("obs", "var"):
        frame = getattr(adata, axis)
        if not frame.index.is_unique:
            problems.append(f"{axis} index not unique")
        if not all(isinstance(i, str) for i in frame.index):
            problems.append(f"{axis} index not strings")
        if not frame.columns.is_unique:
            problems.append(f"{axis} column names not unique")
        for name, col in frame.items():
            dtype = col.dtype
            if isinstance(dtype, pd.CategoricalDtype):
                cats = dtype.categories
                if not (cats.dtype.kind in "biuf" or all(isinstance(c, str) for c in cats)):
                    problems.append(f"{axis}['{name}']: categories of mixed types")
            elif isinstance(dtype, np.dtype) and dtype.kind in "biuf":
                pass
            elif isinstance(dtype, np.dtype) and dtype.kind == "O":
                present = col[col.notna()]
                if not all(isinstance(v, str) for v in present):
                    problems.append(f"{axis}['{name}']: object column with non-string values")
                if col.isna().any():
                    problems.append(f"{axis}['{name}']: object column with missing values")
            else:
                problems.append(f"{axis}['{name}']: unsupported dtype {dtype}")
    layouts = [k for k in adata.obsm if k.startswith("X_")]
    valid = []
    for key in layouts:
        arr = adata.obsm[key]
        if (
            type(arr) is np.ndarray
            and arr.dtype.kind in "fiu"
            and arr.ndim == 2
            and arr.shape[0] == adata.n_obs
            and arr.shape[1] >= 2
            and not np.isinf(arr).any()
            and not np.isnan(arr).all()
        ):
            valid.append(key)
    if not valid:
        problems.append("no valid X_ layout in obsm")
    return problems


# --- a small real run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A 2 x 300-cell patient with VDJ, run through every real stage by ``cd7escape run``'s library call."""
    from cd7escape.pipeline import run_config

    folder = tmp_path_factory.mktemp("ecosystem")
    adata = ce.datasets.simulate_patient(
        "preexisting_negative_clone", seed=4, n_cells=300, negative_fraction=0.2
    )
    ce.datasets.write_simulated(adata, folder / "data")
    config = folder / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "antigen": "CD7",
                "car_feature": "CAR_CD7",
                "samples": str(folder / "data" / "samples.csv"),
                "outdir": "out",
                "qc": {"doublets": False},
                "malignant": {"cnv": False},
                "classify": {"n_bootstrap": 4},
            }
        )
    )
    [outcome] = run_config(config, progress=False)
    assert outcome.status == "done", outcome.error
    return folder / "out"


@pytest.fixture(scope="module")
def cells(small_run) -> ad.AnnData:
    return ad.read_h5ad(small_run / "P1" / "cells.h5ad")


# --- scirpy ----------------------------------------------------------------------------------------


def test_cells_h5ad_carries_the_clonotypes_in_scirpys_airr_layout(cells):
    import awkward as ak

    airr = cells.obsm["airr"]
    assert isinstance(airr, ak.Array)
    assert len(airr) == cells.n_obs
    assert set(AIRR_FIELDS) <= set(airr.fields)
    # one chain per locus that defines clone_id, its junction the clone_id's nucleotides
    n_chains = ak.num(airr, axis=1).to_numpy()
    clone = cells.obs["clone_id"].astype(object)
    expected = clone.map(lambda c: 0 if not isinstance(c, str) else len(c.split(";"))).to_numpy()
    np.testing.assert_array_equal(n_chains, expected)
    assert expected.sum() > 0


def test_the_airr_fields_are_the_schemas_required_ones():
    airr = pytest.importorskip("airr")
    required = set(airr.schema.RearrangementSchema.required)
    assert required <= set(AIRR_FIELDS)


def test_scirpy_reads_the_chains_and_finds_the_same_clonotypes(cells):
    ir = pytest.importorskip("scirpy")
    adata = cells.copy()
    ir.pp.index_chains(adata)
    ir.tl.chain_qc(adata)
    has = adata.obs["clone_id"].notna().to_numpy()
    assert (adata.obs["receptor_type"].astype(str).to_numpy()[has] == "TCR").all()
    assert (adata.obs["receptor_type"].astype(str).to_numpy()[~has] == "no IR").all()
    pairs = adata.obs["chain_pairing"].astype(str)
    both = (adata.obs["receptor_chains"].astype(str) == "TRA+TRB").to_numpy()
    assert (pairs[both] == "single pair").all()
    # scirpy's nucleotide clonotypes (identity of VJ and VDJ junctions) group cells as clone_id does
    ir.pp.ir_dist(adata, sequence="nt")
    ir.tl.define_clonotypes(adata, key_added="ir_clone", receptor_arms="all")
    ours = adata.obs.loc[has, "clone_id"].astype(str)
    theirs = adata.obs.loc[has, "ir_clone"].astype(str)
    assert pd.crosstab(ours, theirs).astype(bool).sum(axis=1).max() == 1
    assert pd.crosstab(theirs, ours).astype(bool).sum(axis=1).max() == 1
    got = ir.get.airr(adata, ["junction_aa"], ["VDJ_1"])
    trb = adata.obs["trb_cdr3"].astype(object)
    sel = trb.notna().to_numpy()
    assert (got["VDJ_1_junction_aa"].to_numpy()[sel] == trb.to_numpy()[sel]).all()


def test_airr_chains_without_a_clone_column_value():
    obs = pd.DataFrame(
        {
            "clone_id": ["TRB:TGTGCC;TRA:TGTGCA", None, "TRB:TGTAAA"],
            "trb_cdr3": ["CA", None, "CK"],
            "tra_cdr3": ["CA", None, None],
        },
        index=["a", "b", "c"],
    )
    airr = airr_chains(obs)
    assert airr.to_list()[1] == []
    [b, a] = airr.to_list()[0]
    assert (b["locus"], b["junction"], b["junction_aa"]) == ("TRB", "TGTGCC", "CA")
    assert (a["locus"], a["junction"], a["junction_aa"]) == ("TRA", "TGTGCA", "CA")
    assert a["productive"] is True
    assert a["v_call"] is None
    assert airr.to_list()[2][0]["sequence_id"] == "c_TRB"


def test_airr_chains_of_b_cells():
    """Immunoglobulin clone ids give IGH and light-chain records (loci from the clone id)."""
    obs = pd.DataFrame(
        {
            "clone_id": ["IGH:TGTGCG;IGK:TGTCAG;IGL:TGTAGC", "IGL:TGTAGC"],
            "igh_cdr3": ["CA", None],
            "igk_cdr3": ["CQ", None],
            "igl_cdr3": ["CS", "CS"],
        },
        index=["a", "b"],
    )
    cells = airr_chains(obs).to_list()
    assert [c["locus"] for c in cells[0]] == ["IGH", "IGK", "IGL"]
    assert [c["junction_aa"] for c in cells[0]] == ["CA", "CQ", "CS"]
    assert [(c["locus"], c["junction"]) for c in cells[1]] == [("IGL", "TGTAGC")]


# --- cellxgene -------------------------------------------------------------------------------------


def test_cells_h5ad_meets_cellxgenes_requirements(cells):
    assert cellxgene_problems(cells) == []
    assert "X_umap" in cells.obsm
    assert cells.obsm["X_umap"].shape == (cells.n_obs, 2)
    for label in ("sample", "timepoint", "cell_class", "antigen_cell_state", "subclone", "leiden"):
        assert isinstance(cells.obs[label].dtype, pd.CategoricalDtype), label


def test_nullable_and_mixed_columns_are_made_readable():
    adata = ad.AnnData(
        X=np.ones((4, 2), dtype=np.float32),
        obs=pd.DataFrame(
            {
                "labels": pd.array([True, None, False, True], dtype="boolean"),
                "full": pd.array([True, False, False, True], dtype="boolean"),
                "count": pd.array([1, None, 3, 4], dtype="Int64"),
                "text": pd.array(["a", None, "b", "a"], dtype="string"),
                "mixed": np.array([1, "x", None, 2.5], dtype=object),
                "unique_with_gap": np.array(["u", "v", None, "w"], dtype=object),
            },
            index=["c1", "c2", "c3", "c4"],
        ),
        var=pd.DataFrame(index=["g1", "g2"]),
        obsm={"X_umap": np.zeros((4, 2), dtype=np.float32)},
    )
    assert cellxgene_problems(adata)  # as it comes, cellxgene refuses it
    scverse_layout(adata)
    assert cellxgene_problems(adata) == []
    assert adata.obs["full"].dtype == bool
    assert adata.obs["labels"].astype(object).tolist()[:3] == ["True", np.nan, "False"]
    assert np.isnan(adata.obs["count"].iloc[1])
    assert adata.obs["mixed"].astype(object).tolist()[:2] == ["1", "x"]


# --- result.json and its schema --------------------------------------------------------------------


def test_the_schema_is_valid_and_shipped():
    jsonschema = pytest.importorskip("jsonschema")
    schema = result_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert RESULT_SCHEMA.is_file()
    assert "report/schema/*" in (REPO / "pyproject.toml").read_text()  # package data


def _validate(result: dict) -> list[str]:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(result_schema())
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(result)]


def test_a_real_result_json_follows_the_schema(small_run):
    result = json.loads((small_run / "P1" / "result.json").read_text())
    assert result["mechanism_called"]
    assert _validate(result) == []


def test_an_indeterminate_result_without_stages_follows_the_schema(toy_adata, config, tmp_path):
    from cd7escape.report import write_patient

    a = toy_adata.copy()
    for step in ("classify", "subclones", "antigen", "qc"):
        a.uns["cd7escape"].pop(step, None)
    result = write_patient(a, tmp_path / "P", config=config)
    assert result["missing"]
    assert _validate(json.loads((tmp_path / "P" / "result.json").read_text())) == []


def test_the_schema_catches_a_broken_result(small_run):
    result = json.loads((small_run / "P1" / "result.json").read_text())
    broken = {**result, "mechanism": "escape", "confidence": 1.5}
    del broken["timepoints"]["relapse"]["ci_low"]
    problems = "\n".join(_validate(broken))
    assert "'escape' is not one of" in problems
    assert "1.5 is greater than the maximum" in problems
    assert "'ci_low' is a required property" in problems
    assert _validate({**result, "surprise": 1})  # every top-level key is documented


# --- cohort_summary.tsv ----------------------------------------------------------------------------


def _documented_columns() -> list[str]:
    text = (REPO / "docs" / "inputs_outputs.md").read_text()
    section = text.split("### cohort_summary.tsv", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)


def test_every_cohort_summary_column_is_documented_in_order(small_run):
    assert _documented_columns() == COLUMNS
    header = (small_run / "cohort_summary.tsv").read_text().splitlines()[0].split("\t")
    assert header == COLUMNS
