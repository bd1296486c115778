"""Numerical kernels of the dropout- and ambient-aware antigen model (``docs/method.md#antigen-model``).

For a group of cells with antigen counts ``y_i`` and size factors ``s_i`` (total UMIs per cell):

* antigen-negative cells: ``y_i ~ Poisson(s_i * a)``, ``a`` the ambient rate per UMI;
* expressing cells: ``y_i ~ NB(mean = s_i * mu, size = theta)`` (variance ``m + m**2 / theta``);
* mixture weight ``pi`` = antigen-negative fraction.

``pi`` is estimated by maximum likelihood (``mu`` profiled out by exact Newton steps on ``log mu``), its
interval by profile likelihood (two-sided ``chi2_1`` cut; the one-sided upper bound uses the ``1 - 2 alpha``
quantile), ``H0: pi = 0`` by the likelihood-ratio test with its boundary ``0.5 chi2_0 + 0.5 chi2_1`` null.
``mu`` has a Wald interval on the log scale from the observed information of ``(pi, mu)``.
``mu`` is kept at or above three times the ambient rate: an "expressing" component at the ambient level is
not distinguishable from the null one, and with the floor a group of all-zero cells at good depth is
recognised as negative instead of "expressing at an undetectably low level".

``theta`` and ``a`` are taken as known inside a fit (they are estimated once per patient from many more cells
with :func:`theta_interval` / :func:`estimate_theta` and :func:`estimate_ambient_rate`); intervals are
conditional on them, or widened over the interval of theta (``theta_ci``).

``theta`` is shared by the patient's groups and estimated from the Cox-Reid adjusted profile likelihood
(each group's ``(pi_g, log mu_g)`` profiled out, minus half the log determinant of their observed
information). The plain profile likelihood overestimates theta at low depth (on the CARPALL replica with
true theta 2.43: 2.39 at full depth, 2.53 at 50 %, 3.9 at 25 % of the depth; adjusted: 2.23, 2.12, 2.25), and
an overestimated theta predicts too little dropout, which pushes ``pi`` up as depth falls.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from scipy import optimize, special, stats

__all__ = [
    "AntigenFit",
    "estimate_ambient_rate",
    "estimate_theta",
    "expected_dropout",
    "fit_antigen_mixture",
    "mixture_loglik",
    "theta_interval",
]

_MU_FLOOR_FACTOR = 3.0  # expressing means mu >= ambient_rate * this
_MIN_RATE = 1e-12  # floor of the ambient rate (a zero rate makes log pmf of y > 0 infinite)
# defaults of the configuration (``antigen_model`` section of cd7escape._config; kept equal, tested)
MAX_DROPOUT = 0.9  # mean P(0 | expressing) above which pi is declared not identifiable
MAX_CI_WIDTH = 0.25  # interval of pi wider than this: not identifiable
COMPRESS_ABOVE = 5000  # groups larger than this are fitted on cells pooled by (count, size factor)
THETA_PRIOR = (3.0, 1.0)  # weak log-normal prior on theta: median, sd of log theta


@dataclass(frozen=True)
class AntigenFit:
    """Result of :func:`fit_antigen_mixture` for one group of cells.

    Attributes
    ----------
    n_cells
        Cells in the group.
    pi
        Maximum-likelihood estimate of the antigen-negative fraction.
    ci_low, ci_high
        ``1 - alpha`` profile-likelihood interval of ``pi``.
    mu
        Expression rate per UMI of expressing cells (their mean count is ``size_factor * mu``); NaN when
        ``pi == 1`` (no expressing cells).
    mu_ci
        ``1 - alpha`` Wald interval of ``mu`` on the log scale.
    theta
        Negative-binomial size used (variance ``m + m**2 / theta``).
    ambient_rate
        Per-UMI rate of the null (ambient) Poisson component.
    lrt_pvalue
        Likelihood-ratio test of ``H0: pi == 0`` (boundary-corrected).
    zero_fraction
        Naive share of cells with a zero count (what the usual approach would call "negative").
    upper_bound
        One-sided ``1 - alpha`` upper bound of ``pi``: the detection limit when none are found.
    identifiable
        False when the interval of ``pi`` is wider than ``max_ci_width``, or expressing cells drop out
        too often (mean ``P(0 | expressing)`` above ``max_dropout``) unless the group is clearly negative
        (``ci_low >= 0.5``).
    p_negative
        Per-cell posterior ``P(negative | y_i)`` at the MLE.
    dropout
        Mean probability that an expressing cell of the group shows a zero count (NaN when ``pi == 1``).
    loglik
        Maximised log-likelihood.
    """

    n_cells: int
    pi: float
    ci_low: float
    ci_high: float
    mu: float
    mu_ci: tuple[float, float]
    theta: float
    ambient_rate: float
    lrt_pvalue: float
    zero_fraction: float
    upper_bound: float
    identifiable: bool
    p_negative: np.ndarray = field(repr=False)
    dropout: float = float("nan")
    loglik: float = float("nan")

    def detection_limit(self, alpha: float = 0.05) -> str:
        """'none in 412 cells; 95 % upper bound 0.7 %' style text (or the estimate when some are found)."""
        level = round(100 * (1 - alpha))
        if self.n_cells == 0:
            return "no cells"
        if self.lrt_pvalue >= alpha:
            return f"none in {self.n_cells} cells; {level} % upper bound {100 * self.upper_bound:.1f} %"
        return f"{100 * self.pi:.1f} % of {self.n_cells} cells ({level} % CI {100 * self.ci_low:.1f}–{100 * self.ci_high:.1f} %)"


# --------------------------------------------------------------------------- log pmfs


def _as_arrays(counts, size_factors) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(counts, dtype=float).ravel()
    s = np.asarray(size_factors, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"counts ({y.shape}) and size_factors ({s.shape}) differ in length")
    if y.size and (np.any(y < 0) or np.any(~np.isfinite(y))):
        raise ValueError("counts must be finite and non-negative")
    if s.size and (np.any(s <= 0) or np.any(~np.isfinite(s))):
        raise ValueError("size_factors must be finite and positive (total UMIs per cell)")
    return y, s


def _log_poisson(y: np.ndarray, s: np.ndarray, a: float) -> np.ndarray:
    """log Poisson(y; s a) without the -lgamma(y+1) term (shared by both components)."""
    lam = s * a
    return y * np.log(lam) - lam


class _Group:
    """Precomputed per-cell terms of one group for fast repeated likelihood evaluation."""

    def __init__(
        self,
        y: np.ndarray,
        s: np.ndarray,
        a: float,
        theta: float,
        w: np.ndarray | None = None,
        null_theta: float | None = None,
    ) -> None:
        self.y, self.s, self.a, self.theta, self.w = y, s, max(a, _MIN_RATE), theta, w
        self.null_theta = null_theta
        if null_theta is None:
            self.l0 = _log_poisson(y, s, self.a)
        else:  # negative-binomial null (ADT background)
            m0, t0 = s * self.a, null_theta
            self.l0 = (
                special.gammaln(y + t0)
                - special.gammaln(t0)
                + t0 * (np.log(t0) - np.log(t0 + m0))
                + y * (np.log(m0) - np.log(t0 + m0))
            )
        self.c1 = special.gammaln(y + theta) - special.gammaln(theta) + theta * np.log(theta)
        self.ypt = y + theta
        self.mu_floor = self.a * _MU_FLOOR_FACTOR

    def l1(self, mu: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """log NB pmf (without -lgamma(y+1)), its first and second derivative in mu."""
        m = self.s * mu
        tm = self.theta + m
        l1 = self.c1 - self.ypt * np.log(tm) + self.y * np.log(m)
        g = self.y / mu - self.ypt * self.s / tm
        h = -self.y / mu**2 + self.ypt * (self.s / tm) ** 2
        return l1, g, h

    def sum(self, x: np.ndarray) -> float:
        return float(x.sum()) if self.w is None else float(self.w @ x)

    @classmethod
    def compressed(
        cls,
        y: np.ndarray,
        s: np.ndarray,
        a: float,
        theta: float,
        null_theta=None,
        width: float = 0.005,
        weights: np.ndarray | None = None,
    ):
        """Cells pooled by (count, size factor within ``width`` on the log scale), with weights.

        The size factor of a pool is its cells' mean; the relative error of ``s * mu`` is below
        ``width / 2`` (0.25 %), far below sampling noise. Used for large groups only. With ``weights``
        (a weighted likelihood) a pool's weight is the sum of its cells' weights.
        """
        ls = np.log(s)
        b = np.floor((ls - ls.min()) / width).astype(np.int64)
        key = y.astype(np.int64) * (int(b.max()) + 1) + b
        _, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
        inv = inv.ravel()
        n = cnt.astype(float)
        yy = np.bincount(inv, weights=y) / n
        ss = np.bincount(inv, weights=s) / n
        w = n if weights is None else np.bincount(inv, weights=weights)
        return cls(yy, ss, a, theta, w, null_theta)

    def loglik(self, pi: float, mu: float) -> float:
        l1 = self.l1(mu)[0]
        return self.sum(_logmix(pi, self.l0, l1))

    def search_terms(self, mu_start: float, *, anchor: float | None = None):
        """State of the compiled searches over ``pi`` (:mod:`cd7escape.tl._mixture_search`).

        With ``anchor`` the expressing level is fixed there (the anchored likelihood); without it
        ``mu`` is profiled out, starting from ``mu_start``.
        """
        from ._mixture_search import make_terms

        l1 = None if anchor is None else self.l1(max(anchor, self.mu_floor))[0]
        return make_terms(
            self.y, self.s, self.l0, self.c1, self.ypt, self.w, self.theta, self.mu_floor,
            mu_start, l1,
        )  # fmt: skip


def chi2_pvalue(lrt: float) -> float:
    """P-value of a likelihood ratio ``lrt`` for a parameter on its boundary: ``0.5 chi2_0 + 0.5 chi2_1``."""
    return float(0.5 * special.chdtrc(1, lrt)) if lrt > 0 else 1.0


@lru_cache(maxsize=16)
def chi2_half_quantile(level: float) -> float:
    """Half the ``level`` quantile of ``chi2_1``: the log-likelihood drop that bounds an interval."""
    return float(stats.chi2.ppf(level, 1)) / 2


def _logs(pi: float) -> tuple[float, float]:
    with np.errstate(divide="ignore"):
        return float(np.log(pi)), float(np.log1p(-pi))


def _logmix(pi: float, l0: np.ndarray, l1: np.ndarray) -> np.ndarray:
    lp, lq = _logs(pi)
    return np.logaddexp(lp + l0, lq + l1)


def mixture_loglik(
    counts, size_factors, pi: float, mu: float, *, ambient_rate: float, theta: float
) -> float:
    """Full log-likelihood (including ``-lgamma(y+1)``) of the two-component mixture."""
    y, s = _as_arrays(counts, size_factors)
    grp = _Group(y, s, ambient_rate, theta)
    return grp.loglik(pi, mu) - float(special.gammaln(y + 1).sum())


def expected_dropout(size_factors, mu: float, theta: float) -> float:
    """Mean probability ``P(y = 0 | expressing)`` over cells: ``mean((theta / (theta + s mu)) ** theta)``."""
    s = np.asarray(size_factors, dtype=float)
    return (
        float(np.mean(np.exp(theta * (np.log(theta) - np.log(theta + s * mu)))))
        if s.size
        else float("nan")
    )


# --------------------------------------------------------------------------- the fit


def fit_antigen_mixture(
    counts,
    size_factors,
    *,
    ambient_rate: float,
    theta: float | None = None,
    alpha: float = 0.05,
    interval: bool = True,
    theta_ci: tuple[float, float] | None = None,
    max_ci_width: float = MAX_CI_WIDTH,
    max_dropout: float = MAX_DROPOUT,
    null_theta: float | None = None,
) -> AntigenFit:
    """Fit the negative/expressing mixture to one group of cells.

    Parameters
    ----------
    counts
        Antigen UMI counts per cell.
    size_factors
        Total UMIs per cell (rates are per UMI).
    ambient_rate
        Per-UMI rate of the antigen in ambient RNA (:func:`estimate_ambient_rate`).
    theta
        Negative-binomial size of expressing cells; estimated on this group by zero-truncated maximum
        likelihood (:func:`estimate_theta`) when None. Pass the patient-wide value when you have it.
    alpha
        1 - coverage of intervals, level of the test.
    interval
        Compute the profile-likelihood interval and upper bound (set False in tight bootstrap loops; the
        interval fields are then NaN and ``identifiable`` only uses the dropout criterion).
    theta_ci
        Interval of theta (:func:`theta_interval`). When given, the fit is repeated at both ends and the
        intervals of ``pi`` and ``mu``, the upper bound and the p-value are the least favourable of the
        three: intervals widen where theta is poorly determined. The point estimates stay at ``theta``.
    max_ci_width
        A 95 % interval of ``pi`` wider than this makes the group not identifiable.
    max_dropout
        Mean ``P(0 | expressing)`` above which the group is not identifiable (unless ``ci_low >= 0.5``):
        ``pi`` then hinges on theta.
    null_theta
        NB size of the negative component, which is then ``NB(s · ambient_rate, null_theta)`` instead of
        ``Poisson(s · ambient_rate)``: the background of ADT counts (:mod:`._protein`).

    Returns
    -------
    AntigenFit
    """
    y, s = _as_arrays(counts, size_factors)
    a = max(float(ambient_rate), _MIN_RATE)
    if theta is None:
        theta = estimate_theta(y, s)
    limits = {"max_ci_width": max_ci_width, "max_dropout": max_dropout}
    fit = _fit(y, s, a, float(theta), alpha, interval, null_theta, **limits)
    if theta_ci is None or not interval or fit.n_cells == 0:
        return fit
    others = [
        _fit(y, s, a, float(th), alpha, True, null_theta, **limits)
        for th in theta_ci
        if abs(th - theta) > 1e-9 * theta
    ]
    if not others:
        return fit
    every = [fit, *others]
    ci_low = min(f.ci_low for f in every)
    ci_high = max(f.ci_high for f in every)
    dropout_ok = fit.dropout <= max_dropout or ci_low >= 0.5
    return replace(
        fit,
        ci_low=ci_low,
        ci_high=ci_high,
        upper_bound=max(f.upper_bound for f in every),
        lrt_pvalue=max(f.lrt_pvalue for f in every),
        mu_ci=fit.mu_ci
        if np.isnan(fit.mu)
        else (
            float(np.nanmin([f.mu_ci[0] for f in every])),
            float(np.nanmax([f.mu_ci[1] for f in every])),
        ),
        identifiable=bool(dropout_ok and ci_high - ci_low <= max_ci_width),
    )


def _fit(
    y: np.ndarray,
    s: np.ndarray,
    a: float,
    theta: float,
    alpha: float,
    interval: bool,
    null_theta: float | None = None,
    *,
    max_ci_width: float = MAX_CI_WIDTH,
    max_dropout: float = MAX_DROPOUT,
) -> AntigenFit:
    n = int(y.size)
    if n == 0:
        nan = float("nan")
        return AntigenFit(
            0, nan, nan, nan, nan, (nan, nan), theta, a, nan, nan, nan, False, np.empty(0)
        )
    zero_fraction = float(np.mean(y == 0))
    grp = (
        _Group.compressed(y, s, a, theta, null_theta)
        if n > COMPRESS_ABOVE
        else _Group(y, s, a, theta, null_theta=null_theta)
    )
    from ._mixture_search import profile_crossing, profile_maximum

    terms = grp.search_terms(max(float(y.sum() / s.sum()), grp.mu_floor))
    pi_hat, ll_hat, ll0, mu0, mu_hat = profile_maximum(1e-4, *terms)
    # with every cell negative the expressing component has no cells: its rate is undefined (NaN)

    lrt = max(2 * (ll_hat - ll0), 0.0)
    pval = chi2_pvalue(lrt)

    dropout = expected_dropout(s, mu_hat, theta) if pi_hat < 1.0 else float("nan")

    if interval:
        restart = mu_hat if np.isfinite(mu_hat) else mu0

        def crossing(level: float, lo: float, hi: float) -> float:
            # where the profile falls by chi-square(level) / 2, between the MLE and an end point
            cut = ll_hat - chi2_half_quantile(level)
            return float(profile_crossing(cut, lo, hi, pi_hat, restart, 1e-4, *terms))

        ci_low = 0.0 if pi_hat <= 0 else crossing(1 - alpha, 0.0, pi_hat)
        ci_high = 1.0 if pi_hat >= 1 else crossing(1 - alpha, pi_hat, 1.0)
        upper = 1.0 if pi_hat >= 1 else crossing(1 - 2 * alpha, pi_hat, 1.0)
    else:
        ci_low = ci_high = upper = float("nan")

    mu_ci = _mu_wald(grp, pi_hat, mu_hat, alpha)
    width = ci_high - ci_low
    # the interval carries the information; the dropout guard protects against a misspecified theta, which
    # dominates when most expressing cells show zeros (it does not apply when the group is clearly negative)
    identifiable = bool(
        (dropout <= max_dropout or ci_low >= 0.5) and (not interval or width <= max_ci_width)
    )

    if pi_hat >= 1.0:
        p_neg = np.ones(n)
    elif pi_hat <= 0.0:
        p_neg = np.zeros(n)
    else:
        if grp.w is not None:
            grp = _Group(
                y, s, a, theta, null_theta=null_theta
            )  # per-cell posterior, full resolution
        l1 = grp.l1(mu_hat)[0]
        lp, lq = _logs(pi_hat)
        p_neg = np.exp(lp + grp.l0 - np.logaddexp(lp + grp.l0, lq + l1))
    return AntigenFit(
        n_cells=n,
        pi=pi_hat,
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        mu=float(mu_hat),
        mu_ci=mu_ci,
        theta=theta,
        ambient_rate=a,
        lrt_pvalue=pval,
        zero_fraction=zero_fraction,
        upper_bound=float(upper),
        identifiable=identifiable,
        p_negative=p_neg,
        dropout=dropout,
        loglik=ll_hat - float(special.gammaln(y + 1).sum()),
    )


def _information(grp: _Group, pi: float, mu: float) -> tuple[float, float, float]:
    """Observed information ``(i_pp, i_pu, i_uu)`` of ``(pi, u = log mu)`` at ``(pi, mu)``.

    At ``pi == 0`` (a boundary point) only ``i_uu`` is meaningful; :func:`_mu_wald` then uses it alone.
    """
    l1, g, h = grp.l1(mu)
    lp, lq = _logs(pi)
    lmix = np.logaddexp(lp + grp.l0, lq + l1)
    r = np.exp(lq + l1 - lmix)
    gu = mu * g
    huu = mu * mu * h + mu * g
    i_uu = -grp.sum(r * (huu + (1 - r) * gu * gu))
    e0 = np.exp(np.minimum(grp.l0 - lmix, 700))
    e1 = np.exp(np.minimum(l1 - lmix, 700))
    dpi = e0 - e1
    i_pp = grp.sum(dpi * dpi)
    i_pu = grp.sum(np.exp(np.minimum(grp.l0 + l1 - 2 * lmix, 700)) * gu)
    return i_pp, i_pu, i_uu


def _cox_reid(grp: _Group, pi: float, mu: float) -> float:
    """``-0.5 log det`` of the observed information of the group's nuisance parameters ``(pi, log mu)``.

    The Cox-Reid adjustment of a profile likelihood (Cox & Reid 1987; as edgeR and DESeq2 use for the
    negative-binomial dispersion): the Laplace approximation of the likelihood integrated over the nuisance
    parameters. Without it, maximising over one ``(pi_g, mu_g)`` per group biases the shared ``theta``
    upwards when counts are low (the fitted group parameters absorb part of the overdispersion).
    """
    if not (pi < 1.0 and np.isfinite(mu)):
        return 0.0  # no expressing cells: the group's likelihood does not depend on theta
    i_pp, i_pu, i_uu = _information(grp, pi, mu)
    det = i_pp * i_uu - i_pu * i_pu
    if not (det > 0 and np.isfinite(det)):
        det = max(i_uu, 1e-300) * max(i_pp, 1e-300)
    return -0.5 * float(np.log(det))


def _mu_wald(grp: _Group, pi: float, mu: float, alpha: float) -> tuple[float, float]:
    """Wald interval of mu on the log scale from the observed information of (pi, log mu)."""
    if pi >= 1.0:
        return (float("nan"), float("nan"))
    z = float(special.ndtri(1 - alpha / 2))
    i_pp, i_pu, i_uu = _information(grp, pi, mu)
    if pi > 0:
        det = i_pp * i_uu - i_pu * i_pu
        var_u = i_pp / det if det > 0 and i_pp > 0 else (1 / i_uu if i_uu > 0 else np.inf)
    else:  # pi on the boundary: mu alone
        var_u = 1 / i_uu if i_uu > 0 else np.inf
    if not np.isfinite(var_u) or var_u <= 0:
        return (0.0, float("inf"))
    se = float(np.sqrt(var_u))
    return (float(mu * np.exp(-z * se)), float(mu * np.exp(z * se)))


# --------------------------------------------------------------------------- nuisance parameters


def estimate_ambient_rate(counts, size_factors) -> float:
    """Per-UMI ambient rate from cells (or empty droplets) that never express the antigen.

    Poisson maximum likelihood with half a count added (Jeffreys), so that an all-zero reference gives a
    small positive rate rather than zero: ``(sum(y) + 0.5) / sum(s)``.
    """
    y, s = _as_arrays(counts, size_factors)
    if s.size == 0:
        raise ValueError("no cells to estimate the ambient rate from")
    return float((y.sum() + 0.5) / s.sum())


def estimate_theta(
    counts,
    size_factors,
    *,
    groups=None,
    ambient_rate: float | None = None,
    bounds: tuple[float, float] = (0.05, 1000.0),
    min_positive: int = 30,
    default: float = 5.0,
    prior: tuple[float, float] | None = THETA_PRIOR,
    max_cells: int = 10000,
    seed: int = 0,
    adjust: bool = True,
) -> float:
    """Negative-binomial size of expressing cells, shared across the patient's groups.

    With ``ambient_rate`` given (recommended): maximum of the summed profile likelihood of the full
    mixture, each group with its own ``pi_g`` and ``mu_g`` and one shared ``theta``; the negative cells
    (zeros and ambient counts) are absorbed by the null component, so ``theta`` describes expressing cells.
    With ``adjust`` each group's profile is Cox-Reid adjusted (:func:`_cox_reid`), which keeps theta
    consistent across sequencing depths.

    Without it: zero-truncated maximum likelihood, described below.

    Zero-truncated maximum likelihood on the cells with a positive count, with one rate ``mu_g`` per group
    and one shared ``theta``. Zeros are left out because they mix dropout with true negatives (that is what
    the mixture is for); positive counts come from expressing cells, up to the ambient contribution of
    negative cells, which is small (``s * a`` is typically 0.01-0.1 counts) and slightly lowers theta.

    Parameters
    ----------
    counts, size_factors
        Antigen counts and total UMIs per cell.
    groups
        Group label per cell (e.g. sample); one rate per group. None: one group.
    ambient_rate
        Per-UMI ambient rate; selects the mixture profile likelihood.
    prior
        ``(median, sd of log)`` of a weak log-normal prior on theta (mixture route only; None: none). At
        low depth (mean counts below ~0.5) the likelihood barely constrains theta and ``pi`` hinges on it;
        the prior keeps it near values typical of droplet data (CD7 in real CARPALL T cells: 2.6-2.9)
        and is negligible at usual depths. Use :func:`theta_interval` to carry its uncertainty.
    max_cells
        Cells used at most (a seeded subsample; mixture route only).
    seed
        Seed of that subsample.
    adjust
        Cox-Reid adjustment of the profile likelihood (mixture route only).
    bounds
        Search interval of theta.
    min_positive
        Fewer positive cells than this returns ``default``.
    default
        Returned when there are too few positive cells to estimate theta.
    """
    y, s = _as_arrays(counts, size_factors)
    keep = y > 0
    if keep.sum() < min_positive:
        return float(default)
    if ambient_rate is not None:
        return _theta_mixture(y, s, groups, ambient_rate, bounds, prior, max_cells, seed, adjust)
    if groups is None:
        codes = np.zeros(y.size, dtype=int)
    else:
        codes = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    y, s, codes = y[keep], s[keep], codes[keep]
    ng = int(codes.max()) + 1
    # drop empty groups from the parameter vector
    used, codes = np.unique(codes, return_inverse=True)
    ng = used.size
    w = np.ones_like(y)
    tot_y = np.bincount(codes, weights=y * w, minlength=ng)
    tot_s = np.bincount(codes, weights=s * w, minlength=ng)
    u0 = np.log(np.maximum(tot_y / tot_s, 1e-8)) - 0.5
    lgy1 = special.gammaln(y + 1)

    def negll(par: np.ndarray) -> tuple[float, np.ndarray]:
        v, u = par[0], par[1:]
        th = np.exp(v)
        m = s * np.exp(u)[codes]
        ltm = np.log(th + m)
        logp0 = th * (v - ltm)
        p0 = np.exp(logp0)
        one_m = -np.expm1(logp0)
        lnb = (
            special.gammaln(y + th)
            - special.gammaln(th)
            - lgy1
            + th * v
            - (th + y) * ltm
            + y * np.log(m)
        )
        ll = w * (lnb - np.log(one_m))
        ratio = p0 / one_m
        d_m = y / m - (th + y) / (th + m) - ratio * th / (th + m)
        g_u = np.bincount(codes, weights=w * m * d_m, minlength=ng)
        d_th_nb = special.digamma(y + th) - special.digamma(th) + v + 1 - ltm - (th + y) / (th + m)
        d_th_p0 = v - ltm + 1 - th / (th + m)
        g_v = th * float(np.sum(w * (d_th_nb + ratio * d_th_p0)))
        return -float(ll.sum()), -np.concatenate([[g_v], g_u])

    x0 = np.concatenate([[np.log(default)], u0])
    bnds = [(np.log(bounds[0]), np.log(bounds[1]))] + [(None, None)] * ng
    res = optimize.minimize(negll, x0, jac=True, method="L-BFGS-B", bounds=bnds)
    return float(np.exp(res.x[0]))


def _theta_profile(
    y, s, groups, ambient_rate: float, prior, max_cells: int, seed: int, adjust: bool = True
):
    """Penalised profile log-likelihood of log theta (sum over groups, each maximised over pi_g, mu_g)."""
    codes = (
        np.zeros(y.size, dtype=int)
        if groups is None
        else np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    )
    if y.size > max_cells:  # theta is a patient-level nuisance: a seeded subsample keeps this fast
        take = np.sort(np.random.default_rng(seed).choice(y.size, max_cells, replace=False))
        y, s, codes = y[take], s[take], codes[take]
    parts = [(y[codes == g], s[codes == g]) for g in np.unique(codes)]
    parts = [(yy, ss) for yy, ss in parts if yy.size >= 10 and np.any(yy > 0)]
    log_m, sd = (np.log(prior[0]), prior[1]) if prior is not None else (0.0, np.inf)

    a = max(float(ambient_rate), _MIN_RATE)

    def pll(v: float) -> float:
        th = float(np.exp(v))
        ll = 0.0
        for yy, ss in parts:
            f = _fit(yy, ss, a, th, 0.05, False)
            ll += f.loglik
            if adjust:
                grp = (
                    _Group.compressed(yy, ss, a, th)
                    if yy.size > COMPRESS_ABOVE
                    else _Group(yy, ss, a, th)
                )
                ll += _cox_reid(grp, f.pi, f.mu)
        return ll - 0.5 * ((v - log_m) / sd) ** 2

    return pll


def _theta_mixture(y, s, groups, ambient_rate, bounds, prior, max_cells, seed, adjust) -> float:
    pll = _theta_profile(y, s, groups, ambient_rate, prior, max_cells, seed, adjust)
    res = optimize.minimize_scalar(
        lambda v: -pll(v),
        bounds=(np.log(bounds[0]), np.log(bounds[1])),
        method="bounded",
        options={"xatol": 0.01},
    )
    return float(np.exp(res.x))


def theta_interval(
    counts,
    size_factors,
    *,
    ambient_rate: float,
    groups=None,
    alpha: float = 0.05,
    bounds: tuple[float, float] = (0.05, 1000.0),
    prior: tuple[float, float] | None = THETA_PRIOR,
    max_cells: int = 10000,
    seed: int = 0,
    adjust: bool = True,
) -> tuple[float, float, float]:
    """``(theta, low, high)``: the estimate of :func:`estimate_theta` (mixture profile) and its ``1 - alpha``
    (penalised) profile-likelihood interval. Pass ``(low, high)`` as ``theta_ci`` to
    :func:`fit_antigen_mixture` so that intervals of ``pi`` widen where theta is poorly determined (low depth).
    Options as in :func:`estimate_theta`.
    """
    y, s = _as_arrays(counts, size_factors)
    pll = _theta_profile(y, s, groups, ambient_rate, prior, max_cells, seed, adjust)
    lo_b, hi_b = np.log(bounds[0]), np.log(bounds[1])
    res = optimize.minimize_scalar(
        lambda v: -pll(v), bounds=(lo_b, hi_b), method="bounded", options={"xatol": 0.01}
    )
    v_hat, top = float(res.x), -float(res.fun)
    cut = top - chi2_half_quantile(1 - alpha)

    def end(b: float) -> float:
        if pll(b) >= cut:
            return b
        return float(
            optimize.brentq(lambda v: pll(v) - cut, min(v_hat, b), max(v_hat, b), xtol=0.01)
        )

    return float(np.exp(v_hat)), float(np.exp(end(lo_b))), float(np.exp(end(hi_b)))
