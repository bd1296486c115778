"""The relapse → baseline trace: ancestor lists and weights, the weighted antigen fit, the decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cd7escape.tl._antigen import anchored_fit, negative_posterior
from cd7escape.tl._clones import attribute, neighbourhood_lists, neighbourhood_shares


def _brute_shares(lists, value, k, drawn):
    """Each neighbourhood's k places go to its nearest drawn copies, one place per copy."""
    out = np.zeros(len(lists))
    for i, row in enumerate(lists):
        places = []
        for j in row:
            if j >= 0:
                places += [j] * int(drawn[j])
        places = places[:k]
        out[i] = np.mean([value[j] for j in places]) if places else 0.0
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_neighbourhood_shares_equal_a_place_by_place_count(seed):
    rng = np.random.default_rng(seed)
    n, k = 50, 4
    lists = np.array([rng.permutation(n)[: 3 * k] for _ in range(20)])
    lists[0, -2:] = -1  # a short list
    value = rng.random(n)
    drawn = rng.poisson(1.0, n)
    got = neighbourhood_shares(lists, value, k, drawn=drawn)
    np.testing.assert_allclose(got, _brute_shares(lists, value, k, drawn))
    np.testing.assert_allclose(
        neighbourhood_shares(lists, value, k), _brute_shares(lists, value, k, np.ones(n, int))
    )


def test_neighbourhood_lists_are_nearest_first_and_respect_clone_labels():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(80, 3))
    centres = np.arange(0, 80, 8)
    lists = neighbourhood_lists(z, centres, 3)
    d = np.linalg.norm(z[centres][:, None, :] - z[None, :, :], axis=2)
    np.testing.assert_array_equal(lists, np.argsort(d, axis=1, kind="stable")[:, :9])
    assert (lists[:, 0] == centres).all()  # a centre is its own nearest cell
    labels = np.where(np.arange(80) < 40, "cnv1", None).astype(object)
    lab = neighbourhood_lists(z, centres, 3, labels=labels)
    inside = centres < 40
    assert (lab[inside] < 40).all()  # a confirmed copy-number subclone keeps its neighbourhoods
    np.testing.assert_array_equal(lab[~inside], lists[~inside])


def _brute_attribution(lists, mass, k, affinity, drawn):
    out = np.zeros(affinity.size)
    for row, m in zip(lists, mass, strict=True):
        places = []
        for j in row:
            if j >= 0:
                places += [j] * int(drawn[j])
        places = places[:k]
        total = sum(affinity[j] for j in places)
        for j in places:
            if total > 0:
                out[j] += m * affinity[j] / total
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_attribution_spreads_mass_by_affinity_over_the_nearest_drawn_cells(seed):
    rng = np.random.default_rng(seed)
    n, k = 30, 4
    lists = np.array([rng.permutation(n)[: 3 * k] for _ in range(15)])
    mass = rng.random(15)
    affinity = 1.0 + rng.exponential(2.0, n)
    drawn = rng.poisson(1.0, n)
    got = attribute(lists, mass, k, affinity, drawn=drawn)
    np.testing.assert_allclose(got, _brute_attribution(lists, mass, k, affinity, drawn))
    even = attribute(lists, mass, k, np.ones(n))
    np.testing.assert_allclose(
        even, _brute_attribution(lists, mass, k, np.ones(n), np.ones(n, int))
    )
    assert even.sum() == pytest.approx(mass.sum())


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
