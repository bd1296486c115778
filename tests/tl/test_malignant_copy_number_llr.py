"""The per-cell copy-number likelihood ratio of call_malignant and the share of blasts among unread T cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from cd7escape.tl._malignant import _copy_number_llr as copy_number_llr
from cd7escape.tl._malignant._copy_number_llr import (
    mixture_prior,
    segment_count_llr,
    segment_groups,
)


def _genome(rng, n_chrom: int = 4, per_chrom: int = 200):
    names = [f"G{c}_{i}" for c in range(1, n_chrom + 1) for i in range(per_chrom)]
    table = pd.DataFrame(
        {
            "chromosome": [f"chr{c}" for c in range(1, n_chrom + 1) for _ in range(per_chrom)],
            "start": [1000 * (i + 1) for _ in range(n_chrom) for i in range(per_chrom)],
            "end": [1000 * (i + 1) + 500 for _ in range(n_chrom) for i in range(per_chrom)],
        },
        index=pd.Index(names),
    )
    rate = rng.lognormal(0, 1, len(names))
    return table, rate / rate.sum()


def _cells(rng, rate, n, depth=1500.0):
    lib = rng.lognormal(np.log(depth), 0.3, n)
    return rng.poisson(rng.gamma(5.0, 0.2, (n, rate.size)) * rate * lib[:, None])


def _stack(parts: dict) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
    """Cells of each named part stacked: counts, each cell's part name, library sizes."""
    counts = sparse.csr_matrix(np.vstack(list(parts.values())))
    label = np.repeat(list(parts), [len(v) for v in parts.values()])
    return counts, label, np.asarray(counts.sum(axis=1)).ravel().astype(float)


def _segments(chromosomes, ends, log2_ratios, clone_ids=None) -> pd.DataFrame:
    """Altered segments, each from the chromosome's first gene (start 1000) to ``end``."""
    n = len(chromosomes)
    return pd.DataFrame(
        {"clone_id": clone_ids or ["L"] * n, "chromosome": list(chromosomes), "start": [1000] * n,
         "end": list(ends), "z": [-9.0] * n, "log2_ratio": list(log2_ratios)}
    )  # fmt: skip


def _regions(info: list[dict]) -> tuple[pd.DataFrame, pd.Series]:
    """Per chromosome, the first row tried (the segment as found, before any cut) and whether a row of
    it was used."""
    tried = pd.DataFrame(info)
    first = tried.drop_duplicates("chromosome").set_index("chromosome")
    return first, tried.groupby("chromosome")["used"].any()


def test_segment_groups_join_overlaps_of_one_sign_and_keep_their_members():
    seg = pd.DataFrame(
        {
            "chromosome": ["chr1", "chr1", "chr1", "chr2"],
            "start": [100, 150, 120, 10],
            "end": [200, 300, 180, 50],
            "log2_ratio": [-1.0, -0.9, 0.6, -1.0],
        }
    )
    assert segment_groups(seg) == [
        # the union first, then its members, widest first
        (("chr1", 100, 300, -1), [("chr1", 150, 300, -1), ("chr1", 100, 200, -1)]),
        (("chr1", 120, 180, 1), [("chr1", 120, 180, 1)]),
        (("chr2", 10, 50, -1), [("chr2", 10, 50, -1)]),
    ]
    assert segment_groups(seg.iloc[:0]) == []


@pytest.fixture(scope="module")
def loss_data():
    rng = np.random.default_rng(3)
    table, rate = _genome(rng)
    trunk, sub = rate.copy(), rate.copy()
    trunk[0:200] *= 0.5  # chr1 lost in every blast
    sub[0:200] *= 0.5
    sub[200:400] *= 0.5  # chr2 lost in a subclone (a fifth of the blasts)
    parts = {
        "leukemic": _cells(rng, trunk, 160),
        "leukemic_sub": _cells(rng, sub, 40),
        "normal": _cells(rng, rate, 120),
        "unread_blast": _cells(rng, trunk, 200),
        "unread_normal": _cells(rng, rate, 60),
    }
    counts, label, _ = _stack(parts)
    segments = _segments(["chr1", "chr2"], [200500, 200500], [-1.0, -0.5])
    return counts, label, table, segments


