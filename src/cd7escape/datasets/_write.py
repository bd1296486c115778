"""Write a simulated patient as the files a user would have: 10x HDF5 / matrix dir / h5ad + VDJ CSV."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._errors import InputError
from .._logging import logger
from ._tcr import CONTIG_COLUMNS

if TYPE_CHECKING:
    from anndata import AnnData

TRUTH_COLUMNS = (
    "truth_cell_type",
    "truth_malignant",
    "truth_subclone",
    "truth_antigen_negative",
    "truth_antigen_level",
    "truth_car",
    "truth_car_transduced",
)


def write_simulated(
    adata: AnnData,
    outdir: str | Path,
    *,
    fmt: Literal["h5", "h5ad", "mtx"] = "h5",
    layout: Literal["files", "count", "multi"] = "files",
) -> Path:
    """Write a patient from :func:`simulate_patient` as per-sample input files and a sample sheet.

    Per sample ``<outdir>/<sample>/``:

    - ``fmt='h5'``: ``filtered_feature_bc_matrix.h5`` (Cell Ranger v3 layout; Antibody Capture
      features appended when the data have ``obsm['protein']``); ``fmt='mtx'``: the directory
      ``filtered_feature_bc_matrix/`` (``matrix.mtx.gz``, ``features.tsv.gz``, ``barcodes.tsv.gz``);
      ``fmt='h5ad'``: ``<sample>.h5ad`` with raw integer counts in ``X`` (and
      ``obsm['protein']``), obs names = barcodes, no truth columns.
    - ``raw_feature_bc_matrix.h5``: cells plus empty droplets, when the data have
      ``uns['empty_droplets']``.
    - ``filtered_contig_annotations.csv``: the 10x VDJ contigs of the sample's cells. In a B-ALL or
      myeloma patient it holds the VDJ-T contigs of T cells (chains TRA/TRB) and the VDJ-B contigs of
      B-lineage cells (IGH/IGK/IGL) in one file, as a merged VDJ-T + VDJ-B pair; a reader keeps the
      loci it is asked for.

    With ``layout='count'`` or ``'multi'`` the same files sit where Cell Ranger puts them, and the
    sheet's ``path`` names the run folder (``cd7escape`` finds the files in it):

    - ``'count'``: ``<sample>/outs/filtered_feature_bc_matrix.h5`` (or ``…/filtered_feature_bc_matrix/``),
      ``<sample>/outs/raw_feature_bc_matrix.h5``, and the contigs in a ``cellranger vdj`` run folder
      ``<sample>_vdj/outs/filtered_contig_annotations.csv`` (the sheet's ``vdj`` names that folder).
    - ``'multi'``: ``<sample>/outs/per_sample_outs/<sample>/count/sample_filtered_feature_bc_matrix.h5``,
      ``<sample>/outs/per_sample_outs/<sample>/vdj_t/filtered_contig_annotations.csv`` (and, for
      IG contigs, ``…/vdj_b/filtered_contig_annotations.csv``, as Cell Ranger splits them) and the raw
      matrix ``<sample>/outs/multi/count/raw_feature_bc_matrix.h5`` (the sheet names the folder only).

    Plus ``<outdir>/samples.csv`` (columns ``patient, sample, timepoint, path, vdj, tissue,
    raw_path``; paths relative to the sheet) and the truth, kept apart from the inputs:
    ``<outdir>/truth/<patient>_cells.csv.gz`` (barcode, sample and the ``truth_*`` columns) and
    ``<outdir>/truth/<patient>.json`` (``uns['truth']``).

    Parameters
    ----------
    adata
        The output of :func:`simulate_patient` (one patient).
    outdir
        Folder to write into (created if needed; existing files of the same names are replaced).
    fmt
        Format of the count matrices: ``'h5'`` (10x HDF5), ``'h5ad'`` or ``'mtx'`` (10x matrix folder).
    layout
        ``'files'`` (one folder of files per sample), or a Cell Ranger output folder per sample:
        ``'count'`` or ``'multi'`` (10x formats only).

    Returns
    -------
    Path of the written ``samples.csv``.

    Raises
    ------
    InputError
        Unknown format or layout, an h5ad in a Cell Ranger layout, or data that do not come from
        :func:`simulate_patient`.
    """
    if fmt not in ("h5", "h5ad", "mtx"):
        raise InputError.single(f"fmt must be 'h5', 'h5ad' or 'mtx', not {fmt!r}", field="fmt")
    if layout not in ("files", "count", "multi"):
        raise InputError.single(
            f"layout must be 'files', 'count' or 'multi', not {layout!r}", field="layout"
        )
    if layout != "files" and fmt == "h5ad":
        raise InputError.single(
            "Cell Ranger writes 10x HDF5 or matrix folders, not h5ad: use fmt 'h5' or 'mtx' with "
            f"layout {layout!r}",
            field="layout",
        )
    missing = [c for c in ("patient", "sample", "timepoint", "barcode") if c not in adata.obs]
    if missing or "counts" not in adata.layers:
        raise InputError.single(
            f"not a simulated patient (missing obs {missing} or layers['counts'])", field="adata"
        )
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    counts = sp.csr_matrix(adata.layers["counts"])
    protein = adata.obsm.get("protein")
    contigs = adata.uns.get("vdj_contigs")
    empties = adata.uns.get("empty_droplets", {})
    rows = []
    for sample in pd.unique(adata.obs["sample"].astype(str)):
        sel = np.flatnonzero(adata.obs["sample"].astype(str).to_numpy() == sample)
        obs = adata.obs.iloc[sel]
        sdir = outdir / sample
        sdir.mkdir(exist_ok=True)
        # where each file goes: the sample's folder, or Cell Ranger's places in it
        mdir, filtered, rawdir, vdjdir = sdir, "filtered_feature_bc_matrix", sdir, sdir
        if layout == "count":
            mdir = rawdir = sdir / "outs"
            vdjdir = outdir / f"{sample}_vdj" / "outs"
        elif layout == "multi":
            one = sdir / "outs" / "per_sample_outs" / sample
            mdir, filtered = one / "count", "sample_filtered_feature_bc_matrix"
            rawdir, vdjdir = sdir / "outs" / "multi" / "count", one / "vdj_t"
        for d in {mdir, rawdir}:
            d.mkdir(parents=True, exist_ok=True)
        X = counts[sel]
        barcodes = obs["barcode"].astype(str).to_numpy()
        prot = protein.iloc[sel] if protein is not None else None
        row = {
            "patient": str(obs["patient"].iloc[0]),
            "sample": sample,
            "timepoint": str(obs["timepoint"].iloc[0]),
            "tissue": str(obs["tissue"].iloc[0]) if "tissue" in obs else "",
        }
        if fmt == "h5":
            path = mdir / f"{filtered}.h5"
            _write_10x_h5(path, X, barcodes, adata.var, prot)
        elif fmt == "mtx":
            path = mdir / filtered
            _write_mtx(path, X, barcodes, adata.var, prot)
        else:
            path = sdir / f"{sample}.h5ad"
            sub = ad.AnnData(
                X=X.copy(),
                obs=pd.DataFrame(index=pd.Index(barcodes)),
                var=adata.var[["gene_ids", "feature_types"]].copy(),
            )
            if prot is not None:
                sub.obsm["protein"] = prot.set_axis(barcodes, axis=0)
            sub.write_h5ad(path, compression="gzip")
            _shuffle_h5ad_matrix(path)
        row["path"] = str(path.relative_to(outdir))
        if sample in empties:
            e = empties[sample]
            raw = rawdir / "raw_feature_bc_matrix.h5"
            e_prot = None
            if prot is not None:
                e_prot = pd.DataFrame(np.asarray(e["protein"]), columns=prot.columns)
                e_prot = pd.concat([prot.reset_index(drop=True), e_prot], ignore_index=True)
            _write_10x_h5(
                raw,
                sp.vstack([X, sp.csr_matrix(e["counts"])]).tocsr(),
                np.concatenate([barcodes, np.asarray(e["barcodes"]).astype(str)]),
                adata.var,
                e_prot,
            )
            row["raw_path"] = str(raw.relative_to(outdir))
        if contigs is not None and len(contigs):
            c = contigs[contigs["sample"].astype(str) == sample][CONTIG_COLUMNS]
            ig = c["chain"].astype(str).str.startswith("IG").to_numpy()
            if layout == "multi" and ig.any():  # Cell Ranger multi: VDJ-B contigs in vdj_b
                bdir = vdjdir.parent / "vdj_b"
                bdir.mkdir(parents=True, exist_ok=True)
                c[ig].to_csv(bdir / "filtered_contig_annotations.csv", index=False)
                c = c[~ig]
            vdjdir.mkdir(parents=True, exist_ok=True)
            vdj = vdjdir / "filtered_contig_annotations.csv"
            c.to_csv(vdj, index=False)
            row["vdj"] = str(vdj.relative_to(outdir))
        if layout == "count":  # the run folders, as a user's sheet names them
            row["path"] = sample
            if "vdj" in row:
                row["vdj"] = f"{sample}_vdj"
            row.pop("raw_path", None)
        elif layout == "multi":
            row["path"] = sample
            row.pop("raw_path", None)
            row.pop("vdj", None)
        rows.append(row)
    sheet = pd.DataFrame(rows)
    cols = [
        c
        for c in ("patient", "sample", "timepoint", "path", "vdj", "tissue", "raw_path")
        if c in sheet
    ]
    sheet_path = outdir / "samples.csv"
    sheet[cols].to_csv(sheet_path, index=False)
    _write_truth(adata, outdir)
    logger.info("wrote %d samples (%s, layout %s) and %s", len(rows), fmt, layout, sheet_path)
    return sheet_path


def _shuffle_h5ad_matrix(path: Path) -> None:
    """Re-store ``X/data`` and ``X/indices`` with the byte-shuffle filter (2x smaller; same content)."""
    tmp = path.with_suffix(".tmp.h5ad")
    path.rename(tmp)
    with h5py.File(tmp, "r") as src, h5py.File(path, "w") as dst:
        dst.attrs.update(dict(src.attrs))
        for key in src:
            if key != "X" or not isinstance(src["X"], h5py.Group):
                src.copy(key, dst)
                continue
            g = dst.create_group("X")
            g.attrs.update(dict(src["X"].attrs))
            for name, ds in src["X"].items():
                new = g.create_dataset(
                    name, data=ds[()], compression="gzip", compression_opts=6, shuffle=True
                )
                new.attrs.update(dict(ds.attrs))
    tmp.unlink()


def _write_truth(adata: AnnData, outdir: Path) -> None:
    tdir = outdir / "truth"
    tdir.mkdir(exist_ok=True)
    patient = str(adata.obs["patient"].iloc[0])
    cols = ["barcode", "sample", *[c for c in TRUTH_COLUMNS if c in adata.obs]]
    adata.obs[cols].to_csv(
        tdir / f"{patient}_cells.csv.gz",
        index=False,
        float_format="%.4g",
        compression={"method": "gzip", "mtime": 0},
    )
    if "truth" in adata.uns:
        (tdir / f"{patient}.json").write_text(json.dumps(_jsonable(adata.uns["truth"]), indent=1))


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.generic,)):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return str(x)
    return x


def _features(
    var: pd.DataFrame, prot: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    names = var.index.to_numpy(dtype=str)
    ids = var["gene_ids"].to_numpy(dtype=str) if "gene_ids" in var else names
    types = np.full(len(names), "Gene Expression", dtype=object)
    if prot is not None:
        adt = prot.columns.to_numpy(dtype=str)
        names = np.concatenate([names, adt])
        ids = np.concatenate([ids, adt])
        types = np.concatenate([types, np.full(len(adt), "Antibody Capture", dtype=object)])
    return ids, names, types.astype(str)


def _with_protein(X: sp.csr_matrix, prot: pd.DataFrame | None) -> sp.csr_matrix:
    if prot is None:
        return X
    return sp.hstack([X, sp.csr_matrix(np.asarray(prot, dtype=np.int32))]).tocsr()


def _write_10x_h5(
    path: Path, X: sp.csr_matrix, barcodes: np.ndarray, var: pd.DataFrame, prot: pd.DataFrame | None
) -> None:
    """Cell Ranger v3 ``feature_bc_matrix.h5``: CSC features × barcodes under group ``matrix``."""
    M = _with_protein(X, prot).astype(np.int32)
    ids, names, types = _features(var, prot)
    csc = M.T.tocsc()  # features × cells, column-compressed == cells × features CSR
    csc.sort_indices()
    with h5py.File(path, "w") as f:
        f.attrs["filetype"] = "matrix"
        f.attrs["version"] = 2
        f.attrs["software_version"] = "cd7escape-simulator (Cell Ranger v3 layout)"
        f.attrs["chemistry_description"] = "Single Cell 5' R2-only"
        g = f.create_group("matrix")
        kw = {"compression": "gzip", "compression_opts": 6, "shuffle": True}
        g.create_dataset("barcodes", data=np.array(barcodes, dtype="S"), **kw)
        g.create_dataset("data", data=csc.data.astype(np.int32), **kw)
        g.create_dataset("indices", data=csc.indices.astype(np.int64), **kw)
        g.create_dataset("indptr", data=csc.indptr.astype(np.int64), **kw)
        g.create_dataset("shape", data=np.array(csc.shape, dtype=np.int32))
        ft = g.create_group("features")
        ft.create_dataset("_all_tag_keys", data=np.array([b"genome"]))
        ft.create_dataset("feature_type", data=np.array(types, dtype="S"), **kw)
        ft.create_dataset("genome", data=np.array(["GRCh38"] * len(ids), dtype="S"), **kw)
        ft.create_dataset("id", data=np.array(ids, dtype="S"), **kw)
        ft.create_dataset("name", data=np.array(names, dtype="S"), **kw)


def _write_mtx(
    path: Path, X: sp.csr_matrix, barcodes: np.ndarray, var: pd.DataFrame, prot: pd.DataFrame | None
) -> None:
    """10x v3 matrix folder: ``matrix.mtx.gz`` (features × barcodes), ``features.tsv.gz``, ``barcodes.tsv.gz``."""
    path.mkdir(parents=True, exist_ok=True)
    M = _with_protein(X, prot).astype(np.int32)
    ids, names, types = _features(var, prot)
    csc = M.T.tocsc()  # features × cells, entries ordered by cell as Cell Ranger writes them
    csc.sort_indices()
    coo = csc.tocoo()
    entries = pd.DataFrame({"i": coo.row + 1, "j": coo.col + 1, "v": coo.data})
    with _gz(path / "matrix.mtx.gz") as fh:
        fh.write("%%MatrixMarket matrix coordinate integer general\n")
        fh.write(
            '%metadata_json: {"software_version": "cd7escape-simulator", "format_version": 2}\n'
        )
        fh.write(f"{M.shape[1]} {M.shape[0]} {coo.nnz}\n")
        entries.to_csv(fh, sep=" ", header=False, index=False)
    feats = pd.DataFrame({"id": ids, "name": names, "type": types})
    with _gz(path / "features.tsv.gz") as fh:
        feats.to_csv(fh, sep="\t", header=False, index=False)
    with _gz(path / "barcodes.tsv.gz") as fh:
        fh.write("\n".join(barcodes) + "\n")


def _gz(path: Path):
    """A text handle writing gzip with a fixed header time, so identical data give identical files."""
    import io

    return io.TextIOWrapper(gzip.GzipFile(path, "wb", compresslevel=9, mtime=0), encoding="utf-8")
