"""call_malignant on small seeded simulated patients (and one real CARPALL sample)."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest

import cd7escape as ce
from cd7escape._config import MalignantParams
from cd7escape.tl._malignant._blast_program import BLAST_SPECIFIC, BLAST_SUPPORTING
from cd7escape.tl._malignant._call import CELL_CLASSES


def _f1(truth: np.ndarray, called: np.ndarray) -> float:
    tp = np.sum(truth & called)
    return 2 * tp / (truth.sum() + called.sum())


@pytest.fixture(scope="session")
def embedded_patient():
    """A seeded simulated patient (baseline + relapse, 450 cells each, TCR, CAR-T), embedded once."""
    adata = ce.datasets.simulate_patient(
        "preexisting_negative_clone", seed=7, n_cells=450, negative_fraction=0.2
    )
    ce.pp.embed(adata, umap=False)
    return adata


@pytest.fixture(scope="session")
def called_patient(embedded_patient):
    adata = embedded_patient.copy()
    ce.tl.call_malignant(adata, car_feature="CAR_CD7")
    return adata


def test_writes_keys_and_params(called_patient):
    obs = called_patient.obs
    for key in (
        "malignant",
        "malignant_score",
        "cell_class",
        "cnv_score",
        "cnv_subclone",
        "clone_expanded",
    ):
        assert key in obs
    for key in ("blast_score", "car_detected", "tcr_evidence"):
        assert key in obs
    assert obs["malignant"].dtype == bool
    assert obs["malignant_score"].between(0, 1).all()
    assert set(obs["cell_class"].cat.categories) == set(CELL_CLASSES)
    assert (obs["cell_class"] == "malignant").to_numpy().sum() == obs["malignant"].sum()
    entry = called_patient.uns["cd7escape"]["malignant"]
    assert entry["params"]["antigen"] == "CD7"
    assert entry["cnv"]["run"]


def test_defaults_equal_config():
    sig = inspect.signature(ce.tl.call_malignant).parameters
    for name, field in MalignantParams.model_fields.items():
        assert sig[name].default == field.default, name


def test_f1_against_truth(called_patient):
    obs = called_patient.obs
    assert _f1(obs["truth_malignant"].to_numpy(), obs["malignant"].to_numpy()) >= 0.97


def test_car_t_and_negative_normal_t_not_malignant(called_patient):
    obs = called_patient.obs
    car = (obs["truth_cell_type"] == "car_T").to_numpy()
    assert car.sum() > 20
    assert obs["malignant"].to_numpy()[car].mean() <= 0.005
    # a CAR-positive cell called malignant is a blast (ambient CAR counts), never a CAR-T cell; with no
    # transduced blasts simulated, none is called CAR-transduced
    detected = obs["car_detected"].to_numpy() & obs["malignant"].to_numpy()
    assert obs["truth_malignant"].to_numpy()[detected].all()
    assert not obs["car_transduced"].any()
    # CAR-T cells with CAR counts are recognised as their own class
    assert (obs["cell_class"].to_numpy()[car] == "car_T").mean() > 0.5
    neg_t = ((obs["truth_cell_type"] == "normal_T") & obs["truth_antigen_negative"]).to_numpy()
    assert neg_t.sum() > 10
    assert obs["malignant"].to_numpy()[neg_t].mean() <= 0.01


@pytest.mark.parametrize("change", ["zero", "permute"])
def test_antigen_counts_do_not_change_calls(embedded_patient, called_patient, change):
    adata = embedded_patient.copy()
    counts = adata.layers["counts"].tolil()
    j = adata.var_names.get_loc("CD7")
    col = counts[:, j].toarray().ravel()
    new = np.zeros_like(col) if change == "zero" else np.random.default_rng(0).permutation(col)
    counts[:, j] = new[:, None]
    adata.layers["counts"] = counts.tocsr()
    ce.tl.call_malignant(adata, car_feature="CAR_CD7")
    np.testing.assert_array_equal(
        adata.obs["malignant"].to_numpy(), called_patient.obs["malignant"].to_numpy()
    )
    np.testing.assert_allclose(
        adata.obs["malignant_score"], called_patient.obs["malignant_score"], atol=1e-6
    )


def test_user_labels_override_everything(embedded_patient, called_patient):
    adata = embedded_patient.copy()
    called = called_patient.obs["malignant"].to_numpy()
    flip = np.zeros(adata.n_obs, dtype=bool)
    flip[np.flatnonzero(called)[:10]] = True
    flip[np.flatnonzero(~called)[:10]] = True
    labels = pd.Series(pd.NA, index=adata.obs_names, dtype="boolean")
    labels[flip] = ~called[flip]
    adata.obs["user_malignant"] = labels
    ce.tl.call_malignant(adata, car_feature="CAR_CD7")
    out = adata.obs["malignant"].to_numpy()
    np.testing.assert_array_equal(out[flip], ~called[flip])
    np.testing.assert_array_equal(out[~flip], called[~flip])
    assert adata.uns["cd7escape"]["malignant"]["user_labels"]["labelled_cells"] == 20


def test_donor_cells_are_never_malignant(embedded_patient):
    adata = embedded_patient.copy()
    truth = adata.obs["truth_malignant"].to_numpy()
    donor = np.where(truth, "recipient", "donor").astype(object)
    donor[np.flatnonzero(truth)[:15]] = "donor"
    donor[:5] = "unassigned"
    adata.obs["donor"] = donor
    ce.tl.call_malignant(adata, car_feature="CAR_CD7")
    is_donor = (adata.obs["donor"] == "donor").to_numpy()
    assert not adata.obs["malignant"].to_numpy()[is_donor].any()
    assert adata.uns["cd7escape"]["malignant"]["donor"]["recipient_label"] == "recipient"


def test_without_tcr_still_finds_blasts(embedded_patient):
    adata = embedded_patient.copy()
    del adata.obs["clone_id"]
    ce.tl.call_malignant(adata, car_feature="CAR_CD7")
    obs = adata.obs
    assert _f1(obs["truth_malignant"].to_numpy(), obs["malignant"].to_numpy()) >= 0.95
    assert not adata.uns["cd7escape"]["malignant"]["tcr_available"]


def test_copy_and_bad_input(embedded_patient):
    out = ce.tl.call_malignant(embedded_patient, car_feature="CAR_CD7", cnv=False, copy=True)
    assert "malignant" in out.obs
    assert "malignant" not in embedded_patient.obs
    with pytest.raises(ce._errors.InputError):
        ce.tl.call_malignant(embedded_patient, car_feature="NO_SUCH_CAR", copy=True)
    with pytest.raises(ce._errors.InputError):
        ce.tl.call_malignant(embedded_patient, min_score=2.0, copy=True)


def test_real_carpall_sample_has_no_malignant_cells(shared_data):
    """CARPALL (B-ALL patients after CD19 CAR-T) has no T-ALL: ≤ 1 % may be called malignant.

    A sorted CAR-T sample (CD3+CAT+): almost no non-T cells, so the CNV reference is polyclonal T cells.
    """
    from cd7escape._config import SampleSpec

    carpall = shared_data / "carpall"
    sample = "CAR-T11388808"
    spec = SampleSpec(
        patient="P01",
        sample=sample,
        timepoint="other",
        path=str(carpall / "gex" / f"{sample}.h5"),
        vdj=str(carpall / "vdj" / f"{sample}.csv"),
    )
    adata = ce.io.read_sample(spec, car_feature="CAT_scFv")
    adata = adata[np.asarray(adata.layers["counts"].sum(axis=1)).ravel() >= 500].copy()
    ce.pp.embed(adata, umap=False)
    ce.tl.call_malignant(adata, car_feature="CAT_scFv")
    assert adata.obs["malignant"].mean() <= 0.01
    authors = pd.read_csv(carpall / "CARTcell_barcodes.txt", sep="\t")["CellID"]
    theirs = adata.obs_names.isin(authors)
    ours = adata.obs["car_detected"].to_numpy()
    assert theirs.sum() > 20
    assert (ours & theirs).sum() / theirs.sum() > 0.5  # sensitivity
    assert (ours & theirs).sum() / ours.sum() > 0.5  # precision


# ---- blasts without a blast program (mature-phenotype T-ALL): CNV + leukemic clonotype suffice ----------
CYTOTOXIC = (
    "GZMB",
    "GZMH",
    "GZMA",
    "NKG7",
    "CCL5",
    "CCL4",
    "GNLY",
    "PRF1",
    "CST7",
    "KLRD1",
    "KLRG1",
)


def _without_blast_program(adata, rng: np.random.Generator) -> None:
    """Give the blasts a normal T cell's counts of every blast-program and mature-T gene, in place.

    The genes the simulator raises or lowers in blasts and those the caller scores (blast program, mature-T
    and NOTCH panels) are copied from a normal T cell of similar depth (one of the five nearest in library
    size), so the blasts keep only their copy-number changes, subclone programs and monoclonal TCR.
    """
    from cd7escape.datasets._simulate import BLAST_UP, MATURE_DOWN
    from cd7escape.tl._malignant._blast_program import MATURE_T, NOTCH_TARGETS

    genes = {*BLAST_UP, *MATURE_DOWN, *BLAST_SPECIFIC, *BLAST_SUPPORTING, *MATURE_T, *NOTCH_TARGETS}
    cols = adata.var_names.get_indexer(
        sorted(g for g in genes if g in adata.var_names and g != "CD7")
    )
    kind = adata.obs["truth_cell_type"].to_numpy()
    blasts, normal = np.flatnonzero(kind == "malignant"), np.flatnonzero(kind == "normal_T")
    x = adata.layers["counts"].tolil()
    depth = np.asarray(adata.layers["counts"].sum(axis=1)).ravel()
    nearest = np.argsort(np.abs(depth[blasts][:, None] - depth[normal][None, :]), axis=1)[:, :5]
    donors = normal[nearest[np.arange(blasts.size), rng.integers(0, 5, blasts.size)]]
    x[blasts[:, None], cols] = adata.layers["counts"][donors][:, cols].toarray()
    adata.layers["counts"] = x.tocsr()


def _normal_expansion(adata, rng: np.random.Generator, per_timepoint: int = 25) -> np.ndarray:
    """A clonal normal T-cell expansion (a CMV-like cytotoxic clone) at both timepoints, without CNV."""
    kind = adata.obs["truth_cell_type"].to_numpy()
    tp = adata.obs["timepoint"].astype(str).to_numpy()
    cells = np.concatenate(
        [
            rng.choice(
                np.flatnonzero((kind == "normal_T") & (tp == t)), per_timepoint, replace=False
            )
            for t in ("baseline", "relapse")
        ]
    )
    cols = adata.var_names.get_indexer([g for g in CYTOTOXIC if g in adata.var_names])
    x = adata.layers["counts"].tolil()
    x[cells[:, None], cols] = rng.poisson(
        4.0 * (adata.layers["counts"][cells][:, cols].toarray() + 0.5)
    )
    adata.layers["counts"] = x.tocsr()
    clone = adata.obs["clone_id"].astype(object)
    clone.iloc[cells] = "TRB:TGTGCCAGCAGTTTAGGGGGAGCCTAC;TRA:TGTGCTGTGAGGGATAGCAACTATCAG"
    adata.obs["clone_id"] = clone
    return cells


@pytest.fixture(scope="session")
def mature_blast_patient():
    """Simulated patient whose blasts lack the blast program, with a clonal normal expansion; called."""
    rng = np.random.default_rng(0)
    adata = ce.datasets.simulate_patient(
        "antigen_retained", seed=7, n_cells=500, negative_fraction=0.2
    )
    _without_blast_program(adata, rng)
    normal_clone = _normal_expansion(adata, rng)
    adata.X = adata.layers["counts"].copy()
    ce.pp.embed(adata, umap=False, exclude=("CAR_CD7",))
    ce.tl.call_malignant(adata, car_feature="CAR_CD7")
    adata.obs["truth_normal_clone"] = False
    adata.obs.iloc[normal_clone, adata.obs.columns.get_loc("truth_normal_clone")] = True
    return adata


def test_blasts_without_blast_program_are_called(mature_blast_patient):
    obs = mature_blast_patient.obs
    truth = obs["truth_malignant"].to_numpy()
    called = obs["malignant"].to_numpy()
    assert np.median(obs["blast_score"].to_numpy()[truth]) < 0.05  # no blast program left
    assert _f1(truth, called) >= 0.9
    entry = mature_blast_patient.uns["cd7escape"]["malignant"]
    leukemic = pd.DataFrame(entry["leukemic_clonotypes"])
    assert leukemic["copy_number"].any()  # declared on the ground of its copy-number change
    assert (leukemic["timepoints"] == "baseline,relapse").all()
    tested = pd.DataFrame(entry["clone_copy_number"]["clones"])
    normal = tested[tested["clone_id"].str.startswith("TRB:TGTGCCAGCAGTTTAGG")]
    assert len(normal) == 1
    assert not normal["altered"].iloc[0]


def test_normal_expansion_car_t_and_normal_t_stay_out_without_blast_program(mature_blast_patient):
    obs = mature_blast_patient.obs
    called = obs["malignant"].to_numpy()
    kind = obs["truth_cell_type"].to_numpy()
    assert not called[obs["truth_normal_clone"].to_numpy()].any()
    assert called[kind == "normal_T"].mean() <= 0.02
    assert called[np.isin(kind, ["NK", "B", "myeloid", "erythroid"])].mean() <= 0.01
    # a CAR-detected cell called malignant is a blast (an ambient CAR UMI in a blast); none is marked
    # CAR-transduced, as no blast here carries the CAR
    car = obs["car_detected"].to_numpy()
    assert (kind[car & called] == "malignant").all()
    assert not obs["car_transduced"].any()
    # a CAR-T cell with neither CAR counts nor a TCR, among blasts, is indistinguishable from a blast
    # whose TCR was not read unless its own copy number says otherwise: at most one in ~45
    assert called[kind == "car_T"].mean() <= 0.025
