"""One barcode form for every file of a sample (io/_barcodes.py): matrix, raw matrix, VDJ, labels, donors."""

from __future__ import annotations

import pandas as pd
import pytest
from io_writers import GENES, barcodes, counts, vdj_row, write_h5_v3, write_h5ad, write_vdj

from cd7escape._config import SampleSpec
from cd7escape.io import read_sample, validate_config
from cd7escape.io._barcodes import match_barcodes, normalize_barcodes


def test_normalize_strips_the_sample_prefix_only():
    got = normalize_barcodes(["b_AAAC-1", "b:CCCG-1", "GGGT-1", "bb_TTTA-1"], "b")
    assert list(got) == ["AAAC-1", "CCCG-1", "GGGT-1", "bb_TTTA-1"]
    assert list(normalize_barcodes(["b_AAAC-1"], None)) == ["b_AAAC-1"]
    assert list(normalize_barcodes(pd.Index([]), "b")) == []


def test_match_falls_back_to_the_core_barcode():
    target, n = match_barcodes(pd.Index(["AAAC-1", "CCCG-1"]), pd.Index(["AAAC", "TTTT"]))
    assert n == 1
    assert target[0] == "AAAC-1"
    assert pd.isna(target[1])


@pytest.fixture
def prefixed(tmp_path):
    """An h5ad whose barcodes carry the sample id (b_<barcode>), and VDJ / labels / donor files alike."""
    cells = barcodes(40)
    named = [f"b_{c}" for c in cells]
    h5ad = write_h5ad(tmp_path / "b.h5ad", counts(40, len(GENES)), named, GENES)
    vdj = write_vdj(tmp_path / "vdj.csv", [vdj_row(c, "TRB", "CASSF", "TGTGCC") for c in named[:8]])
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(named[:5]) + "\n")
    donors = tmp_path / "donors.tsv"
    donors.write_text(
        "cell\tdonor_id\n"
        + "".join(f"{c}\t{'donor0' if i < 20 else 'donor1'}\n" for i, c in enumerate(named))
    )
    return {"path": h5ad, "vdj": vdj, "labels": labels, "donors": donors, "cells": cells}


def _spec(files, **kw) -> SampleSpec:
    return SampleSpec(patient="P1", sample="b", timepoint="baseline", path=str(files["path"]), **kw)


def test_prefixed_h5ad_matches_prefixed_vdj_labels_and_donors(prefixed):
    spec = _spec(
        prefixed,
        vdj=str(prefixed["vdj"]),
        malignant_labels=str(prefixed["labels"]),
        donor_assignment=str(prefixed["donors"]),
    )
    a = read_sample(spec)
    cells = prefixed["cells"]
    assert list(a.obs["barcode"]) == cells
    assert list(a.obs_names) == [f"b_{c}" for c in cells]
    assert a.obs["clone_id"].notna().sum() == 8
    assert a.obs.loc[f"b_{cells[0]}", "clone_id"] == "TRB:TGTGCC"
    assert not a.uns["cd7escape"]["ingest"]["warnings"]
    assert a.obs["user_malignant"].sum() == 5
    assert (a.obs["donor"].astype(str) == "donor0").sum() == 20


def test_prefixed_files_pass_validation(prefixed, tmp_path):
    pd.DataFrame(
        [
            {
                "patient": "P1",
                "sample": "b",
                "timepoint": "baseline",
                "path": str(prefixed["path"]),
                "vdj": str(prefixed["vdj"]),
                "malignant_labels": str(prefixed["labels"]),
                "donor_assignment": str(prefixed["donors"]),
            },
            {
                "patient": "P1",
                "sample": "r",
                "timepoint": "relapse",
                "path": str(prefixed["path"]),
            },
        ]
    ).to_csv(tmp_path / "samples.csv", index=False)
    (tmp_path / "config.yaml").write_text("samples: samples.csv\n")
    _, problems = validate_config(tmp_path / "config.yaml")
    assert problems == []


def test_plain_matrix_with_prefixed_vdj(tmp_path):
    """The other way round: the matrix lists bare barcodes, the VDJ file <sample>_ ones."""
    cells = barcodes(40)
    h5 = write_h5_v3(tmp_path / "m.h5", counts(40, len(GENES)), cells, GENES)
    vdj = write_vdj(
        tmp_path / "v.csv", [vdj_row(f"b_{c}", "TRB", "CASS", "TGTA") for c in cells[:6]]
    )
    a = read_sample(
        SampleSpec(patient="P1", sample="b", timepoint="baseline", path=str(h5), vdj=str(vdj))
    )
    assert a.obs["clone_id"].notna().sum() == 6


def test_raw_matrix_with_prefixed_barcodes_leaves_the_cells_out(tmp_path):
    """The ambient pool excludes the sample's cells however the raw matrix writes their barcodes."""
    import scipy.sparse as sp

    cells = barcodes(40)
    X = counts(40, len(GENES))
    h5 = write_h5_v3(tmp_path / "m.h5", X, cells, GENES)
    empties = barcodes(30, seed=9)
    low = sp.csr_matrix((X[:30] > 0).astype(int))  # ≤ 100 UMIs: empty droplets by count
    # the cells themselves also have ≤ 100 UMIs here: only their barcodes keep them out of the pool
    raw_X = sp.vstack([sp.csr_matrix((X > 0).astype(int)), low]).tocsr()
    raw = write_h5_v3(tmp_path / "raw.h5", raw_X, [f"b_{c}" for c in cells] + list(empties), GENES)
    a = read_sample(
        SampleSpec(patient="P1", sample="b", timepoint="baseline", path=str(h5), raw_path=str(raw))
    )
    assert a.uns["cd7escape"]["ambient"]["b"]["n_droplets"] == 30
