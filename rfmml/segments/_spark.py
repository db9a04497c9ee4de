"""RFM scores and rule segments of a PySpark frame, computed inside Spark.

The quantile edges are exact and equal to the pandas ones
(:func:`rfmml.segments.scoring._quantile_edges`): score ``k`` needs at least
``need_k = ceil((k - 1) * N / n)`` customers strictly below, so its edge is the
smallest distinct value with at least ``need_k`` customers strictly below it
(``inf`` when there is none). Spark computes the histogram of distinct values
(``groupBy(value).count()``, distributed), the customers strictly below each
distinct value with a running sum over the histogram ordered by value (one
window over distinct values, never over customers), and the ``n - 1`` edges
as ``min(value) filter (below >= need_k)``: the driver receives ``n - 1``
numbers per metric.

Scores and segments are column expressions (comparisons with the edges, then
an array lookup of the scheme's cells), so scoring never leaves Spark. With a
group column (recorded as ``group`` on the frame by the feature builders) the
edges are learned and applied within each group (:func:`spark_group_quantile_edges`,
:func:`spark_group_scores`): ``n - 1`` numbers per metric and group reach the driver.
pyspark is imported inside the functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from rfmml.errors import DataError, require_columns

__all__ = [
    "check_spark_features",
    "spark_clusters",
    "spark_group_quantile_edges",
    "spark_group_scores",
    "spark_group_sizes",
    "spark_keys",
    "spark_label",
    "spark_quantile_edges",
    "spark_quantile_edges_of",
    "spark_sample",
    "spark_scores",
]


def spark_keys(sdf: Any) -> list[str]:
    """The key columns a Spark result carries along: ``customer_id`` and the group, when present.

    The group is the column the feature builders recorded as ``group`` on the frame.
    """
    from rfmml.features._spark import frame_attrs

    group = frame_attrs(sdf).get("group")
    return [c for c in ("customer_id", group) if c is not None and c in sdf.columns]


def check_spark_features(sdf: Any, columns: Sequence[str], *, where: str) -> int:
    """Validate a Spark features frame as the pandas ``_check_frame`` does; return its rows.

    One aggregation pass counts the rows and, per column, the missing or
    non-numeric and the negative values; the messages are the pandas ones.

    Raises
    ------
    DataError
        Missing columns, an empty frame, missing or negative values.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType

    require_columns(sdf, columns, where, "Point the *_col parameters at the right columns.")
    aggs = [F.count(F.lit(1)).alias("_n")]
    for i, col in enumerate(columns):
        numeric = isinstance(sdf.schema[col].dataType, NumericType)
        value = F.col(col).cast("double") if numeric else F.lit(None).cast("double")
        aggs.append(F.count_if(value.isNull() | F.isnan(value)).alias(f"_nan{i}"))
        aggs.append(F.count_if(value < 0).alias(f"_neg{i}"))
    row = sdf.agg(*aggs).first()
    assert row is not None  # a global aggregate has one row
    n = int(row["_n"])
    if n == 0:
        raise DataError(f"{where}: the features frame is empty (0 customers).")
    for i, col in enumerate(columns):
        if row[f"_nan{i}"]:
            raise DataError(
                f"{where}: column {col!r} has {int(row[f'_nan{i}'])} of {n} missing or "
                f"non-numeric values. Drop or fill those customers first."
            )
        if row[f"_neg{i}"]:
            raise DataError(
                f"{where}: column {col!r} has {int(row[f'_neg{i}'])} of {n} negative values; "
                f"recency, order counts and spend must be >= 0."
            )
    return n


