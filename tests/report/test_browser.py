"""The report rendered by headless Chromium: the DOM it builds and a screenshot."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from rfmml.campaign import read_predictions
from rfmml.report import REPORT_FILE

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary on PATH (.ci/run installs the Debian package 'chromium')",
)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--disable-extensions"]  # fmt: skip


def _chromium(*args: str, profile) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture(scope="module")
def rendered(run_folder, tmp_path_factory):
    """(DOM after rendering, screenshot array) of the run's report."""
    folder = tmp_path_factory.mktemp("chromium")
    url = (run_folder[1] / REPORT_FILE).resolve().as_uri()
    dom = _chromium("--dump-dom", url, profile=folder / "dom").stdout
    shot = folder / "report.png"
    _chromium(f"--screenshot={shot}", "--window-size=1280,2000", url, profile=folder / "shot")
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"))
    return dom, pixels


def test_rendered_dom_holds_segment_names_and_headline_numbers(rendered, run_folder, parse):
    dom, _ = rendered
    page = parse(dom)
    predictions = read_predictions(run_folder[1] / "predictions.parquet")
    for name in predictions["segment"].astype(str).unique():
        assert name in page.text, name
    assert f"Customers {len(predictions):,}" in page.text
    assert f"Predicted CLV {predictions['clv'].sum():,.2f}" in page.text
    segment_rows = {row[0] for row in page.tables["segments"][0][1:]}
    assert segment_rows == set(predictions["segment"].astype(str))


def test_screenshot_is_not_blank(rendered):
    _, pixels = rendered
    assert pixels.shape[:2] == (2000, 1280)
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 200  # text antialiasing, cards, the grid's shades and figures
    not_white = (pixels < 245).any(axis=2).mean()
    assert not_white > 0.05
    header = pixels[:40].reshape(-1, 3).mean(axis=0)
    assert header.max() < 80  # the dark page header is drawn: the CSS was applied
