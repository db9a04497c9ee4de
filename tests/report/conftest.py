"""Real run folders for the report: a CLI run and a predict on 1,500 CDNOW customers.

The run goes through ``rfmml run`` (which builds and logs the report), the predict
through ``rfmml predict --previous`` (entered/left lists); a grouped run uses a
``channel`` column drawn once with a fixed seed.
"""

from __future__ import annotations

import os
import shutil
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rfmml.cli import main

CONFIG = """
name = "report_small"
random_state = 0
calibration_end = 1997-09-30
observation_end = 1998-06-30
freq = "W"
n_bootstrap = 2
sample_size = 800

[data]
source = "{csv}"
customer = "cust"
timestamp = "date"
amount = "amount"
{group}

[models]
horizon = 26

[[segmentations]]
name = "rfm11"
kind = "rules"
scheme = "rfm11"
{kmeans}
"""

KMEANS = """
[[segmentations]]
name = "kmeans_3"
kind = "kmeans"
n_clusters = 3
"""


@pytest.fixture(scope="session")
def workspace(tmp_path_factory, cdnow_tx):
    """1,500 real CDNOW customers as a CSV with a seeded sales channel per customer."""
    folder = tmp_path_factory.mktemp("report")
    ids = cdnow_tx["customer_id"].drop_duplicates().sample(1500, random_state=7)
    sample = cdnow_tx[cdnow_tx["customer_id"].isin(ids)].copy()
    rng = np.random.default_rng(42)
    channel = pd.Series(rng.choice(["web", "store"], size=len(ids), p=[0.6, 0.4]), index=ids)
    sample["channel"] = sample["customer_id"].map(channel)
    sample["cust"] = sample["customer_id"].astype(str)
    sample["date"] = sample["timestamp"].dt.strftime("%Y-%m-%d")
    sample[["cust", "date", "amount", "channel"]].to_csv(folder / "orders.csv", index=False)
    for name, group, kmeans in (("plain", "", KMEANS), ("grouped", 'group = "channel"', "")):
        text = CONFIG.format(csv=folder / "orders.csv", group=group, kmeans=kmeans)
        (folder / f"{name}.toml").write_text(text)
    return folder


def _run(workspace, name, mlflow_store):
    previous = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        uri = mlflow_store(workspace / (name + ".db"))
        out = workspace / name
        result = CliRunner().invoke(
            main,
            ["run", str(workspace / f"{name}.toml"), "-o", str(out), "--tracking-uri", uri],
            catch_exceptions=False,
        )
    finally:
        if previous is not None:
            os.environ["MLFLOW_TRACKING_URI"] = previous
    assert result.exit_code == 0, result.output
    return result, out, uri


@pytest.fixture(scope="session")
def run_folder(workspace, mlflow_store):
    """``rfmml run`` output: (CliRunner result, output folder, tracking URI)."""
    return _run(workspace, "plain", mlflow_store)


@pytest.fixture(scope="session")
def grouped_folder(workspace, mlflow_store):
    """``rfmml run`` output of the same customers scored per channel."""
    return _run(workspace, "grouped", mlflow_store)


@pytest.fixture(scope="session")
def predict_folder(workspace, run_folder):
    """``rfmml predict --previous`` output: (CliRunner result, output folder)."""
    _, out, _ = run_folder
    target = workspace / "predict"
    args = [str(workspace / "orders.csv"), "--customer", "cust", "--timestamp", "date",
            "--observation-end", "1998-03-31", "--model", str(out / "model"), "-o", str(target),
            "--previous", str(out / "predictions.parquet")]  # fmt: skip
    result = CliRunner().invoke(main, ["predict", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result, target


@pytest.fixture
def run_copy(run_folder, tmp_path):
    """A private copy of the run folder that a test may add files to."""
    target = tmp_path / "run"
    shutil.copytree(run_folder[1], target)
    return target


class ReportPage(HTMLParser):
    """The parts of report.html the tests look at: sections, tables, links, images."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.section: str | None = None
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.resources: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.images: list[dict[str, str]] = []
        self.tags: set[str] = set()
        self.text_parts: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self.feed(html)
        self.text = " ".join(" ".join(self.text_parts).split())

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.section = attrs.get("id")
        for name in ("src", "href", "data", "poster"):
            if name in attrs:
                self.resources.append((tag, name, attrs[name] or ""))
        if tag == "img":
            self.images.append(attrs)
        if tag == "table":
            self.tables.setdefault(self.section or "", []).append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag in ("br", "div") and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self.section or ""][-1].append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text_parts.append(data)
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="session")
def parse():
    """Parse an HTML text into a :class:`ReportPage`."""
    return ReportPage
