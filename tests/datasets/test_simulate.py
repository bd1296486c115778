from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cd7escape._errors import InputError
from cd7escape.datasets import simulate_patient
from cd7escape.datasets._params import load_params

N = 400  # cells per sample of the patients simulated here


def _counts(adata, gene: str) -> np.ndarray:
    return np.asarray(adata[:, gene].layers["counts"].todense()).ravel()


def _mask(adata, **eq) -> np.ndarray:
    m = np.ones(adata.n_obs, bool)
    for k, v in eq.items():
        m &= adata.obs[k].astype(str).to_numpy() == str(v)
    return m


def test_determinism():
    a = simulate_patient("mixed", seed=3, n_cells=200)
    b = simulate_patient("mixed", seed=3, n_cells=200)
    c = simulate_patient("mixed", seed=4, n_cells=200)
    assert (a.X != b.X).nnz == 0
    pd.testing.assert_frame_equal(a.obs, b.obs)
    assert a.uns["truth"]["cnvs"] == b.uns["truth"]["cnvs"]
    assert (a.X != c.X).nnz > 0


def test_structure(simulated, simulated_patients):
    a = simulated("antigen_downregulation")
    options = simulated_patients.options("antigen_downregulation")
    assert a.n_obs == 2 * options["n_cells"]
    assert sp.issparse(a.X)
    assert a.X.format == "csr"
    assert np.issubdtype(a.X.dtype, np.integer)
    assert (a.layers["counts"] != a.X).nnz == 0
    assert a.var_names.is_unique
    assert "CD7" in a.var_names
    assert "CAR_CD7" in a.var_names
    assert set(a.obs["sample"].astype(str)) == {"P1_baseline", "P1_relapse"}
    assert set(a.obs["timepoint"].astype(str)) == {"baseline", "relapse"}
    for col in (
        "truth_cell_type",
        "truth_malignant",
        "truth_subclone",
        "truth_antigen_negative",
        "truth_antigen_level",
    ):
        assert col in a.obs
    assert a.obs_names.is_unique
    assert all(
        n == f"{s}_{b}"
        for n, s, b in zip(a.obs_names, a.obs["sample"], a.obs["barcode"], strict=True)
    )
    assert a.obs["barcode"].str.fullmatch(r"[ACGT]{16}-1").all()
    assert a.uns["truth"]["mechanism"] == "antigen_downregulation"
    # no CAR-T at baseline, CAR-T at relapse
    ct = a.obs["truth_cell_type"].astype(str)
    assert not (ct[_mask(a, timepoint="baseline")] == "car_T").any()
    assert (ct[_mask(a, timepoint="relapse")] == "car_T").sum() > 20
    med = np.median(np.asarray(a.X.sum(1)).ravel()[_mask(a, timepoint="baseline")])
    assert 0.9 * options["depth"] < med < 1.1 * options["depth"]


def test_antigen_truth_and_dropout(simulated):
    a = simulated("antigen_retained")
    y = _counts(a, "CD7")
    neg = a.obs["truth_antigen_negative"].to_numpy()
    assert neg.any()
    # negative cells: ambient only (a few stray UMIs); expressing cells: far more
    assert y[neg].mean() < 0.1
    assert y[neg].mean() < 0.05 * y[~neg & a.obs["truth_malignant"].to_numpy()].mean()
    # dropout: expressing cells give zero counts often, as real T cells do at 2k UMIs
    for ct in ("malignant", "normal_T"):
        sel = ~neg & _mask(a, truth_cell_type=ct)
        zero = np.mean(y[sel] == 0)
        assert 0.2 <= zero <= 0.65, (ct, zero)
    # lineages that do not express CD7
    for ct in ("B", "myeloid", "erythroid"):
        assert a.obs.loc[_mask(a, truth_cell_type=ct), "truth_antigen_negative"].all()
    assert not a.obs.loc[_mask(a, truth_cell_type="NK"), "truth_antigen_negative"].any()
    assert np.allclose(a.obs.loc[neg, "truth_antigen_level"], 0)


def test_normal_t_negative_more_at_relapse(simulated):
    a = simulated("antigen_retained")
    frac = {
        t: a.obs.loc[
            _mask(a, truth_cell_type="normal_T", timepoint=t), "truth_antigen_negative"
        ].mean()
        for t in ("baseline", "relapse")
    }
    assert 0 < frac["baseline"] < frac["relapse"]


