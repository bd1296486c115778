from __future__ import annotations

import hashlib

import pandas as pd
import pytest
from io_writers import VDJ_HEADER, vdj_row, write_vdj

from cd7escape._errors import InputError
from cd7escape._lineages import B_LOCI, T_LOCI
from cd7escape.io import read_vdj
from cd7escape.io._vdj import read_receptors


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
    assert list(vdj["receptor_chains"]) == ["TRA+TRB", "TRB", "none", "TRA", "none"]
    # T loci by default: one amino-acid column per locus, in clone-id order
    assert list(vdj.columns) == [
        "clone_id",
        "receptor_chains",
        "trb_cdr3",
        "tra_cdr3",
        "trd_cdr3",
        "trg_cdr3",
    ]


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


def test_b_cell_contigs(tmp_path):
    """IGH first, then the light chain(s): the best of IGK and of IGL when a cell has both."""
    rows = [
        vdj_row("A-1", "IGK", "CQQYX", "TGTK1", umis=3, n=1),
        vdj_row("A-1", "IGH", "CARX", "TGTH1", umis=2, n=2),
        vdj_row("A-1", "IGH", "CARY", "TGTH2", umis=7, n=3),
        vdj_row("B-1", "IGL", "CQSY", "TGTL1", umis=4, n=1),
        vdj_row("B-1", "IGK", "CQQW", "TGTK2", umis=9, n=2),
        vdj_row("B-1", "IGH", "CARZ", "TGTH3", umis=9, n=3),
        vdj_row("C-1", "IGL", "CQSW", "TGTL2"),
        vdj_row("D-1", "TRB", "CASS", "TGTB"),  # a T cell in a B library: not a B clonotype
    ]
    vdj = read_vdj(write_vdj(tmp_path / "b.csv", rows), loci=B_LOCI)
    assert list(vdj.columns) == ["clone_id", "receptor_chains", "igh_cdr3", "igk_cdr3", "igl_cdr3"]
    assert vdj.loc["A-1", "clone_id"] == "IGH:TGTH2;IGK:TGTK1"
    assert vdj.loc["A-1", "igh_cdr3"] == "CARY"
    assert vdj.loc["B-1", "clone_id"] == "IGH:TGTH3;IGK:TGTK2;IGL:TGTL1"
    assert vdj.loc["C-1", "clone_id"] == "IGL:TGTL2"
    assert pd.isna(vdj.loc["D-1", "clone_id"])
    assert list(vdj["receptor_chains"]) == ["IGH+IGK", "IGH+IGK+IGL", "IGL", "none"]
    assert not vdj.attrs.get("warning")


def test_gamma_delta_contigs(tmp_path):
    rows = [
        vdj_row("G-1", "TRG", "CALWE", "TGTG1", umis=5, n=1),
        vdj_row("G-1", "TRD", "CACDT", "TGTD1", umis=5, n=2),
        vdj_row("H-1", "TRG", "CATWD", "TGTG2"),
    ]
    vdj = read_vdj(write_vdj(tmp_path / "gd.csv", rows))
    assert vdj.loc["G-1", "clone_id"] == "TRD:TGTD1;TRG:TGTG1"
    assert vdj.loc["G-1", "trd_cdr3"] == "CACDT"
    assert vdj.loc["H-1", "clone_id"] == "TRG:TGTG2"
    assert list(vdj["receptor_chains"]) == ["TRD+TRG", "TRG"]


def test_other_lineage_library_gives_no_clonotypes_and_warns(tmp_path, caplog):
    """A VDJ-T file in a B-ALL run: no clonotypes; the warning names the loci found and expected."""
    rows = [vdj_row("A-1", "TRB", "CASS", "TGTB"), vdj_row("A-1", "TRA", "CAV", "TGTA", n=2)]
    with caplog.at_level("WARNING", logger="cd7escape"):
        vdj = read_vdj(write_vdj(tmp_path / "t.csv", rows), loci=B_LOCI)
    assert list(vdj.index) == ["A-1"]
    assert vdj["clone_id"].isna().all()
    assert list(vdj["receptor_chains"]) == ["none"]
    assert "TRA, TRB only" in caplog.text
    assert "IGH, IGK, IGL" in caplog.text
    assert "TRA, TRB only" in vdj.attrs["warning"]


def test_empty_file_has_the_columns_of_the_loci(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text("")
    assert list(read_vdj(path, loci=B_LOCI).columns) == [
        "clone_id",
        "receptor_chains",
        "igh_cdr3",
        "igk_cdr3",
        "igl_cdr3",
    ]


def test_several_files_merge_per_barcode(tmp_path):
    """A multi sample's vdj_t and vdj_t_gd contigs: one clonotype per barcode over both files."""
    ab = write_vdj(tmp_path / "ab.csv", [vdj_row("A-1", "TRB", "CASS", "TGTB", umis=2)])
    gd = write_vdj(
        tmp_path / "gd.csv",
        [vdj_row("A-1", "TRG", "CALW", "TGTG"), vdj_row("B-1", "TRD", "CACD", "TGTD")],
    )
    vdj = read_receptors([ab, gd], loci=T_LOCI)
    assert list(vdj.index) == ["A-1", "B-1"]
    assert list(vdj["clone_id"]) == ["TRB:TGTB;TRG:TGTG", "TRD:TGTD"]


#: clone ids of real CARPALL libraries before the reader learnt other loci (commit 860e377):
#: sha256 of the '<barcode>\t<clone_id or NA>' lines (first 16 hex digits), barcodes, clonotypes
CARPALL_IDS = {
    "CAR-T10310322.csv": ("87e39a72492461c2", 1201, 834),
    "CAR-T10484041.csv": ("47612756497a7765", 834, 822),
    "CAR-T11528947.csv": ("9fbbe3d8d33aa01e", 991, 488),
}


@pytest.mark.shared
def test_carpall_vdj(carpall):
    vdj = read_vdj(carpall / "vdj" / "CAR-T10310322.csv")
    assert len(vdj) == 1201
    assert vdj["clone_id"].notna().all()
    assert vdj["clone_id"].str.match(r"^(TRB:[ACGT]+(;TRA:[ACGT]+)?|TRA:[ACGT]+)$").all()
    assert (vdj["receptor_chains"] == "TRA+TRB").sum() == 1026
    assert vdj.loc["AAACCTGAGCTAAGAT-1", "clone_id"] == (
        "TRB:TGTGCCAGCAGCTTGGCTCGCGGGAGGGGCTACGAGCAGTACTTC;"
        "TRA:TGTGTTGTGAGTGATGACCTTAATGCTGGTGGTACTAGCTATGGAAAGCTGACATTT"
    )


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(CARPALL_IDS))
def test_carpall_clone_ids_unchanged(carpall, name):
    """αβ T-cell clone ids are byte-identical to those of the TRA/TRB-only reader."""
    vdj = read_vdj(carpall / "vdj" / name)
    lines = "\n".join(f"{b}\t{c}" for b, c in vdj["clone_id"].fillna("NA").items())
    digest = hashlib.sha256(lines.encode()).hexdigest()[:16]
    assert (digest, len(vdj), vdj["clone_id"].nunique()) == CARPALL_IDS[name]
