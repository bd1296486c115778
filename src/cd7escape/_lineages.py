"""What depends on the tumour's lineage (T-ALL, B-ALL, myeloma): one table, nothing hard-coded elsewhere.

A CAR target belongs to one lineage (CD7 to T, CD19 to B, BCMA to plasma cells); the lineage decides which
gene programs mark the tumour, which normal cells may serve as the copy-number reference, which
receptor chains make a clonotype, which program is lost in a lineage switch and which cells the CAR
ambient is learnt on. Every gene set is used with the antigen removed (``without``): the antigen is never
evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import InputError

LineageName = str  # "T" | "B" | "plasma"
LINEAGE_NAMES: tuple[str, ...] = ("T", "B", "plasma")

#: Canonical marker genes of the blood and marrow cell types a patient's samples hold. T-ALL blasts keep
#: (cytoplasmic) CD3 transcripts, B-ALL blasts CD79A/PAX5, myeloma cells the plasma-cell program, so the
#: tumour scores as its lineage; its immature (blast) program is scored separately.
MARKERS: dict[str, tuple[str, ...]] = {
    "T": ("CD3D", "CD3E", "CD3G", "CD2", "CD5", "TRAC", "TRBC1", "TRBC2", "LCK", "CD247", "BCL11B"),
    "NK": ("NKG7", "GNLY", "KLRD1", "KLRF1", "NCAM1", "PRF1", "KLRC1", "SH2D1B"),
    "B": ("CD79A", "CD79B", "MS4A1", "CD19", "PAX5", "IGHM", "BANK1", "CD22"),
    "plasma": ("JCHAIN", "MZB1", "SDC1", "XBP1", "PRDM1", "DERL3", "TXNDC5", "IGHG1"),
    "myeloid": ("LYZ", "CD14", "S100A8", "S100A9", "CST3", "FCN1", "CSF1R", "CD68", "LST1"),
    "erythroid": ("HBB", "HBA1", "HBA2", "HBD", "GYPA", "ALAS2", "CA1", "AHSP"),
}

#: Receptor loci of 10x VDJ and AIRR tables, by the lineage that rearranges them.
T_LOCI: tuple[str, ...] = ("TRB", "TRA", "TRD", "TRG")
B_LOCI: tuple[str, ...] = ("IGH", "IGK", "IGL")


@dataclass(frozen=True)
class Lineage:
    """The lineage-specific parts of the method for one tumour lineage.

    Attributes
    ----------
    name
        ``'T'``, ``'B'`` or ``'plasma'``.
    disease
        What the tumour is called in reports.
    tumour
        The marker lineage (a key of ``MARKERS``) the tumour cells score as.
    scored
        Marker lineages a cell may be assigned to (``MARKERS`` keys).
    normal_class
        ``cell_class`` of the tumour lineage's normal cells (``'normal_T'``, ``'B'``, ``'plasma'``), also
        their copy-number reference category.
    confusable
        A lineage that shares the tumour lineage's markers but rearranges no receptor (NK cells for T
        cells: cytotoxic T cells and blasts with few CD3 reads score as NK), or ``None``.
    specific
        Transcripts of the tumour lineage that ``confusable`` lacks; without a confusable lineage, that
        every other lineage lacks (beyond ambient), by which a cell the neighbourhood places among the
        tumour's cells is told to be of another lineage (an NK cell among shallow myeloma cells).
    confusable_specific
        Transcripts of ``confusable`` that the tumour lineage's cells have little of (NK cells: the DAP12 and
        FcRγ adaptors, NKp80, NKp46, EAT-2, CD16): evidence against the tumour lineage for a cell whose own
        ``specific`` transcripts dropped out, weighed at the rates learnt in the sample, never a gate.
    blast_specific, blast_supporting
        The tumour's own program (immature/blast program; for myeloma the aberrant plasma-cell genes):
        specific genes are essentially absent from the lineage's normal mature cells, supporting ones are
        higher in the tumour but present in some normal cells.
    mature
        Genes of the lineage's normal mature cells that the tumour lacks.
    tumour_targets
        Pathway targets the tumour gains (NOTCH targets in T-ALL).
    program
        The lineage program whose loss at relapse, in clone-linked tumour cells, is a lineage switch.
    switch_to
        The lineage a switch goes to (myeloid in T-ALL and in KMT2A-rearranged B-ALL).
    loci
        Receptor loci whose productive chains make the tumour's clonotype, in the order a clone id lists
        them.
    cnv_reference
        Marker lineages whose cells (without a receptor of the tumour's loci) may be the normal
        copy-number reference.
    car_background
        Marker lineages on which ambient CAR transcripts are learnt (never transduced: neither T cells nor
        the tumour lineage).
    antigens
        CAR targets of this lineage (gene symbols and common names); the default lineage of a run.
    """

    name: str
    disease: str
    tumour: str
    scored: tuple[str, ...]
    normal_class: str
    confusable: str | None
    specific: tuple[str, ...]
    confusable_specific: tuple[str, ...]
    blast_specific: tuple[str, ...]
    blast_supporting: tuple[str, ...]
    mature: tuple[str, ...]
    tumour_targets: tuple[str, ...]
    program: tuple[str, ...]
    switch_to: str
    loci: tuple[str, ...]
    cnv_reference: tuple[str, ...]
    car_background: tuple[str, ...]
    antigens: tuple[str, ...]


_BASE = ("T", "NK", "B", "myeloid", "erythroid")
_T_MATURE = ("CCR7", "SELL", "IL7R", "GZMA", "GZMB", "GZMK", "PRF1", "CCL5", "KLRB1", "NKG7", "GNLY", "CD69", "FOS", "JUN", "CD27", "CD28",)  # fmt: skip
_T_PROGRAM = ("CD3E", "CD3D", "CD3G", "CD247", "CD2", "CD5", "LCK", "ZAP70", "LAT", "ITK", "BCL11B", "TCF7", "GATA3", "CD1A", "TRBC1", "TRBC2",)  # fmt: skip
_B_MATURE = ("MS4A1", "CR2", "FCER2", "CD27", "IGHD", "FCRL1", "FCRL2", "FCRL5", "TNFRSF13B", "CD69", "FOS", "JUN", "CXCR4", "KLF2",)  # fmt: skip
# immunoglobulin constant genes (a plasma cell's most abundant transcripts) and the plasma-cell secretory
# program: other lineages have them at ambient levels only (B cells at a tenth of a plasma cell's share)
_PLASMA_SPECIFIC = ("JCHAIN", "MZB1", "DERL3", "TXNDC5", "IGKC", "IGLC1", "IGLC2", "IGLC3", "IGLC7", "IGHG1", "IGHG2", "IGHG3", "IGHG4", "IGHA1", "IGHA2", "IGHM",)  # fmt: skip
_B_PROGRAM = ("CD79A", "CD79B", "PAX5", "CD19", "CD22", "VPREB1", "IGLL1", "VPREB3", "EBF1", "BLNK", "CD24", "MS4A1", "IGHM", "BANK1",)  # fmt: skip

LINEAGES: dict[str, Lineage] = {
    "T": Lineage(
        name="T",
        disease="T-ALL/T-LBL",
        tumour="T",
        scored=_BASE,
        normal_class="normal_T",
        confusable="NK",
        specific=("CD3D", "CD3E", "CD3G", "CD5", "BCL11B", "TRAC", "TRBC1", "TRBC2"),
        confusable_specific=("TYROBP", "FCER1G", "KLRF1", "NCR1", "SH2D1B", "FCGR3A"),
        blast_specific=("DNTT", "CD1A", "CD1E", "CD34", "KIT", "PTCRA", "RAG1", "RAG2", "CD1B"),
        blast_supporting=("CD99", "SOX4", "MYB", "LMO2", "LYL1", "HHEX", "BAALC", "MEF2C", "TAL1"),
        mature=_T_MATURE,
        tumour_targets=("HES1", "NOTCH3"),
        program=_T_PROGRAM,
        switch_to="myeloid",
        loci=T_LOCI,
        cnv_reference=("NK", "B", "myeloid", "erythroid"),
        car_background=("B", "myeloid", "erythroid"),
        antigens=("CD7", "CD5", "CD1A", "CD2", "CD3E", "CD4"),
    ),
    "B": Lineage(
        name="B",
        disease="B-ALL",
        tumour="B",
        scored=_BASE,
        normal_class="B",
        confusable=None,
        specific=(),
        confusable_specific=(),
        blast_specific=("DNTT", "CD34", "VPREB1", "IGLL1", "VPREB3", "RAG1", "RAG2", "MME"),
        blast_supporting=("SOX4", "MYB", "ERG", "CD99", "CD38", "EBF1", "LEF1", "HMGB2"),
        mature=_B_MATURE,
        tumour_targets=(),
        program=_B_PROGRAM,
        switch_to="myeloid",
        loci=B_LOCI,
        cnv_reference=("T", "NK", "myeloid", "erythroid"),
        car_background=("myeloid", "erythroid"),
        antigens=("CD19", "CD22", "MS4A1", "CD20", "CD79B"),
    ),
    "plasma": Lineage(
        name="plasma",
        disease="multiple myeloma",
        tumour="plasma",
        scored=("T", "NK", "B", "plasma", "myeloid", "erythroid"),
        normal_class="plasma",
        confusable=None,
        specific=_PLASMA_SPECIFIC,
        confusable_specific=(),
        # aberrant in myeloma cells, absent from normal plasma cells (CCND1/FGFR3/NSD2/MAF translocation
        # partners, CD56/CD28/CD117 aberrancies)
        blast_specific=("CCND1", "FGFR3", "NSD2", "MAF", "MAFB", "NCAM1", "CD28", "KIT"),
        blast_supporting=("CCND2", "CD38", "IRF4", "MKI67", "TOP2A", "SOX4"),
        mature=("CD19", "CD27", "PTPRC", "CD81", "MS4A1", "CD79B", "HLA-DRA", "FOS", "JUN"),
        tumour_targets=(),
        program=("JCHAIN", "MZB1", "SDC1", "XBP1", "PRDM1", "DERL3", "TXNDC5", "IRF4", "SLAMF7"),
        switch_to="myeloid",
        loci=B_LOCI,
        cnv_reference=("T", "NK", "B", "myeloid", "erythroid"),
        car_background=("B", "myeloid", "erythroid"),
        antigens=("TNFRSF17", "BCMA", "GPRC5D", "SLAMF7", "SDC1", "CD38"),
    ),
}


#: Common names of CAR targets and their gene symbols (the antigen is looked up by gene symbol).
ANTIGEN_ALIASES: dict[str, str] = {"BCMA": "TNFRSF17", "CD20": "MS4A1", "CD138": "SDC1"}


def antigen_gene(antigen: str) -> str:
    """The gene symbol of a CAR target given by its common name (BCMA -> TNFRSF17), else as given."""
    return ANTIGEN_ALIASES.get(antigen.strip().upper(), antigen.strip())


def default_lineage(antigen: str) -> str | None:
    """The lineage whose CAR targets include ``antigen`` (case-insensitive), or ``None``."""
    a = antigen.upper()
    for lin in LINEAGES.values():
        if a in {g.upper() for g in lin.antigens}:
            return lin.name
    return None


def resolve_lineage(lineage: str | None, antigen: str) -> Lineage:
    """The lineage of a run: the one given, else the antigen's, else T (logged by the caller).

    Raises :class:`~cd7escape._errors.InputError` (field ``lineage``) for a name outside
    ``LINEAGE_NAMES`` (the config validates it first; library callers get the same error).
    """
    if lineage is None:
        lineage = default_lineage(antigen) or "T"
    if lineage not in LINEAGES:
        raise InputError.single(
            f"lineage must be one of {', '.join(LINEAGE_NAMES)}, not {lineage!r}", field="lineage"
        )
    return LINEAGES[lineage]


def without(genes: tuple[str, ...], antigen: str) -> tuple[str, ...]:
    """The gene set minus the antigen (e.g. CD19 for a CD19 CAR: a B marker that must not be evidence)."""
    return tuple(g for g in genes if g.upper() != antigen.upper())
