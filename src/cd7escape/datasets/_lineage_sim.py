"""Simulator-only gene programs of B-ALL and myeloma patients, and the genes they need.

The fitted parameters (``_params/carpall_params.npz``) come from CD19 CAR-T patients with B-cell aplasia:
their B profile is semi-synthetic and lacks the immunoglobulin constant genes, BCMA (TNFRSF17) and the
plasma-cell program. For B-lineage and plasma-cell patients the gene universe gains the genes below (at
their GRCh38 positions, in genomic order), with shares set by hand at typical 10x 5' levels; T-ALL patients
keep the fitted universe unchanged (their counts do not depend on this module).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np
import pandas as pd

from ._params import FittedParams, load_params

#: symbol, Ensembl id, chromosome, start, end (GRCh38; Cell Ranger GRCh38-2020-A ids)
EXTRA_GENES: tuple[tuple[str, str, str, int, int], ...] = (
    ("SDC1", "ENSG00000115884", "chr2", 20200796, 20225433),
    ("IGKC", "ENSG00000211592", "chr2", 88857361, 88857683),
    ("MME", "ENSG00000196549", "chr3", 155024123, 155183729),
    ("FGFR3", "ENSG00000068078", "chr4", 1793292, 1808872),
    ("MZB1", "ENSG00000170476", "chr5", 139387466, 139389913),
    ("EBF1", "ENSG00000164330", "chr5", 158695919, 159099916),
    ("CD24", "ENSG00000272398", "chr6", 106969830, 106976855),
    ("CCND1", "ENSG00000110092", "chr11", 69641155, 69654474),
    ("GPRC5D", "ENSG00000111291", "chr12", 12940774, 12950384),
    ("IGHA1", "ENSG00000211895", "chr14", 105703995, 105708665),
    ("IGHG1", "ENSG00000211896", "chr14", 105736343, 105743071),
    ("IGHD", "ENSG00000211898", "chr14", 105836765, 105845678),
    ("IGHM", "ENSG00000211899", "chr14", 105851705, 105856218),
    ("TNFRSF17", "ENSG00000048462", "chr16", 11965209, 11968068),
    ("MAF", "ENSG00000178573", "chr16", 79593837, 79600737),
    ("ERG", "ENSG00000157554", "chr21", 38367260, 38661783),
    ("VPREB1", "ENSG00000169575", "chr22", 22244785, 22245515),
    ("IGLC2", "ENSG00000211677", "chr22", 22900976, 22901437),
    ("IGLC3", "ENSG00000211679", "chr22", 22906342, 22906803),
)
_TRACE = 1e-7
PROGRAM_PHI = 0.6  # NB dispersion of the genes of the programs set by hand (typical of expressed genes)  # share of an added gene in cell types that do not express it
#: shares of the added genes in the (polyclonal) normal B profile
B_EXTRA = {"IGHM": 1e-2, "IGHD": 3e-3, "IGKC": 1.2e-2, "IGLC2": 6e-3, "IGLC3": 2e-3, "IGHG1": 3e-4,
           "IGHA1": 3e-4, "MZB1": 1e-4, "EBF1": 4e-4, "CD24": 6e-4}  # fmt: skip

#: light-chain constant genes of each light chain, and a normal cell's light-chain usage
LIGHT_GENES = {"IGK": {"IGKC": 2e-2}, "IGL": {"IGLC2": 1.4e-2, "IGLC3": 6e-3}}
LIGHT_USAGE = {"IGK": 0.6, "IGL": 0.4}
#: heavy-chain isotype usage of normal plasma cells (IgG, IgA)
PLASMA_HEAVY = {"IGHG1": 0.5, "IGHA1": 0.5}

#: B-precursor (B-ALL blast) program
B_BLAST_UP = {
    "DNTT": 1.5e-3, "CD34": 6e-4, "VPREB1": 1e-3, "IGLL1": 1e-3, "VPREB3": 8e-4, "RAG1": 3e-4,
    "RAG2": 2e-4, "MME": 6e-4, "SOX4": 2e-3, "CD99": 4e-3, "CD38": 1e-3, "ERG": 3e-4, "MKI67": 6e-4,
    "TOP2A": 6e-4, "STMN1": 3e-3, "HMGB2": 4e-3, "TUBB": 3e-3, "MYB": 5e-4, "EBF1": 6e-4, "LEF1": 3e-4,
    "CD24": 1e-3, "CD79A": 3e-3, "PAX5": 4e-4,
}  # fmt: skip
#: plasma-cell program (normal and malignant plasma cells) and B genes plasma cells lose
PLASMA_UP = {
    "JCHAIN": 2e-2, "MZB1": 1e-2, "XBP1": 4e-3, "PRDM1": 6e-4, "SDC1": 6e-4, "DERL3": 1.5e-3,
    "TXNDC5": 3e-3, "IRF4": 1e-3, "SLAMF7": 6e-4, "CD38": 3e-3, "TNFRSF17": 4e-4, "GPRC5D": 2e-4,
    "CD27": 5e-4,
}  # fmt: skip
PLASMA_HEAVY_SHARE = {"IGHG1": 0.10, "IGHA1": 0.08}
PLASMA_LIGHT = {"IGK": {"IGKC": 0.15}, "IGL": {"IGLC2": 0.10, "IGLC3": 0.05}}
PLASMA_DOWN = ("MS4A1", "CD19", "PAX5", "CD79B", "CD22", "BANK1", "IGHM", "IGHD", "CD24", "EBF1",
               "CR2", "FCER2", "HLA-DRA", "HLA-DRB1", "CD74")  # fmt: skip
#: myeloma cells' aberrant genes (a t(11;14)-like CCND1 and CD56/NCAM1; all in LINEAGES['plasma'])
MYELOMA_UP = {"CCND1": 1.5e-3, "NCAM1": 5e-4, "CCND2": 4e-4, "MKI67": 3e-4, "TOP2A": 3e-4}
IG_GENES = ("IGHM", "IGHD", "IGHG1", "IGHA1", "IGKC", "IGLC2", "IGLC3")


@lru_cache(maxsize=1)
def extended_params() -> FittedParams:
    """The fitted parameters with :data:`EXTRA_GENES` inserted in genomic order (profiles renormalised)."""
    P = load_params()
    extra = [e for e in EXTRA_GENES if e[0] not in set(P.genes)]
    rank = {c: i for i, c in enumerate(pd.unique(P.chromosome))}
    chrom = np.concatenate([P.chromosome, [e[2] for e in extra]])
    start = np.concatenate([P.start, [e[3] for e in extra]]).astype(np.int64)
    order = np.lexsort((start, np.array([rank[c] for c in chrom])))  # stable: fitted order kept
    names = [e[0] for e in extra]

    def cat(a, b):
        return np.concatenate([a, np.asarray(b, dtype=a.dtype)])[order]

    mu, phi = {}, {}
    for ct in P.mu:
        shares = [B_EXTRA.get(g, _TRACE) if ct == "B" else _TRACE for g in names]
        m = cat(P.mu[ct], shares)
        mu[ct] = m / m.sum()
        phi[ct] = cat(P.phi[ct], [float(np.median(P.phi[ct]))] * len(names))
    return replace(
        P,
        genes=cat(P.genes, names),
        gene_ids=cat(P.gene_ids, [e[1] for e in extra]),
        chromosome=chrom[order],
        start=start[order],
        end=cat(P.end, [e[4] for e in extra]),
        mu=mu,
        phi=phi,
    )
