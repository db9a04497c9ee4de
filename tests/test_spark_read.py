"""The Spark reader's cleaning options and report, against the pandas reader on the same file.

Every test reads one small real log (CDNOW's first customers, with a status, a
currency, dates outside ``since``/``until``, in the future or isolated (a
mistyped year), mixed-case or padded ids, identical and bad rows added, order
ids and line items; Online Retail's first invoice lines, cancellations included) with
:func:`rfmml.spark_run.read_spark_transactions` and with
:func:`rfmml.data.read_transactions` (``engine="pandas"``, the reference), and
asserts the same kept rows, the same counts per reason, the same flags and the
same notes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.config import DataConfig
from rfmml.data import CleaningReport, online_retail_path, read_transactions
from rfmml.errors import ConfigError, DataError
from rfmml.spark_run import read_spark_transactions

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def base(cdnow_tx) -> pd.DataFrame:
    """CDNOW's first 150 customers (600 rows), text ids, a state and a currency per row."""
    part = cdnow_tx.loc[cdnow_tx["customer_id"] <= 150, ["customer_id", "timestamp", "amount"]]
    part = part.reset_index(drop=True)
    n = len(part)
    states = np.array(["paid", "paid", " Refunded ", "paid", "VOIDED", None, "paid"], dtype=object)
    return part.assign(
        customer_id="c" + part["customer_id"].astype(str),
        state=states[np.arange(n) % len(states)],
        channel=np.where(np.arange(n) % 3 == 0, "web", "shop"),
    )


def _write(frame: pd.DataFrame, folder, name: str = "log.parquet"):
    path = folder / name
    frame.to_parquet(path, index=False)
    return path


def _write_as(frame: pd.DataFrame, folder, kind: str):
    """``frame`` written as ``log.csv`` (kind ``csv``) or as Parquet (:func:`_write`)."""
    if kind == "csv":
        path = folder / "log.csv"
        frame.to_csv(path, index=False)
        return path
    return _write(frame, folder)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = list(frame.columns)
    return frame.sort_values(keys, ignore_index=True)


def _read_both(spark, path, *, observation_end=None, allow_end_beyond_data=False, **options):
    """Both readers on ``path`` with the [data] ``options``: (spark rows, report, pandas ...)."""
    cfg = DataConfig(source=str(path), **options)
    report = CleaningReport()
    ends = {"observation_end": observation_end, "allow_end_beyond_data": allow_end_beyond_data}
    rows = read_spark_transactions(spark, cfg, report=report, **ends)
    want, expected = read_transactions(path, engine="pandas", **cfg.reader_options(), **ends)
    return rows, report, want, expected


def _read_both_warned(spark, path, warned: str, **options):
    """:func:`_read_both` where both readers warn ``warned`` (a regular expression)."""
    with pytest.warns(UserWarning, match=warned) as caught:
        cfg = DataConfig(source=str(path), **options)
        report = CleaningReport()
        rows = read_spark_transactions(spark, cfg, report=report)
    spark_warnings = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    with pytest.warns(UserWarning, match=warned) as caught:
        want, expected = read_transactions(path, engine="pandas", **cfg.reader_options())
    pandas_warnings = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert [m for m in spark_warnings if m in report.notes] == [
        m for m in pandas_warnings if m in expected.notes
    ]
    return rows, report, want, expected


def _assert_same(rows, report: CleaningReport, want: pd.DataFrame, expected: CleaningReport):
    """The same rows kept, the same counts per reason, the same flags (zero amounts, identical
    and isolated rows), the same rows merged and the very same notes, in the same order.
    ``rows``: a Spark frame, or its rows collected."""
    got = rows if isinstance(rows, pd.DataFrame) else rows.toPandas()
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(_sorted(got), _sorted(want), check_dtype=False)
    assert report.rows_in == expected.rows_in
    assert report.rows_out == expected.rows_out == len(want)
    for reason, n in report.removed.items():
        assert expected.removed.get(reason) == n, (reason, report.removed, expected.removed)
    removed = {k: v for k, v in expected.removed.items() if v}
    assert {k: v for k, v in report.removed.items() if v} == removed
    assert report.flagged == expected.flagged
    assert report.merged == expected.merged
    assert report.notes == expected.notes
    report.check()


