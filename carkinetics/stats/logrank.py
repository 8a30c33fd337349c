"""The log-rank test between groups of right-censored times, and the O/E hazard ratio of two groups.

:func:`logrank` compares the survival curves of two or more groups (Mantel 1966; Peto and
Peto 1972): at each distinct event time the events are shared out among the groups in
proportion to their numbers at risk (the expected counts ``E``), and the observed minus
expected counts, weighed by their hypergeometric covariance, give a chi-square statistic
with ``groups - 1`` degrees of freedom. :func:`hazard_ratio` estimates the hazard ratio of
two groups without a Cox model, from the same counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from carkinetics.stats.intervals import two_sided_z


@dataclass(frozen=True)
class LogRank:
    """The log-rank test of equal survival between groups.

    Attributes
    ----------
    groups : tuple
        The group labels, in sorted order (as ``numpy.unique``).
    observed, expected : ndarray, shape (k,)
        Observed and expected (under equal hazards) events per group.
    covariance : ndarray, shape (k, k)
        Hypergeometric covariance of ``observed - expected``.
    statistic : float
        Chi-square statistic.
    df : int
        Degrees of freedom, ``k - 1``.
    pvalue : float
        Upper tail of the chi-square distribution at ``statistic``.
    """

    groups: tuple
    observed: np.ndarray
    expected: np.ndarray
    covariance: np.ndarray
    statistic: float
    df: int
    pvalue: float


@dataclass(frozen=True)
class HazardRatio:
    """Hazard ratio of a group against a reference group, from observed and expected events.

    Attributes
    ----------
    estimate, lower, upper : float
        The O/E ratio ``(O1 / E1) / (O0 / E0)`` and its interval, ``log`` estimate
        ``+- z * sqrt(1 / E1 + 1 / E0)``.
    peto, peto_lower, peto_upper : float
        The Peto (one-step, Mantel-Haenszel variance) estimate ``exp((O1 - E1) / V)`` and its
        interval ``exp((O1 - E1) / V +- z / sqrt(V))``.
    group, reference :
        The group labels (group 1 over group 0).
    level : float
        Confidence level of the intervals.
    """

    estimate: float
    lower: float
    upper: float
    peto: float
    peto_lower: float
    peto_upper: float
    group: object
    reference: object
    level: float = 0.95


def _clean(time, event, group):
    """The rows with a time and an event flag (NaN rows left out), as arrays."""
    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event, dtype=float).ravel()
    group = np.asarray(group).ravel()
    if not time.shape == event.shape == group.shape:
        raise ValueError(f"`time`, `event` and `group` differ in length: {time.size}, {event.size}, {group.size}")
    ok = ~np.isnan(time) & ~np.isnan(event)
    return time[ok], event[ok] != 0, group[ok]


def _counts(time, died, group):
    """Groups, and per distinct event time the numbers at risk and events per group, shape (k, m)."""
    labels, g = np.unique(group, return_inverse=True)
    event_times = np.unique(time[died])
    k, m = labels.size, event_times.size
    at_risk = np.zeros((k, m))
    events = np.zeros((k, m))
    for j in range(k):
        t = np.sort(time[g == j])
        at_risk[j] = t.size - np.searchsorted(t, event_times, side="left")
        te = np.sort(time[(g == j) & died])
        events[j] = np.searchsorted(te, event_times, side="right") - np.searchsorted(te, event_times, side="left")
    return tuple(labels.tolist()), at_risk, events


def _observed_expected(at_risk, events):
    """Observed and expected events per group and the covariance of their difference."""
    n = at_risk.sum(axis=0)
    d = events.sum(axis=0)
    share = at_risk / n
    expected = (d * share).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(n > 1, d * (n - d) / (n - 1), 0.0)
    cov = np.diag((factor * share).sum(axis=1)) - (factor * share) @ share.T
    return events.sum(axis=1), expected, cov


def logrank(time, event, group) -> LogRank:
    """The log-rank test of equal survival in the groups of ``group``.

    Parameters
    ----------
    time : array_like, shape (n,)
        Event or censoring times. NaN entries are left out.
    event : array_like, shape (n,)
        1 (or True) for an event, 0 for censoring. NaN entries are left out.
    group : array_like, shape (n,)
        Group label of each patient (at least two distinct labels).

    Returns
    -------
    LogRank

    Raises
    ------
    ValueError
        If the inputs differ in length or there are fewer than two groups.

    Notes
    -----
    The statistic is ``(O - E)' V^- (O - E)`` over the first ``k - 1`` groups; for two
    groups ``(O1 - E1)^2 / V``, the square of the z statistic of
    ``scipy.stats.logrank``. Without any event the statistic is 0 and the p-value 1.
    """
    from scipy import special

    time, died, group = _clean(time, event, group)
    labels, at_risk, events = _counts(time, died, group)
    if len(labels) < 2:
        raise ValueError(f"the log-rank test needs at least two groups, got {len(labels)}")
    observed, expected, cov = _observed_expected(at_risk, events)
    diff = (observed - expected)[:-1]
    v = cov[:-1, :-1]
    statistic = float(diff @ np.linalg.pinv(v) @ diff) if np.any(v) else 0.0
    df = len(labels) - 1
    return LogRank(groups=labels, observed=observed, expected=expected, covariance=cov, statistic=statistic,
                   df=df, pvalue=float(special.chdtrc(df, statistic)))


def hazard_ratio(time, event, group, reference=None, level=0.95) -> HazardRatio:
    """Hazard ratio of two groups from the log-rank counts (no Cox model).

    Parameters
    ----------
    time, event, group : array_like, shape (n,)
        As for :func:`logrank`; ``group`` has exactly two labels.
    reference : optional
        The label of the reference group (the denominator); default the first in sorted order.
    level : float
        Confidence level of the intervals.

    Returns
    -------
    HazardRatio
        NaN where a group has no expected events.

    Raises
    ------
    ValueError
        If there are not exactly two groups or ``reference`` is not one of them.

    References
    ----------
    Altman DG, Machin D, Bryant TN, Gardner MJ (2000), Statistics with Confidence, 2nd ed., ch. 9
    (the O/E ratio); Yusuf S, Peto R et al. (1985), Prog Cardiovasc Dis 27:335-371 (the one-step estimate).
    """
    z = two_sided_z(level)
    time, died, group = _clean(time, event, group)
    labels, at_risk, events = _counts(time, died, group)
    if len(labels) != 2:
        raise ValueError(f"a hazard ratio needs exactly two groups, got {len(labels)}: {list(labels)}")
    if reference is None:
        reference = labels[0]
    if reference not in labels:
        raise ValueError(f"`reference` {reference!r} is not a group; the groups are {list(labels)}")
    r = labels.index(reference)
    observed, expected, cov = _observed_expected(at_risk, events)
    o0, e0, o1, e1, v = observed[r], expected[r], observed[1 - r], expected[1 - r], cov[1 - r, 1 - r]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log((o1 / e1) / (o0 / e0))
        se = np.sqrt(1.0 / e1 + 1.0 / e0)
        log_peto = (o1 - e1) / v
        se_peto = 1.0 / np.sqrt(v)
    return HazardRatio(estimate=float(np.exp(log_ratio)), lower=float(np.exp(log_ratio - z * se)),
                       upper=float(np.exp(log_ratio + z * se)), peto=float(np.exp(log_peto)),
                       peto_lower=float(np.exp(log_peto - z * se_peto)),
                       peto_upper=float(np.exp(log_peto + z * se_peto)),
                       group=labels[1 - r], reference=reference, level=level)
