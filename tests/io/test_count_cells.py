"""``io._count_cells``: the number of cells of a count file from its stored shape (sizes workflow jobs)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from cd7escape._errors import InputError
from cd7escape.io._count_cells import count_cells


@pytest.fixture(scope="module")
def patient():
    from cd7escape.datasets import simulate_patient

    return simulate_patient("antigen_downregulation", seed=0, n_cells=60, depth=500)


@pytest.mark.parametrize("fmt", ["h5", "h5ad", "mtx"])
def test_count_cells_of_every_format(patient, fmt, tmp_path):
    import pandas as pd

    from cd7escape.datasets import write_simulated

    write_simulated(patient, tmp_path, fmt=fmt)
    sheet = pd.read_csv(tmp_path / "samples.csv")
    for sample, path in zip(sheet["sample"], sheet["path"], strict=True):
        expected = int((patient.obs["sample"] == sample).sum())
        assert count_cells(tmp_path / path) == expected


def test_count_cells_of_h5ad_dense_and_sparse(tmp_path):
    for name, x in (("dense", np.ones((7, 3))), ("sparse", sp.csr_matrix(np.ones((9, 3))))):
        ad.AnnData(x).write_h5ad(tmp_path / f"{name}.h5ad")
    assert count_cells(tmp_path / "dense.h5ad") == 7
    assert count_cells(tmp_path / "sparse.h5ad") == 9


def test_count_cells_of_bad_paths(tmp_path):
    with pytest.raises(InputError, match="not found"):
        count_cells(tmp_path / "absent.h5")
    (tmp_path / "text.h5").write_text("a,b\n1,2\n")
    with pytest.raises(InputError):
        count_cells(tmp_path / "text.h5")
