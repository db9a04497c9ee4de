"""Holdout evaluation of PySpark frames, aggregated inside Spark.

:func:`evaluate_holdout_spark` is :func:`~rfmml.evaluation.evaluate_holdout`
for a Spark ``cal_holdout`` frame (:func:`rfmml.features.calibration_holdout`
of a Spark log). Each customer's holdout predictions come from the pandas
:func:`~rfmml.evaluation.holdout.holdout_frame` run by ``mapInPandas`` on each
Arrow batch (the fitted models go to the workers as their JSON documents); the
sums over customers are Spark aggregations, and the table is built from them
by :func:`~rfmml.evaluation.holdout.holdout_metrics`, the definition the
pandas path uses too. :func:`evaluate_holdouts_spark` judges several purchase
models in the same few Spark jobs (one prediction pass, one aggregation, one
AUC query for all of them).

The ROC AUC is exact (the Mann-Whitney statistic with ties counted half, which
is what ``sklearn.metrics.roc_auc_score`` computes): per distinct score, its
positives and negatives; the negatives strictly below with a running sum over
the distinct scores ordered by score (one window over distinct scores, never
over customers; a model's scores are a function of the customer's likelihood
row, so there are at most as many as the distinct summary rows); then
``sum(pos * (neg_below + neg / 2)) / (P N)``, a sum of halves that is exact
in double precision.

:func:`repeat_tracking_spark` counts the tracking curves' repeat
transactions and first purchases per period in Spark (one number per period
reaches the driver) and ends in :func:`~rfmml.evaluation.tracking_curves`.

pyspark is imported inside the functions. Only one row per aggregation and
one number per period reach the driver.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache, reduce
from typing import Any

import numpy as np
import pandas as pd

from rfmml.errors import DataError
from rfmml.evaluation.holdout import (
    holdout_frame,
    holdout_metrics,
    require_holdout_columns,
)
from rfmml.evaluation.repeat_tracking import tracking_curves, tracking_inputs
from rfmml.features._engine import next_period_start, scalar_period
from rfmml.features._spark import frame_attrs, period_number
from rfmml.models import GammaGamma, PurchaseModel

__all__ = [
    "evaluate_holdout_spark",
    "evaluate_holdouts_spark",
    "holdout_counts",
    "repeat_tracking_spark",
    "spark_auc",
    "spark_aucs",
]

_NAMES = ("model", "baseline")


@lru_cache(maxsize=8)
def _models(text: str) -> tuple[dict[str, Any], Any]:
    """The fitted purchase models (by label) and Gamma-Gamma of a JSON bundle, once per worker."""
    from rfmml.models.persistence import model_from_dict

    docs = json.loads(text)
    gg = docs["gamma_gamma"]
    fitted = {label: model_from_dict(doc) for label, doc in docs["purchase_models"].items()}
    return fitted, None if gg is None else model_from_dict(gg)


def spark_auc(sdf: Any, label: str, score: str) -> float:
    """Exact ROC AUC of ``score`` for the boolean ``label``, computed in Spark.

    Ties count half (as ``sklearn.metrics.roc_auc_score``); NaN when one class is empty.
    """
    return spark_aucs(sdf, label, [score])[score]


def spark_aucs(sdf: Any, label: str, scores: Sequence[str]) -> dict[str, float]:
    """:func:`spark_auc` of several ``scores`` of one frame, in one Spark query.

    The scores are stacked into (score name, value) rows; each score's
    histogram, running sum of negatives and sums are those of
    :func:`spark_auc`, computed per score name (partitioned by it), and one
    row per score reaches the driver.

    Returns
    -------
    dict of str to float
        The AUC of each score (NaN when one class is empty).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    stacked = sdf.select(
        F.col(label).alias("y"),
        F.explode(
            F.array(*(F.struct(F.lit(s).alias("k"), F.col(s).alias("s")) for s in scores))
        ).alias("ks"),
    ).select("y", "ks.k", "ks.s")
    hist = stacked.groupBy("k", "s").agg(
        F.count_if(F.col("y")).alias("pos"), F.count_if(~F.col("y")).alias("neg")
    )
    below = Window.partitionBy("k").orderBy("s").rowsBetween(Window.unboundedPreceding, -1)
    hist = hist.withColumn("below", F.coalesce(F.sum("neg").over(below), F.lit(0)))
    pairs = F.col("pos").cast("double") * (F.col("below").cast("double") + F.col("neg") / 2.0)
    rows = (
        hist.groupBy("k")
        .agg(F.sum(pairs).alias("u"), F.sum("pos").alias("p"), F.sum("neg").alias("n"))
        .collect()
    )
    found = {row["k"]: row for row in rows}
    return {score: _auc(found.get(score)) for score in scores}


