"""The configuration schema: the one place where every option and its default lives.

A run is described by a YAML file (``docs/inputs_outputs.md#config``). Stage parameters sit in optional
sections (``qc``, ``embed``, ``malignant``, ``antigen_model``, ``clones``, ``classify``) whose defaults are
defined here and nowhere else; library functions take these same names as keyword arguments.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class QCParams(_Section):
    """Per-sample adaptive quality control (median ± n·MAD on log scale)."""

    n_mads_counts: float = Field(
        5.0, gt=0, description="Cells beyond this many MADs of log total counts are removed."
    )
    n_mads_genes: float = Field(5.0, gt=0, description="Same, for log genes detected.")
    n_mads_mito: float = Field(
        3.0, gt=0, description="Cells above median + this many MADs of mitochondrial % are removed."
    )
    max_mito_pct: float = Field(
        25.0, gt=0, le=100, description="Hard ceiling on mitochondrial % whatever the MADs say."
    )
    min_counts: int = Field(300, ge=0, description="Absolute floor on UMIs per cell.")
    min_genes: int = Field(150, ge=0, description="Absolute floor on genes detected per cell.")
    min_cells: int = Field(
        50,
        ge=1,
        description="A sample with fewer passing cells fails QC and is dropped (and reported).",
    )
    doublets: bool = Field(
        True,
        description="Flag doublets per sample with Scrublet's method (Wolock et al. 2019; scanpy's defaults, vectorised with faiss neighbours).",
    )
    expected_doublet_rate: float = Field(
        0.06, gt=0, lt=1, description="Scrublet's expected doublet rate."
    )
    doublet_max_cells: int = Field(
        10000,
        ge=100,
        description="Samples with more cells are scored for doublets in random parts of at most this many cells (bounds the memory and neighbour search of one score; a 10x lane holds about 10-20k cells).",
    )


class EmbedParams(_Section):
    """Normalisation, features and graph. The antigen never enters the features."""

    n_top_genes: int = Field(2000, ge=50, description="Highly variable genes used for PCA.")
    n_pcs: int = Field(30, ge=2, description="Principal components (or scVI latent dimensions).")
    n_neighbors: int = Field(15, ge=2, description="Neighbours of the kNN graph.")
    resolution: float = Field(1.0, gt=0, description="Leiden resolution for cell clusters.")
    antigen_corr_max: float = Field(
        0.3,
        gt=0,
        le=1,
        description="Genes whose Pearson correlation (log-normalised values) with the antigen exceeds this are kept out of the features.",
    )
    umap: bool = Field(
        True,
        description="Compute a UMAP for the report (`cd7escape run` lays it out in a second process while the later stages run, from 10k cells).",
    )
    scvi_max_epochs: int = Field(
        100, ge=1, description="Upper bound on scVI epochs (early stopping usually ends sooner)."
    )
    scvi_n_latent: int = Field(20, ge=2, description="scVI latent dimensions.")
    scvi_mode: Literal["query", "joint"] = Field(
        "query",
        description="With `integration: scvi`. query: an scVI reference of the baseline samples, the "
        "relapse (and other) samples mapped onto it scArches-style, so a relapse-only state is not "
        "integrated away (a patient with one timepoint gets the joint model); joint: one scVI model of "
        "all samples.",
    )


class MalignantParams(_Section):
    """Combining per-cell evidence of malignancy (the antigen is never evidence)."""

    min_score: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Cells with malignant_score at or above this are called malignant.",
    )
    cnv: bool = Field(
        True,
        description="Infer copy-number changes (infercnvpy's method, vectorised) against normal non-T cells.",
    )
    gene_positions: str | None = Field(
        None,
        description="TSV (symbol, chromosome, start, end) or GTF of gene positions; the shipped hg38 table when null.",
    )
    car_min_counts: int | None = Field(
        None,
        ge=1,
        description="UMIs of the CAR feature that call a CAR-T cell; chosen from the data when null.",
    )


class AntigenParams(_Section):
    """The dropout- and ambient-aware antigen model (``docs/method.md#antigen-model``)."""

    alpha: float = Field(
        0.05, gt=0, lt=1, description="Level of tests and 1 - coverage of intervals."
    )
    posterior_threshold: float = Field(
        0.8,
        ge=0.5,
        lt=1,
        description="Cells with P(negative | counts) above this are 'negative', below 1 - this 'positive', else 'uncertain'.",
    )
    dim_fold: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A group is 'dim' when its expression level is below this fraction of the reference.",
    )
    min_cells: int = Field(10, ge=1, description="Groups smaller than this get no estimate.")
    ambient_contamination: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="Share of a cell's UMIs that are ambient RNA, used to turn an empty-droplet profile into a per-UMI ambient rate.",
    )
    theta_prior_median: float = Field(
        3.0,
        gt=0,
        description="Median of the weak log-normal prior on the negative-binomial size theta of expressing cells (CD7 in real CARPALL T cells: about 2.4). It matters only at low depth, where the counts barely determine theta.",
    )
    theta_prior_sd: float = Field(
        1.0,
        gt=0,
        description="Standard deviation of log theta under that prior (a large value such as 100 makes it flat).",
    )
    theta_cox_reid: bool = Field(
        True,
        description="Estimate theta from the Cox-Reid adjusted profile likelihood (each group's negative fraction and level integrated out); without it theta is overestimated at low depth and the negative fraction drifts up.",
    )
    max_ci_width: float = Field(
        0.25,
        gt=0,
        le=1,
        description="A group whose 95 % interval of the negative fraction is wider than this is 'not identifiable' (state 'uncertain' unless clearly negative or dim).",
    )
    max_dropout: float = Field(
        0.9,
        gt=0,
        le=1,
        description="A group whose expressing cells would show a zero count more often than this on average is 'not identifiable' unless clearly negative (its negative fraction then hinges on theta).",
    )


