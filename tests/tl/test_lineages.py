"""Any CAR target, any lineage: B-ALL (CD19) and myeloma (BCMA) patients without labels (issue 21)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cd7escape as ce
from cd7escape._config import Config
from cd7escape._errors import InputError
from cd7escape._lineages import (
    LINEAGES,
    MARKERS,
    antigen_gene,
    default_lineage,
    resolve_lineage,
    without,
)
from cd7escape.tl._malignant._cell_types import check_antigen_free


def _run(antigen: str, mechanism: str, seed: int, n_cells: int = 700):
    """The pipeline's tl steps on a simulated patient, no labels; the CAR and the antigen kept out."""
    adata = ce.datasets.simulate_patient(mechanism, seed=seed, n_cells=n_cells, antigen=antigen)
    gene = antigen_gene(antigen)
    car = next(v for v in adata.var_names if v.startswith("CAR_"))
    # the clonotypes of the run's receptor loci only, as read_vdj(loci=...) gives them
    loci = resolve_lineage(None, gene).loci
    ids = adata.obs["clone_id"].astype("string")
    own = ids.str.split(";").map(
        lambda parts: all(p.split(":")[0] in loci for p in parts), na_action="ignore"
    )
    adata.obs["clone_id"] = ids.where(own.fillna(False).astype(bool)).astype(object)
    ce.pp.embed(adata, antigen=gene, umap=False, exclude=(car,), seed=0)
    ce.tl.call_malignant(adata, antigen=gene, car_feature=car, seed=0)
    return adata, gene


@pytest.fixture(scope="module")
def b_all():
    return _run("CD19", "lineage_switch", seed=11)


@pytest.fixture(scope="module")
def myeloma():
    return _run("BCMA", "antigen_downregulation", seed=12)


def _f1(adata) -> float:
    truth = adata.obs["truth_malignant"].to_numpy(bool)
    called = adata.obs["malignant"].to_numpy(bool)
    return 2 * float((truth & called).sum()) / max(truth.sum() + called.sum(), 1)


def test_default_lineage_and_antigen_names():
    assert default_lineage("CD7") == "T"
    assert default_lineage("cd19") == "B"
    assert default_lineage("CD22") == "B"
    assert default_lineage("BCMA") == default_lineage("TNFRSF17") == "plasma"
    assert default_lineage("MPL") is None
    assert resolve_lineage(None, "MPL").name == "T"
    assert resolve_lineage("B", "CD7").name == "B"  # given beats the antigen's
    with pytest.raises(InputError, match="lineage must be one of"):
        resolve_lineage("myeloid", "CD7")
    assert antigen_gene("BCMA") == "TNFRSF17"
    assert antigen_gene("CD19") == "CD19"
    config = Config(samples="s.csv", antigen="BCMA")
    assert config.antigen == "TNFRSF17"
    assert config.lineage_spec.name == "plasma"
    assert Config(samples="s.csv", antigen="CD19").lineage_spec.loci == ("IGH", "IGK", "IGL")


def test_no_antigen_in_any_lineage_gene_set():
    for lineage in LINEAGES.values():
        for antigen in lineage.antigens:
            gene = antigen_gene(antigen)
            sets = {k: without(MARKERS[k], gene) for k in lineage.scored}
            for name in (
                "blast_specific",
                "blast_supporting",
                "mature",
                "tumour_targets",
                "program",
            ):
                sets[name] = without(getattr(lineage, name), gene)
            check_antigen_free(sets, gene)


def test_b_all_blasts_found_without_labels(b_all):
    adata, _ = b_all
    entry = adata.uns["cd7escape"]["malignant"]
    assert entry["params"]["lineage"] == "B"
    assert _f1(adata) >= 0.95
    obs = adata.obs
    truth = obs["truth_cell_type"].astype(str).to_numpy()
    called = obs["malignant"].to_numpy(bool)
    # CAR-T cells (T cells) and the polyclonal normal B cells stay out
    assert called[truth == "car_T"].mean() <= 0.02
    assert called[truth == "B"].mean() <= 0.3
    # blasts score as B cells; T cells (not the tumour's lineage in B-ALL) are copy-number references
    assert (obs.loc[obs["truth_malignant"], "lineage"].astype(str) == "B").mean() > 0.5
    assert entry["cnv"]["reference_cells"].get("T", 0) >= 20


def test_b_all_lineage_switch_is_b_to_myeloid(b_all):
    adata, gene = b_all
    ce.tl.antigen_state(adata, antigen=gene, groupby="sample")
    ce.tl.subclones(adata, antigen=gene)
    call = ce.tl.classify_relapse(adata, antigen=gene, n_bootstrap=5)
    assert call.mechanism == "lineage_switch"
    assert "B-lineage program" in call.reason
    genes = call.numbers["lineage_program_genes"]
    assert "PAX5" in genes
    assert gene not in genes
    assert "CD3E" not in genes
    assert call.numbers["lineage_program_ratio"] < 0.3


def test_myeloma_cells_found_without_labels(myeloma):
    adata, gene = myeloma
    assert gene == "TNFRSF17"
    assert adata.uns["cd7escape"]["malignant"]["params"]["lineage"] == "plasma"
    assert _f1(adata) >= 0.95
    obs = adata.obs
    truth = obs["truth_cell_type"].astype(str).to_numpy()
    called = obs["malignant"].to_numpy(bool)
    assert called[truth == "car_T"].mean() <= 0.02
    assert "plasma" in set(obs["cell_class"].astype(str))


def test_t_lineage_scores_are_those_of_before(simulated):
    """A CD7 run scores the same five lineages as before the table (no plasma column)."""
    adata = simulated("preexisting_negative_clone")
    import scanpy as sc

    from cd7escape.tl._malignant._cell_types import lineage_scores

    x = adata.copy()
    sc.pp.normalize_total(x, target_sum=1e4)
    sc.pp.log1p(x)
    scores = lineage_scores(x.X, pd.Index(x.var_names), "CD7")
    assert list(scores.columns) == ["T", "NK", "B", "myeloid", "erythroid"]
    plasma = lineage_scores(x.X, pd.Index(x.var_names), "TNFRSF17", LINEAGES["plasma"])
    assert "plasma" in plasma.columns
    assert np.isfinite(plasma.to_numpy()).all()


def test_bad_lineage_is_an_input_error(b_all):
    adata, gene = b_all
    with pytest.raises(InputError, match="lineage"):
        ce.tl.call_malignant(adata.copy(), antigen=gene, lineage="myeloid")