def test_since_and_until_match_pandas(spark, base, tmp_path):
    frame = base.copy()
    frame.loc[::25, "timestamp"] = pd.Timestamp("1990-05-01")  # mistyped years, both ends
    frame.loc[7::40, "timestamp"] = pd.Timestamp("2009-05-01 10:30")
    path = _write(frame[["customer_id", "timestamp", "amount"]], tmp_path)
    rows, report, want, expected = _read_both(spark, path, since="1997-01-05",
                                               until="1998-03-31")  # fmt: skip
    _assert_same(rows, report, want, expected)
    assert report.removed["dated before 1997-01-05 (since)"] > 24
    assert report.removed["dated after 1998-03-31 (until)"] > 15


def test_since_and_until_on_a_csv_with_text_dates_match_pandas(spark, base, tmp_path):
    frame = base[["customer_id", "timestamp", "amount"]].copy()
    frame.loc[::30, "timestamp"] = pd.Timestamp("1991-01-01")
    path = tmp_path / "log.csv"
    frame.to_csv(path, index=False)
    cfg = DataConfig(source=str(path), since="1997-01-10", until="1997-12-31 12:00")
    report = CleaningReport()
    got = read_spark_transactions(spark, cfg, report=report).toPandas()
    want, expected = read_transactions(path, engine="pandas", **cfg.reader_options())
    got = got.assign(timestamp=pd.to_datetime(got["timestamp"]))
    pd.testing.assert_frame_equal(_sorted(got), _sorted(want), check_dtype=False)
    assert report.removed == {k: v for k, v in expected.removed.items() if k in report.removed}
    assert report.removed["dated before 1997-01-10 (since)"] > 0
    assert report.removed["dated after 1997-12-31 12:00:00 (until)"] > 0
    assert report.rows_out == expected.rows_out


def test_status_matches_pandas(spark, base, tmp_path):
    path = _write(base, tmp_path)
    rows, report, want, expected = _read_both(
        spark, path, status="state", exclude_status=["refunded", "Voided", "lost"]
    )
    _assert_same(rows, report, want, expected)
    reason = "state 'refunded', 'Voided', 'lost' (not a purchase)"
    assert report.removed[reason] == expected.removed[reason] > 100
    assert any("no row has the state(s) ['lost']" in note for note in report.notes)


def test_exclude_status_as_one_string_matches_pandas(spark, base, tmp_path):
    path = _write(base, tmp_path)
    rows, report, want, expected = _read_both(spark, path, status="state",
                                               exclude_status="refunded, voided")  # fmt: skip
    _assert_same(rows, report, want, expected)


def test_status_without_excluded_states_is_refused_as_by_pandas(spark, base, tmp_path):
    path = _write(base, tmp_path)
    with pytest.raises(DataError, match="needs the states whose rows are not purchases"):
        read_spark_transactions(spark, DataConfig(source=str(path), status="state"))


def _with_currencies(base: pd.DataFrame, column: str = "currency") -> pd.DataFrame:
    codes = np.array(["EUR", "eur ", "EUR", "USD", "EUR", "", None, "EUR"], dtype=object)
    return base.assign(**{column: codes[np.arange(len(base)) % len(codes)]})


def test_currency_matches_pandas(spark, base, tmp_path):
    path = _write(_with_currencies(base), tmp_path)
    rows, report, want, expected = _read_both(spark, path, currency="eur")
    _assert_same(rows, report, want, expected)
    assert report.removed["currency not 'EUR'"] == expected.removed["currency not 'EUR'"] > 150
    assert any("amounts in EUR (column 'currency')" in note for note in report.notes)


def test_currency_column_matches_pandas(spark, base, tmp_path):
    path = _write(_with_currencies(base, "Devise"), tmp_path)
    rows, report, want, expected = _read_both(spark, path, currency="USD",
                                               currency_column="Devise")  # fmt: skip
    _assert_same(rows, report, want, expected)
    assert report.removed["Devise not 'USD'"] == expected.removed["Devise not 'USD'"]


def test_one_currency_is_noted_as_by_pandas(spark, base, tmp_path):
    frame = base.assign(currency=np.where(np.arange(len(base)) % 9 == 0, None, "gbp"))
    path = _write(frame, tmp_path)
    rows, report, want, expected = _read_both(spark, path)
    _assert_same(rows, report, want, expected)
    assert "amounts in GBP (column 'currency'); 67 rows leave the currency blank" in report.notes