class CloneParams(_Section):
    """Baseline subclones and the mapping of relapse cells onto them."""

    resolution: float = Field(
        0.5, gt=0, description="Leiden resolution on the malignant-only graph."
    )
    min_subclone_cells: int = Field(
        10,
        ge=1,
        description="Subclusters smaller than this are merged into their nearest neighbour.",
    )
    n_neighbors: int = Field(
        15, ge=2, description="Neighbours used for relapse → baseline label transfer."
    )
    min_mapping_confidence: float = Field(
        0.5, ge=0, le=1, description="Relapse cells below this mapping confidence are 'unmapped'."
    )
    n_pcs: int = Field(
        10,
        ge=2,
        description="Principal components of the baseline malignant-only space (Pearson residuals).",
    )


class ClassifyParams(_Section):
    """Thresholds of the relapse-mechanism decision (``docs/method.md#classification``); written into result.json."""

    min_relapse_cells: int = Field(
        30, ge=1, description="Fewer malignant relapse cells than this is 'indeterminate'."
    )
    min_baseline_cells: int = Field(
        30, ge=1, description="Fewer malignant baseline cells than this is 'indeterminate'."
    )
    retained_max_negative: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Relapse negative fraction below this (and not dim) is 'antigen_retained'.",
    )
    preexisting_min_negative: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A baseline subclone counts as antigen-negative when its negative fraction is at least this.",
    )
    downregulation_max_negative: float = Field(
        0.2,
        ge=0,
        le=1,
        description="A baseline subclone counts as antigen-positive when the upper bound of its negative fraction is below this.",
    )
    mixed_min_share: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Both mechanisms explaining at least this share of relapse negative cells is 'mixed'.",
    )
    min_expansion_fold: float = Field(
        2.0, ge=1, description="Smallest relapse/baseline frequency ratio called an expansion."
    )
    n_bootstrap: int = Field(
        50, ge=0, description="Bootstrap replicates over cells for the confidence."
    )
    min_call_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A mechanism is called when it explains at least this share of relapse antigen-negative cells.",
    )
    dim_max_ratio: float = Field(
        0.7,
        gt=0,
        description="Relapse expression level below this fraction of the baseline level (significantly) is 'dim'.",
    )
    max_uncertain_negative: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A relapse whose negative fraction may exceed this (upper bound) is not called 'antigen_retained'.",
    )
    lineage_max_ratio: float = Field(
        0.3,
        gt=0,
        description="Relapse blasts whose lineage program (T in T-ALL, B in B-ALL, plasma cell in myeloma) is below this fraction of baseline blasts' are 'lineage_switch'.",
    )
    trace_penalty: float = Field(
        3.0,
        gt=0,
        description=(
            "L2 penalty (scikit-learn's 1/C) of the trace's logistic regression, which contrasts antigen-negative "
            "relapse cells with baseline malignant cells in the joint antigen-free space (components scaled to unit "
            "root mean variance); its cross-fitted odds at each baseline cell weight the antigen model that decides "
            "pre-existing vs downregulation. Larger: a smoother ratio."
        ),
    )
    negative_loss_max_confidence: float = Field(
        0.75,
        ge=0,
        le=1,
        description=(
            "Highest confidence of an antigen_downregulation call whose relapse cells are antigen-negative rather "
            "than dim. A negative founder below the detection limit (fewer baseline cells than the antigen model "
            "resolves, or hidden among the positive cells the trace weighs) would make the same relapse, and no "
            "resampling of the baseline cells can show it absent; a dim relapse (cells that still express, at a "
            "lower level) is no founder's. 1 turns the ceiling off."
        ),
    )
    bootstrap_mapping: bool = Field(
        True,
        description=(
            "Bootstrap replicates also redraw each relapse cell's clone link: the cell keeps its subclone with "
            "probability equal to its mapping confidence (the weighted share of its baseline neighbours that agree) "
            "and otherwise counts as unmapped in that replicate. Without it the confidence reflects only antigen "
            "counts, as if every relapse cell's subclone were known, and calls resting on uncertain mappings "
            "(low depth, a relapse clone the baseline barely shows) come out fully confident."
        ),
    )


