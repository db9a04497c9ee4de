"""Shared fixtures: real CDNOW data and small hand-made logs."""

from __future__ import annotations

import os
import shutil
from datetime import date
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
        # the test frames are tiny: compiling each query's generated Java code took a
        # quarter of the Spark tests' time (the same results, interpreted)
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
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


def _as_naive_utc(values: pd.Series) -> pd.Series:
    """Dates and times as naive UTC ``datetime64[ns]``, as Spark compares them.

    The session time zone is UTC: Spark takes a naive pandas time as UTC,
    compares a date with a time as that date's midnight and a
    ``TimestampNTZType`` with a ``TimestampType`` by its wall clock in UTC.
    Parquet gives a ``TimestampType`` back as a naive UTC time (INT96) or a
    UTC-aware one, a ``TimestampNTZType`` as a naive one and a ``DateType`` as
    ``datetime.date`` objects.
    """
    out = pd.to_datetime(values)
    if out.dt.tz is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out.astype("datetime64[ns]")


def _is_temporal(values: pd.Series) -> bool:
    """Whether a column holds dates or times (``datetime64`` or ``datetime.date`` objects)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return True
    present = values.dropna()
    return values.dtype == object and len(present) > 0 and isinstance(present.iloc[0], date)


def _spark_mismatches(
    got, want: pd.DataFrame, keys, rtol: float, atol: float, folder: Path
) -> dict:
    """Count the rows where a Spark frame and a pandas one differ, per column.

    Spark writes ``got`` to the Parquet folder ``folder`` (no row passes the
    driver) and pandas compares it with ``want`` as Spark did a full outer
    join on ``keys`` of ``got`` with ``spark.createDataFrame(want)``:

    - a row with a null key joins nothing (SQL ``=``) and counts as in its
      side only; a key twice on a side joins every pair; a text key is read
      as a number where the other side's key is numeric;
    - numeric Spark columns (``NumericType``, decimals included) are compared
      as float64: equal when both are null, or when ``|g - w| <= atol + rtol
      * max(|g|, |w|)``. A pandas NaN is the oracle's missing value (Arrow
      made it a Spark null), so it equals a Spark null and nothing else; a
      Spark NaN, kept apart from the nulls, equals no oracle value, not even
      within the tolerance (Spark orders NaN above every number, so that
      ``NaN <= NaN`` holds there; in NumPy every comparison with NaN fails);
    - other columns are equal when both are null or both equal, dates and
      times as naive UTC (:func:`_as_naive_utc`).

    Returns
    -------
    dict
        ``only_want`` and ``only_got`` (rows on one side only), ``rows``
        (rows of the join) and, per non-key column, the rows that differ.
    """
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from pandas.api.types import is_numeric_dtype, is_string_dtype
    from pyspark.sql.types import NumericType

    # as in createDataFrame, the index is dropped when the keys are columns
    expected = want.reset_index(drop=keys[0] in want.columns)
    for col in expected.columns:
        if isinstance(expected[col].dtype, pd.CategoricalDtype):
            expected[col] = expected[col].astype(str)
    assert list(got.columns) == list(expected.columns), (got.columns, list(expected.columns))
    numeric = [f.name for f in got.schema.fields if isinstance(f.dataType, NumericType)]
    numeric = [c for c in numeric if c not in keys]
    got.write.mode("overwrite").parquet(str(folder))
    table = pq.read_table(folder).select(list(got.columns))
    mine = table.to_pandas()
    for col in numeric:
        values = table[col].cast("float64")
        mine[col] = values.to_numpy()  # nulls and NaNs both NaN here, told apart by:
        mine[f"_nan_{col}"] = pc.fill_null(pc.is_nan(values), False).to_numpy()
    theirs = expected.astype({col: "float64" for col in numeric})
    for col in got.columns:
        if _is_temporal(mine[col]) or _is_temporal(theirs[col]):
            mine[col], theirs[col] = _as_naive_utc(mine[col]), _as_naive_utc(theirs[col])
    for key in keys:  # a text key meets a numeric one as a number (Spark's ANSI cast)
        for side, other in ((mine, theirs), (theirs, mine)):
            if is_string_dtype(side[key]) and is_numeric_dtype(other[key]):
                side[key] = pd.to_numeric(side[key])
    # a null key equals nothing: such rows stay on their side, as unmatched rows
    unkeyed = {"_g": mine[keys].isna().any(axis=1), "_w": theirs[keys].isna().any(axis=1)}
    joined = mine[~unkeyed["_g"]].merge(
        theirs[~unkeyed["_w"]], on=keys, how="outer", suffixes=("_g", "_w"), indicator=True
    )
    alone = [
        side[unkeyed[suffix]]
        .rename(columns={c: f"{c}{suffix}" for c in got.columns if c not in keys})
        .assign(_merge="left_only" if suffix == "_g" else "right_only")
        for side, suffix in ((mine, "_g"), (theirs, "_w"))
    ]
    joined = pd.concat([joined, *alone], ignore_index=True)
    counts = {
        "only_want": int((joined["_merge"] == "right_only").sum()),
        "only_got": int((joined["_merge"] == "left_only").sum()),
        "rows": len(joined),
    }
    for col in got.columns:
        if col in keys:
            continue
        g, w = joined[f"{col}_g"], joined[f"{col}_w"]
        if col in numeric:
            g, w = g.to_numpy("float64"), w.to_numpy("float64")
            both_null = np.isnan(g) & ~joined[f"_nan_{col}"].eq(True).to_numpy()
            both_null &= np.isnan(w)
            with np.errstate(invalid="ignore"):
                close = np.abs(g - w) <= atol + rtol * np.maximum(np.abs(g), np.abs(w))
            same = both_null | (g == w) | close
        else:
            g_null, w_null = g.isna().to_numpy(), w.isna().to_numpy()
            g = np.where(g_null, None, g.to_numpy(object))
            w = np.where(w_null, None, w.to_numpy(object))
            same = (g_null & w_null) | (~g_null & ~w_null & (g == w))
        counts[col] = int((~same).sum())
    return counts


@pytest.fixture(scope="session")
def spark_mismatches(tmp_path_factory):
    """``mismatches(spark_frame, pandas_frame, keys, rtol, atol)``: the counts, as a dict.

    The counts are those of :func:`_spark_mismatches`; Spark writes the frame
    to a temporary Parquet folder, deleted afterwards.
    """

    def mismatches(got, want, keys=("customer_id",), rtol=1e-12, atol=0.0) -> dict:
        folder = tmp_path_factory.mktemp("spark-compare")
        try:
            return _spark_mismatches(got, want, list(keys), rtol, atol, folder / "got")
        finally:
            shutil.rmtree(folder)

    return mismatches


@pytest.fixture(scope="session")
def spark_compare(spark_mismatches):
    """``compare(spark_frame, pandas_frame, keys, rtol, atol)``: assert they are equal.

    Spark writes the frame to a temporary Parquet folder, deleted afterwards,
    and pandas compares it with the frame (:func:`spark_mismatches`).
    """

    def compare(got, want, keys=("customer_id",), rtol=1e-12, atol=0.0):
        counts = spark_mismatches(got, want, keys, rtol, atol)
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
