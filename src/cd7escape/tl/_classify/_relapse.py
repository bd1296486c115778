"""The relapse-mechanism decision (docs/method.md#classification) and its bootstrap confidence; the
trace's part of the decision is in ``_trace_decision``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from anndata import AnnData

from ..._anndata import antigen_counts, counts_matrix, malignant_mask, timepoint_masks
from ..._config import ClassifyParams
from ..._errors import InputError
from ..._lineages import without
from ..._logging import logger, timed
from ..._uns import NS, _plain, detection_limit, lineage_of, record
from ..._version import __version__
from .._antigen import (
    group_antigen,
    recorded_antigen_model,
    recorded_protein_model,
    reference_level,
)
from .._clones import UNMAPPED
from ._founder_ceiling import hold_below_founder_ceiling
from ._trace_decision import antigen_name, decide_by_trace

_CP = ClassifyParams()
#: Malignant cells from which the bootstrap is worth spawning worker processes (~1-2 s each to start).
_PARALLEL_MIN_CELLS = 3000


@dataclass(frozen=True)
class RelapseCall:
    """The answer: mechanism, how sure, why, and the numbers behind it.

    Attributes
    ----------
    mechanism
        One of ``preexisting_negative_clone``, ``antigen_downregulation``, ``antigen_retained``, ``mixed``,
        ``lineage_switch``, ``indeterminate``.
    confidence
        Share of bootstrap replicates (cells resampled within each timepoint, antigen model refitted) that
        give the same call; a downregulation of antigen-negative (not dim) relapse cells is held at
        ``negative_loss_max_confidence`` (``numbers['confidence_ceiling']``).
    reason
        One sentence.
    evidence
        Short statements supporting (or qualifying) the call, most important first.
    numbers
        ``timepoints`` (baseline, relapse: malignant_cells, antigen_negative_fraction, ci_low, ci_high,
        zero_count_fraction, …), ``subclones`` (one record per subclone), ``shares`` (of relapse
        antigen-negative cells explained by each route), ``bootstrap`` (calls of the replicates), ….
    params
        Every threshold used (the :class:`~cd7escape._config.ClassifyParams` fields, antigen, seed).
    """

    mechanism: str
    confidence: float
    reason: str
    evidence: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: mechanism, confidence, reason, evidence, timepoints, subclones, numbers, params, version."""
        d = _jsonable(asdict(self))
        d["timepoints"] = d["numbers"].get("timepoints", {})
        d["subclones"] = d["numbers"].get("subclones", [])
        d["version"] = __version__
        return d


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, pd.DataFrame):
        return _jsonable(v.reset_index().to_dict(orient="records"))
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not np.isfinite(v) else float(v)
    return v


# --------------------------------------------------------------------------- data of one decision


@dataclass
class _Data:
    """Everything the decision needs, per cell (so that it can be resampled)."""

    y: np.ndarray
    s: np.ndarray
    tp: np.ndarray  # 0 baseline, 1 relapse
    sub: np.ndarray  # subclone label (str) or 'unmapped'
    tprog: np.ndarray  # share of a cell's UMIs in its lineage's program (T program in T-ALL)
    ambient: float
    theta: float
    mu_ref: float
    # NB size of the negative component (ADT background when the protein is measured; None: Poisson ambient)
    null_theta: float | None = None
    # the trace (None: no joint antigen-free space recorded): each original cell's coordinates in the joint
    # antigen-free space and its confirmed copy-number subclone (None where it has none); each row's position
    # in the original data; the original counts. Replicates share the original arrays.
    zt: np.ndarray | None = None
    tlab: np.ndarray | None = None
    tcn: np.ndarray | None = None
    orig: np.ndarray | None = None
    y0: np.ndarray | None = None
    s0: np.ndarray | None = None
    # the lowest relapse/baseline shift of genes expressed like the antigen (None: not calibrated)
    shift_floor: float | None = None

    def group_options(self, P: dict[str, Any], *, interval: bool = True) -> dict[str, Any]:
        """The keyword options of :func:`group_antigen` for groups of these cells (model and decision)."""
        return {
            "mu_ref": self.mu_ref, "ambient": self.ambient, "theta": self.theta,
            "null_theta": self.null_theta, "interval": interval, "alpha": P["alpha"],
            "min_cells": P["min_cells"], "dim_fold": P["dim_fold"],
        }  # fmt: skip

    def resampled(self, pick: np.ndarray, sub: np.ndarray) -> _Data:
        """The replicate made of the rows ``pick`` (the trace keeps pointing into the original data)."""
        return _Data(
            self.y[pick], self.s[pick], self.tp[pick], sub, self.tprog[pick], self.ambient,
            self.theta, self.mu_ref,
            null_theta=self.null_theta,
            zt=self.zt,
            tlab=self.tlab,
            tcn=self.tcn,
            orig=None if self.orig is None else self.orig[pick],
            y0=self.y0, s0=self.s0, shift_floor=self.shift_floor,
        )  # fmt: skip

    def shift(self) -> float:
        """The antigen's relapse/baseline log ratio of pooled counts per UMI (:func:`_pooled_log_ratio`)."""
        b, r = self.tp == 0, self.tp == 1
        return float(
            _pooled_log_ratio(self.y[r].sum(), self.s[r].sum(), self.y[b].sum(), self.s[b].sum())
        )


def _pooled_log_ratio(y_r, total_r: float, y_b, total_b: float):
    """Relapse/baseline log ratio of pooled counts per UMI, half a UMI added to each count (array-wise)."""
    return np.log((y_r + 0.5) / max(total_r, 1.0)) - np.log((y_b + 0.5) / max(total_b, 1.0))


def _lineage_program(
    adata, antigen: str, cells: np.ndarray, program: tuple[str, ...]
) -> tuple[np.ndarray, list[str]]:
    """Per cell, the share of its UMIs in the lineage program's genes (never the antigen)."""
    genes = [g for g in without(program, antigen) if g in adata.var_names]
    if not genes:
        return np.full(cells.size, np.nan), []
    x = counts_matrix(adata)
    idx = [adata.var_names.get_loc(g) for g in genes]
    sub = x[cells][:, idx]
    num = np.asarray(sub.sum(axis=1)).ravel().astype(float)
    tot = np.asarray(x[cells].sum(axis=1)).ravel().astype(float)
    return num / np.maximum(tot, 1), genes


SHIFT_GENES = 300  # genes nearest the antigen's expression that calibrate a relapse level shift
SHIFT_QUANTILE = 0.025
SHIFT_MIN_GENES = 50


