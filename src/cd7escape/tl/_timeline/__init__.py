"""Per-sample numbers across the patient's samples in time order (:func:`sample_burden`, ``_burden``)."""

from ._burden import COLUMNS, TIMEPOINT_ORDER, sample_burden, wilson_interval

__all__ = ["COLUMNS", "TIMEPOINT_ORDER", "sample_burden", "wilson_interval"]
