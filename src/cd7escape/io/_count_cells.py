"""Number of cells (barcodes) of a count file from its stored shape, without reading the matrix."""

from __future__ import annotations

import gzip
from pathlib import Path

from .._errors import InputError
from ._sniff import MTX_NAMES, sniff, unrecognised


def count_cells(path: str | Path, *, sample: str | None = None) -> int:
    """Number of cells (barcodes, columns of a 10x matrix, rows of an h5ad) in a count file.

    Reads only the stored shape: the ``shape`` dataset of a 10x HDF5, the obs index (or ``X``'s shape) of
    an h5ad, the size line of a 10x ``matrix.mtx[.gz]``. Milliseconds even at 200k cells; meant for sizing
    jobs (the Snakemake workflow's memory and runtime per patient), not for validation.

    Parameters
    ----------
    path
        A 10x HDF5 (v2 or v3), an h5ad, a 10x matrix folder, or a Cell Ranger output folder (its
        filtered matrix is counted).
    sample
        The sample id, to pick one sample of a ``cellranger multi`` folder with several.

    Returns
    -------
    The number of cells.

    Raises
    ------
    InputError
        The file is missing or is not a count file this package reads.
    """
    path = Path(path)
    kind = sniff(path)
    if kind == "missing":
        raise InputError.single("file not found", file=str(path))
    if kind == "unknown" and path.is_dir():
        try:
            from ._cellranger import find_cellranger_files
        except ImportError:  # pragma: no cover - an install without Cell Ranger folder support
            pass
        else:
            return count_cells(find_cellranger_files(path, sample=sample).filtered)
    if kind == "unknown":
        raise InputError.single(unrecognised(path), file=str(path))
    if kind == "10x_mtx":
        return _mtx_cells(path)
    import h5py

    with h5py.File(path, "r") as f:
        if kind == "10x_h5":
            return int(f["matrix"]["shape"][1])
        if kind == "10x_h5_v2":
            group = next(f[k] for k in f if isinstance(f[k], h5py.Group) and "barcodes" in f[k])
            return int(group["shape"][1])
        obs = f["obs"]  # h5ad
        if isinstance(obs, h5py.Group):
            index = obs[obs.attrs.get("_index", "_index")]
            return int(index.shape[0])
        matrix = f["X"]
        shape = matrix.attrs["shape"] if isinstance(matrix, h5py.Group) else matrix.shape
        return int(shape[0])


def _mtx_cells(folder: Path) -> int:
    mtx = next((folder / n for n in MTX_NAMES if (folder / n).exists()), None)
    if mtx is None:
        raise InputError.single("10x matrix folder lacks matrix.mtx (or .gz)", file=str(folder))
    opener = gzip.open if _is_gzip(mtx) else open
    with opener(mtx, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("%") or not line.strip():
                continue
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1])  # rows = features, columns = cells
            break
    raise InputError.single("no size line in the Matrix Market file", file=str(mtx))


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"
