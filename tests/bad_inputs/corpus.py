"""A corpus of malformed or surprising inputs, generated on demand (no binaries in the repository).

Each case is a small folder holding a config (``config.yaml``), its sample sheet and data files, made by
one ``_case_*`` function; :func:`build` writes them all under a folder and returns :class:`Case`
records saying what the command line must do with them (exit code, words the message must contain).
The failed real library (CAR-T10593347) lives in ``tests/test_robustness.py`` because it needs
``../shared/data``.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

GENES = ["CD7", "CD3E", "CD5", "CD1A", "DNTT", "MS4A1", "LYZ", "HBB", "MT-CO1", "ACTB", "GAPDH"]
MOUSE = [
    "Cd7",
    "Cd3e",
    "Cd5",
    "Cd1d1",
    "Dntt",
    "Ms4a1",
    "Lyz2",
    "Hbb-bs",
    "mt-Co1",
    "Actb",
    "Gapdh",
]
#: real Ensembl ids of GENES (as in Cell Ranger's GRCh38 reference)
ENSEMBL = {
    "CD7": "ENSG00000173762",
    "CD3E": "ENSG00000198851",
    "CD5": "ENSG00000110448",
    "CD1A": "ENSG00000158477",
    "DNTT": "ENSG00000107447",
    "MS4A1": "ENSG00000156738",
    "LYZ": "ENSG00000090382",
    "HBB": "ENSG00000244734",
    "MT-CO1": "ENSG00000198804",
    "ACTB": "ENSG00000075624",
    "GAPDH": "ENSG00000111640",
}
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f"
    b"\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00"
    b"IEND\xaeB`\x82"
)
VDJ_HEADER = (
    "barcode,is_cell,contig_id,high_confidence,length,chain,v_gene,d_gene,j_gene,c_gene,full_length,"
    "productive,cdr3,cdr3_nt,reads,umis,raw_clonotype_id,raw_consensus_id"
)


@dataclass
class Case:
    """One input and what ``cd7escape validate`` / ``run`` must make of it."""

    name: str
    folder: Path
    #: exit code of ``validate`` (and of ``run`` unless ``run_code`` says otherwise)
    code: int = 2
    #: every one of these must appear in the output (the file and the problem)
    needles: tuple[str, ...] = ()
    #: what ``validate`` must say when it differs from ``needles`` (options only ``run`` has)
    validate_needles: tuple[str, ...] | None = None
    #: ``run`` is tried only when it cannot start a real analysis (expected exit 2)
    run_code: int | None = 2
    extra_run_args: tuple[str, ...] = ()
    #: a reason to skip the case on this machine (e.g. chmod 000 does not block root)
    skip: str | None = None
    note: str = ""
    config_name: str = "config.yaml"

    @property
    def config(self) -> Path:
        return self.folder / self.config_name

    @property
    def outdir(self) -> Path:
        return self.folder / "out"


# --- writers ---------------------------------------------------------------------------------------


def barcodes(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        out["".join(rng.choice(list("ACGT"), 16)) + "-1"] = None
    return list(out)


def counts(n_cells: int = 40, n_genes: int = len(GENES), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(3.0, size=(n_cells, n_genes)).astype(np.int32)


def write_h5(
    path: Path,
    matrix=None,
    cells: list[str] | None = None,
    names: list[str] | None = None,
    *,
    ids: list[str] | None = None,
    dtype=np.int32,
    seed: int = 0,
) -> Path:
    """A Cell Ranger v3 HDF5 (features × cells CSC)."""
    import h5py

    matrix = counts(seed=seed) if matrix is None else matrix
    names = names or GENES
    cells = cells if cells is not None else barcodes(matrix.shape[0], seed)
    ids = ids or [ENSEMBL.get(n, f"ENSG{90000000000 + i:011d}") for i, n in enumerate(names)]
    csc = sp.csc_matrix(sp.csr_matrix(np.asarray(matrix)).T)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g["barcodes"] = np.array(cells, dtype="S")
        g["data"] = csc.data.astype(dtype)
        g["indices"] = csc.indices.astype(np.int64)
        g["indptr"] = csc.indptr.astype(np.int64)
        g["shape"] = np.array(csc.shape, dtype=np.int32)
        ft = g.create_group("features")
        ft["name"] = np.array(names, dtype="S")
        ft["id"] = np.array(ids, dtype="S")
        ft["feature_type"] = np.array(["Gene Expression"] * len(names), dtype="S")
        ft["genome"] = np.array(["GRCh38"] * len(names), dtype="S")
    return path


def write_h5ad(path: Path, X, *, names: list[str] | None = None, seed: int = 0) -> Path:
    import anndata as ad
    import pandas as pd

    adata = ad.AnnData(
        X=X,
        obs=pd.DataFrame(index=pd.Index(barcodes(X.shape[0], seed))),
        var=pd.DataFrame(index=pd.Index(names or GENES)),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(path)
    return path


def vdj_rows(cells: list[str]) -> str:
    rows = [
        f"{b},true,{b}_contig_1,true,500,TRB,TRBV1,,TRBJ1,TRBC1,true,true,CASSF,TGTGCCAGC,500,5,"
        "clonotype1,clonotype1_consensus_1"
        for b in cells
    ]
    return VDJ_HEADER + "\n" + "\n".join(rows) + "\n"


def sheet_text(rows: list[dict[str, str]]) -> str:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = [",".join(columns)] + [",".join(r.get(c, "") for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


def standard(
    folder: Path,
    *,
    base: dict[str, str] | None = None,
    rel: dict[str, str] | None = None,
    extra_rows: list[dict[str, str]] = (),
    extra: str = "",
    drop: tuple[str, ...] = (),
) -> Path:
    """Two good samples (baseline, relapse) of patient P1 plus changes; returns the config path."""
    data = folder / "data"
    write_h5(data / "base.h5", seed=1)
    write_h5(data / "rel.h5", seed=2)
    rows = [
        {"patient": "P1", "sample": "base", "timepoint": "baseline", "path": "data/base.h5"},
        {"patient": "P1", "sample": "rel", "timepoint": "relapse", "path": "data/rel.h5"},
    ]
    rows[0].update(base or {})
    rows[1].update(rel or {})
    rows += list(extra_rows)
    rows = [{k: v for k, v in r.items() if k not in drop} for r in rows]
    (folder / "samples.csv").write_text(sheet_text(rows), encoding="utf-8")
    config = folder / "config.yaml"
    config.write_text(f"antigen: CD7\nsamples: samples.csv\noutdir: out\n{extra}", encoding="utf-8")
    return config


def _rel_path(folder: Path, name: str) -> dict[str, str]:
    return {"path": f"data/{name}"}


# --- the cases -------------------------------------------------------------------------------------

CASES: dict[str, Callable[[Path], Case]] = {}


def case(fn: Callable[[Path], Case]) -> Callable[[Path], Case]:
    CASES[fn.__name__.removeprefix("_case_")] = fn
    return fn


@case
def _case_truncated_h5(f: Path) -> Case:
    standard(f, rel=_rel_path(f, "truncated.h5"))
    good = write_h5(f / "data" / "full.h5", counts(400, seed=3))
    data = good.read_bytes()
    (f / "data" / "truncated.h5").write_bytes(data[: len(data) // 2])
    good.unlink()
    return Case("truncated_h5", f, needles=("truncated.h5", "corrupt or truncated HDF5"))


@case
def _case_corrupt_h5(f: Path) -> Case:
    standard(f, rel=_rel_path(f, "corrupt.h5"))
    rng = np.random.default_rng(0)
    (f / "data" / "corrupt.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + rng.bytes(4000))
    return Case("corrupt_h5", f, needles=("corrupt.h5", "corrupt or truncated HDF5"))


@case
def _case_png_as_h5(f: Path) -> Case:
    standard(f, rel=_rel_path(f, "picture.h5"))
    (f / "data" / "picture.h5").write_bytes(PNG)
    return Case("png_as_h5", f, needles=("picture.h5", "a PNG image"))


@case
def _case_csv_as_path(f: Path) -> Case:
    standard(f, rel=_rel_path(f, "counts.csv"))
    (f / "data" / "counts.csv").write_text("gene,AAAC-1\nCD7,3\n")
    return Case("csv_as_path", f, needles=("counts.csv", "a text file"))


@case
def _case_h5_without_matrix(f: Path) -> Case:
    import h5py

    standard(f, rel=_rel_path(f, "other.h5"))
    with h5py.File(f / "data" / "other.h5", "w") as h:
        h["weights"] = np.arange(10)
    return Case("h5_without_matrix", f, needles=("other.h5", "neither a 10x matrix"))


@case
def _case_normalized_counts(f: Path) -> Case:
    X = counts(60, seed=4).astype(np.float32)
    X = X / X.sum(axis=1, keepdims=True) * 1e4
    standard(f, rel=_rel_path(f, "normalized.h5ad"))
    write_h5ad(f / "data" / "normalized.h5ad", X)
    return Case("normalized_counts", f, needles=("normalized.h5ad", "raw UMI counts"))


@case
def _case_normalized_integer_counts(f: Path) -> Case:
    """Every cell scaled to the same total, then rounded: integers, but not counts."""
    X = counts(60, seed=4).astype(np.float64)
    X = np.round(X / X.sum(axis=1, keepdims=True) * 10_000)
    X[:, 0] += 10_000 - X.sum(axis=1)
    standard(f, rel=_rel_path(f, "normalized_int.h5ad"))
    write_h5ad(f / "data" / "normalized_int.h5ad", X.astype(np.float32))
    return Case("normalized_integer_counts", f, needles=("normalized_int.h5ad", "normalized"))


@case
def _case_log_counts(f: Path) -> Case:
    X = np.log1p(counts(60, seed=5).astype(np.float32))
    standard(f, rel=_rel_path(f, "log.h5ad"))
    write_h5ad(f / "data" / "log.h5ad", X)
    return Case("log_counts", f, needles=("log.h5ad", "log-transformed"))


@case
def _case_float_counts_h5(f: Path) -> Case:
    standard(f, rel=_rel_path(f, "float.h5"))
    write_h5(f / "data" / "float.h5", counts(seed=6) * 0.5 + 0.25, dtype=np.float32)
    return Case("float_counts_h5", f, needles=("float.h5", "non-integer"))


@case
def _case_negative_values(f: Path) -> Case:
    X = counts(60, seed=7).astype(np.float32)
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1)
    standard(f, rel=_rel_path(f, "scaled.h5ad"))
    write_h5ad(f / "data" / "scaled.h5ad", X)
    return Case("negative_values", f, needles=("scaled.h5ad", "negative"))


@case
def _case_nan_values(f: Path) -> Case:
    X = counts(60, seed=8).astype(np.float32)
    X[3, 2] = np.nan
    standard(f, rel=_rel_path(f, "nan.h5ad"))
    write_h5ad(f / "data" / "nan.h5ad", X)
    return Case("nan_values", f, needles=("nan.h5ad", "NaN"))


@case
def _case_missing_antigen(f: Path) -> Case:
    standard(f, rel=_rel_path(f, "no_cd7.h5"))
    write_h5(f / "data" / "no_cd7.h5", counts(n_genes=len(GENES) - 1), names=GENES[1:])
    return Case("missing_antigen", f, needles=("no_cd7.h5", "antigen gene 'CD7'"))


@case
def _case_ensembl_ids(f: Path) -> Case:
    """Ensembl ids in place of symbols: mapped with the shipped table, a log line says so."""
    standard(f, rel=_rel_path(f, "ensembl.h5"))
    ids = [ENSEMBL[g] + ".5" for g in GENES]
    write_h5(f / "data" / "ensembl.h5", names=ids, ids=ids, seed=9)
    return Case(
        "ensembl_ids",
        f,
        code=0,
        run_code=None,
        needles=("ensembl.h5", "mapped 11 of 11 Ensembl ids"),
    )


@case
def _case_ensembl_unmappable(f: Path) -> Case:
    standard(f, rel=_rel_path(f, "unknown_ensembl.h5"))
    ids = [f"ENSG{99000000000 + i:011d}" for i in range(len(GENES))]
    write_h5(f / "data" / "unknown_ensembl.h5", names=ids, ids=ids, seed=9)
    return Case("ensembl_unmappable", f, needles=("unknown_ensembl.h5", "Ensembl ids"))


@case
def _case_mouse_genes(f: Path) -> Case:
    standard(f, rel=_rel_path(f, "mouse.h5"))
    write_h5(f / "data" / "mouse.h5", names=MOUSE, ids=[f"ENSMUSG{i:011d}" for i in range(11)])
    return Case("mouse_genes", f, needles=("mouse.h5", "mouse"))


@case
def _case_duplicate_barcodes(f: Path) -> Case:
    standard(f, rel=_rel_path(f, "dup.h5"))
    cells = barcodes(40, 5)
    cells[7] = cells[3]
    write_h5(f / "data" / "dup.h5", cells=cells)
    return Case("duplicate_barcodes", f, needles=("dup.h5", "duplicate barcodes"))


@case
def _case_duplicate_sample_ids(f: Path) -> Case:
    standard(
        f,
        extra_rows=[
            {"patient": "P1", "sample": "rel", "timepoint": "relapse", "path": "data/base.h5"}
        ],
    )
    return Case("duplicate_sample_ids", f, needles=("samples.csv", "rel", "unique"))


@case
def _case_empty_sample(f: Path) -> Case:
    standard(f, rel=_rel_path(f, "empty.h5"))
    write_h5(f / "data" / "empty.h5", np.zeros((0, len(GENES)), dtype=np.int32), cells=[])
    return Case("empty_sample", f, needles=("empty.h5", "no cells"))


@case
def _case_no_baseline_sample(f: Path) -> Case:
    # without a relapse sample a patient is a baseline screen; without a baseline nothing can be said
    standard(f, base={"timepoint": "other"})
    return Case("no_baseline_sample", f, needles=("config.yaml", "no baseline sample"))


@case
def _case_vdj_matches_no_cell(f: Path) -> Case:
    standard(f, rel={"vdj": "data/contigs.csv"})
    (f / "data" / "contigs.csv").write_text(vdj_rows(barcodes(10, seed=99)))
    return Case("vdj_matches_no_cell", f, needles=("contigs.csv", "matches a cell"))


@case
def _case_vdj_malformed(f: Path) -> Case:
    standard(f, rel={"vdj": "data/contigs.csv"})
    (f / "data" / "contigs.csv").write_text("barcode;chain\nAAAC-1;TRB\n")
    return Case("vdj_malformed", f, needles=("contigs.csv", "missing column"))


@case
def _case_vdj_binary(f: Path) -> Case:
    standard(f, rel={"vdj": "data/contigs.csv"})
    payload = gzip.compress(np.random.default_rng(0).bytes(5000))
    (f / "data" / "contigs.csv").write_bytes(payload[: len(payload) // 2])  # truncated gzip
    return Case("vdj_binary", f, needles=("contigs.csv", "gzip"))


@case
def _case_vdj_empty_file(f: Path) -> Case:
    """A failed VDJ library gives a 0-byte contig file: a warning when the GEX is usable."""
    standard(f, rel={"vdj": "data/contigs.csv"})
    (f / "data" / "contigs.csv").write_bytes(b"")
    return Case(
        "vdj_empty_file", f, code=0, run_code=None, needles=("contigs.csv", "VDJ file is empty")
    )


@case
def _case_non_utf8_sheet(f: Path) -> Case:
    standard(f)
    text = (
        (f / "samples.csv").read_text().replace("P1,base", "Pé1,base").replace("P1,rel", "Pé1,rel")
    )
    (f / "samples.csv").write_bytes(text.encode("latin-1"))
    return Case("non_utf8_sheet", f, needles=("samples.csv", "not UTF-8"))


@case
def _case_non_utf8_vdj(f: Path) -> Case:
    standard(f, rel={"vdj": "data/contigs.csv"})
    (f / "data" / "contigs.csv").write_bytes(
        vdj_rows(barcodes(5, 2)).replace("CASSF", "CASSÉ").encode("latin-1")
    )
    return Case("non_utf8_vdj", f, needles=("contigs.csv", "not UTF-8"))


@case
def _case_unknown_config_key(f: Path) -> Case:
    standard(f, extra="antigne: CD5\nqc:\n  min_cels: 10\n")
    return Case("unknown_config_key", f, needles=("config.yaml", "antigne", "min_cels"))


@case
def _case_wrong_timepoint(f: Path) -> Case:
    standard(f, rel={"timepoint": "relapsed"})
    return Case("wrong_timepoint", f, needles=("samples.csv", "relapsed", "timepoint"))


@case
def _case_wrong_types(f: Path) -> Case:
    standard(f, extra="seed: forty-two\nqc: 5\nintegration: tsne\n")
    return Case("wrong_types", f, needles=("config.yaml", "seed", "qc", "integration"))


@case
def _case_unreadable_path(f: Path) -> Case:
    standard(f, rel=_rel_path(f, "locked.h5"))
    locked = write_h5(f / "data" / "locked.h5", seed=2)
    os.chmod(locked, 0)
    try:
        with open(locked, "rb"):
            readable = True
    except OSError:
        readable = False
    skip = (
        "chmod 000 does not block reads for this user (root): the unreadable-file path cannot be "
        "exercised here"
        if readable
        else None
    )
    return Case("unreadable_path", f, needles=("locked.h5",), skip=skip)


@case
def _case_directory_for_file(f: Path) -> Case:
    standard(f, rel={"path": "data/folder", "vdj": "data/vdj_folder"})
    (f / "data" / "folder").mkdir()
    (f / "data" / "folder" / "notes.txt").write_text("hello")
    (f / "data" / "vdj_folder").mkdir()
    return Case("directory_for_file", f, needles=("folder", "vdj_folder"))


@case
def _case_mtx_folder_incomplete(f: Path) -> Case:
    standard(f, rel={"path": "data/mtx"})
    (f / "data" / "mtx").mkdir()
    (f / "data" / "mtx" / "matrix.mtx").write_text(
        "%%MatrixMarket matrix coordinate integer general\n1 1 1\n1 1 3\n"
    )
    return Case("mtx_folder_incomplete", f, needles=("mtx", "barcodes.tsv"))


@case
def _case_yaml_not_mapping(f: Path) -> Case:
    standard(f)
    (f / "config.yaml").write_text("- antigen: CD7\n- samples: samples.csv\n")
    return Case("yaml_not_mapping", f, needles=("config.yaml", "mapping"))


@case
def _case_yaml_syntax(f: Path) -> Case:
    standard(f)
    (f / "config.yaml").write_text("antigen: CD7\nsamples: [samples.csv\n")
    return Case("yaml_syntax", f, needles=("config.yaml", "not valid YAML"))


@case
def _case_yaml_python_tag(f: Path) -> Case:
    """yaml.safe_load refuses to build Python objects (no code runs)."""
    standard(f)
    (f / "config.yaml").write_text(
        "antigen: !!python/object/apply:os.system ['touch pwned']\nsamples: samples.csv\n"
    )
    return Case("yaml_python_tag", f, needles=("config.yaml", "not valid YAML"))


@case
def _case_empty_config(f: Path) -> Case:
    standard(f)
    (f / "config.yaml").write_text("# nothing here\n")
    return Case("empty_config", f, needles=("config.yaml", "mapping"))


@case
def _case_config_not_found(f: Path) -> Case:
    f.mkdir(parents=True, exist_ok=True)
    return Case(
        "config_not_found", f, needles=("missing.yaml", "not found"), config_name="missing.yaml"
    )


@case
def _case_sample_id_slash(f: Path) -> Case:
    standard(f, rel={"sample": "../../escape"})
    return Case("sample_id_slash", f, needles=("samples.csv", "../../escape", "path separator"))


@case
def _case_patient_id_dotdot(f: Path) -> Case:
    standard(f, base={"patient": ".."}, rel={"patient": ".."})
    return Case("patient_id_dotdot", f, needles=("samples.csv", "'..'"))


@case
def _case_patient_id_control_chars(f: Path) -> Case:
    standard(f)
    (f / "config.yaml").write_text(
        "antigen: CD7\noutdir: out\nsamples:\n"
        '  - {patient: "P\\x001", sample: base, timepoint: baseline, path: data/base.h5}\n'
        '  - {patient: "P\\x001", sample: "re\\nl", timepoint: relapse, path: data/rel.h5}\n'
    )
    return Case("patient_id_control_chars", f, needles=("config.yaml", "control character"))


@case
def _case_outdir_is_file(f: Path) -> Case:
    standard(f)
    (f / "out").write_text("I am a file\n")
    return Case("outdir_is_file", f, needles=("out", "not a folder"))


@case
def _case_outdir_option_is_file(f: Path) -> Case:
    """``--outdir`` pointing at a file: validate is fine, run refuses before writing anything."""
    standard(f)
    (f / "taken").write_text("a file\n")
    return Case(
        "outdir_option_is_file",
        f,
        code=0,
        run_code=2,
        extra_run_args=("--outdir", str(f / "taken")),
        needles=("taken", "not a folder"),
        validate_needles=("valid",),
    )


@case
def _case_sheet_missing_columns(f: Path) -> Case:
    standard(f, drop=("timepoint",))
    return Case("sheet_missing_columns", f, needles=("samples.csv", "timepoint"))


@case
def _case_sheet_not_found(f: Path) -> Case:
    standard(f)
    (f / "samples.csv").unlink()
    return Case("sheet_not_found", f, needles=("samples.csv", "not found"))


@case
def _case_unknown_patient_option(f: Path) -> Case:
    standard(f)
    return Case(
        "unknown_patient_option",
        f,
        code=0,
        run_code=2,
        extra_run_args=("--patient", "P9"),
        needles=("P9", "not in the sample sheet"),
        validate_needles=("valid",),
    )


@case
def _case_labels_not_found(f: Path) -> Case:
    standard(f, rel={"malignant_labels": "data/blasts.txt"})
    return Case("labels_not_found", f, needles=("blasts.txt", "not found"))


@case
def _case_crlf_bom_sheet(f: Path) -> Case:
    """Excel-style sheet: UTF-8 BOM, CRLF line ends, semicolons, padded cells: all understood."""
    standard(f)
    text = (f / "samples.csv").read_text().replace(",", " ; ").replace("\n", "\r\n")
    (f / "samples.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    return Case("crlf_bom_sheet", f, code=0, run_code=None, needles=("config.yaml: valid",))


@case
def _case_every_sample_fails_qc(f: Path) -> Case:
    """40-cell samples are below qc.min_cells: both are dropped, the call is 'indeterminate', exit 0."""
    standard(f, extra="embed:\n  umap: false\nclassify:\n  n_bootstrap: 0\n")
    return Case(
        "every_sample_fails_qc",
        f,
        code=0,
        run_code=0,
        needles=("failed QC",),
        validate_needles=("valid",),
        note="run exits 0: result.json says 'indeterminate' and names both failed samples",
    )


@case
def _case_seed_out_of_range(f: Path) -> Case:
    """numpy and scanpy refuse negative seeds and seeds ≥ 2**32 mid-run: refused up front."""
    standard(f, extra="seed: -1\n")
    return Case(
        "seed_out_of_range", f, needles=("config.yaml", "seed", "greater than or equal to 0")
    )


@case
def _case_car_feature_bad_regex(f: Path) -> Case:
    standard(f, extra="car_feature: CAR[\n")
    return Case("car_feature_bad_regex", f, needles=("config.yaml", "CAR[", "regular expression"))


@case
def _case_car_feature_several(f: Path) -> Case:
    """A regex matching several features (CD7 and CD5 here): the CAR must be one feature."""
    standard(f, extra="car_feature: CD[57]\n")
    return Case("car_feature_several", f, needles=("base.h5", "matches several features"))


@case
def _case_gene_positions_missing(f: Path) -> Case:
    standard(f, extra="malignant:\n  gene_positions: positions.tsv\n")
    return Case("gene_positions_missing", f, needles=("positions.tsv", "not found"))


# --- more malformed sample sheets, VDJ files and count matrices (issue 22) -------------------------


def write_mtx(
    folder: Path,
    *,
    matrix=None,
    cells: list[str] | None = None,
    names: list[str] | None = None,
    header: str = "%%MatrixMarket matrix coordinate integer general",
    gz: bool = False,
) -> Path:
    """A Cell Ranger v3 matrix folder (matrix.mtx, features.tsv, barcodes.tsv), gzipped or not."""
    matrix = counts(seed=11) if matrix is None else np.asarray(matrix)
    names = names or GENES
    cells = cells if cells is not None else barcodes(matrix.shape[0], 11)
    coo = sp.coo_matrix(matrix.T)  # features x cells
    lines = [header, f"{coo.shape[0]} {coo.shape[1]} {coo.nnz}"]
    lines += [f"{i + 1} {j + 1} {v}" for i, j, v in zip(coo.row, coo.col, coo.data, strict=True)]
    files = {
        "matrix.mtx": "\n".join(lines) + "\n",
        "features.tsv": "".join(
            f"{ENSEMBL.get(n, 'ENSG0')}\t{n}\tGene Expression\n" for n in names
        ),
        "barcodes.tsv": "".join(f"{b}\n" for b in cells),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (folder / name).write_text(text)
    return folder


@case
def _case_sheet_duplicate_sample_across_patients(f: Path) -> Case:
    """The same sample id under two patients: sample ids name output rows and must be unique."""
    standard(
        f,
        extra_rows=[
            {"patient": "P2", "sample": "base", "timepoint": "baseline", "path": "data/base.h5"},
            {"patient": "P2", "sample": "rel2", "timepoint": "relapse", "path": "data/rel.h5"},
        ],
    )
    return Case("sheet_duplicate_sample_across_patients", f, needles=("samples.csv", "base"))


@case
def _case_sheet_header_only(f: Path) -> Case:
    standard(f)
    (f / "samples.csv").write_text("patient,sample,timepoint,path\n")
    return Case("sheet_header_only", f, needles=("samples.csv",))


@case
def _case_sheet_ragged_row(f: Path) -> Case:
    """A row with more fields than the header (an unquoted comma in a path)."""
    standard(f)
    with open(f / "samples.csv", "a", encoding="utf-8") as fh:
        fh.write("P1,extra,relapse,data/a,b.h5,oops\n")
    return Case("sheet_ragged_row", f, needles=("samples.csv",))


@case
def _case_sheet_is_excel(f: Path) -> Case:
    """An .xlsx saved under the name samples.csv (a zip archive)."""
    import io
    import zipfile

    standard(f)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    (f / "samples.csv").write_bytes(buf.getvalue())
    return Case("sheet_is_excel", f, needles=("samples.csv",))


@case
def _case_sheet_utf16(f: Path) -> Case:
    """Excel's 'Unicode text' export: UTF-16 with a byte-order mark."""
    standard(f)
    text = (f / "samples.csv").read_text()
    (f / "samples.csv").write_bytes(text.encode("utf-16"))
    return Case("sheet_utf16", f, needles=("samples.csv",))


