"""BG/NBD and MBG/NBD count probabilities of a new customer on the purchase ridge.

Usage::

    PYTHONPATH=/path/to/tree python benchmarks/bench_bgnbd_ridge_counts.py

On the ridge ``r, alpha = k, k / 0.03`` (``a, b`` = CDNOW-like 0.79, 2.43), ``k = 1e6, 1e9,
1e12``, the tree's ``bgnbd_probability_of_purchases(n, t)`` and
``mbgnbd_probability_of_purchases(n, t)``, ``n = 0..40``, ``t = 10, 52``, are compared with
references at the same finite parameters in 150-digit decimal arithmetic (FHL05 eq. 8 and its
MBG/NBD counterpart, gamma and beta ratios as finite products, ``(alpha / (alpha + t)) ** r``
as ``exp(-r ln(1 + t / alpha))``). The references at ``k = 1e12`` are checked against the limit
(Poisson purchases at ``lambda = r / alpha`` with the geometric dropout), whose distance is
``O(1 / k)``. Printed: the largest relative error over the ``n`` where ``P >= 1e-4`` and
where ``P >= 1e-12`` (in the far tail ``1 - sum_(j<n) NB(j; t)`` is a difference of numbers
near 1 in both trees: absolute errors ~1e-17).
"""

from __future__ import annotations

import math
import os
from decimal import Decimal, getcontext

import numpy as np

from rfmml.models._formulas import bgnbd_probability_of_purchases
from rfmml.models._formulas_mbgnbd import mbgnbd_probability_of_purchases

getcontext().prec = 150
A, B, LAM = 0.79, 2.43, 0.03
NS = np.arange(41)


def reference(n_max: int, t: float, r: float, alpha: float, a: float, b: float, shift: int):
    """``P(X(t) = n)``, ``n = 0..n_max``, in decimal arithmetic (``shift = 1``: MBG/NBD)."""
    r_, al, t_, a_, b_ = (Decimal(v) for v in (r, alpha, t, a, b))
    p0 = (-r_ * (1 + t_ / al).ln()).exp()
    z = t_ / (al + t_)
    nb, tail, out = p0, Decimal(1), []
    for n in range(n_max + 1):
        # B(a, b + n + shift) / B(a, b) and B(a + 1, b + n - 1 + shift) / B(a, b)
        stay = Decimal(1)
        for j in range(n + shift):
            stay *= (b_ + j) / (a_ + b_ + j)
        drop = stay * a_ / (b_ + n - 1 + shift) if n + shift > 0 else Decimal(0)
        out.append(stay * nb + drop * tail)
        tail -= nb
        nb *= (r_ + n) / (n + 1) * z
    return np.array([float(v) for v in out])


def poisson_limit(n_max: int, t: float, lam: float, a: float, b: float, shift: int):
    """The ``r, alpha -> inf`` limit: ``NB(j; t) -> Poisson(j; lam t)``, in decimals."""
    m = Decimal(lam) * Decimal(t)
    return reference_from_counts(n_max, [(-m).exp() * m**j / math.factorial(j)
                                         for j in range(n_max + 1)], a, b, shift)  # fmt: skip


def reference_from_counts(n_max, counts, a, b, shift):
    a_, b_ = Decimal(a), Decimal(b)
    tail, out = Decimal(1), []
    for n in range(n_max + 1):
        stay = Decimal(1)
        for j in range(n + shift):
            stay *= (b_ + j) / (a_ + b_ + j)
        drop = stay * a_ / (b_ + n - 1 + shift) if n + shift > 0 else Decimal(0)
        out.append(stay * counts[n] + drop * tail)
        tail -= counts[n]
    return np.array([float(v) for v in out])


def main() -> None:
    print(f"tree {os.environ.get('PYTHONPATH', '.')}; load {os.getloadavg()[0]:.2f}")
    for name, fn, shift in (("BG/NBD", bgnbd_probability_of_purchases, 0),
                            ("MBG/NBD", mbgnbd_probability_of_purchases, 1)):  # fmt: skip
        for k in (1e6, 1e9, 1e12):
            r, alpha = k, k / LAM
            worst, big = [], []
            for t in (10.0, 52.0):
                ref = reference(40, t, r, alpha, A, B, shift)
                got = fn(NS, t, r, alpha, A, B)
                keep = ref >= 1e-12
                err = np.abs(got / ref - 1.0)
                worst.append(float(np.max(err[keep])))
                big.append(float(np.max(err[ref >= 1e-4])))
                if k == 1e12:
                    lim = poisson_limit(40, t, LAM, A, B, shift)
                    dist = float(np.max(np.abs(ref[keep] / lim[keep] - 1.0)))
                    print(f"  {name} t={t:g}: reference vs Poisson limit {dist:.1e}")
            print(f"{name} k={k:.0e}: max relative error {max(big):.1e} (P >= 1e-4), "
                  f"{max(worst):.1e} (P >= 1e-12)")  # fmt: skip


if __name__ == "__main__":
    main()
