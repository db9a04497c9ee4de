"""Model fits and predictions on PySpark customer summaries.

Fit: the summary is validated in Spark (one aggregation pass, the pandas
messages of :func:`rfmml.models._validation.check_summary`; the "first
customer" is the smallest violating ``customer_id``, which is the first row of
the sorted pandas summary) and collapsed in Spark to its distinct rows of the
likelihood's columns with their customer counts (``weights``). Only those rows
reach the driver: their number is bounded by the distinct ``(frequency,
recency, T)`` (or ``(frequency, monetary_value)``) values, not by the customers.
The models already fit on unique rows with weights, so the fit runs the same
arithmetic as on the pandas summary.

:func:`fit_spark_summary` fits several models on one summary: one aggregation
checks it for all of them, and the distinct rows of each set of fit columns
are collected once.

Predictions: ``mapInPandas`` evaluates the pandas method on each Arrow batch
of the Spark frame, with the fitted model shipped to the workers as its JSON
document (:func:`rfmml.models.persistence.model_to_dict`), never pickled, and
returns a Spark frame of the key columns and the prediction.

pyspark is imported inside the functions, so rfmml imports without it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from rfmml.errors import DataError
from rfmml.features._spark import frame_attrs
from rfmml.models._validation import require_summary_columns

__all__ = [
    "check_collected_repeat_buyers",
    "check_spark_summary",
    "check_spark_time_unit",
    "collapse_summary",
    "collect_rows",
    "distinct_rows",
    "fit_spark_summary",
    "partition_sums",
    "spark_predict",
    "spark_summary_errors",
]

_ID = "customer_id"


def _violation(column: str, rule: str, n_bad: int, n: int, first: Any, hint: str) -> DataError:
    return DataError(
        f"{column} must be {rule}, but {n_bad} of {n} customers violate this "
        f"(first customer_id={first!r}). {hint}"
    )


def check_spark_summary(
    sdf: Any, columns: Sequence[str], *, what: str, fitted_freq: Any = None, model: str = ""
) -> int:
    """Validate a Spark summary as :func:`check_summary` does pandas; return its rows.

    With ``fitted_freq``, also refuse a summary in another time unit (the
    ``freq`` recorded on the frame by the feature builders), as
    :func:`rfmml.models._summary_checks.check_time_unit`.

    Raises
    ------
    DataError
        The pandas path's error for the same data.
    """
    n, errors = spark_summary_errors(sdf, [(columns, what)])
    if errors[0] is not None:
        raise errors[0]
    check_spark_time_unit(sdf, n, fitted_freq, model)
    return n


def check_spark_time_unit(sdf: Any, n: int, fitted_freq: Any, model: str) -> None:
    """Refuse a Spark summary of ``n`` rows in another time unit than ``fitted_freq``.

    As :func:`rfmml.models._summary_checks.check_time_unit`: compares the
    ``freq`` recorded on the frame with ``fitted_freq`` when both are set
    (one Spark job, for the message, only when they differ).

    Raises
    ------
    DataError
        The units differ.
    """
    from pyspark.sql import functions as F

    freq = frame_attrs(sdf).get("freq")
    if freq is None or fitted_freq is None or str(freq) == str(fitted_freq):
        return
    ident = F.col(_ID) if _ID in sdf.columns else F.lit(None)
    first = sdf.agg(F.min(ident)).first()
    raise _violation(
        "T",
        f"in the time unit the {model} was fitted on ({fitted_freq!r}; this summary is in "
        f"{freq!r})",
        n,
        n,
        None if first is None else first[0],
        f"Rebuild the summary with freq={fitted_freq!r} or refit the model on this one.",
    )


def spark_summary_errors(
    sdf: Any, specs: Sequence[tuple[Sequence[str], str]]
) -> tuple[int, list[DataError | None]]:
    """The errors :func:`check_spark_summary` would raise for each of ``specs``, in one job.

    Parameters
    ----------
    sdf : pyspark.sql.DataFrame
        A customer summary.
    specs : sequence of (columns, what)
        The columns each caller reads and its name (for messages).

    Returns
    -------
    n : int
        The rows of ``sdf`` (0 when no spec reached the count).
    errors : list of DataError or None
        For each spec, the error of ``check_spark_summary(sdf, columns,
        what=what)`` (without a time unit), or None when it passes. The checks
        of every spec up to the first one with missing or non-numeric columns
        are counted in a single aggregation; the specs after that one are
        given that spec's error (a caller raising them in order never reaches
        them).
    """
    from pyspark.sql import functions as F

    structural: DataError | None = None
    conditions: dict[tuple[str, str], tuple[str, Any]] = {}
    rules: list[list[tuple[str, str]]] = []
    for columns, what in specs:
        try:
            checks = _checks(sdf, columns, what)
        except DataError as error:
            structural = error
            break
        rules.append([(column, rule) for column, rule, _, _ in checks])
        for column, rule, hint, cond in checks:
            conditions.setdefault((column, rule), (hint, cond))
    n = 0
    errors: list[DataError | None] = []
    if rules:
        ident = F.col(_ID) if _ID in sdf.columns else F.lit(None)
        keys = list(conditions)
        aggs = [F.count(F.lit(1)).alias("_n")]
        for i, key in enumerate(keys):
            cond = conditions[key][1]
            aggs += [F.count_if(cond).alias(f"_b{i}"), F.min(F.when(cond, ident)).alias(f"_f{i}")]
        row = sdf.agg(*aggs).first()
        assert row is not None  # a global aggregate has one row
        n = int(row["_n"])
        for (_, what), spec_rules in zip(specs, rules, strict=False):
            errors.append(_first_error(row, keys, conditions, spec_rules, n, what))
    errors += [structural] * (len(specs) - len(errors))
    return n, errors


def _checks(sdf: Any, columns: Sequence[str], what: str) -> list[tuple[str, str, str, Any]]:
    """The checks of :func:`check_spark_summary` on ``columns``: (column, rule, hint, condition).

    Raises
    ------
    DataError
        Missing or non-numeric columns (no Spark job).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, NumericType

    require_summary_columns(list(sdf.columns), columns, what)
    names = list(columns) + (["weights"] if "weights" in sdf.columns else [])
    for name in names:
        dtype = sdf.schema[name].dataType
        if not isinstance(dtype, NumericType) or isinstance(dtype, BooleanType):
            raise DataError(
                f"{name} must be numeric, but has dtype {dtype.simpleString()}. Convert it "
                "with pyspark.sql.functions.col(name).cast('double')."
            )
    checks: list[tuple[str, str, str, Any]] = []
    v = {n: F.col(n).cast("double") for n in names}
    for name in names:
        checks += [
            (name, "a number (not NaN)", "Fill or drop them.", v[name].isNull() | F.isnan(v[name])),
            (name, "finite", "Drop infinite values.", F.abs(v[name]) == float("inf")),
            (name, ">= 0", "Negative values are not valid here.", v[name] < 0),
        ]
    if "weights" in v:
        checks.append(("weights", "> 0", "Drop rows with no customers.", v["weights"] <= 0))
    if "frequency" in v:
        x = v["frequency"]
        checks.append(
            (
                "frequency",
                "an integer (a count of repeat purchase periods)",
                "Did you pass a rate or a mean instead of a count?",
                x != F.floor(x),
            )
        )
    if "recency" in v and "T" in v:
        checks.append(
            (
                "recency",
                "<= T",
                "Are recency and T in the same time unit and measured from the first purchase?",
                v["recency"] > v["T"],
            )
        )
    if "recency" in v and "frequency" in v:
        checks.append(
            (
                "recency",
                "0 for customers with frequency 0",
                "recency is the time from the first to the last repeat purchase.",
                (v["frequency"] == 0) & (v["recency"] != 0),
            )
        )
    return checks


