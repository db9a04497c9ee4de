"""Holdout evaluation of PySpark frames, aggregated inside Spark.

:func:`evaluate_holdout_spark` is :func:`~rfmml.evaluation.evaluate_holdout`
for a Spark ``cal_holdout`` frame (:func:`rfmml.features.calibration_holdout`
of a Spark log). Each customer's holdout predictions come from the pandas
:func:`~rfmml.evaluation.holdout.holdout_frame` run by ``mapInPandas`` on each
Arrow batch (the fitted models go to the workers as their JSON documents); the
sums over customers are Spark aggregations, and the table is built from them
by :func:`~rfmml.evaluation.holdout.holdout_metrics`, the definition the
pandas path uses too.

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
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
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

__all__ = ["evaluate_holdout_spark", "repeat_tracking_spark", "spark_auc"]

_NAMES = ("model", "baseline")


@lru_cache(maxsize=8)
def _models(text: str) -> tuple[Any, Any]:
    """The fitted purchase model and Gamma-Gamma of a JSON bundle, once per worker."""
    from rfmml.models.persistence import model_from_dict

    docs = json.loads(text)
    gg = docs["gamma_gamma"]
    return model_from_dict(docs["purchase_model"]), None if gg is None else model_from_dict(gg)


def spark_auc(sdf: Any, label: str, score: str) -> float:
    """Exact ROC AUC of ``score`` for the boolean ``label``, computed in Spark.

    Ties count half (as ``sklearn.metrics.roc_auc_score``); NaN when one class is empty.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    hist = sdf.groupBy(F.col(score).alias("s")).agg(
        F.count_if(F.col(label)).alias("pos"), F.count_if(~F.col(label)).alias("neg")
    )
    below = Window.orderBy("s").rowsBetween(Window.unboundedPreceding, -1)
    hist = hist.withColumn("below", F.coalesce(F.sum("neg").over(below), F.lit(0)))
    pairs = F.col("pos").cast("double") * (F.col("below").cast("double") + F.col("neg") / 2.0)
    row = hist.agg(
        F.sum(pairs).alias("u"), F.sum("pos").alias("p"), F.sum("neg").alias("n")
    ).first()
    assert row is not None  # a global aggregate has one row
    p, n = int(row["p"] or 0), int(row["n"] or 0)
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
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, DoubleType, StructField, StructType

    from rfmml.models.persistence import model_to_dict

    spend = gamma_gamma is not None
    needed = _check(cal_holdout, spend)
    attrs = frame_attrs(cal_holdout)
    repeat = F.col("frequency_cal").cast("double") > 0
    head = [F.count(F.lit(1)).alias("n")]
    if spend:
        value = F.col("monetary_value_cal").cast("double")
        head.append(F.avg(F.when(repeat, value)).alias("population"))
    first = cal_holdout.agg(*head).first()
    assert first is not None
    if int(first["n"]) == 0:
        raise DataError("cal_holdout is empty (0 customers); nothing to evaluate.")
    population = None
    if spend:
        population = np.nan if first["population"] is None else float(first["population"])
    text = json.dumps(
        {
            "purchase_model": model_to_dict(bgnbd),
            "gamma_gamma": None if gamma_gamma is None else model_to_dict(gamma_gamma),
        },
        allow_nan=False,
    )
    columns = ["actual_purchases", "model_purchases", "baseline_purchases", "bought_again",
               "model_probability", "baseline_probability"]  # fmt: skip
    if spend:
        columns += ["actual_spend", "model_spend", "baseline_spend"]
    batch_attrs = {k: attrs[k] for k in ("freq",) if k in attrs}

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model, gg = _models(text)
        for batch in batches:
            if not len(batch):
                continue
            frame = batch[needed].astype("float64")
            frame.attrs = dict(batch_attrs)
            pred = holdout_frame(model, gg, frame, population)[columns]
            pred["frequency_cal"] = frame["frequency_cal"].to_numpy()
            yield pred.reset_index(drop=True)

    schema = StructType(
        [
            StructField(c, BooleanType() if c == "bought_again" else DoubleType(), True)
            for c in [*columns, "frequency_cal"]
        ]
    )
    pred = cal_holdout.select(*needed).mapInPandas(run, schema).cache()
    try:
        actual = F.col("actual_purchases")
        y = F.col("bought_again").cast("double")
        aggs = [F.count(F.lit(1)).alias("n"), F.sum(actual).alias("actual")]
        for name in _NAMES:
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
        totals = {k: float(v) for k, v in row.asDict().items()}
        aucs = {name: spark_auc(pred, "bought_again", f"{name}_probability") for name in _NAMES}
    finally:
        pred.unpersist()
    return holdout_metrics(totals, aucs, freq=attrs.get("freq"))


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
    visits = (
        transactions.filter(ts < F.lit(cut))
        .select(*keys, period_number(ts, freq).alias("p"))
        .distinct()
    )
    firsts = visits.groupBy(*keys).agg(F.min("p").alias("first"))
    cohort = visits.join(firsts.filter(F.col("first") <= cal_period), on=keys, how="inner")
    repeats = cohort.filter(F.col("p") != F.col("first")).groupBy("p").count()
    births = cohort.filter(F.col("p") == F.col("first")).groupBy(F.col("first").alias("p")).count()
    counts = (
        repeats.withColumn("kind", F.lit("repeat"))
        .unionByName(births.withColumn("kind", F.lit("birth")))
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
