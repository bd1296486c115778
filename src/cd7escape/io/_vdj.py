"""Receptor contigs (10x ``filtered_contig_annotations.csv`` or AIRR TSV) → one row per barcode with a clonotype.

A clonotype is the productive chain of each receptor locus of the run's lineage (``Lineage.loci``: TRB,
TRA, TRD, TRG for T cells; IGH, IGK, IGL for B and plasma cells), one chain per locus, written
``'<locus>:<cdr3 nt>'`` and joined with ``;`` in the order of the loci: ``'TRB:<nt>;TRA:<nt>'`` for an αβ
T cell, ``'IGH:<nt>;IGK:<nt>'`` for a B cell. The CDR3 nucleotide sequence is 10x's ``cdr3_nt``: the
IMGT junction, from the conserved cysteine codon to the J phenylalanine/tryptophan codon inclusive (the
AIRR ``junction``), so files of either format name a clone alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .._errors import InputError
from .._lineages import B_LOCI, T_LOCI
from .._logging import logger
from ._text_files import as_bool, open_text

REQUIRED = ("barcode", "chain", "productive", "cdr3", "cdr3_nt", "umis")
#: every receptor locus a contig table may name
ALL_LOCI: tuple[str, ...] = (*T_LOCI, *B_LOCI)
#: the columns of a chain table (one row per contig that passed the filters), whatever its format
CHAIN_COLUMNS = ("barcode", "locus", "cdr3", "cdr3_nt", "umis", "reads")
_MISSING = {"", "none", "nan", "na"}


def vdj_columns(loci: Sequence[str] = T_LOCI) -> tuple[str, ...]:
    """The obs columns a receptor table adds for ``loci``: ``clone_id``, ``receptor_chains``, ``<locus>_cdr3``."""
    return ("clone_id", "receptor_chains", *(cdr3_column(locus) for locus in loci))


def cdr3_column(locus: str) -> str:
    """``'trb_cdr3'`` for ``'TRB'``: the amino-acid CDR3 column of a locus."""
    return f"{locus.lower()}_cdr3"


def read_vdj(path: str | Path, *, loci: Sequence[str] = T_LOCI) -> pd.DataFrame:
    """Clonotypes per barcode from a 10x ``filtered_contig_annotations.csv`` (VDJ-T, VDJ-T-GD or VDJ-B).

    Only productive contigs of ``loci`` (with ``is_cell`` and ``high_confidence`` true when those columns
    exist, and a CDR3 nucleotide sequence) define clonotypes. When a cell has several productive chains of
    one locus, the one with most UMIs (then reads) is kept; a B cell with both a κ and a λ light chain keeps
    the best of each. An AIRR rearrangement TSV (a header with ``cell_id`` and ``locus``) is read by
    :func:`read_airr` instead.

    Parameters
    ----------
    path
        The CSV (optionally gzipped). ``True``/``true`` booleans are both understood.
    loci
        Receptor loci that make the clonotype, in the order the clone id lists them
        (``Config.lineage_spec.loci``; T cells: TRB, TRA, TRD, TRG; B and plasma cells: IGH, IGK, IGL).

    Returns
    -------
    DataFrame indexed by ``barcode`` (every barcode in the file) with ``clone_id`` (``'TRB:<cdr3
    nt>;TRA:<cdr3 nt>'``, ``'TRB:<nt>'``, ``'IGH:<nt>;IGK:<nt>'``, …: the loci present, in ``loci``
    order; NaN when the cell has no productive chain of ``loci``), ``receptor_chains`` (the loci present,
    sorted and joined by ``+``: ``'TRA+TRB'``, ``'IGH+IGK'``, or ``'none'``) and one amino-acid column
    ``<locus>_cdr3`` per locus (``trb_cdr3``, ``tra_cdr3``, …; NaN when absent). An empty (0-byte) file
    gives an empty frame (callers warn: a failed VDJ library). A file whose productive contigs are all of
    other loci (a VDJ-T library in a B-ALL run) gives no clonotypes and a logged warning naming the loci
    found and expected; the warning is also in ``DataFrame.attrs['warning']``.

    Raises
    ------
    InputError
        Not UTF-8, not a CSV, or a required column missing.
    """
    return read_receptors([path], loci=loci)


def read_receptors(paths: Sequence[str | Path], *, loci: Sequence[str] = T_LOCI) -> pd.DataFrame:
    """Clonotypes per barcode from one or several contig files of one sample, each 10x or AIRR.

    Several files (a ``cellranger multi`` sample's ``vdj_t`` and ``vdj_t_gd`` libraries) are merged per
    barcode before the best chain of each locus is taken. Returns the frame of :func:`read_vdj`.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no contig file given")
    barcodes: list[pd.Index] = []
    chains: list[pd.DataFrame] = []
    for path in paths:
        found = read_chains(path)
        if found is None:
            logger.info("    VDJ file %s is empty: no clonotypes", path)
            continue
        barcodes.append(found[0])
        chains.append(found[1])
    if not barcodes:
        return _empty(loci)
    index = barcodes[0]
    for more in barcodes[1:]:
        index = index.append(more[~more.isin(index)])
    table = pd.concat(chains, ignore_index=True) if len(chains) > 1 else chains[0]
    return clonotypes(index, table, loci=loci, name=", ".join(p.name for p in paths))


def read_chains(path: str | Path) -> tuple[pd.Index, pd.DataFrame] | None:
    """Every barcode of a contig file and its contigs that may define a clonotype (:data:`CHAIN_COLUMNS`).

    The format is recognised from the header: ``cell_id`` and ``locus`` → AIRR rearrangement TSV,
    otherwise a 10x contig CSV. ``None`` for an empty (0-byte or blank) file.
    """
    path = Path(path)
    text = open_text(path, field="vdj")
    if not text.getvalue().strip():
        return None
    if is_airr_header(text.getvalue().split("\n", 1)[0]):
        from ._airr import airr_chains

        return airr_chains(text, file=str(path))
    return _contig_chains(text, file=str(path))


def is_airr_header(line: str) -> bool:
    """Whether the first line of a file is an AIRR rearrangement header (tab-separated, cell_id and locus)."""
    columns = {c.strip().strip('"') for c in line.rstrip("\r\n").split("\t")}
    return {"cell_id", "locus"} <= columns


def _contig_chains(text, *, file: str) -> tuple[pd.Index, pd.DataFrame]:
    try:
        table = pd.read_csv(text, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as err:
        raise InputError.single(f"not a readable CSV ({err})", field="vdj", file=file) from None
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        airr = "\t" in text.getvalue().split("\n", 1)[0]
        raise InputError.single(
            f"missing column(s) {', '.join(missing)}: expected a 10x filtered_contig_annotations.csv"
            + (
                " (or an AIRR rearrangement TSV, whose header has cell_id and locus)"
                if airr
                else ""
            ),
            field="vdj",
            file=file,
        )
    barcodes = pd.Index(table["barcode"].unique(), name="barcode")
    keep = as_bool(table["productive"])
    for flag in ("is_cell", "high_confidence"):
        if flag in table.columns:
            keep &= as_bool(table[flag])
    keep &= ~table["cdr3_nt"].str.strip().str.lower().isin(_MISSING)
    chains = table.loc[keep, ["barcode", "chain", "cdr3", "cdr3_nt"]].rename(
        columns={"chain": "locus"}
    )
    chains["locus"] = chains["locus"].str.strip().str.upper()
    chains["umis"] = pd.to_numeric(table.loc[keep, "umis"], errors="coerce").fillna(0)
    chains["reads"] = (
        pd.to_numeric(table.loc[keep, "reads"], errors="coerce").fillna(0)
        if "reads" in table.columns
        else 0
    )
    return barcodes, chains.reset_index(drop=True)


def clonotypes(
    barcodes: pd.Index, chains: pd.DataFrame, *, loci: Sequence[str] = T_LOCI, name: str = ""
) -> pd.DataFrame:
    """The frame of :func:`read_vdj` from a chain table (:data:`CHAIN_COLUMNS`) of any format."""
    loci = tuple(loci)
    barcodes = pd.Index(barcodes, name="barcode")
    found = sorted(set(chains["locus"]))
    warning = None
    ours = chains["locus"].isin(loci)
    if len(chains) and not ours.any():
        warning = (
            f"VDJ {name}: productive contigs of {', '.join(found)} only, none of the run's loci "
            f"{', '.join(loci)} (a library of another lineage?): no clonotypes"
        )
        logger.warning("    %s", warning)
    elif (~ours).any():
        logger.info(
            "    VDJ %s: %d contigs of other loci (%s) ignored",
            name,
            int((~ours).sum()),
            ", ".join(sorted(set(chains.loc[~ours, "locus"]))),
        )
    chains = chains[ours].sort_values(["umis", "reads"], ascending=False, kind="stable")
    best = chains.drop_duplicates(["barcode", "locus"], keep="first")
    out = pd.DataFrame(index=barcodes)
    clone = pd.Series("", index=barcodes, dtype=object)
    present: list[pd.Series] = []
    aa: dict[str, pd.Series] = {}
    for locus in loci:
        chosen = best[best["locus"] == locus].set_index("barcode")
        nt = chosen["cdr3_nt"].reindex(barcodes)
        has = nt.notna()
        piece = locus + ":" + nt.fillna("")
        clone = clone.where(~has, clone.where(clone == "", clone + ";") + piece)
        present.append(has.rename(locus))
        aa[cdr3_column(locus)] = chosen["cdr3"].reindex(barcodes)
    has_any = clone != ""
    out["clone_id"] = clone.where(has_any)
    out["receptor_chains"] = _chain_names(pd.concat(present, axis=1) if present else None, barcodes)
    for column, values in aa.items():
        out[column] = values
    if warning:
        out.attrs["warning"] = warning
    logger.info(
        "    VDJ %s: %d barcodes, %d with a productive %s chain, %d clonotypes",
        name,
        len(out),
        int(has_any.sum()),
        "/".join(loci),
        out["clone_id"].nunique(),
    )
    return out


def _chain_names(present: pd.DataFrame | None, barcodes: pd.Index) -> pd.Series:
    """``'TRA+TRB'``-style names of the loci each barcode has (sorted), ``'none'`` without any."""
    names = pd.Series("", index=barcodes, dtype=object)
    if present is None:
        return names.replace("", "none")
    for locus in sorted(present.columns):
        has = present[locus]
        names = names.where(~has, names.where(names == "", names + "+") + locus)
    return names.where(names != "", "none")


def _empty(loci: Sequence[str] = T_LOCI) -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=object) for c in vdj_columns(loci)},
        index=pd.Index([], name="barcode"),
    )
