"""The staged per-patient pipeline behind ``cd7escape run``."""

from ._run import PatientOutcome, run_config, summarize_config

__all__ = ["PatientOutcome", "run_config", "summarize_config"]
