"""YAML config + sample sheet → a validated :class:`~cd7escape._config.Config` with absolute paths."""

from __future__ import annotations

import csv
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from .._config import Config, SampleSpec
from .._errors import InputError, Problem
from .._lineages import T_LOCI
from ._text_files import open_text

#: sample fields holding paths (resolved relative to the sheet, or to the config for inline lists)
PATH_FIELDS = ("path", "vdj", "malignant_labels", "donor_assignment", "raw_path")


def load_config(path: str | Path) -> Config:
    """Load a cd7escape YAML config (``docs/inputs_outputs.md#config``) and its sample sheet.

    Only the structure is checked here (keys, types, timepoint words, ids usable as folder names); the
    data files are checked by :func:`validate_config`.

    Parameters
    ----------
    path
        The YAML file. Paths in it are relative to its folder; paths in a sample sheet (CSV or TSV,
        sniffed) relative to the sheet's folder.

    Returns
    -------
    The :class:`~cd7escape._config.Config`, with ``samples`` a list of
    :class:`~cd7escape._config.SampleSpec` whose paths, and ``outdir``, are absolute. A ``path`` naming a
    Cell Ranger output folder is replaced by the files found in it (filtered matrix; ``raw_path`` and
    ``vdj`` where the sheet leaves them empty; see :func:`~cd7escape.io.find_cellranger_files`), recorded
    in the sample's ``cellranger``; a folder that is not one stays, for :func:`validate_config` to report.

    Raises
    ------
    InputError
        Every structural problem found, each naming the field (``samples[2].timepoint``), file and sample.
    """
    config, _, problems = _load(Path(path))
    if problems or config is None:
        raise InputError(problems)
    return config


def _load(path: Path) -> tuple[Config | None, list[SampleSpec], list[Problem]]:
    """(config or None when anything is wrong, the samples that parsed, problems)."""
    import yaml

    file = str(path)
    if not path.is_file():
        return None, [], [Problem("config file not found", file=file)]
    try:
        raw = yaml.load(open_text(path), Loader=_unique_key_loader())  # a yaml.SafeLoader
    except InputError as err:
        return None, [], err.problems
    except yaml.YAMLError as err:
        return None, [], [Problem(f"not valid YAML: {err}", file=file)]
    if not isinstance(raw, dict):
        return (
            None,
            [],
            [Problem("the config must be a YAML mapping of keys (antigen, samples, …)", file=file)],
        )
    base = path.resolve().parent
    problems: list[Problem] = []
    samples_raw = raw.pop("samples", None)
    try:
        config = Config(**raw, samples="-")
    except Exception as err:  # pydantic.ValidationError
        config = None
        problems += _pydantic_problems(err, file=file)
    rows: list[dict[str, Any]] = []
    if samples_raw is None:
        problems.append(
            Problem(
                "missing: a sample sheet path or an inline list of samples",
                field="samples",
                file=file,
            )
        )
    elif isinstance(samples_raw, str) and "\x00" in samples_raw:
        problems.append(Problem("path contains a NUL character", field="samples", file=file))
    elif isinstance(samples_raw, str):
        sheet = _resolve(samples_raw, base)
        rows, sheet_problems = _read_sheet(Path(sheet))
        problems += sheet_problems
        row_base, row_file, prefix = Path(sheet).parent, sheet, "sheet row"
    elif isinstance(samples_raw, list):
        rows, row_base, row_file, prefix = samples_raw, base, file, "samples"
    else:
        problems.append(
            Problem("must be a sample sheet path or a list of samples", field="samples", file=file)
        )
    specs: list[SampleSpec] = []
    # the receptor loci of the run's lineage choose a Cell Ranger folder's VDJ library (vdj_t or vdj_b)
    loci = config.lineage_spec.loci if config is not None else T_LOCI
    sheet_file = row_file if rows else file
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            problems.append(
                Problem("each sample must be a mapping of keys", field=f"samples[{i}]", file=file)
            )
            continue
        row = {str(k).strip(): _clean(v) for k, v in row.items()}
        row = {k: v for k, v in row.items() if v is not None}
        sample = row.get("sample")
        label = f"{prefix} {i + 2}" if prefix == "sheet row" else f"samples[{i}]"
        if "cellranger" in row:
            problems.append(
                Problem(
                    "'cellranger' is set by cd7escape (the files found in a Cell Ranger folder); "
                    "give the folder as path",
                    field=f"{label}.cellranger",
                    file=row_file,
                    sample=sample,
                )
            )
            row.pop("cellranger")
        if isinstance(row.get("timepoint"), str):
            row["timepoint"] = row["timepoint"].strip().lower()
        try:
            spec = SampleSpec(**row)
        except Exception as err:
            problems += _pydantic_problems(err, file=row_file, prefix=label, sample=sample)
            continue
        for key in ("patient", "sample"):
            message = _bad_id(getattr(spec, key))
            if message:
                problems.append(
                    Problem(
                        f"{key} id {getattr(spec, key)!r} {message}",
                        field=f"{label}.{key}",
                        file=row_file,
                        sample=spec.sample,
                    )
                )
        updates = {}
        nul = [key for key in PATH_FIELDS if "\x00" in (getattr(spec, key) or "")]
        for key in nul:
            problems.append(
                Problem(
                    "path contains a NUL character",
                    field=f"{label}.{key}",
                    file=row_file,
                    sample=spec.sample,
                )
            )
        if nul:
            continue
        for key in PATH_FIELDS:
            value = getattr(spec, key)
            if value is None:
                continue
            if key == "malignant_labels" and _is_column_name(value, spec.path, row_base):
                continue
            updates[key] = _resolve(value, row_base)
        updates["path"] = _resolve(spec.path, row_base)
        specs.append(_cellranger_files(spec.model_copy(update=updates), loci))
    seen: dict[str, int] = {}
    for spec in specs:
        seen[spec.sample] = seen.get(spec.sample, 0) + 1
    for sample, n in seen.items():
        if n > 1:
            problems.append(
                Problem(
                    f"sample id used {n} times; sample ids must be unique",
                    field="sample",
                    sample=sample,
                    file=sheet_file,
                )
            )
    if config is not None and "\x00" in config.outdir:
        problems.append(Problem("path contains a NUL character", field="outdir", file=file))
        config = None
    if config is not None:
        outdir = _resolve(config.outdir, base)
        if Path(outdir).exists() and not Path(outdir).is_dir():
            problems.append(
                Problem("outdir exists and is not a folder", field="outdir", file=outdir)
            )
        config = config.model_copy(update={"samples": specs, "outdir": outdir})
    if problems:
        return None, specs, problems
    return config, specs, problems


