"""The k nearest among an inverted-file index's probed lists, scanned by a compiled loop.

faiss's ``IndexIVFFlat.search`` keeps each query's best candidates in a heap, whose upkeep costs more
than the distances when k is large: for Scrublet's ~150 neighbours on a 29k-point doublet manifold
(30 dimensions, 685 lists, nprobe 24) its search took 1.80 s on one thread, this scan 1.39 s. Here a
candidate enters a buffer only when it beats the k-th best kept so far; when the buffer holds 2k
candidates a selection keeps the k best and tightens that bound, so most candidates cost one
comparison. faiss still trains the coarse quantiser, assigns the points to lists and chooses each
query's probes, so every query scans the same candidates as in faiss. The k best are taken by
(squared distance, index): the result does not depend on the order the lists are scanned in. Distances
are float32 sums like faiss's but in another order, so they can differ from faiss's in the last bits,
which changes a neighbour only between two candidates at the same distance.
"""

from __future__ import annotations

import numba
import numpy as np

#: Queries per part when the scan runs on several threads (fixed: parts never change the result).
QUERIES_PER_PART = 4096


def ivf_search(
    quantizer, ref: np.ndarray, qry: np.ndarray, k: int, nprobe: int, *, n_threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Squared distances and indices of the ``k`` nearest rows of ``ref`` among each query's probed lists.

    Parameters
    ----------
    quantizer
        A trained faiss index of the list centroids (``IndexIVFFlat.quantizer``).
    ref, qry
        Reference and query points, float32 C-contiguous; ``ref`` has fewer than 2^32 rows.
    k
        Neighbours per query.
    nprobe
        Lists scanned per query (those of the nearest centroids).
    n_threads
        Threads to split the queries over.

    Returns
    -------
    Squared distances (ascending; ties by index) and indices into ``ref``, query × ``k``; where the
    probed lists hold fewer than ``k`` points the missing entries are ``inf`` and ``-1``, as in faiss.
    """
    from .._parallel import map_threads

    n_lists = quantizer.ntotal
    assign = quantizer.search(ref, 1)[1].ravel()
    order = np.argsort(assign, kind="stable").astype(np.uint64)
    offsets = np.zeros(n_lists + 1, dtype=np.int64)
    np.cumsum(np.bincount(assign, minlength=n_lists), out=offsets[1:])
    members = np.ascontiguousarray(ref[order.astype(np.int64)])
    probes = quantizer.search(qry, int(min(nprobe, n_lists)))[1]
    d2 = np.empty((qry.shape[0], k), dtype=np.float32)
    idx = np.empty((qry.shape[0], k), dtype=np.int64)

    def part(q0: int) -> None:
        q1 = min(q0 + QUERIES_PER_PART, qry.shape[0])
        _scan(members, order, offsets, qry, probes, q0, q1, d2, idx)

    map_threads(part, list(range(0, qry.shape[0], QUERIES_PER_PART)), max_threads=n_threads)
    return d2, idx


_INF_KEY = np.uint64(0x7F800000FFFFFFFF)  # (inf, largest index): no candidate


@numba.njit(cache=True, nogil=True, fastmath=True)
def _scan(members, order, offsets, qry, probes, q0, q1, out_d, out_i):  # pragma: no cover
    # a candidate is one uint64 key: its distance's bits above its index. Non-negative floats order
    # as their bits do, so keys order by (distance, index) and are all distinct.
    k = out_d.shape[1]
    keys = np.empty(2 * k, dtype=np.uint64)
    dist = np.zeros(1, dtype=np.float32)
    bits = dist.view(np.uint32)
    back = np.zeros(k, dtype=np.uint32)
    back_f = back.view(np.float32)
    shift = np.uint64(32)
    for q in range(q0, q1):
        x = qry[q]
        m = 0
        bound = _INF_KEY
        for p in range(probes.shape[1]):
            lst = probes[q, p]
            if lst < 0:
                continue
            for j in range(offsets[lst], offsets[lst + 1]):
                y = members[j]
                s = np.float32(0.0)
                for t in range(x.size):
                    diff = x[t] - y[t]
                    s += diff * diff
                dist[0] = s
                key = (np.uint64(bits[0]) << shift) | order[j]
                if key < bound:
                    keys[m] = key
                    m += 1
                    if m == 2 * k:
                        _select(keys, m, k)
                        m = k
                        bound = keys[:k].max()
        for j in range(m, k):
            keys[j] = _INF_KEY
        if m > k:
            _select(keys, m, k)
        best = np.sort(keys[:k])
        for j in range(k):
            if best[j] == _INF_KEY:
                out_d[q, j] = np.inf
                out_i[q, j] = -1
            else:
                back[j] = np.uint32(best[j] >> shift)
                out_d[q, j] = back_f[j]
                out_i[q, j] = np.int64(best[j] & np.uint64(0xFFFFFFFF))


@numba.njit(cache=True, nogil=True)
def _select(keys, m, k):  # pragma: no cover - compiled
    # Hoare quickselect with a median-of-three pivot: afterwards keys[:k] are the k smallest of keys[:m]
    lo, hi = 0, m - 1
    while lo < hi:
        a, b, c = keys[lo], keys[(lo + hi) >> 1], keys[hi]
        if a > b:
            a, b = b, a
        if b > c:
            b = c
        pivot = a if a > b else b
        i, j = lo, hi
        while i <= j:
            while keys[i] < pivot:
                i += 1
            while keys[j] > pivot:
                j -= 1
            if i <= j:
                keys[i], keys[j] = keys[j], keys[i]
                i += 1
                j -= 1
        if k - 1 <= j:
            hi = j
        elif k - 1 >= i:
            lo = i
        else:
            break
