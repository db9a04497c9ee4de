"""The chunked Parquet writer reads back as the frame ``to_parquet`` writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from rfmml.campaign import _parquet


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    return pd.DataFrame(
        {
            "customer_id": rng.integers(0, 10**9, n),
            "value": np.where(np.arange(n) % 5 == 0, np.nan, rng.random(n)),
            "segment": pd.Categorical(rng.choice(["Lost", "Loyal"], n), ["Loyal", "Lost"]),
            "band": pd.Categorical(
                rng.choice(["low", "high"], n), categories=["low", "high"], ordered=True
            ),  # fmt: skip
            "text": pd.Series(rng.choice(["a", "b", None], n), dtype="str"),
            "count": pd.array(np.where(np.arange(n) % 3 == 0, None, np.arange(n)), dtype="Int64"),
            "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n) % 40, unit="D"),
        }
    )


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("n", [5, 23])
def test_reads_back_as_to_parquet(tmp_path: Path, n: int, workers: int) -> None:
    frame = _frame(n)
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    _parquet.write_parquet(frame, tmp_path / "chunks.parquet", chunk_rows=4, workers=workers)
    _parquet.write_parquet(frame, tmp_path / "one.parquet", chunk_rows=4)
    assert (tmp_path / "chunks.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()
    whole = pd.read_parquet(tmp_path / "whole.parquet")
    chunks = pd.read_parquet(tmp_path / "chunks.parquet")
    pd.testing.assert_frame_equal(chunks, whole, check_exact=True)
    assert (pq.read_schema(tmp_path / "chunks.parquet").metadata[b"pandas"]
            == pq.read_schema(tmp_path / "whole.parquet").metadata[b"pandas"])  # fmt: skip
    groups = pq.ParquetFile(tmp_path / "chunks.parquet").num_row_groups
    assert groups == -(-n // 4)


@pytest.mark.parametrize("workers", [1, 2])
def test_types_unknown_in_the_first_chunk(tmp_path: Path, workers: int) -> None:
    frame = pd.DataFrame({"note": [None] * 4 + ["x", "y"]}, dtype=object)
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    _parquet.write_parquet(frame, tmp_path / "chunks.parquet", chunk_rows=4,
                           workers=workers)  # fmt: skip  # falls back
    whole = pd.read_parquet(tmp_path / "whole.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "chunks.parquet"), whole)
    assert whole["note"].tolist()[4:] == ["x", "y"]


def _mixed(n: int) -> pd.DataFrame:
    """A predictions-like frame: distinct and repeating numbers, text, labels, dates, attrs."""
    rng = np.random.default_rng(7)
    days = pd.to_timedelta(rng.integers(0, 60, n), unit="D")
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype=np.int64) * 7 + 3,
            "clv": np.where(np.arange(n) % 11 == 0, np.nan, rng.gamma(2.0, 50.0, n)),
            "recency_days": rng.integers(0, 30, n).astype(float),
            "R": rng.integers(1, 6, n),
            "RFM": pd.Series(rng.choice(["111", "345", "555", None], n), dtype="str"),
            "segment": pd.Categorical(
                rng.choice(["Lost", "Loyal", None], n), ["Loyal", "New", "Lost"]
            ),
            "churn_risk": pd.Categorical(
                rng.choice(["low", "high", None], n), ["low", "medium", "high"], ordered=True
            ),
            "next_order": (pd.Timestamp("2024-01-01") + days).where(rng.random(n) > 0.3),
            "active": rng.random(n) > 0.5,
            "note": pd.Series([f"customer {i}" for i in range(n)], dtype="str"),
        }
    )
    frame.attrs = {"horizon": 30, "freq": "D"}
    return frame


def _chunked(frame: pd.DataFrame, path: Path, rows: int, with_attrs: bool) -> None:
    writer = _parquet.ParquetChunks(path, with_attrs=with_attrs)
    for start in range(0, len(frame), rows):
        writer.write(frame.iloc[start : start + rows])
    writer.close()


def _same_read_back(path: Path, reference: Path) -> None:
    """pandas and pyarrow read ``path`` back as they read ``reference``."""
    ours_pd, theirs_pd = pd.read_parquet(path), pd.read_parquet(reference)
    pd.testing.assert_frame_equal(ours_pd, theirs_pd, check_exact=True)
    assert ours_pd.attrs == theirs_pd.attrs
    ours, theirs = pq.read_table(path), pq.read_table(reference)
    assert ours.schema.equals(theirs.schema, check_metadata=True)
    assert ours.equals(theirs)
    assert pq.read_metadata(path).metadata == pq.read_metadata(reference).metadata


def test_chunks_read_back_as_to_parquet_with_attrs(tmp_path: Path) -> None:
    frame = _mixed(3_500)
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    _chunked(frame, tmp_path / "chunks.parquet", 1_000, with_attrs=True)
    _same_read_back(tmp_path / "chunks.parquet", tmp_path / "whole.parquet")
    back = pd.read_parquet(tmp_path / "chunks.parquet")
    assert back.attrs == frame.attrs
    assert back["clv"].isna().sum() == frame["clv"].isna().sum() > 0
    assert back["next_order"].isna().sum() == frame["next_order"].isna().sum() > 0
    assert back["churn_risk"].cat.ordered and list(back["churn_risk"].cat.categories) == [
        "low", "medium", "high"
    ]  # fmt: skip
    assert pq.ParquetFile(tmp_path / "chunks.parquet").num_row_groups == 4


def test_a_chunked_write_equals_a_one_piece_write(tmp_path: Path) -> None:
    frame = _mixed(3_500)
    _chunked(frame, tmp_path / "one.parquet", len(frame), with_attrs=False)
    _chunked(frame, tmp_path / "chunks.parquet", 700, with_attrs=False)
    _same_read_back(tmp_path / "chunks.parquet", tmp_path / "one.parquet")
    assert pq.ParquetFile(tmp_path / "one.parquet").num_row_groups == 1
    assert pq.ParquetFile(tmp_path / "chunks.parquet").num_row_groups == 5
    # and write_parquet's chunks (without attrs in the schema metadata beyond one chunk)
    frame.attrs = {}
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    _parquet.write_parquet(frame, tmp_path / "written.parquet", chunk_rows=1_000)
    _same_read_back(tmp_path / "written.parquet", tmp_path / "whole.parquet")
    assert _encodings(tmp_path / "written.parquet") == _encodings(tmp_path / "chunks.parquet")


def _encodings(path: Path) -> dict[str, tuple[bool, bool]]:
    """Each column of the first row group: (dictionary-encoded, statistics written)."""
    group = pq.ParquetFile(path).metadata.row_group(0)
    columns = (group.column(i) for i in range(group.num_columns))
    return {c.path_in_schema: ("RLE_DICTIONARY" in c.encodings, c.is_stats_set) for c in columns}


def test_dictionaries_where_values_repeat_statistics_for_numbers_and_times(tmp_path: Path) -> None:
    frame = _mixed(3_500)
    _chunked(frame, tmp_path / "chunks.parquet", 1_000, with_attrs=True)
    encodings = _encodings(tmp_path / "chunks.parquet")
    # distinct values (booleans never get a dictionary in Parquet)
    plain = {name for name, (dictionary, _) in encodings.items() if not dictionary}
    assert plain == {"customer_id", "clv", "note", "active"}
    unsummarised = {name for name, (_, statistics) in encodings.items() if not statistics}
    assert unsummarised == {"RFM", "segment", "churn_risk", "note"}
    stats = pq.ParquetFile(tmp_path / "chunks.parquet").metadata.row_group(0).column(1).statistics
    assert stats.null_count == int(frame["clv"].iloc[:1_000].isna().sum())


def test_the_first_chunks_sample_decides(tmp_path: Path) -> None:
    import pyarrow as pa

    n = _parquet.SAMPLE_ROWS + 4_464
    rng = np.random.default_rng(3)
    table = pa.table(
        {
            "price": rng.integers(0, 2_000, n) / 100.0,  # 2,000 values
            "spend": rng.random(n),  # all distinct
            "ids": np.arange(n) * 7,  # all distinct, most bytes zero
            "lists": pa.array([[1, 2], [3], None, []] * (n // 4)),
            "pairs": pa.array([{"a": 1, "b": "x"}, {"a": 2, "b": None}] * (n // 2)),
        }
    )
    options = _parquet.writer_options(table)
    assert options["use_dictionary"] == ["price", "lists.list.element", "pairs.a", "pairs.b"]
    assert options["write_statistics"] == [
        "price", "spend", "ids", "lists.list.element", "pairs.a", "pairs.b"
    ]  # fmt: skip
    # random digits are stored as they are, the rest compressed
    assert options["compression"] == {
        "price": "snappy", "spend": "none", "ids": "snappy", "lists.list.element": "snappy",
        "pairs.a": "snappy", "pairs.b": "snappy",
    }  # fmt: skip
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, table.schema, **options) as writer:
        writer.write_table(table)
    group = pq.ParquetFile(pa.BufferReader(sink.getvalue())).metadata.row_group(0)
    codecs = {group.column(i).path_in_schema: group.column(i).compression for i in range(6)}
    assert codecs == {"price": "SNAPPY", "spend": "UNCOMPRESSED", "ids": "SNAPPY",
                      "lists.list.element": "SNAPPY", "pairs.a": "SNAPPY",
                      "pairs.b": "SNAPPY"}  # fmt: skip
    assert pq.read_table(pa.BufferReader(sink.getvalue())).equals(table)


def test_nested_columns_read_back_as_to_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(9),
            "orders": [[1.5, 2.0], [], None] * 3,
            "tags": [["new"], ["vip", "new"], None] * 3,
        }
    )
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    _chunked(frame, tmp_path / "chunks.parquet", 4, with_attrs=False)
    ours, theirs = (pq.read_table(tmp_path / f"{name}.parquet") for name in ("chunks", "whole"))
    assert ours.schema.equals(theirs.schema, check_metadata=True) and ours.equals(theirs)
    encodings = _encodings(tmp_path / "chunks.parquet")
    assert encodings["orders.list.element"] == (True, True)  # pyarrow's defaults


def test_scored_customers_read_back_as_to_parquet(tmp_path: Path, cdnow_table) -> None:
    flat = cdnow_table.reset_index(drop="customer_id" in cdnow_table.columns)
    flat.to_parquet(tmp_path / "whole.parquet", index=False)
    _chunked(flat, tmp_path / "chunks.parquet", 5_000, with_attrs=True)
    _same_read_back(tmp_path / "chunks.parquet", tmp_path / "whole.parquet")
    encodings = _encodings(tmp_path / "chunks.parquet")
    assert encodings["customer_id"] == (False, True)
    # customers with the same history share their predictions: a dictionary where few
    # of the first chunk's values are distinct
    first = flat.iloc[:5_000]
    for name in ("clv", "probability_alive", "recency_days", "total_spend"):
        repeats = first[name].nunique(dropna=False) <= _parquet.MAX_DISTINCT * len(first)
        assert encodings[name] == (repeats, True), name
    assert encodings["recency_days"] == (True, True)
    assert encodings["segment"] == encodings["RFM"] == (True, False)


def _as_labels(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` with its text ``columns`` as categoricals (unused labels among the categories)."""
    out = frame.copy()
    for name in columns:
        labels = sorted(set(frame[name].dropna()) | {"never used"})
        categories = pd.Index(labels, dtype=frame[name].dtype)  # the text's own dtype
        out[name] = pd.Categorical(frame[name], categories=categories)
    return out


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(("with_attrs", "text_dtype"), [(False, "str"), (True, "str"),
                                                        (False, object)])  # fmt: skip
