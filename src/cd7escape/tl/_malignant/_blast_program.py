"""Blast / early T-precursor (ETP) program score, for :func:`cd7escape.tl.call_malignant`.

Mature T and NK cells do not express these genes; thymocyte-like T-ALL and ETP-ALL blasts do. Normal
precursors (CD34+ progenitors, B precursors) express some of them too, which is why the score is evidence
only for T-lineage cells (see ``_malignant``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._cell_types import check_antigen_free, set_score, without_antigen

# Specific: essentially absent from mature blood/marrow T and NK cells.
BLAST_SPECIFIC: tuple[str, ...] = (
    "DNTT",
    "CD1A",
    "CD1E",
    "CD34",
    "KIT",
    "PTCRA",
    "RAG1",
    "RAG2",
    "CD1B",
)
# Supporting: higher in blasts than in mature T cells, but present in some normal cells.
BLAST_SUPPORTING: tuple[str, ...] = (
    "CD99",
    "SOX4",
    "MYB",
    "LMO2",
    "LYL1",
    "HHEX",
    "BAALC",
    "MEF2C",
    "TAL1",
)
# Blast score at which the evidence saturates / starts (calibrated on real mature T cells, carpall).
BLAST_LOW, BLAST_HIGH = 0.05, 0.15


def blast_score(logx, var_names: pd.Index, antigen: str) -> np.ndarray:
    """Per-cell blast/ETP program score in [0, 1] (specific genes weigh twice the supporting ones)."""
    specific = without_antigen(BLAST_SPECIFIC, antigen)
    supporting = without_antigen(BLAST_SUPPORTING, antigen)
    check_antigen_free((*specific, *supporting), antigen)
    spec = set_score(logx, var_names, specific)
    supp = set_score(logx, var_names, supporting)
    return (2.0 * spec + supp) / 3.0


def blast_evidence(score: np.ndarray) -> np.ndarray:
    """Map a (smoothed) blast score to evidence in [0, 1]."""
    return np.clip((score - BLAST_LOW) / (BLAST_HIGH - BLAST_LOW), 0.0, 1.0)


# Mature T-cell genes that blasts lack (naive/memory/effector programs, immediate-early genes) and NOTCH
# targets that T-ALL blasts gain; used, with the blast program, by the per-cell likelihood ratio below.
MATURE_T: tuple[str, ...] = (
    "CCR7", "SELL", "IL7R", "GZMA", "GZMB", "GZMK", "PRF1", "CCL5", "KLRB1", "NKG7", "GNLY",
    "CD69", "FOS", "JUN", "CD27", "CD28",
)  # fmt: skip
NOTCH_TARGETS: tuple[str, ...] = ("HES1", "NOTCH3")
MIN_TRAINING_CELLS = 30


def program_llr(
    counts,
    total: np.ndarray,
    var_names: pd.Index,
    blast_cells: np.ndarray,
    normal_cells: np.ndarray,
    antigen: str,
) -> np.ndarray | None:
    """Per-cell Poisson log-likelihood ratio, blast vs normal T, over the blast and mature-T gene panels.

    Gene rates of each class are estimated from the data: ``blast_cells`` (T-lineage cells whose
    neighbourhood is clearly malignant) and ``normal_cells`` (clearly normal T cells), with a pseudo-count
    of 0.5. The ratio weighs a cell's own counts by its depth: a T cell that sits in a cluster of blasts
    but shows none of their program at 1,500 UMIs is told apart from a blast, which smoothing alone
    cannot do. ``None`` when either class has fewer than 30 cells (e.g. no leukemia in the data).
    """
    if blast_cells.sum() < MIN_TRAINING_CELLS or normal_cells.sum() < MIN_TRAINING_CELLS:
        return None
    panel = without_antigen(
        (*BLAST_SPECIFIC, *BLAST_SUPPORTING, *NOTCH_TARGETS, *MATURE_T), antigen
    )
    check_antigen_free(panel, antigen)
    idx = var_names.get_indexer([g for g in panel if g in var_names])
    idx = idx[idx >= 0]
    if idx.size == 0:
        return None
    y = counts[:, idx]
    y = np.asarray(y.toarray() if hasattr(y, "toarray") else y, dtype=float)
    mu_b = (y[blast_cells].sum(axis=0) + 0.5) / total[blast_cells].sum()
    mu_n = (y[normal_cells].sum(axis=0) + 0.5) / total[normal_cells].sum()
    return y @ np.log(mu_b / mu_n) - total * float((mu_b - mu_n).sum())
