"""write_patient: the result.json contract, determinism, defensive reading, self-contained HTML."""

from __future__ import annotations

import json
import re

import anndata as ad
import numpy as np
from browser_checks import decoded_images

from cd7escape.report import write_patient
from cd7escape.report._result import MECHANISMS, TIMEPOINT_FIELDS


def test_outputs_exist(written):
    pdir, _ = written
    for name in ("result.json", "report.html", "report.pdf", "cells.h5ad"):
        assert (pdir / name).stat().st_size > 0
    figs = sorted(p.name for p in (pdir / "figures").glob("*.png"))
    assert figs == [
        "antigen_distribution.png", "clonotype_sharing.png", "cnv_heatmap.png",
        "sample_timeline.png", "subclone_composition.png", "umap.png",
    ]  # fmt: skip
    assert not list(pdir.rglob(".*.tmp")), "temporary files left behind"


def test_result_contract(written, config):
    pdir, result = written
    on_disk = json.loads((pdir / "result.json").read_text())
    assert on_disk == result
    for key in ("patient", "antigen", "mechanism", "confidence", "reason", "timepoints", "subclones",
                "evidence", "version", "parameters", "qc"):  # fmt: skip
        assert key in result, key
    assert result["patient"] == "P01"
    assert result["mechanism"] in MECHANISMS
    assert 0 <= result["confidence"] <= 1
    for tp in ("baseline", "relapse"):
        assert set(TIMEPOINT_FIELDS) <= set(result["timepoints"][tp])
    assert result["timepoints"]["relapse"]["antigen_negative_fraction"] == 0.71
    assert result["timepoints"]["relapse"]["zero_count_fraction"] == 0.83
    assert result["parameters"] == json.loads(config.model_dump_json())
    assert {s["subclone"] for s in result["subclones"]} == {"S0", "S1", "unmapped"}
    assert len(result["evidence"]) == 3
    assert result["missing"] == []


def test_failed_sample_is_reported(written):
    _, result = written
    failed = [q for q in result["qc"] if q["status"] == "failed"]
    assert [q["sample"] for q in failed] == ["P01_REL2"]
    assert "only 0 of 40 cells" in failed[0]["reason"]
    assert [q["timepoint"] for q in result["qc"]] == ["baseline", "relapse", "relapse"]


def test_inputs_and_reader_warnings(written):
    pdir, result = written
    assert [i["sample"] for i in result["inputs"]] == ["P01_BL", "P01_REL", "P01_REL2"]
    assert result["warnings"] == ["[sample=P01_REL] car_feature 'CAR_CD7' matches no gene"]
    html = (pdir / "report.html").read_text()
    assert "/data/P01/&lt;BL&gt;&amp;.h5" in html  # paths are user strings: escaped
    assert "matches no gene" in html


def test_result_json_is_byte_identical_across_runs(written, toy_adata, config, tmp_path):
    pdir, _ = written
    write_patient(toy_adata.copy(), tmp_path / "b", config=config)
    a = (pdir / "result.json").read_bytes()
    assert a == (tmp_path / "b" / "result.json").read_bytes()
    text = a.decode()
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    # floats rounded, no NaN
    assert not re.search(r"\d\.\d{7,}", text)
    assert "NaN" not in text
    for name in ("umap.png", "antigen_distribution.png", "../report.pdf"):
        assert (pdir / "figures" / name).read_bytes() == (
            tmp_path / "b" / "figures" / name
        ).read_bytes()


def test_same_result_after_h5ad_round_trip(written, config, tmp_path):
    """The pipeline reports from a cached h5ad: storage must not change the numbers."""
    pdir, _ = written
    back = ad.read_h5ad(pdir / "cells.h5ad")
    write_patient(back, tmp_path / "b", config=config)
    assert (pdir / "result.json").read_text() == (tmp_path / "b" / "result.json").read_text()


def test_cells_h5ad_keeps_every_annotation(written, toy_adata):
    pdir, _ = written
    back = ad.read_h5ad(pdir / "cells.h5ad")
    assert back.n_obs == toy_adata.n_obs
    assert set(toy_adata.obs.columns) <= set(back.obs.columns)
    assert {"X_umap", "X_cnv"} <= set(back.obsm)
    assert "classify" in back.uns["cd7escape"]


