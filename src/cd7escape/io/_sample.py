"""One sample of the sample sheet → AnnData with metadata, clonotypes, labels and ambient profile."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._config import SampleSpec
from .._errors import InputError, Problem
from .._lineages import T_LOCI
from .._logging import logger
from .._uns import NS
from ._barcodes import match_barcodes, normalize_barcodes
from ._cellranger import resolve_cellranger, vdj_files
from ._features import match_features
from ._sniff import sniff
from ._text_files import as_bool, open_text

if TYPE_CHECKING:
    from anndata import AnnData

_BARCODE_COLUMNS = ("barcode", "barcodes", "cell", "cell_id", "cellid", "BARCODE")
_DONOR_COLUMNS = ("donor", "donor_id", "assignment", "best_singlet", "sample")


def read_sample(
    spec: SampleSpec,
    *,
    antigen: str | None = "CD7",
    car_feature: str | None = None,
    counts_layer: bool = True,
    loci: Sequence[str] = T_LOCI,
) -> AnnData:
    """Read one sample of the sample sheet with everything the sheet attaches to it.

    Parameters
    ----------
    spec
        A :class:`cd7escape._config.SampleSpec` whose paths are absolute (as :func:`load_config` makes
        them). ``path`` may be a 10x HDF5, a 10x matrix folder or an h5ad (sniffed from the content), or
        a Cell Ranger ``count``/``multi`` output folder, whose filtered matrix, raw matrix and VDJ
        contigs are taken where the sheet does not name them (:func:`find_cellranger_files`).
    antigen
        Gene symbol of the CAR target; its absence from the genes is an error (``None`` skips the check).
    car_feature
        Feature name or regex of the CAR transgene; the matching genes are listed in
        ``uns['cd7escape']['ingest']['car_features']`` (a warning when nothing matches).
    counts_layer
        Also keep a copy of the counts in ``layers['counts']``. :func:`read_patient` reads with False
        and moves ``X`` there itself, which saves a copy of every sample's matrix.
    loci
        Receptor loci whose productive chains make the clonotype (``Config.lineage_spec.loci``; default
        the T-cell loci TRB, TRA, TRD, TRG). ``vdj`` may be a 10x contig CSV or an AIRR rearrangement
        TSV (recognised from the header); see :func:`read_vdj`.

    Returns
    -------
    AnnData with raw counts in ``X`` and ``layers['counts']``, ``obs_names`` ``'<sample>_<barcode>'``,
    ``obs['barcode']``, categorical ``obs['patient','sample','timepoint','tissue']`` (tissue
    ``'unknown'`` when not given), ``obs['clone_id','receptor_chains']`` and one ``obs['<locus>_cdr3']``
    per locus (``trb_cdr3``, ``tra_cdr3``, …) when ``vdj`` is given, ``obs['user_malignant']`` (bool) with ``malignant_labels``, ``obs['donor']`` with
    ``donor_assignment``, ``uns['cd7escape']['ambient'][sample]`` with ``raw_path`` (see
    :func:`ambient_profile <cd7escape.io._ambient.ambient_profile>`), and
    ``uns['cd7escape']['ingest']`` (parameters, per-sample summary, problems found that were not fatal).

    Raises
    ------
    InputError
        Unreadable or unsupported files, non-raw counts, duplicate barcodes, no cells, missing antigen,
        unreadable VDJ/labels/donor files.
    """
    try:
        spec = resolve_cellranger(spec, loci=loci)
    except InputError as err:
        for p in err.problems:
            p.sample = p.sample or spec.sample
        raise
    file = spec.path
    kind = sniff(file)
    where = {"sample": spec.sample, "file": file, "field": "path"}
    if kind == "missing":
        raise InputError.single("file not found", **where)
    try:
        adata = _read_counts(file, kind, counts_layer=counts_layer)
    except InputError as err:
        for p in err.problems:
            p.sample = p.sample or spec.sample
            p.field = p.field or "path"
        raise
    if adata.n_obs == 0:
        raise InputError.single("no cells in the matrix (empty sample)", **where)
    # one form of the barcodes for the matrix and every file that lists them (VDJ, labels, donors, raw)
    barcodes = normalize_barcodes(adata.obs_names, spec.sample)
    if barcodes.has_duplicates:
        dup = barcodes[barcodes.duplicated()].unique()
        raise InputError.single(
            f"{len(dup)} duplicate barcodes (e.g. {', '.join(dup[:3])})", **where
        )
    if antigen is not None and antigen not in adata.var_names:
        from ._gene_names import antigen_missing_message

        raise InputError.single(antigen_missing_message(antigen, adata.var_names), **where)
    warnings: list[Problem] = []
    prefix = f"{spec.sample}_"
    obs = adata.obs
    obs["barcode"] = barcodes.to_numpy()
    for key, value in (
        ("patient", spec.patient),
        ("sample", spec.sample),
        ("timepoint", spec.timepoint),
        ("tissue", spec.tissue or "unknown"),
    ):
        obs[key] = pd.Categorical([value] * adata.n_obs)
    adata.obs_names = prefix + barcodes
    adata.obs_names.name = None  # an index named like a column cannot be written to h5ad
    added = ["barcode", "patient", "sample", "timepoint", "tissue"]

    if spec.vdj:
        added += _attach_vdj(adata, spec, barcodes, warnings, loci=loci)
    if spec.malignant_labels:
        _attach_labels(adata, spec, barcodes, kind)
        added.append("user_malignant")
    if spec.donor_assignment:
        _attach_donor(adata, spec, barcodes, warnings)
        added.append("donor")
    uns = adata.uns.setdefault(NS, {})
    if spec.raw_path:
        from ._ambient import ambient_profile

        uns.setdefault("ambient", {})[spec.sample] = ambient_profile(
            spec.raw_path, barcodes, sample=spec.sample
        )
    car = _car_features(adata, car_feature)
    if car_feature and not car:
        msg = f"car_feature '{car_feature}' matches no gene"
        logger.warning("sample %s: %s", spec.sample, msg)
        warnings.append(Problem(msg, field="car_feature", file=file, sample=spec.sample))
    summary = {
        "sample": spec.sample,
        "patient": spec.patient,
        "timepoint": spec.timepoint,
        "path": file,
        "format": kind,
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "median_umis": float(np.median(np.asarray(adata.X.sum(axis=1)).ravel())),
    }
    if "clone_id" in obs:
        summary["cells_with_clone"] = int(obs["clone_id"].notna().sum())
    uns["ingest"] = {
        "params": {"antigen": str(antigen), "car_feature": str(car_feature)},
        "car_features": list(car),
        "samples": pd.DataFrame([summary]).set_index("sample"),
        "warnings": [str(w) for w in warnings],
    }
    logger.info(
        "sample %s: %d cells × %d genes; added .obs %s",
        spec.sample,
        adata.n_obs,
        adata.n_vars,
        ", ".join(map(repr, added)),
    )
    return adata


def _read_counts(file: str, kind: str, *, counts_layer: bool = True):
    if kind in ("10x_h5", "10x_h5_v2"):
        from ._h5 import read_10x_h5

        return read_10x_h5(file, counts_layer=counts_layer)
    if kind == "h5ad":
        from ._h5ad import read_h5ad

        return read_h5ad(file, counts_layer=counts_layer)
    if kind == "10x_mtx":
        from ._mtx import read_10x_mtx

        return read_10x_mtx(file, counts_layer=counts_layer)
    from ._sniff import unrecognised

    raise InputError.single(unrecognised(file), file=file, field="path")


def _attach_vdj(
    adata,
    spec: SampleSpec,
    barcodes: pd.Index,
    warnings: list[Problem],
    *,
    loci: Sequence[str] = T_LOCI,
) -> list[str]:
    from ._vdj import read_receptors, vdj_columns

    files = vdj_files(spec, loci=loci)
    try:
        vdj = read_receptors(files, loci=loci)
    except InputError as err:
        for p in err.problems:
            p.sample = spec.sample
        raise
    if vdj.attrs.get("warning"):  # contigs of other loci only (a library of another lineage)
        warnings.append(
            Problem(vdj.attrs["warning"], field="vdj", file=", ".join(files), sample=spec.sample)
        )
    n_vdj = len(vdj)
    target, n_match = match_barcodes(barcodes, normalize_barcodes(vdj.index, spec.sample))
    vdj = vdj.set_axis(target)
    vdj = vdj[vdj.index.notna() & ~vdj.index.duplicated()]
    table = vdj.reindex(barcodes)
    if n_vdj == 0:
        msg = "VDJ file is empty: no clonotypes for this sample"
        logger.warning("sample %s: %s", spec.sample, msg)
        warnings.append(Problem(msg, field="vdj", file=spec.vdj, sample=spec.sample))
    elif n_match == 0:
        msg = f"none of the {n_vdj} VDJ barcodes matches a cell of the sample"
        logger.warning("sample %s: %s", spec.sample, msg)
        warnings.append(Problem(msg, field="vdj", file=spec.vdj, sample=spec.sample))
    columns = vdj_columns(loci)
    for column in columns:
        values = table[column].to_numpy(dtype=object)
        if column == "receptor_chains":
            values = np.where(pd.isna(values), "none", values)
        # categorical: compact, NaN-capable and writable to h5ad even when all NaN
        adata.obs[column] = pd.Categorical(values)
    logger.info(
        "    sample %s: clonotype for %d of %d cells",
        spec.sample,
        int(adata.obs["clone_id"].notna().sum()),
        adata.n_obs,
    )
    return list(columns)


def read_label_barcodes(path: str, *, sample: str | None = None) -> pd.Index:
    lines = [
        line.strip().split("\t")[0].split(",")[0]
        for line in open_text(path, field="malignant_labels", sample=sample)
    ]
    lines = [
        line
        for line in lines
        if line and line.lower() not in ("barcode", "barcodes", "cell", "cellid")
    ]
    return pd.Index(lines)


def _attach_labels(adata, spec: SampleSpec, barcodes: pd.Index, kind: str) -> None:
    labels = spec.malignant_labels
    assert labels is not None
    where = {"sample": spec.sample, "field": "malignant_labels", "file": labels}
    if Path(labels).is_file():
        listed = normalize_barcodes(read_label_barcodes(labels, sample=spec.sample), spec.sample)
        target, n_match = match_barcodes(barcodes, listed)
        if n_match == 0:
            raise InputError.single(
                f"none of the {len(listed)} listed barcodes is a cell of the sample", **where
            )
        if n_match < len(listed):
            logger.warning(
                "sample %s: %d labelled barcodes are not cells", spec.sample, len(listed) - n_match
            )
        adata.obs["user_malignant"] = barcodes.isin(target.dropna())
    elif kind == "h5ad" and Path(labels).name in adata.obs:
        column = adata.obs[Path(labels).name]
        if column.dtype != bool:
            column = as_bool(column)
        adata.obs["user_malignant"] = column.to_numpy(dtype=bool)
    else:
        raise InputError.single("not a file (nor a boolean obs column of the h5ad)", **where)
    logger.info(
        "    sample %s: %d cells labelled malignant by the user",
        spec.sample,
        int(adata.obs["user_malignant"].sum()),
    )


def read_donor_table(path: str, *, sample: str | None = None) -> pd.Series:
    """barcode → donor from a vireo (donor_ids.tsv) or souporcell (clusters.tsv) style table."""
    where = {"sample": sample, "field": "donor_assignment", "file": path}
    text = open_text(path, field="donor_assignment", sample=sample)
    first = text.getvalue().split("\n", 1)[0]
    sep = "\t" if "\t" in first else ","
    try:
        table = pd.read_csv(text, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as err:
        raise InputError.single(f"not a readable table ({err})", **where) from None
    bc = next((c for c in table.columns if c.strip() in _BARCODE_COLUMNS), None)
    donor = next((c for c in table.columns if c.strip().lower() in _DONOR_COLUMNS), None)
    if bc is None or donor is None:
        raise InputError.single(
            f"needs a barcode column ({'/'.join(_BARCODE_COLUMNS[:4])}) and a donor column "
            f"({'/'.join(_DONOR_COLUMNS[:3])}); found {list(table.columns)}",
            **where,
        )
    values = table[donor].astype(str)
    if "status" in table.columns:  # souporcell: doublet / unassigned rows keep their status
        status = table["status"].astype(str)
        values = values.where(status.isin(["singlet", ""]), status)
    return pd.Series(values.to_numpy(), index=pd.Index(table[bc].astype(str)), name="donor")


def _attach_donor(adata, spec: SampleSpec, barcodes: pd.Index, warnings: list[Problem]) -> None:
    assert spec.donor_assignment is not None
    donors = read_donor_table(spec.donor_assignment, sample=spec.sample)
    target, n_match = match_barcodes(barcodes, normalize_barcodes(donors.index, spec.sample))
    donors = donors.set_axis(target)
    donors = donors[donors.index.notna() & ~donors.index.duplicated()]
    if n_match == 0:
        raise InputError.single(
            "no barcode of the donor assignment is a cell of the sample",
            sample=spec.sample,
            field="donor_assignment",
            file=spec.donor_assignment,
        )
    adata.obs["donor"] = pd.Categorical(donors.reindex(barcodes).to_numpy(dtype=object))
    logger.info("    sample %s: donor assigned for %d cells", spec.sample, n_match)


def _car_features(adata, car_feature: str | None) -> list[str]:
    try:
        return match_features(adata.var_names, car_feature)
    except re.error:
        return []
