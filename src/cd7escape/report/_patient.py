"""One patient's outputs: result.json, cells.h5ad, figures/*.png and a self-contained report.html."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _uns
from .._files import atomic_write_bytes, atomic_write_h5ad, atomic_write_text
from .._logging import logger, timed
from .._parallel import in_thread
from . import _narrative, _render
from ._pdf import write_pdf
from ._result import build_result, dumps

if TYPE_CHECKING:
    from anndata import AnnData

_QC_COLUMNS = [
    "sample",
    "timepoint",
    "cells_before",
    "cells_after",
    "median_counts",
    "median_genes",
    "median_pct_mt",
    "doublets",
    "status",
    "reason",
]
#: The figures a report can hold (figures/<name>.png).
FIGURES = frozenset(
    {
        "umap",
        "antigen_distribution",
        "subclone_composition",
        "cnv_heatmap",
        "clonotype_sharing",
        "sample_timeline",
    }
)
_INPUT_COLUMNS = [
    "sample",
    "timepoint",
    "tissue",
    "format",
    "path",
    "n_cells",
    "n_genes",
    "median_umis",
    "cells_with_clone",
]
_EVIDENCE_COLUMNS = None  # every key the classification recorded


def write_patient(
    adata: AnnData, pdir: Path, *, config, cells_file=None, umap: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Write every per-patient output (``docs/inputs_outputs.md#outputs``) into ``pdir``.

    Writes ``result.json`` (deterministic: sorted keys, rounded floats, no timestamps), ``cells.h5ad``
    (all cells with every annotation), ``figures/*.png``, ``report.pdf`` (printable: verdict, numbers
    and evidence on page one, one figure per page) and ``report.html`` (self-contained: figures
    embedded as data URIs, CSS inline, no scripts or external resources). Every file is written to a
    temporary name and moved into place. Results a step did not produce are named in the report and in
    ``result['missing']``; nothing is invented.

    Parameters
    ----------
    adata
        The patient's cells after the ``tl`` steps (``uns['cd7escape']`` holds their results).
    pdir
        Output folder of the patient (created).
    config
        The resolved :class:`~cd7escape._config.Config`; stored whole under ``parameters``.
    cells_file
        A :class:`~cd7escape.report._cells_file.CellsFile` already writing the matrices of
        ``pdir / 'cells.h5ad'`` (the pipeline starts one after embed); None writes the whole file here.
    umap
        Called before anything needs ``obsm['X_umap']`` (the pipeline's UMAP worker attaching its
        layout): the other figures are drawn while it finishes.

    Returns
    -------
    The result dictionary, as written to ``result.json``.
    """
    pdir = Path(pdir)
    patient = _patient_id(adata, pdir)
    with timed(f"report for patient {patient}"):
        _ensure_burden(adata, config)
        # the figures that need no UMAP first: a pipeline's UMAP worker may still be laying it out
        result = build_result(adata, config=config, patient=patient)
        sections = _figure_sections(adata, result, pdir / "figures")
        if umap is not None:
            umap()
            result = build_result(adata, config=config, patient=patient)  # the UMAP is recorded
        atomic_write_text(pdir / "result.json", dumps(result))
        result = json.loads(dumps(result))  # what the file holds is what the report shows
        # cells.h5ad is written while the figures render: h5py releases the GIL while it compresses
        if cells_file is not None:
            h5ad = in_thread(cells_file.finish, _shell(adata))
        else:
            h5ad = in_thread(
                atomic_write_h5ad,
                _shell(adata),
                pdir / "cells.h5ad",
                compression=config.h5ad_compression,
            )
        sections.insert(0, _cells_section(adata, result, pdir / "figures"))
        drawn = {f["alt"] for sec in sections for f in sec["figures"]}
        for name in FIGURES - drawn:  # a figure of an earlier run that this run could not draw
            (pdir / "figures" / f"{name}.png").unlink(missing_ok=True)
        html = _render.render(
            "patient.html.j2",
            r=result,
            mechanism_label=_narrative.label(result["mechanism"]),
            paragraph=_narrative.paragraph(result),
            caveats=_narrative.caveats(result),
            sections=sections,
            qc_columns=_QC_COLUMNS,
            input_columns=_INPUT_COLUMNS,
            evidence_columns=_EVIDENCE_COLUMNS,
            parameters_json=json.dumps(result["parameters"], indent=2, sort_keys=True),
            steps_json=json.dumps(result["step_parameters"], indent=2, sort_keys=True),
        )
        atomic_write_text(pdir / "report.html", html)
        write_pdf(
            pdir / "report.pdf",
            result,
            [(f["caption"], f["png"]) for sec in sections for f in sec["figures"]],
        )
        h5ad.result()  # re-raises a failed write
    logger.info("    wrote %s/{result.json, report.html, report.pdf, cells.h5ad, figures/}", pdir)
    return result


