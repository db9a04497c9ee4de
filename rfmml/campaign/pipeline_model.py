"""The fitted scoring pipeline: segmenters + models + settings, saved as JSON files.

:class:`ScoringPipeline` is what batch scoring runs, in memory after an
experiment and, loaded back from its folder, inside the MLflow pyfunc model. It
takes either

- customer features: the classic RFM columns and the BTYD summary columns
  side by side (:func:`scoring_frame`), one row per customer; or
- transactions: ``customer_id``, ``timestamp`` and, when the pipeline has a
  spend model, ``amount`` (plus the group column of a grouped pipeline), one
  row per purchase, in the canonical form of
  :func:`rfmml.data.read_transactions`. The features are built as of the
  pipeline's ``observation_end`` (stored with it; an ``observation_end=``
  argument overrides it),

and returns :func:`score_customers`' table.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rfmml._documents import read_document, replacing, replacing_folder, write_document
from rfmml.campaign.playbook import Playbook
from rfmml.campaign.scoring import score_customers
from rfmml.data.transactions import end_cutoff
from rfmml.errors import DataError
from rfmml.features import customer_features
from rfmml.models import GammaGamma, PurchaseModel, load_model, save_model
from rfmml.segments import KMeansSegmenter, RuleSegmenter
from rfmml.segments.persistence import load_segmenter, save_segmenter

__all__ = ["BTYD_COLUMNS", "TRANSACTION_COLUMNS", "ScoringPipeline", "scoring_frame"]

#: Columns that mark a scoring input as transactions (``amount`` is optional).
TRANSACTION_COLUMNS = ("customer_id", "timestamp")

BTYD_COLUMNS = ("frequency", "recency", "T", "monetary_value")
#: BTYD columns of a log without amounts (no ``monetary_value``).
_BTYD_NO_SPEND = ("frequency", "recency", "T")
_FILES = {
    "rule_segmenter": "rule_segmenter.json",
    "kmeans_segmenter": "kmeans_segmenter.json",
    "purchase_model": "purchase_model.json",
    "gamma_gamma": "gamma_gamma.json",
}
_MODELS = ("purchase_model", "gamma_gamma")
FORMAT = "rfmml.scoring_pipeline"
FORMAT_VERSION = 2
#: format of version 1 settings (rfmml 0.1): the purchase model was the part "bgnbd"
_FORMAT_V1 = "rfmml.scoring_pipeline/1"


def _from_version_1(doc: dict) -> dict | None:
    if doc.get("format") != _FORMAT_V1:
        return None
    parts = {("purchase_model" if k == "bgnbd" else k): v for k, v in doc["parts"].items()}
    # version 1 banded churn risk on 1 - P(alive): keep its predictions
    return {**doc, "format": FORMAT, "format_version": 1, "parts": parts, "churn_basis": "alive"}


def scoring_frame(features: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Join the classic features and the BTYD summary into the scoring input.

    Timestamps are left out (scoring does not use them), so the frame has only
    numbers and can serve as an MLflow input example. For a log without amounts
    the features have no ``total_spend`` and the summary no ``monetary_value``;
    the frame is the same without them.
    """
    numeric = features.select_dtypes("number")
    columns = [c for c in BTYD_COLUMNS if c in summary.columns or c != "monetary_value"]
    joined = numeric.join(summary[columns], how="inner")
    if len(joined) != len(features):
        raise DataError(
            f"features and summary share {len(joined)} of {len(features)} customers; "
            "build both from the same transactions and observation end"
        )
    joined.attrs = dict(summary.attrs)
    return joined