@case
def _case_sheet_nul_bytes(f: Path) -> Case:
    standard(f)
    data = (f / "samples.csv").read_bytes().replace(b"P1,rel", b"P1\x00,rel")
    (f / "samples.csv").write_bytes(data)
    return Case("sheet_nul_bytes", f, needles=("samples.csv",))


@case
def _case_sheet_blank_path(f: Path) -> Case:
    standard(f, rel={"path": ""})
    return Case("sheet_blank_path", f, needles=("samples.csv", "path"))


@case
def _case_sheet_duplicate_column(f: Path) -> Case:
    standard(f)
    lines = (f / "samples.csv").read_text().splitlines()
    lines[0] += ",path"
    lines[1:] = [line + ",data/base.h5" for line in lines[1:]]
    (f / "samples.csv").write_text("\n".join(lines) + "\n")
    return Case("sheet_duplicate_column", f, needles=("samples.csv", "path"))


@case
def _case_config_non_utf8(f: Path) -> Case:
    standard(f)
    (f / "config.yaml").write_bytes(
        "antigen: CD7\nsamples: samples.csv\n# rémission\n".encode("latin-1")
    )
    return Case("config_non_utf8", f, needles=("config.yaml",))


@case
def _case_vdj_missing_barcode_column(f: Path) -> Case:
    standard(f, rel={"vdj": "data/contigs.csv"})
    rows = vdj_rows(barcodes(5, 2)).replace("barcode,", "cell,", 1)
    (f / "data" / "contigs.csv").write_text(rows)
    return Case("vdj_missing_barcode_column", f, needles=("contigs.csv", "barcode"))


