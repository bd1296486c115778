"""Writing results into AnnData the same way everywhere: parameters stored, keys logged."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._logging import logger
from ._version import __version__

NS = "cd7escape"


def record(
    adata,
    step: str,
    params: Mapping[str, Any],
    *,
    obs: Iterable[str] = (),
    obsm: Iterable[str] = (),
    layers: Iterable[str] = (),
    results: Mapping[str, Any] | None = None,
) -> None:
    """Store ``params`` (and ``results``) under ``adata.uns['cd7escape'][step]`` and log added keys."""
    entry: dict[str, Any] = {"params": _plain(dict(params)), "version": __version__}
    if results:
        entry.update(results)
    adata.uns.setdefault(NS, {})[step] = entry
    added = [f"'{k}'" for k in obs]
    lines = []
    if added:
        lines.append(f"    .obs {', '.join(added)}")
    if obsm:
        lines.append(f"    .obsm {', '.join(repr(k) for k in obsm)}")
    if layers:
        lines.append(f"    .layers {', '.join(repr(k) for k in layers)}")
    lines.append(f"    .uns['{NS}']['{step}']")
    logger.info("%s: added\n%s", step, "\n".join(lines))


def _plain(value: Any) -> Any:
    """Make parameters storable in h5ad (no None, tuples or numpy scalars)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None:
        return "None"
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value
