"""The streamed scoring path writes the files of the pandas path, whatever the chunk size."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from rfmml.campaign import ScoringPipeline, scoring_frame, streaming, write_predictions
from rfmml.campaign.scoring import next_order_dates
from rfmml.campaign.streaming import fit_on_table, fit_rule_segmenter, score_features_table
from rfmml.data import load_cdnow, load_online_retail, simulate_transactions
from rfmml.data._scan import ScannedLog
from rfmml.errors import DataError
from rfmml.features import customer_features
from rfmml.features.combined import FeaturesTable, customer_features_table
from rfmml.models import BetaGeoNBD, GammaGamma
from rfmml.segments import RuleSegmenter


def _log(name: str) -> tuple[pd.DataFrame, str]:
    if name == "cdnow":
        return load_cdnow(), "W"
    if name == "online_retail":
        return load_online_retail().drop(columns=["order_id", "country"]), "D"
    return simulate_transactions(3_000, random_state=11), "D"


@pytest.fixture(scope="module", params=["cdnow", "online_retail", "simulated"])
def fitted(request):
    tx, freq = _log(request.param)
    log = ScannedLog.from_pandas(tx)
    features, summary = customer_features(log, freq=freq)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        purchase = BetaGeoNBD().fit(summary)
        gg = GammaGamma(zero_spend="exclude").fit(summary)
    rules = RuleSegmenter("rfm11").fit(features)
    table = customer_features_table(log, freq=freq)
    yield request.param, log, table, features, summary, (purchase, gg, rules), freq
    log.close()


def test_features_table_equals_customer_features(fitted) -> None:
    _, log, table, features, summary, _, freq = fitted
    got_features, got_summary = table.to_pandas()
    pd.testing.assert_frame_equal(got_features, features)
    pd.testing.assert_frame_equal(got_summary, summary)
    assert got_features.attrs == features.attrs and got_summary.attrs == summary.attrs
    # several hash partitions of the customers: the same table
    parts = customer_features_table(log, freq=freq, table="parts", partition_rows=7_000)
    pd.testing.assert_frame_equal(parts.to_pandas()[1], summary)
    pd.testing.assert_frame_equal(parts.to_pandas()[0], features)
    parts.drop()


def test_fits_on_the_table_equal_fits_on_pandas(fitted) -> None:
    _, _, table, _, _, (purchase, gg, rules), _ = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert fit_on_table(BetaGeoNBD(), table).get_fitted_params() == (
            purchase.get_fitted_params()
        )
        assert fit_on_table(GammaGamma(zero_spend="exclude"), table).get_fitted_params() == (
            gg.get_fitted_params()
        )
    edges = fit_rule_segmenter(RuleSegmenter("rfm11"), table).scorer_.edges_
    pd.testing.assert_frame_equal(edges, rules.scorer_.edges_)


def test_streamed_files_equal_the_pandas_path(same_files, fitted, tmp_path: Path) -> None:
    name, _, table, features, summary, (purchase, gg, rules), freq = fitted
    pipeline = ScoringPipeline(rule_segmenter=rules, purchase_model=purchase, gamma_gamma=gg,
                               horizon=12, freq=freq, next_order_window=5)  # fmt: skip
    predictions = pipeline.predict(scoring_frame(features, summary))
    write_predictions(predictions, tmp_path / "pandas", fingerprints={"data": name})
    streamed = score_features_table(table, pipeline, tmp_path / "streamed",
                                    fingerprints={"data": name})  # fmt: skip
    assert streamed.streamed and streamed.n_rows == len(predictions)
    same_files(tmp_path / "pandas", tmp_path / "streamed")
    # the run's totals, added chunk by chunk
    assert streamed.sums["clv"] == pytest.approx(predictions["clv"].sum(), rel=1e-12)
    by = predictions.groupby("segment", observed=True).agg(
        customers=("customer_id", "size"), clv=("clv", "sum")
    )
    pd.testing.assert_series_equal(
        streamed.by_segment["customers"].sort_index(), by["customers"].sort_index()
    )
    pd.testing.assert_series_equal(
        streamed.by_segment["clv"].sort_index(), by["clv"].sort_index(), rtol=1e-12
    )


def _fitted_on_pandas(features: pd.DataFrame, summary: pd.DataFrame, purchase_model: Any,
                      scheme: str, **options: object) -> ScoringPipeline:  # fmt: skip
    """A pipeline of ``scheme``'s rules, ``purchase_model`` and Gamma-Gamma fitted on pandas."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ScoringPipeline(
            rule_segmenter=RuleSegmenter(scheme).fit(features),
            purchase_model=purchase_model.fit(summary),
            gamma_gamma=GammaGamma(zero_spend="exclude").fit(summary),
            **options,
        )