def test_segment_count_llr_separates_blasts_and_ignores_a_subclonal_region(loss_data):
    counts, label, table, segments = loss_data
    total = np.asarray(counts.sum(axis=1)).ravel().astype(float)
    var = pd.DataFrame(index=table.index)
    leukemic = np.isin(label, ["leukemic", "leukemic_sub"])
    normal = label == "normal"
    llr, info = segment_count_llr(
        counts, total, var, table, segments, leukemic, normal, antigen="CD7"
    )
    regions, used = _regions(info)
    assert used["chr1"]
    # the whole segment is the change: no cut of it tells the classes apart better
    assert pd.DataFrame(info).query("used")["end"].tolist() == [200500]
    assert regions.loc["chr1", "leukemic_share"] > 0.9
    # a change carried by a fifth of the clonotype's cells does not tell blasts from normal cells
    assert not used["chr2"]
    assert np.median(llr[label == "unread_blast"]) > 2
    assert np.median(llr[label == "unread_normal"]) < -2
    assert (llr[label == "unread_blast"] > 0).mean() > 0.9
    assert (llr[label == "unread_normal"] < 0).mean() > 0.9
    # too few cells of a class: no ratio
    none, _ = segment_count_llr(
        counts, total, var, table, segments, leukemic, normal & (np.arange(label.size) < 220),
        antigen="CD7",
    )  # fmt: skip
    assert none is None


def test_mixture_prior_learns_the_share_of_blasts_from_the_unread_cells():
    rng = np.random.default_rng(0)
    # likelihood ratios of 300 blasts (+2 on average) and 100 normal cells (-2) in cluster a, and
    # 20 blasts and 180 normal cells in cluster b
    llr = np.concatenate(
        [
            rng.normal(2, 2, 300),
            rng.normal(-2, 2, 100),
            rng.normal(2, 2, 20),
            rng.normal(-2, 2, 180),
        ]
    )
    cells = np.ones(llr.size, dtype=bool)
    clusters = np.repeat(["a", "b"], [400, 200])
    prior = mixture_prior(llr, cells, clusters)
    share = 1 / (1 + np.exp(-prior))
    assert share[0] == pytest.approx(0.75, abs=0.08)
    assert share[-1] == pytest.approx(0.1, abs=0.08)
    # outside the cells: NaN; a cluster of few cells leans on the overall share
    cells[:10] = False
    prior = mixture_prior(llr, cells, clusters)
    assert np.isnan(prior[:10]).all()
    assert np.isfinite(prior[10:]).all()


def test_mixture_prior_is_the_share_among_t_cells_times_being_one():
    rng = np.random.default_rng(1)
    # 200 blasts (+2), 100 normal T cells (-2) and 100 NK cells (a normal genome: -2) that are surely not
    # T cells: the share is that among the T cells, and an NK cell's prior is near 0
    llr = np.concatenate([rng.normal(2, 1, 200), rng.normal(-2, 1, 100), rng.normal(-2, 1, 100)])
    t_logodds = np.concatenate([np.full(300, 8.0), np.full(100, -8.0)])
    cells = np.ones(llr.size, dtype=bool)
    prior = mixture_prior(llr, cells, None, t_logodds=t_logodds)
    share = 1 / (1 + np.exp(-prior))
    assert share[0] == pytest.approx(2 / 3, abs=0.06)
    assert share[-1] < 0.01
    # without the T identity the NK cells dilute the share (200 of 400)
    plain = 1 / (1 + np.exp(-mixture_prior(llr, cells, None)))
    assert plain[0] == pytest.approx(0.5, abs=0.06)


def test_segment_count_llr_compares_a_cluster_with_normal_cells_like_it():
    rng = np.random.default_rng(4)
    table, rate = _genome(rng)
    trunk = rate.copy()
    trunk[0:200] *= 0.5  # chr1 lost in every blast
    nk = rate.copy()
    nk[0:200] *= 0.6  # NK-like cells express chr1's genes less, with a normal genome
    parts = {
        "leukemic": _cells(rng, trunk, 200),
        "normal": _cells(rng, rate, 120),
        "nk": _cells(rng, nk, 120),  # a cluster of their own, without a TCR
    }
    counts, label, total = _stack(parts)
    clusters = np.where(label == "nk", "b", "a")
    segments = _segments(["chr1"], [200500], [-1.0])
    args = (counts, total, pd.DataFrame(index=table.index), table, segments)
    leukemic, normal = label == "leukemic", label == "normal"
    alone, _ = segment_count_llr(*args, leukemic, normal, clusters=clusters, antigen="CD7")
    # against normal T cells alone, the NK-like cells read as the loss
    assert np.median(alone[label == "nk"]) > 2
    llr, _ = segment_count_llr(
        *args, leukemic, normal, clusters=clusters, other_normal=label == "nk", antigen="CD7"
    )
    assert np.median(llr[label == "nk"]) < 0.5
    assert np.median(llr[label == "leukemic"]) > 2


