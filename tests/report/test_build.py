"""report.html built from real run folders: content, self-containment, absent inputs."""

from __future__ import annotations

import json
import re
import shutil
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from rfmml.campaign import read_predictions, write_predictions
from rfmml.cli import main
from rfmml.errors import DataError
from rfmml.plots import plot_comparison
from rfmml.report import PERIOD_FILE, REPORT_FILE, build_report


def _number(text: str) -> float:
    return float(text.replace(",", "").rstrip("%"))


def _section_table(page, section, first_header):
    for table in page.tables.get(section, []):
        if table and table[0][0] == first_header:
            return table
    raise AssertionError(f"no table starting with {first_header!r} in section {section!r}")


def _rows(table):
    header, *body = table
    return [dict(zip(header, row, strict=True)) for row in body]


# -- the run's own report ---------------------------------------------------------------


def test_run_writes_the_report_prints_its_path_and_logs_it(run_folder):
    result, out, uri = run_folder
    report = out / REPORT_FILE
    assert report.is_file()
    assert result.output.rstrip().endswith(str(report))
    client = MlflowClient(tracking_uri=uri)
    parent = client.search_runs(
        [client.get_experiment_by_name("report_small").experiment_id],
        filter_string="tags.`rfmml.role` = 'parent'",
    )[0]
    assert REPORT_FILE in [a.path for a in client.list_artifacts(parent.info.run_id)]


def test_report_is_self_contained(run_folder, parse):
    page = parse((run_folder[1] / REPORT_FILE).read_text(encoding="utf-8"))
    assert "script" not in page.tags and "iframe" not in page.tags
    assert "link" not in page.tags  # no stylesheet or font from anywhere
    external = [r for r in page.resources if re.match(r"\s*(https?:)?//", r[2], re.I)]
    assert external == []
    for tag, attribute, value in page.resources:
        if tag == "a":
            assert value.startswith("#"), value  # in-page navigation only
        else:
            assert value.startswith("data:image/"), (tag, attribute, value[:40])
    assert len(page.images) >= 4
    assert all(len(image.get("alt", "")) > 20 for image in page.images)
    html = (run_folder[1] / REPORT_FILE).read_text(encoding="utf-8")
    assert "@import" not in html and "url(" not in html


def test_headline_numbers_are_the_predictions_totals(run_folder, parse):
    out = run_folder[1]
    predictions = read_predictions(out / "predictions.parquet")
    page = parse((out / REPORT_FILE).read_text(encoding="utf-8"))
    assert f"Customers {len(predictions):,}" in page.text
    assert f"Revenue to date {predictions['total_spend'].sum():,.2f}" in page.text
    assert f"Predicted purchases {predictions['expected_purchases'].sum():,.1f}" in page.text
    assert f"Predicted CLV {predictions['clv'].sum():,.2f}" in page.text
    assert f"Mean P(alive) {predictions['probability_alive'].mean():.3f}" in page.text
    assert "next 26 weeks" in page.text


def test_segment_table_counts_shares_and_actions(run_folder, parse):
    out = run_folder[1]
    predictions = read_predictions(out / "predictions.parquet")
    page = parse((out / REPORT_FILE).read_text(encoding="utf-8"))
    rows = _rows(_section_table(page, "segments", "Segment"))
    counts = predictions["segment"].astype(str).value_counts()
    assert {r["Segment"]: int(_number(r["Customers"])) for r in rows} == counts.to_dict()
    revenue = predictions.groupby(predictions["segment"].astype(str))["total_spend"].sum()
    shown = [_number(r["Revenue"]) for r in rows]
    assert shown == sorted(shown, reverse=True)  # largest revenue first, for the 80/20 view
    for row in rows:
        assert _number(row["Revenue"]) == pytest.approx(revenue[row["Segment"]], abs=0.005)
        first = predictions.loc[predictions["segment"].astype(str) == row["Segment"]].iloc[0]
        assert row["Action"] == first["action"] and row["Channel"] == first["action_channel"]
        alive = predictions.loc[predictions["segment"].astype(str) == row["Segment"],
                                "probability_alive"].mean()  # fmt: skip
        assert _number(row["Mean P(alive)"]) == pytest.approx(alive, abs=5e-4)  # 3 decimals
    assert rows[-1]["Cumulative revenue"] == "100.0%"
    assert rows[-1]["Cumulative customers"] == "100.0%"


