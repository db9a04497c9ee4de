"""Shared fixtures: real CDNOW data and small hand-made logs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
from hypothesis import settings

from rfmml.data import load_cdnow, load_online_retail

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

# Property tests are deterministic (same examples every run, as fixed seeds are
# elsewhere) and not timed: CI machines are slower and shared.
settings.register_profile("rfmml", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("rfmml")


@pytest.fixture(scope="session")
def cdnow_tx() -> pd.DataFrame:
    """The full CDNOW master log (69,659 rows, 23,570 customers)."""
    return load_cdnow()


@pytest.fixture(scope="session")
def online_retail_tx() -> pd.DataFrame:
    """UCI Online Retail, cleaned, one row per invoice (18,532 rows)."""
    return load_online_retail()


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory):
    """``mlflow_store(path)``: an empty MLflow SQLite store at ``path``, as a tracking URI.

    MLflow builds a new store's tables by running its schema migrations, seconds per
    store; each store here is a copy of one that MLflow built once for the session.
    """
    from mlflow.tracking import MlflowClient

    template = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()

    def make(path: str | Path) -> str:
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"

    return make


@pytest.fixture
def tiny_tx() -> pd.DataFrame:
    """A hand-made log whose features are worked out by hand in the tests."""
    return pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b", "c", "c"],
            "timestamp": pd.to_datetime(
                [
                    "2024-01-01 09:00",
                    "2024-01-01 17:00",  # same day as the first: one period
                    "2024-01-10 12:00",
                    "2024-02-05 08:00",
                    "2024-01-20 10:00",
                    "2024-01-03 10:00",
                    "2024-01-31 23:59",
                ]
            ),
            "amount": [10.0, 5.0, 20.0, 40.0, 7.0, 3.0, 0.0],
        }
    )


#: The driver accepts at most this much from a job's results: the CDNOW log and
#: every per-customer table are larger, so a Spark test that collects one fails.
SPARK_MAX_RESULT = "512k"


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (2 cores) for every Spark test, with a tiny result limit."""
    pytest.importorskip("pyspark")
    import sys
    from pathlib import Path

    from pyspark.sql import SparkSession

    root = str(Path(__file__).resolve().parents[1])  # this checkout's rfmml on the workers
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    os.environ["PYTHONPATH"] = path
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("rfmml-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.driver.maxResultSize", SPARK_MAX_RESULT)
        # a broadcast join collects its small side on the driver (up to 10 MB by
        # default, fine in production); under the tiny limit above joins shuffle
        .config("spark.sql.autoBroadcastJoinThreshold", "-1")
        .config("spark.executorEnv.PYTHONPATH", path)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_tx(spark, cdnow_tx, tmp_path_factory):
    """The CDNOW log as a Spark frame read from Parquet (a real scan, not a local relation)."""
    folder = tmp_path_factory.mktemp("cdnow-parquet") / "tx"
    spark.createDataFrame(cdnow_tx[["customer_id", "timestamp", "amount"]]).write.parquet(
        str(folder)
    )
    return spark.read.parquet(str(folder))


def _spark_mismatches(spark, got, want: pd.DataFrame, keys, rtol: float, atol: float) -> dict:
    """Compare a Spark frame with a pandas one inside Spark; only counts come back."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType

    expected = want.reset_index() if keys[0] not in want.columns else want
    expected = expected.copy()
    for col in expected.columns:
        if isinstance(expected[col].dtype, pd.CategoricalDtype):
            expected[col] = expected[col].astype(str)
    assert list(got.columns) == list(expected.columns), (got.columns, list(expected.columns))
    theirs = spark.createDataFrame(expected)
    a = got.select(*keys, *(F.col(c).alias(f"g_{c}") for c in got.columns if c not in keys))
    b = theirs.select(*keys, *(F.col(c).alias(f"w_{c}") for c in theirs.columns if c not in keys))
    a = a.withColumn("_g", F.lit(True))
    b = b.withColumn("_w", F.lit(True))
    joined = a.join(b, on=keys, how="full_outer")
    aggs = [
        F.count_if(F.col("_g").isNull()).alias("only_want"),
        F.count_if(F.col("_w").isNull()).alias("only_got"),
        F.count(F.lit(1)).alias("rows"),
    ]
    for col in got.columns:
        if col in keys:
            continue
        g, w = F.col(f"g_{col}"), F.col(f"w_{col}")
        if isinstance(got.schema[col].dataType, NumericType):
            g, w = g.cast("double"), w.cast("double")
            close = (g == w) | (F.abs(g - w) <= atol + rtol * F.greatest(F.abs(g), F.abs(w)))
            bad = ~(g.eqNullSafe(w) | F.coalesce(close, F.lit(False)))
        else:
            bad = ~g.eqNullSafe(w)
        aggs.append(F.count_if(bad).alias(col))
    row = joined.agg(*aggs).first().asDict()
    return row


@pytest.fixture(scope="session")
def spark_compare(spark):
    """``compare(spark_frame, pandas_frame, keys, rtol)``: assert equal, computed in Spark."""

    def compare(got, want, keys=("customer_id",), rtol=1e-12, atol=0.0):
        counts = _spark_mismatches(spark, got, want, list(keys), rtol, atol)
        assert counts.pop("rows") == len(want)
        bad = {k: v for k, v in counts.items() if v}
        assert not bad, f"Spark and pandas differ (rows per column): {bad}"

    return compare


#: Test files that use one session-scoped experiment run, by the run: tracking's
#: ``small_run`` and the report's ``run_folder`` (each is seconds of fitting and logging).
SHARED_RUNS = {
    "tests/tracking/test_experiment.py": "small_run",
    "tests/tracking/test_model_choice.py": "small_run",
    "tests/tracking/test_pyfunc.py": "small_run",
    "tests/report/test_build.py": "run_folder",
    "tests/report/test_browser.py": "run_folder",
}


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: pytest without xdist ignores it
def pytest_xdist_make_scheduler(config, log):
    """``make test`` runs two pytest-xdist workers with ``--dist loadfile``: whole files.

    All Spark files (``*spark*.py``) are one unit, so one worker starts the one
    JVM and Spark session they share, as in a single process; so are the files
    of one session-scoped experiment run (:data:`SHARED_RUNS`), built once by the
    worker that gets them; every other file is its own unit, so a module's
    fixtures are built once. Units go out largest first (by number of tests).
    """
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SparkTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            if "spark" in path.rsplit("/", 1)[-1]:
                return "spark"
            return SHARED_RUNS.get(path, path)

    return SparkTogether(config, log)
