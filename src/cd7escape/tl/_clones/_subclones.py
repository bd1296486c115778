"""Baseline subclones and the mapping of relapse malignant cells onto them (docs/method.md#clone-linking)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    from anndata import AnnData

from ..._anndata import antigen_counts, counts_matrix, malignant_mask, timepoint_masks
from ..._config import CloneParams, EmbedParams
from ..._errors import InputError
from ..._logging import logger, timed
from ..._uns import NS, record
from .._antigen import group_antigen, recorded_antigen_model, reference_level
from ._map_relapse import (
    GenomicWindows,
    _lognorm,
    fit_reference,
    genomic_windows,
    knn_transfer,
    window_shifts,
)
from ._relapse_copy_number import STATE_COLUMNS, relapse_copy_number
from ._trace import joint_space

_CP = CloneParams()
_EP = EmbedParams()

UNMAPPED = "unmapped"


def fold_ci(nr: int, NR: int, nb: int, NB: int, alpha: float = 0.05) -> tuple[float, float, float]:
    """Relapse/baseline frequency ratio with a Katz log interval (0.5 added to empty cells)."""
    from scipy import stats

    if NR == 0 or NB == 0:
        return float("nan"), float("nan"), float("nan")
    a, b = nr + 0.5 * (nr == 0 or nb == 0), nb + 0.5 * (nr == 0 or nb == 0)
    A, B = NR + 0.5 * (nr == 0 or nb == 0), NB + 0.5 * (nr == 0 or nb == 0)
    fold = (a / A) / (b / B)
    se = np.sqrt(max(1 / a - 1 / A + 1 / b - 1 / B, 0))
    z = stats.norm.ppf(1 - alpha / 2)
    return float(fold), float(fold * np.exp(-z * se)), float(fold * np.exp(z * se))


# --------------------------------------------------------------------------- clustering and reconciliation


def _self_neighbors(coords: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """One self-query serving both the Leiden graph and the label transfer's novelty scale.

    Each point first, then its ``min(n_neighbors, n - 1)`` nearest others: the graph takes
    ``n_neighbors`` columns (the point included), the transfer all of them.
    """
    from ...pp._knn import nearest_neighbors

    return nearest_neighbors(coords, int(min(n_neighbors, coords.shape[0] - 1)) + 1)


def _leiden(
    coords: np.ndarray,
    neighbors: tuple[np.ndarray, np.ndarray],
    *,
    n_neighbors: int,
    resolution: float,
    seed: int,
) -> np.ndarray:
    """Leiden clusters of ``coords`` on the graph of their self-query ``neighbors`` (:func:`_self_neighbors`)."""
    import anndata as ad
    import scanpy as sc

    from ...pp._knn import KnnTransformer
    from ...pp._numba import cache_numba_compilation

    cache_numba_compilation()  # scanpy's connectivities run umap-learn's numba code (cached, not recompiled)
    tmp = ad.AnnData(np.zeros((coords.shape[0], 1), dtype=np.float32))
    tmp.obsm["X_ref"] = coords.astype(np.float32)
    k = int(min(n_neighbors, coords.shape[0] - 1))
    sc.pp.neighbors(
        tmp, use_rep="X_ref", transformer=KnnTransformer(k, seed=seed, neighbors=neighbors)
    )
    sc.tl.leiden(
        tmp,
        resolution=resolution,
        flavor="igraph",
        n_iterations=2,
        directed=False,
        random_state=seed,
    )
    return tmp.obs["leiden"].astype(int).to_numpy()


def _merge_small(labels: np.ndarray, coords: np.ndarray, min_cells: int) -> np.ndarray:
    labels = labels.copy()
    while True:
        ids, n = np.unique(labels, return_counts=True)
        if ids.size <= 1 or n.min() >= min_cells:
            return labels
        small = ids[np.argmin(n)]
        cent = {i: coords[labels == i].mean(0) for i in ids}
        others = [i for i in ids if i != small]
        target = min(others, key=lambda i: np.linalg.norm(cent[i] - cent[small]))
        labels[labels == small] = target


def _chains(clonotype: str) -> set[str]:
    """Chains of a clonotype string ``TRB:…;TRA:…`` (a cell may miss one chain: dropout of VDJ capture)."""
    return {c for c in str(clonotype).split(";") if c}


def _split_by(
    labels: np.ndarray, group: np.ndarray, min_cells: int, *, tcr: bool = False
) -> tuple[np.ndarray, int]:
    """Split clusters along a clone-identity label (CNV subclone, TCR clonotype) when a part is big enough.

    Cells without the label (NaN) stay with the cluster's majority part. For clonotypes, a part sharing a
    chain with the majority clonotype is the same clone seen with a chain missing, never split off.
    """
    out = labels.astype(object).copy()
    n_split = 0
    for c in np.unique(labels):
        m = labels == c
        g = group[m]
        known = pd.notna(g)
        if known.sum() == 0:
            continue
        vals, cnt = np.unique(g[known].astype(str), return_counts=True)
        if vals.size < 2:
            continue
        major = vals[np.argmax(cnt)]
        for v, k in zip(vals, cnt, strict=False):
            if tcr and _chains(v) & _chains(major):
                continue
            if v != major and k >= min_cells:
                idx = np.flatnonzero(m)[known & (g.astype(str) == v)]
                out[idx] = f"{c}|{v}"
                n_split += 1
    return out, n_split


def _clone_label(adata, key: str, cells: np.ndarray) -> np.ndarray | None:
    if key not in adata.obs:
        return None
    v = adata.obs[key].to_numpy()[cells].astype(object)
    v = np.where(
        pd.isna(v) | np.isin(v.astype(str), ["", "nan", "None", "normal", "none"]), np.nan, v
    )
    return v if pd.notna(v).any() else None


def _supported_cnv_labels(cnv_b: np.ndarray, win: GenomicWindows, min_cells: int) -> set[str]:
    """CNV-subclone labels whose baseline cells differ from the other baseline cells as a copy-number change.

    ``call_malignant`` labels cells by their CNV profile even when the profiles barely differ (at low depth
    the labels can split one clone at random). A label is kept as clone identity only when the genomic-window
    medians of its cells depart from those of the remaining labelled cells (:meth:`GenomicWindows.change`); with
    a single label nothing distinguishes subclones and none is kept.
    """
    known = pd.notna(cnv_b)
    labs = cnv_b[known].astype(str)
    vals, cnt = np.unique(labs, return_counts=True)
    if vals.size < 2:
        return set()
    kept = set()
    idx = np.flatnonzero(known)
    for v, k in zip(vals, cnt, strict=False):
        rest = idx[labs != v]
        if k < min_cells or rest.size < min_cells:
            continue
        if win.change(rest, idx[labs == v]):
            kept.add(str(v))
    return kept


def _dominant(values: np.ndarray | None) -> tuple[Any, float]:
    if values is None:
        return None, float("nan")
    known = values[pd.notna(values)].astype(str)
    if known.size == 0:
        return None, float("nan")
    vals, cnt = np.unique(known, return_counts=True)
    return vals[np.argmax(cnt)], float(cnt.max() / cnt.sum())


def _markers(xlog, labels: np.ndarray, var_names: np.ndarray, n: int = 5) -> dict[str, list[str]]:
    """Top ``n`` genes by mean log expression in each subclone minus the other cells' mean."""
    from ..._sparse import group_sums

    names, codes = np.unique(labels, return_inverse=True)
    sums = group_sums(xlog, codes.ravel(), names.size)
    size = np.bincount(codes.ravel(), minlength=names.size).astype(float)
    total, n_all = sums.sum(0), float(size.sum())
    out = {}
    for i, c in enumerate(names):
        if size[i] == n_all:
            out[c] = []
            continue
        diff = sums[i] / size[i] - (total - sums[i]) / (n_all - size[i])
        out[c] = list(var_names[np.argsort(-diff)[:n]])
    return out


