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