@pytest.mark.parametrize("column", ["currency", "money"])
def test_several_currencies_are_refused_with_the_pandas_message(spark, base, tmp_path, column):
    path = _write(_with_currencies(base, column), tmp_path)
    options = {} if column == "currency" else {"currency_column": column}
    cfg = DataConfig(source=str(path), **options)
    with pytest.raises(DataError) as pandas_error:
        read_transactions(path, engine="pandas", **cfg.reader_options())
    with pytest.raises(DataError) as spark_error:
        read_spark_transactions(spark, cfg)
    message = str(spark_error.value)
    assert message == str(pandas_error.value)
    assert f"column {column!r} holds 2 currencies: 'EUR' (" in message
    assert "'USD' (75 rows), blank (150 rows)" in message


def test_a_currency_the_log_lacks_is_refused_as_by_pandas(spark, base, tmp_path):
    path = _write(_with_currencies(base), tmp_path)
    with pytest.raises(DataError, match=r"currency='CHF': column 'currency' has no row in CHF"):
        read_spark_transactions(spark, DataConfig(source=str(path), currency="CHF"))


def _mixed_case(base: pd.DataFrame) -> pd.DataFrame:
    ids = base["customer_id"].str.upper().where(np.arange(len(base)) % 4 == 1, base["customer_id"])
    return base.assign(customer_id=ids.str.replace("C1", "Cx1", regex=False))


@pytest.mark.parametrize("normalize", [True, False])
def test_normalize_ids_matches_pandas(spark, base, tmp_path, normalize):
    path = _write(_mixed_case(base)[["customer_id", "timestamp", "amount"]], tmp_path)
    rows, report, want, expected = _read_both(spark, path, normalize_ids=normalize,
                                               drop_duplicates=True)  # fmt: skip
    _assert_same(rows, report, want, expected)
    case_notes = [n for n in expected.notes if n.startswith("customer_id: ")]
    assert case_notes and report.notes == case_notes
    if normalize:
        assert rows.filter("customer_id <> lower(customer_id)").count() == 0


def test_existing_drops_are_counted_as_by_pandas(spark, base, tmp_path):
    """Missing group, missing amount, negative, zero and identical rows: each counted."""
    frame = base[["customer_id", "timestamp", "amount", "channel"]].copy()
    n = len(frame)
    frame.loc[np.arange(n) % 11 == 0, "channel"] = None
    frame.loc[np.arange(n) % 13 == 5, "amount"] = -frame["amount"]
    frame.loc[np.arange(n) % 17 == 3, "amount"] = 0.0
    frame.loc[np.arange(n) % 19 == 4, "amount"] = np.nan
    frame.loc[np.arange(n) % 23 == 6, "customer_id"] = None
    frame = pd.concat([frame, frame.iloc[100:140]], ignore_index=True)  # an export appended twice
    path = _write(frame, tmp_path)
    for zero in (True, False):
        rows, report, want, expected = _read_both(spark, path, group="channel",
                                                   drop_zero_amounts=zero,
                                                   drop_duplicates=True)  # fmt: skip
        _assert_same(rows, report, want, expected)
        for reason in ("missing channel", "missing amount", "missing customer_id",
                       "negative amount (return or cancellation)",
                       "identical to an earlier row"):  # fmt: skip
            assert report.removed[reason] == expected.removed[reason] > 0, reason
        if zero:
            assert report.removed["zero amount"] == expected.removed["zero amount"] > 0
        else:
            assert report.flagged["zero amount"] == expected.flagged["zero amount"] > 0


def test_all_options_at_once_match_pandas(spark, base, tmp_path):
    frame = _with_currencies(_mixed_case(base))
    frame.loc[::29, "timestamp"] = pd.Timestamp("1992-02-02")
    frame.loc[3::31, "amount"] = -5.0
    frame = pd.concat([frame, frame.iloc[:30]], ignore_index=True)
    path = _write(frame, tmp_path)
    rows, report, want, expected = _read_both(
        spark, path, group="channel", status="state", exclude_status="refunded",
        currency="EUR", since="1997-01-03", until="1998-01-31", normalize_ids=True,
        drop_zero_amounts=True, drop_duplicates=True,
    )  # fmt: skip
    _assert_same(rows, report, want, expected)
    assert list(report.removed) == [k for k in expected.removed if k in report.removed]


