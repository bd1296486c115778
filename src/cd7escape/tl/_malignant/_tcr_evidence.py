"""TCR clonotype evidence, for :func:`cd7escape.tl.call_malignant`.

A leukemia is one clone: its TCR (when it has a productive one) is expanded and carried by blast-like cells,
often at several timepoints. Polyclonal T cells are normal. An expanded clonotype is not by itself
leukemic (virus-specific and CAR-T clones expand too): a clonotype is called leukemic when its cells carry
the other evidence (blast program, CNV), or when its cells, summed, carry a copy-number change
(:func:`~cd7escape.tl._malignant._cnv.clone_copy_number`) and it is seen at more than one timepoint (when
the data hold more than one): mature-phenotype blasts lack the blast program, and a normal expansion
(CMV/EBV-specific, CAR-T) carries no copy-number change. Cells with no productive TCR get no TCR evidence
either way: immature/ETP blasts often lack one, and VDJ capture misses many cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# A clonotype carried by at least this many cells is "expanded".
MIN_EXPANDED = 3
# Mean non-TCR evidence of its cells above which an expanded clonotype is leukemic.
LEUKEMIC_MIN_EVIDENCE = 0.7
LEUKEMIC_COLUMNS = ["clone_id", "n_cells", "mean_evidence", "timepoints", "copy_number", "part_of"]


def clone_sizes(clone_id: pd.Series) -> np.ndarray:
    """Number of cells sharing each cell's clonotype (0 where there is no productive TCR)."""
    ids = clone_id.astype(object).where(clone_id.notna(), None)
    counts = ids.value_counts()
    return ids.map(counts).fillna(0).to_numpy(dtype=int)


def leukemic_by_copy_number(
    clone_id: pd.Series, altered: list[str], timepoint: pd.Series | None = None
) -> list[str]:
    """The clonotypes with a copy-number change that are leukemic on that ground.

    ``altered``: clonotypes whose cells carry a copy-number change. When the data hold more than one
    timepoint, a clonotype must be seen at two or more of them (a leukemia persists from baseline to
    relapse); with one timepoint (or none given) every altered clonotype qualifies.
    """
    altered = [str(c) for c in altered]
    if timepoint is None or not altered:
        return altered
    tp = np.asarray(timepoint.astype(str))
    if len(set(tp)) < 2:
        return altered
    ids = np.asarray(clone_id.astype(object).where(clone_id.notna(), "")).astype(str)
    return [c for c in altered if len(set(tp[ids == c])) >= 2]


