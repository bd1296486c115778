"""h5ad files holding raw counts in ``X`` or ``layers['counts']``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._errors import InputError, Problem
from .._logging import logger, timed
from ._count_checks import count_problems, raise_if
from ._feature_types import GEX
from ._gene_names import SYMBOL_COLUMNS, harmonize_names, make_unique

if TYPE_CHECKING:
    from anndata import AnnData


def read_h5ad(path: str | Path, *, counts_layer: bool = True) -> AnnData:
    """Read an h5ad with raw UMI counts and bring it to the package conventions.

    Parameters
    ----------
    path
        h5ad file. Raw counts are taken from ``layers['counts']`` when present, else from ``X``.
    counts_layer
        Also keep a copy of the counts in ``layers['counts']``. :func:`read_patient` reads with False
        and moves ``X`` there itself, which saves a copy of every sample's matrix.

    Returns
    -------
    AnnData with raw counts (CSR, float32 holding integers) in ``X`` and ``layers['counts']``, unique gene
    symbols as ``var_names`` (Ensembl ids mapped with the shipped table, or a symbol column such as
    ``var['gene_symbols']`` / ``var['feature_name']`` used), ``var['gene_ids']`` and
    ``var['feature_types']``. ``obs`` and ``obsm`` are kept; other layers, ``varm`` and ``obsp`` dropped.

    Raises
    ------
    InputError
        Counts that are normalized, log-transformed, non-integer, negative or NaN (naming the file and
        the problem), mouse genes, or an unreadable file.
    """
    import anndata as ad
    import scipy.sparse as sp

    path = Path(path)
    file = str(path)
    with timed(f"reading {path.name}"):
        try:
            src = ad.read_h5ad(path)
        except Exception as err:  # anndata raises many kinds
            raise InputError.single(
                f"unreadable h5ad ({type(err).__name__}: {err})", file=file
            ) from None
        where = "layers['counts']" if "counts" in src.layers else "X"
        counts = src.layers["counts"] if where != "X" else src.X
        if counts is None:
            raise InputError.single("h5ad has no X and no layers['counts']", file=file)
        counts = sp.csr_matrix(counts) if not sp.issparse(counts) else counts.tocsr()
        problems = count_problems(counts.data, file=file, where=where)
        problems += _normalized_totals(counts, file=file, where=where)
        raise_if(problems)
        names, ids = _symbols_and_ids(src.var)
        symbols, gene_ids = harmonize_names(names, gene_ids=ids, file=file)
        X = counts.astype(np.float32, copy=False)  # the file's AnnData is dropped
        X.sort_indices()
        var = pd.DataFrame(index=make_unique(symbols))
        var["gene_ids"] = pd.Series(gene_ids, dtype=str).values
        var["feature_types"] = (
            src.var["feature_types"].astype(str).values if "feature_types" in src.var else GEX
        )
        adata = ad.AnnData(X=X, obs=src.obs.copy(), var=var)
        if counts_layer:
            adata.layers["counts"] = X.copy()
        for key, value in src.obsm.items():
            adata.obsm[key] = value
        logger.info(
            "    %d cells × %d genes (raw counts from %s)", adata.n_obs, adata.n_vars, where
        )
    return adata


def _symbols_and_ids(var: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    names = var.index.to_numpy(dtype=object)
    ids = var["gene_ids"].astype(str).to_numpy(dtype=object) if "gene_ids" in var else names.copy()
    for column in SYMBOL_COLUMNS:
        if column in var and var[column].notna().mean() > 0.9:
            symbols = var[column].astype(str).to_numpy(dtype=object)
            if not (symbols == names).all():
                ids = names.copy() if "gene_ids" not in var else ids
                names = np.where(var[column].notna(), symbols, names)
            break
    return names, ids


def _normalized_totals(counts, *, file: str, where: str) -> list[Problem]:
    """Integer data where (nearly) every cell has the same total is normalize_total output."""
    if counts.shape[0] < 20:
        return []
    totals = np.asarray(counts.sum(axis=1)).ravel()
    totals = totals[totals > 0]
    if totals.size >= 20:
        low, median, high = np.quantile(totals, [0.05, 0.5, 0.95])
        if (high - low) <= 0.01 * median:
            return [
                Problem(
                    f"{where} looks normalized: 90% of cells have the same total UMIs (~{median:g}); "
                    "cd7escape needs raw UMI counts",
                    field="path",
                    file=file,
                )
            ]
    return []