def test_a_subclone_dominating_the_clonotype_is_not_its_trunk():
    rng = np.random.default_rng(5)
    table, rate = _genome(rng)
    trunk, sub = rate.copy(), rate.copy()
    trunk[0:200] *= 0.5  # chr1 lost in every blast
    sub[0:200] *= 0.5
    sub[200:400] *= (
        0.5  # chr2 lost in a subclone that holds most of the clonotype's cells (relapse)
    )
    parts = {"leukemic": _cells(rng, trunk, 60), "leukemic_sub": _cells(rng, sub, 300),
             "normal": _cells(rng, rate, 120)}  # fmt: skip
    counts, label, total = _stack(parts)
    clusters = np.where(label == "leukemic_sub", "b", "a")  # the subclone has its own phenotype
    segments = _segments(["chr1", "chr2"], [200500, 200500], [-1.0, -1.0])
    _, info = segment_count_llr(
        counts, total, pd.DataFrame(index=table.index), table, segments,
        np.isin(label, ["leukemic", "leukemic_sub"]), label == "normal",
        clusters=clusters, antigen="CD7",
    )  # fmt: skip
    regions, used = _regions(info)
    assert used["chr1"]
    # most of the clonotype's cells carry chr2's loss, but not those of cluster a
    assert regions.loc["chr2", "leukemic_share"] > 0.8
    assert regions.loc["chr2", "min_cluster_share"] < 0.5
    assert not used["chr2"]


def test_a_region_moved_by_a_few_genes_of_a_phenotype_is_not_a_copy_number_change():
    rng = np.random.default_rng(6)
    table, rate = _genome(rng)
    # chr3: three highly expressed genes (a cytotoxic program, say) that normal T cells carry and the
    # clonotype's cells lack; chr1: a loss in every blast
    top = 400 + np.argsort(rate[400:600])[-3:]
    normal_rate = rate.copy()
    normal_rate[top] *= 6.0
    trunk = rate.copy()
    trunk[0:200] *= 0.5
    parts = {"leukemic": _cells(rng, trunk, 200), "normal": _cells(rng, normal_rate, 120),
             "shallow_other": _cells(rng, rate, 120, depth=500.0)}  # fmt: skip
    counts, label, total = _stack(parts)
    segments = _segments(["chr1", "chr3"], [200500, 200500], [-1.0, -0.6])
    llr, info = segment_count_llr(
        counts, total, pd.DataFrame(index=table.index), table, segments,
        label == "leukemic", label == "normal", antigen="CD7",
    )  # fmt: skip
    regions, used = _regions(info)
    # pooled, chr3 reads as a loss in the clonotype's cells ...
    assert regions.loc["chr3", "rate_ratio"] < 0.9
    # ... but its genes as a whole do not move against the rest of the genome, chr1's do; a segment
    # that fails is not cut into parts that might pass
    assert regions.loc["chr3", "shift_pvalue"] > 0.05
    assert not used["chr3"]
    assert (pd.DataFrame(info)["chromosome"] == "chr3").sum() == 1
    assert used["chr1"]
    assert regions.loc["chr1", "shift_pvalue"] < 1e-6
    assert regions.loc["chr1", "gene_shift"] == pytest.approx(np.log(0.5), abs=0.25)
    # cells of a normal genome without the program are not read as the loss
    assert np.median(llr[label == "shallow_other"]) < 0