def test_without_classification_nothing_is_invented(toy_adata, config, tmp_path):
    a = toy_adata.copy()
    del a.uns["cd7escape"]["classify"]
    result = write_patient(a, tmp_path / "P", config=config)
    assert result["mechanism"] == "indeterminate"
    assert result["mechanism_called"] is False
    assert result["confidence"] is None
    assert any("classify" in m for m in result["missing"])
    rel = result["timepoints"]["relapse"]
    # read from the cells and from tl.antigen_state, not made up
    assert rel["malignant_cells"] == int(
        (a.obs["malignant"] & (a.obs["timepoint"] == "relapse")).sum()
    )
    assert rel["antigen_negative_fraction"] == 0.71
    assert rel["ci_low"] == 0.63
    html = (tmp_path / "P" / "report.html").read_text()
    assert "Missing inputs" in html
    assert "classification step did not run" in html


def test_bare_anndata_gives_a_report_that_says_what_is_missing(config, tmp_path):
    a = ad.AnnData(np.ones((5, 3), dtype=np.float32))
    a.var_names = ["CD7", "A", "B"]
    result = write_patient(a, tmp_path / "bare", config=config)
    assert result["patient"] == "bare"
    assert result["timepoints"]["relapse"]["malignant_cells"] is None
    html = (tmp_path / "bare" / "report.html").read_text()
    for text in ("pp.qc was not run", "tl.call_malignant was not run", "tl.subclones was not run"):
        assert text in html
    assert not list((tmp_path / "bare").glob("figures/*.png"))


def test_html_is_self_contained(written):
    pdir, _ = written
    html = (pdir / "report.html").read_text()
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "@import" not in html
    assert "url(" not in html
    images = decoded_images(html)
    assert len(images) == 6
    for src, img in images:
        assert not isinstance(img, str), f"{src}: {img}"
        assert img.size[0] > 100
        assert img.size[1] > 100
    for text in ("Pre-existing antigen-negative clone expanded", "confidence 92%", "Caveats",
                 "P01_REL2", "Evidence", "Parameters and versions", "71.0%", "83.0%"):  # fmt: skip
        assert text in html, text


def test_user_strings_are_escaped(evil_written):
    pdir, result = evil_written
    assert result["patient"] == "<script>alert(1)</script>"
    html = (pdir / "report.html").read_text()
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp;" in html
    assert "onerror=alert(2)>" not in html


def test_rerun_removes_figures_it_cannot_draw(written, toy_adata, config, tmp_path):
    import shutil

    pdir = tmp_path / "P"
    shutil.copytree(written[0], pdir)
    assert (pdir / "figures" / "cnv_heatmap.png").exists()
    a = toy_adata.copy()
    del a.obsm["X_cnv"]
    write_patient(a, pdir, config=config)
    assert not (pdir / "figures" / "cnv_heatmap.png").exists()
    assert "obsm[&#39;X_cnv&#39;] is absent" in (pdir / "report.html").read_text()


