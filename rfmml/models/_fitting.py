"""Maximum-likelihood machinery shared by the BG/NBD and Gamma-Gamma estimators.

Minimises a mean negative log-likelihood over log-parameters with its
analytic gradient (L-BFGS-B), trying several starting points, and computes
the Hessian once at the optimum by central differences of the analytic
gradient for standard errors (delta method back to the natural scale).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.stats import norm
from threadpoolctl import threadpool_limits

from rfmml.errors import ConvergenceError

__all__ = ["FitOutcome", "minimize_multistart", "log_space_hessian", "parameter_table"]

#: accept an optimiser stop when the largest gradient entry of the mean
#: objective is below this, whatever the optimiser's own status says (line
#: searches often report "ABNORMAL" at the optimum once f stops changing).
GRADIENT_ACCEPT = 1e-5


@dataclass
class FitOutcome:
    """Result of :func:`minimize_multistart`."""

    log_params: np.ndarray
    objective: float
    n_iter: int
    message: str
    success: bool
    start: list[float]
    attempts: list[dict] = field(default_factory=list)


def minimize_multistart(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
    starts: Sequence[np.ndarray],
    *,
    model: str,
    tol: float,
    max_iter: int,
) -> FitOutcome:
    """Minimise ``objective`` from each start in turn until one converges.

    Parameters
    ----------
    objective : callable
        ``log_params -> (value, gradient)`` of the mean penalised negative
        log-likelihood.
    starts : sequence of numpy.ndarray
        Starting log-parameters, tried in order.
    model : str
        Model name for messages.
    tol : float
        Gradient tolerance (``gtol``) passed to L-BFGS-B.
    max_iter : int
        Iteration cap per start.

    Returns
    -------
    FitOutcome

    Raises
    ------
    ConvergenceError
        If no start reaches a finite optimum with a small gradient.
    """
    attempts: list[dict] = []
    with threadpool_limits(limits=1):
        for start in starts:
            start = np.asarray(start, dtype=float)
            try:
                with np.errstate(all="ignore"):
                    res = minimize(
                        objective,
                        start,
                        jac=True,
                        method="L-BFGS-B",
                        options={"gtol": tol, "ftol": 1e-15, "maxiter": max_iter, "maxls": 50},
                    )
            except (FloatingPointError, ValueError, OverflowError) as exc:
                attempts.append({"start": start.tolist(), "message": repr(exc)})
                continue
            grad_max = float(np.max(np.abs(res.jac))) if np.all(np.isfinite(res.jac)) else np.inf
            ok = (
                np.all(np.isfinite(res.x))
                and np.all(np.isfinite(np.exp(res.x)))
                and np.isfinite(res.fun)
                and (res.success or grad_max < GRADIENT_ACCEPT)
                and grad_max < 1e3 * GRADIENT_ACCEPT
            )
            message = res.message if isinstance(res.message, str) else str(res.message)
            attempts.append(
                {
                    "start": start.tolist(),
                    "message": message,
                    "n_iter": int(res.nit),
                    "objective": float(res.fun),
                    "max_abs_gradient": grad_max,
                }
            )
            if ok:
                return FitOutcome(
                    log_params=np.asarray(res.x, dtype=float),
                    objective=float(res.fun),
                    n_iter=int(res.nit),
                    message=message,
                    success=bool(res.success),
                    start=start.tolist(),
                    attempts=attempts,
                )
    tried = "; ".join(
        f"start exp({np.round(a['start'], 3).tolist()}): {a['message']}" for a in attempts
    )
    raise ConvergenceError(
        f"{model} fit did not converge from any of {len(attempts)} starting points ({tried}). "
        "Check that the summary is in a sensible time unit (weeks rather than seconds), pass "
        "initial_params close to the expected values, or add a small penalizer (e.g. 0.001)."
    )


def log_space_hessian(
    gradient: Callable[[np.ndarray], np.ndarray], log_params: np.ndarray, step: float = 1e-4
) -> np.ndarray:
    """Hessian by central differences of an analytic gradient, symmetrised.

    With an exact gradient the truncation error is ``O(step ** 2)``, about
    1e-8 relative for log-parameters of order 1.

    Returns
    -------
    numpy.ndarray
    """
    k = len(log_params)
    hess = np.empty((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = step
        hess[i] = (gradient(log_params + e) - gradient(log_params - e)) / (2.0 * step)
    return 0.5 * (hess + hess.T)


def parameter_table(
    names: Sequence[str], params: np.ndarray, hessian_log: np.ndarray
) -> tuple[pd.DataFrame, bool]:
    """Estimates, standard errors and Wald 95% intervals.

    The covariance of the log-parameters is the inverse of the Hessian of the
    total negative log-likelihood; the delta method gives
    ``Cov(theta) = diag(theta) H^-1 diag(theta)`` on the natural scale.

    Returns
    -------
    table : pandas.DataFrame
        Columns ``estimate``, ``std_error``, ``lower_95``, ``upper_95``.
    ok : bool
        False when the Hessian is not positive definite (standard errors NaN).
    """
    params = np.asarray(params, dtype=float)
    ok = True
    try:
        np.linalg.cholesky(hessian_log)
        cov_log = np.linalg.inv(hessian_log)
        se = params * np.sqrt(np.diag(cov_log))
    except np.linalg.LinAlgError:
        ok = False
        se = np.full(len(params), np.nan)
    z = norm.ppf(0.975)
    table = pd.DataFrame(
        {
            "estimate": params,
            "std_error": se,
            "lower_95": params - z * se,
            "upper_95": params + z * se,
        },
        index=pd.Index(list(names), name="parameter"),
    )
    return table, ok
