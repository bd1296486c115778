"""TCR clonotype evidence, for :func:`cd7escape.tl.call_malignant`.

A leukemia is one clone: its TCR (when it has a productive one) is expanded and carried by blast-like cells,
often at several timepoints. Polyclonal T cells are normal. An expanded clonotype is not by itself
leukemic (virus-specific and CAR-T clones expand too): a clonotype is called leukemic when its cells carry
the other evidence (blast program, CNV). Cells with no productive TCR get no TCR evidence either way:
immature/ETP blasts often lack one, and VDJ capture misses many cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# A clonotype carried by at least this many cells is "expanded".
MIN_EXPANDED = 3
# Mean non-TCR evidence of its cells above which an expanded clonotype is leukemic.
LEUKEMIC_MIN_EVIDENCE = 0.7


def clone_sizes(clone_id: pd.Series) -> np.ndarray:
    """Number of cells sharing each cell's clonotype (0 where there is no productive TCR)."""
    ids = clone_id.astype(object).where(clone_id.notna(), None)
    counts = ids.value_counts()
    return ids.map(counts).fillna(0).to_numpy(dtype=int)


def tcr_evidence(
    clone_id: pd.Series,
    other_evidence: np.ndarray,
    timepoint: pd.Series | None = None,
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

    Returns
    -------
    evidence, clone_expanded, table of leukemic clonotypes (size, mean evidence, timepoints).
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
        leukemic = stats.index[stats["mean"] >= LEUKEMIC_MIN_EVIDENCE]
        for clone in leukemic:
            tps = sorted(df.loc[df["clone"] == clone, "tp"].unique()) if "tp" in df else []
            rows.append(
                {
                    "clone_id": str(clone),
                    "n_cells": int(stats.loc[clone, "size"]),
                    "mean_evidence": float(stats.loc[clone, "mean"]),
                    "timepoints": ",".join(tps),
                }
            )
        in_leukemic = clone_id.isin(leukemic).to_numpy()
        evidence[in_leukemic] = 1.0
    return (
        evidence,
        expanded,
        pd.DataFrame(rows, columns=["clone_id", "n_cells", "mean_evidence", "timepoints"]),
    )
