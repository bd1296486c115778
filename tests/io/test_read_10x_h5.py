from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from io_writers import GENES, barcodes, counts, write_h5_v2, write_h5_v3

from cd7escape._errors import InputError
from cd7escape.io import read_10x_h5


@pytest.mark.shared
def test_carpall_all_samples(carpall_h5):
    assert len(carpall_h5) == 27
    assert sum(a.n_obs for a in carpall_h5.values()) == 27_675
    for a in carpall_h5.values():
        assert "CAT_scFv" in a.var_names
        assert "CD7" in a.var_names
        assert a.var_names.is_unique
        assert sp.issparse(a.X)
        assert a.X.format == "csr"
        assert np.all(a.X.data == np.round(a.X.data))
        assert (a.layers["counts"] != a.X).nnz == 0
        assert (a.var["feature_types"] == "Gene Expression").all()
    a = carpall_h5["CAR-T10310322"]
    assert a.var.loc["CD7", "gene_ids"].startswith("ENSG")


@pytest.mark.shared
def test_carpall_failed_library_reads(carpall_h5):
    a = carpall_h5["CAR-T10593347"]
    assert a.n_obs == 5055
    assert np.median(np.asarray(a.X.sum(axis=1)).ravel()) == 2


def test_multimodal_antibody_capture_and_crispr(tmp_path, caplog):
    names = [*GENES, "CD7_TotalSeqC", "CD3_TotalSeqC", "sgCD7"]
    types = ["Gene Expression"] * len(GENES) + ["Antibody Capture"] * 2 + ["CRISPR Guide Capture"]
    m = counts(25, len(names), seed=3)
    cells = barcodes(25)
    path = write_h5_v3(tmp_path / "cite.h5", m, cells, names, types=types)
    with caplog.at_level("INFO", logger="cd7escape"):
        a = read_10x_h5(path)
    assert list(a.var_names) == GENES
    assert list(a.obs_names) == cells
    protein = a.obsm["protein"]
    assert list(protein.columns) == ["CD7_TotalSeqC", "CD3_TotalSeqC"]
    np.testing.assert_array_equal(protein.to_numpy(), m[:, len(GENES) : len(GENES) + 2].toarray())
    np.testing.assert_array_equal(a.X.toarray(), m[:, : len(GENES)].toarray())
    assert "CRISPR Guide Capture" in caplog.text


def test_duplicate_symbols_made_unique(tmp_path):
    names = ["CD7", "TBCE", "TBCE", "ACTB"]
    a = read_10x_h5(write_h5_v3(tmp_path / "d.h5", counts(5, 4), barcodes(5), names))
    assert list(a.var_names) == ["CD7", "TBCE", "TBCE-1", "ACTB"]


def test_v2_single_genome(tmp_path):
    m = counts(12, len(GENES))
    a = read_10x_h5(write_h5_v2(tmp_path / "v2.h5", m, barcodes(12), GENES))
    assert a.shape == (12, len(GENES))
    np.testing.assert_array_equal(a.X.toarray(), m.toarray())


def test_v2_several_genomes_rejected(tmp_path):
    import h5py

    path = write_h5_v2(tmp_path / "v2.h5", counts(4, 3), barcodes(4), ["A", "B", "C"])
    with h5py.File(path, "r+") as f:
        f.copy("GRCh38", "mm10")
    with pytest.raises(InputError, match="several genomes"):
        read_10x_h5(path)


def test_ensembl_names_mapped_to_symbols(tmp_path):
    names = ["ENSG00000173762", "ENSG00000198851", "ENSG99999999999"]  # CD7, CD3E, unknown
    a = read_10x_h5(write_h5_v3(tmp_path / "e.h5", counts(6, 3), barcodes(6), names, ids=names))
    assert list(a.var_names) == ["CD7", "CD3E", "ENSG99999999999"]
    assert list(a.var["gene_ids"]) == names


def test_mouse_rejected(tmp_path):
    names = ["Cd7", "Cd3e", "Actb", "Gapdh", "Lyz2", "Ptprc", "Cd5", "Cd1d1"]
    with pytest.raises(InputError, match="mouse"):
        read_10x_h5(write_h5_v3(tmp_path / "m.h5", counts(6, len(names)), barcodes(6), names))


def test_float_non_integer_rejected(tmp_path):
    m = counts(10, len(GENES)).astype(np.float32) * 0.37
    path = write_h5_v3(tmp_path / "f.h5", m, barcodes(10), GENES, dtype=np.float32)
    with pytest.raises(InputError, match="non-integer"):
        read_10x_h5(path)


def test_not_hdf5(tmp_path):
    path = tmp_path / "x.h5"
    path.write_text("hello")
    with pytest.raises(InputError, match="HDF5"):
        read_10x_h5(path)
