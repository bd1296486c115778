"""Check a config and every data file it names, reporting all problems at once."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pandas as pd

from .._config import Config, SampleSpec
from .._errors import InputError, Problem
from .._logging import logger, timed
from ._features import match_features


def validate_config(path: str | Path) -> tuple[Config | None, list[Problem]]:
    """Check a config, its sample sheet and the data files, without loading the matrices.

    Structure (as :func:`load_config`: unknown keys, types, timepoint words, sample/patient ids that are
    not usable as folder names, duplicate sample ids) and data: file missing or unreadable, unknown
    format, non-integer / normalized / negative / NaN counts (integers checked on a sample of values,
    NaN and negatives on all of them, streamed), antigen gene absent, duplicate barcodes, empty samples,
    patients without a baseline sample (one without a relapse sample is a baseline screen), VDJ files (10x
    contigs or AIRR TSV) malformed or matching no cell (a warning when they hold no contig of the
    lineage's receptor loci),
    malignant_labels / donor_assignment / raw_path files missing or unusable, ``car_feature`` or
    ``antigen_protein`` found in no sample.

    Parameters
    ----------
    path
        The YAML config.

    Returns
    -------
    ``(config, problems)``: the loaded config (absolute paths) or ``None`` when it could not be built,
    and every problem found, each naming sample, field, file and reason. The config is valid when
    ``problems`` is empty.
    """
    from ._load_config import _load

    path = Path(path)
    with timed(f"validating {path.name}"):
        config, specs, problems = _load(path)
        antigen, car_feature, antigen_protein = _options(config, path)
        loci = _loci(config, path, antigen)
        problems += _patient_problems(specs, file=str(path))
        car_found, protein_seen, protein_found = False, False, False
        for spec in specs:
            sample_problems, header = _check_sample(spec, antigen=antigen, loci=loci)
            problems += sample_problems
            if header is not None:
                several = _car_hits(header.genes, car_feature) if car_feature else []
                if several:
                    car_found = True
                    if len(several) > 1:
                        problems.append(
                            Problem(
                                f"car_feature '{car_feature}' matches several features "
                                f"({', '.join(several[:5])}); name one",
                                field="car_feature",
                                sample=spec.sample,
                                file=spec.path,
                            )
                        )
                if header.proteins:
                    protein_seen = True
                    protein_found |= antigen_protein in header.proteins
        checked = any(p.field == "path" for p in problems)
        problems += _gene_positions_problems(config, path)
        problems += _integration_problems(config, path)
        if car_feature and not car_found and not _is_regex(car_feature):
            problems.append(
                Problem(
                    f"car_feature '{car_feature}' is neither a feature of the samples nor a valid "
                    "regular expression",
                    field="car_feature",
                    file=str(path),
                )
            )
        elif car_feature and specs and not car_found and not checked:
            problems.append(
                Problem(
                    f"car_feature '{car_feature}' matches no gene in any sample",
                    field="car_feature",
                    file=str(path),
                )
            )
        if antigen_protein and specs and not checked:
            if not protein_seen:
                problems.append(
                    Problem(
                        "antigen_protein given but no sample has Antibody Capture features",
                        field="antigen_protein",
                        file=str(path),
                    )
                )
            elif not protein_found:
                problems.append(
                    Problem(
                        f"antigen_protein '{antigen_protein}' is not among the ADT features",
                        field="antigen_protein",
                        file=str(path),
                    )
                )
    for p in problems:
        logger.info("problem: %s", p)
    return (config if not problems else None), problems


def _options(config: Config | None, path: Path) -> tuple[str, str | None, str | None]:
    if config is not None:
        return config.antigen, config.car_feature, config.antigen_protein
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:
        raw = None
    raw = raw if isinstance(raw, dict) else {}

    def text(key: str, default: str | None) -> str | None:
        value = raw.get(key, default)
        return value if isinstance(value, str) else default

    return text("antigen", "CD7") or "CD7", text("car_feature", None), text("antigen_protein", None)


def _loci(config: Config | None, path: Path, antigen: str) -> tuple[str, ...]:
    """The run's receptor loci (its lineage's), also when the config has problems (T by default)."""
    from .._lineages import T_LOCI, resolve_lineage

    if config is not None:
        return config.lineage_spec.loci
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        lineage = raw.get("lineage") if isinstance(raw, dict) else None
        return resolve_lineage(lineage if isinstance(lineage, str) else None, antigen).loci
    except Exception:  # the config's own problems are reported by _load
        return T_LOCI


def _patient_problems(specs: list[SampleSpec], *, file: str) -> list[Problem]:
    by_patient: dict[str, set[str]] = defaultdict(set)
    for spec in specs:
        by_patient[spec.patient].add(spec.timepoint)
    problems = []
    for patient, timepoints in by_patient.items():
        # without a relapse sample the patient is a baseline screen (docs/method.md#baseline-screen)
        if "baseline" not in timepoints:
            problems.append(
                Problem(
                    f"patient '{patient}' has no baseline sample (timepoints: {', '.join(sorted(timepoints))})",
                    field="timepoint",
                    file=file,
                )
            )
    return problems


def _is_regex(text: str) -> bool:
    try:
        re.compile(text)
    except re.error:
        return False
    return True


def _car_hits(genes: pd.Index, car_feature: str) -> list[str]:
    """The features ``tl.call_malignant`` would take for ``car_feature``."""
    if car_feature in genes or not _is_regex(car_feature):
        return [car_feature] if car_feature in genes else []
    return match_features(genes, car_feature)


def _gene_positions_problems(config: Config | None, path: Path) -> list[Problem]:
    """``malignant.gene_positions``: relative to the config's folder, must exist (checked here, not mid-run)."""
    value = config.malignant.gene_positions if config is not None else None
    if not value:
        return []
    file = Path(value) if Path(value).is_absolute() else path.resolve().parent / value
    if not file.is_file():
        return [
            Problem(
                "gene position file not found", field="malignant.gene_positions", file=str(file)
            )
        ]
    return []


