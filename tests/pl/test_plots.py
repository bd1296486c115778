"""Plot functions: images compared with baselines, the scanpy-style return contract, clear errors.

Regenerate the baselines after an intended change of a plot (and look at them before committing)::

    CD7ESCAPE_UPDATE_BASELINES=1 pytest tests/pl/test_plots.py

A failing comparison leaves the new image and a diff image in pytest's tmp folder (path in the message).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.testing.compare import compare_images

import cd7escape as ce
from cd7escape._errors import InputError

BASELINE = Path(__file__).parent / "baseline"
#: RMS difference (0-255 scale) tolerated: font hinting and antialiasing, not a changed plot.
TOL = 2.0
UPDATE = os.environ.get("CD7ESCAPE_UPDATE_BASELINES") == "1"

PLOTS = {
    "umap": lambda a: ce.pl.umap(
        a, ["timepoint", "cell_class", "antigen_cell_state"], return_fig=True
    ),
    "antigen_distribution": lambda a: ce.pl.antigen_distribution(a, return_fig=True),
    "subclone_composition": lambda a: ce.pl.subclone_composition(a, return_fig=True),
    "cnv_heatmap": lambda a: ce.pl.cnv_heatmap(a, return_fig=True),
    "clonotype_sharing": lambda a: ce.pl.clonotype_sharing(a, return_fig=True),
}


@pytest.fixture(autouse=True)
def _style():
    # the same rc settings wherever the test runs
    with matplotlib.style.context("default"), matplotlib.rc_context({"font.family": "DejaVu Sans"}):
        yield


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_matches_baseline(name, toy_adata, tmp_path):
    fig = PLOTS[name](toy_adata)
    assert isinstance(fig, Figure)
    actual = tmp_path / f"{name}.png"
    fig.savefig(actual, dpi=80, metadata={"Software": None})
    expected = BASELINE / f"{name}.png"
    if UPDATE:
        expected.write_bytes(actual.read_bytes())
        pytest.skip(f"baseline {expected.name} written")
    assert expected.exists(), f"no baseline {expected}; run with CD7ESCAPE_UPDATE_BASELINES=1"
    result = compare_images(str(expected), str(actual), tol=TOL, in_decorator=True)
    assert result is None, f"{name} differs from its baseline: {result}"


def test_comparison_catches_a_changed_plot(toy_adata, tmp_path):
    """The tolerance is tight enough that a real change (a different colour) fails."""
    base = tmp_path / "a.png"
    changed = tmp_path / "b.png"
    ce.pl.subclone_composition(toy_adata, return_fig=True).savefig(base, dpi=80)
    a = toy_adata.copy()
    a.obs["subclone"] = a.obs["subclone"].cat.rename_categories({"S1": "S9"})
    ce.pl.subclone_composition(a, return_fig=True).savefig(changed, dpi=80)
    assert compare_images(str(base), str(changed), tol=TOL, in_decorator=True) is not None


def test_same_input_same_pixels(toy_adata, tmp_path):
    for i in range(2):
        ce.pl.antigen_distribution(toy_adata, return_fig=True).savefig(tmp_path / f"{i}.png")
    assert (tmp_path / "0.png").read_bytes() == (tmp_path / "1.png").read_bytes()


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_return_contract(name, toy_adata, tmp_path):
    fn = getattr(ce.pl, name)
    kwargs = {"color": "timepoint"} if name == "umap" else {}
    # an axes given: drawn into it, the axes come back when not shown
    fig, ax = plt.subplots()
    try:
        out = fn(toy_adata, ax=ax, show=False, **kwargs)
        assert out is ax
    finally:
        plt.close(fig)
    # save writes a file and, with show unset on a non-interactive backend, shows nothing
    path = tmp_path / "sub" / f"{name}.png"
    fn(toy_adata, save=path, **kwargs)
    assert path.stat().st_size > 1000
    # show=False without ax: the axes of a new figure
    out = fn(toy_adata, show=False, **kwargs)
    axes = out if isinstance(out, list) else [out]
    assert all(isinstance(a, matplotlib.axes.Axes) for a in axes)


def test_plots_do_not_leak_pyplot_figures(toy_adata):
    before = plt.get_fignums()
    for draw in PLOTS.values():
        draw(toy_adata)
    assert plt.get_fignums() == before


def test_subclone_composition_lays_out_dozens_of_subclones(toy_adata, recwarn):
    """52 subclones (a 100k-cell patient) in one legend column collapsed the layout."""
    a = toy_adata.copy()
    names = [f"S{i}" for i in range(52)]
    a.obs["subclone"] = pd.Categorical(np.resize(names, a.n_obs), categories=names)
    fig = ce.pl.subclone_composition(a, return_fig=True)
    fig.canvas.draw()
    assert not [w for w in recwarn if "constrained_layout" in str(w.message)]
    assert fig.axes[0].get_legend()._ncols == 3


def test_missing_results_say_what_to_run(toy_adata):
    a = toy_adata.copy()
    del a.obs["subclone"]
    with pytest.raises(InputError, match=r"tl\.subclones"):
        ce.pl.subclone_composition(a)
    del a.obsm["X_cnv"]
    with pytest.raises(InputError, match="call_malignant"):
        ce.pl.cnv_heatmap(a)
    del a.obsm["X_umap"]
    with pytest.raises(InputError, match=r"pp\.embed"):
        ce.pl.umap(a, "timepoint")
    with pytest.raises(InputError, match="antigen"):
        ce.pl.antigen_distribution(a, antigen="NOT_A_GENE")


def test_antigen_distribution_without_model_draws_naive_share_only(toy_adata):
    a = toy_adata.copy()
    a.uns["cd7escape"] = {}
    fig = ce.pl.antigen_distribution(a, return_fig=True)
    frac_ax = fig.axes[1]
    # the naive shares are drawn (one open marker per group), no model intervals
    markers = [line for line in frac_ax.lines if line.get_marker() == "o"]
    assert markers
    assert all(line.get_markerfacecolor() == "none" for line in markers)


def test_model_fraction_sources(toy_adata):
    from cd7escape._uns import model_fraction

    assert model_fraction(toy_adata, "relapse")["source"] == "classify"
    assert model_fraction(toy_adata, "relapse", "S1") == {
        "pi": 0.94, "ci_low": 0.88, "ci_high": 0.98, "source": "subclones",
    }  # fmt: skip
    a = toy_adata.copy()
    del a.uns["cd7escape"]["classify"]
    r = model_fraction(a, "relapse")
    assert r["source"] == "antigen"
    assert np.isclose(r["pi"], 0.71)
    assert model_fraction(a, "other") is None


def test_importing_pl_and_report_is_light():
    import subprocess
    import sys

    code = (
        "import sys, cd7escape.pl, cd7escape.report; "
        "print(','.join(m for m in ('scanpy', 'infercnvpy', 'torch', 'numba', 'matplotlib.pyplot') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_top_clonotypes_ranks_by_cells_then_name():
    import anndata as ad

    from cd7escape.pl._clonotype_sharing import top_clonotypes

    clones = ["TRB:CASZ"] * 3 + ["TRB:CASB"] * 2 + ["TRB:CASA"] * 2 + ["TRB:CASC"] + [None]
    tps = [
        "baseline",
        "relapse",
        "relapse",
        "baseline",
        "baseline",
        "relapse",
        "relapse",
        "baseline",
        "relapse",
    ]
    obs = pd.DataFrame({"clone_id": clones, "timepoint": tps}, index=[f"c{i}" for i in range(9)])
    top = top_clonotypes(ad.AnnData(obs=obs), n_top=3)
    assert list(top["clone_id"]) == ["TRB:CASZ", "TRB:CASA", "TRB:CASB"]
    assert list(top.index) == ["C1", "C2", "C3"]
    assert top.loc["C2", "cells_relapse"] == 2
    assert top.loc["C3", "cells_baseline"] == 2
    assert top["shared"].tolist() == [True, False, False]
    assert top.loc["C1", "share_relapse"] == pytest.approx(2 / 5)


def test_umap_names_many_categories_on_the_cells(toy_adata):
    """A legend taller than the panel would squeeze the panel to nothing (50 subclones at 100k cells)."""
    import warnings

    from cd7escape.pl._umap import LEGEND_MAX

    adata = toy_adata.copy()
    n = LEGEND_MAX + 10
    adata.obs["many"] = pd.Categorical([f"S{i % n}" for i in range(adata.n_obs)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # constrained layout warns when the axes collapse
        fig = ce.pl.umap(adata, ["timepoint", "many"], return_fig=True)
        fig.canvas.draw()
    few, many = fig.axes
    assert few.get_legend() is not None
    assert many.get_legend() is None
    assert sorted(t.get_text() for t in many.texts) == sorted(f"S{i}" for i in range(n))
    assert many.get_position().width > 0.5 * few.get_position().width


def test_cnv_heatmap_names_the_largest_groups_that_fit():
    from cd7escape.pl._cnv_heatmap import _spaced

    centers = np.array([0.0, 1.0, 2.0, 10.0, 11.0])
    assert _spaced(centers, [5, 1, 3, 2, 8], min_gap=3) == [0, 4]
    assert _spaced(centers, [5, 1, 3, 2, 8], min_gap=0.5) == [0, 1, 2, 3, 4]