def test_observation_end_rows_are_counted(spark, base, tmp_path):
    path = _write(base[["customer_id", "timestamp", "amount"]], tmp_path)
    report = CleaningReport()
    cfg = DataConfig(source=str(path))
    rows = read_spark_transactions(spark, cfg, report=report, observation_end="1997-06-30")
    want, expected = read_transactions(path, engine="pandas", observation_end="1997-06-30",
                                       allow_end_beyond_data=True)  # fmt: skip
    _assert_same(rows, report, want, expected)
    assert report.removed["after the observation end 1997-06-30"] > 0


def test_without_a_report_the_frame_is_the_same(spark, base, tmp_path):
    path = _write(_with_currencies(_mixed_case(base)), tmp_path)
    cfg = DataConfig(source=str(path), currency="EUR", since="1997-02-01", normalize_ids=True,
                     status="state", exclude_status="voided")  # fmt: skip
    plain = read_spark_transactions(spark, cfg).toPandas()
    reported = read_spark_transactions(spark, cfg, report=CleaningReport()).toPandas()
    pd.testing.assert_frame_equal(_sorted(plain), _sorted(reported))


def test_negative_amounts_error_counts_the_rows(spark, base, tmp_path):
    frame = base[["customer_id", "timestamp", "amount"]].copy()
    frame.loc[:4, "amount"] = -1.0
    path = _write(frame, tmp_path)
    with pytest.raises(DataError, match=r"column 'amount': 5 of 600 rows are negative"):
        read_spark_transactions(spark, DataConfig(source=str(path), negative_amounts="error"))


@pytest.mark.parametrize(
    "options, named",
    [
        ({"sample_customers": 10}, "sample_customers"),
        ({"decimal": ","}, "decimal"),
        ({"negative_amounts": "net"}, "negative_amounts = 'net'"),
    ],
)
def test_options_it_does_not_offer_are_still_refused(options, named):
    with pytest.raises(ConfigError, match="not offered by engine = 'spark'") as error:
        read_spark_transactions(None, DataConfig(source="x.parquet", **options))
    assert named in str(error.value)


def _future(days: int, hour: int = 0) -> pd.Timestamp:
    return pd.Timestamp.now().normalize() + pd.Timedelta(days=days, hours=hour)


def test_future_rows_are_removed_and_noted_as_by_pandas(spark, base, tmp_path):
    frame = base[["customer_id", "timestamp", "amount"]].copy()
    frame.loc[4::50, "timestamp"] = _future(3)  # after tomorrow: removed
    frame.loc[9::150, "timestamp"] = _future(400, 5)
    frame.loc[7::120, "timestamp"] = _future(1, 12)  # tomorrow: kept
    frame.loc[[4, 54], "amount"] = -1.0  # negative and after tomorrow: counted in the future
    path = _write(frame, tmp_path)
    rows, report, want, expected = _read_both_warned(spark, path, "dated in the future")
    _assert_same(rows, report, want, expected)
    reason = f"dated in the future (after {_future(1).date()})"
    assert report.removed[reason] == expected.removed[reason] == 12 + 4
    assert any(n.startswith("removed 16 of 600 rows dated in the future") for n in report.notes)


def test_future_rows_after_since_and_until_are_noted_as_by_pandas(spark, base, tmp_path):
    frame = base[["customer_id", "timestamp", "amount"]].copy()
    frame.loc[::40, "timestamp"] = _future(30)
    frame.loc[1::40, "timestamp"] = pd.Timestamp("1990-01-01")
    path = _write(frame, tmp_path)
    rows, report, want, expected = _read_both_warned(spark, path, "dated in the future",
                                                     since="1997-01-01")  # fmt: skip
    _assert_same(rows, report, want, expected)
    assert "rows dated in the future" in report.notes[0] and len(report.notes) == 1


def _padded(base: pd.DataFrame) -> pd.DataFrame:
    n = np.arange(len(base))
    ids = base["customer_id"].where(n % 5 != 2, "  " + base["customer_id"] + " ")
    ids = ids.where(n % 7 != 3, base["customer_id"].str.upper() + "\t")
    return base.assign(customer_id=ids.where(n % 11 != 6, " \r\n"))  # blank: missing


@pytest.mark.parametrize("normalize", [False, True])
def test_ids_with_spaces_around_them_are_trimmed_as_by_pandas(spark, base, tmp_path, normalize):
    path = _write(_padded(base), tmp_path)
    rows, report, want, expected = _read_both(spark, path, status="state",
                                               exclude_status="voided",
                                               normalize_ids=normalize)  # fmt: skip
    _assert_same(rows, report, want, expected)
    trimmed = [n for n in report.notes if "ids had leading or trailing spaces" in n]
    assert len(trimmed) == 1 and trimmed[0].startswith("customer_id: 156 ids had leading")
    assert "('  c2 ' -> 'c2')" in trimmed[0]
    assert any("upper/lower case" in n or "lower-cased" in n for n in report.notes)
    assert rows.filter("customer_id <> trim(customer_id)").count() == 0


