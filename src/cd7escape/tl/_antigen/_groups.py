"""The antigen numbers of a group of malignant cells, measured with the patient's recorded antigen model.

The subclone table and the relapse decision both ask "which share of these cells does not express the antigen
at the level this leukemia had?"; they ask it here, with the options and the nuisance parameters
(``theta``, ambient rate) that :func:`cd7escape.tl.antigen_state` recorded, so one patient has one model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._logging import logger
from ..._uns import NS


@dataclass(frozen=True)
class AntigenModel:
    """The antigen model as :func:`cd7escape.tl.antigen_state` fitted it for this patient.

    The subclone and classification steps measure the antigen with the options and the patient-level
    nuisance parameters (NB size ``theta``, ambient rate) that the antigen step used, so that one
    configuration gives one model and the same ``theta`` everywhere.
    """

    alpha: float
    min_cells: int
    dim_fold: float
    theta: float
    ambient_rate: float
    ambient_source: str

    def options(self) -> dict[str, Any]:
        """The options that :func:`group_antigen` takes."""
        return {"alpha": self.alpha, "min_cells": self.min_cells, "dim_fold": self.dim_fold}


def recorded_antigen_model(adata, antigen: str) -> AntigenModel:
    """The antigen model recorded in ``uns['cd7escape']['antigen']``, fitting it first when absent.

    When :func:`cd7escape.tl.antigen_state` has not run for ``antigen`` (a notebook calling
    :func:`subclones` directly), it is run here with its defaults on the malignant cells per sample, and
    logged.
    """
    entry = adata.uns.get(NS, {}).get("antigen")
    params = entry.get("params", {}) if hasattr(entry, "get") else {}
    if not hasattr(params, "get") or str(params.get("antigen")) != antigen:
        from ._state import antigen_state

        logger.info(
            "no antigen model of %s in uns['%s']['antigen']: running antigen_state with its defaults",
            antigen,
            NS,
        )
        antigen_state(adata, antigen, groupby="sample" if "sample" in adata.obs else "timepoint")
        entry = adata.uns[NS]["antigen"]
        params = entry["params"]
    return AntigenModel(
        alpha=float(params["alpha"]),
        min_cells=int(params["min_cells"]),
        dim_fold=float(params["dim_fold"]),
        theta=float(entry["theta"]),
        ambient_rate=float(entry["ambient_rate"]),
        ambient_source=str(entry.get("ambient_source", "uns['cd7escape']['antigen']")),
    )


def anchored_fit(
    y: np.ndarray,
    s: np.ndarray,
    *,
    mu_ref: float,
    ambient: float,
    theta: float,
    alpha: float,
    interval: bool = True,
    weights: np.ndarray | None = None,
    null_theta: float | None = None,
) -> dict[str, float]:
    """Negative fraction of a group with the expressing level fixed at the patient's reference level.

    The free mixture (:func:`fit_antigen_mixture`) cannot tell a wholly negative group from one that expresses
    at the ambient level; anchoring the expressing component at the baseline malignant level ``mu_ref``
    (same kernel likelihood, one free parameter) answers "which share of these cells does not express the
    antigen at the level this leukemia had?". Profile-likelihood interval and boundary-corrected LRT.

    ``weights`` (non-negative, one per cell) give a weighted likelihood: cells that stand for more of a
    population count more. They are scaled to sum to the Kish effective sample size
    ``(sum w)^2 / sum w^2``, so the interval and the test are as wide as that many equally weighted
    cells would give (``n`` in the result is that size, rounded down).

    ``null_theta`` makes the negative component ``NB(s · ambient, null_theta)`` (ADT background counts,
    :func:`._protein.recorded_protein_model`) instead of ``Poisson(s · ambient)``.
    """
    from ._mixture_search import anchored_search
    from ._model import COMPRESS_ABOVE, _Group, chi2_half_quantile, chi2_pvalue

    w = None
    if weights is not None:
        keep = np.asarray(weights, float) > 0
        y, s, w = np.asarray(y)[keep], np.asarray(s)[keep], np.asarray(weights, float)[keep]
        if w.size:
            w = w * (w.sum() / (w @ w))
    n = int(y.size) if w is None else int(np.floor(w.sum() + 1e-9))
    if y.size == 0:
        return {"pi": np.nan, "ci_low": np.nan, "ci_high": np.nan, "pval": np.nan, "n": 0}
    y, s = np.asarray(y, float), np.asarray(s, float)
    grp = (
        _Group.compressed(y, s, ambient, theta, null_theta, weights=w)
        if y.size > COMPRESS_ABOVE
        else _Group(y, s, ambient, theta, w=w, null_theta=null_theta)
    )
    drop = chi2_half_quantile(1 - alpha) if interval else np.nan
    pi, lmax, ll0, lo, hi = anchored_search(1e-5, drop, *grp.search_terms(mu_ref, anchor=mu_ref))
    pval = chi2_pvalue(max(2 * (lmax - ll0), 0.0))
    return {"pi": float(pi), "ci_low": float(lo), "ci_high": float(hi), "pval": pval, "n": n}


def group_antigen(
    y: np.ndarray,
    s: np.ndarray,
    *,
    mu_ref: float,
    ambient: float,
    theta: float,
    alpha: float,
    min_cells: int,
    dim_fold: float,
    interval: bool = True,
    null_theta: float | None = None,
) -> dict[str, Any]:
    """Antigen numbers of one group: anchored negative fraction, free-fit level, naive zeros and a state.

    ``alpha``, ``min_cells`` and ``dim_fold`` are the antigen model's options
    (:meth:`AntigenModel.options`); ``null_theta`` as in :func:`anchored_fit`.
    """
    from ._model import fit_antigen_mixture

    n = int(y.size)
    if n < min_cells:
        return {
            "n": n,
            "state": "too_few_cells" if n else "absent",
            "zero_fraction": float(np.mean(y == 0)) if n else np.nan,
        }
    an = anchored_fit(
        y, s, mu_ref=mu_ref, ambient=ambient, theta=theta, alpha=alpha, interval=interval,
        null_theta=null_theta,
    )  # fmt: skip
    free = fit_antigen_mixture(
        y, s, ambient_rate=ambient, theta=theta, alpha=alpha, interval=False, null_theta=null_theta
    )
    mu_hi = float(free.mu_ci[1]) if np.isfinite(free.mu_ci[1]) else float(free.mu)
    if an["pval"] < alpha and an["pi"] >= 0.5:
        state = "negative"
    elif free.pi < 0.5 and mu_hi < dim_fold * mu_ref:
        state = "dim"
    elif an["pval"] < alpha and an["ci_low"] > 0.05:
        state = "partly_negative"
    elif an["ci_high"] < 0.2:
        state = "positive"
    else:
        state = "uncertain"
    return {
        "n": n,
        "pi": an["pi"],
        "ci_low": an["ci_low"],
        "ci_high": an["ci_high"],
        "lrt_pvalue": an["pval"],
        "mu": float(free.mu),
        "mu_ci_low": float(free.mu_ci[0]),
        "mu_ci_high": mu_hi,
        "mu_ratio": float(free.mu / mu_ref),
        "pi_free": float(free.pi),
        "zero_fraction": float(free.zero_fraction),
        "dropout": float(free.dropout),
        "state": state,
    }


def reference_level(
    adata, y, s, mal, bt, *, ambient: float, theta: float, min_cells: int
) -> tuple[float, str]:
    """Expression rate of expressing baseline malignant cells (falls back on normal T cells)."""
    from ._model import fit_antigen_mixture

    for mask, what in (
        (mal & bt, "baseline malignant cells"),
        (_normal_t(adata) & ~mal, "normal T cells"),
    ):
        if mask.sum() >= min_cells:
            f = fit_antigen_mixture(
                y[mask], s[mask], ambient_rate=ambient, theta=theta, interval=False
            )
            if np.isfinite(f.mu) and f.mu > 5 * ambient and f.pi < 0.95:
                return float(f.mu), what
    return float(
        max(10 * ambient, y[mal].sum() / max(s[mal].sum(), 1))
    ), "mean rate of malignant cells"


def _normal_t(adata) -> np.ndarray:
    if "cell_class" in adata.obs:
        return (adata.obs["cell_class"].astype(str) == "normal_T").to_numpy()
    return np.zeros(adata.n_obs, dtype=bool)


def negative_posterior(
    y: np.ndarray,
    s: np.ndarray,
    *,
    pi: float,
    mu_ref: float,
    ambient: float,
    theta: float,
    null_theta: float | None = None,
) -> np.ndarray:
    """Per-cell ``P(negative | y)`` under the anchored mixture with negative share ``pi``.

    The expressing component is ``NB(s · mu_ref, theta)``, the negative one ``Poisson(s · ambient)``: a zero
    count is negative evidence only as far as the cell's depth makes a zero unlikely for an expressing cell.
    With ``null_theta`` the negative component is ``NB(s · ambient, null_theta)`` (ADT background).
    """
    from scipy import special

    y, s = np.asarray(y, float), np.asarray(s, float)
    pi = float(np.clip(pi, 1e-6, 1 - 1e-6))
    a = max(ambient, 1e-12)
    l0 = y * np.log(s * a) - s * a if null_theta is None else _log_nb(y, s * a, float(null_theta))
    l1 = _log_nb(y, s * mu_ref, theta)
    return special.expit(np.log(pi / (1 - pi)) + l0 - l1)


def _log_nb(y: np.ndarray, m: np.ndarray, theta: float) -> np.ndarray:
    """log NB(y; mean m, size theta) without the ``-lgamma(y + 1)`` term (it cancels in ratios)."""
    from scipy import special

    return (
        special.gammaln(y + theta) - special.gammaln(theta) + theta * np.log(theta / (theta + m))
        + y * np.log(m / (theta + m))
    )  # fmt: skip
