"""The relapse → baseline trace: ancestor lists and weights, the weighted antigen fit, the decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse, stats

from cd7escape.tl._antigen import anchored_fit, negative_posterior
from cd7escape.tl._clones import cap_weights, density_ratio


def _two_states(rng, n_small=15, n_big=285, n_rel=200, sep=3.0):
    """Baseline: a small state overlapping a big one in 5 dimensions; the negative relapse grew from the small one."""
    small = rng.normal(0, 1, (n_small, 5)) + np.r_[sep, np.zeros(4)]
    big = rng.normal(0, 1, (n_big, 5))
    rel = rng.normal(0, 1, (n_rel, 5)) + np.r_[sep, np.zeros(4)]
    z = np.vstack([small, big, rel])
    base = np.r_[np.ones(n_small + n_big), np.zeros(n_rel)]
    mass = np.r_[np.zeros(n_small + n_big), np.ones(n_rel)]
    is_small = np.r_[np.ones(n_small, bool), np.zeros(n_big + n_rel, bool)]
    return z, base, mass, is_small


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_density_ratio_puts_the_weight_on_the_state_the_relapse_grew_from(seed):
    rng = np.random.default_rng(seed)
    z, base, mass, small = _two_states(rng)
    odds = density_ratio(z, base, mass, penalty=3.0, seed=seed)
    assert np.isnan(odds[base == 0]).all()
    assert np.isfinite(odds[base > 0]).all()
    w = odds[base > 0]
    share_small = w[small[base > 0]].sum() / w.sum()
    # 5 % of baseline cells hold most of the weight, before and after the cap at 10 cells' worth
    assert share_small > 0.6
    capped = cap_weights(w, 10)
    assert capped[small[base > 0]].sum() / capped.sum() > 0.6
    # nothing grew: the odds are flat (no baseline cell is singled out)
    flat = density_ratio(z, base, np.where(base > 0, 0, 0.0), penalty=3.0)
    np.testing.assert_array_equal(flat[base > 0], 1.0)


def test_density_ratio_is_cross_fitted_and_reproducible():
    """A baseline cell's odds come from a model that did not see it; the same seed gives the same odds."""
    rng = np.random.default_rng(5)
    z, base, mass, _ = _two_states(rng)
    one = density_ratio(z, base, mass, penalty=3.0, folds=5, seed=1)
    again = density_ratio(z, base, mass, penalty=3.0, folds=5, seed=1)
    np.testing.assert_array_equal(one, again)
    # an isolated baseline outlier far along the relapse direction: had it trained its own prediction it
    # would pull its odds towards "baseline"; cross-fitted, it is judged by the others only
    z2 = np.vstack([z, np.r_[6.0, np.zeros(4)]])
    b2, m2 = np.r_[base, 1.0], np.r_[mass, 0.0]
    out = density_ratio(z2, b2, m2, penalty=3.0, folds=5, seed=1)
    assert out[-1] > np.nanmedian(out)


@pytest.mark.parametrize("seed", range(5))
def test_cap_weights_holds_min_cells_worth_and_keeps_the_rest(seed):
    rng = np.random.default_rng(seed)
    w = np.exp(rng.normal(0, 3, 60))
    for m in (1, 5, 10, 30):
        c = cap_weights(w, m)
        assert c.max() <= c.sum() / m * (1 + 1e-9)
        below = w < c.max()
        np.testing.assert_allclose(c[below], w[below])  # only the largest are capped
        assert (c <= w + 1e-12).all()
    spread = np.ones(40)
    np.testing.assert_array_equal(cap_weights(spread, 10), spread)  # already spread: unchanged
    np.testing.assert_array_equal(cap_weights(np.r_[5.0, 1.0, 0.0], 10), [1.0, 1.0, 0.0])