def _isolated(base: pd.DataFrame) -> pd.DataFrame:
    frame = base[["customer_id", "timestamp", "amount"]].copy()
    old = ["1907-03-02", "1907-01-05 08:00", "1907-04-01"]
    frame.loc[[20, 300, 410], "timestamp"] = [pd.Timestamp(t) for t in old]
    frame.loc[20, "amount"] = -3.0  # negative: removed later, still part of the log then
    late = ["2008-02-03", "2008-01-09 17:30"]
    frame.loc[[55, 500], "timestamp"] = [pd.Timestamp(t) for t in late]
    return frame


def test_isolated_dates_are_flagged_as_by_pandas(spark, base, tmp_path):
    path = _write(_isolated(base), tmp_path)
    rows, report, want, expected = _read_both_warned(spark, path, "isolated timestamps")
    _assert_same(rows, report, want, expected)
    assert report.flagged["dated over a year apart from the rest of the log"] == 5
    note = report.notes[-1]
    assert "3 of 600 rows are dated over a year before the rest of the log" in note
    assert "customer_id='c5' at 1907-03-02 00:00:00" in note  # a negative row
    assert "2 of 600 rows are dated over a year after the rest of the log" in note
    assert "customer_id='c19' at 2008-02-03 00:00:00" in note


def test_more_old_rows_than_a_typo_are_not_flagged_as_by_pandas(spark, base, tmp_path):
    frame = base[["customer_id", "timestamp", "amount"]].copy()
    frame.loc[::90, "timestamp"] = pd.Timestamp("1990-06-01")  # 7 rows: more than the limit
    path = _write(frame, tmp_path)
    rows, report, want, expected = _read_both(spark, path)
    _assert_same(rows, report, want, expected)
    assert "dated over a year apart from the rest of the log" not in report.flagged


def test_an_observation_end_far_past_the_data_is_refused_as_by_pandas(spark, base, tmp_path):
    path = _write(base[["customer_id", "timestamp", "amount"]], tmp_path)
    cfg = DataConfig(source=str(path))
    with pytest.raises(DataError) as pandas_error:
        read_transactions(path, engine="pandas", observation_end="1999-03-31")
    for report in (CleaningReport(), None):  # refused without a report too
        with pytest.raises(DataError) as spark_error:
            read_spark_transactions(spark, cfg, report=report, observation_end="1999-03-31")
        assert str(spark_error.value) == str(pandas_error.value)
    assert "is 277 days after the last transaction" in str(spark_error.value)
    rows, report, want, expected = _read_both(spark, path, observation_end="1999-03-31",
                                               allow_end_beyond_data=True)  # fmt: skip
    _assert_same(rows, report, want, expected)
    assert report.notes[-1].startswith("observation end 1999-03-31 is 277 days after the last")
    rows, report, want, expected = _read_both(spark, path, observation_end="1998-09-01")
    _assert_same(rows, report, want, expected)  # within the margin: no note
    assert not report.notes


def test_identical_rows_are_flagged_when_kept_as_by_pandas(spark, base, tmp_path):
    frame = base[["customer_id", "timestamp", "amount", "channel"]]
    frame = pd.concat([frame, frame.iloc[200:260], frame.iloc[200:210]], ignore_index=True)
    frame.loc[len(frame) - 1, "channel"] = "phone"  # identical but for the group
    path = _write(frame, tmp_path)
    for group in (None, "channel"):
        rows, report, want, expected = _read_both(spark, path, group=group)
        _assert_same(rows, report, want, expected)
        n = 70 if group is None else 69
        assert report.flagged["identical to an earlier row"] == n
        assert rows.count() == len(want) == 670