def _cdnow_table_and_pipeline() -> tuple[ScannedLog, FeaturesTable, ScoringPipeline]:
    """CDNOW's features table and a pipeline fitted on it (rfm11, BG/NBD, Gamma-Gamma)."""
    tx, freq = _log("cdnow")
    log = ScannedLog.from_pandas(tx)
    table = customer_features_table(log, freq=freq)
    return log, table, _pipeline_on(table, freq)


def _pipeline_on(table: FeaturesTable, freq: str, **options: object) -> ScoringPipeline:
    """rfm11, BG/NBD and Gamma-Gamma fitted on ``table`` (horizon 52), with ``options``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ScoringPipeline(
            rule_segmenter=fit_rule_segmenter(RuleSegmenter("rfm11"), table),
            purchase_model=fit_on_table(BetaGeoNBD(), table),
            gamma_gamma=fit_on_table(GammaGamma(zero_spend="exclude"), table),
            horizon=52, freq=freq, **options,
        )  # fmt: skip


def test_small_chunks_give_the_same_files(same_files, tmp_path: Path) -> None:
    log, table, pipeline = _cdnow_table_and_pipeline()
    calls: list[tuple[int, int]] = []
    score_features_table(table, pipeline, tmp_path / "one", fingerprints={})
    score_features_table(table, pipeline, tmp_path / "small", fingerprints={}, chunk_rows=997,
                         progress=lambda done, total: calls.append((done, total)))  # fmt: skip
    log.close()
    same_files(tmp_path / "one", tmp_path / "small")
    assert len(calls) == -(-table.n_rows // 997) and calls[-1] == (table.n_rows, table.n_rows)
    assert pq.ParquetFile(tmp_path / "small" / "predictions.parquet").num_row_groups == len(calls)


def test_next_order_dates_past_2262_are_never() -> None:
    dates = next_order_dates(np.array([10.0, 90_000.0, np.inf]), "2020-01-01", "D")
    assert dates[0] == np.datetime64("2020-01-11")
    assert np.isnat(dates[1]) and np.isnat(dates[2])


def test_other_settings_and_models_stream_the_same(same_files, tmp_path: Path) -> None:
    """Pareto/NBD (its CLV by steps), a discount rate, a window, the alive basis."""
    from rfmml.models import ParetoNBD

    tx, freq = _log("cdnow")
    log = ScannedLog.from_pandas(tx)
    features, summary = customer_features(log, freq=freq)
    pipeline = _fitted_on_pandas(features, summary, ParetoNBD(), "rf_grid", horizon=26,
                                 discount_rate=0.01, freq=freq, next_order_window=4,
                                 churn_basis="alive")  # fmt: skip
    write_predictions(pipeline.predict(scoring_frame(features, summary)), tmp_path / "pandas",
                      fingerprints={}, formats=("parquet", "csv"))  # fmt: skip
    table = customer_features_table(log, freq=freq)
    score_features_table(table, pipeline, tmp_path / "streamed", fingerprints={}, chunk_rows=5_000)
    log.close()
    same_files(tmp_path / "pandas", tmp_path / "streamed")


def test_a_log_without_amounts_streams_the_same(same_files, tmp_path: Path) -> None:
    from rfmml.segments import RFMScorer

    tx = simulate_transactions(2_000, random_state=3).drop(columns="amount")
    log = ScannedLog.from_pandas(tx)
    features, summary = customer_features(log, freq="D")
    assert "monetary_value" not in summary.columns
    rules = RuleSegmenter("rf_grid", scorer=RFMScorer(monetary_col="n_orders"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = ScoringPipeline(rule_segmenter=rules.fit(features),
                                   purchase_model=BetaGeoNBD().fit(summary), freq="D")  # fmt: skip
    write_predictions(pipeline.predict(scoring_frame(features, summary)), tmp_path / "pandas",
                      fingerprints={})  # fmt: skip
    table = customer_features_table(log, freq="D")
    edges = fit_rule_segmenter(RuleSegmenter("rf_grid", scorer=RFMScorer(monetary_col="n_orders")),
                               table).scorer_.edges_  # fmt: skip
    pd.testing.assert_frame_equal(edges, pipeline.rule_segmenter.scorer_.edges_)
    score_features_table(table, pipeline, tmp_path / "streamed", fingerprints={}, chunk_rows=600)
    log.close()
    same_files(tmp_path / "pandas", tmp_path / "streamed")


@pytest.mark.parametrize("hashed", [False, True])
def test_segment_lists_from_the_file_equal_the_pandas_lists(tmp_path: Path, hashed: bool) -> None:
    from rfmml.campaign import export_segment_lists
    from rfmml.campaign.streaming import export_segment_lists_from_file

    tx, freq = _log("cdnow")
    log = ScannedLog.from_pandas(tx)
    features, summary = customer_features(log, freq=freq)
    log.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = ScoringPipeline(rule_segmenter=RuleSegmenter("rfm11").fit(features),
                                   purchase_model=BetaGeoNBD().fit(summary),
                                   gamma_gamma=GammaGamma(zero_spend="exclude").fit(summary),
                                   freq=freq)  # fmt: skip
    predictions = pipeline.predict(scoring_frame(features, summary))
    paths = write_predictions(predictions, tmp_path / "run", fingerprints={})
    salt = "s3cret" if hashed else None
    want = export_segment_lists(predictions, tmp_path / "pandas", hash_ids=hashed, salt=salt)
    got = export_segment_lists_from_file(paths["parquet"], tmp_path / "file", hash_ids=hashed,
                                         salt=salt, chunk_rows=1_000)  # fmt: skip
    assert list(got) == list(want)
    assert any(p.stat().st_size > 200 for p in want.values())
    for name, path in want.items():
        assert got[name].read_bytes() == path.read_bytes(), name
    # the path as text, or the run's folder: the same lists
    again = export_segment_lists_from_file(str(tmp_path / "run"), tmp_path / "again",
                                           hash_ids=hashed, salt=salt)  # fmt: skip
    assert {k: p.read_bytes() for k, p in again.items()} == {
        k: p.read_bytes() for k, p in got.items()
    }
    with pytest.raises(DataError, match="predictions.meta.json"):
        (tmp_path / "lone").mkdir()
        write_predictions(predictions.head(3), tmp_path / "lone", fingerprints={})
        (tmp_path / "lone" / "predictions.meta.json").unlink()
        export_segment_lists_from_file(tmp_path / "lone", tmp_path / "none")


def test_a_grouped_table_streams_the_same(same_files, tmp_path: Path) -> None:
    tx = simulate_transactions(3_000, random_state=5)
    tx["channel"] = np.where(tx.index % 3 == 0, "web", "store")
    log = ScannedLog.from_pandas(tx)
    features, summary = customer_features(log, freq="D", group="channel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = ScoringPipeline(rule_segmenter=RuleSegmenter("rfm11").fit(features),
                                   purchase_model=BetaGeoNBD().fit(summary),
                                   gamma_gamma=GammaGamma(zero_spend="exclude").fit(summary),
                                   freq="D", group="channel")  # fmt: skip
    write_predictions(pipeline.predict(scoring_frame(features, summary)), tmp_path / "pandas",
                      fingerprints={})  # fmt: skip
    table = customer_features_table(log, freq="D", group="channel", partition_rows=2_000)
    edges = fit_rule_segmenter(RuleSegmenter("rfm11"), table).scorer_.edges_
    pd.testing.assert_frame_equal(edges, pipeline.rule_segmenter.scorer_.edges_)
    score_features_table(table, pipeline, tmp_path / "streamed", fingerprints={}, chunk_rows=500)
    log.close()
    same_files(tmp_path / "pandas", tmp_path / "streamed")


def test_the_table_codes_equal_the_search_and_survive_another_order() -> None:
    from rfmml.campaign.streaming import _RowCodes, _TableCodes

    log = ScannedLog.from_pandas(load_cdnow())
    table = customer_features_table(log, freq="W")
    columns = ["frequency", "recency", "T"]
    known = _TableCodes.of_table(table, columns, chunk_rows=1_000)
    assert known is not None
    whole = table.relation(columns).df()
    log.close()
    expected = whole[columns].drop_duplicates().sort_values(columns, ignore_index=True)
    pd.testing.assert_frame_equal(known.rows, expected)
    search = _RowCodes(known.rows, columns)
    for number, start in enumerate(range(0, len(whole), 1_000)):
        chunk = whole.iloc[start : start + 1_000]
        np.testing.assert_array_equal(known.codes(chunk, number), search.codes(chunk))
    assert known._search is None  # every chunk came in the order it was read
    shuffled = whole.iloc[:1_000].sample(frac=1.0, random_state=3)
    got = known.codes(shuffled, 0)  # another order: found by search, still right
    assert known._search is not None
    np.testing.assert_array_equal(known.rows.to_numpy()[got], shuffled[columns].to_numpy())


def test_counted_rows_equal_the_grouping_statement() -> None:
    from rfmml.campaign.streaming import _counted_rows

    log = ScannedLog.from_pandas(simulate_transactions(3_000, random_state=5))
    table = customer_features_table(log, freq="D")
    columns = ["frequency", "recency", "T"]
    got = _counted_rows(table, columns)
    want = table.connection.sql(
        'SELECT frequency, recency, "T", count(*)::DOUBLE AS weights FROM customer_features '
        'GROUP BY ALL ORDER BY frequency, recency, "T"'
    ).df()
    spend = _counted_rows(table, ["frequency", "monetary_value"])
    log.close()
    assert got is not None and len(got) < table.n_rows  # rows repeat: the grouping matters
    pd.testing.assert_frame_equal(got, want)
    assert spend is None  # spends are not small whole numbers: the statement groups them


def test_a_view_and_a_table_with_nulls_stream_through_arrow(same_files, tmp_path: Path) -> None:
    """Rows read by number when the table has them; a view goes through Arrow's batches."""
    import dataclasses

    from rfmml.campaign.streaming import _numbered_rows
    from rfmml.errors import DataError

    log, table, pipeline = _cdnow_table_and_pipeline()
    con = table.connection
    con.execute('CREATE TEMP VIEW features_view AS SELECT * FROM "customer_features"')
    view = dataclasses.replace(table, table="features_view")
    assert _numbered_rows(table) and not _numbered_rows(view)
    score_features_table(table, pipeline, tmp_path / "table", fingerprints={}, chunk_rows=700)
    score_features_table(view, pipeline, tmp_path / "view", fingerprints={}, chunk_rows=700)
    same_files(tmp_path / "table", tmp_path / "view")
    con.execute('CREATE TEMP TABLE holed AS SELECT * FROM "customer_features"')
    con.execute("UPDATE holed SET recency_days = NULL WHERE rowid = 1500")
    holed = dataclasses.replace(table, table="holed")
    with pytest.raises(DataError, match="recency_days"):
        score_features_table(holed, pipeline, tmp_path / "holed", fingerprints={}, chunk_rows=700)
    log.close()


