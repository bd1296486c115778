"""The report and the cohort index opened in a real headless browser (Debian's chromium).

Skipped when /usr/bin/chromium is absent (``apt-get install -y chromium``).
"""

from __future__ import annotations

import json
import shutil

import pytest
from browser_checks import console_errors, decoded_images, screenshot_stats

from cd7escape.report import write_cohort


@pytest.fixture(scope="module")
def outdir(written, evil_written, tmp_path_factory):
    out = tmp_path_factory.mktemp("browser")
    shutil.copytree(written[0], out / "P01")
    shutil.copytree(evil_written[0], out / "evil")
    write_cohort(out, ["P01", "evil", "P_missing"])
    return out


@pytest.fixture(scope="module")
def page(browser, outdir):
    return browser(outdir / "P01" / "report.html")


def test_report_renders(page):
    assert "Relapse after CD7 CAR-T" in page.dom
    assert 'id="verdict"' in page.dom
    assert "Pre-existing antigen-negative clone expanded" in page.dom


def test_every_image_loads(page):
    images = decoded_images(page.dom)
    assert len(images) == 6  # one per figure of report._patient.FIGURES
    for src, img in images:
        assert not isinstance(img, str), f"{src}: {img}"
        assert min(img.size) > 100


def test_no_console_errors(page):
    assert console_errors(page.log) == []


def test_screenshot_has_content(page):
    std, ink = screenshot_stats(page.screenshot)
    assert std > 20, f"screenshot looks blank (pixel sd {std:.1f})"
    assert 0.03 < ink < 0.9, f"share of non-white pixels {ink:.3f}"


def test_console_error_detection_works(browser, tmp_path):
    """The checks above can fail: a page with a script error and a broken image is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<html><body><script>undefinedFn();</script><img src="missing.png"></body></html>'
    )
    page = browser(bad)
    assert console_errors(page.log)
    assert any(isinstance(img, str) for _, img in decoded_images(page.dom))
    assert screenshot_stats(page.screenshot)[0] < 5


def test_escaped_patient_id_stays_text(browser, outdir):
    page = browser(outdir / "evil" / "report.html")
    assert console_errors(page.log) == []
    assert "<script>alert(1)</script>" not in page.dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.dom
    result = json.loads((outdir / "evil" / "result.json").read_text())
    assert result["patient"] == "<script>alert(1)</script>"


def test_cohort_page(browser, outdir):
    page = browser(outdir / "cohort.html")
    assert console_errors(page.log) == []
    assert 'href="P01/report.html"' in page.dom
    assert 'href="evil/report.html"' in page.dom
    assert "P_missing" in page.dom
    assert (outdir / "P01" / "report.html").exists()
