"""pl.sample_timeline: one point per sample in time order, each series with its interval; clear errors."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

import cd7escape as ce
from cd7escape._errors import InputError


@pytest.fixture(scope="module")
def burdened(simulated_patients):
    adata = simulated_patients.copy("preexisting_700", malignant=True, cell_class=True)
    ce.tl.sample_burden(adata)
    return adata


def test_timeline_draws_each_series_in_time_order(burdened, tmp_path):
    with matplotlib.rc_context({"font.family": "DejaVu Sans"}):
        fig = ce.pl.sample_timeline(burdened, return_fig=True, save=tmp_path / "t.png")
    assert isinstance(fig, Figure)
    assert (tmp_path / "t.png").stat().st_size > 1000
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert [lab.split("\n")[0].split(" ")[0] for lab in labels] == ["baseline", "relapse"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == "malignant share of cells"
    assert "CD7-negative fraction of normal T cells (model)" in legend
    assert not any("donor" in t for t in legend)  # no donor assignment: no chimerism line
    table = ce._uns.table(burdened, "burden", "table")
    lines = {c.get_label(): c for c in ax.containers}
    y = lines["malignant share of cells"].lines[0].get_ydata()
    np.testing.assert_allclose(y, table["malignant_share"].to_numpy())


def test_timeline_returns_axes_and_needs_the_table(burdened, simulated_patients):
    ax = ce.pl.sample_timeline(burdened, show=False)
    assert not isinstance(ax, Figure)
    with pytest.raises(InputError, match="sample_burden"):
        ce.pl.sample_timeline(simulated_patients.copy("preexisting_700"), show=False)
