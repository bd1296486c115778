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


def _residuals(counts, genes: np.ndarray, p: np.ndarray, theta: float) -> np.ndarray:
    tot = np.asarray(counts.sum(axis=1)).ravel().astype(float)
    x = counts[:, genes]
    x = np.asarray(x.todense(), dtype=float) if sp.issparse(x) else np.asarray(x, dtype=float)
    mu = tot[:, None] * p[None, :]
    z = (x - mu) / np.sqrt(mu + mu**2 / theta)
    lim = np.sqrt(max(counts.shape[0], 1))
    return np.clip(z, -lim, lim)


def _lognorm(counts):
    """log1p of counts normalised to 10,000 per cell (sparse stays sparse)."""
    tot = np.asarray(counts.sum(axis=1)).ravel().astype(float)
    tot[tot == 0] = 1.0
    if sp.issparse(counts):
        x = sp.diags(1e4 / tot) @ counts.astype(np.float64)
        x = sp.csr_matrix(x)
        x.data = np.log1p(x.data)
        return x
    return np.log1p(np.asarray(counts, dtype=float) * (1e4 / tot)[:, None])


def correlated_genes(
    xlog, antigen_idx: int, candidates: np.ndarray, *, max_corr: float
) -> np.ndarray:
    """Candidate genes whose |Spearman correlation| with the antigen exceeds ``max_corr`` (boolean mask)."""
    from scipy import stats

    a = xlog[:, antigen_idx]
    a = np.asarray(a.todense()).ravel() if sp.issparse(a) else np.asarray(a).ravel()
    if np.ptp(a) == 0 or candidates.size == 0:
        return np.zeros(candidates.size, dtype=bool)
    sub = xlog[:, candidates]
    sub = np.asarray(sub.todense()) if sp.issparse(sub) else np.asarray(sub)
    ra = stats.rankdata(a)
    rs = np.apply_along_axis(stats.rankdata, 0, sub)
    ra = (ra - ra.mean()) / (ra.std() + 1e-12)
    rs = (rs - rs.mean(0)) / (rs.std(0) + 1e-12)
    rho = (rs * ra[:, None]).mean(0)
    return np.abs(rho) > max_corr