def _shell(adata):
    """The same AnnData with its own obs/var frames: anndata's writer turns string columns into
    categoricals in place, which must not happen under the figures drawn meanwhile. Laid out for
    scirpy and cellxgene (``_cells_file.scverse_layout``)."""
    import anndata as ad

    from ._cells_file import scverse_layout

    return scverse_layout(
        ad.AnnData(
            X=adata.X,
            obs=adata.obs.copy(),
            var=adata.var.copy(),
            uns=adata.uns,
            obsm=dict(adata.obsm),
            varm=dict(adata.varm),
            obsp=dict(adata.obsp),
            layers=dict(adata.layers),
        )
    )


def _ensure_burden(adata, config) -> None:
    """The per-sample numbers (tl.sample_burden) when a notebook or an older cache did not record them:
    only from what the steps already wrote (malignant calls, cell classes, the antigen model)."""
    from .._uns import step

    if step(adata, "burden") is not None or step(adata, "antigen") is None:
        return
    if not {"malignant", "cell_class", "sample", "timepoint"} <= set(adata.obs.columns):
        return
    from .. import tl

    try:
        tl.sample_burden(adata, antigen=config.antigen)
    except Exception as exc:  # the report goes on without them; result.json names them missing
        logger.warning("per-sample numbers not computed: %s: %s", type(exc).__name__, exc)


def _patient_id(adata, pdir: Path) -> str:
    if "patient" in adata.obs:
        ids = adata.obs["patient"].astype(str).unique()
        if len(ids) == 1:
            return str(ids[0])
    classify = adata.uns.get("cd7escape", {}).get("classify", {})
    if isinstance(classify, dict) and classify.get("patient"):
        return str(classify["patient"])
    return pdir.name


def _cells_section(adata, result: dict[str, Any], figdir: Path) -> dict[str, Any]:
    """The UMAP section (drawn last in a pipeline run: its worker may still be laying it out)."""
    from .. import pl

    antigen = result["antigen"]
    obs = adata.obs
    umap_cols = [
        c for c in ("timepoint", "cell_class", "antigen_cell_state", "subclone") if c in obs
    ]
    sec = _section(
        "cells",
        "Cells on the embedding",
        f"UMAP of all cells passing QC, from features that exclude {antigen}, coloured by timepoint, cell class, per-cell {antigen} state and subclone (malignant cells).",
    )
    if "X_umap" not in adata.obsm:
        sec["notes"].append("No UMAP (pp.embed was not run with umap=True).")
    elif umap_cols:
        _add(
            sec,
            figdir,
            "umap",
            lambda: pl.umap(
                adata, umap_cols, ncols=2 if len(umap_cols) == 4 else 3, show=False, return_fig=True
            ),
            f"UMAP coloured by {', '.join(umap_cols)}.",
        )
    for c in ("timepoint", "cell_class", "antigen_cell_state"):
        if c not in obs:
            sec["notes"].append(f"obs['{c}'] is absent; that panel is not shown.")
    return sec