def _auc(row: Any) -> float:
    """The AUC of one row of sums (``u``, ``p``, ``n``) of :func:`spark_aucs`; NaN without one."""
    p, n = (0, 0) if row is None else (int(row["p"] or 0), int(row["n"] or 0))
    if p == 0 or n == 0:
        return float("nan")
    return float(row["u"]) / (float(p) * float(n))


def _check(cal_holdout: Any, spend: bool) -> list[str]:
    return require_holdout_columns(cal_holdout.columns, spend)


def evaluate_holdout_spark(
    bgnbd: PurchaseModel, gamma_gamma: GammaGamma | None, cal_holdout: Any
) -> pd.DataFrame:
    """:func:`~rfmml.evaluation.evaluate_holdout` of a Spark ``cal_holdout`` frame.

    Parameters
    ----------
    bgnbd : PurchaseModel
        Any fitted purchase model (fitted on the calibration summary).
    gamma_gamma : GammaGamma or None
        Fitted on the calibration summary; ``None`` skips ``spend_mae``.
    cal_holdout : pyspark.sql.DataFrame
        :func:`rfmml.features.calibration_holdout` of a Spark log.

    Returns
    -------
    pandas.DataFrame
        The table of :func:`~rfmml.evaluation.evaluate_holdout` (same rows,
        columns and ``attrs``), equal to the pandas one to rounding.

    Raises
    ------
    DataError
        Missing columns or an empty frame.
    """
    return evaluate_holdouts_spark({"model": bgnbd}, gamma_gamma, cal_holdout)["model"]


def evaluate_holdouts_spark(
    models: Mapping[str, PurchaseModel],
    gamma_gamma: GammaGamma | None,
    cal_holdout: Any,
    *,
    counts: Mapping[str, Any] | None = None,
) -> dict[str, pd.DataFrame]:
    """:func:`evaluate_holdout_spark` of several purchase models, in one pass over ``cal_holdout``.

    One ``mapInPandas`` predicts the holdout of every model (and the
    baseline and spend, which do not depend on the purchase model) on each
    Arrow batch; one aggregation sums the errors of all of them and one
    query (:func:`spark_aucs`) gives all the AUCs, so the number of Spark jobs
    does not grow with the models.

    Parameters
    ----------
    models : mapping of str to PurchaseModel
        Fitted purchase models by name.
    gamma_gamma : GammaGamma or None
        Fitted on the calibration summary; ``None`` skips ``spend_mae``.
    cal_holdout : pyspark.sql.DataFrame
        :func:`rfmml.features.calibration_holdout` of a Spark log.
    counts : mapping, optional
        :func:`holdout_counts` of ``cal_holdout`` when the caller has it
        (with ``population`` when ``gamma_gamma`` is given); default counted here.

    Returns
    -------
    dict of str to pandas.DataFrame
        Each model's table of :func:`evaluate_holdout_spark`.

    Raises
    ------
    DataError
        Missing columns or an empty frame.
    """
    spend = gamma_gamma is not None
    needed = _check(cal_holdout, spend)
    attrs = frame_attrs(cal_holdout)
    if counts is None:
        counts = holdout_counts(cal_holdout, spend)
    if int(counts["n"]) == 0:
        raise DataError("cal_holdout is empty (0 customers); nothing to evaluate.")
    population = counts["population"] if spend else None
    labels = {name: f"m{i}" for i, name in enumerate(models)}
    pred = _predictions(cal_holdout, needed, models, labels, gamma_gamma, population).cache()
    try:
        totals = _totals(pred, [*labels.values(), "baseline"], spend)
        scores = [f"{label}_probability" for label in (*labels.values(), "baseline")]
        aucs = spark_aucs(pred, "bought_again", scores)
    finally:
        pred.unpersist()
    return {
        name: holdout_metrics(
            _renamed(totals, label, spend),
            {"model": aucs[f"{label}_probability"], "baseline": aucs["baseline_probability"]},
            freq=attrs.get("freq"),
        )
        for name, label in labels.items()
    }


