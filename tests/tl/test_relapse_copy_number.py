"""Copy-number states the relapse carries more than the baseline, and each cell's evidence of them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cd7escape.tl._clones._map_relapse import genomic_windows
from cd7escape.tl._clones._relapse_copy_number import relapse_copy_number

N_GENES = 600  # 300 genes on each of two chromosomes


def _var() -> pd.DataFrame:
    var = pd.DataFrame(
        {
            "chromosome": ["chr1"] * 300 + ["chr2"] * 300,
            "start": np.r_[np.arange(300), np.arange(300)],
        },
        index=[f"g{i}" for i in range(N_GENES)],
    )
    return var


def _cells(rng, n: int, carriers: int, *, lost=slice(300, 450)) -> np.ndarray:
    """``n`` cells at varying depth over genes of varying level; the first ``carriers`` lose one copy of the
    genes ``lost`` (half their counts)."""
    level = np.exp(
        np.random.default_rng(99).normal(0, 1, N_GENES)
    )  # the same genes in every sample
    level /= level.sum()
    depth = rng.lognormal(np.log(1500), 0.4, n)
    mu = depth[:, None] * level[None, :] * rng.gamma(10, 0.1, (n, N_GENES))
    mu[:carriers, lost] *= 0.5
    return rng.poisson(mu).astype(np.float32)


def _states(xb, xr):
    win = genomic_windows([sp.csr_matrix(xb), sp.csr_matrix(xr)], _var(), antigen="none")
    return relapse_copy_number(win, sp.csr_matrix(xb), sp.csr_matrix(xr))


@pytest.mark.parametrize("seed", range(3))
def test_a_loss_the_relapse_grew_is_found_and_read_in_each_cell(seed):
    rng = np.random.default_rng(seed)
    xb = _cells(rng, 300, 30)  # 10 % of the baseline carries a loss of half of chr2
    xr = _cells(rng, 250, 200)  # 80 % of the relapse
    states, llr = _states(xb, xr)
    assert len(states) == 1
    s = states[0]
    assert (s["chromosome"], s["sign"]) == ("chr2", -1)
    # a loss of one copy of two; windows straddling the segment's end dilute it with unchanged genes
    assert 0.45 < s["rate_ratio"] < 0.7
    assert s["baseline_share"] == pytest.approx(0.1, abs=0.05)
    assert s["relapse_share"] == pytest.approx(0.8, abs=0.08)
    assert llr.shape == (550, 1)
    # the baseline carriers stand out by their own counts
    from scipy.stats import mannwhitneyu

    carrier = np.r_[np.ones(30, bool), np.zeros(270, bool)]
    auc = mannwhitneyu(llr[:300, 0][carrier], llr[:300, 0][~carrier]).statistic / (30 * 270)
    assert auc > 0.95


@pytest.mark.parametrize("seed", range(3))
def test_a_loss_the_relapse_holds_as_the_baseline_did_is_no_relapse_state(seed):
    rng = np.random.default_rng(seed)
    xb = _cells(rng, 300, 30)
    xr = _cells(rng, 250, 25)  # the same 10 %: the relapse grew from the whole clone
    states, llr = _states(xb, xr)
    assert states == []
    assert llr.shape == (550, 0)


def test_too_few_cells_look_for_nothing():
    rng = np.random.default_rng(0)
    states, llr = _states(_cells(rng, 300, 30), _cells(rng, 10, 10))
    assert states == []
    assert llr.shape == (310, 0)


def _genome(spacing: float) -> pd.DataFrame:
    """Ten chromosomes of 200 genes each, ``spacing`` bp apart."""
    return pd.DataFrame(
        {
            "chromosome": np.repeat([f"chr{c}" for c in range(1, 11)], 200),
            "start": np.tile(np.arange(200), 10) * spacing,
        },
        index=[f"g{i}" for i in range(2000)],
    )


@pytest.mark.parametrize("seed", range(3))
def test_a_faint_change_is_a_state_where_it_spans_an_arm_and_not_where_it_spans_a_gene_cluster(
    seed,
):
    """12 % of the relapse lose a copy of chr3, which moves its windows by 3-5 robust s.d. and less than a
    window alone must move. The same counts are a state when the genes span 100 Mb, and not when they span
    10 Mb, as the genes of one program would."""
    level = np.exp(np.random.default_rng(99).normal(0, 1, 2000))
    level /= level.sum()
    rng = np.random.default_rng(seed)

    def cells(n: int, carriers: int) -> np.ndarray:
        depth = rng.lognormal(np.log(3000), 0.4, n)
        mu = depth[:, None] * level[None, :] * rng.gamma(10, 0.1, (n, 2000))
        mu[:carriers, 400:600] *= 0.5
        return rng.poisson(mu).astype(np.float32)

    xb, xr = sp.csr_matrix(cells(300, 0)), sp.csr_matrix(cells(250, 30))
    found = {}
    for name, spacing in (("arm", 5e5), ("cluster", 5e4)):
        win = genomic_windows([xb, xr], _genome(spacing), antigen="none")
        found[name], _ = relapse_copy_number(win, xb, xr)
    assert found["arm"]
    assert {(s["chromosome"], s["sign"]) for s in found["arm"]} == {("chr3", -1)}
    assert all(s["relapse_share"] == pytest.approx(0.12, abs=0.04) for s in found["arm"])
    assert found["cluster"] == []


def test_windows_that_stand_out_alone_place_the_segment_and_a_faint_run_needs_its_width():
    from cd7escape.tl._clones._map_relapse import GenomicWindows
    from cd7escape.tl._clones._relapse_copy_number import _segments

    # chr1: 8 windows of 10 genes 2 Mb apart (160 Mb); chr2: 8 windows of 10 genes 0.1 Mb apart (8 Mb)
    windows = [np.arange(10 * i, 10 * i + 10) for i in range(16)]
    names = [f"chr1:{i}" for i in range(8)] + [f"chr2:{i}" for i in range(8)]
    starts = np.r_[np.arange(80) * 2e6, np.arange(80) * 1e5]
    win = GenomicWindows([], windows, names, np.arange(160), starts)
    stat = np.full(16, -0.1)
    # chr1: windows 1-3 faint, 2 also stands out alone -> the strong window alone
    # chr1: windows 6-7 faint only, 38 Mb -> the run; chr2: windows 9-11 faint only, 3 Mb -> nothing
    changed = [1, 2, 3, 6, 7, 9, 10, 11]
    assert _segments(win, changed, {2}, stat) == [(-1, [2]), (-1, [6, 7])]
    assert _segments(win, changed, set(), stat) == [(-1, [1, 2, 3]), (-1, [6, 7])]
