"""Helpers shared by the readers: format sniffing, gene symbols, count checks, text decoding."""

from __future__ import annotations

import gzip
import io as _io
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from .._errors import InputError, Problem
from .._logging import logger

Kind = Literal["10x_h5", "10x_h5_v2", "h5ad", "10x_mtx", "unknown", "missing"]

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")
_MOUSE_ENSEMBL = re.compile(r"^ENSMUSG\d+")
# mouse-style symbols: capital letter then lower case ('Cd7', 'Actb', 'Gm12345', 'Rps27a')
_MOUSE_SYMBOL = re.compile(r"^[A-Z][a-z][a-z0-9]*(-[a-z0-9]+)?$")
_HUMAN_SYMBOL = re.compile(r"^[A-Z][A-Z0-9]+$")
SYMBOL_COLUMNS = ("gene_symbols", "gene_symbol", "symbol", "feature_name", "gene_name", "name")
MTX_NAMES = ("matrix.mtx.gz", "matrix.mtx")
FEATURE_NAMES = ("features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv")
BARCODE_NAMES = ("barcodes.tsv.gz", "barcodes.tsv")


def sniff(path: str | Path) -> Kind:
    """What kind of count file ``path`` is, from its content (not its name)."""
    path = Path(path)
    if not path.exists():
        return "missing"
    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if any(n in names for n in MTX_NAMES):
            return "10x_mtx"
        return "unknown"
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return "unknown"
    if head != _HDF5_MAGIC:
        return "unknown"
    import h5py

    try:
        with h5py.File(path, "r") as f:
            keys = set(f.keys())
            if "matrix" in keys and isinstance(f["matrix"], h5py.Group):
                return "10x_h5"
            if {"obs", "var"} <= keys:
                return "h5ad"
            for key in keys:
                obj = f[key]
                if isinstance(obj, h5py.Group) and {"barcodes", "data", "indptr"} <= set(
                    obj.keys()
                ):
                    return "10x_h5_v2"
    except OSError:
        return "unknown"
    return "unknown"


_EXPECTED = "expected a 10x HDF5 file, a 10x matrix folder or an h5ad"


def unrecognised(path: str | Path) -> str:
    """Why ``path`` (sniffed as 'unknown') is not a count file, as precisely as its first bytes tell."""
    path = Path(path)
    if path.is_dir():
        return f"unrecognised format: a folder without matrix.mtx[.gz]; {_EXPECTED}"
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as err:
        return f"cannot read file: {err.strerror}"
    if head[:8] == _HDF5_MAGIC:
        import h5py

        try:
            with h5py.File(path, "r") as f:
                keys = sorted(f.keys())[:5]
        except OSError as err:
            return f"unrecognised format: a corrupt or truncated HDF5 file (h5py: {err})"
        return (
            "unrecognised format: an HDF5 file that is neither a 10x matrix (/matrix) nor an h5ad "
            f"(obs, var); its top-level keys: {', '.join(keys) or 'none'}"
        )
    if not head:
        return f"unrecognised format: the file is empty (0 bytes); {_EXPECTED}"
    kinds = {b"\x89PNG": "a PNG image", b"%PDF": "a PDF", b"PK\x03\x04": "a zip archive"}
    for magic, what in kinds.items():
        if head.startswith(magic):
            return f"unrecognised format: {what}; {_EXPECTED}"
    if head[:2] == b"\x1f\x8b":
        return f"unrecognised format: a gzip file; {_EXPECTED} (gzipped files belong in a 10x matrix folder)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return f"unrecognised format; {_EXPECTED}"
    return f"unrecognised format: a text file (CSV/TSV?); {_EXPECTED}"


