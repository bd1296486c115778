"""The evidence helpers of call_malignant: CAR threshold, TCR clonotypes, gene sets, gene positions, CNV subclones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cd7escape._errors import InputError
from cd7escape.tl._malignant._blast_program import BLAST_SPECIFIC, BLAST_SUPPORTING
from cd7escape.tl._malignant._car import detect_car, find_car_feature
from cd7escape.tl._malignant._cell_types import (
    LINEAGE_MARKERS,
    check_antigen_free,
    lineage_scores,
    without_antigen,
)
from cd7escape.tl._malignant._cnv import cnv_subclones, gene_positions_frame, positions_for
from cd7escape.tl._malignant._tcr_evidence import clone_sizes, tcr_evidence


def test_car_threshold_follows_ambient_poisson_tail():
    rng = np.random.default_rng(0)
    total = rng.integers(1000, 8000, 2000).astype(float)
    rate = 2e-4
    bg = np.zeros(2000, dtype=bool)
    bg[:1000] = True
    y = rng.poisson(rate * total)
    y[1500:] += 10  # CAR-T cells
    strong, weak, info = detect_car(y, total, bg)
    assert info["ambient_rate_per_umi"] == pytest.approx(y[:1000].sum() / total[:1000].sum())
    expected = (y >= 1) & (stats.poisson.sf(y - 1, info["ambient_rate_per_umi"] * total) < 1e-3)
    np.testing.assert_array_equal(strong, expected)
    assert strong[1500:].mean() > 0.95
    assert strong[:1500].mean() < 0.01
    assert (weak >= strong).all()
    # no CAR UMI in the background: one UMI is a CAR (real CAR-T cells often show one)
    one, _, info = detect_car(np.where(bg, 0, np.minimum(y, 1)), total, bg)
    assert info["ambient_rate_per_umi"] == 0
    np.testing.assert_array_equal(one, np.where(bg, 0, np.minimum(y, 1)) >= 1)
    fixed, _, info = detect_car(y, total, bg, car_min_counts=3)
    np.testing.assert_array_equal(fixed, y >= 3)


def test_find_car_feature():
    names = pd.Index(["CD3E", "CAT_scFv", "CD7"])
    assert find_car_feature(names, "CAT_scFv") == "CAT_scFv"
    assert find_car_feature(names, r".*scFv") == "CAT_scFv"
    assert find_car_feature(names, None) is None
    with pytest.raises(InputError):
        find_car_feature(names, "CAR_CD7")
    with pytest.raises(InputError):
        find_car_feature(names, "CD")


def test_antigen_is_in_no_gene_set_used():
    for antigen in ("CD7", "CD19", "CD22", "CD5", "CD1A"):
        markers = {k: without_antigen(v, antigen) for k, v in LINEAGE_MARKERS.items()}
        check_antigen_free(markers, antigen)
        check_antigen_free(without_antigen((*BLAST_SPECIFIC, *BLAST_SUPPORTING), antigen), antigen)
    check_antigen_free(LINEAGE_MARKERS, "CD7")
    check_antigen_free((*BLAST_SPECIFIC, *BLAST_SUPPORTING), "CD7")
    with pytest.raises(AssertionError):
        check_antigen_free(LINEAGE_MARKERS, "CD5")


def test_antigen_dropped_from_markers_when_it_is_one():
    # a CD5 CAR: CD5 is a T marker and must not count
    from scipy import sparse

    names = pd.Index(["CD5", "CD3E"])
    x = sparse.csr_matrix(np.array([[3.0, 0.0], [0.0, 0.0]]))
    scores = lineage_scores(x, names, "CD5")
    np.testing.assert_array_equal(scores["T"].to_numpy(), [0.0, 0.0])


def test_tcr_leukemic_clonotype_needs_other_evidence():
    clone = pd.Series(["L"] * 10 + ["V"] * 6 + ["a", "b", "c"] + [np.nan] * 5)
    other = np.r_[np.full(10, 0.9), np.full(6, 0.0), np.zeros(3), np.full(5, 0.9)]
    np.testing.assert_array_equal(clone_sizes(clone)[[0, 10, 16, 20]], [10, 6, 1, 0])
    ev, expanded, table = tcr_evidence(clone, other)
    assert (ev[:10] == 1).all()  # leukemic
    assert (
        ev[10:19] == -1
    ).all()  # expanded but not leukemic (e.g. virus-specific), and polyclonal
    assert (ev[19:] == 0).all()  # no productive TCR is no evidence
    assert expanded[:16].all()
    assert not expanded[16:].any()
    assert list(table["clone_id"]) == ["L"]


def test_gene_positions_from_tsv_and_by_ensembl(tmp_path):
    tsv = tmp_path / "pos.tsv"
    tsv.write_text(
        "gene_symbol\tensembl_id\tchromosome\tstart\tend\nAAA\tENSG1;ENSG9\tchr1\t100\t200\nBBB\tENSG2\t2\t5\t9\n"
    )
    table = gene_positions_frame(str(tsv))
    assert list(table.index) == ["AAA", "BBB"]
    assert table.loc["BBB", "chromosome"] == "chr2"
    var = pd.DataFrame({"gene_ids": ["ENSG9.3", "ENSG7", "ENSG2"]}, index=["renamed", "AAA", "ZZZ"])
    pos = positions_for(var, table)
    assert pos.loc["renamed", "chromosome"] == "chr1"  # found by Ensembl id
    assert pos.loc["AAA", "start"] == 100  # found by symbol
    assert pos.loc["ZZZ", "chromosome"] == "chr2"
    with pytest.raises(InputError):
        gene_positions_frame(str(tmp_path / "missing.tsv"))


def test_shipped_gene_table_is_the_default():
    table = gene_positions_frame(None)
    assert {"chromosome", "start", "end"} <= set(table.columns)
    assert "CD3E" in table.index


def test_cnv_subclones_groups_clusters_by_profile():
    rng = np.random.default_rng(0)
    a, b = np.r_[np.ones(10), np.zeros(10)], np.r_[np.zeros(10), -np.ones(10)]
    prof = np.vstack(
        [
            a + rng.normal(0, 0.1, (40, 20)),
            a + rng.normal(0, 0.1, (40, 20)),
            b + rng.normal(0, 0.1, (40, 20)),
        ]
    )
    prof = np.vstack([prof, rng.normal(0, 0.1, (40, 20))])
    clusters = np.repeat(["0", "1", "2", "3"], 40)
    altered = clusters != "3"
    lab = cnv_subclones(prof, altered, clusters)
    assert lab[0] == lab[40] != lab[80]
    assert (lab[120:] == "none").all()
    assert lab[0] == "cnv0"  # the largest subclone first


def _pseudo_genome(rng, n_chrom: int = 6, per_chrom: int = 200):
    """Gene positions (6 chromosomes x 200 genes) and per-gene rates of a T-cell-like profile."""
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


def _cells(rng, rate: np.ndarray, n: int, depth: float = 3000.0) -> np.ndarray:
    lib = rng.lognormal(np.log(depth), 0.3, n)
    return rng.poisson(rng.gamma(5.0, 0.2, (n, rate.size)) * rate * lib[:, None])


def test_clone_copy_number_finds_a_loss_and_ignores_a_phenotype():
    from scipy import sparse

    from cd7escape.tl._malignant._cnv import clone_copy_number

    rng = np.random.default_rng(0)
    table, rate = _pseudo_genome(rng)
    loss = rate.copy()
    loss[200:300] *= 0.5  # first half of chr2: one copy of two
    pheno = rate.copy()
    pheno[rng.choice(rate.size, 12, replace=False)] *= 8  # an effector program: scattered genes
    cytotoxic_block = rate.copy()
    cytotoxic_block[600:608] *= 10  # a cluster of 8 neighbouring genes (an NK-receptor complex)
    parts = {
        "normal": _cells(rng, rate, 300),
        "leukemic": _cells(rng, loss, 120),
        "effector": _cells(rng, pheno, 60),
        "complex": _cells(rng, cytotoxic_block, 60),
    }
    counts = sparse.csr_matrix(np.vstack(list(parts.values())))
    label = np.repeat(list(parts), [len(v) for v in parts.values()])
    clone = pd.Series(np.where(label == "normal", [f"poly{i}" for i in range(len(label))], label))
    clone[label == "normal"] = [f"poly{i // 2}" for i in range(300)]  # polyclonal: 1-2 cells each
    reference = label == "normal"
    batches = np.where(np.arange(len(label)) % 2 == 0, "a", "b")
    var = pd.DataFrame(index=table.index)
    total = np.asarray(counts.sum(axis=1)).ravel().astype(float)
    clones, segments = clone_copy_number(
        counts, total, var, table, reference, clone, [batches], antigen="CD7"
    )
    result = clones.set_index("clone_id")
    assert set(result.index) == {"leukemic", "effector", "complex"}
    assert result.loc["leukemic", "altered"]
    assert result.loc["leukemic", "chromosome"] == "chr2"
    assert result.loc["leukemic", "log2_ratio"] == pytest.approx(-1.0, abs=0.25)
    assert not result.loc["effector", "altered"]
    assert not result.loc["complex", "altered"]
    assert set(segments["clone_id"]) == {"leukemic"}
    assert (segments["chromosome"] == "chr2").all()
    assert (segments["log2_ratio"] < 0).all()
    # too small a reference: nothing tested
    none, _ = clone_copy_number(
        counts, total, var, table, reference & (np.arange(len(label)) < 30), clone, [batches],
        antigen="CD7",
    )  # fmt: skip
    assert none.empty


def test_a_copy_number_segment_needs_one_strong_block_and_an_overlapping_confirmation():
    from cd7escape.tl._malignant._cnv import CLONE_Z, CLONE_Z_SUPPORT, _merge_blocks

    strong, support = -(CLONE_Z + 0.6), -(CLONE_Z_SUPPORT + 0.4)
    # (chromosome, start, end, z, log2): a 40-gene block and the overlapping one beside it
    pair = [("chr6", 90, 120, strong, -0.8), ("chr6", 105, 135, support, -0.7)]
    (seg,) = _merge_blocks(pair)
    assert seg[:3] == ("chr6", 90, 135)
    assert seg[3] == pytest.approx(strong)
    # two confirming blocks without a strong one, or a strong block alone (a gene cluster), are no segment
    assert (
        _merge_blocks([("chr6", 90, 120, support, -0.8), ("chr6", 105, 135, support, -0.7)]) == []
    )
    assert _merge_blocks([("chr6", 90, 120, 3 * strong, -0.9)]) == []
    # blocks that do not overlap, or change in opposite directions, do not confirm each other
    assert _merge_blocks([("chr6", 90, 120, strong, -0.8), ("chr6", 130, 160, support, -0.7)]) == []
    assert _merge_blocks([("chr6", 90, 120, strong, -0.8), ("chr6", 105, 135, -support, 0.7)]) == []


def test_leukemic_by_copy_number_needs_two_timepoints_when_there_are_two():
    from cd7escape.tl._malignant._tcr_evidence import leukemic_by_copy_number

    clone = pd.Series(["A"] * 4 + ["B"] * 4 + [np.nan] * 2)
    tp = pd.Series(["baseline", "relapse"] * 2 + ["relapse"] * 4 + ["baseline"] * 2)
    assert leukemic_by_copy_number(clone, ["A", "B"], tp) == ["A"]
    assert leukemic_by_copy_number(clone, ["A", "B"], pd.Series(["relapse"] * 10)) == ["A", "B"]
    assert leukemic_by_copy_number(clone, ["A", "B"], None) == ["A", "B"]
    assert leukemic_by_copy_number(clone, [], tp) == []


def test_copy_number_clone_is_leukemic_without_other_evidence_and_keeps_its_chains():
    from cd7escape.tl._malignant._tcr_evidence import same_clone

    full = "TRB:AAA;TRA:CCC"
    clone = pd.Series(
        [full] * 30 + ["TRB:AAA"] * 3 + ["TRA:CCC"] + ["TRB:AAA;TRA:GGG"] + ["TRB:TTT;TRA:CCC"]
        + ["V"] * 10 + ["p", "q"]
    )  # fmt: skip
    other = np.zeros(len(clone))  # no blast program, no CNV evidence per cell
    ev, _, table = tcr_evidence(clone, other, copy_number_clones=[full])
    assert (ev[:35] == 1).all()  # the clone, also where one chain or a second TRA was read
    assert ev[35] == -1  # shares only a TRA chain, with another TRB: another clone
    assert (ev[36:] == -1).all()
    assert table.loc[table["clone_id"] == full, "copy_number"].item()
    assert set(table.loc[table["part_of"] == full, "clone_id"]) == {
        "TRB:AAA", "TRA:CCC", "TRB:AAA;TRA:GGG",
    }  # fmt: skip
    # without the copy-number ground the same clonotype is not leukemic
    ev, _, table = tcr_evidence(clone, other)
    assert (ev[:30] == -1).all()
    assert table.empty
    assert same_clone(["X", "TRB:AAA"], ["X"]) == {}


def test_cnv_llr_is_linear_and_learnt_from_both_classes():
    from cd7escape.tl._malignant._cnv import cnv_llr

    rng = np.random.default_rng(1)
    score = np.r_[rng.normal(3, 1, 200), rng.normal(0, 1, 200), np.nan]
    blast = np.r_[np.ones(200, bool), np.zeros(201, bool)]
    normal = np.r_[np.zeros(200, bool), np.ones(200, bool), False]
    llr = cnv_llr(score, blast, normal)
    assert llr[-1] == 0.0
    assert np.median(llr[:200]) > 3
    assert np.median(llr[200:400]) < -3
    order = np.argsort(score[:400])
    assert (np.diff(llr[:400][order]) >= 0).all()  # monotone in the score
    assert cnv_llr(score, blast & (np.arange(401) < 10), normal) is None
    assert cnv_llr(score, normal, blast) is None  # the 'leukemic' cells do not score higher


def test_t_identity_weighs_missing_t_transcripts_by_depth():
    from cd7escape.tl._malignant._cell_types import t_identity

    rng = np.random.default_rng(0)
    # cluster "t": 300 T cells (T-specific UMIs at 3 per 1,000), 200 of them with a read TCR;
    # cluster "nk": 150 NK cells (0.1 per 1,000); depths 300 (shallow) to 3,000
    n_t, n_nk = 300, 150
    depth = np.concatenate([rng.uniform(300, 3000, n_t), rng.uniform(300, 3000, n_nk)])
    rate = np.concatenate([np.full(n_t, 3e-3), np.full(n_nk, 1e-4)])
    y = rng.poisson(rate * depth).astype(float)
    lineage = np.array(["T"] * n_t + ["NK"] * n_nk, dtype=object)
    clusters = np.array(["t"] * n_t + ["nk"] * n_nk)
    read_t = np.zeros(y.size, dtype=bool)
    read_t[:200] = True
    nk_ref = lineage == "NK"
    # a shallow T cell with no T-specific UMI, and a deep one, in the T cluster
    y[[250, 251]], depth[[250, 251]] = 0, [300, 3000]
    lo = t_identity(y, depth, lineage, read_t, nk_ref, clusters)
    assert lo[250] > 1.0  # a zero is expected often enough at 300 UMIs: still most likely a T cell
    assert lo[251] < lo[250] - 3.0  # at 3,000 UMIs it weighs far more
    assert np.median(lo[n_t:]) < -2.0  # NK cells
    assert np.median(lo[:n_t]) > 2.0
    # too few NK cells to learn their rate: no answer (the caller falls back on the T-transcript rule)
    assert t_identity(y, depth, lineage, read_t, np.zeros(y.size, dtype=bool), clusters) is None


def test_t_identity_weighs_nk_transcripts_a_cell_expresses():
    from cd7escape.tl._malignant._cell_types import t_identity

    rng = np.random.default_rng(1)
    # 400 T cells in cluster "t" (T-specific UMIs at 2 per 1,000, NK transcripts at 0.05 per 1,000), 300
    # of them read; 100 NK cells in cluster "nk" (T-specific 0.1, NK transcripts 5 per 1,000); 20 NK cells
    # among the T cells, whose T transcripts are as absent as those of a shallow T cell
    n_t, n_nk, n_in = 400, 100, 20
    n = n_t + n_nk + n_in
    depth = rng.uniform(800, 1500, n)
    t_rate = np.concatenate([np.full(n_t, 2e-3), np.full(n_nk + n_in, 1e-4)])
    nk_rate = np.concatenate([np.full(n_t, 5e-5), np.full(n_nk + n_in, 5e-3)])
    y, z = rng.poisson(t_rate * depth).astype(float), rng.poisson(nk_rate * depth).astype(float)
    lineage = np.array(["T"] * n_t + ["NK"] * n_nk + ["T"] * n_in, dtype=object)
    clusters = np.array(["t"] * n_t + ["nk"] * n_nk + ["t"] * n_in)
    read_t = np.arange(n) < 300
    nk_ref = np.arange(n) >= n_t
    nk_ref[n_t + n_nk :] = False
    inside = np.arange(n) >= n_t + n_nk
    t_only = np.arange(n) < n_t
    without = t_identity(y, depth, lineage, read_t, nk_ref, clusters)
    with_nk = t_identity(y, depth, lineage, read_t, nk_ref, clusters, nk_counts=z)
    # the NK cells among T cells: what they do express tells them apart, not only what they lack
    assert np.median(with_nk[inside]) < np.median(without[inside]) - 3.0
    assert np.median(with_nk[inside]) < 0
    # T cells lacking their T transcripts keep being T cells: they have no NK transcripts either
    zero_t = t_only & (y == 0) & (z == 0)
    assert zero_t.any()
    assert (with_nk[zero_t] > 0).all()
    assert np.median(with_nk[t_only]) > 2.0
    # NK transcripts no more common in NK cells than in T cells: no evidence either way
    flat = t_identity(y, depth, lineage, read_t, nk_ref, clusters, nk_counts=np.zeros(n))
    np.testing.assert_allclose(flat, without)
