"""The stages of a patient's run: each one a library call with the parameters that key its cache."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._config import Config, SampleSpec

#: Callbacks the runner hands to a stage that declares them in :attr:`Stage.hooks`.
#:
#: ``graph_ready``
#:     The stage builds the kNN graph the report's UMAP is laid out from (``pp.embed``): the runner
#:     starts a UMAP worker before the stage and passes its ``submit`` (or None when a worker would not
#:     pay off, and then lays the UMAP out in this process once the stage has finished).
HOOKS = frozenset({"graph_ready"})


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: ``run(adata, config, **hooks)`` modifies ``adata`` in place.

    The runner reads what a stage needs from its record, never from its name or position.

    Attributes
    ----------
    name
        Names its cache file (``<nn>-<name>-<key>.h5ad``) and its entry in the logs.
    description
        A few words; an optional stage's skip warning reads ``no <description>: <why>``.
    params
        What the stage depends on in the config: its part of the cache key.
    run
        The library call.
    needs_both_timepoints
        The stage compares baseline with relapse: before it runs, a patient whose baseline or relapse
        has no cell left (after QC) ends as ``indeterminate``, saying which samples failed QC.
    may_end_indeterminate
        When the data cannot support the stage (it raises :class:`~cd7escape._errors.InputError`), the
        patient ends as ``indeterminate`` with the stage's message. Otherwise the stage is skipped
        with a warning and the later stages say what is missing (no subclones: classify says why).
    hooks
        Names from :data:`HOOKS` that ``run`` takes as keyword arguments.
    matrices_final
        ``X`` and ``layers['counts']`` do not change after this stage (only ``pp.embed`` sets ``X``):
        from then on a thread writes the matrices of ``cells.h5ad`` while the later stages run.
    """

    name: str
    description: str
    params: Callable[[Config], dict[str, Any]]
    run: Callable[..., None]
    needs_both_timepoints: bool = True
    may_end_indeterminate: bool = True
    hooks: frozenset[str] = frozenset()
    matrices_final: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.hooks) - HOOKS
        if unknown:
            raise ValueError(f"stage {self.name!r}: unknown hooks {sorted(unknown)}")


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
    from .._errors import InputError
    from .._uns import NS

    tl.call_malignant(
        adata,
        antigen=config.antigen,
        lineage=config.lineage_spec.name,
        car_feature=config.car_feature,
        seed=config.seed,
        **config.malignant.model_dump(),
    )
    # nothing for the later stages to model: the patient ends here, saying what evidence fell short
    why = adata.uns[NS]["malignant"].get("none_found")
    if why:
        raise InputError.single(why, field="malignant")


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

    # the per-sample numbers first: they need no relapse and stay when the call cannot be made
    tl.sample_burden(adata, antigen=config.antigen, lineage=config.lineage_spec.name)
    tl.classify_relapse(
        adata,
        antigen=config.antigen,
        lineage=config.lineage_spec.name,
        seed=config.seed,
        **config.classify.model_dump(),
    )


def _section(name: str, *shared: str) -> Callable[[Config], dict[str, Any]]:
    def params(config: Config) -> dict[str, Any]:
        out = getattr(config, name).model_dump() if name else {}
        out.update({k: getattr(config, k) for k in shared})
        return out

    return params


STAGES: tuple[Stage, ...] = (
    # QC may leave a timepoint without cells; the stages after it need both
    Stage("qc", "quality control", _section("qc", "seed"), _qc, needs_both_timepoints=False),
    Stage(
        "embed",
        "embedding",
        _section("embed", "antigen", "integration", "car_feature", "seed"),
        _embed,
        hooks=frozenset({"graph_ready"}),
        matrices_final=True,
    ),
    Stage(
        "malignant",
        "malignant cells",
        _section("malignant", "antigen", "lineage", "car_feature", "seed"),
        _malignant,
    ),
    Stage(
        "antigen",
        "antigen model",
        _section("antigen_model", "antigen", "antigen_protein"),
        _antigen,
    ),
    # a patient without subclones (e.g. no baseline malignant cells) is still classified
    Stage(
        "clones",
        "subclones",
        _section("clones", "antigen", "seed"),
        _clones,
        may_end_indeterminate=False,
    ),
    Stage(
        "classify",
        "classification",
        _section("classify", "antigen", "lineage", "seed"),
        _classify,
    ),
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
        "lineage": config.lineage_spec.name,  # the receptor loci read
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
