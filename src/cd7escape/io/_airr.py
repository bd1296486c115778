"""AIRR Rearrangement TSV (scirpy, Immcantation, Cell Ranger's ``airr_rearrangement.tsv``) → clonotypes per cell.

The clone id uses the junction: 10x's ``cdr3_nt`` is the IMGT junction (the conserved cysteine codon to
the J phenylalanine/tryptophan codon inclusive; every productive contig of the CARPALL libraries starts
TGT/TGC), which is the AIRR ``junction``, while the AIRR ``cdr3`` leaves those two codons out. So a cell
reads to the same clone id from either format.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product
from pathlib import Path

import pandas as pd

from .._errors import InputError
from .._lineages import T_LOCI
from .._logging import logger
from ._text_files import as_bool, open_text
from ._vdj import ALL_LOCI, _empty, clonotypes

#: columns an AIRR file must have (besides a CDR3: ``junction`` or ``cdr3``)
AIRR_REQUIRED = ("cell_id", "locus", "productive")
_MISSING = {"", "none", "nan", "na"}
_CODONS = {
    "".join(c): aa
    for c, aa in zip(
        product("TCAG", repeat=3),
        "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG",
        strict=True,
    )
}


def read_airr(path: str | Path, *, loci: Sequence[str] = T_LOCI) -> pd.DataFrame:
    """Clonotypes per cell from an AIRR Rearrangement TSV (one row per contig).

    Fields read: ``cell_id``, ``locus``, ``productive`` (required); the CDR3 nucleotide sequence from
    ``junction`` (as 10x's ``cdr3_nt``: the conserved codons included); where ``junction`` is empty,
    ``cdr3`` extended by the codon on each side from ``sequence`` (``cdr3_start``/``cdr3_end``,
    ``rev_comp``), else ``cdr3`` alone (logged: such ids do not match a 10x file's); its amino acids from
    ``junction_aa``, else the translated junction, else ``cdr3_aa``; the UMIs from ``umi_count`` (else
    ``duplicate_count``, where Cell Ranger writes them) and reads from ``consensus_count``, which rank
    several chains of one locus; ``is_cell``/``high_confidence`` when present filter as in
    :func:`read_vdj`. An empty ``locus`` is taken from the ``v_call``/``j_call``/``c_call`` gene prefix.

    Parameters
    ----------
    path
        The TSV (optionally gzipped).
    loci
        Receptor loci of the clonotype, in clone-id order (as :func:`read_vdj`).

    Returns
    -------
    The frame of :func:`read_vdj`, indexed by ``cell_id`` (named ``barcode``).

    Raises
    ------
    InputError
        Not UTF-8, not a tab-separated table, a required column missing, or no ``junction``/``cdr3``
        column.
    """
    path = Path(path)
    text = open_text(path, field="vdj")
    if not text.getvalue().strip():
        logger.info("    VDJ file %s is empty: no clonotypes", path)
        return _empty(loci)
    barcodes, chains = airr_chains(text, file=str(path))
    return clonotypes(barcodes, chains, loci=loci, name=path.name)


def airr_chains(text, *, file: str) -> tuple[pd.Index, pd.DataFrame]:
    """Every cell of an AIRR TSV and its productive contigs (``_vdj.CHAIN_COLUMNS``)."""
    where = {"field": "vdj", "file": file}
    first = text.getvalue().split("\n", 1)[0]
    if "\t" not in first:
        raise InputError.single(
            "not a tab-separated AIRR rearrangement table (no tab in the header line)", **where
        )
    try:
        table = pd.read_csv(text, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as err:
        raise InputError.single(f"not a readable AIRR TSV ({err})", **where) from None
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in AIRR_REQUIRED if c not in table.columns]
    if "junction" not in table.columns and "cdr3" not in table.columns:
        missing.append("junction (or cdr3)")
    if missing:
        raise InputError.single(
            f"missing column(s) {', '.join(missing)}: expected an AIRR rearrangement TSV", **where
        )
    barcodes = pd.Index(table["cell_id"].astype(str).str.strip().unique(), name="barcode")
    locus = table["locus"].str.strip().str.upper()
    for call in ("v_call", "j_call", "c_call"):
        if call in table.columns:
            guess = table[call].str.strip().str[:3].str.upper()
            locus = locus.where(locus.isin(ALL_LOCI) | ~guess.isin(ALL_LOCI), guess)
    nt = _junction_nt(table, file)
    keep = as_bool(table["productive"]) & ~nt.str.lower().isin(_MISSING)
    for flag in ("is_cell", "high_confidence"):
        if flag in table.columns:
            keep &= as_bool(table[flag])
    aa = _junction_aa(table, nt)
    chains = pd.DataFrame(
        {
            "barcode": table["cell_id"].astype(str).str.strip(),
            "locus": locus,
            "cdr3": aa,
            "cdr3_nt": nt,
            "umis": _number(table, ("umi_count", "duplicate_count")),
            "reads": _number(table, ("consensus_count",)),
        }
    )[keep]
    return barcodes, chains.reset_index(drop=True)


def _junction_nt(table: pd.DataFrame, file: str) -> pd.Series:
    """The junction nucleotides (10x ``cdr3_nt``) of each row: ``junction``, else ``cdr3`` ± one codon."""
    empty = pd.Series("", index=table.index, dtype=object)
    junction = table["junction"].str.strip().str.upper() if "junction" in table else empty
    blank = junction.str.lower().isin(_MISSING)
    if not blank.any() or "cdr3" not in table:
        return junction.where(~blank, "")
    cdr3 = table["cdr3"].str.strip().str.upper()
    fill = cdr3.where(~cdr3.str.lower().isin(_MISSING), "")
    widened = pd.Series(False, index=table.index)
    if {"sequence", "cdr3_start", "cdr3_end"} <= set(table.columns):
        start = pd.to_numeric(table["cdr3_start"], errors="coerce")
        end = pd.to_numeric(table["cdr3_end"], errors="coerce")
        reverse = as_bool(table["rev_comp"]) if "rev_comp" in table else widened
        for i in table.index[blank & (fill != "") & start.notna() & end.notna()]:
            sequence = table.at[i, "sequence"].strip().upper()
            if reverse[i]:
                sequence = sequence[::-1].translate(str.maketrans("ACGTN", "TGCAN"))
            a, b = (
                int(start[i]) - 1 - 3,
                int(end[i]) + 3,
            )  # 1-based closed → with one codon each side
            if a >= 0 and b <= len(sequence) and sequence[a + 3 : b - 3] == fill[i]:
                fill[i] = sequence[a:b]
                widened[i] = True
    alone = blank & (fill != "") & ~widened
    if alone.any():
        logger.warning(
            "    VDJ %s: %d contigs have a cdr3 but no junction (nor sequence coordinates to widen it): "
            "their clone ids lack the conserved codons and will not match a 10x contig file's",
            Path(file).name,
            int(alone.sum()),
        )
    return junction.where(~blank, fill)


def _junction_aa(table: pd.DataFrame, nt: pd.Series) -> pd.Series:
    if "junction_aa" in table:
        given = table["junction_aa"].str.strip()
        return given.where(~given.str.lower().isin(_MISSING), nt.map(_translate))
    translated = nt.map(_translate)
    if "cdr3_aa" in table:
        return translated.where(translated.notna(), table["cdr3_aa"].str.strip())
    return translated


def _translate(nt: str) -> str | None:
    if not nt or len(nt) % 3:
        return None
    return "".join(_CODONS.get(nt[i : i + 3], "X") for i in range(0, len(nt), 3))


def _number(table: pd.DataFrame, names: tuple[str, ...]) -> pd.Series:
    for name in names:
        if name in table:
            values = pd.to_numeric(table[name], errors="coerce")
            if values.notna().any():
                return values.fillna(0)
    return pd.Series(0.0, index=table.index)
