"""Per-sample numbers in time order: malignant burden, CAR-T share, normal T cells and their antigen loss,
donor chimerism (``docs/architecture.md#anndata-keys``, ``uns['cd7escape']['burden']``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..._anndata import antigen_counts
from ..._errors import InputError
from ..._uns import lineage_of, record, step
from .._antigen import fit_antigen_mixture, group_antigen, recorded_antigen_model

if TYPE_CHECKING:
    from anndata import AnnData

#: Clinical order of the timepoints; any other value comes after them, alphabetically.
TIMEPOINT_ORDER = ("baseline", "product", "remission", "relapse", "other")
#: Donor labels that assign a cell to nobody (as tl.call_malignant reads ``obs['donor']``).
NEUTRAL_DONOR = frozenset({"", "nan", "unassigned", "doublet", "none", "na"})
#: The columns of the table, in order.
COLUMNS = (
    "sample",
    "timepoint",
    "tissue",
    "order",
    "cells",
    "malignant_cells",
    "malignant_share",
    "malignant_ci_low",
    "malignant_ci_high",
    "car_t_cells",
    "car_t_share",
    "car_t_ci_low",
    "car_t_ci_high",
    "normal_t_cells",
    "normal_t_negative_fraction",
    "normal_t_ci_low",
    "normal_t_ci_high",
    "normal_t_zero_count_fraction",
    "normal_t_state",
    "normal_t_reason",
    "donor_assigned_cells",
    "donor_cells",
    "donor_chimerism",
    "donor_ci_low",
    "donor_ci_high",
    "donor_reason",
)


def sample_burden(
    adata: AnnData,
    *,
    antigen: str = "CD7",
    lineage: str | None = None,
    key_added: str = "burden",
    copy: bool = False,
) -> AnnData | None:
    """Per sample, in time order: malignant share, CAR-T share, normal T cells' antigen loss, chimerism.

    Samples are ordered by ``obs['timepoint']`` (baseline, product, remission, relapse, other, then any
    other value) and by name within a timepoint. For each sample, among its cells after QC (``qc_pass``
    when ``pp.qc`` kept the failing cells):

    - the malignant share (``obs['malignant']``) and the CAR-T share (``obs['cell_class'] == 'car_T'``),
      each with its Wilson score interval at the antigen model's level ``1 - alpha``;
    - the normal T cells (``cell_class == 'normal_T'``; in B-ALL the normal B cells, in myeloma the normal
      plasma cells: the antigen's normal lineage, ``results['normal_class']``, whose loss and return after
      CAR-T is the aplasia and reconstitution a clinician follows; the ``normal_t_*`` columns hold them)
      and their antigen-negative fraction measured with
      the patient's recorded antigen model (:func:`~cd7escape.tl._antigen.group_antigen` with the
      recorded ambient rate, ``theta`` and options), the expressing level being the normal T cells' own
      (the free mixture fitted on every normal T cell of the patient), with its profile-likelihood
      interval and the naive zero-count fraction beside it. A sample with fewer normal T cells than the
      model's ``min_cells`` gets no fraction, and ``normal_t_reason`` says why;
    - donor chimerism when ``obs['donor']`` holds a donor assignment: the share of donor cells among the
      cells assigned to a donor or the recipient (the recipient label as ``tl.call_malignant`` recorded
      it, else a label ``recipient``), with its Wilson interval. Without an assignment the chimerism is
      empty and ``donor_reason`` says so.

    Parameters
    ----------
    adata
        The patient's cells after ``tl.call_malignant`` (``obs['malignant']``, ``obs['cell_class']``), raw
        counts in ``layers['counts']``. The antigen model is read from ``uns['cd7escape']['antigen']``
        (``tl.antigen_state`` is run with its defaults when absent).
    antigen
        Gene symbol of the CAR target (``CD7`` by default; CD5, CD19, CD22 … work the same way).
    lineage
        The tumour's lineage (``'T'``, ``'B'``, ``'plasma'``); default: the one
        :func:`cd7escape.tl.call_malignant` recorded, else the antigen's. Its normal cells are followed.
    key_added
        Name of the record ``uns['cd7escape'][key_added]`` (parameters, ``table``, ``reference_level``).
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    The modified copy when ``copy=True``, else ``None``. Adds ``uns['cd7escape'][key_added]`` with
    ``params``, ``table`` (one row per sample in time order; columns :data:`COLUMNS`: share and interval
    columns are NaN where a number does not exist), ``reference_level`` (the normal T cells' expressing
    level per UMI, NaN when it could not be fitted), ``reference_reason`` and ``donor_source``.
    """
    adata = adata.copy() if copy else adata
    obs = adata.obs
    for key in ("sample", "timepoint", "malignant", "cell_class"):
        if key not in obs:
            by = "ce.io" if key in ("sample", "timepoint") else "ce.tl.call_malignant"
            raise InputError.single(f"obs['{key}'] is missing: run {by} first", field=key)
    model = recorded_antigen_model(adata, antigen)
    level = 1.0 - model.alpha
    y, s = antigen_counts(adata, antigen)
    keep = np.ones(adata.n_obs, bool)
    if "qc_pass" in obs:
        keep = obs["qc_pass"].fillna(False).to_numpy(dtype=bool)
    sample = obs["sample"].astype(str).to_numpy()
    mal = obs["malignant"].fillna(False).to_numpy(dtype=bool)
    cls = obs["cell_class"].astype(str).to_numpy()
    spec = lineage_of(adata, lineage, antigen)
    normal_t = (cls == spec.normal_class) & ~mal
    mu_ref, ref_reason = _normal_t_level(y[normal_t & keep], s[normal_t & keep], model)
    donor, recipient, donor_source = _donor(adata)

    rows = []
    for i, (name, timepoint) in enumerate(_samples(adata)):
        at = (sample == name) & keep
        n = int(at.sum())
        row: dict[str, Any] = {"sample": name, "timepoint": timepoint, "order": i, "cells": n}
        row["tissue"] = _tissue(obs, sample == name)
        k = int((at & mal).sum())
        row["malignant_cells"] = k
        row.update(_share("malignant", k, n, level))
        k = int((at & (cls == "car_T")).sum())
        row["car_t_cells"] = k
        row.update(_share("car_t", k, n, level))
        row.update(_normal_t(y[at & normal_t], s[at & normal_t], mu_ref, ref_reason, model))
        row.update(_chimerism(donor, recipient, donor_source, at, level))
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for c in COLUMNS:
        if c.endswith(("_state", "_reason")) or c in ("sample", "timepoint", "tissue"):
            table[c] = table[c].fillna("").astype(str)
    table.index = table["sample"].to_numpy()
    record(
        adata,
        key_added,
        {
            "antigen": antigen,
            "lineage": spec.name,
            "key_added": key_added,
            "confidence": level,
            **model.options(),
        },
        results={
            "normal_class": spec.normal_class,
            "table": table,
            "reference_level": float(mu_ref),
            "reference_reason": ref_reason,
            "ambient_rate": model.ambient_rate,
            "theta": model.theta,
            "donor_source": donor_source,
        },
    )
    return adata if copy else None


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial share ``k / n`` (NaN when ``n == 0``)."""
    from scipy import stats

    if n <= 0:
        return np.nan, np.nan
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo = 0.0 if k == 0 else max(0.0, mid - half)  # exact at the bounds (no rounding residue)
    hi = 1.0 if k == n else min(1.0, mid + half)
    return float(lo), float(hi)


