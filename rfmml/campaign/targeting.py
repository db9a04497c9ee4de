"""Targeting: choose whom to contact within a budget, and report the revenue covered."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rfmml.campaign.lists import _check_by, _names

__all__ = ["TargetingResult", "select_targets"]


@dataclass(frozen=True)
class TargetingResult:
    """Customers chosen by :func:`select_targets` and what they cover.

    Attributes
    ----------
    targets : pandas.DataFrame
        The chosen rows of the table (all its columns, its index) plus
        ``contact_value`` and ``rank`` (1 = highest value), ordered by rank.
    by_segment : pandas.DataFrame
        One row per segment (display order): ``customers``, ``eligible``
        (customers passing ``min_probability_alive``), ``contacts`` chosen,
        ``expected_revenue`` (sum of ``contact_value`` of the chosen),
        ``total_expected_revenue`` (over every customer of the segment),
        ``share_of_segment`` (the two divided) and ``share_of_total`` (chosen
        revenue over the whole table's expected revenue), ``cost``.
    n_contacts : int
        Customers chosen.
    cost : float
        ``n_contacts * cost_per_contact``.
    expected_revenue : float
        Expected revenue of the chosen customers.
    total_expected_revenue : float
        Expected revenue of every customer in the table.
    share_covered : float
        ``expected_revenue / total_expected_revenue`` (0 when the total is 0).
    value : str
        Column used as the value of a contact.
    max_contacts : int
        Contacts allowed by ``n_contacts`` and ``budget // cost_per_contact``.
    """

    targets: pd.DataFrame
    by_segment: pd.DataFrame
    n_contacts: int
    cost: float
    expected_revenue: float
    total_expected_revenue: float
    share_covered: float
    value: str
    max_contacts: int


def _allowed_contacts(budget: float | None, n_contacts: int | None, cost: float) -> int:
    if not (isinstance(cost, int | float) and not isinstance(cost, bool)) or not (
        math.isfinite(cost) and cost >= 0
    ):
        raise ValueError(f"cost_per_contact must be a finite amount >= 0, got {cost!r}.")
    if budget is None and n_contacts is None:
        raise ValueError(
            "select_targets needs a budget: pass n_contacts (number of customers to contact) "
            "and/or budget (money) with cost_per_contact > 0."
        )
    limits = []
    if n_contacts is not None:
        if isinstance(n_contacts, bool) or not isinstance(n_contacts, int | np.integer):
            raise ValueError(f"n_contacts must be a whole number >= 1, got {n_contacts!r}.")
        if n_contacts < 1:
            raise ValueError(f"n_contacts must be >= 1 to contact anyone, got {n_contacts}.")
        limits.append(int(n_contacts))
    if budget is not None:
        if (
            isinstance(budget, bool)
            or not isinstance(budget, int | float)
            or not (math.isfinite(budget) and budget >= 0)
        ):
            raise ValueError(f"budget must be a finite amount >= 0, got {budget!r}.")
        if cost <= 0:
            raise ValueError(
                f"a money budget ({budget!r}) needs cost_per_contact > 0 to count contacts, "
                f"got cost_per_contact={cost!r}; or pass n_contacts instead."
            )
        affordable = int(budget // cost)
        if affordable < 1:
            raise ValueError(
                f"budget {budget!r} does not cover a single contact at cost_per_contact "
                f"{cost!r}; raise the budget or lower the cost."
            )
        limits.append(affordable)
    return min(limits)


def _numeric_column(table: pd.DataFrame, name: str, what: str) -> np.ndarray:
    if name not in table.columns:
        hint = {
            "clv_lower": "score_customers(..., interval=0.9)",
            "probability_top_clv": "score_customers(..., interval=0.9, top_fraction=0.1)",
        }
        raise ValueError(
            f"select_targets: {what} column {name!r} is not in the table"
            + (f"; add it with {hint[name]}." if name in hint else ".")
        )
    values = table[name].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise ValueError(
            f"select_targets: {what} column {name!r} has "
            f"{int((~np.isfinite(values)).sum())} missing or infinite values."
        )
    return values


def select_targets(
    table: pd.DataFrame,
    *,
    budget: float | None = None,
    n_contacts: int | None = None,
    cost_per_contact: float = 0.0,
    value: str = "clv",
    by: str = "segment",
    min_probability_alive: float = 0.0,
    rank_by: str | None = None,
) -> TargetingResult:
    """Pick the customers with the highest expected value of a contact, within a budget.

    The value of contacting customer ``i`` is the table's ``value`` column:

    ``contact_value_i = table[value]_i``

    With the defaults this is ``clv``, the discounted expected spend over the
    horizon; ``"expected_spend"`` gives the undiscounted one. Both are already
    conditional expectations given the purchase history, i.e. weighted by
    ``probability_alive`` (BG/NBD eq. 10 multiplies by it), so they are not
    multiplied by it again, which would count the churn risk twice. Customers
    with ``probability_alive < min_probability_alive`` are not eligible.

    The number of contacts is ``n_contacts``, ``budget // cost_per_contact``, or
    the smaller of the two when both are given; the eligible customers with the
    largest ``contact_value`` are chosen across all segments (ties keep table
    order), and the result reports, per segment, the contacts and the expected
    revenue they cover. When fewer customers are eligible than allowed, all of
    them are chosen.

    Uncertainty-aware targeting ranks on another column than the value it
    reports: ``rank_by="clv_lower"`` (the lower bound of the CLV interval,
    ``score_customers(interval=...)``) prefers customers whose value is sure over
    ones whose high estimate rests on little history; ``rank_by="probability_top_clv"``
    (``score_customers(top_fraction=0.1)``) ranks on the probability over
    parameter draws of being in the top decile of CLV. ``contact_value`` and the
    revenue figures stay those of ``value``.

    Parameters
    ----------
    table : pandas.DataFrame
        Predictions table (:func:`~rfmml.campaign.score_customers`), per customer
        or per customer and group.
    budget : float, optional
        Money available; needs ``cost_per_contact > 0``.
    n_contacts : int, optional
        Maximum number of customers to contact.
    cost_per_contact : float, default=0.0
        Cost of one contact, in the currency of ``budget``.
    value : str, default="clv"
        Numeric column holding the expected value of each customer.
    by : str, default="segment"
        Column the report is broken down by.
    min_probability_alive : float, default=0.0
        Eligibility threshold on ``probability_alive`` (in [0, 1]).
    rank_by : str, optional
        Numeric column that orders the customers (ties broken by ``value``, then
        table order); default ``value``.

    Returns
    -------
    TargetingResult

    Raises
    ------
    ValueError
        No budget given, a budget that buys no contact, negative or non-numeric
        amounts, a missing or non-numeric ``value`` column, a missing ``by`` or
        ``probability_alive`` column, a threshold outside [0, 1], or no eligible
        customer.
    """
    labels = _check_by(table, by, "select_targets")
    allowed = _allowed_contacts(budget, n_contacts, cost_per_contact)
    if value not in table.columns:
        numeric = [str(c) for c in table.columns if pd.api.types.is_float_dtype(table[c])]
        raise ValueError(
            f"select_targets: value column {value!r} is not in the table; score with bgnbd "
            f"and gamma_gamma for 'clv' or 'expected_spend', or choose one of {numeric}."
        )
    column = table[value]
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise ValueError(
            f"select_targets: value column {value!r} must be numeric, got {column.dtype}."
        )
    worth = column.to_numpy(dtype=float)
    bad = ~np.isfinite(worth)
    if bad.any():
        raise ValueError(
            f"select_targets: value column {value!r} has {int(bad.sum())} missing or infinite "
            f"values of {len(worth)}."
        )
    if not 0.0 <= min_probability_alive <= 1.0:
        raise ValueError(f"min_probability_alive must be in [0, 1], got {min_probability_alive!r}.")
    eligible = np.ones(len(table), dtype=bool)
    if min_probability_alive > 0:
        if "probability_alive" not in table.columns:
            raise ValueError(
                "select_targets: min_probability_alive > 0 needs a probability_alive column; "
                "score the table with a fitted BG/NBD model."
            )
        eligible = table["probability_alive"].to_numpy(dtype=float) >= min_probability_alive
        if not eligible.any():
            raise ValueError(
                f"select_targets: no customer has probability_alive >= {min_probability_alive}; "
                "lower min_probability_alive."
            )

    candidates = np.flatnonzero(eligible)
    if rank_by is None or rank_by == value:
        order = candidates[np.argsort(-worth[candidates], kind="stable")]
    else:
        score = _numeric_column(table, rank_by, "rank_by")
        order = candidates[np.lexsort((-worth[candidates], -score[candidates]))]
    chosen = order[:allowed]
    targets = table.iloc[chosen].copy()
    targets["contact_value"] = worth[chosen]
    targets["rank"] = np.arange(1, len(chosen) + 1, dtype=np.int64)
    targets.attrs["rank_by"] = rank_by or value

    text = labels.astype(str).to_numpy()
    picked = np.zeros(len(table), dtype=bool)
    picked[chosen] = True
    total = float(worth.sum())
    rows = []
    for name in _names(labels):
        member = text == name
        revenue = float(worth[member & picked].sum())
        segment_total = float(worth[member].sum())
        contacts = int((member & picked).sum())
        rows.append(
            {
                by: name,
                "customers": int(member.sum()),
                "eligible": int((member & eligible).sum()),
                "contacts": contacts,
                "expected_revenue": revenue,
                "total_expected_revenue": segment_total,
                "share_of_segment": revenue / segment_total if segment_total > 0 else 0.0,
                "share_of_total": revenue / total if total > 0 else 0.0,
                "cost": contacts * float(cost_per_contact),
            }
        )
    by_segment = pd.DataFrame(rows).set_index(by)
    covered = float(worth[chosen].sum())
    return TargetingResult(
        targets=targets,
        by_segment=by_segment,
        n_contacts=len(chosen),
        cost=len(chosen) * float(cost_per_contact),
        expected_revenue=covered,
        total_expected_revenue=total,
        share_covered=covered / total if total > 0 else 0.0,
        value=value,
        max_contacts=allowed,
    )
