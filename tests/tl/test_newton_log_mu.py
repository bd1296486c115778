from __future__ import annotations

import numpy as np
import pytest

from cd7escape.tl import _antigen_model
from cd7escape.tl._antigen_model import _Group


def _group(n: int, pi: float, seed: int, *, pooled: bool) -> _Group:
    rng = np.random.default_rng(seed)
    s = rng.gamma(5, 400, n)
    negative = rng.random(n) < pi
    y = rng.poisson(np.where(negative, s * 1e-5, rng.gamma(1.5, s * 2e-3 / 1.5))).astype(float)
    if pooled:
        return _Group.compressed(y, s, 1e-5, 1.5)
    return _Group(y, s, 1e-5, 1.5)


@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize(("n", "pi"), [(40, 0.0), (300, 0.4), (900, 0.95)])
def test_compiled_newton_agrees_with_numpy(n, pi, pooled, monkeypatch):
    group = _group(n, pi, seed=n, pooled=pooled)
    grid = [0.0, 0.2, pi, 0.7, 0.999]
    compiled = [group.profile_mu(p, 1e-3) for p in grid]
    monkeypatch.setattr(_antigen_model, "COMPILED_MAX_CELLS", -1)  # NumPy's Newton steps
    plain = [group.profile_mu(p, 1e-3) for p in grid]
    for (mu_c, ll_c), (mu_p, ll_p) in zip(compiled, plain, strict=True):
        # the same steps; sums in cell order and libm's exp/log differ in the last bits only
        assert mu_c == pytest.approx(mu_p, rel=1e-6)
        assert ll_c == pytest.approx(ll_p, rel=1e-12, abs=1e-9)
    assert group.profile_mu(1.0, 2e-3)[0] == 2e-3  # every cell negative: mu stays where it was
