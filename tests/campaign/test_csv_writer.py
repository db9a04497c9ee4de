"""The chunked CSV writer writes the bytes pandas' ``to_csv`` writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rfmml.campaign import _csv, exports
from rfmml.campaign.exports import neutralize_cells, to_safe_csv


def _pandas_bytes(frame: pd.DataFrame, path: Path) -> bytes:
    safe = neutralize_cells(exports._tidy_ids(exports._flat(frame)))
    safe.to_csv(path, index=False, encoding="utf-8", lineterminator="\r\n",
                float_format=exports._CSV_FLOAT)  # fmt: skip
    return path.read_bytes()


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    floats = rng.lognormal(0, 4, n) * rng.choice([-1, 1], n)
    floats[::7] = np.nan
    floats[1] = np.inf
    floats[2] = 1e-300
    floats[3] = 100.50000000000001
    text = rng.choice(["plain", 'say "hi"', "a,b", "line\nbreak", "cr\rret", "=1+2", "é ü"], n)
    return pd.DataFrame(
        {
            "customer_id": rng.integers(0, 10**12, n),
            "order_id": np.where(np.arange(n) % 5 == 0, np.nan, np.arange(n, dtype=float)),
            "value": floats,
            "flag": rng.random(n) > 0.5,
            "note": pd.Series(text, dtype="str"),
            "segment": pd.Categorical(rng.choice(["Lost", "Champions", "At Risk"], n)),
            "count": pd.array(np.where(np.arange(n) % 3 == 0, None, np.arange(n)), dtype="Int64"),
        }
    )


@pytest.mark.parametrize(("n", "compiled"), [(4, False), (50, False), (50, True), (450_001, True)])
def test_same_bytes_as_pandas(
    tmp_path: Path, n: int, compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _frame(n)
    # lines by DuckDB's concat and printf, or by the compiled loops (float text, lines)
    monkeypatch.setattr(_csv, "_compiled_floats", lambda rows: compiled)
    assert exports._write_csv_fast(neutralize_cells(exports._tidy_ids(frame)),
                                   tmp_path / "probe.csv")  # fmt: skip
    fast = to_safe_csv(frame, tmp_path / "fast.csv").read_bytes()
    assert fast == _pandas_bytes(frame, tmp_path / "pandas.csv")
    # the DuckDB writer, which to_safe_csv takes from 20,000 rows, at every size
    assert _csv.write_csv(exports._tidy_ids(frame), tmp_path / "duckdb.csv")
    assert (tmp_path / "duckdb.csv").read_bytes() == fast


def test_kinds_left_to_pandas_still_match(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "when": pd.to_datetime(["2020-01-01 00:00", "2020-01-02 10:00"]),
            "mixed": [1, "a"],
        }
    )
    assert not exports._write_csv_fast(frame, tmp_path / "probe.csv")
    fast = to_safe_csv(frame, tmp_path / "fast.csv").read_bytes()
    assert fast == _pandas_bytes(frame, tmp_path / "pandas.csv")


def _kinds_frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")
    dates = pd.Series(days).where(np.arange(n) % 4 != 0)  # NaT every fourth row
    seconds = pd.Series(days + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"))
    text = pd.Series(rng.choice(["ok", "-3", "@x", '"q"', None], n), dtype="str")
    return pd.DataFrame(
        {
            "=id": rng.integers(0, 2**40, n).astype(np.uint64),
            "when": dates.to_numpy(),
            "at": seconds.to_numpy(),
            "x32": rng.normal(size=n).astype(np.float32),
            "text": text,
            "band": pd.Categorical(rng.choice(["=SUM(A1)", "a,b", "low"], n)),
            'say "x"': rng.random(n) > 0.3,
        }
    )


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("n", [1, 3, 1_001])
def test_dates_text_and_headers_as_pandas(
    tmp_path: Path, n: int, compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_csv, "_compiled_floats", lambda rows: compiled)
    frame = _kinds_frame(n)
    assert _csv.write_csv(frame, tmp_path / "probe.csv", chunk_rows=7)  # many chunks
    fast = to_safe_csv(frame, tmp_path / "fast.csv").read_bytes()
    assert fast == _pandas_bytes(frame, tmp_path / "pandas.csv")
    assert (tmp_path / "probe.csv").read_bytes() == fast


def test_fractional_seconds_go_to_pandas(tmp_path: Path) -> None:
    from rfmml.campaign import _csv

    frame = pd.DataFrame({"at": pd.to_datetime(["2020-01-01 00:00:00.5", "2020-01-02 00:00:00.0"])})
    assert not _csv.write_csv(frame, tmp_path / "probe.csv")
    assert not (tmp_path / "probe.csv").exists()
    fast = to_safe_csv(frame, tmp_path / "fast.csv").read_bytes()
    assert fast == _pandas_bytes(frame, tmp_path / "pandas.csv")


def test_empty_frames_and_two_level_headers_as_pandas(tmp_path: Path) -> None:
    from rfmml.campaign import _csv

    empty = _kinds_frame(3).iloc[:0]
    assert _csv.write_csv(empty, tmp_path / "probe.csv")
    assert to_safe_csv(empty, tmp_path / "e.csv").read_bytes() == _pandas_bytes(
        empty, tmp_path / "pe.csv"
    )
    two = pd.DataFrame([[1.5, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")]))
    assert not _csv.write_csv(two, tmp_path / "two.csv")
    assert to_safe_csv(two, tmp_path / "t.csv").read_bytes() == _pandas_bytes(
        two, tmp_path / "pt.csv"
    )


@pytest.mark.parametrize("compiled", [False, True])
def test_cdnow_predictions_as_pandas(
    tmp_path: Path, cdnow_table: pd.DataFrame, compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_csv, "_compiled_floats", lambda rows: compiled)
    monkeypatch.setattr(exports, "_DUCKDB_CSV_ROWS", 1)  # the chunked writer, not pandas'

    # the contract on a scored table: every kind write_predictions meets (ids, floats,
    # dates, categorical labels, action texts with commas); plus text cells that need
    # a quote prefix or quotes in a string column (formatted once per distinct value)
    # and in a categorical, with missing values
    table = cdnow_table.copy()
    n = len(table)
    table["note"] = pd.Series(np.array(["=cell", 'a "b", c', "-1", "plain"])[np.arange(n) % 4],
                              dtype="str").where(np.arange(n) % 9 != 0).to_numpy()  # fmt: skip
    table["tag"] = pd.Categorical(np.array(["@x", "y,z"])[np.arange(n) % 2])
    paths = exports.write_predictions(table, tmp_path / "out", fingerprints={}, formats=("csv",))
    written = paths["csv"].read_bytes()
    assert written == _pandas_bytes(table, tmp_path / "pandas.csv")
    assert b"'=cell" in written and b'"a ""b"", c"' in written and b'"y,z"' in written


def test_float_cells_are_python_percent_15g() -> None:
    """The compiled ``%.15g`` gives Python's bytes: magnitudes, ties, powers of ten, any bits."""
    from rfmml.campaign._floattext import g15_cells

    rng = np.random.default_rng(7)
    n = 20_000
    powers = 10.0 ** np.arange(-30, 40)
    values = np.concatenate(
        [
            rng.random(n),
            np.round(rng.random(n) * 1e4, 2),
            10.0 ** rng.uniform(-12, 40, n) * rng.choice([-1, 1], n),
            rng.integers(-(2**53), 2**53, n).astype(float),
            rng.integers(0, 2**63, n, dtype=np.uint64).view(np.float64),  # any bit pattern
            (rng.integers(1, 10**15, n) + 0.5) / 10.0 ** rng.integers(0, 20, n),  # near halves
            powers, np.nextafter(powers, np.inf), np.nextafter(powers, -np.inf),
            [0.0, -0.0, np.inf, -np.inf, np.nan, 999999999999999.5, 999999999999999.4, 2.5, 5e-324,
             1.7976931348623157e308, 9.9999999999999995e-5, 123456789012345678.0],
        ]
    )  # fmt: skip
    scratch: dict[str, np.ndarray] = {}
    got = g15_cells(values, scratch).to_pylist()
    want = ["" if x != x else "%.15g" % x for x in values.tolist()]  # noqa: UP031
    assert got == want
    assert g15_cells(values[:5], scratch).to_pylist() == want[:5]  # buffers reused


