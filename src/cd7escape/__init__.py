"""cd7escape: why did a T-ALL/T-LBL patient relapse after CD7 CAR-T therapy?

Scanpy-style namespaces working on :class:`anndata.AnnData`::

    import cd7escape as ce
    adata = ce.datasets.simulate_patient(mechanism="antigen_downregulation", seed=0)
    ce.pp.qc(adata)
    ce.pp.embed(adata)
    ce.tl.call_malignant(adata)
    ce.tl.antigen_state(adata)
    ce.tl.subclones(adata)
    call = ce.tl.classify_relapse(adata)

The namespaces are imported on first use so that ``import cd7escape`` and the command line stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:
    from . import datasets, io, pl, pp, report, tl

__all__ = ["__version__", "datasets", "io", "pl", "pp", "report", "tl"]

_SUBMODULES = {"datasets", "io", "pl", "pp", "report", "tl", "pipeline"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'cd7escape' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES)
