"""The maximum-likelihood base of every rfmml customer-base model.

A new model is its likelihood, its predictions and nothing else. Subclass
:class:`PurchaseModel` (purchase/dropout models) or
:class:`MaximumLikelihoodModel` (other models, e.g. spend), decorate the
class with :func:`rfmml.models.register_model`, import its module in
``rfmml/models/__init__.py``, and define:

Required class attributes:
    ``kind`` (str)
        The name saved in documents and looked up by ``load_model``.
    ``param_names`` (tuple of str)
        The parameters, all > 0 (the base optimises their logarithms).
    ``fit_columns`` (tuple of str)
        Summary columns the likelihood reads (validated by
        :func:`rfmml.models._validation.check_summary`; an optional
        ``weights`` column is always accepted). A :class:`PurchaseModel`
        also scores with them.
    ``time_columns``, ``time_params`` (tuples of str, default empty)
        Columns in time units and parameters with the unit of time (e.g.
        BG/NBD: ``("recency", "T")`` and ``("alpha",)``). During the fit the
        time columns are divided by the largest value of the last one and
        the time parameters multiplied by it, so the penalizer means the same
        whatever the unit (as in lifetimes); results are in the summary's unit.

Required constructor: ``__init__`` taking (and storing under the same names,
scikit-learn style) ``penalizer=0.0``, ``tol=1e-10``, ``max_iter=1000``,
optionally ``initial_params=None`` (a mapping of ``param_names`` to values),
plus the model's own hyper-parameters (JSON-able: they are saved).

Required methods:
    ``_prepare(rows, weights) -> data``
        Precompute what the likelihood needs from unique rows (a dict of
        column arrays, sorted) and their weights (customers per row). The
        returned object must have an attribute ``n`` (total weight). The
        default returns :class:`WeightedRows`.
    ``_log_likelihood(theta, data) -> (total, gradient or None)``
        The weighted total log-likelihood at the natural parameters
        ``theta`` (in ``param_names`` order) and its gradient with respect
        to ``theta`` (None: the base differentiates numerically).
    ``_starting_points(data) -> list of numpy.ndarray``
        Natural-scale starting points (time parameters in the rescaled unit),
        tried in order after ``initial_params`` (when the model has it).
    Predictions, for a :class:`PurchaseModel`: ``probability_alive(X)``,
    ``expected_purchases(X, t)``, ``probability_no_purchase(X, t)`` (which
    must accept ``t = inf`` and return P(never buys again)),
    ``expected_purchases_new_customer(t)``, ``probability_of_purchases(n, t)``.
    The base derives ``probability_purchase_within`` and
    ``next_purchase_quantile`` from ``probability_no_purchase``.

Optional hooks: ``_select_rows(X, columns)`` (which rows enter the
likelihood, and extra fitted attributes to set on success, e.g. Gamma-Gamma
keeps repeat customers), ``_rescale(data, rows, weights, scale)`` (a cheaper
rescaled copy of prepared data) and ``saved_attributes`` (extra fitted
attributes, JSON-able, written to the saved document).

The base does the rest: hyper-parameter checks, validation, unique-row
collapse with weights, starting points, optimisation (with a warm start on a
subsample for large data), standard errors from the Hessian (and
``covariance_log_``, which :meth:`~MaximumLikelihoodModel.draw_params` samples,
see :mod:`rfmml.models.uncertainty`), the fitted
attributes (all set only after success, so a failed fit leaves the estimator
unfitted), :meth:`~MaximumLikelihoodModel.get_fitted_params`, ``save`` and
``load``.
"""

from __future__ import annotations

import warnings
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from rfmml.errors import DataError
from rfmml.features._spark import is_spark
from rfmml.models import _fitting
from rfmml.models._fitting import Z_95, confidence_table, fit_log_params
from rfmml.models._grouping import map_rows, rows_fingerprint, unique_rows
from rfmml.models._roots import bracketed_root
from rfmml.models._summary_checks import check_repeat_buyers, check_time_unit
from rfmml.models._validation import check_summary
from rfmml.models.persistence import load_model, save_model
from rfmml.models.uncertainty import draw_params, log_covariance

__all__ = [
    "MaximumLikelihoodModel",
    "PurchaseModel",
    "StandardErrorWarning",
    "WeightedRows",
    "Z_95",
    "confidence_table",
    "as_horizon",
]


def _is_number(value: object) -> bool:
    """A scalar that is not a bool (``np.isscalar`` without its type narrowing)."""
    return not isinstance(value, bool) and bool(np.isscalar(value))


class StandardErrorWarning(UserWarning):
    """The Hessian at the optimum is not positive definite; standard errors are NaN."""


class WeightedRows(NamedTuple):
    """Default prepared data: unique rows (column arrays), their weights and total weight."""

    rows: dict[str, np.ndarray]
    weights: np.ndarray
    n: float


