"""Readers: 10x HDF5 / matrix folders / h5ad counts / Cell Ranger output folders, 10x VDJ contigs and AIRR rearrangements, samples and patients, configs.

Everything returns :class:`anndata.AnnData` with raw counts in ``X`` and ``layers['counts']``
(see ``docs/architecture.md``); bad input raises :class:`cd7escape._errors.InputError`.
"""

from __future__ import annotations

from ._airr import read_airr
from ._cellranger import find_cellranger_files
from ._gene_table import gene_table
from ._h5 import read_10x_h5
from ._h5ad import read_h5ad
from ._load_config import load_config
from ._mtx import read_10x_mtx
from ._patient import read_patient
from ._sample import read_sample
from ._validate import validate_config
from ._vdj import read_vdj

__all__ = [
    "find_cellranger_files",
    "gene_table",
    "load_config",
    "read_10x_h5",
    "read_10x_mtx",
    "read_airr",
    "read_h5ad",
    "read_patient",
    "read_sample",
    "read_vdj",
    "validate_config",
]