def spark_quantile_edges(
    sdf: Any, column: str, n_scores: int, n_obs: int, *, negate: bool
) -> np.ndarray:
    """Exact tie-safe quantile edges of one Spark column (pandas ``_quantile_edges``).

    Parameters
    ----------
    sdf : pyspark.sql.DataFrame
        The customers.
    column : str
        The scored column.
    n_scores : int
        Number of scores.
    n_obs : int
        Number of rows of ``sdf``.
    negate : bool
        Score ``-column`` (recency: shorter is better), as pandas orients it.

    Returns
    -------
    numpy.ndarray
        ``n_scores - 1`` edges of the oriented values (``inf`` when unreachable).
    """
    return spark_quantile_edges_of(sdf, [(column, negate)], n_scores, n_obs)[0]


def spark_quantile_edges_of(
    sdf: Any, columns: Sequence[tuple[str, bool]], n_scores: int, n_obs: int
) -> list[np.ndarray]:
    """:func:`spark_quantile_edges` of several columns, in one Spark query.

    The oriented values are stacked into (column, value) rows; each column's
    histogram, running count of the customers below and edges are those of
    :func:`spark_quantile_edges`, computed per column (partitioned by its position).

    Parameters
    ----------
    sdf : pyspark.sql.DataFrame
        The customers.
    columns : sequence of (str, bool)
        The scored columns, each with its ``negate``.
    n_scores, n_obs : int
        As in :func:`spark_quantile_edges`.

    Returns
    -------
    list of numpy.ndarray
        The edges of each column, in order.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    def oriented(i: int, column: str, negate: bool) -> Any:
        value = F.col(column).cast("double")
        return F.struct(F.lit(i).alias("k"), (-value if negate else value).alias("v"))

    stacked = sdf.select(
        F.explode(
            F.array(*(oriented(i, c, negate) for i, (c, negate) in enumerate(columns)))
        ).alias("kv")
    ).select("kv.k", "kv.v")
    hist = stacked.groupBy("k", "v").count()
    # one window over the distinct values (not the customers): customers strictly below
    running = (
        Window.partitionBy("k")
        .orderBy("v")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    hist = hist.withColumn("below", F.sum("count").over(running) - F.col("count"))
    needs = [-((-(k - 1) * n_obs) // n_scores) for k in range(2, n_scores + 1)]
    rows = (
        hist.groupBy("k")
        .agg(
            *(
                F.min(F.when(F.col("below") >= need, F.col("v"))).alias(f"e{i}")
                for i, need in enumerate(needs)
            )
        )
        .collect()
    )
    found = {row["k"]: row for row in rows}
    return [_edges(found.get(i), len(needs)) for i in range(len(columns))]


def _edges(row: Any, n_edges: int) -> np.ndarray:
    """The edges of one row of :func:`spark_quantile_edges_of` (``inf`` when unreachable)."""
    return np.array(
        [np.inf if row is None or row[f"e{i}"] is None else float(row[f"e{i}"])
         for i in range(n_edges)]
    )  # fmt: skip


def spark_scores(sdf: Any, edges: np.ndarray, columns: dict[str, str], n_scores: int) -> Any:
    """``R``, ``F``, ``M``, ``FM`` and ``RFM`` as Spark columns appended to the key columns.

    ``edges`` has one row per metric (R, F, M) as in ``RFMScorer.edges_``: the
    longest recency scoring ``k`` for R, the lowest value scoring ``k`` for F
    and M (the pandas ``searchsorted`` rules written as comparisons).
    """
    from pyspark.sql import functions as F

    from rfmml.segments.scoring import scoring_edges

    scores = {}
    for j, metric in enumerate(("R", "F", "M")):
        value = F.col(columns[metric]).cast("double")
        passed = [
            (value <= F.lit(float(e))) if metric == "R" else (value >= F.lit(float(e)))
            for e in scoring_edges(edges[j], metric)
        ]
        total = F.lit(1).cast("long")
        for cond in passed:
            total = total + F.when(cond, 1).otherwise(0).cast("long")
        scores[metric] = total.alias(metric)
    out = sdf.select(*spark_keys(sdf), *scores.values())
    out = out.withColumn("FM", F.floor((F.col("F") + F.col("M") + 1) / 2).cast("long"))
    sep = "" if n_scores < 10 else "-"
    return out.withColumn(
        "RFM", F.concat_ws(sep, *(F.col(m).cast("string") for m in ("R", "F", "M")))
    )


def spark_label(scores: Any, scheme: Any) -> Any:
    """The scheme's segment of each scored row, as a string column ``segment``."""
    from pyspark.sql import functions as F

    scheme.require_score_columns(scores.columns)
    n = scheme.n_scores
    flat = F.lit(0).cast("long")
    for key in scheme.axes:
        flat = flat * n + (F.col(key).cast("long") - 1)
    names = np.asarray(scheme.segment_names, dtype=object)[scheme._codes]
    lookup = F.array(*(F.lit(str(name)) for name in names))
    return scores.withColumn("segment", F.element_at(lookup, (flat + 1).cast("int")))


