"""simulate_patient(car_transduced=...): relapse blasts carrying the CAR transgene."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from cd7escape._errors import InputError
from cd7escape.datasets import simulate_patient


def _hash(adata) -> str:
    x = adata.X.tocsr()
    return hashlib.sha256(x.data.tobytes() + x.indices.tobytes() + x.indptr.tobytes()).hexdigest()


def test_zero_leaves_the_patient_unchanged():
    a = simulate_patient(seed=5, n_cells=200)
    b = simulate_patient(seed=5, n_cells=200, car_transduced=0.0)
    assert _hash(a) == _hash(b)
    assert list(a.obs_names) == list(b.obs_names)
    assert "truth_car_transduced" not in b.obs


def test_transduced_relapse_blasts_carry_the_car_and_keep_their_clone():
    a = simulate_patient(seed=5, n_cells=400)
    b = simulate_patient(seed=5, n_cells=400, car_transduced=0.2)
    obs = b.obs
    tr = obs["truth_car_transduced"].to_numpy(bool)
    blasts = obs["truth_malignant"].to_numpy(bool)
    relapse = (obs["timepoint"].astype(str) == "relapse").to_numpy()
    assert tr.sum() == round(0.2 * (blasts & relapse).sum())
    assert (blasts[tr]).all()
    assert relapse[tr].all()
    car = b[:, "CAR_CD7"].X.toarray().ravel()
    assert car[tr].mean() > 1.0
    assert car[blasts & ~tr].mean() < 0.1
    # the same cells, the same TCR (the leukemic clonotype), the rest of the data unchanged
    assert list(a.obs_names) == list(b.obs_names)
    assert (obs["clone_id"].astype(str) == a.obs["clone_id"].astype(str)).all()
    assert (obs["truth_cell_type"].astype(str) == a.obs["truth_cell_type"].astype(str)).all()
    assert obs.loc[tr, "truth_cell_type"].astype(str).eq("malignant").all()
    assert b.uns["truth"]["params"]["car_transduced"] == 0.2


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2, "x", True])
def test_bad_share_is_an_input_error(bad):
    with pytest.raises(InputError, match="car_transduced"):
        simulate_patient(seed=0, n_cells=100, car_transduced=bad)


def test_reproducible():
    a = simulate_patient(seed=9, n_cells=150, car_transduced=0.1)
    b = simulate_patient(seed=9, n_cells=150, car_transduced=0.1)
    assert _hash(a) == _hash(b)
    assert np.array_equal(a.obs["truth_car_transduced"], b.obs["truth_car_transduced"])
