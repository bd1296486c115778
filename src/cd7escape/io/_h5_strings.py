"""Strings stored in HDF5 files (10x barcodes and features, h5ad indices) as Python ``str``."""

from __future__ import annotations

import numpy as np


def decode_strings(arr) -> np.ndarray:
    """Bytes arrays from HDF5 to str (object) arrays."""
    arr = np.asarray(arr)
    if arr.dtype.kind == "S":
        return np.char.decode(arr, "utf-8").astype(object)
    if arr.dtype == object:
        return np.array([a.decode() if isinstance(a, bytes) else str(a) for a in arr], dtype=object)
    return arr.astype(str).astype(object)
