"""Documentation that is generated must be current; the README's first lines must name the commands."""

from __future__ import annotations

import subprocess
import sys


def test_config_reference_is_current(repo):
    out = subprocess.run(
        [sys.executable, str(repo / "scripts" / "config_reference.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert (repo / "docs" / "config_reference.md").read_text() == out.stdout, (
        "run: python scripts/config_reference.py > docs/config_reference.md"
    )


def test_readme_starts_with_setup_and_test_commands(repo):
    head = (repo / "README.md").read_text().splitlines()[:6]
    assert any(line.startswith("make example") for line in head)
    assert any(line.startswith("make test") for line in head)
    ci = (repo / ".ci" / "run").read_text()
    assert "make example" in ci
    assert "make test" in ci
