"""The run report: one self-contained HTML page per output folder.

- :func:`build_report` reads a run's output folder (predictions, comparisons,
  transitions, cleaning report) and writes ``report.html`` from a jinja2
  template, with figures embedded and nothing loaded from the network.
- :func:`segment_summary`, :func:`grid_cells`, :func:`segments_by_period` and
  :func:`history_by_period` compute the report's tables from frames.

Nothing here imports mlflow: logging the page goes through :mod:`rfmml.tracking`.
"""

from __future__ import annotations

from rfmml.report.build import PERIOD_FILE, REPORT_FILE, build_report
from rfmml.report.tables import (
    INTERVAL_COLUMNS,
    grid_cells,
    history_by_period,
    segment_summary,
    segments_by_period,
    top_share,
)

__all__ = [
    "INTERVAL_COLUMNS",
    "PERIOD_FILE",
    "REPORT_FILE",
    "build_report",
    "grid_cells",
    "history_by_period",
    "segment_summary",
    "segments_by_period",
    "top_share",
]
