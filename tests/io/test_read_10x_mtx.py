from __future__ import annotations

import numpy as np
import pytest
from io_writers import GENES, barcodes, counts, write_mtx

from cd7escape._errors import InputError
from cd7escape.io import read_10x_mtx


@pytest.mark.parametrize(("gz", "v2"), [(True, False), (False, False), (False, True), (True, True)])
def test_mtx_folder(tmp_path, gz, v2):
    m = counts(30, len(GENES), seed=4)
    cells = barcodes(30)
    a = read_10x_mtx(write_mtx(tmp_path / "m", m, cells, GENES, gz=gz, v2=v2))
    assert list(a.var_names) == GENES
    assert list(a.obs_names) == cells
    np.testing.assert_array_equal(a.X.toarray(), m.toarray())
    np.testing.assert_array_equal(a.layers["counts"].toarray(), m.toarray())
    assert a.var["gene_ids"].iloc[0] == "ENSG00000000000"
    assert (a.var["feature_types"] == "Gene Expression").all()


def test_mtx_missing_file(tmp_path):
    folder = write_mtx(tmp_path / "m", counts(5, 3), barcodes(5), ["CD7", "A1", "B2"], gz=False)
    (folder / "barcodes.tsv").unlink()
    with pytest.raises(InputError, match=r"barcodes\.tsv"):
        read_10x_mtx(folder)


def test_mtx_real_values_rejected(tmp_path):
    m = counts(10, len(GENES)).astype(float) * 0.5
    folder = write_mtx(tmp_path / "m", m, barcodes(10), GENES, field="real")
    with pytest.raises(InputError, match="non-integer"):
        read_10x_mtx(folder)


def test_mtx_shape_mismatch(tmp_path):
    folder = write_mtx(tmp_path / "m", counts(5, 3), barcodes(5), ["CD7", "A1", "B2"], gz=False)
    (folder / "barcodes.tsv").write_text("\n".join(barcodes(4)) + "\n")
    with pytest.raises(InputError, match="barcodes"):
        read_10x_mtx(folder)
