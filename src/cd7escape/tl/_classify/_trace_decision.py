"""The trace's decision: the relapse negatives attributed through the baseline cells they resemble.

:func:`decide_by_trace` is the last step of :func:`~._relapse.classify_relapse`'s decision (docs/method.md
"Classification"): the antigen model on the baseline cells weighted by the density ratio of negative
relapse mass (:func:`.._clones.density_ratio`), and the rules that turn its share of negative ancestors
into a mechanism, with the subclone routes' call as the second link. The helpers word its detection
limit and test whether the negatives grew.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ._relapse import _Data


def antigen_name(P: dict[str, Any]) -> str:
    """The antigen as the reasons name it (``CD7``, or ``CD7 protein`` where the protein measured it)."""
    name = str(P.get("antigen", "antigen"))
    return f"{name} protein" if P.get("measured_by", "RNA") != "RNA" else name


def trace_limit(a: str, floor: int, n_b: int, gb: dict[str, Any]) -> str:
    """The smallest pre-existing negative state the trace resolves, in words.

    ``floor`` cells (the antigen model's ``min_cells``). At low depth, where the baseline's own negative
    fraction cannot be told from none (its lower bound 0), the dropout and that fraction's upper bound are
    added: negatives spread through the baseline below that bound read as the dropout of expressing cells
    (a trace that localises them may still resolve fewer).
    """
    limit = (
        f"a pre-existing {a}-negative state of fewer than about {floor} baseline cells "
        f"({100 * floor / max(n_b, 1):.1f} % of {n_b} baseline malignant cells) cannot be resolved"
    )
    hidden = float(gb.get("ci_high", 0.0)) if float(gb.get("ci_low", 0.0)) <= 0 else 0.0
    if np.isfinite(hidden) and hidden * n_b > floor:
        limit += (
            f"; at this depth expressing cells read zero {100 * float(gb.get('dropout', np.nan)):.0f} % "
            f"of the time, and the baseline's own negative fraction is bounded only below "
            f"{100 * hidden:.0f} % ({int(np.ceil(hidden * n_b))} cells)"
        )
    return limit


def growth_low(pi: float, lo: float, q: float, gb: dict[str, Any]) -> float:
    """Lower confidence limit of ``q · pi_trace − pi_baseline``: did the negatives with negative ancestors
    grow in share (``q`` the relapse's negative share, ``lo`` the trace's lower limit)?

    Both fractions are measured on the same baseline cells, the trace's weighted: to first order the
    weighted estimate is the unweighted one plus an independent deviation, so their covariance is the
    baseline estimate's own variance and ``Var(q·a − b) = q²·Var(a) + (1 − 2q)·Var(b)``. Weights spread
    over all baseline cells leave only ``(1 − q)²·Var(b)``; weights on a few cells, about ``q²·Var(a)``.
    The variances are the squared half-widths of the profile intervals on the sides that matter (the
    trace's lower, the baseline's upper), the weighted one at least the unweighted one's (which keeps the
    sum at or above ``(1 − q)²·Var(b)``).
    """
    pi_b = float(gb["pi"])
    h_b = max(float(gb.get("ci_high", pi_b)) - pi_b, 0.0)
    h_a = max(pi - lo, h_b)
    return float(q * pi - pi_b - np.sqrt(max((q * h_a) ** 2 + (1 - 2 * q) * h_b**2, 0.0)))


def by_copy_number(n_states: int) -> str:
    """How the trace placed the ancestors beyond expression, for its reason."""
    if n_states == 0:
        return ""
    what = "a copy-number change" if n_states == 1 else f"{n_states} copy-number changes"
    return f"; placed by expression and {what} the relapse carries more than the baseline"


def decide_by_trace(
    d: _Data, P: dict[str, Any], out: dict[str, Any], *, gb, gr, dim: bool, interval: bool
) -> None:
    """Attribute the antigen-negative relapse cells through the baseline cells they resemble (the trace).

    Each relapse cell counts by its posterior probability of being negative (fully when the relapse is dim).
    Each baseline cell is weighted by the cross-fitted density ratio of negative relapse mass to baseline
    cells at its place in the joint antigen-free space (:func:`.._clones.density_ratio`), capped so that no
    cell stands for more than 1/``min_cells`` of the population (:func:`.._clones.cap_weights`). The antigen
    model on the baseline cells so weighted gives the share of the negative relapse population that grew from
    baseline cells already negative (``pi_trace``, with its profile interval). No cluster boundary enters: a
    small negative state inside a large positive subclone keeps its own weight. The relapse cells that are not
    negative stand beside the baseline cells as the classifier's other class, so that a change all relapse
    blasts share (therapy, batch) does not set the negatives apart. "Grew" compares ``pi_trace``
    with the baseline's negative fraction paired, since both are measured on the same baseline cells
    (:func:`growth_low`). The decision replaces the subclone routes' (kept
    in ``out`` as evidence):

    - lower bound ≥ ``mixed_min_share`` and upper bound ≤ 1 − ``mixed_min_share`` (both routes carry weight),
      and the negatives grew: ``min_expansion_fold`` or, for a large negative subclone that cannot grow that
      much, a relapse share significantly above the baseline negative fraction; and whole subclones show the
      positive route too (at least ``mixed_min_share`` of the negative relapse cells map to baseline subclones
      that were positive) → mixed; without that, ``indeterminate`` unless the next rule applies;
    - ``pi_trace`` ≥ ``preexisting_min_negative``, its lower bound ≥ ``mixed_min_share``, significantly > 0,
      and those negatives expanded (their relapse share ≥ ``min_expansion_fold`` times the baseline negative
      fraction) → pre-existing;
    - upper bound < ``downregulation_max_negative`` → downregulation (the stricter side: a wrong
      "downregulation" tells a clinician a baseline screen could not have seen the escape);
    - ``pi_trace`` < 1 − ``min_call_share`` and even its upper bound gives those negatives less than
      ``min_expansion_fold`` expansion over the baseline negative fraction, and their share did not grow
      significantly → downregulation (ancestors partly negative as the baseline at large was; existence is
      not expansion);
    - otherwise, or when the traced baseline cells are fewer than the antigen model's ``min_cells``
      (effective size), ``indeterminate`` with the detection limit.
    """
    from .._antigen import anchored_fit, negative_posterior
    from .._clones import cap_weights, density_ratio

    b, r = d.tp == 0, d.tp == 1
    if dim:
        mass = np.ones(int(r.sum()))
    else:
        mass = negative_posterior(
            d.y[r], d.s[r], pi=gr["pi"], mu_ref=d.mu_ref, ambient=d.ambient, theta=d.theta,
            null_theta=d.null_theta,
        )  # fmt: skip
    n0 = d.y0.size
    # per original cell: its copies as a baseline cell, and the negative relapse mass of its copies
    copies_b = np.bincount(d.orig[b], minlength=n0).astype(float)
    mass_r = np.bincount(d.orig[r], weights=mass, minlength=n0)
    # the relapse cells that are not negative stand beside the baseline cells against the negative mass:
    # a shift all relapse blasts share (therapy, batch) then no longer sets the negatives apart
    rest_r = np.bincount(d.orig[r], weights=1.0 - mass, minlength=n0)
    odds = density_ratio(
        d.zt, copies_b, mass_r, penalty=P["trace_penalty"], labels=d.tlab, copy_number=d.tcn,
        background=rest_r,
        seed=P["seed"],
    )  # fmt: skip
    centres = np.flatnonzero(copies_b > 0)
    # one row per drawn copy, as the replicate holds them (weights of copies, not of positions, set the
    # effective size)
    copies = np.repeat(centres, copies_b[centres].astype(int))
    # a linear log-ratio keeps growing along its direction, so a few cells at the far edge of a state would
    # stand for all of it: no baseline cell stands for more than 1/min_cells of the negative relapse
    # population (the antigen model's floor), so the trace never rests on fewer cells than that
    raw = np.nan_to_num(odds[copies], nan=0.0)
    w = cap_weights(raw, int(P["min_cells"]))
    fit = anchored_fit(
        d.y0[copies], d.s0[copies], weights=w, mu_ref=d.mu_ref, ambient=d.ambient, theta=d.theta,
        alpha=P["alpha"], interval=interval, null_theta=d.null_theta,
    )  # fmt: skip
    pi, lo, hi = fit["pi"], fit["ci_low"], fit["ci_high"]
    if not interval:
        lo = hi = pi
    n_b, n_r = int(b.sum()), int(r.sum())
    negative_mass = float(mass.sum())
    pi_b = float(gb["pi"])
    # the relapse share of negatives with negative ancestors (pi_trace × the relapse's negative share),
    # against the baseline's negative share; fold_high at the upper end of pi_trace
    q = negative_mass / max(n_r, 1)
    floor_b = max(pi_b, 0.5 / max(n_b, 1))
    fold = pi * negative_mass / max(n_r, 1) / floor_b
    fold_high = hi * negative_mass / max(n_r, 1) / floor_b
    # did they grow in share at all? A large negative subclone cannot grow min_expansion_fold-fold
    # (30 % → 45 % is 1.5-fold) yet supplies half the negative relapse cells
    grew = growth_low(pi, lo, q, gb) > 0
    # what a positive ancestry cannot rule out: a negative founder hidden among the traced cells, as many as
    # the upper bound of their negative share allows (a clone of a few baseline cells is below any trace)
    hidden = int(np.ceil(hi * fit["n"])) if np.isfinite(hi) else 0
    n_states = 0 if d.tcn is None else int(np.shape(d.tcn)[1])
    trace = {
        "pi": pi, "ci_low": lo, "ci_high": hi, "lrt_pvalue": fit["pval"], "n_effective": fit["n"],
        "n_cells": int(centres.size), "negative_relapse_cells": negative_mass,
        # Kish effective size of the weights before the cap: how many baseline cells the density ratio
        # itself rests on
        "n_effective_uncapped": float(raw.sum() ** 2 / max(float((raw**2).sum()), 1e-300)),
        "expansion_fold": float(fold), "expansion_fold_high": float(fold_high), "negatives_grew": grew,
        "hidden_founder_cells": hidden,
        "copy_number_states": n_states,
    }  # fmt: skip
    out["trace"] = trace
    a = antigen_name(P)
    limit = trace_limit(a, int(P["min_cells"]), n_b, gb)
    described = (
        f"the {negative_mass:.0f} antigen-negative relapse cells grew where {trace['n_cells']} baseline cells "
        f"lie (effective {fit['n']}{by_copy_number(n_states)}), {100 * pi:.0f} % {a}-negative "
        f"(95 % CI {100 * lo:.0f}–{100 * hi:.0f} %)"
    )
    m = P["mixed_min_share"]
    open_cells = max(
        hidden, 1
    )  # the negative founder the trace's upper bound leaves open, in cells
    founder = f"a pre-existing {a}-negative founder of up to {open_cells} of those cells cannot be excluded"
    both = lo >= m and hi <= 1 - m and (fold >= P["min_expansion_fold"] or grew)
    # the positive route of a mixed call must also show in whole subclones: negative relapse cells mapped to
    # baseline subclones that were positive. Where (nearly) none map to any subclone, the relapse lies off
    # the baseline's states (a small clone's expansion, a therapy shift) and the positive ancestors the trace
    # gives weight to are only the nearest cells of a population that resembles none of them
    shares = out.get("shares", {})
    down_seen = shares.get("downregulation", 0.0)
    if fit["n"] < P["min_cells"] or not np.isfinite(pi):
        call = ("indeterminate", "trace_too_few", f"{described}: too few to decide; {limit}")
    elif both and down_seen >= m:
        call = (
            "mixed",
            "trace_both",
            f"{described}, against the baseline's {100 * pi_b:.0f} %: some descend from negative baseline "
            f"cells, which grew {fold:.1f}-fold in share, some from positive ones",
        )
    elif pi >= P["preexisting_min_negative"] and lo >= m and fit["pval"] < P["alpha"]:
        call = (
            ("preexisting_negative_clone", "trace_negative_ancestors", f"{described}, and that negative state expanded {fold:.1f}-fold")
            if fold >= P["min_expansion_fold"]
            else ("indeterminate", "trace_negative_not_expanded", f"{described}, but that negative state did not expand ({fold:.1f}-fold)")
        )  # fmt: skip
    elif hi < P["downregulation_max_negative"]:
        call = (
            "antigen_downregulation",
            "trace_positive_ancestors",
            f"{described}: they lost {a} ({'dim' if dim else 'negative'} at relapse); {founder}",
        )
    elif pi < 1 - P["min_call_share"] and fold_high < P["min_expansion_fold"] and not grew:
        # ancestors partly negative, as the baseline at large was: those already negative did not expand
        # (existence is not expansion), and most of the negative relapse cells descend from positive ones
        call = (
            "antigen_downregulation",
            "trace_negatives_not_expanded",
            f"{described}, no more than the baseline's {100 * pi_b:.0f} %: the already-negative cells among them "
            f"did not expand (at most {fold_high:.1f}-fold), the rest lost {a} "
            f"({'dim' if dim else 'negative'} at relapse)",
        )
    elif both:
        call = (
            "indeterminate",
            "trace_positive_route_unseen",
            f"{described}, against the baseline's {100 * pi_b:.0f} %: the trace gives positive ancestors weight, "
            f"but only {100 * down_seen:.0f} % of the antigen-negative relapse cells map to baseline subclones "
            f"that were {a}-positive (a relapse off the baseline's states blurs the trace); {limit}",
        )
    else:
        # the floor says which states no trace resolves; this trace's own interval says how large a negative
        # state among the cells it weighs stays open (a state the space blends with positive look-alikes
        # can exceed the floor)
        call = (
            "indeterminate",
            "trace_unresolved",
            f"{described}: neither clearly negative nor positive; up to {open_cells} of the baseline cells "
            f"they resemble may have been {a}-negative, a pre-existing state that can be neither shown nor "
            f"excluded; {limit}",
        )
    by_subclones = {k: out.get(k) for k in ("mechanism", "rule", "reason")}
    trace["call"] = call[0]
    out["subclone_call"] = by_subclones
    mech, rule, reason = call
    if by_subclones["mechanism"] == "mixed" and (
        (rule == "trace_negatives_not_expanded" and lo >= m and hi <= 1 - m)
        or (rule == "trace_unresolved" and grew and hi <= 1 - m)
    ):
        # the trace gives both routes weight but cannot show the negatives grew, or shows they grew but
        # cannot bound the negative route's weight from below (a flat trace at low depth); whole subclones
        # show what the trace leaves open, and the trace excludes both pure routes: both links say mixed
        mech, rule = "mixed", "trace_and_subclones_mixed"
        reason = f"{described}, and {by_subclones['reason']}"
    elif mech == "mixed" and by_subclones["mechanism"] == "preexisting_negative_clone":
        # whole subclones trace most negatives to a negative subclone that expanded and hardly any to
        # positive ones, where the trace gives positive ancestors weight (a relapse shifted off the
        # baseline's states blurs the trace): no call rests on one link
        mech, rule = "indeterminate", "links_disagree"
        reason = f"{reason}; but by subclones: {by_subclones['reason']}"
    elif mech == "antigen_downregulation" and by_subclones["mechanism"] in (
        "preexisting_negative_clone",
        "mixed",
    ):
        # the finer link sees positive ancestors where a whole subclone was negative: no call rests on one
        mech, rule = "indeterminate", "links_disagree"
        reason = f"{reason}; but by subclones: {by_subclones['reason']}"
    elif (
        rule == "trace_unresolved"
        and by_subclones["mechanism"] == "antigen_downregulation"
        and pi < P["downregulation_max_negative"]
        and hi < P["preexisting_min_negative"]
    ):
        # the trace's ancestors are few (wide interval) but mostly positive and exclude a mostly-negative
        # ancestry, and whole subclones show the loss: both links point to downregulation
        mech, rule = "antigen_downregulation", "trace_and_subclones_positive"
        reason = f"{described}, and {by_subclones['reason']}; {founder}"
    negative_subclones = shares.get("preexisting", 0.0) + shares.get("persisting", 0.0)
    if mech == "antigen_downregulation" and negative_subclones >= m:
        # whole subclones that were already negative at baseline supply a mixed relapse's share of the
        # negative relapse cells: a trace that cannot tell them apart (low depth, a large negative subclone
        # that grew less than min_expansion_fold) is no ground for "lost the antigen"
        mech, rule = "indeterminate", "negative_subclones_carry_weight"
        reason = (
            f"{reason}; but {100 * negative_subclones:.0f} % of the antigen-negative relapse cells belong to "
            f"baseline subclones that were already {antigen_name(P)}-negative"
        )
    out.update(mechanism=mech, rule=rule, reason=reason)