def test_large_frames_without_numba_take_printf(tmp_path: Path, monkeypatch) -> None:
    # where numba cannot be imported, frames past every threshold keep DuckDB's printf
    frame = _frame(200)
    monkeypatch.setattr(_csv, "COMPILED_FLOAT_ROWS", {"nothing": 1, "numba": 1, "loop": 1})
    assert _csv._compiled_floats(len(frame))
    monkeypatch.setattr(_csv, "compiled_module", lambda name: None)
    assert not _csv._compiled_floats(len(frame))
    assert _csv.write_csv(exports._tidy_ids(frame), tmp_path / "duckdb.csv")
    assert (tmp_path / "duckdb.csv").read_bytes() == _pandas_bytes(frame, tmp_path / "pd.csv")


def test_compiled_lines_at_chunk_edges_and_empty_cells(tmp_path: Path, monkeypatch) -> None:
    # chunks of 1, 2 and 7 rows; a column of empty strings only; one column only
    monkeypatch.setattr(_csv, "_compiled_floats", lambda rows: True)
    frame = _kinds_frame(23)
    frame["blank"] = pd.Series([""] * 23, dtype="str")
    frame["never"] = pd.Series([pd.NaT] * 23, dtype="datetime64[ns]")
    extremes = [-(2**63), 2**63 - 1, 0, -1, 9, -10, 10**18, 7]
    frame["i64"] = np.resize(np.array(extremes, dtype=np.int64), 23)
    frame["i8"] = np.resize(np.array([-128, 127, 0, 5], dtype=np.int8), 23)
    for rows in (1, 2, 7):
        assert _csv.write_csv(frame, tmp_path / f"c{rows}.csv", chunk_rows=rows)
        assert (tmp_path / f"c{rows}.csv").read_bytes() == _pandas_bytes(
            frame, tmp_path / "pandas.csv"
        )
    one = frame[["x32"]]
    assert _csv.write_csv(one, tmp_path / "one.csv", chunk_rows=5)
    assert (tmp_path / "one.csv").read_bytes() == _pandas_bytes(one, tmp_path / "p1.csv")


def test_join_lines_refuses_a_short_buffer() -> None:
    from rfmml.campaign._linetext import join_lines

    data = np.frombuffer(b"abcde", dtype=np.uint8)
    starts = np.array([[0, 1], [2, 4]], dtype=np.int64)
    ends = np.array([[1, 2], [4, 5]], dtype=np.int64)
    out = np.zeros(11, dtype=np.uint8)
    assert join_lines(data, starts, ends, out) == 11
    assert out.tobytes() == b"a,b\r\ncd,e\r\n"
    with pytest.raises(ValueError, match="output of 10 < 11 bytes"):
        join_lines(data, starts, ends, np.zeros(10, dtype=np.uint8))
