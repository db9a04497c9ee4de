"""A logged rfmml model as a Spark UDF, every output column included.

``mlflow.pyfunc.spark_udf`` returns primitive types only (int, long, float,
double, string, boolean and arrays or structs of them): a struct field of type
timestamp or date is refused ("Unsupported field type timestamp in struct
type", ``mlflow.pyfunc._convert_struct_values``). :func:`scoring_udf` asks the
model for its date columns as ``YYYY-MM-DD`` text (the pyfunc parameter
``dates = "iso"``, see :mod:`rfmml.tracking.pyfunc`), lets ``spark_udf`` carry
them as strings, and turns them back into Spark timestamps (null where the
model has no date), so the struct has every column of the model's signature
with the signature's types, as the Parquet table of a Spark run does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlflow

from rfmml.tracking.pyfunc import DATES_PARAM

__all__ = ["scoring_udf"]


def _is_date(data_type: Any) -> bool:
    from pyspark.sql.types import DateType, TimestampNTZType, TimestampType

    return isinstance(data_type, DateType | TimestampType | TimestampNTZType)


def scoring_udf(spark: Any, model_uri: str, *, env_manager: str = "local") -> Callable[..., Any]:
    """``mlflow.pyfunc.spark_udf`` of a logged rfmml model, date columns included.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    model_uri : str
        A model logged by :func:`rfmml.tracking.log_folder_model` (e.g. the
        scoring pipeline of a run).
    env_manager : str, default "local"
        As in ``mlflow.pyfunc.spark_udf``.

    Returns
    -------
    callable
        Called with the input columns (in the order of the signature's
        inputs, as ``spark_udf``), returns a struct column with every output
        column of the signature; date columns are timestamps (midnight of the
        day, in the session time zone), null where the model gives none.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    info = mlflow.models.get_model_info(model_uri)
    if info.signature is None or info.signature.outputs is None:
        raise ValueError(f"{model_uri} has no output signature; log it with log_folder_model")
    fields = info.signature.outputs.as_spark_schema().fields
    dated = {f.name for f in fields if _is_date(f.dataType)}
    result_type = StructType(
        [StructField(f.name, StringType() if f.name in dated else f.dataType, True) for f in fields]
    )
    params = info.signature.params
    takes_dates = params is not None and any(p.name == DATES_PARAM for p in params.params)
    if dated and not takes_dates:
        raise ValueError(
            f"{model_uri} returns date columns {sorted(dated)} but has no {DATES_PARAM!r} "
            "parameter (logged by an older rfmml); score it with mlflow.pyfunc.spark_udf "
            "and a result_type without those columns, or log it again"
        )
    udf = mlflow.pyfunc.spark_udf(
        spark, model_uri, result_type=result_type, env_manager=env_manager,
        params={DATES_PARAM: "iso"} if dated else None,
    )  # fmt: skip

    def apply(*columns: Any) -> Any:
        raw = udf(*columns)
        parts = []
        for field in fields:
            value = raw.getField(field.name)
            if field.name in dated:
                text = F.when(value != F.lit(""), value)
                value = F.to_timestamp(text, "yyyy-MM-dd").cast(field.dataType)
            parts.append(value.alias(field.name))
        return F.struct(*parts)

    return apply