def test_pdf_export(written):
    pdir, _ = written
    data = (pdir / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF")
    assert (
        data.count(b"/Type /Page\n") + data.count(b"/Type /Page ") + data.count(b"/Type/Page") >= 1
    )
    assert b"CreationDate" not in data


def test_cells_h5ad_compression_follows_the_config(written, config, tmp_path):
    import h5py

    from cd7escape._files import atomic_write_h5ad

    pdir, _ = written
    with h5py.File(pdir / "cells.h5ad") as f:
        assert f["layers/counts/data"].compression == config.h5ad_compression == "lzf"
    small = ad.read_h5ad(pdir / "cells.h5ad")
    for name, expected in (("gzip", "gzip"), ("none", None)):
        atomic_write_h5ad(small, tmp_path / f"{name}.h5ad", compression=name)
        with h5py.File(tmp_path / f"{name}.h5ad") as f:
            assert f["layers/counts/data"].compression == expected
        back = ad.read_h5ad(tmp_path / f"{name}.h5ad")
        assert (back.layers["counts"] != small.layers["counts"]).nnz == 0


def test_writing_leaves_the_in_memory_obs_alone(toy_adata, config, tmp_path):
    a = toy_adata.copy()
    # a string column: the h5ad writer makes it categorical in its copy
    a.obs["note"] = ["x"] * a.n_obs
    before = a.obs.dtypes.copy()
    write_patient(a, tmp_path / "P", config=config)
    assert (a.obs.dtypes == before).all()
    assert ad.read_h5ad(tmp_path / "P" / "cells.h5ad").obs["note"].tolist() == ["x"] * a.n_obs


def test_relapse_copy_number_states_read_alike_in_the_report_result_json_and_cohort(
    toy_adata, config, tmp_path
):
    import pandas as pd

    from cd7escape.tl._clones._relapse_copy_number import STATE_COLUMNS

    state = {
        "chromosome": "chr17", "start": 7_600_000, "end": 20_100_000, "first_window": "chr17:0",
        "last_window": "chr17:25", "sign": -1, "window_shift": -0.1, "n_genes": 75,
        "gene_shift": -0.5, "shift_pvalue": 1e-20, "rate_ratio": 0.47, "baseline_share": 0.012,
        "relapse_share": 0.81,
    }  # fmt: skip
    pages = {}
    for name, rows in (("one", [state]), ("none", [])):
        adata = toy_adata.copy()
        entry = dict(adata.uns["cd7escape"]["subclones"])
        entry["relapse_cn_states"] = pd.DataFrame(rows, columns=STATE_COLUMNS)
        adata.uns["cd7escape"]["subclones"] = entry
        write_patient(adata, tmp_path / name, config=config)
        pages[name] = (tmp_path / name / "report.html").read_text()
    assert "chr17 7.6–20.1 Mb" in pages["one"]
    assert "carriers at relapse" in pages["one"]
    assert "81.0%" in pages["one"]  # the relapse's carriers
    assert "1.2%" in pages["one"]  # the baseline's
    assert "No copy-number state that the relapse carries more than the baseline" in pages["none"]
    assert "carriers at relapse" not in pages["none"]
    # one wording and one number per state: result.json and the cohort summary say what the report says
    results = {n: json.loads((tmp_path / n / "result.json").read_text()) for n in pages}
    (record,) = results["one"]["copy_number_states"]
    assert (record["segment"], record["change"]) == ("chr17 7.6–20.1 Mb", "loss")
    assert (record["baseline_share"], record["relapse_share"]) == (0.012, 0.81)
    assert results["none"]["copy_number_states"] == []
    from cd7escape.report._cohort import write_cohort

    rows = {r["patient"]: r for r in write_cohort(tmp_path, ["one", "none"])}
    assert rows["one"]["relapse_copy_number_states"] == "chr17 7.6–20.1 Mb loss"
    assert rows["none"]["relapse_copy_number_states"] == "none"


def test_a_copy_number_reference_of_car_t_cells_is_said_in_the_report(toy_adata, config, tmp_path):
    pages = {}
    for name, thin in (("thin", True), ("polyclonal", False), ("with_nk", True)):
        adata = toy_adata.copy()
        entry = dict(adata.uns["cd7escape"].get("malignant", {}))
        entry["clone_copy_number"] = {
            "clones": {}, "segments": {}, "leukemic": [], "reference_cells": 69,
            "reference_car_t": 51 if thin else 0, "reference_thin": thin,
            "reference_nk": 68 if name == "with_nk" else 0,
        }  # fmt: skip
        adata.uns["cd7escape"]["malignant"] = entry
        write_patient(adata, tmp_path / name, config=config)
        pages[name] = (tmp_path / name / "report.html").read_text()
    assert "read against 69 reference cells, 51 of them CAR-T cells" in pages["thin"]
    assert "NK cells joined" not in pages["thin"]
    assert "CAR-T cells: polyclonal" not in pages["polyclonal"]
    assert "68 NK cells joined them and the test was repeated" in pages["with_nk"]
