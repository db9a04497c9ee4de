"""Input checks shared by the Pareto/NBD, MBG/NBD and BG/BB estimators.

Each raises :class:`rfmml.errors.DataError` naming the column, the number of
offending customers and the first one, with a hint, on top of
:func:`rfmml.models._validation.check_summary`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rfmml.errors import DataError
from rfmml.models._validation import first_id

__all__ = ["check_repeat_buyers", "check_time_unit", "check_opportunities"]


def _raise(X: pd.DataFrame, mask: np.ndarray, column: str, rule: str, hint: str) -> None:
    n_bad = int(np.count_nonzero(mask))
    if n_bad:
        raise DataError(
            f"{column} must be {rule}, but {n_bad} of {len(X)} customers violate this "
            f"(first customer_id={first_id(X.index, mask)!r}). {hint}"
        )


def check_repeat_buyers(X: pd.DataFrame, frequency: np.ndarray, model: str) -> None:
    """Refuse a summary without any repeat buyer: the purchase process is then not identified.

    Raises
    ------
    DataError
        If ``frequency`` is 0 for every customer.
    """
    if not (frequency > 0).any():
        _raise(
            X,
            frequency == 0,
            "frequency",
            f"> 0 for at least one customer to fit {model}",
            "With only one-time buyers the repeat-purchase rate cannot be estimated: "
            "use a longer observation period or check how frequency was computed "
            "(repeat purchases, the first one excluded).",
        )


def check_time_unit(X: pd.DataFrame, fitted_freq, model: str) -> None:
    """Refuse a summary in another time unit than the one the model was fitted on.

    Compares ``X.attrs["freq"]`` with the model's ``freq_`` when both are set.

    Raises
    ------
    DataError
        If the units differ.
    """
    freq = X.attrs.get("freq")
    if freq is None or fitted_freq is None or str(freq) == str(fitted_freq):
        return
    _raise(
        X,
        np.ones(len(X), dtype=bool),
        "T",
        f"in the time unit the {model} was fitted on ({fitted_freq!r}; this summary is in "
        f"{freq!r})",
        f"Rebuild the summary with freq={fitted_freq!r} or refit the model on this one.",
    )


def check_opportunities(X: pd.DataFrame, cols: dict[str, np.ndarray]) -> None:
    """BG/BB summaries count discrete opportunities: integer recency and T, frequency <= recency.

    Raises
    ------
    DataError
        Non-integer ``T`` or ``recency``, or ``frequency > recency``.
    """
    for name, what in (("T", "opportunities"), ("recency", "the last opportunity with a purchase")):
        v = cols[name]
        _raise(
            X,
            v != np.floor(v),
            name,
            f"an integer ({what}) for the BG/BB model",
            "Count transaction opportunities (e.g. years with a possible donation), not time.",
        )
    _raise(
        X,
        cols["frequency"] > cols["recency"],
        "frequency",
        "<= recency for the BG/BB model (at most one transaction per opportunity)",
        "frequency counts opportunities with a transaction up to the last one, recency.",
    )
