"""validate_config: one test per kind of problem, and one config with many problems at once."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from io_writers import (
    GENES,
    barcodes,
    counts,
    vdj_row,
    write_config,
    write_h5_v3,
    write_h5ad,
    write_vdj,
)

from cd7escape._config import Config
from cd7escape.io import validate_config


def rows_of(tmp_path, **changes_per_sample):
    """Sample sheet rows for two good samples written into tmp_path/data; changes update a row."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    write_h5_v3(data / "base.h5", counts(40, len(GENES), seed=1), barcodes(40), GENES)
    write_h5_v3(data / "rel.h5", counts(30, len(GENES), seed=2), barcodes(30, seed=2), GENES)
    rows = {
        "base": {
            "patient": "P1",
            "sample": "base",
            "timepoint": "baseline",
            "path": "data/base.h5",
        },
        "rel": {"patient": "P1", "sample": "rel", "timepoint": "relapse", "path": "data/rel.h5"},
    }
    for sample, change in changes_per_sample.items():
        rows[sample] = rows[sample] | change
    return list(rows.values())


def problems_for(tmp_path, extra: str = "", **changes):
    config, problems = validate_config(
        write_config(tmp_path, rows_of(tmp_path, **changes), extra=extra)
    )
    assert config is None
    assert problems
    return problems


def one(problems, text):
    hits = [p for p in problems if text in p.message]
    assert hits, f"no problem mentions {text!r}: {[str(p) for p in problems]}"
    return hits[0]


def test_valid(good_config):
    config, problems = validate_config(good_config)
    assert problems == []
    assert isinstance(config, Config)
    assert [s.sample for s in config.samples] == ["base", "rel"]


def test_missing_file(tmp_path):
    p = one(problems_for(tmp_path, rel={"path": "data/nope.h5"}), "not found")
    assert (p.sample, p.field) == ("rel", "path")
    assert p.file.endswith("data/nope.h5")


