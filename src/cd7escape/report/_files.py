"""Atomic writes with ordinary permissions (mkstemp alone would leave files readable by the owner only)."""

from __future__ import annotations

import os
from pathlib import Path

from ..pipeline._cache import atomic_write


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: Path, data: bytes) -> None:
    mode = 0o666 & ~_umask()

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)
        os.chmod(tmp, mode)

    atomic_write(Path(path), write)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_h5ad(adata, path: Path, *, compression: str = "lzf") -> None:
    """``compression``: 'lzf', 'gzip' (level 1) or 'none' (``Config.h5ad_compression``)."""
    mode = 0o666 & ~_umask()
    # gzip level 1: within 6 % of the default level's size at less than half its time (20k cells:
    # 128 vs 121 MB, 5.0 vs 11.4 s)
    kwargs = {
        "lzf": {"compression": "lzf"},
        "gzip": {"compression": "gzip", "compression_opts": 1},
        "none": {},
    }[compression]

    def write(tmp: Path) -> None:
        adata.write_h5ad(tmp, **kwargs)
        os.chmod(tmp, mode)

    atomic_write(Path(path), write)