def _level_shift_floor(
    adata, antigen: str, b_cells: np.ndarray, r_cells: np.ndarray
) -> float | None:
    """How far genes expressed like the antigen fall between the two timepoints' malignant cells.

    Baseline and relapse are different samples (days, handling, chemistry; another therapy) and their
    blasts differ in composition and state, so genes shift between them without any escape. The
    ``SHIFT_GENES`` genes whose baseline mean per cell is nearest the antigen's (never the antigen) give
    their relapse/baseline log ratio of pooled counts per UMI, as :meth:`_Data.shift` gives the antigen's;
    their ``SHIFT_QUANTILE`` quantile is the floor a dim relapse must fall below. None with fewer than
    ``SHIFT_MIN_GENES`` genes expressed at baseline.
    """
    x = counts_matrix(adata)
    # one product with both timepoints' indicators: one pass over the matrix and no copy of the malignant
    # rows
    ind = np.zeros((x.shape[0], 2))
    ind[b_cells, 0] = 1.0
    ind[r_cells, 1] = 1.0
    cb, cr = np.asarray(x.T @ ind, dtype=float).T
    j = adata.var_names.get_loc(antigen) if antigen in adata.var_names else -1
    usable = cb > 0
    if j >= 0:
        usable[j] = False
    if usable.sum() < SHIFT_MIN_GENES or j < 0 or cb[j] <= 0:
        return None
    genes = np.flatnonzero(usable)
    near = genes[np.argsort(np.abs(np.log(cb[genes]) - np.log(cb[j])), kind="stable")[:SHIFT_GENES]]
    ratio = _pooled_log_ratio(cr[near], cr.sum(), cb[near], cb.sum())
    return float(np.quantile(ratio, SHIFT_QUANTILE))


