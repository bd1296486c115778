"""Cell Ranger output folders as a sample's ``path`` (io/_cellranger.py), built by the simulator's writers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cd7escape._config import SampleSpec
from cd7escape._errors import InputError
from cd7escape.datasets import write_simulated
from cd7escape.io import (
    find_cellranger_files,
    load_config,
    read_patient,
    read_sample,
    validate_config,
)

CLI = [sys.executable, "-m", "cd7escape.cli"]


@pytest.fixture(scope="module")
def patient():
    """2 x 60 cells with empty droplets (a raw matrix) and contigs."""
    from cd7escape.datasets import simulate_patient

    return simulate_patient("antigen_downregulation", seed=4, n_cells=60, empty_droplets=True)


@pytest.fixture(scope="module")
def written(patient, tmp_path_factory) -> dict[str, Path]:
    """The patient written flat (reference) and in both Cell Ranger layouts (h5 and mtx)."""
    root = tmp_path_factory.mktemp("cellranger")
    out = {}
    for name, fmt, layout in [
        ("files", "h5", "files"),
        ("multi", "h5", "multi"),
        ("count", "mtx", "count"),
    ]:
        sheet = write_simulated(patient, root / name, fmt=fmt, layout=layout)
        (root / name / "config.yaml").write_text("antigen: CD7\nsamples: samples.csv\n")
        out[name] = sheet.parent
    return out


def _spec(path, sample="P1_baseline", **kw) -> SampleSpec:
    base = {"patient": "P1", "sample": sample, "timepoint": "baseline", "path": str(path)}
    return SampleSpec(**base, **kw)


def test_multi_layout_files_found(written):
    run = written["multi"] / "P1_baseline"
    found = find_cellranger_files(run, sample="P1_baseline")
    assert found.layout == "multi"
    assert found.sample_id == "P1_baseline"
    assert found.filtered.endswith(
        "outs/per_sample_outs/P1_baseline/count/sample_filtered_feature_bc_matrix.h5"
    )
    assert found.raw.endswith("outs/multi/count/raw_feature_bc_matrix.h5")
    assert found.vdj.endswith(
        "outs/per_sample_outs/P1_baseline/vdj_t/filtered_contig_annotations.csv"
    )
    # outs/, per_sample_outs/ and per_sample_outs/<id> name the same files
    for where in (
        run / "outs",
        run / "outs" / "per_sample_outs",
        run / "outs" / "per_sample_outs" / "P1_baseline",
    ):
        again = find_cellranger_files(where, sample="P1_baseline")
        assert (again.filtered, again.raw, again.vdj) == (found.filtered, found.raw, found.vdj)


def test_count_layout_files_found(written):
    run = written["count"] / "P1_relapse"
    found = find_cellranger_files(run)
    assert found.layout == "count"
    assert found.filtered == str((run / "outs" / "filtered_feature_bc_matrix").resolve())
    assert found.raw == str((run / "outs" / "raw_feature_bc_matrix.h5").resolve())
    assert found.vdj is None  # cellranger count has no contigs; the sheet names the vdj run folder
    assert find_cellranger_files(run / "outs").filtered == found.filtered


@pytest.mark.parametrize("layout", ["multi", "count"])
def test_patient_from_cellranger_folders_equals_the_files(written, layout):
    """The same cells, counts, clonotypes and ambient profile as from the files named one by one."""
    ref = read_patient(load_config(written["files"] / "config.yaml").samples)
    config = load_config(written[layout] / "config.yaml")
    for spec in config.samples:
        assert spec.cellranger["layout"] == layout
        assert Path(spec.path).exists()
        assert Path(spec.raw_path).is_file()
        assert Path(spec.vdj).is_file()
    got = read_patient(config.samples)
    assert list(got.obs_names) == list(ref.obs_names)
    assert (got.layers["counts"] != ref.layers["counts"]).nnz == 0
    assert got.obs["clone_id"].notna().sum() > 0
    pd.testing.assert_series_equal(got.obs["clone_id"].astype(str), ref.obs["clone_id"].astype(str))
    ambient = got.uns["cd7escape"]["ambient"]
    assert set(ambient) == {"P1_baseline", "P1_relapse"}
    for sample, profile in ambient.items():
        assert profile["n_droplets"] > 0
        assert profile["n_droplets"] == ref.uns["cd7escape"]["ambient"][sample]["n_droplets"]


def test_read_sample_resolves_a_folder_given_directly(written):
    """A SampleSpec built by hand (not through load_config) with a run folder as path."""
    a = read_sample(_spec(written["multi"] / "P1_baseline"))
    assert a.n_obs == 60
    assert a.obs["clone_id"].notna().any()
    assert a.uns["cd7escape"]["ambient"]["P1_baseline"]["n_droplets"] > 0
    assert (
        a.uns["cd7escape"]["ingest"]["samples"]
        .loc["P1_baseline", "path"]
        .endswith("sample_filtered_feature_bc_matrix.h5")
    )


def test_explicit_entries_win(written, tmp_path):
    run = written["multi"] / "P1_baseline"
    other_vdj = tmp_path / "mine.csv"
    shutil.copy(
        run
        / "outs"
        / "per_sample_outs"
        / "P1_baseline"
        / "vdj_t"
        / "filtered_contig_annotations.csv",
        other_vdj,
    )
    other_raw = written["files"] / "P1_baseline" / "raw_feature_bc_matrix.h5"
    pd.DataFrame(
        [
            {
                "patient": "P1",
                "sample": "P1_baseline",
                "timepoint": "baseline",
                "path": str(run),
                "vdj": str(other_vdj),
                "raw_path": str(other_raw),
            }
        ]
    ).to_csv(tmp_path / "samples.csv", index=False)
    (tmp_path / "config.yaml").write_text("samples: samples.csv\n")
    (spec,) = load_config(tmp_path / "config.yaml").samples
    assert spec.vdj == str(other_vdj)
    assert spec.raw_path == str(other_raw)
    assert spec.path.endswith("sample_filtered_feature_bc_matrix.h5")
    assert set(spec.cellranger) == {"folder", "layout", "sample_id", "path"}


def _two_sample_multi(tmp_path: Path, written: dict[str, Path]) -> Path:
    """One multi run folder holding both samples' per_sample_outs (a multiplexed library)."""
    run = tmp_path / "run"
    shutil.copytree(written["multi"] / "P1_baseline", run)
    src = written["multi"] / "P1_relapse" / "outs" / "per_sample_outs" / "P1_relapse"
    shutil.copytree(src, run / "outs" / "per_sample_outs" / "P1_relapse")
    return run


