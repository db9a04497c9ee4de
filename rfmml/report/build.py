"""Build ``report.html`` from the files of a run's output folder.

The folder is the only input, so the page can be rebuilt at any time with
``rfmml report OUTPUT_DIR``; each section appears when its files exist and says
plainly what is missing otherwise. Files read, all optional:

==============================  ====================================================
``predictions.parquet`` (or     headline numbers, R x F grid, segment tables (also
``predictions.csv``) and        per group and per k-means cluster), revenue
``predictions.meta.json``       concentration
``model/rule_segmenter.json``   the rule scheme of the grid (else the scheme named in
                                the metadata, or the ``model_dir`` it points to)
``segments_by_period.csv``      revenue and customers by segment per month (written
                                here when transactions are passed)
``segment_history.parquet``     customers per segment at each stored date
(or ``.csv``)
``transitions_counts.csv``,     migration matrix and its figure
``transition_matrix.png``
``changes/entered_*.csv``,      customers who entered and left each segment
``changes/left_*.csv``
``model_metrics.csv``,          purchase-model checks on the holdout period, one
``model_comparison.csv``,       row per model, and the tracking figure
``tracking.png`` / ``.svg``
``comparison.csv``,             segmentation comparison
``comparison.png``
``cleaning_report.json``        the cleaning report
==============================  ====================================================
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import rfmml
from rfmml._documents import replacing
from rfmml.campaign import read_predictions
from rfmml.data import ScannedLog
from rfmml.errors import DataError
from rfmml.evaluation import MODEL_METRICS
from rfmml.plots import plot_revenue_concentration, plot_segment_periods
from rfmml.report.tables import (
    INTERVAL_COLUMNS,
    grid_cells,
    history_by_period,
    label_codes,
    segment_summary,
    segments_by_period,
    top_share,
)
from rfmml.segments import Scheme, builtin_schemes, load_scheme

__all__ = ["PERIOD_FILE", "REPORT_FILE", "build_report"]

logger = logging.getLogger(__name__)

#: Name of the page in the output folder.
REPORT_FILE = "report.html"
#: Revenue and customers by segment per period, written when transactions are given.
PERIOD_FILE = "segments_by_period.csv"
#: Groups shown one table each; the others are counted in a note.
MAX_GROUPS = 12
#: Periods shown in the period table (the latest ones); the figure shows them all.
MAX_PERIODS = 24
#: Columns of the segmentation comparison shown in the report, when present.
COMPARISON_COLUMNS = (
    "rank", "n_segments", "buy_again_auc", "spend_variance_explained", "top_revenue_capture",
    "best_segment_lift", "silhouette", "stability_ari_mean", "smallest_segment_share",
)  # fmt: skip

_UNITS = {"D": "days", "W": "weeks", "M": "months"}
_LABELS = {
    "customers": "Customers",
    "customer_share": "Share of customers",
    "revenue": "Revenue",
    "revenue_share": "Share of revenue",
    "cumulative_customer_share": "Cumulative customers",
    "cumulative_revenue_share": "Cumulative revenue",
    "top20_revenue_share": "Revenue from top 20%",
    "mean_probability_alive": "Mean P(alive)",
    "mean_probability_no_purchase": "Mean P(no purchase)",
    "expected_purchases": "Expected purchases",
    "expected_purchases_lower": "Purchases, lower",
    "expected_purchases_upper": "Purchases, upper",
    "clv": "CLV",
    "clv_lower": "CLV, lower",
    "clv_upper": "CLV, upper",
    "mean_clv": "Mean CLV",
    "action": "Action",
    "action_channel": "Channel",
    "orders": "Orders",
}
_KINDS = {
    "customers": "int", "orders": "int", "n_segments": "int", "rank": "int", "rows": "int",
    "customer_share": "pct", "revenue_share": "pct", "cumulative_customer_share": "pct",
    "cumulative_revenue_share": "pct", "top20_revenue_share": "pct",
    "smallest_segment_share": "pct", "largest_segment_share": "pct",
    "mean_probability_alive": "prob", "mean_probability_no_purchase": "prob",
    "revenue": "money", "clv": "money", "clv_lower": "money", "clv_upper": "money",
    "mean_clv": "money", "expected_purchases": "num1", "expected_purchases_lower": "num1",
    "expected_purchases_upper": "num1",
}  # fmt: skip


def _unit(freq: object) -> str:
    """The plural time unit of a pandas frequency code ("periods" when unknown or missing)."""
    return _UNITS.get(freq, "periods") if isinstance(freq, str) else "periods"


def _fmt(value: Any, kind: str = "num") -> str:
    """Text of one number for a table cell ("" for missing values)."""
    if value is None or isinstance(value, str):
        return "" if value is None else value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return ""
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if kind == "int":
        return f"{number:,.0f}"
    if kind == "pct":
        return f"{number:.1%}"
    if kind == "prob":
        return f"{number:.3f}"
    if kind in ("money", "num1"):
        return f"{number:,.{2 if kind == 'money' else 1}f}"
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    return f"{number:.3g}" if abs(number) < 0.01 and number != 0 else f"{number:.3f}"


def _table(
    frame: pd.DataFrame,
    *,
    index_label: str | None = None,
    kinds: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A frame as header and rows of (text, is_number) cells for the template."""
    kinds = {**_KINDS, **(kinds or {})}
    labels = {**_LABELS, **(labels or {})}
    columns = [index_label or str(frame.index.name or "")]
    columns += [labels.get(str(c), str(c).replace("_", " ")) for c in frame.columns]
    rows = []
    for key, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        cells = [(str(key), False)]
        for name, value in zip(frame.columns, row, strict=True):
            numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                value, (bool, np.bool_)
            )
            cells.append((_fmt(value, kinds.get(str(name), "num")), numeric))
        rows.append(cells)
    return {"columns": columns, "rows": rows}


