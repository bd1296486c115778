"""scanpy's sparse PCA (scikit-learn's ARPACK path), with the sparse products on the available CPUs.

``sc.pp.pca`` on a sparse matrix centres it implicitly and lets ARPACK call ``X @ v`` and ``X.T @ v``
a few hundred times; scipy computes each product on one CPU, and they are nearly all of the PCA's time
(12 s of 12.4 s at 100k cells × 2,000 genes). Here each product is split into row blocks computed on
threads (scipy's compiled loop releases the GIL). Every output value is the same sum in the same order
as scipy's, so the components and coordinates equal ``sc.pp.pca``'s bit for bit
(``tests/pp/test_pca.py``); the operator, start vector and sign convention are scikit-learn's.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def arpack_pca(adata, n_comps: int, *, mask_var: np.ndarray, seed: int = 0) -> None:
    """``sc.pp.pca(adata, n_comps, mask_var=mask_var, random_state=seed)`` for sparse ``X``, on threads.

    Parameters
    ----------
    adata
        Log-normalised expression in ``X`` (CSR).
    n_comps
        Principal components (fewer than the masked genes and the cells).
    mask_var
        Boolean mask of the genes to use (the highly variable ones).
    seed
        Seed of ARPACK's start vector.

    Returns
    -------
    Nothing; sets ``obsm['X_pca']`` (float32) and ``varm['PCs']`` (zeros for genes outside the mask), as
    scanpy does (without ``uns['pca']``).
    """
    from scipy.sparse.linalg import LinearOperator, svds
    from sklearn.utils import check_random_state
    from sklearn.utils.extmath import svd_flip
    from sklearn.utils.sparsefuncs import mean_variance_axis

    x = sp.csr_matrix(adata.X[:, mask_var])
    n, g = x.shape
    mean = mean_variance_axis(x, axis=0)[0][None, :]
    # x.T in CSR: each row's entries by increasing cell, the order scipy's x.T @ v sums them in
    xs, xts = _RowBlocks(x), _RowBlocks(x.T.tocsr())
    # scikit-learn's implicitly centred operator (sklearn.utils.sparsefuncs._implicit_column_offset)
    centred = LinearOperator(
        matvec=lambda v: xs @ v - mean @ v,
        matmat=lambda v: xs @ v - mean @ v,
        rmatvec=lambda v: xts @ v - (mean * v.sum()),
        rmatmat=lambda v: xts @ v - mean.T @ v.sum(axis=0)[None, :],
        dtype=x.dtype,
        shape=x.shape,
    )
    v0 = check_random_state(seed).uniform(-1, 1, min(n, g))
    u, s, vt = svds(centred, k=n_comps, tol=0.0, v0=v0)
    s = s[::-1]
    u, vt = svd_flip(u[:, ::-1], vt[::-1], u_based_decision=False)
    u = u[:, :n_comps]
    u *= s[:n_comps]
    adata.obsm["X_pca"] = u.astype(np.float32, copy=False)
    pcs = np.zeros((adata.n_vars, n_comps))
    pcs[np.asarray(mask_var)] = vt.T
    adata.varm["PCs"] = pcs


class _RowBlocks:
    """``x @ v`` for CSR ``x`` computed in row blocks on threads, equal to scipy's product."""

    def __init__(self, x: sp.csr_matrix) -> None:
        from .._parallel import available_cpus
        from .._sparse import entry_bounds

        self.x = x
        # one block per thread that map_threads runs (at most 2)
        self.bounds = entry_bounds(x.indptr, max(1, min(available_cpus(), 2, x.shape[0])))

    def __matmul__(self, v: np.ndarray) -> np.ndarray:
        from scipy.sparse import _sparsetools

        from .._parallel import map_threads

        x = self.x
        if self.bounds.size == 2:
            return x @ v
        v = np.asarray(v)  # as scipy's own product passes it to the compiled loop
        out = np.zeros((x.shape[0], *v.shape[1:]), dtype=np.result_type(x.dtype, v.dtype))

        def block(i: int) -> None:
            a, b = int(self.bounds[i]), int(self.bounds[i + 1])
            indptr = x.indptr[a : b + 1]
            if v.ndim == 1:
                _sparsetools.csr_matvec(b - a, x.shape[1], indptr, x.indices, x.data, v, out[a:b])
            else:
                _sparsetools.csr_matvecs(
                    b - a, x.shape[1], v.shape[1], indptr, x.indices, x.data, v.ravel(),
                    out[a:b].ravel(),
                )  # fmt: skip

        map_threads(block, list(range(self.bounds.size - 1)))
        return out
