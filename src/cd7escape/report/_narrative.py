"""The plain-language paragraph of the verdict box: what was called, on what numbers, and the caveats."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._uns import NONE_DETECTED, percent

LABELS = {
    "preexisting_negative_clone": "Pre-existing antigen-negative clone expanded",
    "antigen_downregulation": "Antigen downregulation in the dominant clone",
    "antigen_retained": "Antigen retained (antigen-positive relapse)",
    "mixed": "Mixed: pre-existing negative clone and downregulation",
    "lineage_switch": "Lineage switch",
    "indeterminate": "Indeterminate",
    "missing": "No result (not run or failed)",
    "unreadable": "result.json unreadable",
}

_MEANING = {
    "preexisting_negative_clone": (
        "{antigen}-negative leukemic cells were already present before treatment, in a subclone linked to the "
        "relapse cells, and that subclone expanded under CAR pressure. A baseline screen for {antigen}-negative "
        "subclones could have flagged this risk; a second target or transplant is the usual answer."
    ),
    "antigen_downregulation": (
        "The clone that relapsed was {antigen}-positive before treatment and lost or lowered {antigen} under CAR "
        "pressure (silencing, epitope loss, internalisation or masking), rather than a pre-existing "
        "negative subclone growing out."
    ),
    "antigen_retained": (
        "The relapse blasts still express {antigen}: this is a CAR failure (persistence, exhaustion, "
        "fratricide), not antigen escape."
    ),
    "mixed": (
        "Both an expanded pre-existing {antigen}-negative subclone and downregulation in {antigen}-positive "
        "subclones contribute substantially to the relapse."
    ),
    "lineage_switch": (
        "The relapse cells are linked to the leukemic clone (its TCR or IG clonotype, or copy-number changes) but no longer carry a "
        "T-lineage program, so {antigen} loss follows a change of lineage."
    ),
    "indeterminate": "The data cannot decide between the mechanisms; see the reason and caveats.",
}


def label(mechanism: str | None) -> str:
    return LABELS.get(mechanism or "", str(mechanism))


def _pct(x: Any) -> str | None:
    return None if x is None else percent(x)


def _ceiling(result: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The confidence ceiling that held the call (``numbers['confidence_ceiling']``), if one did."""
    held = (result.get("numbers") or {}).get("confidence_ceiling")
    return held if isinstance(held, Mapping) and "bootstrap_agreement" in held else None


def _tp_sentence(name: str, tp: Mapping[str, Any], antigen: str) -> str | None:
    n = tp.get("malignant_cells")
    if n is None:
        return None
    clauses = []
    pi, lo, hi = tp.get("antigen_negative_fraction"), tp.get("ci_low"), tp.get("ci_high")
    ci = f" (95% CI {_pct(lo)}–{_pct(hi)})" if lo is not None and hi is not None else ""
    if pi is not None and str(tp.get("detection_limit") or "").startswith(NONE_DETECTED):
        clauses.append(f"the model detects no {antigen}-negative cells among them{ci}")
    elif pi is not None:
        clauses.append(f"the model estimates {_pct(pi)}{ci} of them to be {antigen}-negative")
    z = tp.get("zero_count_fraction")
    if z is not None:
        clauses.append(f"{_pct(z)} had zero {antigen} counts (dropout included)")
    head = f"At {name}, {n} malignant cells were analysed"
    return head + ("; " + " while ".join(clauses) if clauses else "") + "."


