"""scVI latent space: the baseline as an scArches reference with the later samples mapped onto it, or one joint model."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from .._errors import InputError
from .._logging import logger, timed

SCVI_INSTALL = "pip install 'cd7escape[scvi]'"

# The reference architecture of scvi-tools' scArches recipe (its "scArches" tutorial): layer norm instead of
# batch norm (no running statistics learnt on the reference alone) and the batch fed to every encoder
# layer, so that a query sample is new input columns only and everything learnt on the reference stays.
ARCHES_PARAMS: dict[str, Any] = dict(
    use_layer_norm="both",
    use_batch_norm="none",
    encode_covariates=True,
    dropout_rate=0.2,
    n_layers=2,
)

# below this many cells on either side a reference or a query model is not worth training: joint model
MIN_CELLS = 50


def scvi_missing() -> list[str]:
    """The packages of the ``scvi`` extra that are not installed (found without importing them)."""
    return [name for name in ("scvi", "torch") if importlib.util.find_spec(name) is None]


def require_scvi() -> None:
    """Raise :class:`~cd7escape._errors.InputError` (with the install command) when the extra is missing."""
    missing = scvi_missing()
    if missing:
        raise InputError.single(
            f"integration 'scvi' needs the scvi extra ({', '.join(missing)} not installed): "
            f"{SCVI_INSTALL}",
            field="integration",
        )


def scvi_latent(
    adata,
    hvg: np.ndarray,
    *,
    batch_key: str,
    layer: str,
    n_latent: int,
    max_epochs: int,
    mode: str = "query",
    reference: str = "baseline",
    timepoint_key: str = "timepoint",
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """scVI latent space of every cell on the features ``hvg``, and what was trained.

    ``mode='query'``: an scVI reference model is trained on the ``reference`` timepoint's cells (batch =
    their ``batch_key``) with the scArches architecture (``ARCHES_PARAMS``); the other cells are mapped
    onto it (``SCVI.prepare_query_anndata``, ``SCVI.load_query_data``): only the weights of their own
    batches are trained (``weight_decay=0``, everything learnt on the reference frozen), so a state only
    they show is not pulled onto reference cells as a joint model may pull it to explain it as batch.
    Without reference cells or without other cells (a patient with one timepoint, or fewer than
    ``MIN_CELLS`` on a side) the joint model is trained instead, and the log says so.
    ``mode='joint'``: one scVI model of all cells with ``batch_key`` as batch.

    Epochs are bounded by ``max_epochs`` and scvi-tools' heuristic (fewer beyond 20k cells), with early
    stopping on the validation ELBO (patience 10); a GPU is used when present (``accelerator='auto'``).

    Returns
    -------
    ``(latent, info)``: the cells × ``n_latent`` latent means, and ``info`` with ``mode`` (the one used),
    ``reference_samples``, ``query_samples`` (empty in joint mode), ``epochs_reference``,
    ``epochs_query`` (joint mode: the joint model's epochs as reference epochs, 0 for the query) and
    ``max_epochs_reference``, ``max_epochs_query``.
    """
    require_scvi()
    if mode not in ("query", "joint"):
        raise InputError.single(
            f"scvi_mode must be 'query' or 'joint', not {mode!r}", field="embed.scvi_mode"
        )
    import scvi

    scvi.settings.seed = seed
    sub = _counts_view(adata, hvg, batch_key=batch_key, layer=layer)
    samples = sub.obs["_batch"].to_numpy(dtype=str)
    is_ref = _reference_cells(adata, mode, reference, timepoint_key)
    if mode == "query" and is_ref is None:
        mode = "joint"

    latent = np.zeros((adata.n_obs, n_latent), dtype=np.float32)
    if mode == "joint":
        model, epochs, bound = _train(scvi.model.SCVI(_setup(sub), n_latent=n_latent), max_epochs)
        latent[:] = model.get_latent_representation()
        return latent, dict(
            mode="joint",
            reference_samples=sorted(map(str, set(samples))),
            query_samples=[],
            epochs_reference=epochs,
            epochs_query=0,
            max_epochs_reference=bound,
            max_epochs_query=0,
        )

    ref, query = sub[is_ref].copy(), sub[~is_ref].copy()
    with timed(f"embed: scVI reference on {ref.n_obs} {reference} cells × {ref.n_vars} genes"):
        ref_model, ref_epochs, ref_bound = _train(
            scvi.model.SCVI(_setup(ref), n_latent=n_latent, **ARCHES_PARAMS), max_epochs
        )
    with timed(f"embed: scArches query mapping of {query.n_obs} cells"):
        scvi.model.SCVI.prepare_query_anndata(query, ref_model)
        query_model = scvi.model.SCVI.load_query_data(query, ref_model)
        query_model, query_epochs, query_bound = _train(
            query_model, max_epochs, plan_kwargs={"weight_decay": 0.0}
        )
    latent[is_ref] = ref_model.get_latent_representation()
    latent[~is_ref] = query_model.get_latent_representation()
    return latent, dict(
        mode="query",
        reference_samples=sorted(map(str, set(samples[is_ref]))),
        query_samples=sorted(map(str, set(samples[~is_ref]))),
        epochs_reference=ref_epochs,
        epochs_query=query_epochs,
        max_epochs_reference=ref_bound,
        max_epochs_query=query_bound,
    )


def _counts_view(adata, hvg: np.ndarray, *, batch_key: str, layer: str):
    """A light AnnData: the counts of the features and the batch (not a copy of the whole patient)."""
    import anndata as ad
    import pandas as pd

    counts = adata.layers.get(layer, adata.X)
    cols = np.flatnonzero(np.asarray(hvg, dtype=bool))
    batch = (
        adata.obs[batch_key].astype(str).to_numpy()
        if batch_key in adata.obs
        else np.full(adata.n_obs, "all", dtype=object)
    )
    return ad.AnnData(
        X=counts[:, cols],
        obs=pd.DataFrame({"_batch": pd.Categorical(batch)}, index=adata.obs_names.copy()),
        var=pd.DataFrame(index=adata.var_names[cols].copy()),
    )


def _setup(sub):
    import scvi

    scvi.model.SCVI.setup_anndata(sub, batch_key="_batch")
    return sub


def _reference_cells(adata, mode: str, reference: str, timepoint_key: str) -> np.ndarray | None:
    """The reference cells of query mapping, or None (logged) when it falls back to the joint model."""
    if mode != "query":
        return None
    if timepoint_key not in adata.obs:
        logger.info(
            "embed: no obs[%r]; scVI query mapping falls back to a joint model", timepoint_key
        )
        return None
    is_ref = adata.obs[timepoint_key].astype(str).to_numpy() == reference
    n_ref, n_query = int(is_ref.sum()), int((~is_ref).sum())
    if min(n_ref, n_query) < MIN_CELLS:
        logger.info(
            "embed: %d %s and %d other cells (one timepoint, or fewer than %d on a side): "
            "scVI query mapping falls back to a joint model of all cells",
            n_ref,
            reference,
            n_query,
            MIN_CELLS,
        )
        return None
    return is_ref


def _train(model, max_epochs: int, **kwargs):
    """Train with bounded epochs and early stopping; the model, the epochs run and the bound."""
    from scvi.model._utils import get_max_epochs_heuristic

    bound = int(max(1, min(max_epochs, get_max_epochs_heuristic(model.adata.n_obs))))
    model.train(
        max_epochs=bound,
        accelerator="auto",  # a GPU when present
        early_stopping=True,
        early_stopping_patience=10,
        batch_size=1024,
        enable_progress_bar=False,
        **kwargs,
    )
    epochs = int(model.history["elbo_train"].shape[0])
    logger.info("embed: scVI trained %d of at most %d epochs", epochs, bound)
    return model, epochs, bound
