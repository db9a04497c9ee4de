"""Transactions in: load, validate and clean logs; bundled real datasets; simulation."""

from rfmml.data._scan import ScannedLog
from rfmml.data.datasets import (
    load_cdnow,
    load_cdnow_summary,
    load_online_retail,
    online_retail_path,
)
from rfmml.data.report import CleaningReport
from rfmml.data.simulate import simulate_transactions
from rfmml.data.transactions import (
    Transactions,
    TransactionSchema,
    parse_timestamps,
    read_transactions,
    scan_transactions,
)

__all__ = [
    "CleaningReport",
    "ScannedLog",
    "TransactionSchema",
    "Transactions",
    "load_cdnow",
    "load_cdnow_summary",
    "load_online_retail",
    "online_retail_path",
    "parse_timestamps",
    "read_transactions",
    "scan_transactions",
    "simulate_transactions",
]