@case
def _case_vdj_missing_productive_and_cdr3(f: Path) -> Case:
    """Cell Ranger's all_contig_annotations trimmed by hand: no productive, no cdr3_nt."""
    standard(f, rel={"vdj": "data/contigs.csv"})
    cells = barcodes(5, 2)
    text = "barcode,chain,cdr3,umis\n" + "".join(f"{b},TRB,CASSF,3\n" for b in cells)
    (f / "data" / "contigs.csv").write_text(text)
    return Case(
        "vdj_missing_productive_and_cdr3", f, needles=("contigs.csv", "productive", "cdr3_nt")
    )


@case
def _case_vdj_ragged_rows(f: Path) -> Case:
    standard(f, rel={"vdj": "data/contigs.csv"})
    text = vdj_rows(barcodes(5, 2)) + 'AAAC-1,true,x,true,500,TRB,"unterminated quote\n'
    (f / "data" / "contigs.csv").write_text(text)
    return Case("vdj_ragged_rows", f, needles=("contigs.csv",))


@case
def _case_vdj_is_h5(f: Path) -> Case:
    """The count matrix named as the VDJ file."""
    standard(f, rel={"vdj": "data/base.h5"})
    return Case("vdj_is_h5", f, needles=("base.h5",))


@case
def _case_vdj_tsv_not_airr(f: Path) -> Case:
    standard(f, rel={"vdj": "data/contigs.tsv"})
    (f / "data" / "contigs.tsv").write_text("cell\tclonotype\nAAAC-1\tc1\n")
    return Case("vdj_tsv_not_airr", f, needles=("contigs.tsv",))


