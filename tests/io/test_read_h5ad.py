from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from io_writers import GENES, barcodes, counts, write_h5ad

from cd7escape._errors import InputError
from cd7escape.io import read_h5ad


def test_counts_in_x(tmp_path):
    m = counts(30, len(GENES))
    a = read_h5ad(write_h5ad(tmp_path / "a.h5ad", m.astype(np.float32), barcodes(30), GENES))
    np.testing.assert_array_equal(a.X.toarray(), m.toarray())
    np.testing.assert_array_equal(a.layers["counts"].toarray(), m.toarray())
    assert sp.issparse(a.X)


def test_counts_in_layer_with_log_x(tmp_path):
    m = counts(30, len(GENES))
    logx = np.log1p(m.toarray() / 3.0)
    path = write_h5ad(tmp_path / "a.h5ad", logx, barcodes(30), GENES, layers={"counts": m})
    a = read_h5ad(path)
    np.testing.assert_array_equal(a.X.toarray(), m.toarray())


def test_dense_x(tmp_path):
    m = counts(30, len(GENES)).toarray()
    a = read_h5ad(write_h5ad(tmp_path / "a.h5ad", m, barcodes(30), GENES))
    np.testing.assert_array_equal(a.X.toarray(), m)


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        (lambda m: np.log1p(m), "non-integer"),
        (lambda m: m / np.maximum(m.sum(1, keepdims=True), 1) * 1e4, "non-integer|normalized"),
        (lambda m: np.round(m / np.maximum(m.sum(1, keepdims=True), 1) * 1e4), "normalized"),
        (lambda m: m - m.mean(0), "negative"),
        (lambda m: np.where(m == 3, np.nan, m), "NaN"),
    ],
    ids=["log1p", "normalized", "rounded-normalized", "scaled", "nan"],
)
def test_not_raw_counts_rejected(tmp_path, transform, message):
    m = counts(40, len(GENES), seed=2).toarray().astype(float)
    path = write_h5ad(tmp_path / "bad.h5ad", transform(m), barcodes(40), GENES)
    with pytest.raises(InputError, match=message) as err:
        read_h5ad(path)
    assert err.value.problems[0].file == str(path)


def test_ensembl_index_with_symbol_column(tmp_path):
    import anndata as ad
    import pandas as pd

    var = pd.DataFrame(
        {"feature_name": ["CD7", "CD3E"]}, index=["ENSG00000173762", "ENSG00000198851"]
    )
    adata = ad.AnnData(
        X=counts(5, 2).astype(np.float32), obs=pd.DataFrame(index=barcodes(5)), var=var
    )
    adata.write_h5ad(tmp_path / "e.h5ad")
    a = read_h5ad(tmp_path / "e.h5ad")
    assert list(a.var_names) == ["CD7", "CD3E"]
    assert list(a.var["gene_ids"]) == ["ENSG00000173762", "ENSG00000198851"]


def test_unreadable(tmp_path):
    (tmp_path / "x.h5ad").write_bytes(b"garbage")
    with pytest.raises(InputError, match="unreadable"):
        read_h5ad(tmp_path / "x.h5ad")
