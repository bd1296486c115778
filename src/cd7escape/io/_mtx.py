"""Cell Ranger matrix directories (matrix.mtx, features.tsv/genes.tsv, barcodes.tsv; gzipped or not)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._errors import InputError
from .._logging import logger, timed
from ._build_10x import build_10x
from ._feature_types import GEX
from ._sniff import BARCODE_NAMES, FEATURE_NAMES, MTX_NAMES, find_in_dir
from ._text_files import open_text

if TYPE_CHECKING:
    from anndata import AnnData


def read_10x_mtx(path: str | Path, *, counts_layer: bool = True) -> AnnData:
    """Read a Cell Ranger matrix directory.

    Parameters
    ----------
    path
        Folder with ``matrix.mtx[.gz]``, ``features.tsv[.gz]`` (v3: id, name, type) or ``genes.tsv``
        (v2: id, name), and ``barcodes.tsv[.gz]``.
    counts_layer
        Also keep a copy of the counts in ``layers['counts']``. :func:`read_patient` reads with False
        and moves ``X`` there itself, which saves a copy of every sample's matrix.

    Returns
    -------
    AnnData with the same conventions as :func:`read_10x_h5`.
    """
    path = Path(path)
    with timed(f"reading {path.name}/"):
        matrix, barcodes, names, ids, types = _read_mtx_parts(path)
        adata = build_10x(
            matrix, barcodes, names, ids, types, file=str(path), counts_layer=counts_layer
        )
    logger.info("    %d cells × %d genes", adata.n_obs, adata.n_vars)
    return adata


def read_features(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(names, ids, feature types) of a features.tsv / genes.tsv."""
    table = pd.read_csv(open_text(path), sep="\t", header=None, dtype=str, keep_default_na=False)
    ids = table[0].to_numpy(dtype=object)
    names = table[1].to_numpy(dtype=object) if table.shape[1] > 1 else ids.copy()
    types = (
        table[2].to_numpy(dtype=object)
        if table.shape[1] > 2
        else np.full(len(ids), GEX, dtype=object)
    )
    return names, ids, types


def read_barcodes(path: Path) -> np.ndarray:
    table = pd.read_csv(open_text(path), sep="\t", header=None, dtype=str, keep_default_na=False)
    return table[0].to_numpy(dtype=object)


def mtx_files(path: Path) -> tuple[Path, Path, Path]:
    if not path.is_dir():
        raise InputError.single("not a directory", file=str(path))
    found = [find_in_dir(path, names) for names in (MTX_NAMES, FEATURE_NAMES, BARCODE_NAMES)]
    missing = [
        names[-1]
        for names, f in zip((MTX_NAMES, FEATURE_NAMES, BARCODE_NAMES), found, strict=True)
        if f is None
    ]
    if missing:
        raise InputError.single(
            f"10x matrix folder lacks {', '.join(missing)} (or .gz)", file=str(path)
        )
    return found[0], found[1], found[2]


def _read_mtx_parts(path: Path):
    import scipy.io
    import scipy.sparse as sp

    mtx, features, barcodes_file = mtx_files(path)
    try:
        matrix = scipy.io.mmread(str(mtx))
    except (ValueError, OSError, EOFError) as err:
        raise InputError.single(f"unreadable Matrix Market file ({err})", file=str(mtx)) from None
    names, ids, types = read_features(features)
    barcodes = read_barcodes(barcodes_file)
    matrix = sp.csr_matrix(matrix.T)
    if matrix.shape != (len(barcodes), len(ids)):
        raise InputError.single(
            f"matrix is {matrix.shape[1]} features × {matrix.shape[0]} barcodes but the folder lists "
            f"{len(ids)} features and {len(barcodes)} barcodes",
            file=str(path),
        )
    return matrix, barcodes, names, ids, types