def as_horizon(t, n: int, name: str = "t") -> np.ndarray:
    """A horizon as one float per customer: a scalar is broadcast; must be >= 0, not NaN.

    ``inf`` is allowed (e.g. P(no purchase ever)).

    Raises
    ------
    DataError
        Wrong shape, NaN or negative values.
    """
    arr = np.asarray(t.to_numpy() if isinstance(t, pd.Series) else t, dtype=float)
    if arr.ndim == 0 and not (np.isnan(arr) or arr < 0):  # checked once, not per customer
        return np.full(n, float(arr))
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise DataError(
            f"{name} must be a scalar or have one value per customer ({n}), got shape {arr.shape}."
        )
    if np.isnan(arr).any() or (arr < 0).any():
        raise DataError(
            f"{name} must be >= 0 and not NaN; "
            f"{int((np.isnan(arr) | (arr < 0)).sum())} values are not."
        )
    return arr


def _numeric_gradient(f, theta: np.ndarray, step: float = 1e-4) -> np.ndarray:
    """Central differences of ``f`` at ``theta``, relative steps (models without a gradient)."""
    grad = np.empty(len(theta))
    for i in range(len(theta)):
        h = step * max(abs(theta[i]), 1e-8)
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (f(up) - f(down)) / (2.0 * h)
    return grad


