"""The relapse-mechanism decision and its bootstrap confidence (:func:`classify_relapse`, ``_relapse``)."""

from ._relapse import RelapseCall, classify_relapse

__all__ = ["RelapseCall", "classify_relapse"]