@pytest.mark.parametrize(("factor", "kind"), [(1, "parquet"), (1000, "parquet"), (1000, "csv")])
def test_unix_time_is_read_as_by_pandas(spark, base, tmp_path, factor, kind):
    """timestamp_format='%s': seconds, or milliseconds when every value is (JSON's unit)."""
    seconds = (base["timestamp"] - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    frame = base.drop(columns="state").assign(timestamp=(seconds + 3600) * factor)
    path = _write_as(frame, tmp_path, kind)
    rows, report, want, expected = _read_both(spark, path, timestamp_format="%s")
    _assert_same(rows, report, want, expected)
    unit = "seconds" if factor == 1 else "milliseconds"
    assert f"timestamps read as {unit} since 1970-01-01 UTC, in UTC wall-clock time" in (
        report.notes
    )
    assert report.time_zone == expected.time_zone == "UTC"


def test_unix_time_that_is_not_a_number_is_refused_as_by_pandas(spark, base, tmp_path):
    seconds = (base["timestamp"] - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    frame = base.drop(columns="state").assign(timestamp=seconds.astype(str))
    frame.loc[5, "timestamp"] = "yesterday"
    path = tmp_path / "log.csv"
    frame.to_csv(path, index=False)
    message = r"column 'timestamp': 1 of 600 values are not seconds since 1970-01-01"
    with pytest.raises(DataError, match=message):
        read_spark_transactions(spark, DataConfig(source=str(path), timestamp_format="%s"))
    with pytest.raises(DataError, match=message):
        read_transactions(path, timestamp_format="%s")


def test_seconds_and_milliseconds_mixed_are_refused_as_by_pandas(spark, base, tmp_path):
    seconds = (base["timestamp"] - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    mixed = seconds.where(base.index % 4 != 0, seconds * 1000)
    path = _write(base.drop(columns="state").assign(timestamp=mixed), tmp_path)
    message = r"column 'timestamp': 150 of 600 values are past the year 5000 .* finer unit mixed"
    with pytest.raises(DataError, match=message):
        read_spark_transactions(spark, DataConfig(source=str(path), timestamp_format="%s"))
    with pytest.raises(DataError, match=message):
        read_transactions(path, timestamp_format="%s")


RETAIL = {"customer": "CustomerID", "timestamp": "InvoiceDate", "order": "InvoiceNo",
          "quantity": "Quantity", "price": "UnitPrice", "cancellation_prefix": "C"}  # fmt: skip


@pytest.fixture(scope="module")
def retail_lines() -> pd.DataFrame:
    """Online Retail's first 8,000 invoice lines (cancellations 'C...', lines without a
    customer id), customer ids as integers."""
    lines = pd.read_parquet(online_retail_path()).iloc[:8000]
    return lines.assign(CustomerID=lines["CustomerID"].astype("Int64"))


def _csv_rows(rows) -> pd.DataFrame:
    """A CSV read's rows as the pandas reader returns them (the Spark reader keeps text times)."""
    got = rows.toPandas()
    return got.assign(timestamp=pd.to_datetime(got["timestamp"]))


@pytest.mark.parametrize("kind", ["parquet", "csv"])
@pytest.mark.parametrize(
    "options",
    [{}, {"drop_duplicates": True}, {"group": "Country", "drop_zero_amounts": True},
     {"cancellation_prefix": None}, {"observation_end": "2010-12-05"}],
)  # fmt: skip
def test_invoice_lines_match_pandas(spark, retail_lines, tmp_path, kind, options):
    """Line items (quantity x price) summed per invoice, cancellations made returns."""
    path = _write_as(retail_lines, tmp_path, kind)
    options = {**RETAIL, **options}
    if options["cancellation_prefix"] is None:
        del options["cancellation_prefix"]
    ends = {"observation_end": options.pop("observation_end", None),
            "allow_end_beyond_data": True}  # fmt: skip
    rows, report, want, expected = _read_both(spark, path, **options, **ends)
    if kind == "csv":
        rows = _csv_rows(rows)
    _assert_same(rows, report, want, expected)
    assert report.merged == expected.merged
    assert report.merged["order lines summed into one row per order"] > 5000
    assert report.to_frame().equals(expected.to_frame())
    if "cancellation_prefix" in options:
        assert any("rows of cancellation orders (id starting with 'C')" in n for n in report.notes)
    assert report.removed["negative amount (return or cancellation)"] > 0


def test_invoice_lines_without_amounts_drop_cancellations_as_by_pandas(
    spark, retail_lines, tmp_path
):
    path = _write(retail_lines, tmp_path)
    options = {"customer": "CustomerID", "timestamp": "InvoiceDate", "order": "InvoiceNo",
               "amount": "", "cancellation_prefix": "C"}  # fmt: skip
    rows, report, want, expected = _read_both(spark, path, **options)
    _assert_same(rows, report, want, expected)
    assert report.to_frame().equals(expected.to_frame())
    assert report.removed["cancellation order (id starting with 'C')"] > 80
    assert list(rows.columns) == ["customer_id", "timestamp", "order_id"]


def _with_orders(cdnow_tx: pd.DataFrame, *, loose: int = 7) -> pd.DataFrame:
    """CDNOW's first 150 customers with an order id per customer and month (several lines
    share one), every ``loose``-th row without an order id, and a line-item split of the
    amount (``n_items`` x the unit price)."""
    part = cdnow_tx.loc[cdnow_tx["customer_id"] <= 150].reset_index(drop=True)
    month = part["timestamp"].dt.year * 100 + part["timestamp"].dt.month
    order = (part["customer_id"] * 1_000_000 + month).astype("Int64")
    order = order.where(np.arange(len(part)) % loose != 3)
    return part.assign(customer_id="c" + part["customer_id"].astype(str), order=order,
                       price=(part["amount"] / part["n_items"]).round(4))  # fmt: skip


@pytest.mark.parametrize("kind", ["parquet", "csv"])
@pytest.mark.parametrize("line_items", [False, True])
def test_orders_with_rows_without_an_order_id_match_pandas(spark, cdnow_tx, tmp_path, kind,
                                                           line_items):  # fmt: skip
    frame = _with_orders(cdnow_tx)
    frame.loc[5::37, "amount"] = -frame["amount"]  # a return inside an order
    frame.loc[::41, "price"] = np.nan  # a line without a price
    path = _write_as(frame, tmp_path, kind)
    values = {"quantity": "n_items", "price": "price"} if line_items else {}
    rows, report, want, expected = _read_both(spark, path, order="order", **values)
    if kind == "csv":
        rows = _csv_rows(rows)
    _assert_same(rows, report, want, expected)
    assert report.to_frame().equals(expected.to_frame())
    assert int(want["order_id"].isna().sum()) > 50  # kept as rows of their own
    assert report.merged["order lines summed into one row per order"] > 20
    if line_items:
        assert report.removed["missing n_items or price"] == 15


def test_copied_orders_are_noted_as_by_pandas(spark, cdnow_tx, tmp_path):
    """A file holding its rows twice: orders of one line repeated, summed with a note."""
    frame = _with_orders(cdnow_tx)
    frame = pd.concat([frame, frame], ignore_index=True)
    path = _write(frame, tmp_path)
    for drop in (False, True):
        rows, report, want, expected = _read_both(spark, path, order="order",
                                                   drop_duplicates=drop)  # fmt: skip
        _assert_same(rows, report, want, expected)
        assert report.to_frame().equals(expected.to_frame())
        copied = [n for n in report.notes if "orders consist of one line repeated" in n]
        assert len(copied) == 1 and "first: order '1199701'" in copied[0]


def test_status_removes_whole_orders_as_by_pandas(spark, cdnow_tx, tmp_path):
    frame = _with_orders(cdnow_tx)
    states = np.array(["paid", None, None, "refunded", "paid", None], dtype=object)
    frame = frame.assign(state=states[np.arange(len(frame)) % len(states)])
    path = _write(frame, tmp_path)
    rows, report, want, expected = _read_both(
        spark, path, order="order", status="state", exclude_status="refunded", drop_duplicates=True
    )
    _assert_same(rows, report, want, expected)
    assert report.to_frame().equals(expected.to_frame())
    assert report.removed["state 'refunded' (not a purchase)"] > len(frame) // 6


def test_negative_orders_with_negative_amounts_error_are_refused(spark, retail_lines, tmp_path):
    path = _write(retail_lines, tmp_path)
    cfg = DataConfig(source=str(path), negative_amounts="error", **RETAIL)
    with pytest.raises(DataError, match=r"column 'UnitPrice': 38 of 377 rows are negative"):
        read_spark_transactions(spark, cfg)


@pytest.mark.parametrize("kind", ["parquet", "csv"])
@pytest.mark.parametrize(
    "columns", [["customer_id"], ["timestamp"], ["customer_id", "timestamp", "amount"]]
)
def test_order_lines_without_their_orders_fields_are_filled_as_by_pandas(
    spark, cdnow_tx, tmp_path, columns, kind
):
    """Fields on an order's first line only (a shop export): the other lines take them."""
    frame = _with_orders(cdnow_tx)
    later = frame["order"].notna() & frame.duplicated("order", keep="first")
    frame.loc[later, columns] = None
    first = frame.index[frame["order"].notna() & ~later][5]
    frame.loc[first, "amount"] = np.nan  # an order whose total is on no line: its lines removed
    path = _write_as(frame, tmp_path, kind)
    rows, report, want, expected = _read_both(spark, path, order="order")
    if kind == "csv":
        rows = _csv_rows(rows)
    _assert_same(rows, report, want, expected)
    assert report.to_frame().equals(expected.to_frame())
    (note,) = [n for n in report.notes if "took them from the order's other lines" in n]
    assert note.startswith(f"{int(later.sum()):,} order lines without their order's")
    assert report.removed["missing customer_id"] == 0


def test_a_shop_export_with_fields_on_first_lines_only_matches_pandas(spark, cdnow_tx, tmp_path):
    """Shopify-like: customer, time, state and currency on an order's first line only; orders
    refunded on that line go whole, the others' lines take the first line's fields."""
    frame = _with_orders(cdnow_tx, loose=1000)
    n = np.arange(len(frame))
    frame = frame.assign(state=np.where(n % 9 == 4, "refunded", "paid"),
                         Currency=np.where(n % 13 == 2, "USD", "EUR"))  # fmt: skip
    later = frame.duplicated("order", keep="first")
    frame.loc[later, ["customer_id", "timestamp", "state", "Currency"]] = None
    path = tmp_path / "orders.csv"
    frame.drop(columns="amount").to_csv(path, index=False)
    rows, report, want, expected = _read_both(
        spark, path, order="order", quantity="n_items", price="price", status="state",
        exclude_status="refunded", currency="EUR", drop_duplicates=True,
    )  # fmt: skip
    _assert_same(_csv_rows(rows), report, want, expected)
    assert report.to_frame().equals(expected.to_frame())
    assert report.removed["state 'refunded' (not a purchase)"] > 60
    assert report.removed["Currency not 'EUR'"] > 20
    assert any("customer id or time (or currency)" in note for note in report.notes)


def test_float_order_ids_are_refused(spark, cdnow_tx, tmp_path):
    frame = _with_orders(cdnow_tx)
    path = _write(frame.assign(order=frame["order"].astype(float)), tmp_path)
    with pytest.raises(DataError, match=r"column 'order': order ids of type double"):
        read_spark_transactions(spark, DataConfig(source=str(path), order="order"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cancellation_prefix": "C"}, "cancellation_prefix= needs the order id column"),
        ({"quantity": "n_items", "price": "price", "amount": "amount_paid"},
         "map either amount="),
    ],
)  # fmt: skip
def test_line_options_are_checked_as_by_pandas(spark, options, message):
    with pytest.raises(DataError, match=message):
        read_spark_transactions(spark, DataConfig(source="x.parquet", **options))


def test_identical_orders_keep_the_first_order_id_as_by_pandas(spark, cdnow_tx, tmp_path):
    """Orders exported twice under new ids: with drop_duplicates the first order id stays."""
    frame = _with_orders(cdnow_tx)
    again = frame.iloc[::-1].assign(order=frame["order"].iloc[::-1] + 500_000)  # renumbered
    path = _write(pd.concat([frame, again], ignore_index=True), tmp_path)
    rows, report, want, expected = _read_both(spark, path, order="order", drop_duplicates=True)
    _assert_same(rows, report, want, expected)
    assert report.to_frame().equals(expected.to_frame())
    assert report.removed["identical to an earlier row"] > 200
    assert not set(want["order_id"].dropna()) & set(again["order"].dropna())


def test_a_line_takes_the_first_of_its_orders_values_as_by_pandas(spark, cdnow_tx, tmp_path):
    """An order's lines disagree: a line without a customer id and time takes the first line's
    (in the file), not a later line's."""
    frame = _with_orders(cdnow_tx, loose=1000)
    line = frame.groupby("order").cumcount().to_numpy()
    frame.loc[line == 1, ["customer_id", "timestamp"]] = None
    frame.loc[line == 2, "customer_id"] = "c" + frame.loc[line == 2, "customer_id"] + "-b"
    frame.loc[line == 2, "timestamp"] -= pd.Timedelta(days=40)
    path = _write(frame, tmp_path)
    rows, report, want, expected = _read_both(spark, path, order="order")
    _assert_same(rows, report, want, expected)
    assert report.to_frame().equals(expected.to_frame())
    assert want["customer_id"].str.endswith("-b").sum() == (line == 2).sum() > 5