def test_tables_past_the_sort_limit_are_grouped_by_duckdb(
    same_files, tmp_path: Path, monkeypatch
) -> None:
    """Past SORT_ROWS_MAX customers: DuckDB's statements, the same rows, weights and files."""
    from rfmml.campaign import streaming

    tx, freq = _log("simulated")
    log = ScannedLog.from_pandas(tx)
    table = customer_features_table(log, freq=freq)
    pipeline = ScoringPipeline(purchase_model=fit_on_table(BetaGeoNBD(), table), horizon=12,
                               freq=freq)  # fmt: skip
    sorted_rows = streaming.fit_rows(BetaGeoNBD(), table)
    score_features_table(table, pipeline, tmp_path / "sorted", fingerprints={}, chunk_rows=900)
    monkeypatch.setattr(streaming, "SORT_ROWS_MAX", table.n_rows - 1)
    assert streaming._TableCodes.of_table(table, ["frequency", "recency", "T"], 900) is None
    pd.testing.assert_frame_equal(streaming.fit_rows(BetaGeoNBD(), table), sorted_rows)
    score_features_table(table, pipeline, tmp_path / "duckdb", fingerprints={}, chunk_rows=900)
    log.close()
    same_files(tmp_path / "sorted", tmp_path / "duckdb")


