"""Background/foreground model of the antigen's ADT (CITE-seq) counts, and its combination with RNA.

ADT counts of a cell that lacks the surface protein are background: free antibody in the droplet and
non-specific binding. Their distribution is fitted as a negative binomial ``NB(m0, theta0)`` on reference
cells that carry no protein (lineages that never express the antigen, or empty droplets), in the spirit of
dsb (Mulè et al. 2022). A group of cells is then the mixture

* protein-negative: ``x_i ~ NB(m0, theta0)`` (the background, fixed);
* protein-positive: background plus specific signal, ``x_i ~ NB(m0, theta0) * NB(f, k)`` (the discrete
  convolution: a Poisson count of a background gamma plus a signal gamma), ``f >= 2 m0`` (the positive
  mean at least three times the background) and ``k >= 1``;

``pi`` = protein-negative fraction, by maximum likelihood over ``(pi, f, k)``, its interval by the profile
likelihood with ``f`` and ``k`` maximised at each ``pi``, the LRT of ``pi = 0`` and per-cell posteriors.

Why this form. The earlier foreground ``NB(mu, theta1)``, with ``theta1`` the group's estimate held fixed
inside the interval, covered the truth in 0.907 of 1,080 simulated groups (``benchmarks/
protein_calibration.py``, seeds 2-4): an NB with a small size puts mass near zero, where positive cells
never are (they carry the background at least), so where the signal is a low-shape gamma it took negative
cells in (intervals below the truth: 15 % of groups with signal shape < 2.5), and holding ``theta1`` fixed
left out how ``pi`` and the foreground's spread trade off. The convolution has the floor that positive
cells have; profiling ``(f, k)`` carries their uncertainty. ``k >= 1`` keeps ``pi`` identifiable: a signal
whose most common value is zero (``k < 1``) is a second negative population, not a positive one.
Errors of the background fit (300 reference cells) are not propagated; they cost coverage where the
background mean is high (docs/method.md#protein).

The RNA and protein calls are kept separate, never multiplied into one posterior: a cell whose RNA says
"expressing" and whose protein says "absent" is the finding itself (post-transcriptional loss, epitope
masking by the CAR, PEBL-like retention), not a contradiction to average away.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import optimize, special, stats

from ._model import (
    _MU_FLOOR_FACTOR,
    MAX_CI_WIDTH,
    AntigenFit,
    _as_arrays,
    _fit,
    chi2_half_quantile,
    chi2_pvalue,
)

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
    foreground: str = "convolution",
    background_cells: int | None = None,
) -> AntigenFit:
    """Protein-negative fraction of a group from the antigen's ADT counts.

    Parameters
    ----------
    counts
        ADT counts of the antigen per cell.
    background
        ``(mean, theta)`` of the background (:func:`protein_background`).
    theta
        NB size of the foreground, held fixed; when None it is a free parameter of the fit (profiled out
        of the interval of ``pi`` with the foreground mean).
    alpha
        1 - coverage of intervals.
    interval
        Compute the profile-likelihood interval.
    foreground
        ``"convolution"``: a protein-positive cell's count is its background plus a specific signal,
        ``NB(m0, theta0) * NB(f, theta)`` (the discrete convolution), ``f >= 2 m0``; the interval of
        ``pi`` is profiled over ``(f, theta)``. ``"nb"``: ``NB(mu, theta)`` with ``mu >= 3 m0`` and
        ``theta`` held at the group's maximum-likelihood value inside the interval (the RNA kernel; the
        anchored relapse decision uses this form).
    background_cells
        Reference cells the background was fitted on. When given, the interval of ``pi`` also carries the
        background's own sampling error (it is estimated, not known): by the delta method, each of
        ``log m0`` and ``log theta0`` moved by its standard error (``(1 + m0/theta0) / (n m0)`` and
        ``2 (1 + theta0/m0)^2 / n``, the NB's moment variances) moves ``pi``; those shifts, added in
        quadrature to each side's half-width, widen the profile interval.

    Returns
    -------
    AntigenFit, with ``mu`` the mean ADT count of protein-positive cells (background included), ``theta``
    the foreground size and ``ambient_rate`` the background mean.
    """
    x, _ = _as_arrays(counts, np.ones(np.size(counts)))
    m0, t0 = float(background[0]), float(background[1])
    if foreground not in ("convolution", "nb"):
        raise ValueError(f"foreground must be 'convolution' or 'nb', not {foreground!r}")
    fit_one = _fit_convolved if foreground == "convolution" else _fit_nb
    fit = fit_one(x, m0, t0, theta, alpha, interval)
    if not interval or not background_cells or not np.isfinite(fit.pi):
        return fit
    return _with_background_error(fit, x, m0, t0, theta, alpha, int(background_cells), fit_one)


def _with_background_error(fit, x, m0, t0, theta, alpha, n, fit_one):
    """The profile interval widened by the background estimate's sampling error (delta method)."""
    sd_log_m0 = float(np.sqrt((1.0 + m0 / t0) / (n * max(m0, 1e-3))))
    sd_log_t0 = float(np.sqrt(2.0 * (1.0 + t0 / max(m0, 1e-3)) ** 2 / n))
    shifts = [
        fit_one(x, m0 * np.exp(sd_log_m0), t0, theta, alpha, False).pi - fit.pi,
        fit_one(x, m0, t0 * np.exp(sd_log_t0), theta, alpha, False).pi - fit.pi,
    ]
    var_bg = float(sum(d * d for d in shifts if np.isfinite(d)))
    if var_bg <= 0:
        return fit
    z = float(stats.norm.ppf(1 - alpha / 2))
    lo = fit.pi - np.sqrt((fit.pi - fit.ci_low) ** 2 + z * z * var_bg)
    hi = fit.pi + np.sqrt((fit.ci_high - fit.pi) ** 2 + z * z * var_bg)
    out = {"ci_low": float(max(lo, 0.0)), "ci_high": float(min(hi, 1.0))}
    if np.isfinite(fit.upper_bound):
        z1 = float(stats.norm.ppf(1 - alpha))
        ub = fit.pi + np.sqrt((fit.upper_bound - fit.pi) ** 2 + z1 * z1 * var_bg)
        out["upper_bound"] = float(min(ub, 1.0))
    return replace(fit, **out)


def _fit_nb(x, m0, t0, theta, alpha, interval) -> AntigenFit:
    s = np.ones_like(x)
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


# --------------------------------------------------------------------------- convolution foreground

_SHAPE_BOUNDS = (
    0.0,
    np.log(1000.0),
)  # log of the foreground NB size: at least 1 (see the docstring)
_BG_TAIL = 1e-13  # background pmf truncated where its upper tail falls below this


def _log_nb_pmf(x: np.ndarray, m: float, t: float) -> np.ndarray:
    return (
        special.gammaln(x + t) - special.gammaln(t) - special.gammaln(x + 1)
        + t * np.log(t / (t + m)) + x * np.log(m / (t + m))
    )  # fmt: skip


class _Convolved:
    """One group's ADT counts, pooled by value, under the background/foreground mixture.

    negative: ``NB(m0, t0)``; positive: ``NB(m0, t0) * NB(f, k)`` (background plus specific signal; a
    Poisson count of a background gamma plus a signal gamma). Parameters ``(pi, log f, log k)``.
    """

    def __init__(self, x: np.ndarray, m0: float, t0: float) -> None:
        u, inv, w = np.unique(x.astype(np.int64), return_inverse=True, return_counts=True)
        self.u, self.inv, self.w = u, inv.ravel(), w.astype(float)
        self.m0, self.t0 = m0, t0
        self.grid = np.arange(int(u.max()) + 1, dtype=float)
        self.lgam1 = special.gammaln(self.grid + 1)
        b = np.exp(_log_nb_pmf(self.grid, m0, t0))
        tail = np.nonzero(np.cumsum(b) >= 1 - _BG_TAIL)[0]
        self.b = b[: (int(tail[0]) + 1 if tail.size else b.size)]
        self.l0 = _log_nb_pmf(u.astype(float), m0, t0)
        self.lf_floor = float(np.log((_MU_FLOOR_FACTOR - 1) * m0))
        # a signal mean far above every count is never the maximum; bounding it keeps the searches finite
        self.lf_ceiling = float(np.log(max(4.0 * float(u.max()), 2 * np.exp(self.lf_floor)) + 10.0))
        self._cache: dict[tuple[float, float], tuple] = {}

    def _conv(self, a: np.ndarray) -> np.ndarray:
        if a.shape[-1] * self.b.size <= 4_000_000:
            out = np.stack([np.convolve(r, self.b)[: self.grid.size] for r in a])
        else:
            from scipy import signal

            out = signal.oaconvolve(a, self.b[None, :], axes=1)[:, : self.grid.size]
        return out[:, self.u]

    def l1(self, lf: float, lk: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """log pmf of the positive component at the pooled counts, and its derivatives in log f, log k."""
        key = (lf, lk)
        if key in self._cache:
            return self._cache[key]
        f, k, g = float(np.exp(lf)), float(np.exp(lk)), self.grid
        fp = np.exp(
            special.gammaln(g + k) - special.gammaln(k) - self.lgam1
            + k * np.log(k / (k + f)) + g * np.log(f / (k + f))
        )  # fmt: skip
        d_lf = g - f * (g + k) / (k + f)
        d_lk = k * (
            special.digamma(g + k)
            - special.digamma(k)
            + np.log(k / (k + f))
            + 1
            - (g + k) / (k + f)
        )
        p, pf, pk = self._conv(np.stack([fp, fp * d_lf, fp * d_lk]))
        p = np.maximum(p, 1e-300)
        out = (np.log(p), pf / p, pk / p)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = out
        return out

    def loglik(self, pi: float, lf: float, lk: float, grad: bool = False):
        l1, g1f, g1k = self.l1(lf, lk)
        with np.errstate(divide="ignore"):
            a = np.log(pi) + self.l0 if pi > 0 else np.full_like(self.l0, -np.inf)
            b = np.log1p(-pi) + l1 if pi < 1 else np.full_like(l1, -np.inf)
        mix = np.logaddexp(a, b)
        ll = float(self.w @ mix)
        if not grad:
            return ll
        r = np.exp(b - mix)  # posterior of the positive component
        d_pi = float(self.w @ (np.exp(self.l0 - mix) - np.exp(l1 - mix)))
        return ll, np.array([d_pi, float(self.w @ (r * g1f)), float(self.w @ (r * g1k))])

    def maximise(self, start: np.ndarray, pi: float | None = None) -> tuple[float, np.ndarray]:
        """Maximum over ``(pi, log f, log k)`` (``pi`` given: over the foreground only) from ``start``."""
        fb = [(self.lf_floor, self.lf_ceiling), _SHAPE_BOUNDS]
        if pi is None:

            def neg(p):
                ll, g = self.loglik(p[0], p[1], p[2], grad=True)
                return -ll, -g

            x0 = np.clip(
                start, [0.0, self.lf_floor, _SHAPE_BOUNDS[0]], [1.0, np.inf, _SHAPE_BOUNDS[1]]
            )
            res = optimize.minimize(neg, x0, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0), *fb])
            return -float(res.fun), res.x

        def neg_fg(q):
            ll, g = self.loglik(pi, q[0], q[1], grad=True)
            return -ll, -g[1:]

        x0 = np.clip(
            start[1:], [self.lf_floor, _SHAPE_BOUNDS[0]], [self.lf_ceiling, _SHAPE_BOUNDS[1]]
        )
        res = optimize.minimize(neg_fg, x0, jac=True, method="L-BFGS-B", bounds=fb)
        return -float(res.fun), np.concatenate([[pi], res.x])


