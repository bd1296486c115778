"""The confidence ceiling of a loss that a hidden negative founder would mimic (docs/method.md "Confidence").

It applies to every ``antigen_downregulation`` call, whichever link (the trace or the subclone routes) made
it: :func:`hold_below_founder_ceiling` holds the replicates' agreement at
``classify.negative_loss_max_confidence`` where the relapse cells are antigen-negative rather than dim.
"""

from __future__ import annotations

from typing import Any

from ._trace_decision import antigen_name


def hold_below_founder_ceiling(res: dict[str, Any], share: float, P: dict[str, Any]) -> float:
    """The confidence of the call ``res`` whose bootstrap replicates agree ``share``, held below the ceiling
    of a downregulation that a hidden negative founder would mimic.

    Relapse cells that are antigen-negative (not dim) come either from positive cells that lost the antigen
    or from a negative founder that expanded. A founder below the detection limit (fewer baseline cells than
    the antigen model resolves, or hidden among the positive cells the trace weighs: its reason's
    hidden-founder bound) leaves the same data, and no resampling of the baseline cells can show it absent,
    so such a downregulation is held at ``negative_loss_max_confidence``. A dim relapse still expresses the
    antigen, which no negative founder does. Where the ceiling holds, its value and the replicates' own
    agreement go to ``res['confidence_ceiling']`` and the reason says so.
    """
    ceiling = float(P["negative_loss_max_confidence"])
    if res.get("mechanism") != "antigen_downregulation" or res.get("dim") or share <= ceiling:
        return share
    a = antigen_name(P)
    res["confidence_ceiling"] = {"ceiling": ceiling, "bootstrap_agreement": share}
    res["reason"] += (
        f"; confidence held at {ceiling:.2f} (the replicates agree {share:.2f}): the relapse cells are "
        f"{a}-negative, not dim, and a founder already {a}-negative but below the detection limit would leave "
        f"the same data by expanding"
    )
    return ceiling
