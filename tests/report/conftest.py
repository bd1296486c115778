from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pl"))

from synthetic import make_patient

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def toy_adata():
    return make_patient()


@pytest.fixture(scope="session")
def config():
    from cd7escape._config import Config

    return Config(samples=[], seed=0)


@dataclass
class Rendered:
    dom: str
    log: str
    screenshot: Path


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """``render(html) -> Rendered``: the page opened by Debian's headless chromium (skips without it)."""
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")

    def render(html: Path) -> Rendered:
        base = tmp_path_factory.mktemp("chromium")
        url = Path(html).resolve().as_uri()
        shot = base / "screenshot.png"
        r1 = _run(
            [
                "--enable-logging=stderr",
                "--v=0",
                f"--screenshot={shot}",
                "--window-size=1280,2000",
                url,
            ],
            base / "profile1",
        )
        r2 = _run(["--dump-dom", "--virtual-time-budget=2000", url], base / "profile2")
        assert r2.returncode == 0, r2.stderr[-2000:]
        assert shot.exists(), r1.stderr[-2000:]
        return Rendered(dom=r2.stdout, log=r1.stderr + r2.stderr, screenshot=shot)

    return render


@pytest.fixture(scope="session")
def written(toy_adata, config, tmp_path_factory):
    """``(pdir, result)`` of the toy patient written once for the whole session (do not modify)."""
    from cd7escape.report import write_patient

    pdir = tmp_path_factory.mktemp("written") / "P01"
    return pdir, write_patient(toy_adata.copy(), pdir, config=config)


EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="session")
def evil_written(toy_adata, config, tmp_path_factory):
    """A patient whose ids, paths and reason carry HTML: ``(pdir, result)``."""
    from cd7escape.report import write_patient

    a = toy_adata.copy()
    a.obs["patient"] = EVIL
    a.obs["sample"] = a.obs["sample"].cat.rename_categories(
        lambda s: f'{s}"><img src=x onerror=alert(2)>'
    )
    a.uns["cd7escape"]["classify"]["reason"] = "<b>bold</b> & <i>reason</i>"
    pdir = tmp_path_factory.mktemp("evil") / "evil"
    return pdir, write_patient(a, pdir, config=config)