def _figure_sections(adata, result: dict[str, Any], figdir: Path) -> list[dict[str, Any]]:
    """The sections after the UMAP's: samples in time order, antigen, subclones, CNV, clonotypes."""
    from .. import pl

    antigen = result["antigen"]
    obs = adata.obs
    sections: list[dict[str, Any]] = []

    normal = _uns.normal_cells_label(adata)
    sec = _section(
        "samples",
        "Per sample, in time order",
        f"Every sample in time order (baseline, product, remission, relapse, other): the malignant share and the CAR-T share of its cells after QC (95% Wilson interval), its {normal} and their {antigen}-negative fraction by the antigen model (95% CI; measured against the {normal}' own {antigen} level, so dropout zeros are not counted as loss) with the naive zero-count fraction beside it, and donor chimerism when a donor assignment was given.",
    )
    if not result.get("samples"):
        sec["notes"].append("No per-sample numbers (tl.sample_burden was not run).")
    else:
        _add(
            sec,
            figdir,
            "sample_timeline",
            lambda: pl.sample_timeline(adata, show=False, return_fig=True),
            f"Malignant share, CAR-T share and {antigen}-negative fraction of {normal} per sample, in time order (95% intervals).",
        )
        sec["rows"] = _sample_rows(result, normal)
    sections.append(sec)

    sec = _section(
        "antigen",
        f"{antigen} per subclone and timepoint",
        f"Malignant cells only. Left: {antigen} counts per cell. Right: the model's {antigen}-negative fraction with its 95% CI (filled) next to the naive share of cells with zero counts (open). The '· all' rows are the patient's numbers per timepoint (as in 'Numbers per timepoint'); the other rows are per subclone.",
    )
    if "malignant" not in obs:
        sec["notes"].append("obs['malignant'] is absent (tl.call_malignant was not run).")
    else:
        _add(
            sec,
            figdir,
            "antigen_distribution",
            lambda: pl.antigen_distribution(adata, antigen=antigen, show=False, return_fig=True),
            f"{antigen} counts and negative fractions per timepoint and subclone.",
        )
    if result.get("antigen_groups"):
        sec["rows"], sec["table_note"] = _group_rows(result, _only_samples(adata))
    sections.append(sec)

    sec = _section(
        "subclones",
        "Subclone composition, baseline vs relapse",
        "Share of malignant cells in each baseline subclone; relapse cells are placed on the baseline subclones they map to.",
    )
    if "subclone" not in obs:
        sec["notes"].append("obs['subclone'] is absent (tl.subclones was not run).")
    else:
        _add(
            sec,
            figdir,
            "subclone_composition",
            lambda: pl.subclone_composition(adata, show=False, return_fig=True),
            "Subclone composition per timepoint.",
        )
    if result.get("subclones"):
        sec["rows"], sec["columns"] = _subclone_rows(result["subclones"]), None
    sections.append(sec)

    sec = _section(
        "cnv",
        "Copy-number profile",
        "Inferred copy-number changes (infercnvpy's method) per cell along the genome, cells grouped by class and subclone.",
    )
    if "X_cnv" not in adata.obsm:
        sec["notes"].append(
            "No copy-number profile (obsm['X_cnv'] is absent: CNV inference was off or did not run)."
        )
    else:
        _add(
            sec,
            figdir,
            "cnv_heatmap",
            lambda: pl.cnv_heatmap(adata, show=False, return_fig=True),
            "Copy-number heatmap.",
        )
    thin = _thin_reference_note(adata)
    if thin:
        sec["notes"].append(thin)
    states = _relapse_state_rows(result)
    if states:
        sec["rows"] = states
        sec["table_note"] = (
            "Copy-number states the relapse carries more than the baseline (all relapse against all "
            "baseline malignant cells): the share of each timepoint's malignant cells that carry each, "
            "by their own counts. Each cell's evidence of them places the ancestors of the "
            "antigen-negative relapse cells beside its expression (the trace)."
        )
    elif states is not None:
        sec["notes"].append(
            "No copy-number state that the relapse carries more than the baseline was found."
        )
    sections.append(sec)

    sec = _section(
        "clonotypes",
        "Clonotype sharing",
        "The most frequent receptor clonotypes (TCR, or IG in B-ALL and myeloma) and their share of cells at each timepoint; a leukemic clonotype present at both timepoints links relapse to baseline.",
    )
    if "clone_id" not in obs or obs["clone_id"].isna().all():
        sec["notes"].append("No receptor clonotypes (no VDJ data, or obs['clone_id'] is empty).")
    else:
        _add(
            sec,
            figdir,
            "clonotype_sharing",
            lambda: pl.clonotype_sharing(adata, show=False, return_fig=True),
            "Top clonotypes per timepoint.",
        )
        sec["rows"] = _clonotype_rows(adata)
    sections.append(sec)
    return sections


def _only_samples(adata) -> set[str]:
    """Samples that are the only one of their timepoint: their malignant cells are the timepoint's."""
    obs = adata.obs
    if "sample" not in obs or "timepoint" not in obs:
        return set()
    per = obs.groupby(obs["timepoint"].astype(str), observed=True)["sample"].agg(
        lambda s: sorted(set(s.astype(str)))
    )
    return {v[0] for v in per if len(v) == 1}


