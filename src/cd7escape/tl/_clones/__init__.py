"""Leukemic subclones at baseline and the relapse cells traced to them.

:func:`subclones` (``_subclones``) builds the baseline malignant-only space and maps relapse cells onto it
with ``_map_relapse`` (Pearson residuals, Spearman correlation and genomic windows from compiled kernels).
``_trace`` finds, without a clustering resolution, the baseline cells that look like the antigen-negative
relapse population: a density ratio in the joint antigen-free space of both timepoints, beside each cell's
evidence of the copy-number states the relapse carries more than the baseline (``_relapse_copy_number``).
"""

from ._subclones import UNMAPPED, fold_ci, subclones
from ._trace import cap_weights, density_ratio, joint_space

__all__ = ["UNMAPPED", "cap_weights", "density_ratio", "fold_ci", "joint_space", "subclones"]
