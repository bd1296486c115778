"""cells.h5ad written in two parts equals the file AnnData writes in one."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

import cd7escape as ce
from cd7escape._files import atomic_write_h5ad
from cd7escape.report._cells_file import CellsFile
from cd7escape.report._patient import _shell


@pytest.fixture(scope="module")
def embedded():
    adata = ce.datasets.simulate_patient("antigen_downregulation", seed=2, n_cells=300, depth=1500)
    ce.pp.embed(adata, antigen="CD7", n_top_genes=300, umap=False)
    return adata


def _assert_same_file(a: ad.AnnData, b: ad.AnnData) -> None:
    assert a.obs.equals(b.obs)
    assert a.var.equals(b.var)
    assert (a.X != b.X).nnz == 0
    assert a.layers.keys() == b.layers.keys()
    assert (a.layers["counts"] != b.layers["counts"]).nnz == 0
    assert a.obsm.keys() == b.obsm.keys()
    for k in a.obsm:
        if k == "airr":  # scirpy's chains: an awkward array
            assert a.obsm[k].to_list() == b.obsm[k].to_list()
            continue
        np.testing.assert_array_equal(np.asarray(a.obsm[k]), np.asarray(b.obsm[k]))
    assert a.obsp.keys() == b.obsp.keys()
    assert a.uns.keys() == b.uns.keys()
    assert a.uns["cd7escape"].keys() == b.uns["cd7escape"].keys()


def test_two_part_file_equals_one_part_file(embedded, tmp_path, caplog):
    adata = embedded.copy()
    cells = CellsFile(adata, tmp_path / "two" / "cells.h5ad")
    adata.obs["later"] = np.arange(adata.n_obs) % 3  # annotations added after the matrices
    adata.uns["cd7escape"]["classify"] = {"mechanism": "antigen_downregulation"}
    with caplog.at_level("INFO", logger="cd7escape"):
        cells.finish(_shell(adata))
    assert "writing it whole" not in caplog.text  # the matrices written first were kept
    atomic_write_h5ad(_shell(adata), tmp_path / "one.h5ad")
    _assert_same_file(
        ad.read_h5ad(tmp_path / "two" / "cells.h5ad"), ad.read_h5ad(tmp_path / "one.h5ad")
    )
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "cells.h5ad"
    ]  # no temporary left


def test_changed_cells_are_written_whole(embedded, tmp_path, caplog):
    adata = embedded.copy()
    cells = CellsFile(adata, tmp_path / "cells.h5ad")
    subset = adata[: adata.n_obs // 2].copy()  # cells dropped after the matrices were started
    with caplog.at_level("INFO", logger="cd7escape"):
        cells.finish(subset)
    assert "writing it whole" in caplog.text
    _assert_same_file(ad.read_h5ad(tmp_path / "cells.h5ad"), subset)


def test_abandoned_file_leaves_nothing(embedded, tmp_path):
    CellsFile(embedded, tmp_path / "cells.h5ad").abandon()
    assert list(tmp_path.iterdir()) == []


def test_matrices_written_in_slices_read_back(embedded, tmp_path, monkeypatch):
    from cd7escape.report import _cells_file

    monkeypatch.setattr(_cells_file, "SLICE", 1000)  # many slices, the last one short
    monkeypatch.setattr(_cells_file, "_CHUNK", 250)
    adata = embedded.copy()
    assert adata.X.nnz > 5000
    cells = CellsFile(adata, tmp_path / "cells.h5ad", compression="gzip")
    cells.finish(_shell(adata))
    atomic_write_h5ad(_shell(adata), tmp_path / "one.h5ad")
    _assert_same_file(ad.read_h5ad(tmp_path / "cells.h5ad"), ad.read_h5ad(tmp_path / "one.h5ad"))
