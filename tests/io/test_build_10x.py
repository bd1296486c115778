"""``io._build_10x`` and ``io._h5_strings``: a 10x file's parts as AnnData."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from cd7escape._errors import InputError
from cd7escape.io._build_10x import build_10x
from cd7escape.io._feature_types import ADT, GEX
from cd7escape.io._h5_strings import decode_strings


def test_decode_strings():
    assert decode_strings(np.array([b"AAAC-1", b"GGTT-1"])).tolist() == ["AAAC-1", "GGTT-1"]
    assert decode_strings(np.array([b"x", "y"], dtype=object)).tolist() == ["x", "y"]
    assert decode_strings(np.array([1, 2])).tolist() == ["1", "2"]


def test_genes_to_x_adts_to_obsm():
    m = sp.csr_matrix(np.array([[1, 0, 5, 2], [0, 3, 0, 7]], dtype=np.float32))
    adata = build_10x(
        m,
        np.array(["b1", "b2"]),
        np.array(["CD7", "CD7", "CD7_TotalSeqC", "Other"]),
        np.array(["E1", "E2", "CD7_ADT", "X"]),
        np.array([GEX, GEX, ADT, "CRISPR Guide Capture"]),
        file="f.h5",
    )
    assert adata.var_names.tolist() == ["CD7", "CD7-1"]
    assert adata.var["gene_ids"].tolist() == ["E1", "E2"]
    assert adata.X.dtype == np.float32
    assert adata.X.toarray().tolist() == [[1, 0], [0, 3]]
    assert (adata.layers["counts"] != adata.X).nnz == 0
    assert adata.obsm["protein"]["CD7_TotalSeqC"].tolist() == [5, 0]
    assert adata.obsm["protein"].dtypes.iloc[0] == np.int64


def test_no_gene_expression_or_bad_counts_raise():
    m = sp.csr_matrix(np.ones((1, 1), dtype=np.float32))
    args = (np.array(["b"]), np.array(["CD7"]), np.array(["E1"]))
    with pytest.raises(InputError, match="no 'Gene Expression' features"):
        build_10x(m, *args, np.array([ADT]), file="f.h5")
    with pytest.raises(InputError, match="non-integer"):
        build_10x(m * 0.5, *args, np.array([GEX]), file="f.h5")
    adata = build_10x(m * 0.5, *args, np.array([GEX]), file="f.h5", stored_integers=True)
    assert "counts" in adata.layers
    assert (
        "counts" not in build_10x(m, *args, np.array([GEX]), file="f.h5", counts_layer=False).layers
    )
