"""AIRR Rearrangement TSVs (io/_airr.py): the same clonotypes as the 10x contigs they describe."""

from __future__ import annotations

import pandas as pd
import pytest
from io_writers import GENES, barcodes, counts, vdj_row, write_h5_v3, write_vdj

from cd7escape._config import SampleSpec
from cd7escape._errors import InputError
from cd7escape._lineages import B_LOCI
from cd7escape.io import read_airr, read_sample, read_vdj

AIRR_HEADER = (
    "cell_id\tsequence_id\tlocus\tproductive\tv_call\tj_call\tjunction\tjunction_aa\tcdr3\t"
    "cdr3_aa\tumi_count\tconsensus_count"
)


def airr_row(cell, locus, junction, *, umis=5, productive="T", n=1, aa=None) -> str:
    cdr3 = junction[3:-3]
    fields = [cell, f"{cell}_contig_{n}", locus, productive, f"{locus}V1*01", f"{locus}J1*01"]
    return "\t".join([*fields, junction, aa or "", cdr3, "", str(umis), str(umis * 100)])


def write_airr(path, rows, header=AIRR_HEADER):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_clonotypes_from_junctions(tmp_path):
    rows = [
        airr_row("A-1", "TRB", "TGTGCCAGCAGCTTC", umis=2, n=1),
        airr_row("A-1", "TRB", "TGTGCCAGCTATTTC", umis=9, n=2, aa="CASYF"),
        airr_row("A-1", "TRA", "TGTGCTGTGTTT", umis=4, n=3),
        airr_row("B-1", "TRB", "TGTGCCAGCAGCTTC", productive="F"),
        airr_row("C-1", "IGH", "TGTGCGAGATGG"),
    ]
    vdj = read_airr(write_airr(tmp_path / "r.tsv", rows))
    assert list(vdj.index) == ["A-1", "B-1", "C-1"]
    assert vdj.index.name == "barcode"
    assert vdj.loc["A-1", "clone_id"] == "TRB:TGTGCCAGCTATTTC;TRA:TGTGCTGTGTTT"
    assert vdj.loc["A-1", "trb_cdr3"] == "CASYF"  # junction_aa as given
    assert vdj.loc["A-1", "tra_cdr3"] == "CAVF"  # translated junction without junction_aa
    assert list(vdj["receptor_chains"]) == ["TRA+TRB", "none", "none"]
    b = read_airr(write_airr(tmp_path / "r.tsv", rows), loci=B_LOCI)
    assert b.loc["C-1", "clone_id"] == "IGH:TGTGCGAGATGG"


def test_cdr3_without_junction_is_widened_from_the_sequence(tmp_path):
    """Only cdr3 (no junction): the conserved codons come from sequence + cdr3_start/cdr3_end."""
    junction = "TGTGCCAGCAGCTTC"
    sequence = "GGGAAA" + junction + "GGCCCC"
    start = 6 + 3 + 1  # 1-based first base of the CDR3 (after the cysteine codon)
    end = start + len(junction) - 6 - 1
    header = "cell_id\tlocus\tproductive\tsequence\tcdr3\tcdr3_start\tcdr3_end\tduplicate_count"
    rows = [
        f"A-1\tTRB\tTRUE\t{sequence}\t{junction[3:-3]}\t{start}\t{end}\t3",
        f"B-1\tTRB\tTRUE\t\t{junction[3:-3]}\t\t\t3",  # no coordinates: the cdr3 alone
    ]
    vdj = read_airr(write_airr(tmp_path / "r.tsv", rows, header=header))
    assert vdj.loc["A-1", "clone_id"] == f"TRB:{junction}"
    assert vdj.loc["B-1", "clone_id"] == f"TRB:{junction[3:-3]}"


def test_locus_from_gene_calls_when_empty(tmp_path):
    row = airr_row("A-1", "", "TGTGCCAGCAGCTTC")  # v_call 'V1*01' (no locus prefix)
    rows = [row.replace("\tV1*01", "\tTRBV1*01").replace("\tJ1*01", "\tTRBJ1*01")]
    assert "TRBV1*01" in rows[0]
    vdj = read_airr(write_airr(tmp_path / "r.tsv", rows))
    assert vdj.loc["A-1", "clone_id"] == "TRB:TGTGCCAGCAGCTTC"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("cell_id\tlocus\tjunction\nA-1\tTRB\tTGT\n", "productive"),
        ("cell_id\tlocus\tproductive\nA-1\tTRB\tT\n", "junction (or cdr3)"),
        ("cell_id,locus,productive,junction\nA-1,TRB,T,TGT\n", "not a tab-separated"),
        ('cell_id\tlocus\tproductive\tjunction\nA-1\tTRB\t"T\tTGT\n', "not a readable"),
    ],
)
def test_malformed_files_raise(tmp_path, text, needle):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(InputError, match=r"bad\.tsv") as err:
        read_airr(path)
    (problem,) = err.value.problems
    assert needle in problem.message
    assert problem.field == "vdj"