def test_grid_cells_add_up_and_carry_the_scheme_names(run_folder, parse):
    out = run_folder[1]
    predictions = read_predictions(out / "predictions.parquet")
    page = parse((out / REPORT_FILE).read_text(encoding="utf-8"))
    header, *body = page.tables["grid"][0]
    assert header == ["R \\ FM", "1", "2", "3", "4", "5"]
    assert [row[0] for row in body] == ["5", "4", "3", "2", "1"]
    total = 0
    champions = 0
    for row in body:
        for cell in row[1:]:
            match = re.match(r"(.+?) ([\d,]+) spend", cell)
            assert match, cell
            total += int(match.group(2).replace(",", ""))
            champions += int(match.group(2).replace(",", "")) * (match.group(1) == "Champions")
    assert total == len(predictions)
    assert champions == int((predictions["segment"] == "Champions").sum())
    top_right = body[0][-1]
    fm = (predictions["F"] + predictions["M"] + 1) // 2
    cell = predictions[(predictions["R"] == 5) & (fm == 5)]
    assert top_right.startswith(f"Champions {len(cell):,} spend {cell['total_spend'].mean():,.2f}")


def test_period_tables_match_the_transactions(run_folder, workspace, parse):
    out = run_folder[1]
    periods = pd.read_csv(out / PERIOD_FILE)
    orders = pd.read_csv(workspace / "orders.csv", parse_dates=["date"])
    months = orders["date"].dt.to_period("M").astype(str)
    assert periods.groupby("period")["revenue"].sum().to_dict() == pytest.approx(
        orders.groupby(months)["amount"].sum().to_dict()
    )
    assert periods.groupby("period")["customers"].sum().to_dict() == (
        orders.groupby(months)["cust"].nunique().to_dict()
    )
    page = parse((out / REPORT_FILE).read_text(encoding="utf-8"))
    table = _rows(_section_table(page, "periods", "Month"))
    march = next(r for r in table if r["Month"] == "1997-03")
    assert _number(march["Total"]) == pytest.approx(
        orders.loc[months == "1997-03", "amount"].sum(), abs=0.005
    )


def test_comparisons_migration_and_cleaning_sections(run_folder, parse):
    out = run_folder[1]
    page = parse((out / REPORT_FILE).read_text(encoding="utf-8"))
    segmentations = _rows(_section_table(page, "segmentations", "Segmentation"))
    assert {r["Segmentation"] for r in segmentations} == {"rfm11", "kmeans_3"}
    metrics = _rows(_section_table(page, "models", "Holdout metric"))
    assert "purchases_mae" in {r["Holdout metric"] for r in metrics}
    counts = pd.read_csv(out / "transitions_counts.csv", index_col=0)
    matrix = _section_table(page, "migration", "From \\ to")
    assert sum(_number(c) for row in matrix[1:] for c in row[1:]) == counts.to_numpy().sum()
    cleaning = json.loads((out / "cleaning_report.json").read_text())
    rows = _rows(_section_table(page, "cleaning", "Step"))
    assert _number(rows[0]["rows"]) == cleaning["rows_in"]
    assert _number(rows[-1]["rows"]) == cleaning["rows_out"]
    assert "No entered/left lists" in page.text  # a first run has no previous predictions


