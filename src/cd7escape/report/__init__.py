"""Reports: per-patient result.json, report.html, figures and cells.h5ad; the cohort summary."""

from ._cohort import write_cohort
from ._patient import write_patient

__all__ = ["write_cohort", "write_patient"]