@lru_cache(maxsize=8)
def _segmenter(text: str) -> Any:
    """A fitted segmenter from its JSON document, rebuilt once per worker process."""
    from rfmml.segments.persistence import segmenter_from_dict

    return segmenter_from_dict(json.loads(text))


def spark_sample(sdf: Any, columns: Sequence[str], size: int, seed: int) -> pd.DataFrame:
    """A seeded random sample of at most ``size`` rows of ``columns``, collected.

    Spark's Bernoulli sample at a fraction a little above ``size / rows``, then
    the first ``size`` rows: the driver receives at most ``size`` rows whatever
    the number of customers.
    """
    n = int(sdf.count())
    fraction = min(1.0, 1.2 * size / max(n, 1))
    picked = (
        sdf.select(*columns)
        if fraction >= 1.0
        else sdf.select(*columns).sample(withReplacement=False, fraction=fraction, seed=seed)
    )
    return picked.limit(size).toArrow().to_pandas()  # Arrow whatever the session's setting


def spark_clusters(segmenter: Any, sdf: Any) -> Any:
    """``cluster`` and ``segment`` (the cluster's name) of every row, by ``mapInPandas``.

    The fitted k-means segmenter goes to the workers as its JSON document and
    assigns each Arrow batch with its own ``predict_cluster``, so the Spark
    assignment equals the pandas one.
    """
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    from rfmml.segments.persistence import segmenter_to_dict

    columns = list(segmenter.features)
    check_spark_features(sdf, columns, where="KMeansSegmenter.predict")
    keys = spark_keys(sdf)
    text = json.dumps(segmenter_to_dict(segmenter), allow_nan=False)
    names = list(segmenter.cluster_names_)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        fitted = _segmenter(text)
        for batch in batches:
            ids = fitted.predict_cluster(batch[columns].astype("float64")).to_numpy()
            out = batch[keys].copy()
            out["cluster"] = ids.astype(np.int64)
            out["segment"] = np.asarray(names, dtype=object)[ids]
            yield out

    fields = [StructField(k, sdf.schema[k].dataType, True) for k in keys]
    fields += [StructField("cluster", LongType(), True), StructField("segment", StringType(), True)]
    return sdf.select(*keys, *columns).mapInPandas(run, StructType(fields))


def spark_group_sizes(sdf: Any, group: str, *, where: str) -> pd.Series:
    """Customers per group, sorted by group (one row per group is collected).

    Raises
    ------
    DataError
        Customers without a group, with the pandas message.
    """
    from pyspark.sql import functions as F

    counts = sdf.groupBy(group).agg(F.count(F.lit(1)).alias("n")).toPandas()
    missing = counts[group].isna()
    if missing.any():
        raise DataError(
            f"{where}: {int(counts.loc[missing, 'n'].sum())} customers have a missing "
            f"{group!r} (the group level of the index); drop or fill them first."
        )
    sizes = counts.set_index(group)["n"].astype(np.int64).sort_index()
    sizes.index.name = group
    return sizes


