"""The report's tables, computed from a run's predictions and transactions.

Pure functions from frames to frames; :mod:`rfmml.report.build` formats and renders
them. Columns that later scoring adds are picked up by name when present:
``probability_no_purchase`` and ``<column>_lower`` / ``<column>_upper`` interval
bounds of ``expected_purchases`` and ``clv``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rfmml.data import ScannedLog
from rfmml.errors import DataError
from rfmml.segments import Scheme

__all__ = [
    "INTERVAL_COLUMNS",
    "grid_cells",
    "history_by_period",
    "label_codes",
    "segment_summary",
    "segments_by_period",
    "top_share",
]

#: Prediction columns whose ``_lower`` / ``_upper`` bounds the report shows when present.
INTERVAL_COLUMNS = ("expected_purchases", "clv")

#: Date columns a segment history may carry, in order of preference.
HISTORY_DATE_COLUMNS = ("as_of", "snapshot", "period", "valid_from", "date")


def _require(frame: pd.DataFrame, columns: list[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{where}: missing column(s) {missing}; available columns are "
            f"{list(map(str, frame.columns))}."
        )


def top_share(spend: pd.Series, top: float = 0.2) -> float:
    """Share of revenue brought by the ``top`` fraction of customers (the 80/20 check).

    ``ceil(top * n)`` customers with the highest spend are counted; ``NaN`` when
    total spend is 0 or there are no customers.

    Parameters
    ----------
    spend : pandas.Series
        Revenue per customer.
    top : float, default=0.2
        Fraction of customers in (0, 1].

    Returns
    -------
    float
    """
    values = pd.to_numeric(spend, errors="coerce").fillna(0.0).to_numpy(dtype=float)
    total = values.sum()
    if len(values) == 0 or total <= 0:
        return float("nan")
    n_top = math.ceil(top * len(values))
    return float(np.sort(values)[::-1][:n_top].sum() / total)


def segment_summary(predictions: pd.DataFrame, by: str = "segment") -> pd.DataFrame:
    r"""One row per segment: size, revenue and its concentration, predictions and action.

    With :math:`n_s` customers and revenue :math:`v_s = \sum_{i \in s}` ``total_spend``
    in segment :math:`s`, ``customer_share`` is :math:`n_s / \sum n` and
    ``revenue_share`` :math:`v_s / \sum v`. Rows are sorted by revenue, largest
    first, so ``cumulative_customer_share`` and ``cumulative_revenue_share`` read as
    "these segments, x% of customers, bring y% of revenue". ``top20_revenue_share``
    is the share of the segment's revenue from its top 20% of customers.

    Prediction columns present in ``predictions`` are added: ``mean_probability_alive``,
    ``mean_probability_no_purchase``, ``expected_purchases`` (sum), ``clv`` (sum) and
    ``mean_clv``, and the sums of ``<column>_lower`` / ``<column>_upper`` for the
    columns of :data:`INTERVAL_COLUMNS`; ``action`` and ``action_channel`` from the
    playbook when every segment has one (not for k-means clusters, whose customers
    come from several rule segments).

    Parameters
    ----------
    predictions : pandas.DataFrame
        A predictions table (:func:`rfmml.campaign.score_customers`) with ``by``
        and ``total_spend``.
    by : str, default="segment"
        Label column (``"segment"`` or ``"cluster_name"``).

    Returns
    -------
    pandas.DataFrame
        Indexed by segment name.

    Raises
    ------
    DataError
        Missing ``by`` or ``total_spend`` column.
    """
    _require(predictions, [by, "total_spend"], "segment_summary")
    frame = predictions.reset_index(drop=True)
    labels, names = label_codes(frame[by])
    spend = frame["total_spend"].astype(float)
    grouped = spend.groupby(labels, sort=False)
    table = pd.DataFrame({"customers": grouped.size(), "revenue": grouped.sum()})
    table["customer_share"] = table["customers"] / table["customers"].sum()
    total = table["revenue"].sum()
    table["revenue_share"] = table["revenue"] / total if total > 0 else np.nan
    table = table.sort_values(["revenue", "customers"], ascending=False, kind="stable")
    table["cumulative_customer_share"] = table["customer_share"].cumsum()
    table["cumulative_revenue_share"] = table["revenue_share"].cumsum()
    table["top20_revenue_share"] = grouped.apply(top_share).reindex(table.index)
    means = {"probability_alive": "mean_probability_alive",
             "probability_no_purchase": "mean_probability_no_purchase"}  # fmt: skip
    for column, name in means.items():
        if column in frame.columns:
            table[name] = frame[column].astype(float).groupby(labels).mean()
    for column in INTERVAL_COLUMNS:
        if column not in frame.columns:
            continue
        table[column] = frame[column].astype(float).groupby(labels).sum()
        for side in ("lower", "upper"):
            bound = f"{column}_{side}"
            if bound in frame.columns:
                table[bound] = frame[bound].astype(float).groupby(labels).sum()
    if "clv" in frame.columns:
        table["mean_clv"] = table["clv"] / table["customers"]
    for column in ("action", "action_channel"):
        if column in frame.columns:
            codes, texts = label_codes(frame[column])
            values = pd.Series(codes).groupby(labels)
            if (values.nunique() == 1).all():  # one playbook entry per label
                first = values.first()
                table[column] = pd.Series(texts[first.to_numpy()], index=first.index)
    table.index = pd.Index(names[table.index.to_numpy()], name=by)
    return table


def label_codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Labels as text, factorised: codes in order of first appearance and their texts.

    ``texts[codes]`` equals ``values.astype(str)``; a categorical column is
    factorised through its integer codes, so no text is built per row.

    Returns
    -------
    codes : numpy.ndarray of int
    texts : pandas.Index of str
    """
    if isinstance(values.dtype, pd.CategoricalDtype) and not values.isna().any():
        codes, uniques = pd.factorize(values)
        texts = pd.Index(np.asarray(uniques.astype(str)), dtype=str)
    else:
        codes, uniques = pd.factorize(values.astype(str))
        texts = pd.Index(uniques, dtype=str)
    return codes, texts


