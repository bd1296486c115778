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
from .._logging import logger
from .._parallel import in_thread

#: The chain fields of ``obsm['airr']``: the AIRR Rearrangement schema's required fields (v1.4/1.5,
#: what ``scirpy.io.AirrCell.empty_chain_dict`` fills) plus ``locus`` and ``c_call``. cd7escape keeps one
#: productive chain per locus (the one that defines ``obs['clone_id']``): its ``junction`` (10x
#: ``cdr3_nt``), ``junction_aa`` (10x ``cdr3``) and ``locus`` are filled, the rest are null.
AIRR_FIELDS = (
    "sequence_id",
    "sequence",
    "rev_comp",
    "productive",
    "locus",
    "v_call",
    "d_call",
    "j_call",
    "c_call",
    "sequence_alignment",
    "germline_alignment",
    "junction",
    "junction_aa",
    "v_cigar",
    "d_cigar",
    "j_cigar",
)
_BOOL_FIELDS = frozenset({"rev_comp", "productive"})


def scverse_layout(adata):
    """Shape the AnnData written as ``cells.h5ad`` for the tools that read it (in place; returned).

    - **scirpy** (≥ 0.13): the clonotype chains in ``obsm['airr']``, an awkward array of AIRR
      Rearrangement records per cell (:data:`AIRR_FIELDS`), built from ``obs['clone_id']`` and the
      ``<locus>_cdr3`` columns; ``scirpy.pp.index_chains`` and ``scirpy.tl.define_clonotypes`` run on it.
    - **cellxgene**: every obs/var column is bool, a NumPy number, a string or a categorical with
      string or numeric categories. Nullable pandas dtypes become plain ones (``boolean`` with NA → a
      'True'/'False' categorical, ``Int64``/``Float64`` → float with NaN, ``string`` → categorical) and
      an object column mixing types or missing values becomes a categorical of their text.

    ``adata`` should be a shell of its own (``report._patient._shell``): its obs/var frames are
    replaced, its ``obsm`` gains ``'airr'``; ``uns`` and the matrices are not touched.
    """
    adata.obs = _plain_columns(adata.obs)
    adata.var = _plain_columns(adata.var)
    if "clone_id" in adata.obs and "airr" not in adata.obsm:
        airr = airr_chains(adata.obs)
        if airr is not None:
            adata.obsm["airr"] = airr
    return adata


def airr_chains(obs):
    """The chains of each cell as scirpy's ``obsm['airr']`` (None without awkward installed)."""
    import numpy as np
    import pandas as pd

    try:
        import awkward as ak
    except ImportError:  # a declared dependency; without it the file is still written
        logger.warning("    cells.h5ad: awkward is not installed, so no obsm['airr'] for scirpy")
        return None
    clone = obs["clone_id"]
    names = obs.index.to_numpy(dtype=str)
    aa_columns = {
        c.removesuffix("_cdr3").upper(): obs[c]
        for c in obs.columns
        if isinstance(c, str) and c.endswith("_cdr3")
    }
    counts = np.zeros(len(obs), dtype=np.int64)
    cols: dict[str, list] = {"sequence_id": [], "locus": [], "junction": [], "junction_aa": []}
    values = clone.astype(object).where(clone.notna(), None).to_numpy()
    for i, text in enumerate(values):
        if not isinstance(text, str) or not text:
            continue
        for part in text.split(";"):
            locus, _, nt = part.partition(":")
            if not nt:
                continue
            aa = aa_columns.get(locus)
            aa = None if aa is None else aa.iat[i]
            cols["sequence_id"].append(f"{names[i]}_{locus}")
            cols["locus"].append(locus)
            cols["junction"].append(nt)
            cols["junction_aa"].append(aa if isinstance(aa, str) and aa else None)
            counts[i] += 1
    n = len(cols["locus"])
    fields = {}
    for field in AIRR_FIELDS:
        if field == "productive":  # only productive chains define a clonotype
            fields[field] = ak.Array(np.ones(n, dtype=bool))
        elif field in cols:
            kind = "?string" if field == "junction_aa" else "string"
            fields[field] = ak.enforce_type(ak.Array(pd.Series(cols[field], dtype=object)), kind)
        else:
            kind = "?bool" if field in _BOOL_FIELDS else "?string"
            fields[field] = ak.enforce_type(ak.Array([None] * n), kind)
    records = ak.zip(fields, depth_limit=1)
    return ak.unflatten(records, counts)


def _plain_columns(frame):
    """A copy of ``frame`` with the column types cellxgene reads (see :func:`scverse_layout`)."""
    import pandas as pd
    from pandas.api.types import is_object_dtype

    frame = frame.copy()
    for name in frame.columns:
        col = frame[name]
        dtype = col.dtype
        if isinstance(dtype, pd.BooleanDtype):
            frame[name] = (
                col.to_numpy(dtype=bool)
                if not col.isna().any()
                else pd.Categorical(col.map({True: "True", False: "False"}), ["False", "True"])
            )
        elif isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "iuf":
            # Int64, Float64 …: NA becomes NaN
            frame[name] = col.to_numpy(dtype="float64", na_value=float("nan"))
        elif isinstance(dtype, pd.StringDtype):
            frame[name] = pd.Categorical(col.astype(object).where(col.notna(), None))
        elif isinstance(dtype, pd.CategoricalDtype):
            cats = dtype.categories
            if is_object_dtype(cats.dtype) and not all(isinstance(c, str) for c in cats):
                frame[name] = col.cat.rename_categories([str(c) for c in cats])
        elif is_object_dtype(dtype):
            # cellxgene reads an object column as text only when every value is a string
            missing = col.isna()
            if missing.any() or not all(isinstance(v, str) for v in col[~missing]):
                frame[name] = pd.Categorical(
                    col.map(lambda v: v if v is None or v != v else str(v))
                )
    return frame


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