def test_the_fit_hands_its_distinct_rows_to_the_scoring(same_files, tmp_path: Path) -> None:
    """fit_on_table leaves the sorted rows on the table; the scoring takes them: same files."""
    tx, freq = _log("simulated")
    log = ScannedLog.from_pandas(tx)
    table = customer_features_table(log, freq=freq)
    other = customer_features_table(log, freq=freq, table="other")
    model = fit_on_table(BetaGeoNBD(), table)
    key = ("frequency", "recency", "T")
    assert key in table.distinct_rows and not other.distinct_rows
    pipeline = ScoringPipeline(purchase_model=model, horizon=12, freq=freq)
    score_features_table(table, pipeline, tmp_path / "handed", fingerprints={}, chunk_rows=700)
    assert key not in table.distinct_rows  # taken (and its memory freed) by the scoring
    score_features_table(other, pipeline, tmp_path / "own", fingerprints={}, chunk_rows=700)
    log.close()
    same_files(tmp_path / "handed", tmp_path / "own")


@pytest.mark.parametrize("chunk_rows", [1_000_000, 997])
def test_a_table_held_in_memory_fits_and_streams_the_same(same_files, tmp_path: Path, monkeypatch,
                                                          chunk_rows: int) -> None:  # fmt: skip
    """The compiled pass's table kept as Arrow gives the DuckDB table's fits and files."""
    import duckdb

    from rfmml.features import combined

    tx, freq = _log("cdnow")
    log = ScannedLog.from_pandas(tx)
    stored = customer_features_table(log, freq=freq, table="stored")
    monkeypatch.setattr(combined, "TABLE_COMPILED_MIN_ROWS", 0)
    held = customer_features_table(log, freq=freq, table="held_table")
    assert stored.arrow is None and held.arrow is not None
    key = ["frequency", "recency", "T"]
    # the held table's chunks are its own slices: they take their row numbers unchecked
    assert streaming._TableCodes.of_table(held, key, chunk_rows).in_chunk_order
    assert not streaming._TableCodes.of_table(stored, key, chunk_rows).in_chunk_order
    params = []
    for name, table in (("stored", stored), ("held", held)):
        pipeline = _pipeline_on(table, freq, next_order_window=5)
        params.append([pipeline.purchase_model.get_fitted_params(),
                       pipeline.gamma_gamma.get_fitted_params()])  # fmt: skip
        score_features_table(table, pipeline, tmp_path / name, fingerprints={},
                             chunk_rows=chunk_rows)  # fmt: skip
    assert params[0] == params[1]
    same_files(tmp_path / "stored", tmp_path / "held")
    held.drop()
    assert held.arrow is None
    with pytest.raises(duckdb.CatalogException):
        log.connection.sql('SELECT * FROM "held_table"')
    # the name can be used again, for either kind of table
    again = customer_features_table(log, freq=freq, table="stored")
    assert again.arrow is not None and again.n_rows == stored.n_rows
    log.close()


