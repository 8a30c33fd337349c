"""Confidence intervals of a proportion and of a mean.

- :func:`wilson_interval`, :func:`clopper_pearson_interval`, :func:`proportion_interval`:
  a binomial proportion (:data:`INTERVALS` lists the methods);
- :func:`mean_interval`: a mean or geometric mean with a Student-t interval.

Every interval of a mean in carkinetics is the Student-t interval of :func:`mean_interval`
(on log values for a geometric mean), at every sample size: with ``n - 1`` degrees of freedom
it is slightly wider than the normal (z = 1.96) interval for small samples and the same
for large ones (the quantile is 1.9623 at n = 1000 against 1.9600). Validation
(:func:`carkinetics.studies.validate.cohort_statistic`) uses it too.
"""

from __future__ import annotations

import numpy as np

INTERVALS = ("wilson", "clopper-pearson")


def two_sided_z(level: float) -> float:
    """The standard-normal quantile of a two-sided interval at confidence ``level``.

    Parameters
    ----------
    level : float
        Confidence level in (0, 1).

    Returns
    -------
    float
        ``z`` with ``P(|Z| <= z) = level`` (1.959964 for 0.95).

    Raises
    ------
    ValueError
        If ``level`` is not in (0, 1).
    """
    if not 0 < level < 1:
        raise ValueError(f"`level` must be in (0, 1), got {level!r}")
    # the standard library's inverse normal (Wichura's AS241, double precision): scipy.stats is
    # imported only where needed, as it costs ~0.7 s at start-up
    from statistics import NormalDist

    return float(NormalDist().inv_cdf(0.5 + level / 2))


def wilson_interval(k, n, level=0.95):
    """Wilson score interval of a binomial proportion (no continuity correction).

    Parameters
    ----------
    k : int or array_like
        Number of successes.
    n : int or array_like
        Number of trials; ``n = 0`` gives NaN.
    level : float
        Confidence level.

    Returns
    -------
    (lower, upper) : tuple of float or ndarray

    References
    ----------
    Wilson EB (1927), J Am Stat Assoc 22:209-212, doi:10.1080/01621459.1927.10502953.

    Examples
    --------
    >>> lo, hi = wilson_interval(7, 20)
    >>> round(lo, 4), round(hi, 4)
    (0.1812, 0.5671)
    """
    z = two_sided_z(level)
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(all="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        lower = np.where(k == 0, 0.0, centre - half)
        upper = np.where(k == n, 1.0, centre + half)
    lower = np.where(n > 0, np.clip(lower, 0.0, 1.0), np.nan)
    upper = np.where(n > 0, np.clip(upper, 0.0, 1.0), np.nan)
    return (float(lower), float(upper)) if lower.ndim == 0 else (lower, upper)


def clopper_pearson_interval(k, n, level=0.95):
    """Clopper-Pearson ("exact") interval of a binomial proportion.

    Parameters
    ----------
    k, n : int or array_like
        Successes and trials; ``n = 0`` gives NaN.
    level : float
        Confidence level.

    Returns
    -------
    (lower, upper) : tuple of float or ndarray

    References
    ----------
    Clopper CJ, Pearson ES (1934), Biometrika 26:404-413, doi:10.1093/biomet/26.4.404.
    """
    two_sided_z(level)
    alpha = 1 - level
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(all="ignore"):
        from scipy import stats

        lower = np.where(k > 0, stats.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        upper = np.where(k < n, stats.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    lower = np.where(n > 0, lower, np.nan)
    upper = np.where(n > 0, upper, np.nan)
    return (float(lower), float(upper)) if lower.ndim == 0 else (lower, upper)


def proportion_interval(k, n, level=0.95, method="wilson"):
    """Interval of a proportion by ``method`` (one of :data:`INTERVALS`).

    Parameters
    ----------
    k, n : int or array_like
        Successes and trials.
    level : float
        Confidence level.
    method : {"wilson", "clopper-pearson"}

    Returns
    -------
    (lower, upper) : tuple of float or ndarray
    """
    if method == "wilson":
        return wilson_interval(k, n, level)
    if method == "clopper-pearson":
        return clopper_pearson_interval(k, n, level)
    raise ValueError(f"`method` must be one of {list(INTERVALS)}, got {method!r}")


def mean_interval(x, level=0.95, geometric=False):
    """Mean (or geometric mean) with a Student-t interval; NaNs ignored.

    The geometric mean is computed on log values and needs them all > 0
    (otherwise NaN).

    Parameters
    ----------
    x : array_like
        Sample.
    level : float
        Confidence level.
    geometric : bool
        The geometric mean (exp of the mean of the logs, and the interval on logs).

    Returns
    -------
    (estimate, lower, upper) : tuple of float
    """
    two_sided_z(level)  # validates level
    x = np.asarray(x, dtype=float).ravel()
    x = x[~np.isnan(x)]
    if x.size == 0 or (geometric and not np.all(x > 0)):
        return np.nan, np.nan, np.nan
    y = np.log(x) if geometric else x
    m = float(y.mean())
    if y.size < 2:
        lo = hi = np.nan
    else:
        from scipy import special  # the t quantile as scipy.stats.t.ppf computes it (stdtrit)

        half = float(special.stdtrit(y.size - 1, 0.5 + level / 2) * y.std(ddof=1) / np.sqrt(y.size))
        lo, hi = m - half, m + half
    if geometric:
        return float(np.exp(m)), float(np.exp(lo)), float(np.exp(hi))
    return m, lo, hi
