"""With few polyclonal T cells, the clonotypes' copy number is read against CAR-T cells, then with NK cells.

On a held-out semi-synthetic patient (id 129: 40 % depth, 18 polyclonal T cells with a TCR) the leukemic
clone's 9p loss read z -4.5 against 69 reference T cells, 51 of them CAR-T cells, and no cell was called
malignant; with the sample's NK cells joining the reference it passed (z -6.4). NK cells join only where
the first test finds nothing: mixed into a reference that finds a change, they can hide it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cd7escape as ce
from cd7escape.tl._malignant import _call
from cd7escape.tl._malignant._cnv import CLONE_Z


@pytest.fixture(scope="module")
def thin_patient():
    """A simulated patient whose normal T cells mostly lost their TCR reads (fewer than 40 keep one)."""
    adata = ce.datasets.simulate_patient("antigen_retained", seed=7, n_cells=400)
    kind = adata.obs["truth_cell_type"].astype(str).to_numpy()
    clone = adata.obs["clone_id"].astype(object)
    read_normal = np.flatnonzero((kind == "normal_T") & clone.notna().to_numpy())
    clone.iloc[read_normal[30:]] = np.nan  # 30 polyclonal T cells keep their TCR
    adata.obs["clone_id"] = clone
    ce.pp.embed(adata, antigen="CD7", umap=False, exclude=("CAR_CD7",), seed=0)
    return adata


def _call_with_spy(adata, monkeypatch, *, hide_first: bool) -> tuple[list[np.ndarray], dict]:
    """call_malignant, recording each reference the clonotypes are tested against at the strict bar (the
    first test finds nothing if asked); the references seen and the clone test's record.

    The simulator's NK cells score as T cells (they cluster with them); here they are NK cells, as a real
    sample's are told apart, so that NK cells can join the reference.
    """
    nk_cells = adata.obs["truth_cell_type"].astype(str).to_numpy() == "NK"
    real_lineage, real_test = _call.assign_lineage, _call._clones_with_copy_number
    seen: list[np.ndarray] = []

    def lineage(*args, **kwargs):
        out = np.asarray(real_lineage(*args, **kwargs), dtype=object)
        out[nk_cells] = "NK"
        return out

    def spy(counts, total, var, table, reference, clone_id, *args, **kwargs):
        if kwargs.get("z_support", _call.CLONE_Z) < _call.CLONE_Z:
            # the retest at the lower bar, where nothing passed (tests/tl/test_malignant_retest_bar.py)
            return real_test(counts, total, var, table, reference, clone_id, *args, **kwargs)
        seen.append(np.asarray(reference).copy())
        if hide_first and len(seen) == 1:
            empty = pd.DataFrame(columns=["clone_id", "altered"])
            return empty, pd.DataFrame(columns=["clone_id"]), [], np.zeros(len(total), dtype=bool)
        return real_test(counts, total, var, table, reference, clone_id, *args, **kwargs)

    monkeypatch.setattr(_call, "assign_lineage", lineage)
    monkeypatch.setattr(_call, "_clones_with_copy_number", spy)
    ce.tl.call_malignant(adata, car_feature="CAR_CD7", seed=0)
    return seen, adata.uns["cd7escape"]["malignant"]["clone_copy_number"]


def test_nk_cells_join_a_thin_reference_that_found_no_change(
    thin_patient, monkeypatch, malignant_f1
):
    adata = thin_patient.copy()
    seen, test = _call_with_spy(adata, monkeypatch, hide_first=True)
    assert len(seen) == 2
    first, second = seen
    assert not (first & ~second).any()  # the first reference is kept whole
    added = second & ~first
    lineage = adata.obs["lineage"].astype(str).to_numpy()
    assert added.sum() > 0
    assert (lineage[added] == "NK").all()
    assert test["reference_thin"]
    assert test["reference_nk"] == test["reference_nk_tried"] == int(added.sum())
    assert test["reference_cells"] == int(second.sum())
    assert malignant_f1(adata) >= 0.9


def test_a_thin_reference_that_finds_the_change_is_not_widened(thin_patient, monkeypatch):
    seen, test = _call_with_spy(thin_patient.copy(), monkeypatch, hide_first=False)
    assert len(seen) == 1
    assert test["reference_thin"]
    assert test["leukemic"]
    assert test["reference_nk"] == test["reference_nk_tried"] == 0


def test_a_polyclonal_reference_that_finds_nothing_is_not_widened(simulated, monkeypatch):
    adata = simulated("antigen_retained")
    ce.pp.embed(adata, antigen="CD7", umap=False, exclude=("CAR_CD7",), seed=0)
    seen, test = _call_with_spy(adata, monkeypatch, hide_first=True)
    assert len(seen) == 1
    assert not test["reference_thin"]


def test_real_t_cells_without_leukemia_stay_normal_when_nk_cells_join(shared_data):
    """CARPALL patient P10 (B-ALL after CD19 CAR-T: no T-ALL), unsorted blood as 'baseline' and its sorted
    CD3+CAT+ sample as 'relapse'; the TCRs of all but 20 cells of small clonotypes dropped, so that CAR-T
    cells make up the reference. Its expanded clonotypes (CAR-T clones among them, at both timepoints)
    are tested against it and, finding no change, with the NK cells joined: none is altered, no cell is
    malignant."""
    import anndata as ad

    from cd7escape._config import SampleSpec

    carpall = shared_data / "carpall"
    parts = []
    for sample, timepoint in (("CAR-T10310325", "baseline"), ("CAR-T10310323", "relapse")):
        spec = SampleSpec(
            patient="P10", sample=sample, timepoint=timepoint,
            path=str(carpall / "gex" / f"{sample}.h5"), vdj=str(carpall / "vdj" / f"{sample}.csv"),
        )  # fmt: skip
        part = ce.io.read_sample(spec, car_feature="CAT_scFv")
        parts.append(part[np.asarray(part.layers["counts"].sum(axis=1)).ravel() >= 500].copy())
    adata = ad.concat(parts, merge="same", uns_merge="first")
    clone = adata.obs["clone_id"].astype(object)
    small = np.flatnonzero((clone.map(clone.value_counts()) <= 2).to_numpy())
    clone.iloc[np.random.default_rng(0).permutation(small)[20:]] = np.nan
    adata.obs["clone_id"] = clone
    ce.pp.embed(adata, umap=False, exclude=("CAT_scFv",))
    ce.tl.call_malignant(adata, car_feature="CAT_scFv")
    entry = adata.uns["cd7escape"]["malignant"]
    test = entry["clone_copy_number"]
    assert test["reference_thin"]
    assert test["reference_car_t"] > 0.5 * test["reference_cells"]
    assert test["reference_nk_tried"] > 0  # the repeat ran ...
    tested = pd.DataFrame(test["clones"])
    assert len(tested) >= 5
    assert not tested["altered"].any()  # ... and found no change in any clonotype
    assert test["retested"]  # nor did the retest at the lower bar
    assert test["z_support"] == CLONE_Z
    assert entry["n_malignant"] == 0
