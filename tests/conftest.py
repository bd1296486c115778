from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real validation data beside the repository; tests using it skip on a user's clone."""
    if not (SHARED_DATA / "carpall").is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def example_run(tmp_path_factory) -> Path:
    """The example cohort (configs/example.yaml) run once through the CLI; shared by every test module."""
    out = tmp_path_factory.mktemp("example")
    config = REPO / "configs" / "example.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "cd7escape.cli", "run", str(config), "--outdir", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out