def _cells(rng, n, pi, mu=2e-3, a=1e-5, theta=3.0):
    s = rng.uniform(1500, 4000, n)
    neg = rng.random(n) < pi
    lam = np.where(neg, s * a, rng.gamma(theta, s * mu / theta))
    return rng.poisson(lam).astype(float), s, neg


def test_weighted_fit_equal_weights_is_the_unweighted_fit():
    rng = np.random.default_rng(3)
    y, s, _ = _cells(rng, 300, 0.3)
    kw = dict(mu_ref=2e-3, ambient=1e-5, theta=3.0, alpha=0.05)
    plain = anchored_fit(y, s, **kw)
    weighted = anchored_fit(y, s, weights=np.full(y.size, 7.0), **kw)
    for key in ("pi", "ci_low", "ci_high", "pval"):
        assert weighted[key] == pytest.approx(plain[key], rel=1e-6, abs=1e-9)


def test_weighted_fit_follows_the_weights():
    """Weight on the negative cells moves the estimate to them; integer weights act as copies for pi."""
    rng = np.random.default_rng(4)
    y, s, neg = _cells(rng, 400, 0.2)
    kw = dict(mu_ref=2e-3, ambient=1e-5, theta=3.0, alpha=0.05)
    w = np.where(neg, 4.0, 1.0)
    weighted = anchored_fit(y, s, weights=w, **kw)
    copies = anchored_fit(np.repeat(y, w.astype(int)), np.repeat(s, w.astype(int)), **kw)
    assert weighted["pi"] == pytest.approx(copies["pi"], abs=1e-4)
    assert weighted["pi"] > anchored_fit(y, s, **kw)["pi"] + 0.2
    # the interval is that of the effective sample size, wider than the copies pretend
    assert weighted["ci_high"] - weighted["ci_low"] > copies["ci_high"] - copies["ci_low"]


def test_negative_posterior_is_bayes_rule_with_scipy_densities():
    y = np.array([0.0, 0, 1, 3, 8])
    s = np.array([500.0, 4000, 2000, 3000, 2500])
    pi, mu, a, theta = 0.3, 2e-3, 1e-5, 3.0
    f0 = stats.poisson.pmf(y, s * a)
    f1 = stats.nbinom.pmf(y, theta, theta / (theta + s * mu))
    expected = pi * f0 / (pi * f0 + (1 - pi) * f1)
    np.testing.assert_allclose(
        negative_posterior(y, s, pi=pi, mu_ref=mu, ambient=a, theta=theta), expected, rtol=1e-9
    )


@pytest.fixture(scope="module")
def merged_preexisting():
    """A pre-existing negative subclone (10 % of baseline blasts) merged into one subclone with the rest.

    The coarsest clustering a resolution can give: the subclone routes see one mostly-positive subclone
    that lost the antigen.
    """
    import cd7escape as ce

    adata = ce.datasets.simulate_patient(
        "preexisting_negative_clone", seed=2, n_cells=800, negative_fraction=0.1
    )
    adata.obs["malignant"] = adata.obs["truth_malignant"].to_numpy()
    adata.obs["cell_class"] = adata.obs["truth_cell_type"].astype(str).to_numpy()
    ce.tl.subclones(adata)
    labels = np.where(adata.obs["malignant"].to_numpy(bool), "S0", None)
    adata.obs["subclone"] = pd.Categorical(labels, categories=["S0"])
    adata.obs["subclone_confidence"] = np.where(labels == "S0", 1.0, np.nan)
    return adata


def test_trace_sees_a_negative_state_that_a_subclone_merge_hides(merged_preexisting):
    import cd7escape as ce

    call = ce.tl.classify_relapse(merged_preexisting.copy(), n_bootstrap=20, seed=0)
    assert call.mechanism == "preexisting_negative_clone"
    assert call.numbers["rule"] == "trace_negative_ancestors"
    assert call.confidence >= 0.8
    trace = call.numbers["trace"]
    assert trace["ci_low"] >= 0.5
    # the subclone routes alone, on the merge, do not see it
    assert call.numbers["subclone_call"]["mechanism"] != "preexisting_negative_clone"


