"""Stage outputs on disk, keyed by a hash of everything they depend on; written atomically (``_files``).

Each cache ``<nn>-<stage>-<key>.h5ad`` has a sidecar ``<nn>-<stage>-<key>.h5ad.sha256`` (JSON: size and
SHA-256 of the file, written once the file is in place). A cache whose bytes do not match its sidecar, or
that has none (a run killed between the two renames, a copy that lost it), or that cannot be read, is
damaged: :func:`verify` says why, and the runner recomputes the stage with a warning.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .._files import atomic_write_text, move_into_place, temporary_path

#: Bytes read at a time when hashing a cache.
_BLOCK = 1 << 20


def stage_key(previous: str, name: str, params: dict[str, Any]) -> str:
    """Hash of a stage's parameters chained to the key of the stage before it."""
    payload = json.dumps(
        {"previous": previous, "stage": name, "params": params}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def save_annotations(adata, path: Path) -> None:
    """Everything a stage adds (obs, var, obsm, obsp, varm, uns), without the matrices.

    No stage changes the counts, and ``X`` is recomputed from them on restore, so a cached stage
    costs megabytes, not the size of the count matrix.
    """
    import anndata as ad

    # string columns become categoricals on writing; converting them here once spares every later
    # stage's write the conversion (natural sorting of the barcodes: 3.9 s of a 100k-cell run's profile)
    adata.strings_to_categoricals()
    shell = ad.AnnData(
        obs=adata.obs,
        var=adata.var,
        obsm=dict(adata.obsm),
        obsp=dict(adata.obsp),
        varm=dict(adata.varm),
        uns=dict(adata.uns),
    )
    tmp = temporary_path(path)
    try:
        shell.write_h5ad(tmp)
        digest = file_digest(tmp)
        sidecar_path(path).unlink(missing_ok=True)  # never an old checksum beside a new file
        move_into_place(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_text(sidecar_path(path), json.dumps(digest) + "\n")


def sidecar_path(path: Path) -> Path:
    """Where the size and checksum of the cache ``path`` are recorded."""
    return path.with_name(path.name + ".sha256")


def file_digest(path: Path) -> dict[str, Any]:
    """``{'size': bytes, 'sha256': hex}`` of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            h.update(block)
    return {"size": Path(path).stat().st_size, "sha256": h.hexdigest()}


def verify(path: Path) -> str | None:
    """Why the cache ``path`` cannot be trusted (size or checksum differ from its record, or no
    record), or None when it is intact."""
    record = sidecar_path(path)
    try:
        expected = json.loads(record.read_text(encoding="utf-8"))
        size, digest = int(expected["size"]), str(expected["sha256"])
    except FileNotFoundError:
        return "its checksum record is missing"
    except (OSError, ValueError, KeyError, TypeError):
        return "its checksum record is unreadable"
    try:
        actual_size = path.stat().st_size
    except OSError as err:
        return f"it cannot be read ({err.strerror or err})"
    if actual_size != size:
        return f"it has {actual_size} bytes where {size} were written (truncated or damaged)"
    try:
        actual = file_digest(path)["sha256"]
    except OSError as err:
        return f"it cannot be read ({err.strerror or err})"
    if actual != digest:
        return "its checksum differs from the one recorded when it was written (damaged)"
    return None


def discard(path: Path) -> None:
    """Delete a cache and its checksum record."""
    path.unlink(missing_ok=True)
    sidecar_path(path).unlink(missing_ok=True)


def restore(read_inputs, annotations_path: Path | None):
    """Rebuild the AnnData a stage left: the inputs read again, its annotations, ``X`` as the embedding made it.

    The ingest stage caches no count matrix: reading the 10x/h5ad inputs again costs what reading a
    cached copy would (the cache key holds each input file's size and modification time, so they are the
    same files), and writing that copy cost ~10 s and 1 GB per 100k cells.
    """
    if annotations_path is None:
        return read_inputs()
    shell = read_annotations(annotations_path)
    return attach_annotations(read_inputs(), shell)


def read_annotations(annotations_path: Path):
    """The annotations a stage cached (an AnnData without matrices); raises what reading raises."""
    import anndata as ad

    return ad.read_h5ad(annotations_path)


def attach_annotations(adata, shell):
    """The inputs ``adata`` restricted to the cached cells, with the cached annotations and ``X``."""
    adata = adata[shell.obs_names].copy()
    adata.obs = shell.obs
    adata.var = shell.var
    for key in ("obsm", "obsp", "varm"):
        for name, value in getattr(shell, key).items():
            getattr(adata, key)[name] = value
    adata.uns = shell.uns
    if "embed" in adata.uns.get("cd7escape", {}):
        from ..pp._embed import normalize_log

        normalize_log(adata)
    return adata