def _fit_convolved(x, m0, t0, theta, alpha, interval) -> AntigenFit:
    n = int(x.size)
    if n == 0:
        return _fit_nb(x, m0, t0, theta, alpha, interval)
    m0 = max(m0, 1e-3)
    grp = _Convolved(x, m0, t0)
    fixed_k = None if theta is None else float(np.log(theta))
    if fixed_k is not None:
        grp.l1 = _fixed_shape(grp.l1, fixed_k)

    # start from the NB-foreground fit (fast): its mean and variance give the signal's mean and size
    nb = _fit_nb(x, m0, t0, theta, alpha, False)
    f0 = max(float(nb.mu) - m0, 1.5 * np.exp(grp.lf_floor)) if np.isfinite(nb.mu) else 3 * m0
    var_sig = (float(nb.mu) ** 2 / nb.theta - m0 * m0 / t0) if np.isfinite(nb.mu) else f0 * f0
    k0 = float(np.clip(f0 * f0 / var_sig if var_sig > 0 else 50.0, 0.2, 500.0))
    pi0 = float(np.clip(nb.pi, 0.0, 1.0)) if np.isfinite(nb.pi) else 0.5
    ll_all_neg = float(grp.w @ grp.l0)
    best = None
    for p_start in {pi0, float(np.clip(pi0, 0.02, 0.98))}:
        cand = grp.maximise(np.array([p_start, np.log(f0), np.log(k0)]))
        if best is None or cand[0] > best[0]:
            best = cand
    ll_hat, par = best
    if ll_all_neg >= ll_hat:
        ll_hat, par = ll_all_neg, np.array([1.0, np.log(f0), np.log(k0)])
    pi_hat = float(par[0])
    ll0, par0 = grp.maximise(par, pi=0.0)
    if ll0 >= ll_hat:  # the boundary is the maximum
        ll_hat, par, pi_hat = ll0, par0, 0.0
    pval = chi2_pvalue(max(2 * (ll_hat - ll0), 0.0))

    memo: dict[float, tuple[float, np.ndarray]] = {pi_hat: (ll_hat, par), 0.0: (ll0, par0)}

    def profile(p: float) -> float:
        if p >= 1.0:
            return ll_all_neg
        if p not in memo:
            near = min(memo, key=lambda q: abs(q - p))
            memo[p] = grp.maximise(memo[near][1], pi=p)
        return memo[p][0]

    if interval:

        def crossing(level: float, lo: float, hi: float, end: float) -> float:
            cut = ll_hat - chi2_half_quantile(level)
            if profile(end) >= cut:
                return end
            return float(optimize.brentq(lambda p: profile(p) - cut, lo, hi, xtol=1e-5))

        ci_low = 0.0 if pi_hat <= 0 else crossing(1 - alpha, 0.0, pi_hat, 0.0)
        ci_high = 1.0 if pi_hat >= 1 else crossing(1 - alpha, pi_hat, 1.0, 1.0)
        upper = 1.0 if pi_hat >= 1 else crossing(1 - 2 * alpha, pi_hat, ci_high, ci_high)
    else:
        ci_low = ci_high = upper = float("nan")

    if pi_hat >= 1.0:
        mu = k = float("nan")
        mu_ci = (mu, mu)
        p_neg = np.ones(n)
        dropout = float("nan")
    else:
        f, k = float(np.exp(par[1])), float(np.exp(par[2]))
        mu = m0 + f
        mu_ci = _convolved_mu_wald(grp, par, alpha, fixed_k is not None)
        l1 = grp.l1(par[1], par[2])[0]
        with np.errstate(divide="ignore"):
            a = np.log(pi_hat) + grp.l0
        post = (
            np.exp(a - np.logaddexp(a, np.log1p(-pi_hat) + l1)) if pi_hat > 0 else np.zeros_like(l1)
        )
        p_neg = post[grp.inv]
        dropout = float(np.exp(l1[0])) if grp.u[0] == 0 else 0.0
    width = ci_high - ci_low
    return AntigenFit(
        n_cells=n,
        pi=pi_hat,
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        mu=float(mu),
        mu_ci=mu_ci,
        theta=float(np.exp(fixed_k)) if fixed_k is not None else float(k),
        ambient_rate=m0,
        lrt_pvalue=pval,
        zero_fraction=float(np.mean(x == 0)),
        upper_bound=float(upper),
        identifiable=bool(not interval or width <= MAX_CI_WIDTH),
        p_negative=p_neg,
        dropout=dropout,
        loglik=ll_hat,
    )


