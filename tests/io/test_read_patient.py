from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from io_writers import GENES, barcodes, counts, write_h5_v3, write_mtx

from cd7escape._config import SampleSpec
from cd7escape._errors import InputError
from cd7escape.io import read_patient


def _spec(sample, timepoint, path) -> SampleSpec:
    return SampleSpec(patient="P1", sample=sample, timepoint=timepoint, path=str(path))


def test_concatenated(tmp_path):
    m1, m2 = counts(20, len(GENES), seed=1), counts(15, len(GENES), seed=2)
    write_h5_v3(tmp_path / "a.h5", m1, barcodes(20), GENES)
    write_mtx(tmp_path / "b", m2, barcodes(15), GENES)  # same barcodes as a's first 15: made unique
    a = read_patient(
        [_spec("base", "baseline", tmp_path / "a.h5"), _spec("rel", "relapse", tmp_path / "b")]
    )
    assert a.shape == (35, len(GENES))
    assert a.obs_names.is_unique
    assert a.obs["sample"].value_counts().to_dict() == {"base": 20, "rel": 15}
    assert isinstance(a.obs["timepoint"].dtype, pd.CategoricalDtype)
    np.testing.assert_array_equal(a.layers["counts"][20:].toarray(), m2.toarray())
    assert list(a.uns["cd7escape"]["ingest"]["samples"].index) == ["base", "rel"]
    assert a.X is not a.layers["counts"]  # two copies: normalising X in place keeps the counts
    specs = [_spec("base", "baseline", tmp_path / "a.h5"), _spec("rel", "relapse", tmp_path / "b")]
    one = read_patient(specs, counts_only=True)
    assert one.X is None
    np.testing.assert_array_equal(one.layers["counts"].toarray(), a.layers["counts"].toarray())
    assert one.obs.equals(a.obs)


def test_gene_sets_differ_warns(tmp_path, caplog):
    other = ["CD7", "CD3E", "X1", "X2", "X3", "X4", "X5", "X6", "X7", "X8", "X9", "X10"]
    write_h5_v3(tmp_path / "a.h5", counts(10, len(GENES)), barcodes(10), GENES)
    write_h5_v3(tmp_path / "b.h5", counts(10, len(other)), barcodes(10), other)
    with caplog.at_level("WARNING", logger="cd7escape"):
        a = read_patient(
            [_spec("a", "baseline", tmp_path / "a.h5"), _spec("b", "relapse", tmp_path / "b.h5")]
        )
    assert set(a.var_names) == {"CD7", "CD3E"}
    assert "share only 2 of" in caplog.text


def test_protein_outer_joined(tmp_path):
    names = [*GENES, "CD7_ADT"]
    types = ["Gene Expression"] * len(GENES) + ["Antibody Capture"]
    write_h5_v3(tmp_path / "a.h5", counts(10, len(names)), barcodes(10), names, types=types)
    write_h5_v3(tmp_path / "b.h5", counts(8, len(GENES)), barcodes(8, seed=5), GENES)
    a = read_patient(
        [_spec("a", "baseline", tmp_path / "a.h5"), _spec("b", "relapse", tmp_path / "b.h5")]
    )
    protein = a.obsm["protein"]
    assert protein.shape == (18, 1)
    assert protein["CD7_ADT"].iloc[:10].notna().all()
    assert protein["CD7_ADT"].iloc[10:].isna().all()


def test_all_sample_problems_reported(tmp_path):
    with pytest.raises(InputError) as err:
        read_patient(
            [_spec("a", "baseline", tmp_path / "x.h5"), _spec("b", "relapse", tmp_path / "y.h5")]
        )
    assert [p.sample for p in err.value.problems] == ["a", "b"]


def test_duplicate_sample_ids(tiny_h5):
    with pytest.raises(InputError, match="duplicate sample id"):
        read_patient([_spec("a", "baseline", tiny_h5), _spec("a", "relapse", tiny_h5)])


@pytest.mark.shared
def test_carpall_patient(carpall, carpall_meta):
    rows = carpall_meta[carpall_meta["Patient"] == "P02"]
    specs = [
        SampleSpec(
            patient="P02",
            sample=r.GEX_Sample,
            timepoint="baseline" if r.Timepoint == "M0" else "other",
            path=str(carpall / "gex" / f"{r.GEX_Sample}.h5"),
            vdj=str(carpall / "vdj" / f"{r.TCR_Sample}.csv"),
            tissue=r.Source,
        )
        for r in rows.itertuples()
    ]
    a = read_patient(specs, car_feature="CAT_scFv")
    assert a.n_obs == sum(int(n) for n in a.uns["cd7escape"]["ingest"]["samples"]["n_cells"])
    assert a.obs["sample"].nunique() == len(rows)
    assert a.uns["cd7escape"]["ingest"]["car_features"] == ["CAT_scFv"]
    assert a.obs["clone_id"].notna().sum() > 1000


def test_roundtrip_h5ad(tmp_path):
    """What io writes can be saved and read back (stage cache, cells.h5ad)."""
    import anndata as ad
    import scipy.sparse as sp
    from io_writers import vdj_row, write_vdj

    names = [*GENES, "CD7_ADT"]
    types = ["Gene Expression"] * len(GENES) + ["Antibody Capture"]
    cells = barcodes(10)
    write_h5_v3(tmp_path / "a.h5", counts(10, len(names)), cells, names, types=types)
    write_h5_v3(tmp_path / "b.h5", counts(8, len(GENES)), barcodes(8, seed=5), GENES)
    empty = sp.vstack(
        [counts(10, len(GENES)), sp.csr_matrix(np.ones((3, len(GENES)), dtype=np.int32))]
    )
    write_h5_v3(tmp_path / "raw.h5", empty, [*cells, *barcodes(3, seed=7)], GENES)
    write_vdj(tmp_path / "v.csv", [vdj_row(cells[0], "TRB", "CASS", "TGT")])
    specs = [
        SampleSpec(
            patient="P1",
            sample="a",
            timepoint="baseline",
            path=str(tmp_path / "a.h5"),
            vdj=str(tmp_path / "v.csv"),
            raw_path=str(tmp_path / "raw.h5"),
        ),
        SampleSpec(
            patient="P1",
            sample="b",
            timepoint="relapse",
            path=str(tmp_path / "b.h5"),
            vdj=str(tmp_path / "v.csv"),
        ),
    ]
    a = read_patient(specs)
    a.write_h5ad(tmp_path / "out.h5ad")
    b = ad.read_h5ad(tmp_path / "out.h5ad")
    assert b.obs["clone_id"].notna().sum() == 1
    assert b.uns["cd7escape"]["ambient"]["a"]["n_droplets"] == 3
    assert b.obsm["protein"].shape == (18, 1)
    assert (b.layers["counts"] != a.layers["counts"]).nnz == 0
