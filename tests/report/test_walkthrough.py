"""The example notebook runs end to end (io → pp → tl → pl → report), and its report opens in a browser.

This is also the report test on a real pipeline output: the notebook writes the report of a simulated
patient that went through every analysis step.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

import pytest
from browser_checks import console_errors, decoded_images, screenshot_stats

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "walkthrough.ipynb"
NEEDED = {
    "cd7escape.datasets": ["simulate_patient", "write_simulated"],
    "cd7escape.io": ["load_config", "read_patient"],
    "cd7escape.pp": ["qc", "embed"],
    "cd7escape.tl": ["call_malignant", "antigen_state", "subclones", "classify_relapse"],
    "cd7escape.pl": ["umap", "antigen_distribution", "subclone_composition", "clonotype_sharing"],
    "cd7escape.report": ["write_patient", "write_cohort"],
}


def _missing() -> list[str]:
    out = []
    for module, names in NEEDED.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:
            out.append(module)
            continue
        out += [f"{module}.{n}" for n in names if not hasattr(mod, n)]
    return out


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    missing = _missing()
    if missing:
        pytest.skip(f"not importable yet: {', '.join(missing)}")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    out = tmp_path_factory.mktemp("walkthrough")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    mp = pytest.MonkeyPatch()
    mp.setenv("CD7ESCAPE_NOTEBOOK_OUT", str(out))
    mp.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    start = time.perf_counter()
    try:
        nbclient.NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(out)}}
        ).execute()
    finally:
        mp.undo()
    return nb, out, time.perf_counter() - start


def test_notebook_runs(executed):
    nb, _out, seconds = executed
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors
    images = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]  # fmt: skip
    assert len(images) >= 5, "the pl cells should display their figures"
    print(f"walkthrough executed in {seconds:.1f} s")


def test_notebook_report(executed, browser):
    _, out, _ = executed
    pdir = out / "results" / "P1"
    result = json.loads((pdir / "result.json").read_text())
    assert result["patient"] == "P1"
    for tp in ("baseline", "relapse"):
        assert result["timepoints"][tp]["malignant_cells"] > 0
        assert result["timepoints"][tp]["zero_count_fraction"] is not None
    assert result["mechanism_called"] is True
    assert (out / "results" / "cohort_summary.tsv").exists()
    page = browser(pdir / "report.html")
    assert console_errors(page.log) == []
    images = decoded_images(page.dom)
    assert len(images) >= 4
    assert all(not isinstance(img, str) for _, img in images)
    std, ink = screenshot_stats(page.screenshot)
    assert std > 20
    assert ink > 0.03
