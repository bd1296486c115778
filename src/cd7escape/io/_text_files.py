"""Text inputs (sample sheets, VDJ contigs, 10x tsv files): gzip-aware UTF-8 reading, yes/no columns."""

from __future__ import annotations

import gzip
import io as _io
from pathlib import Path

import pandas as pd

from .._errors import InputError


def open_text(
    path: str | Path, *, field: str | None = None, sample: str | None = None
) -> _io.StringIO:
    """Read a (possibly gzipped) text file as UTF-8, raising InputError when it is not."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InputError.single(
            f"cannot read file: {err.strerror}", field=field, file=str(path), sample=sample
        ) from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise InputError.single(
                f"corrupt gzip file: {err}", field=field, file=str(path), sample=sample
            ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError.single(
            f"not UTF-8 text (byte {err.start}: {raw[err.start : err.start + 1]!r}); save it as UTF-8",
            field=field,
            file=str(path),
            sample=sample,
        ) from None
    return _io.StringIO(text)


def as_bool(values: pd.Series) -> pd.Series:
    """Parse 'True'/'true'/'TRUE'/'1'/True to booleans (anything else is False)."""
    if values.dtype == bool:
        return values
    return values.astype(str).str.strip().str.lower().isin({"true", "t", "1", "yes"})