def find_in_dir(directory: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (directory / name).exists():
            return directory / name
    return None


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


def decode(arr) -> np.ndarray:
    """Bytes arrays from HDF5 to str (object) arrays."""
    arr = np.asarray(arr)
    if arr.dtype.kind == "S":
        return np.char.decode(arr, "utf-8").astype(object)
    if arr.dtype == object:
        return np.array([a.decode() if isinstance(a, bytes) else str(a) for a in arr], dtype=object)
    return arr.astype(str).astype(object)


# --- gene symbols ------------------------------------------------------------------------------


def harmonize_names(
    names: np.ndarray,
    *,
    gene_ids: np.ndarray | None = None,
    file: str | None = None,
    sample: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gene symbols for ``names``: Ensembl ids mapped to symbols, mouse data rejected.

    Returns ``(symbols, gene_ids)``; symbols are not yet unique (see :func:`make_unique`).
    """
    names = np.asarray(names, dtype=object)
    ids = np.asarray(gene_ids, dtype=object) if gene_ids is not None else names.copy()
    if len(names) == 0:
        return names, ids
    sample_names = names[:: max(1, len(names) // 5000)]
    is_ens = np.array([bool(_ENSEMBL.match(str(n))) for n in sample_names])
    if is_ens.mean() > 0.5:
        if any(_MOUSE_ENSEMBL.match(str(n)) for n in sample_names[is_ens]):
            raise InputError.single(
                "mouse Ensembl ids (ENSMUSG…): cd7escape analyses human data",
                file=file,
                sample=sample,
            )
        from ._gene_table import ensembl_to_symbol

        mapping = ensembl_to_symbol()
        ids = names.copy()
        stripped = [str(n).split(".")[0] for n in names]
        symbols = np.array(
            [mapping.get(s, n) for s, n in zip(stripped, names, strict=True)], dtype=object
        )
        n_mapped = int(sum(s in mapping for s in stripped))
        logger.warning(
            "%s: genes are Ensembl ids; mapped %d of %d Ensembl ids to gene symbols (shipped hg38 "
            "table)%s",
            file or "matrix",
            n_mapped,
            len(names),
            "" if n_mapped == len(names) else "; the others keep their ids",
        )
        names = symbols
    check_not_mouse(names, file=file, sample=sample)
    return names, ids


def antigen_missing_message(antigen: str, genes) -> str:
    """Why ``antigen`` is not among ``genes``, with a hint when the genes are unmapped Ensembl ids."""
    genes = [str(g) for g in genes]
    message = f"antigen gene '{antigen}' is not among the {len(genes)} genes"
    ens = [g for g in genes if _ENSEMBL.match(g)]
    if genes and len(ens) > 0.5 * len(genes):
        message += (
            f"; {len(ens)} of them are Ensembl ids that the shipped hg38 table could not map to "
            f"symbols (e.g. {ens[0]}): give gene symbols (a features.tsv name column or "
            "var['gene_symbols'])"
        )
    return message


def check_not_mouse(names, *, file: str | None = None, sample: str | None = None) -> None:
    names = [str(n) for n in np.asarray(names, dtype=object)[:: max(1, len(names) // 5000)]]
    n_mouse = sum(bool(_MOUSE_SYMBOL.match(n)) for n in names)
    n_human = sum(bool(_HUMAN_SYMBOL.match(n)) for n in names)
    if (n_mouse > 100 and n_mouse > 2 * n_human) or (
        len(names) <= 100 and n_mouse > 0.5 * len(names) > 0
    ):
        raise InputError.single(
            f"gene symbols look like mouse genes ({n_mouse} of {len(names)} sampled like 'Cd7', "
            f"{n_human} like 'CD7'): cd7escape analyses human data",
            file=file,
            sample=sample,
        )


def make_unique(names) -> pd.Index:
    """Scanpy-style unique names: later duplicates get '-1', '-2', …"""
    index = pd.Index(np.asarray(names, dtype=object).astype(str))
    if index.is_unique:
        return index
    from anndata.utils import make_index_unique

    return make_index_unique(index)


# --- counts -------------------------------------------------------------------------------------


def count_problems(
    values: np.ndarray,
    *,
    file: str,
    sample: str | None = None,
    where: str = "X",
    check_integer: bool = True,
    full: bool = True,
) -> list[Problem]:
    """Problems with a vector of stored count values (the nonzero entries of a sparse matrix).

    NaN and negative values are looked for in all of ``values``; non-integer values too (``values`` is
    usually a sample when reading headers only: ``full=False`` only changes the wording).
    """
    problems: list[Problem] = []
    values = np.asarray(values)
    if values.size == 0:
        return problems
    if values.dtype.kind in "iu":
        if values.dtype.kind == "i" and values.min() < 0:
            problems.append(
                Problem(
                    f"negative counts in {where} (min {values.min()}); raw UMI counts are ≥ 0",
                    field="path",
                    file=file,
                    sample=sample,
                )
            )
        return problems
    if values.dtype.kind not in "fc":
        problems.append(
            Problem(
                f"{where} has non-numeric dtype {values.dtype}",
                field="path",
                file=file,
                sample=sample,
            )
        )
        return problems
    finite = values
    if np.isnan(values.min()):  # NaN propagates through min: one pass when there is none
        nan = np.isnan(values)
        problems.append(
            Problem(
                f"{int(nan.sum())} NaN values in {where}; raw UMI counts have none",
                field="path",
                file=file,
                sample=sample,
            )
        )
        finite = values[~nan]
    if finite.size and finite.min() < 0:
        problems.append(
            Problem(
                f"negative values in {where} (min {finite.min():.3g}): looks scaled/centred, not raw counts",
                field="path",
                file=file,
                sample=sample,
            )
        )
    if check_integer and finite.size:
        frac = np.abs(finite - np.round(finite)) > 1e-6
        if frac.any():
            example = finite[frac][:3]
            problems.append(
                Problem(
                    f"non-integer values in {where} ({100 * frac.mean():.0f}% of {'sampled ' if not full else ''}"
                    f"nonzero entries, e.g. {', '.join(f'{v:.3g}' for v in example)}): looks normalized or "
                    "log-transformed; cd7escape needs raw UMI counts (in X or layers['counts'])",
                    field="path",
                    file=file,
                    sample=sample,
                )
            )
    return problems


def sample_values(dataset, n: int = 200_000, *, seed: int = 0) -> np.ndarray:
    """A spread sample of a 1-d HDF5 dataset or array without reading it all (contiguous blocks)."""
    size = dataset.shape[0]
    if size <= n:
        return np.asarray(dataset[:])
    n_blocks = 20
    block = n // n_blocks
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.choice(size - block, n_blocks, replace=False))
    return np.concatenate([np.asarray(dataset[s : s + block]) for s in starts])


def scan_nan_negative(dataset, *, chunk: int = 20_000_000) -> tuple[int, float]:
    """(number of NaNs, minimum) of an HDF5 dataset (1-d, or 2-d by rows), streamed in chunks."""
    n_nan = 0
    minimum = np.inf
    size = dataset.shape[0]
    step = (
        chunk
        if len(dataset.shape) == 1
        else max(1, chunk // max(1, int(np.prod(dataset.shape[1:]))))
    )
    for start in range(0, size, step):
        part = np.asarray(dataset[start : start + step]).ravel()
        if part.dtype.kind in "fc":
            isnan = np.isnan(part)
            n_nan += int(isnan.sum())
            part = part[~isnan]
        if part.size:
            minimum = min(minimum, float(part.min()))
    return n_nan, minimum


def raise_if(problems: list[Problem]) -> None:
    if problems:
        raise InputError(problems)


# --- 10x assembly --------------------------------------------------------------------------------

GEX = "Gene Expression"
ADT = "Antibody Capture"


def build_10x(
    matrix,
    barcodes: np.ndarray,
    names: np.ndarray,
    ids: np.ndarray,
    types: np.ndarray,
    *,
    file: str,
    counts_layer: bool = True,
    stored_integers: bool = False,
):
    """AnnData from a cells × features CSR matrix of a 10x file (GEX → X, Antibody Capture → obsm).

    ``layers['counts']`` gets a copy of ``X`` when ``counts_layer``. ``stored_integers`` says the file
    held the values as integers (read as floats): only their sign needs checking.
    """
    import anndata as ad
    import scipy.sparse as sp

    types = np.asarray(types, dtype=object)
    present = list(dict.fromkeys(types.tolist()))
    for other in present:
        if other not in (GEX, ADT):
            logger.info(
                "    ignoring %d '%s' features of %s", int((types == other).sum()), other, file
            )
    gex = np.flatnonzero(types == GEX)
    if gex.size == 0:
        raise InputError.single(
            f"no 'Gene Expression' features (feature types: {present})", file=file
        )
    matrix = sp.csr_matrix(matrix)
    problems = count_problems(matrix.data, file=file, check_integer=not stored_integers)
    raise_if(problems)
    symbols, gene_ids = harmonize_names(names[gex], gene_ids=ids[gex], file=file)
    X = (matrix if gex.size == matrix.shape[1] else matrix[:, gex]).astype(np.float32, copy=False)
    X.sort_indices()
    var = pd.DataFrame(
        {"gene_ids": pd.Series(gene_ids, dtype=str).values, "feature_types": GEX},
        index=make_unique(symbols),
    )
    obs = pd.DataFrame(index=pd.Index([str(b) for b in barcodes]))
    adata = ad.AnnData(X=X, obs=obs, var=var)
    if counts_layer:
        adata.layers["counts"] = X.copy()
    adt = np.flatnonzero(types == ADT)
    if adt.size:
        protein = matrix[:, adt].toarray()
        adata.obsm["protein"] = pd.DataFrame(
            protein.astype(np.int64 if np.all(protein == np.round(protein)) else np.float32),
            index=adata.obs_names,
            columns=make_unique(names[adt]),
        )
    return adata
