"""What kind of count file a path is, from its content (not its name), and why an unknown one is not."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Kind = Literal["10x_h5", "10x_h5_v2", "h5ad", "10x_mtx", "unknown", "missing"]

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: the files of a 10x matrix folder, each under its possible names
MTX_NAMES = ("matrix.mtx.gz", "matrix.mtx")
FEATURE_NAMES = ("features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv")
BARCODE_NAMES = ("barcodes.tsv.gz", "barcodes.tsv")


def sniff(path: str | Path) -> Kind:
    """What kind of count file ``path`` is, from its content (not its name)."""
    path = Path(path)
    if not path.exists():
        return "missing"
    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if any(n in names for n in MTX_NAMES):
            return "10x_mtx"
        return "unknown"
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return "unknown"
    if head != _HDF5_MAGIC:
        return "unknown"
    import h5py

    try:
        with h5py.File(path, "r") as f:
            keys = set(f.keys())
            if "matrix" in keys and isinstance(f["matrix"], h5py.Group):
                return "10x_h5"
            if {"obs", "var"} <= keys:
                return "h5ad"
            for key in keys:
                obj = f[key]
                if isinstance(obj, h5py.Group) and {"barcodes", "data", "indptr"} <= set(
                    obj.keys()
                ):
                    return "10x_h5_v2"
    except OSError:
        return "unknown"
    return "unknown"


_EXPECTED = "expected a 10x HDF5 file, a 10x matrix folder or an h5ad"


def unrecognised(path: str | Path) -> str:
    """Why ``path`` (sniffed as 'unknown') is not a count file, as precisely as its first bytes tell."""
    path = Path(path)
    if path.is_dir():
        return f"unrecognised format: a folder without matrix.mtx[.gz]; {_EXPECTED}"
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as err:
        return f"cannot read file: {err.strerror}"
    if head[:8] == _HDF5_MAGIC:
        import h5py

        try:
            with h5py.File(path, "r") as f:
                keys = sorted(f.keys())[:5]
        except OSError as err:
            return f"unrecognised format: a corrupt or truncated HDF5 file (h5py: {err})"
        return (
            "unrecognised format: an HDF5 file that is neither a 10x matrix (/matrix) nor an h5ad "
            f"(obs, var); its top-level keys: {', '.join(keys) or 'none'}"
        )
    if not head:
        return f"unrecognised format: the file is empty (0 bytes); {_EXPECTED}"
    kinds = {b"\x89PNG": "a PNG image", b"%PDF": "a PDF", b"PK\x03\x04": "a zip archive"}
    for magic, what in kinds.items():
        if head.startswith(magic):
            return f"unrecognised format: {what}; {_EXPECTED}"
    if head[:2] == b"\x1f\x8b":
        return f"unrecognised format: a gzip file; {_EXPECTED} (gzipped files belong in a 10x matrix folder)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return f"unrecognised format; {_EXPECTED}"
    return f"unrecognised format: a text file (CSV/TSV?); {_EXPECTED}"


def find_in_dir(directory: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``names`` that exists in ``directory`` (e.g. ``MTX_NAMES``), else ``None``."""
    for name in names:
        if (directory / name).exists():
            return directory / name
    return None
