"""Ambient RNA profile from the empty droplets of an unfiltered (raw) matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._errors import InputError
from .._logging import logger

#: droplets of the raw matrix that are not cells and have this many UMIs (inclusive) are "empty"
EMPTY_MIN_UMIS = 1
EMPTY_MAX_UMIS = 100


def ambient_profile(raw_path: str | Path, cell_barcodes, *, sample: str | None = None) -> dict:
    """Per-gene share of the UMIs in empty droplets.

    Empty droplets are barcodes of the raw matrix that are not in ``cell_barcodes`` (both compared in
    the form :func:`~cd7escape.io._barcodes.normalize_barcodes` gives) and have between
    ``EMPTY_MIN_UMIS`` and ``EMPTY_MAX_UMIS`` gene-expression UMIs (the emptyDrops convention of
    ≤ 100 UMIs for the ambient pool).

    Returns
    -------
    ``{'n_droplets': int, 'n_umis': int, 'genes': array of str, 'fraction': array of float64}`` listing
    only genes with a nonzero fraction (fractions sum to 1); symbols harmonised like the cells' matrix.
    """
    from ._sniff import sniff

    raw_path = Path(raw_path)
    kind = sniff(raw_path)
    if kind in ("10x_h5", "10x_h5_v2"):
        from ._h5 import _read_h5_parts as parts
    elif kind == "10x_mtx":
        from ._mtx import _read_mtx_parts as parts
    else:
        raise InputError.single(
            "raw_path is not a 10x HDF5 file or matrix folder",
            field="raw_path",
            file=str(raw_path),
            sample=sample,
        )
    from ._feature_types import GEX
    from ._gene_names import harmonize_names, make_unique

    matrix, barcodes, names, ids, types, *_ = parts(raw_path)
    gex = np.flatnonzero(np.asarray(types) == GEX)
    matrix = matrix[:, gex]
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    from ._barcodes import normalize_barcodes

    # the raw matrix's barcodes in the form of the cells' (read_sample normalises those alike)
    raw_barcodes = normalize_barcodes(barcodes, sample).to_numpy(dtype=str)
    is_cell = np.isin(raw_barcodes, np.asarray(list(cell_barcodes), dtype=str))
    empty = (~is_cell) & (totals >= EMPTY_MIN_UMIS) & (totals <= EMPTY_MAX_UMIS)
    per_gene = np.asarray(matrix[empty].sum(axis=0)).ravel()
    n_umis = int(per_gene.sum())
    symbols, _ = harmonize_names(names[gex], gene_ids=ids[gex], file=str(raw_path), sample=sample)
    genes = np.asarray(make_unique(symbols), dtype=object)
    nz = per_gene > 0
    fraction = per_gene[nz] / n_umis if n_umis else per_gene[nz].astype(float)
    if int(empty.sum()) == 0:
        logger.warning("no empty droplets (1–100 UMIs) in %s: no ambient profile", raw_path)
    logger.info(
        "    ambient profile of %s: %d empty droplets, %d UMIs",
        sample or raw_path.name,
        int(empty.sum()),
        n_umis,
    )
    return {
        "n_droplets": int(empty.sum()),
        "n_umis": n_umis,
        "genes": genes[nz].astype(str),
        "fraction": fraction.astype(np.float64),
    }
