from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from io_writers import GENES, barcodes, counts, vdj_row, write_h5_v3, write_h5ad, write_vdj

from cd7escape._config import SampleSpec
from cd7escape._errors import InputError
from cd7escape.io import read_sample


def spec(path, **kw) -> SampleSpec:
    base = {"patient": "P1", "sample": "S1", "timepoint": "baseline", "path": str(path)}
    return SampleSpec(**(base | {k: (str(v) if v is not None else None) for k, v in kw.items()}))


def test_metadata_and_names(tiny_h5):
    a = read_sample(spec(tiny_h5, tissue="BM"))
    cells = barcodes(40)
    assert list(a.obs_names) == [f"S1_{b}" for b in cells]
    assert list(a.obs["barcode"]) == cells
    for key, value in [
        ("patient", "P1"),
        ("sample", "S1"),
        ("timepoint", "baseline"),
        ("tissue", "BM"),
    ]:
        assert isinstance(a.obs[key].dtype, pd.CategoricalDtype)
        assert (a.obs[key] == value).all()
    assert "clone_id" not in a.obs
    assert a.uns["cd7escape"]["ingest"]["samples"].loc["S1", "n_cells"] == 40


def test_vdj_attached(tmp_path, tiny_h5):
    cells = barcodes(40)
    rows = [vdj_row(b, "TRB", "CASS", "TGTA") for b in cells[:5]] + [
        vdj_row("NOTACELL-1", "TRB", "C", "TGT")
    ]
    a = read_sample(spec(tiny_h5, vdj=write_vdj(tmp_path / "v.csv", rows)))
    assert a.obs["clone_id"].notna().sum() == 5
    assert a.obs.loc[f"S1_{cells[0]}", "clone_id"] == "TRB:TGTA"
    assert a.obs.loc[f"S1_{cells[10]}", "receptor_chains"] == "none"
    assert not a.uns["cd7escape"]["ingest"]["warnings"]


def test_vdj_matching_no_cell_warns(tmp_path, tiny_h5, caplog):
    path = write_vdj(tmp_path / "v.csv", [vdj_row("AAAA-1", "TRB", "CASS", "TGTA")])
    with caplog.at_level("WARNING", logger="cd7escape"):
        a = read_sample(spec(tiny_h5, vdj=path))
    assert a.obs["clone_id"].isna().all()
    assert "matches a cell" in caplog.text
    assert "matches a cell" in a.uns["cd7escape"]["ingest"]["warnings"][0]


def test_malignant_labels_file(tmp_path, tiny_h5):
    cells = barcodes(40)
    labels = tmp_path / "malignant.txt"
    labels.write_text("\n".join([*cells[:7], f"S1_{cells[7]}"]) + "\n")
    a = read_sample(spec(tiny_h5, malignant_labels=labels))
    assert a.obs["user_malignant"].dtype == bool
    assert a.obs["user_malignant"].sum() == 8


def test_malignant_labels_h5ad_column(tmp_path):
    cells = barcodes(30)
    flag = np.arange(30) < 12
    path = write_h5ad(
        tmp_path / "a.h5ad", counts(30, len(GENES)), cells, GENES, obs={"is_blast": flag}
    )
    a = read_sample(spec(path, malignant_labels=tmp_path / "is_blast"))
    np.testing.assert_array_equal(a.obs["user_malignant"].to_numpy(), flag)


def test_donor_vireo_and_souporcell(tmp_path, tiny_h5):
    cells = barcodes(40)
    vireo = tmp_path / "donor_ids.tsv"
    pd.DataFrame({"cell": cells[:20], "donor_id": ["donor0"] * 10 + ["donor1"] * 10}).to_csv(
        vireo, sep="\t", index=False
    )
    a = read_sample(spec(tiny_h5, donor_assignment=vireo))
    assert a.obs["donor"].value_counts().to_dict() == {"donor0": 10, "donor1": 10}
    assert a.obs["donor"].isna().sum() == 20
    soup = tmp_path / "clusters.tsv"
    pd.DataFrame(
        {
            "barcode": cells,
            "status": ["singlet"] * 38 + ["doublet"] * 2,
            "assignment": ["0"] * 30 + ["1"] * 8 + ["0/1"] * 2,
        }
    ).to_csv(soup, sep="\t", index=False)
    a = read_sample(spec(tiny_h5, donor_assignment=soup))
    assert a.obs["donor"].value_counts().to_dict() == {"0": 30, "1": 8, "doublet": 2}


