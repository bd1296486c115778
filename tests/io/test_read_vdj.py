from __future__ import annotations

import pandas as pd
import pytest
from io_writers import VDJ_HEADER, vdj_row, write_vdj

from cd7escape._errors import InputError
from cd7escape.io import read_vdj


def test_clonotypes(tmp_path):
    rows = [
        # cell A: two TRB, keep the one with most UMIs; one TRA
        vdj_row("A-1", "TRB", "CASSX", "TGTX", umis=2, n=1),
        vdj_row("A-1", "TRB", "CASSY", "TGTY", umis=9, n=2),
        vdj_row("A-1", "TRA", "CAVZ", "TGTZ", umis=4, n=3),
        # cell B: TRB productive, TRA not productive ('False' spelling)
        vdj_row("B-1", "TRB", "CASSX", "TGTX", umis=3, productive="True"),
        vdj_row("B-1", "TRA", "CAVQ", "TGTQ", umis=30, productive="False", n=2),
        # cell C: only non-productive
        vdj_row("C-1", "TRB", "CASSW", "TGTW", productive="false"),
        # cell D: only TRA; E: IGH chain ignored
        vdj_row("D-1", "TRA", "CAVD", "TGTD", productive="TRUE"),
        vdj_row("E-1", "IGH", "CARX", "TGTIG"),
    ]
    vdj = read_vdj(write_vdj(tmp_path / "v.csv", rows))
    assert list(vdj.index) == ["A-1", "B-1", "C-1", "D-1", "E-1"]
    assert vdj.loc["A-1", "clone_id"] == "TRB:TGTY;TRA:TGTZ"
    assert vdj.loc["A-1", "trb_cdr3"] == "CASSY"
    assert vdj.loc["A-1", "tra_cdr3"] == "CAVZ"
    assert vdj.loc["B-1", "clone_id"] == "TRB:TGTX"
    assert pd.isna(vdj.loc["B-1", "tra_cdr3"])
    assert pd.isna(vdj.loc["C-1", "clone_id"])
    assert vdj.loc["D-1", "clone_id"] == "TRA:TGTD"
    assert list(vdj["tcr_chains"]) == ["TRA+TRB", "TRB", "none", "TRA", "none"]


def test_missing_columns(tmp_path):
    header = VDJ_HEADER.replace(",cdr3_nt", "")
    path = tmp_path / "v.csv"
    path.write_text(header + "\n")
    with pytest.raises(InputError, match="cdr3_nt") as err:
        read_vdj(path)
    assert err.value.problems[0].field == "vdj"


def test_not_utf8(tmp_path):
    path = tmp_path / "v.csv"
    path.write_bytes((VDJ_HEADER + "\n").encode() + "A-1,true,ç\n".encode("latin-1"))
    with pytest.raises(InputError, match="UTF-8"):
        read_vdj(path)


def test_empty_file(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text("")
    assert read_vdj(path).empty


@pytest.mark.shared
def test_carpall_vdj(carpall):
    vdj = read_vdj(carpall / "vdj" / "CAR-T10310322.csv")
    assert len(vdj) == 1201
    assert vdj["clone_id"].notna().all()
    assert vdj["clone_id"].str.match(r"^(TRB:[ACGT]+(;TRA:[ACGT]+)?|TRA:[ACGT]+)$").all()
    assert (vdj["tcr_chains"] == "TRA+TRB").sum() == 1026
