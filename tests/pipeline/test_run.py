"""The runner (pipeline/_run.py): stage caches, what each Stage record declares, provenance.

The inputs are real (a simulated patient written as 10x files, read by ingest); the stages keep their
real records (names, parameters, declared fields) with their library calls replaced by cheap spies, and
the report by a writer of result.json alone, so a whole run takes about a second. The real stages run
end to end in tests/test_cli.py (the example) and tests/pipeline/test_umap_job.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import yaml

import cd7escape as ce
from cd7escape._errors import InputError
from cd7escape._uns import NS
from cd7escape.pipeline import _run, run_config
from cd7escape.pipeline._stages import HOOKS, STAGES, Stage

NAMES = [stage.name for stage in STAGES]


@pytest.fixture(scope="module")
def sheet(tmp_path_factory) -> Path:
    """A downregulation patient, 2 x 150 cells, as 10x files and a sample sheet."""
    adata = ce.datasets.simulate_patient("antigen_downregulation", seed=3, n_cells=150)
    folder = tmp_path_factory.mktemp("sim")
    ce.datasets.write_simulated(adata, folder)
    return folder / "samples.csv"


def _config(tmp_path: Path, sheet: Path, **sections) -> Path:
    config = {
        "antigen": "CD7",
        "car_feature": "CAR_CD7",
        "samples": str(sheet),
        "outdir": "out",
        "embed": {"umap": False},
    }
    for name, options in sections.items():
        config[name] = {**config.get(name, {}), **options}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Spy:
    """Stands in for the stages' library calls and the report; remembers what the runner passed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.actions: dict[str, object] = {}
        self.reported: dict[str, ad.AnnData] = {}
        self.cells_files: list[list[str]] = []

    def stages(self, records=STAGES) -> tuple[Stage, ...]:
        return tuple(dataclasses.replace(s, run=self._run(s.name)) for s in records)

    def _run(self, name: str):
        def run(adata, config, **hooks):
            self.calls.append((name, hooks))
            action = self.actions.get(name)
            if action is not None:
                action(adata, **hooks)
            adata.uns.setdefault(NS, {})[name] = {"params": {"spy": True}}

        return run

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def write_patient(self, adata, pdir, *, config, cells_file=None, umap=None):
        from cd7escape._files import atomic_write_text
        from cd7escape.report._result import build_result, dumps

        if umap is not None:
            umap()
        self.reported[pdir.name] = adata
        result = build_result(adata, config=config, patient=pdir.name)
        atomic_write_text(pdir / "result.json", dumps(result))
        return result

    def start_cells_file(self, adata, pdir, config):
        self.cells_files.append(sorted(adata.uns.get(NS, {})))


@pytest.fixture
def spy(monkeypatch) -> Spy:
    spy = Spy()
    monkeypatch.setattr(_run, "STAGES", spy.stages())
    monkeypatch.setattr("cd7escape.report.write_patient", spy.write_patient)
    monkeypatch.setattr(_run, "_start_cells_file", spy.start_cells_file)
    return spy


def _run_it(config: Path, spy: Spy, **kw) -> _run.PatientOutcome:
    spy.calls.clear()
    spy.cells_files.clear()
    [outcome] = run_config(config, progress=False, **kw)
    assert outcome.status == "done", outcome.error
    return outcome


def _caches(config: Path) -> dict[str, tuple[str, int]]:
    """Stage name -> (cache file name, mtime) of the patient's stage caches."""
    out = {}
    for path in (config.parent / "out" / "P1" / "stages").glob("*.h5ad"):
        name = path.name.split("-")[1]
        assert name not in out, f"two caches of {name}"
        out[name] = (path.name, path.stat().st_mtime_ns)
    return out


def _log(config: Path) -> str:
    return (config.parent / "out" / "run.log").read_text()


def _result(config: Path) -> dict:
    return json.loads((config.parent / "out" / "P1" / "result.json").read_text())


# --- caches ------------------------------------------------------------------------------------------


def test_second_run_reuses_every_cache(tmp_path, sheet, spy):
    config = _config(tmp_path, sheet)
    _run_it(config, spy)
    assert spy.names == NAMES
    first = _caches(config)
    assert sorted(first) == sorted(["ingest", *NAMES])
    assert [first[n][0][:2] for n in ["ingest", *NAMES]] == [f"{i:02d}" for i in range(7)]

    _run_it(config, spy)
    assert spy.names == []
    assert _caches(config) == first  # nothing rewritten
    assert "resuming after stage 'classify'" in _log(config)
    # the resumed AnnData is the cached one: every stage's record, the cells ingest read
    reported = spy.reported["P1"]
    assert {"ingest", *NAMES} <= set(reported.uns[NS])
    assert reported.n_obs == 300