def _neg_share(a, timepoint: str, subclone: str | None = None) -> float:
    m = a.obs["truth_malignant"].to_numpy() & _mask(a, timepoint=timepoint)
    if subclone is not None:
        m &= _mask(a, truth_subclone=subclone)
    return float(a.obs.loc[m, "truth_antigen_negative"].mean())


def _sub_share(a, timepoint: str, subclone: str) -> float:
    m = a.obs["truth_malignant"].to_numpy() & _mask(a, timepoint=timepoint)
    return float(np.mean(a.obs.loc[m, "truth_subclone"].astype(str) == subclone))


def test_preexisting(simulated):
    a = simulated("preexisting_negative_clone")
    assert _sub_share(a, "baseline", "S2") == pytest.approx(0.2, abs=0.02)
    assert _neg_share(a, "baseline", "S2") == 1.0
    assert _neg_share(a, "baseline", "S0") == 0.0
    assert _sub_share(a, "relapse", "S2") > 0.8
    assert _neg_share(a, "relapse") > 0.8


def test_downregulation(simulated):
    a = simulated("antigen_downregulation")
    assert _neg_share(a, "baseline") == 0.0
    assert _sub_share(a, "relapse", "S0") > 0.8
    assert _neg_share(a, "relapse", "S0") == 1.0
    assert _neg_share(a, "relapse", "S1") == 0.0


def test_dim_downregulation(simulated):
    a = simulated("dim_downregulation")
    assert a.uns["truth"]["fold"] == 4.0
    mal_rel = a.obs["truth_malignant"].to_numpy() & _mask(
        a, timepoint="relapse", truth_subclone="S0"
    )
    mal_base = a.obs["truth_malignant"].to_numpy() & _mask(
        a, timepoint="baseline", truth_subclone="S0"
    )
    assert not a.obs.loc[mal_rel, "truth_antigen_negative"].any()  # dim, not negative
    assert a.obs.loc[mal_rel, "truth_antigen_level"].mean() == pytest.approx(0.25, rel=0.1)
    y, lib = _counts(a, "CD7"), np.asarray(a.X.sum(1)).ravel()
    ratio = (y[mal_rel] / lib[mal_rel]).mean() / (y[mal_base] / lib[mal_base]).mean()
    assert 0.12 < ratio < 0.45


def test_retained(simulated):
    a = simulated("antigen_retained")
    assert _neg_share(a, "baseline") == 0.0
    assert _neg_share(a, "relapse") == 0.0


def test_mixed(simulated):
    a = simulated("mixed")
    m = a.obs["truth_malignant"].to_numpy() & _mask(a, timepoint="relapse")
    neg = m & a.obs["truth_antigen_negative"].to_numpy()
    subs = a.obs.loc[neg, "truth_subclone"].astype(str).value_counts(normalize=True)
    assert subs["S0"] > 0.3
    assert subs["S2"] > 0.3
    assert _neg_share(a, "baseline", "S0") == 0.0
    assert _neg_share(a, "baseline", "S2") == 1.0


def test_decoy_minor_does_not_expand(simulated):
    a = simulated("decoy")
    assert _neg_share(a, "baseline", "S2") == 1.0
    assert _sub_share(a, "relapse", "S2") <= _sub_share(a, "baseline", "S2")
    assert _neg_share(a, "relapse", "S0") == 1.0


def test_lineage_switch(simulated):
    a = simulated("lineage_switch")
    mal = a.obs["truth_malignant"].to_numpy()
    base, rel = mal & _mask(a, timepoint="baseline"), mal & _mask(a, timepoint="relapse")
    lib = np.asarray(a.X.sum(1)).ravel()

    def cp10k(genes, sel):
        return (np.asarray(a[:, genes].X.sum(1)).ravel()[sel] / lib[sel]).mean() * 1e4

    assert cp10k(["CD3E", "CD3D", "CD2"], rel) < 0.2 * cp10k(["CD3E", "CD3D", "CD2"], base)
    assert cp10k(["MPO", "LYZ", "CD33"], rel) > 5 * cp10k(["MPO", "LYZ", "CD33"], base)
    assert a.obs.loc[rel, "truth_antigen_negative"].all()
    # same leukemic TCR at both timepoints
    clones_b = set(a.obs.loc[base, "clone_id"].dropna())
    clones_r = set(a.obs.loc[rel, "clone_id"].dropna())
    assert clones_r
    assert clones_r <= clones_b