@case
def _case_airr_missing_productive(f: Path) -> Case:
    """An AIRR rearrangement TSV (cell_id, locus) without productive or junction/cdr3."""
    standard(f, rel={"vdj": "data/airr.tsv"})
    cells = barcodes(5, 2)
    text = "cell_id\tlocus\tv_call\n" + "".join(f"{b}\tTRB\tTRBV1*01\n" for b in cells)
    (f / "data" / "airr.tsv").write_text(text)
    return Case(
        "airr_missing_productive", f, needles=("airr.tsv", "productive", "junction (or cdr3)")
    )


@case
def _case_airr_ragged_quotes(f: Path) -> Case:
    standard(f, rel={"vdj": "data/airr.tsv"})
    text = "cell_id\tlocus\tproductive\tjunction\n" + 'AAAC-1\tTRB\t"T\tTGTGCC\n'
    (f / "data" / "airr.tsv").write_text(text)
    return Case("airr_ragged_quotes", f, needles=("airr.tsv", "AIRR"))


@case
def _case_airr_matches_no_cell(f: Path) -> Case:
    standard(f, rel={"vdj": "data/airr.tsv"})
    rows = "".join(f"{b}\tTRB\tT\tTGTGCCAGC\n" for b in barcodes(10, seed=99))
    (f / "data" / "airr.tsv").write_text("cell_id\tlocus\tproductive\tjunction\n" + rows)
    return Case("airr_matches_no_cell", f, needles=("airr.tsv", "matches a cell"))