def _relapse_states_without_baseline(
    xb,
    xr,
    var_names,
    *,
    antigen,
    excluded,
    n_pcs,
    n_neighbors,
    resolution,
    min_cells,
    min_confidence,
    seed,
) -> np.ndarray:
    """Relapse cells in relapse clusters that fewer than ``min_cells`` baseline cells map back to.

    The forward mapping works in the baseline's space, which cannot show a state that (nearly) does not
    exist at baseline: a clone of 3 baseline cells contributes no feature or component, and its relapse
    cells then land on the dominant baseline subclone. So the relapse gets a space of its own (features
    chosen by variance *within* the relapse, so that a therapy-induced program shared by all relapse
    blasts is not a feature), its own Leiden clusters, and baseline cells are mapped onto them; a relapse
    cluster that no ``min_cells`` baseline cells map to is a new state.
    """
    ref_r, zr = fit_reference(
        xr, var_names, antigen=antigen, excluded_genes=list(excluded), n_pcs=n_pcs, seed=seed
    )
    zb = ref_r.project(xb)
    own = _self_neighbors(zr, n_neighbors)
    lab = _merge_small(
        _leiden(zr, own, n_neighbors=n_neighbors, resolution=resolution, seed=seed),
        zr,
        min_cells,
    )
    lab_b, conf_b, _ = knn_transfer(zr, lab, zb, n_neighbors=n_neighbors, ref_distances=own[0])
    support = {c: int(((lab_b == c) & (conf_b >= min_confidence)).sum()) for c in np.unique(lab)}
    new_clusters = [c for c, k in support.items() if k < min_cells]
    return np.isin(lab, new_clusters)


