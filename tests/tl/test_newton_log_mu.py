from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from cd7escape.tl._antigen._model import _Group
from cd7escape.tl._antigen._newton_log_mu import newton_log_mu


def _group(n: int, pi: float, seed: int, *, pooled: bool) -> _Group:
    rng = np.random.default_rng(seed)
    s = rng.gamma(5, 400, n)
    negative = rng.random(n) < pi
    y = rng.poisson(np.where(negative, s * 1e-5, rng.gamma(1.5, s * 2e-3 / 1.5))).astype(float)
    if pooled:
        return _Group.compressed(y, s, 1e-5, 1.5)
    return _Group(y, s, 1e-5, 1.5)


def _newton(group: _Group, pi: float, mu0: float) -> tuple[float, float]:
    w = group.w if group.w is not None else np.empty(0)
    with np.errstate(divide="ignore"):
        lp, lq = np.log(pi), np.log1p(-pi)
    u, ll = newton_log_mu(
        group.y, group.s, np.log(group.s), group.l0, group.c1, group.ypt, w, group.theta, lp, lq,
        np.log(mu0), np.log(group.mu_floor), 1e-9, 50,
    )  # fmt: skip
    return float(np.exp(u)), float(ll)


@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize(("n", "pi"), [(40, 0.0), (300, 0.4), (900, 0.95), (4000, 0.3)])
def test_newton_finds_the_maximum_of_the_numpy_likelihood(n, pi, pooled):
    group = _group(n, pi, seed=n, pooled=pooled)
    for p in [0.0, 0.2, pi, 0.7, 0.999]:
        mu, ll = _newton(group, p, 1e-3)
        # an independent search over log mu on the NumPy evaluation of the same likelihood
        ref = optimize.minimize_scalar(
            lambda u, p=p: -group.loglik(p, np.exp(u)),
            bounds=(np.log(group.mu_floor), np.log(1.0)),
            method="bounded",
            options={"xatol": 1e-10},
        )
        assert ll == pytest.approx(group.loglik(p, mu), rel=1e-12, abs=1e-9)
        assert ll >= -ref.fun - 1e-7
        assert mu == pytest.approx(np.exp(ref.x), rel=1e-4)


def test_newton_stops_at_the_floor_when_no_cell_expresses():
    group = _Group(np.zeros(200), np.full(200, 2000.0), 1e-5, 1.5)
    mu, _ = _newton(group, 0.0, 1e-3)
    assert mu == pytest.approx(group.mu_floor)
