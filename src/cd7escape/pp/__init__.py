"""Preprocessing: quality control and the antigen-free embedding."""

from ._embed import embed
from ._qc import qc

__all__ = ["embed", "qc"]
