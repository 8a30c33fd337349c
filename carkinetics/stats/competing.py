"""Competing risks: the Aalen-Johansen cumulative incidence of each cause, with log-log bands.

When a patient can have one of several mutually exclusive events (death from
disease or from toxicity, relapse or death in remission), the probability of
having had the event of cause ``k`` by day ``t`` is the cumulative incidence
function ``CIF_k(t)``; one minus a Kaplan-Meier curve that treats the other causes
as censoring overstates it. :func:`aalen_johansen` estimates every ``CIF_k``
from one table of times and cause codes; the sum over causes is one minus the
all-cause Kaplan-Meier curve of :func:`carkinetics.stats.km.kaplan_meier`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from carkinetics.stats.intervals import two_sided_z
from carkinetics.stats.km import step_values

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


@dataclass(frozen=True)
class CumulativeIncidence:
    """Aalen-Johansen cumulative incidence curves of competing causes, with pointwise bands.

    Arrays are given at the distinct observed times (events of any cause and
    censorings), as in :class:`carkinetics.stats.km.KaplanMeier`; every curve is a
    right-continuous step function. Row ``i`` of the per-cause arrays belongs to
    cause ``causes[i]``.

    Attributes
    ----------
    times : ndarray, shape (m,)
        Distinct observed times (day), increasing.
    causes : tuple of int
        The cause codes (>= 1), increasing.
    cif : ndarray, shape (len(causes), m)
        Estimated cumulative incidence of each cause just after each time.
    lower, upper : ndarray, shape (len(causes), m)
        Pointwise bands (delta-method variance, log(-log) transform of the
        incidence). Where the incidence is 0 both bands are 0; where it is 1 the
        upper band is 1 and the lower NaN (the transform is undefined there).
    variance : ndarray, shape (len(causes), m)
        Delta-method variance of each incidence.
    survival : ndarray, shape (m,)
        All-cause Kaplan-Meier survival just after each time.
    n_at_risk : ndarray, shape (m,)
        Patients at risk just before each time.
    n_events : ndarray, shape (len(causes), m)
        Events of each cause at each time.
    level : float
        Confidence level of the bands.
    """

    times: np.ndarray
    causes: tuple
    cif: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    variance: np.ndarray
    survival: np.ndarray
    n_at_risk: np.ndarray
    n_events: np.ndarray
    level: float = 0.95

    @property
    def n(self) -> int:
        """Number of patients (with a time and a cause code)."""
        return int(self.n_at_risk[0]) if self.n_at_risk.size else 0

    def index(self, cause: int) -> int:
        """Row of cause code ``cause`` in the per-cause arrays.

        Parameters
        ----------
        cause : int
            A cause code.

        Returns
        -------
        int

        Raises
        ------
        ValueError
            If ``cause`` is not one of :attr:`causes`.
        """
        for i, c in enumerate(self.causes):
            if c == cause:
                return i
        raise ValueError(f"`cause` must be one of the cause codes {list(self.causes)}, got {cause!r}")

    def at(self, t: ArrayLike,
           cause: int) -> tuple[float, float, float] | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cumulative incidence of ``cause`` and its band at time(s) ``t`` (day).

        Before the first observed time the incidence is 0; after the last
        observed time it is unknown (NaN) unless the all-cause survival has
        reached 0 (then no incidence can change any more).

        Parameters
        ----------
        t : float or array_like
            Day(s).
        cause : int
            A cause code of :attr:`causes`.

        Returns
        -------
        (estimate, lower, upper) : tuple of float or ndarray
        """
        k = self.index(cause)
        return step_values(self.times, (self.cif[k], self.lower[k], self.upper[k]), t, 0.0, self.survival)


def _cause_codes(cause: np.ndarray, causes) -> tuple:
    """The cause codes: ``causes`` checked, or the distinct nonzero codes of the data."""
    bad = ~np.isfinite(cause) | (cause < 0) | (cause != np.round(cause))
    if bad.any():
        raise ValueError("`cause` must hold 0 (censored) or a positive whole-number cause code, "
                         f"got {cause[bad][0]!r}")
    seen = tuple(int(c) for c in np.unique(cause[cause > 0]))
    if causes is None:
        return seen
    codes = tuple(int(c) for c in causes)
    if any(c < 1 or c != float(w) for c, w in zip(codes, causes)) or len(set(codes)) != len(codes):
        raise ValueError(f"`causes` must be distinct positive whole numbers, got {list(causes)!r}")
    missing = sorted(set(seen) - set(codes))
    if missing:
        raise ValueError(f"`cause` holds codes {missing} that are not in `causes` {list(codes)}")
    return tuple(sorted(codes))


def _delta_variance(cif, surv_before, n, d, d_k):
    """Delta-method variance of one cause's incidence at every time (see :func:`aalen_johansen`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(n > d, d / (n * (n - d)), 0.0)  # n == d only where nobody is left after
    b = surv_before ** 2 * d_k * (n - d_k) / n ** 3
    c = surv_before * d_k / n ** 2
    # sum_{h <= m} (F_m - F_h)^2 a_h + b_h - 2 (F_m - F_h) c_h, expanded into running sums
    var = (cif ** 2 * np.cumsum(a) - 2 * cif * np.cumsum(cif * a) + np.cumsum(cif ** 2 * a)
           + np.cumsum(b) - 2 * cif * np.cumsum(c) + 2 * np.cumsum(cif * c))
    return np.clip(var, 0.0, None)


def _loglog_band(cif, var, z):
    """Pointwise band of an incidence on the log(-log F) scale, clipped to [0, 1]."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        loglog = np.log(-np.log(cif))
        se = np.sqrt(var) / (cif * np.abs(np.log(cif)))
        lower = np.exp(-np.exp(loglog + z * se))
        upper = np.exp(-np.exp(loglog - z * se))
    zero = cif <= 0.0
    one = cif >= 1.0
    lower = np.where(zero, 0.0, np.where(one, np.nan, lower))
    upper = np.where(zero, 0.0, np.where(one, 1.0, upper))
    return np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)