def _data_uri(content: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


def _svg(fig: Figure) -> str:
    """A figure as an SVG data URI (vector, small, no external fonts: text as paths)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return _data_uri(buffer.getvalue(), "image/svg+xml")


def _image(path: Path) -> str:
    mime = "image/svg+xml" if path.suffix.lower() == ".svg" else "image/png"
    return _data_uri(path.read_bytes(), mime)


def _figure(uri: str, alt: str, caption: str | None = None) -> dict[str, str]:
    return {"uri": uri, "alt": alt, "caption": caption or ""}


class _Folder:
    """The output folder, read leniently: problems become notes, not exceptions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.notes: list[str] = []

    def file(self, *names: str) -> Path | None:
        for name in names:
            candidate = self.path / name
            if candidate.is_file():
                return candidate
        return None

    def read(self, reader: Callable[[Path], Any], *names: str) -> Any:
        path = self.file(*names)
        if path is None:
            return None
        try:
            return reader(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.notes.append(
                f"{path.name} could not be read ({message}); its section is left out."
            )
            logger.warning("report: %s could not be read: %s", path, exc)
            return None


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _read_csv_indexed(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, index_col=0)


#: The prediction columns the report reads (with the index keys: customer, group)
REPORT_COLUMNS = (
    "customer_id", "total_spend", "segment", "cluster_name", "R", "F", "M", "FM",
    "probability_alive", "probability_no_purchase", "action", "action_channel",
    *(f"{c}{side}" for c in INTERVAL_COLUMNS for side in ("", "_lower", "_upper")),
)  # fmt: skip


def _report_predictions(path: Path) -> pd.DataFrame:
    """The report's columns of a predictions.parquet, text as categoricals.

    At 3.4M customers this holds about a tenth of the memory of the whole table.
    """
    pred = read_predictions(path, REPORT_COLUMNS, text_as_category=True)
    for score in ("R", "F", "M", "FM"):  # scores 1..n: one byte each
        if score in pred.columns and pd.api.types.is_integer_dtype(pred[score].dtype):
            pred[score] = pd.to_numeric(pred[score], downcast="integer")
    return pred


def _predictions(folder: _Folder) -> pd.DataFrame | None:
    if folder.file("predictions.parquet"):
        return folder.read(_report_predictions, "predictions.parquet")
    return folder.read(pd.read_csv, "predictions.csv")


def _scheme(folder: _Folder, meta: Mapping[str, Any]) -> Scheme | None:
    """The rule scheme of the scoring: saved with the model, else named in the metadata."""
    candidates = [folder.path / "model" / "rule_segmenter.json"]
    model_dir = (meta.get("fingerprints") or {}).get("model_dir")
    if model_dir:
        candidates.append(Path(model_dir) / "rule_segmenter.json")
    for path in candidates:
        if path.is_file():
            try:
                data = _read_json(path)
                return Scheme.from_dict(data["scheme"], source=str(path))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                folder.notes.append(f"{path.name}: the rule scheme could not be read ({exc}).")
    name = (meta.get("scoring") or {}).get("scheme")
    if name in builtin_schemes():
        return load_scheme(name)
    return None


def _group_column(predictions: pd.DataFrame, meta: Mapping[str, Any]) -> str | None:
    index = [k for k in meta.get("index", []) if k != "customer_id"]
    if not index:
        index = [n for n in predictions.index.names if n not in (None, "customer_id")]
    return index[0] if index and index[0] in predictions.columns else None


def _interval_totals(pred: pd.DataFrame, meta: Mapping[str, Any]) -> pd.DataFrame | None:
    """Totals from joint parameter draws recorded by ``score_customers(interval=...)``, if any."""
    scoring = meta.get("scoring") or pred.attrs or {}
    intervals = scoring.get("intervals") if isinstance(scoring, Mapping) else None
    if not isinstance(intervals, Mapping) or not intervals.get("totals"):
        return None
    totals = pd.DataFrame(intervals["totals"])
    return totals.set_index("segment") if "segment" in totals.columns else None


def _headline(pred: pd.DataFrame, meta: Mapping[str, Any]) -> list[dict[str, str]]:
    scoring = meta.get("scoring") or pred.attrs or {}
    joint = _interval_totals(pred, meta)
    horizon, freq = scoring.get("horizon"), scoring.get("freq")
    unit = _unit(freq)
    span = f"next {horizon} {unit}" if horizon is not None else "over the scoring horizon"
    n_customers = pred["customer_id"].nunique()
    cards = [
        {"label": "Customers", "value": _fmt(n_customers, "int"),
         "note": f"{len(pred):,} scored rows" if n_customers != len(pred) else "scored"},
        {"label": "Revenue to date", "value": _fmt(pred["total_spend"].sum(), "money"),
         "note": f"top 20% of customers: {_fmt(top_share(pred['total_spend']), 'pct')}"},
    ]  # fmt: skip
    for column, label, kind in (
        ("expected_purchases", "Predicted purchases", "num1"),
        ("clv", "Predicted CLV", "money"),
    ):
        if column not in pred.columns:
            continue
        note = span
        lower, upper = f"{column}_lower", f"{column}_upper"
        if joint is not None and "all" in joint.index and lower in joint.columns:
            level = scoring.get("intervals", {}).get("interval")
            pct = f"{level:.0%} " if isinstance(level, int | float) else ""
            note = (
                f"{span}; {pct}interval {_fmt(joint.at['all', lower], kind)} to "
                f"{_fmt(joint.at['all', upper], kind)} (joint parameter draws)"
            )
        elif lower in pred.columns and upper in pred.columns:
            note = (
                f"{span}; interval {_fmt(pred[lower].sum(), kind)} to "
                f"{_fmt(pred[upper].sum(), kind)} (sum of customer bounds)"
            )
        cards.append({"label": label, "value": _fmt(pred[column].sum(), kind), "note": note})
    if "probability_alive" in pred.columns:
        cards.append({"label": "Mean P(alive)", "value": _fmt(pred["probability_alive"].mean(),
                      "prob"), "note": "share of customers still active, expected"})  # fmt: skip
    if "probability_no_purchase" in pred.columns:
        cards.append({"label": "Mean P(no purchase)",
                      "value": _fmt(pred["probability_no_purchase"].mean(), "prob"),
                      "note": span})  # fmt: skip
    return cards


def _segment_table(summary: pd.DataFrame, label: str = "Segment") -> dict[str, Any]:
    """The segment table as shown: channel before the (long) action text."""
    shown = [c for c in summary.columns if c not in ("top20_revenue_share", "action")]
    shown += ["action"] if "action" in summary.columns else []
    return _table(summary[shown], index_label=label)


def _segment_section(
    pred: pd.DataFrame, by: str, figures: bool = True, joint: pd.DataFrame | None = None
) -> dict[str, Any]:
    summary = segment_summary(pred, by=by)
    if joint is not None:  # joint-draw totals replace sums of customer bounds
        for column in joint.columns:
            if column.endswith(("_lower", "_upper")) and column in summary.columns:
                summary[column] = joint[column].reindex(summary.index).to_numpy(dtype=float)
    label = "Segment" if by == "segment" else "Cluster"
    section: dict[str, Any] = {"table": _segment_table(summary, label)}
    if figures and summary["revenue"].sum() > 0:
        fig = plot_revenue_concentration(pred["total_spend"])
        section["figure"] = _figure(
            _svg(fig),
            "Cumulative share of revenue against share of customers, biggest spenders first; "
            f"the top 20% of customers bring {_fmt(top_share(pred['total_spend']), 'pct')} "
            "of revenue.",
        )
    return section


def _grid_section(pred: pd.DataFrame, scheme: Scheme | None) -> dict[str, Any]:
    if scheme is None:
        return {"absent": "The rule scheme of this scoring is unknown (no model/rule_segmenter"
                ".json and no built-in scheme named in predictions.meta.json)."}  # fmt: skip
    if len(scheme.axes) != 2:
        return {"absent": f"The scheme {scheme.name!r} uses {len(scheme.axes)} score axes "
                f"{scheme.axes}; the grid needs two."}  # fmt: skip
    try:
        cells = grid_cells(pred, scheme)
    except DataError as exc:
        return {"absent": f"No grid: {exc}"}
    biggest = max(int(cells["customers"].max()), 1)
    rows = []
    for score, block in cells.groupby("row_score", sort=False):
        row = []
        for cell in block.itertuples(index=False):
            row.append(
                {
                    "segment": cell.segment,
                    "customers": _fmt(cell.customers, "int"),
                    "mean_spend": _fmt(cell.mean_spend, "money") or "–",
                    "mean_clv": _fmt(getattr(cell, "mean_clv", float("nan")), "money"),
                    "shade": f"{0.08 + 0.72 * cell.customers / biggest:.2f}",
                    "dark": cell.customers / biggest > 0.55,
                }
            )
        rows.append({"score": int(score), "cells": row})
    columns = [int(c) for c in cells["column_score"].unique()]
    return {
        "scheme": scheme.name,
        "description": scheme.description.rstrip("."),
        "n_scores": scheme.n_scores,
        "row_key": cells.attrs["row_key"],
        "column_key": cells.attrs["column_key"],
        "columns": columns,
        "rows": rows,
        "has_clv": "mean_clv" in cells.columns,
    }


def _groups_section(pred: pd.DataFrame, group: str) -> dict[str, Any]:
    codes, names = label_codes(pred[group])
    revenue = (
        pd.Series(pred["total_spend"].to_numpy(dtype=float), index=pd.Index(codes))
        .groupby(level=0)
        .sum()
    )
    revenue.index = names[revenue.index.to_numpy()]
    revenue = revenue.sort_index().sort_values(ascending=False)  # ties: by name
    shown = list(revenue.index[:MAX_GROUPS])
    blocks = []
    for name in shown:
        part = pred.loc[codes == names.get_loc(name)]
        blocks.append(
            {
                "name": name,
                "customers": _fmt(len(part), "int"),
                "revenue": _fmt(part["total_spend"].sum(), "money"),
                "table": _segment_table(segment_summary(part)),
            }
        )
    hidden = len(revenue) - len(shown)
    note = (
        f"The {MAX_GROUPS} groups with the most revenue are shown; {hidden} smaller group(s) "
        "are in predictions.csv."
        if hidden
        else ""
    )
    return {"column": group, "blocks": blocks, "note": note}


def _by_size(labels: pd.Series) -> list[str]:
    """The labels as text, most frequent first (``labels.astype(str).value_counts()``'s order)."""
    codes, names = label_codes(labels)
    counts = pd.Series(np.bincount(codes, minlength=len(names)), index=names)
    return counts.sort_values(ascending=False).index.tolist()


def _periods_section(folder: _Folder, pred: pd.DataFrame | None) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    periods = folder.read(pd.read_csv, PERIOD_FILE)
    if periods is not None and len(periods) == 0:
        folder.notes.append(f"{PERIOD_FILE} is empty: no purchase matched a scored customer.")
    elif periods is not None and {"period", "segment", "customers"} <= set(periods.columns):
        periods["period"] = periods["period"].astype(str)
        latest = sorted(periods["period"].unique())[-MAX_PERIODS:]
        measures = [m for m in ("revenue", "customers") if m in periods.columns]
        order = (
            _by_size(pred["segment"])
            if pred is not None and "segment" in pred.columns
            else sorted(periods["segment"].astype(str).unique())
        )
        tables = []
        for measure in measures:
            wide = periods.loc[periods["period"].isin(latest)].pivot_table(
                index="period", columns="segment", values=measure, aggfunc="sum", fill_value=0
            )
            wide = wide[[s for s in order if s in wide.columns]]
            wide["Total"] = wide.sum(axis=1)
            kind = "money" if measure == "revenue" else "int"
            tables.append(
                {
                    "title": f"{measure.capitalize()} by segment per month",
                    "table": _table(wide, index_label="Month",
                                    kinds=dict.fromkeys(wide.columns, kind)),
                }
            )  # fmt: skip
        fig = plot_segment_periods(periods)
        blocks.append(
            {
                "title": "Reports over periods",
                "text": "Each purchase counts for the segment its customer holds now, so the "
                "rows show how today's segments bought month by month.",
                "tables": tables,
                "figure": _figure(_svg(fig), "Stacked bars of revenue and buying customers per "
                                  "month, one colour per current segment."),
            }
        )  # fmt: skip
    history = folder.read(_read_any, "segment_history.parquet", "segment_history.csv")
    if history is not None and len(history):
        try:
            counts = history_by_period(history)
        except DataError as exc:
            folder.notes.append(f"segment_history: {exc}")
        else:
            wide = counts.pivot_table(
                index="period", columns="segment", values="customers", aggfunc="sum", fill_value=0
            ).sort_index()
            blocks.append(
                {
                    "title": "Segment history",
                    "text": "Customers in each segment at each stored date.",
                    "tables": [{"title": "Customers by segment and date",
                                "table": _table(wide.tail(MAX_PERIODS), index_label="Date",
                                                kinds=dict.fromkeys(wide.columns, "int"))}],
                    "figure": _figure(
                        _svg(plot_segment_periods(counts)),
                        "Stacked bars of customers per segment at each stored date.",
                    ),
                }
            )  # fmt: skip
    if not blocks:
        return {"absent": f"No {PERIOD_FILE} or segment history in this folder: the page is "
                "rebuilt from files only, and the transactions were not passed when it was "
                "built."}  # fmt: skip
    return {"blocks": blocks}


def _read_any(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _migration_section(folder: _Folder) -> dict[str, Any]:
    section: dict[str, Any] = {}
    counts = folder.read(_read_csv_indexed, "transitions_counts.csv")
    if counts is not None:
        counts = counts.loc[counts.sum(axis=1) > 0] if len(counts) else counts
        section["matrix"] = _table(counts, index_label="From \\ to",
                                   kinds=dict.fromkeys(counts.columns, "int"))  # fmt: skip
        stayed = sum(int(counts.loc[s, s]) for s in counts.index if s in counts.columns)
        total = int(counts.to_numpy().sum())
        section["summary"] = (
            f"{total:,} customers followed; {stayed:,} ({stayed / total:.1%}) kept their segment."
            if total
            else ""
        )
    png = folder.file("transition_matrix.png", "transition_matrix.svg")
    if png is not None:
        section["figure"] = _figure(
            _image(png), "Heatmap of the share of each segment's customers moving to each "
            "segment between the two snapshot dates."
        )  # fmt: skip
    changes = folder.path / "changes"
    if changes.is_dir():
        rows: dict[str, dict[str, int]] = {}
        for kind in ("entered", "left"):
            for path in sorted(changes.glob(f"{kind}_*.csv")):
                try:
                    n = len(pd.read_csv(path))
                except (OSError, ValueError) as exc:
                    folder.notes.append(f"{path.name} could not be read ({exc}).")
                    continue
                name = path.stem.removeprefix(f"{kind}_")
                rows.setdefault(name, {"entered": 0, "left": 0})[kind] = n
        if rows:
            frame = pd.DataFrame.from_dict(rows, orient="index")[["entered", "left"]]
            frame["net"] = frame["entered"] - frame["left"]
            section["changes"] = _table(
                frame, index_label="Segment list", kinds={"entered": "int", "left": "int",
                                                          "net": "int"})  # fmt: skip
    if not section:
        section["absent"] = ("No migration data in this folder (transitions_counts.csv comes "
                             "with rfmml run; changes/ appears when an earlier predictions "
                             "file is given).")  # fmt: skip
    return section


#: Holdout metrics on which the scoring model is set against the naive baseline.
_BASELINE_METRICS = ("purchases_mae", "purchases_rmse", "total_purchases_error",
                     "buy_again_auc", "buy_again_brier")  # fmt: skip


def _label(comparison: pd.DataFrame, name: Any) -> str:
    if "label" in comparison.columns and isinstance(comparison.at[name, "label"], str):
        return str(comparison.at[name, "label"])
    return str(name)


def model_cautions(comparison: pd.DataFrame) -> list[str]:
    """Plain sentences a planner should read before trusting the model columns.

    From a run's ``model_comparison.csv``: a degenerate scoring model (its
    parameters ran to the edge of their range), other degenerate models, and
    the holdout metrics on which the naive baseline did better than the
    scoring model. Empty when there is nothing to say or the table lacks the
    columns (``chosen``, ``degenerate``, the metrics).
    """
    cautions: list[str] = []
    if "chosen" not in comparison.columns:
        return cautions
    chosen_rows = comparison.index[comparison["chosen"].astype(str).str.lower() == "true"]
    if len(chosen_rows) != 1:
        return cautions
    chosen = chosen_rows[0]
    label = _label(comparison, chosen)
    if "degenerate" in comparison.columns:
        flagged = comparison["degenerate"].fillna("").astype(str).str.strip()
        if flagged[chosen]:
            cautions.append(
                f"The scoring model, {label}, is a degenerate fit: {flagged[chosen]} ran to the "
                "edge of their range, so its P(alive), churn and intervals rest on a boundary "
                "solution; try a penalizer, another purchase model or a coarser freq before "
                "acting on them."
            )
        others = [f"{_label(comparison, n)} ({flagged[n]})" for n in comparison.index
                  if n != chosen and n != "baseline" and flagged[n]]  # fmt: skip
        if others:
            cautions.append("Also degenerate: " + ", ".join(others) + ".")
    if "baseline" in comparison.index:
        worse = []
        for metric in _BASELINE_METRICS:
            if metric not in comparison.columns:
                continue
            model_value = pd.to_numeric(comparison.at[chosen, metric], errors="coerce")
            base_value = pd.to_numeric(comparison.at["baseline", metric], errors="coerce")
            if not (np.isfinite(model_value) and np.isfinite(base_value)):
                continue
            better = base_value > model_value if MODEL_METRICS[metric] == "higher" else (
                base_value < model_value)  # fmt: skip
            if better:
                worse.append(f"{metric} ({_fmt(base_value)} against {_fmt(model_value)})")
        if worse:
            cautions.append(
                "The naive baseline (calibration rate carried forward) did better than "
                f"{label} on the holdout on " + ", ".join(worse) + "."
            )
    return cautions


def _models_section(folder: _Folder) -> dict[str, Any]:
    section: dict[str, Any] = {}
    comparison = folder.read(_read_csv_indexed, "model_comparison.csv")
    if comparison is not None:
        section["comparison"] = _table(comparison, index_label=str(comparison.index.name or
                                                                   "model"))  # fmt: skip
        section["cautions"] = model_cautions(comparison)
    metrics = folder.read(_read_csv_indexed, "model_metrics.csv")
    if metrics is not None:
        section["metrics"] = _table(metrics, index_label="Holdout metric")
    return _figure_or_absent(
        section,
        folder.file("tracking.svg", "tracking.png"),
        "Tracking plot: actual and predicted repeat purchases per period over calibration "
        "and holdout.",
        "No model comparison in this folder (model_metrics.csv and model_comparison.csv "
        "come with rfmml run).",
    )


def _figure_or_absent(
    section: dict[str, Any], image: Path | None, alt: str, absent: str
) -> dict[str, Any]:
    """Add the section's figure (when its file exists), or say the section is absent."""
    if image is not None:
        section["figure"] = _figure(_image(image), alt)
    if not section:
        section["absent"] = absent
    return section


def _segmentations_section(folder: _Folder) -> dict[str, Any]:
    comparison = folder.read(_read_csv_indexed, "comparison.csv")
    section: dict[str, Any] = {}
    if comparison is not None:
        shown = [c for c in COMPARISON_COLUMNS if c in comparison.columns]
        section["table"] = _table(comparison[shown or list(comparison.columns)],
                                  index_label="Segmentation")  # fmt: skip
    return _figure_or_absent(
        section,
        folder.file("comparison.png", "comparison.svg"),
        "Bar charts of the holdout metrics of each segmentation, the best ranked first.",
        "No segmentation comparison in this folder (comparison.csv comes with rfmml run).",
    )


def _cleaning_section(folder: _Folder) -> dict[str, Any]:
    data = folder.read(_read_json, "cleaning_report.json")
    if not isinstance(data, dict):
        return {"absent": "No cleaning report in this folder (cleaning_report.json)."}
    rows = [("rows in", "", data.get("rows_in"))]
    for action in ("removed", "merged", "flagged"):
        for reason, n in (data.get(action) or {}).items():
            rows.append((action, reason, n))
    rows.append(("rows out", "", data.get("rows_out")))
    frame = pd.DataFrame(rows, columns=["step", "reason", "rows"]).set_index("step")
    return {"table": _table(frame, index_label="Step"), "notes": list(data.get("notes") or [])}


def _run_facts(meta: Mapping[str, Any], folder: Path) -> list[tuple[str, str]]:
    scoring = meta.get("scoring") or {}
    prints = meta.get("fingerprints") or {}
    facts = [("Output folder", str(folder.resolve()))]
    for label, value in (
        ("Observation end", str(scoring.get("observation_end", ""))[:10]),
        ("Scored", str(meta.get("created", ""))),
        ("Horizon", f"{scoring['horizon']} {_unit(scoring.get('freq'))}"
         if "horizon" in scoring else ""),
        ("Rule scheme", scoring.get("scheme") or prints.get("rule_segmentation") or ""),
        ("k-means segmentation", prints.get("kmeans_segmentation") or ""),
        ("Playbook", scoring.get("playbook") or ""),
        ("Transactions fingerprint", str(prints.get("transactions") or "")[:23]),
    ):  # fmt: skip
        if value:
            facts.append((label, str(value)))
    return facts


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("rfmml.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def build_report(
    output_dir: str | Path,
    *,
    title: str | None = None,
    transactions: pd.DataFrame | ScannedLog | None = None,
) -> Path:
    """Write ``report.html``, one self-contained page, from a run's output folder.

    The page holds the headline numbers, the R x F grid of the rule scheme, the
    segment table (also per group and per k-means cluster), revenue and customers
    by segment per month, segment migrations and entered/left counts, the model
    and segmentation comparisons and the cleaning report. Each section appears
    when its files are in the folder (see the module docstring) and says what
    is missing otherwise; an unreadable optional file is reported on the page,
    not raised. Figures are embedded (SVG or PNG data URIs, with alt text) and
    the page loads nothing from the network, so it opens from a file or an
    MLflow artifact view.

    Parameters
    ----------
    output_dir : str or pathlib.Path
        The output folder of ``rfmml run``, ``demo`` or ``predict``.
    title : str, optional
        Page title; default "rfmml report: <folder name>".
    transactions : pandas.DataFrame or ScannedLog, optional
        The run's canonical transactions. When given, revenue and customers by
        segment per month are computed (inside DuckDB for a
        :class:`~rfmml.data.ScannedLog`) and saved as ``segments_by_period.csv``
        in the folder, so later rebuilds show them too.

    Returns
    -------
    pathlib.Path
        The written ``report.html``.

    Raises
    ------
    DataError
        ``output_dir`` is not a folder, or holds none of the files a run writes.
    """
    path = Path(output_dir)
    if not path.is_dir():
        raise DataError(f"build_report: {str(path)!r} is not a folder; pass a run's output folder.")
    known = ("predictions.parquet", "predictions.csv", "comparison.csv", "model_metrics.csv",
             "cleaning_report.json", "transitions_counts.csv")  # fmt: skip
    if not any((path / name).is_file() for name in known):
        raise DataError(
            f"build_report: {str(path)!r} holds none of the files of an rfmml run "
            f"({', '.join(known)}); pass the folder given to rfmml run/demo/predict --output."
        )
    folder = _Folder(path)
    meta = folder.read(_read_json, "predictions.meta.json") or {}
    pred = _predictions(folder)
    if pred is not None and "customer_id" in pred.columns and "total_spend" not in pred.columns:
        folder.notes.append(
            "The predictions have no total_spend (a log without amounts): the headline, revenue "
            "and segment tables, which report spend, are left out."
        )
        pred = None
    elif pred is not None and "customer_id" not in pred.columns:
        folder.notes.append("The predictions lack customer_id; they are left out.")
        pred = None
    if pred is not None and transactions is not None and "segment" in pred.columns:
        periods = segments_by_period(transactions, pred)
        with replacing(path / PERIOD_FILE) as temporary:
            periods.to_csv(temporary, index=False)

    context: dict[str, Any] = {
        "title": title or f"rfmml report: {path.resolve().name}",
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": rfmml.__version__,
        "facts": _run_facts(meta, path),
        "headline": None,
        "grid": None,
        "segments": None,
        "clusters": None,
        "groups": None,
    }
    absent_predictions = (
        "No predictions in this folder (predictions.parquet or predictions.csv), so no "
        "headline numbers or segment tables."
    )
    context["absent_predictions"] = absent_predictions
    if pred is not None:
        context["headline"] = _headline(pred, meta)
        if "segment" in pred.columns:
            context["grid"] = _grid_section(pred, _scheme(folder, meta))
            context["segments"] = _segment_section(
                pred, "segment", joint=_interval_totals(pred, meta)
            )
            group = _group_column(pred, meta)
            if group is not None:
                context["groups"] = _groups_section(pred, group)
        if "cluster_name" in pred.columns:
            context["clusters"] = _segment_section(pred, "cluster_name", figures=False)
    context["periods"] = _periods_section(folder, pred)
    context["migration"] = _migration_section(folder)
    context["models"] = _models_section(folder)
    context["cautions"] = context["models"].get("cautions", [])
    context["segmentations"] = _segmentations_section(folder)
    context["cleaning"] = _cleaning_section(folder)
    context["notes"] = folder.notes
    html = _environment().get_template("report.html.j2").render(**context)
    target = path / REPORT_FILE
    with replacing(target) as temporary:  # an interrupted build keeps the previous report
        temporary.write_text(html, encoding="utf-8")
    return target
