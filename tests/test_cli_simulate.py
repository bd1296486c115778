"""`cd7escape simulate`: every simulator option on the command line, its choices in --help, and the
config it writes running as it is."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import typing

import pandas as pd
import pytest

from cd7escape import cli
from cd7escape.datasets import MECHANISMS, simulate_patient, write_simulated

CLI = [sys.executable, "-m", "cd7escape.cli"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env={**_env(), "COLUMNS": "200"}
    )


def _env() -> dict:
    import os

    return dict(os.environ)


def _command_params() -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(cli.simulate).parameters)


def test_every_simulator_option_is_an_option_with_the_same_default():
    params = _command_params()
    for name, p in inspect.signature(simulate_patient).parameters.items():
        assert name in params, f"simulate_patient({name}=...) has no `cd7escape simulate` option"
        assert params[name].default == p.default, name
    written = inspect.signature(write_simulated).parameters
    assert params["fmt"].default == written["fmt"].default
    assert params["layout"].default == written["layout"].default


def test_choices_match_the_library():
    assert typing.get_args(cli.SimMechanism) == MECHANISMS
    hints = typing.get_type_hints(simulate_patient, localns={"AnnData": object})
    assert typing.get_args(cli.SimProduct) == typing.get_args(hints["car_product"])
    lineage = [a for a in typing.get_args(hints["lineage"]) if a is not type(None)]
    assert typing.get_args(cli.SimLineage) == typing.get_args(lineage[0])
    w = typing.get_type_hints(write_simulated, localns={"AnnData": object})
    assert typing.get_args(cli.SimFormat) == typing.get_args(w["fmt"])
    assert typing.get_args(cli.SimLayout) == typing.get_args(w["layout"])


def test_help_lists_choices_and_every_option():
    proc = _cli("simulate", "--help")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for mechanism in MECHANISMS:
        assert mechanism in text
    for word in ("knockout", "pebl", "h5ad", "mtx", "multi", "config.yaml"):
        assert word in text
    for name in inspect.signature(simulate_patient).parameters:
        if name == "mechanism":
            continue
        assert f"--{name.replace('_', '-')}"[:24] in text, name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mechanism", "nonsense"], "nonsense"),
        (["--car-product", "lentiviral"], "lentiviral"),
        (["--format", "loom"], "loom"),
        (["--n-cells", "10"], "n_cells must be at least 50"),
        (["--negative-fraction", "0.95"], "negative_fraction"),
        (["--fold", "0.5"], "fold must be"),
        (["--antigen", "NOTAGENE"], "NOTAGENE"),
        (["--lineage", "myeloid"], "myeloid"),
        (["--antigen", "BCMA", "--lineage", "T"], "TNFRSF17"),
        (["--n-cells", "abc"], "--n-cells"),
        (["--format", "h5ad", "--layout", "multi"], "--format h5 or mtx"),
    ],
)
def test_bad_values_exit_2_with_a_message(tmp_path, args, message):
    proc = _cli("simulate", str(tmp_path / "sim"), *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "sim" / "config.yaml").exists()


def test_outdir_that_is_a_file_exits_2(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = _cli("simulate", str(tmp_path / "file"), "--n-cells", "50")
    assert proc.returncode == 2
    assert "exists and is not a folder" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_options_reach_the_simulator(tmp_path):
    """Protein, empty droplets, CAR product, decoy, TCR, subclones and ids end up in the files and truth."""
    out = tmp_path / "sim"
    proc = _cli(
        "simulate",
        str(out),
        "--mechanism",
        "antigen_downregulation",
        "--n-cells",
        "60",
        "--seed",
        "5",
        "--depth",
        "1500",
        "--negative-fraction",
        "0.2",
        "--decoy-negative-minor",
        "--no-tcr",
        "--n-subclones",
        "2",
        "--s1-own-cnv",
        "--relapse-shift",
        "0.3",
        "--car-product",
        "pebl",
        "--car-feature",
        "CAR_X",
        "--protein",
        "--empty-droplets",
        "--ambient",
        "0.05",
        "--blast-fraction-baseline",
        "0.7",
        "--blast-fraction-relapse",
        "0.4",
        "--fold",
        "4",
        "--patient",
        "PX",
        "--format",
        "mtx",
        "--layout",
        "count",
    )
    assert proc.returncode == 0, proc.stderr
    truth = json.loads((out / "truth" / "PX.json").read_text())
    p = truth["params"]
    expected = {
        "n_cells": 60,
        "seed": 5,
        "depth": 1500.0,
        "negative_fraction": 0.2,
        "decoy_negative_minor": True,
        "tcr": False,
        "n_subclones": 2,
        "minor_subclone_without_cnv": False,
        "relapse_shift": 0.3,
        "car_product": "pebl",
        "car_feature": "CAR_X",
        "protein": True,
        "empty_droplets": True,
        "ambient": 0.05,
        "blast_fraction_baseline": 0.7,
        "blast_fraction_relapse": 0.4,
        "fold": 4.0,
        "patient": "PX",
    }
    assert {k: p[k] for k in expected} == expected
    sheet = pd.read_csv(out / "samples.csv")
    assert list(sheet["path"]) == ["PX_baseline", "PX_relapse"]
    assert (out / "PX_baseline" / "outs" / "filtered_feature_bc_matrix" / "matrix.mtx.gz").is_file()
    assert (out / "PX_baseline" / "outs" / "raw_feature_bc_matrix.h5").is_file()
    config = (out / "config.yaml").read_text()
    assert "antigen_protein: CD7_TotalSeqC" in config
    assert "car_feature: CAR_X" in config
    assert "seed: 5" in config


def test_protein_loss_reaches_the_simulator(tmp_path):
    if "protein_loss" not in inspect.signature(simulate_patient).parameters:
        pytest.skip("this simulator has no protein_loss")
    out = tmp_path / "sim"
    proc = _cli("simulate", str(out), "--n-cells", "60", "--protein", "--protein-loss")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "truth" / "P1.json").read_text())["params"]["protein_loss"] is True
    proc = _cli("simulate", str(tmp_path / "bad"), "--n-cells", "60", "--protein-loss")
    assert proc.returncode == 2
    assert "protein_loss needs protein" in proc.stderr


@pytest.mark.parametrize(
    ("antigen", "gene", "lineage", "mechanism"),
    [
        ("CD19", "CD19", "B", "lineage_switch"),
        ("BCMA", "TNFRSF17", "plasma", "preexisting_negative_clone"),
    ],
)
def test_b_all_and_myeloma_patients_validate(tmp_path, antigen, gene, lineage, mechanism):
    """A B-ALL or myeloma patient: config with the antigen's gene and lineage, IG and TR contigs in one
    file per sample, accepted by `cd7escape validate` (the B-lineage pipeline is not run here)."""
    out = tmp_path / "sim"
    proc = _cli(
        "simulate",
        str(out),
        "--antigen",
        antigen,
        "--mechanism",
        mechanism,
        "--negative-fraction",
        "0.2",
        "--n-cells",
        "80",
        "--seed",
        "4",
        "--protein",
    )
    assert proc.returncode == 0, proc.stderr
    config = (out / "config.yaml").read_text()
    assert f"antigen: {gene}" in config
    assert f"lineage: {lineage}" in config
    assert f"car_feature: CAR_{antigen}" in config
    assert f"antigen_protein: {gene}_TotalSeqC" in config
    truth = json.loads((out / "truth" / "P1.json").read_text())
    assert truth["lineage"] == lineage
    assert truth["mechanism"] == mechanism
    sheet = pd.read_csv(out / "samples.csv")
    contigs = pd.concat(pd.read_csv(out / v) for v in sheet["vdj"])
    assert {"IGH", "TRB"} <= set(contigs["chain"])
    assert contigs.loc[contigs["chain"] == "IGH", "v_gene"].str.startswith("IGHV").all()
    proc = _cli("validate", str(out / "config.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert f"antigen {gene}" in proc.stdout
    # an explicit --lineage is what the truth and the config get
    proc = _cli(
        "simulate", str(tmp_path / "t"), "--antigen", "CD19", "--lineage", "T", "--n-cells", "60"
    )
    assert proc.returncode == 0, proc.stderr
    assert "lineage: T" in (tmp_path / "t" / "config.yaml").read_text()


@pytest.mark.slow
def test_written_config_runs_as_it_is(tmp_path):
    """simulate → validate → run with the written config untouched (Cell Ranger multi folders)."""
    out = tmp_path / "sim"
    proc = _cli(
        "simulate",
        str(out),
        "--mechanism",
        "preexisting_negative_clone",
        "--n-cells",
        "100",
        "--depth",
        "2000",
        "--negative-fraction",
        "0.2",
        "--seed",
        "3",
        "--empty-droplets",
        "--layout",
        "multi",
    )
    assert proc.returncode == 0, proc.stderr
    config = out / "config.yaml"
    assert f"cd7escape run {config}" in proc.stdout
    proc = _cli("validate", str(config))
    assert proc.returncode == 0, proc.stderr
    assert "Cell Ranger multi folder" in proc.stdout
    proc = _cli("run", str(config))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "results" / "P1" / "result.json").read_text())
    assert result["patient"] == "P1"
    assert result["mechanism"] in {*MECHANISMS, "indeterminate"}
    assert (out / "results" / "cohort_summary.tsv").is_file()
    prov = json.loads((out / "results" / "provenance.json").read_text())
    samples = prov["config"]["samples"]
    assert all(s["cellranger"]["layout"] == "multi" for s in samples)
    assert all(s["raw_path"].endswith("multi/count/raw_feature_bc_matrix.h5") for s in samples)