def fit_reference(
    counts,
    var_names: np.ndarray,
    *,
    antigen: str,
    excluded_genes: list[str],
    n_top_genes: int = 2000,
    n_pcs: int = 10,
    antigen_corr_max: float = 0.3,
    theta: float = 100.0,
    seed: int = 0,
) -> tuple[ReferenceSpace, np.ndarray]:
    """Fit the reference space on baseline malignant cells; return it and their coordinates.

    Features: the genes with the largest analytic Pearson residual variance (Lause et al. 2021), without the
    antigen, the genes excluded by ``pp.embed`` and genes correlated with the antigen among these cells.
    A few components only: subclone programs are low-dimensional, extra components add noise to the graph.
    """
    n = counts.shape[0]
    tot = np.asarray(counts.sum(axis=1)).ravel().astype(float)
    gsum = np.asarray(counts.sum(axis=0)).ravel().astype(float)
    detected = np.asarray((counts > 0).sum(axis=0)).ravel() >= max(3, 0.005 * n)
    excl = set(excluded_genes) | {antigen}
    allowed = detected & ~np.isin(var_names, list(excl))
    cand = np.flatnonzero(allowed)
    p_all = gsum / max(gsum.sum(), 1)
    # residual variance per candidate gene, in chunks
    rv = np.zeros(cand.size)
    for k in range(0, cand.size, 2000):
        idx = cand[k : k + 2000]
        rv[k : k + 2000] = _residuals(counts, idx, p_all[idx], theta).var(0)
    top = cand[np.argsort(-rv)[: min(n_top_genes + 200, cand.size)]]
    newly = []
    if antigen in set(var_names):
        aidx = int(np.flatnonzero(var_names == antigen)[0])
        corr = correlated_genes(_lognorm(counts), aidx, top, max_corr=antigen_corr_max)
        newly = list(var_names[top[corr]])
        top = top[~corr]
    genes = np.sort(top[:n_top_genes])
    z = _residuals(counts, genes, p_all[genes], theta)
    center = z.mean(0)
    k = int(max(2, min(n_pcs, n - 1, genes.size - 1)))
    from sklearn.decomposition import PCA

    pca = PCA(
        n_components=k, svd_solver="randomized" if min(z.shape) > 200 else "full", random_state=seed
    )
    coords = pca.fit_transform(z - center)
    space = ReferenceSpace(
        genes=genes, p=p_all[genes], theta=theta, center=center, loadings=pca.components_.T,
        excluded=sorted(excl | set(newly)),
    )  # fmt: skip
    _ = tot
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label each query cell by its ``n_neighbors`` nearest reference cells.

    Returns the label (most frequent among the neighbours, distance-weighted), the mapping confidence (the
    weighted share of neighbours with that label, set to 0 when the cell lies farther from the reference than
    ``novelty_factor`` times the ``novelty_quantile`` of reference cells' own neighbour distances: a state the
    baseline does not contain) and the mean neighbour distance relative to that cut-off.

    ``allowed``: optional boolean matrix (query x labels) of labels compatible with each query cell's clone
    identity (CNV subclone, TCR clonotype); incompatible neighbours are ignored.
    """
    from ..pp._knn import nearest_neighbors

    labels, codes = np.unique(ref_labels, return_inverse=True)
    k = int(min(n_neighbors, ref.shape[0] - 1))
    d_ref, _ = nearest_neighbors(ref, k + 1)
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


def genomic_windows(adata, cells: np.ndarray, *, antigen: str, window: int = 50, step: int = 25):
    """Per-cell mean log expression over windows of consecutive genes along the genome.

    A coarse copy-number read-out (gene dosage shifts expression of every gene in a segment), used only to
    check that relapse cells carry the copy-number state of the baseline subclone they map to. Positions
    from ``var['chromosome','start']`` or the package's gene table; None when too few genes are placed.
    """
    import pandas as pd

    var = adata.var
    if {"chromosome", "start"} <= set(var.columns):
        chrom = var["chromosome"].astype(str).to_numpy()
        start = pd.to_numeric(var["start"], errors="coerce").to_numpy()
    else:
        try:
            from ._cnv import gene_positions_frame

            table = gene_positions_frame(None)
        except Exception:  # no table shipped: no check
            return None
        table = table[~table.index.duplicated()]
        pos = table.reindex(adata.var_names)
        chrom = pos["chromosome"].astype(str).to_numpy()
        start = pd.to_numeric(pos["start"], errors="coerce").to_numpy()
    x = adata.layers.get("counts", adata.X)[cells]
    det = np.asarray((x > 0).mean(axis=0)).ravel() >= 0.05
    ok = (
        det
        & np.isfinite(start)
        & ~np.isin(chrom, ["nan", "None", "chrX", "chrY", "chrM", "X", "Y", "MT"])
    )
    ok &= np.asarray(adata.var_names) != antigen
    if ok.sum() < 2 * window:
        return None
    genes = np.flatnonzero(ok)
    order = np.lexsort((start[genes], chrom[genes]))
    genes = genes[order]
    xl = _lognorm(x)[:, genes]
    xl = np.asarray(xl.todense()) if sp.issparse(xl) else np.asarray(xl)
    xl = xl - xl.mean(0)
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
    return xl, windows, names


def cnv_state_change(
    x_base: np.ndarray, x_rel: np.ndarray, windows: list[np.ndarray], *, min_shift: float = 0.08
) -> list[int]:
    """Genomic windows where a relapse group departs from its baseline subclone as a copy-number change would.

    Per gene, the difference of mean log expression (relapse group minus baseline subclone); per window
    the *median* over its genes, centred on the median over all windows. A copy-number change moves every
    gene of a segment, so the median moves; a few strongly changed genes (a therapy-induced program, a
    subclone's own program) do not move it. Windows with ``|median| >= min_shift`` (log units; one copy
    of a segment in all cells moves it by ~0.2-0.4) and above 5 robust s.d. of all windows are returned.
    """
    if x_base.shape[0] < 5 or x_rel.shape[0] < 5:
        return []
    d = x_rel.mean(0) - x_base.mean(0)
    stat = np.array([np.median(d[w]) for w in windows])
    stat -= np.median(stat)
    # noise of the window medians (small groups are noisy): robust spread across windows
    spread = 1.4826 * np.median(np.abs(stat))
    return [int(i) for i in np.flatnonzero(np.abs(stat) >= max(min_shift, 5 * spread))]