def tcr_evidence(
    clone_id: pd.Series,
    other_evidence: np.ndarray,
    timepoint: pd.Series | None = None,
    *,
    copy_number_clones: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Per-cell TCR evidence: +1 leukemic clonotype, -1 another productive clonotype, 0 none.

    Parameters
    ----------
    clone_id
        Clonotype per cell (NaN when no productive chain).
    other_evidence
        Per-cell malignancy evidence in [0, 1] from everything except the TCR.
    timepoint
        Timepoint per cell, to report whether a leukemic clonotype is shared across timepoints.
    copy_number_clones
        Expanded clonotypes leukemic because their cells carry a copy-number change
        (:func:`leukemic_by_copy_number`), whatever their other evidence.

    Returns
    -------
    evidence, clone_expanded, table of leukemic clonotypes (size, mean evidence, timepoints,
    ``copy_number``: leukemic on the ground of a copy-number change, and ``part_of``: for a clonotype
    that is a leukemic one seen with fewer chains or another TRA, that one (:func:`same_clone`)).
    """
    sizes = clone_sizes(clone_id)
    has_tcr = sizes > 0
    expanded = sizes >= MIN_EXPANDED
    evidence = np.where(has_tcr, -1.0, 0.0)
    rows = []
    if expanded.any():
        df = pd.DataFrame({"clone": clone_id.to_numpy()[expanded], "ev": other_evidence[expanded]})
        if timepoint is not None:
            df["tp"] = timepoint.astype(str).to_numpy()[expanded]
        stats = df.groupby("clone", observed=True)["ev"].agg(["size", "mean"])
        by_cnv = set(copy_number_clones or ())
        leukemic = stats.index[
            (stats["mean"] >= LEUKEMIC_MIN_EVIDENCE) | stats.index.astype(str).isin(by_cnv)
        ]
        for clone in leukemic:
            tps = sorted(df.loc[df["clone"] == clone, "tp"].unique()) if "tp" in df else []
            rows.append(
                {
                    "clone_id": str(clone),
                    "n_cells": int(stats.loc[clone, "size"]),
                    "mean_evidence": float(stats.loc[clone, "mean"]),
                    "timepoints": ",".join(tps),
                    "copy_number": str(clone) in by_cnv,
                    "part_of": "",
                }
            )
        # the same clone seen with fewer chains (one chain not captured) or with the same TRB
        ids = clone_id.astype("string")
        part_of = same_clone(pd.unique(ids.dropna()), [str(c) for c in leukemic])
        for clone, parent in part_of.items():
            cells = (ids == clone).fillna(False).to_numpy(dtype=bool)
            tps = (
                sorted(set(timepoint.astype(str).to_numpy()[cells]))
                if timepoint is not None
                else []
            )
            rows.append(
                {
                    "clone_id": str(clone),
                    "n_cells": int(cells.sum()),
                    "mean_evidence": float(np.mean(other_evidence[cells])),
                    "timepoints": ",".join(tps),
                    "copy_number": False,
                    "part_of": parent,
                }
            )
        in_leukemic = ids.isin([*map(str, leukemic), *part_of]).fillna(False).to_numpy(dtype=bool)
        evidence[in_leukemic] = 1.0
    return evidence, expanded, pd.DataFrame(rows, columns=LEUKEMIC_COLUMNS)


def _chains(clone: str) -> frozenset[str]:
    return frozenset(part for part in str(clone).split(";") if part)


# loci with allelic exclusion: one rearranged chain per cell, so its sequence alone names the clone
ALLELICALLY_EXCLUDED = ("TRB:", "TRD:", "IGH:")


def _excluded_head(clone: str) -> str | None:
    """The clone id's first chain (``read_vdj`` names the first locus first) where its locus is
    allelically excluded (TRB, TRD, IGH), else ``None``."""
    head = str(clone).split(";")[0]
    return head if head.startswith(ALLELICALLY_EXCLUDED) else None


def clonotype_families(clone_id: pd.Series) -> pd.Series:
    """Each cell's clonotype, or the larger clonotype it is part of (:func:`same_clone`'s rule).

    Where one chain of a cell went uncaptured, its clone is named by the chains it has: the leukemic clone
    of a patient whose TRA is read in half its cells is two clonotypes of half the size
    (``TRB:x;TRA:y`` and ``TRB:x``), and a test of either alone has half the power (a semi-synthetic
    patient's 9p loss, log2 −1.0, reached |z| ≥ 5 in one 40-gene block of each half and was not called).
    Clonotypes are taken by size, largest first; one whose chains are all chains of an earlier family, or
    whose first chain of an allelically excluded locus (TRB, TRD, IGH) is an earlier family's, joins it
    (and brings its chains). A clonotype sharing only a TRA or a light chain with a family stays apart:
    those chains are not allelically excluded, and unrelated clones share them. NaN stays NaN.
    """
    ids = clone_id.astype("string")
    sizes = ids.value_counts()
    root_of: dict[str, str] = {}
    by_head: dict[str, str] = {}
    chains_of: dict[str, set[str]] = {}
    by_chain: dict[str, list[str]] = {}
    for clone, _ in sorted(sizes.items(), key=lambda kv: (-kv[1], str(kv[0]))):  # largest first
        clone = str(clone)
        chains = _chains(clone)
        head = _excluded_head(clone)
        root = by_head.get(head) if head is not None else None
        if root is None and chains:
            first = min(chains)
            root = next((r for r in by_chain.get(first, []) if chains <= chains_of[r]), None)
        if root is None:
            root = clone
            chains_of[root] = set()
        for chain in chains - chains_of[root]:
            chains_of[root].add(chain)
            by_chain.setdefault(chain, []).append(root)
        if head is not None:
            by_head.setdefault(head, root)
        root_of[clone] = root
    return ids.map(root_of).astype(object).where(ids.notna(), np.nan)


FAMILY_PREFIX = "family:"


def split_clone_families(clone_id: pd.Series, families: pd.Series) -> pd.Series:
    """``family:<largest clonotype>`` for the cells of a family of two or more clonotypes
    (:func:`clonotype_families`), NaN for the others: the units tested for copy number besides the
    clonotypes themselves."""
    ids = clone_id.astype("string")
    fam = families.astype("string")
    members = pd.DataFrame({"id": ids, "fam": fam}).dropna().groupby("fam")["id"].nunique()
    split = fam.isin(members.index[members >= 2]).fillna(False).to_numpy(dtype=bool)
    return (FAMILY_PREFIX + fam).astype(object).where(split, np.nan)


def same_clone(clones, leukemic: list[str]) -> dict[str, str]:
    """Clonotypes that are a leukemic clonotype seen differently, mapped to it.

    Clonotypes are ``'TRB:<nt>;TRA:<nt>'``, ``'TRB:<nt>'``, ``'IGH:<nt>;IGK:<nt>'``, … (as
    :func:`cd7escape.io.read_vdj` names them, the first locus first): a cell whose captured chains are all
    chains of a leukemic clonotype (one chain was not captured), or whose first chain is the leukemic
    clonotype's first chain of an allelically excluded locus (TRB, TRD, IGH: the nucleotide sequence; a
    second TRA or light chain was captured instead), carries the leukemic clone.
    """
    parents = [(c, _chains(c)) for c in leukemic]
    out = {}
    for clone in clones:
        clone = str(clone)
        if clone in leukemic:
            continue
        chains = _chains(clone)
        for parent, pchains in parents:
            head = _excluded_head(parent)
            shared_head = head is not None and clone.split(";")[0] == head
            if chains and (chains <= pchains or shared_head):
                out[clone] = parent
                break
    return out