def test_without_the_trace_the_merge_is_not_called_preexisting(merged_preexisting):
    import cd7escape as ce

    adata = merged_preexisting.copy()
    del adata.obsm["X_clone_trace"]
    call = ce.tl.classify_relapse(adata, n_bootstrap=0, seed=0)
    assert call.mechanism != "preexisting_negative_clone"


@pytest.mark.parametrize("weighted", [False, True])
def test_large_anchored_fit_pooled_equals_exact(monkeypatch, weighted):
    """Above COMPRESS_ABOVE cells the anchored fit pools cells by (count, size factor), weights summed."""
    import cd7escape.tl._antigen._model as m

    rng = np.random.default_rng(8)
    y, s, _ = _cells(rng, 7000, 0.25)
    s = np.round(s)
    w = rng.gamma(2.0, 0.5, y.size) if weighted else None
    kw = dict(mu_ref=2e-3, ambient=1e-5, theta=3.0, alpha=0.05, weights=w)
    pooled = anchored_fit(y, s, **kw)
    monkeypatch.setattr(m, "COMPRESS_ABOVE", 10**9)
    exact = anchored_fit(y, s, **kw)
    assert pooled["n"] == exact["n"]
    for key in ("pi", "ci_low", "ci_high"):
        assert pooled[key] == pytest.approx(exact[key], abs=1e-4)


@pytest.mark.parametrize(("n", "d", "penalty"), [(300, 31, 30.0), (3000, 12, 0.5), (2000, 40, 3.0)])
def test_penalised_logistic_is_scikit_learns_objective(n, d, penalty):
    from sklearn.linear_model import LogisticRegression

    from cd7escape.tl._clones._trace import penalised_logistic

    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, d))
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ rng.normal(0, 0.5, d) - 1)))).astype(float)
    w = rng.gamma(2.0, 0.5, n)
    ref = LogisticRegression(C=1 / penalty, max_iter=5000, tol=1e-10).fit(x, y, sample_weight=w)
    coef, intercept = penalised_logistic(x, y, w, penalty)
    np.testing.assert_allclose(coef, ref.coef_[0], atol=1e-6)
    assert intercept == pytest.approx(ref.intercept_[0], abs=1e-6)
    # a start elsewhere reaches the same optimum
    coef2, intercept2 = penalised_logistic(x, y, w, penalty, start=rng.normal(0, 1, d + 1))
    np.testing.assert_allclose(coef2, coef, atol=1e-7)
    assert intercept2 == pytest.approx(intercept, abs=1e-7)


def _shifted_relapse(seed, *, shift):
    """A 7 % baseline state whose relapse grew negative, a big one that stayed positive, and every relapse cell
    moved ``shift`` along an axis of its own (a therapy program)."""
    rng = np.random.default_rng(seed)
    n_small, n_big, n_neg, n_pos, sep = 20, 280, 200, 150, 1.5
    moved = np.r_[0.0, shift, np.zeros(3)]
    z = np.vstack(
        [
            rng.normal(0, 1, (n_small, 5)) + np.r_[sep, np.zeros(4)],
            rng.normal(0, 1, (n_big, 5)),
            rng.normal(0, 1, (n_neg, 5)) + np.r_[sep, np.zeros(4)] + moved,
            rng.normal(0, 1, (n_pos, 5)) + moved,
        ]
    )
    base = np.r_[np.ones(n_small + n_big), np.zeros(n_neg + n_pos)]
    mass = np.r_[np.zeros(n_small + n_big), np.ones(n_neg), np.zeros(n_pos)]
    rest = np.r_[np.zeros(n_small + n_big + n_neg), np.ones(n_pos)]
    return z, base, mass, rest, n_small


