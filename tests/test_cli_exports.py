"""The rfmml command on shop exports as users hand them over (CDNOW rows, reshaped)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rfmml.campaign import ScoringPipeline, write_predictions
from rfmml.cli import main
from rfmml.data import read_transactions
from rfmml.errors import DataError
from rfmml.features import CustomerState, btyd_summary, rfm_table
from rfmml.models import BetaGeoNBD
from rfmml.segments import RuleSegmenter

WOO = ["--customer", "Customer ID", "--timestamp", "Order Date", "--amount", "Order Total"]


@pytest.fixture(scope="module")
def orders(cdnow_tx) -> pd.DataFrame:
    """500 CDNOW customers as a shop's order export: spaced names, day-first dates."""
    tx = cdnow_tx[cdnow_tx["customer_id"] <= 500]
    return pd.DataFrame({
        "Customer ID": tx["customer_id"].to_numpy(),
        "Order Date": tx["timestamp"].dt.strftime("%d/%m/%Y %H:%M").to_numpy(),
        "Order Total": tx["amount"].to_numpy(),
    })  # fmt: skip


def invoke(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_features_drop_duplicates_and_zero_amounts_from_the_command_line(orders, tmp_path):
    """An export appended to itself doubled every customer's orders: the CLI had no way to
    drop the copies (read_transactions and a config's [data] had drop_duplicates)."""
    once, twice = tmp_path / "once.csv", tmp_path / "twice.csv"
    orders.to_csv(once, index=False)
    pd.concat([orders, orders]).to_csv(twice, index=False)
    runs = {
        "once": (once, []),
        "once_dropped": (once, ["--drop-duplicates"]),
        "kept": (twice, []),
        "dropped": (twice, ["--drop-duplicates"]),
        "no_zero": (twice, ["--drop-duplicates", "--drop-zero-amounts"]),
    }
    tables, logs = {}, {}
    for name, (path, flags) in runs.items():
        output = tmp_path / f"features_{name}.csv"
        result = invoke("features", path, *WOO, *flags, "-o", output)
        assert result.exit_code == 0, result.output
        tables[name], logs[name] = pd.read_csv(output), result.output
    assert (tables["kept"]["n_orders"] == 2 * tables["once"]["n_orders"]).all()
    pd.testing.assert_frame_equal(tables["dropped"], tables["once_dropped"])
    n_copies = len(orders) + int(orders.duplicated().sum())
    assert f"removed {n_copies:,}: identical to an earlier row" in logs["dropped"]
    zero = orders["Order Total"] == 0
    assert zero.any()  # CDNOW has zero-value purchases
    assert f"removed {2 * int(zero.sum())}: zero amount" in logs["no_zero"]
    n_kept = len(orders[~zero].drop_duplicates())
    assert tables["no_zero"]["n_orders"].sum() == n_kept


def test_refresh_drop_duplicates_is_stored_at_creation(orders, cdnow_tx, tmp_path, mlflow_store):
    """refresh --drop-duplicates makes the state drop copies; a state created without it
    refuses the flag in one line instead of mixing two policies."""
    pd.concat([orders, orders.iloc[-40:]]).to_csv(tmp_path / "log.csv", index=False)
    tx = cdnow_tx[cdnow_tx["customer_id"] <= 500]
    pipeline = ScoringPipeline(rule_segmenter=RuleSegmenter("rf_grid").fit(rfm_table(tx)),
                               bgnbd=BetaGeoNBD().fit(btyd_summary(tx, freq="W")),
                               horizon=26, freq="W")  # fmt: skip
    model = pipeline.save(tmp_path / "model")
    uri = mlflow_store(tmp_path / "mlflow.db")

    def refresh(state: str, *flags: str) -> object:
        return invoke(
            "refresh",
            tmp_path / "log.csv",
            "--state",
            tmp_path / state,
            "--model",
            model,
            "--tracking-uri",
            uri,
            "-o",
            tmp_path / f"out_{state}",
            *WOO,
            *flags,
        )

    result = refresh("dropping.duckdb", "--drop-duplicates")
    assert result.exit_code == 0, result.output
    with CustomerState.open(tmp_path / "dropping.duckdb", read_only=True) as st:
        assert st.cleaning["drop_duplicates"] is True
        assert int(st.rfm_table()["n_orders"].sum()) == len(orders.drop_duplicates())
    mapping = dict(customer="Customer ID", timestamp="Order Date", amount="Order Total")
    with CustomerState.create(tmp_path / "keeping.duckdb", **mapping) as st:
        st.update(tmp_path / "log.csv")
    refused = refresh("keeping.duckdb", "--drop-duplicates")
    assert refused.exit_code == 1
    errors = [line for line in refused.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.search(r"drop_duplicates=True: the state .* was created "
                                          r"with drop_duplicates=False", errors[0])  # fmt: skip
    with CustomerState.open(tmp_path / "keeping.duckdb", read_only=True) as st:
        assert int(st.rfm_table()["n_orders"].sum()) == len(orders) + 40  # left as it was


def test_bgnbd_refuses_a_log_of_one_time_buyers_as_the_other_models_do(orders, tmp_path):
    """Every customer bought once: BG/NBD ran to a degenerate fit, advised a penalizer, and
    fit failed later on Gamma-Gamma (or, without amounts, saved the useless model)."""
    first = orders.drop_duplicates("Customer ID")
    path = tmp_path / "first_orders.csv"
    first.to_csv(path, index=False)
    summary = btyd_summary(read_transactions(path, "Customer ID", "Order Date", "Order Total")[0])
    with pytest.raises(DataError, match=r"^frequency must be > 0 for at least one customer to "
                       r"fit BetaGeoNBD, but 500 of 500 customers"):  # fmt: skip
        BetaGeoNBD().fit(summary)
    for amount in (["--amount", "Order Total"], ["--amount", ""]):
        result = invoke("fit", path, *WOO[:4], *amount, "--models-dir", tmp_path / "models")
        assert result.exit_code == 1
        errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "only one-time buyers" in errors[0], result.output
        assert "degenerate" not in result.output
        assert not (tmp_path / "models").exists()


def test_predict_refuses_previous_predictions_keyed_by_other_rows(orders, tmp_path):
    """--previous from a pipeline fitted per channel, for one fitted per customer: predict
    wrote everything, then failed on the change lists advising a Python argument (key=)."""
    path = tmp_path / "orders.csv"
    orders.to_csv(path, index=False)
    model = tmp_path / "model"
    fitted = invoke("fit", path, *WOO[:4], "--amount", "", "--models-dir", model)
    assert fitted.exit_code == 0, fitted.output
    ids = orders["Customer ID"].drop_duplicates()
    per_channel = pd.DataFrame(
        {"segment": "Loyal"},
        index=pd.MultiIndex.from_product([ids, ["online", "store"]],
                                         names=["customer_id", "Channel"]),
    )  # fmt: skip
    write_predictions(per_channel, tmp_path / "first", fingerprints={}, formats=("parquet",))
    second = tmp_path / "second"
    result = invoke("predict", path, *WOO[:4], "--amount", "", "--model", model, "-o", second,
                    "--previous", tmp_path / "first" / "predictions.parquet")  # fmt: skip
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    assert re.search(r"--previous .* has one row per \['customer_id', 'Channel'\], this "
                     r"prediction one per \['customer_id'\]", errors[0])  # fmt: skip
    assert "key=" not in errors[0] and not second.exists()


def test_features_leave_out_refunded_and_cancelled_orders(orders, tmp_path):
    """--status/--exclude-status: a WooCommerce export's refunded and cancelled orders are
    not purchases (they were counted, with no option to say so)."""
    states = np.array(["completed", "completed", "Refunded", "cancelled"])
    log = orders.assign(Status=states[np.arange(len(orders)) % 4])
    log.to_csv(tmp_path / "all.csv", index=False)
    kept = log[log["Status"] == "completed"].drop(columns="Status")
    kept.to_csv(tmp_path / "completed.csv", index=False)
    flags = ["--status", "Status", "--exclude-status", "refunded, cancelled"]
    runs = {"all": ("all.csv", flags), "completed": ("completed.csv", [])}
    tables, logs = {}, {}
    for name, (path, options) in runs.items():
        output = tmp_path / f"features_{name}.csv"
        result = invoke("features", tmp_path / path, *WOO, *options, "-o", output)
        assert result.exit_code == 0, result.output
        tables[name], logs[name] = pd.read_csv(output), result.output
    pd.testing.assert_frame_equal(tables["all"], tables["completed"])
    removed = f"removed {len(log) - len(kept):,}: Status 'refunded', 'cancelled' (not a purchase)"
    assert removed in logs["all"]


def test_refresh_leaves_out_refunded_orders_and_remembers_the_states(
    orders, cdnow_tx, tmp_path, mlflow_store
):
    """refresh --status/--exclude-status as features, fit and predict take them: a daily
    order export's refunded orders were purchases to refresh (it had no such option); the
    state keeps the options for the next refresh."""
    states = np.array(["completed", "completed", "Refunded", "completed"])
    log = orders.assign(Status=states[np.arange(len(orders)) % 4])
    log.to_csv(tmp_path / "day1.csv", index=False)
    log.iloc[-60:].assign(Status="refunded").to_csv(tmp_path / "day2.csv", index=False)
    tx = cdnow_tx[cdnow_tx["customer_id"] <= 500]
    pipeline = ScoringPipeline(bgnbd=BetaGeoNBD().fit(btyd_summary(tx, freq="W")), horizon=26,
                               freq="W")  # fmt: skip
    model = pipeline.save(tmp_path / "model")
    common = ["--state", tmp_path / "state.duckdb", "--model", model, "--tracking-uri",
              mlflow_store(tmp_path / "mlflow.db"), *WOO]  # fmt: skip
    first = invoke("refresh", tmp_path / "day1.csv", *common, "-o", tmp_path / "out1",
                   "--status", "Status", "--exclude-status", "refunded")  # fmt: skip
    assert first.exit_code == 0, first.output
    n_refunded = int((log["Status"] == "Refunded").sum())
    assert f"removed {n_refunded:,}: Status 'refunded' (not a purchase)" in first.output
    with CustomerState.open(tmp_path / "state.duckdb", read_only=True) as st:
        assert int(st.rfm_table()["n_orders"].sum()) == len(log) - n_refunded
    second = invoke("refresh", tmp_path / "day2.csv", *common, "-o", tmp_path / "out2")
    assert second.exit_code == 0, second.output
    assert "removed 60: Status 'refunded' (not a purchase)" in second.output
    with CustomerState.open(tmp_path / "state.duckdb", read_only=True) as st:
        assert int(st.rfm_table()["n_orders"].sum()) == len(log) - n_refunded


def test_features_on_a_crm_export_with_typos_cases_and_currencies(orders, tmp_path):
    """A mistyped year is flagged (once) and --since drops it; ids typed in two cases are
    counted and --normalize-ids merges them; two currencies are refused until --currency
    picks one: each was accepted silently (T stretched, customers split, EUR + USD summed)."""
    log = orders.assign(**{"Customer ID": "Client" + orders["Customer ID"].astype(str)
                           + "@Example.com", "Currency": "EUR"})  # fmt: skip
    log.loc[log.index[3], "Order Date"] = "05/02/1897 10:00"
    log.loc[log.index[::5], "Customer ID"] = log["Customer ID"].str.lower()
    log.loc[log.index[1::10], "Currency"] = "USD"
    log.to_csv(tmp_path / "crm.csv", index=False)
    refused = invoke("features", tmp_path / "crm.csv", *WOO)
    assert refused.exit_code == 1
    assert re.search(r"^error: column 'Currency' holds 2 currencies: 'EUR' \([\d,]+ rows\), "
                     r"'USD' \([\d,]+ rows\)", refused.output, re.M)  # fmt: skip
    output = tmp_path / "features.csv"
    flags = ["--currency", "EUR", "-o", output]
    first = invoke("features", tmp_path / "crm.csv", *WOO, *flags)
    assert first.exit_code == 0, first.output
    assert first.output.count("mistyped year") == 1  # the note, not the warning again
    assert "upper/lower case" in first.output and "--normalize-ids" in first.output
    n_usd = int((log["Currency"] == "USD").sum())
    assert f"removed {n_usd:,}: Currency not 'EUR'" in first.output
    clean = invoke("features", tmp_path / "crm.csv", *WOO, *flags, "--since", "1997-01-01",
                   "--normalize-ids")  # fmt: skip
    assert clean.exit_code == 0, clean.output
    assert "removed 1: dated before 1997-01-01 (since)" in clean.output
    assert "mistyped year" not in clean.output
    table = pd.read_csv(output)
    kept = log[(log["Currency"] == "EUR") & (log.index != log.index[3])]
    assert len(table) == kept["Customer ID"].str.lower().nunique()


def test_unmapped_columns_name_the_likely_options(orders, tmp_path):
    """A new user's first run on an export: the error names the options to copy."""
    orders.to_csv(tmp_path / "export.csv", index=False)
    result = invoke("features", tmp_path / "export.csv")
    assert result.exit_code == 1
    assert ("Likely: --customer 'Customer ID' --timestamp 'Order Date' --amount 'Order Total'."
            in result.output.replace("\n", ""))  # fmt: skip