def _integration_problems(config: Config | None, path: Path) -> list[Problem]:
    """``integration: scvi`` needs the scvi extra: looked up with find_spec (torch is not imported)."""
    import importlib.util

    integration = config.integration if config is not None else None
    if config is None:
        import yaml

        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except Exception:
            raw = None
        integration = raw.get("integration") if isinstance(raw, dict) else None
    if integration != "scvi":
        return []
    missing = [name for name in ("scvi", "torch") if importlib.util.find_spec(name) is None]
    if not missing:
        return []
    return [
        Problem(
            f"integration 'scvi' needs the scvi extra ({', '.join(missing)} not installed): "
            "pip install 'cd7escape[scvi]' (or set integration: pca)",
            field="integration",
            file=str(path),
        )
    ]


def _check_sample(spec: SampleSpec, *, antigen: str, loci: tuple[str, ...]):
    try:
        return _check_sample_files(spec, antigen=antigen, loci=loci)
    except Exception as err:  # a strange file must become a Problem, not a traceback
        logger.debug("validation of sample %s failed", spec.sample, exc_info=True)
        message = f"could not be checked ({type(err).__name__}: {err})"
        return [Problem(message, sample=spec.sample, field="path", file=spec.path)], None


def _check_sample_files(spec: SampleSpec, *, antigen: str, loci: tuple[str, ...]):
    from ._barcodes import match_barcodes, normalize_barcodes
    from ._cellranger import resolve_cellranger, vdj_files
    from ._inspect import inspect_counts
    from ._sample import read_donor_table, read_label_barcodes

    sample = spec.sample
    try:
        # load_config did it already unless the folder is not one
        spec = resolve_cellranger(spec, loci=loci)
    except InputError as err:
        return _own(err, sample), None
    header = inspect_counts(spec.path, sample=sample)
    problems = list(header.problems)
    fatal = header.kind in ("missing", "unknown") or (header.barcodes.empty and bool(problems))
    # one form of the barcodes for the matrix and every file that lists them (as read_sample does)
    barcodes = normalize_barcodes(header.barcodes, sample)
    if not fatal:
        if len(barcodes) == 0:
            problems.append(
                Problem("no cells (empty sample)", sample=sample, field="path", file=spec.path)
            )
        if barcodes.has_duplicates:
            dup = barcodes[barcodes.duplicated()].unique()
            problems.append(
                Problem(
                    f"{len(dup)} duplicate barcodes (e.g. {', '.join(dup[:3])})",
                    sample=sample,
                    field="path",
                    file=spec.path,
                )
            )
        if len(header.genes) and antigen not in header.genes:
            from ._gene_names import antigen_missing_message

            problems.append(
                Problem(
                    antigen_missing_message(antigen, header.genes),
                    sample=sample,
                    field="antigen",
                    file=spec.path,
                )
            )

    def no_match(listed: pd.Index) -> bool:
        return not fatal and len(barcodes) > 0 and match_barcodes(barcodes, listed)[1] == 0

    files = vdj_files(spec, loci=loci)
    if files:
        missing = [f for f in files if not Path(f).is_file()]
        for file in missing:
            problems.append(Problem("VDJ file not found", sample=sample, field="vdj", file=file))
        if not missing:
            from ._vdj import read_receptors

            try:  # a 10x contig CSV or an AIRR TSV, recognised from the header
                vdj = read_receptors(files, loci=loci)
                if vdj.attrs.get("warning"):  # contigs of other loci only: expression still usable
                    logger.warning(
                        "warning: %s",
                        Problem(
                            vdj.attrs["warning"], sample=sample, field="vdj", file=", ".join(files)
                        ),
                    )
                if vdj.empty:  # a failed VDJ library: the sample still has its expression data
                    logger.warning(
                        "warning: %s",
                        Problem(
                            "VDJ file is empty: no clonotypes for this sample (a warning; the "
                            "expression data are used)",
                            sample=sample,
                            field="vdj",
                            file=", ".join(files),
                        ),
                    )
                elif no_match(normalize_barcodes(vdj.index, sample)):
                    problems.append(
                        Problem(
                            f"none of the {len(vdj)} VDJ barcodes matches a cell of the sample",
                            sample=sample,
                            field="vdj",
                            file=", ".join(files),
                        )
                    )
            except InputError as err:
                problems += _own(err, sample)
    if spec.malignant_labels:
        labels = spec.malignant_labels
        if Path(labels).is_file():
            try:
                listed = normalize_barcodes(read_label_barcodes(labels, sample=sample), sample)
                if len(listed) == 0:
                    problems.append(
                        Problem(
                            "malignant_labels lists no barcode",
                            sample=sample,
                            field="malignant_labels",
                            file=labels,
                        )
                    )
                elif no_match(listed):
                    problems.append(
                        Problem(
                            f"none of the {len(listed)} labelled barcodes is a cell of the sample",
                            sample=sample,
                            field="malignant_labels",
                            file=labels,
                        )
                    )
            except InputError as err:
                problems += _own(err, sample)
        elif header.kind == "h5ad" and Path(labels).name in header.obs_columns:
            pass
        elif header.kind == "h5ad":
            problems.append(
                Problem(
                    f"not a file nor an obs column of the h5ad (columns: {', '.join(header.obs_columns) or 'none'})",
                    sample=sample,
                    field="malignant_labels",
                    file=labels,
                )
            )
        else:
            problems.append(
                Problem(
                    "malignant_labels file not found",
                    sample=sample,
                    field="malignant_labels",
                    file=labels,
                )
            )
    if spec.donor_assignment:
        if not Path(spec.donor_assignment).is_file():
            problems.append(
                Problem(
                    "donor_assignment file not found",
                    sample=sample,
                    field="donor_assignment",
                    file=spec.donor_assignment,
                )
            )
        else:
            try:
                donors = read_donor_table(spec.donor_assignment, sample=sample)
                if no_match(normalize_barcodes(donors.index, sample)):
                    problems.append(
                        Problem(
                            "no barcode of the donor assignment is a cell of the sample",
                            sample=sample,
                            field="donor_assignment",
                            file=spec.donor_assignment,
                        )
                    )
            except InputError as err:
                problems += _own(err, sample)
    if spec.raw_path:
        from ._sniff import sniff

        kind = sniff(spec.raw_path)
        if kind == "missing":
            problems.append(
                Problem("raw_path not found", sample=sample, field="raw_path", file=spec.raw_path)
            )
        elif kind not in ("10x_h5", "10x_h5_v2", "10x_mtx"):
            problems.append(
                Problem(
                    "raw_path is not a 10x HDF5 file or matrix folder",
                    sample=sample,
                    field="raw_path",
                    file=spec.raw_path,
                )
            )
    return problems, (None if fatal else header)


def _own(err: InputError, sample: str) -> list[Problem]:
    for p in err.problems:
        p.sample = p.sample or sample
    return err.problems