def _cellranger_files(spec: SampleSpec, loci: tuple[str, ...] = T_LOCI) -> SampleSpec:
    """A Cell Ranger folder's files in place of the folder; a folder that is not one stays as given
    (validate_config and read_sample report it, with the other problems of the sample)."""
    from ._cellranger import resolve_cellranger

    try:
        return resolve_cellranger(spec, loci=loci)
    except InputError:
        return spec


@lru_cache(maxsize=1)
def _unique_key_loader():
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        """yaml.SafeLoader that refuses a key given twice in one mapping (the last would win silently)."""

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable keys: safe_load's own error says so
                    break
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _resolve(value: str, base: Path) -> str:
    p = Path(os.path.expandvars(os.path.expanduser(str(value))))
    return str(p if p.is_absolute() else (base / p).resolve())


def _is_column_name(value: str, main_path: str, base: Path) -> bool:
    """A malignant_labels value that names an obs column of an h5ad rather than a file."""
    if "/" in value or os.sep in value:
        return False
    if (base / value).exists():
        return False
    return str(main_path).endswith(".h5ad") and "." not in value


def _bad_id(value: str) -> str | None:
    if not value:
        return "is empty"
    if "/" in value or "\\" in value or value in (".", "..") or ".." in value:
        return "contains a path separator or '..' (ids become folder names)"
    if value.startswith("."):
        return "starts with '.' (ids become folder names)"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains a control character (ids become folder names)"
    if len(value.encode("utf-8")) > 200:
        return "is longer than 200 bytes (ids become folder names)"
    return None


def _read_sheet(sheet: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    file = str(sheet)
    if not sheet.is_file():
        return [], [Problem("sample sheet not found", field="samples", file=file)]
    try:
        text = open_text(sheet, field="samples").getvalue()
    except InputError as err:
        return [], err.problems
    lines = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        return [], [Problem("sample sheet is empty", field="samples", file=file)]
    delimiter = "\t" if "\t" in lines[0] else ","
    if delimiter == "," and "," not in lines[0]:
        try:
            delimiter = csv.Sniffer().sniff(lines[0], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.DictReader(lines, delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]
    problems = []
    missing = [c for c in ("patient", "sample", "timepoint", "path") if c not in header]
    if missing:
        problems.append(
            Problem(
                f"sample sheet lacks column(s) {', '.join(missing)} (found: {', '.join(header)})",
                field="samples",
                file=file,
            )
        )
        return [], problems
    repeated = sorted({h for h in header if h and header.count(h) > 1})
    if repeated:  # csv.DictReader would keep the last one silently
        problems.append(
            Problem(
                f"sample sheet repeats column(s) {', '.join(repeated)}: which one is meant is unclear",
                field="samples",
                file=file,
            )
        )
        return [], problems
    rows = []
    for row in reader:
        extra = row.pop(None, None)
        if extra:
            problems.append(
                Problem(f"row has more fields than the header: {extra}", field="samples", file=file)
            )
        rows.append(row)
    if not rows:
        problems.append(
            Problem("sample sheet has a header but no samples", field="samples", file=file)
        )
    return rows, problems


def _pydantic_problems(
    err: Exception, *, file: str, prefix: str | None = None, sample: str | None = None
) -> list[Problem]:
    errors = getattr(err, "errors", None)
    if errors is None:
        return [Problem(str(err), file=file, sample=sample, field=prefix)]
    problems = []
    for e in errors():
        loc = ".".join(str(x) for x in e["loc"])
        field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or None)
        if e["type"] == "extra_forbidden":
            message = f"unknown key '{e['loc'][-1]}'"
        elif e["type"] == "missing":
            message = "required but missing"
        else:
            message = f"{e['msg']} (got {e.get('input')!r})"
        problems.append(Problem(message, field=field, file=file, sample=sample))
    return problems