@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("kind", ["stored", "held"])
@pytest.mark.parametrize("freq", ["W", "D"])
def test_the_models_fitted_side_by_side_are_those_fitted_in_turn(
    monkeypatch, threads: str, kind: str, freq: str
) -> None:
    """fit_models_on_table: the purchase model on its own thread, the same fitted values.

    A table held in memory has the purchase rows grouped on the fit's thread
    (whole days) or, for fractional weeks, by a statement that waits for the
    connection; a stored table's rows are grouped by statements in turn.
    """
    from rfmml.features import combined

    monkeypatch.setenv("RFMML_THREADS", threads)
    if kind == "held":
        monkeypatch.setattr(combined, "TABLE_COMPILED_MIN_ROWS", 0)
    log = ScannedLog.from_pandas(_log("cdnow")[0])
    table = customer_features_table(log, freq=freq)
    assert (table.arrow is not None) == (kind == "held")
    pipeline = _pipeline_on(table, freq)
    table.distinct_rows.clear()  # grouped again by the fits below
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            purchase, gg, rules = streaming.fit_models_on_table(
                table, BetaGeoNBD(), GammaGamma(zero_spend="exclude"), RuleSegmenter("rfm11")
            )
        assert purchase.get_fitted_params() == pipeline.purchase_model.get_fitted_params()
        assert gg.get_fitted_params() == pipeline.gamma_gamma.get_fitted_params()
        pd.testing.assert_frame_equal(rules.scorer_.edges_, pipeline.rule_segmenter.scorer_.edges_)
        assert rules.n_features_in_ == pipeline.rule_segmenter.n_features_in_
        only, none, nothing = streaming.fit_models_on_table(table, BetaGeoNBD())
        assert none is None and nothing is None
        assert only.get_fitted_params() == purchase.get_fitted_params()
    finally:
        log.close()


