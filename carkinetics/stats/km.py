"""The Kaplan-Meier estimate of a survival curve, with Greenwood log-log bands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from carkinetics.stats.intervals import two_sided_z

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


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

    def at(self, t: ArrayLike) -> tuple[float, float, float] | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Survival and its band at time(s) ``t`` (day).

        Before the first observed time the survival is 1; after the last observed
        time it is unknown (NaN) unless the curve has reached 0.

        Returns
        -------
        (survival, lower, upper) : tuple of float or ndarray
        """
        return step_values(self.time, (self.survival, self.lower, self.upper), t, 1.0, self.survival)

    def quantile(self, p: float) -> tuple[float, float, float]:
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

    def median(self) -> tuple[float, float, float]:
        """Median survival time with its interval, see :meth:`quantile`."""
        return self.quantile(0.5)


def step_values(times, curves, t, start, survival):
    """Right-continuous step curves read at time(s) ``t``.

    Parameters
    ----------
    times : ndarray, shape (m,)
        The curves' step times, increasing.
    curves : sequence of ndarray, shape (m,)
        Values from each step time on.
    t : float or array_like
        Day(s) to read at.
    start : float
        The value before the first step time (1 for survival, 0 for an incidence).
    survival : ndarray, shape (m,)
        All-cause survival at the step times: after the last step time the values are
        unknown (NaN) unless it has reached 0 (then no curve can change any more).

    Returns
    -------
    tuple of float or ndarray
        One per curve, the shape of ``t``.
    """
    t = np.asarray(t, dtype=float)
    if times.size == 0:
        nan = np.full(t.shape, np.nan)
        return tuple(float(nan) if t.ndim == 0 else nan for _ in curves)
    i = np.searchsorted(times, t, side="right") - 1
    before = i < 0
    after = (t > times[-1]) & (survival[-1] > 0)
    j = np.clip(i, 0, None)
    out = [np.where(after | np.isnan(t), np.nan, np.where(before, start, arr[j])) for arr in curves]
    return tuple(float(v) for v in out) if t.ndim == 0 else tuple(out)


def kaplan_meier(time: ArrayLike, event: ArrayLike, level: float = 0.95) -> KaplanMeier:
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
    z = two_sided_z(level)
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
