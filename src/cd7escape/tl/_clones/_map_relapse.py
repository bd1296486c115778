"""Malignant-only reference embedding of the baseline and kNN label transfer of relapse cells onto it.

Private helpers of :func:`cd7escape.tl.subclones`. The reference space is fitted on baseline malignant cells
only (normalise, log1p, highly variable genes without the antigen and genes correlated with it, z-score,
PCA); relapse cells are projected into it with the baseline gene means, scales and loadings. Programs that
only relapse cells express (therapy-induced stress, for example) are constant at baseline, are not selected
as features and therefore do not move relapse cells away from their clone of origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..._sparse import lognorm, nonzero_count

# a genomic window departs alone when its median moves by this much (log units) and this many robust s.d.
WINDOW_MIN_SHIFT, WINDOW_SD = 0.08, 5.0


@dataclass
class ReferenceSpace:
    """Baseline malignant-only PCA of analytic Pearson residuals, and what is needed to project other cells."""

    genes: np.ndarray  # indices into var of the features
    p: np.ndarray  # gene shares of the reference (features)
    theta: float
    center: np.ndarray
    loadings: np.ndarray  # features x components
    excluded: list[str]

    def residuals(self, counts) -> np.ndarray:
        """Analytic Pearson residuals of cells (raw counts, cells x all genes) against the reference shares."""
        return _residuals(counts, self.genes, self.p, self.theta)

    def project(self, counts) -> np.ndarray:
        """Coordinates of cells in the reference PCA."""
        return (self.residuals(counts) - self.center) @ self.loadings


def _residuals(counts, genes: np.ndarray, p: np.ndarray, theta: float, tot=None) -> np.ndarray:
    """Clipped analytic Pearson residuals (cells x ``genes``) of counts against shares ``p``."""
    from ._pearson_residuals import pearson_residuals

    tot = np.asarray(counts.sum(axis=1)).ravel().astype(float) if tot is None else tot
    return pearson_residuals(counts, genes, p, theta, tot)


def _lognorm(counts):
    """log1p of counts normalised to 10,000 per cell (sparse stays sparse)."""
    if sp.issparse(counts):
        return lognorm(counts, dtype=np.float64)
    tot = np.asarray(counts.sum(axis=1)).ravel().astype(float)
    tot[tot == 0] = 1.0
    return np.log1p(np.asarray(counts, dtype=float) * (1e4 / tot)[:, None])


def correlated_genes(
    counts, antigen_idx: int, candidates: np.ndarray, *, max_corr: float, tot=None
) -> np.ndarray:
    """Candidate genes whose |Spearman correlation| with the antigen exceeds ``max_corr`` (boolean mask).

    Correlation of log-normalised expression (10,000 per cell, log1p) computed from raw ``counts``
    (CSC is read without conversion); ``tot``: the cells' total counts when the caller has them.
    """
    from ._rank_correlation import sparse_spearman

    candidates = np.asarray(candidates)
    tot = np.asarray(counts.sum(axis=1)).ravel().astype(float) if tot is None else np.array(tot)
    tot[tot == 0] = 1.0
    # the correlation reads columns; the antigen's column is gathered on its own, so the candidates'
    # block is never sliced off a larger copy (16.7M entries at 30k cells)
    counts = sp.csc_matrix(counts)
    a = _lognorm_block(counts[:, [antigen_idx]], tot).toarray().ravel()
    if np.ptp(a) == 0 or candidates.size == 0:
        return np.zeros(candidates.size, dtype=bool)
    return np.abs(sparse_spearman(_lognorm_block(counts[:, candidates], tot), a)) > max_corr


def _lognorm_block(block: sp.csc_matrix, tot: np.ndarray) -> sp.csc_matrix:
    block.data = np.log1p(block.data * (1e4 / tot[block.indices]))
    return block


def fit_reference(
    counts,
    var_names: np.ndarray,
    *,
    antigen: str,
    excluded_genes: list[str],
    n_top_genes: int = 2000,
    n_pcs: int = 10,
    antigen_corr_max: float | None = 0.3,
    theta: float = 100.0,
    seed: int = 0,
) -> tuple[ReferenceSpace, np.ndarray]:
    """Fit the reference space on baseline malignant cells; return it and their coordinates.

    Features: the genes with the largest analytic Pearson residual variance (Lause et al. 2021), without the
    antigen, the genes excluded by ``pp.embed`` and genes correlated with the antigen among these cells
    (``antigen_corr_max=None``: no new search, ``excluded_genes`` is the whole list).
    A few components only: subclone programs are low-dimensional, extra components add noise to the graph.
    """
    from ._pearson_residuals import residual_variance

    n = counts.shape[0]
    tot = np.asarray(counts.sum(axis=1)).ravel().astype(float)
    if sp.issparse(counts):
        counts = sp.csc_matrix(counts)  # many column gathers follow
    gsum = np.asarray(counts.sum(axis=0)).ravel().astype(float)
    detected = nonzero_count(counts, axis=0) >= max(3, 0.005 * n)
    excl = set(excluded_genes) | {antigen}
    allowed = detected & ~np.isin(var_names, list(excl))
    cand = np.flatnonzero(allowed)
    p_all = gsum / max(gsum.sum(), 1)
    rv = residual_variance(counts, cand, p_all[cand], theta, tot)
    top = cand[np.argsort(-rv)[: min(n_top_genes + 200, cand.size)]]
    newly = []
    if antigen_corr_max is not None and antigen in set(var_names):
        aidx = int(np.flatnonzero(var_names == antigen)[0])
        corr = correlated_genes(counts, aidx, top, max_corr=antigen_corr_max, tot=tot)
        newly = list(var_names[top[corr]])
        top = top[~corr]
    genes = np.sort(top[:n_top_genes])
    z = _residuals(counts, genes, p_all[genes], theta, tot=tot)
    center = z.mean(0)
    k = int(max(2, min(n_pcs, n - 1, genes.size - 1)))
    from sklearn.decomposition import PCA

    pca = PCA(
        n_components=k,
        svd_solver="randomized" if min(z.shape) > 200 else "full",
        random_state=seed,
        copy=False,  # z is ours: centred in place, no copies of a cells x 2,000 matrix
    )
    z -= center
    coords = pca.fit_transform(z)
    space = ReferenceSpace(
        genes=genes, p=p_all[genes], theta=theta, center=center, loadings=pca.components_.T,
        excluded=sorted(excl | set(newly)),
    )  # fmt: skip
    return space, coords


def knn_transfer(
    ref: np.ndarray,
    ref_labels: np.ndarray,
    query: np.ndarray,
    *,
    n_neighbors: int,
    allowed: np.ndarray | None = None,
    novelty_quantile: float = 0.99,
    novelty_factor: float = 1.5,
    ref_distances: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label each query cell by its ``n_neighbors`` nearest reference cells.

    Returns the label (most frequent among the neighbours, distance-weighted), the mapping confidence (the
    weighted share of neighbours with that label, set to 0 when the cell lies farther from the reference than
    ``novelty_factor`` times the ``novelty_quantile`` of reference cells' own neighbour distances: a state the
    baseline does not contain) and the mean neighbour distance relative to that cut-off.

    ``allowed``: optional boolean matrix (query x labels) of labels compatible with each query cell's clone
    identity (CNV subclone, TCR clonotype); incompatible neighbours are ignored.

    ``ref_distances``: the reference's own neighbour distances when the caller has them (a self-query
    of ``ref`` by :func:`~cd7escape.pp._knn.nearest_neighbors`, at least ``k + 1`` columns, the point
    itself first); computed here otherwise.
    """
    from ...pp._knn import nearest_neighbors

    labels, codes = np.unique(ref_labels, return_inverse=True)
    k = int(min(n_neighbors, ref.shape[0] - 1))
    if ref_distances is None:
        ref_distances = nearest_neighbors(ref, k + 1)[0]
    elif ref_distances.shape[0] != ref.shape[0] or ref_distances.shape[1] < k + 1:
        raise ValueError("ref_distances must hold k + 1 columns for every reference point")
    d_ref = ref_distances[:, : k + 1]
    own = d_ref[:, 1:].mean(1)
    cut = novelty_factor * np.quantile(own, novelty_quantile)
    kq = int(min(ref.shape[0], 3 * k if allowed is not None else k))
    d, idx = nearest_neighbors(ref, kq, query=query)
    d = d.astype(np.float64)
    lab = codes[idx]
    if allowed is not None:
        ok = allowed[np.arange(query.shape[0])[:, None], lab]
    else:
        ok = np.ones_like(lab, dtype=bool)
    # keep the k nearest compatible neighbours
    rank = np.cumsum(ok, axis=1)
    ok &= rank <= k
    w = np.where(ok, 1.0 / np.maximum(d, 1e-9), 0.0)
    score = np.zeros((query.shape[0], labels.size))
    for j in range(kq):
        np.add.at(score, (np.arange(query.shape[0]), lab[:, j]), w[:, j])
    tot = score.sum(1)
    best = score.argmax(1)
    conf = np.where(
        tot > 0, score[np.arange(query.shape[0]), best] / np.where(tot > 0, tot, 1), 0.0
    )
    dist = np.where(ok.any(1), (d * ok).sum(1) / np.maximum(ok.sum(1), 1), np.inf)
    rel = dist / cut
    conf = np.where(rel > 1, 0.0, conf)
    return labels[best], conf, rel


