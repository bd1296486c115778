"""Run a configuration: every patient through every stage, with resumable caches and provenance."""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._allocator import release_free_memory
from .._config import Config, SampleSpec
from .._errors import InputError
from .._files import atomic_write_text
from .._logging import logger
from .._version import __version__
from ._cache import (
    attach_annotations,
    discard,
    read_annotations,
    save_annotations,
    stage_key,
    verify,
)
from ._lock import acquire_all
from ._stages import STAGES, Stage, ingest_params
from ._umap_job import prepare_umap, start_umap


@dataclass
class PatientOutcome:
    patient: str
    status: str  # 'done' | 'failed'
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def run_config(
    config_path: str | Path,
    *,
    outdir: str | Path | None = None,
    patient: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[PatientOutcome]:
    """Run the pipeline of a configuration file.

    Parameters
    ----------
    config_path
        YAML configuration (``docs/inputs_outputs.md#config``).
    outdir
        Overrides the config's ``outdir``.
    patient
        Run this patient only (what a cluster job calls); the cohort summary is rebuilt from every
        patient's result found in ``outdir``.
    force
        Recompute every stage instead of resuming from cached ones.
    progress
        Show a progress display on the terminal.

    Returns
    -------
    One outcome per patient run. Raises :class:`~cd7escape._errors.InputError` for bad input before
    anything is written.
    """
    from ..io import validate_config

    config, problems = validate_config(config_path)
    if problems:
        raise InputError(problems)
    base = Path(config_path).resolve().parent
    out = Path(outdir).resolve() if outdir else (base / config.outdir).resolve()
    samples: list[SampleSpec] = list(config.samples)
    patients = list(dict.fromkeys(s.patient for s in samples))
    if patient is not None:
        if patient not in patients:
            raise InputError.single(
                f"patient {patient!r} is not in the sample sheet (patients: {', '.join(patients)})",
                field="--patient",
            )
        patients = [patient]
    if config.malignant.gene_positions and not Path(config.malignant.gene_positions).is_absolute():
        config.malignant.gene_positions = str(base / config.malignant.gene_positions)

    if out.exists() and not out.is_dir():
        raise InputError.single("outdir exists and is not a folder", field="outdir", file=str(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as err:
        why = getattr(err, "strerror", None) or str(err)
        raise InputError.single(
            f"cannot create the output folder ({why})", field="outdir", file=str(out)
        ) from None
    # one run per patient folder at a time: a second run on the same outdir exits 2 naming the first
    locks = acquire_all(out, patients)
    handler = _attach_log(out / "run.log")
    started = time.time()
    outcomes: list[PatientOutcome] = []
    try:
        logger.info(
            "cd7escape %s: %d patient(s) from %s into %s",
            __version__,
            len(patients),
            config_path,
            out,
        )
        with _Progress(enabled=progress, total=len(patients) * (len(STAGES) + 2)) as bar:
            for pid in patients:
                specs = [s for s in samples if s.patient == pid]
                outcomes.append(_run_patient(pid, specs, config, out / pid, force=force, bar=bar))
        from ..report import write_cohort

        write_cohort(out, list(dict.fromkeys(s.patient for s in samples)))
        _write_provenance(out, config, config_path, outcomes, time.time() - started)
    finally:
        logger.removeHandler(handler)
        handler.close()
        for lock in locks:
            lock.release()
    return outcomes


def summarize_config(config_path: str | Path, *, outdir: str | Path | None = None) -> Path:
    """Rebuild the cohort summary from the per-patient results in ``outdir`` (after cluster jobs)."""
    from ..io import load_config
    from ..report import write_cohort

    config = load_config(config_path)
    base = Path(config_path).resolve().parent
    out = Path(outdir).resolve() if outdir else (base / config.outdir).resolve()
    write_cohort(out, list(dict.fromkeys(s.patient for s in config.samples)))
    return out / "cohort_summary.tsv"


@dataclass(frozen=True)
class _Step:
    """One step of a patient's run and its cache file; ``stage`` is None for ingest (reading the inputs)."""

    name: str
    path: Path
    stage: Stage | None = None


def _plan(specs: list[SampleSpec], config: Config, pdir: Path) -> list[_Step]:
    """Ingest and every stage with its cache file ``<nn>-<name>-<key>.h5ad``: the key of each stage
    covers its parameters and those of every step before it, chained from the inputs' identity."""

    def cache(name: str, key: str) -> Path:
        return pdir / "stages" / f"{len(steps):02d}-{name}-{key}.h5ad"

    steps: list[_Step] = []
    key = stage_key("", "ingest", ingest_params(specs, config))
    steps.append(_Step("ingest", cache("ingest", key)))
    for stage in STAGES:
        key = stage_key(key, stage.name, stage.params(config))
        steps.append(_Step(stage.name, cache(stage.name, key), stage))
    return steps


def _trusted_resume_point(steps: list[_Step], pid: str):
    """:func:`_resume_point` over caches that pass :func:`~._cache.verify` and can be read.

    A damaged cache (size or checksum not as written, no checksum record, unreadable) is deleted with a
    warning and the one before it is tried: the stages after the last intact cache are recomputed.
    Returns the steps done, the steps pending and the annotations of the last step done (None for
    ingest, whose cache holds nothing the inputs do not).
    """
    while True:
        done, pending = _resume_point(steps)
        if not done:
            return done, pending, None
        last = done[-1]
        why = verify(last.path)
        shell = None
        if why is None and last.stage is not None:
            try:
                shell = read_annotations(last.path)
            except Exception as err:  # any reader failure means the same: do not trust it
                why = f"it cannot be read ({type(err).__name__}: {err})"
        if why is None:
            return done, pending, shell
        logger.warning(
            "[%s] the cache of stage '%s' (%s) is damaged: %s; recomputing from there",
            pid,
            last.name,
            last.path,
            why,
        )
        discard(last.path)


def _resume_point(steps: list[_Step]) -> tuple[list[_Step], list[_Step]]:
    """The steps up to the last one whose cache exists (none without the inputs' cache), and the rest."""
    if not steps[0].path.exists():
        return [], steps
    last = max(n for n, step in enumerate(steps) if step.path.exists())
    return steps[: last + 1], steps[last + 1 :]


def _run_patient(
    pid: str, specs: list[SampleSpec], config: Config, pdir: Path, *, force: bool, bar
) -> PatientOutcome:
    """All stages for one patient; an internal error is logged and reported, not raised.

    What a stage needs besides ``run(adata, config)`` is declared on its :class:`Stage` record
    (hooks, whether it needs both timepoints, whether it may end the patient as indeterminate, whether
    the matrices are final after it); the runner reads those fields.
    """
    t0 = time.time()
    timings: dict[str, float] = {}
    umap = cells_file = None
    try:
        steps = _plan(specs, config, pdir)
        screen = not any(s.timepoint == "relapse" for s in specs)
        if screen:
            logger.info(
                "[%s] baseline screen: no relapse sample; the report gives the antigen-negative malignant "
                "subclones found at baseline, or the detection limit",
                pid,
            )
        _remove_temporary(pdir)
        if force:  # a --force run killed midway must not resume onto the caches it replaces
            for old in (pdir / "stages").glob("*.h5ad"):
                discard(old)
        from ..io import read_patient

        def read_inputs():
            # one copy of the counts (layers['counts']) until embed sets X: QC's filtering then copies
            # half the data, and a 200k-cell patient holds one matrix less
            return read_patient(
                specs,
                antigen=config.antigen,
                car_feature=config.car_feature,
                counts_only=True,
                loci=config.lineage_spec.loci,
            )

        done, pending, shell = ([], steps, None) if force else _trusted_resume_point(steps, pid)
        adata, last_saved = None, None
        if done:
            resumed = done[-1]
            last_saved = resumed.path
            # the ingest cache holds nothing the inputs do not: they are read again
            adata = read_inputs() if shell is None else attach_annotations(read_inputs(), shell)
            del shell
            logger.info("[%s] resuming after stage '%s' (%s)", pid, resumed.name, resumed.path.name)
            bar.advance(len(done), f"{pid}: resumed")
            umap = start_umap(adata, config)
            if any(step.stage is not None and step.stage.matrices_final for step in done):
                cells_file = _start_cells_file(adata, pdir, config)
        for n, step in enumerate(pending):
            stage = step.stage
            lost = None
            if stage is not None and stage.needs_both_timepoints:
                lost = _lost_timepoint(adata, screen=screen)
            if not lost:
                bar.describe(f"{pid}: {step.name}")
                t = time.time()
                if stage is None:
                    adata = read_inputs()
                else:
                    hooks = {}
                    if "graph_ready" in stage.hooks:
                        umap = prepare_umap(adata, config)  # ready when the graph is
                        hooks["graph_ready"] = umap.submit if umap is not None else None
                    lost = _run_stage(stage, adata, config, hooks, pid)
                    if not lost and "graph_ready" in stage.hooks and umap is None:
                        umap = start_umap(adata, config)  # in this process (small data, one CPU)
            if lost:
                logger.warning("[%s] indeterminate: %s", pid, lost)
                _record_indeterminate(adata, config, lost)
                bar.advance(len(pending) - n)
                break
            timings[step.name] = round(time.time() - t, 2)
            if umap is not None and umap.done():
                umap.attach(adata)  # later caches hold it, so a resumed run need not redo it
                umap = None
            _remove_stale(pdir / "stages", pending[n:])
            save_annotations(adata, step.path)
            last_saved = step.path
            release_free_memory()  # what this stage's temporaries left need not add to the next one's peak
            if stage is not None and stage.matrices_final:
                # after its cache is saved: h5py serialises the calls of a process, and the matrices'
                # write would hold this save back; the next save comes a stage later
                cells_file = _start_cells_file(adata, pdir, config)
            logger.info("[%s] stage '%s' finished (%.1f s)", pid, step.name, timings[step.name])
            bar.advance(1)
        bar.describe(f"{pid}: report")
        t = time.time()
        from ..report import write_patient

        late = umap if umap is not None and umap.submitted else None
        # the report draws its other figures while the worker finishes the layout
        write_patient(
            adata, pdir, config=config, cells_file=cells_file,
            umap=None if late is None else lambda: late.attach(adata),
        )  # fmt: skip
        cells_file = umap = None
        if late is not None and last_saved is not None:
            save_annotations(adata, last_saved)  # with the layout: a resumed run reuses it
        timings["report"] = round(time.time() - t, 2)
        bar.advance(1)
        return PatientOutcome(pid, "done", round(time.time() - t0, 2), timings)
    except InputError:
        raise
    except Exception as exc:  # one patient's bug must not lose the cohort
        logger.error("[%s] failed with an internal error: %s\n%s", pid, exc, traceback.format_exc())
        return PatientOutcome(
            pid, "failed", round(time.time() - t0, 2), timings, error=f"{type(exc).__name__}: {exc}"
        )
    finally:
        if umap is not None:
            umap.close()
        if cells_file is not None:  # the run failed before its report
            cells_file.abandon()


def _run_stage(stage: Stage, adata, config: Config, hooks: dict[str, Any], pid: str) -> str | None:
    """Run ``stage``; why the patient ends as indeterminate when the data cannot support it, or None."""
    try:
        stage.run(adata, config, **hooks)
    except InputError as err:  # the config was validated: these data cannot support the step
        why = "; ".join(p.message for p in err.problems)
        if stage.may_end_indeterminate:
            return f"the {stage.name} step cannot run on these data: {why}"
        logger.warning("[%s] no %s: %s", pid, stage.description, why)  # later stages say why
    return None


def _start_cells_file(adata, pdir: Path, config: Config):
    """Once the matrices are final, a thread writes those of cells.h5ad while the later stages run."""
    from ..report._cells_file import CellsFile

    return CellsFile(adata, pdir / "cells.h5ad", compression=config.h5ad_compression)


def _remove_temporary(pdir: Path) -> None:
    """Temporary files a killed run left behind (atomic writes that never reached their rename)."""
    for folder in (pdir, pdir / "stages", pdir / "figures"):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


def _lost_timepoint(adata, *, screen: bool = False) -> str | None:
    """Why the patient cannot be classified after QC: no cell of its baseline or relapse passed (of its
    baseline only, for a baseline screen)."""
    tps = adata.obs["timepoint"].astype(str) if "timepoint" in adata.obs else None
    needed = ("baseline",) if screen else ("baseline", "relapse")
    missing = [tp for tp in needed if tps is None or not (tps == tp).any()]
    if not missing:
        return None
    failed = []
    table = adata.uns.get("cd7escape", {}).get("qc", {}).get("samples")
    if table is not None and hasattr(table, "to_dict"):
        for row in table.to_dict("records"):
            if str(row.get("status", "")) != "passed":
                failed.append(f"{row.get('sample')}: {row.get('reason') or row.get('status')}")
    return (
        f"no {' and no '.join(missing)} cells passed QC, so the relapse cannot be compared with "
        "the baseline"
        + (f" (failed QC: {'; '.join(failed)})" if failed else "")
        + f"; a usable {' and a usable '.join(missing)} sample is needed"
    )


def _record_indeterminate(adata, config: Config, reason: str) -> None:
    """The call when QC left a timepoint without cells: 'indeterminate', with the reason."""
    from .._uns import record

    record(
        adata,
        "classify",
        config.classify.model_dump(),
        results={
            "mechanism": "indeterminate",
            "confidence": 1.0,
            "reason": reason[0].upper() + reason[1:] + ".",
            "evidence": [reason],
            "numbers": {"rule": "timepoint_failed_qc"},
        },
    )


def _remove_stale(folder: Path, steps: list[_Step]) -> None:
    """Drop cached outputs of these steps computed with other inputs or parameters."""
    if not folder.exists():
        return
    for step in steps:
        for old in folder.glob(f"*-{step.name}-*.h5ad"):
            if old != step.path:
                discard(old)
        for record in folder.glob(f"*-{step.name}-*.h5ad.sha256"):
            if not record.with_suffix("").exists():  # its cache was lost
                record.unlink(missing_ok=True)


def _attach_log(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


def _write_provenance(
    out: Path, config: Config, config_path, outcomes: list[PatientOutcome], seconds: float
) -> None:
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str] = {"cd7escape": __version__, "python": sys.version.split()[0]}
    for pkg in (
        "numpy",
        "scipy",
        "pandas",
        "anndata",
        "scanpy",
        "faiss-cpu",
        "leidenalg",
        "igraph",
        "scvi-tools",
        "torch",
    ):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "not installed"
    # Each patient keeps its own record, written by its own job; the cohort file is rebuilt from all of
    # them, so patient jobs running in parallel on a cluster cannot drop each other's entries.
    for o in outcomes:
        entry = {"status": o.status, "seconds": o.seconds, "stages": o.timings, "error": o.error}
        if (out / o.patient).is_dir():
            atomic_write_text(
                out / o.patient / "provenance.json", json.dumps(entry, indent=2) + "\n"
            )
    patients = {}
    for record_file in sorted(out.glob("*/provenance.json")):
        try:
            patients[record_file.parent.name] = json.loads(record_file.read_text())
        except (json.JSONDecodeError, OSError):
            continue
    prov: dict[str, Any] = {
        "config_file": str(Path(config_path).resolve()),
        "config": json.loads(config.model_dump_json()),
        "seed": config.seed,
        "versions": versions,
        "platform": platform.platform(),
        "command": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() - seconds)),
        "seconds": round(seconds, 2),
        "patients": dict(sorted(patients.items())),
    }
    atomic_write_text(out / "provenance.json", json.dumps(prov, indent=2) + "\n")


class _Progress:
    """A rich progress bar on a terminal, quiet otherwise (logs carry the same information)."""

    def __init__(self, *, enabled: bool, total: int) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.total = total
        self._progress = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=False
            )
            self._progress.start()
            self._task = self._progress.add_task("starting", total=self.total)
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def describe(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text)

    def advance(self, n: int, text: str | None = None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=n, **({"description": text} if text else {}))
