"""The antigen mixture kernel against independent references (scipy.stats pmfs, brute force, scipy.optimize)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from cd7escape.tl._antigen._model import (
    AntigenFit,
    estimate_ambient_rate,
    estimate_theta,
    fit_antigen_mixture,
    mixture_loglik,
    theta_interval,
)

A = 2e-5
THETA = 3.0


def simulate(rng, n, pi, mu, *, theta=THETA, a=A, depth=2000.0):
    s = rng.lognormal(np.log(depth), 0.4, n)
    neg = rng.random(n) < pi
    lam = rng.gamma(theta, s * mu / theta)
    y = np.where(neg, rng.poisson(s * a), rng.poisson(lam))
    return y, s, neg


def ref_loglik(y, s, pi, mu, theta=THETA, a=A):
    """Independent reference: scipy.stats pmfs."""
    f0 = stats.poisson.pmf(y, s * a)
    f1 = stats.nbinom.pmf(y, theta, theta / (theta + s * mu))
    return float(np.sum(np.log(pi * f0 + (1 - pi) * f1)))


@pytest.fixture(scope="module")
def group():
    return simulate(np.random.default_rng(0), 400, 0.25, 1e-3)


def test_loglik_matches_scipy(group):
    y, s, _ = group
    for pi, mu in [(0.0, 1e-3), (0.3, 5e-4), (0.9, 2e-3)]:
        assert mixture_loglik(y, s, pi, mu, ambient_rate=A, theta=THETA) == pytest.approx(
            ref_loglik(y, s, pi, mu), rel=1e-10
        )


def test_mle_equals_direct_optimisation_and_grid(group):
    y, s, _ = group
    fit = fit_antigen_mixture(y, s, ambient_rate=A, theta=THETA)
    assert isinstance(fit, AntigenFit)
    res = optimize.minimize(
        lambda p: -ref_loglik(y, s, p[0], np.exp(p[1])),
        x0=[0.5, np.log(5e-4)],
        method="L-BFGS-B",
        bounds=[(0, 1), (np.log(1e-5), np.log(1e-1))],
    )
    assert fit.pi == pytest.approx(res.x[0], abs=2e-3)
    assert fit.mu == pytest.approx(np.exp(res.x[1]), rel=5e-3)
    assert fit.loglik == pytest.approx(-res.fun, abs=1e-3)
    # brute-force profile on a grid: the interval ends are where the profile drops by chi2_1(0.95)/2
    pis = np.linspace(0, 0.6, 121)
    mus = np.exp(np.linspace(np.log(5e-4), np.log(2e-3), 161))
    f0 = stats.poisson.pmf(y, s * A)
    f1 = stats.nbinom.pmf(y[None, :], THETA, THETA / (THETA + s[None, :] * mus[:, None]))
    prof = np.array([np.log(p * f0 + (1 - p) * f1).sum(axis=1).max() for p in pis])
    inside = pis[prof >= prof.max() - stats.chi2.ppf(0.95, 1) / 2]
    assert fit.ci_low == pytest.approx(inside.min(), abs=0.01)
    assert fit.ci_high == pytest.approx(inside.max(), abs=0.01)
    # posterior by Bayes' rule with scipy pmfs
    f0 = fit.pi * stats.poisson.pmf(y, s * A)
    f1 = (1 - fit.pi) * stats.nbinom.pmf(y, THETA, THETA / (THETA + s * fit.mu))
    np.testing.assert_allclose(fit.p_negative, f0 / (f0 + f1), rtol=1e-8, atol=1e-12)
    lo, hi = fit.mu_ci
    assert lo < fit.mu < hi


def test_dropout_heavy_positive_group():
    """All cells express, half show zero counts: the naive zero fraction is large, the model says ~0."""
    rng = np.random.default_rng(1)
    y, s, _ = simulate(rng, 2000, 0.0, 4e-4)
    fit = fit_antigen_mixture(y, s, ambient_rate=A, theta=THETA)
    assert fit.zero_fraction > 0.4
    assert fit.ci_low == 0.0
    assert fit.pi < 0.1
    assert fit.upper_bound < 0.2
    assert fit.lrt_pvalue > 0.01
    assert fit.detection_limit().startswith("none in 2000 cells; 95 % upper bound")


def test_coverage_small_simulation():
    rng = np.random.default_rng(2)
    hits = 0
    n_rep = 40
    for _ in range(n_rep):
        pi = rng.uniform(0, 0.5)
        y, s, _ = simulate(rng, 300, pi, rng.uniform(5e-4, 2e-3))
        fit = fit_antigen_mixture(y, s, ambient_rate=A, theta=THETA)
        hits += fit.ci_low <= pi <= fit.ci_high
    assert hits / n_rep >= 0.85


def test_not_identifiable_at_low_depth():
    rng = np.random.default_rng(3)
    y, s, _ = simulate(rng, 300, 0.2, 1e-4, depth=1000)
    fit = fit_antigen_mixture(y, s, ambient_rate=A, theta=THETA)
    assert not fit.identifiable
    assert fit.ci_high - fit.ci_low > 0.25


def test_nuisance_estimates():
    rng = np.random.default_rng(4)
    y, s, _ = simulate(rng, 20000, 0.2, 1e-3)
    assert estimate_theta(y, s) == pytest.approx(THETA, rel=0.15)
    s0 = rng.lognormal(np.log(2000), 0.4, 5000)
    y0 = rng.poisson(s0 * A)
    assert estimate_ambient_rate(y0, s0) == pytest.approx(A, rel=0.1)


def test_constants_equal_config_defaults():
    from cd7escape._config import AntigenParams
    from cd7escape.tl._antigen import _model as m

    cfg = AntigenParams()
    assert (cfg.theta_prior_median, cfg.theta_prior_sd) == m.THETA_PRIOR
    assert cfg.max_ci_width == m.MAX_CI_WIDTH
    assert cfg.max_dropout == m.MAX_DROPOUT


def test_cox_reid_theta_at_low_depth():
    """At ~0.3 counts per expressing cell the plain profile likelihood of the shared theta (one pi_g, mu_g
    per group profiled out) overestimates it; the Cox-Reid adjusted one covers the truth (no prior)."""
    rng = np.random.default_rng(3)
    parts = [
        simulate(rng, 250, rng.choice([0.0, 0.1, 0.3, 0.6]), rng.uniform(2e-4, 6e-4), depth=750)
        for _ in range(10)
    ]
    y = np.concatenate([p[0] for p in parts]).astype(float)
    s = np.concatenate([p[1] for p in parts])
    g = np.repeat(np.arange(10), 250)
    adj, lo, hi = theta_interval(y, s, groups=g, ambient_rate=A, prior=None)
    plain = theta_interval(y, s, groups=g, ambient_rate=A, prior=None, adjust=False)[0]
    assert lo <= THETA <= hi
    assert plain > 1.3 * adj


def test_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        fit_antigen_mixture([1, 2], [1.0], ambient_rate=A)
    with pytest.raises(ValueError, match="non-negative"):
        fit_antigen_mixture([1, -2], [1.0, 2.0], ambient_rate=A)
    empty = fit_antigen_mixture([], [], ambient_rate=A, theta=THETA)
    assert empty.n_cells == 0
    assert not empty.identifiable


def test_large_groups_compressed_equal_exact(monkeypatch):
    import cd7escape.tl._antigen._model as m

    rng = np.random.default_rng(5)
    y, s, _ = simulate(rng, 6000, 0.2, 8e-4)
    s = np.round(s)
    fast = fit_antigen_mixture(y, s, ambient_rate=A, theta=THETA)
    monkeypatch.setattr(m, "COMPRESS_ABOVE", 10**9)
    exact = fit_antigen_mixture(y, s, ambient_rate=A, theta=THETA)
    assert fast.pi == pytest.approx(exact.pi, abs=1e-4)
    assert fast.ci_high == pytest.approx(exact.ci_high, abs=1e-4)
    assert fast.mu == pytest.approx(exact.mu, rel=1e-4)
    np.testing.assert_allclose(fast.p_negative, exact.p_negative, atol=1e-4)


def test_real_t_cells_dropout_is_not_negativity(shared_data):
    """Real sorted CD3+CAT+ T cells (CARPALL): about a third show zero CD7 counts, the model finds few negatives."""
    import h5py
    from scipy import sparse

    with h5py.File(shared_data / "carpall" / "gex" / "CAR-T10310322.h5", "r") as f:
        m = f["matrix"]
        X = sparse.csc_matrix(
            (m["data"][:], m["indices"][:], m["indptr"][:]), shape=tuple(m["shape"][:])
        )
        names = m["features/name"][:].astype(str)
        gex = m["features/feature_type"][:].astype(str) == "Gene Expression"
    s = np.asarray(X[gex].sum(axis=0)).ravel().astype(float)
    y = np.asarray(X[np.flatnonzero(names == "CD7")[0]].todense()).ravel().astype(float)
    keep = s >= 500
    fit = fit_antigen_mixture(
        y[keep],
        s[keep],
        ambient_rate=1.7e-5,
        theta=estimate_theta(y[keep], s[keep], ambient_rate=1.7e-5),
    )
    assert fit.zero_fraction > 0.25
    assert fit.ci_high < fit.zero_fraction / 2
