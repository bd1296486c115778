"""antigen_state on a small seeded AnnData: keys, params, states, dim, detection limit."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from cd7escape._config import AntigenParams
from cd7escape._errors import InputError
from cd7escape.tl._antigen._state import antigen_state

A = 3e-5
THETA = 3.0


def _patient(seed: int = 0) -> ad.AnnData:
    """Baseline sample: 400 expressing blasts + 200 B/myeloid cells; relapse: 30 % negative blasts,
    another sample 'dim': blasts at a quarter of the level; 'tiny': 5 blasts."""
    rng = np.random.default_rng(seed)
    specs = [
        ("base", "baseline", 400, 0.0, 1.0),
        ("rel", "relapse", 400, 0.3, 1.0),
        ("dimrel", "relapse", 400, 0.0, 0.25),
        ("tiny", "relapse", 5, 0.0, 1.0),
    ]
    n_genes = 50
    blocks, obs = [], []
    for sample, tp, n, pi, level in specs:
        for cls, m in (
            ("malignant", n),
            ("B", 100 if sample == "base" else 0),
            ("myeloid", 100 if sample == "base" else 0),
        ):
            if m == 0:
                continue
            s = rng.lognormal(np.log(2500), 0.3, m)
            other = rng.multinomial(
                1, np.ones(n_genes - 1) / (n_genes - 1), size=1
            )  # placeholder shape
            del other
            if cls == "malignant":
                neg = rng.random(m) < pi
                y = np.where(
                    neg, rng.poisson(s * A), rng.poisson(rng.gamma(THETA, s * 8e-4 * level / THETA))
                )
            else:
                neg = np.ones(m, bool)
                y = rng.poisson(s * A)
            rest = rng.poisson(np.outer(s, np.ones(n_genes - 1) / (n_genes - 1)))
            blocks.append(np.column_stack([y, rest]))
            obs.append(
                pd.DataFrame(
                    {
                        "sample": sample,
                        "timepoint": tp,
                        "cell_class": cls,
                        "malignant": cls == "malignant",
                        "truth_neg": neg & (cls == "malignant"),
                    }
                )
            )
    X = sparse.csr_matrix(np.vstack(blocks).astype(np.float32))
    obs = pd.concat(obs, ignore_index=True)
    obs.index = obs.index.astype(str)
    adata = ad.AnnData(
        X=X.copy(), obs=obs, var=pd.DataFrame(index=["CD7"] + [f"G{i}" for i in range(n_genes - 1)])
    )
    adata.layers["counts"] = X
    return adata


@pytest.fixture(scope="module")
def fitted() -> ad.AnnData:
    adata = _patient()
    antigen_state(adata)
    return adata


def test_defaults_match_config():
    import inspect

    sig = inspect.signature(antigen_state).parameters
    for name, value in AntigenParams().model_dump().items():
        assert sig[name].default == value, name


def test_writes_keys_and_params(fitted):
    assert "antigen_p_negative" in fitted.obs
    assert "antigen_cell_state" in fitted.obs
    entry = fitted.uns["cd7escape"]["antigen"]
    assert entry["params"]["antigen"] == "CD7"
    assert entry["params"]["groupby"] == ["sample"]
    assert entry["ambient_source"].startswith("200 cells of lineages")
    assert entry["ambient_rate"] == pytest.approx(A, rel=0.5)
    groups = entry["groups"]
    for col in (
        "sample",
        "n_cells",
        "pi",
        "ci_low",
        "ci_high",
        "upper_bound",
        "lrt_pvalue",
        "mu",
        "mu_ci_low",
        "mu_ci_high",
        "fold_vs_reference",
        "fold_ci_low",
        "fold_ci_high",
        "state",
        "zero_fraction",
        "detection_limit",
    ):
        assert col in groups.columns, col
    # non-malignant cells get no posterior
    assert fitted.obs.loc[~fitted.obs["malignant"], "antigen_p_negative"].isna().all()


def test_states(fitted):
    g = fitted.uns["cd7escape"]["antigen"]["groups"]
    assert g.loc["base", "state"] == "positive"
    assert g.loc["base", "detection_limit"].startswith("none in 400 cells; 95 % upper bound")
    assert g.loc["base", "zero_fraction"] > 0.05
    assert g.loc["rel", "ci_low"] <= 0.3 <= g.loc["rel", "ci_high"]
    assert g.loc["rel", "lrt_pvalue"] < 1e-3
    assert g.loc["dimrel", "state"] == "dim"
    assert g.loc["dimrel", "fold_ci_low"] < 0.25 < g.loc["dimrel", "fold_ci_high"]
    assert g.loc["tiny", "state"] == "uncertain"
    assert np.isnan(g.loc["tiny", "pi"])
    # posterior agrees with truth for most decided cells in the relapse group
    rel = fitted.obs[fitted.obs["sample"] == "rel"]
    decided = rel["antigen_cell_state"] != "uncertain"
    agree = (rel.loc[decided, "antigen_cell_state"] == "negative") == rel.loc[decided, "truth_neg"]
    assert agree.mean() > 0.9


def test_all_negative_group_is_negative():
    adata = _patient(1)
    X = adata.layers["counts"].tolil()
    rel = np.flatnonzero((adata.obs["sample"] == "rel").to_numpy())
    rng = np.random.default_rng(0)
    X[rel, 0] = rng.poisson(2500 * A, rel.size)[:, None]
    adata.layers["counts"] = X.tocsr()
    antigen_state(
        adata, groupby=["sample", "timepoint"], reference="timepoint=baseline", key_added="cd7"
    )
    g = adata.uns["cd7escape"]["cd7"]["groups"]
    assert g.loc["rel|relapse", "state"] == "negative"
    assert "cd7_p_negative" in adata.obs


def test_bad_input():
    adata = _patient()
    with pytest.raises(InputError, match="not a gene"):
        antigen_state(adata, "NOPE")
    with pytest.raises(InputError, match="restrict_to"):
        antigen_state(adata, restrict_to="absent")


def test_empty_droplet_ambient_and_given_theta():
    adata = _patient()
    adata.uns["cd7escape"] = {
        "ambient": {
            "base": {
                "n_droplets": 500,
                "n_umis": 20000,
                "genes": np.array(["CD7", "G1"]),
                "fraction": np.array([6e-4, 0.9994]),
            },
            "rel": {
                "n_droplets": 500,
                "n_umis": 20000,
                "genes": np.array(["G1"]),
                "fraction": np.array([1.0]),
            },
        }
    }
    antigen_state(adata, ambient="empty_droplets", theta=THETA, ambient_contamination=0.05)
    entry = adata.uns["cd7escape"]["antigen"]
    assert entry["ambient_source"].startswith("empty droplets")
    # (0.0006 * 20000 + 0.5) / 40000 * 0.05
    assert entry["ambient_rate"] == pytest.approx(0.05 * (12 + 0.5) / 40000)
    assert entry["theta"] == THETA
    assert entry["params"]["theta"] == THETA


def test_protein_rna_present_protein_absent():
    adata = _patient(2)
    rng = np.random.default_rng(0)
    n = adata.n_obs
    bg = rng.poisson(rng.gamma(2.0, 4.0, n))
    fg = rng.poisson(rng.gamma(4.0, 150 / 4, n))
    masked = (adata.obs["sample"] == "dimrel").to_numpy()  # RNA kept, protein masked
    lineage = ~adata.obs["malignant"].to_numpy()
    adt = np.where(masked | lineage | adata.obs["truth_neg"].to_numpy(), bg, bg + fg)
    adata.obsm["protein"] = pd.DataFrame(
        {"CD7_TotalSeqC": adt, "CD3_TotalSeqC": bg}, index=adata.obs_names
    )
    antigen_state(adata, antigen_protein="CD7")
    entry = adata.uns["cd7escape"]["antigen"]
    g = entry["groups"]
    assert entry["protein_background"]["mean"] == pytest.approx(8.0, rel=0.2)
    assert g.loc["base", "protein_state"] == "positive"
    assert g.loc["rel", "protein_ci_low"] <= 0.3 <= g.loc["rel", "protein_ci_high"]
    assert g.loc["dimrel", "protein_state"] == "negative"
    assert g["rna_present_protein_absent"].tolist() == [False, False, True, False]
    assert "antigen_rna_protein" in adata.obs
    base = adata.obs[(adata.obs["sample"] == "base") & adata.obs["malignant"]]
    assert (base["antigen_rna_protein"] == "RNA+ protein+").mean() > 0.5
    with pytest.raises(InputError, match="antigen_protein"):
        antigen_state(adata, antigen_protein="CD99")
