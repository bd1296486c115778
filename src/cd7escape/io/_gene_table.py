"""The shipped hg38 gene table (symbol, Ensembl id, position)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

_CHROMOSOMES = [f"chr{i}" for i in range(1, 23)] + ["chrX", "chrY"]


def gene_table() -> pd.DataFrame:
    """Gene positions on GRCh38 shipped with the package (cached; returns a copy).

    Derived from org.Hs.eg.db 3.16 (Entrez Gene 2022-09, UCSC positions 2022-08); see
    ``cd7escape/data/README.md``.

    Returns
    -------
    DataFrame indexed by gene ``symbol`` with columns ``ensembl_id`` (``;``-separated when a symbol has
    several, empty string when none), ``chromosome`` (ordered categorical chr1…chr22, chrX, chrY),
    ``start`` and ``end`` (int64), sorted by position.
    """
    return _load().copy()


@lru_cache(maxsize=1)
def _load() -> pd.DataFrame:
    ref = resources.files("cd7escape") / "data" / "gene_table_hg38.tsv.gz"
    with resources.as_file(ref) as path:
        table = pd.read_csv(
            path,
            sep="\t",
            dtype={"symbol": str, "ensembl_id": str, "chromosome": str},
            keep_default_na=False,
        )
    table["chromosome"] = pd.Categorical(table["chromosome"], categories=_CHROMOSOMES, ordered=True)
    table["start"] = table["start"].astype("int64")
    table["end"] = table["end"].astype("int64")
    return table.set_index("symbol")


#: mitochondrial protein-coding genes, absent from the positional table (chrM) but needed for QC's
#: mitochondrial fraction when a matrix names genes by Ensembl id (ids as in Cell Ranger's GRCh38 reference)
MT_GENES = {
    "ENSG00000198888": "MT-ND1",
    "ENSG00000198763": "MT-ND2",
    "ENSG00000198804": "MT-CO1",
    "ENSG00000198712": "MT-CO2",
    "ENSG00000228253": "MT-ATP8",
    "ENSG00000198899": "MT-ATP6",
    "ENSG00000198938": "MT-CO3",
    "ENSG00000198840": "MT-ND3",
    "ENSG00000212907": "MT-ND4L",
    "ENSG00000198886": "MT-ND4",
    "ENSG00000198786": "MT-ND5",
    "ENSG00000198695": "MT-ND6",
    "ENSG00000198727": "MT-CYB",
}


@lru_cache(maxsize=1)
def ensembl_to_symbol() -> dict[str, str]:
    """Ensembl gene id (without version) → symbol, from the shipped table (plus the chrM genes)."""
    table = _load()
    mapping: dict[str, str] = dict(MT_GENES)
    for symbol, ids in zip(table.index, table["ensembl_id"], strict=True):
        if not ids:
            continue
        for ensembl in ids.split(";"):
            mapping.setdefault(ensembl, symbol)
    return mapping
