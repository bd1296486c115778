"""Leukemic subclones at baseline and the relapse cells traced to them.

:func:`subclones` (``_subclones``) builds the baseline malignant-only space and maps relapse cells onto it
with ``_map_relapse`` (Pearson residuals, Spearman correlation and genomic windows from compiled kernels).
``_trace`` finds, without a clustering resolution, the baseline cells where the antigen-negative relapse
population grew: neighbourhoods of the joint antigen-free graph of both timepoints.
"""

from ._subclones import UNMAPPED, fold_ci, subclones
from ._trace import attribute, joint_space, neighbourhood_lists, neighbourhood_shares

__all__ = [
    "UNMAPPED",
    "attribute",
    "fold_ci",
    "joint_space",
    "neighbourhood_lists",
    "neighbourhood_shares",
    "subclones",
]
