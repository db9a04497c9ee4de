"""The Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005b)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from rfmml.errors import DataError
from rfmml.features._spark import frame_attrs, is_spark
from rfmml.models import _formulas as F
from rfmml.models._base import MaximumLikelihoodModel
from rfmml.models._grouping import map_rows
from rfmml.models._registry import register_model
from rfmml.models._validation import check_summary, first_id

__all__ = [
    "GammaGamma",
    "FrequencyMonetaryCorrelationWarning",
    "CORRELATION_THRESHOLD",
    "expected_order_value_rows",
    "GG_COLLECT_ROWS",
]

PARAM_NAMES = ("p", "q", "v")
#: |Pearson correlation| between frequency and monetary_value of repeat
#: customers above which GammaGamma.fit warns. The model assumes the two are
#: independent; Fader & Hardie (note 025) check this on CDNOW (0.11). 0.3 is a
#: conventional "moderate correlation" cut-off.
CORRELATION_THRESHOLD = 0.3
#: A fit on a Spark summary collects its distinct (frequency, monetary_value)
#: rows when there are at most this many (about 50 MB through Arrow), and
#: otherwise evaluates the likelihood inside Spark (see ``GammaGamma.fit``).
#: Read at call time; ``GammaGamma.fit(..., collect_rows=...)`` overrides it.
GG_COLLECT_ROWS = 2_000_000


class SparkGammaGammaRows(NamedTuple):
    """The repeat customers' distinct rows kept in Spark: the distributed fit's data.

    ``frame`` is a cached Spark frame of ``frequency``, ``monetary_value``
    and ``weights``; ``n`` the customers and ``mean_m`` their mean spend.
    """

    frame: Any
    n: float
    mean_m: float


def _batch_log_likelihood(batch: pd.DataFrame, p: float, q: float, v: float) -> np.ndarray:
    """Total log-likelihood and gradient of one Arrow batch of distinct rows (on a worker).

    The pandas fit's own functions on the batch's rows, so that the sums over
    the batches are the pandas fit's sums split into parts.
    """
    data = F.gamma_gamma_prepare(
        batch["frequency"].to_numpy(dtype=float),
        batch["monetary_value"].to_numpy(dtype=float),
        batch["weights"].to_numpy(dtype=float),
    )
    total, grad = F.gamma_gamma_total_log_likelihood_and_gradient(p, q, v, data)
    return np.array([total, *grad])


def _warm_start_rows(rows: Any, n_rows: int) -> F.GammaGammaData | None:
    """The collected subsample whose optimum warm-starts the distributed fit.

    Every row when there are at most :data:`~rfmml.models._fitting.SUBSAMPLE_ROWS`
    (2,500), otherwise the rows whose value hash falls in one of
    ``n_rows // SUBSAMPLE_ROWS`` buckets (about 2,500 rows, the same on every
    run), sorted by value. The starting points are tried on these rows on the
    driver, and the Spark evaluations only refine their optimum
    (:func:`rfmml.models._fitting.fit_log_params`): a handful of jobs
    instead of the 30 to 100 of a multistart in Spark. A degenerate
    subsample optimum (beyond the degenerate bounds) falls back to the
    multistart in Spark, and so does an empty sample (None).
    """
    from pyspark.sql import functions as SF

    from rfmml.models._fitting import SUBSAMPLE_ROWS

    if n_rows > SUBSAMPLE_ROWS:
        buckets = SF.lit(n_rows // SUBSAMPLE_ROWS)
        rows = rows.filter(SF.pmod(SF.xxhash64("frequency", "monetary_value"), buckets) == 0)
    sample = rows.toArrow().to_pandas().sort_values(["frequency", "monetary_value"])
    if sample.empty:
        return None
    return F.gamma_gamma_prepare(
        sample["frequency"].to_numpy(dtype=float),
        sample["monetary_value"].to_numpy(dtype=float),
        sample["weights"].to_numpy(dtype=float),
    )


def _customers(total: float) -> int | float:
    """A sum of weights as an int when it is whole (how the messages count customers)."""
    return int(total) if float(total).is_integer() else float(total)


def _warn_correlation(corr: float, stacklevel: int) -> None:
    if np.isfinite(corr) and abs(corr) > CORRELATION_THRESHOLD:
        warnings.warn(
            f"frequency and monetary_value of repeat customers have Pearson correlation "
            f"{corr:.2f} (|r| > {CORRELATION_THRESHOLD}). The Gamma-Gamma model assumes they "
            "are independent; its spend predictions may be biased.",
            FrequencyMonetaryCorrelationWarning,
            stacklevel=stacklevel,
        )


class FrequencyMonetaryCorrelationWarning(UserWarning):
    """Frequency and monetary value are correlated, against the Gamma-Gamma assumption."""


@register_model
class GammaGamma(MaximumLikelihoodModel):
    """Gamma-Gamma model of the average transaction value.

    A customer's transaction values are Gamma(p, nu) with
    ``nu ~ Gamma(q, v)`` across customers (``v`` is the papers' gamma and
    lifetimes' ``v``). Fitted on repeat customers (frequency > 0) by maximum
    likelihood on log-parameters with the analytic gradient, the optimiser's
    stop polished by quasi-Newton steps (the optimum is flat).

    A PySpark summary is fitted in Spark without collecting its customers:
    its distinct ``(frequency, monetary_value)`` rows are counted there and
    collected only when there are at most :data:`GG_COLLECT_ROWS` of them
    (2,000,000; ``fit(sdf, collect_rows=...)``). Above that (spend is
    continuous, so about one row per repeat customer) the likelihood is
    distributed: the rows stay cached in Spark and every evaluation of the
    log-likelihood and its gradient is one Spark job returning one row of
    partial sums per partition, with the pandas fit's per-row sums,
    optimiser, starting points and penalizer, and its Hessian (forward
    differences of the gradient: three more jobs) for ``summary_``. The
    starting points are tried on a collected subsample of about 2,500 rows,
    so Spark only refines that optimum (a handful of jobs). See :meth:`fit`.

    Parameters
    ----------
    penalizer : float, default 0.0
        L2 penalty ``penalizer * (p**2 + q**2 + v**2)`` added to the mean
        negative log-likelihood (lifetimes' ``penalizer_coef``).
    tol, max_iter : float, int, default 1e-10, 1000
        Optimiser tolerance and iteration cap, as for :class:`rfmml.models.BetaGeoNBD`.

    Attributes
    ----------
    params_ : pandas.Series
        Fitted ``p, q, v``.
    log_likelihood_ : float
        Total (unpenalised) log-likelihood of the repeat customers.
    n_customers_ : int or float
        Number (sum of weights) of repeat customers used in the fit.
    n_unique_rows_ : int
        Distinct (frequency, monetary_value) rows.
    n_excluded_ : int
        Repeat customers left out because their repeat spend is 0
        (``zero_spend="exclude"``; 0 otherwise).
    summary_ : pandas.DataFrame
        ``estimate, std_error, lower_95, upper_95`` per parameter.
    convergence_ : dict
        Optimiser diagnostics and the starting point used.
    correlation_ : float
        Pearson correlation of frequency and monetary_value of repeat customers.
    fit_path_ : str
        ``"pandas"`` (a pandas summary), ``"collected"`` (a Spark summary
        whose distinct rows were collected) or ``"distributed"`` (a Spark
        summary fitted with the likelihood evaluated in Spark). Not saved.
    training_fingerprint_, fit_date_
        As for :class:`rfmml.models.BetaGeoNBD`.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "RFM and CLV: using
    iso-value curves for customer base analysis", Journal of Marketing
    Research 42 (4), 415-430.

    Fader, P. S. and Hardie, B. G. S. (2013), "The Gamma-Gamma model of
    monetary value", http://brucehardie.com/notes/025/
    """

    def __init__(
        self,
        penalizer: float = 0.0,
        tol: float = 1e-10,
        max_iter: int = 1000,
        zero_spend: str = "error",
    ):
        self.penalizer = penalizer
        self.zero_spend = zero_spend
        self.tol = tol
        self.max_iter = max_iter

    kind = "GammaGamma"
    param_names = PARAM_NAMES
    fit_columns = ("frequency", "monetary_value")
    saved_attributes = ("correlation_", "n_excluded_")

    def _select_rows(
        self, X: pd.DataFrame, cols: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
        """Repeat customers with positive spend; ``n_excluded_`` and ``correlation_``.

        Raises
        ------
        DataError
            If no customer has a repeat purchase, or a repeat customer has
            monetary_value <= 0 (unless ``zero_spend="exclude"``).
        """
        repeat = cols["frequency"] > 0
        w_all = cols["weights"]  # customers per row: counts below are customers, not rows

        def customers(mask: np.ndarray) -> int | float:
            return _customers(float(w_all[mask].sum()))

        bad = repeat & (cols["monetary_value"] <= 0)
        n_excluded = self._check_spend(
            customers(np.ones(len(w_all), dtype=bool)),
            customers(repeat),
            customers(bad),
            lambda: first_id(X.index, bad),
            bool((repeat & ~bad).any()),
        )
        repeat = repeat & ~bad
        x = cols["frequency"][repeat]
        m = cols["monetary_value"][repeat]
        w = cols["weights"][repeat]
        corr = _weighted_corr(x, m, w)
        _warn_correlation(corr, stacklevel=5)  # the caller of GammaGamma.fit
        rows = {"frequency": x, "monetary_value": m}
        return rows, w, {"n_excluded_": n_excluded, "correlation_": float(corr)}

    def _check_spend(
        self,
        n_all: float,
        n_repeat: float,
        n_bad: float,
        first: Callable[[], Any],
        any_left: bool,
    ) -> int | float:
        """The repeat-customer and zero-spend checks of a fit; return ``n_excluded_``.

        ``n_all``, ``n_repeat`` and ``n_bad`` count customers (all, with
        frequency > 0, and those of them with monetary_value <= 0), ``first``
        returns the first bad customer's id and ``any_left`` says whether a
        repeat customer has positive spend. Shared by the pandas and the
        distributed Spark fit, so that both raise the same errors.
        """
        if self.zero_spend not in ("error", "exclude"):
            raise ValueError(f"zero_spend must be 'error' or 'exclude', got {self.zero_spend!r}.")
        if not n_repeat:
            raise DataError(
                f"GammaGamma.fit needs customers with frequency > 0 (repeat purchases), but all "
                f"{n_all} customers are one-time buyers. "
                "The model learns spend from repeat purchases; use a longer observation period."
            )
        if n_bad and self.zero_spend == "exclude":
            if not any_left:
                raise DataError(
                    "GammaGamma.fit: every repeat customer has monetary_value <= 0; there is "
                    "no spend to model."
                )
            self._check_enough(n_repeat - n_bad, n_all)
            return n_bad
        if n_bad:
            raise DataError(
                f"monetary_value must be > 0 for customers with frequency > 0, but "
                f"{n_bad} of {n_repeat} repeat customers have "
                "monetary_value <= 0 "
                f"(first customer_id={first()!r}). Drop them, net returns out before summarising, "
                "or fit with GammaGamma(zero_spend='exclude')."
            )
        self._check_enough(n_repeat, n_all)
        return 0

    @staticmethod
    def _check_enough(n_usable: float, n_all: float) -> None:
        """Refuse a fit on one repeat customer: no spread of spend between customers to learn."""
        if n_usable < 2:

            def count(n: float) -> str:
                return f"{int(n):,}" if float(n).is_integer() else f"{n:,g}"

            raise DataError(
                "GammaGamma.fit needs at least 2 customers with repeat purchases and spend > 0 "
                "(it learns how spend varies between customers), got "
                f"{count(n_usable)} of {count(n_all)} customers; use a longer observation "
                "period or more customers, or score without a spend model"
            )

    def _prepare(self, rows, weights) -> F.GammaGammaData:
        return F.gamma_gamma_prepare(rows["frequency"], rows["monetary_value"], weights)

    def _log_likelihood(self, theta: np.ndarray, data: F.GammaGammaData):
        # note 025 eq. (3), summed over unique rows with weights, and its gradient
        p, q, v = theta
        if isinstance(data, SparkGammaGammaRows):  # the same sums, per partition in Spark
            from rfmml.models._spark import partition_sums

            s = partition_sums(data.frame, _batch_log_likelihood, 4, float(p), float(q), float(v))
            return float(s[0]), s[1:]
        return F.gamma_gamma_total_log_likelihood_and_gradient(p, q, v, data)

    def _starting_points(self, data: F.GammaGammaData) -> list[np.ndarray]:
        if isinstance(data, SparkGammaGammaRows):
            mean_m = data.mean_m
        else:
            mean_m = float(np.average(data.m, weights=data.weights))
        return [
            np.exp(np.full(3, 0.1)),  # lifetimes' default start (log-parameters 0.1)
            np.array([2.0, 3.0, 2.0 * mean_m]),  # population mean v p / (q - 1) = mean spend
            np.ones(3),
            np.array([10.0, 10.0, 10.0 * mean_m]),
        ]

    def fit(self, X: pd.DataFrame, y=None, *, collect_rows: int | None = None):
        """Fit the model to a customer summary by maximum likelihood.

        Parameters
        ----------
        X : pandas.DataFrame or pyspark.sql.DataFrame
            ``frequency``, ``monetary_value`` and optional ``weights``
            (customers per row). A Spark summary is validated in Spark and
            grouped there into distinct ``(frequency, monetary_value)`` rows
            with their customer counts, which are counted first. When there
            are at most ``collect_rows`` of them, they are collected and fitted
            as a pandas summary (``fit_path_ = "collected"``). Otherwise
            (spend is continuous: about one row per repeat customer) they stay
            in Spark (``fit_path_ = "distributed"``): the repeat customers'
            rows are cached in a few partitions, and every evaluation of the
            log-likelihood and its gradient is one Spark job summing the
            pandas fit's own per-row terms per partition
            (:func:`rfmml.models._formulas.gamma_gamma_total_log_likelihood_and_gradient`
            on each Arrow batch; the partial sums are added on the driver with
            :func:`math.fsum`). The optimiser, starting points, penalizer and
            log-parameters are the pandas fit's, and the Hessian for
            ``summary_`` is the pandas fit's forward differences of the
            gradient (3 more jobs), so parameters agree with the collected fit
            to about 1e-9 relative. The starting points are tried on a
            subsample collected to the driver (every row when there are at
            most 2,500, else the rows of one value-hash bucket, about 2,500),
            and the Spark evaluations refine its optimum by quasi-Newton
            steps seeded with its Hessian; a degenerate subsample optimum
            falls back to the multistart in Spark. Only a few numbers per job
            reach the driver; a warm-started fit takes some 5 to 15 jobs (a
            multistart in Spark 30 to 100), each a pass over the cached rows,
            whose partitions are hashed by value and sorted, so that a refit
            gives the same bits. The zero-spend checks and their errors are the same on both paths.
            On the distributed path ``training_fingerprint_`` is
            ``"spark-xxhash64:..."``, an order-independent digest of the rows
            computed in Spark, not the SHA-256 of the collected rows.
        y : None
            Ignored.
        collect_rows : int, optional
            The largest number of distinct rows a Spark fit collects; default
            :data:`GG_COLLECT_ROWS` (2,000,000). Ignored for pandas input.

        Returns
        -------
        self
        """
        if not is_spark(X):
            super().fit(X, y)
            self.fit_path_ = "pandas"
            return self
        from rfmml.models import _spark as S

        bound = GG_COLLECT_ROWS if collect_rows is None else collect_rows
        if isinstance(bound, bool) or not isinstance(bound, int | np.integer) or bound < 0:
            raise ValueError(f"collect_rows must be an integer >= 0, got {collect_rows!r}.")
        self._clear_fitted()
        self._check_hyper_parameters()
        n = S.check_spark_summary(X, self.fit_columns, what="GammaGamma.fit")
        return self._fit_spark(X, n, bound)

    def _fit_spark(self, X: Any, n: int, bound: int = GG_COLLECT_ROWS):
        """The fit of a checked Spark summary of ``n`` customers (see :meth:`fit`)."""
        from rfmml.models import _spark as S

        grouped = S.distinct_rows(X, self.fit_columns).persist()
        try:
            if grouped.count() <= bound:
                super().fit(S.collect_rows(X, grouped, n))
                self.fit_path_ = "collected"
                return self
            return self._fit_distributed(X, grouped)
        finally:
            grouped.unpersist()

    def _fit_distributed(self, sdf: Any, grouped: Any):
        """The fit on the distinct rows ``grouped`` (a Spark frame), evaluated in Spark."""
        from pyspark.sql import functions as SF

        x, m, w, ident = (
            SF.col(c) for c in ("frequency", "monetary_value", "weights", "customer_id")
        )
        repeat = x > 0
        bad = repeat & (m <= 0)
        counts = grouped.agg(
            SF.sum(w).alias("all"),
            SF.sum(SF.when(repeat, w).otherwise(0.0)).alias("repeat"),
            SF.sum(SF.when(bad, w).otherwise(0.0)).alias("bad"),
            SF.min(SF.when(bad, ident)).alias("first"),
            SF.count_if(repeat & ~bad).alias("left"),
        ).first()
        assert counts is not None  # a global aggregate has one row
        first = counts["first"]
        n_excluded = self._check_spend(
            _customers(counts["all"]),
            _customers(counts["repeat"]),
            _customers(counts["bad"]),
            lambda: first.item() if isinstance(first, np.generic) else first,
            bool(counts["left"]),
        )
        spark = sdf.sparkSession
        partitions = max(int(spark.sparkContext.defaultParallelism), 1)
        rows = (
            grouped.filter(repeat & (m > 0))
            .select("frequency", "monetary_value", "weights")
            # hashed by value and sorted: each partition's rows and order, hence every
            # partial sum and the fit, are the same on every run
            .repartition(partitions, "frequency", "monetary_value")
            .sortWithinPartitions("frequency", "monetary_value")
            .persist()
        )
        try:
            # the rows, customers, mean spend and a digest, in one pass that caches them
            digest = SF.xxhash64(x, m, w).cast("decimal(38,0)")
            s = rows.agg(
                SF.count(SF.lit(1)).alias("rows"),
                SF.sum(w).alias("n"),
                SF.sum(w * x).alias("wx"),
                SF.sum(w * m).alias("wm"),
                SF.sum(digest).alias("digest"),
            ).first()
            assert s is not None
            n_rows, n = int(s["rows"]), float(s["n"])
            mean_x, mean_m = float(s["wx"]) / n, float(s["wm"]) / n
            corr = float("nan")
            if n_rows >= 3:  # as _weighted_corr: centred sums
                xc, mc = x - SF.lit(mean_x), m - SF.lit(mean_m)
                c = rows.agg(
                    SF.sum(w * xc * xc).alias("xx"),
                    SF.sum(w * mc * mc).alias("mm"),
                    SF.sum(w * xc * mc).alias("xm"),
                ).first()
                assert c is not None
                sxx, smm, sxm = float(c["xx"]), float(c["mm"]), float(c["xm"])
                if sxx > 0 and smm > 0:
                    corr = sxm / math.sqrt(sxx * smm)
            _warn_correlation(corr, stacklevel=4)
            data = SparkGammaGammaRows(rows, n, mean_m)
            self._fit_prepared(
                data,
                data,
                _warm_start_rows(rows, n_rows),
                scale=1.0,
                n_unique_rows=n_rows,
                fingerprint=f"spark-xxhash64:{n_rows}:{int(s['digest']) % 2**128:032x}",
                extra={"n_excluded_": n_excluded, "correlation_": corr},
                freq=frame_attrs(sdf).get("freq"),
            )
        finally:
            rows.unpersist()
        self.fit_path_ = "distributed"
        return self

    @property
    def population_mean_spend(self) -> float:
        """Mean transaction value of the population, ``v p / (q - 1)`` (infinite when q <= 1)."""
        p, q, v = self._theta()
        return v * p / (q - 1.0) if q > 1 else float("inf")

    def expected_order_value(self, X: pd.DataFrame) -> pd.Series:
        """Conditional expected order (transaction) value of each customer (note 025, eq. 5).

        Multiply by expected purchases for an expected spend over a horizon.

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency`` and ``monetary_value``.

        Returns
        -------
        pandas.Series
            Aligned to ``X.index``; the population mean for customers with
            frequency 0.
        """
        theta = self._theta()
        if is_spark(X):  # evaluated in Spark, a Spark frame back
            from rfmml.models._spark import spark_predict

            columns = ("frequency", "monetary_value")
            return spark_predict(self, X, "expected_order_value", "expected_order_value", columns)
        c = check_summary(X, ("frequency", "monetary_value"), what="expected_order_value")
        value = expected_order_value_rows(c["frequency"], c["monetary_value"], theta)
        return pd.Series(value, index=X.index, name="expected_order_value")

    def log_likelihood(self, X: pd.DataFrame) -> pd.Series:
        """Per-customer log-likelihood (note 025, eq. 3); NaN for frequency 0.

        Parameters
        ----------
        X : pandas.DataFrame
            As for :meth:`expected_order_value`.

        Returns
        -------
        pandas.Series
            Aligned to ``X.index`` (not multiplied by ``weights``).
        """
        theta = self._theta()
        c = check_summary(X, ("frequency", "monetary_value"), what="log_likelihood")

        def log_likelihood(x: np.ndarray, m: np.ndarray) -> np.ndarray:
            with np.errstate(all="ignore"):
                ll = F.gamma_gamma_log_likelihood(x, m, *theta)
            return np.where(x > 0, ll, np.nan)

        ll = map_rows(log_likelihood, c["frequency"], c["monetary_value"], unique=False)
        return pd.Series(ll, index=X.index, name="log_likelihood")


def expected_order_value_rows(x: np.ndarray, m: np.ndarray, theta) -> np.ndarray:
    """Note 025 eq. (5) per customer, in bounded chunks; ``m`` is ignored where ``x == 0``.

    Parameters
    ----------
    x, m : numpy.ndarray
        Frequencies and mean repeat spends.
    theta : sequence of float
        ``p, q, v``.

    Returns
    -------
    numpy.ndarray
    """

    def value(x: np.ndarray, m: np.ndarray) -> np.ndarray:
        return F.gamma_gamma_expected_order_value(x, np.where(x > 0, m, 0.0), *theta)

    return map_rows(value, x, m, unique=False)


def _weighted_corr(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Weighted Pearson correlation (centred first, then dot products)."""
    if len(x) < 3:
        return float("nan")
    total = w.sum()
    xc = x - (w @ x) / total
    yc = y - (w @ y) / total
    wx = w * xc
    sxx, syy, sxy = wx @ xc, (w * yc) @ yc, wx @ yc
    return float(sxy / np.sqrt(sxx * syy)) if sxx > 0 and syy > 0 else float("nan")
