"""The command line: a thin shell over the library. Exit codes: 0 success, 1 internal error, 2 bad input."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

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


@app.command()
def simulate(
    outdir: Annotated[
        Path, typer.Argument(help="Folder to write samples, sample sheet and config into.")
    ],
    mechanism: Annotated[
        str, typer.Option(help="Relapse mechanism to simulate.")
    ] = "antigen_downregulation",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    n_cells: Annotated[int, typer.Option(help="Cells per sample.")] = 2000,
    depth: Annotated[int, typer.Option(help="Median UMIs per cell.")] = 3000,
    negative_fraction: Annotated[
        float, typer.Option(help="Share of baseline blasts in the antigen-negative subclone.")
    ] = 0.1,
    fold: Annotated[float, typer.Option(help="Downregulation fold (inf: complete loss).")] = float(
        "inf"
    ),
    tcr: Annotated[bool, typer.Option(help="Blasts carry a productive monoclonal TCR.")] = True,
    patient: Annotated[str, typer.Option(help="Patient id.")] = "P1",
    fmt: Annotated[str, typer.Option("--format", help="h5 (10x HDF5), h5ad or mtx.")] = "h5",
) -> None:
    """Simulate a patient with known truth and write it as 10x/h5ad files with a sample sheet."""
    from .datasets import simulate_patient, write_simulated

    try:
        adata = simulate_patient(
            mechanism,
            seed=seed,
            n_cells=n_cells,
            depth=depth,
            negative_fraction=negative_fraction,
            fold=fold,
            tcr=tcr,
            patient=patient,
        )
    except ValueError as err:
        typer.echo(f"cd7escape simulate: {err}", err=True)
        raise typer.Exit(EXIT_INPUT) from None
    sheet = write_simulated(adata, outdir, fmt=fmt)
    typer.echo(
        f"wrote {adata.n_obs} cells of patient {patient} ({mechanism}); sample sheet {sheet}"
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
