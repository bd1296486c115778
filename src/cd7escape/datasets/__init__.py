"""Simulated patients with known truth (``simulate_patient``) and writers to 10x/h5ad/VDJ files."""

from __future__ import annotations

from ._simulate import MECHANISMS, simulate_patient
from ._write import write_simulated

__all__ = ["MECHANISMS", "simulate_patient", "write_simulated"]