@case
def _case_mtx_wrong_header(f: Path) -> Case:
    standard(f, rel={"path": "data/mtx"})
    write_mtx(f / "data" / "mtx", header="%%NotMatrixMarket counts")
    return Case("mtx_wrong_header", f, needles=("mtx",))


@case
def _case_mtx_dense_array(f: Path) -> Case:
    """A valid Matrix Market file in 'array' (dense) format with the coordinate lines of a sparse one."""
    standard(f, rel={"path": "data/mtx"})
    write_mtx(f / "data" / "mtx", header="%%MatrixMarket matrix array real general")
    return Case("mtx_dense_array", f, needles=("mtx",))


@case
def _case_mtx_dims_mismatch(f: Path) -> Case:
    """features.tsv lists fewer genes than the matrix has rows."""
    standard(f, rel={"path": "data/mtx"})
    folder = write_mtx(f / "data" / "mtx")
    lines = (folder / "features.tsv").read_text().splitlines()
    (folder / "features.tsv").write_text("\n".join(lines[:-3]) + "\n")
    return Case("mtx_dims_mismatch", f, needles=("mtx", "features"))


@case
def _case_mtx_entry_out_of_range(f: Path) -> Case:
    standard(f, rel={"path": "data/mtx"})
    folder = write_mtx(f / "data" / "mtx")
    with open(folder / "matrix.mtx", "a") as fh:
        fh.write("999 1 5\n")
    return Case("mtx_entry_out_of_range", f, needles=("matrix.mtx",))


