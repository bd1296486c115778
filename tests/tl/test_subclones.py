"""subclones: baseline subclones, relapse mapping, new states, the table."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cd7escape as ce
from cd7escape._config import CloneParams
from cd7escape.tl._clones._subclones import fold_ci


def _patient(mechanism: str, seed: int = 3, **kw):
    adata = ce.datasets.simulate_patient(mechanism, seed=seed, n_cells=700, **kw)
    adata.obs["malignant"] = adata.obs["truth_malignant"].to_numpy()
    return adata


@pytest.fixture(scope="session")
def pre(simulated_patients):
    adata = simulated_patients.copy("preexisting_700", malignant=True)  # nf 0.15, seed 3
    ce.tl.subclones(adata)
    return adata


def test_writes_contract(pre):
    obs = pre.obs
    assert {"subclone", "subclone_confidence"} <= set(obs.columns)
    mal = obs["malignant"].to_numpy()
    assert obs.loc[~mal, "subclone"].isna().all()
    assert obs.loc[mal, "subclone"].notna().all()
    entry = pre.uns["cd7escape"]["subclones"]
    table = entry["table"]
    for col in ("n_baseline", "n_relapse", "expansion_fold", "fold_ci_low", "fold_ci_high", "pi_baseline",
                "state_baseline", "state_relapse", "markers"):  # fmt: skip
        assert col in table.columns
    assert entry["params"]["resolution"] == CloneParams().resolution
    assert "CD7" in entry["excluded_genes"]


def test_negative_subclone_found_and_expanded(pre):
    """The baseline antigen-negative subclone is one subclone, negative, and expands at relapse."""
    obs = pre.obs[pre.obs["malignant"].to_numpy()]
    base = obs[obs["timepoint"] == "baseline"]
    ct = pd.crosstab(base["truth_subclone"].astype(str), base["subclone"].astype(str))
    neg_true = "S2"
    best = ct.loc[neg_true].idxmax()
    assert (
        ct.loc[neg_true, best] / ct.loc[neg_true].sum() > 0.8
    )  # the negative subclone is recovered
    row = pre.uns["cd7escape"]["subclones"]["table"].loc[best]
    assert row["state_baseline"] == "negative"
    assert row["expansion_fold"] > 2
    assert row["fold_ci_low"] > 1
    rel = obs[obs["timepoint"] == "relapse"]
    mapped = rel.loc[rel["truth_subclone"] == neg_true, "subclone"].astype(str)
    assert (mapped == best).mean() > 0.7


def test_relapse_only_clone_is_unmapped():
    """A relapse clone with (almost) no baseline cells is a new state, not the dominant baseline subclone."""
    adata = _patient("preexisting_negative_clone", negative_fraction=0.004)
    ce.tl.subclones(adata)
    rel = adata.obs[
        (adata.obs["timepoint"] == "relapse").to_numpy() & adata.obs["malignant"].to_numpy()
    ]
    new = rel.loc[rel["truth_subclone"] == "S2", "subclone"].astype(str)
    assert (new == "unmapped").mean() > 0.5


def test_defaults_match_config():
    sig = inspect.signature(ce.tl.subclones)
    for key, field in CloneParams.model_fields.items():
        assert sig.parameters[key].default == field.default


def test_fold_ci_brackets():
    fold, lo, hi = fold_ci(80, 100, 10, 100)
    assert lo < fold < hi
    assert fold == pytest.approx(8.0)
    fold, lo, hi = fold_ci(0, 100, 10, 100)
    assert fold < 0.1
    assert hi < 1


def test_missing_malignant_is_input_error(simulated):
    adata = simulated("antigen_retained", malignant=True)
    del adata.obs["malignant"]
    with pytest.raises(ce._errors.InputError):
        ce.tl.subclones(adata)
    adata.obs["malignant"] = np.zeros(adata.n_obs, dtype=bool)
    with pytest.raises(ce._errors.InputError):
        ce.tl.subclones(adata)


def test_cnv_labels_need_genomic_support():
    """A CNV-subclone label is clone identity only when its cells' genomic windows move as a copy-number change."""
    from cd7escape.tl._clones._subclones import _supported_cnv_labels

    rng = np.random.default_rng(0)
    genes_per_window, n_windows, n = 20, 12, 200
    wins = [np.arange(k * genes_per_window, (k + 1) * genes_per_window) for k in range(n_windows)]
    x = rng.normal(0, 0.3, size=(n, genes_per_window * n_windows))
    real = np.where(np.arange(n) < 60, "cnv1", "cnv0").astype(object)
    x[:60, wins[3]] += 0.4  # one copy gained in one segment by 60 cells
    win = _as_windows(x, wins=wins)
    assert _supported_cnv_labels(real, win, 10) == {"cnv0", "cnv1"}
    noise = rng.permutation(real)  # labels unrelated to copy number
    assert _supported_cnv_labels(noise, win, 10) == set()
    one = np.full(n, "cnv0", dtype=object)
    assert _supported_cnv_labels(one, win, 10) == set()


def _windows(n_genes: int = 200, size: int = 50):
    return [np.arange(k, k + size) for k in range(0, n_genes - size + 1, size)]


def _as_windows(*parts: np.ndarray, wins=None):
    """Window expression of the rows of ``parts`` stacked (baseline cells, then relapse cells)."""
    from cd7escape.tl._clones._map_relapse import GenomicWindows

    wins = _windows() if wins is None else wins
    return GenomicWindows(
        sp.csr_matrix(np.vstack(parts)), wins, [f"w{i}" for i in range(len(wins))]
    )