class MaximumLikelihoodModel(BaseEstimator, metaclass=ABCMeta):
    """Base of the maximum-likelihood models: the ``fit`` template, accessors, save and load.

    See the module docstring for what a subclass defines. Subclasses take
    ``penalizer``, ``tol`` and ``max_iter`` hyper-parameters (and optionally
    ``initial_params``) and set them in ``__init__``, scikit-learn style.

    Fitted attributes (all models): ``params_``, ``summary_``,
    ``covariance_log_`` (inverse Hessian of the log-parameters, NaN when not
    positive definite), ``log_likelihood_``, ``n_customers_``, ``n_unique_rows_``,
    ``convergence_``, ``freq_``, ``training_fingerprint_``, ``fit_date_``.
    """

    kind: ClassVar[str] = ""
    param_names: ClassVar[tuple[str, ...]] = ()
    fit_columns: ClassVar[tuple[str, ...]] = ()
    time_columns: ClassVar[tuple[str, ...]] = ()
    time_params: ClassVar[tuple[str, ...]] = ()
    #: extra fitted attributes saved with the model (besides the common ones)
    saved_attributes: ClassVar[tuple[str, ...]] = ()
    #: end a fit that was not warm-started with quasi-Newton steps from the optimiser's
    #: stop (see :func:`rfmml.models._fitting.fit_log_params`'s ``polish``): L-BFGS-B
    #: stops on the relative reduction of the objective, ~1e-8 to 1e-6 from the optimum
    #: along a flat direction, at a point that moves with the rounding of the sums
    #: (Gamma-Gamma on CDNOW; the MBG/NBD likelihood summed by the compiled loop or by
    #: numpy); Newton steps from the stop reach the optimum either way
    _polish_optimum: ClassVar[bool] = True

    @property
    def _needs_repeat_buyers(self) -> bool:
        """Whether a Spark summary without repeat buyers is refused (strict purchase models)."""
        return getattr(self, "_strict_summary", False) and hasattr(self, "_formulas")

    # ------------------------------------------------------- what a model defines
    def _prepare(self, rows: dict[str, np.ndarray], weights: np.ndarray) -> Any:
        return WeightedRows(rows, weights, float(weights.sum()))

    @abstractmethod
    def _log_likelihood(self, theta: np.ndarray, data) -> tuple[float, np.ndarray | None]:
        """Total weighted log-likelihood at natural ``theta`` and its gradient (or None)."""

    @abstractmethod
    def _starting_points(self, data) -> list[np.ndarray]:
        """Natural-scale starting points (time parameters in the rescaled unit)."""

    def _select_rows(
        self, X: pd.DataFrame, columns: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
        """Rows entering the likelihood, their weights, and fitted attributes to set on success."""
        return {k: columns[k] for k in self.fit_columns}, columns["weights"], {}

    def _rescale(self, data, rows: dict[str, np.ndarray], weights: np.ndarray, scale: float):
        """Prepared data with the time columns multiplied by ``scale``."""
        scaled = {k: v * scale if k in self.time_columns else v for k, v in rows.items()}
        return self._prepare(scaled, weights)

    # --------------------------------------------------------------------- fit
    def _check_hyper_parameters(self) -> None:
        pen = self.penalizer
        if not _is_number(pen) or not pen >= 0:
            raise ValueError(f"penalizer must be a number >= 0, got {pen!r}.")
        init = getattr(self, "initial_params", None)
        if init is not None:
            if not isinstance(init, Mapping) or set(init) != set(self.param_names):
                raise ValueError(
                    f"initial_params must map each of {list(self.param_names)} to a value > 0, "
                    f"got {init!r}."
                )
            if not all(np.isfinite(float(init[k])) and float(init[k]) > 0 for k in init):
                raise ValueError(f"initial_params must all be finite and > 0, got {dict(init)!r}.")

    def _clear_fitted(self) -> None:
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)

    def fit(self, X: pd.DataFrame, y=None):
        """Fit the model to a customer summary by maximum likelihood.

        Parameters
        ----------
        X : pandas.DataFrame or pyspark.sql.DataFrame
            The model's ``fit_columns``, optional ``weights`` (customers per row).
            A Spark summary is validated in Spark and collapsed there to its
            distinct rows with counts; only those are collected (see
            :mod:`rfmml.models._spark`). Predictions accept Spark frames too and
            return ``customer_id`` and the prediction as a Spark frame.
        y : None
            Ignored.

        Returns
        -------
        self
            The fitted estimator.

        Raises
        ------
        ValueError
            Invalid hyper-parameters.
        DataError
            On invalid input (see :func:`rfmml.models._validation.check_summary`).
        ConvergenceError
            If no starting point converges.
        """
        self._clear_fitted()
        self._check_hyper_parameters()
        name = type(self).__name__
        if is_spark(X):  # distinct rows with counts, collapsed in Spark
            from rfmml.models._spark import collapse_summary

            X = collapse_summary(
                X,
                self.fit_columns,
                what=f"{name}.fit",
                repeat_buyers_for=self.kind if self._needs_repeat_buyers else None,
            )
        cols = check_summary(X, self.fit_columns, what=f"{name}.fit")
        last = self.time_columns[-1] if self.time_columns else None
        if last is not None and not (len(cols[last]) and float(cols[last].max()) > 0):
            # before the rows are selected: all ages 0 is the more telling message
            raise DataError(
                f"{last} must be > 0 for at least one customer, but all {len(X)} customers "
                f"have {last} == 0. Is the observation end after the first purchases?"
            )
        selected, weights, extra = self._select_rows(X, cols)
        rows, w = unique_rows(selected, weights)

        scale = 1.0
        if last is not None:
            t_max = float(rows[last].max())
            if t_max <= 0:
                raise DataError(
                    f"{last} must be > 0 for at least one customer, but all {len(X)} customers "
                    f"have {last} == 0. Is the observation end after the first purchases?"
                )
            scale = 1.0 / t_max
        natural = self._prepare(rows, w)
        data = natural if scale == 1.0 else self._rescale(natural, rows, w, scale)

        def every(stride: int) -> Any:  # every stride-th distinct row, prepared rescaled
            return self._prepare(
                {k: v[::stride] * scale if k in self.time_columns else v[::stride]
                 for k, v in rows.items()},
                w[::stride],
            )  # fmt: skip

        subsample = None
        step = _fitting.subsample_step(len(w))
        if step is not None and getattr(self, "initial_params", None) is None:
            subsample = every(step)
            middle = _fitting.middle_step(len(w))
            if middle is not None:  # refined between the subsample and the full data
                subsample = [subsample, every(middle)]
        return self._fit_prepared(
            natural,
            data,
            subsample,
            scale=scale,
            n_unique_rows=len(w),
            fingerprint=rows_fingerprint(rows, w),
            extra=extra,
            freq=X.attrs.get("freq"),
        )

    def _fit_prepared(
        self,
        natural: Any,
        data: Any,
        subsample: Any,
        *,
        scale: float,
        n_unique_rows: int,
        fingerprint: str,
        extra: dict[str, Any],
        freq: Any,
    ):
        """Optimise on prepared data and set every fitted attribute; return ``self``.

        ``natural`` is the prepared data in the summary's time unit, ``data``
        the same rescaled by ``scale`` (the data the optimiser sees) and
        ``subsample`` prepared rescaled rows whose optimum warm-starts the fit, or
        a list of them, smallest first (see :func:`_fitting.fit_log_params`; None:
        the multistart on ``data``). Any object with an ``n`` that
        :meth:`_log_likelihood` and :meth:`_starting_points` accept will do:
        the distributed Gamma-Gamma fit passes one whose sums run in Spark.
        """
        name = type(self).__name__
        time_mask = np.array([k in self.time_params for k in self.param_names])
        to_scaled = np.where(time_mask, scale, 1.0)  # natural -> fitting units
        pen = float(self.penalizer)

        def make_objective(prepared):
            n = prepared.n

            def objective(log_theta):
                theta = np.exp(log_theta)
                ll, grad = self._log_likelihood(theta, prepared)
                if grad is None:
                    grad = _numeric_gradient(
                        lambda th: self._log_likelihood(th, prepared)[0], theta
                    )
                value = -ll / n + pen * theta @ theta
                return value, (-grad / n + 2.0 * pen * theta) * theta

            return objective

        starts = []
        init = getattr(self, "initial_params", None)
        if init is not None:
            starts.append(np.log(np.array([float(init[k]) for k in self.param_names]) * to_scaled))
        starts += [np.log(np.asarray(s, dtype=float)) for s in self._starting_points(data)]
        # the degenerate_parameters bounds in fitting units: a warm-started fit ending
        # beyond them is redone from the starting points on the full data
        low = np.where(time_mask, self.DEGENERATE_TIME_BOUNDS[0], self.DEGENERATE_BOUNDS[0])
        high = np.where(time_mask, self.DEGENERATE_TIME_BOUNDS[1], self.DEGENERATE_BOUNDS[1])
        outcome, hess, warm = fit_log_params(
            make_objective,
            data,
            subsample,
            starts,
            model=name,
            tol=self.tol,
            max_iter=self.max_iter,
            bounds=(np.log(low * to_scaled), np.log(high * to_scaled)),
            polish=self._polish_optimum,
        )
        params = np.exp(outcome.log_params) / to_scaled
        table, ok = _fitting.parameter_table(self.param_names, params, hess)
        if not ok:
            warnings.warn(
                f"The Hessian of the {name} log-likelihood is not positive definite at the "
                "optimum, so standard errors are NaN. The parameters may be poorly identified "
                "(e.g. very few repeat buyers); consider more data or a small penalizer.",
                StandardErrorWarning,
                stacklevel=3,
            )
        log_likelihood = float(self._log_likelihood(params, natural)[0])
        n = float(natural.n)
        # every fitted attribute is set here, after the fit succeeded
        self.params_ = pd.Series(params, index=list(self.param_names), name=name)
        self.summary_ = table
        self.covariance_log_ = log_covariance(hess)
        self.log_likelihood_ = log_likelihood
        self.n_customers_ = int(n) if n.is_integer() else n
        self.n_unique_rows_ = n_unique_rows
        self.convergence_ = outcome.diagnostics(
            self.param_names, np.exp(np.asarray(outcome.start)) / to_scaled, warm
        )
        for key, value in extra.items():
            setattr(self, key, value)
        self.freq_ = freq
        self.training_fingerprint_ = fingerprint
        self.fit_date_ = datetime.now(UTC).isoformat(timespec="seconds")
        return self

    # --------------------------------------------------------------- accessors
    def get_fitted_params(self) -> dict[str, float]:
        """The fitted parameters as plain floats, in the model's parameter order.

        Returns
        -------
        dict of str to float

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the model is not fitted.
        """
        check_is_fitted(self, "params_")
        return {k: float(self.params_[k]) for k in self.param_names}

    #: A dimensionless parameter outside these bounds ran to the edge of its range
    #: (e.g. BG/NBD's ``a`` -> 0 with ``b`` -> infinity: no dropout identified).
    DEGENERATE_BOUNDS: ClassVar[tuple[float, float]] = (1e-4, 1e4)
    #: The same for parameters with the unit of time (``time_params``).
    DEGENERATE_TIME_BOUNDS: ClassVar[tuple[float, float]] = (1e-6, 1e6)

    def degenerate_parameters(self) -> pd.DataFrame:
        """Parameters that ran to the edge of their range, or are not identified.

        A parameter is flagged ``"at bound"`` when its estimate lies outside
        :attr:`DEGENERATE_BOUNDS` (:attr:`DEGENERATE_TIME_BOUNDS` for time
        parameters): its logarithm ran off towards the optimiser's reach. When
        none is but a standard error is NaN or infinite (the Hessian is not
        positive definite), those parameters are flagged
        ``"standard error not finite"``.

        Returns
        -------
        pandas.DataFrame
            One row per flagged parameter (empty for a sound fit), indexed by
            ``parameter``: ``estimate``, ``std_error``, ``reason``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the model is not fitted.
        """
        check_is_fitted(self, "params_")
        table = self.summary_
        est = table["estimate"].to_numpy(dtype=float)
        se = table["std_error"].to_numpy(dtype=float)
        time = np.array([k in self.time_params for k in table.index])
        low = np.where(time, self.DEGENERATE_TIME_BOUNDS[0], self.DEGENERATE_BOUNDS[0])
        high = np.where(time, self.DEGENERATE_TIME_BOUNDS[1], self.DEGENERATE_BOUNDS[1])
        at_bound = (est < low) | (est > high)
        if at_bound.any():
            flagged, reason = at_bound, "at bound"
        else:
            flagged, reason = ~np.isfinite(se), "standard error not finite"
        out = pd.DataFrame(
            {"estimate": est[flagged], "std_error": se[flagged], "reason": reason},
            index=pd.Index(list(table.index[flagged]), name="parameter"),
        )
        return out

    def _theta(self) -> tuple[float, ...]:
        return tuple(self.get_fitted_params().values())

    # ------------------------------------------------------------ uncertainty
    def draw_params(
        self,
        n_draws: int,
        method: str = "parametric",
        random_state=None,
        X: pd.DataFrame | None = None,
    ) -> np.ndarray:
        """Draws of the parameters, ``n_draws x len(param_names)``, natural scale.

        ``"parametric"``: the asymptotic normal of the log-parameters
        (``covariance_log_``, the inverse Hessian); ``"bootstrap"``: refits
        on customers of ``X`` resampled with replacement. See
        :func:`rfmml.models.uncertainty.draw_params`.

        Parameters
        ----------
        n_draws : int
            Number of draws.
        method : {"parametric", "bootstrap"}, default "parametric"
        random_state : None, int or numpy.random.RandomState
            Seed.
        X : pandas.DataFrame, optional
            The training summary (``"bootstrap"`` only).

        Returns
        -------
        numpy.ndarray
        """
        return draw_params(self, n_draws, method=method, random_state=random_state, X=X)

    # ------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Save the fitted model as JSON (see :mod:`rfmml.models.persistence`).

        Parameters
        ----------
        path : str or pathlib.Path
            Destination file (parent directories are created).

        Returns
        -------
        pathlib.Path
        """
        return save_model(self, path)

    @classmethod
    def load(cls, path: str | Path):
        """Load a model saved with :meth:`save`, checking it is of this class.

        Parameters
        ----------
        path : str or pathlib.Path
            A JSON file written by :meth:`save`.

        Returns
        -------
        The fitted model.
        """
        return load_model(path, expected=cls)


class PurchaseModel(MaximumLikelihoodModel):
    """Base of purchase models: every one answers the same questions.

    A subclass names the module of its row formulas (``_formulas``) and
    their prefix (``_formula_prefix``); this class implements the public
    predictions once (validation, chunking with
    :func:`rfmml.models._grouping.map_rows`, Series naming) by calling
    ``<prefix>_probability_alive(x, t_x, T, *theta)``,
    ``<prefix>_probability_no_purchase(t, x, t_x, T, *theta)`` (accepting
    ``t = inf``), ``<prefix>_log_likelihood(x, t_x, T, *theta)``,
    ``<prefix>_expected_purchases_new_customer(t, *theta)``,
    ``<prefix>_probability_of_purchases(n, t, *theta)`` and
    ``<prefix>_expected_purchases(t, x, t_x, T, *theta)`` (or, with
    ``_expected_given_alive``, ``<prefix>_expected_purchases_if_alive(t, x,
    T, *theta)`` times the probability alive), ``theta`` in
    ``param_names`` order. The hooks ``_check_columns``,
    ``_purchase_horizon``, ``_purchase_count`` and ``_opportunity_count``
    add model-specific checks. This class also
    derives :meth:`probability_purchase_within` and
    :meth:`next_purchase_quantile` from ``probability_no_purchase``, and
    :meth:`alive_and_expected` (both scores in one call, validation and
    probability alive shared).
    """

    #: the module of the row formulas and their name prefix (``<prefix>_probability_alive``...)
    _formulas: ModuleType
    _formula_prefix: str = ""
    #: expected purchases as ``<prefix>_expected_purchases_if_alive`` times P(alive)
    _expected_given_alive: bool = False
    #: P(alive) and P(no purchase) are cheap: in bounded chunks, in order, not collapsed
    _in_order: bool = False
    #: the fit needs repeat buyers and scoring checks the summary's time unit
    _strict_summary: ClassVar[bool] = True

    def __init__(
        self,
        penalizer: float = 0.0,
        initial_params: Mapping[str, float] | None = None,
        tol: float = 1e-10,
        max_iter: int = 1000,
    ):
        self.penalizer = penalizer
        self.initial_params = initial_params
        self.tol = tol
        self.max_iter = max_iter

    # ------------------------------------------------------------ likelihood
    def _select_rows(self, X, columns):
        self._check_columns(X, columns)
        if self._strict_summary:
            check_repeat_buyers(X, columns["frequency"], self.kind)
        return super()._select_rows(X, columns)

    def _prepare(self, rows: dict[str, np.ndarray], weights: np.ndarray) -> Any:
        return self._formula("prepare")(*(rows[k] for k in self.fit_columns), weights)

    def _rescale(self, data, rows: dict[str, np.ndarray], weights: np.ndarray, scale: float):
        if not hasattr(data, "t_x_levels"):
            return super()._rescale(data, rows, weights, scale)
        # prepared data with time levels (BG/NBD, MBG/NBD): same levels, only the time
        # values change, no second grouping
        return data._replace(
            t_x=data.t_x * scale,
            T=data.T * scale,
            **{
                k: getattr(data, k) * scale
                for k in ("T_levels", "t_x_levels")
                if getattr(data, k) is not None
            },
        )

    # ------------------------------------------------------------ scoring hooks
    def _check_columns(self, X: pd.DataFrame, columns: dict[str, np.ndarray]) -> None:
        """Model-specific checks of the columns to fit or score (none by default)."""

    def _purchase_horizon(self, t, n: int) -> np.ndarray:
        """The horizon of :meth:`expected_purchases`, one value per customer."""
        return as_horizon(t, n)

    def _purchase_count(self, n) -> np.ndarray:
        """The ``n`` of :meth:`probability_of_purchases`: non-negative integers."""
        n_arr = np.asarray(n)
        if (n_arr < 0).any() or (n_arr != np.floor(n_arr)).any():
            raise DataError(f"n must hold non-negative integers, got {n!r}.")
        return n_arr

    def _opportunity_count(self, t):
        """The horizon of the new-customer predictions (as given by default)."""
        return t

    def _columns(self, X: pd.DataFrame, what: str) -> tuple[np.ndarray, ...]:
        self._theta()  # NotFittedError first
        c = check_summary(X, self.fit_columns, what=what, weights=False)
        self._check_columns(X, c)
        if self._strict_summary:
            check_time_unit(X, getattr(self, "freq_", None), self.kind)
        return tuple(c[k] for k in self.fit_columns)

    def _formula(self, name: str) -> Callable[..., Any]:
        return getattr(self._formulas, f"{self._formula_prefix}_{name}")

    def _alive_rows(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, theta) -> np.ndarray:
        formula = self._formula("probability_alive")
        return map_rows(lambda *c: formula(*c, *theta), x, t_x, T, unique=not self._in_order)

    def _on_spark(self, X: Any, method: str, **kwargs: Any) -> Any:
        """``method`` evaluated inside Spark (see :mod:`rfmml.models._spark`)."""
        from rfmml.models._spark import spark_predict

        self._theta()  # NotFittedError first
        for key, value in kwargs.items():
            if not _is_number(value):
                raise DataError(
                    f"{key} must be one number for a Spark frame (a per-customer {key} cannot "
                    f"be aligned to its rows), got {type(value).__name__}."
                )
        return spark_predict(self, X, method, method, self.fit_columns, **kwargs)

    @staticmethod
    def _scalar(out):
        return float(out) if np.ndim(out) == 0 else out

    # -------------------------------------------------------------- predictions
    def probability_alive(self, X: pd.DataFrame) -> pd.Series:
        """Probability that each customer is still active at ``T``.

        Parameters
        ----------
        X : pandas.DataFrame
            The model's summary columns (``frequency``, ``recency``, ``T``).

        Returns
        -------
        pandas.Series
            Aligned to ``X.index``.
        """
        if is_spark(X):
            return self._on_spark(X, "probability_alive")
        x, t_x, T = self._columns(X, "probability_alive")
        p = self._alive_rows(x, t_x, T, self._theta())
        return pd.Series(p, index=X.index, name="probability_alive")

    def expected_purchases(self, X: pd.DataFrame, t) -> pd.Series:
        """Expected repeat purchases in the next ``t`` periods, given each history.

        Evaluated once per distinct row (or, for models with a factor given
        alive, once per distinct ``(t, frequency, T)`` times the probability
        alive), in bounded chunks (:func:`rfmml.models._grouping.map_rows`).

        Parameters
        ----------
        X : pandas.DataFrame
            The model's summary columns (``frequency``, ``recency``, ``T``).
        t : float or array_like
            Horizon in the summary's time unit, one value or one per customer.

        Returns
        -------
        pandas.Series
            Aligned to ``X.index``.
        """
        if is_spark(X):
            return self._on_spark(X, "expected_purchases", t=t)
        x, t_x, T = self._columns(X, "expected_purchases")
        e = self._expected_rows(x, t_x, T, self._purchase_horizon(t, len(X)), self._theta())
        return pd.Series(e, index=X.index, name="expected_purchases")

    def _expected_rows(self, x, t_x, T, horizon, theta, alive=None) -> np.ndarray:
        """Expected purchases per row; ``alive`` (P(alive) of the rows) when already known."""
        if self._expected_given_alive:
            # the factor after P(alive) depends on (t, x, T) only: once per distinct triple
            if_alive = self._formula("expected_purchases_if_alive")
            e = map_rows(lambda *c: if_alive(*c, *theta), horizon, x, T)
            if alive is None:
                alive = self._alive_rows(x, t_x, T, theta)
            return np.multiply(e, alive, out=e)
        formula = self._formula("expected_purchases")
        return map_rows(lambda *c: formula(*c, *theta), horizon, x, t_x, T)

    def _alive_and_expected_rows(self, x, t_x, T, horizon, theta) -> tuple[np.ndarray, np.ndarray]:
        """P(alive) and expected purchases per row (:meth:`alive_and_expected`)."""
        alive = self._alive_rows(x, t_x, T, theta)
        return alive, self._expected_rows(x, t_x, T, horizon, theta, alive=alive)

    def alive_and_expected(self, X: pd.DataFrame, t) -> pd.DataFrame:
        """:meth:`probability_alive` and :meth:`expected_purchases` of each customer in one call.

        The same values as the two methods, for about the cost of
        :meth:`expected_purchases` alone: the summary is validated once and,
        for models whose expected purchases are a factor given alive times the
        probability alive (BG/NBD, MBG/NBD, Pareto/NBD), the probability alive
        is computed once for both columns.

        Parameters
        ----------
        X : pandas.DataFrame
            The model's summary columns (``frequency``, ``recency``, ``T``).
        t : float or array_like
            Horizon in the summary's time unit (for the BG/BB, whole future
            opportunities), one value or one per customer.

        Returns
        -------
        pandas.DataFrame
            Columns ``probability_alive`` and ``expected_purchases``, aligned
            to ``X.index``.
        """
        x, t_x, T = self._columns(X, "alive_and_expected")
        horizon = self._purchase_horizon(t, len(X))
        alive, expected = self._alive_and_expected_rows(x, t_x, T, horizon, self._theta())
        return pd.DataFrame(
            {"probability_alive": alive, "expected_purchases": expected}, index=X.index
        )

    def probability_no_purchase(self, X: pd.DataFrame, t) -> pd.Series:
        """Probability of no purchase in ``(T, T + t]`` given each history.

        ``t = inf`` gives the probability of never buying again.

        Parameters
        ----------
        X : pandas.DataFrame
            Summary columns, as for :meth:`probability_alive`.
        t : float or array_like
            Horizon in the summary's time unit (``>= 0``, ``inf`` allowed),
            one value or one per customer.

        Returns
        -------
        pandas.Series
            One probability per row of ``X``.
        """
        if is_spark(X):
            return self._on_spark(X, "probability_no_purchase", t=t)
        x, t_x, T = self._columns(X, "probability_no_purchase")
        theta = self._theta()
        formula = self._formula("probability_no_purchase")
        p = map_rows(
            lambda *c: formula(*c, *theta),
            as_horizon(t, len(X)),
            x,
            t_x,
            T,
            unique=not self._in_order,
        )
        return pd.Series(p, index=X.index, name="probability_no_purchase")

    def expected_purchases_new_customer(self, t):
        """Expected repeat purchases of a new customer in ``(0, t]``.

        Parameters
        ----------
        t : float or array_like
            Horizon(s) in the training summary's time unit.

        Returns
        -------
        float or numpy.ndarray
        """
        formula = self._formula("expected_purchases_new_customer")
        return self._scalar(formula(self._opportunity_count(t), *self._theta()))

    def probability_of_purchases(self, n, t):
        """Probability that a new customer makes exactly ``n`` repeat purchases in ``(0, t]``.

        Parameters
        ----------
        n : int or array_like of int
            Number of repeat purchases.
        t : float or array_like
            Horizon in the training summary's time unit.

        Returns
        -------
        float or numpy.ndarray
        """
        n_arr = self._purchase_count(n)
        t = self._opportunity_count(t)
        formula = self._formula("probability_of_purchases")
        return self._scalar(formula(n_arr, t, *self._theta()))

    def log_likelihood(self, X: pd.DataFrame) -> pd.Series:
        """Per-customer log-likelihood at the fitted parameters.

        Parameters
        ----------
        X : pandas.DataFrame
            Summary columns, as for :meth:`probability_alive`.

        Returns
        -------
        pandas.Series
            One value per row of ``X``, not multiplied by ``weights``.
        """
        if is_spark(X):
            return self._on_spark(X, "log_likelihood")
        x, t_x, T = self._columns(X, "log_likelihood")
        theta = self._theta()
        formula = self._formula("log_likelihood")
        ll = map_rows(lambda *c: formula(*c, *theta), x, t_x, T, unique=False)
        return pd.Series(ll, index=X.index, name="log_likelihood")

    def probability_purchase_within(self, X: pd.DataFrame, t) -> pd.Series:
        """Probability of at least one purchase in the next ``t`` periods: ``1 - P(no purchase)``.

        Parameters
        ----------
        X, t
            As for :meth:`probability_no_purchase`.

        Returns
        -------
        pandas.Series
            One probability per row of ``X``.
        """
        if is_spark(X):
            return self._on_spark(X, "probability_purchase_within", t=t)
        p = 1.0 - self.probability_no_purchase(X, t).to_numpy()
        return pd.Series(p, index=X.index, name="probability_purchase_within")

    def next_purchase_quantile(self, X: pd.DataFrame, q: float = 0.5) -> pd.Series:
        """Time until the next purchase at quantile ``q`` of its conditional distribution.

        The smallest ``t`` with ``P(a purchase in the next t periods) >= q``,
        i.e. ``probability_no_purchase(X, t) == 1 - q``; ``+inf`` where the
        probability of never buying again is ``>= 1 - q``. In closed form where
        the model's formulas give one (``<prefix>_next_purchase_quantile``: the
        BG/NBD and MBG/NBD, whose customers alive buy as a Poisson process with
        a Gamma rate); otherwise bracketed by
        doubling, then solved by safeguarded regula falsi (Illinois steps,
        bisection when a bracket shrinks too slowly) to a bracket of relative
        width 1e-12, whose upper end is returned (as bisection to that width
        would); vectorised over the unique rows of ``X`` in bounded chunks
        (:func:`rfmml.models._grouping.map_rows`).

        Parameters
        ----------
        X : pandas.DataFrame
            The model's summary columns.
        q : float, default 0.5
            Quantile in (0, 1); 0.5 gives the median time to the next purchase.

        Returns
        -------
        pandas.Series
            In the summary's time unit, aligned to ``X.index``.
        """
        if not _is_number(q) or not 0.0 < float(q) < 1.0:
            raise ValueError(f"q must be a number strictly between 0 and 1, got {q!r}.")
        if is_spark(X):
            return self._on_spark(X, "next_purchase_quantile", q=q)
        check_is_fitted(self, "params_")
        cols = check_summary(X, self.fit_columns, what="next_purchase_quantile")
        target = 1.0 - float(q)
        # P(no purchase) straight from its formula (as probability_no_purchase evaluates
        # it), without a frame, validation and grouping per step, unless overridden
        direct = type(self).probability_no_purchase is PurchaseModel.probability_no_purchase
        if direct:
            self._columns(X, "next_purchase_quantile")  # the model's checks, once
            formula, theta = self._formula("probability_no_purchase"), self._theta()
            # the root in closed form, where the model's formulas have it
            closed = getattr(self._formulas, f"{self._formula_prefix}_next_purchase_quantile",
                             None)  # fmt: skip
            if closed is not None:
                out = map_rows(lambda *c: closed(float(q), *c, *theta),
                               *(cols[k] for k in self.fit_columns))  # fmt: skip
                return pd.Series(out, index=X.index, name="next_purchase_quantile")

        def quantile(*columns: np.ndarray) -> np.ndarray:
            # root of P(no purchase in t) = target for one chunk of distinct rows
            # (map_rows bounds its size): bracketed by doubling, then safeguarded
            # Illinois steps (:func:`rfmml.models._roots.bracketed_root`)
            if direct:  # the formula itself: the rows are validated, values identical

                def no_buy(t: np.ndarray, *cols: np.ndarray) -> np.ndarray:
                    return np.asarray(formula(t, *cols, *theta))

            else:  # a model overriding probability_no_purchase

                def no_buy(t: np.ndarray, *cols: np.ndarray) -> np.ndarray:
                    part = pd.DataFrame(dict(zip(self.fit_columns, cols, strict=True)))
                    return self.probability_no_purchase(part, t).to_numpy()

            k = len(columns[0])
            out = np.full(k, np.inf)
            finite = no_buy(np.full(k, np.inf), *columns) < target
            if not finite.any():  # no row of this chunk has a finite quantile
                return out
            part = [c[finite] for c in columns]
            lo = np.zeros(len(part[0]))
            hi = np.ones(len(lo))
            if "T" in self.fit_columns:
                hi = np.maximum(part[self.fit_columns.index("T")], 1.0)
            f_lo = no_buy(lo, *part) - target
            f_hi = no_buy(hi, *part) - target
            open_ = f_hi > 0.0
            while open_.any():  # double until P(no purchase in hi) <= target
                lo[open_], f_lo[open_] = hi[open_], f_hi[open_]
                hi[open_] *= 2.0
                f_hi[open_] = no_buy(hi[open_], *(c[open_] for c in part)) - target
                open_[open_] = f_hi[open_] > 0.0

            def residual(t: np.ndarray, *cols: np.ndarray) -> np.ndarray:
                return no_buy(t, *cols) - target

            out[finite] = bracketed_root(residual, lo, hi, f_lo, f_hi, tuple(part))
            return out

        out = map_rows(quantile, *(cols[k] for k in self.fit_columns))
        return pd.Series(out, index=X.index, name="next_purchase_quantile")