def _remap_cnv_consistent(
    rejected: list[tuple[str, np.ndarray, list[int]]],
    lab_r: np.ndarray,
    conf_r: np.ndarray,
    lab_b: np.ndarray,
    zb: np.ndarray,
    zr: np.ndarray,
    win: GenomicWindows,
    *,
    names: list[str],
    allowed: np.ndarray,
    n_neighbors: int,
    min_cells: int,
    min_confidence: float,
) -> int:
    """Re-map relapse groups rejected by the copy-number check onto subclones whose copy-number state they share.

    For each rejected group (relapse cells mapped to a subclone ``c`` whose genomic windows they depart from),
    the candidate subclones are those with at least ``min_cells`` baseline cells from which the group does not
    depart (:meth:`GenomicWindows.change`) *and* which themselves depart from ``c`` in one of the windows where the
    group does: a positive copy-number link, not merely the absence of a detectable difference (a small,
    noisy subclone differs from nothing detectably). The group's cells are label-transferred among the baseline cells of
    the candidates only (same kNN, confidence and novelty rules as the forward mapping); each resulting
    assignment is checked once more against its new subclone's windows and kept only if consistent. Cells
    without a consistent subclone stay ``'unmapped'``: a relapse-only copy-number state is still a new state.
    A re-mapped cell's confidence is the share of its neighbours among all baseline cells that carry the new
    label (:func:`_label_share`), which may be below ``min_confidence``: the copy-number link sets the label,
    the transcriptome says how sure that link is (the classifier's bootstrap draws links by it).
    Window rows: the baseline cells, then the relapse cells. Modifies ``lab_r``/``conf_r`` in place;
    returns the number of cells re-mapped.
    """
    n_done = 0
    n_b = {c: int((lab_b == c).sum()) for c in names}
    wins, off = win.windows, lab_b.size  # relapse cells' window rows follow the baseline cells'
    means: dict[str, np.ndarray] = {}

    def mean_b(c: str) -> np.ndarray:  # each subclone's mean once, not once per group and test
        if c not in means:
            means[c] = win.mean(np.flatnonzero(lab_b == c))
        return means[c]

    for c0, idx, rej_windows in rejected:
        if idx.size < min_cells:
            continue
        mean_r = win.mean(off + idx)
        ok = [
            c
            for c in names
            if c != c0
            and n_b[c] >= min_cells
            and not window_shifts(mean_b(c), n_b[c], mean_r, idx.size, wins)
            and set(window_shifts(mean_b(c0), n_b[c0], mean_b(c), n_b[c], wins)) & set(rej_windows)
        ]
        if not ok:
            continue
        refm = np.isin(lab_b, ok)
        if refm.sum() <= 2:
            continue
        col = {c: j for j, c in enumerate(names)}
        allow = np.stack([allowed[idx, col[c]] for c in ok], axis=1)
        # the candidate subclones' own label order (knn_transfer sorts labels)
        order = np.argsort(np.array(ok, dtype=object).astype(str))
        lab, conf, _ = knn_transfer(
            zb[refm], lab_b[refm], zr[idx], n_neighbors=n_neighbors, allowed=allow[:, order]
        )
        for c in ok:
            sel = (lab == c) & (conf >= min_confidence)
            if sel.sum() < min_cells or window_shifts(
                mean_b(c), n_b[c], win.mean(off + idx[sel]), int(sel.sum()), wins
            ):
                continue
            lab_r[idx[sel]] = c
            # the confidence of the link stays what the transcriptome says about it: the share of the cells'
            # neighbours among *all* baseline cells that carry the new label (the restricted transfer above
            # has one or a few candidates and would report near-certainty by construction)
            conf_r[idx[sel]] = _label_share(zb, lab_b, zr[idx[sel]], c, n_neighbors=n_neighbors)
            n_done += int(sel.sum())
    return n_done


