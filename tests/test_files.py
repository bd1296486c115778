"""Atomic writes (``cd7escape._files``): all or nothing, no leftovers, ordinary permissions."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cd7escape._files import (
    H5AD_COMPRESSION,
    atomic_write,
    atomic_write_bytes,
    atomic_write_h5ad,
    atomic_write_text,
    temporary_path,
)


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")
    seen = []

    def boom(tmp):
        seen.append(tmp)
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(target, boom)
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    # the temporary file was hidden, beside the target, named for the next run to find and remove
    assert seen[0].parent == tmp_path
    assert seen[0].name.startswith(".out.txt.")
    assert seen[0].name.endswith(".tmp")


def test_a_failed_first_write_leaves_nothing(tmp_path):
    def boom(tmp):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "new.bin", boom)
    assert list(tmp_path.iterdir()) == []


def test_text_round_trip_is_utf8_and_replaces(tmp_path):
    target = tmp_path / "sub" / "dir" / "note.txt"  # folders are created
    atomic_write_text(target, "old")
    atomic_write_text(str(target), "CD7⁻ blasts\nline 2\n")
    assert target.read_bytes() == "CD7⁻ blasts\nline 2\n".encode()
    assert [p.name for p in target.parent.iterdir()] == ["note.txt"]


def test_bytes_round_trip(tmp_path):
    data = bytes(range(256)) * 3
    atomic_write_bytes(tmp_path / "blob.bin", data)
    assert (tmp_path / "blob.bin").read_bytes() == data


def test_written_files_have_ordinary_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "shared.txt", "x")
    finally:
        os.umask(mask)
    # mkstemp alone makes owner-only (0o600) files; outputs are read by others
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o644


def test_temporary_path_is_a_new_empty_file(tmp_path):
    a = temporary_path(tmp_path / "x" / "cells.h5ad")
    b = temporary_path(tmp_path / "x" / "cells.h5ad")
    assert a != b
    assert a.exists()
    assert a.stat().st_size == 0


@pytest.mark.parametrize("compression", sorted(H5AD_COMPRESSION))
def test_h5ad_round_trip(tmp_path, compression):
    import anndata as ad
    import h5py
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    x = sp.random(30, 12, density=0.3, format="csr", random_state=rng, dtype=np.float32)
    adata = ad.AnnData(
        X=x,
        obs=pd.DataFrame(
            {"timepoint": ["baseline", "relapse"] * 15}, index=[f"c{i}" for i in range(30)]
        ),
        var=pd.DataFrame(index=[f"g{j}" for j in range(12)]),
        uns={"cd7escape": {"qc": {"params": {"min_counts": 300}}}},
    )
    path = tmp_path / "cells.h5ad"
    atomic_write_h5ad(adata, path, compression=compression)
    assert [p.name for p in tmp_path.iterdir()] == ["cells.h5ad"]
    back = ad.read_h5ad(path)
    assert (back.X != adata.X).nnz == 0
    assert back.obs["timepoint"].astype(str).tolist() == adata.obs["timepoint"].tolist()
    assert back.uns["cd7escape"]["qc"]["params"]["min_counts"] == 300
    with h5py.File(path) as f:
        expected = H5AD_COMPRESSION[compression].get("compression")
        assert f["X/data"].compression == expected


def test_h5ad_unknown_compression_writes_nothing(tmp_path):
    import anndata as ad

    with pytest.raises(KeyError):
        atomic_write_h5ad(ad.AnnData(np.ones((2, 2))), tmp_path / "a.h5ad", compression="zstd")
    assert list(tmp_path.iterdir()) == []