def holdout_counts(cal_holdout: Any, spend: bool) -> dict[str, Any]:
    """The customers, holdout buyers and population spend of ``cal_holdout``, in one Spark job.

    Returns
    -------
    dict
        ``n`` (customers), ``buyers`` (customers with a holdout purchase) and,
        with ``spend``, ``population``: the baseline's order value of customers
        without a repeat purchase (the calibration mean spend of the repeat
        buyers; NaN without any).
    """
    from pyspark.sql import functions as F

    repeat = F.col("frequency_cal").cast("double") > 0
    head = [
        F.count(F.lit(1)).alias("n"),
        F.count_if(F.col("frequency_holdout") > 0).alias("buyers"),
    ]
    if spend:
        value = F.col("monetary_value_cal").cast("double")
        head.append(F.avg(F.when(repeat, value)).alias("population"))
    row = cal_holdout.agg(*head).first()
    assert row is not None  # a global aggregate has one row
    counts: dict[str, Any] = {"n": int(row["n"]), "buyers": int(row["buyers"])}
    if spend:
        counts["population"] = np.nan if row["population"] is None else float(row["population"])
    return counts


def _predictions(
    cal_holdout: Any,
    needed: list[str],
    models: Mapping[str, PurchaseModel],
    labels: Mapping[str, str],
    gamma_gamma: GammaGamma | None,
    population: float | None,
) -> Any:
    """Each customer's holdout predictions of every model, by ``mapInPandas`` (lazily).

    Columns: ``actual_purchases``, ``bought_again``, ``frequency_cal``,
    ``<label>_purchases`` and ``<label>_probability`` for each model's label
    and ``baseline``; with spend ``actual_spend``, ``model_spend`` and
    ``baseline_spend`` (Gamma-Gamma's, the same for every purchase model).
    """
    from pyspark.sql.types import BooleanType, DoubleType, StructField, StructType

    from rfmml.models.persistence import model_to_dict

    docs = {labels[name]: model_to_dict(model) for name, model in models.items()}
    text = json.dumps(
        {"purchase_models": docs,
         "gamma_gamma": None if gamma_gamma is None else model_to_dict(gamma_gamma)},
        allow_nan=False,
    )  # fmt: skip
    shared = ["actual_purchases", "bought_again", "baseline_purchases", "baseline_probability"]
    if gamma_gamma is not None:
        shared += ["actual_spend", "model_spend", "baseline_spend"]
    batch_attrs = {k: v for k, v in frame_attrs(cal_holdout).items() if k == "freq"}
    columns = [*shared, *(f"{label}_{kind}" for label in labels.values()
                          for kind in ("purchases", "probability")), "frequency_cal"]  # fmt: skip

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        fitted, gg = _models(text)
        for batch in batches:
            if not len(batch):
                continue
            frame = batch[needed].astype("float64")
            frame.attrs = dict(batch_attrs)
            out = pd.DataFrame(index=range(len(frame)))
            for i, (label, model) in enumerate(fitted.items()):
                spend = gg if i == 0 else None  # the same for every purchase model
                pred = holdout_frame(model, spend, frame, population).reset_index(drop=True)
                if i == 0:
                    out[shared] = pred[shared]
                out[f"{label}_purchases"] = pred["model_purchases"]
                out[f"{label}_probability"] = pred["model_probability"]
            out["frequency_cal"] = frame["frequency_cal"].to_numpy()
            yield out[columns]

    schema = StructType(
        [StructField(c, BooleanType() if c == "bought_again" else DoubleType(), True)
         for c in columns]
    )  # fmt: skip
    return cal_holdout.select(*needed).mapInPandas(run, schema)


