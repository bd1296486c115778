"""Synthetic TCR and IG clonotypes and 10x ``filtered_contig_annotations.csv`` rows (VDJ-T and VDJ-B)."""

from __future__ import annotations

import numpy as np
import pandas as pd

CONTIG_COLUMNS = [
    "barcode", "is_cell", "contig_id", "high_confidence", "length", "chain", "v_gene", "d_gene", "j_gene",
    "c_gene", "full_length", "productive", "cdr3", "cdr3_nt", "reads", "umis", "raw_clonotype_id",
    "raw_consensus_id",
]  # fmt: skip

_BASES = np.array(list("ACGT"))
_CODON = {}
_AA = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
for _i, _a in enumerate(_AA):
    _CODON["TCAG"[_i // 16] + "TCAG"[(_i // 4) % 4] + "TCAG"[_i % 4]] = _a

TRBV = ["TRBV2", "TRBV3-1", "TRBV4-1", "TRBV5-1", "TRBV6-5", "TRBV7-2", "TRBV7-9", "TRBV9", "TRBV12-3",
        "TRBV19", "TRBV20-1", "TRBV27", "TRBV28", "TRBV29-1", "TRBV30"]  # fmt: skip
TRBJ = ["TRBJ1-1", "TRBJ1-2", "TRBJ1-5", "TRBJ2-1", "TRBJ2-3", "TRBJ2-5", "TRBJ2-7"]
TRAV = ["TRAV1-2", "TRAV8-4", "TRAV12-1", "TRAV12-2", "TRAV13-1", "TRAV19", "TRAV21", "TRAV26-1",
        "TRAV29/DV5", "TRAV38-2/DV8"]  # fmt: skip
TRAJ = ["TRAJ15", "TRAJ20", "TRAJ31", "TRAJ33", "TRAJ39", "TRAJ42", "TRAJ49", "TRAJ53"]


IGHV = ["IGHV1-2", "IGHV1-18", "IGHV1-69", "IGHV3-7", "IGHV3-11", "IGHV3-21", "IGHV3-23", "IGHV3-30",
        "IGHV3-33", "IGHV3-48", "IGHV4-34", "IGHV4-39", "IGHV4-59", "IGHV5-51", "IGHV6-1"]  # fmt: skip
IGHD = ["IGHD1-26", "IGHD2-2", "IGHD3-10", "IGHD3-22", "IGHD6-13", "IGHD6-19"]
IGHJ = ["IGHJ1", "IGHJ2", "IGHJ3", "IGHJ4", "IGHJ5", "IGHJ6"]
IGKV = ["IGKV1-5", "IGKV1-9", "IGKV1-33", "IGKV1-39", "IGKV2-28", "IGKV3-11", "IGKV3-15", "IGKV3-20",
        "IGKV4-1"]  # fmt: skip
IGKJ = ["IGKJ1", "IGKJ2", "IGKJ3", "IGKJ4", "IGKJ5"]
IGLV = ["IGLV1-40", "IGLV1-44", "IGLV1-47", "IGLV2-11", "IGLV2-14", "IGLV2-23", "IGLV3-1", "IGLV3-21",
        "IGLV3-25"]  # fmt: skip
IGLJ = ["IGLJ2", "IGLJ3"]  # their constant genes: IGLC2, IGLC3
_IG_V = {"IGH": IGHV, "IGK": IGKV, "IGL": IGLV}
_IG_J = {"IGH": IGHJ, "IGK": IGKJ, "IGL": IGLJ}


def translate(nt: str) -> str:
    return "".join(_CODON.get(nt[i : i + 3], "X") for i in range(0, len(nt) - 2, 3))


def random_cdr3(rng: np.random.Generator, *, heavy: bool = False) -> str:
    """A productive-looking CDR3 nucleotide sequence (Cys … Phe, no stop codon; an IG heavy chain's:
    longer, Cys … Trp)."""
    n = int(rng.integers(12, 21) if heavy else rng.integers(10, 16))
    while True:
        mid = "".join(_BASES[rng.integers(0, 4, size=3 * n)])
        if "*" not in translate(mid):
            if heavy:
                return "TGT" + mid + "TGG"
            return "TGT" + mid + ("TTC" if rng.random() < 0.5 else "TTT")


def random_chains(rng: np.random.Generator) -> dict[str, str]:
    """One clonotype: V/J/C genes and CDR3 nt of a TRB and a TRA chain."""
    return {
        "TRB_v": str(rng.choice(TRBV)),
        "TRB_j": str(rng.choice(TRBJ)),
        "TRB_nt": random_cdr3(rng),
        "TRA_v": str(rng.choice(TRAV)),
        "TRA_j": str(rng.choice(TRAJ)),
        "TRA_nt": random_cdr3(rng),
    }


def random_ig_chains(rng: np.random.Generator, heavy_c: str, light: str) -> dict[str, str]:
    """One B-cell clonotype: a heavy chain (constant gene ``heavy_c``: IGHM, IGHG1, …) and a kappa
    (``light='IGK'``) or lambda (``'IGL'``) light chain; V/D/J/C genes and CDR3 nucleotides."""
    lj = str(rng.choice(_IG_J[light]))
    return {
        "light": light,
        "IGH_v": str(rng.choice(IGHV)),
        "IGH_d": str(rng.choice(IGHD)),
        "IGH_j": str(rng.choice(IGHJ)),
        "IGH_c": heavy_c,
        "IGH_nt": random_cdr3(rng, heavy=True),
        f"{light}_v": str(rng.choice(_IG_V[light])),
        f"{light}_j": lj,
        f"{light}_c": "IGKC" if light == "IGK" else "IGLC" + lj[-1],
        f"{light}_nt": random_cdr3(rng),
    }


def ig_contig_rows(
    barcode: str,
    clone: dict[str, str] | None,
    has: tuple[bool, bool],
    clonotype: str,
    rng: np.random.Generator,
) -> list[dict]:
    """10x VDJ-B contig rows of one cell: productive heavy/light chains as in ``has`` (IGH, light), and
    sometimes a non-productive contig (out-of-frame rearrangement of the other allele)."""
    rows = []
    if clone is not None:
        chains = (("IGH", has[0]), (clone["light"], has[1]))
        rows = _productive_rows(barcode, clone, chains, clonotype, rng, lambda ch: clone[f"{ch}_c"])
        for row in rows:
            row["d_gene"] = clone["IGH_d"] if row["chain"] == "IGH" else ""
    k = len(rows)
    if rng.random() < 0.15 or (clone is None and rng.random() < 0.5):
        k += 1
        chain = str(rng.choice(["IGH", "IGK", "IGL"], p=[0.3, 0.45, 0.25]))
        nt = random_cdr3(rng, heavy=chain == "IGH")[:-1]  # frameshift: not a multiple of three
        v, j = str(rng.choice(_IG_V[chain])), str(rng.choice(_IG_J[chain]))
        c = {"IGH": "IGHM", "IGK": "IGKC", "IGL": "IGLC2"}[chain]
        rows.append(
            _row(barcode, k, chain, v, j, c, nt, "", False, clonotype if clone else "None", rng)
        )
    return rows


def contig_rows(
    barcode: str,
    clone: dict[str, str] | None,
    has: tuple[bool, bool],
    clonotype: str,
    rng: np.random.Generator,
) -> list[dict]:
    """10x contig rows of one cell: productive TRB/TRA chains as in ``has`` (TRB, TRA), and sometimes a
    non-productive contig (out-of-frame rearrangement of the other allele)."""
    rows = []
    if clone is not None:

        def constant(chain: str) -> str:
            if chain == "TRA":
                return "TRAC"
            return "TRBC1" if clone["TRB_j"].startswith("TRBJ1") else "TRBC2"

        chains = (("TRB", has[0]), ("TRA", has[1]))
        rows = _productive_rows(barcode, clone, chains, clonotype, rng, constant)
    k = len(rows)
    if rng.random() < 0.15 or (clone is None and rng.random() < 0.5):
        k += 1
        chain = "TRA" if rng.random() < 0.6 else "TRB"
        nt = random_cdr3(rng)[:-1]  # frameshift: not a multiple of three
        v = str(rng.choice(TRAV if chain == "TRA" else TRBV))
        j = str(rng.choice(TRAJ if chain == "TRA" else TRBJ))
        c = "TRAC" if chain == "TRA" else "TRBC2"
        rows.append(
            _row(barcode, k, chain, v, j, c, nt, "", False, clonotype if clone else "None", rng)
        )
    return rows


def _productive_rows(barcode, clone, chains, clonotype, rng, constant) -> list[dict]:
    """Contig rows of a cell's productive chains (``chains``: (chain, present) in contig order), the
    constant gene of each from ``constant(chain)``."""
    rows: list[dict] = []
    for chain, present in chains:
        if not present:
            continue
        nt = clone[f"{chain}_nt"]
        v, j = clone[f"{chain}_v"], clone[f"{chain}_j"]
        c = constant(chain)
        rows.append(
            _row(barcode, len(rows) + 1, chain, v, j, c, nt, translate(nt), True, clonotype, rng)
        )
    return rows


def _row(barcode, k, chain, v, j, c, nt, aa, productive, clonotype, rng) -> dict:
    umis = int(rng.integers(1, 12) if productive else rng.integers(1, 4))
    return {
        "barcode": barcode,
        "is_cell": "true",
        "contig_id": f"{barcode}_contig_{k}",
        "high_confidence": "true",
        "length": int(rng.integers(470, 600)),
        "chain": chain,
        "v_gene": v,
        "d_gene": "TRBD1" if chain == "TRB" and rng.random() < 0.5 else "",
        "j_gene": j,
        "c_gene": c,
        "full_length": "true" if productive else "false",
        "productive": "true" if productive else "false",
        "cdr3": aa if productive else "None",
        "cdr3_nt": nt if productive else "None",
        "reads": umis * int(rng.integers(300, 3000)),
        "umis": umis,
        "raw_clonotype_id": clonotype,
        "raw_consensus_id": f"{clonotype}_consensus_{k}" if clonotype and productive else "None",
    }


def contig_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=CONTIG_COLUMNS)