def caveats(result: Mapping[str, Any]) -> list[str]:
    """Plain statements of what limits the call."""
    out: list[str] = []
    antigen = result.get("antigen") or "the antigen"
    if not result.get("mechanism_called", True):
        out.append(
            "No classification was made; the figures below show the data as far as it was analysed."
        )
    conf = result.get("confidence")
    held = _ceiling(result)
    if held is not None:
        # the reason above already says why it is held: the caveat names the limit, once, with its size
        founders = ((result.get("numbers") or {}).get("trace") or {}).get("hidden_founder_cells")
        size = f" (up to {int(founders)} cells)" if founders is not None else ""
        out.append(
            f"Confidence is held at {_pct(conf)} ({_pct(held['bootstrap_agreement'])} of bootstrap replicates "
            f"agree): no baseline sample can exclude a {antigen}-negative founder below the detection "
            f"limit{size}."
        )
    elif conf is not None and conf < 0.8:
        out.append(
            f"Confidence is {_pct(conf)}: resampling the cells changes the call in a notable share of replicates."
        )
    boot = (result.get("numbers") or {}).get("bootstrap")
    if isinstance(boot, Mapping) and len(boot) > 1:
        total = sum(int(v) for v in boot.values())
        parts = ", ".join(
            f"{label(k)} {int(v)}" for k, v in sorted(boot.items(), key=lambda kv: -int(kv[1]))
        )
        out.append(f"Bootstrap replicates ({total}) split between calls: {parts}.")
    tps = result.get("timepoints") or {}
    for name in ("baseline", "relapse"):
        tp = tps.get(name) or {}
        n = tp.get("malignant_cells")
        if n is not None and n < 100:
            out.append(f"Only {n} malignant cells at {name}: estimates there are imprecise.")
        lo, hi = tp.get("ci_low"), tp.get("ci_high")
        if lo is not None and hi is not None and hi - lo > 0.3:
            out.append(f"The {name} negative fraction is uncertain (CI {_pct(lo)}–{_pct(hi)}).")
        pi, z = tp.get("antigen_negative_fraction"), tp.get("zero_count_fraction")
        if pi is not None and z is not None and z - pi > 0.1:
            out.append(
                f"At {name} the naive zero-count fraction ({_pct(z)}) exceeds the model estimate ({_pct(pi)}): "
                f"most zero counts there are dropout of {antigen}-expressing cells, not negative cells."
            )
    for row in result.get("qc") or []:
        if isinstance(row, Mapping) and str(row.get("status", "")).lower() == "failed":
            out.append(
                f"Sample {row.get('sample')} failed QC and was left out: {row.get('reason') or 'no reason given'}."
            )
    if result.get("mechanism") == "indeterminate" and result.get("mechanism_called", True):
        out.append(
            "What would help: more malignant cells at each timepoint, a clone-identity link between baseline "
            "and relapse (VDJ, copy-number changes), or antigen protein (CITE-seq)."
        )
    if result.get("missing"):
        out.append("Some results were not available (listed under 'Missing inputs').")
    if not str(result.get("antigen_measured_by") or "RNA").startswith("protein"):
        out.append(
            "RNA only: protein-level loss or masking of the epitope is not visible in these counts unless "
            "CITE-seq was given."
        )
    return out


def paragraph(result: Mapping[str, Any]) -> str:
    """The reasoning in a few sentences, built only from numbers present in ``result``."""
    antigen = result.get("antigen") or "the antigen"
    mech = result.get("mechanism")
    sentences = []
    # CAR-transduced blasts first: a leukemia hidden behind the CAR changes how everything below is read
    for f in result.get("findings") or []:
        if isinstance(f, Mapping) and f.get("finding") == "car_transduced_blasts" and f.get("text"):
            t = str(f["text"]).strip()
            sentences.append(t if t.endswith(".") else t + ".")
    if result.get("screen"):
        sentences.append(
            "This is a baseline screen: there is no relapse sample to compare with, so no relapse mechanism "
            f"is called; the screen below says whether {antigen}-negative malignant cells are already there."
        )
    elif result.get("mechanism_called", True) and mech == "indeterminate":
        conf = result.get("confidence")
        conf_txt = f" ({_pct(conf)} of bootstrap replicates agree)" if conf is not None else ""
        sentences.append(
            f"The data could not decide which mechanism explains this relapse{conf_txt}."
        )
    elif result.get("mechanism_called", True):
        conf = result.get("confidence")
        meaning = (
            "the ceiling of a loss that a hidden negative founder would mimic"
            if _ceiling(result) is not None
            else "share of bootstrap replicates giving the same call"
        )
        conf_txt = f" with a confidence of {_pct(conf)} ({meaning})" if conf is not None else ""
        sentences.append(f"The relapse was classified as “{label(mech)}”{conf_txt}.")
        sentences.append(_MEANING.get(mech, "").format(antigen=antigen))
    if result.get("reason"):
        r = str(result["reason"]).strip()
        r = r[:1].upper() + r[1:]
        sentences.append(r if r.endswith(".") else r + ".")
    for f in result.get("findings") or []:
        if isinstance(f, Mapping) and f.get("finding") == "protein_lost_rna_kept" and f.get("text"):
            t = str(f["text"]).strip()
            sentences.append(t[:1].upper() + t[1:] + ("" if t.endswith(".") else "."))
    per_sample = [r for r in result.get("relapse_samples") or [] if isinstance(r, Mapping)]
    if per_sample:
        calls = "; ".join(
            f"{r.get('sample')} ({r.get('tissue')}): {label(r.get('mechanism'))}"
            + (f", {_pct(r['confidence'])}" if r.get("confidence") is not None else "")
            for r in per_sample
        )
        sentences.append(f"Per relapse sample: {calls}.")
    tps = result.get("timepoints") or {}
    for name in ("baseline", "relapse"):
        s = _tp_sentence(name, tps.get(name) or {}, antigen)
        if s:
            sentences.append(s)
    return " ".join(s for s in sentences if s)
