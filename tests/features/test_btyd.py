"""btyd_summary and calibration_holdout: hand-worked cases, lifetimes parity, properties."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfmml.errors import DataError
from rfmml.features import btyd_summary, calibration_holdout, calibration_summary

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes.utils import (
        calibration_and_holdout_data,
        summary_data_from_transaction_data,
    )

COLS = ["frequency", "recency", "T", "monetary_value"]


@pytest.mark.parametrize(
    ("freq", "expected"),
    [
        # a: purchase days Jan 1 (two orders, 15.0), Jan 10 (20.0), Feb 5 (40.0)
        # b: Jan 20 only; c: Jan 3 (3.0) and Jan 31 (0.0); end = Feb 5
        ("D", {"a": [2, 35, 35, 30.0], "b": [0, 0, 16, 0.0], "c": [1, 28, 33, 0.0]}),
        # Monday weeks: Jan 1 is week 0, Jan 10 week 1, Jan 20 week 2, Jan 31 week 4,
        # Feb 5 week 5
        ("W", {"a": [2, 5, 5, 30.0], "b": [0, 0, 3, 0.0], "c": [1, 4, 5, 0.0]}),
        # months: a buys in Jan (35.0) and Feb (40.0)
        ("M", {"a": [1, 1, 1, 40.0], "b": [0, 0, 1, 0.0], "c": [0, 0, 1, 0.0]}),
    ],
)
def test_summary_worked_by_hand(tiny_tx, freq, expected):
    summary = btyd_summary(tiny_tx, freq=freq)
    want = pd.DataFrame.from_dict(expected, orient="index", columns=COLS, dtype=float)
    want.index.name = "customer_id"
    pd.testing.assert_frame_equal(summary, want)
    assert summary.attrs["freq"] == freq
    assert summary.attrs["observation_end"] == "2024-02-05T08:00:00"


def _lifetimes_summary(tx, freq, end=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = summary_data_from_transaction_data(
            tx, "customer_id", "timestamp", "amount", observation_period_end=end, freq=freq
        )
    return out.sort_index()


@pytest.mark.parametrize("freq", ["D", "W"])
def test_summary_equals_lifetimes_on_cdnow(cdnow_tx, freq):
    ours = btyd_summary(cdnow_tx, freq=freq)
    theirs = _lifetimes_summary(cdnow_tx, freq)
    assert len(ours) == 23_570
    assert ours.index.equals(theirs.index)
    # counts are integers in both: exact; the mean differs only by summation order
    np.testing.assert_array_equal(ours[COLS[:3]].to_numpy(), theirs[COLS[:3]].to_numpy())
    np.testing.assert_allclose(ours["monetary_value"], theirs["monetary_value"], rtol=1e-12)


def test_summary_equals_lifetimes_on_online_retail(online_retail_tx):
    tx = online_retail_tx[["customer_id", "timestamp", "amount"]]
    ours = btyd_summary(tx, freq="D")
    theirs = _lifetimes_summary(tx, "D")
    assert ours.index.equals(theirs.index)
    np.testing.assert_array_equal(ours[COLS[:3]].to_numpy(), theirs[COLS[:3]].to_numpy())
    np.testing.assert_allclose(ours["monetary_value"], theirs["monetary_value"], rtol=1e-12)


def test_observation_end_ignores_later_periods(cdnow_tx):
    ours = btyd_summary(cdnow_tx, observation_end="1997-12-31", freq="W")
    theirs = _lifetimes_summary(cdnow_tx, "W", end="1997-12-31")
    theirs = theirs.loc[ours.index]
    np.testing.assert_allclose(ours.to_numpy(), theirs[COLS].to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("freq", ["D", "W"])
def test_calibration_holdout_equals_lifetimes_on_cdnow(cdnow_tx, freq):
    ours = calibration_holdout(cdnow_tx, "1997-09-30", "1998-06-30", freq=freq)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = calibration_and_holdout_data(
            cdnow_tx,
            "customer_id",
            "timestamp",
            calibration_period_end="1997-09-30",
            observation_period_end="1998-06-30",
            freq=freq,
            monetary_value_col="amount",
        ).sort_index()
    assert [c for c in ours.columns if c != "spend_holdout"] == list(theirs.columns)
    assert ours.index.equals(theirs.index)
    np.testing.assert_allclose(ours[theirs.columns].to_numpy(), theirs.to_numpy(), rtol=1e-12)
    assert ours["duration_holdout"].iloc[0] == (273 if freq == "D" else 39)


def test_calibration_holdout_equals_lifetimes_on_online_retail(online_retail_tx):
    tx = online_retail_tx[["customer_id", "timestamp", "amount"]]
    ours = calibration_holdout(tx, "2011-06-30", "2011-12-09", freq="D")
    # A bare date is the whole day in rfmml; lifetimes compares raw timestamps,
    # so it is given the last microsecond of the day explicitly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = calibration_and_holdout_data(
            tx,
            "customer_id",
            "timestamp",
            calibration_period_end=pd.Timestamp("2011-06-30 23:59:59.999999"),
            observation_period_end=pd.Timestamp("2011-12-09 23:59:59.999999"),
            freq="D",
            monetary_value_col="amount",
        ).sort_index()
    assert ours.index.equals(theirs.index)
    np.testing.assert_allclose(ours[theirs.columns].to_numpy(), theirs.to_numpy(), rtol=1e-12)


def test_calibration_holdout_without_amounts(cdnow_tx):
    tx = cdnow_tx[["customer_id", "timestamp"]]
    out = calibration_holdout(tx, "1997-09-30", "1998-06-30", freq="W")
    assert list(out.columns) == [
        "frequency_cal",
        "recency_cal",
        "T_cal",
        "frequency_holdout",
        "duration_holdout",
    ]
    full = calibration_holdout(cdnow_tx, "1997-09-30", "1998-06-30", freq="W")
    pd.testing.assert_frame_equal(out, full[out.columns])


def test_calibration_holdout_spend_is_the_exact_holdout_total(cdnow_tx):
    out = calibration_holdout(cdnow_tx, "1997-09-30", "1998-06-30", freq="W")
    ts = cdnow_tx["timestamp"]
    rows = cdnow_tx[(ts >= "1997-10-01") & (ts < "1998-07-01")]
    exact = rows.groupby("customer_id")["amount"].sum().reindex(out.index, fill_value=0.0)
    np.testing.assert_allclose(out["spend_holdout"], exact, rtol=1e-12)
    # frequency counts purchase periods, so periods x mean value is only an approximation
    approx = out["frequency_holdout"] * out["monetary_value_holdout"]
    assert (approx != out["spend_holdout"]).any()


def test_calibration_end_must_precede_observation_end(cdnow_tx):
    with pytest.raises(ValueError, match="calibration_end .* must be before observation_end"):
        calibration_holdout(cdnow_tx, "1998-07-01", "1998-06-30")


def test_empty_holdout_is_an_error(cdnow_tx):
    with pytest.raises(DataError, match="the holdout period is empty"):
        calibration_holdout(cdnow_tx, "1998-06-29", "1998-06-29 12:00")


def test_groups_equal_per_group_summaries(online_retail_tx):
    tx = online_retail_tx
    by_country = btyd_summary(tx, freq="W", group="country")
    assert by_country.index.names == ["customer_id", "country"]
    for country in ["France", "Germany"]:
        subset = tx.loc[tx["country"] == country, ["customer_id", "timestamp", "amount"]]
        alone = btyd_summary(subset, freq="W", observation_end=tx["timestamp"].max())
        got = by_country.xs(country, level="country")
        pd.testing.assert_frame_equal(got, alone, check_like=True, check_names=False)


def test_polars_and_duckdb_engines_agree_with_pandas(cdnow_tx):
    import duckdb

    base = btyd_summary(cdnow_tx, freq="W")
    via_polars_engine = btyd_summary(cdnow_tx, freq="W", engine="polars")
    pd.testing.assert_frame_equal(base, via_polars_engine)

    polars_out = btyd_summary(pl.from_pandas(cdnow_tx), freq="W")
    assert isinstance(polars_out, pl.DataFrame)
    pd.testing.assert_frame_equal(polars_out.to_pandas().set_index("customer_id"), base)

    con = duckdb.connect()
    rel = con.from_df(cdnow_tx)
    duck_out = btyd_summary(rel, freq="W")
    assert type(duck_out).__module__.startswith("duckdb")
    got = duck_out.df().sort_values("customer_id").set_index("customer_id")
    pd.testing.assert_frame_equal(got, base)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_timestamp_resolution_does_not_matter(tiny_tx, unit):
    base = btyd_summary(tiny_tx)
    other = tiny_tx.assign(timestamp=tiny_tx["timestamp"].astype(f"datetime64[{unit}]"))
    pd.testing.assert_frame_equal(btyd_summary(other), base)


def test_time_zones_and_strings_give_the_same_answer(tiny_tx):
    base = btyd_summary(tiny_tx, freq="D")
    aware = tiny_tx.assign(timestamp=tiny_tx["timestamp"].dt.tz_localize("America/New_York"))
    pd.testing.assert_frame_equal(btyd_summary(aware, freq="D"), base)
    text = tiny_tx.assign(timestamp=tiny_tx["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    pd.testing.assert_frame_equal(btyd_summary(text, freq="D"), base)


def test_missing_columns_are_named(tiny_tx):
    with pytest.raises(DataError, match=r"column\(s\) \['timestamp'\] not found; available"):
        btyd_summary(tiny_tx.drop(columns="timestamp"))


def test_empty_log_is_an_error(tiny_tx):
    with pytest.raises(DataError, match="empty"):
        btyd_summary(tiny_tx.iloc[:0])


def test_nan_amounts_are_an_error(tiny_tx):
    bad = tiny_tx.assign(amount=[1.0, np.nan, 2.0, 3.0, np.nan, 1.0, 1.0])
    with pytest.raises(DataError, match="column 'amount': 2 of 7 rows are missing"):
        btyd_summary(bad)


def test_bad_freq_is_an_error(tiny_tx):
    with pytest.raises(ValueError, match="freq must be one of"):
        btyd_summary(tiny_tx, freq="Q")


def test_without_amount_there_is_no_monetary_value(tiny_tx):
    out = btyd_summary(tiny_tx.drop(columns="amount"))
    assert list(out.columns) == ["frequency", "recency", "T"]


logs = st.lists(
    st.tuples(
        st.integers(0, 5),  # customer
        st.integers(0, 400 * 24),  # hours after the start
        st.floats(0, 1000, allow_nan=False),  # amount
    ),
    min_size=1,
    max_size=60,
)


def _log(rows):
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "timestamp": pd.Timestamp("2023-01-01")
            + pd.to_timedelta([r[1] for r in rows], unit="h"),
            "amount": [r[2] for r in rows],
        }
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=logs, freq=st.sampled_from(["D", "W", "M"]), seed=st.integers(0, 1000))
def test_summary_properties(rows, freq, seed):
    tx = _log(rows)
    out = btyd_summary(tx, freq=freq)
    assert (out["recency"] >= 0).all()
    assert (out["recency"] <= out["T"]).all()
    assert (out["monetary_value"] >= 0).all()
    assert (out.loc[out["frequency"] == 0, "monetary_value"] == 0).all()
    # frequency <= number of purchase periods - 1 (with equality by definition)
    periods = {"D": "D", "W": "W-SUN", "M": "M"}[freq]
    n_periods = tx.groupby("customer_id")["timestamp"].apply(
        lambda s: s.dt.to_period(periods).nunique()
    )
    assert (out["frequency"] == n_periods.loc[out.index] - 1).all()
    # row order does not change the result
    shuffled = tx.sample(frac=1.0, random_state=seed)
    pd.testing.assert_frame_equal(btyd_summary(shuffled, freq=freq), out)


@pytest.mark.parametrize("freq", ["D", "W", "M"])
def test_duckdb_fast_path_equals_the_portable_query(online_retail_tx, freq):
    """The hand-written DuckDB statement and the narwhals query (polars) agree exactly."""
    tx = online_retail_tx[["customer_id", "timestamp", "amount", "country"]]
    for group in (None, "country"):
        fast = btyd_summary(tx, freq=freq, group=group, observation_end="2011-10-15 13:00")
        portable = btyd_summary(
            tx, freq=freq, group=group, observation_end="2011-10-15 13:00", engine="polars"
        )
        pd.testing.assert_frame_equal(fast, portable, check_exact=False, rtol=1e-12)


def test_calibration_summary_renames_and_keeps_attrs(cdnow_tx):
    both = calibration_holdout(cdnow_tx, "1997-09-30", "1998-06-30", freq="W")
    summary = calibration_summary(both)
    assert list(summary.columns) == COLS
    assert summary.attrs["freq"] == "W"
    np.testing.assert_array_equal(summary["T"], both["T_cal"])
    with pytest.raises(DataError, match=r"calibration_summary: column\(s\) \['T_cal'\]"):
        calibration_summary(both.drop(columns="T_cal"))


def test_period_spend_beyond_64_bit_units():
    # a customer-day of 2e10 is 2e19 units of 1e-9, past 64 bits: the statement is run
    # again with 128-bit sums and the spends stay exact
    day = pd.Timestamp("2021-03-01 10:00")
    tx = pd.DataFrame(
        {
            "customer_id": [1] * 20 + [1, 2, 2],
            "timestamp": [day] * 20 + [day + pd.Timedelta(days=9),
                                       day + pd.Timedelta(days=2), day],
            "amount": [1e9] * 20 + [5.5, 2e10, 0.25],
        }
    )  # fmt: skip
    summary = btyd_summary(tx, freq="D")
    assert summary["frequency"].tolist() == [1.0, 1.0]
    assert summary["recency"].tolist() == [9.0, 2.0]
    assert summary["monetary_value"].tolist() == [5.5, 2e10]


@pytest.fixture(scope="module")
def compiled_cases(cdnow_tx):
    """CDNOW with compact ids (numbered by the ids), sparse ids (factorised), big spends."""
    tx = cdnow_tx[["customer_id", "timestamp", "amount"]]
    rich = tx.assign(amount=tx["amount"].where(tx["customer_id"] != 3, 123456789.123456789))
    return {"compact": tx, "sparse": tx.assign(customer_id=tx["customer_id"] * 1000 + 7),
            "big repeat spends": rich}  # fmt: skip


@pytest.mark.parametrize("freq", ["D", "W", "M"])
def test_compiled_pass_equals_the_duckdb_statement(compiled_cases, freq):
    """Large pandas logs take the compiled pass: the statement's values bit for bit."""
    from rfmml.features._engine import prepare_pandas
    from rfmml.features.btyd import _summary_compiled

    for name, tx in compiled_cases.items():
        for columns, end in (
            (["customer_id", "timestamp", "amount"], None),
            (["customer_id", "timestamp"], pd.Timestamp("1997-06-15 12:00")),
        ):
            log = tx[columns]
            compiled, resolved = _summary_compiled(
                prepare_pandas(log, columns), end, freq, "amount" in columns
            )
            expected = btyd_summary(log, end, freq=freq)  # below the compiled pass's size
            compiled.attrs = {"freq": freq, "observation_end": resolved.isoformat()}
            pd.testing.assert_frame_equal(compiled, expected, check_exact=True, obj=name)
            assert compiled.attrs == expected.attrs
    beyond = compiled_cases["compact"].assign(amount=9.5e9)  # 64-bit unit sums could overflow
    assert _summary_compiled(beyond, None, freq, True) is None
