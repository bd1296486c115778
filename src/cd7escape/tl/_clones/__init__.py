"""Leukemic subclones at baseline and the relapse cells traced to them.

:func:`subclones` (``_subclones``) builds the baseline malignant-only space and maps relapse cells onto it
with ``_map_relapse``; ``_trace`` links relapse cells to the baseline cells they resemble, without a
clustering resolution, (Pearson residuals, Spearman correlation and genomic windows from compiled kernels).
"""

from ._subclones import UNMAPPED, fold_ci, subclones
from ._trace import ancestor_lists, ancestor_weights

__all__ = ["UNMAPPED", "ancestor_lists", "ancestor_weights", "fold_ci", "subclones"]
