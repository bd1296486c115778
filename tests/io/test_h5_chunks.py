from __future__ import annotations

import h5py
import numpy as np
import pytest

from cd7escape.io._h5_chunks import _decodable_filters, read_1d

STORAGES = {
    "gzip+shuffle": dict(compression="gzip", shuffle=True),
    "gzip": dict(compression="gzip", compression_opts=9),
    "shuffle only": dict(shuffle=True),
    "lzf (h5py reads it)": dict(compression="lzf"),
    "checksum (h5py reads it)": dict(compression="gzip", fletcher32=True),
}


@pytest.mark.parametrize("storage", list(STORAGES))
@pytest.mark.parametrize("stored", ["<i4", ">i8", "<f8", "<u2"])
def test_equals_h5py_reading(tmp_path, storage, stored):
    rng = np.random.default_rng(1)
    values = rng.poisson(3.0, size=10_007).astype(stored)  # the last chunk is partial
    with h5py.File(tmp_path / "d.h5", "w") as f:
        dset = f.create_dataset("x", data=values, chunks=(1000,), **STORAGES[storage])
        decoded_here = _decodable_filters(dset) is not None
        assert decoded_here == ("h5py reads it" not in storage)
        for dtype in (np.float32, np.int32, np.int64):
            got = read_1d(dset, dtype)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, dset[:].astype(dtype))


def test_contiguous_and_empty_datasets(tmp_path):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        plain = f.create_dataset("plain", data=np.arange(50, dtype=np.int64))
        empty = f.create_dataset("empty", data=np.zeros(0, dtype=np.int32))
        np.testing.assert_array_equal(read_1d(plain, np.float32), np.arange(50, dtype=np.float32))
        assert read_1d(empty, np.float32).shape == (0,)


def test_chunk_stored_without_its_optional_filter(tmp_path):
    """HDF5 stores a chunk unfiltered (filter mask bit set) when compressing it did not pay."""
    values = np.arange(3000, dtype=np.int32)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        dset = f.create_dataset("x", data=values, chunks=(1000,), compression="gzip")
        dset.id.write_direct_chunk((1000,), values[1000:2000].tobytes(), filter_mask=1)
    with h5py.File(tmp_path / "d.h5", "r") as f:
        assert f["x"].id.read_direct_chunk((1000,))[0] == 1
        np.testing.assert_array_equal(read_1d(f["x"], np.int64), values)


def test_unwritten_chunks_hold_the_fill_value(tmp_path):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        dset = f.create_dataset("x", shape=(5000,), dtype="i4", chunks=(1000,), compression="gzip")
        dset[:1500] = 7
        np.testing.assert_array_equal(read_1d(dset, np.float32), dset[:].astype(np.float32))


@pytest.mark.shared
def test_cell_ranger_files(carpall):
    """Every matrix field of the real Cell Ranger files decodes as h5py decodes it."""
    files = sorted(carpall.rglob("*.h5"))
    assert files
    for path in files:
        with h5py.File(path, "r") as f:
            for key in ("data", "indices", "indptr"):
                dset = f["matrix"][key]
                np.testing.assert_array_equal(read_1d(dset, np.int64), dset[:])
