"""Checks on a page rendered by headless chromium: console errors, embedded images, blank screenshots."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path


def console_errors(log: str) -> list[str]:
    """Messages from the page (console, failed loads), not chromium's own environment noise (dbus …)."""
    out = []
    for line in log.splitlines():
        if (
            "CONSOLE" in line
            or "Uncaught" in line
            or "net::ERR" in line
            or "Failed to load resource" in line
            or re.search(r"INFO:CONSOLE|:ERROR:.*(render|blink|v8)", line)
        ):
            out.append(line)
    return out


def decoded_images(dom: str):
    """Every <img> of the DOM as (src, PIL image or the reason it failed)."""
    from PIL import Image

    out = []
    for src in re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", dom):
        if not src.startswith("data:image/png;base64,"):
            out.append((src[:60], "not an embedded PNG"))
            continue
        try:
            img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
            img.load()
            out.append((src[:40], img))
        except Exception as exc:
            out.append((src[:40], f"does not decode: {exc}"))
    return out


def screenshot_stats(path: Path) -> tuple[float, float]:
    """(pixel standard deviation, share of non-white pixels) of a screenshot."""
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(path).convert("L"), dtype=float)
    return float(a.std()), float((a < 245).mean())
