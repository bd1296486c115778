"""Barcodes as the files of one sample list them → one form, the same for every file.

Every file of a sample that lists barcodes (the count matrix, the raw matrix, the VDJ contigs, the
malignant labels, the donor assignment) goes through :func:`normalize_barcodes` before the barcodes are
compared, so a sample whose files carry the sample id (``b_AAACCTG…-1``, as an h5ad written from a
concatenated object has them) matches in every file or in none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

_SUFFIX = re.compile(r"-\d+$")
#: separators between a sample id and the barcode it prefixes (``<sample>_<barcode>``, ``<sample>:<barcode>``)
PREFIX_SEPARATORS = ("_", ":")


def normalize_barcodes(barcodes: Iterable[str], sample: str | None) -> pd.Index:
    """The barcodes without the sample id some tools put in front of them.

    A barcode that starts with ``<sample>_`` or ``<sample>:`` loses that prefix (10x barcodes hold
    neither ``_`` nor ``:``, so a barcode of the sample never starts so by chance); other barcodes
    stay as they are. The ``-1`` style GEM-well suffix is kept (:func:`match_barcodes` falls back to
    ignoring it).

    Parameters
    ----------
    barcodes
        Barcodes as one file lists them.
    sample
        The sample id (``None``: nothing is stripped).

    Returns
    -------
    The barcodes as strings, in the same order.
    """
    if not isinstance(barcodes, (pd.Index, pd.Series, np.ndarray, list, tuple)):
        barcodes = list(barcodes)
    index = pd.Index(np.asarray(barcodes, dtype=object).astype(str))
    if not sample or len(index) == 0:
        return index
    out = index.to_numpy(dtype=object)
    for sep in PREFIX_SEPARATORS:
        prefix = f"{sample}{sep}"
        hit = index.str.startswith(prefix)
        if hit.any():
            out = np.where(hit, index.str.slice(len(prefix)), out)
    return pd.Index(out.astype(str))


def match_barcodes(cell_barcodes: pd.Index, other: pd.Index) -> tuple[pd.Index, int]:
    """Map ``other`` barcodes onto cell barcodes; falls back to ignoring a '-1' style suffix.

    Both sides are expected in the form :func:`normalize_barcodes` gives.

    Returns the cell barcodes each ``other`` barcode corresponds to (NaN where none) and how many matched.
    """
    direct = other.isin(cell_barcodes)
    if direct.any():
        return pd.Index(np.where(direct, other, None)), int(direct.sum())
    core_cells = pd.Series(cell_barcodes, index=cell_barcodes.str.replace(_SUFFIX, "", regex=True))
    core_cells = core_cells[~core_cells.index.duplicated()]
    core_other = other.str.replace(_SUFFIX, "", regex=True)
    mapped = core_cells.reindex(core_other)
    return pd.Index(mapped.to_numpy()), int(mapped.notna().sum())