def _decide(d: _Data, P: dict[str, Any], *, interval: bool = True) -> dict[str, Any]:
    """Apply the rules (docs/method.md#rules) to one data set (the original or a bootstrap replicate)."""
    alpha = P["alpha"]
    b, r = d.tp == 0, d.tp == 1
    nb, nr = int(b.sum()), int(r.sum())
    out: dict[str, Any] = {"n_baseline": nb, "n_relapse": nr}
    if nb < P["min_baseline_cells"] or nr < P["min_relapse_cells"]:
        what = "baseline" if nb < P["min_baseline_cells"] else "relapse"
        n_have, n_need = (
            (nb, P["min_baseline_cells"]) if what == "baseline" else (nr, P["min_relapse_cells"])
        )
        out.update(
            mechanism="indeterminate",
            reason=f"only {n_have} malignant {what} cells (at least {n_need} needed)",
        )
        out["rule"] = f"too_few_{what}"
        return out
    kw = d.group_options(P, interval=interval)
    gb = group_antigen(d.y[b], d.s[b], **kw)
    gr = group_antigen(d.y[r], d.s[r], **kw)
    out["baseline"], out["relapse"] = gb, gr
    for what, g in (("baseline", gb), ("relapse", gr)):
        if "pi" not in g:
            out.update(
                mechanism="indeterminate",
                rule=f"too_few_{what}",
                reason=(
                    f"only {g['n']} malignant {what} cells: fewer than the antigen model's "
                    f"min_cells ({P['min_cells']})"
                ),
            )
            return out
    # lineage: clone-linked relapse blasts without their lineage's program (T in T-ALL, B in B-ALL)
    tb, tr = float(np.nanmean(d.tprog[b])), float(np.nanmean(d.tprog[r]))
    t_ratio = tr / tb if tb > 0 else np.nan
    out["lineage_program_ratio"] = t_ratio
    if np.isfinite(t_ratio) and t_ratio < P["lineage_max_ratio"]:
        out.update(
            mechanism="lineage_switch",
            rule="lineage_program_lost",
            reason=(
                f"relapse malignant cells keep the leukemic clone but their {P['lineage']}-lineage "
                f"program is at {100 * t_ratio:.0f} % of baseline blasts'"
            ),
        )
        return out
    # dim: relapse expressing level significantly below the baseline level
    # ... and beyond the shift of genes expressed like it between the same two samples
    shift = d.shift()
    dim = bool(
        gr["mu_ci_high"] < d.mu_ref
        and gr["mu_ratio"] < P["dim_max_ratio"]
        and gr["pi_free"] < 0.5
        and (d.shift_floor is None or shift < d.shift_floor)
    )
    out["dim"] = dim
    out["level_shift"] = {"antigen": shift, "genes_floor": d.shift_floor}
    neg_r = gr["pi"]
    # negative beyond the baseline's own negative fraction: a relapse no more negative than the baseline it
    # came from has not escaped the antigen (real expressing populations hold some negative cells)
    pi_base = float(gb["pi"])
    if not dim and neg_r - pi_base < P["retained_max_negative"]:
        hi = gr["ci_high"] if interval else neg_r
        if hi - pi_base < P["max_uncertain_negative"]:
            out.update(
                mechanism="antigen_retained",
                rule="relapse_positive",
                reason=(
                    f"relapse blasts express {antigen_name(P)}: {100 * neg_r:.1f} % negative "
                    f"(95 % CI {100 * gr['ci_low']:.1f}–{100 * hi:.1f} %; baseline {100 * pi_base:.1f} %), "
                    f"expression at {100 * gr['mu_ratio']:.0f} % of baseline"
                ),
            )
        else:
            out.update(
                mechanism="indeterminate",
                rule="relapse_state_unresolved",
                reason=(
                    f"the relapse negative fraction cannot be bounded at this depth ({100 * neg_r:.1f} %, upper "
                    f"95 % bound {100 * hi:.1f} %; expressing cells drop out {100 * gr['dropout']:.0f} % of the time)"
                ),
            )
        return out
    # relapse negative or dim: where do the negative relapse cells come from?
    # integer codes of the labels (sorted, as the labels were): comparing strings per subclone took a
    # tenth of a second per bootstrap replicate at 100k cells
    names, code = np.unique(d.sub, return_inverse=True)
    code = code.ravel()
    subs = [names[k] for k in np.unique(code[b | r]) if names[k] != UNMAPPED]
    position = {name: k for k, name in enumerate(names)}
    mass: dict[str, float] = {}
    rows = {}
    for c in [*subs, UNMAPPED]:
        in_c = code == position.get(c, -1)
        cb, cr = b & in_c, r & in_c
        nbc, nrc = int(cb.sum()), int(cr.sum())
        if nrc == 0 and nbc == 0:
            continue
        g_b = group_antigen(d.y[cb], d.s[cb], **kw) if nbc else {"n": 0, "state": "absent"}
        g_r = group_antigen(d.y[cr], d.s[cr], **kw) if nrc else {"n": 0, "state": "absent"}
        frac_r = (
            1.0
            if dim
            else (
                g_r.get("pi", neg_r) if g_r["state"] not in ("too_few_cells", "absent") else neg_r
            )
        )
        if g_r.get("state") == "dim":
            frac_r = 1.0
        mass[c] = nrc * frac_r
        fb, frr = nbc / nb, nrc / nr
        fold = (frr / fb) if fb > 0 else np.inf
        from .._clones import fold_ci

        f, lo, hi = fold_ci(nrc, nr, nbc, nb) if c != UNMAPPED else (np.nan, np.nan, np.nan)
        if c == UNMAPPED:
            route = "unmapped"
        elif nbc < P["min_cells"] or "pi" not in g_b:
            route = "unresolved"
        else:
            neg_b = g_b["lrt_pvalue"] < alpha and g_b["pi"] >= P["preexisting_min_negative"]
            # upper end of the baseline negative share
            u_b = g_b["ci_high"] if interval else g_b["pi"]
            pos_b = u_b < P["downregulation_max_negative"]
            expanded = f >= P["min_expansion_fold"] and (lo > 1 if interval else True)
            if neg_b:
                route = "preexisting" if expanded else "persisting"
            elif pos_b or (u_b < P["preexisting_min_negative"] and frac_r > u_b):
                # the subclone was mostly positive at baseline (its negative share is bounded below what makes
                # a subclone antigen-negative). At its baseline composition it supplies about pi_b of its
                # relapse cells as negatives (persisting negatives, no clone link to a loss); only the excess
                # lost the antigen. The excess is computed jointly over all such subclones below (a one-sided
                # bound on the sum of pi_b·n_relapse): per-subclone upper bounds, summed, would charge every
                # small low-depth subclone its worst case at once.
                route = "downregulation"
            else:
                route = "unresolved"
        rows[c] = {
            "route": route,
            "n_baseline": nbc,
            "n_relapse": nrc,
            "fold": float(fold),
            "fold_ci_low": lo,
            "pi_baseline": g_b.get("pi", np.nan),
            "ci_high_baseline": g_b.get("ci_high", np.nan),
            "negative_relapse_cells": float(mass[c]),
            # a persisting negative subclone whose share grew significantly, if less than min_expansion_fold
            # (a subclone of 30 % cannot grow 2-fold): not a pre-existing clone, but a route of a mixed relapse
            "grew": bool(route == "persisting" and (lo > 1 if interval else f > 1)),
            # all of it until _joint_downregulation_share subtracts the baseline negatives
            "downregulation_share": 1.0 if route == "downregulation" else 0.0,
        }
    _joint_downregulation_share(rows, mass, P)
    total = sum(mass.values())
    shares = dict.fromkeys(
        ("preexisting", "downregulation", "persisting", "unresolved", "unmapped"), 0.0
    )
    for c, m in mass.items():
        w = m / total if total > 0 else 0.0
        if rows[c]["route"] == "downregulation":
            ds = rows[c]["downregulation_share"]
            shares["downregulation"] += w * ds
            shares["unresolved"] += w * (1 - ds)
        else:
            shares[rows[c]["route"]] += w
    out["routes"], out["shares"] = rows, shares
    pre, down = shares["preexisting"], shares["downregulation"]
    grew = sum(mass[c] for c in rows if rows[c]["grew"]) / total if total > 0 else 0.0
    out["grew_share"] = grew

    def top(route=None, *, grown=False):
        """Subclones of ``route`` (or that grew), most negative relapse cells first."""
        keep = [c for c in rows if (rows[c]["grew"] if grown else rows[c]["route"] == route)]
        return sorted(keep, key=lambda c: -mass[c])

    if pre + grew >= P["mixed_min_share"] and down >= P["mixed_min_share"]:
        out.update(
            mechanism="mixed",
            rule="both_routes",
            reason=(
                f"{100 * (pre + grew):.0f} % of antigen-negative relapse cells descend from baseline-negative "
                f"subclone(s) {', '.join(top('preexisting') + top(grown=True))} that "
                f"{'expanded' if pre >= grew else 'grew in share'}, {100 * down:.0f} % from baseline-positive "
                f"subclone(s) {', '.join(top('downregulation'))} that lost {antigen_name(P)}"
            ),
        )
    elif pre >= P["min_call_share"]:
        c = top("preexisting")[0]
        out.update(
            mechanism="preexisting_negative_clone",
            rule="negative_subclone_expanded",
            reason=(
                f"{100 * pre:.0f} % of antigen-negative relapse cells map to baseline subclone {c}, already "
                f"{100 * rows[c]['pi_baseline']:.0f} % {antigen_name(P)}-negative at baseline, which expanded "
                f"{rows[c]['fold']:.1f}-fold"
            ),
        )
    elif down >= P["min_call_share"]:
        c = top("downregulation")[0]
        out.update(
            mechanism="antigen_downregulation",
            rule="positive_subclone_lost_antigen",
            reason=(
                f"{100 * down:.0f} % of antigen-negative relapse cells map to baseline subclone(s) "
                f"{', '.join(top('downregulation'))}, mostly {antigen_name(P)}-positive at baseline (negative ≤ "
                f"{100 * rows[c]['ci_high_baseline']:.0f} %), {'dim' if dim else 'negative'} at relapse"
            ),
        )
    else:
        worst = max(("unmapped", "unresolved", "persisting"), key=lambda k: shares[k])
        why = {
            "unmapped": "map to no baseline subclone (a state the baseline does not show)",
            "unresolved": "map to baseline subclone(s) whose antigen state cannot be resolved",
            "persisting": "belong to baseline-negative subclone(s) that did not expand",
        }[worst]
        out.update(
            mechanism="indeterminate",
            rule=f"no_route_{worst}",
            reason=(
                f"no mechanism explains ≥ {100 * P['min_call_share']:.0f} % of antigen-negative relapse cells: "
                f"{100 * shares[worst]:.0f} % {why}"
            ),
        )
    if d.zt is not None:
        decide_by_trace(d, P, out, gb=gb, gr=gr, dim=dim, interval=interval)
    return out


def _joint_downregulation_share(
    rows: dict[str, dict], mass: dict[str, float], P: dict[str, Any]
) -> None:
    """Share of the relapse negatives of the 'downregulation' subclones that exceeds their baseline negatives.

    Without differential expansion inside a subclone, subclone ``c`` supplies ``pi_c · n_c`` negative relapse
    cells from cells that were already negative at baseline (``pi_c`` its baseline negative fraction, ``n_c`` its
    relapse cells). The expected total ``E = Σ pi_c n_c`` is bounded from above one-sidedly,
    ``E + z_{1-alpha} · sqrt(Σ (se_c n_c)²)`` with ``se_c`` from the upper half of each profile interval; the
    negatives above that bound lost the antigen (downregulation), the rest stays unresolved. Writes
    ``downregulation_share`` into the rows (the same share for all of them).
    """
    from scipy import stats

    down = [c for c, r in rows.items() if r["route"] == "downregulation"]
    if not down:
        return
    neg = sum(mass[c] for c in down)
    n = np.array([rows[c]["n_relapse"] for c in down], float)
    pi = np.array([min(rows[c]["pi_baseline"], 1.0) for c in down], float)
    se = np.array([rows[c].get("ci_high_baseline", np.nan) for c in down], float)
    se = np.where(np.isfinite(se), np.maximum(se - pi, 0.0) / stats.norm.ppf(0.975), 0.0)
    z = float(stats.norm.ppf(1 - P["alpha"]))
    # a subclone cannot supply more persisting negatives than it has negative relapse cells
    m = np.array([mass[c] for c in down], float)
    bound = float(np.sum(np.minimum(pi * n, m)) + z * np.sqrt(np.sum((se * n) ** 2)))
    share = float(np.clip((neg - bound) / neg, 0.0, 1.0)) if neg > 0 else 0.0
    for c in down:
        rows[c]["downregulation_share"] = share
        rows[c]["persisting_bound"] = bound


