"""Gene names: Ensembl ids mapped to symbols, mouse data rejected, symbols made unique."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .._errors import InputError
from .._logging import logger

_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")
_MOUSE_ENSEMBL = re.compile(r"^ENSMUSG\d+")
# mouse-style symbols: capital letter then lower case ('Cd7', 'Actb', 'Gm12345', 'Rps27a')
_MOUSE_SYMBOL = re.compile(r"^[A-Z][a-z][a-z0-9]*(-[a-z0-9]+)?$")
_HUMAN_SYMBOL = re.compile(r"^[A-Z][A-Z0-9]+$")
#: var columns that may hold gene symbols (h5ad files), in order of preference
SYMBOL_COLUMNS = ("gene_symbols", "gene_symbol", "symbol", "feature_name", "gene_name", "name")


def harmonize_names(
    names: np.ndarray,
    *,
    gene_ids: np.ndarray | None = None,
    file: str | None = None,
    sample: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gene symbols for ``names``: Ensembl ids mapped to symbols, mouse data rejected.

    Returns ``(symbols, gene_ids)``; symbols are not yet unique (see :func:`make_unique`).
    """
    names = np.asarray(names, dtype=object)
    ids = np.asarray(gene_ids, dtype=object) if gene_ids is not None else names.copy()
    if len(names) == 0:
        return names, ids
    sample_names = names[:: max(1, len(names) // 5000)]
    is_ens = np.array([bool(_ENSEMBL.match(str(n))) for n in sample_names])
    if is_ens.mean() > 0.5:
        if any(_MOUSE_ENSEMBL.match(str(n)) for n in sample_names[is_ens]):
            raise InputError.single(
                "mouse Ensembl ids (ENSMUSG…): cd7escape analyses human data",
                file=file,
                sample=sample,
            )
        from ._gene_table import ensembl_to_symbol

        mapping = ensembl_to_symbol()
        ids = names.copy()
        stripped = [str(n).split(".")[0] for n in names]
        symbols = np.array(
            [mapping.get(s, n) for s, n in zip(stripped, names, strict=True)], dtype=object
        )
        n_mapped = int(sum(s in mapping for s in stripped))
        logger.warning(
            "%s: genes are Ensembl ids; mapped %d of %d Ensembl ids to gene symbols (shipped hg38 "
            "table)%s",
            file or "matrix",
            n_mapped,
            len(names),
            "" if n_mapped == len(names) else "; the others keep their ids",
        )
        names = symbols
    check_not_mouse(names, file=file, sample=sample)
    return names, ids


def antigen_missing_message(antigen: str, genes) -> str:
    """Why ``antigen`` is not among ``genes``, with a hint when the genes are unmapped Ensembl ids."""
    genes = [str(g) for g in genes]
    message = f"antigen gene '{antigen}' is not among the {len(genes)} genes"
    ens = [g for g in genes if _ENSEMBL.match(g)]
    if genes and len(ens) > 0.5 * len(genes):
        message += (
            f"; {len(ens)} of them are Ensembl ids that the shipped hg38 table could not map to "
            f"symbols (e.g. {ens[0]}): give gene symbols (a features.tsv name column or "
            "var['gene_symbols'])"
        )
    return message


def check_not_mouse(names, *, file: str | None = None, sample: str | None = None) -> None:
    """Raise :class:`~cd7escape._errors.InputError` when the gene symbols look like mouse genes."""
    names = [str(n) for n in np.asarray(names, dtype=object)[:: max(1, len(names) // 5000)]]
    n_mouse = sum(bool(_MOUSE_SYMBOL.match(n)) for n in names)
    n_human = sum(bool(_HUMAN_SYMBOL.match(n)) for n in names)
    if (n_mouse > 100 and n_mouse > 2 * n_human) or (
        len(names) <= 100 and n_mouse > 0.5 * len(names) > 0
    ):
        raise InputError.single(
            f"gene symbols look like mouse genes ({n_mouse} of {len(names)} sampled like 'Cd7', "
            f"{n_human} like 'CD7'): cd7escape analyses human data",
            file=file,
            sample=sample,
        )


def make_unique(names) -> pd.Index:
    """Scanpy-style unique names: later duplicates get '-1', '-2', …"""
    index = pd.Index(np.asarray(names, dtype=object).astype(str))
    if index.is_unique:
        return index
    from anndata.utils import make_index_unique

    return make_index_unique(index)
