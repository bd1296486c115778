"""Jinja2 environment (autoescaping everything), figure embedding and small formatting helpers."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from markupsafe import Markup, escape

from .._uns import percent


@cache
def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cd7escape.report", "templates"),
        autoescape=True,  # every user string (patient, sample ids, paths, reasons) is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(fmt=fmt, pct=pct, table=table)
    return env


def css() -> Markup:
    # our own stylesheet, inlined; Markup so that quotes in it are not entity-encoded
    return Markup(
        files("cd7escape.report").joinpath("templates/style.css").read_text(encoding="utf-8")
    )


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(css=css(), **context)


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == int(value) and abs(value) < 1e9:
            return f"{int(value)}"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return str(value)


def pct(value: Any) -> str:
    """A fraction in the one rounding every output shows (:func:`cd7escape._uns.percent`)."""
    return percent(value)


def table(
    rows: Sequence[Any], columns: Sequence[str] | None = None, *, row_class: str | None = None
) -> Markup:
    """An escaped HTML table of records (dicts); plain strings become a one-column table."""
    rows = [r if isinstance(r, Mapping) else {"statement": r} for r in rows]
    if not columns:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    columns = [c for c in columns if any(c in r for r in rows)]
    out = [
        '<div class="scroll"><table>',
        "<tr>",
        *(f"<th>{escape(c)}</th>" for c in columns),
        "</tr>",
    ]
    for r in rows:
        cls = ""
        if row_class and str(r.get(row_class, "")).lower() == "failed":
            cls = ' class="failed"'
        out.append(f"<tr{cls}>")
        for c in columns:
            v = r.get(c)
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            td = '<td class="num">' if num else "<td>"
            out.append(f"{td}{escape(fmt(v))}</td>")
        out.append("</tr>")
    out.append("</table></div>")
    return Markup("".join(out))


def png_bytes(fig, *, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def embed_png(data: bytes) -> dict[str, Any]:
    """Base64 payload and pixel size of a PNG."""
    import struct

    width, height = struct.unpack(">II", data[16:24])
    return {"data": base64.b64encode(data).decode("ascii"), "width": width, "height": height}