@dataclass
class GenomicWindows:
    """Log expression of genome-ordered genes in some cells, and the windows of consecutive genes over them.

    Only group means are ever read (:meth:`mean`, :meth:`change`), so the expression stays sparse: a
    group's mean is the sum of its stored entries over its size. The cells may come in blocks (the
    baseline cells, then the relapse cells) that are never stacked into one matrix; rows are numbered
    across the blocks in order.
    """

    blocks: list[sp.csr_matrix]  # cells x placed genes, log1p(10,000 x count / total), genome order
    windows: list[np.ndarray]  # positions of each window's genes in the blocks' columns
    names: list[str]
    # the placed genes' columns in the counts (var) and their start positions (bp), in the blocks' order
    genes: np.ndarray | None = None
    starts: np.ndarray | None = None

    def mean(self, rows: np.ndarray) -> np.ndarray:
        """Per-gene mean over the cells ``rows`` (row numbers across the blocks)."""
        rows = np.asarray(rows)
        total = np.zeros(self.blocks[0].shape[1])
        lo = 0
        for block in self.blocks:
            hi = lo + block.shape[0]
            inside = rows[(rows >= lo) & (rows < hi)]
            if inside.size:
                total += np.asarray(block[inside - lo].sum(axis=0)).ravel()
            lo = hi
        return total / max(rows.size, 1)

    def change(
        self, base: np.ndarray, rel: np.ndarray, *, min_shift: float = WINDOW_MIN_SHIFT
    ) -> list[int]:
        """Genomic windows where the cells ``rel`` depart from the cells ``base`` as a copy-number change would.

        Per gene, the difference of mean log expression (``rel`` minus ``base``); per window the *median*
        over its genes, centred on the median over all windows. A copy-number change moves every gene of
        a segment, so the median moves; a few strongly changed genes (a therapy-induced program, a
        subclone's own program) do not move it. Windows with ``|median| >= min_shift`` (log units; one
        copy of a segment in all cells moves it by ~0.2-0.4) and above 5 robust s.d. of all windows are
        returned; none when either group has fewer than 5 cells.
        """
        return window_shifts(
            self.mean(base),
            np.size(base),
            self.mean(rel),
            np.size(rel),
            self.windows,
            min_shift=min_shift,
        )