def aalen_johansen(time: ArrayLike, cause: ArrayLike, level: float = 0.95,
                   causes: Sequence[int] | None = None) -> CumulativeIncidence:
    """Aalen-Johansen estimate of the cumulative incidence of competing causes.

    At each distinct time ``t_j`` with ``n_j`` patients at risk, ``d_kj`` events
    of cause ``k`` and ``d_j`` events of any cause, with ``S`` the all-cause
    Kaplan-Meier survival::

        CIF_k(t) = sum_{t_j <= t} S(t_j-) d_kj / n_j

    Ties follow :func:`carkinetics.stats.km.kaplan_meier`: events come before
    censorings at the same time (a patient censored at ``t_j`` is at risk at
    ``t_j``).

    The variance is the delta-method (Greenwood-type) estimator of Marubini and
    Valsecchi (1995), also in Collett (2015) and ``lifelines.AalenJohansenFitter``::

        Var CIF_k(t) = sum_{t_j <= t} [ (CIF_k(t) - CIF_k(t_j))^2 d_j / (n_j (n_j - d_j))
                                        + S(t_j-)^2 d_kj (n_j - d_kj) / n_j^3
                                        - 2 (CIF_k(t) - CIF_k(t_j)) S(t_j-) d_kj / n_j^2 ]

    (the first term is taken as 0 where ``n_j = d_j``: nobody is left after ``t_j``).
    With one cause it is Greenwood's variance of ``1 - S``; without censoring it
    is the binomial variance ``CIF (1 - CIF) / n``. It differs from the variance of
    R's ``cmprsk::cuminc`` (Gray 1988). The band is
    ``CIF ** exp(+-z sqrt(Var) / (CIF |log CIF|))``, a normal interval on the
    log(-log CIF) scale (Choudhury 2002; as ``lifelines``), which stays within
    [0, 1].

    Parameters
    ----------
    time : array_like, shape (n,)
        Event or censoring times (day). NaN entries are left out.
    cause : array_like, shape (n,)
        0 for censoring, ``k >= 1`` for an event of cause ``k``. NaN entries are
        left out.
    level : float
        Confidence level of the pointwise bands.
    causes : sequence of int, optional
        The cause codes to report (a cause without events has an incidence of 0);
        by default the distinct nonzero codes of ``cause``.

    Returns
    -------
    CumulativeIncidence

    Raises
    ------
    ValueError
        If ``time`` and ``cause`` differ in length, a cause code is negative or
        not a whole number, or ``cause`` holds a code not in ``causes``.

    References
    ----------
    Aalen OO, Johansen S (1978), Scand J Statist 5:141-150.
    Marubini E, Valsecchi MG (1995), Analysing Survival Data from Clinical Trials and
    Observational Studies, Wiley.
    Collett D (2015), Modelling Survival Data in Medical Research, 3rd ed., Chapman & Hall/CRC,
    chapter 12 (competing risks).
    Choudhury JB (2002), Stat Med 21:1129-1144, doi:10.1002/sim.1070.

    Examples
    --------
    >>> ci = aalen_johansen([1, 2, 2, 3, 4], [1, 2, 0, 1, 0])
    >>> ci.causes
    (1, 2)
    >>> [round(float(v), 4) for v in ci.at([1.5, 3.5], cause=1)[0]]
    [0.2, 0.5]
    >>> round(ci.at(3.5, cause=2)[0], 4)
    0.2
    """
    z = two_sided_z(level)
    time = np.asarray(time, dtype=float).ravel()
    cause = np.asarray(cause, dtype=float).ravel()
    if time.shape != cause.shape:
        raise ValueError(f"`time` and `cause` differ in length: {time.size} and {cause.size}")
    ok = ~np.isnan(time) & ~np.isnan(cause)
    time, cause = time[ok], cause[ok]
    codes = _cause_codes(cause, causes)
    order = np.argsort(time, kind="stable")
    time, cause = time[order], cause[order]
    uniq, first, counts = np.unique(time, return_index=True, return_counts=True)
    n = (time.size - first).astype(float)

    def count(mask):
        cum = np.concatenate([[0], np.cumsum(mask)])
        return (cum[first + counts] - cum[first]).astype(float)

    d_k = np.array([count(cause == c) for c in codes]).reshape(len(codes), uniq.size)
    d = count(cause > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        survival = np.cumprod((n - d) / n)
    surv_before = np.concatenate([[1.0], survival])[:uniq.size]
    cif = np.clip(np.cumsum(surv_before * d_k / n, axis=1), 0.0, 1.0)
    variance = np.array([_delta_variance(cif[i], surv_before, n, d, d_k[i])
                         for i in range(len(codes))]).reshape(cif.shape)
    bands = [_loglog_band(cif[i], variance[i], z) for i in range(len(codes))]
    lower = np.array([b[0] for b in bands]).reshape(cif.shape)
    upper = np.array([b[1] for b in bands]).reshape(cif.shape)
    return CumulativeIncidence(times=uniq, causes=codes, cif=cif, lower=lower, upper=upper,
                               variance=variance, survival=survival, n_at_risk=n, n_events=d_k,
                               level=level)