def test_a_segment_reaching_past_the_change_gives_way_to_the_one_that_matches_it():
    rng = np.random.default_rng(7)
    table, rate = _genome(rng)
    # chr1's first half is lost in every blast; the blasts of cluster b express its second half 1.6-fold
    # (a phenotype). One clonotype's segment is the lost half, another's runs over all of chr1.
    trunk_a, trunk_b = rate.copy(), rate.copy()
    trunk_a[0:100] *= 0.5
    trunk_b[0:100] *= 0.5
    trunk_b[100:200] *= 1.6
    parts = {"leukemic_a": _cells(rng, trunk_a, 150), "leukemic_b": _cells(rng, trunk_b, 150),
             "normal_a": _cells(rng, rate, 80), "normal_b": _cells(rng, rate, 80),
             "unread_blast": _cells(rng, trunk_b, 100), "unread_normal": _cells(rng, rate, 60)}  # fmt: skip
    counts, label, total = _stack(parts)
    clusters = np.where(np.char.endswith(label.astype(str), "_a"), "a", "b")
    segments = _segments(["chr1", "chr1"], [100500, 200500], [-1.0, -0.6], clone_ids=["L", "L2"])
    llr, info = segment_count_llr(
        counts, total, pd.DataFrame(index=table.index), table, segments,
        np.char.startswith(label.astype(str), "leukemic"), np.char.startswith(label.astype(str), "normal"),
        clusters=clusters, antigen="CD7",
    )  # fmt: skip
    tried = pd.DataFrame(info)
    # the union (all of chr1) is tried first: pooled it reads as a loss, but not in cluster b's blasts
    assert tried.loc[0, "end"] == 200500
    assert tried.loc[0, "rate_ratio"] < 1
    assert not tried.loc[0, "used"]
    # ... and the segment of the lost half is used in its place
    assert tried.loc[1, "end"] == 100500
    assert tried.loc[1, "used"]
    assert np.median(llr[label == "unread_blast"]) > 2
    assert np.median(llr[label == "unread_normal"]) < -2


def test_a_segment_reaching_past_the_change_is_cut_to_the_part_that_tells_the_classes_apart(
    monkeypatch,
):
    rng = np.random.default_rng(8)
    table, rate = _genome(rng)
    # chr1's first 120 genes are lost in every blast; the clonotype's segment runs over all of chr1 (its
    # last block of genes straddles the change's edge): it passes, diluted by 80 unaltered genes
    trunk = rate.copy()
    trunk[0:120] *= 0.5
    parts = {"leukemic": _cells(rng, trunk, 200), "normal": _cells(rng, rate, 120),
             "unread_blast": _cells(rng, trunk, 150, depth=400.0),
             "unread_normal": _cells(rng, rate, 150, depth=400.0)}  # fmt: skip
    counts, label, total = _stack(parts)
    args = (
        counts,
        total,
        pd.DataFrame(index=table.index),
        table,
        _segments(["chr1"], [200500], [-0.6]),
    )
    classes = (label == "leukemic", label == "normal")
    llr, info = segment_count_llr(*args, *classes, antigen="CD7")
    tried = pd.DataFrame(info)
    assert tried["end"].iloc[0] == 200500
    assert not tried["used"].iloc[0]
    used = tried[tried["used"]].iloc[0]
    # cut by 80 genes at its end: the change's own edge (gene 120 starts at 120,000)
    assert (used["start"], used["end"]) == (1000, 120000)
    assert used["class_gap"] > tried["class_gap"].iloc[0]
    assert used["rate_ratio"] < tried["rate_ratio"].iloc[0]
    # shallow cells whose TCR was not read are told apart better than by the whole segment
    monkeypatch.setattr(copy_number_llr, "TRIM_FRACTIONS", ())
    whole, info = segment_count_llr(*args, *classes, antigen="CD7")
    assert [row["used"] for row in info] == [True]

    def auc(score):
        blast, normal = score[label == "unread_blast"], score[label == "unread_normal"]
        return float((blast[:, None] > normal[None, :]).mean())

    assert auc(llr) > auc(whole) + 0.02


def test_of_overlapping_segments_that_pass_the_one_that_tells_the_classes_apart_best_is_used():
    rng = np.random.default_rng(9)
    table, rate = _genome(rng)
    # chr1's first half is lost in every blast; one clonotype's segment is that half, another's runs over
    # all of chr1: their union passes too, diluted by the unaltered half
    trunk = rate.copy()
    trunk[0:100] *= 0.5
    parts = {"leukemic": _cells(rng, trunk, 200), "normal": _cells(rng, rate, 120)}
    counts, label, total = _stack(parts)
    segments = _segments(["chr1", "chr1"], [100500, 200500], [-1.0, -0.4], clone_ids=["L", "L2"])
    _, info = segment_count_llr(
        counts, total, pd.DataFrame(index=table.index), table, segments,
        label == "leukemic", label == "normal", antigen="CD7",
    )  # fmt: skip
    tried = pd.DataFrame(info)
    # the union first, then the member; both pass
    assert tried["end"].iloc[:2].tolist() == [200500, 100500]
    assert tried["class_gap"].iloc[:2].notna().all()
    assert tried["rate_ratio"].iloc[0] > tried["rate_ratio"].iloc[1]
    # the member is used (a cut of the union to the same genes ties with it, and comes later)
    assert tried.index[tried["used"]].tolist() == [1]
    assert tried["class_gap"].iloc[1] == tried["class_gap"].max()