def _fixed_shape(l1, lk_fixed: float):
    """``l1`` with the foreground size held at ``exp(lk_fixed)`` (its derivative in log k zero)."""

    def fixed(lf, lk):
        ll, gf, _ = l1(lf, lk_fixed)
        return ll, gf, np.zeros_like(gf)

    return fixed


def _convolved_mu_wald(grp: _Convolved, par: np.ndarray, alpha: float, fixed_k: bool):
    """Wald interval of the positive cells' mean count ``m0 + f`` from the numerical observed information."""
    idx = [i for i in range(3) if not (i == 0 and par[0] <= 0) and not (i == 2 and fixed_k)]
    h = np.zeros((3, 3))
    for i in idx:
        step = 1e-5 if i == 0 else 1e-4
        up, dn = par.copy(), par.copy()
        up[i] += step
        dn[i] -= step
        up[0], dn[0] = min(up[0], 1.0), max(dn[0], 0.0)
        gu = grp.loglik(*up, grad=True)[1]
        gd = grp.loglik(*dn, grad=True)[1]
        h[:, i] = (gu - gd) / (up[i] - dn[i])
    sub = -0.5 * (h + h.T)[np.ix_(idx, idx)]
    try:
        cov = np.linalg.inv(sub)
        var_lf = float(cov[idx.index(1), idx.index(1)])
    except np.linalg.LinAlgError:
        var_lf = float("inf")
    f = float(np.exp(par[1]))
    mu = grp.m0 + f
    if not (np.isfinite(var_lf) and var_lf > 0):
        return (0.0, float("inf"))
    z = float(special.ndtri(1 - alpha / 2))
    se = np.sqrt(var_lf) * f / mu  # delta method: d log mu / d log f
    return (float(mu * np.exp(-z * se)), float(mu * np.exp(z * se)))


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
    fit = fit_protein_mixture(x[ref], background=(m0, t0), interval=False, foreground="nb")
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
