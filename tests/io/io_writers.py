"""Writers of small synthetic input files (10x HDF5 v2/v3, matrix folders, h5ad, VDJ, configs)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

GENES = [
    "CD7",
    "CD3E",
    "CD5",
    "CD1A",
    "DNTT",
    "MS4A1",
    "LYZ",
    "HBB",
    "MT-CO1",
    "ACTB",
    "CAT_scFv",
    "GAPDH",
]


def barcodes(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    seen: list[str] = []
    while len(seen) < n:
        b = "".join(rng.choice(list("ACGT"), 16)) + "-1"
        if b not in seen:
            seen.append(b)
    return seen


def counts(n_cells: int, n_genes: int, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix(rng.poisson(2.0, size=(n_cells, n_genes)).astype(np.int32))


def write_h5_v3(
    path: Path,
    matrix: sp.spmatrix,
    cells: list[str],
    names: list[str],
    *,
    ids: list[str] | None = None,
    types: list[str] | None = None,
    dtype=np.int32,
) -> Path:
    """Cell Ranger v3 HDF5 as Cell Ranger writes it (features × cells CSC)."""
    import h5py

    ids = ids or [f"ENSG{i:011d}" for i in range(len(names))]
    types = types or ["Gene Expression"] * len(names)
    csc = sp.csc_matrix(sp.csr_matrix(matrix).T)  # features × cells
    with h5py.File(path, "w") as f:
        f.attrs["version"] = 2
        g = f.create_group("matrix")
        g["barcodes"] = np.array(cells, dtype="S")
        for key, values in (
            ("data", csc.data.astype(dtype)),
            ("indices", csc.indices.astype(np.int64)),
            ("indptr", csc.indptr.astype(np.int64)),
        ):  # chunked, shuffled and gzipped as Cell Ranger stores them
            storage = (
                dict(chunks=(min(values.size, 80_000),), compression="gzip", shuffle=True)
                if values.size
                else {}
            )
            g.create_dataset(key, data=values, **storage)
        g["shape"] = np.array(csc.shape, dtype=np.int32)
        ft = g.create_group("features")
        ft["name"] = np.array(names, dtype="S")
        ft["id"] = np.array(ids, dtype="S")
        ft["feature_type"] = np.array(types, dtype="S")
        ft["genome"] = np.array(["GRCh38"] * len(names), dtype="S")
        ft["_all_tag_keys"] = np.array(["genome"], dtype="S")
    return path


def write_h5_v2(path: Path, matrix, cells, names, *, genome: str = "GRCh38") -> Path:
    import h5py

    csc = sp.csc_matrix(sp.csr_matrix(matrix).T)
    with h5py.File(path, "w") as f:
        g = f.create_group(genome)
        g["barcodes"] = np.array(cells, dtype="S")
        g["data"] = csc.data.astype(np.int32)
        g["indices"] = csc.indices.astype(np.int64)
        g["indptr"] = csc.indptr.astype(np.int64)
        g["shape"] = np.array(csc.shape, dtype=np.int32)
        g["genes"] = np.array([f"ENSG{i:011d}" for i in range(len(names))], dtype="S")
        g["gene_names"] = np.array(names, dtype="S")
    return path


def write_mtx(
    folder: Path, matrix, cells, names, *, gz: bool = True, v2: bool = False, field: str = "integer"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    coo = sp.coo_matrix(sp.csr_matrix(matrix).T)  # features × cells
    lines = [
        f"%%MatrixMarket matrix coordinate {field} general",
        "%",
        f"{coo.shape[0]} {coo.shape[1]} {coo.nnz}",
    ]
    fmt = "{} {} {:g}" if field == "real" else "{} {} {}"
    lines += [
        fmt.format(r + 1, c + 1, v) for r, c, v in zip(coo.row, coo.col, coo.data, strict=True)
    ]
    ids = [f"ENSG{i:011d}" for i in range(len(names))]
    feats = [
        f"{i}\t{n}" if v2 else f"{i}\t{n}\tGene Expression" for i, n in zip(ids, names, strict=True)
    ]
    files = {
        "matrix.mtx": "\n".join(lines) + "\n",
        "genes.tsv" if v2 else "features.tsv": "\n".join(feats) + "\n",
        "barcodes.tsv": "\n".join(cells) + "\n",
    }
    for name, text in files.items():
        if gz:
            with gzip.open(folder / f"{name}.gz", "wt") as fh:
                fh.write(text)
        else:
            (folder / name).write_text(text)
    return folder


def write_h5ad(
    path: Path, X, cells, names, *, layers: dict | None = None, obs: dict | None = None
) -> Path:
    import anndata as ad

    adata = ad.AnnData(
        X=X,
        obs=pd.DataFrame(obs or {}, index=pd.Index(cells)),
        var=pd.DataFrame(index=pd.Index(names)),
    )
    for k, v in (layers or {}).items():
        adata.layers[k] = v
    adata.write_h5ad(path)
    return path


VDJ_HEADER = (
    "barcode,is_cell,contig_id,high_confidence,length,chain,v_gene,d_gene,j_gene,c_gene,full_length,"
    "productive,cdr3,cdr3_nt,reads,umis,raw_clonotype_id,raw_consensus_id"
)


def vdj_row(
    barcode: str, chain: str, cdr3: str, nt: str, *, umis: int = 5, productive="true", n: int = 1
) -> str:
    return (
        f"{barcode},true,{barcode}_contig_{n},true,500,{chain},{chain}V1,,{chain}J1,{chain}C,true,"
        f"{productive},{cdr3},{nt},{umis * 100},{umis},clonotype1,clonotype1_consensus_{n}"
    )


def write_vdj(path: Path, rows: list[str], *, header: str = VDJ_HEADER) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def write_config(
    folder: Path, rows: list[dict], *, sheet: str = "samples.csv", extra: str = ""
) -> Path:
    """A config + CSV (or TSV when the sheet name ends in .tsv) sample sheet in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    sep = "\t" if sheet.endswith(".tsv") else ","
    pd.DataFrame(rows).to_csv(folder / sheet, sep=sep, index=False)
    config = folder / "config.yaml"
    given = {line.split(":", 1)[0].strip() for line in extra.splitlines() if ":" in line}
    defaults = {"antigen": "CD7", "samples": sheet, "outdir": "out"}  # unless extra sets them
    head = "".join(f"{k}: {v}\n" for k, v in defaults.items() if k not in given)
    config.write_text(head + extra)  # a key given twice is an error (the last would win silently)
    return config
