"""Atomic file writes: every output goes to a hidden temporary file beside it and is renamed into place.

A run killed midway leaves no half-written output, only ``.<name>.*.tmp`` files, which the next run
removes. Used by the pipeline's stage caches and by the report's files.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: ``AnnData.write_h5ad`` options per ``Config.h5ad_compression``. gzip level 1: within 6 % of the
#: default level's size at less than half its time (20k cells: 128 vs 121 MB, 5.0 vs 11.4 s).
H5AD_COMPRESSION: dict[str, dict[str, Any]] = {
    "lzf": {"compression": "lzf"},
    "gzip": {"compression": "gzip", "compression_opts": 1},
    "none": {},
}


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` and move the result to ``path``, so a killed run leaves no half file.

    The temporary file is removed when ``write`` raises; an existing ``path`` is then left as it was.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        write(tmp)
        move_into_place(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def temporary_path(path: str | Path) -> Path:
    """A new empty hidden file beside ``path`` (``.<name>.*.tmp``: a killed run's leftovers are found
    and removed by the next run); the folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def move_into_place(tmp: Path, path: str | Path) -> None:
    """Give a finished temporary file ordinary permissions and rename it to ``path`` (atomic)."""
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes owner-only files; outputs are shared
    os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8, atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_h5ad(adata, path: str | Path, *, compression: str = "lzf") -> None:
    """Write ``adata`` to ``path`` (``AnnData.write_h5ad``) atomically.

    ``compression``: 'lzf', 'gzip' (level 1) or 'none' (``Config.h5ad_compression``).
    """
    kwargs = H5AD_COMPRESSION[compression]
    atomic_write(path, lambda tmp: adata.write_h5ad(tmp, **kwargs))
