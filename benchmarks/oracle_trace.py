"""What a trace that knew every cell's subclone would conclude from the antigen counts (benchmarks only).

The ancestors of the relapse cells that lost (or lowered) the antigen, weighted as the truth links them:
each baseline blast of subclone ``k`` stands for ``m_k / n_k`` relapse cells (``m_k`` relapse blasts of ``k``
that lost or lowered the antigen, ``n_k`` baseline blasts of ``k``). The run's own antigen model (reference
level, dispersion and ambient rate, from ``result.numbers``) on the baseline blasts so weighted gives their
negative share with its 95 % interval, and the trace's thresholds turn it into a call: interval within
[``mixed_min_share``, 1 − ``mixed_min_share``] → mixed; share ≥ ``preexisting_min_negative``, lower bound ≥
``mixed_min_share`` and significant → pre-existing; upper bound < ``downregulation_max_negative`` →
downregulation; otherwise indeterminate.

A miss where this oracle decides is a miss of the clone linking; where even the oracle cannot decide, the
antigen measurement at that depth is the limit. ``classify_grid.py`` and ``semisynthetic.py`` add its
columns (``oracle_call``, ``oracle_pi``, ``oracle_ci_low``, ``oracle_ci_high``) to each row.
"""

from __future__ import annotations

import numpy as np


def lost_at_relapse(
    level: np.ndarray, baseline: np.ndarray, relapse: np.ndarray, subclone: np.ndarray
) -> np.ndarray:
    """Per cell: its true antigen level is zero, or (a relapse blast) below its subclone's baseline mean.

    ``level`` is the truth's per-cell antigen level or keep probability (1 where untouched).
    """
    lost = level <= 0
    for k in np.unique(subclone[baseline]):
        # a relapse cell that keeps some antigen but less than its subclone had at baseline lowered it
        lost |= (
            relapse & (subclone == k) & (level < np.mean(level[baseline & (subclone == k)]) - 1e-9)
        )
    return lost


def oracle_trace(
    y: np.ndarray,
    s: np.ndarray,
    baseline: np.ndarray,
    relapse: np.ndarray,
    subclone: np.ndarray,
    lost: np.ndarray,
    numbers: dict,
) -> dict:
    """The oracle's call and interval; ``{"oracle_call": None}`` where the run fitted no antigen model.

    ``baseline``, ``relapse``: masks of the true blasts of each timepoint; ``subclone``: the true subclone
    per cell; ``lost``: per cell, whether its true antigen level at relapse fell (or is zero;
    :func:`lost_at_relapse`).
    """
    from cd7escape._config import AntigenParams, ClassifyParams
    from cd7escape.tl._antigen import anchored_fit

    if any(numbers.get(k) is None for k in ("reference_level", "theta", "ambient_rate")):
        return {"oracle_call": None}
    w = np.zeros(int(baseline.sum()))
    for k in np.unique(subclone[baseline]):
        kb, kr = baseline & (subclone == k), relapse & (subclone == k)
        w[subclone[baseline] == k] = (kr & lost).sum() / kb.sum()
    if w.sum() <= 0:
        return {"oracle_call": None}
    alpha = AntigenParams().alpha
    f = anchored_fit(
        y[baseline], s[baseline], weights=w, mu_ref=numbers["reference_level"],
        ambient=numbers["ambient_rate"], theta=numbers["theta"], alpha=alpha, interval=True,
        null_theta=None,
    )  # fmt: skip
    P = ClassifyParams()
    pi, lo, hi, m = f["pi"], f["ci_low"], f["ci_high"], P.mixed_min_share
    if lo >= m and hi <= 1 - m:
        call = "mixed"
    elif pi >= P.preexisting_min_negative and lo >= m and f["pval"] < alpha:
        call = "preexisting_negative_clone"
    elif hi < P.downregulation_max_negative:
        call = "antigen_downregulation"
    else:
        call = "indeterminate"
    return {"oracle_call": call, "oracle_pi": pi, "oracle_ci_low": lo, "oracle_ci_high": hi}