def genomic_windows(
    blocks: list, var, *, antigen: str, window: int = 50, step: int = 25
) -> GenomicWindows | None:
    """Log expression over windows of consecutive genes along the genome, in the cells of ``blocks``.

    A coarse copy-number read-out (gene dosage shifts expression of every gene in a segment), used only to
    check that relapse cells carry the copy-number state of the baseline subclone they map to. ``blocks``
    are raw counts of cells × all genes (rows numbered across the blocks in order); ``var`` the genes
    (index: names), with positions from ``var['chromosome','start']`` or the package's gene table. None when too
    few genes are placed. Genes detected in at least 5 % of the cells are placed, never the antigen or
    sex/mitochondrial ones.
    """
    import pandas as pd

    if {"chromosome", "start"} <= set(var.columns):
        chrom = var["chromosome"].astype(str).to_numpy()
        start = pd.to_numeric(var["start"], errors="coerce").to_numpy()
    else:
        try:
            from .._malignant import gene_positions_frame

            table = gene_positions_frame(None)
        except Exception:  # no table shipped: no check
            return None
        table = table[~table.index.duplicated()]
        pos = table.reindex(var.index)
        chrom = pos["chromosome"].astype(str).to_numpy()
        start = pd.to_numeric(pos["start"], errors="coerce").to_numpy()
    blocks = [sp.csr_matrix(b) for b in blocks]
    detected = sum(nonzero_count(b, axis=0) for b in blocks)
    ok = (
        (detected_share(detected, sum(b.shape[0] for b in blocks)) >= 0.05)
        & np.isfinite(start)
        & ~np.isin(chrom, ["nan", "None", "chrX", "chrY", "chrM", "X", "Y", "MT"])
    )
    ok &= np.asarray(var.index) != antigen
    if ok.sum() < 2 * window:
        return None
    genes = np.flatnonzero(ok)
    genes = genes[np.lexsort((start[genes], chrom[genes]))]
    from ._lognorm_columns import lognorm_columns

    expr = [lognorm_columns(x, genes) for x in blocks]
    windows, names = [], []
    ch = chrom[genes]
    for c in pd.unique(ch):
        idx = np.flatnonzero(ch == c)
        if idx.size < window:
            continue
        for s0 in range(0, idx.size - window + 1, step):
            windows.append(idx[s0 : s0 + window])
            names.append(f"{c}:{s0}")
    if not windows:
        return None
    return GenomicWindows(expr, windows, names, genes, start[genes])