def test_cnv_dosage_visible(simulated):
    a = simulated("antigen_retained")
    cnv = pd.DataFrame(a.uns["truth"]["cnvs"])
    assert (cnv["owner"] == "trunk").sum() == 2
    lib = np.asarray(a.X.sum(1)).ravel()
    mal = a.obs["truth_malignant"].to_numpy()
    normal_t = _mask(a, truth_cell_type="normal_T")
    for ev in cnv.itertuples():
        genes = (
            (a.var["chromosome"] == ev.chromosome)
            & (a.var["start"] >= ev.start)
            & (a.var["end"] <= ev.end)
        )
        assert genes.sum() == ev.n_genes
        grp = mal if ev.owner == "trunk" else mal & _mask(a, truth_subclone=ev.owner)
        X = a.X[:, genes.to_numpy()]
        m_blast = np.asarray(X[grp].sum(0)).ravel() / lib[grp].sum()
        m_t = np.asarray(X[normal_t].sum(0)).ravel() / lib[normal_t].sum()
        ratio = np.median(m_blast[m_t > 0] / m_t[m_t > 0])
        if ev.dosage > 1:
            assert ratio > 1.25, ev
        else:
            assert ratio < 0.75, ev
    # the minor subclone S1 has no CNV of its own by default
    assert "S1" not in set(cnv["owner"])


def test_subclones_differ_transcriptionally(simulated):
    a = simulated("antigen_retained")
    prog = a.uns["truth"]["subclone_program_genes"]["S1"]
    mal = a.obs["truth_malignant"].to_numpy()
    s1, s0 = mal & _mask(a, truth_subclone="S1"), mal & _mask(a, truth_subclone="S0")
    lib = np.asarray(a.X.sum(1)).ravel()
    X = a[:, prog].X
    m1 = np.asarray(X[s1].sum(0)).ravel() / lib[s1].sum()
    m0 = np.asarray(X[s0].sum(0)).ravel() / lib[s0].sum()
    lfc = np.abs(np.log2((m1 + 1e-6) / (m0 + 1e-6)))
    assert np.median(lfc) > 0.8


def test_car_t(simulated):
    a = simulated("antigen_downregulation")
    car = _counts(a, "CAR_CD7")
    is_car = a.obs["truth_car"].to_numpy()
    assert (car[is_car] > 0).mean() > 0.35  # real: 69 % at ~3.2k UMIs
    assert (car[~is_car] > 0).mean() < 0.05
    assert a.obs.loc[is_car, "truth_antigen_negative"].all()  # knockout product
    assert (a.obs.loc[is_car, "receptor_chains"].astype(str) != "none").mean() > 0.45
    b = simulate_patient(
        "antigen_downregulation", seed=1, n_cells=N, car_product="pebl", car_feature="CAR"
    )
    pebl = b.obs["truth_car"].to_numpy()
    assert not b.obs.loc[pebl, "truth_antigen_negative"].any()
    assert (_counts(b, "CD7")[pebl] > 0).mean() > 0.3


def test_tcr(simulated):
    a = simulated("antigen_downregulation")
    mal = a.obs["truth_malignant"].to_numpy()
    clones = a.obs.loc[mal, "clone_id"]
    assert 0.5 < clones.notna().mean() < 0.85  # VDJ capture as in real sorted T cells
    trb = clones.dropna().str.extract(r"TRB:([ACGT]+)")[0].dropna()
    assert trb.nunique() == 1  # monoclonal
    normal = _mask(a, truth_cell_type="normal_T")
    assert a.obs.loc[normal, "clone_id"].nunique() > 0.5 * normal.sum()  # polyclonal
    assert a.obs.loc[_mask(a, truth_cell_type="myeloid"), "clone_id"].isna().all()
    b = simulate_patient("antigen_downregulation", seed=1, n_cells=300, tcr=False)
    assert b.obs.loc[b.obs["truth_malignant"].to_numpy(), "clone_id"].isna().all()
    assert (
        b.obs.loc[b.obs["truth_malignant"].to_numpy(), "receptor_chains"].astype(str) == "none"
    ).all()


def test_protein_and_empties(simulated):
    a = simulated("protein_empties")
    prot = a.obsm["protein"]
    assert list(prot.columns) == [
        "CD7_TotalSeqC",
        "CD3_TotalSeqC",
        "CD19_TotalSeqC",
        "CD33_TotalSeqC",
    ]
    assert (prot.index == a.obs_names).all()
    neg = a.obs["truth_antigen_negative"].to_numpy()
    assert prot["CD7_TotalSeqC"][~neg].median() > 5 * prot["CD7_TotalSeqC"][neg].median()
    assert prot["CD19_TotalSeqC"][_mask(a, truth_cell_type="B")].median() > 50
    e = a.uns["empty_droplets"]["P1_baseline"]
    n_empty = 2 * a.uns["truth"]["n_cells"]  # twice the cells of the sample
    assert e["counts"].shape == (n_empty, a.n_vars)
    assert e["protein"].shape == (n_empty, 4)
    assert np.median(np.asarray(e["counts"].sum(1)).ravel()) < 100
    assert not set(e["barcodes"]) & set(a.obs["barcode"])


