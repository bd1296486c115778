"""``io._sniff``: the kind of a count file from its content, and why an unknown one is not one."""

from __future__ import annotations

import gzip

import h5py
import pytest

from cd7escape.io._sniff import MTX_NAMES, find_in_dir, sniff, unrecognised


def _h5(path, *groups):
    with h5py.File(path, "w") as f:
        for g in groups:
            f.create_group(g)
    return path


def test_sniff_by_content_not_name(tmp_path):
    assert sniff(tmp_path / "absent.h5") == "missing"
    assert sniff(_h5(tmp_path / "counts.h5ad", "matrix")) == "10x_h5"
    assert sniff(_h5(tmp_path / "counts.h5", "obs", "var")) == "h5ad"
    with h5py.File(tmp_path / "v2.h5", "w") as f:
        g = f.create_group("GRCh38")
        for key in ("barcodes", "data", "indptr"):
            g.create_dataset(key, data=[0])
    assert sniff(tmp_path / "v2.h5") == "10x_h5_v2"
    (tmp_path / "text.h5").write_text("a,b\n1,2\n")
    assert sniff(tmp_path / "text.h5") == "unknown"
    folder = tmp_path / "mtx"
    folder.mkdir()
    assert sniff(folder) == "unknown"
    (folder / "matrix.mtx.gz").write_bytes(b"")
    assert sniff(folder) == "10x_mtx"
    assert find_in_dir(folder, MTX_NAMES) == folder / "matrix.mtx.gz"
    assert find_in_dir(folder, ("barcodes.tsv",)) is None


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "the file is empty"),
        (b"\x89PNG\r\n", "a PNG image"),
        (b"%PDF-1.7", "a PDF"),
        (b"PK\x03\x04", "a zip archive"),
        (gzip.compress(b"x"), "a gzip file"),
        (b"barcode,count\n", "a text file"),
        (b"\xff\xfe\x00\x81", "unrecognised format; expected"),
        (b"\x89HDF\r\n\x1a\n" + b"\0" * 16, "a corrupt or truncated HDF5 file"),
    ],
)
def test_unrecognised_says_what_the_file_is(tmp_path, content, says):
    path = tmp_path / "input"
    path.write_bytes(content)
    assert says in unrecognised(path)


def test_unrecognised_hdf5_lists_its_keys(tmp_path):
    message = unrecognised(_h5(tmp_path / "x.h5", "alpha", "beta"))
    assert "neither a 10x matrix" in message
    assert "alpha, beta" in message
    assert "without matrix.mtx" in unrecognised(tmp_path)