class SampleSpec(_Section):
    """One row of the sample sheet (``docs/inputs_outputs.md#sample-sheet``)."""

    patient: str
    sample: str
    timepoint: Literal["baseline", "relapse", "other"]
    path: str
    vdj: str | None = None
    tissue: str | None = None
    malignant_labels: str | None = None
    donor_assignment: str | None = None
    raw_path: str | None = None
    cellranger: dict[str, str] | None = Field(
        None,
        description="Set by load_config, not by the sheet: when path is a Cell Ranger output folder, "
        "that folder, its layout and the fields filled from it.",
    )


class Config(_Section):
    """A cd7escape run (``docs/inputs_outputs.md#config``)."""

    antigen: str = Field(
        "CD7",
        description="Gene symbol of the CAR target; the common names BCMA, CD20 and CD138 are read as "
        "TNFRSF17, MS4A1 and SDC1.",
    )
    lineage: Literal["T", "B", "plasma"] | None = Field(
        None,
        description="Lineage of the tumour: T (T-ALL/T-LBL), B (B-ALL) or plasma (myeloma). It decides the "
        "tumour's gene programs, the copy-number reference cells, the receptor chains of its clonotype and "
        "the lineage-switch program. Default: the antigen's (CD7/CD5/CD1A -> T, CD19/CD22/CD20 -> B, "
        "BCMA/GPRC5D -> plasma), T for other antigens.",
    )
    antigen_protein: str | None = Field(
        None, description="ADT feature of the antigen when CITE-seq is present."
    )
    car_feature: str | None = Field(None, description="Feature name or regex of the CAR transgene.")
    outdir: str = Field("results", description="Output folder, relative to the config file.")
    samples: str | list[SampleSpec] = Field(
        ..., description="Sample sheet (CSV/TSV) or an inline list of samples."
    )
    integration: Literal["pca", "scvi"] = Field("pca", description="pca (fast default) or scvi.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of every random step.")
    h5ad_compression: Literal["lzf", "gzip", "none"] = Field(
        "lzf",
        description="Compression of cells.h5ad. lzf: half gzip's write time for a 1.7x larger file "
        "(20k cells: 2.6 s, 233 MB; gzip level 1: 4.9 s, 135 MB; none: 0.5 s, 404 MB), read by h5py, "
        "anndata and scanpy; gzip for HDF5 readers without the lzf filter (R's hdf5r, rhdf5).",
    )
    qc: QCParams = Field(default_factory=QCParams)
    embed: EmbedParams = Field(default_factory=EmbedParams)
    malignant: MalignantParams = Field(default_factory=MalignantParams)
    antigen_model: AntigenParams = Field(default_factory=AntigenParams)
    clones: CloneParams = Field(default_factory=CloneParams)
    classify: ClassifyParams = Field(default_factory=ClassifyParams)

    @field_validator("antigen")
    @classmethod
    def _antigen_symbol(cls, value: str) -> str:
        from ._lineages import antigen_gene

        return antigen_gene(value)

    @property
    def lineage_spec(self):
        """The run's :class:`~cd7escape._lineages.Lineage` (given, else the antigen's, else T)."""
        from ._lineages import resolve_lineage

        return resolve_lineage(self.lineage, self.antigen)