def spark_group_quantile_edges(
    sdf: Any, column: str, group: str, n_scores: int, *, negate: bool
) -> dict[Any, np.ndarray]:
    """:func:`spark_quantile_edges` within each group, in one pass: edges per group.

    The histogram is of ``(group, value)``; the running count of customers
    strictly below is a window over each group's distinct values ordered by
    value, and each score's need ``ceil((k - 1) N_g / n)`` uses the group's own
    size ``N_g``. The driver receives ``n - 1`` numbers per group.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    value = F.col(column).cast("double")
    hist = (
        sdf.select(F.col(group).alias("_g"), (-value if negate else value).alias("v"))
        .groupBy("_g", "v")
        .count()
    )
    running = (
        Window.partitionBy("_g")
        .orderBy("v")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    hist = hist.withColumn("below", F.sum("count").over(running) - F.col("count"))
    hist = hist.withColumn("_n", F.sum("count").over(Window.partitionBy("_g")))
    edges = []
    for i, k in enumerate(range(2, n_scores + 1)):
        need = F.expr(f"(({k - 1} * _n + {n_scores - 1}) div {n_scores})")  # ceil, in integers
        edges.append(F.min(F.when(F.col("below") >= need, F.col("v"))).alias(f"e{i}"))
    rows = hist.groupBy("_g").agg(*edges).toPandas()
    return {
        row["_g"]: np.array(
            [np.inf if pd.isna(row[f"e{i}"]) else float(row[f"e{i}"]) for i in range(n_scores - 1)]
        )
        for _, row in rows.iterrows()
    }


def spark_group_scores(
    sdf: Any, edges: pd.DataFrame, group: str, columns: dict[str, str], n_scores: int
) -> Any:
    """:func:`spark_scores` with each group's edges (``RFMScorer.edges_`` per group).

    The edges (widened by :func:`~rfmml.segments.scoring.scoring_edges`) are a
    small frame of one row per group joined to the customers; a customer of a
    group not in ``edges`` is refused with the pandas message.
    """
    from pyspark.sql import functions as F

    from rfmml.segments.scoring import scoring_edges

    groups = list(edges.index.get_level_values(0).unique())
    rows = []
    for g in groups:
        block = edges.loc[g]
        row: dict[str, Any] = {"_g": g}
        for metric in ("R", "F", "M"):
            for i, e in enumerate(scoring_edges(block.loc[metric].to_numpy(), metric)):
                row[f"{metric}{i}"] = float(e)
        rows.append(row)
    table = sdf.sparkSession.createDataFrame(pd.DataFrame(rows))
    joined = sdf.join(table, sdf[group] == table["_g"], how="left")
    unseen = (
        joined.filter(F.col("_g").isNull())
        .agg(F.count(F.lit(1)).alias("n"), F.collect_set(group).alias("groups"))
        .first()
    )
    assert unseen is not None
    if unseen["n"]:
        raise DataError(
            f"RFMScorer.transform: {int(unseen['n'])} customers belong to group(s) "
            f"{sorted(unseen['groups'])[:5]} not seen in fit; fitted groups are {groups[:10]}."
        )
    scores = {}
    for metric in ("R", "F", "M"):
        value = F.col(columns[metric]).cast("double")
        total = F.lit(1).cast("long")
        for i in range(n_scores - 1):
            edge = F.col(f"{metric}{i}")
            passed = (value <= edge) if metric == "R" else (value >= edge)
            total = total + F.when(passed, 1).otherwise(0).cast("long")
        scores[metric] = total.alias(metric)
    keys = [*spark_keys(sdf), *([group] if group not in spark_keys(sdf) else [])]
    out = joined.select(*keys, *scores.values())
    out = out.withColumn("FM", F.floor((F.col("F") + F.col("M") + 1) / 2).cast("long"))
    sep = "" if n_scores < 10 else "-"
    return out.withColumn(
        "RFM", F.concat_ws(sep, *(F.col(m).cast("string") for m in ("R", "F", "M")))
    )