def _share(prefix: str, k: int, n: int, level: float) -> dict[str, float]:
    lo, hi = wilson_interval(k, n, level)
    return {
        f"{prefix}_share": k / n if n else np.nan,
        f"{prefix}_ci_low": lo,
        f"{prefix}_ci_high": hi,
    }


def _samples(adata) -> list[tuple[str, str]]:
    """(sample, timepoint) in time order: the cells' samples and the ingest table's (no cell left)."""
    obs = adata.obs
    pairs = dict(
        zip(obs["sample"].astype(str), obs["timepoint"].astype(str), strict=True)
    )  # last wins; one timepoint per sample
    ingest = step(adata, "ingest")
    table = None if ingest is None else ingest.get("samples")
    if isinstance(table, pd.DataFrame) and {"sample", "timepoint"} <= set(table.columns):
        for name, timepoint in zip(table["sample"], table["timepoint"], strict=True):
            pairs.setdefault(str(name), str(timepoint))
    rank = {t: i for i, t in enumerate(TIMEPOINT_ORDER)}
    return sorted(pairs.items(), key=lambda p: (rank.get(p[1], len(rank)), p[1], p[0]))


def _tissue(obs: pd.DataFrame, at: np.ndarray) -> str:
    if "tissue" not in obs or not at.any():
        return ""
    values = obs.loc[at, "tissue"].dropna().astype(str).unique()
    return ",".join(sorted(values))