def test_rebuild_from_files_gives_the_same_sections(run_copy, parse):
    first = parse((run_copy / REPORT_FILE).read_text(encoding="utf-8"))
    (run_copy / REPORT_FILE).unlink()
    result = CliRunner().invoke(main, ["report", str(run_copy), "--title", "Q3 review"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(REPORT_FILE)
    again = parse((run_copy / REPORT_FILE).read_text(encoding="utf-8"))
    assert "Q3 review" in again.text
    for section in ("segments", "grid", "periods", "migration", "models", "segmentations"):
        assert again.tables[section] == first.tables[section], section


# -- fewer and more files ---------------------------------------------------------------


def test_predict_folder_has_fewer_sections_and_says_why(predict_folder, parse):
    result, out = predict_folder
    report = out / REPORT_FILE
    assert f"Report: {report}" in result.output
    page = parse(report.read_text(encoding="utf-8"))
    predictions = read_predictions(out / "predictions.parquet")
    assert f"Customers {len(predictions):,}" in page.text
    assert "Champions" in {r[0] for r in page.tables["segments"][0]}
    assert page.tables["grid"]  # the scheme is found through the model folder of the metadata
    assert "No segmentation comparison in this folder" in page.text
    assert "No cleaning report in this folder" not in page.text  # predict writes its own
    changes = _rows(_section_table(page, "migration", "Segment list"))
    entered = sum(len(pd.read_csv(p)) for p in (out / "changes").glob("entered_*.csv"))
    assert entered > 0  # scored at an earlier date than the run: customers moved
    assert sum(_number(r["entered"]) for r in changes) == entered
    assert all(_number(r["net"]) == _number(r["entered"]) - _number(r["left"]) for r in changes)


def test_files_of_later_work_are_picked_up_by_name(run_copy, parse):
    predictions = read_predictions(run_copy / "predictions.parquet")
    meta = json.loads((run_copy / "predictions.meta.json").read_text())
    rng = np.random.default_rng(0)
    for column in ("expected_purchases", "clv"):
        predictions[f"{column}_lower"] = predictions[column] * 0.8
        predictions[f"{column}_upper"] = predictions[column] * 1.25
    predictions["probability_no_purchase"] = rng.uniform(0, 1, len(predictions))
    write_predictions(predictions, run_copy, fingerprints=meta["fingerprints"])
    models = pd.DataFrame(
        {"purchases_mae": [0.78, 0.80], "log_likelihood": [-9582.4, -9601.2]},
        index=pd.Index(["bgnbd", "pareto_nbd"], name="model"),
    )
    models.to_csv(run_copy / "model_comparison.csv")
    fig = plot_comparison(pd.read_csv(run_copy / "comparison.csv", index_col=0))
    fig.savefig(run_copy / "tracking.png", dpi=40)
    history = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 1, 2, 3],
            "segment": ["Champions", "Lost", "Lost", "Champions", "Champions", "Lost"],
            "as_of": ["1998-03-31"] * 3 + ["1998-06-30"] * 3,
        }
    )
    history.to_csv(run_copy / "segment_history.csv", index=False)

    page = parse(build_report(run_copy).read_text(encoding="utf-8"))
    low, high = predictions["clv_lower"].sum(), predictions["clv_upper"].sum()
    assert f"interval {low:,.2f} to {high:,.2f}" in page.text
    no_purchase = predictions["probability_no_purchase"].mean()
    assert f"Mean P(no purchase) {no_purchase:.3f}" in page.text
    segments = _rows(_section_table(page, "segments", "Segment"))
    assert {"CLV, lower", "CLV, upper", "Mean P(no purchase)"} <= set(segments[0])
    compared = _rows(_section_table(page, "models", "model"))
    assert [r["model"] for r in compared] == ["bgnbd", "pareto_nbd"]
    assert any("Tracking plot" in image["alt"] for image in page.images)
    history_table = _rows(_section_table(page, "periods", "Date"))
    assert history_table == [
        {"Date": "1998-03-31", "Champions": "1", "Lost": "2"},
        {"Date": "1998-06-30", "Champions": "2", "Lost": "1"},
    ]


def test_group_column_gives_one_segment_table_per_group(grouped_folder, parse):
    result, out, _ = grouped_folder
    predictions = read_predictions(out / "predictions.parquet")
    page = parse((out / REPORT_FILE).read_text(encoding="utf-8"))
    tables = page.tables["groups"]
    assert len(tables) == 2
    assert "channel: web" in page.text and "channel: store" in page.text
    for table in tables:
        shown = sum(_number(r["Customers"]) for r in _rows(table))
        assert shown in set(predictions["channel"].value_counts().to_list())
    assert sum(sum(_number(r["Customers"]) for r in _rows(t)) for t in tables) == len(predictions)


def test_missing_and_unreadable_files_become_notes(run_copy, parse):
    (run_copy / "comparison.csv").write_bytes(b"\x00\x01not,a\n\xff\xfe")
    (run_copy / "cleaning_report.json").write_text("{not json")
    for name in ("transitions_counts.csv", "transition_matrix.png", "model_metrics.csv",
                 "model_comparison.csv", "tracking.png"):  # fmt: skip
        (run_copy / name).unlink()
    shutil.rmtree(run_copy / "model")
    page = parse(build_report(run_copy).read_text(encoding="utf-8"))
    assert "cleaning_report.json could not be read" in page.text
    assert "No migration data in this folder" in page.text
    assert "No model comparison in this folder" in page.text
    assert "Champions" in page.text  # the scheme falls back to the built-in rfm11


def test_only_a_comparison_still_builds(tmp_path, run_folder, parse):
    shutil.copy(run_folder[1] / "comparison.csv", tmp_path / "comparison.csv")
    page = parse(build_report(tmp_path).read_text(encoding="utf-8"))
    assert "No predictions in this folder" in page.text
    assert "Segmentations compared" in page.text


def test_names_are_escaped(tmp_path, parse):
    table = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "recency_days": [3.0, 40.0],
            "n_orders": [2, 1],
            "total_spend": [10.0, 5.0],
            "segment": ["<script>alert(1)</script>", "A & B"],
        }
    ).set_index("customer_id", drop=False)
    write_predictions(table, tmp_path, fingerprints={})
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = parse(html)
    assert {r["Segment"] for r in _rows(page.tables["segments"][0])} == {
        "<script>alert(1)</script>",
        "A & B",
    }