def test_labels_written_as_text_are_the_file_of_the_text(
    tmp_path: Path, workers: int, with_attrs: bool, text_dtype: Any
) -> None:
    frame = _mixed(3_500)
    frame["action"] = pd.Series(np.where(np.arange(3_500) % 3 == 0, "reward", "win back"),
                                dtype=text_dtype)  # fmt: skip
    frame["RFM"] = frame["RFM"].fillna("111").astype(text_dtype)  # labels have no missing
    frame.loc[:1, "note"] = None  # another text column, missing in the first rows
    labelled = _as_labels(frame, ["RFM", "action"])
    text, codes = tmp_path / "text.parquet", tmp_path / "codes.parquet"
    for source, path, as_text in ((frame, text, ()), (labelled, codes, ("RFM", "action"))):
        writer = _parquet.ParquetChunks(path, with_attrs=with_attrs, workers=workers,
                                        as_text=as_text)  # fmt: skip
        for start in range(0, len(source), 1_000):
            writer.write(source.iloc[start : start + 1_000])
        writer.close()
    _same_read_back(codes, text)
    assert pq.ParquetFile(codes).schema.equals(pq.ParquetFile(text).schema)
    assert pd.read_parquet(codes)["RFM"].dtype == pd.read_parquet(text)["RFM"].dtype
    encodings = _encodings(codes)
    assert encodings["RFM"] == encodings["action"] == (True, False)  # a dictionary, no min/max


def test_labels_not_named_or_not_text_stay_categorical(tmp_path: Path) -> None:
    frame = pd.DataFrame({"segment": pd.Categorical(["Lost", "Loyal"] * 3),
                          "score": pd.Categorical([1, 2, 3] * 2)})  # fmt: skip
    for name, as_text in (("named.parquet", ("score",)), ("plain.parquet", ())):
        writer = _parquet.ParquetChunks(tmp_path / name, as_text=as_text)
        for start in (0, 2, 4):
            writer.write(frame.iloc[start : start + 2])
        writer.close()
    _same_read_back(tmp_path / "named.parquet", tmp_path / "plain.parquet")
    assert pd.read_parquet(tmp_path / "named.parquet")["segment"].dtype == "category"
