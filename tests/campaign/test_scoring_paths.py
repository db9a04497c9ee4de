"""Scoring on distinct summary rows equals scoring every customer's row."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from rfmml.campaign import score_customers
from rfmml.campaign.playbook import load_playbook
from rfmml.campaign.scoring import next_order_dates
from rfmml.data import load_cdnow, load_online_retail, simulate_transactions
from rfmml.features import customer_features
from rfmml.models import BetaGeoNBD, GammaGamma, ParetoNBD, customer_lifetime_value
from rfmml.segments import RuleSegmenter


def _logs() -> dict[str, tuple[pd.DataFrame, str]]:
    return {
        "cdnow": (load_cdnow(), "W"),
        "online_retail": (load_online_retail().drop(columns=["order_id", "country"]), "D"),
        "simulated": (simulate_transactions(3_000, random_state=11), "D"),
    }


@pytest.mark.parametrize(("name", "model"), [
    ("cdnow", BetaGeoNBD), ("cdnow", ParetoNBD), ("online_retail", BetaGeoNBD),
    ("simulated", BetaGeoNBD),
])  # fmt: skip
def test_every_column_equals_the_per_customer_definition(name: str, model: type) -> None:
    tx, freq = _logs()[name]
    features, summary = customer_features(tx, freq=freq)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        purchase = model().fit(summary)
        gg = GammaGamma(zero_spend="exclude").fit(summary)
    rules = RuleSegmenter("rfm11").fit(features)
    horizon = 12
    table = score_customers(features, summary, rule_segmenter=rules, purchase_model=purchase,
                            gamma_gamma=gg, horizon=horizon, freq=freq,
                            next_order_window=5)  # fmt: skip
    assert len(table) == len(summary)
    median = purchase.next_purchase_quantile(summary, 0.5).to_numpy()
    dates = next_order_dates(median, summary.attrs["observation_end"], freq)
    np.testing.assert_array_equal(table["expected_next_order_date"].to_numpy(), dates)
    within = purchase.probability_purchase_within(summary, 5.0).to_numpy()
    np.testing.assert_array_equal(table["probability_order_within_window"].to_numpy(), within)
    p_alive = purchase.probability_alive(summary).to_numpy()
    expected = {
        "probability_alive": p_alive,
        "probability_no_purchase": purchase.probability_no_purchase(summary, horizon).to_numpy(),
        "expected_purchases": purchase.expected_purchases(summary, horizon).to_numpy(),
        "expected_order_value": gg.expected_order_value(summary).to_numpy(),
        "clv": customer_lifetime_value(purchase, gg, summary, horizon, 0.0, freq=freq).to_numpy(),
    }
    expected["expected_spend"] = expected["expected_purchases"] * expected["expected_order_value"]
    for column, values in expected.items():
        np.testing.assert_array_equal(table[column].to_numpy(), values, err_msg=column)
    book = load_playbook(None)
    scored = rules.transform(features)
    entries = [book.entry(str(s), rules.scheme_) for s in scored["segment"]]
    assert table["action"].tolist() == [e.action for e in entries]
    assert table["action_channel"].tolist() == [e.channel for e in entries]
    assert table["action_priority"].tolist() == [e.priority for e in entries]
    assert table["action_priority"].dtype == np.int64
    assert table["segment"].astype(str).tolist() == scored["segment"].astype(str).tolist()
