"""The command line: a thin shell over the library. Exit codes: 0 success, 1 internal error, 2 bad input."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Literal, get_args

import typer

from ._errors import InputError
from ._logging import logger

app = typer.Typer(
    name="cd7escape",
    help="Why did a T-ALL/T-LBL patient relapse after CD7 CAR-T? Antigen-escape calls from scRNA-seq.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

EXIT_INPUT = 2
EXIT_INTERNAL = 1


def _console_logging(verbose: bool, *, quiet: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    # on a terminal the progress bar tells the story; in batch jobs the log lines do
    chatty = verbose or (not quiet and not sys.stderr.isatty())
    handler.setLevel(logging.INFO if chatty else logging.WARNING)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _fail_input(err: InputError, what: str) -> None:
    typer.echo(f"cd7escape: {what} — {len(err.problems)} problem(s):\n{err}", err=True)
    raise typer.Exit(EXIT_INPUT)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML configuration (see configs/example.yaml).")],
    outdir: Annotated[
        Path | None, typer.Option(help="Output folder; overrides the config's outdir.")
    ] = None,
    patient: Annotated[
        str | None, typer.Option(help="Run this patient only (cluster jobs call this).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Recompute every stage instead of resuming.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every step to the terminal.")
    ] = False,
) -> None:
    """Run every patient (or one) through QC → embedding → malignant cells → antigen → clones → call → report."""
    from ._allocator import tune_allocator

    tune_allocator()  # before NumPy is imported (see cd7escape._allocator)
    _console_logging(verbose)
    from .pipeline import run_config

    try:
        outcomes = run_config(config, outdir=outdir, patient=patient, force=force)
    except InputError as err:
        _fail_input(err, f"cannot run {config}")
    failed = [o for o in outcomes if o.status != "done"]
    for o in outcomes:
        typer.echo(
            f"{o.patient}: {o.status} in {o.seconds:.0f} s" + (f" ({o.error})" if o.error else ""),
            err=True,
        )
    if failed:
        raise typer.Exit(EXIT_INTERNAL)


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="YAML configuration to check.")],
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every step to the terminal.")
    ] = False,
) -> None:
    """Check a configuration and its input files; list every problem at once (warnings too)."""
    _console_logging(verbose, quiet=True)
    from .io import validate_config

    cfg, problems = validate_config(config)
    if problems:
        _fail_input(InputError(problems), f"{config} is not valid")
    n_samples = len(cfg.samples)
    n_patients = len({s.patient for s in cfg.samples})
    from .io._cellranger import describe_sources

    for spec in cfg.samples:  # the files taken from Cell Ranger folders
        line = describe_sources(spec)
        if line:
            typer.echo(line)
    typer.echo(
        f"{config}: valid ({n_patients} patient(s), {n_samples} sample(s), antigen {cfg.antigen})"
    )


@app.command()
def summarize(
    config: Annotated[Path, typer.Argument(help="YAML configuration of the cohort.")],
    outdir: Annotated[
        Path | None, typer.Option(help="Output folder; overrides the config's outdir.")
    ] = None,
) -> None:
    """Rebuild cohort_summary.tsv and cohort.html from the patients' results (after per-patient jobs)."""
    from .pipeline import summarize_config

    try:
        path = summarize_config(config, outdir=outdir)
    except InputError as err:
        _fail_input(err, f"cannot summarize {config}")
    typer.echo(f"wrote {path}")


#: the simulator's choices, listed here so that ``--help`` needs no import of the simulator
#: (tests/test_cli_simulate.py checks them against cd7escape.datasets)
SimMechanism = Literal[
    "preexisting_negative_clone",
    "antigen_downregulation",
    "antigen_retained",
    "mixed",
    "lineage_switch",
]
SimProduct = Literal["knockout", "pebl"]
SimLineage = Literal["T", "B", "plasma"]
SimFormat = Literal["h5", "h5ad", "mtx"]
SimLayout = Literal["files", "count", "multi"]


def _sim_option(help: str, *names: str, **kw):
    return typer.Option(*names, help=help, rich_help_panel="Simulation", **kw)


