"""Cheap look at a count file for validation: barcodes, genes, a sample of values; no full load."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import InputError, Problem
from ._count_checks import count_problems, sample_values, scan_nan_negative
from ._feature_types import ADT, GEX
from ._gene_names import SYMBOL_COLUMNS, harmonize_names, make_unique
from ._h5_strings import decode_strings
from ._sniff import sniff


@dataclass
class Header:
    kind: str
    barcodes: pd.Index = field(default_factory=lambda: pd.Index([]))
    genes: pd.Index = field(default_factory=lambda: pd.Index([]))
    proteins: list[str] = field(default_factory=list)
    obs_columns: dict[str, str] = field(default_factory=dict)  # h5ad: column → dtype kind
    problems: list[Problem] = field(default_factory=list)


def inspect_counts(path: str, *, sample: str | None = None, field_name: str = "path") -> Header:
    """Barcodes, gene symbols and count-value problems of a count file, reading as little as possible."""
    kind = sniff(path)
    header = Header(kind)
    where = {"sample": sample, "field": field_name, "file": path}
    if kind == "missing":
        header.problems.append(Problem("file not found", **where))
        return header
    try:
        if kind in ("10x_h5", "10x_h5_v2"):
            _inspect_h5(path, header)
        elif kind == "h5ad":
            _inspect_h5ad(path, header)
        elif kind == "10x_mtx":
            _inspect_mtx(path, header)
        else:
            from ._sniff import unrecognised

            header.problems.append(Problem(unrecognised(path), **where))
    except InputError as err:
        header.problems.extend(err.problems)
    except Exception as err:  # validation reports, never crashes on a strange file
        header.problems.append(
            Problem(f"unreadable {kind} file ({type(err).__name__}: {err})", **where)
        )
    for p in header.problems:
        p.sample = p.sample or sample
        p.field = p.field or field_name
        p.file = p.file or path
    return header


def _set_genes(header: Header, names, ids, types, file: str) -> None:
    types = np.asarray(types, dtype=object)
    gex = types == GEX
    symbols, _ = harmonize_names(
        np.asarray(names, dtype=object)[gex], gene_ids=np.asarray(ids, dtype=object)[gex], file=file
    )
    header.genes = make_unique(symbols)
    header.proteins = [str(n) for n in np.asarray(names, dtype=object)[types == ADT]]
    if not gex.any():
        header.problems.append(
            Problem(f"no 'Gene Expression' features (types: {sorted(set(types))})", file=file)
        )


def _inspect_h5(path: str, header: Header) -> None:
    import h5py

    with h5py.File(path, "r") as f:
        if "matrix" in f:
            group = f["matrix"]
            feats = group["features"]
            names, ids = decode_strings(feats["name"][:]), decode_strings(feats["id"][:])
            types = (
                decode_strings(feats["feature_type"][:])
                if "feature_type" in feats
                else np.full(len(ids), GEX, dtype=object)
            )
        else:
            genomes = [k for k in f if isinstance(f[k], h5py.Group) and "barcodes" in f[k]]
            if len(genomes) != 1:
                header.problems.append(
                    Problem(
                        f"Cell Ranger v2 file with {len(genomes)} genomes; give one genome",
                        file=path,
                    )
                )
                return
            group = f[genomes[0]]
            ids = decode_strings(group["genes"][:])
            names = decode_strings(group["gene_names"][:]) if "gene_names" in group else ids
            types = np.full(len(ids), GEX, dtype=object)
        header.barcodes = pd.Index(decode_strings(group["barcodes"][:]))
        shape = tuple(int(s) for s in group["shape"][:])
        if shape != (len(ids), len(header.barcodes)):
            header.problems.append(
                Problem(f"matrix shape {shape} does not match its features/barcodes", file=path)
            )
        data = group["data"]
        indptr = group["indptr"][:] if "indptr" in group else None  # one entry per barcode: cheap
        if indptr is not None and (
            len(indptr) != len(header.barcodes) + 1
            or (len(indptr) and (indptr[0] != 0 or indptr[-1] != data.shape[0]))
            or (np.diff(indptr) < 0).any()
        ):
            header.problems.append(
                Problem("damaged 10x HDF5 matrix: indptr does not rise from 0 to nnz", file=path)
            )
        if data.dtype.kind == "f":
            header.problems += count_problems(sample_values(data), file=path, full=False)
            n_nan, minimum = scan_nan_negative(data)
            _nan_negative(header, n_nan, minimum, path, "the matrix")
        else:  # Cell Ranger's int32 counts: a sample suffices (reading a read_10x_h5 checks all)
            header.problems += count_problems(sample_values(data), file=path, full=False)
    _set_genes(header, names, ids, types, path)


def _nan_negative(header: Header, n_nan: int, minimum: float, path: str, where: str) -> None:
    messages = {p.message for p in header.problems}
    if n_nan and not any("NaN" in m for m in messages):
        header.problems.append(
            Problem(f"{n_nan} NaN values in {where}; raw UMI counts have none", file=path)
        )
    if minimum < 0 and not any("negative" in m for m in messages):
        header.problems.append(
            Problem(
                f"negative values in {where} (min {minimum:.3g}); raw UMI counts are ≥ 0", file=path
            )
        )


def _inspect_h5ad(path: str, header: Header) -> None:
    import h5py
    from anndata.io import read_elem

    with h5py.File(path, "r") as f:
        obs = f["obs"]
        index_key = obs.attrs.get("_index", "_index")
        header.barcodes = pd.Index(decode_strings(read_elem(obs[index_key])))
        for key in obs:
            if key == index_key:
                continue
            item = obs[key]
            if isinstance(item, h5py.Dataset):
                header.obs_columns[key] = item.dtype.kind
            else:
                header.obs_columns[key] = "category"
        var = read_elem(f["var"])
        where = "layers['counts']" if "layers" in f and "counts" in f["layers"] else "X"
        matrix = f["layers"]["counts"] if where != "X" else f.get("X")
        if matrix is None:
            header.problems.append(Problem("h5ad has no X and no layers['counts']", file=path))
        else:
            # sparse: sample the stored values; dense: the first rows
            data = matrix["data"] if isinstance(matrix, h5py.Group) else matrix
            if data.dtype.kind in "fciu":
                if isinstance(matrix, h5py.Group):
                    values = sample_values(data)
                else:
                    values = np.asarray(data[: min(data.shape[0], 2000)]).ravel()
                    values = values[values != 0]
                header.problems += count_problems(values, file=path, where=where, full=False)
                n_nan, minimum = scan_nan_negative(data)
                _nan_negative(header, n_nan, minimum, path, where)
                if not header.problems:
                    header.problems += _normalized_rows(matrix, path, where)
            else:
                header.problems.append(
                    Problem(f"{where} has non-numeric dtype {data.dtype}", file=path)
                )
    names = var.index.to_numpy(dtype=object)
    ids = var["gene_ids"].astype(str).to_numpy(dtype=object) if "gene_ids" in var else names
    for column in SYMBOL_COLUMNS:
        if column in var and var[column].notna().mean() > 0.9:
            names = np.where(
                var[column].notna(), var[column].astype(str).to_numpy(dtype=object), names
            )
            break
    types = (
        var["feature_types"].astype(str).to_numpy(dtype=object)
        if "feature_types" in var
        else np.full(len(names), GEX, dtype=object)
    )
    _set_genes(header, names, ids, types, path)


def _normalized_rows(matrix, path: str, where: str, n_rows: int = 5000) -> list[Problem]:
    """Integer values whose first cells all have the same total: normalize_total output, not counts."""
    import h5py

    from ._h5ad import _normalized_totals

    if isinstance(matrix, h5py.Group):
        if matrix.attrs.get("encoding-type", "csr_matrix") != "csr_matrix":
            return []
        indptr = np.asarray(matrix["indptr"][: n_rows + 1], dtype=np.int64)
        data = np.asarray(matrix["data"][: indptr[-1]], dtype=np.float64)
        cumulative = np.concatenate([[0.0], np.cumsum(data)])
        totals = cumulative[indptr[1:] - indptr[0]] - cumulative[indptr[:-1] - indptr[0]]
    else:
        totals = np.asarray(matrix[:n_rows], dtype=np.float64).sum(axis=1)
    return _normalized_totals(totals[:, None], file=path, where=where)


def _inspect_mtx(path: str, header: Header) -> None:
    from ._mtx import mtx_files, read_barcodes, read_features
    from ._text_files import open_text

    mtx, features, barcodes = mtx_files(Path(path))
    names, ids, types = read_features(features)
    header.barcodes = pd.Index(read_barcodes(barcodes))
    text = open_text(mtx)
    first = text.readline().lower().split()
    if len(first) < 4 or first[0] != "%%matrixmarket":
        header.problems.append(Problem("not a Matrix Market file", file=str(mtx)))
        return
    if first[2] != "coordinate":  # 10x writes sparse coordinates; 'array' is a dense layout
        header.problems.append(
            Problem(f"Matrix Market format '{first[2]}' is not 'coordinate'", file=str(mtx))
        )
        return
    line = text.readline()
    while line.startswith("%"):
        line = text.readline()
    n_rows, n_cols, _ = (int(x) for x in line.split())
    if (n_rows, n_cols) != (len(ids), len(header.barcodes)):
        header.problems.append(
            Problem(
                f"matrix is {n_rows} × {n_cols} but the folder lists {len(ids)} features and {len(header.barcodes)} barcodes",
                file=path,
            )
        )
    if first[3] not in ("integer", "real", "double"):
        header.problems.append(
            Problem(f"Matrix Market field '{first[3]}' is not numeric", file=str(mtx))
        )
        return
    entries = pd.read_csv(text, sep=r"\s+", header=None, usecols=[0, 1, 2], dtype=float)
    rows, cols = entries[0].to_numpy(), entries[1].to_numpy()
    if len(rows) and (
        rows.min() < 1 or rows.max() > n_rows or cols.min() < 1 or cols.max() > n_cols
    ):
        header.problems.append(
            Problem(f"entries outside the declared {n_rows} × {n_cols} matrix", file=str(mtx))
        )
    values = entries[2].to_numpy()
    header.problems += count_problems(values, file=path, check_integer=True)
    _set_genes(header, names, ids, types, path)
