"""tl namespace."""

from ._malignant import call_malignant

__all__ = ["call_malignant"]