def detected_share(k: np.ndarray, n: int) -> np.ndarray:
    """Share ``k / n`` of cells detecting each gene, as scipy's ``(x > 0).mean(axis=0)`` computes it.

    scipy's mean adds 1/n once per positive entry, so 55 of 1,100 cells gives 0.04999…, not 0.05; the
    same float64 sums are read from a running sum of 1/n, so that a gene at a cut-off falls on the
    same side as before (the windows are consecutive genes: one gene more shifts every later window).
    """
    k = np.asarray(k)
    running = np.cumsum(np.full(max(n, 1), 1.0 / max(n, 1)))
    return np.where(k > 0, running[np.maximum(k - 1, 0)], 0.0)


def window_shifts(
    mean_base: np.ndarray,
    n_base: int,
    mean_rel: np.ndarray,
    n_rel: int,
    windows: list[np.ndarray],
    *,
    min_shift: float = WINDOW_MIN_SHIFT,
    n_sd: float = WINDOW_SD,
) -> list[int]:
    """:meth:`GenomicWindows.change` from the two groups' per-gene means (callers that reuse a group's mean);
    ``n_sd`` robust s.d. of all windows' medians."""
    if n_base < 5 or n_rel < 5:
        return []
    stat, spread = window_medians(mean_base, mean_rel, windows)
    return windows_beyond(stat, spread, min_shift=min_shift, n_sd=n_sd)


def window_medians(
    mean_base: np.ndarray, mean_rel: np.ndarray, windows: list[np.ndarray]
) -> tuple[np.ndarray, float]:
    """Per window, the median over its genes of the difference of mean log expression (``rel`` minus
    ``base``), centred on the median over all windows; and the robust s.d. of those medians (the noise of a
    window: small groups are noisy)."""
    d = mean_rel - mean_base
    stat = np.array([np.median(d[w]) for w in windows])
    stat -= np.median(stat)
    return stat, 1.4826 * float(np.median(np.abs(stat)))


def windows_beyond(stat: np.ndarray, spread: float, *, min_shift: float, n_sd: float) -> list[int]:
    """The windows whose centred median is at least ``min_shift`` and ``n_sd`` robust s.d. from zero."""
    return [int(i) for i in np.flatnonzero(np.abs(stat) >= max(min_shift, n_sd * spread))]
