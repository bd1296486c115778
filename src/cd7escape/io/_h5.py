"""Cell Ranger HDF5 feature-barcode matrices (v3+, multi-modal; v2 single-genome)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._errors import InputError
from .._logging import logger, timed
from ._build_10x import build_10x
from ._feature_types import GEX
from ._h5_strings import decode_strings

if TYPE_CHECKING:
    from anndata import AnnData


def read_10x_h5(path: str | Path, *, counts_layer: bool = True) -> AnnData:
    """Read a Cell Ranger ``filtered_feature_bc_matrix.h5`` (or raw) with h5py.

    Parameters
    ----------
    path
        Cell Ranger v3+ HDF5 (``/matrix`` group, optionally multi-modal) or a v2 single-genome file
        (one ``/<genome>`` group).
    counts_layer
        Also keep a copy of the counts in ``layers['counts']``. :func:`read_patient` reads with False
        and moves ``X`` there itself, which saves a copy of every sample's matrix.

    Returns
    -------
    AnnData with cells × genes raw counts in ``X`` and ``layers['counts']`` (CSR, float32 holding
    integers), ``var['gene_ids']``, ``var['feature_types']`` (only 'Gene Expression' features;
    unique gene symbols as ``var_names``), and ``obsm['protein']`` (DataFrame of 'Antibody Capture'
    counts) for CITE-seq files. Other feature types (CRISPR, Custom) are dropped with a log line.

    Raises
    ------
    InputError
        Unreadable file, no gene-expression features, non-integer/negative/NaN counts, mouse genes, or a
        v2 file with several genomes.
    """
    path = Path(path)
    with timed(f"reading {path.name}"):
        matrix, barcodes, names, ids, types, stored_integers = _read_h5_parts(path)
        adata = build_10x(
            matrix,
            barcodes,
            names,
            ids,
            types,
            file=str(path),
            counts_layer=counts_layer,
            stored_integers=stored_integers,
        )
    logger.info("    %d cells × %d genes", adata.n_obs, adata.n_vars)
    return adata


def _read_h5_parts(path: Path):
    """(cells × features CSR, barcodes, names, ids, feature types, counts stored as integers) of a 10x HDF5."""
    import h5py
    import scipy.sparse as sp

    from ._h5_chunks import read_1d

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise InputError.single(f"not a readable HDF5 file ({err})", file=str(path)) from None
    with f:
        if "matrix" in f:
            group = f["matrix"]
            try:
                feats = group["features"]
                names = decode_strings(feats["name"][:])
                ids = decode_strings(feats["id"][:])
                types = (
                    decode_strings(feats["feature_type"][:])
                    if "feature_type" in feats
                    else np.full(len(ids), GEX, dtype=object)
                )
            except KeyError as err:
                raise InputError.single(
                    f"10x HDF5 without expected feature field ({err})", file=str(path)
                ) from None
        else:
            genomes = [k for k in f if isinstance(f[k], h5py.Group) and "barcodes" in f[k]]
            if not genomes:
                raise InputError.single(
                    "HDF5 file is neither a Cell Ranger matrix (/matrix) nor a v2 genome group",
                    file=str(path),
                )
            if len(genomes) > 1:
                raise InputError.single(
                    f"Cell Ranger v2 file with several genomes {genomes}: give a single-genome matrix",
                    file=str(path),
                )
            group = f[genomes[0]]
            ids = decode_strings(group["genes"][:])
            names = decode_strings(group["gene_names"][:]) if "gene_names" in group else ids.copy()
            types = np.full(len(ids), GEX, dtype=object)
        try:
            shape = tuple(int(s) for s in group["shape"][:])
            nnz = group["data"].shape[0]
            index_dtype = np.int32 if max(nnz, *shape) < np.iinfo(np.int32).max else np.int64
            # float32 counts and scipy's index type as the chunks are decoded: no second pass
            data = read_1d(group["data"], np.float32)
            stored_integers = group["data"].dtype.kind in "iu"
            indices = read_1d(group["indices"], index_dtype)
            indptr = read_1d(group["indptr"], index_dtype)
            barcodes = decode_strings(group["barcodes"][:])
        except KeyError as err:
            raise InputError.single(
                f"10x HDF5 without expected matrix field ({err})", file=str(path)
            ) from None
    _check_structure(path, shape, data, indices, indptr)
    # stored features × cells in CSC = cells × features in CSR
    matrix = sp.csr_matrix((data, indices, indptr), shape=(shape[1], shape[0]))
    return matrix, barcodes, names, ids, types, stored_integers


def _check_structure(path: Path, shape, data, indices, indptr) -> None:
    """A damaged CSC (indptr not rising from 0 to nnz, indices beyond the features) is bad input,
    not something for the compiled readers downstream to index with (it crashed the process)."""
    why = None
    if len(shape) != 2 or min(shape) < 0:
        why = f"shape {shape} is not two sizes"
    elif len(indptr) != shape[1] + 1:
        why = f"indptr has {len(indptr)} entries for {shape[1]} barcodes (expected {shape[1] + 1})"
    elif len(indices) != len(data):
        why = f"{len(indices)} indices for {len(data)} values"
    elif len(indptr) and (indptr[0] != 0 or indptr[-1] != len(data)):
        why = f"indptr runs from {indptr[0]} to {indptr[-1]}, not from 0 to {len(data)}"
    elif len(indptr) > 1 and (np.diff(indptr) < 0).any():
        why = "indptr decreases"
    elif len(indices) and (indices.min() < 0 or indices.max() >= shape[0]):
        why = f"feature indices outside 0–{shape[0] - 1}"
    if why is not None:
        raise InputError.single(f"damaged 10x HDF5 matrix: {why}", file=str(path))
