"""All samples of one patient → one AnnData."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._config import SampleSpec
from .._errors import InputError, Problem
from .._lineages import T_LOCI
from .._logging import logger, timed
from .._uns import NS

if TYPE_CHECKING:
    from anndata import AnnData

#: warn when the genes shared by all samples are fewer than this share of the union
MIN_SHARED_GENES = 0.9


def read_patient(
    specs: Sequence[SampleSpec],
    *,
    antigen: str | None = "CD7",
    car_feature: str | None = None,
    counts_only: bool = False,
    loci: Sequence[str] = T_LOCI,
) -> AnnData:
    """Read and concatenate every sample of a patient.

    Parameters
    ----------
    specs
        The patient's samples (absolute paths, as from :func:`load_config`).
    antigen, car_feature
        As in :func:`read_sample`.
    counts_only
        Keep the counts in ``layers['counts']`` only and leave ``X`` None (``pp.embed`` sets it): one
        copy of the counts instead of two, which is what ``cd7escape run`` reads.
    loci
        Receptor loci of the clonotype (``Config.lineage_spec.loci``), as in :func:`read_sample`.

    Returns
    -------
    One AnnData: genes shared by all samples (inner join; a warning when fewer than 90 % of the union),
    raw counts in ``X`` and ``layers['counts']``, ``obs_names`` ``'<sample>_<barcode>'``, the obs columns
    of :func:`read_sample` (categoricals; cells of a sample without VDJ get NaN ``clone_id`` and
    ``receptor_chains``; ``user_malignant`` is a nullable boolean, NA for samples without labels, when only some
    samples have labels), ``obsm['protein']`` when any sample has ADTs (NaN for samples
    without them), ``uns['cd7escape']['ambient']`` per sample, and ``uns['cd7escape']['ingest']`` with a
    per-sample table ``samples`` and the non-fatal ``warnings``.

    Raises
    ------
    InputError
        Problems of every sample together (each sample is tried), duplicate sample ids.
    """
    import anndata as ad

    from ._sample import read_sample

    specs = list(specs)
    if not specs:
        raise InputError.single("no samples given")
    ids = [s.sample for s in specs]
    dup = sorted({s for s in ids if ids.count(s) > 1})
    if dup:
        raise InputError(
            [Problem(f"duplicate sample id '{d}'", field="sample", sample=d) for d in dup]
        )
    patients = sorted({s.patient for s in specs})
    label = patients[0] if len(patients) == 1 else "+".join(patients)
    if len(patients) > 1:
        logger.warning("read_patient got samples of several patients: %s", ", ".join(patients))
    adatas, problems = [], []
    with timed(f"reading patient {label} ({len(specs)} samples)"):
        for spec in specs:
            try:
                adatas.append(
                    read_sample(
                        spec,
                        antigen=antigen,
                        car_feature=car_feature,
                        counts_layer=False,
                        loci=loci,
                    )
                )
            except InputError as err:
                problems.extend(err.problems)
        if problems:
            raise InputError(problems)
        union = set().union(*(set(a.var_names) for a in adatas))
        shared = set.intersection(*(set(a.var_names) for a in adatas))
        warnings = [w for a in adatas for w in a.uns[NS]["ingest"]["warnings"]]
        if len(shared) < MIN_SHARED_GENES * len(union):
            msg = (
                f"samples of patient {label} share only {len(shared)} of {len(union)} genes "
                "(different references?); keeping the shared genes"
            )
            logger.warning(msg)
            warnings.append(msg)
        proteins = [a.obsm.pop("protein", None) for a in adatas]
        ambient = {k: v for a in adatas for k, v in a.uns.get(NS, {}).get("ambient", {}).items()}
        tables = [a.uns[NS]["ingest"]["samples"] for a in adatas]
        car = sorted({g for a in adatas for g in a.uns[NS]["ingest"]["car_features"]})
        for a in adatas:
            a.uns = {}
        _align_obs_columns(adatas)
        adata = ad.concat(adatas, join="inner", merge="same", index_unique=None)
        categorical = ("patient", "sample", "timepoint", "tissue", "donor")
        categorical += ("clone_id", "receptor_chains")
        categorical += tuple(c for c in adata.obs.columns if str(c).endswith("_cdr3"))
        for key in categorical:
            if key in adata.obs:
                adata.obs[key] = adata.obs[key].astype(object).astype("category")
        if "user_malignant" in adata.obs:  # nullable boolean when some samples had no labels
            labels = adata.obs["user_malignant"].astype("boolean")
            adata.obs["user_malignant"] = labels.astype(bool) if labels.notna().all() else labels
        if any(p is not None for p in proteins):
            frames = [
                p if p is not None else pd.DataFrame(index=a.obs_names)
                for p, a in zip(proteins, adatas, strict=True)
            ]
            protein = pd.concat(frames, axis=0, join="outer")
            if protein.isna().any().any():
                logger.warning("some samples lack some ADT features: their protein counts are NaN")
            adata.obsm["protein"] = protein.loc[adata.obs_names]
        if counts_only:
            adata.layers["counts"], adata.X = adata.X, None
        elif "counts" not in adata.layers:
            adata.layers["counts"] = adata.X.copy()
        adata.uns[NS] = {
            "ingest": {
                "params": {"antigen": str(antigen), "car_feature": str(car_feature)},
                "car_features": car,
                "samples": pd.concat(tables),
                "warnings": warnings,
                "n_shared_genes": len(shared),
                "n_union_genes": len(union),
            }
        }
        if ambient:
            adata.uns[NS]["ambient"] = ambient
    logger.info(
        "patient %s: %d cells × %d genes from %d samples; added .obs 'patient', 'sample', 'timepoint', "
        "'tissue', .layers 'counts', .uns['%s']['ingest']",
        label,
        adata.n_obs,
        adata.n_vars,
        len(adatas),
        NS,
    )
    return adata


def _align_obs_columns(adatas) -> None:
    """Give every sample the obs columns of the others (missing: NA), so concat keeps them all."""
    columns: dict[str, pd.Series] = {}
    for a in adatas:
        for key in a.obs.columns:
            columns.setdefault(key, a.obs[key])
    for a in adatas:
        for key, example in columns.items():
            if key in a.obs:
                continue
            if pd.api.types.is_bool_dtype(example):
                a.obs[key] = pd.array([pd.NA] * a.n_obs, dtype="boolean")
            elif pd.api.types.is_numeric_dtype(example):
                a.obs[key] = np.nan
            else:
                a.obs[key] = pd.Categorical([np.nan] * a.n_obs)