@pytest.mark.parametrize(
    ("section", "option", "value", "first_redone"),
    [
        ("clones", "resolution", 0.9, "clones"),
        ("qc", "min_counts", 301, "qc"),
        ("classify", "n_bootstrap", 7, "classify"),
    ],
)
def test_a_changed_parameter_recomputes_its_stage_and_later_ones(
    tmp_path, sheet, spy, section, option, value, first_redone
):
    _run_it(_config(tmp_path, sheet), spy)
    before = _caches(tmp_path / "config.yaml")
    config = _config(tmp_path, sheet, **{section: {option: value}})
    _run_it(config, spy)
    redone = NAMES[NAMES.index(first_redone) :]
    assert spy.names == redone
    after = _caches(config)
    assert sorted(after) == sorted(before)  # the old caches of the redone stages are gone
    for name in before:
        if name in redone:
            assert after[name][0] != before[name][0], name  # a new key
        else:
            assert after[name] == before[name], name  # the same file, untouched
    kept = ["ingest", *NAMES][["ingest", *NAMES].index(first_redone) - 1]
    assert f"resuming after stage '{kept}'" in _log(config)


def test_force_recomputes_every_stage(tmp_path, sheet, spy):
    config = _config(tmp_path, sheet)
    _run_it(config, spy)
    before = _caches(config)
    _run_it(config, spy, force=True)
    assert spy.names == NAMES
    after = _caches(config)
    assert {n: f for n, (f, _) in after.items()} == {n: f for n, (f, _) in before.items()}
    assert all(after[n][1] > before[n][1] for n in after)


def test_a_lost_cache_in_the_middle_resumes_after_the_last_one(tmp_path, sheet, spy):
    """Resuming starts after the last stage cache found, as the caches chain their keys."""
    config = _config(tmp_path, sheet)
    _run_it(config, spy)
    stages = config.parent / "out" / "P1" / "stages"
    [antigen] = stages.glob("*-antigen-*.h5ad")
    [classify] = stages.glob("*-classify-*.h5ad")
    antigen.unlink()
    classify.unlink()
    _run_it(config, spy)
    assert spy.names == ["classify"]
    assert "resuming after stage 'clones'" in _log(config)


