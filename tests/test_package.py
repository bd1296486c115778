"""Package-level contracts: lazy imports, a fast CLI, the function signature convention."""

from __future__ import annotations

import inspect
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


@pytest.mark.parametrize("namespace", ["pp", "tl"])
def test_anndata_functions_take_keyword_only_options(namespace):
    import cd7escape as ce

    ns = getattr(ce, namespace)
    for name in ns.__all__:
        fn = getattr(ns, name)
        if not inspect.isfunction(fn):
            continue
        params = list(inspect.signature(fn).parameters.values())
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        assert positional, f"{namespace}.{name} takes no positional parameter"
        assert positional[0].name == "adata", f"{namespace}.{name} must take adata first"
        assert len(positional) <= 3, f"{namespace}.{name} has too many positional parameters"