def test_a_failing_fit_side_by_side_is_raised_after_every_fit_stopped() -> None:
    import threading

    log, table, _ = _cdnow_table_and_pipeline()
    try:
        with pytest.raises(ValueError, match="penalizer"):  # the purchase model's thread
            streaming.fit_models_on_table(table, BetaGeoNBD(penalizer=-1.0), GammaGamma())
        with pytest.raises(ValueError, match="penalizer"):  # this thread's
            streaming.fit_models_on_table(table, BetaGeoNBD(), GammaGamma(penalizer=-1.0))
        bad = BetaGeoNBD(penalizer=-2.0)  # both: the purchase model's error first
        with pytest.raises(ValueError, match="-2.0"):
            streaming.fit_models_on_table(table, bad, GammaGamma(penalizer=-1.0))
        assert not [t for t in threading.enumerate() if t.name == "rfmml-fit"]
    finally:
        log.close()


@pytest.mark.parametrize("discount_rate", [0.0, 0.002])
def test_a_bgnbd_clv_on_rows_that_do_not_repeat_streams_the_same(
    same_files, tmp_path: Path, monkeypatch, discount_rate: float
) -> None:
    """Past the rows map_rows collapses, the discounted sum comes from BG/NBD's table.

    The sample of ``rows_repeat`` is made small (256 rows) so that the simulated
    log's daily ``(frequency, T)`` rows do not repeat: the whole table's CLV then
    sums the discounted purchases from a table per frequency, and the streamed
    chunks must give its values (not fall back to one pandas table).
    """
    from rfmml.models import _grouping
    from rfmml.models._validation import check_summary

    tx, freq = _log("simulated")
    log = ScannedLog.from_pandas(tx)
    features, summary = customer_features(log, freq=freq)
    pipeline = _fitted_on_pandas(features, summary, BetaGeoNBD(), "rfm11", horizon=30,
                                 discount_rate=discount_rate, freq=freq)  # fmt: skip
    monkeypatch.setattr(_grouping, "CHUNK_ROWS", 256)
    c = check_summary(summary, ("frequency", "T"), what="test")
    assert not _grouping.rows_repeat(c["frequency"], c["T"])  # the table's branch
    write_predictions(pipeline.predict(scoring_frame(features, summary)), tmp_path / "pandas",
                      fingerprints={}, formats=("parquet", "csv"))  # fmt: skip
    for held in (True, False):  # in memory, and numbered rows in DuckDB
        table = customer_features_table(log, freq=freq)
        if not held:
            table.arrow = None
        assert streaming._clv_tabulated(pipeline, table) is (discount_rate > 0)
        got = score_features_table(table, pipeline, tmp_path / f"streamed_{held}",
                                   fingerprints={}, chunk_rows=700)  # fmt: skip
        assert got.streamed
        same_files(tmp_path / "pandas", tmp_path / f"streamed_{held}")
    log.close()
