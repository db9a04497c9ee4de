"""The cleaning report: every row removed or flagged, by reason."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from rfmml._documents import replacing

__all__ = ["REPORT_FILE", "CleaningReport"]

#: The file name of a cleaning report in a run's folder (:meth:`CleaningReport.save`).
REPORT_FILE = "cleaning_report.json"


@dataclass
class CleaningReport:
    """What cleaning did to a transaction log.

    Nothing is dropped silently: each step that removes rows records how many
    and why, and each step that keeps suspicious rows records how many it
    flagged.

    Attributes
    ----------
    rows_in : int
        Rows in the source, before any cleaning.
    rows_out : int
        Rows in the canonical frame returned.
    removed : dict of str to int
        Rows removed, by reason (e.g. ``"missing customer_id"``).
    flagged : dict of str to int
        Rows kept but worth knowing about, by reason (e.g. ``"zero amount"``).
    merged : dict of str to int
        Rows folded into other rows (e.g. returns netted against purchases,
        lines aggregated to orders); they leave the frame without being lost.
    notes : list of str
        Free-text remarks (time zone conversions, observation end used, ...).
    time_zone : str or None
        The time zone the timestamps carried before they became wall-clock
        time (None when they were naive).
    """

    rows_in: int = 0
    rows_out: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    flagged: dict[str, int] = field(default_factory=dict)
    merged: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    time_zone: str | None = None

    def remove(self, reason: str, n: int) -> None:
        """Record ``n`` rows removed for ``reason`` (zero counts are kept too)."""
        self.removed[reason] = self.removed.get(reason, 0) + int(n)

    def drop(self, frame: pd.DataFrame, mask: pd.Series, reason: str) -> pd.DataFrame:
        """Remove the rows of ``frame`` where ``mask`` holds, keeping the books.

        Counts them under ``reason`` and out of ``rows_out``; returns the kept
        rows with a fresh index.
        """
        n = int(mask.sum())
        self.remove(reason, n)
        self.rows_out -= n
        return frame.loc[~mask].reset_index(drop=True)

    def flag(self, reason: str, n: int) -> None:
        """Record ``n`` rows kept but flagged for ``reason``."""
        self.flagged[reason] = self.flagged.get(reason, 0) + int(n)

    def merge(self, reason: str, n: int) -> None:
        """Record ``n`` rows folded into other rows for ``reason``."""
        self.merged[reason] = self.merged.get(reason, 0) + int(n)

    def then(self, later: CleaningReport) -> CleaningReport:
        """Combine this report with a later cleaning pass over its output.

        Removed and merged rows add up; flags come from the later pass (they
        describe the rows that are left).
        """
        if later.rows_in != self.rows_out:
            raise ValueError(
                f"the later pass read {later.rows_in} rows but this one wrote {self.rows_out}"
            )
        combined = CleaningReport(rows_in=self.rows_in, rows_out=later.rows_out)
        for source in (self, later):
            for reason, n in source.removed.items():
                combined.remove(reason, n)
            for reason, n in source.merged.items():
                combined.merge(reason, n)
            combined.notes += source.notes
        combined.flagged = dict(later.flagged)
        combined.time_zone = self.time_zone or later.time_zone
        return combined

    @property
    def rows_removed(self) -> int:
        """Total rows removed over all reasons."""
        return sum(self.removed.values())

    @property
    def rows_merged(self) -> int:
        """Total rows folded into other rows over all reasons."""
        return sum(self.merged.values())

    def check(self) -> None:
        """Assert that rows in = rows out + removed + merged (the books balance).

        Raises
        ------
        AssertionError
            If some row is unaccounted for.
        """
        accounted = self.rows_out + self.rows_removed + self.rows_merged
        if accounted != self.rows_in:
            raise AssertionError(
                f"cleaning report does not balance: {self.rows_in} rows in, "
                f"{self.rows_out} out, {self.rows_removed} removed, {self.rows_merged} merged"
            )

    def to_frame(self) -> pd.DataFrame:
        """One row per step: ``action`` (removed/flagged/merged), ``reason``, ``rows``."""
        rows = [("in", "rows in", self.rows_in)]
        rows += [("removed", k, v) for k, v in self.removed.items()]
        rows += [("merged", k, v) for k, v in self.merged.items()]
        rows += [("flagged", k, v) for k, v in self.flagged.items()]
        rows.append(("out", "rows out", self.rows_out))
        return pd.DataFrame(rows, columns=["action", "reason", "rows"])

    def to_dict(self) -> dict:
        """Plain, JSON-serialisable dictionary."""
        return asdict(self)

    def save(self, folder: str | Path) -> Path:
        """Write :meth:`to_dict` as ``folder/cleaning_report.json`` (replaced whole); return it."""
        path = Path(folder) / REPORT_FILE
        with replacing(path) as temporary:
            temporary.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def __str__(self) -> str:
        lines = [f"rows in: {self.rows_in:,}"]
        lines += [f"  removed {v:,}: {k}" for k, v in self.removed.items()]
        lines += [f"  merged  {v:,}: {k}" for k, v in self.merged.items()]
        lines += [f"  flagged {v:,} (kept): {k}" for k, v in self.flagged.items()]
        lines.append(f"rows out: {self.rows_out:,}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)