def _label_share(
    ref: np.ndarray, ref_labels: np.ndarray, query: np.ndarray, label: str, *, n_neighbors: int
) -> np.ndarray:
    """Distance-weighted share of each query cell's ``n_neighbors`` nearest reference cells labelled ``label``.

    The same weights as the label transfer (:func:`~cd7escape.tl._map_relapse.knn_transfer`, 1/distance), so
    that for a cell labelled by its neighbours' majority it equals that transfer's mapping confidence.
    """
    from ...pp._knn import nearest_neighbors

    if query.shape[0] == 0:
        return np.zeros(0)
    k = int(min(n_neighbors, ref.shape[0]))
    d, idx = nearest_neighbors(ref, k, query=query)
    w = 1.0 / np.maximum(np.asarray(d, dtype=np.float64), 1e-9)
    hit = np.asarray(ref_labels, dtype=object)[idx] == label
    return (w * hit).sum(1) / w.sum(1)


def _cnv_link_new_states(
    new: np.ndarray,
    lab_fwd: np.ndarray,
    lab_r: np.ndarray,
    conf_r: np.ndarray,
    conf_fwd: np.ndarray,
    lab_b: np.ndarray,
    win: GenomicWindows,
    *,
    names: list[str],
    min_cells: int,
) -> int:
    """Give back their forward label to 'new state' relapse cells that carry their subclone's own copy-number state.

    The reverse check flags relapse clusters that few baseline cells map back to; an expanded small clone
    whose relapse cells split into several relapse clusters can fall under that count although it is a
    baseline clone. A copy-number link settles it: the flagged cells with forward label ``c`` (at least
    ``min_cells``) are linked to ``c`` when ``c`` has a copy-number state of its own (its genomic windows
    depart from the other baseline malignant cells), the group departs from those other cells too, and the
    group does not depart from ``c``. Window rows: the baseline cells, then the relapse cells. Modifies
    ``lab_r``/``conf_r`` in place; returns the number of cells linked.
    """
    n_done = 0
    for c in names:
        g = np.flatnonzero(new & (lab_fwd == c))
        inc, rest = np.flatnonzero(lab_b == c), np.flatnonzero(lab_b != c)
        if g.size < min_cells or inc.size < min_cells or rest.size < min_cells:
            continue
        own = win.change(rest, inc)
        if not own:
            continue
        away = set(win.change(rest, lab_b.size + g))
        if away & set(own) and not win.change(inc, lab_b.size + g):
            lab_r[g] = c
            conf_r[g] = conf_fwd[g]
            n_done += int(g.size)
    return n_done


# --------------------------------------------------------------------------- public


