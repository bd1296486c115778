"""Findings of result.json built from the malignant step (``obs['car_transduced']``)."""

from __future__ import annotations

from typing import Any

import numpy as np

#: time order of the timepoints a finding lists
TIME_ORDER = ("baseline", "product", "other", "remission", "relapse")


def _order(tp: str) -> tuple[int, str]:
    return (TIME_ORDER.index(tp) if tp in TIME_ORDER else len(TIME_ORDER), tp)


def car_transduced_finding(adata, antigen: str = "the antigen") -> list[dict[str, Any]]:
    """``[finding]`` when any cell is a CAR-transduced blast (``obs['car_transduced']``), else ``[]``.

    The finding (``car_transduced_blasts``) counts them per sample (with its timepoint and malignant
    cells) and per timepoint (product samples included), with a sentence for the top of the report.
    """
    obs = getattr(adata, "obs", None)
    if obs is None or "car_transduced" not in obs:
        return []
    flag = obs["car_transduced"].fillna(False).to_numpy(dtype=bool)
    if not flag.any():
        return []
    n = len(obs)
    malignant = (
        obs["malignant"].fillna(False).to_numpy(dtype=bool)
        if "malignant" in obs
        else np.zeros(n, dtype=bool)
    )
    sample = obs["sample"].astype(str).to_numpy() if "sample" in obs else np.full(n, "all")
    tp = obs["timepoint"].astype(str).to_numpy() if "timepoint" in obs else np.full(n, "")
    per_sample: dict[str, dict[str, Any]] = {}
    for s in sorted(set(sample), key=lambda s: (_order(str(tp[sample == s][0])), s)):
        at = sample == s
        per_sample[str(s)] = {
            "timepoint": str(tp[at][0]),
            "car_transduced": int((flag & at).sum()),
            "malignant_cells": int((malignant & at).sum()),
        }
    per_timepoint: dict[str, dict[str, Any]] = {}
    for t in sorted(set(tp), key=_order):
        at = tp == t
        per_timepoint[str(t) or "unknown"] = {
            "car_transduced": int((flag & at).sum()),
            "malignant_cells": int((malignant & at).sum()),
        }
    where = "; ".join(
        f"{t}: {v['car_transduced']} of {v['malignant_cells']} malignant cells"
        for t, v in per_timepoint.items()
        if v["car_transduced"]
    )
    text = (
        f"CAR-transduced blasts: {int(flag.sum())} malignant cells carry CAR transcripts ({where}; a "
        f"lower bound: CAR capture misses cells). "
        f"Leukemic cells were collected into the CAR-T product and transduced; a CAR on a blast can bind "
        f"{antigen} on the same cell and mask it from the CAR-T cells"
    )
    return [
        {
            "finding": "car_transduced_blasts",
            "text": text,
            "n_cells": int(flag.sum()),
            "per_sample": per_sample,
            "per_timepoint": per_timepoint,
        }
    ]
