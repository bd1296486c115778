"""Negative-binomial pieces shared by the per-cell likelihood ratios of call_malignant (counts of a region,
of a lineage's specific transcripts, at a cell's depth): a method-of-moments dispersion and the
log-likelihood, without ``log y!`` (it cancels in every ratio taken here)."""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln


def dispersion(y: np.ndarray, mu: np.ndarray) -> float:
    """Method-of-moments NB dispersion: excess variance over Poisson per squared mean (≥ 0)."""
    den = float(np.sum(mu**2))
    if den <= 0:
        return 0.0
    return max(float(np.sum((y - mu) ** 2 - mu)) / den, 0.0)


def log_nb(y: np.ndarray, mu: np.ndarray, phi: float) -> np.ndarray:
    """NB log-likelihood of ``y`` at means ``mu`` and dispersion ``phi`` without ``log y!``; Poisson at 0."""
    if phi <= 0:
        return y * np.log(mu) - mu
    r = 1.0 / phi
    return gammaln(y + r) - gammaln(r) + y * np.log(mu / (mu + r)) + r * np.log(r / (mu + r))


def nb_llr(y: np.ndarray, mu1: np.ndarray, mu0: np.ndarray, phi: float) -> np.ndarray:
    """``log_nb(y, mu1, phi) - log_nb(y, mu0, phi)`` in closed form (the gamma terms cancel)."""
    if phi <= 0:
        return y * np.log(mu1 / mu0) - (mu1 - mu0)
    r = 1.0 / phi
    return y * np.log(mu1 / mu0) + (y + r) * np.log((mu0 + r) / (mu1 + r))
