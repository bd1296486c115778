"""tl namespace."""

from ._antigen import antigen_state
from ._malignant import call_malignant

__all__ = ["antigen_state", "call_malignant"]
