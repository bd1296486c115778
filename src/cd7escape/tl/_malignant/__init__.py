"""Malignant cells from independent evidence: copy number, clonotype, blast program, lineage, the CAR.

:func:`call_malignant` (``_call``) combines the evidence that ``_cnv`` (with the ``_infercnv_core`` profile),
``_tcr_evidence``, ``_blast_program``, ``_cell_types``, ``_car`` and ``_copy_number_llr`` (a cell's own counts in
the leukemic clonotype's altered regions) compute; the antigen is never evidence. When no cell is
malignant, ``_none_found`` says why from the step's own record.
"""

from ._call import CELL_CLASSES, call_malignant
from ._cnv import gene_positions_frame

__all__ = ["CELL_CLASSES", "call_malignant", "gene_positions_frame"]