def _iso_date(value: Any) -> str:
    """``value`` as an ISO string: the date alone at midnight, else date and time."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None and stamp == stamp.normalize():
        return stamp.date().isoformat()
    return stamp.isoformat()


@dataclass
class ScoringPipeline:
    """Fitted segmenters and models with the settings that turn them into a table.

    Parameters
    ----------
    rule_segmenter, kmeans_segmenter : fitted segmenters, optional
    bgnbd : fitted purchase model, optional
        Alias of ``purchase_model`` (kept for existing callers); both name the
        same object after construction.
    gamma_gamma : fitted GammaGamma, optional
    horizon : int
        Periods of ``freq`` for expected purchases, spend and CLV.
    discount_rate : float
        Per-period discount rate of the CLV.
    freq : {"D", "W", "M"}
        Time unit of the BTYD columns the models were fitted on.
    playbook : Playbook, path or None
        Segment actions (``None``: the shipped playbook).
    group : str, optional
        Name of the group level of the index, when features are per group.
    purchase_model : PurchaseModel, optional
        Fitted purchase model (e.g. BG/NBD).
    churn_basis : {"no_purchase", "alive"}
        What ``churn_risk`` bands (see :func:`~rfmml.campaign.score_customers`).
    interval : float
        Level of the ``_lower``/``_upper`` columns (0: none).
    n_draws : int
        Parameter draws per model.
    interval_method : {"parametric", "bootstrap"}
        How the draws were made.
    random_state : int or None
        Seed of the draws (when not stored) and of the predictive totals' noise.
    param_draws : dict, optional
        The parameter draws of each model (``"purchase_model"``, ``"gamma_gamma"``:
        n_draws x n_params), saved with the pipeline so that every ``predict``
        uses the same draws (bootstrap draws need the training customers).
    next_order_window : int, optional
        Periods of ``probability_order_within_window`` (``None``: no such column).
    observation_end : str, optional
        ISO date (any date-like is converted; a time of day is kept) the
        models were fitted at: the as-of date of the features when
        :meth:`predict` is given transactions, and the date of
        ``expected_next_order_date`` when the input frame does not carry it in
        ``attrs`` (e.g. inside the MLflow model); ``None``: no date column then,
        and transactions need ``observation_end=``.
    """

    rule_segmenter: RuleSegmenter | None = None
    kmeans_segmenter: KMeansSegmenter | None = None
    bgnbd: PurchaseModel | None = None
    gamma_gamma: GammaGamma | None = None
    horizon: int = 52
    discount_rate: float = 0.0
    freq: str = "D"
    playbook: Playbook | str | Path | None = None
    group: str | None = None
    purchase_model: PurchaseModel | None = None
    churn_basis: str = "no_purchase"
    interval: float = 0.0
    n_draws: int = 200
    interval_method: str = "parametric"
    random_state: int | None = 0
    param_draws: dict[str, np.ndarray] | None = None
    next_order_window: int | None = None
    observation_end: str | None = None

    def __post_init__(self) -> None:
        if self.observation_end is not None:
            self.observation_end = _iso_date(self.observation_end)
        both = self.bgnbd is not None and self.purchase_model is not None
        if both and self.bgnbd is not self.purchase_model:
            raise ValueError(
                "pass the purchase model once, as purchase_model= (bgnbd= is its alias)."
            )
        model = self.purchase_model if self.purchase_model is not None else self.bgnbd
        self.purchase_model = self.bgnbd = model

    @property
    def keys(self) -> list[str]:
        """Index columns of the scoring input."""
        return ["customer_id"] + ([self.group] if self.group else [])

    def is_transactions(self, frame: pd.DataFrame) -> bool:
        """Whether ``frame`` is transactions (a ``timestamp`` column, no feature columns)."""
        features = {"recency_days", "n_orders", "frequency", "recency", "T"}
        return "timestamp" in frame.columns and not features & set(frame.columns)

    def features_from_transactions(
        self, tx: pd.DataFrame, observation_end: Any = None
    ) -> pd.DataFrame:
        """The scoring input of transactions, as of ``observation_end``.

        Parameters
        ----------
        tx : pandas.DataFrame
            ``customer_id``, ``timestamp`` (datetimes, or text pandas parses) and,
            for a pipeline with a spend model, ``amount``; canonical transactions
            as :func:`rfmml.data.read_transactions` returns them.
        observation_end : date-like, optional
            As-of date; default the pipeline's ``observation_end``. Purchases
            after it are not counted.

        Returns
        -------
        pandas.DataFrame
            :func:`scoring_frame` of the transactions.

        Raises
        ------
        DataError
            No as-of date, or missing columns (the message names them).
        """
        end = observation_end if observation_end is not None else self.observation_end
        if end is None:
            raise DataError(
                "scoring transactions needs an observation end: this pipeline stores none "
                "(saved before rfmml stored it); pass observation_end= or score features"
            )
        needed = [*TRANSACTION_COLUMNS, *([self.group] if self.group else [])]
        needed += ["amount"] if self.gamma_gamma is not None else []
        missing = [c for c in needed if c not in tx.columns]
        if missing:
            raise DataError(
                f"the transactions lack column(s) {missing} (found {list(map(str, tx.columns))}); "
                f"this pipeline scores {needed}"
            )
        keep = [c for c in (*needed, "amount") if c in tx.columns]
        tx = tx[list(dict.fromkeys(keep))]
        if not pd.api.types.is_datetime64_any_dtype(tx["timestamp"]):
            tx = tx.assign(timestamp=pd.to_datetime(tx["timestamp"]))
        end = pd.Timestamp(end)
        tx = tx.loc[tx["timestamp"] < end_cutoff(end)]  # later purchases are not observed
        # the builder fitting uses, so that both paths give the same features
        return scoring_frame(*customer_features(tx, end, self.freq, self.group))

    def predict(self, frame: pd.DataFrame, observation_end: Any = None) -> pd.DataFrame:
        """Score customers: one row per customer (and group).

        Parameters
        ----------
        frame : pandas.DataFrame
            Either customer features: classic features and BTYD columns (see
            :func:`scoring_frame`), indexed by ``customer_id`` (and group) or
            with those as columns; or transactions: ``customer_id``,
            ``timestamp`` and (with a spend model) ``amount`` columns, one row
            per purchase (see :meth:`features_from_transactions`).
        observation_end : date-like, optional
            For transactions: the as-of date of the features; default the
            pipeline's ``observation_end``.

        Returns
        -------
        pandas.DataFrame
            :func:`~rfmml.campaign.score_customers` output.
        """
        if self.is_transactions(frame):
            frame = self.features_from_transactions(frame, observation_end)
        if all(k in frame.columns for k in self.keys):
            frame = frame.set_index(self.keys)
        if self.group is not None and self.group not in frame.index.names:
            raise DataError(
                f"this pipeline scores per customer and {self.group!r}, but the frame has no "
                f"{self.group!r} column or index level; build its features with "
                f"group={self.group!r}"
            )
        needed = BTYD_COLUMNS if self.gamma_gamma is not None else _BTYD_NO_SPEND
        missing = [c for c in needed if c not in frame.columns]
        uses_summary = self.purchase_model is not None or self.gamma_gamma is not None
        if uses_summary and missing:
            raise DataError(
                f"scoring input lacks BTYD column(s) {missing}; build it with "
                "rfmml.campaign.scoring_frame(rfm_table(...), btyd_summary(...))"
            )
        present = [c for c in BTYD_COLUMNS if c in frame.columns]
        summary = frame[present].copy() if uses_summary else None
        if summary is not None:
            summary.attrs["freq"] = self.freq
            if self.observation_end is not None:
                summary.attrs.setdefault("observation_end", self.observation_end)
        features = frame.drop(columns=[c for c in BTYD_COLUMNS if c in frame.columns])
        return score_customers(
            features,
            summary,
            rule_segmenter=self.rule_segmenter,
            kmeans_segmenter=self.kmeans_segmenter,
            purchase_model=self.purchase_model,
            gamma_gamma=self.gamma_gamma,
            horizon=int(self.horizon),
            discount_rate=float(self.discount_rate),
            freq=self.freq,
            playbook=self.playbook,
            churn_basis=self.churn_basis,
            interval=self.interval or None,
            n_draws=int(self.n_draws),
            interval_method=self.interval_method,
            param_draws=self.param_draws,
            random_state=self.random_state,
            next_order_window=self.next_order_window,
        )

    def save(self, folder: str | Path) -> Path:
        """Write every part as JSON (and the playbook TOML, when custom) into ``folder``.

        The folder is written beside the target and swapped in at the end
        (:func:`rfmml._documents.replacing_folder`): a failure while saving leaves
        a previous pipeline in ``folder`` whole.
        """
        target = Path(folder)
        with replacing_folder(target) as temporary:
            self._save_parts(temporary)
        return target

    def _save_parts(self, folder: Path) -> None:
        parts = {}
        for name, file in _FILES.items():
            part = getattr(self, name)
            if part is None:
                continue
            if name in _MODELS:
                save_model(part, folder / file)
            else:
                save_segmenter(part, folder / file)
            parts[name] = file
        playbook = None
        source = self.playbook.source if isinstance(self.playbook, Playbook) else self.playbook
        if source is not None and Path(str(source)).is_file():
            with replacing(folder / "playbook.toml") as copy:
                shutil.copyfile(str(source), copy)
            playbook = "playbook.toml"
        settings = {
            "parts": parts,
            "horizon": int(self.horizon),
            "discount_rate": float(self.discount_rate),
            "freq": self.freq,
            "group": self.group,
            "playbook": playbook,
            "churn_basis": self.churn_basis,
            "interval": float(self.interval or 0.0),
            "n_draws": int(self.n_draws),
            "interval_method": self.interval_method,
            "random_state": self.random_state,
            "param_draws": None
            if self.param_draws is None
            else {k: np.asarray(v, dtype=float).tolist() for k, v in self.param_draws.items()},
            "next_order_window": self.next_order_window,
            "observation_end": self.observation_end,
        }
        write_document(folder / "pipeline.json", FORMAT, FORMAT_VERSION, settings)

    @classmethod
    def load(cls, folder: str | Path) -> ScoringPipeline:
        """Read a pipeline written by :meth:`save` (format 1 folders load too)."""
        folder = Path(folder)
        if not (folder / "pipeline.json").is_file():
            raise DataError(
                f"{folder} holds no pipeline.json; pass the 'model' folder of an rfmml run "
                "(written by ScoringPipeline.save)."
            )
        settings: dict[str, Any]
        _, settings = read_document(
            folder / "pipeline.json", FORMAT, FORMAT_VERSION, what="rfmml scoring pipeline",
            hint="Save pipelines with ScoringPipeline.save(folder).", legacy=_from_version_1,
        )  # fmt: skip
        parts: dict[str, Any] = {}
        for name, file in settings["parts"].items():
            path = folder / file
            parts[name] = load_model(path) if name in _MODELS else load_segmenter(path)
        playbook = folder / settings["playbook"] if settings.get("playbook") else None
        return cls(
            **parts,
            horizon=settings["horizon"],
            discount_rate=settings["discount_rate"],
            freq=settings["freq"],
            playbook=playbook,
            group=settings.get("group"),
            churn_basis=settings.get("churn_basis", "no_purchase"),
            interval=settings.get("interval", 0.0),
            n_draws=settings.get("n_draws", 200),
            interval_method=settings.get("interval_method", "parametric"),
            random_state=settings.get("random_state", 0),
            param_draws=None
            if settings.get("param_draws") is None
            else {k: np.array(v, dtype=float) for k, v in settings["param_draws"].items()},
            next_order_window=settings.get("next_order_window"),
            observation_end=settings.get("observation_end"),
        )
