"""10x V(D)J ``filtered_contig_annotations.csv`` → one row per barcode with a clonotype."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import InputError
from .._logging import logger
from ._text_files import as_bool, open_text

REQUIRED = ("barcode", "chain", "productive", "cdr3", "cdr3_nt", "umis")
VDJ_COLUMNS = ("clone_id", "tcr_chains", "trb_cdr3", "tra_cdr3")
_MISSING = {"", "none", "nan", "na"}


def read_vdj(path: str | Path) -> pd.DataFrame:
    """Clonotypes per barcode from a 10x ``filtered_contig_annotations.csv``.

    Only productive TRA/TRB contigs (with ``is_cell`` and ``high_confidence`` true when those columns
    exist, and a CDR3 nucleotide sequence) define clonotypes. When a cell has several productive chains of
    one locus, the one with most UMIs (then reads) is kept.

    Parameters
    ----------
    path
        The CSV (optionally gzipped). ``True``/``true`` booleans are both understood.

    Returns
    -------
    DataFrame indexed by ``barcode`` (every barcode in the file) with ``clone_id``
    (``'TRB:<cdr3 nt>;TRA:<cdr3 nt>'``, ``'TRB:<nt>'`` or ``'TRA:<nt>'``; NaN when the cell has no
    productive chain), ``tcr_chains`` (``'TRA+TRB'``, ``'TRA'``, ``'TRB'``, ``'none'``), ``trb_cdr3`` and
    ``tra_cdr3`` (amino acids, NaN when absent). An empty (0-byte) file gives an empty frame (callers warn: a failed VDJ library).

    Raises
    ------
    InputError
        Not UTF-8, not a CSV, or a required column missing.
    """
    path = Path(path)
    file = str(path)
    text = open_text(path, field="vdj")
    if not text.getvalue().strip():
        logger.info("    VDJ file %s is empty: no clonotypes", file)
        return _empty()
    try:
        table = pd.read_csv(text, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as err:
        raise InputError.single(f"not a readable CSV ({err})", field="vdj", file=file) from None
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise InputError.single(
            f"missing column(s) {', '.join(missing)}: expected a 10x filtered_contig_annotations.csv",
            field="vdj",
            file=file,
        )
    barcodes = pd.Index(table["barcode"].unique(), name="barcode")
    keep = as_bool(table["productive"]) & table["chain"].isin(["TRA", "TRB"])
    for flag in ("is_cell", "high_confidence"):
        if flag in table.columns:
            keep &= as_bool(table[flag])
    keep &= ~table["cdr3_nt"].str.strip().str.lower().isin(_MISSING)
    chains = table.loc[keep, ["barcode", "chain", "cdr3", "cdr3_nt"]].copy()
    chains["umis"] = pd.to_numeric(table.loc[keep, "umis"], errors="coerce").fillna(0)
    chains["reads"] = (
        pd.to_numeric(table.loc[keep, "reads"], errors="coerce").fillna(0)
        if "reads" in table.columns
        else 0
    )
    chains = chains.sort_values(["umis", "reads"], ascending=False, kind="stable")
    best = chains.drop_duplicates(["barcode", "chain"], keep="first")
    tra = best[best["chain"] == "TRA"].set_index("barcode")
    trb = best[best["chain"] == "TRB"].set_index("barcode")
    out = pd.DataFrame(index=barcodes)
    a_nt = tra["cdr3_nt"].reindex(barcodes)
    b_nt = trb["cdr3_nt"].reindex(barcodes)
    has_a, has_b = a_nt.notna().to_numpy(), b_nt.notna().to_numpy()
    parts_b = np.where(has_b, "TRB:" + b_nt.fillna("").to_numpy(dtype=str), "")
    parts_a = np.where(has_a, "TRA:" + a_nt.fillna("").to_numpy(dtype=str), "")
    sep = np.where(has_a & has_b, ";", "")
    clone = np.char.add(np.char.add(parts_b.astype(str), sep.astype(str)), parts_a.astype(str))
    out["clone_id"] = pd.Series(clone, index=barcodes, dtype=object).where(has_a | has_b)
    out["tcr_chains"] = np.select([has_a & has_b, has_a, has_b], ["TRA+TRB", "TRA", "TRB"], "none")
    out["trb_cdr3"] = trb["cdr3"].reindex(barcodes)
    out["tra_cdr3"] = tra["cdr3"].reindex(barcodes)
    logger.info(
        "    VDJ %s: %d barcodes, %d with a productive TRA/TRB chain, %d clonotypes",
        path.name,
        len(out),
        int((has_a | has_b).sum()),
        out["clone_id"].nunique(),
    )
    return out


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=object) for c in VDJ_COLUMNS}, index=pd.Index([], name="barcode")
    )
