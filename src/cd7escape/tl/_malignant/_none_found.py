"""Why no malignant cell was found, in words a user can act on.

:func:`~._call.call_malignant` records it (``uns['cd7escape']['malignant']['none_found']``) when it calls
no cell malignant; the pipeline ends the patient as ``indeterminate`` with it. A bare "no malignant
cells" leaves the user to guess whether the data hold no leukemia or the evidence fell short of a bar,
and by how much. The evidence read here is the step's own record: the clonotypes' copy-number test (the
strongest block of each, against the reference it was read against), the blast program and the
copy-number profile.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._cnv import CLONE_MIN_CELLS, CLONE_MIN_LOG2, CLONE_Z, CLONE_Z_SUPPORT, NULL_MIN_CELLS

MAX_CLONES_NAMED = 3  # the clonotypes (strongest block first) a reason names


def none_found_reason(
    results: dict[str, Any], *, min_blast_cells: int, min_score: float, max_score: float
) -> str:
    """The sentence saying why ``results`` (of :func:`~._call.call_malignant`) hold no malignant cell.

    ``min_blast_cells``: cells with the blast program from which the leukemic copy-number profile is
    learnt; ``min_score``: the malignancy score a malignant cell reaches, ``max_score`` the highest any
    cell reached.
    """
    labels = results.get("user_labels")
    if labels and labels.get("labelled_cells"):
        return (
            f"no malignant cell was found: the malignant_labels mark none of the {labels['labelled_cells']} "
            "labelled cells malignant, and no other cell reaches the malignancy score"
        )
    parts = [_clonotype_part(results), _blast_part(results, min_blast_cells)]
    if _leukemic(results) or (results.get("blast_program_cells") or 0) >= min_blast_cells:
        # there was evidence: what stopped it was the score
        parts.append(
            f"no cell reached the malignancy score malignant.min_score = {min_score:g} (the highest "
            f"was {max_score:.3f})"
        )
    thin = results.get("clone_copy_number", {}).get("reference_thin", False)
    advice = (
        "If the blasts are known (flow cytometry, a marker), give them as malignant_labels in the "
        "sample sheet"
    )
    if thin:
        advice += (
            "; with few polyclonal normal T cells (a CD7 CAR depletes them) the copy-number test reads "
            "the clonotypes against CAR-T cells, which blurs a change"
        )
    return "no malignant cell was found: " + "; ".join(p for p in parts if p) + f". {advice}"


def _clonotype_part(results: dict[str, Any]) -> str:
    if not results.get("tcr_available", False):
        return (
            "no TCR data, so no leukemic clonotype (a vdj file per sample gives each cell's clonotype, "
            "which with a copy-number change marks the leukemia)"
        )
    leukemic = _leukemic(results)
    if leukemic:
        named = ", ".join(_short(c) for c in leukemic[:MAX_CLONES_NAMED])
        return f"the leukemic clonotype(s) {named} were found"
    test = results.get("clone_copy_number", {})
    clones = pd.DataFrame(test.get("clones") or {})
    reference = test.get("reference_cells")
    if test.get("run") is False or clones.empty:
        if reference is not None and reference < 2 * NULL_MIN_CELLS:
            return (
                f"only {reference} normal T cells to read the clonotypes' copy number against (the test "
                f"needs {2 * NULL_MIN_CELLS})"
            )
        return f"no clonotype of {CLONE_MIN_CELLS} or more cells to test for a copy-number change"
    car_t, nk = test.get("reference_car_t", 0), test.get("reference_nk", 0)
    against = (
        f" against {reference} reference {'cells' if nk else 'T cells'}"
        + (f", {car_t} of them CAR-T cells" if car_t else "")
        + (f" and {nk} NK cells (joined when the others showed no change)" if nk else "")
        if reference
        else ""
    )
    altered = clones[clones["altered"].astype(bool)]
    if len(altered):
        # a change, but the leukemia's clonotype must persist from baseline to relapse
        named = ", ".join(_short(c) for c in altered["clone_id"][:MAX_CLONES_NAMED])
        return (
            f"clonotype(s) {named} carry a copy-number change{against} but were seen at one timepoint "
            "only (a leukemic clonotype is one seen at both)"
        )
    clones = clones.assign(abs_z=np.abs(pd.to_numeric(clones["z"], errors="coerce")))
    clones = clones.sort_values("abs_z", ascending=False).head(MAX_CLONES_NAMED)
    blocks = [
        f"{_short(r.clone_id)} ({int(r.n_cells)} cells): {r.chromosome} "
        f"{r.start / 1e6:.1f}–{r.end / 1e6:.1f} Mb, log2 {r.log2_ratio:+.2f}, |z| {r.abs_z:.1f}"
        for r in clones.itertuples()
        if np.isfinite(r.abs_z)
    ]
    n = len(test["clones"]["clone_id"])
    tried = test.get("reference_nk_tried", 0)
    return (
        f"none of the {n} expanded clonotypes tested carries a copy-number change{against} (a change "
        f"needs |log2| ≥ {CLONE_MIN_LOG2:g} over two overlapping blocks of genes at |z| ≥ {CLONE_Z:g}, or, "
        f"tested again, at |z| ≥ {CLONE_Z:g} in one and ≥ {CLONE_Z_SUPPORT:g} in the other)"
        + (f", the strongest blocks being {'; '.join(blocks)}" if blocks else "")
        + (
            f"; nor with the sample's {tried} NK cells joining the reference"
            if tried and not nk
            else ""
        )
    )


def _leukemic(results: dict[str, Any]) -> list[str]:
    return list((results.get("leukemic_clonotypes") or {}).get("clone_id") or [])


def _blast_part(results: dict[str, Any], min_blast_cells: int) -> str:
    n = results.get("blast_program_cells")
    if n is None:
        return ""
    return (
        f"{n} cells carry the blast program (the leukemic copy-number profile is learnt from "
        f"{min_blast_cells} or more)"
    )


def _short(clone_id: str) -> str:
    """A clonotype's name short enough for a sentence (its first chain's CDR3, cut)."""
    text = str(clone_id)
    return text if len(text) <= 30 else f"{text[:27]}…"