# --------------------------------------------------------------------------- public


def classify_relapse(
    adata: AnnData,
    *,
    antigen: str = "CD7",
    lineage: str | None = None,
    min_relapse_cells: int = _CP.min_relapse_cells,
    min_baseline_cells: int = _CP.min_baseline_cells,
    retained_max_negative: float = _CP.retained_max_negative,
    preexisting_min_negative: float = _CP.preexisting_min_negative,
    downregulation_max_negative: float = _CP.downregulation_max_negative,
    mixed_min_share: float = _CP.mixed_min_share,
    min_expansion_fold: float = _CP.min_expansion_fold,
    n_bootstrap: int = _CP.n_bootstrap,
    min_call_share: float = _CP.min_call_share,
    dim_max_ratio: float = _CP.dim_max_ratio,
    max_uncertain_negative: float = _CP.max_uncertain_negative,
    lineage_max_ratio: float = _CP.lineage_max_ratio,
    trace_penalty: float = _CP.trace_penalty,
    negative_loss_max_confidence: float = _CP.negative_loss_max_confidence,
    bootstrap_mapping: bool = _CP.bootstrap_mapping,
    seed: int = 0,
    key_added: str = "classify",
) -> RelapseCall:
    """Call the relapse mechanism from malignant cells, the trace, the subclones and the antigen model.

    The logic is that of docs/method.md#classification. Rules, in order:

    1. fewer than ``min_baseline_cells`` / ``min_relapse_cells`` malignant cells (or fewer than the antigen
       model's ``min_cells`` at a timepoint) → ``indeterminate``;
    2. relapse blasts whose lineage program (``lineage``'s: T in T-ALL, B in B-ALL) is below
       ``lineage_max_ratio`` of baseline blasts' →
       ``lineage_switch`` (they are clone-linked: called malignant from CNV/TCR evidence, never the antigen);
    3. relapse negative fraction less than ``retained_max_negative`` above the baseline's and expression not
       dim → ``antigen_retained`` (``indeterminate`` when the upper bound still exceeds the baseline's by
       ``max_uncertain_negative``: low depth);
    4. otherwise, where did the antigen-negative relapse population grow? **The trace** (docs/method.md#the-trace):
       each baseline malignant cell is weighted by the density ratio of negative relapse mass to baseline cells
       at its place in the joint antigen-free space (cross-fitted logistic regression, ``trace_penalty``;
       capped so that the weight rests on at least the antigen model's ``min_cells``); the antigen model on
       the baseline cells so weighted gives ``pi_trace``, the share of the negative relapse population that
       grew from baseline cells already negative. Lower bound ≥ ``mixed_min_share`` and upper bound ≤
       1 − ``mixed_min_share`` and the negatives grew (``min_expansion_fold``, or significantly in share)
       → ``mixed``; ``pi_trace`` ≥ ``preexisting_min_negative`` with its
       lower bound ≥ ``mixed_min_share`` and that negative state expanded ≥ ``min_expansion_fold`` →
       ``preexisting_negative_clone``; upper bound < ``downregulation_max_negative``, or ``pi_trace`` <
       1 − ``min_call_share`` with even its upper bound giving less than ``min_expansion_fold`` expansion of
       those negatives, whose share did not grow significantly → ``antigen_downregulation``; else
       ``indeterminate`` with the detection limit.
       **The subclone routes**
       (each mapped baseline subclone's baseline negative fraction, expansion and share of the relapse
       negatives; ``min_call_share`` of them for a call; a negative subclone that grew significantly but less
       than ``min_expansion_fold`` counts towards ``mixed`` only) are the second link: a trace whose interval
       gives both routes weight but whose negatives did not grow, or whose negatives grew but whose lower
       bound falls short of ``mixed_min_share`` (upper bound ≤ 1 − ``mixed_min_share``), with a subclone
       ``mixed`` call, is ``mixed``; any other trace downregulation against a subclone pre-existing/mixed
       call, or a trace mixed call against a subclone pre-existing one, or a trace downregulation while subclones already
       negative at baseline supply ``mixed_min_share`` of the negative relapse cells, is ``indeterminate``;
       a trace whose few baseline cells are mostly positive (point below ``downregulation_max_negative``,
       upper bound below ``preexisting_min_negative``) confirms a subclone downregulation. Without a recorded joint space the subclone routes decide alone.

    Parameters
    ----------
    adata
        Patient AnnData with raw counts, ``obs['malignant']``, ``obs['timepoint']``, the antigen model of
        :func:`cd7escape.tl.antigen_state` and :func:`cd7escape.tl.subclones` (both run here with their
        defaults when missing).
    antigen
        Gene symbol of the CAR target.
    lineage
        The tumour's lineage (``'T'``, ``'B'``, ``'plasma'``): its program's loss is a lineage switch.
        Default: the one :func:`cd7escape.tl.call_malignant` recorded, else the antigen's.
    min_relapse_cells, min_baseline_cells
        Fewer malignant cells at that timepoint is ``indeterminate``.
    retained_max_negative
        Relapse negative fraction below this (and not dim) is ``antigen_retained``.
    preexisting_min_negative
        Negative share that makes a baseline subclone, or the traced baseline cells, antigen-negative.
    downregulation_max_negative
        Upper bound of the negative share below which they count as antigen-positive.
    mixed_min_share
        Share both routes must reach (at their lower bound, for the trace) for ``mixed``.
    min_expansion_fold
        Smallest relapse/baseline frequency ratio called an expansion.
    n_bootstrap
        Replicates of the confidence: cells resampled within each timepoint, the antigen model refitted and
        the trace redone on the drawn cells.
    min_call_share
        Share of the relapse negatives a subclone route must explain for a call.
    dim_max_ratio
        Relapse expression below this fraction of the baseline level (significantly) is dim.
    max_uncertain_negative
        A relapse whose negative fraction may exceed this is not called ``antigen_retained``.
    lineage_max_ratio
        Relapse lineage program below this fraction of the baseline's is ``lineage_switch``.
    trace_penalty
        L2 penalty of the trace's logistic regression (scikit-learn's ``1 / C``).
    negative_loss_max_confidence
        Highest confidence of an ``antigen_downregulation`` call whose relapse cells are negative rather than
        dim: a negative founder below the detection limit would make the same relapse (1: no ceiling).
    bootstrap_mapping
        Replicates also redraw each relapse cell's subclone link with probability its mapping confidence.
    seed
        Seed of the bootstrap.
    key_added
        The result goes to ``uns['cd7escape'][key_added]``.

    Negative fractions are those of the antigen mixture with the expressing level anchored at the baseline
    blasts' level (:func:`cd7escape.tl._antigen.anchored_fit`), so dropout zeros are not negatives.

    Returns
    -------
    :class:`RelapseCall`, also stored in ``uns['cd7escape'][key_added]`` (numbers: ``trace``,
    ``subclone_call``, ``routes``, ``shares``, ``timepoints`` …). With two or more relapse samples
    (``obs['sample']``: sites, or times), ``numbers['relapse_samples']`` holds one call per relapse sample
    (all baseline malignant cells against that sample's, with its own bootstrap confidence and
    ``obs['tissue']``); the patient's call pools them. With ``antigen_protein`` recorded by
    :func:`cd7escape.tl.antigen_state`, the protein decides (``numbers['measured_by']``) and the RNA call
    is ``numbers['rna_call']``; ``numbers['findings']`` lists findings such as ``protein_lost_rna_kept``.
    """
    spec = lineage_of(adata, lineage, antigen)
    P = {
        "antigen": antigen,
        "lineage": spec.name,
        "min_relapse_cells": int(min_relapse_cells),
        "min_baseline_cells": int(min_baseline_cells),
        "retained_max_negative": float(retained_max_negative),
        "preexisting_min_negative": float(preexisting_min_negative),
        "downregulation_max_negative": float(downregulation_max_negative),
        "mixed_min_share": float(mixed_min_share),
        "min_expansion_fold": float(min_expansion_fold),
        "n_bootstrap": int(n_bootstrap),
        "min_call_share": float(min_call_share),
        "dim_max_ratio": float(dim_max_ratio),
        "max_uncertain_negative": float(max_uncertain_negative),
        "lineage_max_ratio": float(lineage_max_ratio),
        "trace_penalty": float(trace_penalty),
        "negative_loss_max_confidence": float(negative_loss_max_confidence),
        "bootstrap_mapping": bool(bootstrap_mapping),
        "seed": int(seed),
    }
    for k in ("retained_max_negative", "preexisting_min_negative", "downregulation_max_negative",
              "mixed_min_share", "min_call_share", "dim_max_ratio", "max_uncertain_negative",
              "negative_loss_max_confidence"):  # fmt: skip
        if not 0 <= P[k] <= 1:
            raise InputError.single(f"{k} must be within [0, 1]", field=k)
    if n_bootstrap < 0:
        raise InputError.single("n_bootstrap must be ≥ 0", field="n_bootstrap")
    mal = malignant_mask(adata)
    bt, rt = timepoint_masks(adata)
    y_all, s_all = antigen_counts(adata, antigen)
    evidence: list[str] = []
    cells = np.flatnonzero(mal & (bt | rt))
    # a baseline screen (no relapse sample) still needs the baseline subclones
    enough = (mal & bt).sum() >= P["min_baseline_cells"] and (
        (mal & rt).sum() >= P["min_relapse_cells"] or not rt.any()
    )
    if enough and "subclone" not in adata.obs:
        from .._clones import subclones

        subclones(adata, antigen=antigen, seed=seed)
    sub = (
        adata.obs["subclone"].astype(object).to_numpy()[cells] if "subclone" in adata.obs else None
    )
    if sub is None:
        sub = np.full(cells.size, "all", dtype=object)
    sub = np.where(pd.isna(sub), UNMAPPED, sub).astype(str)
    # mapping confidence of each cell's subclone (baseline cells define their subclone: 1)
    key_conf = "subclone_confidence"
    mconf = (
        pd.to_numeric(adata.obs[key_conf], errors="coerce").to_numpy()[cells]
        if key_conf in adata.obs
        else np.ones(cells.size)
    )
    mconf = np.where(np.isfinite(mconf), np.clip(mconf, 0.0, 1.0), 1.0)
    mconf[~rt[cells]] = 1.0
    model = recorded_antigen_model(adata, antigen)
    # the antigen model's options decide here as they did in antigen_state (recorded with the call)
    P.update(model.options())
    ambient, theta, amb_source = model.ambient_rate, model.theta, model.ambient_source
    mu_ref, mu_src = reference_level(
        adata, y_all, s_all, mal, bt, ambient=ambient, theta=theta, min_cells=model.min_cells
    )
    tprog, tgenes = _lineage_program(adata, antigen, cells, spec.program)
    d = _Data(
        y=y_all[cells], s=s_all[cells], tp=rt[cells].astype(int), sub=sub, tprog=tprog,
        ambient=ambient, theta=theta, mu_ref=mu_ref,
        shift_floor=_level_shift_floor(adata, antigen, cells[~rt[cells]], cells[rt[cells]]),
    )  # fmt: skip
    space = _trace_space(adata, cells)
    if space is not None:
        d.zt, d.tlab, d.tcn = space
        d.orig, d.y0, d.s0 = np.arange(cells.size), d.y, d.s
    # measured protein decides what the CAR sees (docs/method.md#protein); the RNA decision stays beside it
    protein = recorded_protein_model(adata, mal & bt, min_cells=model.min_cells)
    rna_res = None
    y_rna, s_rna, rna_model = y_all, s_all, (ambient, theta, mu_ref)
    P["measured_by"] = "RNA"
    if protein is not None:
        with timed("classify_relapse: RNA decision (beside the protein's)"):
            rna_res = _decide(d, P, interval=True)
        P["measured_by"] = f"protein ({protein['feature']})"
        y_all, s_all = protein["counts"], np.ones(adata.n_obs)
        ambient, theta, mu_ref = protein["ambient"], protein["theta"], protein["mu_ref"]
        amb_source, mu_src = protein["ambient_source"], protein["mu_ref_source"]
        d = replace(
            d, y=y_all[cells], s=s_all[cells], ambient=ambient, theta=theta, mu_ref=mu_ref,
            null_theta=protein["null_theta"], shift_floor=None,
        )  # fmt: skip
        if space is not None:
            d.y0, d.s0 = d.y, d.s

    with timed("classify_relapse: decision"):
        res = _decide(d, P, interval=True)
    screen = None
    if not rt.any():  # no relapse sample at all: a baseline screen, not a failed comparison
        res, screen = _baseline_screen(d, P)
    mech = res["mechanism"]
    sc_entry = adata.uns.get(NS, {}).get("subclones", {})
    if res.get("rule") == "no_route_unmapped" and "detection_limit" in sc_entry:
        res["reason"] += (
            f"; pre-existence cannot be assessed: a subclone below {100 * float(sc_entry['detection_limit']):.1f} % "
            f"of {int(sc_entry['n_baseline_cells'])} baseline malignant cells is not resolved"
        )
    confidence, boot = _confidence(d, res, mconf, P)
    # several relapse samples (sites, or times): one call each beside the patient's
    per_sample = _relapse_sample_calls(adata, cells, d, mconf, P)
    # numbers
    tps = {}
    for name, key, m in (("baseline", "baseline", mal & bt), ("relapse", "relapse", mal & rt)):
        g = res.get(key)
        n = int(m.sum())
        # the naive figure is the RNA zero-count share whatever decides
        zero = float(np.mean(y_rna[m] == 0)) if n else None
        if g is None and n >= model.min_cells:
            g = group_antigen(y_all[m], s_all[m], **d.group_options(P))
        g = g or {}
        tps[name] = {
            "malignant_cells": n,
            "antigen_negative_fraction": g.get("pi"),
            "ci_low": g.get("ci_low"),
            "ci_high": g.get("ci_high"),
            "zero_count_fraction": zero,
            "lrt_pvalue": g.get("lrt_pvalue"),
            "expression_ratio": g.get("mu_ratio"),
            "state": g.get("state"),
            "detection_limit": detection_limit(
                n,
                g.get("pi"),
                g.get("ci_low"),
                g.get("ci_high"),
                g.get("lrt_pvalue"),
                alpha=model.alpha,
            ),
        }
    table = (
        adata.uns.get(NS, {}).get("subclones", {}).get("table") if "subclone" in adata.obs else None
    )
    sub_records = _jsonable(table) if isinstance(table, pd.DataFrame) else []
    numbers = {
        "timepoints": tps,
        "subclones": sub_records,
        "shares": res.get("shares", {}),
        "routes": res.get("routes", {}),
        "trace": res.get("trace", {}),
        "subclone_call": res.get("subclone_call", {}),
        "rule": res.get("rule"),
        "dim": res.get("dim"),
        "level_shift": res.get("level_shift"),
        "lineage_program_ratio": res.get("lineage_program_ratio"),
        "lineage_program_genes": tgenes,
        "ambient_rate": ambient,
        "ambient_source": amb_source,
        "theta": theta,
        "reference_level": mu_ref,
        "reference_level_source": mu_src,
        "bootstrap": {m: int(sum(x == m for x in boot)) for m in sorted(set(boot))},
        "n_unmapped_relapse": int(((d.tp == 1) & (d.sub == UNMAPPED)).sum()),
        "measured_by": P["measured_by"],
        "findings": [],
        "relapse_samples": per_sample,
        "screen": screen,
    }
    if "confidence_ceiling" in res:
        numbers["confidence_ceiling"] = res["confidence_ceiling"]
    if rna_res is not None:
        numbers["rna_call"] = _rna_beside(rna_res)
        lost = _protein_lost_rna_kept(
            adata, res, rna_res, cells, d, y_rna[cells], s_rna[cells], rna_model, P
        )
        if lost is not None:
            numbers["findings"].append(lost)
            res["reason"] += f"; {lost['text']}"
    evidence += _evidence(res, tps, numbers, P, adata)
    call = RelapseCall(
        mechanism=mech, confidence=confidence, reason=res["reason"], evidence=evidence,
        numbers=_jsonable(numbers), params=_jsonable(P),
    )  # fmt: skip
    record(
        adata,
        key_added,
        P,
        results={k: _plain_json(v) for k, v in call.to_dict().items() if k != "params"},
    )
    logger.info("classify_relapse: %s (confidence %.2f) — %s", mech, confidence, res["reason"])
    return call


