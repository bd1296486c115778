"""The CSR shortcuts equal scipy's general operations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from cd7escape._sparse import entry_bounds, lognorm, nonzero_count, scale_rows


@pytest.fixture
def x():
    m = sp.random(80, 50, density=0.2, format="csr", random_state=3, dtype=np.float32)
    m.data = np.ceil(m.data * 20)
    m[5] = 0  # an empty cell
    m.eliminate_zeros()
    return m


def test_scale_rows_equals_diagonal_product(x):
    f = np.linspace(0.5, 2, x.shape[0])
    got = scale_rows(x, f, dtype=np.float64)
    np.testing.assert_allclose(got.toarray(), (sp.diags(f) @ x).toarray(), rtol=1e-6)
    before = x.data.copy()
    scale_rows(x, f)
    np.testing.assert_array_equal(x.data, before)  # input untouched


def test_lognorm(x):
    d = x.toarray().astype(float)
    tot = d.sum(1, keepdims=True)
    want = np.log1p(np.divide(1e4 * d, tot, out=np.zeros_like(d), where=tot > 0))
    np.testing.assert_allclose(lognorm(x).toarray(), want, rtol=1e-5)


def test_group_sums(x):
    from cd7escape._sparse import group_sums

    codes = np.arange(x.shape[0]) % 3
    want = np.vstack([x[codes == g].sum(axis=0) for g in range(3)])
    np.testing.assert_allclose(group_sums(x, codes, 3), want, rtol=1e-6)
    np.testing.assert_allclose(group_sums(x.toarray(), codes, 3), want, rtol=1e-6)


@pytest.mark.parametrize("slice_size", [7, 1 << 22])
def test_nonzero_count_ignores_stored_zeros_in_any_format(slice_size, monkeypatch):
    monkeypatch.setattr("cd7escape._sparse._SLICE", slice_size)  # counted in slices of the entries
    m = sp.random(60, 40, density=0.3, format="csr", random_state=1)
    m.data[::5] = 0  # stored zeros are not detected genes
    d = m.toarray()
    for axis in (0, 1):
        want = np.asarray((d > 0).sum(axis)).ravel()
        for given in (m, m.tocsc(), d):
            np.testing.assert_array_equal(nonzero_count(given, axis=axis), want)


def test_entry_bounds_split_by_stored_entries():
    # one heavy row, then light ones: an even split by rows would put nearly all entries in one part
    lengths = np.array([60, 5, 5, 5, 5, 5, 5, 5, 5, 0, 0])
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    bounds = entry_bounds(indptr, 2)
    assert bounds[0] == 0
    assert bounds[-1] == lengths.size
    assert (np.diff(bounds) > 0).all()
    np.testing.assert_array_equal(bounds, [0, 1, lengths.size])
    # more parts than rows with entries: empty parts are dropped
    assert np.diff(entry_bounds(np.array([0, 3, 3]), 8)).min() > 0
    np.testing.assert_array_equal(entry_bounds(np.array([0, 0, 0]), 2), [0, 2])
