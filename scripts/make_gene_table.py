"""Derive the shipped gene table ``src/cd7escape/data/gene_table_hg38.tsv.gz``.

Source: ``../shared/data/gene_positions_hg38.tsv`` (org.Hs.eg.db 3.16: Entrez Gene 2022-09, UCSC positions
2022-08; see ``src/cd7escape/data/README.md``). Output columns: ``symbol, ensembl_id, chromosome, start,
end``; ``ensembl_id`` may hold several ids separated by ``;`` (or be empty). Usage::

    python scripts/make_gene_table.py [SOURCE] [DEST]
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "gene_positions_hg38.tsv"
DEST = REPO / "src" / "cd7escape" / "data" / "gene_table_hg38.tsv.gz"
CHROMOSOMES = [f"chr{i}" for i in range(1, 23)] + ["chrX", "chrY"]


def main(source: Path = SOURCE, dest: Path = DEST) -> None:
    table = pd.read_csv(source, sep="\t", dtype={"ensembl_id": str, "chromosome": str})
    table = table.rename(columns={"gene_symbol": "symbol"})
    table = table[table["chromosome"].isin(CHROMOSOMES)]
    table = table.dropna(subset=["symbol", "start", "end"]).drop_duplicates("symbol")
    table["chromosome"] = pd.Categorical(table["chromosome"], categories=CHROMOSOMES, ordered=True)
    table = table.sort_values(["chromosome", "start", "end", "symbol"])
    table["start"] = table["start"].astype("int64")
    table["end"] = table["end"].astype("int64")
    out = table[["symbol", "ensembl_id", "chromosome", "start", "end"]]
    dest.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same source gives byte-identical output
    with gzip.GzipFile(dest, "wb", compresslevel=9, mtime=0) as fh:
        fh.write(out.to_csv(sep="\t", index=False).encode())
    print(f"wrote {len(out)} genes to {dest} ({dest.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:3]]
    main(*args)