def _first_error(
    row: Any,
    keys: list[tuple[str, str]],
    conditions: dict[tuple[str, str], tuple[str, Any]],
    spec_rules: list[tuple[str, str]],
    n: int,
    what: str,
) -> DataError | None:
    """The first failed check of one spec in the counts ``row`` of :func:`spark_summary_errors`."""
    if n == 0:
        return DataError(
            f"{what} got an empty summary frame (0 customers). Check the date range and "
            "filters used to build it."
        )
    for column, rule in spec_rules:
        i = keys.index((column, rule))
        if row[f"_b{i}"]:
            hint = conditions[(column, rule)][0]
            return _violation(column, rule, int(row[f"_b{i}"]), n, row[f"_f{i}"], hint)
    return None


def collapse_summary(
    sdf: Any, columns: Sequence[str], *, what: str, repeat_buyers_for: str | None = None
) -> pd.DataFrame:
    """The distinct rows of ``columns`` with their customer counts, collected from Spark.

    Parameters
    ----------
    sdf : pyspark.sql.DataFrame
        A customer summary (one row per customer; an optional ``weights``
        column counts the customers a row stands for).
    columns : sequence of str
        The columns the likelihood reads.
    what : str
        The caller, for messages.
    repeat_buyers_for : str, optional
        A model name: refuse a summary without repeat buyers, as
        :func:`rfmml.models._summary_checks.check_repeat_buyers`.

    Returns
    -------
    pandas.DataFrame
        ``columns`` and ``weights``, one row per distinct row, indexed by the
        smallest ``customer_id`` of each; ``attrs`` are the frame's (``freq``).
    """
    n = check_spark_summary(sdf, columns, what=what)
    return collect_rows(sdf, distinct_rows(sdf, columns), n, repeat_buyers_for=repeat_buyers_for)