def test_multi_with_several_samples_picks_the_sample_id(tmp_path, written):
    run = _two_sample_multi(tmp_path, written)
    assert find_cellranger_files(run, sample="P1_relapse").sample_id == "P1_relapse"
    assert find_cellranger_files(run, sample="p1_RELAPSE").sample_id == "P1_relapse"


def test_multi_ambiguity_is_an_input_error_naming_the_choices(tmp_path, written):
    run = _two_sample_multi(tmp_path, written)
    with pytest.raises(InputError) as err:
        find_cellranger_files(run, sample="marrow")
    (problem,) = err.value.problems
    assert problem.file == str(run.resolve())
    assert "P1_baseline" in problem.message
    assert "P1_relapse" in problem.message
    assert "2 samples" in problem.message
    # through the CLI: exit 2, folder and choices named, no traceback
    pd.DataFrame(
        [
            {"patient": "P1", "sample": "marrow", "timepoint": "baseline", "path": "run"},
            {"patient": "P1", "sample": "P1_relapse", "timepoint": "relapse", "path": "run"},
        ]
    ).to_csv(tmp_path / "samples.csv", index=False)
    (tmp_path / "config.yaml").write_text("samples: samples.csv\n")
    proc = subprocess.run(
        [*CLI, "validate", str(tmp_path / "config.yaml")], capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "sample=marrow" in proc.stderr
    assert "P1_baseline, P1_relapse" in proc.stderr
    assert str(run.resolve()) in proc.stderr
    assert "sample=P1_relapse" not in proc.stderr  # its id picks its folder


def test_folder_without_cellranger_layout(tmp_path):
    empty = tmp_path / "nothing_here"
    (empty / "outs").mkdir(parents=True)
    with pytest.raises(InputError, match="neither a 10x matrix folder"):
        find_cellranger_files(empty)
    with pytest.raises(InputError, match="neither a 10x matrix folder") as err:
        read_sample(_spec(empty))
    assert err.value.problems[0].sample == "P1_baseline"
    pd.DataFrame(
        [{"patient": "P1", "sample": "S1", "timepoint": "baseline", "path": "nothing_here"}]
    ).to_csv(tmp_path / "samples.csv", index=False)
    (tmp_path / "config.yaml").write_text("samples: samples.csv\n")
    _, problems = validate_config(tmp_path / "config.yaml")
    assert any(p.field == "path" and "Cell Ranger" in p.message for p in problems)


def test_vdj_field_may_name_a_cellranger_vdj_folder(written):
    (spec, _) = load_config(written["count"] / "config.yaml").samples
    assert spec.vdj.endswith("P1_baseline_vdj/outs/filtered_contig_annotations.csv")
    assert (
        "vdj" not in spec.cellranger
    )  # given by the sheet (as a folder), not found in the count run


def test_sheet_may_not_set_cellranger(tmp_path, written):
    pd.DataFrame(
        [
            {
                "patient": "P1",
                "sample": "P1_baseline",
                "timepoint": "baseline",
                "path": str(written["multi"] / "P1_baseline"),
                "cellranger": "x",
            }
        ]
    ).to_csv(tmp_path / "samples.csv", index=False)
    (tmp_path / "config.yaml").write_text("samples: samples.csv\n")
    with pytest.raises(InputError, match="set by cd7escape"):
        load_config(tmp_path / "config.yaml")


def test_validate_says_which_files_it_took(written, tmp_path):
    config = written["multi"] / "config.yaml"
    proc = subprocess.run([*CLI, "validate", str(config)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("sample ")]
    assert len(lines) == 2
    base = next(line for line in lines if line.startswith("sample P1_baseline:"))
    assert "Cell Ranger multi folder" in base
    assert "count/sample_filtered_feature_bc_matrix.h5" in base
    assert "raw_path " in base
    assert "multi/count/raw_feature_bc_matrix.h5" in base
    assert "vdj " in base
    assert "vdj_t/filtered_contig_annotations.csv" in base
    # plain files: nothing to say
    proc = subprocess.run(
        [*CLI, "validate", str(written["files"] / "config.yaml")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "Cell Ranger" not in proc.stdout


def test_real_10x_files_in_a_multi_layout(shared_data, carpall_meta, tmp_path):
    """Real Cell Ranger files (linked, not copied) in a multi layout: matrix and contigs found and matched."""
    row = carpall_meta.iloc[0]
    gex = shared_data / "carpall" / "gex" / f"{row['GEX_Sample']}.h5"
    vdj = shared_data / "carpall" / "vdj" / f"{row['TCR_Sample']}.csv"
    one = tmp_path / "run" / "outs" / "per_sample_outs" / str(row["GEX_Sample"])
    (one / "count").mkdir(parents=True)
    (one / "vdj_t").mkdir()
    (one / "count" / "sample_filtered_feature_bc_matrix.h5").symlink_to(gex)
    (one / "vdj_t" / "filtered_contig_annotations.csv").symlink_to(vdj)
    spec = _spec(tmp_path / "run", sample=str(row["GEX_Sample"]))
    a = read_sample(spec, antigen="CD7")
    direct = read_sample(_spec(gex, sample=str(row["GEX_Sample"]), vdj=str(vdj)), antigen="CD7")
    assert a.n_obs == direct.n_obs > 0
    assert a.obs["clone_id"].notna().sum() == direct.obs["clone_id"].notna().sum() > 0
    assert not a.uns["cd7escape"]["ingest"]["warnings"]
    assert np.array_equal(a.obs_names, direct.obs_names)


def _multi_with_gd_and_b(tmp_path: Path, written: dict[str, Path]) -> tuple[Path, list[str]]:
    """The multi run with vdj_t_gd and vdj_b contigs beside vdj_t (barcodes of the sample's cells)."""
    from io_writers import vdj_row, write_vdj

    run = tmp_path / "run"
    shutil.copytree(written["multi"] / "P1_baseline", run)
    one = run / "outs" / "per_sample_outs" / "P1_baseline"
    cells = list(
        pd.read_csv(one / "vdj_t" / "filtered_contig_annotations.csv")["barcode"].unique()[:4]
    )
    (one / "vdj_t_gd").mkdir()
    write_vdj(
        one / "vdj_t_gd" / "filtered_contig_annotations.csv",
        [vdj_row(cells[0], "TRG", "CALWE", "TGTGCCCTGTGGGAG")],
    )
    (one / "vdj_b").mkdir()
    write_vdj(
        one / "vdj_b" / "filtered_contig_annotations.csv",
        [vdj_row(b, "IGH", "CARW", "TGTGCGAGATGG", n=1) for b in cells[1:3]]
        + [vdj_row(cells[1], "IGK", "CQQF", "TGTCAGCAGTTT", n=2)],
    )
    return run, cells


def test_multi_vdj_folders_follow_the_loci(tmp_path, written):
    from cd7escape._lineages import B_LOCI

    run, cells = _multi_with_gd_and_b(tmp_path, written)
    t = find_cellranger_files(run, sample="P1_baseline")
    assert t.vdj.endswith("vdj_t/filtered_contig_annotations.csv")
    assert [Path(p).parent.name for p in t.vdj_more] == ["vdj_t_gd"]
    b = find_cellranger_files(run, sample="P1_baseline", loci=B_LOCI)
    assert b.vdj.endswith("vdj_b/filtered_contig_annotations.csv")
    assert b.vdj_more == ()
    # T: vdj_t and vdj_t_gd merged per barcode
    a = read_sample(_spec(run))
    clone = a.obs.set_index("barcode")["clone_id"].astype(object)
    assert clone[cells[0]].startswith("TRB:")
    assert clone[cells[0]].endswith(";TRG:TGTGCCCTGTGGGAG")
    assert a.obs["trg_cdr3"].notna().sum() == 1
    # B: vdj_b only
    a = read_sample(_spec(run), loci=B_LOCI)
    assert "trb_cdr3" not in a.obs
    clone = a.obs.set_index("barcode")["clone_id"].astype(object)
    assert clone[cells[1]] == "IGH:TGTGCGAGATGG;IGK:TGTCAGCAGTTT"
    assert clone[cells[2]] == "IGH:TGTGCGAGATGG"
    assert clone.notna().sum() == 2
    assert set(a.obs["receptor_chains"].astype(str)) == {"IGH+IGK", "IGH", "none"}


def test_loci_pick_again_after_load_config(tmp_path, written):
    """load_config resolves the folder before it knows the lineage; read_patient picks vdj_b for B loci."""
    from cd7escape._lineages import B_LOCI

    _run, _cells = _multi_with_gd_and_b(tmp_path, written)
    pd.DataFrame(
        [{"patient": "P1", "sample": "P1_baseline", "timepoint": "baseline", "path": "run"}]
    ).to_csv(tmp_path / "samples.csv", index=False)
    (tmp_path / "config.yaml").write_text("antigen: CD7\nlineage: B\nsamples: samples.csv\n")
    config = load_config(tmp_path / "config.yaml")
    assert config.lineage_spec.loci == B_LOCI
    a = read_patient(config.samples, loci=config.lineage_spec.loci)
    assert a.obs["clone_id"].astype(object).dropna().str.startswith("IGH:").all()
    assert a.obs["clone_id"].notna().sum() == 2
    _, problems = validate_config(tmp_path / "config.yaml")
    assert not problems


def test_t_library_in_a_b_run_warns(tmp_path, written, caplog):
    """Only vdj_t in a B-ALL run: no clonotypes, a warning naming the loci found and expected."""
    from cd7escape._lineages import B_LOCI

    with caplog.at_level("WARNING", logger="cd7escape"):
        a = read_sample(_spec(written["multi"] / "P1_baseline"), loci=B_LOCI)
    assert a.obs["clone_id"].isna().all()
    (warning,) = a.uns["cd7escape"]["ingest"]["warnings"]
    assert "TRA, TRB only" in warning
    assert "IGH, IGK, IGL" in warning
    assert "IGH, IGK, IGL" in caplog.text
