"""Layers only point down: the import-linter contract of pyproject.toml holds, and it would catch a
wrong-way import (also one inside a function)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "cd7escape"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path, *, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    """``lint-imports`` with the contract of ``cwd/pyproject.toml`` (no cache written)."""
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the test extra (import-linter)")
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", "pyproject.toml", "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_layers_only_point_down():
    out = _lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "line", "wrong_way"),
    [
        # a lazy import inside a function counts as much as one at the top
        ("report/_cohort.py", "\n\ndef _late():\n    from ..pipeline import _cache\n", "report"),
        ("pp/_qc.py", "\nfrom ..tl import call_malignant\n", "pp"),
        ("io/_sniff.py", "\nfrom .. import datasets\n", "io"),
        ("_uns.py", "\nfrom . import pl\n", "_uns"),
    ],
)
def test_a_wrong_way_import_breaks_the_contract(tmp_path, module, line, wrong_way):
    copy = tmp_path / "src" / "cd7escape"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(copy / module, "a", encoding="utf-8") as fh:
        fh.write(line)
    out = _lint_imports(tmp_path, pythonpath=tmp_path / "src")
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"cd7escape.{wrong_way} is not allowed to import" in out.stdout
