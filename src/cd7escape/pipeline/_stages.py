"""The stages of a patient's run: each one a library call with the parameters that key its cache."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._config import Config, SampleSpec


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: ``run(adata, config, **hooks)`` modifies ``adata`` in place."""

    name: str
    description: str
    params: Callable[[Config], dict[str, Any]]
    run: Callable[..., None]


def car_features(adata, config: Config) -> list[str]:
    """The CAR transgene features that ingest found for ``car_feature`` (kept out of the embedding)."""
    from .._uns import NS
    from ..io._features import match_features

    recorded = adata.uns.get(NS, {}).get("ingest", {}).get("car_features")
    return (
        list(recorded)
        if recorded is not None
        else match_features(adata.var_names, config.car_feature)
    )


def _qc(adata, config: Config) -> None:
    from .. import pp

    pp.qc(adata, **config.qc.model_dump(), seed=config.seed)


def _embed(adata, config: Config, graph_ready=None) -> None:
    from .. import pp

    pp.embed(
        adata,
        antigen=config.antigen,
        integration=config.integration,
        exclude=tuple(car_features(adata, config)),
        seed=config.seed,
        # the runner lays out the UMAP beside the later stages (see _umap_job)
        **{**config.embed.model_dump(), "umap": False},
        graph_ready=graph_ready,
    )


def _malignant(adata, config: Config) -> None:
    from .. import tl

    tl.call_malignant(
        adata,
        antigen=config.antigen,
        car_feature=config.car_feature,
        seed=config.seed,
        **config.malignant.model_dump(),
    )


def _antigen(adata, config: Config) -> None:
    from .. import tl

    tl.antigen_state(
        adata,
        antigen=config.antigen,
        groupby="sample",
        antigen_protein=config.antigen_protein,
        **config.antigen_model.model_dump(),
    )


def _clones(adata, config: Config) -> None:
    from .. import tl

    tl.subclones(
        adata,
        antigen=config.antigen,
        seed=config.seed,
        # the malignant-only space is chosen as the embedding's was
        n_top_genes=config.embed.n_top_genes,
        antigen_corr_max=config.embed.antigen_corr_max,
        **config.clones.model_dump(),
    )


def _classify(adata, config: Config) -> None:
    from .. import tl

    tl.classify_relapse(
        adata, antigen=config.antigen, seed=config.seed, **config.classify.model_dump()
    )


def _section(name: str, *shared: str) -> Callable[[Config], dict[str, Any]]:
    def params(config: Config) -> dict[str, Any]:
        out = getattr(config, name).model_dump() if name else {}
        out.update({k: getattr(config, k) for k in shared})
        return out

    return params


STAGES: tuple[Stage, ...] = (
    Stage("qc", "quality control", _section("qc", "seed"), _qc),
    Stage(
        "embed",
        "embedding",
        _section("embed", "antigen", "integration", "car_feature", "seed"),
        _embed,
    ),
    Stage(
        "malignant",
        "malignant cells",
        _section("malignant", "antigen", "car_feature", "seed"),
        _malignant,
    ),
    Stage(
        "antigen",
        "antigen model",
        _section("antigen_model", "antigen", "antigen_protein"),
        _antigen,
    ),
    Stage("clones", "subclones", _section("clones", "antigen", "seed"), _clones),
    Stage("classify", "classification", _section("classify", "antigen", "seed"), _classify),
)


def ingest_params(samples: list[SampleSpec], config: Config) -> dict[str, Any]:
    """What the ingest stage depends on: the sample specs and the identity of every input file."""

    def fingerprint(path: str | None) -> list[Any] | None:
        if not path:
            return None
        p = Path(path)
        if p.is_dir():
            return sorted([f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in p.iterdir())
        return [p.stat().st_size, p.stat().st_mtime_ns] if p.exists() else None

    from .._version import __version__

    return {
        # caches made by another version of the code are not reused
        "version": __version__,
        "antigen": config.antigen,
        "car_feature": config.car_feature,
        "antigen_protein": config.antigen_protein,
        "samples": [
            {
                **s.model_dump(),
                "files": {
                    k: fingerprint(getattr(s, k))
                    for k in ("path", "vdj", "malignant_labels", "donor_assignment", "raw_path")
                },
            }
            for s in samples
        ],
    }
