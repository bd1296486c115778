"""Package-level contracts: lazy imports and a fast CLI.

The function signature conventions are checked in ``test_package_structure.py``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = (
    "torch",
    "scvi",
    "scanpy",
    "numba",
    "pynndescent",
    "umap",
    "infercnvpy",
    "lightning",
    "faiss",
)


@pytest.mark.parametrize("stmt", ["import cd7escape", "import cd7escape.cli; cd7escape.cli.app"])
def test_deferred_imports(stmt):
    code = f"import sys; {stmt}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported eagerly: {out.stdout.strip()}"


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\n"
        "from cd7escape.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    for command in ("run", "validate", "simulate", "summarize"):
        assert command in out.stdout
    assert out.stderr.strip() == ""