def _damage_truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _damage_flip(path: Path) -> None:
    """Same size, a few bytes changed in the middle: only the checksum tells."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 8] = bytes(b ^ 0xFF for b in data[mid : mid + 8])
    path.write_bytes(bytes(data))


def _damage_no_record(path: Path) -> None:
    path.with_name(path.name + ".sha256").unlink()


def _damage_unreadable_with_matching_record(path: Path) -> None:
    """Garbage whose checksum record was rewritten to match: reading it fails, still no traceback."""
    from cd7escape.pipeline._cache import file_digest, sidecar_path

    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 40)
    sidecar_path(path).write_text(json.dumps(file_digest(path)))


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (_damage_truncate, "truncated or damaged"),
        (_damage_flip, "checksum differs"),
        (_damage_no_record, "checksum record is missing"),
        (_damage_unreadable_with_matching_record, "cannot be read"),
    ],
)
def test_a_damaged_cache_is_detected_and_recomputed(tmp_path, sheet, spy, damage, why):
    config = _config(tmp_path, sheet)
    _run_it(config, spy)
    first = _result(config)
    stages = config.parent / "out" / "P1" / "stages"
    [classify] = stages.glob("*-classify-*.h5ad")
    assert classify.with_name(classify.name + ".sha256").is_file()
    damage(classify)
    _run_it(config, spy)
    log = _log(config)
    assert "the cache of stage 'classify'" in log
    assert why in log
    assert "Traceback" not in log
    assert spy.names == ["classify"]  # the stages before it came from their intact caches
    assert "resuming after stage 'clones'" in log
    assert _result(config) == first
    from cd7escape.pipeline._cache import verify

    [again] = stages.glob("*-classify-*.h5ad")
    assert verify(again) is None  # rewritten with a new record


def test_damage_in_several_caches_falls_back_to_the_last_intact_one(tmp_path, sheet, spy):
    config = _config(tmp_path, sheet)
    _run_it(config, spy)
    stages = config.parent / "out" / "P1" / "stages"
    for name in ("antigen", "clones", "classify"):
        [path] = stages.glob(f"*-{name}-*.h5ad")
        _damage_truncate(path)
    _run_it(config, spy)
    assert spy.names == ["antigen", "clones", "classify"]
    assert "resuming after stage 'malignant'" in _log(config)
    assert sorted(p.name.split("-")[1] for p in stages.glob("*.h5ad.sha256")) == sorted(
        ["ingest", *NAMES]
    )


def test_every_cache_has_a_matching_checksum_record(tmp_path, sheet, spy):
    from cd7escape.pipeline._cache import file_digest, sidecar_path

    config = _config(tmp_path, sheet)
    _run_it(config, spy)
    caches = sorted((config.parent / "out" / "P1" / "stages").glob("*.h5ad"))
    assert len(caches) == len(NAMES) + 1
    for path in caches:
        assert json.loads(sidecar_path(path).read_text()) == file_digest(path)


# --- what the Stage records declare ------------------------------------------------------------------


def test_the_stage_records_declare_the_special_cases():
    by_name = {s.name: s for s in STAGES}
    assert [s.name for s in STAGES if not s.needs_both_timepoints] == ["qc"]
    assert [s.name for s in STAGES if not s.may_end_indeterminate] == ["clones"]
    assert [s.name for s in STAGES if s.hooks] == ["embed"]
    assert by_name["embed"].hooks == {"graph_ready"} <= HOOKS
    assert [s.name for s in STAGES if s.matrices_final] == ["embed"]
    with pytest.raises(ValueError, match="unknown hooks"):
        Stage("x", "x", lambda c: {}, lambda a, c: None, hooks=frozenset({"nope"}))


class _FakeUmap:
    """A UMAP job whose worker is done as soon as it has the graph."""

    def __init__(self) -> None:
        self.submitted = False
        self.closed = False

    def submit(self, adata) -> None:
        self.submitted = True

    def done(self) -> bool:
        return self.submitted

    def attach(self, adata) -> None:
        adata.obsm["X_umap"] = np.zeros((adata.n_obs, 2))

    def close(self) -> None:
        self.closed = True


def test_declared_hooks_are_passed_and_the_umap_follows_the_graph(
    tmp_path, sheet, spy, monkeypatch
):
    job = _FakeUmap()
    monkeypatch.setattr(_run, "prepare_umap", lambda adata, config: job)
    spy.actions["embed"] = lambda adata, graph_ready: graph_ready(adata)
    config = _config(tmp_path, sheet)
    _run_it(config, spy)
    hooks = dict(spy.calls)
    assert hooks.pop("embed") == {"graph_ready": job.submit}
    assert all(h == {} for h in hooks.values())  # no stage gets what it did not declare
    # the layout came back after the stage that built the graph: its cache holds it
    stages = config.parent / "out" / "P1" / "stages"
    [embed] = stages.glob("*-embed-*.h5ad")
    assert "X_umap" in ad.read_h5ad(embed).obsm
    # cells.h5ad's matrices start once the stage declaring them final has run
    assert len(spy.cells_files) == 1
    assert "embed" in spy.cells_files[0]
    assert "malignant" not in spy.cells_files[0]


def test_without_a_worker_the_stage_offering_the_graph_gets_none(tmp_path, sheet, spy, monkeypatch):
    laid_out = []
    monkeypatch.setattr(
        _run, "start_umap", lambda adata, config: laid_out.append(sorted(adata.uns[NS]))
    )
    _run_it(_config(tmp_path, sheet), spy)
    assert dict(spy.calls)["embed"] == {"graph_ready": None}  # embed.umap is off: no worker
    # the layout in this process comes right after that stage
    assert len(laid_out) == 1
    assert "embed" in laid_out[0]
    assert "malignant" not in laid_out[0]


def test_resuming_after_the_final_matrices_starts_the_cells_file(tmp_path, sheet, spy):
    config = _config(tmp_path, sheet)
    _run_it(config, spy)
    for path in (config.parent / "out" / "P1" / "stages").glob("*.h5ad"):
        if path.name.split("-")[1] not in ("ingest", "qc"):
            path.unlink()
    _run_it(config, spy)  # resumes after qc: the matrices are not final yet
    assert spy.names == NAMES[1:]
    assert len(spy.cells_files) == 1
    assert "malignant" not in spy.cells_files[0]
    _run_it(config, spy)  # resumes after classify: at once
    assert len(spy.cells_files) == 1
    assert "classify" in spy.cells_files[0]


def test_a_stage_that_may_end_indeterminate_does(tmp_path, sheet, spy):
    def no_malignant(adata):
        raise InputError.single("no malignant cells in the baseline", field="malignant")

    spy.actions["malignant"] = no_malignant
    config = _config(tmp_path, sheet)
    _run_it(config, spy)
    assert spy.names == ["qc", "embed", "malignant"]  # the later stages are skipped
    result = _result(config)
    assert result["mechanism"] == "indeterminate"
    assert result["confidence"] == 1.0
    assert result["reason"] == (
        "The malignant step cannot run on these data: no malignant cells in the baseline."
    )
    assert result["numbers"] == {"rule": "timepoint_failed_qc"}
    assert "[P1] indeterminate: the malignant step" in _log(config)
    assert sorted(_caches(config)) == ["embed", "ingest", "qc"]
    _run_it(config, spy)  # a rerun tries the stage again
    assert spy.names == ["malignant"]
    assert _result(config)["mechanism"] == "indeterminate"


def test_a_stage_that_may_not_end_indeterminate_is_skipped(tmp_path, sheet, spy):
    def no_subclones(adata):
        raise InputError.single("no baseline malignant cells", field="clones")

    spy.actions["clones"] = no_subclones
    config = _config(tmp_path, sheet)
    _run_it(config, spy)
    assert spy.names == NAMES  # classify still runs and says why
    assert "[P1] no subclones: no baseline malignant cells" in _log(config)
    assert "indeterminate" not in _log(config)
    assert "clones" in _caches(config)


def test_the_runner_reads_the_records_not_the_names(tmp_path, sheet, spy, monkeypatch):
    """Swap the declarations of malignant and clones: the behaviours follow the records."""
    records = tuple(
        dataclasses.replace(s, may_end_indeterminate=s.name != "malignant") for s in STAGES
    )
    monkeypatch.setattr(_run, "STAGES", spy.stages(records))

    def refuse(adata):
        raise InputError.single("cannot", field="x")

    spy.actions["malignant"] = spy.actions["clones"] = refuse
    config = _config(tmp_path, sheet)
    _run_it(config, spy)
    assert spy.names == ["qc", "embed", "malignant", "antigen", "clones"]
    assert "[P1] no malignant cells: cannot" in _log(config)
    assert _result(config)["reason"].startswith("The clones step cannot run on these data")


def test_a_timepoint_lost_in_qc_ends_the_patient_before_the_stages_needing_both(
    tmp_path, sheet, spy
):
    spy.actions["qc"] = lambda adata: adata._inplace_subset_obs(
        (adata.obs["timepoint"] != "relapse").to_numpy()
    )
    config = _config(tmp_path, sheet)
    _run_it(config, spy)
    assert spy.names == ["qc"]
    result = _result(config)
    assert result["mechanism"] == "indeterminate"
    assert result["reason"].startswith("No relapse cells passed QC")
    assert result["reason"].endswith("a usable relapse sample is needed.")
    _run_it(config, spy)  # resumed after qc: the check comes before embed again
    assert spy.names == []
    assert _result(config)["reason"] == result["reason"]


# --- provenance ----------------------------------------------------------------------------------------


def test_provenance_records_the_run(tmp_path, sheet, spy):
    config = _config(tmp_path, sheet)
    outcome = _run_it(config, spy)
    out = config.parent / "out"
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["config_file"] == str(config.resolve())
    assert prov["config"]["embed"]["umap"] is False
    assert prov["seed"] == 0
    assert prov["versions"]["cd7escape"] == ce.__version__
    patient = prov["patients"]["P1"]
    assert patient == json.loads((out / "P1" / "provenance.json").read_text())
    assert patient["status"] == "done"
    assert patient["error"] is None
    assert list(patient["stages"]) == ["ingest", *NAMES, "report"]
    assert patient["stages"] == outcome.timings
    # a resumed run times only what it ran
    _run_it(config, spy)
    prov = json.loads((out / "provenance.json").read_text())
    assert list(prov["patients"]["P1"]["stages"]) == ["report"]


def test_an_internal_error_fails_the_patient_not_the_run(tmp_path, sheet, spy):
    def bug(adata):
        raise ZeroDivisionError("oops")

    spy.actions["antigen"] = bug
    config = _config(tmp_path, sheet)
    [outcome] = run_config(config, progress=False)
    assert outcome.status == "failed"
    assert outcome.error == "ZeroDivisionError: oops"
    prov = json.loads((config.parent / "out" / "provenance.json").read_text())
    assert prov["patients"]["P1"]["status"] == "failed"
    assert list(prov["patients"]["P1"]["stages"]) == ["ingest", "qc", "embed", "malignant"]
