"""Leukemic subclones at baseline and the relapse cells traced to them.

:func:`subclones` (``_subclones``) builds the baseline malignant-only space and maps relapse cells onto it
with ``_map_relapse`` (Pearson residuals, Spearman correlation and genomic windows from compiled kernels).
"""

from ._subclones import UNMAPPED, fold_ci, subclones

__all__ = ["UNMAPPED", "fold_ci", "subclones"]
