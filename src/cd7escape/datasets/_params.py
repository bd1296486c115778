"""The simulator's fitted parameters (derived from real 10x data by scripts/fit_simulator_params.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

PARAMS_FILE = Path(__file__).parent / "_params" / "carpall_params.npz"
CELL_TYPES = ("T", "NK", "B", "myeloid", "erythroid")


@dataclass(frozen=True)
class FittedParams:
    """Per cell type gene proportions ``mu`` (sum 1), NB dispersions ``phi`` and log library sizes."""

    genes: np.ndarray
    gene_ids: np.ndarray
    chromosome: np.ndarray
    start: np.ndarray
    end: np.ndarray
    mu: dict[str, np.ndarray]
    phi: dict[str, np.ndarray]
    loglib: dict[str, tuple[float, float]]
    car_prop: tuple[float, float, float]
    info: dict

    def index(self, genes) -> np.ndarray:
        """Positions of the given symbols among ``genes`` (unknown symbols are skipped)."""
        pos = {g: i for i, g in enumerate(self.genes)}
        return np.array([pos[g] for g in genes if g in pos], dtype=int)


@lru_cache(maxsize=1)
def load_params() -> FittedParams:
    """Load (once) the shipped parameter file."""
    d = np.load(PARAMS_FILE)
    return FittedParams(
        genes=d["genes"].astype(str),
        gene_ids=d["gene_ids"].astype(str),
        chromosome=d["chromosome"].astype(str),
        start=d["start"].astype(np.int64),
        end=d["end"].astype(np.int64),
        mu={c: d[f"mu_{c}"].astype(np.float64) for c in CELL_TYPES},
        phi={c: d[f"phi_{c}"].astype(np.float64) for c in CELL_TYPES},
        loglib={c: (float(d[f"loglib_{c}"][0]), float(d[f"loglib_{c}"][1])) for c in CELL_TYPES},
        car_prop=tuple(float(x) for x in d["car_prop"]),
        info=json.loads(str(d["info_json"])),
    )
