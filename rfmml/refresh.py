"""Daily refresh: absorb new transactions, rescore with saved models, track segment moves.

:func:`refresh` is what ``rfmml refresh NEW_LOG --state PATH --model MODEL_DIR``
runs:

1. the new log goes into the :class:`~rfmml.features.CustomerState` (created on
   first use; a batch applied before is recognised and not counted twice);
2. every customer is rescored from the state's features with the saved
   segmenters and models (nothing is refitted);
3. predictions, one list per segment and the ``entered_<segment>.csv`` /
   ``left_<segment>.csv`` lists (against the segments recorded by the previous
   refresh) are written; the segment history table of the state is appended;
4. a drift check says whether a refit is advised (see :class:`DriftCheck`);
   the refresh is logged to MLflow.

The state update and the history append are separate database transactions:
when scoring fails after the update, running the same refresh again skips the
already-applied batch and completes the rest.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rfmml._documents import replacing
from rfmml.campaign import (
    ScoringPipeline,
    export_segment_changes,
    export_segment_lists,
    scoring_frame,
    segment_changes,
    write_predictions,
)
from rfmml.errors import DataError
from rfmml.features import CustomerState, StateUpdate
from rfmml.features.state import LATER_OPTIONS
from rfmml.models import load_model
from rfmml.report import build_report

__all__ = ["DriftCheck", "RefreshResult", "load_scoring_pipeline", "movements", "refresh"]

#: MLflow experiment refreshes are logged to, unless told otherwise.
EXPERIMENT = "rfmml-refresh"


def load_scoring_pipeline(model_dir: str | Path) -> ScoringPipeline:
    """The saved scoring pipeline in ``model_dir``.

    Accepts the ``model`` folder of ``rfmml run`` / ``rfmml demo`` (segmenters
    and models, ``pipeline.json``) and the folder of ``rfmml fit``
    (``bgnbd.json`` and optionally ``gamma_gamma.json``: predictions only, no
    segments, at the models' own ``freq``).

    Raises
    ------
    DataError
        If the folder holds neither.
    """
    folder = Path(model_dir)
    if (folder / "pipeline.json").is_file():
        return ScoringPipeline.load(folder)
    if (folder / "bgnbd.json").is_file():
        purchases = load_model(folder / "bgnbd.json")
        gg_path = folder / "gamma_gamma.json"
        gamma_gamma = load_model(gg_path) if gg_path.is_file() else None
        return ScoringPipeline(
            purchase_model=purchases, gamma_gamma=gamma_gamma, freq=purchases.freq_ or "D"
        )
    raise DataError(
        f"{str(folder)!r} holds no saved models (neither pipeline.json nor bgnbd.json); pass "
        "the 'model' folder of rfmml run / rfmml demo or the folder of rfmml fit"
    )


@dataclass
class DriftCheck:
    """Whether the saved models still describe the customers.

    Attributes
    ----------
    segment_changed_share : float
        Customers whose segment differs from the previous refresh, divided by
        the customers in both (NaN on the first refresh or without segments).
    baseline : pandas.Timestamp or None
        Observation end of the first refresh of this state with these models
        (saved models do not record the end of their training data, so that
        is where "since the fit" starts).
    periods : int
        Periods of the models' ``freq`` from ``baseline`` to now.
    predicted_purchases : float
        Repeat purchases the purchase model (e.g. BG/NBD) expected, since ``baseline``, of the
        customers known at ``baseline``: the sum of E[X(t)] given each
        customer's history at ``baseline``.
    actual_purchases : float
        Repeat purchase periods those customers had since ``baseline``.
    purchase_ratio : float
        ``actual_purchases / predicted_purchases`` (NaN when nothing was expected).
    refit_advised : bool
    reason : str
        Why (or why not), one line.
    """

    segment_changed_share: float = math.nan
    baseline: pd.Timestamp | None = None
    periods: int = 0
    predicted_purchases: float = math.nan
    actual_purchases: float = math.nan
    purchase_ratio: float = math.nan
    refit_advised: bool = False
    reason: str = ""


@dataclass
class RefreshResult:
    """What :func:`refresh` did and wrote.

    ``notes`` holds one line when the refresh read the batch with options other
    than those stored in the state (see :meth:`CustomerState.update`).
    """

    update: StateUpdate
    observation_end: pd.Timestamp
    predictions: pd.DataFrame
    changes: pd.DataFrame
    movements: pd.DataFrame
    drift: DriftCheck
    files: dict[str, Path] = field(default_factory=dict)
    run_id: str | None = None
    output_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


def _model_fingerprint(model_dir: str | Path) -> str:
    """SHA-256 of the saved files (JSON models and segmenters, playbook): "these models"."""
    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).iterdir()):
        if path.is_file() and path.suffix in (".json", ".toml"):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return "sha256:" + digest.hexdigest()


def movements(previous: pd.Series, current: pd.Series, changes: pd.DataFrame) -> pd.DataFrame:
    """List sizes and movements per segment: before, entered, left, now.

    Parameters
    ----------
    previous, current : pandas.Series
        Segment per customer at the previous refresh and now.
    changes : pandas.DataFrame
        :func:`rfmml.campaign.segment_changes` of the two.
    """
    names = list(dict.fromkeys([*map(str, current.unique()), *map(str, previous.unique())]))
    table = pd.DataFrame(
        {
            "before": previous.astype(str).value_counts().reindex(names, fill_value=0),
            "entered": changes["segment"].dropna().value_counts().reindex(names, fill_value=0),
            "left": changes["previous_segment"]
            .dropna()
            .value_counts()
            .reindex(names, fill_value=0),
            "now": current.astype(str).value_counts().reindex(names, fill_value=0),
        }
    ).astype("int64")
    table.index.name = "segment"
    return table.sort_values("now", ascending=False)


def _drift(
    state: CustomerState,
    pipeline: ScoringPipeline,
    summary: pd.DataFrame,
    changed_share: float,
    baseline: pd.Timestamp | None,
    end: pd.Timestamp,
    *,
    segment_tolerance: float,
    purchase_tolerance: float,
    min_expected: float,
) -> DriftCheck:
    check = DriftCheck(segment_changed_share=changed_share, baseline=baseline)
    reasons = []
    model = pipeline.purchase_model
    if baseline is not None and model is not None and baseline < end:
        freq = pipeline.freq
        then = state.btyd_summary(observation_end=baseline, freq=freq)
        # T grows by the periods between the two observation ends, for every customer
        check.periods = int((summary.loc[then.index[:1], "T"] - then["T"].iloc[:1]).iloc[0])
        if check.periods > 0:
            expected = model.expected_purchases(then, check.periods)
            check.predicted_purchases = float(expected.sum())
            now = summary.loc[then.index, "frequency"]
            check.actual_purchases = float((now - then["frequency"]).sum())
            if check.predicted_purchases > 0:
                check.purchase_ratio = check.actual_purchases / check.predicted_purchases
    if changed_share > segment_tolerance:
        reasons.append(
            f"{changed_share:.1%} of customers changed segment (tolerance {segment_tolerance:.0%})"
        )
    ratio = check.purchase_ratio
    if (
        baseline is not None
        and not math.isnan(ratio)
        and check.predicted_purchases >= min_expected
        and abs(ratio - 1) > purchase_tolerance
    ):
        reasons.append(
            f"customers made {check.actual_purchases:,.0f} repeat purchases since "
            f"{baseline.date()} where the model expected {check.predicted_purchases:,.0f} "
            f"(ratio {ratio:.2f}, tolerance ±{purchase_tolerance:.0%})"
        )
    check.refit_advised = bool(reasons)
    if reasons:
        check.reason = "refit advised: " + "; ".join(reasons)
    elif baseline is None:
        check.reason = "no refit needed yet: first refresh with these models (baseline set)"
    elif check.periods == 0:
        check.reason = (
            f"no refit needed yet: less than one period ({pipeline.freq}) since the baseline "
            f"{baseline.date()}, {_pct(changed_share)} changed segment"
        )
    else:
        check.reason = (
            f"no refit needed: {_pct(changed_share)} changed segment, purchases since "
            f"{baseline.date()} at {_ratio(ratio)} of the model's expectation"
        )
    return check


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1%}"


def _ratio(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def refresh(
    new_log: Any,
    state: str | Path | CustomerState,
    model_dir: str | Path,
    output: str | Path | None = None,
    *,
    create_options: dict[str, Any] | None = None,
    read_options: dict[str, Any] | None = None,
    tracking_uri: str | None = None,
    experiment: str = EXPERIMENT,
    segment_tolerance: float = 0.2,
    purchase_tolerance: float = 0.2,
    min_expected_purchases: float = 50.0,
    log_to_mlflow: bool = True,
) -> RefreshResult:
    """Update the state with ``new_log``, rescore everyone, write lists and history.

    Parameters
    ----------
    new_log : str, pathlib.Path, pandas.DataFrame or polars.DataFrame
        The new transactions (a file or a frame in the state's columns).
    state : str, pathlib.Path or CustomerState
        The state file (created with ``create_options`` when missing) or an open state.
    model_dir : str or pathlib.Path
        Saved models (see :func:`load_scoring_pipeline`).
    output : str or pathlib.Path or None
        Folder for ``predictions.*``, ``segments/``, ``changes/`` and
        ``movements.csv``; None: ``rfmml-refresh/<date of the observation end>``.
    create_options : dict, optional
        Column mapping and cleaning for :meth:`CustomerState.create`. For an
        existing state, the mapping keys (``customer``, ``timestamp``,
        ``amount``, ``group``, ``order``) and ``timestamp_format`` given replace
        the stored ones as ``read_options`` do; the returns policy and the other
        cleaning options are fixed at creation, and a different value is refused.
    read_options : dict, optional
        How ``new_log`` is written (``dayfirst``, ``encoding``, ``separator``,
        ``decimal``) and which order states are not purchases (``status``,
        ``exclude_status``), for :meth:`CustomerState.update`. The state stores the
        options of every applied batch: a key left out (or None) takes the
        stored value, so a daily refresh of same-shaped files passes them once.
        **A value given wins over the stored one**: the batch is read with it,
        the state keeps it for later refreshes, and ``RefreshResult.notes``
        says what changed. A state saved before rfmml stored options refreshes
        as it did and stores the options of its next batch.
    tracking_uri : str, optional
        MLflow store (default: ``$MLFLOW_TRACKING_URI``, else ``./mlflow.db``).
    experiment : str, default "rfmml-refresh"
        MLflow experiment name.
    segment_tolerance : float, default 0.2
        Refit is advised when a larger share of customers changed segment.
    purchase_tolerance : float, default 0.2
        Refit is advised when actual repeat purchases since the baseline differ
        from the model's expectation by a larger relative amount ...
    min_expected_purchases : float, default 50
        ... and the model expected at least this many (fewer are noise).
    log_to_mlflow : bool, default True
        Log the refresh as an MLflow run.

    Returns
    -------
    RefreshResult

    Raises
    ------
    DataError, StateError
        Bad batch or unusable state (the state is left as it was).
    """
    pipeline = load_scoring_pipeline(model_dir)
    if pipeline.group is not None:
        raise DataError(
            f"the models in {str(model_dir)!r} score per customer and {pipeline.group!r}; "
            "refresh scores per customer only"
        )
    own = not isinstance(state, CustomerState)
    created = False
    if isinstance(state, CustomerState):
        st = state
    else:
        path = Path(state)
        created = not path.exists()
        st = (
            CustomerState.create(path, **(create_options or {}))
            if created
            else CustomerState.open(path)
        )
    try:
        reading = dict(read_options or {})
        if not created:
            reading |= _later_options(st, create_options or {})
        return _refresh(
            st, new_log, pipeline, model_dir, output, tracking_uri, experiment,
            segment_tolerance, purchase_tolerance, min_expected_purchases, log_to_mlflow,
            reading,
        )  # fmt: skip
    except BaseException:
        if created and st.n_batches == 0:  # a state created for a batch that failed: remove it
            st.close()
            st.path.unlink(missing_ok=True)
            own = False
        raise
    finally:
        if own:
            st.close()


def _later_options(st: CustomerState, create_options: dict[str, Any]) -> dict[str, Any]:
    """The ``create_options`` of an existing state, as arguments of its ``update``.

    Mapping and timestamp format pass on; a cleaning option other than the state's,
    or ``amount=None`` for a state with amounts, is refused in one line.
    """
    out = {}
    for name, value in create_options.items():
        if name in LATER_OPTIONS and value is not None:
            out[name] = value
        elif name == "amount" and st.schema.amount is not None:
            raise DataError(
                f"amount=None: the state {str(st.path)!r} was created with the amount column "
                f"{st.schema.amount!r}; a later batch must have amounts too (or create a new "
                "state)"
            )
        elif name not in LATER_OPTIONS and st.cleaning.get(name, value) != value:
            raise DataError(
                f"{name}={value!r}: the state {str(st.path)!r} was created with "
                f"{name}={st.cleaning[name]!r}, which every later batch keeps; leave it out "
                "or create a new state"
            )
    return out


def _refresh(
    st: CustomerState,
    new_log: Any,
    pipeline: ScoringPipeline,
    model_dir: str | Path,
    output: str | Path | None,
    tracking_uri: str | None,
    experiment: str,
    segment_tolerance: float,
    purchase_tolerance: float,
    min_expected: float,
    log_to_mlflow: bool,
    read_options: dict[str, Any],
) -> RefreshResult:
    update = st.update(new_log, **read_options)
    end = st.last_timestamp
    out = Path(output) if output is not None else Path("rfmml-refresh") / str(end.date())
    summary = st.btyd_summary(freq=pipeline.freq)
    features = st.rfm_table()
    predictions = pipeline.predict(scoring_frame(features, summary))
    files = write_predictions(
        predictions,
        out,
        fingerprints={
            "state": str(st.path.resolve()),
            "batch": update.fingerprint,
            "purchase_model": getattr(pipeline.purchase_model, "training_fingerprint_", None),
            "gamma_gamma": getattr(pipeline.gamma_gamma, "training_fingerprint_", None),
            "model_dir": str(Path(model_dir).resolve()),
        },
    )
    files = {f"predictions_{k}": v for k, v in files.items()}
    has_segments = "segment" in predictions.columns
    current = predictions["segment"].astype(str) if has_segments else pd.Series(dtype=object)
    previous = st.current_segments()
    if previous.empty:
        previous = current.iloc[:0]
    prev_table = pd.DataFrame({"segment": previous.to_numpy()}, index=previous.index)
    cur_table = pd.DataFrame({"segment": current.to_numpy()}, index=current.index)
    if has_segments:
        changes = segment_changes(prev_table, cur_table)
        export_segment_lists(predictions, out / "segments")
        export_segment_changes(prev_table, cur_table, out / "changes")
        files["segment_lists"] = out / "segments"
        files["segment_changes"] = out / "changes"
        both = previous.index.intersection(current.index)
        moved = int((changes["change"] == "moved").sum())
        changed_share = moved / len(both) if len(both) else math.nan
    else:
        changes = pd.DataFrame(columns=["customer_id", "previous_segment", "segment", "change"])
        changed_share = math.nan
    table = movements(previous, current, changes) if has_segments else pd.DataFrame()

    model_fp = _model_fingerprint(model_dir)
    log = st.refreshes()
    same = log[log["model_fingerprint"] == model_fp]
    baseline = pd.Timestamp(same["observation_end"].min()) if len(same) else None
    drift = _drift(
        st, pipeline, summary, changed_share, baseline, end,
        segment_tolerance=segment_tolerance, purchase_tolerance=purchase_tolerance,
        min_expected=min_expected,
    )  # fmt: skip
    row = {
        "refreshed_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
        "observation_end": end,
        "model": str(Path(model_dir).resolve()),
        "model_fingerprint": model_fp,
        "n_customers": len(predictions),
        "segment_changed_share": _none(drift.segment_changed_share),
        "predicted_purchases": _none(drift.predicted_purchases),
        "actual_purchases": _none(drift.actual_purchases),
        "refit_advised": drift.refit_advised,
        "reason": drift.reason,
    }
    st.record_segments(current if has_segments else None, end, refresh=row)
    if has_segments:
        files["movements"] = out / "movements.csv"
        with replacing(files["movements"]) as temporary:
            table.to_csv(temporary)
    # what cleaning did to every row the scored state holds (the batch's own counts are
    # in result.update.report)
    files["cleaning_report"] = st.cleaning_report().save(out)
    files["report"] = build_report(out, title=f"refresh {end.date()}")
    result = RefreshResult(update, end, predictions, changes, table, drift, files, output_dir=out,
                           notes=list(update.notes))  # fmt: skip
    if log_to_mlflow:
        result.run_id = _log(result, st, tracking_uri, experiment)
    return result


def _none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _log(result: RefreshResult, st: CustomerState, tracking_uri: str | None, name: str) -> str:
    from rfmml import tracking

    uri = tracking.resolve_tracking_uri(tracking_uri)
    experiment_id = tracking.ensure_experiment(name, uri)
    drift, update = result.drift, result.update
    tags = {
        "rfmml.role": "refresh",
        "rfmml.refit_advised": str(drift.refit_advised).lower(),
        "rfmml.refit_reason": drift.reason[:5000],
    }
    run_name = f"refresh {result.observation_end.date()}"
    with tracking.tracked_run(run_name, tags=tags, experiment_id=experiment_id) as run:
        tracking.log_params(
            {
                "state": str(st.path.resolve()),
                "batch_fingerprint": update.fingerprint,
                "observation_end": result.observation_end.isoformat(),
                "drift_baseline": str(drift.baseline),
            }
        )
        metrics = {
            "batch_applied": float(update.applied),
            "rows_added": float(update.rows_added),
            "customers_touched": float(update.customers_touched),
            "late_rows": float(update.late_rows),
            "n_customers": float(len(result.predictions)),
            "refit_advised": float(drift.refit_advised),
            "segment_changed_share": drift.segment_changed_share,
            "predicted_purchases": drift.predicted_purchases,
            "actual_purchases": drift.actual_purchases,
            "purchase_ratio": drift.purchase_ratio,
        }
        tracking.log_metrics({k: v for k, v in metrics.items() if not math.isnan(v)})
        if not result.movements.empty:
            tracking.log_table(result.movements, "movements.csv")
        tracking.log_artifact(result.files["report"])
        return run.info.run_id
