from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from io_writers import write_config

from cd7escape._config import Config, SampleSpec
from cd7escape._errors import InputError
from cd7escape.io import load_config


def test_paths_relative_to_config_and_sheet(tmp_path):
    sheets = tmp_path / "sheets"
    sheets.mkdir()
    rows = [
        {
            "patient": "P1",
            "sample": "a",
            "timepoint": "Baseline",
            "path": "../data/a.h5",
            "vdj": "v.csv",
            "tissue": "BM",
        },
        {"patient": "P1", "sample": "b", "timepoint": "relapse", "path": "/abs/b.h5", "vdj": ""},
    ]
    pd.DataFrame(rows).to_csv(sheets / "s.tsv", sep="\t", index=False)
    (tmp_path / "c.yaml").write_text("samples: sheets/s.tsv\noutdir: results\nseed: 3\n")
    config = load_config(tmp_path / "c.yaml")
    assert isinstance(config, Config)
    assert config.seed == 3
    assert config.outdir == str(tmp_path / "results")
    a, b = config.samples
    assert isinstance(a, SampleSpec)
    assert a.path == str(tmp_path / "data" / "a.h5")
    assert a.vdj == str(sheets / "v.csv")
    assert a.timepoint == "baseline"
    assert b.path == "/abs/b.h5"
    assert b.vdj is None
    assert b.tissue is None


def test_inline_samples(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "antigen: CD5\nsamples:\n  - {patient: P1, sample: a, timepoint: baseline, path: a.h5}\n"
        "  - {patient: P1, sample: b, timepoint: relapse, path: sub/b, raw_path: raw.h5}\n"
    )
    config = load_config(tmp_path / "c.yaml")
    assert config.antigen == "CD5"
    assert [s.path for s in config.samples] == [str(tmp_path / "a.h5"), str(tmp_path / "sub" / "b")]
    assert config.samples[1].raw_path == str(tmp_path / "raw.h5")


def test_csv_sheet_with_column_name_labels(tmp_path):
    rows = [
        {
            "patient": "P1",
            "sample": "a",
            "timepoint": "baseline",
            "path": "a.h5ad",
            "malignant_labels": "is_blast",
        }
    ]
    config = load_config(write_config(tmp_path, rows))
    assert config.samples[0].malignant_labels == "is_blast"


def test_structural_problems_all_listed(tmp_path):
    rows = [
        {"patient": "P1", "sample": "a", "timepoint": "relapsed", "path": "a.h5"},
        {"patient": "P1", "sample": "b", "timepoint": "baseline", "path": ""},
    ]
    config = write_config(tmp_path, rows, extra="antigne: CD7\nintegration: umap\n")
    with pytest.raises(InputError) as err:
        load_config(config)
    fields = {p.field for p in err.value.problems}
    assert {"antigne", "integration", "sheet row 2.timepoint", "sheet row 3.path"} <= fields
    text = str(err.value)
    assert "unknown key 'antigne'" in text
    assert "'relapsed'" in text


def test_not_yaml_mapping(tmp_path):
    path = Path(tmp_path / "c.yaml")
    path.write_text("- just\n- a list\n")
    with pytest.raises(InputError, match="mapping"):
        load_config(path)
