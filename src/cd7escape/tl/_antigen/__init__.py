"""The dropout- and ambient-aware antigen model (docs/architecture.md, "AnnData keys").

:func:`antigen_state` (``_state``) fits the mixture of ``_model`` per group of cells; ``_mixture_search`` and
``_newton_log_mu`` are its compiled searches, ``_protein`` the ADT model, ``_groups`` the group numbers that
the subclone and classification steps read with the patient's recorded model.
"""

from ._groups import (
    AntigenModel,
    anchored_fit,
    group_antigen,
    negative_posterior,
    recorded_antigen_model,
    reference_level,
)
from ._model import (
    AntigenFit,
    estimate_ambient_rate,
    estimate_theta,
    fit_antigen_mixture,
    theta_interval,
)
from ._protein import recorded_protein_model
from ._state import antigen_state

__all__ = [
    "AntigenFit",
    "AntigenModel",
    "anchored_fit",
    "antigen_state",
    "estimate_ambient_rate",
    "estimate_theta",
    "fit_antigen_mixture",
    "group_antigen",
    "negative_posterior",
    "recorded_antigen_model",
    "recorded_protein_model",
    "reference_level",
    "theta_interval",
]