def _group_rows(result: dict[str, Any], only: set[str]) -> tuple[list[dict[str, Any]] | None, str]:
    """tl.antigen_state's groups (one per sample by default) labelled as theirs, never as the
    patient's baseline or relapse number; a sample that is its timepoint's only one is left out (its
    cells are the timepoint's, whose one number is under 'Numbers per timepoint')."""
    antigen = result["antigen"]
    params = (result.get("step_parameters") or {}).get("antigen") or {}
    keys = params.get("groupby") if isinstance(params, dict) else None
    keys = [keys] if isinstance(keys, str) else list(keys or [])
    noun = "sample" if keys == ["sample"] else "group"
    rows, left_out = [], []
    for r in result["antigen_groups"]:
        if not isinstance(r, dict):
            rows.append({noun: r})
            continue
        if keys == ["sample"] and str(r.get("sample")) in only:
            left_out.append(str(r.get("sample")))
            continue
        shown = [k for k in keys if k in r] or ["group"]
        row: dict[str, Any] = {k: r.get(k) for k in shown}
        row["cells"] = r.get("n_cells")
        row[f"{antigen}-negative fraction of this {noun} (95% CI)"] = _with_ci(
            r.get("pi"), r.get("ci_low"), r.get("ci_high")
        )
        row["zero-count fraction (naive)"] = _render.pct(r.get("zero_fraction"))
        row["state"] = r.get("state")
        row[f"detection limit of this {noun}"] = r.get("detection_limit")
        rows.append(row)
    if not rows:
        note = (
            "Each timepoint has one sample, whose malignant cells are the timepoint's: its "
            f"{antigen}-negative fraction is under 'Numbers per timepoint'. tl.antigen_state's own "
            "fit of each sample (expression level free) is in result.json, under antigen_groups."
        )
        return None, note
    note = (
        f"Per {noun}: tl.antigen_state's fit of each {noun}'s malignant cells on their own "
        f"({antigen} expression level free), not the patient's baseline or relapse "
        f"{antigen}-negative fraction, which is under 'Numbers per timepoint'."
    )
    if left_out:
        note += (
            f" Not repeated here: {', '.join(left_out)}, the only sample of "
            f"{'its timepoint' if len(left_out) == 1 else 'their timepoints'} (the same cells as the "
            f"timepoint; result.json keeps every {noun} under antigen_groups)."
        )
    return rows or None, note


def _sample_rows(result: dict[str, Any], normal: str = "normal T cells") -> list[dict[str, Any]]:
    """result.json's samples as people read them: each share with its interval in one cell."""
    short = normal.removesuffix(" cells")
    antigen = result["antigen"]
    rows = []
    for r in result["samples"]:
        row: dict[str, Any] = {"sample": r.get("sample"), "timepoint": r.get("timepoint")}
        if r.get("tissue"):
            row["tissue"] = r["tissue"]
        row["cells"] = r.get("cells")
        row["malignant (95% CI)"] = _with_ci(
            r.get("malignant_share"), r.get("malignant_ci_low"), r.get("malignant_ci_high")
        )
        row["CAR-T (95% CI)"] = _with_ci(
            r.get("car_t_share"), r.get("car_t_ci_low"), r.get("car_t_ci_high")
        )
        row[normal] = r.get("normal_t_cells")
        row[f"{antigen}-negative {short} (model, 95% CI)"] = (
            _with_ci(
                r["normal_t_negative_fraction"], r.get("normal_t_ci_low"), r.get("normal_t_ci_high")
            )
            if r.get("normal_t_negative_fraction") is not None
            else r.get("normal_t_reason") or "n/a"
        )
        row[f"zero-count fraction of {short} (naive)"] = _render.pct(
            r.get("normal_t_zero_count_fraction")
        )
        row["donor chimerism (95% CI)"] = (
            _with_ci(r["donor_chimerism"], r.get("donor_ci_low"), r.get("donor_ci_high"))
            if r.get("donor_chimerism") is not None
            else r.get("donor_reason") or "n/a"
        )
        rows.append(row)
    return rows


def _clonotype_rows(adata) -> list[dict[str, Any]] | None:
    """The clonotypes of the figure (C1, C2 …) with their sequences and counts."""
    try:
        from ..pl._clonotype_sharing import top_clonotypes

        top = top_clonotypes(adata)
    except Exception as exc:  # a convenience table: the figure carries any message
        logger.warning("clonotype table could not be built: %s", exc)
        return None
    rows = []
    for name, rec in json.loads(top.to_json(orient="index")).items():
        row: dict[str, Any] = {"clonotype": name}
        for k, v in rec.items():
            if k == "clone_id":
                continue
            pretty = k.replace("_", " ")
            row[pretty] = _render.pct(v) if k.startswith("share_") or k == "malignant_share" else v
        row["clone_id"] = rec["clone_id"]
        rows.append(row)
    return rows