def _totals(pred: Any, labels: Sequence[str], spend: bool) -> dict[str, float]:
    """The sums over customers of every label's errors, in one Spark aggregation.

    Keys: ``n``, ``actual``, ``<label>_abs``, ``<label>_squared``,
    ``<label>_predicted``, ``<label>_brier``; with spend ``n_spend``,
    ``model_spend_abs`` and ``baseline_spend_abs``.
    """
    from pyspark.sql import functions as F

    actual = F.col("actual_purchases")
    y = F.col("bought_again").cast("double")
    aggs = [F.count(F.lit(1)).alias("n"), F.sum(actual).alias("actual")]
    for name in labels:
        err = F.col(f"{name}_purchases") - actual
        aggs += [
            F.sum(F.abs(err)).alias(f"{name}_abs"),
            F.sum(err * err).alias(f"{name}_squared"),
            F.sum(f"{name}_purchases").alias(f"{name}_predicted"),
            F.sum((F.col(f"{name}_probability") - y) ** 2).alias(f"{name}_brier"),
        ]
    if spend:
        both = (F.col("frequency_cal") > 0) & (actual > 0)
        aggs.append(F.count_if(both).alias("n_spend"))
        for name in _NAMES:
            diff = F.abs(F.col(f"{name}_spend") - F.col("actual_spend"))
            aggs.append(F.sum(F.when(both, diff).otherwise(0.0)).alias(f"{name}_spend_abs"))
    row = pred.agg(*aggs).first()
    assert row is not None
    return {k: float(v) for k, v in row.asDict().items()}


def _renamed(totals: Mapping[str, float], label: str, spend: bool) -> dict[str, float]:
    """The ``totals`` of :func:`~rfmml.evaluation.holdout.holdout_metrics` for one model.

    The sums of the model of ``label`` go under ``model_*``.
    """
    out = {"n": totals["n"], "actual": totals["actual"]}
    for kind in ("abs", "squared", "predicted", "brier"):
        out[f"model_{kind}"] = totals[f"{label}_{kind}"]
        out[f"baseline_{kind}"] = totals[f"baseline_{kind}"]
    if spend:
        for key in ("n_spend", "model_spend_abs", "baseline_spend_abs"):
            out[key] = totals[key]
    return out


def repeat_tracking_spark(
    transactions: Any,
    models: Mapping[str, PurchaseModel],
    calibration_end: pd.Timestamp | str,
    observation_end: pd.Timestamp | str,
    *,
    freq: str = "D",
    keys: Sequence[str] = ("customer_id",),
) -> pd.DataFrame:
    """:func:`~rfmml.evaluation.repeat_transaction_tracking` of a Spark log.

    The cohort's repeat transactions and first purchases per period are
    counted in Spark; one number per period reaches the driver.

    Raises
    ------
    DataError
        Missing columns, or no customer's first purchase in the calibration period.
    """
    from pyspark.sql import functions as F

    keys, cal_end, obs_end = tracking_inputs(
        transactions.columns, calibration_end, observation_end, freq, keys
    )
    cut = pd.Timestamp(next_period_start(obs_end, freq)).to_pydatetime()
    cal_period, end_period = scalar_period(cal_end, freq), scalar_period(obs_end, freq)
    ts = F.col("timestamp").cast("timestamp")
    # each customer's distinct periods and first one, in one grouping by customer (keys
    # that are null on a row match no customer, as in an inner join on the keys)
    known = [F.col(k).isNotNull() for k in keys]
    cohort = (
        transactions.filter(ts < F.lit(cut))
        .filter(reduce(operator.and_, known))
        .select(*keys, period_number(ts, freq).alias("p"))
        .groupBy(*keys)
        .agg(F.array_distinct(F.collect_list("p")).alias("ps"), F.min("p").alias("first"))
        .filter(F.col("first") <= cal_period)
    )
    kind = F.when(F.col("p") == F.col("first"), F.lit("birth")).otherwise(F.lit("repeat"))
    counts = (
        cohort.select(F.explode("ps").alias("p"), "first")
        .groupBy("p", kind.alias("kind"))
        .count()
        .toPandas()
    )  # at most two rows per period
    born = counts[counts["kind"] == "birth"]
    if born.empty:
        raise DataError(
            f"repeat_transaction_tracking: no customer first bought on or before "
            f"{cal_end.date()}; nothing to track."
        )
    start = int(born["p"].min())
    n_periods = end_period - start + 1

    def series(kind: str) -> np.ndarray:
        part = counts[counts["kind"] == kind]
        out = np.zeros(n_periods, dtype=np.int64)
        at = part["p"].to_numpy(dtype=np.int64) - start
        keep = (at >= 0) & (at < n_periods)
        np.add.at(out, at[keep], part["count"].to_numpy(dtype=np.int64)[keep])
        return out

    return tracking_curves(
        series("repeat").astype(float), series("birth"), start, models, cal_end, obs_end,
        freq=freq,
    )  # fmt: skip
