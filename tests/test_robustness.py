"""Robustness: atomic outputs, SIGKILL and resume, --force, determinism, fuzzed configs, output paths
that cannot leave outdir, escaped HTML. The bad-input corpus is in tests/bad_inputs/."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cd7escape._errors import InputError
from cd7escape.io import load_config, validate_config

CLI = [sys.executable, "-m", "cd7escape.cli"]
SRC = Path(__file__).resolve().parents[1] / "src" / "cd7escape"


# --- atomic outputs -------------------------------------------------------------------------------

_DIRECT_WRITE = re.compile(
    r"\.(write_text|write_bytes|write_h5ad|to_csv|to_parquet|savefig)\(|open\([^)]*['\"][wa]"
)
#: writes that are the atomic helpers themselves, or go to memory buffers
_ALLOWED = re.compile(r"\btmp\b|\(buf\b|pdf\.savefig|fig\.savefig\(path")


def test_outputs_are_written_through_atomic_helpers():
    """report/ and pipeline/ write files only via _files.atomic_write (temp file + os.replace).

    pl's ``savefig(path)`` is the user's own ``save=`` argument, outside a run's outputs.
    """
    offenders = []
    for folder in ("report", "pipeline"):
        for file in sorted((SRC / folder).glob("*.py")):
            for n, line in enumerate(file.read_text().splitlines(), 1):
                if line.lstrip().startswith("#") or "def " in line:
                    continue
                if _DIRECT_WRITE.search(line) and not _ALLOWED.search(line):
                    offenders.append(f"{file.relative_to(SRC)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_example_outputs_complete_and_shared(example_run: Path):
    """No temporary files left; outputs readable by others (mkstemp alone makes them owner-only)."""
    leftovers = [p for p in example_run.rglob("*.tmp")]
    assert not leftovers, leftovers
    for name in ("provenance.json", "cohort_summary.tsv", "P1/result.json", "P1/report.html"):
        mode = (example_run / name).stat().st_mode & 0o777
        assert mode & 0o044, f"{name} has mode {oct(mode)}"


# --- SIGKILL, resume, --force, determinism ---------------------------------------------------------


def _obs(path: Path, keys=("leiden", "subclone", "malignant", "cnv_subclone")) -> dict:
    import anndata as ad

    adata = ad.read_h5ad(path, backed="r")
    out = {k: adata.obs[k].astype(str).tolist() for k in keys if k in adata.obs}
    out["obs_names"] = adata.obs_names.tolist()
    adata.file.close()
    return out


@pytest.mark.slow
def test_sigkill_force_resume_is_identical_and_deterministic(
    example_run: Path, repo: Path, tmp_path
):
    """``run --force`` on P1's cached stages is killed with SIGKILL once it has redone ingest and qc;
    the next ``run`` resumes, and its result.json is byte-identical to the uninterrupted example run,
    with identical cluster and subclone labels (computed afresh in another process: determinism)."""
    out = tmp_path / "out"
    stages = out / "P1" / "stages"
    shutil.copytree(example_run / "P1" / "stages", stages)
    old = {p.name: p.stat().st_mtime for p in stages.glob("*.h5ad")}
    assert len(old) == 7
    started = time.time()
    config = repo / "configs" / "example.yaml"
    cmd = [*CLI, "run", str(config), "--outdir", str(out), "--patient", "P1"]
    proc = subprocess.Popen(
        [*cmd, "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            qc = list(stages.glob("01-qc-*.h5ad"))  # copies keep their old mtime; new files do not
            if qc and qc[0].stat().st_mtime > started:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed = {p.name: p.stat().st_mtime for p in stages.glob("*.h5ad")}
    assert set(killed) < set(old), "--force kept caches of later stages"
    assert all(killed[n] > started for n in killed), "--force did not rewrite the stage files"
    assert not (out / "P1" / "result.json").exists()
    import h5py

    for path in stages.glob("*.h5ad"):  # what a killed run left is complete, or a hidden temp file
        with h5py.File(path, "r") as f:
            assert "obs" in f

    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"resuming after stage '(ingest|qc|embed)'", (out / "run.log").read_text())
    assert not list(out.rglob("*.tmp")), "temp files of the killed run were not cleaned"
    assert (out / "P1" / "result.json").read_bytes() == (
        example_run / "P1" / "result.json"
    ).read_bytes()
    assert _obs(out / "P1" / "cells.h5ad") == _obs(example_run / "P1" / "cells.h5ad")


# --- fuzzed configs --------------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        ["CD7", "pca", "scvi", "baseline", "relapse", "samples.csv", "..", "/", "", "a\x00b", "~x"]
    ),
)
_keys = st.one_of(
    st.sampled_from(
        [
            "antigen",
            "samples",
            "outdir",
            "seed",
            "integration",
            "qc",
            "embed",
            "classify",
            "patient",
            "sample",
            "timepoint",
            "path",
            "vdj",
            "min_cells",
            "n_bootstrap",
        ]
    ),
    st.text(max_size=10),
    st.integers(-5, 5),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=5)),
    max_leaves=20,
)


def _check_config(tmp: Path, text: str) -> None:
    path = tmp / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
        messages = []
    except InputError as err:
        messages = [str(p) for p in err.problems] or [""]
    assert all(messages)  # every InputError carries problems, each with a message
    config, problems = validate_config(path)
    assert (config is None) == bool(problems)


_sample_rows = st.lists(
    st.fixed_dictionaries(
        {k: _scalars for k in ("patient", "sample", "timepoint", "path")},
        optional={k: _scalars for k in ("vdj", "malignant_labels", "raw_path", "tissue")},
    ),
    max_size=3,
)
_configs = st.fixed_dictionaries({"samples": _sample_rows | _scalars}) | st.dictionaries(
    _keys, _values, max_size=6
)
_ROW = {"patient": "P", "sample": "S", "timepoint": "baseline", "path": "x"}


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_configs | _values)
@example({"samples": "a\x00b"})
@example({"outdir": "\x00", "samples": [_ROW | {"path": "\x00"}]})
@example({"samples": [_ROW | {"vdj": "\x00"}]})
@example({1: 2, "samples": "samples.csv"})
def test_fuzzed_structured_config_never_crashes(tmp_path_factory, value):
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "samples.csv").write_text("patient,sample,timepoint,path\nP1,S1,baseline,x.h5\n")
    _check_config(tmp, yaml.safe_dump(value, allow_unicode=True))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.text(
        st.characters(blacklist_categories=("Cs",))
        | st.sampled_from(list(":-[]{}&*!|>'\"%@`#,\n ")),
        max_size=80,
    )
)
def test_fuzzed_text_config_never_crashes(tmp_path_factory, text):
    _check_config(tmp_path_factory.mktemp("fuzz"), text)


def test_nasty_yaml_in_process(tmp_path: Path):
    """The hostile YAML of the corpus (tests/bad_inputs, where each also goes through the CLI)."""
    sys.path.insert(0, str(Path(__file__).with_name("bad_inputs")))
    from corpus import NASTY_YAML

    for text, _ in NASTY_YAML.values():
        _check_config(tmp_path, text)
        _, problems = validate_config(tmp_path / "config.yaml")
        assert problems


# --- output paths stay inside outdir; HTML escaped -------------------------------------------------


def _sheet_config(tmp: Path, patient: str, sample: str) -> Path:
    config = tmp / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "outdir": "out",
                "samples": [
                    {"patient": patient, "sample": sample, "timepoint": "baseline", "path": "a.h5"}
                ],
            }
        )
    )
    return config


@pytest.mark.parametrize(
    "bad",
    ["../up", "/abs", "a/b", "a\\b", "..", ".", ".hidden", "x\x00y", "tab\there", "x" * 300, ""],
)
def test_ids_that_could_leave_outdir_are_refused(bad: str, tmp_path: Path):
    for patient, sample in ((bad, "S1"), ("P1", bad)):
        with pytest.raises(InputError):
            load_config(_sheet_config(tmp_path, patient, sample))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(min_size=1, max_size=40))
def test_accepted_ids_stay_inside_outdir(tmp_path_factory, ident: str):
    tmp = tmp_path_factory.mktemp("ids")
    try:
        config = load_config(_sheet_config(tmp, ident, ident))
    except InputError:
        return
    out = Path(config.outdir).resolve()
    for spec in config.samples:
        for part in (spec.patient, spec.sample):
            target = (out / part / "stages" / f"00-ingest-{part}.h5ad").resolve()
            assert target.is_relative_to(out / part)
            assert (out / part).resolve().parent == out


def test_user_strings_are_escaped_in_html(tmp_path: Path):
    from cd7escape.report import write_cohort
    from cd7escape.report._render import table

    evil = '<img src=x onerror="alert(1)">'
    (tmp_path / evil).mkdir()
    result = {"patient": evil, "mechanism": "indeterminate", "reason": "<script>alert(2)</script>"}
    (tmp_path / evil / "result.json").write_text(json.dumps(result))
    write_cohort(tmp_path, [evil])
    html = (tmp_path / "cohort.html").read_text()
    assert "<img src=x" not in html
    assert "<script>alert" not in html
    assert "&lt;img src=x" in html
    assert "&lt;script&gt;alert(2)" in html
    cell = str(table([{"sample": evil}]))
    assert "<img" not in cell
    assert "&lt;img" in cell
