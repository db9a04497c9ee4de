"""Campaign scoring of PySpark frames, inside Spark.

:func:`score_spark` is what :func:`rfmml.campaign.score_customers` runs when
the features are a Spark DataFrame. On the driver it only validates (Spark
aggregations with the pandas messages) and ships the fitted estimators to the
workers as their JSON documents; every customer is scored by ``mapInPandas``,
which runs the pandas :func:`~rfmml.campaign.score_customers` on each Arrow
batch of the features joined with the summary. Every column of that table is
a function of the customer's own row and the fitted estimators, so the Spark
table equals the pandas one row for row. The driver receives one sample row
(to derive the output schema), never the table.

:func:`write_spark_predictions` writes the table as Parquet partitioned by
segment (plus the metadata document of :func:`~rfmml.campaign.write_predictions`).

pyspark is imported inside the functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rfmml._documents import write_document
from rfmml.errors import DataError
from rfmml.features._spark import frame_attrs

__all__ = ["score_spark", "spark_schema_of", "write_spark_predictions"]

_ID = "customer_id"


@lru_cache(maxsize=8)
def _estimators(text: str) -> dict[str, Any]:
    """The fitted estimators of a JSON bundle, rebuilt once per worker process."""
    from rfmml.models.persistence import model_from_dict
    from rfmml.segments.persistence import segmenter_from_dict

    docs = json.loads(text)
    out: dict[str, Any] = {}
    for key, doc in docs.items():
        if doc is None:
            out[key] = None
        elif key in ("purchase_model", "gamma_gamma"):
            out[key] = model_from_dict(doc)
        else:
            out[key] = segmenter_from_dict(doc)
    return out


def _bundle(parts: Mapping[str, Any]) -> str:
    from rfmml.models.persistence import model_to_dict
    from rfmml.segments.persistence import segmenter_to_dict

    docs: dict[str, Any] = {}
    for key, part in parts.items():
        if part is None:
            docs[key] = None
        elif key in ("purchase_model", "gamma_gamma"):
            docs[key] = model_to_dict(part)
        else:
            docs[key] = segmenter_to_dict(part)
    return json.dumps(docs, allow_nan=False)


def spark_schema_of(table: pd.DataFrame, sdf: Any) -> Any:
    """The Spark schema of a pandas table; key columns keep their type in ``sdf``."""
    from pyspark.sql.types import (
        BooleanType,
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    fields = []
    for name in table.columns:
        dtype = table[name].dtype
        if name in sdf.columns and name == _ID:
            kind: Any = sdf.schema[name].dataType
        elif (
            isinstance(dtype, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype)
        ):
            kind = StringType()
        elif pd.api.types.is_bool_dtype(dtype):
            kind = BooleanType()
        elif pd.api.types.is_integer_dtype(dtype):
            kind = LongType()
        elif pd.api.types.is_float_dtype(dtype):
            kind = DoubleType()
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            kind = TimestampType()
        else:
            raise TypeError(f"no Spark type for column {name!r} of dtype {dtype}")
        fields.append(StructField(str(name), kind, True))
    return StructType(fields)


def _plain(table: pd.DataFrame) -> pd.DataFrame:
    out = table.reset_index(drop=True)
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def _check_alignment(features: Any, summary: Any, keys: list[str] | None = None) -> None:
    """The pandas ``_check_aligned`` messages, counted in Spark in one job (one row back).

    The keys (``customer_id`` and the group, if any) of both frames, tagged by
    side, are grouped by key once: the rows
    and ids per side give the repeated keys, the ids of one side only the
    missing customers, and the smallest such id the first one.
    """
    from pyspark.sql import functions as F

    keys = keys or [_ID]
    tagged = features.select(*keys, F.lit(1).alias("_f"), F.lit(0).alias("_s")).unionByName(
        summary.select(*keys, F.lit(0).alias("_f"), F.lit(1).alias("_s"))
    )
    per_id = tagged.groupBy(*keys).agg(F.sum("_f").alias("nf"), F.sum("_s").alias("ns"))
    nf, ns, ident = F.col("nf"), F.col("ns"), F.col(_ID)
    row = per_id.agg(
        F.sum(nf).alias("rows_f"),
        F.count_if(nf > 0).alias("n_f"),
        F.min(F.when(nf > 1, ident)).alias("dup_f"),
        F.sum(ns).alias("rows_s"),
        F.count_if(ns > 0).alias("n_s"),
        F.min(F.when(ns > 1, ident)).alias("dup_s"),
        F.count_if((nf > 0) & (ns == 0)).alias("only_f"),
        F.min(F.when((nf > 0) & (ns == 0), ident)).alias("first_f"),
        F.count_if((ns > 0) & (nf == 0)).alias("only_s"),
        F.min(F.when((ns > 0) & (nf == 0), ident)).alias("first_s"),
    ).first()
    assert row is not None
    for name, side in (("features", "f"), ("summary", "s")):
        repeated = int(row[f"rows_{side}"] or 0) - int(row[f"n_{side}"])
        if repeated:
            raise DataError(
                f"score_customers: the {name} index has {repeated} repeated "
                f"customer key(s) (first {row[f'dup_{side}']!r}); expected one "
                "row per customer (and group)."
            )
    if row["only_f"] or row["only_s"]:

        def first(key: str, n: int) -> str:
            return f" (first {row[key]!r})" if n else ""

        raise DataError(
            f"score_customers: features and summary must hold the same customers, but "
            f"{row['only_f']} of {row['n_f']} feature ids are missing from the summary"
            f"{first('first_f', row['only_f'])} and {row['only_s']} of {row['n_s']} summary ids "
            f"are missing from the features{first('first_s', row['only_s'])}. Build both from "
            "the same transactions, observation_end and group."
        )


def _check_summary(summary: Any, purchase: Any, gamma_gamma: Any) -> list[str]:
    """Check the summary for the purchase model and Gamma-Gamma in one Spark aggregation.

    The errors are those of :func:`~rfmml.models._spark.check_spark_summary`
    called for the purchase model (with its time unit) and then for
    Gamma-Gamma, in that order.

    Returns
    -------
    list of str
        The summary columns the models read (with repeats).
    """
    from rfmml.models._spark import check_spark_time_unit, spark_summary_errors

    specs: list[tuple[list[str], str]] = []
    if purchase is not None:
        specs.append((list(purchase.fit_columns), "score_customers"))
    if gamma_gamma is not None:
        specs.append((["frequency", "monetary_value"], "score_customers"))
    n, errors = spark_summary_errors(summary, specs)
    if purchase is not None:
        if errors[0] is not None:
            raise errors[0]
        strict = getattr(purchase, "_strict_summary", False)
        fitted = getattr(purchase, "freq_", None) if strict else None
        check_spark_time_unit(summary, n, fitted, purchase.kind)
    if gamma_gamma is not None and errors[-1] is not None:
        raise errors[-1]
    return [column for columns, _ in specs for column in columns]


def score_spark(features: Any, summary: Any, options: dict[str, Any]) -> Any:
    """:func:`~rfmml.campaign.score_customers` of Spark frames, as a Spark frame.

    Parameters
    ----------
    features : pyspark.sql.DataFrame
        Classic features with a ``customer_id`` column.
    summary : pyspark.sql.DataFrame or None
        BTYD summary with a ``customer_id`` column.
    options : dict
        The keyword arguments of ``score_customers``.

    Returns
    -------
    pyspark.sql.DataFrame
        The columns and values of the pandas table (categoricals as text).
    """
    from rfmml.campaign.playbook import load_playbook
    from rfmml.campaign.scoring import score_customers
    from rfmml.features._spark import is_spark
    from rfmml.segments._spark import check_spark_features

    if options.get("interval") and options.get("top_fraction") is not None:
        raise ValueError(
            "score_customers: probability_top_clv ranks every customer's CLV in each draw, "
            "which the Spark path does not compute; score without top_fraction= (or on pandas)."
        )
    if options.get("segments") is not None:
        raise ValueError("score_customers: segments= is not supported for Spark frames.")
    if _ID not in features.columns:
        raise DataError(
            f"score_customers: Spark features need a {_ID!r} column (found "
            f"{list(features.columns)}); build them with rfmml.features.rfm_table."
        )
    parts = {
        key: options.get(key)
        for key in ("rule_segmenter", "kmeans_segmenter", "purchase_model", "gamma_gamma")
    }
    uses_summary = parts["purchase_model"] is not None or parts["gamma_gamma"] is not None
    if uses_summary and summary is None:
        raise ValueError(
            "score_customers: purchase_model and gamma_gamma score the BTYD summary; pass "
            "summary=rfmml.features.btyd_summary(...) of the same customers."
        )
    if uses_summary and not is_spark(summary):
        raise TypeError("score_customers: with Spark features the summary must be a Spark frame.")
    # parameter checks of the pandas path, on an empty frame of the right columns
    from rfmml.campaign.scoring import require_feature_columns

    require_feature_columns(features)
    rule = parts["rule_segmenter"]
    if rule is not None:
        columns = list(rule.scorer_.columns.values())
        n_rows = check_spark_features(features, columns, where="RFMScorer.transform")
    else:
        columns = ["recency_days", "n_orders"]
        n_rows = check_spark_features(features, columns, where="score_customers")
    attrs = frame_attrs(features)
    group = attrs.get("group")
    keys = [_ID, *([str(group)] if group is not None and group in features.columns else [])]
    feature_cols = [c for c in features.columns if c not in keys]
    joined = features
    summary_cols: list[str] = []
    renamed = None
    if uses_summary:
        model_cols = _check_summary(summary, parts["purchase_model"], parts["gamma_gamma"])
        summary_attrs = frame_attrs(summary)
        from rfmml.models.clv import resolve_freq

        probe = pd.DataFrame()
        probe.attrs = summary_attrs
        freq = options.get("freq")
        if parts["purchase_model"] is not None:
            freq = resolve_freq(freq, probe, parts["purchase_model"], "score_customers")
        options = {**options, "freq": freq}
        attrs = {**summary_attrs, **attrs}
        _check_alignment(features, summary, keys)
        summary_cols = list(dict.fromkeys(c for c in model_cols if c in summary.columns))
        renamed = summary.select(*keys, *(summary[c].alias(f"_s_{c}") for c in summary_cols))
        joined = features.join(renamed, on=keys, how="inner")
    joined = _scoring_partitions(joined, n_rows, summary_cols)
    text = _bundle(parts)
    book = load_playbook(options.get("playbook")) if rule is not None else None
    kwargs = {
        k: v
        for k, v in options.items()
        if k not in (*parts, "playbook", "interval", "segments", "param_draws", "n_draws")
    }
    if options.get("interval") and uses_summary:
        kwargs.update(interval_options(parts, options))
    f_attrs = {k: attrs[k] for k in ("observation_end",) if k in attrs}
    s_attrs = {k: attrs[k] for k in ("observation_end", "freq") if k in attrs}

    def score(batch: pd.DataFrame) -> pd.DataFrame:
        fitted = _estimators(text)
        index = (
            pd.Index(batch[_ID].to_numpy(), name=_ID)
            if len(keys) == 1
            else pd.MultiIndex.from_arrays([batch[k].to_numpy() for k in keys], names=keys)
        )
        feats = pd.DataFrame({c: batch[c].to_numpy() for c in feature_cols}, index=index)
        feats.attrs = dict(f_attrs)
        summ = None
        if summary_cols:
            summ = pd.DataFrame({c: batch[f"_s_{c}"].to_numpy() for c in summary_cols}, index=index)
            summ.attrs = dict(s_attrs)
        table = score_customers(feats, summ, **fitted, playbook=book, **kwargs)
        return _plain(table)

    sample = _sample_row(features, renamed if summary_cols else None, keys)
    schema = spark_schema_of(score(sample), joined)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in rebatch(batches, BATCH_ROWS):
            yield score(batch)

    return with_table_attrs(joined.mapInPandas(run, schema), attrs, options)


def interval_options(parts: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The interval arguments of every batch, with the parameter draws made once, here.

    Every interval column is a function of the customer's row and the draws, so
    with the same draws on every worker the Spark columns equal the pandas ones.
    The draws are those given (``param_draws``), else parametric draws in the
    order and from the seed the pandas path uses (purchase model, then
    Gamma-Gamma, from one ``random_state``); they go to the workers with the
    batch function.
    """
    from sklearn.utils import check_random_state

    from rfmml.models.uncertainty import check_interval, draw_params

    n_draws = int(options.get("n_draws", 200))
    method = options.get("interval_method", "parametric")
    check_interval(options["interval"], n_draws, method)
    given = options.get("param_draws") or {}
    rng = check_random_state(options.get("random_state"))
    draws: dict[str, Any] = {}
    for key in ("purchase_model", "gamma_gamma"):
        model = parts.get(key)
        if model is None:
            continue
        if key in given:
            draws[key] = np.asarray(given[key], dtype=float).tolist()
        elif method == "bootstrap":
            raise ValueError(
                "interval_method='bootstrap' refits on the training customers: pass "
                f"param_draws={{'{key}': model.draw_params(n_draws, 'bootstrap', X=training)}}."
            )
        else:
            draws[key] = draw_params(model, n_draws, random_state=rng).tolist()
    return {
        "interval": float(options["interval"]),
        "n_draws": n_draws,
        "interval_method": method,
        "param_draws": {k: np.asarray(v, dtype=float) for k, v in draws.items()},
    }