def test_not_a_run_folder_is_refused(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        build_report(tmp_path / "nope")
    with pytest.raises(DataError, match="holds none of the files of an rfmml run"):
        build_report(tmp_path)
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 1
    assert "holds none of the files of an rfmml run" in result.output


def test_template_ships_as_package_data():
    template = resources.files("rfmml.report") / "templates" / "report.html.j2"
    assert template.is_file()
    assert "{% macro table" in template.read_text(encoding="utf-8")


def test_unknown_scheme_and_empty_period_file_are_said_plainly(run_copy, parse):
    shutil.rmtree(run_copy / "model")
    meta = json.loads((run_copy / "predictions.meta.json").read_text())
    meta["scoring"]["scheme"] = "our_own_scheme"
    (run_copy / "predictions.meta.json").write_text(json.dumps(meta))
    (run_copy / PERIOD_FILE).write_text("period,segment,customers,revenue,orders\n")
    page = parse(build_report(run_copy).read_text(encoding="utf-8"))
    assert "The rule scheme of this scoring is unknown" in page.text
    assert f"{PERIOD_FILE} is empty" in page.text
    assert "No segments_by_period.csv or segment history" in page.text
    assert "Champions" in {r[0] for r in page.tables["segments"][0]}


def test_headline_and_segment_table_use_joint_draw_totals(run_copy, parse):
    predictions = read_predictions(run_copy / "predictions.parquet")
    meta = json.loads((run_copy / "predictions.meta.json").read_text())
    for column in ("expected_purchases", "clv"):
        predictions[f"{column}_lower"] = predictions[column] * 0.8
        predictions[f"{column}_upper"] = predictions[column] * 1.25
    segments = predictions["segment"].astype(str)
    totals = [
        {"segment": name, "n_customers": int((segments == name).sum()),
         "clv": float(predictions.loc[segments == name, "clv"].sum()),
         "clv_lower": 1000.0 + i, "clv_upper": 2000.0 + i}
        for i, name in enumerate(sorted(segments.unique()))
    ]  # fmt: skip
    totals.append({"segment": "all", "n_customers": len(predictions),
                   "clv": float(predictions["clv"].sum()), "clv_lower": 12345.0,
                   "clv_upper": 23456.0})  # fmt: skip
    predictions.attrs = {
        **meta["scoring"],
        "intervals": {"interval": 0.9, "n_draws": 200, "totals": totals},
    }
    write_predictions(predictions, run_copy, fingerprints=meta["fingerprints"])
    page = parse(build_report(run_copy).read_text(encoding="utf-8"))
    assert "90% interval 12,345.00 to 23,456.00 (joint parameter draws)" in page.text
    rows = _rows(_section_table(page, "segments", "Segment"))
    lower = {r["Segment"]: _number(r["CLV, lower"]) for r in rows}
    expected = {t["segment"]: t["clv_lower"] for t in totals if t["segment"] != "all"}
    assert lower == pytest.approx(expected)


def test_a_degenerate_or_beaten_scoring_model_is_flagged_at_the_top(run_copy, parse):
    comparison = pd.read_csv(run_copy / "model_comparison.csv", index_col="model")
    chosen = comparison.index[comparison["chosen"]][0]
    page = parse(build_report(run_copy).read_text(encoding="utf-8"))
    # the oracle: the run's own table; CDNOW's models beat the baseline and none is degenerate
    assert comparison["degenerate"].isna().all()
    assert comparison.at["baseline", "purchases_mae"] > comparison.at[chosen, "purchases_mae"]
    assert "Read with care" not in page.text

    comparison["degenerate"] = comparison["degenerate"].astype(object)
    comparison.loc[chosen, "degenerate"] = "a, b"
    comparison.loc["pareto_nbd" if chosen != "pareto_nbd" else "bgnbd", "degenerate"] = "s, beta"
    comparison.loc["baseline", "purchases_mae"] = comparison.at[chosen, "purchases_mae"] - 0.01
    comparison.loc["baseline", "buy_again_auc"] = comparison.at[chosen, "buy_again_auc"] + 0.01
    comparison.to_csv(run_copy / "model_comparison.csv")
    page = parse(build_report(run_copy).read_text(encoding="utf-8"))
    label = comparison.at[chosen, "label"]
    headline = page.text.split("Read with care", 1)[1].split(" Run ", 1)[0]
    assert f"The scoring model, {label}, is a degenerate fit: a, b ran to the edge" in headline
    assert "Also degenerate:" in headline and "(s, beta)" in headline
    assert f"did better than {label} on the holdout on purchases_mae (" in headline
    assert "buy_again_auc (" in headline
    assert "purchases_rmse" not in headline  # the model still wins there
    models_part = page.text.split("Purchase models", 1)[1]
    assert "is a degenerate fit" in models_part  # repeated under the comparison table
