"""Customer lists for email and ads tools: per segment, and who entered or left each segment."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rfmml.campaign.exports import HASH_COLUMN, hash_customer_ids, to_safe_csv
from rfmml.errors import DataError

__all__ = [
    "CHANGE_KINDS",
    "LIST_COLUMNS",
    "export_segment_changes",
    "export_segment_lists",
    "segment_changes",
    "segment_lists",
    "slugify",
]

#: Default columns of a per-segment list (those absent from the table are skipped).
LIST_COLUMNS = ("customer_id", "segment", "action", "clv", "probability_alive")

#: Values of ``segment_changes(...)["change"]``.
CHANGE_KINDS = ("moved", "new", "gone")


def slugify(name: object) -> str:
    """File-name-safe form of a segment name: ``"Can't Lose Them"`` -> ``"cant_lose_them"``.

    Accents are folded to ASCII, apostrophes dropped, every other run of
    characters that are not letters or digits becomes one ``_``, and the result
    is lower case; an empty result becomes ``"segment"``.

    Parameters
    ----------
    name : object
        Segment name (converted with ``str``).

    Returns
    -------
    str
    """
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"['`]", "", text)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return text or "segment"


def _check_by(table: pd.DataFrame, by: str, where: str) -> pd.Series:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{where} expects a DataFrame, got {type(table).__name__}.")
    if by not in table.columns:
        raise ValueError(
            f"{where}: no column {by!r} to split by; available columns are "
            f"{list(map(str, table.columns))}. Score with a rule segmenter for 'segment'."
        )
    labels = table[by]
    missing = labels.isna()
    if missing.any():
        raise DataError(
            f"{where}: column {by!r} has {int(missing.sum())} of {len(table)} missing values; "
            "every customer needs a segment for the lists to add up."
        )
    return labels


def _names(labels: pd.Series) -> list[str]:
    """Segment names: categories in their order (empty ones included), else sorted values."""
    if isinstance(labels.dtype, pd.CategoricalDtype):
        return [str(c) for c in labels.cat.categories]
    return sorted(map(str, labels.unique()))


def _key_columns(table: pd.DataFrame) -> list[str]:
    """Index levels that are also columns (customer_id, group), in index order."""
    return [n for n in table.index.names if n is not None and n in table.columns]


def _unique_slugs(names: Sequence[str], where: str) -> dict[str, str]:
    slugs: dict[str, str] = {}
    for name in names:
        slug = slugify(name)
        clash = next((n for n, s in slugs.items() if s == slug), None)
        if clash is not None:
            raise ValueError(
                f"{where}: segments {clash!r} and {name!r} both map to the file name {slug!r}; "
                "rename one of them."
            )
        slugs[name] = slug
    return slugs


def segment_lists(
    table: pd.DataFrame,
    by: str = "segment",
    columns: Sequence[str] = LIST_COLUMNS,
) -> dict[str, pd.DataFrame]:
    """Split a predictions table into one customer list per segment.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`~rfmml.campaign.score_customers` (or a table read back
        with :func:`~rfmml.campaign.read_predictions`).
    by : str, default="segment"
        Column to split on (``"segment"``, ``"cluster_name"``, ``"churn_risk"``,
        a group column, ...).
    columns : sequence of str
        Columns of each list. With the default, columns absent from the table
        (e.g. ``clv`` without models) are skipped; columns named explicitly must
        exist. The group column, when the table has one, is always added after
        ``customer_id`` so per-group rows stay distinguishable.

    Returns
    -------
    dict of str to pandas.DataFrame
        Segment name to its customers (sorted by ``clv``, highest first, when the
        table has it), in segment display order; a categorical ``by`` gives every
        category a list, empty ones included. The lists partition the table:
        their lengths add up to ``len(table)``.

    Raises
    ------
    ValueError
        Missing ``by`` column, or an explicitly requested column that is missing.
    DataError
        Missing values in ``by``.
    """
    labels = _check_by(table, by, "segment_lists")
    columns = list(columns)
    if tuple(columns) == LIST_COLUMNS:
        columns = [c for c in columns if c in table.columns]
    else:
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ValueError(
                f"segment_lists: column(s) {missing} are not in the table; available columns "
                f"are {list(map(str, table.columns))}."
            )
    keys = _key_columns(table)
    if "customer_id" in columns:
        at = columns.index("customer_id") + 1
        columns[at:at] = [k for k in keys[1:] if k not in columns]
    flat = table.reset_index(drop=True)
    if "clv" in flat.columns:
        # Highest CLV first; a stable sort of -clv keeps ties in table order.
        order = (-flat["clv"]).to_numpy().argsort(kind="stable")
        flat = flat.iloc[order]
    text = flat[by].astype(str).to_numpy()
    return {name: flat.loc[text == name, columns].reset_index(drop=True) for name in _names(labels)}


def _prepare_export(frame: pd.DataFrame, hash_ids: bool, salt: str | None) -> pd.DataFrame:
    if not hash_ids or "customer_id" not in frame.columns:
        return frame
    assert salt is not None  # callers run _check_hash_args: hash_ids needs a salt
    out = frame.copy()
    position = list(out.columns).index("customer_id")
    hashed = hash_customer_ids(out["customer_id"], salt)
    out = out.drop(columns="customer_id")
    out.insert(position, HASH_COLUMN, hashed.to_numpy())
    return out


def _check_hash_args(hash_ids: bool, salt: str | None, where: str) -> None:
    if hash_ids and not salt:
        raise ValueError(
            f"{where}: hash_ids=True needs a non-empty salt (a secret string); pass salt=..."
        )
    if salt and not hash_ids:
        raise ValueError(
            f"{where}: a salt was given but hash_ids=False, so raw customer ids would be "
            "written; pass hash_ids=True to hash them."
        )


def export_segment_lists(
    table: pd.DataFrame,
    out_dir: str | Path,
    by: str = "segment",
    hash_ids: bool = False,
    salt: str | None = None,
) -> dict[str, Path]:
    """Write one spreadsheet-safe CSV per segment, for email and ads tools.

    File names are the slugified segment names (:func:`slugify`), e.g.
    ``champions.csv``, ``cant_lose_them.csv``; every segment gets a file, an
    empty segment a header-only file, so a sync job clears lists that emptied.

    Parameters
    ----------
    table : pandas.DataFrame
        Predictions table.
    out_dir : str or pathlib.Path
        Destination folder (created).
    by : str, default="segment"
        Column to split on.
    hash_ids : bool, default=False
        Replace ``customer_id`` with ``customer_id_sha256``
        (:func:`~rfmml.campaign.hash_customer_ids`).
    salt : str, optional
        Secret salt; required with ``hash_ids=True`` and refused without it.

    Returns
    -------
    dict of str to pathlib.Path
        Segment name to its file.

    Raises
    ------
    ValueError
        Missing salt, a salt without ``hash_ids``, a missing ``by`` column, or two
        segments with the same file name.
    """
    _check_hash_args(hash_ids, salt, "export_segment_lists")
    lists = segment_lists(table, by=by)
    slugs = _unique_slugs(list(lists), "export_segment_lists")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        name: to_safe_csv(_prepare_export(frame, hash_ids, salt), out / f"{slugs[name]}.csv")
        for name, frame in lists.items()
    }


def _keys(table: pd.DataFrame, key: Sequence[str] | None, where: str) -> pd.DataFrame:
    """The customer key columns of a table as a frame with a fresh RangeIndex."""
    if key is not None:
        names = [key] if isinstance(key, str) else list(key)
        missing = [k for k in names if k not in table.columns and k not in table.index.names]
        if missing:
            raise ValueError(
                f"{where}: key column(s) {missing} are neither columns nor index levels of "
                "the table."
            )
    elif None not in table.index.names:
        names = list(table.index.names)
    elif "customer_id" in table.columns:
        names = ["customer_id"]
    else:
        raise ValueError(
            f"{where}: cannot tell which column identifies customers; the table has no "
            "customer_id column and no named index. Pass key=['customer_id', ...]."
        )
    data = {}
    for name in names:
        source = table[name] if name in table.columns else table.index.get_level_values(name)
        data[name] = pd.Series(source).to_numpy()
    frame = pd.DataFrame(data)
    dupes = frame.duplicated()
    if dupes.any():
        raise DataError(
            f"{where}: {int(dupes.sum())} customer key(s) repeat on {names} (first "
            f"{tuple(frame[dupes].iloc[0])!r}); with a group, key on both, e.g. "
            "key=['customer_id', 'country'], or read the table with read_predictions."
        )
    return frame


def segment_changes(
    previous: pd.DataFrame,
    current: pd.DataFrame,
    by: str = "segment",
    *,
    key: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Customers whose segment differs between two prediction runs.

    One row per customer (and group) whose ``by`` label changed, appeared or
    disappeared; customers in the same segment in both runs are left out.
    ``change`` says which:

    - ``"moved"``: in both runs, segment differs. The customer *left*
      ``previous_segment`` and *entered* ``segment``.
    - ``"new"``: only in ``current`` (``previous_segment`` missing): entered ``segment``.
    - ``"gone"``: only in ``previous`` (``segment`` missing): left ``previous_segment``.

    So the customers who entered segment ``s`` are ``changes[changes.segment == s]``
    and those who left it ``changes[changes.previous_segment == s]``.

    Parameters
    ----------
    previous, current : pandas.DataFrame
        Prediction tables of two runs, e.g. the previous run's
        ``predictions.parquet`` read back (with :func:`read_predictions` or
        ``pandas.read_parquet``) and this run's :func:`score_customers` output.
    by : str, default="segment"
        Label column compared.
    key : sequence of str, optional
        Columns identifying a customer. Default: the index levels when the
        index is named, else the ``customer_id`` column.

    Returns
    -------
    pandas.DataFrame
        Key column(s), ``previous_segment``, ``segment`` (text, missing where the
        customer is absent from that run) and ``change`` (categorical of
        :data:`CHANGE_KINDS`), sorted by change then key; fresh RangeIndex.

    Raises
    ------
    ValueError
        Missing ``by`` column, undeterminable or different keys in the two tables.
    DataError
        Repeated keys or missing labels.
    """
    prev_labels = _check_by(previous, by, "segment_changes (previous)")
    cur_labels = _check_by(current, by, "segment_changes (current)")
    prev = _keys(previous, key, "segment_changes (previous)")
    cur = _keys(current, key, "segment_changes (current)")
    if list(prev.columns) != list(cur.columns):
        raise ValueError(
            f"segment_changes: the previous table is keyed by {list(prev.columns)} but the "
            f"current one by {list(cur.columns)}; pass key=[...] to use the same columns."
        )
    names = list(prev.columns)
    for name in names:
        if prev[name].dtype != cur[name].dtype:
            # e.g. ids read from CSV (text) in one run and from Parquet (integers) in
            # the other: compare them as text rather than failing in the merge.
            prev[name] = prev[name].astype(str)
            cur[name] = cur[name].astype(str)
    prev["previous_segment"] = prev_labels.astype(str).to_numpy()
    cur["segment"] = cur_labels.astype(str).to_numpy()
    merged = prev.merge(cur, on=names, how="outer", indicator=True, sort=False)
    side = merged.pop("_merge").astype(str).to_numpy()
    change = pd.Series("moved", index=merged.index, dtype=object)
    change[side == "right_only"] = "new"
    change[side == "left_only"] = "gone"
    stayed = (side == "both") & (
        merged["previous_segment"].astype(object).to_numpy()
        == merged["segment"].astype(object).to_numpy()
    )
    merged["change"] = pd.Categorical(change, categories=list(CHANGE_KINDS))
    out = merged.loc[~stayed, [*names, "previous_segment", "segment", "change"]]
    out = out.sort_values(["change", *names], kind="stable").reset_index(drop=True)
    for col in ("previous_segment", "segment"):
        out[col] = out[col].astype(object)
    return out


