"""``io._count_checks``: stored values must be raw UMI counts."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from cd7escape._errors import InputError
from cd7escape.io._count_checks import count_problems, raise_if, sample_values, scan_nan_negative


def _messages(values, **kw):
    return [p.message for p in count_problems(np.asarray(values), file="f.h5", **kw)]


def test_raw_counts_have_no_problems():
    assert _messages([1, 2, 3]) == []
    assert _messages(np.array([1.0, 5.0], dtype=np.float32)) == []
    assert _messages(np.array([], dtype=float)) == []


def test_problems_are_named():
    assert "negative counts in X" in _messages(np.array([1, -2]))[0]
    assert "non-numeric dtype" in _messages(np.array(["a"]))[0]
    nan, negative, fraction = _messages([np.nan, -1.0, 0.5, 2.0], where="layers['counts']")
    assert nan.startswith("1 NaN values in layers['counts']")
    assert "looks scaled/centred" in negative
    assert "non-integer values" in fraction
    assert "33% of nonzero" in fraction  # of the finite values
    assert "sampled" in _messages([0.5], full=False)[0]
    assert _messages([0.5], check_integer=False) == []


def test_raise_if():
    raise_if([])
    with pytest.raises(InputError, match="negative counts"):
        raise_if(count_problems(np.array([-1]), file="f.h5"))


def test_sample_values_and_scan_on_hdf5(tmp_path):
    values = np.arange(1_000, dtype=np.float32)
    values[[10, 20]] = np.nan
    values[500] = -3
    with h5py.File(tmp_path / "d.h5", "w") as f:
        data = f.create_dataset("data", data=values)
        assert sample_values(data).size == values.size  # small: all of it
        part = sample_values(data, n=200)
        assert part.size == 200
        assert np.isin(part[~np.isnan(part)], values).all()
        assert scan_nan_negative(data, chunk=64) == (2, -3.0)
        grid = f.create_dataset("grid", data=values.reshape(100, 10))
        assert scan_nan_negative(grid, chunk=64) == (2, -3.0)
