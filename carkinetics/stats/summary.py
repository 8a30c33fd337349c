"""Cohort summaries of per-patient endpoints, with confidence intervals.

Pure functions on arrays and tables:

- :func:`wilson_interval`, :func:`clopper_pearson_interval`: a proportion's interval;
- :func:`quantile_interval`: a quantile with a distribution-free (order-statistic)
  interval;
- :func:`kaplan_meier`: the Kaplan-Meier estimate with Greenwood log-log bands;
- :func:`summarise`: every endpoint of an :class:`~carkinetics.scenario.endpoints.EndpointSet`
  summarised per arm into one long table.

Missing values (NaN: a failed simulation, a patient outside an endpoint's
``among`` subgroup, a reference event that did not happen) are left out of every
statistic and counted in a ``missing`` row per endpoint and group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INTERVALS = ("wilson", "clopper-pearson")


def _z(level: float) -> float:
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
    z = _z(level)
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
    _z(level)
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
    """Interval of a proportion by ``method`` (one of :data:`INTERVALS`)."""
    if method == "wilson":
        return wilson_interval(k, n, level)
    if method == "clopper-pearson":
        return clopper_pearson_interval(k, n, level)
    raise ValueError(f"`method` must be one of {list(INTERVALS)}, got {method!r}")


def quantile_interval(x, q, level=0.95):
    """A quantile of a sample with a distribution-free confidence interval.

    The estimate is ``numpy.quantile(x, q)`` (linear interpolation). The interval
    runs between two order statistics chosen from the binomial distribution of the
    number of observations below the true quantile, so that its coverage is at
    least ``level`` for any continuous distribution (as
    ``scipy.stats.quantile_test(...).confidence_interval``). A bound is NaN when
    the sample is too small to give one at this level. NaNs in ``x`` are ignored.

    Parameters
    ----------
    x : array_like
        Sample.
    q : float
        Quantile in (0, 1), e.g. 0.5 for the median.
    level : float
        Confidence level.

    Returns
    -------
    (estimate, lower, upper) : tuple of float

    References
    ----------
    Hahn GJ, Meeker WQ (1991), Statistical Intervals, Wiley, section 5.2.
    """
    _z(level)
    if not 0 < q < 1:
        raise ValueError(f"`q` must be in (0, 1), got {q!r}")
    x = np.asarray(x, dtype=float).ravel()
    return _quantile_interval_sorted(np.sort(x[~np.isnan(x)]), q, level)


def _binomial_crossing(n, q, below, threshold):
    """First ``k`` in 0..n where ``bdtr(k, n, q) >= threshold`` (``below``) or ``bdtrc(k, n, q) <= threshold``;
    ``n + 1`` when there is none.

    Both conditions are monotone in ``k`` (the binomial CDF increases, its survival
    function decreases), so the first ``k`` is found by bisection: about log2(n) + 1
    evaluations (17 for n = 10^5) instead of one per ``k`` near ``n q``.
    """
    from scipy import special

    def holds(k):
        return special.bdtr(k, n, q) >= threshold if below else special.bdtrc(k, n, q) <= threshold

    lo, hi = 0, n + 1  # the answer lies in [lo, hi]; hi = n + 1 means "none"
    while lo < hi:
        mid = (lo + hi) // 2
        if holds(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _quantile_interval_sorted(x, q, level):
    """:func:`quantile_interval` of a sorted sample without NaN (no checks)."""
    n = x.size
    if n == 0:
        return np.nan, np.nan, np.nan
    alpha = (1 - level) / 2
    # binomial quantiles of the count below the true quantile, from scipy.special's
    # binomial cdf (scipy.stats would add ~1 s to every command's start-up)
    lo_index = _binomial_crossing(n, q, True, alpha * (1 - 1e-12)) - 1  # ppf(alpha) - 1
    hi_index = _binomial_crossing(n, q, False, alpha * (1 + 1e-12))  # isf(alpha)
    lower = x[lo_index] if lo_index >= 0 else np.nan
    upper = x[hi_index] if hi_index < n else np.nan
    return float(np.quantile(x, q)), float(lower), float(upper)


def mean_interval(x, level=0.95, geometric=False):
    """Mean (or geometric mean) with a Student-t interval; NaNs ignored.

    The geometric mean is computed on log values and needs them all > 0
    (otherwise NaN).

    Returns
    -------
    (estimate, lower, upper) : tuple of float
    """
    _z(level)  # validates level
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


@dataclass(frozen=True)
class KaplanMeier:
    """A Kaplan-Meier survival curve with pointwise confidence bands.

    Arrays are given at the distinct observed times (events and censorings), as
    ``scipy.stats.ecdf`` does; the curve is a right-continuous step function.

    Attributes
    ----------
    time : ndarray
        Distinct observed times (day), increasing.
    survival : ndarray
        Estimated survival just after each time.
    lower, upper : ndarray
        Pointwise bands (Greenwood variance, log-log transform). Where the
        survival is 1 both bands are 1; where it is 0 the lower band is 0 and the
        upper NaN (the log-log transform is undefined there).
    n_at_risk, n_events : ndarray
        Patients at risk just before each time and events at it.
    level : float
        Confidence level of the bands.
    """

    time: np.ndarray
    survival: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n_at_risk: np.ndarray
    n_events: np.ndarray
    level: float = 0.95

    @property
    def n(self) -> int:
        return int(self.n_at_risk[0]) if self.n_at_risk.size else 0

    def at(self, t):
        """Survival and its band at time(s) ``t`` (day).

        Before the first observed time the survival is 1; after the last observed
        time it is unknown (NaN) unless the curve has reached 0.

        Returns
        -------
        (survival, lower, upper) : tuple of float or ndarray
        """
        t = np.asarray(t, dtype=float)
        if self.time.size == 0:
            nan = np.full(t.shape, np.nan)
            return (float(nan), float(nan), float(nan)) if t.ndim == 0 else (nan, nan, nan)
        i = np.searchsorted(self.time, t, side="right") - 1
        before = i < 0
        after = (t > self.time[-1]) & (self.survival[-1] > 0)
        j = np.clip(i, 0, None)
        out = []
        for arr in (self.survival, self.lower, self.upper):
            v = np.where(before, 1.0, arr[j])
            out.append(np.where(after | np.isnan(t), np.nan, v))
        if t.ndim == 0:
            return tuple(float(v) for v in out)
        return tuple(out)

    def quantile(self, p):
        """Time by which a fraction ``p`` of patients has had the event, with its interval.

        The estimate is the first time at which the survival is <= 1 - p; the
        interval runs from the first time the lower band is <= 1 - p to the first
        time the upper band is (Brookmeyer and Crowley 1982, as R's ``survfit``).
        NaN where a curve does not get that low.

        Returns
        -------
        (estimate, lower, upper) : tuple of float
        """
        level = 1.0 - p

        def first(curve):
            hit = np.nonzero(curve <= level + 1e-12)[0]
            return float(self.time[hit[0]]) if hit.size else np.nan

        return first(self.survival), first(self.lower), first(np.nan_to_num(self.upper, nan=0.0))

    def median(self):
        """Median survival time with its interval, see :meth:`quantile`."""
        return self.quantile(0.5)


def kaplan_meier(time, event, level=0.95) -> KaplanMeier:
    """Kaplan-Meier estimate of the survival function from right-censored data.

    Parameters
    ----------
    time : array_like, shape (n,)
        Event or censoring times (day). NaN entries are left out.
    event : array_like, shape (n,)
        1 (or True) for an event, 0 for censoring. NaN entries are left out.
    level : float
        Confidence level of the pointwise bands.

    Returns
    -------
    KaplanMeier

    References
    ----------
    Kaplan EL, Meier P (1958), J Am Stat Assoc 53:457-481, doi:10.1080/01621459.1958.10501452;
    the log-log bands as ``scipy.stats.ecdf(...).sf.confidence_interval(method="log-log")``.
    """
    z = _z(level)
    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event, dtype=float).ravel()
    if time.shape != event.shape:
        raise ValueError(f"`time` and `event` differ in length: {time.size} and {event.size}")
    ok = ~np.isnan(time) & ~np.isnan(event)
    time, died = time[ok], event[ok] != 0
    order = np.argsort(time, kind="stable")
    time, died = time[order], died[order]
    uniq, first, counts = np.unique(time, return_index=True, return_counts=True)
    n_at_risk = (time.size - first).astype(float)
    cum_deaths = np.concatenate([[0], np.cumsum(died)])
    n_events = (cum_deaths[first + counts] - cum_deaths[first]).astype(float)
    with np.errstate(all="ignore"):
        survival = np.cumprod((n_at_risk - n_events) / n_at_risk)
        greenwood = np.cumsum(n_events / (n_at_risk * (n_at_risk - n_events)))
        se = np.sqrt(greenwood) / np.abs(np.log(survival))
        loglog = np.log(-np.log(survival))
        lower = np.exp(-np.exp(loglog + z * se))
        upper = np.exp(-np.exp(loglog - z * se))
    one = survival >= 1.0
    lower = np.where(one, 1.0, lower)
    upper = np.where(one, 1.0, upper)
    zero = survival <= 0.0
    lower = np.where(zero, 0.0, lower)
    upper = np.where(zero, np.nan, upper)
    return KaplanMeier(time=uniq, survival=survival, lower=lower, upper=upper, n_at_risk=n_at_risk,
                       n_events=n_events, level=level)


# ----------------------------------------------------------------------------------------
# cohort table
# ----------------------------------------------------------------------------------------

#: Quantiles reported for continuous endpoints (statistic name -> q).
QUANTILES = {"q05": 0.05, "q25": 0.25, "median": 0.5, "q75": 0.75, "q95": 0.95}
SUMMARY_COLUMNS = ["group", "endpoint", "statistic", "value", "lower", "upper", "n"]


def _fmt_day(t: float) -> str:
    return f"{t:g}"


def summarise(patients, endpoint_set, by="arm", level=0.95, interval="wilson"):
    """Summarise every endpoint per group (arm) into one long table.

    Statistics by kind of endpoint:

    * binary: ``proportion`` (Wilson or Clopper-Pearson interval);
    * continuous: ``median``, ``q05``, ``q25``, ``q75``, ``q95`` (distribution-free
      intervals, :func:`quantile_interval`), ``mean`` (t interval) and ``geomean``
      (t interval on logs; NaN unless every value is > 0);
    * time-to-event: ``km_median`` (Brookmeyer-Crowley interval), ``km_at_<day>``
      at each of the endpoint's ``report_at`` days (log-log band), and ``events``
      (number of events, value only);
    * every endpoint: ``missing`` (number of NaN values, value only).

    Parameters
    ----------
    patients : pandas.DataFrame
        One row per patient with the endpoint set's columns (and the ``by`` column).
    endpoint_set : EndpointSet
        Gives the columns, their kinds and the Kaplan-Meier report days.
    by : str or None
        Grouping column (default "arm"); None, or a column the table lacks, gives
        one group "all".
    level : float
        Confidence level of every interval.
    interval : {"wilson", "clopper-pearson"}
        Interval for proportions.

    Returns
    -------
    pandas.DataFrame
        Columns ``group, endpoint, statistic, value, lower, upper, n``, where ``n``
        is the number of patients with a value (non-missing) in the group.
    """
    import pandas as pd

    if interval not in INTERVALS:
        raise ValueError(f"`interval` must be one of {list(INTERVALS)}, got {interval!r}")
    _z(level)
    if by is not None and by in patients.columns:
        groups = [(str(g), sub) for g, sub in patients.groupby(by, sort=False)]
    else:
        groups = [("all", patients)]
    rows = []
    for group, sub in groups:
        for col, kind in endpoint_set.kinds.items():
            if kind == "event_flag" or col not in sub.columns:
                continue
            x = sub[col].to_numpy(dtype=float)
            if kind == "time":
                flag = sub[f"{col}_event"].to_numpy(dtype=float)
                ok = ~np.isnan(x) & ~np.isnan(flag)
            else:
                ok = ~np.isnan(x)
            n = int(ok.sum())
            n_missing = int(x.size - n)

            def add(stat, value, lower=np.nan, upper=np.nan, count=n):
                rows.append((group, col, stat, float(value), float(lower), float(upper), int(count)))

            if kind == "binary":
                k = int((x[ok] != 0).sum())
                lo, hi = proportion_interval(k, n, level, interval)
                add("proportion", k / n if n else np.nan, lo, hi)
            elif kind == "continuous":
                xs = np.sort(x[ok])  # once for every quantile
                for stat, q in QUANTILES.items():
                    add(stat, *_quantile_interval_sorted(xs, q, level))
                add("mean", *mean_interval(x[ok], level))
                add("geomean", *mean_interval(x[ok], level, geometric=True))
            elif kind == "time":
                km = kaplan_meier(x[ok], flag[ok], level)
                add("km_median", *km.median())
                for day in endpoint_set.report_at.get(col, ()):
                    add(f"km_at_{_fmt_day(day)}", *km.at(day))
                add("events", float((flag[ok] == 1).sum()))
            add("missing", n_missing, count=x.size)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