def _write_run_config(
    outdir: Path,
    *,
    antigen: str,
    protein: bool,
    car_feature: str,
    seed: int,
    patient: str,
    lineage: str = "T",
) -> Path:
    """``<outdir>/config.yaml`` that ``cd7escape run`` takes as it is (paths relative to it)."""
    lines = [
        f"# Simulated patient {patient}: cd7escape run {outdir / 'config.yaml'}",
        "# (truth apart from the inputs: truth/)",
        f"antigen: {antigen}",
        f"lineage: {lineage}",
        f"antigen_protein: {antigen}_TotalSeqC" if protein else "antigen_protein: null",
        f"car_feature: {car_feature}",
        "outdir: results",
        "samples: samples.csv",
        f"seed: {seed}",
    ]
    path = outdir / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@app.command()
def simulate(
    outdir: Annotated[
        Path,
        typer.Argument(
            help="Folder to write into: the samples' files, samples.csv, config.yaml (ready for "
            "`cd7escape run`) and the truth (truth/)."
        ),
    ],
    mechanism: Annotated[
        SimMechanism,
        _sim_option(
            "Relapse mechanism to simulate: " + ", ".join(get_args(SimMechanism)) + ".",
            metavar="MECHANISM",
        ),
    ] = "antigen_downregulation",
    seed: Annotated[int, _sim_option("Random seed (also the seed of the written config).")] = 0,
    n_cells: Annotated[int, _sim_option("Cells per sample (≥ 50).")] = 2000,
    depth: Annotated[float, _sim_option("Median UMIs per cell.")] = 3000,
    negative_fraction: Annotated[
        float,
        _sim_option(
            "Share of baseline blasts in the antigen-negative subclone (pre-existing, mixed, "
            "decoy); in [0, 0.9)."
        ),
    ] = 0.1,
    fold: Annotated[
        float, _sim_option("Downregulation fold at relapse (≥ 1; inf: complete loss).")
    ] = float("inf"),
    antigen: Annotated[
        str,
        _sim_option(
            "Gene symbol or common name of the CAR target: CD7 (T-ALL), CD19 or CD22 (B-ALL), BCMA "
            "(myeloma; gene TNFRSF17)."
        ),
    ] = "CD7",
    lineage: Annotated[
        SimLineage | None,
        _sim_option(
            "Tumour lineage: T (T-ALL), B (B-ALL) or plasma (myeloma); default: the antigen's.",
            metavar="LINEAGE",
        ),
    ] = None,
    blast_fraction_baseline: Annotated[
        float, _sim_option("Share of blasts among the baseline sample's cells, in (0, 1).")
    ] = 0.6,
    blast_fraction_relapse: Annotated[
        float, _sim_option("Share of blasts among the relapse sample's cells, in (0, 1).")
    ] = 0.5,
    tcr: Annotated[
        bool, _sim_option("T-ALL blasts carry a productive monoclonal TCR.", "--tcr/--no-tcr")
    ] = True,
    ig: Annotated[
        bool,
        _sim_option(
            "B-ALL/myeloma cells carry a productive monoclonal IG (IGH + IGK or IGL).",
            "--ig/--no-ig",
        ),
    ] = True,
    n_subclones: Annotated[
        int, _sim_option("Baseline subclones S0 … S{n-1}; the antigen-negative one is the last.")
    ] = 3,
    minor_subclone_without_cnv: Annotated[
        bool,
        _sim_option(
            "Subclone S1 has no CNV of its own (trunk CNVs only); --s1-own-cnv gives it one.",
            "--minor-subclone-without-cnv/--s1-own-cnv",
        ),
    ] = True,
    decoy_negative_minor: Annotated[
        bool,
        _sim_option(
            "With antigen_downregulation: an antigen-negative minor subclone exists at baseline and "
            "does not expand (a decoy).",
            "--decoy-negative-minor",
        ),
    ] = False,
    relapse_shift: Annotated[
        float, _sim_option("Therapy-induced transcriptional shift of relapse blasts (log2 s.d.).")
    ] = 0.0,
    car_product: Annotated[
        SimProduct,
        _sim_option(
            "CAR-T product: knockout (no antigen RNA in CAR-T cells) or pebl (RNA kept, protein "
            "blocked; visible with --protein).",
        ),
    ] = "knockout",
    car_feature: Annotated[
        str | None,
        _sim_option(
            "Feature name of the CAR transgene (written into the config); default CAR_<antigen>."
        ),
    ] = None,
    car_transduced: Annotated[
        float,
        _sim_option(
            "Share of relapse blasts carrying the CAR transgene (transduced in the product; leukemic "
            "TCR and CNVs intact), in [0, 1).",
        ),
    ] = 0.0,
    protein: Annotated[
        bool,
        _sim_option(
            "CITE-seq: Antibody Capture counts (<marker>_TotalSeqC) in the matrices; the config "
            "names <antigen>_TotalSeqC as antigen_protein.",
            "--protein",
        ),
    ] = False,
    protein_loss: Annotated[
        bool,
        _sim_option(
            "Relapse blasts lose the antigen's surface protein, keeping its RNA (needs --protein).",
            "--protein-loss",
        ),
    ] = False,
    empty_droplets: Annotated[
        bool,
        _sim_option(
            "Also simulate empty droplets, written as each sample's raw matrix (ambient estimate).",
            "--empty-droplets",
        ),
    ] = False,
    relapse_sites: Annotated[
        list[str],
        _sim_option(
            "Tissue of a relapse sample; repeat (--relapse-sites BM --relapse-sites mediastinum) for several sites (the relapse cells are dealt to "
            "one sample per site, <patient>_relapse_<site>).",
            "--relapse-sites",
        ),
    ] = ("BM",),
    ambient: Annotated[
        float, _sim_option("Share of each cell's UMIs from the ambient pool, in [0, 0.5).")
    ] = 0.02,
    patient: Annotated[
        str, _sim_option("Patient id; samples are <patient>_baseline and <patient>_relapse.")
    ] = "P1",
    fmt: Annotated[
        SimFormat,
        typer.Option(
            "--format",
            help="Count files: 10x HDF5, h5ad or 10x matrix folders.",
            rich_help_panel="Files",
        ),
    ] = "h5",
    layout: Annotated[
        SimLayout,
        typer.Option(
            help="files: one folder of files per sample; count / multi: Cell Ranger output folders "
            "(the sheet names the run folders).",
            rich_help_panel="Files",
        ),
    ] = "files",
) -> None:
    """Simulate a patient with known truth; write its files, a sample sheet and a config that `cd7escape run` takes as it is."""
    from .datasets import simulate_patient, write_simulated

    if outdir.exists() and not outdir.is_dir():
        _fail_input(
            InputError.single("exists and is not a folder", field="OUTDIR", file=str(outdir)),
            "cannot simulate",
        )
    if layout != "files" and fmt == "h5ad":  # before the simulation: Cell Ranger writes no h5ad
        _fail_input(
            InputError.single(
                f"--layout {layout} writes Cell Ranger folders: use --format h5 or mtx",
                field="--layout",
            ),
            "cannot simulate",
        )
    options = {
        "seed": seed,
        "n_cells": n_cells,
        "depth": depth,
        "negative_fraction": negative_fraction,
        "fold": fold,
        "antigen": antigen,
        "lineage": lineage,
        "blast_fraction_baseline": blast_fraction_baseline,
        "blast_fraction_relapse": blast_fraction_relapse,
        "tcr": tcr,
        "ig": ig,
        "n_subclones": n_subclones,
        "minor_subclone_without_cnv": minor_subclone_without_cnv,
        "decoy_negative_minor": decoy_negative_minor,
        "relapse_shift": relapse_shift,
        "car_product": car_product,
        "car_feature": car_feature,
        "protein": protein,
        "empty_droplets": empty_droplets,
        "ambient": ambient,
        "patient": patient,
    }
    if protein_loss:
        options["protein_loss"] = True
    if car_transduced:
        options["car_transduced"] = car_transduced
    if tuple(relapse_sites) != ("BM",):
        options["relapse_sites"] = tuple(relapse_sites)
    try:
        adata = simulate_patient(mechanism, **options)
        sheet = write_simulated(adata, outdir, fmt=fmt, layout=layout)
    except InputError as err:
        for p in err.problems:  # name the command-line option, not the Python argument
            if p.field in ("simulate_patient", "fmt", "layout", None):
                p.field = "cd7escape simulate"
        _fail_input(err, "cannot simulate")
    truth = adata.uns["truth"]
    config = _write_run_config(
        outdir,
        antigen=truth["antigen"],
        protein=protein,
        car_feature=truth["params"]["car_feature"],
        seed=seed,
        patient=patient,
        lineage=truth["lineage"],
    )
    typer.echo(
        f"wrote {adata.n_obs} cells of patient {patient} ({mechanism}, lineage {truth['lineage']}) "
        f"to {outdir}: sample sheet "
        f"{sheet.name}, config {config.name}; run it with: cd7escape run {config}"
    )


def main() -> None:
    """Entry point: turn every escaping error into the right exit code, never a traceback for bad input."""
    try:
        app()
    except InputError as err:
        typer.echo(f"cd7escape: bad input:\n{err}", err=True)
        sys.exit(EXIT_INPUT)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
