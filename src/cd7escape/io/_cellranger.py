"""A Cell Ranger output folder → the filtered matrix, raw matrix and VDJ contigs of one sample.

Layouts understood (``<dir>`` is what the sample sheet's ``path`` names):

``cellranger count``
    ``<dir>/outs/filtered_feature_bc_matrix.h5`` (or the ``filtered_feature_bc_matrix/`` matrix folder),
    ``<dir>/outs/raw_feature_bc_matrix.h5`` (or ``raw_feature_bc_matrix/``); a
    ``filtered_contig_annotations.csv`` beside them when a VDJ run was put there.
``cellranger multi``
    ``<dir>/outs/per_sample_outs/<id>/count/sample_filtered_feature_bc_matrix.h5`` (or the matrix
    folder), the contigs of the run's receptor loci in ``<dir>/outs/per_sample_outs/<id>/vdj_t/``,
    ``vdj_t_gd/`` (T cells: both are read and merged per barcode when both exist) or ``vdj_b/`` (B and
    plasma cells) ``filtered_contig_annotations.csv``, and the library's raw matrix
    ``<dir>/outs/multi/count/raw_feature_bc_matrix.h5``.

``<dir>`` may also be ``outs/`` itself, ``per_sample_outs/`` or ``per_sample_outs/<id>``. With several
``per_sample_outs`` the one named like the sample (exactly, else ignoring case) is taken; none → an
error naming the folder and the choices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .._config import SampleSpec
from .._errors import InputError
from .._lineages import T_LOCI
from .._logging import logger
from ._sniff import MTX_NAMES

FILTERED = "filtered_feature_bc_matrix"
RAW = "raw_feature_bc_matrix"
MULTI_FILTERED = "sample_filtered_feature_bc_matrix"
CONTIGS = "filtered_contig_annotations.csv"
#: VDJ folders of a multi sample and the receptor loci of each, in the order they are looked at
VDJ_FOLDERS: dict[str, tuple[str, ...]] = {
    "vdj_t": ("TRA", "TRB"),
    "vdj_t_gd": ("TRG", "TRD"),
    "vdj_b": ("IGH", "IGK", "IGL"),
}
#: sample-sheet fields a Cell Ranger folder can fill
FILLED_FIELDS = ("path", "raw_path", "vdj")


@dataclass(frozen=True)
class CellRangerFiles:
    """What :func:`find_cellranger_files` found in a Cell Ranger output folder."""

    folder: str
    layout: Literal["count", "multi"]
    filtered: str
    raw: str | None = None
    vdj: str | None = None
    sample_id: str | None = None  # the per_sample_outs folder (multi)
    #: further contigs of the run's loci, merged with ``vdj`` per barcode (multi: ``vdj_t_gd`` beside ``vdj_t``)
    vdj_more: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line: layout, and the files taken."""
        parts = [f"filtered matrix {self.filtered}"]
        parts.append(f"raw matrix {self.raw}" if self.raw else "no raw matrix")
        parts.append(
            f"VDJ {' + '.join((self.vdj, *self.vdj_more))}" if self.vdj else "no VDJ contigs"
        )
        which = f" (sample {self.sample_id})" if self.sample_id else ""
        return f"Cell Ranger {self.layout} folder{which}: " + "; ".join(parts)


