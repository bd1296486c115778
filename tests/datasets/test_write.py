from __future__ import annotations

import gzip
import json
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from cd7escape._errors import InputError
from cd7escape.datasets import write_simulated
from cd7escape.datasets._tcr import CONTIG_COLUMNS


@pytest.fixture(scope="module")
def patient(simulated_patients):
    """A pre-existing negative clone, 2 x 200 cells, with CITE-seq proteins and empty droplets."""
    return simulated_patients.copy("protein_empties")


@pytest.fixture(scope="module")
def written(patient, tmp_path_factory) -> dict[str, Path]:
    """The patient written once in each format: {fmt: samples.csv path}."""
    root = tmp_path_factory.mktemp("written")
    return {fmt: write_simulated(patient, root / fmt, fmt=fmt) for fmt in ("h5", "h5ad", "mtx")}


def _sample(adata, sample):
    sel = (adata.obs["sample"].astype(str) == sample).to_numpy()
    return adata[sel]


def _read_h5(path: Path):
    with h5py.File(path, "r") as f:
        m = f["matrix"]
        shape = tuple(m["shape"][:])
        X = sp.csc_matrix((m["data"][:], m["indices"][:], m["indptr"][:]), shape=shape).T.tocsr()
        names = m["features/name"][:].astype(str)
        types = m["features/feature_type"][:].astype(str)
        barcodes = m["barcodes"][:].astype(str)
    return X, names, types, barcodes


def test_h5_roundtrip(patient, written):
    sheet = written["h5"]
    s = pd.read_csv(sheet)
    assert list(s.columns) == [
        "patient",
        "sample",
        "timepoint",
        "path",
        "vdj",
        "tissue",
        "raw_path",
    ]
    assert set(s["timepoint"]) == {"baseline", "relapse"}
    for row in s.itertuples():
        assert (sheet.parent / row.path).is_file()
        assert (sheet.parent / row.vdj).is_file()
        X, names, types, barcodes = _read_h5(sheet.parent / row.path)
        sub = _sample(patient, row.sample)
        G = patient.n_vars
        assert (X[:, :G] != sub.layers["counts"]).nnz == 0
        assert list(names[:G]) == list(patient.var_names)
        assert list(barcodes) == list(sub.obs["barcode"])
        assert (types[G:] == "Antibody Capture").all()
        assert list(names[G:]) == list(patient.obsm["protein"].columns)
        assert np.array_equal(X[:, G:].toarray(), sub.obsm["protein"].to_numpy())
        # raw matrix: the cells plus empty droplets
        Xr, _, _, braw = _read_h5(sheet.parent / row.raw_path)
        assert len(braw) == len(barcodes) + 2 * patient.uns["truth"]["n_cells"]
        assert set(barcodes) <= set(braw)
        assert (Xr[: len(barcodes)] != X).nnz == 0


def test_project_readers_read_what_is_written(patient, written):
    """The package's own readers (ce.io) take every format the writer produces."""
    from cd7escape import io

    sub = _sample(patient, "P1_baseline")
    for fmt, reader in (("h5", io.read_10x_h5), ("mtx", io.read_10x_mtx), ("h5ad", io.read_h5ad)):
        sheet = written[fmt]
        row = pd.read_csv(sheet).iloc[0]
        a = reader(sheet.parent / row["path"])
        assert a.n_obs == sub.n_obs
        genes = list(patient.var_names)
        counts = sp.csr_matrix(a[:, genes].layers["counts"])
        assert (counts != sub.layers["counts"]).nnz == 0
    vdj = io.read_vdj(sheet.parent / row["vdj"])
    bc = sub.obs.set_index("barcode")
    assert (vdj["clone_id"].dropna() == bc.loc[vdj["clone_id"].dropna().index, "clone_id"]).all()
    read = "receptor_chains" if "receptor_chains" in vdj else "tcr_chains"  # io's old name
    assert (vdj[read] == bc.loc[vdj.index, "receptor_chains"].astype(str)).all()


def test_h5ad_and_mtx_roundtrip(patient, written):
    s = pd.read_csv(written["h5ad"])
    sub = _sample(patient, "P1_relapse")
    a = ad.read_h5ad(written["h5ad"].parent / s["path"][1])
    assert (sp.csr_matrix(a.X) != sub.layers["counts"]).nnz == 0
    assert list(a.obs_names) == list(sub.obs["barcode"])
    assert not any(c.startswith("truth") for c in a.obs.columns)
    assert np.array_equal(a.obsm["protein"].to_numpy(), sub.obsm["protein"].to_numpy())

    s = pd.read_csv(written["mtx"])
    d = written["mtx"].parent / s["path"][1]
    with gzip.open(d / "matrix.mtx.gz") as fh:
        M = sp.csr_matrix(scipy.io.mmread(fh)).T.tocsr()
    feats = pd.read_csv(d / "features.tsv.gz", sep="\t", header=None)
    bcs = pd.read_csv(d / "barcodes.tsv.gz", header=None)[0]
    G = patient.n_vars
    assert (M[:, :G] != sub.layers["counts"]).nnz == 0
    assert list(feats[1][:G]) == list(patient.var_names)
    assert set(feats[2]) == {
        "Gene Expression",
        "Antibody Capture",
    }
    assert list(bcs) == list(sub.obs["barcode"])


