"""tl.sample_burden: per-sample malignant share, CAR-T share, normal T cells' antigen loss, in time order.

One small simulated patient (``preexisting_700``: 2 x 700 cells) with the truth standing in for the malignant
calls and cell classes; the simulator's normal T cells lose the antigen in 8 % of cells at baseline and 30 % at
relapse (``datasets/_simulate.py`` ``NORMAL_T_NEGATIVE``), with many dropout zeros beside them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cd7escape as ce
from cd7escape._errors import InputError
from cd7escape.datasets._simulate import NORMAL_T_NEGATIVE
from cd7escape.tl._timeline import wilson_interval


@pytest.fixture(scope="module")
def burden(simulated_patients):
    adata = simulated_patients.copy("preexisting_700", malignant=True, cell_class=True)
    ce.tl.sample_burden(adata, antigen="CD7")
    return adata, ce._uns.table(adata, "burden", "table")


def test_time_order_and_shares(burden):
    adata, table = burden
    assert list(table["timepoint"]) == ["baseline", "relapse"]
    assert list(table["order"]) == [0, 1]
    obs = adata.obs
    for row in table.itertuples():
        at = (obs["sample"].astype(str) == row.sample).to_numpy()
        truth = obs.loc[at, "truth_malignant"].mean()
        assert row.cells == at.sum()
        assert row.malignant_ci_low < truth < row.malignant_ci_high
        assert row.malignant_ci_high - row.malignant_ci_low < 0.1
    base, rel = table.iloc[0], table.iloc[1]
    assert base.car_t_cells == 0
    assert base.car_t_share == 0.0
    assert rel.car_t_share > 0.05
    assert rel.car_t_ci_low > 0
    assert table["donor_chimerism"].isna().all()
    assert "no donor assignment" in base.donor_reason


def test_normal_t_negative_fraction_is_the_model_not_the_zeros(burden):
    adata, table = burden
    entry = adata.uns["cd7escape"]["burden"]
    assert np.isfinite(entry["reference_level"])
    assert entry["reference_level"] > 0
    for row in table.itertuples():
        truth = NORMAL_T_NEGATIVE[row.timepoint]
        assert row.normal_t_ci_low <= truth <= row.normal_t_ci_high, row
        assert abs(row.normal_t_negative_fraction - truth) < 0.15
        # the naive zero-count share overstates the loss (dropout zeros of expressing cells)
        assert row.normal_t_zero_count_fraction > row.normal_t_ci_high
    assert table.iloc[1].normal_t_negative_fraction > table.iloc[0].normal_t_negative_fraction


def test_too_few_normal_t_cells_and_order_of_extra_timepoints(simulated_patients):
    adata = simulated_patients.copy("preexisting_700", malignant=True, cell_class=True)
    obs = adata.obs
    # a third sample: 20 cells of the relapse renamed as a product sample (sorts between the two)
    idx = np.flatnonzero((obs["timepoint"].astype(str) == "relapse").to_numpy())[:20]
    sample = obs["sample"].astype(str).to_numpy()
    tp = obs["timepoint"].astype(str).to_numpy()
    sample[idx], tp[idx] = "P_product", "product"
    obs["sample"], obs["timepoint"] = pd.Categorical(sample), pd.Categorical(tp)
    ce.tl.sample_burden(adata, key_added="b2")
    table = ce._uns.table(adata, "b2", "table")
    assert list(table["timepoint"]) == ["baseline", "product", "relapse"]
    product = table.iloc[1]
    assert np.isnan(product.normal_t_negative_fraction)
    assert "below the antigen model's minimum" in product.normal_t_reason
    assert "burden" not in adata.uns["cd7escape"]  # key_added names the record


def test_donor_chimerism(simulated_patients):
    adata = simulated_patients.copy("preexisting_700", malignant=True, cell_class=True)
    normal = (~adata.obs["truth_malignant"]).to_numpy()
    rng = np.random.default_rng(0)
    donor = np.where(normal & (rng.random(adata.n_obs) < 0.5), "donor", "recipient").astype(object)
    donor[:10] = "unassigned"
    adata.obs["donor"] = pd.Categorical(donor)
    ce.tl.sample_burden(adata)
    table = ce._uns.table(adata, "burden", "table")
    for row in table.itertuples():
        at = (adata.obs["sample"].astype(str) == row.sample).to_numpy() & (donor != "unassigned")
        share = (donor[at] == "donor").mean()
        assert row.donor_chimerism == pytest.approx(share)
        assert row.donor_ci_low < share < row.donor_ci_high


def test_wilson_interval_and_bad_input(simulated_patients):
    lo, hi = wilson_interval(0, 50)
    assert lo == 0
    assert 0.05 < hi < 0.09
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3)
    assert hi == pytest.approx(0.5962, abs=1e-3)
    adata = simulated_patients.copy("preexisting_700")
    with pytest.raises(InputError, match="malignant"):
        ce.tl.sample_burden(adata)