@case
def _case_mtx_duplicate_barcodes(f: Path) -> Case:
    standard(f, rel={"path": "data/mtx"})
    cells = barcodes(40, 12)
    cells[5] = cells[9]
    write_mtx(f / "data" / "mtx", cells=cells)
    return Case("mtx_duplicate_barcodes", f, needles=("mtx", "duplicate barcodes"))


@case
def _case_mtx_gz_truncated(f: Path) -> Case:
    standard(f, rel={"path": "data/mtx"})
    folder = write_mtx(f / "data" / "mtx", matrix=counts(300, seed=13), gz=True)
    data = (folder / "matrix.mtx.gz").read_bytes()
    (folder / "matrix.mtx.gz").write_bytes(data[: len(data) // 2])
    return Case("mtx_gz_truncated", f, needles=("matrix.mtx.gz",))


@case
def _case_mtx_non_utf8_features(f: Path) -> Case:
    standard(f, rel={"path": "data/mtx"})
    folder = write_mtx(f / "data" / "mtx")
    text = (folder / "features.tsv").read_text().replace("ACTB", "ACTBé")
    (folder / "features.tsv").write_bytes(text.encode("latin-1"))
    return Case("mtx_non_utf8_features", f, needles=("features.tsv", "not UTF-8"))


@case
def _case_mtx_bad_size_line(f: Path) -> Case:
    """The size line has two numbers instead of rows, columns, entries."""
    standard(f, rel={"path": "data/mtx"})
    folder = write_mtx(f / "data" / "mtx")
    lines = (folder / "matrix.mtx").read_text().splitlines()
    lines[1] = " ".join(lines[1].split()[:2])
    (folder / "matrix.mtx").write_text("\n".join(lines) + "\n")
    return Case("mtx_bad_size_line", f, needles=("mtx",))


@case
def _case_vdj_header_only(f: Path) -> Case:
    """A VDJ file with its header and no contig: like an empty library, a warning when GEX is usable."""
    standard(f, rel={"vdj": "data/contigs.csv"})
    (f / "data" / "contigs.csv").write_text(VDJ_HEADER + "\n")
    return Case("vdj_header_only", f, code=0, run_code=None, needles=("contigs.csv",))


@case
def _case_h5_empty_file(f: Path) -> Case:
    standard(f, rel=_rel_path(f, "zero.h5"))
    (f / "data" / "zero.h5").write_bytes(b"")
    return Case("h5_empty_file", f, needles=("zero.h5",))


@case
def _case_h5_shape_mismatch(f: Path) -> Case:
    """shape names more features than the file lists."""
    import h5py

    standard(f, rel=_rel_path(f, "shape.h5"))
    path = write_h5(f / "data" / "shape.h5", seed=14)
    with h5py.File(path, "a") as h:
        del h["matrix/shape"]
        h["matrix/shape"] = np.array([len(GENES) + 5, 40], dtype=np.int32)
    return Case("h5_shape_mismatch", f, needles=("shape.h5",))


@case
def _case_h5_barcodes_count_mismatch(f: Path) -> Case:
    import h5py

    standard(f, rel=_rel_path(f, "cells.h5"))
    path = write_h5(f / "data" / "cells.h5", seed=15)
    with h5py.File(path, "a") as h:
        kept = h["matrix/barcodes"][:30]
        del h["matrix/barcodes"]
        h["matrix/barcodes"] = kept
    return Case("h5_barcodes_count_mismatch", f, needles=("cells.h5",))


@case
def _case_h5_indptr_broken(f: Path) -> Case:
    """indptr decreasing and pointing past the data: a damaged CSC matrix."""
    import h5py

    standard(f, rel=_rel_path(f, "indptr.h5"))
    path = write_h5(f / "data" / "indptr.h5", seed=16)
    with h5py.File(path, "a") as h:
        indptr = h["matrix/indptr"][:]
        indptr[5] = indptr[-1] + 1000
        del h["matrix/indptr"]
        h["matrix/indptr"] = indptr
    return Case("h5_indptr_broken", f, needles=("indptr.h5",))


@case
def _case_h5ad_truncated(f: Path) -> Case:
    standard(f, rel=_rel_path(f, "cut.h5ad"))
    good = write_h5ad(f / "data" / "full.h5ad", counts(400, seed=17).astype(np.float32))
    data = good.read_bytes()
    (f / "data" / "cut.h5ad").write_bytes(data[: len(data) // 2])
    good.unlink()
    return Case("h5ad_truncated", f, needles=("cut.h5ad",))


@case
def _case_h5ad_duplicate_cells(f: Path) -> Case:
    import anndata as ad
    import pandas as pd

    standard(f, rel=_rel_path(f, "dupcells.h5ad"))
    cells = barcodes(60, 18)
    cells[10] = cells[20]
    adata = ad.AnnData(
        X=counts(60, seed=18).astype(np.float32),
        obs=pd.DataFrame(index=pd.Index(cells)),
        var=pd.DataFrame(index=pd.Index(GENES)),
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata.write_h5ad(f / "data" / "dupcells.h5ad")
    return Case("h5ad_duplicate_cells", f, needles=("dupcells.h5ad", "duplicate"))


@case
def _case_h5ad_duplicate_genes(f: Path) -> Case:
    import anndata as ad
    import pandas as pd

    standard(f, rel=_rel_path(f, "dupgenes.h5ad"))
    names = list(GENES)
    names[4] = names[0]  # CD7 twice
    adata = ad.AnnData(
        X=counts(60, seed=19).astype(np.float32),
        obs=pd.DataFrame(index=pd.Index(barcodes(60, 19))),
        var=pd.DataFrame(index=pd.Index(names)),
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata.write_h5ad(f / "data" / "dupgenes.h5ad")
    return Case("h5ad_duplicate_genes", f, code=0, run_code=None, needles=("valid",))


@case
def _case_labels_non_utf8(f: Path) -> Case:
    standard(f, rel={"malignant_labels": "data/blasts.txt"})
    (f / "data" / "blasts.txt").write_bytes("AAACé-1\n".encode("latin-1"))
    return Case("labels_non_utf8", f, needles=("blasts.txt",))


#: configs that are valid YAML but hostile or surprising: (text, words the message must contain)
NASTY_YAML = {
    "yaml_duplicate_key": (
        "antigen: CD7\nsamples: samples.csv\nantigen: CD5\n",
        "duplicate key 'antigen'",
    ),
    "yaml_recursive_alias": ("a: &a [*a]\nsamples: *a\n", "unknown key 'a'"),
    "yaml_alias_expansion": (
        "x: &x ['lol','lol']\ny: &y [*x,*x,*x,*x,*x,*x,*x,*x]\nz: &z [*y,*y,*y,*y,*y,*y,*y,*y]\n"
        "samples: [*z, *z]\n",
        "each sample must be a mapping",
    ),
    "yaml_binary_value": ("antigen: !!binary aGVsbG8=\nsamples: samples.csv\n", "antigen"),
    "yaml_python_name": (
        "antigen: !!python/name:os.system\nsamples: samples.csv\n",
        "not valid YAML",
    ),
    "yaml_unhashable_key": ("? [a, b]\n: 1\nsamples: samples.csv\n", "unhashable key"),
    "yaml_sample_fields_wrong_types": (
        "samples:\n  - {patient: [1, 2], sample: {a: b}, timepoint: 3, path: null}\n",
        "samples[0].patient",
    ),
    "yaml_huge_seed": ("seed: 1e400\nsamples: samples.csv\n", "seed"),
    "yaml_nan_parameter": ("qc: {min_cells: .nan}\nsamples: samples.csv\n", "qc.min_cells"),
    "yaml_nul_in_path": ('samples: "samples.csv\\0"\n', "NUL character"),
}


def _nasty(name: str) -> Callable[[Path], Case]:
    def make(f: Path) -> Case:
        standard(f)
        text, needle = NASTY_YAML[name]
        (f / "config.yaml").write_text(text, encoding="utf-8")
        return Case(name, f, needles=("config.yaml", needle))

    return make


for _name in NASTY_YAML:
    CASES[_name] = _nasty(_name)


def build(root: Path, names: list[str] | None = None) -> dict[str, Case]:
    """Write the cases (all, or ``names``) under ``root``/<name> and return them by name."""
    out = {}
    for name in names or list(CASES):
        folder = root / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        out[name] = CASES[name](folder)
    return out
