"""A fingerprint of a transaction log's values, for the provenance of what is computed from it.

Light on purpose (pandas and hashlib): ``rfmml predict`` fingerprints its
log without importing the experiment pipeline (and MLflow with it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import pandas as pd

__all__ = ["fingerprint"]


def fingerprint(frame: pd.DataFrame | Iterable[pd.DataFrame]) -> str:
    """A SHA-256 fingerprint of a frame's values (row order matters).

    ``frame`` may also be consecutive chunks of rows (e.g.
    :meth:`rfmml.data.ScannedLog.iter_pandas`): the fingerprint is that of the
    frame they make up, without building it (each row hashes on its own).
    """
    chunks = [frame] if isinstance(frame, pd.DataFrame) else frame
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(pd.util.hash_pandas_object(chunk, index=False).to_numpy().tobytes())
    return "sha256:" + digest.hexdigest()