def test_relapse_positives_keep_a_shared_shift_from_steering_the_trace():
    """With the relapse cells that are not negative beside the baseline cells, a shift that every relapse
    cell shares leaves the weight where it is without the shift; the negatives alone can be led astray."""

    def share(z, base, mass, n_small, **kw):
        odds = density_ratio(z, base, mass, penalty=3.0, seed=0, **kw)
        assert np.isnan(odds[base == 0]).all()
        assert np.isfinite(odds[base > 0]).all()
        w = cap_weights(odds[base > 0], 10)
        return w[:n_small].sum() / w.sum()

    alone, beside, unshifted = [], [], []
    for seed in range(6):
        z, base, mass, rest, n_small = _shifted_relapse(seed, shift=2.5)
        alone.append(share(z, base, mass, n_small))
        beside.append(share(z, base, mass, n_small, background=rest))
        z0, *_ = _shifted_relapse(seed, shift=0.0)
        unshifted.append(share(z0, base, mass, n_small))
        # without a shift the relapse positives lie where the big state lies: they change little
        assert abs(share(z0, base, mass, n_small, background=rest) - unshifted[-1]) < 0.05
    np.testing.assert_array_less(np.abs(np.subtract(beside, unshifted)), 0.1)
    assert min(np.subtract(alone, unshifted)) < -0.15


def test_trace_and_baseline_fractions_covary_as_the_paired_growth_test_assumes():
    """The trace's weighted negative fraction and the baseline's, fit on the same cells: their covariance is
    the baseline estimate's variance (to first order), so their difference varies far less than the two
    intervals added in quadrature say, and ``growth_low`` uses that."""
    from cd7escape.tl._classify._trace_decision import growth_low

    rng = np.random.default_rng(0)
    n, pi, mu, a, theta, q = 400, 0.2, 1e-3, 1e-5, 5.0, 0.8
    # weights that depend on place, not on the antigen: moderately uneven (Kish size about 0.6 n)
    w = np.exp(0.7 * rng.normal(size=n))
    kw = dict(mu_ref=mu, ambient=a, theta=theta, alpha=0.05, interval=False)
    pw, pb = [], []
    for _ in range(150):
        s = rng.lognormal(np.log(2000), 0.3, n)
        neg = rng.random(n) < pi
        y = np.where(
            neg, rng.poisson(s * a), rng.negative_binomial(theta, theta / (theta + s * mu))
        )
        pw.append(anchored_fit(y, s, weights=w, **kw)["pi"])
        pb.append(anchored_fit(y, s, **kw)["pi"])
    pw, pb = np.array(pw), np.array(pb)
    cov = np.cov(pw, pb)
    np.testing.assert_allclose(cov[0, 1], cov[1, 1], rtol=0.25)
    sd_diff = np.std(q * pw - pb, ddof=1)
    paired = np.sqrt(q**2 * cov[0, 0] + (1 - 2 * q) * cov[1, 1])
    np.testing.assert_allclose(sd_diff, paired, rtol=0.2)
    assert np.hypot(q * np.sqrt(cov[0, 0]), np.sqrt(cov[1, 1])) > 1.5 * sd_diff
    # with those spreads as half-widths, the lower end of q·a − b is the paired one
    h_a, h_b = np.sqrt(cov[0, 0]), np.sqrt(cov[1, 1])
    gb = {"pi": pi, "ci_low": pi - h_b, "ci_high": pi + h_b}
    low = growth_low(0.3, 0.3 - h_a, q, gb)
    np.testing.assert_allclose(low, q * 0.3 - pi - paired, rtol=1e-9)
    # weights spread evenly: only the baseline's own spread, scaled by (1 - q), is left
    even = growth_low(0.3, 0.3 - h_b, q, gb)
    np.testing.assert_allclose(even, q * 0.3 - pi - (1 - q) * h_b, rtol=1e-9)


