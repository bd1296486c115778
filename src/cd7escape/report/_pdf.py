"""A printable PDF of the report: the verdict and numbers on the first page, one figure per page after."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import _narrative
from ._render import pct


def pdf_bytes(result: Mapping[str, Any], figures: Sequence[tuple[str, bytes]]) -> bytes:
    """The PDF as bytes; no creation date or producer, so identical inputs give identical files."""
    import matplotlib.image as mpimg
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    buf = io.BytesIO()
    with PdfPages(buf, metadata={"Creator": None, "Producer": None, "CreationDate": None}) as pdf:
        fig = Figure(figsize=(8.27, 11.69))  # A4 portrait
        _first_page(fig, result)
        pdf.savefig(fig)
        for caption, png in figures:
            img = mpimg.imread(io.BytesIO(png), format="png")
            fig = Figure(figsize=(11.69, 8.27))  # A4 landscape
            ax = fig.add_axes((0.03, 0.08, 0.94, 0.86))
            ax.imshow(img, interpolation="none")  # embedded as is, not resampled
            ax.set_axis_off()
            ax.set_aspect("equal")
            fig.text(0.03, 0.03, "\n".join(textwrap.wrap(caption, 150)), fontsize=9, va="bottom")
            pdf.savefig(fig)
    return buf.getvalue()


def _first_page(fig, r: Mapping[str, Any]) -> None:
    y = 0.95
    fig.text(
        0.07,
        y,
        f"Relapse after {r['antigen']} CAR-T · patient {r['patient']}",
        fontsize=15,
        weight="bold",
    )
    y -= 0.03
    fig.text(0.07, y, f"cd7escape {r['version']}", fontsize=9, color="#555")
    y -= 0.05
    conf = r.get("confidence")
    head = _narrative.label(r["mechanism"]) + (
        f"  —  confidence {100 * conf:.0f}%" if conf is not None else ""
    )
    fig.text(0.07, y, head, fontsize=13, weight="bold")
    y -= 0.02
    for line in textwrap.wrap(_narrative.paragraph(r), 95):
        y -= 0.018
        fig.text(0.07, y, line, fontsize=9.5)
    y -= 0.035
    fig.text(0.07, y, "Caveats", fontsize=10.5, weight="bold")
    for c in _narrative.caveats(r):
        for i, line in enumerate(textwrap.wrap(c, 92)):
            y -= 0.017
            fig.text(0.08, y, ("• " if i == 0 else "  ") + line, fontsize=9)
    y -= 0.04
    fig.text(0.07, y, "Numbers per timepoint", fontsize=10.5, weight="bold")
    rows = [["timepoint", "malignant cells", "negative (model)", "95% CI", "zero counts (naive)"]]
    for tp in ("baseline", "relapse"):
        t = (r.get("timepoints") or {}).get(tp) or {}
        ci = (
            f"{pct(t.get('ci_low'))} – {pct(t.get('ci_high'))}"
            if t.get("ci_low") is not None and t.get("ci_high") is not None
            else "n/a"
        )
        n = t.get("malignant_cells")
        rows.append(
            [tp, "n/a" if n is None else str(n), pct(t.get("antigen_negative_fraction")), ci,
             pct(t.get("zero_count_fraction"))]
        )  # fmt: skip
    xs = [0.07, 0.22, 0.40, 0.58, 0.76]
    for k, row in enumerate(rows):
        y -= 0.02
        for x, cell in zip(xs, row, strict=True):
            fig.text(x, y, cell, fontsize=9, weight="bold" if k == 0 else "normal")
    for tp in ("baseline", "relapse"):
        limit = ((r.get("timepoints") or {}).get(tp) or {}).get("detection_limit")
        if limit:
            y -= 0.018
            fig.text(0.07, y, f"Detection limit at {tp}: {limit}", fontsize=9)
    evidence = r.get("evidence") or []
    if evidence:
        y -= 0.04
        fig.text(0.07, y, "Evidence", fontsize=10.5, weight="bold")
        for e in evidence:
            text = e if isinstance(e, str) else "; ".join(f"{k}: {v}" for k, v in dict(e).items())
            for i, line in enumerate(textwrap.wrap(text, 92)):
                y -= 0.017
                if y < 0.04:
                    fig.text(
                        0.08,
                        0.025,
                        "… (the full list is in report.html and result.json)",
                        fontsize=8,
                    )
                    return
                fig.text(0.08, y, ("• " if i == 0 else "  ") + line, fontsize=9)


def write_pdf(path: Path, result: Mapping[str, Any], figures: Sequence[tuple[str, bytes]]) -> None:
    from .._files import atomic_write_bytes

    atomic_write_bytes(path, pdf_bytes(result, figures))