def test_truth_uns(simulated, simulated_patients):
    t = simulated("preexisting_negative_clone").uns["truth"]
    options = simulated_patients.options("preexisting_negative_clone")
    assert options["negative_fraction"] == 0.2
    assert t["mechanism"] == "preexisting_negative_clone"
    assert t["negative_fraction"] == 0.2
    for key in ("depth", "seed", "n_cells"):
        assert t[key] == options[key]
    assert t["negative_fraction_baseline"] == pytest.approx(0.2)
    assert t["params"]["antigen"] == "CD7"


def test_input_errors():
    with pytest.raises(InputError, match="mechanism"):
        simulate_patient("nonsense")
    with pytest.raises(InputError, match="antigen"):
        simulate_patient(antigen="NOTAGENE")
    with pytest.raises(InputError, match="n_subclones"):
        simulate_patient("preexisting_negative_clone", n_subclones=1)
    with pytest.raises(InputError):
        simulate_patient("preexisting_negative_clone", negative_fraction=0.85)


def test_params_shipped():
    P = load_params()
    assert 4000 <= len(P.genes) <= 6000
    for g in (
        "CD7",
        "CD5",
        "CD2",
        "CD1A",
        "DNTT",
        "CD34",
        "CD99",
        "KIT",
        "CD38",
        "MKI67",
        "MT-CO1",
    ):
        assert g in set(P.genes)
    chroms = pd.Series(P.chromosome).value_counts()
    for c in [f"chr{i}" for i in range(1, 23)] + ["chrX"]:
        assert chroms[c] >= 50
    for ct in P.mu:
        assert P.mu[ct].sum() == pytest.approx(1, abs=1e-4)
    real = P.info["cd7_real_T"]["2000-3000"]["cd7_zero_fraction"]
    assert 0.3 < real < 0.7


def test_relapse_shift():
    a = simulate_patient("antigen_retained", seed=8, n_cells=N, relapse_shift=1.5)
    genes = a.uns["truth"]["relapse_shift_genes"]
    assert len(genes) == 150
    mal = a.obs["truth_malignant"].to_numpy()
    lib = np.asarray(a.X.sum(1)).ravel()

    def mean(sel, g):
        return np.asarray(a[:, g].X[sel].sum(0)).ravel() / lib[sel].sum()

    b, r = mal & _mask(a, timepoint="baseline"), mal & _mask(a, timepoint="relapse")
    others = [g for g in a.var_names[:2000] if g not in set(genes)]
    lfc_shift = np.abs(np.log2((mean(r, genes) + 1e-6) / (mean(b, genes) + 1e-6)))
    lfc_other = np.abs(np.log2((mean(r, others) + 1e-6) / (mean(b, others) + 1e-6)))
    assert np.median(lfc_shift) > 2 * np.median(lfc_other)
    assert (
        simulate_patient("antigen_retained", seed=8, n_cells=100).uns["truth"][
            "relapse_shift_genes"
        ]
        == []
    )


def test_cd7_dropout_calibrated_to_real_t_cells():
    """CD7-expressing simulated T cells show the real T cells' zero fraction at the same depth."""
    P = load_params()
    real = P.info["cd7_real_T"]
    a = simulate_patient(
        "antigen_retained",
        seed=9,
        n_cells=1500,
        depth=2500,
        blast_fraction_baseline=0.1,
        blast_fraction_relapse=0.1,
    )
    # the real bins count UMIs over all genes; simulated UMIs cover the shipped genes only
    tot = np.asarray(a.X.sum(1)).ravel() / P.info["coverage_T"]
    t = _mask(a, truth_cell_type="normal_T") & ~a.obs["truth_antigen_negative"].to_numpy()
    y = _counts(a, "CD7")
    for lo, hi in [(1000, 2000), (2000, 3000), (3000, 4000), (4000, 6000)]:
        sel = t & (tot >= lo) & (tot < hi)
        assert sel.sum() > 40
        assert np.mean(y[sel] == 0) == pytest.approx(
            real[f"{lo}-{hi}"]["cd7_zero_fraction"], abs=0.12
        )