def test_unreadable_format(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("not counts")
    p = one(problems_for(tmp_path, rel={"path": "data/x.txt"}), "unrecognised format")
    assert p.sample == "rel"


def test_non_integer_counts(tmp_path):
    (tmp_path / "data").mkdir()
    write_h5ad(
        tmp_path / "data" / "n.h5ad",
        np.log1p(counts(30, len(GENES)).toarray()),
        barcodes(30),
        GENES,
    )
    p = one(problems_for(tmp_path, rel={"path": "data/n.h5ad"}), "non-integer")
    assert (p.sample, p.field) == ("rel", "path")


def test_negative_and_nan(tmp_path):
    (tmp_path / "data").mkdir()
    m = counts(30, len(GENES)).toarray().astype(float)
    m[0, 0], m[1, 1] = np.nan, -2
    write_h5ad(tmp_path / "data" / "n.h5ad", m, barcodes(30), GENES)
    problems = problems_for(tmp_path, rel={"path": "data/n.h5ad"})
    one(problems, "NaN")
    one(problems, "negative")


def test_antigen_absent(tmp_path):
    p = one(problems_for(tmp_path, extra="antigen: CD19\n"), "antigen gene 'CD19'")
    assert p.field == "antigen"


def test_duplicate_sample_ids(tmp_path):
    p = one(problems_for(tmp_path, rel={"sample": "base"}), "sample id used 2 times")
    assert p.sample == "base"


def test_duplicate_barcodes(tmp_path):
    (tmp_path / "data").mkdir()
    cells = barcodes(10)
    write_h5_v3(tmp_path / "data" / "d.h5", counts(11, len(GENES)), [*cells, cells[0]], GENES)
    one(problems_for(tmp_path, rel={"path": "data/d.h5"}), "duplicate barcodes")


def test_empty_sample(tmp_path):
    (tmp_path / "data").mkdir()
    write_h5_v3(tmp_path / "data" / "e.h5", counts(0, len(GENES)), [], GENES)
    p = one(problems_for(tmp_path, rel={"path": "data/e.h5"}), "empty sample")
    assert p.sample == "rel"


def test_patient_without_relapse_is_a_screen(tmp_path):
    config, problems = validate_config(
        write_config(tmp_path, rows_of(tmp_path, rel={"timepoint": "other"}))
    )
    assert problems == []
    assert {s.timepoint for s in config.samples} == {"baseline", "other"}


def test_patient_without_baseline(tmp_path):
    one(problems_for(tmp_path, base={"patient": "P2"}), "no baseline sample")


def test_wrong_timepoint_word(tmp_path):
    p = one(problems_for(tmp_path, rel={"timepoint": "relaps"}), "'relaps'")
    assert p.field.endswith("timepoint")


def test_unknown_key(tmp_path):
    p = one(problems_for(tmp_path, extra="antigne: CD7\n"), "unknown key")
    assert p.field == "antigne"


def test_unknown_sheet_column(tmp_path):
    p = one(
        problems_for(tmp_path, rel={"malignant_label": "x.txt"}), "unknown key 'malignant_label'"
    )
    assert p.sample == "rel"


def test_vdj_malformed(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "v.csv").write_text("barcode,chain\nA-1,TRB\n")
    p = one(problems_for(tmp_path, base={"vdj": "data/v.csv"}), "missing column")
    assert (p.sample, p.field) == ("base", "vdj")


def test_vdj_matches_no_cell(tmp_path):
    (tmp_path / "data").mkdir()
    write_vdj(tmp_path / "data" / "v.csv", [vdj_row("TTTTTTTTTTTTTTTT-1", "TRB", "CASS", "TGT")])
    p = one(problems_for(tmp_path, base={"vdj": "data/v.csv"}), "matches a cell")
    assert p.field == "vdj"


def test_vdj_missing(tmp_path):
    p = one(problems_for(tmp_path, base={"vdj": "data/none.csv"}), "VDJ file not found")
    assert p.field == "vdj"


def test_malignant_labels_missing(tmp_path):
    p = one(
        problems_for(tmp_path, base={"malignant_labels": "data/labels.txt"}),
        "malignant_labels file not found",
    )
    assert (p.sample, p.field) == ("base", "malignant_labels")


def test_donor_and_raw_missing(tmp_path):
    problems = problems_for(tmp_path, base={"donor_assignment": "d.tsv", "raw_path": "raw.h5"})
    assert {p.field for p in problems} == {"donor_assignment", "raw_path"}


def test_non_utf8_sheet(tmp_path):
    config = write_config(tmp_path, rows_of(tmp_path))
    sheet = tmp_path / "samples.csv"
    sheet.write_bytes(sheet.read_bytes() + "P1,é,baseline,data/base.h5\n".encode("latin-1"))
    _, problems = validate_config(config)
    p = one(problems, "not UTF-8")
    assert p.file == str(sheet)


@pytest.mark.parametrize("bad", ["../evil", "a/b", "..", ".hidden"])
def test_ids_that_are_not_folder_names(tmp_path, bad):
    p = one(problems_for(tmp_path, rel={"sample": bad}), "folder name")
    assert p.field.endswith("sample")


def test_patient_id_with_separator(tmp_path):
    problems = problems_for(tmp_path, base={"patient": "P1/x"}, rel={"patient": "P1/x"})
    assert one(problems, "folder name").field.endswith("patient")


def test_mouse_genes(tmp_path):
    (tmp_path / "data").mkdir()
    names = ["Cd7", "Cd3e", "Actb", "Gapdh", "Lyz2", "Ptprc", "Cd5", "Cd1d1"]
    write_h5_v3(tmp_path / "data" / "m.h5", counts(10, len(names)), barcodes(10), names)
    one(problems_for(tmp_path, rel={"path": "data/m.h5"}), "mouse")


def test_car_feature_absent(tmp_path):
    p = one(problems_for(tmp_path, extra="car_feature: CD19CAR\n"), "car_feature")
    assert p.field == "car_feature"


def test_missing_sheet_and_config(tmp_path):
    (tmp_path / "c.yaml").write_text("samples: nope.csv\n")
    _, problems = validate_config(tmp_path / "c.yaml")
    one(problems, "sample sheet not found")
    _, problems = validate_config(tmp_path / "absent.yaml")
    one(problems, "config file not found")


def test_many_problems_at_once(tmp_path):
    """Every problem of a bad config is listed, not just the first."""
    data = tmp_path / "data"
    data.mkdir()
    write_h5_v3(data / "ok.h5", counts(20, len(GENES)), barcodes(20), GENES)
    write_h5ad(data / "log.h5ad", np.log1p(counts(30, len(GENES)).toarray()), barcodes(30), GENES)
    (data / "v.csv").write_text("barcode,chain\nA-1,TRB\n")
    rows = [
        {"patient": "P1", "sample": "s1", "timepoint": "baseline", "path": "data/missing.h5"},
        {"patient": "P1", "sample": "s2", "timepoint": "relapse", "path": "data/log.h5ad"},
        {"patient": "P1", "sample": "s3", "timepoint": "later", "path": "data/ok.h5"},
        {
            "patient": "P2",
            "sample": "s4",
            "timepoint": "baseline",
            "path": "data/ok.h5",
            "vdj": "data/v.csv",
        },
        {
            "patient": "P2",
            "sample": "s4",
            "timepoint": "other",
            "path": "data/ok.h5",
            "malignant_labels": "m.txt",
        },
        {"patient": "P3", "sample": "../s6", "timepoint": "relapse", "path": "data/ok.h5"},
    ]
    config = write_config(tmp_path, rows, extra="integration: tsne\n")
    _, problems = validate_config(config)
    expected = [
        "file not found",  # s1
        "non-integer",  # s2
        "'later'",  # s3
        "missing column",  # s4 vdj
        "sample id used 2 times",  # s4
        "malignant_labels file not found",  # s4 (second)
        "folder name",  # ../s6
        "no baseline sample",  # P3
        "'tsne'",  # integration
    ]
    for text in expected:
        one(problems, text)
    assert len(problems) >= len(expected)


@pytest.mark.shared
def test_carpall_config(tmp_path, carpall, carpall_meta):
    """The real 27 samples validate quickly; the failed library's empty VDJ file is only a warning."""
    import time

    rows = [
        {
            "patient": r.Patient,
            "sample": r.GEX_Sample,
            "timepoint": "baseline" if i % 2 == 0 else "relapse",
            "path": str(carpall / "gex" / f"{r.GEX_Sample}.h5"),
            "vdj": str(carpall / "vdj" / f"{r.TCR_Sample}.csv"),
        }
        for i, r in enumerate(carpall_meta.sort_values("Patient").itertuples())
    ]
    config = write_config(tmp_path, rows, extra="car_feature: CAT_scFv\n")
    start = time.perf_counter()
    _, problems = validate_config(config)
    elapsed = time.perf_counter() - start
    messages = [str(p) for p in problems]
    assert all("CAR-T10593347" in m or "no baseline" in m or "no relapse" in m for m in messages), (
        messages
    )
    # the failed library's 0-byte VDJ file is a warning (its GEX is usable), not a problem
    assert not any("VDJ file is empty" in m for m in messages)
    assert elapsed < 60
    shutil.rmtree(tmp_path / "data", ignore_errors=True)


def test_antigen_protein(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    names = [*GENES, "CD7_TotalSeqC"]
    types = ["Gene Expression"] * len(GENES) + ["Antibody Capture"]
    write_h5_v3(data / "base.h5", counts(20, len(names)), barcodes(20), names, types=types)
    write_h5_v3(data / "rel.h5", counts(20, len(names)), barcodes(20), names, types=types)
    rows = [
        {"patient": "P1", "sample": "base", "timepoint": "baseline", "path": "data/base.h5"},
        {"patient": "P1", "sample": "rel", "timepoint": "relapse", "path": "data/rel.h5"},
    ]
    config, problems = validate_config(
        write_config(tmp_path, rows, extra="antigen_protein: CD7_TotalSeqC\n")
    )
    assert problems == []
    assert config.antigen_protein == "CD7_TotalSeqC"
    _, problems = validate_config(write_config(tmp_path, rows, extra="antigen_protein: CD7_ADT\n"))
    assert one(problems, "not among the ADT features").field == "antigen_protein"


def test_corrupt_hdf5_is_a_problem(tmp_path):
    import h5py

    (tmp_path / "data").mkdir()
    with h5py.File(tmp_path / "data" / "c.h5", "w") as f:
        f.create_group("matrix")["barcodes"] = np.array([b"A-1"])
    p = one(problems_for(tmp_path, rel={"path": "data/c.h5"}), "unreadable")
    assert p.sample == "rel"
