"""Stage outputs on disk, keyed by a hash of everything they depend on; written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def stage_key(previous: str, name: str, params: dict[str, Any]) -> str:
    """Hash of a stage's parameters chained to the key of the stage before it."""
    payload = json.dumps(
        {"previous": previous, "stage": name, "params": params}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` and move the result into place, so a killed run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_h5ad(adata, path: Path) -> None:
    atomic_write(path, lambda tmp: adata.write_h5ad(tmp, compression="gzip"))
