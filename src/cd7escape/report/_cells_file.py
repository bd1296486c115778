"""``cells.h5ad`` in two parts: the count matrices as soon as they are final, the annotations at the end.

The matrices (``X`` and ``layers['counts']``) are most of the file's bytes and do not change after the
embedding, while the annotations are complete only after the last stage. :class:`CellsFile` writes the
matrices into a temporary file on a thread while the later stages run (h5py releases the GIL while it
compresses and writes) and :meth:`CellsFile.finish` adds obs, var, obsm, obsp, varm, varp and uns as
``AnnData.write_h5ad`` lays them out, then moves the file into place. A run killed midway leaves only
the temporary file, which the next run removes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from .._files import H5AD_COMPRESSION, atomic_write_h5ad, move_into_place, temporary_path
from .._parallel import in_thread


class CellsFile:
    """Start writing the matrices of ``adata`` to ``path`` (its folder is created).

    Parameters
    ----------
    adata
        The embedded cells: ``X`` and ``layers`` are final.
    path
        Where ``cells.h5ad`` goes.
    compression
        'lzf', 'gzip' (level 1) or 'none' (``Config.h5ad_compression``).
    """

    def __init__(self, adata, path: Path, *, compression: str = "lzf") -> None:
        self.path = Path(path)
        self.compression = compression
        self._tmp = temporary_path(self.path)
        self._obs_names = adata.obs_names.copy()
        self._var_names = adata.var_names.copy()
        self._matrices = (adata.X, dict(adata.layers))
        self._job = in_thread(
            _write_matrices, self._tmp, *self._matrices, H5AD_COMPRESSION[compression]
        )

    def finish(self, adata) -> None:
        """Add the annotations of ``adata`` and move the file into place.

        When the cells, genes or matrices changed since the start (or the matrices' write failed), the
        whole file is written again from ``adata``: the result is always the current AnnData.
        """
        from anndata.io import write_elem

        try:
            self._job.result()
            same = (
                adata.obs_names.equals(self._obs_names)
                and adata.var_names.equals(self._var_names)
                and adata.X is self._matrices[0]
                and dict(adata.layers).keys() == self._matrices[1].keys()
                and all(adata.layers[k] is v for k, v in self._matrices[1].items())
            )
        except Exception:
            same = False
        if not same:
            from .._logging import logger

            logger.info(
                "    cells.h5ad: the cells or matrices changed since embed; writing it whole"
            )
            self.abandon()
            atomic_write_h5ad(adata, self.path, compression=self.compression)
            return
        import h5py

        kwargs = H5AD_COMPRESSION[self.compression]
        adata.strings_to_categoricals()  # as write_h5ad does
        try:
            with h5py.File(self._tmp, "a") as f:
                for key, value in _annotations(adata).items():
                    write_elem(f, key, value, dataset_kwargs=kwargs)
            move_into_place(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)

    def abandon(self) -> None:
        """Wait for the matrices' write to end and delete the temporary file."""
        with contextlib.suppress(Exception):  # the file it was writing is deleted anyway
            self._job.result()
        self._tmp.unlink(missing_ok=True)


def _write_matrices(tmp: Path, x, layers: dict[str, Any], kwargs: dict[str, Any]) -> None:
    import h5py

    with h5py.File(tmp, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        if x is not None:
            _write_matrix(f, "X", x, kwargs)
        group = f.create_group("layers")
        group.attrs["encoding-type"] = "dict"
        group.attrs["encoding-version"] = "0.1.0"
        for key, value in layers.items():
            _write_matrix(group, key, value, kwargs)


#: Entries per h5py call. h5py holds one lock for all its calls in a process: written in one call,
#: a 100k-cell matrix kept the stage caches of the main thread waiting for seconds.
SLICE = 1 << 22
_CHUNK = 1 << 18  # divides SLICE: no compressed chunk is written twice


def _write_matrix(parent, name: str, m, kwargs: dict[str, Any]) -> None:
    """A CSR matrix as anndata writes it (``csr_matrix`` group: data, indices, indptr), in slices."""
    import numpy as np
    import scipy.sparse as sp

    if not (sp.issparse(m) and m.format == "csr"):
        from anndata.io import write_elem

        write_elem(parent, name, m, dataset_kwargs=kwargs)
        return
    group = parent.create_group(name)
    group.attrs["encoding-type"] = "csr_matrix"
    group.attrs["encoding-version"] = "0.1.0"
    group.attrs["shape"] = np.asarray(m.shape)
    for key in ("data", "indices", "indptr"):
        values = getattr(m, key)
        chunked = {"chunks": (min(values.size, _CHUNK),), **kwargs} if values.size else {}
        if key == "indices" and kwargs:
            # byte-shuffled, sorted column indices compress 3x better and faster (100k cells, lzf:
            # 356 -> 117 MB in 2.3 instead of 3.0 s); the values do not gain from it
            chunked["shuffle"] = True
        dataset = group.create_dataset(key, shape=values.shape, dtype=values.dtype, **chunked)
        for a in range(0, values.size, SLICE):
            dataset[a : a + SLICE] = values[a : a + SLICE]


def _annotations(adata) -> dict[str, Any]:
    return {
        "obs": adata.obs,
        "var": adata.var,
        "obsm": dict(adata.obsm),
        "varm": dict(adata.varm),
        "obsp": dict(adata.obsp),
        "varp": dict(adata.varp),
        "uns": dict(adata.uns),
    }
