"""tl namespace."""

from ._antigen import antigen_state
from ._classify import RelapseCall, classify_relapse
from ._malignant import call_malignant
from ._subclones import subclones

__all__ = ["RelapseCall", "antigen_state", "call_malignant", "classify_relapse", "subclones"]
