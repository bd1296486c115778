from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from cd7escape.tl._antigen._mixture_search import anchored_search, profile_crossing, profile_maximum
from cd7escape.tl._antigen._model import _Group, chi2_half_quantile
from cd7escape.tl._antigen._newton_log_mu import newton_log_mu


def _cells(n: int, pi: float, seed: int, depth: float = 2000.0):
    rng = np.random.default_rng(seed)
    s = rng.gamma(5, depth / 5, n)
    negative = rng.random(n) < pi
    y = rng.poisson(np.where(negative, s * 1e-5, rng.gamma(1.5, s * 2e-3 / 1.5))).astype(float)
    return y, s


CASES = [(60, 0.0, 1), (300, 0.35, 2), (800, 0.9, 3), (250, 1.0, 4), (2000, 0.05, 5)]


@pytest.mark.parametrize(("n", "pi", "seed"), CASES)
def test_anchored_search_takes_scipys_steps(n, pi, seed):
    y, s = _cells(n, pi, seed)
    group = _Group(y, s, 1e-5, 1.5)
    mu_ref = 2e-3
    l1 = group.l1(mu_ref)[0]

    def ll(p):
        p = min(max(p, 0.0), 1.0)
        with np.errstate(divide="ignore"):
            return float(np.logaddexp(np.log(p) + group.l0, np.log1p(-p) + l1).sum())

    drop = chi2_half_quantile(0.95)
    got = anchored_search(1e-5, drop, *group.search_terms(mu_ref, anchor=mu_ref))
    res = optimize.minimize_scalar(
        lambda p: -ll(p), bounds=(0, 1), method="bounded", options={"xatol": 1e-5}
    )
    p_hat, top = max([(res.x, -res.fun), (0.0, ll(0.0)), (1.0, ll(1.0))], key=lambda c: c[1])
    cut = top - drop
    lo = (
        0.0
        if p_hat <= 0 or ll(0) >= cut
        else optimize.brentq(lambda p: ll(p) - cut, 0, p_hat, xtol=1e-5)
    )
    hi = (
        1.0
        if p_hat >= 1 or ll(1) >= cut
        else optimize.brentq(lambda p: ll(p) - cut, p_hat, 1, xtol=1e-5)
    )
    # the same steps on sums that differ in the last bits (cell order against NumPy's pairwise sum)
    assert got[0] == pytest.approx(p_hat, abs=1e-9)
    assert got[1] == pytest.approx(top, rel=1e-12)
    assert got[2] == pytest.approx(ll(0.0), rel=1e-12)
    assert got[3] == pytest.approx(lo, abs=1e-9)
    assert got[4] == pytest.approx(hi, abs=1e-9)
    assert np.isnan(anchored_search(1e-5, np.nan, *group.search_terms(mu_ref, anchor=mu_ref))[3])


@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize(("n", "pi", "seed"), CASES)
def test_profile_search_takes_scipys_steps(n, pi, seed, pooled):
    y, s = _cells(n, pi, seed, depth=800.0)
    group = _Group.compressed(y, s, 1e-5, 1.5) if pooled else _Group(y, s, 1e-5, 1.5)
    mu_start = max(float(y.sum() / s.sum()), group.mu_floor)
    w = group.w if group.w is not None else np.empty(0)
    # the SciPy-driven profile: warm-started from the last mu found, remembered by pi
    cache, last = {}, [mu_start]

    def prof(p):
        p = float(min(max(p, 0.0), 1.0))
        if p not in cache:
            if p >= 1:
                cache[p] = (last[0], float(group.l0 @ group.w if pooled else group.l0.sum()))
            else:
                with np.errstate(divide="ignore"):
                    lp, lq = np.log(p), np.log1p(-p)
                u, v = newton_log_mu(
                    group.y, group.s, np.log(group.s), group.l0, group.c1, group.ypt, w,
                    group.theta, lp, lq, np.log(max(last[0], group.mu_floor)),
                    np.log(group.mu_floor), 1e-9, 50,
                )  # fmt: skip
                last[0] = float(np.exp(u))
                cache[p] = (last[0], float(v))
        return cache[p][1]

    terms = group.search_terms(mu_start)
    pi_hat, ll_hat, ll0, mu0, mu_hat = profile_maximum(1e-4, *terms)
    ref0 = prof(0.0)
    res = optimize.minimize_scalar(
        lambda p: -prof(p), bounds=(0, 1), method="bounded", options={"xatol": 1e-4}
    )
    p_ref, l_ref = (res.x, -res.fun) if -res.fun > ref0 else (0.0, ref0)
    if prof(1.0) > l_ref:
        p_ref, l_ref = 1.0, prof(1.0)
    assert pi_hat == pytest.approx(p_ref, abs=1e-9)
    assert ll_hat == pytest.approx(l_ref, rel=1e-12)
    assert ll0 == pytest.approx(ref0, rel=1e-12)
    assert mu0 == pytest.approx(cache[0.0][0], rel=1e-12)
    assert np.isnan(mu_hat) == (pi_hat >= 1)
    if pi_hat < 1:
        assert mu_hat == pytest.approx(cache[p_ref][0], rel=1e-9)
        cut = ll_hat - chi2_half_quantile(0.95)
        got = profile_crossing(cut, pi_hat, 1.0, pi_hat, mu_hat, 1e-4, *terms)
        if prof(1.0) >= cut:
            assert got == 1.0
        else:
            last[0] = cache[p_ref][0]
            ref = optimize.brentq(lambda p: prof(p) - cut, p_ref, 1.0, xtol=1e-4)
            assert got == pytest.approx(ref, abs=1e-9)
