"""Background/foreground model of the antigen's ADT (CITE-seq) counts, and its combination with RNA.

ADT counts of a cell that lacks the surface protein are background: free antibody in the droplet and
non-specific binding. Their distribution is fitted as a negative binomial ``NB(m0, theta0)`` on reference
cells that carry no protein (lineages that never express the antigen, or empty droplets), in the spirit of
dsb (Mulè et al. 2022). A group of cells is then the mixture

* protein-negative: ``x_i ~ NB(m0, theta0)`` (the background, fixed);
* protein-positive: ``x_i ~ NB(mu, theta1)`` with ``mu >= 3 m0`` (foreground plus background);

fitted by the same profile-likelihood machinery as the RNA model (``pi`` = protein-negative fraction, its
interval, the LRT of ``pi = 0`` and per-cell posteriors). ``theta1`` is the group's own maximum-likelihood
value (ADT counts are large enough to identify it).

The RNA and protein calls are kept separate, never multiplied into one posterior: a cell whose RNA says
"expressing" and whose protein says "absent" is the finding itself (post-transcriptional loss, epitope
masking by the CAR, PEBL-like retention), not a contradiction to average away.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special

from ._model import AntigenFit, _as_arrays, _fit

__all__ = [
    "combined_cell_state",
    "fit_protein_mixture",
    "protein_background",
    "protein_column",
    "recorded_protein_model",
]


def protein_background(counts) -> tuple[float, float]:
    """``(mean, theta)`` of a negative binomial fitted by maximum likelihood to background ADT counts."""
    x = np.asarray(counts, dtype=float).ravel()
    if x.size < 10:
        raise ValueError("at least 10 background cells are needed for the ADT background")
    m = max(float(x.mean()), 1e-3)
    var = float(x.var())
    th0 = m * m / (var - m) if var > m else 100.0

    def negll(v: float) -> float:
        th = np.exp(v)
        return -float(
            np.sum(
                special.gammaln(x + th)
                - special.gammaln(th)
                + th * (np.log(th) - np.log(th + m))
                + x * (np.log(m) - np.log(th + m))
            )
        )

    res = optimize.minimize_scalar(
        negll, bounds=(np.log(0.05), np.log(1e4)), method="bounded", options={"xatol": 1e-3}
    )
    th = float(np.exp(res.x)) if np.isfinite(res.fun) else th0
    return m, th


def fit_protein_mixture(
    counts,
    *,
    background: tuple[float, float],
    theta: float | None = None,
    alpha: float = 0.05,
    interval: bool = True,
) -> AntigenFit:
    """Protein-negative fraction of a group from the antigen's ADT counts.

    Parameters
    ----------
    counts
        ADT counts of the antigen per cell.
    background
        ``(mean, theta)`` of the background (:func:`protein_background`).
    theta
        NB size of the foreground; the group's maximum-likelihood value when None.
    alpha
        1 - coverage of intervals.
    interval
        Compute the profile-likelihood interval.

    Returns
    -------
    AntigenFit, with ``mu`` the mean ADT count of protein-positive cells and ``ambient_rate`` the background
    mean.
    """
    x, _ = _as_arrays(counts, np.ones(np.size(counts)))
    s = np.ones_like(x)
    m0, t0 = background
    if theta is None:
        if x.size == 0:
            theta = 5.0
        else:
            res = optimize.minimize_scalar(
                lambda v: -_fit(x, s, m0, float(np.exp(v)), alpha, False, t0).loglik,
                bounds=(np.log(0.3), np.log(300.0)),
                method="bounded",
                options={"xatol": 0.02},
            )
            theta = float(np.exp(res.x))
    return _fit(x, s, m0, float(theta), alpha, interval, t0)


def combined_cell_state(
    p_neg_rna: np.ndarray, p_neg_protein: np.ndarray, threshold: float = 0.8
) -> np.ndarray:
    """Per-cell RNA/protein call: 'RNA+ protein+', 'RNA+ protein-', 'RNA- protein+', 'RNA- protein-', or
    'uncertain' when either posterior lies between ``1 - threshold`` and ``threshold`` (or is missing)."""
    r = np.asarray(p_neg_rna, float)
    p = np.asarray(p_neg_protein, float)
    out = np.full(r.shape, "uncertain", dtype=object)
    r_pos, r_neg = r < 1 - threshold, r > threshold
    p_pos, p_neg = p < 1 - threshold, p > threshold
    out[r_pos & p_pos] = "RNA+ protein+"
    out[r_pos & p_neg] = "RNA+ protein-"
    out[r_neg & p_pos] = "RNA- protein+"
    out[r_neg & p_neg] = "RNA- protein-"
    return out


def protein_column(prot, name: str) -> str | None:
    """The column of ``obsm['protein']`` named ``name``, or the one named ``<name>_…`` (e.g. a TotalSeq suffix)."""
    cols = [str(c) for c in getattr(prot, "columns", [])]
    if name in cols:
        return name
    hits = [c for c in cols if c.lower().startswith(name.lower() + "_")]
    return hits[0] if len(hits) == 1 else None


def recorded_protein_model(adata, reference: np.ndarray, *, min_cells: int) -> dict | None:
    """The protein model the relapse decision measures with, or None when no ADT model was recorded.

    :func:`cd7escape.tl.antigen_state` with ``antigen_protein`` records the ADT background ``(mean,
    theta)``; the foreground (protein-positive cells' mean ADT count and NB size) is fitted here on the
    ``reference`` cells (baseline malignant cells), as the RNA decision anchors at the baseline blasts'
    expression level. Returns ``counts`` (the ADT counts of every cell), ``ambient`` (background mean),
    ``null_theta`` (background size), ``theta`` and ``mu_ref`` (foreground), ``feature`` and the sources.
    """
    from ..._uns import NS

    entry = adata.uns.get(NS, {}).get("antigen", {})
    params = entry.get("params", {}) if hasattr(entry, "get") else {}
    feature = params.get("antigen_protein") if hasattr(params, "get") else None
    bg = entry.get("protein_background") if hasattr(entry, "get") else None
    if feature in (None, "None") or bg is None or "protein" not in adata.obsm:
        return None
    prot = adata.obsm["protein"]
    col = protein_column(prot, str(feature))
    if col is None:
        return None
    x = np.asarray(prot[col], dtype=float)
    m0, t0 = float(bg["mean"]), float(bg["theta"])
    ref = np.asarray(reference, bool)
    if ref.sum() < min_cells:
        return None
    fit = fit_protein_mixture(x[ref], background=(m0, t0), interval=False)
    if not np.isfinite(fit.mu) or fit.mu <= m0:
        # the baseline blasts carry no protein above background: there is no level to lose
        return None
    return {
        "feature": col,
        "counts": x,
        "ambient": m0,
        "null_theta": t0,
        "theta": float(fit.theta),
        "mu_ref": float(fit.mu),
        "mu_ref_source": f"protein-positive baseline malignant cells ({int(ref.sum())} cells)",
        "ambient_source": f"ADT background ({bg.get('source', 'recorded')})",
    }
