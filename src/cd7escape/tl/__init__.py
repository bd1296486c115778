"""tl namespace: one sub-package per step (``_malignant``, ``_antigen``, ``_clones``, ``_classify``, ``_timeline``)."""

from ._antigen import antigen_state
from ._classify import RelapseCall, classify_relapse
from ._clones import subclones
from ._malignant import call_malignant
from ._timeline import sample_burden

__all__ = [
    "RelapseCall",
    "antigen_state",
    "call_malignant",
    "classify_relapse",
    "sample_burden",
    "subclones",
]