def _normal_t_level(y: np.ndarray, s: np.ndarray, model) -> tuple[float, str]:
    """The expressing level of the patient's normal T cells (free mixture), or NaN with the reason."""
    if y.size < model.min_cells:
        return np.nan, (
            f"{y.size} normal T cells in the patient, below the antigen model's minimum of "
            f"{model.min_cells}: no expressing level to measure their loss against"
        )
    fit = fit_antigen_mixture(
        y, s, ambient_rate=model.ambient_rate, theta=model.theta, interval=False
    )
    if not np.isfinite(fit.mu) or fit.mu <= 5 * model.ambient_rate:
        return np.nan, (
            "the normal T cells show no expressing level above the ambient rate: their antigen-negative "
            "fraction cannot be measured"
        )
    return float(fit.mu), "the normal T cells' own expressing level (free mixture over all samples)"


def _normal_t(y, s, mu_ref: float, ref_reason: str, model) -> dict[str, Any]:
    n = int(y.size)
    out: dict[str, Any] = {
        "normal_t_cells": n,
        "normal_t_zero_count_fraction": float(np.mean(y == 0)) if n else np.nan,
        "normal_t_negative_fraction": np.nan,
        "normal_t_ci_low": np.nan,
        "normal_t_ci_high": np.nan,
        "normal_t_state": "",
        "normal_t_reason": "",
    }
    if not np.isfinite(mu_ref):
        out["normal_t_reason"] = ref_reason
        return out
    if n < model.min_cells:
        out["normal_t_state"] = "too_few_cells" if n else "absent"
        out["normal_t_reason"] = (
            f"{n} normal T cells, below the antigen model's minimum of {model.min_cells}"
        )
        return out
    g = group_antigen(
        y, s, mu_ref=mu_ref, ambient=model.ambient_rate, theta=model.theta, **model.options()
    )
    out.update(
        normal_t_negative_fraction=g["pi"],
        normal_t_ci_low=g["ci_low"],
        normal_t_ci_high=g["ci_high"],
        normal_t_state=g["state"],
    )
    return out


def _donor(adata) -> tuple[np.ndarray | None, str | None, str]:
    """Per-cell donor labels (neutral ones as ''), the recipient label, and where they come from."""
    obs = adata.obs
    if "donor" not in obs:
        return None, None, "no donor assignment (obs['donor'] is absent)"
    lab = obs["donor"].astype(object).where(obs["donor"].notna(), "").astype(str)
    lab = lab.where(~lab.str.lower().isin(NEUTRAL_DONOR), "").to_numpy()
    malignant = step(adata, "malignant")
    recorded = None if malignant is None else (malignant.get("donor") or {})
    recipient = recorded.get("recipient_label") if hasattr(recorded, "get") else None
    if recipient in (None, "None"):
        found = [v for v in set(lab) if v.lower() == "recipient"]
        recipient = found[0] if found else None
    if recipient is None:
        return (
            lab,
            None,
            (
                "obs['donor'] has no recipient label (none recorded by tl.call_malignant, none named "
                "'recipient'): chimerism not measured"
            ),
        )
    return lab, str(recipient), f"obs['donor'], recipient label {recipient!r}"


def _chimerism(lab, recipient, source: str, at: np.ndarray, level: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "donor_assigned_cells": np.nan,
        "donor_cells": np.nan,
        "donor_chimerism": np.nan,
        "donor_ci_low": np.nan,
        "donor_ci_high": np.nan,
        "donor_reason": "",
    }
    if lab is None or recipient is None:
        out["donor_reason"] = source
        return out
    assigned = at & (lab != "")
    n = int(assigned.sum())
    k = int((assigned & (lab != recipient)).sum())
    out.update(donor_assigned_cells=n, donor_cells=k)
    if n == 0:
        out["donor_reason"] = "no cell of the sample is assigned to a donor or the recipient"
        return out
    lo, hi = wilson_interval(k, n, level)
    out.update(donor_chimerism=k / n, donor_ci_low=lo, donor_ci_high=hi)
    return out