def test_new_state_with_its_subclones_own_cnv_is_linked_back():
    from cd7escape.tl._clones._subclones import _cnv_link_new_states

    rng = np.random.default_rng(0)
    wb = rng.normal(0, 0.05, (120, 200))
    lab_b = np.array(["S0"] * 90 + ["S1"] * 30, dtype=object)
    wb[90:, :50] += 0.4  # S1 carries a gain of window 0
    wr = rng.normal(0, 0.05, (60, 200))
    wr[:30, :50] += 0.4  # relapse cells with S1's gain (an expanded S1) …
    wr[30:, 50:100] -= 0.4  # … and cells with a loss no baseline subclone has
    lab_fwd = np.array(["S1"] * 30 + ["S0"] * 30, dtype=object)
    new = np.ones(60, dtype=bool)
    lab_r = np.full(60, "unmapped", dtype=object)
    conf_r = np.zeros(60)
    n = _cnv_link_new_states(
        new, lab_fwd, lab_r, conf_r, np.full(60, 0.9), lab_b, _as_windows(wb, wr),
        names=["S0", "S1"], min_cells=10,
    )  # fmt: skip
    assert n == 30
    assert (lab_r[:30] == "S1").all()
    assert (lab_r[30:] == "unmapped").all()  # a relapse-only copy-number state stays new


def _remap_s0_group_carrying_s1_gain(zr_center: float, zr_sd: float):
    """40 relapse cells rejected from S0, carrying S1's copy-number gain, at ``zr_center`` in the
    transcriptional space (S0 around 0, S1 around 4): ``(n re-mapped, labels, confidences)``."""
    from cd7escape.tl._clones._subclones import _remap_cnv_consistent

    rng = np.random.default_rng(1)
    wb = rng.normal(0, 0.05, (120, 200))
    wb[90:, :50] += 0.4
    lab_b = np.array(["S0"] * 90 + ["S1"] * 30, dtype=object)
    zb = np.vstack([rng.normal(0, 1, (90, 3)), rng.normal(4, 1, (30, 3))])
    zr = rng.normal(zr_center, zr_sd, (40, 3))
    wr = rng.normal(0, 0.05, (40, 200))
    wr[:, :50] += 0.4
    lab_r = np.full(40, "unmapped", dtype=object)
    conf_r = np.zeros(40)
    n = _remap_cnv_consistent(
        [("S0", np.arange(40), [0])], lab_r, conf_r, lab_b, zb, zr, _as_windows(wb, wr), names=["S0", "S1"],
        allowed=np.ones((40, 2), dtype=bool), n_neighbors=10, min_cells=10, min_confidence=0.5,
    )  # fmt: skip
    return n, lab_r, conf_r


def test_cnv_rejected_group_is_remapped_only_where_consistent():
    # relapse cells shifted (therapy) between the two subclones, carrying S1's gain
    n, lab_r, _ = _remap_s0_group_carrying_s1_gain(2.5, 1)
    assert n > 0
    assert set(lab_r[lab_r != "unmapped"]) == {"S1"}


def test_label_share_is_the_weighted_neighbour_share():
    from cd7escape.tl._clones._subclones import _label_share

    rng = np.random.default_rng(2)
    ref = np.vstack([rng.normal(0, 1, (50, 3)), rng.normal(6, 1, (50, 3))])
    lab = np.array(["S0"] * 50 + ["S1"] * 50, dtype=object)
    q = np.vstack([rng.normal(0, 0.5, (5, 3)), rng.normal(6, 0.5, (5, 3))])
    share = _label_share(ref, lab, q, "S1", n_neighbors=10)
    assert np.all(share[:5] < 0.05)
    assert np.all(share[5:] > 0.95)


def test_remapped_cells_keep_the_transcriptional_confidence_of_their_link():
    # relapse cells sitting among S0 transcriptionally but carrying S1's gain: re-mapped to S1, weakly
    n, lab_r, conf_r = _remap_s0_group_carrying_s1_gain(1.8, 0.4)
    assert n > 0
    assert set(lab_r[lab_r != "unmapped"]) == {"S1"}
    assert conf_r[lab_r == "S1"].mean() < 0.5  # the restricted transfer alone would say ~1


def test_the_grown_subclones_own_copy_number_is_a_relapse_state(pre):
    """The simulated negative subclone carries a loss of its own; grown at relapse, the relapse carries it
    more than the baseline, and each malignant cell's evidence of it sets that subclone's cells apart."""
    entry = pre.uns["cd7escape"]["subclones"]
    states = entry["relapse_cn_states"]
    assert len(states) >= 1
    assert (states["relapse_share"] > states["baseline_share"]).all()
    assert (states["rate_ratio"].sub(1).abs() > 0.2).all()
    x = pre.obsm["X_clone_cn"]
    mal = pre.obs["malignant"].to_numpy()
    assert x.shape == (pre.n_obs, len(states))
    assert np.isnan(x[~mal]).all()
    assert np.isfinite(x[mal]).all()
    grown = (pre.obs["truth_subclone"].astype(str) == "S2").to_numpy() & mal
    lost = states["sign"].to_numpy() < 0
    col = int(np.flatnonzero(lost)[0])
    assert np.median(x[grown, col]) > 0 > np.median(x[mal & ~grown, col])
