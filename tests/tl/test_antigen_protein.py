"""The ADT (protein) mixture of ``tl/_antigen/_protein.py``: calibration of its interval of the
protein-negative fraction where the positive cells' signal is a low-shape gamma (a long lower tail).

A protein-positive cell's ADT count is its background plus the specific signal. With an NB foreground
whose size is held at the group's own estimate, such groups got intervals below the truth (8 groups of
600 cells, 20 % negative: 4 of 8 covered); the convolution foreground with its mean and
size profiled out covers them.
"""

from __future__ import annotations

import numpy as np
import pytest

from cd7escape.tl._antigen._protein import fit_protein_mixture, protein_background

BG_MEAN, BG_SIZE = 10.0, 3.0


def _group(rng, n: int, pi: float, fg_mean: float, fg_shape: float) -> np.ndarray:
    neg = rng.random(n) < pi
    signal = np.where(neg, 0.0, rng.gamma(fg_shape, fg_mean / fg_shape, n))
    return rng.poisson(rng.gamma(BG_SIZE, BG_MEAN / BG_SIZE, n) + signal)


def test_low_shape_foreground_is_covered():
    rng = np.random.default_rng(20)
    pi = 0.2
    fits = [
        fit_protein_mixture(_group(rng, 600, pi, 80.0, 1.6), background=(BG_MEAN, BG_SIZE))
        for _ in range(8)
    ]
    covered = [f.ci_low <= pi <= f.ci_high for f in fits]
    assert sum(covered) >= 7
    assert abs(np.mean([f.pi for f in fits]) - pi) < 0.02


def test_fit_fields():
    rng = np.random.default_rng(3)
    x = _group(rng, 500, 0.3, 100.0, 4.0)
    f = fit_protein_mixture(x, background=(BG_MEAN, BG_SIZE))
    assert f.ci_low <= f.pi <= f.upper_bound <= f.ci_high
    assert f.lrt_pvalue < 1e-6
    assert f.identifiable
    assert f.mu_ci[0] < f.mu < f.mu_ci[1]
    assert f.mu == pytest.approx(BG_MEAN + 100.0, rel=0.15)
    assert f.p_negative.shape == x.shape
    assert np.all((f.p_negative >= 0) & (f.p_negative <= 1))
    assert f.theta == pytest.approx(4.0, rel=0.5)
    # a wholly positive group: pi at 0, the LRT says nothing is negative
    pos = fit_protein_mixture(_group(rng, 400, 0.0, 100.0, 4.0), background=(BG_MEAN, BG_SIZE))
    assert pos.ci_low == 0.0
    assert pos.upper_bound < 0.05
    assert pos.lrt_pvalue > 0.01
    # a wholly negative group
    neg = fit_protein_mixture(_group(rng, 300, 1.0, 100.0, 4.0), background=(BG_MEAN, BG_SIZE))
    assert neg.ci_low > 0.9


def test_background_and_foreground_option():
    rng = np.random.default_rng(1)
    m, t = protein_background(rng.poisson(rng.gamma(BG_SIZE, BG_MEAN / BG_SIZE, 3000)))
    assert m == pytest.approx(BG_MEAN, rel=0.05)
    assert t == pytest.approx(BG_SIZE, rel=0.2)
    x = _group(rng, 300, 0.3, 100.0, 4.0)
    nb = fit_protein_mixture(x, background=(m, t), foreground="nb")
    assert abs(nb.pi - 0.3) < 0.1
    with pytest.raises(ValueError, match="foreground"):
        fit_protein_mixture(x, background=(m, t), foreground="gamma")


def test_background_estimate_error_widens_the_interval():
    """A background fitted on few reference cells is uncertain: the interval of pi carries that too,
    more for 30 reference cells than for 3,000, and not at all without ``background_cells``."""
    rng = np.random.default_rng(5)
    x = _group(rng, 500, 0.3, 40.0, 4.0)
    bg = protein_background(rng.poisson(rng.gamma(BG_SIZE, BG_MEAN / BG_SIZE, 200)))
    plain = fit_protein_mixture(x, background=bg)
    few = fit_protein_mixture(x, background=bg, background_cells=30)
    many = fit_protein_mixture(x, background=bg, background_cells=3000)
    assert few.pi == plain.pi
    width = {k: f.ci_high - f.ci_low for k, f in (("plain", plain), ("few", few), ("many", many))}
    assert width["few"] > width["many"] >= width["plain"]
    assert width["few"] > 1.2 * width["plain"]
    assert few.upper_bound >= plain.upper_bound