def _confidence(
    d: _Data, res: dict[str, Any], mconf: np.ndarray, P: dict[str, Any]
) -> tuple[float, list[str]]:
    """Share of bootstrap replicates giving the call ``res`` made, and the replicates' calls.

    Cells are resampled within each timepoint, the antigen model refitted and the trace redone on the drawn
    cells; each relapse cell's clone link holds with probability its mapping confidence. A downregulation of
    antigen-negative relapse cells is held at most at ``negative_loss_max_confidence``
    (:func:`._founder_ceiling.hold_below_founder_ceiling`, which words it into ``res``).
    """
    share, boot = _agreement(d, res, mconf, P)
    return hold_below_founder_ceiling(res, share, P), boot


def _agreement(
    d: _Data, res: dict[str, Any], mconf: np.ndarray, P: dict[str, Any]
) -> tuple[float, list[str]]:
    """Share of bootstrap replicates giving the call ``res`` made, and the replicates' calls."""
    n_bootstrap = P["n_bootstrap"]
    if (
        not n_bootstrap
        or res.get("rule", "").startswith("too_few")
        or res.get("rule") == "baseline_screen"
    ):
        return 1.0, []  # a count threshold: no resampling can change it
    rng = np.random.default_rng(P["seed"])
    b_idx, r_idx = np.flatnonzero(d.tp == 0), np.flatnonzero(d.tp == 1)
    draws = []  # drawn here in order, so the calls do not depend on how they are spread over processes
    for _ in range(n_bootstrap):
        pick = np.concatenate([rng.choice(b_idx, b_idx.size), rng.choice(r_idx, r_idx.size)])
        keep = rng.random(pick.size) < mconf[pick] if P["bootstrap_mapping"] else None
        draws.append((pick, keep))
    with timed(f"classify_relapse: {n_bootstrap} bootstrap replicates"):
        boot = _bootstrap_calls(d, draws, P)
    return float(np.mean([m == res["mechanism"] for m in boot])), boot