def subclones(
    adata: AnnData,
    *,
    antigen: str = "CD7",
    resolution: float = _CP.resolution,
    min_subclone_cells: int = _CP.min_subclone_cells,
    n_neighbors: int = _CP.n_neighbors,
    min_mapping_confidence: float = _CP.min_mapping_confidence,
    n_pcs: int = _CP.n_pcs,
    n_top_genes: int = _EP.n_top_genes,
    antigen_corr_max: float = _EP.antigen_corr_max,
    use_rep: str | None = None,
    seed: int = 0,
    key_added: str = "subclone",
    copy: bool = False,
) -> AnnData | None:
    """Baseline malignant subclones, relapse cells mapped onto them, frequencies and antigen state.

    Baseline malignant cells get a malignant-only embedding whose features exclude the antigen and the genes
    correlated with it (those listed in ``uns['cd7escape']['embed']['excluded_genes']`` and any found again
    among these cells), then Leiden subclusters. A subcluster is split along CNV subclones
    (``obs['cnv_subclone']``) and TCR clonotypes (``obs['clone_id']``) when a differing part has at least
    ``min_subclone_cells`` cells; parts smaller than that are merged into the nearest subcluster.
    Relapse malignant cells are labelled by their nearest baseline cells (kNN label transfer, restricted to
    subclones of the same CNV subclone / clonotype when the cell has one seen at baseline); the mapping
    confidence is the distance-weighted share of neighbours agreeing, and 0 for cells farther from the
    baseline than baseline cells ever are from each other. Cells below ``min_mapping_confidence`` are
    ``'unmapped'`` (a state the baseline does not contain).

    Parameters
    ----------
    adata
        Patient AnnData with raw counts (``layers['counts']`` or ``X``), ``obs['timepoint']`` and
        ``obs['malignant']``.
    antigen
        Gene symbol of the CAR target; kept out of the features.
    resolution
        Leiden resolution on the baseline malignant-only graph.
    min_subclone_cells
        Smallest subclone; smaller subclusters are merged into their nearest neighbour.
    n_neighbors
        Neighbours of the graph and of the label transfer.
    min_mapping_confidence
        Relapse cells below this mapping confidence are ``'unmapped'``.
    n_pcs
        Principal components of the baseline malignant-only space (few: subclone programs are low-dimensional).
    n_top_genes
        Highly variable genes of that space (the embedding's ``n_top_genes``).
    antigen_corr_max
        Genes whose Spearman correlation with the antigen among these cells exceeds this are left out of the
        space (the embedding's ``antigen_corr_max``).
    use_rep
        Embedding in ``obsm`` to cluster and map in (e.g. ``'X_scvi'``, an integrated space). None: ``X_scvi``
        when present, else the baseline malignant-only PCA with relapse cells projected into it.
    seed
        Random seed (PCA, Leiden).
    key_added
        ``obs`` key of the labels; the confidence goes to ``obs[key_added + '_confidence']``.
    copy
        Work on a copy and return it; otherwise modify ``adata`` and return None.

    Returns
    -------
    The annotated copy when ``copy``, else None. Writes ``obs[key_added]`` (baseline subclone, the mapped subclone for relapse cells, ``'unmapped'``,
    NaN for non-malignant and other timepoints), ``obs[key_added + '_confidence']`` and
    ``uns['cd7escape']['subclones']`` with ``table`` (one row per subclone: cells and frequency per timepoint,
    expansion fold and CI, antigen-negative fraction and state per timepoint, CNV subclone, clonotype,
    markers), and ``obsm['X_clone_trace']``: the malignant cells of both timepoints in a joint antigen-free
    space (fit on both; the integrated ``use_rep`` when given), in which :func:`classify_relapse` traces the
    negative relapse population to baseline cells (NaN rows outside).
    """
    if copy:
        adata = adata.copy()
    if not (0 <= min_mapping_confidence <= 1):
        raise InputError.single(
            "min_mapping_confidence must be within [0, 1]", field="min_mapping_confidence"
        )
    if min_subclone_cells < 1 or n_neighbors < 1 or resolution <= 0:
        raise InputError.single(
            "min_subclone_cells and n_neighbors must be >= 1 and resolution > 0", field="clones"
        )
    mal = malignant_mask(adata)
    bt, rt = timepoint_masks(adata)
    b_idx, r_idx = np.flatnonzero(mal & bt), np.flatnonzero(mal & rt)
    if b_idx.size < max(min_subclone_cells, 3):
        raise InputError.single(
            f"only {b_idx.size} baseline malignant cells: too few to define subclones",
            field="timepoint",
        )
    x = counts_matrix(adata)
    x = sp.csr_matrix(x) if sp.issparse(x) else np.asarray(x)
    xb, xr = x[b_idx], x[r_idx]  # gathered once: every step below reads these cells
    var_names = np.asarray(adata.var_names)
    embed_entry = adata.uns.get(NS, {}).get("embed", {})
    excluded = list(
        np.asarray(
            embed_entry.get("excluded_genes", []) if hasattr(embed_entry, "get") else [], dtype=str
        )
    )

    from ..._parallel import in_thread

    # the genomic windows read only the counts: a thread computes them while the baseline space is fit
    # (rows: the baseline cells, then the relapse cells)
    windows_job = in_thread(genomic_windows, [xb, xr], adata.var, antigen=antigen)
    with timed("subclones: baseline malignant-only embedding"):
        if use_rep is None and "X_scvi" in adata.obsm:
            use_rep = "X_scvi"
        if use_rep is not None:
            if use_rep not in adata.obsm:
                raise InputError.single(f"obsm[{use_rep!r}] is missing", field="use_rep")
            rep = np.asarray(adata.obsm[use_rep])
            zb, zr = rep[b_idx], rep[r_idx]
            space_excluded = [*excluded, antigen]
            space = f"obsm['{use_rep}']"
        else:
            ref, zb = fit_reference(
                xb, var_names, antigen=antigen, excluded_genes=excluded,
                n_top_genes=n_top_genes, n_pcs=n_pcs, antigen_corr_max=antigen_corr_max, seed=seed,
            )  # fmt: skip
            zr = ref.project(xr) if r_idx.size else np.zeros((0, zb.shape[1]))
            space_excluded = ref.excluded
            space = "baseline malignant-only PCA (relapse projected)"
        own_b = _self_neighbors(zb, n_neighbors)
        leiden = _leiden(zb, own_b, n_neighbors=n_neighbors, resolution=resolution, seed=seed)
        # split labels are strings ('0|b'): one type to sort
        labels = leiden.astype(str).astype(object)
        win = windows_job.result()
        cnv_b = _clone_label(adata, "cnv_subclone", b_idx)
        cnv_kept: set[str] | None = None
        if cnv_b is not None and win is not None:
            # CNV labels count as clone identity only where the genomic windows confirm them
            cnv_kept = _supported_cnv_labels(cnv_b, win, min_subclone_cells)
            cnv_b = np.where(np.isin(cnv_b.astype(str), list(cnv_kept)), cnv_b, np.nan)
            cnv_b = cnv_b if pd.notna(cnv_b).any() else None
        tcr_b = _clone_label(adata, "clone_id", b_idx)
        n_cnv_split = n_tcr_split = 0
        if cnv_b is not None:
            labels, n_cnv_split = _split_by(labels, cnv_b, min_subclone_cells)
        if tcr_b is not None:
            labels, n_tcr_split = _split_by(labels, tcr_b, min_subclone_cells, tcr=True)
        codes = np.unique(labels.astype(str), return_inverse=True)[1].ravel()
        codes = _merge_small(codes, zb, min_subclone_cells)
        # name subclones by decreasing baseline size: S0 is the largest
        ids, n = np.unique(codes, return_counts=True)
        rename = {i: f"S{r}" for r, i in enumerate(ids[np.argsort(-n, kind="stable")])}
        lab_b = np.array([rename[c] for c in codes], dtype=object)

    names = sorted(set(lab_b), key=lambda v: int(v[1:]))
    dom_cnv = {c: _dominant(cnv_b[lab_b == c] if cnv_b is not None else None) for c in names}
    dom_tcr = {c: _dominant(tcr_b[lab_b == c] if tcr_b is not None else None) for c in names}

    with timed("subclones: mapping relapse cells"):
        if r_idx.size:
            allowed = np.ones((r_idx.size, len(names)), dtype=bool)
            for key, dom, base in (("cnv_subclone", dom_cnv, cnv_b), ("clone_id", dom_tcr, tcr_b)):
                vals = _clone_label(adata, key, r_idx)
                if vals is None or base is None:
                    continue
                if key == "cnv_subclone" and cnv_kept is not None:
                    # labels seen at baseline but not confirmed there carry no identity; labels absent from
                    # the baseline (a relapse-only CNV subclone) still mark a new state
                    seen_b = set(_clone_label(adata, key, b_idx).astype(str))
                    drop = np.isin(vals.astype(str), list(seen_b - cnv_kept))
                    vals = np.where(drop, np.nan, vals)
                seen = set(base[pd.notna(base)].astype(str))
                if key == "clone_id":
                    # clonotypes: constrain only with a clonotype seen at baseline, compatible when sharing a chain
                    known = pd.notna(vals) & np.isin(vals.astype(str), list(seen))
                    # chains of each distinct clonotype once, not of every cell once per subclone
                    uniq, inverse = np.unique(vals.astype(str), return_inverse=True)
                    chains = [_chains(v) for v in uniq]
                    for j, c in enumerate(names):
                        d = dom[c][0]
                        if d is not None:
                            same = np.array([bool(ch & _chains(d)) for ch in chains])[
                                inverse.ravel()
                            ]
                            allowed[known & ~same, j] = False
                else:
                    # CNV subclones: a relapse cell whose CNV subclone is no baseline subclone's is a new state
                    known = pd.notna(vals)
                    for j, c in enumerate(names):
                        d = dom[c][0]
                        if d is not None:
                            allowed[known & (vals.astype(str) != str(d)), j] = False
            lab_r, conf_r, _rel = knn_transfer(
                zb, lab_b, zr, n_neighbors=n_neighbors, allowed=allowed, ref_distances=own_b[0]
            )
            lab_r = np.where(conf_r >= min_mapping_confidence, lab_r, UNMAPPED).astype(object)
            conf_fwd = conf_r.copy()
            n_new_state = n_cnv_new = n_cnv_remapped = 0
            cnv_windows: dict[str, list[str]] = {}
            rejected: list[tuple[str, np.ndarray, list[int]]] = []
            if use_rep is None and r_idx.size >= 2 * min_subclone_cells:
                # reverse check: relapse states with too few baseline cells are new states
                new = _relapse_states_without_baseline(
                    xb, xr, var_names, antigen=antigen, excluded=space_excluded,
                    n_pcs=n_pcs, n_neighbors=n_neighbors, resolution=resolution,
                    min_cells=min_subclone_cells, min_confidence=min_mapping_confidence, seed=seed,
                )  # fmt: skip
                n_new_state = int(new.sum())
                lab_fwd = lab_r.copy()
                lab_r = np.where(new, UNMAPPED, lab_r).astype(object)
                conf_r = np.where(new, 0.0, conf_r)
            # copy-number consistency: relapse cells carrying a genomic-window state their subclone lacks
            if win is not None:
                for c in names:
                    mr = lab_r == c
                    if mr.sum() < min_subclone_cells:
                        continue
                    windows = win.change(
                        np.flatnonzero(lab_b == c), b_idx.size + np.flatnonzero(mr)
                    )
                    if windows:
                        # the windows moved by >= 0.08 log units: a sizeable share of the group carries a
                        # copy-number state its baseline subclone lacks. Per-cell calls are too noisy to
                        # separate the carriers, so none of the group is linked to the subclone.
                        idx = np.flatnonzero(mr)
                        lab_r[idx] = UNMAPPED
                        conf_r[idx] = 0.0
                        n_cnv_new += int(idx.size)
                        cnv_windows[c] = [win.names[i] for i in windows]
                        rejected.append((c, idx, windows))
                if n_new_state:
                    # a relapse state the reverse check found (nearly) absent at baseline is still linked to
                    # its forward subclone when it carries that subclone's own copy-number state: it departs
                    # from the other baseline cells where the subclone does, and not from the subclone
                    n_cnv_linked = _cnv_link_new_states(
                        new, lab_fwd, lab_r, conf_r, conf_fwd, lab_b, win,
                        names=names, min_cells=min_subclone_cells,
                    )  # fmt: skip
                    n_new_state -= n_cnv_linked
                # a rejected group may carry the copy-number state of another baseline subclone (the
                # transcriptional mapping put it on the wrong one, e.g. after a therapy shift): re-map it
                # among the subclones whose genomic windows it matches, then check that match again
                n_cnv_remapped = _remap_cnv_consistent(
                    rejected, lab_r, conf_r, lab_b, zb, zr, win,
                    names=names, allowed=allowed, n_neighbors=n_neighbors,
                    min_cells=min_subclone_cells, min_confidence=min_mapping_confidence,
                )  # fmt: skip
                n_cnv_new -= n_cnv_remapped
        else:
            lab_r, conf_r = np.array([], dtype=object), np.array([])
            n_new_state = n_cnv_new = n_cnv_remapped = 0
            cnv_windows = {}

    obs_lab = np.full(adata.n_obs, np.nan, dtype=object)
    obs_conf = np.full(adata.n_obs, np.nan)
    obs_lab[b_idx] = lab_b
    obs_conf[b_idx] = 1.0
    obs_lab[r_idx] = lab_r
    obs_conf[r_idx] = conf_r
    cats = names + ([UNMAPPED] if (lab_r == UNMAPPED).any() else [])
    adata.obs[key_added] = pd.Categorical(obs_lab, categories=cats)
    adata.obs[f"{key_added}_confidence"] = obs_conf
    # the space in which classify_relapse traces relapse cells to their baseline look-alikes
    if use_rep is None and r_idx.size:
        with timed("subclones: joint antigen-free space of both timepoints"):
            tb, tr = joint_space(
                xb, xr, var_names, antigen=antigen, excluded_genes=list(space_excluded),
                n_top_genes=n_top_genes, n_pcs=n_pcs, seed=seed,
            )  # fmt: skip
    else:
        tb, tr = zb, zr
    trace_coords = np.full((adata.n_obs, tb.shape[1]), np.nan, dtype=np.float32)
    trace_coords[b_idx] = tb
    trace_coords[r_idx] = tr
    adata.obsm["X_clone_trace"] = trace_coords
    # a copy-number state the relapse carries more than the baseline: each malignant cell's evidence of it
    # is a clone link the trace reads beside the expression
    cn_states: list[dict[str, Any]] = []
    cn_llr = np.zeros((b_idx.size + r_idx.size, 0))
    if win is not None and r_idx.size:
        with timed("subclones: copy-number states of the relapse"):
            cn_states, cn_llr = relapse_copy_number(win, xb, xr)
    cn_coords = np.full((adata.n_obs, cn_llr.shape[1]), np.nan, dtype=np.float32)
    cn_coords[b_idx] = cn_llr[: b_idx.size]
    cn_coords[r_idx] = cn_llr[b_idx.size :]
    adata.obsm["X_clone_cn"] = cn_coords

    with timed("subclones: antigen state per subclone and timepoint"):
        y, s = antigen_counts(adata, antigen)
        model = recorded_antigen_model(adata, antigen)
        ambient, theta, amb_source = model.ambient_rate, model.theta, model.ambient_source
        mu_ref, mu_ref_source = reference_level(
            adata, y, s, mal, bt, ambient=ambient, theta=theta, min_cells=model.min_cells
        )
        xlog_b = _lognorm(xb)
        markers = _markers(xlog_b, lab_b, np.array(var_names), n=5)
        rows = []
        for c in cats:
            nb_c = int((lab_b == c).sum())
            nr_c = int((lab_r == c).sum())
            fold, lo, hi = (
                fold_ci(nr_c, r_idx.size, nb_c, b_idx.size)
                if c != UNMAPPED
                else (np.nan, np.nan, np.nan)
            )
            row: dict[str, Any] = {
                "subclone": c,
                "n_baseline": nb_c,
                "n_relapse": nr_c,
                "freq_baseline": nb_c / b_idx.size,
                "freq_relapse": nr_c / r_idx.size if r_idx.size else np.nan,
                "expansion_fold": fold,
                "fold_ci_low": lo,
                "fold_ci_high": hi,
            }
            for tp, idx, lab in (("baseline", b_idx, lab_b), ("relapse", r_idx, lab_r)):
                cells = idx[lab == c]
                r = group_antigen(
                    y[cells],
                    s[cells],
                    mu_ref=mu_ref,
                    ambient=ambient,
                    theta=theta,
                    **model.options(),
                )
                for k in ("pi", "ci_low", "ci_high", "lrt_pvalue", "mu_ratio", "zero_fraction"):
                    row[f"{k}_{tp}"] = r.get(k, np.nan)
                row[f"state_{tp}"] = r["state"]
            row["cnv_subclone"] = str(dom_cnv.get(c, (None,))[0]) if c in dom_cnv else "None"
            row["cnv_purity"] = dom_cnv[c][1] if c in dom_cnv else np.nan
            row["clone_id"] = str(dom_tcr.get(c, (None,))[0]) if c in dom_tcr else "None"
            row["tcr_purity"] = dom_tcr[c][1] if c in dom_tcr else np.nan
            row["markers"] = ",".join(markers.get(c, []))
            rows.append(row)
        table = pd.DataFrame(rows).set_index("subclone")

    n_unmapped = int((lab_r == UNMAPPED).sum())
    detection = min_subclone_cells / b_idx.size
    logger.info(
        "subclones: %d baseline subclones from %d baseline malignant cells; %d/%d relapse cells unmapped",
        len(names), b_idx.size, n_unmapped, r_idx.size,
    )  # fmt: skip
    record(
        adata,
        "subclones",
        {
            "antigen": antigen,
            "resolution": resolution,
            "min_subclone_cells": min_subclone_cells,
            "n_neighbors": n_neighbors,
            "min_mapping_confidence": min_mapping_confidence,
            "n_pcs": n_pcs,
            "n_top_genes": n_top_genes,
            "antigen_corr_max": antigen_corr_max,
            "use_rep": use_rep,
            "seed": seed,
            "key_added": key_added,
            "antigen_model": model.options(),
        },
        obs=[key_added, f"{key_added}_confidence"],
        obsm=["X_clone_trace", "X_clone_cn"],
        results={
            "table": table,
            "cnv_confirmed": sorted(cnv_kept) if cnv_kept else [],
            "space": space,
            "excluded_genes": list(space_excluded),
            "n_baseline_cells": int(b_idx.size),
            "n_relapse_cells": int(r_idx.size),
            "n_unmapped": n_unmapped,
            "n_new_state": n_new_state,
            "n_new_cnv_state": n_cnv_new,
            "n_cnv_remapped": int(n_cnv_remapped),
            "new_cnv_windows": {k: list(v) for k, v in cnv_windows.items()},
            "relapse_cn_states": pd.DataFrame(cn_states, columns=STATE_COLUMNS),
            "n_cnv_splits": int(n_cnv_split),
            "n_tcr_splits": int(n_tcr_split),
            "ambient_rate": ambient,
            "theta": theta,
            "ambient_source": amb_source,
            "mu_ref": mu_ref,
            "mu_ref_source": mu_ref_source,
            "detection_limit": float(detection),
            "detection_limit_text": (
                f"a subclone below {min_subclone_cells} of {b_idx.size} baseline malignant cells "
                f"({100 * detection:.1f} %) cannot be resolved"
            ),
        },
    )
    return adata if copy else None
