"""B-ALL (CD19, CD22) and myeloma (BCMA) patients: the tumour's lineage, its antigen, IG clonotypes, the
B→myeloid switch; and T-ALL patients unchanged by them."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from cd7escape._errors import InputError
from cd7escape.datasets import simulate_patient, write_simulated

N = 300


@pytest.fixture(scope="module")
def ball():
    return simulate_patient(
        "preexisting_negative_clone", antigen="CD19", seed=21, n_cells=N, negative_fraction=0.2
    )


@pytest.fixture(scope="module")
def switch():
    return simulate_patient("lineage_switch", antigen="CD22", seed=22, n_cells=N)


@pytest.fixture(scope="module")
def myeloma():
    return simulate_patient(
        "preexisting_negative_clone",
        antigen="BCMA",
        seed=23,
        n_cells=N,
        negative_fraction=0.25,
        protein=True,
    )


def _mean(adata, gene: str, mask: np.ndarray) -> float:
    """Mean UMIs per 10k of a gene over the masked cells."""
    x = np.asarray(adata[:, gene].layers["counts"].todense()).ravel()
    lib = np.asarray(adata.layers["counts"].sum(1)).ravel()
    return float((x[mask] / lib[mask]).mean() * 1e4)


def _is(adata, cell_type: str, timepoint: str | None = None) -> np.ndarray:
    m = adata.obs["truth_cell_type"].astype(str).to_numpy() == cell_type
    if timepoint is not None:
        m &= adata.obs["timepoint"].astype(str).to_numpy() == timepoint
    return m


def _digest(adata) -> str:
    h = hashlib.sha256()
    X = adata.layers["counts"].tocsr()
    for arr in (X.data, X.indices, X.indptr):
        h.update(np.ascontiguousarray(arr).astype(np.int64).tobytes())
    h.update("|".join(adata.var_names).encode())
    obs = adata.obs.rename(columns={"receptor_chains": "tcr_chains"})  # the column's old name
    h.update(obs.to_csv(float_format="%.10g").encode())
    h.update(adata.uns["vdj_contigs"].to_csv(index=False).encode())
    if "protein" in adata.obsm:
        h.update(adata.obsm["protein"].to_csv().encode())
    return h.hexdigest()


# sha256 of counts, var names, obs and contigs of small T-ALL patients, computed at 860e377 (before B-ALL
# and myeloma patients existed): a T-ALL patient's data must not change with them
T_ALL_DIGESTS = {
    "mixed": (
        {"mechanism": "mixed", "seed": 3, "n_cells": 120, "depth": 1500, "negative_fraction": 0.2},
        "49aa79056f7179bfc6608c3da763f8d3308a681c146c44083e3a96dc6d38b36f",
    ),
    "switch_protein": (
        {
            "mechanism": "lineage_switch",
            "seed": 4,
            "n_cells": 100,
            "protein": True,
            "empty_droplets": True,
            "car_transduced": 0.1,
        },
        "46190372a551c5b93e31ea79fea510fd99f967d94df0907d3f6ca4fed074bf0b",
    ),
    "pebl_sites_notcr": (
        {
            "mechanism": "antigen_downregulation",
            "seed": 5,
            "n_cells": 100,
            "tcr": False,
            "car_product": "pebl",
            "relapse_sites": ("BM", "CNS"),
            "fold": 4.0,
            "decoy_negative_minor": True,
        },
        "9376ad9281e36a7fce96e21f0f24768fb8ca939171cddcec772497a7cd651ac6",
    ),
}


@pytest.mark.parametrize("name", list(T_ALL_DIGESTS))
def test_t_all_patients_are_unchanged(name):
    options, digest = T_ALL_DIGESTS[name]
    options = dict(options)
    a = simulate_patient(options.pop("mechanism"), **options)
    assert a.uns["truth"]["lineage"] == "T"
    assert _digest(a) == digest


def test_lineage_follows_the_antigen(ball, switch, myeloma):
    assert ball.uns["truth"]["lineage"] == "B"
    assert switch.uns["truth"]["lineage"] == "B"
    assert myeloma.uns["truth"]["lineage"] == "plasma"
    assert myeloma.uns["truth"]["antigen"] == "TNFRSF17"  # BCMA's gene
    assert "TNFRSF17" in myeloma.var_names
    assert "CAR_CD19" in ball.var_names
    assert "CAR_BCMA" in myeloma.var_names
    assert set(myeloma.obs["truth_cell_type"].astype(str)) >= {"malignant", "B", "plasma", "car_T"}
    assert "plasma" not in set(ball.obs["truth_cell_type"].astype(str))
    # an explicit lineage wins over the antigen's
    t = simulate_patient("antigen_retained", antigen="CD19", lineage="T", seed=1, n_cells=60)
    assert t.uns["truth"]["lineage"] == "T"
    assert "IGKC" not in t.var_names  # the fitted T-ALL universe


def test_b_all_blasts_score_as_b_precursors(ball):
    blast, b_cell, t_cell = _is(ball, "malignant"), _is(ball, "B"), _is(ball, "normal_T")
    for gene in ("CD79A", "PAX5"):
        assert _mean(ball, gene, blast) > 10 * _mean(ball, gene, t_cell), gene
    for gene in ("CD3E", "CD3D"):
        assert _mean(ball, gene, blast) < 0.05 * _mean(ball, gene, t_cell), gene
    for gene in ("DNTT", "VPREB1", "CD34"):  # the B-precursor program
        assert _mean(ball, gene, blast) > 5 * _mean(ball, gene, b_cell), gene
    assert _mean(ball, "MS4A1", blast) < 0.3 * _mean(ball, "MS4A1", b_cell)  # mature B gene down


def test_myeloma_cells_are_plasma_cells(myeloma):
    tumour, b_cell, plasma = _is(myeloma, "malignant"), _is(myeloma, "B"), _is(myeloma, "plasma")
    assert 0 < plasma.sum() < 0.05 * b_cell.sum() + 10  # a few normal plasma cells
    for gene in ("JCHAIN", "MZB1", "XBP1"):
        assert _mean(myeloma, gene, tumour) > 10 * _mean(myeloma, gene, b_cell), gene
    for gene in ("MS4A1", "PAX5"):
        assert _mean(myeloma, gene, tumour) < 0.1 * _mean(myeloma, gene, b_cell), gene
    assert _mean(myeloma, "CCND1", tumour) > 5 * _mean(myeloma, "CCND1", plasma)  # aberrant


@pytest.mark.parametrize(("fixture", "antigen", "normal"), [("ball", "CD19", "B"), ("myeloma", "TNFRSF17", "plasma")])  # fmt: skip
def test_antigen_on_the_tumour_and_its_normal_cells_only(request, fixture, antigen, normal):
    a = request.getfixturevalue(fixture)
    neg = a.obs["truth_antigen_negative"].to_numpy()
    for ct in ("normal_T", "car_T", "NK", "myeloid", "erythroid"):
        assert neg[_is(a, ct)].all(), ct
    assert not neg[_is(a, normal)].any()
    truth = a.uns["truth"]
    blasts = _is(a, "malignant", "baseline")
    assert neg[blasts].mean() == pytest.approx(truth["negative_fraction_baseline"], abs=0.02)
    assert truth["negative_fraction_baseline"] == pytest.approx(truth["negative_fraction"])
    rel = _is(a, "malignant", "relapse")
    assert neg[rel].mean() == pytest.approx(truth["negative_fraction_relapse"], abs=0.02)
    assert truth["negative_fraction_relapse"] > 0.8
    # counts follow the truth: negative cells have ambient counts only
    y = np.asarray(a[:, antigen].layers["counts"].todense()).ravel()
    pos_blasts = _is(a, "malignant") & ~neg
    assert y[neg].mean() < 0.1 * y[pos_blasts].mean()


def test_myeloma_protein(myeloma):
    prot = myeloma.obsm["protein"]
    assert "TNFRSF17_TotalSeqC" in prot
    tumour = _is(myeloma, "malignant", "baseline") & ~myeloma.obs["truth_antigen_negative"]
    t_cell = _is(myeloma, "normal_T")
    col = prot["TNFRSF17_TotalSeqC"].to_numpy()
    assert col[tumour.to_numpy()].mean() > 5 * col[t_cell].mean()


def _ig_cdr3(a, mask):
    return a.obs.loc[mask, "igh_cdr3"].dropna().astype(str)


@pytest.mark.parametrize("fixture", ["ball", "myeloma"])
def test_tumour_ig_is_monoclonal_normal_b_polyclonal(request, fixture):
    a = request.getfixturevalue(fixture)
    blast, b_cell = _is(a, "malignant"), _is(a, "B")
    heavy = _ig_cdr3(a, blast)
    assert len(heavy) > 0.5 * blast.sum()
    assert heavy.nunique() == 1
    lights = a.obs.loc[blast, "receptor_chains"].astype(str)
    assert {"IGH+IGK", "IGH+IGL"} & set(lights)
    assert not ({"IGH+IGK", "IGH+IGL"} <= set(lights))  # one light chain
    normal = _ig_cdr3(a, b_cell)
    assert len(normal) >= 5
    assert normal.nunique() == len(normal)  # polyclonal
    chains = set(a.obs.loc[b_cell, "receptor_chains"].astype(str))
    assert "IGH+IGK" in chains
    assert "IGH+IGL" in chains
    # T cells carry TCRs (in the contigs), never IG; clonotypes in obs are of the lineage's loci
    t_like = _is(a, "normal_T") | _is(a, "car_T")
    assert a.obs.loc[t_like, "clone_id"].isna().all()
    assert "trb_cdr3" not in a.obs
    c = a.uns["vdj_contigs"]
    t_barcodes = set(a.obs.loc[t_like, "barcode"])
    tr = c["chain"].isin(["TRA", "TRB"]) & (c["productive"] == "true")
    assert len(set(c.loc[tr, "barcode"]) & t_barcodes) > 0.4 * t_like.sum()


def test_ig_contigs(ball, myeloma):
    for a, heavy in ((ball, "IGHM"), (myeloma, "IGHG1")):
        c = a.uns["vdj_contigs"]
        bc_type = dict(zip(a.obs["barcode"], a.obs["truth_cell_type"].astype(str), strict=True))
        kind = c["barcode"].map(bc_type)
        ig = c["chain"].isin(["IGH", "IGK", "IGL"])
        assert ig.any()
        assert c["chain"].isin(["TRA", "TRB"]).any()
        assert set(kind[ig]) <= {"malignant", "B", "plasma"}
        assert set(kind[~ig]) <= {"normal_T", "car_T", "malignant"}
        assert not (~ig & (kind == "malignant") & (c["productive"] == "true")).any()
        assert c.loc[ig, "v_gene"].str[:4].isin(["IGHV", "IGKV", "IGLV"]).all()
        assert c.loc[ig, "j_gene"].str[:4].isin(["IGHJ", "IGKJ", "IGLJ"]).all()
        assert set(c.loc[ig, "c_gene"]) <= {
            "IGHM",
            "IGHD",
            "IGHG1",
            "IGHA1",
            "IGKC",
            "IGLC2",
            "IGLC3",
        }
        prod = ig & (kind == "malignant") & (c["productive"] == "true") & (c["chain"] == "IGH")
        assert (c.loc[prod, "c_gene"] == heavy).all()
        assert (c.loc[prod, "raw_clonotype_id"] == "clonotype1").all()
        hd = c.loc[c["chain"] == "IGH", "d_gene"]
        assert hd.str.startswith("IGHD").mean() > 0.5


def test_no_ig():
    a = simulate_patient("antigen_retained", antigen="CD19", ig=False, seed=2, n_cells=120)
    blast = _is(a, "malignant")
    assert a.obs.loc[blast, "clone_id"].isna().all()
    assert a.uns["truth"]["blast_receptor"] == "none"
    assert a.obs.loc[_is(a, "B"), "clone_id"].notna().any()


def test_b_to_myeloid_switch(switch):
    base, rel = _is(switch, "malignant", "baseline"), _is(switch, "malignant", "relapse")
    for gene in ("CD79A", "PAX5", "CD22"):
        assert _mean(switch, gene, rel) < 0.1 * _mean(switch, gene, base), gene
    for gene in ("MPO", "LYZ"):
        assert _mean(switch, gene, rel) > 5 * _mean(switch, gene, base), gene
    assert switch.obs.loc[rel, "truth_antigen_negative"].all()
    # the clone is kept: the relapse blasts' IG is the baseline blasts' (fewer captured)
    heavy_b, heavy_r = _ig_cdr3(switch, base), _ig_cdr3(switch, rel)
    assert heavy_r.nunique() == 1
    assert set(heavy_r) == set(heavy_b)
    assert 0.1 * rel.sum() < len(heavy_r) < len(heavy_b)
    assert switch.uns["truth"]["cnvs"]["owner"].count("trunk") == 2


def test_obs_is_what_the_reader_gives_for_the_lineage(ball, tmp_path):
    import pandas as pd

    from cd7escape import io
    from cd7escape._lineages import LINEAGES

    sheet = write_simulated(ball, tmp_path, fmt="h5")
    row = pd.read_csv(sheet).iloc[0]
    vdj = io.read_vdj(sheet.parent / row["vdj"], loci=LINEAGES["B"].loci)
    obs = ball.obs[ball.obs["sample"] == row["sample"]].set_index("barcode")
    pd.testing.assert_series_equal(
        vdj["clone_id"].dropna().sort_index(),
        obs.loc[obs["clone_id"].notna(), "clone_id"].astype(object).sort_index(),
        check_names=False,
        check_index=False,
    )
    assert (vdj["receptor_chains"] == obs.loc[vdj.index, "receptor_chains"].astype(str)).all()
    for col in ("igh_cdr3", "igk_cdr3", "igl_cdr3"):
        have = vdj[col].dropna()
        assert (have == obs.loc[have.index, col]).all()


def test_input_errors():
    with pytest.raises(InputError, match="lineage must be one of"):
        simulate_patient(antigen="CD19", lineage="myeloid", n_cells=60)
    with pytest.raises(InputError, match="TNFRSF17"):  # BCMA is not among a T-ALL patient's genes
        simulate_patient(antigen="BCMA", lineage="T", n_cells=60)


def test_written_contigs_of_a_b_all_patient(ball, tmp_path):
    import pandas as pd

    sheet = write_simulated(ball, tmp_path / "files", fmt="h5")
    row = pd.read_csv(sheet).iloc[0]
    c = pd.read_csv(sheet.parent / row["vdj"])
    assert {"IGH", "IGK", "TRA", "TRB"} <= set(c["chain"])
    write_simulated(ball, tmp_path / "multi", fmt="h5", layout="multi")
    one = tmp_path / "multi" / "P1_baseline" / "outs" / "per_sample_outs" / "P1_baseline"
    t = pd.read_csv(one / "vdj_t" / "filtered_contig_annotations.csv")
    b = pd.read_csv(one / "vdj_b" / "filtered_contig_annotations.csv")
    assert set(t["chain"]) <= {"TRA", "TRB"}
    assert set(b["chain"]) <= {"IGH", "IGK", "IGL"}
    assert len(b)
    assert len(t) + len(b) == (ball.uns["vdj_contigs"]["sample"] == "P1_baseline").sum()
