"""``antigen_state``: negative fraction, dim expression and per-cell posterior of the CAR target.

The model is described in ``docs/method.md#antigen-model``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from ..._anndata import antigen_counts
from ..._docs import doc_adata, doc_antigen, doc_copy, doc_key_added, doc_params, doc_returns_copy
from ..._errors import InputError
from ..._logging import logger, timed
from ..._uns import NS, record
from ._model import AntigenFit, estimate_ambient_rate, fit_antigen_mixture, theta_interval
from ._protein import protein_column

if TYPE_CHECKING:
    from anndata import AnnData

#: lineages (``obs['cell_class']``) that never express the antigen: the ambient reference
NON_EXPRESSING_LINEAGES: dict[str, tuple[str, ...]] = {
    "CD7": ("B", "myeloid", "erythroid"),
    "CD5": ("B", "myeloid", "erythroid", "NK"),
    "CD2": ("B", "myeloid", "erythroid"),
    "CD3E": ("B", "myeloid", "erythroid", "NK"),
    "CD1A": ("B", "myeloid", "erythroid", "NK", "normal_T", "car_T"),
    "CD19": ("normal_T", "car_T", "NK", "myeloid", "erythroid"),
    "CD22": ("normal_T", "car_T", "NK", "myeloid", "erythroid"),
    "MS4A1": ("normal_T", "car_T", "NK", "myeloid", "erythroid"),
    "CD79A": ("normal_T", "car_T", "NK", "myeloid", "erythroid"),
    "CD79B": ("normal_T", "car_T", "NK", "myeloid", "erythroid"),
    # BCMA and GPRC5D: plasma cells only (naive and memory B cells have next to none)
    "TNFRSF17": ("normal_T", "car_T", "NK", "B", "myeloid", "erythroid"),
    "GPRC5D": ("normal_T", "car_T", "NK", "B", "myeloid", "erythroid"),
}
_DEFAULT_LINEAGES = ("erythroid",)
_SEP = "|"


@doc_params(
    doc_adata=doc_adata,
    doc_antigen=doc_antigen,
    doc_key_added=doc_key_added,
    doc_copy=doc_copy,
    doc_returns_copy=doc_returns_copy,
)
def antigen_state(
    adata: AnnData,
    antigen: str = "CD7",
    *,
    groupby: str | Sequence[str] = "sample",
    restrict_to: str | None = "malignant",
    reference: str | Mapping[str, str] | None = None,
    layer: str | None = "counts",
    ambient: str | float = "auto",
    ambient_contamination: float = 0.05,
    alpha: float = 0.05,
    posterior_threshold: float = 0.8,
    dim_fold: float = 0.5,
    min_cells: int = 10,
    theta: float | None = None,
    theta_prior_median: float = 3.0,
    theta_prior_sd: float = 1.0,
    theta_cox_reid: bool = True,
    max_ci_width: float = 0.25,
    max_dropout: float = 0.9,
    antigen_protein: str | None = None,
    key_added: str = "antigen",
    copy: bool = False,
) -> AnnData | None:
    """Antigen-negative fraction, expression level and per-cell state of ``antigen`` in groups of cells.

    Each group (e.g. the malignant cells of one sample) is fitted with the mixture described in
    ``docs/method.md#antigen-model``: negative cells ``Poisson(s_i a)`` at the ambient rate ``a``,
    expressing cells ``NB(s_i mu, theta)``, ``s_i`` the total UMIs of cell ``i``. ``theta`` is shared by
    the patient's groups (estimated once over all of them). Zero counts of expressing cells (dropout) are
    not counted as negative.

    Parameters
    ----------
    {doc_adata}
    {doc_antigen}
    groupby
        obs key(s) defining groups; one fit per combination present.
    restrict_to
        Boolean obs key selecting the cells to model (``'malignant'``); None models all cells.
    reference
        The reference expression level for 'dim'. ``'key=value'`` (e.g. ``'timepoint=baseline'``): the
        reference of a group is the cells with ``obs[key] == value`` that share the group's values of the
        other ``groupby`` keys (so with ``groupby=['subclone', 'timepoint']`` a relapse subclone is compared
        with the same subclone at baseline); when no such cell exists, all reference cells pooled. A mapping
        ``{group label: reference group label}`` names them directly (labels are the groupby values joined
        with ``'|'``). None: ``'timepoint=baseline'`` when ``obs['timepoint']`` has baseline cells, else no
        reference (no 'dim' calls).
    layer
        Layer with raw integer counts (None: ``X``).
    ambient
        ``'auto'``: the empty-droplet profile in ``uns['cd7escape']['ambient']`` when present (its antigen
        share times ``ambient_contamination``), else the cells of lineages that never express the antigen
        (``obs['cell_class']``, see ``NON_EXPRESSING_LINEAGES``), else the lowest-expressing ``leiden``
        cluster (an upper bound of the ambient, logged), else 1 % of the overall rate (a guess, logged).
        ``'empty_droplets'``, ``'lineages'``, ``'clusters'`` force one source; a float is the rate per UMI.
    ambient_contamination
        Share of a cell's UMIs that are ambient, used with an empty-droplet profile.
    alpha
        1 - coverage of intervals; level of tests.
    posterior_threshold
        Cells with ``P(negative | y) > posterior_threshold`` are 'negative', below ``1 - posterior_threshold``
        'positive', else 'uncertain'.
    dim_fold
        A mostly expressing group is 'dim' when its level relative to the reference is at most this and the
        upper end of the fold's interval is below 1.
    min_cells
        Groups with fewer cells get no estimate (state 'uncertain').
    theta
        Negative-binomial size of expressing cells; estimated from the data when None (with its
        profile interval, over which every group's intervals are widened).
    theta_prior_median, theta_prior_sd
        Weak log-normal prior on theta (median, sd of log theta); it matters only at low depth.
    theta_cox_reid
        Estimate theta from the Cox-Reid adjusted profile likelihood (consistent across depths).
    max_ci_width
        Groups whose interval of pi is wider than this are not identifiable.
    max_dropout
        Groups whose expressing cells show a zero count more often than this (on average) are not
        identifiable unless clearly negative.
    antigen_protein
        Column of ``obsm['protein']`` with the antigen's ADT counts (CITE-seq). When given, a
        background/foreground mixture of the ADT counts (background fitted on the antigen-negative lineages
        of ``obs['cell_class']``, else the lowest-ADT ``leiden`` cluster;
        :mod:`cd7escape.tl._antigen._protein`) gives per group ``protein_pi`` with its interval and
        ``protein_state``, per cell ``obs['{key_added}_protein_p_negative']`` and
        ``obs['{key_added}_rna_protein']`` ('RNA+ protein+', 'RNA+ protein-', …), and the finding
        ``rna_present_protein_absent`` (RNA mostly expressed: interval of pi below 0.5; protein mostly
        absent: interval of protein_pi at or above 0.5). Data without ADT counts (no or an empty
        ``obsm['protein']``: a patient without CITE-seq in a cohort with it) are measured by RNA alone,
        with a logged note (``params['antigen_protein']`` is then ``None``); ADT counts without this
        feature are an error.
    {doc_key_added}
    {doc_copy}

    Returns
    -------
    {doc_returns_copy}
    Writes ``obs['{key_added}_p_negative']``, ``obs['{key_added}_cell_state']`` and
    ``uns['cd7escape'][key_added]`` (``antigen`` by default) with ``params``, ``groups`` (one row
    per group: n_cells, pi, ci_low, ci_high, upper_bound, lrt_pvalue, mu, mu_ci_low, mu_ci_high,
    fold_vs_reference with its interval, state, identifiable, zero_fraction (naive), detection_limit),
    ``theta``, ``ambient_rate`` and ``ambient_source``.
    """
    if antigen_protein is not None and not _has_adt(adata):
        logger.info(
            "    note: no ADT counts (obsm['protein']) in these data: %s is measured by RNA, not by "
            "its protein %s",
            antigen,
            antigen_protein,
        )
        antigen_protein = None
    params = {
        "antigen": antigen,
        "groupby": [groupby] if isinstance(groupby, str) else list(groupby),
        "restrict_to": restrict_to,
        "reference": dict(reference) if isinstance(reference, Mapping) else reference,
        "layer": layer,
        "ambient": ambient,
        "ambient_contamination": ambient_contamination,
        "alpha": alpha,
        "posterior_threshold": posterior_threshold,
        "dim_fold": dim_fold,
        "min_cells": min_cells,
        "theta": theta,
        "theta_prior_median": theta_prior_median,
        "theta_prior_sd": theta_prior_sd,
        "theta_cox_reid": theta_cox_reid,
        "max_ci_width": max_ci_width,
        "max_dropout": max_dropout,
        "antigen_protein": antigen_protein,
    }
    _validate(adata, params)
    if copy:
        adata = adata.copy()
    keys = params["groupby"]

    with timed(f"antigen model of {antigen}"):
        y_all, s_all = _counts_and_size(adata, antigen, layer)
        sel = (
            np.ones(adata.n_obs, bool)
            if restrict_to is None
            else adata.obs[restrict_to].fillna(False).to_numpy(bool)
        )
        if not sel.any():
            raise InputError.single(
                f"no cells with obs['{restrict_to}'] True: nothing to model", field="restrict_to"
            )
        a, source = _ambient_rate(adata, antigen, y_all, s_all, ambient, ambient_contamination)
        logger.info("    ambient rate of %s: %.3g per UMI (%s)", antigen, a, source)

        labels = _labels(adata.obs, keys)
        idx = np.flatnonzero(sel)
        if theta is None:
            theta, th_lo, th_hi = theta_interval(
                y_all[idx],
                s_all[idx],
                groups=labels[idx],
                ambient_rate=a,
                alpha=alpha,
                prior=(theta_prior_median, theta_prior_sd),
                adjust=theta_cox_reid,
            )
            theta_ci = (th_lo, th_hi)
        else:
            theta_ci = None
        logger.info("    NB size theta of expressing cells: %.3g", theta)

        # one model for every group and for the reference groups of 'dim'
        fit_kw = dict(
            ambient_rate=a, theta=theta, alpha=alpha, theta_ci=theta_ci,
            max_ci_width=max_ci_width, max_dropout=max_dropout,
        )  # fmt: skip
        p_neg = np.full(adata.n_obs, np.nan)
        rows: list[dict[str, Any]] = []
        fits: dict[str, AntigenFit] = {}
        groups = pd.unique(labels[idx])
        for g in groups:
            cells = idx[labels[idx] == g]
            row = dict(zip(keys, g.split(_SEP), strict=True))
            row["group"] = g
            row["n_cells"] = int(cells.size)
            if cells.size < min_cells:
                row.update(_empty_row(y_all[cells], min_cells))
                rows.append(row)
                continue
            fit = fit_antigen_mixture(y_all[cells], s_all[cells], **fit_kw)
            fits[g] = fit
            p_neg[cells] = fit.p_negative
            row.update(
                pi=fit.pi,
                ci_low=fit.ci_low,
                ci_high=fit.ci_high,
                upper_bound=fit.upper_bound,
                lrt_pvalue=fit.lrt_pvalue,
                mu=fit.mu,
                mu_ci_low=fit.mu_ci[0],
                mu_ci_high=fit.mu_ci[1],
                mean_count=float(fit.mu * np.mean(s_all[cells])),
                rate=float(y_all[cells].sum() / s_all[cells].sum()),
                rate_upper=float(
                    stats.gamma.ppf(1 - alpha, y_all[cells].sum() + 1) / s_all[cells].sum()
                ),
                expressing_floor=float(3.0 * a),
                dropout=fit.dropout,
                identifiable=fit.identifiable,
                zero_fraction=fit.zero_fraction,
                detection_limit=fit.detection_limit(alpha),
            )
            rows.append(row)

        table = pd.DataFrame(rows)
        _add_reference(table, fits, adata.obs, labels, idx, y_all, s_all, keys, reference, fit_kw)
        table["state"] = [_group_state(r, dim_fold) for r in table.itertuples()]
        table = table.set_index("group", drop=True)
        table.index.name = None

    state = np.full(adata.n_obs, None, dtype=object)
    has = ~np.isnan(p_neg)
    state[has] = np.where(
        p_neg[has] > posterior_threshold,
        "negative",
        np.where(p_neg[has] < 1 - posterior_threshold, "positive", "uncertain"),
    )
    state[sel & ~has] = "uncertain"
    obs_p, obs_s = f"{key_added}_p_negative", f"{key_added}_cell_state"
    adata.obs[obs_p] = p_neg
    adata.obs[obs_s] = pd.Categorical(state, categories=["positive", "uncertain", "negative"])
    results = {
        "groups": table,
        "theta": float(theta),
        "ambient_rate": float(a),
        "ambient_source": source,
    }
    obs_keys = [obs_p, obs_s]
    if antigen_protein is not None:
        from ._protein import combined_cell_state

        with timed(f"protein model of {antigen_protein}"):
            p_prot, prot_cols, bg = _protein_groups(
                adata, antigen, antigen_protein, labels, idx, table.index, alpha, min_cells
            )
        for col, values in prot_cols.items():
            table[col] = values
        table["rna_present_protein_absent"] = (table["ci_high"] < 0.5) & (
            table["protein_ci_low"] >= 0.5
        )
        obs_pp, obs_rp = f"{key_added}_protein_p_negative", f"{key_added}_rna_protein"
        adata.obs[obs_pp] = p_prot
        both = combined_cell_state(p_neg, p_prot, posterior_threshold)
        both[~sel] = None
        adata.obs[obs_rp] = pd.Categorical(
            both,
            categories=[
                "RNA+ protein+",
                "RNA+ protein-",
                "RNA- protein+",
                "RNA- protein-",
                "uncertain",
            ],
        )
        obs_keys += [obs_pp, obs_rp]
        results["protein_background"] = {"mean": bg[0], "theta": bg[1], "source": bg[2]}
        for g in table.index[table["rna_present_protein_absent"]]:
            logger.warning(
                "    %s: antigen RNA present but protein absent (post-transcriptional loss, masking "
                "or a PEBL-like product)",
                g,
            )
    record(adata, key_added, params, obs=obs_keys, results=results)
    for g, r in table.iterrows():
        logger.info(
            "    %s: %s — pi %.3f [%.3f, %.3f], naive zero fraction %.3f",
            g,
            r["state"],
            r["pi"],
            r["ci_low"],
            r["ci_high"],
            r["zero_fraction"],
        )
    return adata if copy else None


# --------------------------------------------------------------------------- helpers


def _validate(adata, params: dict[str, Any]) -> None:
    problems = []
    if params["antigen"] not in adata.var_names:
        from ..._lineages import antigen_gene

        gene = antigen_gene(params["antigen"])
        hint = f" (its gene symbol is {gene})" if gene != params["antigen"] else ""
        problems.append(
            f"antigen '{params['antigen']}' is not a gene of this data (var_names){hint}"
        )
    for k in params["groupby"]:
        if k not in adata.obs:
            problems.append(f"groupby key '{k}' is not in obs")
    rt = params["restrict_to"]
    if rt is not None and rt not in adata.obs:
        problems.append(
            f"restrict_to '{rt}' is not in obs (run tl.call_malignant first, or pass restrict_to=None)"
        )
    if params["layer"] is not None and params["layer"] not in adata.layers:
        problems.append(f"layer '{params['layer']}' is not in layers")
    amb = params["ambient"]
    if not isinstance(amb, (int, float)) and amb not in (
        "auto",
        "empty_droplets",
        "lineages",
        "clusters",
    ):
        problems.append(
            f"ambient must be 'auto', 'empty_droplets', 'lineages', 'clusters' or a rate, not {amb!r}"
        )
    ref = params["reference"]
    if isinstance(ref, str) and ("=" not in ref or ref.split("=", 1)[0] not in adata.obs):
        problems.append(f"reference '{ref}' must read 'key=value' with key an obs column")
    if not 0 < params["alpha"] < 0.5:
        problems.append("alpha must lie in (0, 0.5)")
    if not 0.5 <= params["posterior_threshold"] < 1:
        problems.append("posterior_threshold must lie in [0.5, 1)")
    if not (params["theta_prior_median"] > 0 and params["theta_prior_sd"] > 0):
        problems.append("theta_prior_median and theta_prior_sd must be positive")
    if not (0 < params["max_ci_width"] <= 1 and 0 < params["max_dropout"] <= 1):
        problems.append("max_ci_width and max_dropout must lie in (0, 1]")
    ap = params.get("antigen_protein")
    if ap is not None:
        if "protein" not in adata.obsm:
            problems.append("antigen_protein given but there is no obsm['protein'] (ADT counts)")
        elif protein_column(adata.obsm["protein"], ap) is None:
            problems.append(f"antigen_protein '{ap}' is not a column of obsm['protein']")
    if problems:
        from ..._errors import Problem

        raise InputError([Problem(m, field="antigen_model") for m in problems])


def _has_adt(adata) -> bool:
    """Whether ``adata`` holds ADT counts: an ``obsm['protein']`` with at least one column."""
    prot = adata.obsm.get("protein") if hasattr(adata, "obsm") else None
    return prot is not None and int(np.shape(prot)[1] if np.ndim(prot) == 2 else 0) > 0


def _counts_and_size(adata, antigen: str, layer: str | None) -> tuple[np.ndarray, np.ndarray]:
    y, s = antigen_counts(adata, antigen, layer=layer)
    if np.any(y < 0) or np.any(np.abs(y - np.round(y)) > 1e-6):
        raise InputError.single(f"layer '{layer}' does not hold raw integer counts", field="layer")
    if np.any(s <= 0):
        raise InputError.single("some cells have no counts at all; run pp.qc first", field="layer")
    return y, s


def _labels(obs: pd.DataFrame, keys: list[str]) -> np.ndarray:
    parts = [obs[k].astype(str).to_numpy() for k in keys]
    out = parts[0].astype(object)
    for p in parts[1:]:
        out = out + _SEP + p
    return out.astype(str)


def _ambient_rate(adata, antigen, y, s, ambient, contamination) -> tuple[float, str]:
    if isinstance(ambient, (int, float)) and not isinstance(ambient, bool):
        return float(ambient), "given"
    store = adata.uns.get(NS, {}).get("ambient") if ambient in ("auto", "empty_droplets") else None
    if store is not None:
        rate = _rate_from_profiles(store, antigen, contamination)
        if rate is not None:
            return (
                rate,
                f"empty droplets (antigen share of the ambient pool x contamination {contamination:g})",
            )
    if ambient == "empty_droplets":
        raise InputError.single(
            "no empty-droplet ambient profile in uns['cd7escape']['ambient']", field="ambient"
        )
    if ambient in ("auto", "lineages") and "cell_class" in adata.obs:
        lineages = NON_EXPRESSING_LINEAGES.get(antigen.upper(), _DEFAULT_LINEAGES)
        ref = adata.obs["cell_class"].astype(str).isin(lineages).to_numpy()
        if ref.sum() >= 20:
            return estimate_ambient_rate(
                y[ref], s[ref]
            ), f"{int(ref.sum())} cells of lineages {', '.join(lineages)}"
    if ambient == "lineages":
        raise InputError.single(
            "fewer than 20 cells of antigen-negative lineages in obs['cell_class']", field="ambient"
        )
    if "leiden" in adata.obs:
        cl = adata.obs["leiden"].astype(str).to_numpy()
        best = None
        for c in np.unique(cl):
            m = cl == c
            if m.sum() >= 30:
                r = estimate_ambient_rate(y[m], s[m])
                best = (r, c, int(m.sum())) if best is None or r < best[0] else best
        if best is not None:
            logger.warning(
                "no empty droplets or antigen-negative lineages: ambient rate from the lowest-expressing cluster "
                "(leiden %s, %d cells), an upper bound of the true ambient",
                best[1],
                best[2],
            )
            return best[
                0
            ], f"lowest-expressing leiden cluster {best[1]} ({best[2]} cells; upper bound)"
    if ambient == "clusters":
        raise InputError.single("no obs['leiden'] clusters of at least 30 cells", field="ambient")
    rate = 0.01 * float((y.sum() + 0.5) / s.sum())
    logger.warning(
        "no source for the ambient rate: using 1 %% of the overall %s rate (a guess)", antigen
    )
    return rate, "guess: 1 % of the overall rate"


def _rate_from_profiles(store, antigen: str, contamination: float) -> float | None:
    """Antigen share of the ambient pool (one profile, or one per sample pooled by UMIs) x contamination."""
    profiles = (
        [store]
        if "genes" in store
        else [v for v in store.values() if isinstance(v, Mapping) and "genes" in v]
    )
    num = den = 0.0
    for p in profiles:
        n_umis = float(p.get("n_umis", 0))
        if n_umis <= 0:
            continue
        genes = np.asarray(p["genes"]).astype(str)
        frac = np.asarray(p["fraction"], dtype=float)
        hit = np.flatnonzero(genes == antigen)
        num += float(frac[hit[0]]) * n_umis if hit.size else 0.0
        den += n_umis
    if den <= 0:
        return None
    return contamination * (num + 0.5) / den


def _empty_row(y: np.ndarray, min_cells: int) -> dict[str, Any]:
    nan = float("nan")
    return {
        "pi": nan,
        "ci_low": nan,
        "ci_high": nan,
        "upper_bound": nan,
        "lrt_pvalue": nan,
        "mu": nan,
        "mu_ci_low": nan,
        "mu_ci_high": nan,
        "mean_count": nan,
        "rate": nan,
        "rate_upper": nan,
        "expressing_floor": nan,
        "dropout": nan,
        "identifiable": False,
        "zero_fraction": float(np.mean(y == 0)) if y.size else nan,
        "detection_limit": f"too few cells ({y.size} < {min_cells})",
    }


def _reference_cells(obs, labels, idx, keys, reference, g: str) -> tuple[np.ndarray, str] | None:
    if isinstance(reference, Mapping):
        ref_label = reference.get(g)
        if ref_label is None:
            return None
        return idx[labels[idx] == ref_label], str(ref_label)
    key, value = reference.split("=", 1)
    is_ref = obs[key].astype(str).to_numpy()[idx] == value
    own = dict(zip(keys, g.split(_SEP), strict=True))
    match = is_ref.copy()
    shared = [k for k in keys if k != key]
    for k in shared:
        match &= obs[k].astype(str).to_numpy()[idx] == own[k]
    if shared and match.any():
        return idx[match], _SEP.join(f"{k}={own[k]}" for k in shared) + f", {reference}"
    return (idx[is_ref], reference) if is_ref.any() else None


def _add_reference(table, fits, obs, labels, idx, y, s, keys, reference, fit_kw) -> None:
    """Fold of each group's expressing level over its reference group's, with a log-scale interval.

    ``fit_kw``: the keyword arguments of :func:`fit_antigen_mixture` the groups were fitted with.
    """
    n = len(table)
    table["reference"] = [""] * n
    for col in ("fold_vs_reference", "fold_ci_low", "fold_ci_high"):
        table[col] = np.nan
    if reference is None:
        if (
            "timepoint" in obs
            and (obs["timepoint"].astype(str) == "baseline").to_numpy()[idx].any()
        ):
            reference = "timepoint=baseline"
            logger.info("    reference level for 'dim': %s", reference)
        else:
            return
    z = float(stats.norm.ppf(1 - fit_kw["alpha"] / 2))
    cache: dict[str, AntigenFit] = {}
    for i, g in enumerate(table["group"]):
        if g not in fits:
            continue
        found = _reference_cells(obs, labels, idx, keys, reference, g)
        if found is None:
            continue
        cells, name = found
        if cells.size < 10:
            continue
        if name not in cache:
            cache[name] = (
                fits[name] if name in fits else fit_antigen_mixture(y[cells], s[cells], **fit_kw)
            )
        ref, fit = cache[name], fits[g]
        table.loc[i, "reference"] = name
        if not (np.isfinite(fit.mu) and np.isfinite(ref.mu)):  # no expressing cells on one side
            continue
        se = np.hypot(_se_log(fit.mu_ci, z), _se_log(ref.mu_ci, z))
        fold = fit.mu / ref.mu
        table.loc[i, "fold_vs_reference"] = fold
        table.loc[i, "fold_ci_low"] = fold * np.exp(-z * se) if np.isfinite(se) else 0.0
        table.loc[i, "fold_ci_high"] = fold * np.exp(z * se) if np.isfinite(se) else np.inf


def _se_log(ci: tuple[float, float], z: float) -> float:
    lo, hi = ci
    if not (lo > 0 and np.isfinite(hi)):
        return float("inf")
    return float((np.log(hi) - np.log(lo)) / (2 * z))


def _group_state(r, dim_fold: float) -> str:
    """positive / dim / negative / uncertain for one row of the group table.

    * negative: the interval of pi lies at or above 0.5, or the group's whole expression (its overall rate
      per UMI, upper 1 - alpha bound) is below the least level the model calls expressing (3 x ambient);
    * dim: not negative, and the level of expressing cells is at most ``dim_fold`` of the reference with
      the upper end of the fold's interval below 1 (sound even when pi itself is not identifiable);
    * positive: identifiable, interval of pi below 0.5;
    * uncertain: everything else (too few cells, low depth or low level, pi straddling 0.5).
    """
    if not np.isfinite(r.pi):
        return "uncertain"
    if r.ci_low >= 0.5 or r.rate_upper < r.expressing_floor:
        return "negative"
    if np.isfinite(r.fold_vs_reference) and r.fold_vs_reference <= dim_fold and r.fold_ci_high < 1:
        return "dim"
    if r.identifiable and r.ci_high < 0.5:
        return "positive"
    return "uncertain"


def _protein_groups(adata, antigen, name, labels, idx, groups, alpha, min_cells):
    """Per-group protein mixture fits; returns per-cell posteriors, table columns and the background."""
    from ._protein import fit_protein_mixture, protein_background

    prot = adata.obsm["protein"]
    col = protein_column(prot, name)
    x = np.asarray(prot[col], dtype=float)
    bg_cells, source = None, ""
    if "cell_class" in adata.obs:
        lineages = NON_EXPRESSING_LINEAGES.get(antigen.upper(), _DEFAULT_LINEAGES)
        ref = adata.obs["cell_class"].astype(str).isin(lineages).to_numpy()
        if ref.sum() >= 20:
            bg_cells, source = ref, f"{int(ref.sum())} cells of lineages {', '.join(lineages)}"
    if bg_cells is None and "leiden" in adata.obs:
        cl = adata.obs["leiden"].astype(str).to_numpy()
        means = {c: x[cl == c].mean() for c in np.unique(cl) if (cl == c).sum() >= 30}
        if means:
            low = min(means, key=means.get)
            bg_cells, source = cl == low, f"lowest-ADT leiden cluster {low}"
            logger.warning("ADT background from the lowest-ADT cluster (leiden %s)", low)
    if bg_cells is None:
        raise InputError.single(
            "no antigen-negative cells for the ADT background (obs['cell_class'] or obs['leiden'])",
            field="antigen_protein",
        )
    m0, t0 = protein_background(x[bg_cells])
    logger.info("    ADT background of %s: mean %.3g, theta %.3g (%s)", col, m0, t0, source)
    p = np.full(adata.n_obs, np.nan)
    cols = {
        k: np.full(len(groups), np.nan)
        for k in (
            "protein_pi",
            "protein_ci_low",
            "protein_ci_high",
            "protein_lrt_pvalue",
            "protein_mu",
        )
    }
    states = []
    for k, g in enumerate(groups):
        cells = idx[labels[idx] == g]
        if cells.size < min_cells:
            states.append("uncertain")
            continue
        f = fit_protein_mixture(
            x[cells], background=(m0, t0), alpha=alpha, background_cells=int(np.sum(bg_cells))
        )
        p[cells] = f.p_negative
        cols["protein_pi"][k] = f.pi
        cols["protein_ci_low"][k] = f.ci_low
        cols["protein_ci_high"][k] = f.ci_high
        cols["protein_lrt_pvalue"][k] = f.lrt_pvalue
        cols["protein_mu"][k] = f.mu
        states.append(
            "negative" if f.ci_low >= 0.5 else "positive" if f.ci_high < 0.5 else "uncertain"
        )
    cols["protein_state"] = states
    return p, cols, (float(m0), float(t0), source)