def _thin_reference_note(adata) -> str | None:
    """Where the clonotypes' copy number was read against CAR-T cells for want of polyclonal T cells."""
    test = adata.uns.get(_uns.NS, {}).get("malignant", {}).get("clone_copy_number", {})
    if not test.get("reference_thin"):
        return None
    nk = int(test.get("reference_nk") or 0)
    joined = (
        f" Against those alone no clonotype showed a change, so the sample's {nk} NK cells joined them "
        "and the test was repeated."
        if nk
        else ""
    )
    return (
        f"The expanded clonotypes' copy number was read against {test.get('reference_cells')} "
        f"reference cells, {test.get('reference_car_t')} of them CAR-T cells: polyclonal normal T cells "
        "were too few (a CD7 CAR depletes them), and a reference of one activated state blurs a change, "
        f"so a leukemic clonotype's change may be missed here (docs/method.md).{joined}"
    )


def _relapse_state_rows(result: dict[str, Any]) -> list[dict[str, Any]] | None:
    """One row per copy-number state the relapse carries more than the baseline, from result.json's
    ``copy_number_states``; None when tl.subclones recorded none (not run, or an older version)."""
    states = result.get("copy_number_states")
    if states is None:
        return None
    return [
        {
            "segment": s["segment"],
            "change": s["change"],
            "genes": int(s.get("n_genes") or 0),
            "carriers' rate ratio": f"{float(s.get('rate_ratio')):.2f}",
            "carriers at baseline": _render.pct(s.get("baseline_share")),
            "carriers at relapse": _render.pct(s.get("relapse_share")),
        }
        for s in states
    ]


def _subclone_rows(records: list[Any]) -> list[dict[str, Any]]:
    """The subclone table as people read it: fraction with CI in one cell, long sequences shortened."""
    out = []
    for r in records:
        if not isinstance(r, dict):
            out.append({"subclone": r})
            continue
        row: dict[str, Any] = {"subclone": r.get("subclone")}
        for tp in ("baseline", "relapse"):
            if f"n_{tp}" in r:
                row[f"cells {tp}"] = r[f"n_{tp}"]
            if r.get(f"freq_{tp}") is not None:
                row[f"share {tp}"] = _render.pct(r[f"freq_{tp}"])
        if "expansion_fold" in r:
            row["expansion fold (95% CI)"] = _with_ci(
                r.get("expansion_fold"), r.get("fold_ci_low"), r.get("fold_ci_high"), pct=False
            )
        for tp in ("baseline", "relapse"):
            if f"pi_{tp}" in r:
                row[f"negative {tp} (95% CI)"] = _with_ci(
                    r.get(f"pi_{tp}"), r.get(f"ci_low_{tp}"), r.get(f"ci_high_{tp}")
                )
            if f"state_{tp}" in r:
                row[f"state {tp}"] = r[f"state_{tp}"]
        for key in ("cnv_subclone", "clone_id", "markers"):
            v = r.get(key)
            if v not in (None, "None", ""):
                row[key] = v if len(str(v)) <= 40 else str(v)[:37] + "…"
        known = {
            "subclone",
            "expansion_fold",
            "fold_ci_low",
            "fold_ci_high",
            "cnv_subclone",
            "clone_id",
            "markers",
        }
        known |= {
            f"{k}_{tp}"
            for tp in ("baseline", "relapse")
            for k in ("n", "freq", "pi", "ci_low", "ci_high", "state")
        }
        if not any(k in r for k in known - {"subclone"}):
            row.update(r)  # an unfamiliar table: show it as it is
        out.append(row)
    return out


def _with_ci(value: Any, lo: Any, hi: Any, *, pct: bool = True) -> str:
    if value is None:
        return "n/a"
    f = _render.pct if pct else (lambda x: f"{x:.2f}")
    if lo is None or hi is None:
        return f(value)
    return f"{f(value)} ({f(lo)}–{f(hi)})"


def _section(id_: str, title: str, text: str) -> dict[str, Any]:
    return {
        "id": id_,
        "title": title,
        "text": text,
        "figures": [],
        "notes": [],
        "rows": None,
        "columns": None,
        "table_note": None,
    }


def _add(
    sec: dict[str, Any], figdir: Path, name: str, draw: Callable[[], Any], caption: str
) -> None:
    """Draw a figure, write figures/<name>.png and embed it; a failure becomes a note, not a crash."""
    try:
        fig = draw()
        data = _render.png_bytes(fig)
    except Exception as exc:  # a broken plot must not lose the report
        logger.warning("figure %s could not be drawn: %s", name, exc)
        sec["notes"].append(f"Figure '{name}' could not be drawn: {type(exc).__name__}: {exc}")
        return
    atomic_write_bytes(figdir / f"{name}.png", data)
    sec["figures"].append({**_render.embed_png(data), "alt": name, "caption": caption, "png": data})
