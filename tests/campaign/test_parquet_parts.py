"""Row groups encoded on several threads and joined: the file one writer writes, byte for byte."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rfmml.campaign import _parquet, _parquet_parts, exports
from rfmml.campaign._parquet_parts import (
    ParquetParts,
    Unjoinable,
    joined_footer,
    read_struct,
    replace_key_values,
    write_struct,
)


@pytest.fixture(scope="module")
def scored() -> pd.DataFrame:
    """A scored-like table: ids, counts, floats with NaN, text, categories, times with NaT."""
    rng = np.random.default_rng(11)
    n = 12_000
    frame = pd.DataFrame({
        "customer_id": np.arange(n, dtype=np.int64) * 7,
        "R": rng.integers(1, 6, n),
        "total_spend": np.round(rng.gamma(2.0, 40.0, n), 2),
        "probability_alive": rng.random(n),
        "segment": pd.Categorical(rng.choice(["Champions", "At Risk", "Lost"], n)),
        "action": rng.choice(["win back", "reward", "=HYPERLINK()"], n),
        "expected_next_order_date": pd.to_datetime("2024-01-01")
        + pd.to_timedelta(rng.integers(0, 400, n), unit="D"),
    })  # fmt: skip
    frame.loc[::97, "probability_alive"] = np.nan
    frame.loc[::89, "expected_next_order_date"] = pd.NaT
    return frame


def _chunks(frame: pd.DataFrame, rows: int) -> tuple[list[pa.Table], dict]:
    writer = _parquet.ParquetChunks(Path("unused"))
    tables = [writer.arrow(frame.iloc[i : i + rows]) for i in range(0, len(frame), rows)]
    return tables, writer._options


def _one_writer(path: Path, tables: list[pa.Table], options: dict) -> bytes:
    with pq.ParquetWriter(path, tables[0].schema, **options) as writer:
        for table in tables:
            writer.write_table(table, row_group_size=max(table.num_rows, 1))
    return path.read_bytes()


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("rows", [5_000, 4_000, 12_000])
def test_joined_parts_are_the_bytes_of_one_writer(tmp_path, scored, workers, rows) -> None:
    tables, options = _chunks(scored, rows)
    want = _one_writer(tmp_path / "one.parquet", tables, options)
    parts = ParquetParts(tmp_path / "parts.parquet", tables[0].schema, options, workers)
    for table in tables:
        parts.submit(table)
    parts.close()
    assert (tmp_path / "parts.parquet").read_bytes() == want
    read = pq.read_table(tmp_path / "parts.parquet")
    assert pq.ParquetFile(tmp_path / "parts.parquet").num_row_groups == len(tables)
    pd.testing.assert_frame_equal(read.to_pandas(), scored.reset_index(drop=True))
    got = duckdb.sql(
        f"SELECT count(*), sum(customer_id), count(expected_next_order_date) "
        f"FROM read_parquet('{tmp_path / 'parts.parquet'}')"
    ).fetchall()
    assert got == [(len(scored), int(scored["customer_id"].sum()),
                    int(scored["expected_next_order_date"].notna().sum()))]  # fmt: skip


def test_a_part_larger_than_its_room_is_written_whole(tmp_path, scored, monkeypatch) -> None:
    """The reused buffer too small: the part goes to a growing buffer, the same bytes."""
    tables, options = _chunks(scored, 3_000)
    want = _one_writer(tmp_path / "one.parquet", tables, options)
    monkeypatch.setattr(_parquet_parts, "_room", lambda table: 64)
    parts = ParquetParts(tmp_path / "parts.parquet", tables[0].schema, options, 2)
    for table in tables:
        parts.submit(table)
    parts.close()
    assert (tmp_path / "parts.parquet").read_bytes() == want


def test_footers_read_and_write_back_the_same_bytes(tmp_path, scored) -> None:
    tables, options = _chunks(scored, 2_500)
    data = _one_writer(tmp_path / "one.parquet", tables, options)
    size = struct.unpack("<I", data[-8:-4])[0]
    footer = data[-8 - size : -8]
    fields, end = read_struct(footer)
    assert end == len(footer)
    assert write_struct(fields) == footer
    row_groups = next(f for f in fields if f[0] == 4)[2][1]
    assert len(row_groups) == len(tables)


def test_parts_of_other_schemas_are_not_joined(tmp_path, scored) -> None:
    footers = []
    for columns in (["customer_id", "R"], ["customer_id", "total_spend"]):
        data = _one_writer(tmp_path / "x.parquet", [pa.Table.from_pandas(scored[columns])], {})
        size = struct.unpack("<I", data[-8:-4])[0]
        footers.append(read_struct(data, len(data) - 8 - size)[0])
    with pytest.raises(Unjoinable, match="different schemas"):
        joined_footer(footers, [100, 100])


def test_a_failing_part_is_raised_and_nothing_more_is_written(tmp_path, scored) -> None:
    tables, options = _chunks(scored, 3_000)
    wrong = pa.table({"other": [1, 2, 3]})
    parts = ParquetParts(tmp_path / "parts.parquet", tables[0].schema, options, 2)
    parts.submit(tables[0])
    with pytest.raises(ValueError, match="schema"):
        parts.submit(wrong)  # encoded on a thread: raised here or at close
        for table in tables[1:]:
            parts.submit(table)
        parts.close()
    parts.close()  # raised once: closing again does nothing
    data = (tmp_path / "parts.parquet").read_bytes()
    with pytest.raises(pa.ArrowInvalid):  # no footer: not a Parquet file
        pq.read_metadata(tmp_path / "parts.parquet")
    assert data.startswith(b"PAR1")


def test_a_streamed_export_of_several_chunks_is_the_file_one_thread_writes(
    tmp_path, scored, monkeypatch
) -> None:
    """write_predictions_chunks with the chunks encoded on two threads: the same files."""
    monkeypatch.setattr(_parquet, "CHUNK_ROWS", 2_000)  # several chunks: not a small table
    monkeypatch.setattr(exports, "SCORING_CORES", 0)  # every core may encode
    chunks = [scored.iloc[i : i + 2_000] for i in range(0, len(scored), 2_000)]
    written = {}
    for workers in (1, 2):
        monkeypatch.setattr(exports, "PARQUET_WORKERS", workers)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            paths, n_rows, _ = exports.write_predictions_chunks(
                iter(chunks), tmp_path / f"w{workers}", fingerprints={}, formats=("parquet",),
                n_rows_hint=len(scored),
            )  # fmt: skip
        assert n_rows == len(scored)
        written[workers] = paths["parquet"].read_bytes()
    assert written[1] == written[2]
    assert pq.ParquetFile(tmp_path / "w2" / "predictions.parquet").num_row_groups == len(chunks)


def test_key_values_replaced_in_place_and_the_rest_as_written(tmp_path, scored) -> None:
    path = tmp_path / "f.parquet"
    scored.to_parquet(path, index=False, row_group_size=5_000)
    before = pq.read_metadata(path)
    replace_key_values(path, {b"pandas": b'{"a": 1}', b"new key": b"new value"})
    after = pq.read_metadata(path)
    assert after.metadata[b"pandas"] == b'{"a": 1}'
    assert after.metadata[b"new key"] == b"new value"
    assert after.metadata[b"ARROW:schema"] == before.metadata[b"ARROW:schema"]
    assert set(after.metadata) == {*before.metadata, b"new key"}
    assert after.num_row_groups == before.num_row_groups == 3
    assert after.to_dict()["row_groups"] == before.to_dict()["row_groups"]
    pd.testing.assert_frame_equal(pq.read_table(path).to_pandas(ignore_metadata=True),
                                  scored)  # fmt: skip


def test_key_values_added_to_a_file_without_any(tmp_path, scored) -> None:
    path = tmp_path / "f.parquet"
    pq.write_table(pa.Table.from_pandas(scored.iloc[:100], preserve_index=False), path,
                   store_schema=False)  # fmt: skip
    pq.write_table(pa.table({"x": [1, 2]}).replace_schema_metadata(None), path, store_schema=False)
    assert pq.read_metadata(path).metadata is None
    replace_key_values(path, {b"k": b"v"})
    assert pq.read_metadata(path).metadata == {b"k": b"v"}
    assert pq.read_table(path).column("x").to_pylist() == [1, 2]


def test_key_values_of_what_is_not_parquet_are_refused(tmp_path) -> None:
    path = tmp_path / "f.parquet"
    path.write_bytes(b"PAR1 not really a parquet file")
    with pytest.raises(Unjoinable, match="no PAR1 at the end"):
        replace_key_values(path, {b"k": b"v"})
    path.write_bytes(b"PAR1")
    with pytest.raises(Unjoinable, match="shorter"):
        replace_key_values(path, {b"k": b"v"})