#: Rows scored per ``score_customers`` call on a worker (see :func:`rebatch`).
BATCH_ROWS = 200_000


def rebatch(batches: Iterator[pd.DataFrame], rows: int) -> Iterator[pd.DataFrame]:
    """Arrow batches joined into frames of at least ``rows`` rows (the last one fewer).

    ``mapInPandas`` hands over batches of ``spark.sql.execution.arrow.maxRecordsPerBatch``
    rows (10,000 by default); scoring each alone repeats the per-call work
    (checks, distinct rows, playbook look-ups) 20 times per 200,000 customers.
    Joining them here makes the batch size independent of the session's
    setting; the memory of a worker is bounded by ``rows``.
    """
    pending: list[pd.DataFrame] = []
    size = 0
    for batch in batches:
        if not len(batch):
            continue
        pending.append(batch)
        size += len(batch)
        if size >= rows:
            yield pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)
            pending, size = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)


def _scoring_partitions(joined: Any, n_rows: int, summary_cols: list[str]) -> Any:
    """``joined`` in about ``n_rows / BATCH_ROWS`` partitions (at least one per core).

    Each partition is scored by ``score_customers`` calls of up to
    :data:`BATCH_ROWS` rows, and every call evaluates the models once per
    distinct summary row of its batch: hash-partitioning by ``(frequency, T)``
    sends equal rows to the same call, so the model formulas run about once
    per distinct row of the whole table, as on pandas, instead of once per
    customer in small random batches (a shuffle's default 200 partitions hand
    a few hundred customers to each call). Without a summary the partitions
    are merged only (no shuffle).
    """
    from pyspark.sql import functions as F

    try:
        cores = int(joined.sparkSession.sparkContext.defaultParallelism)
    except Exception:  # Spark Connect has no SparkContext
        cores = 2
    parts = max(cores, -(-n_rows // BATCH_ROWS))
    keys = [F.col(f"_s_{c}") for c in ("frequency", "T") if c in summary_cols]
    if keys:
        return joined.repartition(parts, *keys)
    return joined.coalesce(parts)


def _sample_row(features: Any, renamed: Any, keys: list[str] | None = None) -> pd.DataFrame:
    """One row of ``features`` joined with its summary row, collected (for the schema).

    Taken without the join (``limit(1)`` of a join shuffles both frames whole):
    the first feature row, then the summary row of its keys (``customer_id``
    and the group, if any), found by a filter.
    """
    from pyspark.sql import functions as F

    keys = keys or [_ID]
    first = features.limit(1).toPandas()
    if renamed is None:
        return first
    condition = None
    for key in keys:
        value = first[key].iloc[0]
        value = value.item() if isinstance(value, np.generic) else value
        equal = F.col(key).eqNullSafe(F.lit(value))
        condition = equal if condition is None else condition & equal
    match = renamed.filter(condition).limit(1).toPandas()
    return first.merge(match, on=keys, how="inner")


def with_table_attrs(sdf: Any, attrs: dict[str, Any], options: dict[str, Any]) -> Any:
    """The scored frame with the scoring settings (``horizon``, ``freq``...) as its attrs."""
    from rfmml.features._spark import with_attrs

    meta: dict[str, Any] = {
        "horizon": int(options.get("horizon", 52)),
        "discount_rate": float(options.get("discount_rate", 0.0)),
        "churn_bands": [float(v) for v in options.get("churn_bands", (0.3, 0.7))],
    }
    if options.get("freq") is not None:
        meta["freq"] = options["freq"]
    if "observation_end" in attrs:
        meta["observation_end"] = str(attrs["observation_end"])
    return with_attrs(sdf, **meta)


def write_spark_predictions(
    table: Any,
    out_dir: str | Path,
    *,
    fingerprints: Mapping[str, Any],
    partition_by: str | None = "segment",
) -> dict[str, Path]:
    """Write a Spark predictions table as Parquet, partitioned by segment, with metadata.

    ``out_dir/predictions.parquet/segment=<name>/part-*.parquet`` (every column
    but the partition column in the files; Spark and pandas read the folder
    back with it) and ``out_dir/predictions.meta.json`` (the document of
    :func:`~rfmml.campaign.write_predictions`; its ``n_rows`` is counted in Spark).

    Parameters
    ----------
    table : pyspark.sql.DataFrame
        A scored table (:func:`~rfmml.campaign.score_customers` of Spark frames).
    out_dir : str or pathlib.Path
        Destination folder (created; a previous ``predictions.parquet`` is replaced).
    fingerprints : mapping
        Model and data fingerprints recorded in the metadata.
    partition_by : str or None, default "segment"
        Partition column; ``None`` or a column the table lacks writes one folder.

    Returns
    -------
    dict of str to pathlib.Path
        ``"parquet"`` (the folder) and ``"meta"``.
    """
    from rfmml.campaign.exports import PREDICTIONS_FORMAT, PREDICTIONS_FORMAT_VERSION, _json_safe

    if not isinstance(fingerprints, Mapping):
        raise TypeError(
            "fingerprints must be a dict of name -> fingerprint, got "
            f"{type(fingerprints).__name__}."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "predictions.parquet"
    writer = table.write.mode("overwrite")
    if partition_by is not None and partition_by in table.columns:
        writer = writer.partitionBy(partition_by)
    writer.parquet(str(target))
    n_rows = int(table.sparkSession.read.parquet(str(target)).count())
    meta = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_rows": n_rows,
        "columns": [str(c) for c in table.columns],
        "index": [_ID] if _ID in table.columns else [],
        "fingerprints": _json_safe(dict(fingerprints)),
        "scoring": _json_safe(frame_attrs(table)),
        "files": {"parquet": target.name},
        "partitioned_by": partition_by if partition_by in table.columns else None,
    }
    meta_path = out / "predictions.meta.json"
    write_document(meta_path, PREDICTIONS_FORMAT, PREDICTIONS_FORMAT_VERSION, meta)
    return {"parquet": target, "meta": meta_path}
