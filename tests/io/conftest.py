"""Fixtures of small synthetic inputs for the io tests (writers in io_writers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from io_writers import (
    GENES,
    barcodes,
    counts,
    vdj_row,
    write_config,
    write_h5_v3,
    write_mtx,
    write_vdj,
)


@pytest.fixture
def tiny_h5(tmp_path) -> Path:
    """A 40-cell v3 HDF5 with GENES."""
    return write_h5_v3(tmp_path / "tiny.h5", counts(40, len(GENES)), barcodes(40), GENES)


@pytest.fixture
def good_config(tmp_path) -> Path:
    """A valid config: one patient, baseline (h5 + VDJ) and relapse (mtx folder), relative paths."""
    data = tmp_path / "data"
    data.mkdir()
    cells = barcodes(40)
    write_h5_v3(data / "base.h5", counts(40, len(GENES), seed=1), cells, GENES)
    write_mtx(data / "rel", counts(30, len(GENES), seed=2), barcodes(30, seed=2), GENES)
    write_vdj(data / "base_vdj.csv", [vdj_row(b, "TRB", "CASSF", "TGTGCC") for b in cells[:10]])
    rows = [
        {
            "patient": "P1",
            "sample": "base",
            "timepoint": "baseline",
            "path": "data/base.h5",
            "vdj": "data/base_vdj.csv",
        },
        {"patient": "P1", "sample": "rel", "timepoint": "relapse", "path": "data/rel", "vdj": ""},
    ]
    return write_config(tmp_path, rows)


@pytest.fixture(scope="session")
def carpall(shared_data) -> Path:
    return shared_data / "carpall"


@pytest.fixture(scope="session")
def carpall_meta(carpall):
    import pandas as pd

    return pd.read_csv(carpall / "metadata.tsv", sep="\t")


@pytest.fixture(scope="session")
def carpall_h5(carpall, carpall_meta) -> dict:
    """Every carpall GEX sample read with read_10x_h5 (read once per session)."""
    from cd7escape.io import read_10x_h5

    return {s: read_10x_h5(carpall / "gex" / f"{s}.h5") for s in carpall_meta["GEX_Sample"]}