def export_segment_changes(
    previous: pd.DataFrame,
    current: pd.DataFrame,
    out_dir: str | Path,
    by: str = "segment",
    *,
    key: Sequence[str] | None = None,
    hash_ids: bool = False,
    salt: str | None = None,
) -> dict[str, Path]:
    """Write ``entered_<segment>.csv`` and ``left_<segment>.csv`` for every segment.

    ``entered_<s>`` lists customers now in ``s`` who were not before (moved in or
    new); ``left_<s>`` those who were in ``s`` and now are elsewhere or gone (see
    :func:`segment_changes`). Every segment of either run gets both files
    (header only when nobody moved). Columns: key(s), ``previous_segment``,
    ``segment``, ``change``. Spreadsheet-safe (:func:`to_safe_csv`).

    Parameters
    ----------
    previous, current : pandas.DataFrame
        Prediction tables of the previous and the current run.
    out_dir : str or pathlib.Path
        Destination folder (created).
    by : str, default="segment"
        Label column compared.
    key : sequence of str, optional
        Customer key columns (see :func:`segment_changes`).
    hash_ids : bool, default=False
        Replace ``customer_id`` with ``customer_id_sha256``.
    salt : str, optional
        Secret salt; required with ``hash_ids=True`` and refused without it.

    Returns
    -------
    dict of str to pathlib.Path
        File stem (``"entered_champions"``) to path.

    Raises
    ------
    ValueError
        As :func:`segment_changes` and :func:`export_segment_lists`.
    """
    _check_hash_args(hash_ids, salt, "export_segment_changes")
    changes = segment_changes(previous, current, by=by, key=key)
    names = _names(previous[by])
    names += [n for n in _names(current[by]) if n not in names]
    slugs = _unique_slugs(names, "export_segment_changes")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = _prepare_export(changes, hash_ids, salt)
    entered = frame["segment"].to_numpy()
    left = frame["previous_segment"].to_numpy()
    paths: dict[str, Path] = {}
    for name in names:
        for kind, column in (("entered", entered), ("left", left)):
            stem = f"{kind}_{slugs[name]}"
            rows = frame.loc[column == name].reset_index(drop=True)
            paths[stem] = to_safe_csv(rows, out / f"{stem}.csv")
    return paths
