"""Plots in scanpy style (``ax``, ``show``, ``save``, ``return_fig``), each reading what ``tl`` wrote."""

from ._antigen_distribution import antigen_distribution
from ._clonotype_sharing import clonotype_sharing
from ._cnv_heatmap import cnv_heatmap
from ._sample_timeline import sample_timeline
from ._subclone_composition import subclone_composition
from ._umap import umap

__all__ = [
    "antigen_distribution",
    "clonotype_sharing",
    "cnv_heatmap",
    "sample_timeline",
    "subclone_composition",
    "umap",
]
