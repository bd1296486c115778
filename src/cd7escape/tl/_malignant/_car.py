"""CAR transgene detection, for :func:`cd7escape.tl.call_malignant`.

CAR-T cells are T cells (often CD7-negative after a CD7 CAR); they are a cell class of their own and
never tumour on the ground of being CAR-positive or antigen-negative.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy import stats

from ..._errors import InputError
from ...io._features import match_features

# Per-cell probability, under ambient contamination alone, below which a CAR count is called real
# (strong: vetoes malignancy) or suggestive (weak: makes a non-malignant T cell a CAR-T cell).
_AMBIENT_P = 1e-3
_AMBIENT_P_WEAK = 0.05
MIN_BACKGROUND_CELLS = 20  # cells of non-transducible lineages to learn the ambient CAR rate on


def find_car_feature(var_names: pd.Index, car_feature: str | None) -> str | None:
    """The var name of the CAR feature: exact name first, then a full regex match, then a search."""
    if car_feature is None:
        return None
    try:
        hits = match_features(var_names, car_feature)
    except re.error as err:
        raise InputError.single(
            f"not a feature name or valid regex: {err}", field="car_feature"
        ) from None
    if not hits:
        raise InputError.single(
            f"no feature named or matching {car_feature!r} in the data", field="car_feature"
        )
    if len(hits) > 1:
        raise InputError.single(
            f"{car_feature!r} matches several features ({', '.join(hits[:5])}); name one",
            field="car_feature",
        )
    return hits[0]


def detect_car(
    car_counts: np.ndarray,
    total_counts: np.ndarray,
    background: np.ndarray,
    *,
    car_min_counts: int | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Call CAR-positive cells: (strong, weak, info).

    With ``car_min_counts`` a cell is CAR-positive when it has at least that many CAR UMIs. Otherwise the
    threshold comes from the data: the ambient CAR rate per UMI is estimated on ``background`` cells (lineages
    that cannot carry the transgene: B, myeloid, erythroid) and a cell is CAR-positive when its count is
    improbable under ambient contamination alone (Poisson tail < 1e-3 given its library size), and ≥ 1 (no
    CAR UMI in the background: one UMI is a CAR — a pseudo-count there left real CAR-T cells with one CAR
    UMI undetected, and they were called malignant on real data);
    ``weak`` cells have a count with a tail < 0.05 (often a single UMI): CAR-T cells when nothing else
    says otherwise, but not enough to veto other evidence of malignancy.
    """
    car_counts = np.asarray(car_counts, dtype=float)
    total_counts = np.asarray(total_counts, dtype=float)
    if car_min_counts is not None:
        called = car_counts >= car_min_counts
        return called, called, {"method": "fixed", "min_counts": int(car_min_counts)}
    n_bg = int(background.sum())
    if n_bg >= MIN_BACKGROUND_CELLS and total_counts[background].sum() > 0:
        rate = car_counts[background].sum() / total_counts[background].sum()
    else:
        rate = 0.0
    lam = rate * total_counts
    # P(Y >= y) under ambient only; sf(y - 1) = P(Y >= y)
    p = stats.poisson.sf(car_counts - 1, np.maximum(lam, 1e-12))
    called = (car_counts >= 1) & (p < _AMBIENT_P)
    weak = (car_counts >= 1) & (p < _AMBIENT_P_WEAK)
    info = {
        "method": "ambient_poisson",
        "ambient_rate_per_umi": float(rate),
        "n_background_cells": n_bg,
        "p_threshold": _AMBIENT_P,
        "median_min_counts": int(np.median(strong_threshold(lam))),
    }
    return called, weak, info


def strong_threshold(lam: np.ndarray) -> np.ndarray:
    """Per cell, the fewest CAR UMIs that :func:`detect_car` calls strong at an ambient mean ``lam``."""
    return np.maximum(stats.poisson.isf(_AMBIENT_P, np.maximum(lam, 1e-12)) + 1, 1)


def ambient_positive_chance(
    car_counts: np.ndarray, total_counts: np.ndarray, background: np.ndarray, rate: float
) -> np.ndarray | None:
    """Per cell, the chance that ambient CAR transcripts alone reach its strong call (at the ambient
    ``rate`` :func:`detect_car` used): what a sample's CAR-positive cells of a lineage that is not
    transduced would number. The ambient rate here is (background CAR UMIs + 0.5) per background UMI:
    with no CAR UMI in the background it is not zero, only small, so that the one-UMI strong call does
    not make every stray read count. ``None`` without enough background cells."""
    car_counts = np.asarray(car_counts, dtype=float)
    total_counts = np.asarray(total_counts, dtype=float)
    exposure = float(total_counts[background].sum())
    if background.sum() < MIN_BACKGROUND_CELLS or exposure <= 0:
        return None
    cautious = (float(car_counts[background].sum()) + 0.5) / exposure
    threshold = strong_threshold(rate * total_counts)
    return stats.poisson.sf(threshold - 1, cautious * total_counts)