def grid_cells(predictions: pd.DataFrame, scheme: Scheme) -> pd.DataFrame:
    """Customers, mean spend and mean CLV on every cell of a two-axis rule scheme.

    The ``FM`` axis of ``rfm11``-like schemes is recomputed from ``F`` and ``M`` as
    :class:`~rfmml.segments.RFMScorer` defines it, ``(F + M + 1) // 2``.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Predictions with the scheme's score columns (``R``, ``F``, ``M``) and
        ``total_spend``.
    scheme : Scheme
        A scheme with two axes (``R`` x ``F`` or ``R`` x ``FM``).

    Returns
    -------
    pandas.DataFrame
        One row per cell, highest row score first: ``row_score``, ``column_score``,
        ``segment`` (the scheme's name of the cell), ``customers``, ``mean_spend``
        and, with a ``clv`` column, ``mean_clv`` (``NaN`` in empty cells).

    Raises
    ------
    ConfigError
        The scheme does not have two axes.
    DataError
        Missing score or spend columns.
    """
    grid = scheme.grid()
    row_key, col_key = scheme.axes
    scores = predictions.reset_index(drop=True)
    if "FM" in (row_key, col_key) and "FM" not in scores.columns:
        _require(scores, ["F", "M"], "grid_cells")
        scores = scores.assign(FM=(scores["F"].astype(int) + scores["M"].astype(int) + 1) // 2)
    _require(scores, [row_key, col_key, "total_spend"], "grid_cells")
    keys = [_integers(scores[row_key]), _integers(scores[col_key])]
    grouped = scores.groupby(keys)
    counts = grouped.size()
    spend = grouped["total_spend"].mean()
    clv = grouped["clv"].mean() if "clv" in scores.columns else None
    rows = []
    for r in grid.index:
        for c in grid.columns:
            key = (int(r), int(c))
            rows.append(
                {
                    "row_score": int(r),
                    "column_score": int(c),
                    "segment": str(grid.loc[r, c]),
                    "customers": int(counts.get(key, 0)),
                    "mean_spend": float(spend.get(key, np.nan)),
                    **({"mean_clv": float(clv.get(key, np.nan))} if clv is not None else {}),
                }
            )
    cells = pd.DataFrame(rows)
    cells = cells.sort_values(["row_score", "column_score"], ascending=[False, True])
    cells.attrs = {"row_key": row_key, "column_key": col_key}
    return cells.reset_index(drop=True)


def _integers(values: pd.Series) -> pd.Series:
    """Integer scores as they are (no int64 copy of small ints), others as ``int``."""
    return values if pd.api.types.is_integer_dtype(values.dtype) else values.astype(int)


def segments_by_period(
    transactions: pd.DataFrame | ScannedLog,
    predictions: pd.DataFrame,
    *,
    by: str = "segment",
    freq: str = "M",
) -> pd.DataFrame:
    """Revenue and buying customers per period, by each customer's current segment.

    Every transaction is attributed to the segment its customer holds in
    ``predictions`` (the latest scoring), so the table answers "how much did
    today's Champions buy in each month". With a group column (channel, country)
    in the predictions' index, customers are matched on customer and group.

    Parameters
    ----------
    transactions : pandas.DataFrame or ScannedLog
        Canonical transactions (``customer_id``, ``timestamp``, ``amount``). A
        :class:`~rfmml.data.ScannedLog` is joined and grouped inside DuckDB
        for monthly periods (the log never comes to pandas; revenue sums may
        differ from the pandas path's in the last bits of a float).
    predictions : pandas.DataFrame
        Predictions with ``customer_id``, ``by`` and any group key column.
    by : str, default="segment"
        Label column.
    freq : str, default="M"
        pandas period alias of the periods (``"M"`` months, ``"Q"`` quarters).

    Returns
    -------
    pandas.DataFrame
        ``period`` (text such as ``"1997-03"``), ``by``, ``customers`` (distinct
        buyers in the period), ``revenue``, ``orders``; transactions of customers
        absent from ``predictions`` are left out.

    Raises
    ------
    DataError
        Missing columns.
    """
    if isinstance(transactions, ScannedLog):
        table = _segments_by_period_duckdb(transactions, predictions, by, freq)
        if table is not None:
            return table
        transactions = transactions.to_pandas()
    _require(transactions, ["customer_id", "timestamp"], "segments_by_period")
    keys = [n for n in predictions.index.names if n is not None and n in predictions.columns]
    keys = keys or ["customer_id"]
    _require(predictions, [*keys, by], "segments_by_period")
    keys = [k for k in keys if k in transactions.columns]
    labels = predictions.reset_index(drop=True)[[*keys, by]]
    tx = transactions[[*keys, "timestamp", *(["amount"] if "amount" in transactions else [])]]
    for key in keys:
        if labels[key].dtype != tx[key].dtype:
            labels = labels.assign(**{key: labels[key].astype(str)})
            tx = tx.assign(**{key: tx[key].astype(str)})
    merged = tx.merge(labels.drop_duplicates(keys), on=keys, how="inner")
    stamps = pd.to_datetime(merged["timestamp"])
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_localize(None)
    merged["period"] = stamps.dt.to_period(freq).astype(str)
    merged[by] = merged[by].astype(str)
    grouped = merged.groupby(["period", by], sort=True)
    out = grouped["customer_id"].nunique().rename("customers").to_frame()
    if "amount" in merged.columns:
        out["revenue"] = grouped["amount"].sum()
    out["orders"] = grouped.size()
    return out.reset_index()


def history_by_period(history: pd.DataFrame, *, by: str = "segment") -> pd.DataFrame:
    """Customers per segment at each date of a segment history.

    Parameters
    ----------
    history : pandas.DataFrame
        Long table, one row per customer and date, with ``customer_id``, ``by`` and
        a date column named ``as_of``, ``snapshot``, ``period``, ``valid_from`` or
        ``date`` (the first found).

    by : str, default="segment"
        Label column.

    Returns
    -------
    pandas.DataFrame
        ``period`` (the date as text), ``by``, ``customers``.

    Raises
    ------
    DataError
        Missing columns.
    """
    date = next((c for c in HISTORY_DATE_COLUMNS if c in history.columns), None)
    if date is None:
        raise DataError(
            f"history_by_period: the history has none of the date columns "
            f"{list(HISTORY_DATE_COLUMNS)}; columns are {list(map(str, history.columns))}."
        )
    _require(history, ["customer_id", by], "history_by_period")
    frame = history.assign(**{by: history[by].astype(str)})
    stamps = pd.to_datetime(frame[date], errors="coerce")
    frame["period"] = np.where(
        stamps.notna(), stamps.dt.strftime("%Y-%m-%d"), frame[date].astype(str)
    )
    out = frame.groupby(["period", by], sort=True)["customer_id"].nunique()
    return out.rename("customers").reset_index()


_DUCKDB_KEY_TYPES = {"BIGINT": "i", "VARCHAR": "text"}


def _segments_by_period_duckdb(
    log: ScannedLog, predictions: pd.DataFrame, by: str, freq: str
) -> pd.DataFrame | None:
    """:func:`segments_by_period` of a ScannedLog in DuckDB; ``None`` where pandas must do it."""
    if freq != "M":
        return None
    columns = list(log.columns)
    _require(pd.DataFrame(columns=columns), ["customer_id", "timestamp"], "segments_by_period")
    keys = [n for n in predictions.index.names if n is not None and n in predictions.columns]
    keys = keys or ["customer_id"]
    _require(predictions, [*keys, by], "segments_by_period")
    keys = [k for k in keys if k in columns]
    types = dict(
        log.connection.sql(
            f"SELECT column_name, column_type FROM (DESCRIBE {log.table})"
        ).fetchall()
    )
    labels = predictions.reset_index(drop=True)[[*keys, by]]
    for key in keys:  # the pandas path compares dtypes; here only exact matches are taken
        kind = _DUCKDB_KEY_TYPES.get(types.get(key, ""))
        dtype = labels[key].dtype
        same = (kind == "i" and dtype == np.int64) or (
            kind == "text" and pd.api.types.is_string_dtype(dtype)
            and pd.api.types.infer_dtype(labels[key], skipna=False) == "string"
        )  # fmt: skip
        if not same:
            return None
    # labels as codes (no text per customer); a customer listed twice keeps its first row
    codes, names = label_codes(labels[by])
    labels = labels[keys].assign(_code=codes, _row=np.arange(len(labels)))
    q = [_quote(k) for k in keys]
    on = " AND ".join(f"t.{k} = l.{k}" for k in q)
    # in whole units of 1e-9 (exact integer sums): the same digits whatever order DuckDB's
    # threads add the rows in (a sum of doubles changed its last digits from run to run)
    revenue = (
        ', (sum(round(t."amount" * 1e9)::HUGEINT)::DOUBLE / 1e9) AS revenue'
        if "amount" in columns
        else ""
    )
    if _unique_keys(labels, keys):  # the usual case: no grouping of millions of labels
        first = f"SELECT {', '.join(q)}, _code FROM _labels"
    else:
        first = f"SELECT {', '.join(q)}, arg_min(_code, _row) AS _code FROM _labels GROUP BY ALL"
    sql = f"""
        WITH l AS ({first})
        SELECT strftime(month, '%Y-%m') AS period, * EXCLUDE (month) FROM (
            SELECT date_trunc('month', t."timestamp") AS month, l._code AS _code,
                   count(DISTINCT t."customer_id") AS customers{revenue}, count(*) AS orders
            FROM {log.table} AS t JOIN l ON {on}
            GROUP BY ALL)
    """  # months as timestamps, text once per group: a string per row cost 0.8 CPU s at 10M
    con = log.connection
    con.register("_labels", labels)
    try:
        out = con.sql(sql).df()
    finally:
        con.unregister("_labels")
    out.insert(1, by, names[out.pop("_code").to_numpy()])
    out["period"] = out["period"].astype(str)
    out[by] = out[by].astype(str)
    out = out.sort_values(["period", by], kind="stable", ignore_index=True)
    for column in ("customers", "orders"):
        out[column] = out[column].astype(np.int64)
    return out


def _unique_keys(labels: pd.DataFrame, keys: list[str]) -> bool:
    """Whether every row of ``labels`` has its own ``keys`` (sorted ids: one pass)."""
    if len(keys) == 1 and labels[keys[0]].dtype == np.int64:
        ids = labels[keys[0]].to_numpy()
        if len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1])):
            return True
    return not bool(labels.duplicated(subset=keys).any())


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
