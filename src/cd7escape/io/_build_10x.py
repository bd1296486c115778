"""AnnData from the parts of a 10x file (HDF5 or matrix folder): genes in ``X``, ADTs in ``obsm``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._errors import InputError
from .._logging import logger
from ._count_checks import count_problems, raise_if
from ._feature_types import ADT, GEX
from ._gene_names import harmonize_names, make_unique


def build_10x(
    matrix,
    barcodes: np.ndarray,
    names: np.ndarray,
    ids: np.ndarray,
    types: np.ndarray,
    *,
    file: str,
    counts_layer: bool = True,
    stored_integers: bool = False,
):
    """AnnData from a cells × features CSR matrix of a 10x file (GEX → X, Antibody Capture → obsm).

    ``layers['counts']`` gets a copy of ``X`` when ``counts_layer``. ``stored_integers`` says the file
    held the values as integers (read as floats): only their sign needs checking.
    """
    import anndata as ad
    import scipy.sparse as sp

    types = np.asarray(types, dtype=object)
    present = list(dict.fromkeys(types.tolist()))
    for other in present:
        if other not in (GEX, ADT):
            logger.info(
                "    ignoring %d '%s' features of %s", int((types == other).sum()), other, file
            )
    gex = np.flatnonzero(types == GEX)
    if gex.size == 0:
        raise InputError.single(
            f"no 'Gene Expression' features (feature types: {present})", file=file
        )
    matrix = sp.csr_matrix(matrix)
    problems = count_problems(matrix.data, file=file, check_integer=not stored_integers)
    raise_if(problems)
    symbols, gene_ids = harmonize_names(names[gex], gene_ids=ids[gex], file=file)
    X = (matrix if gex.size == matrix.shape[1] else matrix[:, gex]).astype(np.float32, copy=False)
    X.sort_indices()
    var = pd.DataFrame(
        {"gene_ids": pd.Series(gene_ids, dtype=str).values, "feature_types": GEX},
        index=make_unique(symbols),
    )
    obs = pd.DataFrame(index=pd.Index([str(b) for b in barcodes]))
    adata = ad.AnnData(X=X, obs=obs, var=var)
    if counts_layer:
        adata.layers["counts"] = X.copy()
    adt = np.flatnonzero(types == ADT)
    if adt.size:
        protein = matrix[:, adt].toarray()
        adata.obsm["protein"] = pd.DataFrame(
            protein.astype(np.int64 if np.all(protein == np.round(protein)) else np.float32),
            index=adata.obs_names,
            columns=make_unique(names[adt]),
        )
    return adata