def fit_spark_summary(estimators: Sequence[Any], sdf: Any) -> list[Any]:
    """``[e.fit(sdf) for e in estimators]``, with the Spark summary read fewer times.

    The checks of every estimator's ``fit`` are counted in one aggregation
    (:func:`spark_summary_errors`) and the distinct rows of each set of fit
    columns are collected once (:func:`collapse_summary`'s rows), then each
    estimator is fitted in turn on them, as its own ``fit`` of ``sdf`` fits
    after collapsing: the same parameters, attributes and errors, raised in
    the same order (an estimator's hyper-parameters, then its checks, then its
    fit). Gamma-Gamma keeps its own Spark fit (collected or distributed) after
    the shared checks.

    Parameters
    ----------
    estimators : sequence of MaximumLikelihoodModel
        Unfitted or fitted estimators (refitted).
    sdf : pyspark.sql.DataFrame
        A customer summary.

    Returns
    -------
    list
        The estimators, fitted.
    """
    specs = [(e.fit_columns, f"{type(e).__name__}.fit") for e in estimators]
    n, errors = spark_summary_errors(sdf, specs)
    collected: dict[tuple[str, ...], pd.DataFrame] = {}
    for estimator, error in zip(estimators, errors, strict=True):
        estimator._clear_fitted()
        estimator._check_hyper_parameters()
        if error is not None:
            raise error
        if hasattr(estimator, "_fit_spark"):  # Gamma-Gamma: collected or distributed
            estimator._fit_spark(sdf, n)
            continue
        columns = tuple(estimator.fit_columns)
        if columns not in collected:
            collected[columns] = collect_rows(sdf, distinct_rows(sdf, columns), n)
        rows = collected[columns]
        if estimator._needs_repeat_buyers:
            check_collected_repeat_buyers(rows, n, estimator.kind)
        estimator.fit(rows)
    return list(estimators)


def distinct_rows(sdf: Any, columns: Sequence[str]) -> Any:
    """The distinct rows of ``columns`` (as doubles) with ``weights`` and their smallest id, lazily.

    Returns
    -------
    pyspark.sql.DataFrame
        ``columns``, ``weights`` (customers, double) and ``customer_id`` (the
        smallest of each row; null without that column).
    """
    from pyspark.sql import functions as F

    count = (
        F.sum(F.col("weights").cast("double")) if "weights" in sdf.columns else F.count(F.lit(1))
    )
    ident = F.min(F.col(_ID)) if _ID in sdf.columns else F.lit(None)
    return sdf.groupBy(*(F.col(c).cast("double").alias(c) for c in columns)).agg(
        count.cast("double").alias("weights"), ident.alias(_ID)
    )


def collect_rows(
    sdf: Any, grouped: Any, n: int, *, repeat_buyers_for: str | None = None
) -> pd.DataFrame:
    """:func:`collapse_summary`'s collection of the rows of :func:`distinct_rows`.

    ``n`` is the number of customers (for messages).
    """
    # in customer order (the smallest id of each row): the first offending row of a
    # check on these rows holds the first offending customer of the pandas summary
    # through Arrow whatever the session's spark.sql.execution.arrow.pyspark.enabled
    # (row by row, 1.4 million distinct rows take minutes)
    rows = grouped.toArrow().to_pandas()
    if _ID in rows.columns:
        rows = rows.sort_values(_ID, kind="stable").set_index(_ID)
    if repeat_buyers_for is not None:
        check_collected_repeat_buyers(rows, n, repeat_buyers_for)
    rows.attrs = dict(frame_attrs(sdf))
    return rows


