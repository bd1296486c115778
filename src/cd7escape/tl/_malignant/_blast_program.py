"""The tumour's own program score (blast / early T-precursor program of T-ALL, B-precursor program of
B-ALL, aberrant plasma-cell genes of myeloma), for :func:`cd7escape.tl.call_malignant`.

Mature T and NK cells do not express the T-ALL genes; thymocyte-like T-ALL and ETP-ALL blasts do. Normal
precursors (CD34+ progenitors, B precursors) express some of them too, which is why the score is evidence
only for cells of the tumour's lineage (see ``_malignant``). The gene sets are per lineage (``_lineages``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..._lineages import LINEAGES, Lineage
from ._cell_types import check_antigen_free, set_score, without_antigen

# Specific genes are essentially absent from the lineage's mature blood/marrow cells; supporting ones are
# higher in blasts than in mature cells but present in some normal cells (``_lineages``, per lineage).
BLAST_SPECIFIC: tuple[str, ...] = LINEAGES["T"].blast_specific
BLAST_SUPPORTING: tuple[str, ...] = LINEAGES["T"].blast_supporting
# Blast score at which the evidence saturates / starts (calibrated on real mature T cells, carpall).
BLAST_LOW, BLAST_HIGH = 0.05, 0.15


def blast_score(
    logx, var_names: pd.Index, antigen: str, lineage: Lineage = LINEAGES["T"]
) -> np.ndarray:
    """Per-cell score of the tumour's own program in [0, 1] (T: blast/ETP; B: B-precursor; plasma: the
    aberrant myeloma genes); specific genes weigh twice the supporting ones."""
    specific = without_antigen(lineage.blast_specific, antigen)
    supporting = without_antigen(lineage.blast_supporting, antigen)
    check_antigen_free((*specific, *supporting), antigen)
    spec = set_score(logx, var_names, specific)
    supp = set_score(logx, var_names, supporting)
    return (2.0 * spec + supp) / 3.0


def blast_evidence(score: np.ndarray) -> np.ndarray:
    """Map a (smoothed) blast score to evidence in [0, 1]."""
    return np.clip((score - BLAST_LOW) / (BLAST_HIGH - BLAST_LOW), 0.0, 1.0)


# Mature T-cell genes that blasts lack (naive/memory/effector programs, immediate-early genes) and NOTCH
# targets that T-ALL blasts gain; used, with the blast program, by the per-cell likelihood ratio below.
MATURE_T: tuple[str, ...] = LINEAGES["T"].mature
NOTCH_TARGETS: tuple[str, ...] = LINEAGES["T"].tumour_targets
MIN_TRAINING_CELLS = 30


def program_llr(
    counts,
    total: np.ndarray,
    var_names: pd.Index,
    blast_cells: np.ndarray,
    normal_cells: np.ndarray,
    antigen: str,
    lineage: Lineage = LINEAGES["T"],
) -> np.ndarray | None:
    """Per-cell Poisson log-likelihood ratio, blast vs normal cell of the lineage (normal T in T-ALL), over
    the lineage's blast and mature gene panels.

    Gene rates of each class are estimated from the data: ``blast_cells`` (T-lineage cells whose
    neighbourhood is clearly malignant) and ``normal_cells`` (clearly normal T cells), with a pseudo-count
    of 0.5. The ratio weighs a cell's own counts by its depth: a T cell that sits in a cluster of blasts
    but shows none of their program at 1,500 UMIs is told apart from a blast, which smoothing alone
    cannot do. ``None`` when either class has fewer than 30 cells (e.g. no leukemia in the data).
    """
    if blast_cells.sum() < MIN_TRAINING_CELLS or normal_cells.sum() < MIN_TRAINING_CELLS:
        return None
    panel = without_antigen(
        (
            *lineage.blast_specific,
            *lineage.blast_supporting,
            *lineage.tumour_targets,
            *lineage.mature,
        ),
        antigen,
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
