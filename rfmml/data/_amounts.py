"""Amounts as exports write them: a currency symbol, thousands separators, a decimal mark.

:func:`written_amounts` reads the text amounts plain number parsing refused:
``$3,080.00``, ``3 080,00 €``, ``EUR 12.50``, ``-$4.99``. The rules, judged
on the whole column:

- one currency symbol or code, before or after the number (``$``, ``€``,
  ``£``, ``US$``, ``EUR``); several in one column are refused (amounts in
  different currencies do not add up);
- thousands separators are a space (also no-break), an apostrophe, or the
  mark that is not the decimal mark (``,`` with ``decimal="."``, ``.`` with
  ``decimal=","``), in groups of three digits. Grouping with ``,`` or ``.``
  is taken only when the column proves it (a value with groups and decimals,
  as ``1,234.50``, or with two groups, as ``1,234,567``): ``1,234`` alone
  reads as 1234 or as 1.234, so such a column stays refused.

- a negative amount may be written in parentheses, as accounting exports do
  (``(12.50)``, ``($4.99)``: -12.50, -4.99); a parenthesis on one side only,
  or with a minus sign inside, is not read.

Values that match none of this stay unparsed (the caller counts and quotes them).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from rfmml.errors import DataError

__all__ = ["written_amounts"]

_SYMBOL = r"(?:[A-Z]{0,2}[$€£¥₹₩₽₺₪₫฿₴₦₱]|[A-Z]{3})"
_SPACES = "\u00a0\u202f"


def _pattern(group: str, decimal: str) -> str:
    g, d = re.escape(group), re.escape(decimal)
    number = rf"(?P<int>\d{{1,3}}(?:{g}\d{{3}})+|\d+)(?:{d}(?P<frac>\d+))?"
    return (
        rf"^\s*(?P<open>\()?\s*(?P<sign1>-)?\s*(?P<pre>{_SYMBOL})?\s*(?P<sign2>-)?\s*{number}\s*"
        rf"(?P<post>{_SYMBOL})?\s*(?P<close>\))?\s*$"
    )


def written_amounts(text: pd.Series, column: str,
                    decimal: str = ".") -> tuple[pd.Series, str]:  # fmt: skip
    """Numbers of ``text`` (strings plain parsing refused), and a note on how they were read.

    Parameters
    ----------
    text : pandas.Series
        The amounts that did not parse as plain numbers (no missing values).
    column : str
        Name used in messages.
    decimal : str, default "."
        The decimal mark.

    Returns
    -------
    numbers : pandas.Series
        float64, NaN where a value is not a written amount.
    note : str
        What was read past (symbol, separators), or ``""``.

    Raises
    ------
    DataError
        If the values carry several currency symbols.
    """
    values = text.astype("string").str.replace(f"[{_SPACES}]", " ", regex=True)
    other = "," if decimal == "." else "."
    best = None
    for group in (" ", "'", other):
        parts = values.str.extract(_pattern(group, decimal))
        # a parenthesis on both sides or none: (12.50) is an accounting negative
        matched = parts["int"].notna() & (parts["open"].notna() == parts["close"].notna())
        matched &= ~(parts["open"].notna() & (parts["sign1"].notna() | parts["sign2"].notna()))
        grouped = matched & parts["int"].str.contains(re.escape(group), regex=True).fillna(False)
        if group == other and grouped.any():
            proof = grouped & (
                parts["frac"].notna() | (parts["int"].str.count(re.escape(group)) > 1)
            )
            if not proof.any():
                matched &= ~grouped  # 1,234 alone: thousands or decimals, nothing tells
        if best is None or matched.sum() > best[1].sum():
            best = (parts, matched, group, bool(grouped[matched].any()))
    assert best is not None
    parts, matched, group, used_group = best
    if not matched.any():
        return pd.Series(np.nan, index=text.index), ""
    symbol = parts["pre"].fillna(parts["post"])[matched]
    held = symbol.value_counts()
    if len(held) > 1:
        shown = ", ".join(f"{s!r} ({n:,} rows)" for s, n in held.items())
        raise DataError(
            f"column {column!r}: amounts written with several currency symbols: {shown}; "
            "amounts in different currencies do not add up: keep one currency's rows or "
            "convert them first"
        )
    digits = parts["int"].str.replace(re.escape(group), "", regex=True)
    number = (digits + "." + parts["frac"].fillna("0")).where(matched)
    numbers = pd.to_numeric(number, errors="coerce").astype("float64")
    bracketed = parts["open"].notna() & matched
    negative = (parts["sign1"].notna() | parts["sign2"].notna() | bracketed) & matched
    numbers = numbers.where(~negative, -numbers)
    first = text[bracketed].iloc[0] if bracketed.any() else text[matched].iloc[0]
    shown = numbers[bracketed].iloc[0] if bracketed.any() else numbers[matched].iloc[0]
    said = []
    if len(held):
        said.append(f"the currency symbol {held.index[0]!r}")
    if used_group:
        said.append(f"the thousands separator {group!r}")
    if bracketed.any():
        said.append(f"{int(bracketed.sum()):,} negative amount(s) in parentheses")
    note = (
        f"column {column!r}: amounts written with {' and '.join(said)} (e.g. {first!r} -> "
        f"{shown:g}), read as numbers"
        if said
        else ""
    )
    return numbers.set_axis(text.index), note
