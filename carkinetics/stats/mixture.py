"""Intervals that combine parameter uncertainty with Monte Carlo error: quantiles of a normal mixture.

With ``K`` parameter draws, each simulated with a virtual cohort, draw ``k`` estimates an
outcome as ``v_k`` with Monte Carlo standard error ``s_k``. The estimate of the outcome under
parameter uncertainty is then distributed as the equal-weight mixture
``(1/K) sum_k N(v_k, s_k^2)``: its quantiles give an interval that holds both sources of
uncertainty. With one draw it is the Monte Carlo interval; with ``s_k = 0`` it is the
spread of the draws alone (the quantiles of their empirical distribution).

A Monte Carlo interval that is not symmetric (Wilson for a proportion, log-log for a
Kaplan-Meier estimate) is kept as it is: each component is then a *split* normal, with the
standard deviation of its lower half below ``v_k`` and of its upper half above, so that its
2.5 and 97.5 % quantiles are the interval's ends. The mixture's quantiles lie between the
components' (a probability's interval stays inside [0, 1]).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

#: z of a two-sided 95 % normal interval: the standard error of an estimate with a reported
#: 95 % interval (lower, upper) is taken as (upper - lower) / (2 Z95).
Z95 = 1.959963984540054


def mixture_quantiles(values, ses, q, ses_upper=None, iterations=60):
    """Quantiles of the equal-weight (split-)normal mixture of each row's components.

    Parameters
    ----------
    values : array_like, shape (G, K)
        Component means (NaN: component absent).
    ses : array_like, shape (G, K)
        Component standard deviations (NaN or <= 0: a point mass at the mean); with
        ``ses_upper``, those of the lower halves.
    q : array_like of float
        Probabilities in (0, 1).
    ses_upper : array_like, shape (G, K), optional
        Standard deviations of the upper halves (split normals); default: ``ses``.
    iterations : int
        Bisection steps (each halves the bracket: 60 is exact to double precision).

    Returns
    -------
    numpy.ndarray, shape (G, len(q))
        NaN for rows without a component.
    """
    v = np.atleast_2d(np.asarray(values, float))
    s = np.atleast_2d(np.asarray(ses, float))
    su = s if ses_upper is None else np.atleast_2d(np.asarray(ses_upper, float))
    if v.shape != s.shape or v.shape != su.shape:
        raise ValueError(f"values and ses differ in shape: {v.shape} vs {s.shape} / {su.shape}")
    present = np.isfinite(v)
    s = np.where(present & np.isfinite(s) & (s > 0), s, 0.0)
    su = np.where(present & np.isfinite(su) & (su > 0), su, 0.0)
    k = present.sum(axis=1)
    vv = np.where(present, v, 0.0)
    lo = np.where(present, v - 9 * s, np.inf).min(axis=1)
    hi = np.where(present, v + 9 * su, -np.inf).max(axis=1)
    qs = np.atleast_1d(np.asarray(q, float))
    out = np.full((v.shape[0], len(qs)), np.nan)
    rows = k > 0
    if not rows.any():
        return out
    vv, s, su, present, k, lo, hi = vv[rows], s[rows], su[rows], present[rows], k[rows], lo[rows], hi[rows]

    def cdf(x):  # mixture CDF at x (one x per row)
        z = (x[:, None] - vv)
        side = np.where(z < 0, s, su)  # the half of each split normal that x falls in
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.where(side > 0, ndtr(z / np.where(side > 0, side, 1.0)), (z >= 0).astype(float))
        return np.where(present, c, 0.0).sum(axis=1) / k

    res = np.empty((len(k), len(qs)))
    for j, p in enumerate(qs):
        a, b = lo.copy(), hi.copy()
        for _ in range(iterations):
            m = 0.5 * (a + b)
            below = cdf(m) < p
            a = np.where(below, m, a)
            b = np.where(below, b, m)
        # a quantile at a point mass (a draw without Monte Carlo error on that side) is its mean:
        # snap the bisection's last bracket onto it
        near = present & (np.abs(b[:, None] - vv) <= 1e-9 * (1.0 + np.abs(vv)))
        res[:, j] = np.where(near.any(axis=1), np.where(near, vv, np.inf).min(axis=1), b)
    out[rows] = res
    return out