def _baseline_screen(d: _Data, P: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The risk report of a patient with baseline samples only (no relapse to compare with).

    Baseline subclones whose cells are antigen-negative beyond dropout (group state ``negative`` or
    ``partly_negative`` under the anchored model) are the candidates of a pre-existing escape,
    each with its size and interval; without any, the upper end of the baseline's negative fraction bounds
    the share any antigen-negative state can hold (a wholly negative subclone of share ``f`` adds ``f``).
    """
    b = d.tp == 0
    nb = int(b.sum())
    kw = d.group_options(P)
    a = antigen_name(P)
    out: dict[str, Any] = {"n_baseline": nb, "n_relapse": 0, "mechanism": "indeterminate"}
    out["rule"] = "baseline_screen"
    g = group_antigen(d.y[b], d.s[b], **kw)
    if nb < P["min_baseline_cells"] or "pi" not in g:
        out["reason"] = (
            f"baseline screen (no relapse sample): only {nb} malignant baseline cells, too few to measure "
            f"{a} (at least {max(P['min_baseline_cells'], P['min_cells'])} needed)"
        )
        return out, {"malignant_cells": nb, "negative_subclones": []}
    out["baseline"] = g
    found = []
    for name in sorted(set(d.sub[b]) - {UNMAPPED}):
        cells = b & (d.sub == name)
        gc = group_antigen(d.y[cells], d.s[cells], **kw)
        # negative, or partly negative beyond dropout (interval above 5 %): a small negative state merged
        # into a larger positive subclone shows as the latter
        if gc.get("state") in ("negative", "partly_negative"):
            nc = int(cells.sum())
            found.append(
                {
                    "subclone": str(name), "cells": nc, "share": nc / nb,
                    "negative_fraction": gc["pi"], "ci_low": gc["ci_low"], "ci_high": gc["ci_high"],
                    "negative_cells": gc["pi"] * nc,
                }
            )  # fmt: skip
    found.sort(key=lambda r: -r["negative_cells"])
    overall = (
        f"{100 * g['pi']:.1f} % of {nb} malignant cells {a}-negative "
        f"(95 % CI {100 * g['ci_low']:.1f}–{100 * g['ci_high']:.1f} %)"
    )
    if found:
        listed = "; ".join(
            f"{r['subclone']} ({r['cells']} cells, {100 * r['share']:.1f} % of the blasts; "
            f"{100 * r['negative_fraction']:.0f} % {a}-negative, 95 % CI {100 * r['ci_low']:.0f}–"
            f"{100 * r['ci_high']:.0f} %)"
            for r in found
        )
        out["reason"] = (
            f"baseline screen (no relapse sample): {a}-negative malignant subclone(s) {listed}: candidates "
            f"for a {a}-negative escape under {a}-directed therapy; overall {overall}"
        )
    else:
        out["reason"] = (
            f"baseline screen (no relapse sample): no {a}-negative malignant subclone found; no "
            f"{a}-negative state above {100 * g['ci_high']:.1f} % (upper end of the 95 % CI) among {nb} "
            f"malignant cells ({overall})"
        )
    screen = {
        "malignant_cells": nb,
        "antigen_negative_fraction": g["pi"],
        "ci_low": g["ci_low"],
        "ci_high": g["ci_high"],
        "detection_limit": g["ci_high"],
        "negative_subclones": found,
    }
    return out, screen


def _relapse_sample_calls(
    adata, cells: np.ndarray, d: _Data, mconf: np.ndarray, P: dict[str, Any]
) -> list[dict[str, Any]]:
    """One call per relapse sample (all baseline cells against that sample's relapse cells).

    Empty when the relapse is one sample: the patient's call is then that sample's. Each call has its own
    bootstrap confidence, held below the founder ceiling as the patient's is (``confidence_ceiling``); a
    sample with too few malignant cells is ``indeterminate`` with that reason.
    """
    if "sample" not in adata.obs:
        return []
    samples = adata.obs["sample"].astype(str).to_numpy()[cells]
    tissue = (
        adata.obs["tissue"].astype(str).to_numpy()[cells]
        if "tissue" in adata.obs
        else np.full(cells.size, "unknown", dtype=object)
    )
    relapse = d.tp == 1
    names = sorted(pd.unique(samples[relapse]))
    if len(names) < 2:
        return []
    out = []
    for name in names:
        rows = np.flatnonzero(~relapse | (samples == name))
        ds = d.resampled(rows, d.sub[rows])
        with timed(f"classify_relapse: relapse sample {name}"):
            res = _decide(ds, P, interval=True)
            confidence, _ = _confidence(ds, res, mconf[rows], P)
        g = res.get("relapse") or {}
        out.append(
            {
                "sample": str(name),
                "tissue": str(tissue[samples == name][0]),
                "malignant_cells": int((relapse & (samples == name)).sum()),
                "mechanism": res["mechanism"],
                "confidence": confidence,
                "reason": res["reason"],
                "rule": res.get("rule"),
                # held like the patient's call (its ceiling and the replicates' own agreement), else None
                "confidence_ceiling": res.get("confidence_ceiling"),
                "antigen_negative_fraction": g.get("pi"),
                "ci_low": g.get("ci_low"),
                "ci_high": g.get("ci_high"),
            }
        )
    return out


def _trace_space(
    adata, cells: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None:
    """The trace's coordinates of ``cells`` in the joint antigen-free space, their clone labels and their
    copy-number features.

    None when :func:`cd7escape.tl.subclones` recorded no space (the subclone routes then decide alone). The
    labels are the confirmed copy-number subclones (None for a cell outside them; None for all when there
    are none); and each cell's log-likelihood ratio of carrying each copy-number state the relapse carries
    more than the baseline (``obsm['X_clone_cn']``; None when there is none). Cells without coordinates (non-finite) get the mean of
    the others: they then weigh like an average baseline cell.
    """
    key = "X_clone_trace"
    if key not in adata.obsm:
        return None
    z = np.asarray(adata.obsm[key], dtype=np.float64)[cells]
    ok = np.isfinite(z).all(axis=1)
    if ok.sum() < 2:
        return None
    z[~ok] = z[ok].mean(axis=0)
    confirmed = adata.uns.get(NS, {}).get("subclones", {}).get("cnv_confirmed", [])
    labels = None
    if "cnv_subclone" in adata.obs and len(confirmed):
        cnv = adata.obs["cnv_subclone"].astype(object).to_numpy()[cells]
        labels = np.where(np.isin(cnv.astype(str), [str(c) for c in confirmed]), cnv, None)
    copy_number = None
    if "X_clone_cn" in adata.obsm and np.shape(adata.obsm["X_clone_cn"])[1] > 0:
        copy_number = np.asarray(adata.obsm["X_clone_cn"], dtype=np.float64)[cells]
    return z, labels, copy_number


def _replicate_calls(d: _Data, draws: list, P: dict[str, Any]) -> list[str]:
    """The mechanism called on each bootstrap replicate ``(cells picked, clone links kept)``."""
    calls = []
    for pick, keep in draws:
        sub = d.sub[pick] if keep is None else np.where(keep, d.sub[pick], UNMAPPED)
        db = d.resampled(pick, sub)
        calls.append(_decide(db, P, interval=True)["mechanism"])
    return calls


def _bootstrap_calls(d: _Data, draws: list, P: dict[str, Any]) -> list[str]:
    """Replicate calls, spread over the CPUs this process may use when the work is worth a process.

    The replicates are independent and drawn beforehand, so the result is the same for any number of
    processes. Workers are spawned (not forked: BLAS and OpenMP threads do not survive a fork) and get the
    per-cell vectors only; this pays off from a few thousand malignant cells (~1-2 s to start a worker).
    Work is shared as it goes: the replicates are queued for the workers in small parts and this process
    takes parts from the back of the queue that no worker has started, so a worker that is slow to start
    does not leave its half for the end.
    """
    from ..._parallel import available_cpus

    n_jobs = min(available_cpus(), len(draws) // 4)
    if n_jobs < 2 or d.y.size < _PARALLEL_MIN_CELLS:
        return _replicate_calls(d, draws, P)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    parts = [draws[i : i + _BOOT_PART] for i in range(0, len(draws), _BOOT_PART)]
    results: list[list[str] | None] = [None] * len(parts)
    with ProcessPoolExecutor(n_jobs - 1, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_replicate_calls, d, part, P) for part in parts]
        for i in reversed(range(len(parts))):
            if futures[i].cancel():  # no worker has taken it: compute it here
                results[i] = _replicate_calls(d, parts[i], P)
        for i, future in enumerate(futures):
            if results[i] is None:
                results[i] = future.result()
    return [call for part in results for call in part]


#: Replicates per part of the shared bootstrap queue.
_BOOT_PART = 2


def _rna_beside(rna_res: dict[str, Any]) -> dict[str, Any]:
    """The RNA decision's call and negative fractions, kept beside the protein's."""
    out = {k: rna_res.get(k) for k in ("mechanism", "rule", "reason")}
    for t in ("baseline", "relapse"):
        g = rna_res.get(t) or {}
        out[t] = {k: g.get(k) for k in ("pi", "ci_low", "ci_high", "state")}
    return out


def _protein_lost_rna_kept(
    adata, res, rna_res, cells, d: _Data, y_rna, s_rna, rna_model: tuple[float, float, float], P
) -> dict[str, Any] | None:
    """The finding "protein lost with RNA kept" when the protein says loss and the RNA says retained.

    Per sample, the malignant cells whose RNA posterior says expressing (``P(negative) < 0.2``) and whose
    protein posterior says absent (``> 0.8``): post-transcriptional loss or masking of the epitope (e.g. by a
    CAR made in the leukemic cell), invisible to RNA alone. ``rna_model`` is the RNA decision's
    ``(ambient, theta, mu_ref)``.
    """
    from .._antigen import negative_posterior

    escaped = res.get("mechanism") in (
        "antigen_downregulation",
        "mixed",
        "preexisting_negative_clone",
    )
    if not escaped or rna_res.get("mechanism") != "antigen_retained":
        return None
    ambient, theta, mu_ref = rna_model
    kept_lost = np.zeros(d.y.size, dtype=bool)
    for code, tp in ((0, "baseline"), (1, "relapse")):
        at = d.tp == code
        g_rna, g_prot = rna_res.get(tp) or {}, res.get(tp) or {}
        p_rna = negative_posterior(
            y_rna[at], s_rna[at], pi=_prior(g_rna), mu_ref=mu_ref, ambient=ambient, theta=theta
        )
        p_prot = negative_posterior(
            d.y[at], d.s[at], pi=_prior(g_prot), mu_ref=d.mu_ref, ambient=d.ambient,
            theta=d.theta, null_theta=d.null_theta,
        )  # fmt: skip
        kept_lost[at] = (p_rna < 0.2) & (p_prot > 0.8)
    g_rna, g_prot = rna_res.get("relapse") or {}, res.get("relapse") or {}
    samples = (
        adata.obs["sample"].astype(str).to_numpy()[cells]
        if "sample" in adata.obs
        else np.where(d.tp == 1, "relapse", "baseline")
    )
    per_sample = {
        str(smp): {
            "malignant_cells": int((samples == smp).sum()),
            "rna_present_protein_absent": int((kept_lost & (samples == smp)).sum()),
        }
        for smp in pd.unique(samples)
    }
    a = str(P.get("antigen", "antigen"))
    text = (
        f"{a} protein lost with RNA kept: relapse blasts {100 * float(g_prot.get('pi', np.nan)):.0f} % "
        f"protein-negative but {100 * float(g_rna.get('pi', np.nan)):.0f} % RNA-negative (RNA alone calls "
        f"{rna_res['mechanism']}): post-transcriptional loss or masking of the epitope"
    )
    return {"finding": "protein_lost_rna_kept", "text": text, "per_sample": per_sample}


def _prior(g: dict[str, Any]) -> float:
    """A group's negative fraction as the prior of its cells' posteriors (kept off 0 and 1)."""
    pi = float(g.get("pi", 0.5))
    return min(max(pi if np.isfinite(pi) else 0.5, 1e-3), 1 - 1e-3)


def _plain_json(v: Any) -> Any:
    """h5ad-storable form of a JSON value (None → 'None', nested lists of dicts → JSON text)."""
    import json

    if (
        isinstance(v, (list, dict))
        and v
        and any(isinstance(x, (dict, list)) for x in (v.values() if isinstance(v, dict) else v))
    ):
        return json.dumps(v)
    return _plain(v)


def _evidence(res, tps, numbers, P, adata) -> list[str]:
    ev = []
    a = P["antigen"]
    for t in ("baseline", "relapse"):
        x = tps[t]
        if x["antigen_negative_fraction"] is not None:
            ev.append(
                f"{t}: {x['malignant_cells']} malignant cells, {a}-negative {100 * x['antigen_negative_fraction']:.1f} % "
                f"(95 % CI {100 * (x['ci_low'] or 0):.1f}–{100 * (x['ci_high'] or 0):.1f} %); naive zero-count "
                f"fraction {100 * (x['zero_count_fraction'] or 0):.1f} %"
            )
        else:
            ev.append(f"{t}: {x['malignant_cells']} malignant cells")
    for c, r in (res.get("routes") or {}).items():
        if r["negative_relapse_cells"] >= 1:
            ev.append(
                f"subclone {c}: {r['n_baseline']} baseline / {r['n_relapse']} relapse cells, fold "
                f"{r['fold']:.2f}, baseline negative {100 * r['pi_baseline']:.0f} % → route {r['route']}"
                if np.isfinite(r["pi_baseline"])
                else f"subclone {c}: {r['n_relapse']} relapse cells → route {r['route']}"
            )
    if numbers["n_unmapped_relapse"]:
        ev.append(
            f"{numbers['n_unmapped_relapse']} relapse malignant cells map to no baseline subclone"
        )
    sc = adata.uns.get(NS, {}).get("subclones", {})
    if "detection_limit_text" in sc:
        ev.append(str(sc["detection_limit_text"]))
    if res.get("dim"):
        ev.append(
            f"relapse expression at {100 * res['relapse']['mu_ratio']:.0f} % of baseline (dim)"
        )
    return ev