def is_cellranger_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder that is not itself a matrix folder (so it may be a Cell Ranger output)."""
    path = Path(path)
    if not path.is_dir():
        return False
    return not any((path / name).exists() for name in MTX_NAMES)


def find_cellranger_files(
    folder: str | Path, *, sample: str | None = None, loci: Sequence[str] = T_LOCI
) -> CellRangerFiles:
    """The filtered matrix, raw matrix and VDJ contigs of one sample in a Cell Ranger output folder.

    Parameters
    ----------
    folder
        A ``cellranger count`` or ``cellranger multi`` run folder, its ``outs/``, or (multi) its
        ``per_sample_outs/`` or ``per_sample_outs/<id>`` folder.
    sample
        The sample id of the sample sheet: picks the ``per_sample_outs/<id>`` of a multi run with
        several samples (exact name, else the only case-insensitive match).
    loci
        The run's receptor loci (``Config.lineage_spec.loci``): a multi sample's contigs are those of the
        ``vdj_t``/``vdj_t_gd`` folders for T-cell loci, ``vdj_b`` for immunoglobulin loci; several
        matching folders are all taken (``vdj``, then ``vdj_more``). Without a matching folder another
        one is taken (its reader warns that it holds other loci).

    Returns
    -------
    :class:`CellRangerFiles`: the layout and the absolute paths found (``raw`` / ``vdj`` ``None`` when
    absent).

    Raises
    ------
    InputError
        No Cell Ranger layout in the folder (naming what was looked for), or a multi run with several
        samples none of which is named like ``sample`` (naming the choices).
    """
    given = Path(folder).resolve()
    where = {"field": "path", "file": str(given), "sample": sample}
    if not given.is_dir():
        raise InputError.single("not a folder", **where)
    # a per_sample_outs/<id> folder
    if _multi_filtered(given) is not None:
        return _multi_sample(given, given, outs=_outs_above(given), loci=loci)
    outs = given / "outs" if (given / "outs").is_dir() else given
    per_sample = outs / "per_sample_outs" if given.name != "per_sample_outs" else given
    if per_sample.is_dir():
        outs = per_sample.parent
        ids = sorted(
            p.name for p in per_sample.iterdir() if p.is_dir() and _multi_filtered(p) is not None
        )
        if not ids:
            raise InputError.single(
                f"a cellranger multi folder whose per_sample_outs/ holds no "
                f"<id>/count/{MULTI_FILTERED}.h5",
                **where,
            )
        chosen = _choose(ids, sample)
        if chosen is None:
            raise InputError.single(
                f"a cellranger multi folder with {len(ids)} samples ({', '.join(ids)}) and none "
                f"named like sample '{sample}': point path at outs/per_sample_outs/<id> or rename "
                "the sample",
                **where,
            )
        return _multi_sample(given, per_sample / chosen, outs=outs, loci=loci)
    filtered = _matrix(outs, FILTERED)
    if filtered is None:
        raise InputError.single(
            "a folder that is neither a 10x matrix folder (matrix.mtx[.gz]) nor a Cell Ranger output "
            f"(looked for outs/{FILTERED}.h5, outs/{FILTERED}/ and "
            f"outs/per_sample_outs/<id>/count/{MULTI_FILTERED}.h5)",
            **where,
        )
    vdj = outs / CONTIGS
    return CellRangerFiles(
        folder=str(given),
        layout="count",
        filtered=str(filtered),
        raw=_str(_matrix(outs, RAW)),
        vdj=str(vdj) if vdj.is_file() else None,
    )


def resolve_cellranger(spec: SampleSpec, *, loci: Sequence[str] = T_LOCI) -> SampleSpec:
    """``spec`` with the files of its Cell Ranger folder filled in, or ``spec`` itself when ``path`` is not one.

    ``path`` becomes the filtered matrix; ``raw_path`` and ``vdj`` are filled only where the sample
    sheet left them empty (explicit entries win); a ``vdj`` naming a ``cellranger vdj`` folder becomes
    its ``outs/filtered_contig_annotations.csv``. ``spec.cellranger`` records the folder, layout and
    the fields filled from it (further contigs merged with ``vdj`` under their folder name, e.g.
    ``vdj_t_gd``). ``loci`` picks a multi sample's VDJ folder (:func:`find_cellranger_files`);
    :func:`vdj_files` picks again for the run's loci, so a spec resolved with the default stays usable.

    Raises
    ------
    InputError
        As :func:`find_cellranger_files`.
    """
    updates: dict = {}
    record: dict[str, str] = {}
    if spec.vdj and Path(spec.vdj).is_dir():
        vdj_dir = Path(spec.vdj)
        for candidate in (vdj_dir / "outs" / CONTIGS, vdj_dir / CONTIGS):
            if candidate.is_file():
                updates["vdj"] = str(candidate.resolve())
                break
        else:
            raise InputError.single(
                f"a folder without {CONTIGS} (nor outs/{CONTIGS})",
                field="vdj",
                file=str(vdj_dir),
                sample=spec.sample,
            )
    if is_cellranger_folder(spec.path):
        found = find_cellranger_files(spec.path, sample=spec.sample, loci=loci)
        record = {"folder": found.folder, "layout": found.layout}
        if found.sample_id:
            record["sample_id"] = found.sample_id
        updates["path"] = record["path"] = found.filtered
        if found.raw and not spec.raw_path:
            updates["raw_path"] = record["raw_path"] = found.raw
        if found.vdj and not spec.vdj:
            updates["vdj"] = record["vdj"] = found.vdj
            for more in found.vdj_more:
                record[Path(more).parent.name] = more
        updates["cellranger"] = record
        logger.info("sample %s: %s", spec.sample, found.describe())
    return spec.model_copy(update=updates) if updates else spec


def vdj_files(spec: SampleSpec, *, loci: Sequence[str] = T_LOCI) -> list[str]:
    """The contig files of a sample for the run's ``loci``: what the sheet names, or its Cell Ranger folder's.

    ``vdj`` filled from a ``cellranger multi`` folder is picked again for ``loci`` (load_config resolves
    folders before it knows the lineage): a B-cell run takes ``vdj_b``, a T-cell run ``vdj_t`` and
    ``vdj_t_gd``. Empty when the sample has no contigs.
    """
    record = spec.cellranger or {}
    if record.get("layout") == "multi" and "vdj" in record:
        try:
            found = find_cellranger_files(record["folder"], sample=spec.sample, loci=loci)
        except InputError:
            found = None
        if found is not None and found.vdj:
            return [found.vdj, *found.vdj_more]
    return [spec.vdj] if spec.vdj else []


def describe_sources(spec: SampleSpec) -> str | None:
    """``'sample S: Cell Ranger multi folder F → path …, raw_path …, vdj …'`` when files were found in one."""
    record = spec.cellranger
    if not record:
        return None
    folder = Path(record["folder"])

    def short(file: str) -> str:  # inside the folder: relative to it
        return str(Path(file).relative_to(folder)) if Path(file).is_relative_to(folder) else file

    taken = ", ".join(f"{k} {short(record[k])}" for k in FILLED_FIELDS if k in record)
    more = [short(record[k]) for k in VDJ_FOLDERS if k in record]
    if more:
        taken += " + " + " + ".join(more)
    which = f" (per_sample_outs/{record['sample_id']})" if record.get("sample_id") else ""
    return f"sample {spec.sample}: Cell Ranger {record['layout']} folder {record['folder']}{which} → {taken}"


def _choose(ids: list[str], sample: str | None) -> str | None:
    if len(ids) == 1:
        return ids[0]
    if sample is None:
        return None
    if sample in ids:
        return sample
    folded = [i for i in ids if i.lower() == sample.lower()]
    return folded[0] if len(folded) == 1 else None


def _matrix(directory: Path, stem: str) -> Path | None:
    """``<stem>.h5``, else the ``<stem>/`` matrix folder, in ``directory``."""
    h5 = directory / f"{stem}.h5"
    if h5.is_file():
        return h5
    mtx = directory / stem
    if mtx.is_dir() and any((mtx / n).exists() for n in MTX_NAMES):
        return mtx
    return None


def _multi_filtered(directory: Path) -> Path | None:
    return _matrix(directory / "count", MULTI_FILTERED)


def _outs_above(sample_dir: Path) -> Path | None:
    """``outs/`` of a ``outs/per_sample_outs/<id>`` folder."""
    parent = sample_dir.parent
    return parent.parent if parent.name == "per_sample_outs" else None


def _multi_sample(
    given: Path, sample_dir: Path, *, outs: Path | None, loci: Sequence[str] = T_LOCI
) -> CellRangerFiles:
    filtered = _multi_filtered(sample_dir)
    assert filtered is not None
    raw = _matrix(outs / "multi" / "count", RAW) if outs is not None else None
    present = [name for name in VDJ_FOLDERS if (sample_dir / name / CONTIGS).is_file()]
    matching = [name for name in present if set(VDJ_FOLDERS[name]) & set(loci)]
    if present and not matching:
        logger.debug(  # the reader warns if these contigs are read for a run of other loci
            "    %s: VDJ folders %s hold none of the loci %s",
            sample_dir,
            ", ".join(present),
            ", ".join(loci),
        )
    taken = matching or present[:1]
    contigs = [str(sample_dir / name / CONTIGS) for name in taken]
    return CellRangerFiles(
        folder=str(given),
        layout="multi",
        filtered=str(filtered),
        raw=_str(raw),
        vdj=contigs[0] if contigs else None,
        sample_id=sample_dir.name,
        vdj_more=tuple(contigs[1:]),
    )


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