def test_empty_file(tmp_path):
    path = tmp_path / "r.tsv"
    path.write_text("")
    assert read_airr(path).empty


def test_read_vdj_and_read_sample_take_airr(tmp_path):
    """The sample sheet's vdj column takes either format (recognised from the header)."""
    cells = barcodes(40)
    tenx = write_vdj(
        tmp_path / "v.csv", [vdj_row(b, "TRB", "CASF", "TGTGCCAGCTTC") for b in cells[:6]]
    )
    airr = write_airr(tmp_path / "v.tsv", [airr_row(b, "TRB", "TGTGCCAGCTTC") for b in cells[:6]])
    pd.testing.assert_frame_equal(read_vdj(airr), read_airr(airr))
    h5 = write_h5_v3(tmp_path / "c.h5", counts(40, len(GENES)), cells, GENES)
    spec = {"patient": "P", "sample": "S", "timepoint": "baseline", "path": str(h5)}
    a = read_sample(SampleSpec(**spec, vdj=str(airr)), antigen=None)
    b = read_sample(SampleSpec(**spec, vdj=str(tenx)), antigen=None)
    assert a.obs["clone_id"].notna().sum() == 6
    pd.testing.assert_series_equal(a.obs["clone_id"], b.obs["clone_id"])


def _to_airr(contigs: pd.DataFrame, path, *, with_cdr3_only: bool = False):
    """Cell Ranger contigs written as an AIRR Rearrangement TSV with the ``airr`` package."""
    import airr

    fields = ["cell_id", "locus", "cdr3", "cdr3_aa", "umi_count", "consensus_count"]
    writer = airr.create_rearrangement(str(path), fields=fields)
    truth = {"true": True, "false": False}
    for i, row in enumerate(contigs.itertuples()):
        if not (truth.get(row.is_cell.lower()) and truth.get(row.high_confidence.lower())):
            continue  # Cell Ranger's AIRR file holds cell contigs only
        productive = truth.get(str(row.productive).lower(), False)
        nt, aa = str(row.cdr3_nt), str(row.cdr3)
        has = nt not in ("", "None", "nan")
        writer.write(
            {
                "sequence_id": f"{row.contig_id}_{i}",
                "sequence": "",
                "rev_comp": False,
                "productive": productive,
                "v_call": row.v_gene,
                "d_call": row.d_gene,
                "j_call": row.j_gene,
                "sequence_alignment": "",
                "germline_alignment": "",
                "junction": "" if with_cdr3_only or not has else nt,
                "junction_aa": "" if with_cdr3_only or not has else aa,
                "v_cigar": "",
                "d_cigar": "",
                "j_cigar": "",
                "cell_id": row.barcode,
                "locus": row.chain,
                "cdr3": nt[3:-3] if has else "",
                "cdr3_aa": aa[1:-1] if has else "",
                "umi_count": int(row.umis),
                "consensus_count": int(row.reads),
            }
        )
    writer.close()
    return path


@pytest.mark.shared
def test_carpall_contigs_as_airr_give_the_same_clone_ids(carpall, tmp_path):
    """A real library converted to AIRR (junction = 10x cdr3_nt) reads to identical clone ids."""
    source = carpall / "vdj" / "CAR-T10310322.csv"
    contigs = pd.read_csv(source, dtype=str, keep_default_na=False)
    tenx = read_vdj(source)
    airr = read_airr(_to_airr(contigs, tmp_path / "r.tsv"))
    assert len(airr) > 1000
    common = tenx.index.intersection(airr.index)
    assert len(common) == len(airr)
    assert tenx.loc[common, "clone_id"].equals(airr["clone_id"])
    assert tenx.loc[common, "receptor_chains"].equals(airr["receptor_chains"])
    assert tenx.loc[common, "trb_cdr3"].equals(airr["trb_cdr3"])
    # cdr3 alone (no junction, no sequence): the conserved codons are missing, the ids differ
    bare = read_airr(_to_airr(contigs, tmp_path / "bare.tsv", with_cdr3_only=True))
    both = bare["clone_id"].notna()
    assert both.sum() > 1000
    assert (bare.loc[both, "clone_id"] != tenx.loc[bare.index[both], "clone_id"]).all()