def test_ambient_from_raw(tmp_path):
    cells = barcodes(40)
    filtered = counts(40, len(GENES))
    write_h5_v3(tmp_path / "f.h5", filtered, cells, GENES)
    empties = barcodes(60, seed=9)[20:]  # 40 new barcodes, not cells (seed differs)
    empties = [b for b in empties if b not in cells][:30]
    rng = np.random.default_rng(1)
    empty_counts = np.zeros((len(empties), len(GENES)), dtype=np.int32)
    empty_counts[:, GENES.index("HBB")] = rng.integers(1, 5, len(empties))
    empty_counts[:, GENES.index("LYZ")] = 1
    empty_counts[0, GENES.index("CD7")] = 1
    big = np.zeros((1, len(GENES)), dtype=np.int32)
    big[0, 0] = 500  # > 100 UMIs: not an empty droplet
    raw = sp.vstack([filtered, sp.csr_matrix(empty_counts), sp.csr_matrix(big)])
    write_h5_v3(tmp_path / "raw.h5", raw, [*cells, *empties, "GGGGGGGGGGGGGGGG-1"], GENES)
    a = read_sample(spec(tmp_path / "f.h5", raw_path=tmp_path / "raw.h5"))
    amb = a.uns["cd7escape"]["ambient"]["S1"]
    assert amb["n_droplets"] == len(empties)
    assert amb["n_umis"] == int(empty_counts.sum())
    profile = dict(zip(amb["genes"], amb["fraction"], strict=True))
    assert set(profile) == {"HBB", "LYZ", "CD7"}
    assert profile["CD7"] == pytest.approx(1 / empty_counts.sum())
    assert sum(profile.values()) == pytest.approx(1)


def test_antigen_absent(tmp_path):
    path = write_h5_v3(tmp_path / "x.h5", counts(5, 3), barcodes(5), ["CD3E", "CD5", "ACTB"])
    with pytest.raises(InputError, match="antigen gene 'CD7'") as err:
        read_sample(spec(path))
    assert err.value.problems[0].sample == "S1"


def test_car_feature_regex(tiny_h5):
    a = read_sample(spec(tiny_h5), car_feature="CAT_.*")
    assert a.uns["cd7escape"]["ingest"]["car_features"] == ["CAT_scFv"]


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_sample(spec(tmp_path / "nope.h5"))


@pytest.mark.shared
def test_carpall_sorted_samples_have_clones(carpall, carpall_meta):
    """Every productive VDJ cell gets its clone; pooled, most sorted CD3+CAT+ cells have one."""
    from cd7escape.io import read_vdj

    sorted_ = carpall_meta[
        (carpall_meta["Sort"] == "CD3+CAT+") & (carpall_meta["GEX_Sample"] != "CAR-T10593347")
    ]
    n_cells = n_clone = 0
    for row in sorted_.itertuples():
        vdj_path = carpall / "vdj" / f"{row.TCR_Sample}.csv"
        s = SampleSpec(
            patient=row.Patient,
            sample=row.GEX_Sample,
            timepoint="other",
            path=str(carpall / "gex" / f"{row.GEX_Sample}.h5"),
            vdj=str(vdj_path),
            tissue=row.Source,
        )
        a = read_sample(s, car_feature="CAT_scFv")
        vdj = read_vdj(vdj_path)
        productive_cells = vdj.index[vdj["clone_id"].notna()].isin(a.obs["barcode"]).sum()
        assert a.obs["clone_id"].notna().sum() == productive_cells > 0
        n_cells += a.n_obs
        n_clone += int(a.obs["clone_id"].notna().sum())
        if row.GEX_Sample == "CAR-T10403302":  # TCR library named CAR-T10403306
            assert productive_cells == 60
    assert n_clone / n_cells > 0.5