def test_vdj_csv(patient, written):
    s = pd.read_csv(written["h5"])
    for row in s.itertuples():
        c = pd.read_csv(written["h5"].parent / row.vdj)
        assert list(c.columns) == CONTIG_COLUMNS
        assert (~c["productive"]).any()  # some non-productive contigs
        sub = _sample(patient, row.sample)
        assert set(c["barcode"]) <= set(sub.obs["barcode"])
        blasts = set(sub.obs.loc[sub.obs["truth_malignant"], "barcode"])
        prod = c[c["productive"] & c["barcode"].isin(blasts)]
        assert prod["barcode"].nunique() > 0.5 * len(blasts)
        assert prod.loc[prod["chain"] == "TRB", "cdr3_nt"].nunique() == 1
        assert c.loc[c["productive"], "cdr3_nt"].str.len().mod(3).eq(0).all()
        # the clone_id in obs is what the CSV gives
        trb = prod[prod["chain"] == "TRB"].set_index("barcode")["cdr3_nt"]
        ids = sub.obs.set_index("barcode").loc[trb.index, "clone_id"]
        assert all(i.startswith(f"TRB:{nt}") for i, nt in zip(ids, trb, strict=True))


def test_truth_files(patient, written):
    root = written["h5"].parent
    t = pd.read_csv(root / "truth" / "P1_cells.csv.gz")
    assert len(t) == patient.n_obs
    assert t["truth_malignant"].sum() == patient.obs["truth_malignant"].sum()
    j = json.loads((root / "truth" / "P1.json").read_text())
    assert j["mechanism"] == "preexisting_negative_clone"


def test_bad_format(patient, tmp_path):
    with pytest.raises(InputError, match="fmt"):
        write_simulated(patient, tmp_path, fmt="loom")


def test_fixtures(repo):
    """The bundled examples (scripts/make_fixtures.py): sheets, files, truth of every patient."""
    root = repo / "data" / "test_h5ad"
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    assert size <= 15e6  # 8 patients at 2 x 600 cells, one at 600 (baseline only)
    sheets = {name: pd.read_csv(root / name) for name in ("samples.csv", "samples_b_all.csv")}
    assert sorted(sheets["samples.csv"]["patient"].unique()) == [
        "P1", "P2", "P3", "P4", "P5", "P6", "P8", "P9",
    ]  # fmt: skip
    rows = sheets["samples.csv"]
    # P8: two relapse sites; P9: a baseline screen (no relapse sample)
    assert sorted(rows.loc[rows["patient"] == "P8", "tissue"]) == ["BM", "BM", "mediastinum"]
    assert rows.loc[rows["patient"] == "P9", "timepoint"].tolist() == ["baseline"]
    assert sheets["samples_b_all.csv"]["patient"].unique().tolist() == ["P7"]
    for sheet in sheets.values():
        for col in ("path", "vdj", "raw_path"):
            for p in sheet.get(col, pd.Series(dtype=object)).dropna():
                assert (root / p).exists(), p
    expected = {
        "P1": "preexisting_negative_clone",
        "P2": "antigen_downregulation",
        "P3": "antigen_retained",
        "P4": "mixed",
        "P5": "antigen_downregulation",  # with CAR-transduced relapse blasts
        "P6": "antigen_downregulation",  # protein lost, RNA kept (RNA: antigen_retained)
        "P7": "antigen_downregulation",  # CD19, B-ALL
        "P8": "antigen_downregulation",  # two relapse sites
    }
    for pid, mech in expected.items():
        truth = json.loads((root / pid / "truth" / f"{pid}.json").read_text())
        assert truth["mechanism"] == mech
        cells = pd.read_csv(root / pid / "truth" / f"{pid}_cells.csv.gz")
        mal = cells[cells["truth_malignant"]]
        by_tp = mal.groupby(mal["sample"].str.split("_").str[1])
        neg = by_tp["truth_antigen_negative"].mean()
        rna = truth["rna_mechanism"]
        if rna == "antigen_retained":
            assert neg.max() == 0
        elif rna == "antigen_downregulation":
            assert neg["baseline"] == 0
            assert neg["relapse"] > 0.8
        else:  # pre-existing (P1, P9: 20 %) or mixed (P4: 10 %) negative subclone at baseline
            assert neg["baseline"] >= 0.07
            assert neg["relapse"] > 0.8
        if truth["params"]["protein_loss"]:
            assert rna == "antigen_retained"
            assert truth["params"]["protein"]
        if truth["params"]["car_transduced"] > 0:
            assert by_tp["truth_car_transduced"].sum()["relapse"] > 0
    assert json.loads((root / "P7" / "truth" / "P7.json").read_text())["lineage"] == "B"
    cfg = (repo / "configs" / "example.yaml").read_text()
    assert "samples: ../data/test_h5ad/samples.csv" in cfg
    assert "car_feature: CAR_CD7" in cfg
    assert "antigen_protein: CD7_TotalSeqC" in cfg
    cfg_b = (repo / "configs" / "example_b_all.yaml").read_text()
    assert "samples: ../data/test_h5ad/samples_b_all.csv" in cfg_b
    for line in ("antigen: CD19", "lineage: B", "car_feature: CAR_CD19"):
        assert line in cfg_b.splitlines(), line


def test_simulated_anndata_writes_as_h5ad(patient, tmp_path):
    patient.write_h5ad(tmp_path / "p.h5ad")
    b = ad.read_h5ad(tmp_path / "p.h5ad")
    assert (sp.csr_matrix(b.layers["counts"]) != patient.layers["counts"]).nnz == 0
    assert b.uns["truth"]["mechanism"] == "preexisting_negative_clone"
    assert len(b.uns["vdj_contigs"]) == len(patient.uns["vdj_contigs"])
    pd.testing.assert_frame_equal(b.obsm["protein"], patient.obsm["protein"])