def check_collected_repeat_buyers(rows: pd.DataFrame, n: int, model: str) -> None:
    """Refuse collected rows without a repeat buyer (``n`` customers), as :func:`collect_rows`.

    Raises
    ------
    DataError
        ``frequency`` is 0 on every row.
    """
    if "frequency" in rows.columns and not (rows["frequency"] > 0).any():
        raise _violation(
            "frequency",
            f"> 0 for at least one customer to fit {model}",
            n,
            n,
            _plain(rows.index.min()),
            "With only one-time buyers the repeat-purchase rate cannot be estimated: "
            "use a longer observation period or check how frequency was computed "
            "(repeat purchases, the first one excluded).",
        )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@lru_cache(maxsize=16)
def _model(text: str) -> Any:
    """The fitted model of a JSON document, rebuilt once per worker process."""
    from rfmml.models.persistence import model_from_dict

    return model_from_dict(json.loads(text))


def spark_predict(
    model: Any,
    sdf: Any,
    method: str,
    name: str,
    columns: Sequence[str],
    **kwargs: Any,
) -> Any:
    """``model.<method>(batch, **kwargs)`` on every batch of a Spark frame, in Spark.

    Parameters
    ----------
    model : MaximumLikelihoodModel
        A fitted model.
    sdf : pyspark.sql.DataFrame
        The summary to score (validated first, as the pandas path does).
    method : str
        The prediction method (``"probability_alive"``, ...).
    name : str
        The output column.
    columns : sequence of str
        The summary columns the method reads.
    **kwargs
        Scalar arguments of the method (horizons, quantiles).

    Returns
    -------
    pyspark.sql.DataFrame
        ``customer_id`` (when present) and ``name`` (double).
    """
    from rfmml.models.persistence import model_to_dict

    check_spark_summary(
        sdf,
        columns,
        what=method,
        fitted_freq=getattr(model, "freq_", None)
        if getattr(model, "_strict_summary", False)
        else None,
        model=getattr(model, "kind", ""),
    )
    keys = [c for c in (_ID,) if c in sdf.columns]
    text = json.dumps(model_to_dict(model), allow_nan=False)
    freq = getattr(model, "freq_", None)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        fitted = _model(text)
        for batch in batches:
            frame = batch[list(columns)].astype("float64")
            frame.attrs["freq"] = freq
            values = getattr(fitted, method)(frame, **kwargs)
            out = batch[keys].copy()
            out[name] = np.asarray(values, dtype=float)
            yield out

    schema = _schema(sdf, keys, [(name, "double")])
    return sdf.select(*keys, *columns).mapInPandas(run, schema)


def _schema(sdf: Any, keys: list[str], extra: list[tuple[str, str]]) -> Any:
    from pyspark.sql.types import StructField, StructType, _parse_datatype_string

    fields = [StructField(k, sdf.schema[k].dataType, True) for k in keys]
    fields += [StructField(n, _parse_datatype_string(t), True) for n, t in extra]
    return StructType(fields)


def partition_sums(
    sdf: Any, function: Callable[..., np.ndarray], size: int, *args: Any
) -> np.ndarray:
    """``sum(function(batch, *args))`` over every Arrow batch of ``sdf``, in one Spark job.

    Each partition adds the vectors (of ``size`` floats) of its batches with
    :func:`math.fsum` and returns one row; the driver adds those few rows
    with :func:`math.fsum`, so the result does not depend on how the rows
    are split into batches beyond the rounding of each batch's own sum.

    Parameters
    ----------
    sdf : pyspark.sql.DataFrame
        Numeric columns (cached, with a few partitions, when called repeatedly).
    function : callable
        ``(pandas.DataFrame, *args) -> numpy.ndarray`` of ``size`` floats;
        importable (shipped to the workers by reference).
    size : int
        Length of the vectors.
    *args
        Plain values passed to ``function`` (pickled with the job).

    Returns
    -------
    numpy.ndarray
    """
    from pyspark.sql.types import DoubleType, StructField, StructType

    names = [f"s{i}" for i in range(size)]

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        parts: list[list[float]] = [[] for _ in range(size)]
        for batch in batches:
            if len(batch):
                for i, value in enumerate(np.asarray(function(batch, *args), dtype=float)):
                    parts[i].append(float(value))
        if parts[0]:
            yield pd.DataFrame([[math.fsum(p) for p in parts]], columns=names)

    schema = StructType([StructField(c, DoubleType(), False) for c in names])
    rows = sdf.mapInPandas(run, schema).collect()
    return np.array([math.fsum(row[i] for row in rows) for i in range(size)], dtype=float)