def _counts_with_state(rng, n_base=400, n_small=20, n_rel=200, n_genes=600):
    """Raw counts: a small baseline state (and the relapse grown from it) expresses 20 abundant genes 2.5x;
    every cell carries 200 sparse genes of pure noise, and the antigen (gene 0) is 20x higher at relapse."""
    rate = rng.lognormal(0, 1.2, n_genes)
    rate[1:201] = 0.02  # sparse genes
    abundant = 250 + np.argsort(rate[250:])[-20:]
    rate /= rate.sum()
    n = n_base + n_rel
    state = np.r_[np.ones(n_small, bool), np.zeros(n_base - n_small, bool), np.ones(n_rel, bool)]
    mu = np.tile(rate, (n, 1))
    mu[np.ix_(state, abundant)] *= 2.5
    mu[n_base:, 0] *= 20.0
    mu /= mu.sum(axis=1, keepdims=True)
    lib = rng.lognormal(np.log(2500), 0.3, n)
    x = rng.poisson(rng.gamma(4.0, 0.25, mu.shape) * mu * lib[:, None]).astype(np.float32)
    return sparse.csr_matrix(x), state, n_base


@pytest.mark.parametrize("seed", [0, 1])
def test_joint_space_keeps_a_small_state_apart_and_its_relapse_beside_it(seed):
    from sklearn.metrics import roc_auc_score

    from cd7escape.tl._clones import joint_space

    rng = np.random.default_rng(seed)
    x, state, n_base = _counts_with_state(rng)
    names = np.array([f"g{i}" for i in range(x.shape[1])])
    names[0] = "CD7"
    zb, zr = joint_space(
        x[:n_base], x[n_base:], names, antigen="CD7", excluded_genes=[], n_top_genes=300, n_pcs=10
    )
    assert zb.shape == (n_base, 10)
    assert zr.shape == (x.shape[0] - n_base, 10)
    # the 20 baseline cells of the state sit apart from the other 380 on one of the components ...
    aucs = [roc_auc_score(state[:n_base], zb[:, j]) for j in range(zb.shape[1])]
    j = int(np.argmax(np.abs(np.array(aucs) - 0.5)))
    assert abs(aucs[j] - 0.5) > 0.45
    # ... and the relapse grown from it lies on its side of that component
    side = np.sign(aucs[j] - 0.5)
    in_state, rest = zb[state[:n_base], j], zb[~state[:n_base], j]
    midpoint = 0.5 * (np.median(in_state) + np.median(rest))
    assert side * (np.median(zr[:, j]) - midpoint) > 0


@pytest.mark.parametrize("seed", range(3))
def test_copy_number_evidence_localises_ancestors_the_expression_cannot(seed):
    """A negative subclone whose expression overlaps the main clone's entirely, but which carries a loss of
    its own: its cells' evidence of the loss (log-likelihood ratios) puts the trace's weight on them."""
    rng = np.random.default_rng(seed)
    z, base, mass, small = _two_states(rng, sep=0.0)  # no expression sets the small state apart
    carrier = small | (mass > 0)
    llr = np.where(carrier, rng.normal(3.0, 1.5, z.shape[0]), rng.normal(-3.0, 1.5, z.shape[0]))
    b = base > 0

    def share(odds):
        w = cap_weights(odds[b], 10)
        return w[small[b]].sum() / w.sum()

    without = share(density_ratio(z, base, mass, penalty=3.0, seed=seed))
    with_cn = share(density_ratio(z, base, mass, penalty=3.0, copy_number=llr[:, None], seed=seed))
    assert without < 0.2  # the expression spreads the weight over the baseline (5 % small state)
    assert with_cn > 0.7
    # evidence that nobody carries more at relapse than at baseline changes nothing
    none = rng.normal(-3.0, 1.5, z.shape[0])
    flat = density_ratio(z, base, mass, penalty=3.0, copy_number=none[:, None], seed=seed)
    np.testing.assert_allclose(
        flat[b], density_ratio(z, base, mass, penalty=3.0, seed=seed)[b], rtol=0.05
    )
