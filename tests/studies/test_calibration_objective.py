"""The calibration objective's terms against scipy, and their signs.

Independent references: ``scipy.stats.betabinom.logpmf`` for the binomial terms (the virtual
cohort's rate with its Monte Carlo error: Beta(rate m + 0.5, (1 - rate) m + 0.5)), the
beta-binomial written with ``scipy.special`` for fractional counts, ``scipy.stats.norm.logpdf``
on the log(-log) scale for Kaplan-Meier estimates, and the standardised squared distance of
:func:`carkinetics.fit.target_fit.target_distance`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.stats

from carkinetics.fit.target_fit import target_distance
from carkinetics.studies.calibration_objective import MISSING_TERM, distance_term, likelihood_term


@dataclass
class T:
    """The fields of a CalibrationTarget that the terms read."""

    statistic: str
    reported: float
    lower: float = math.nan
    upper: float = math.nan
    k: float = math.nan
    n: float = math.nan
    weight: float = 1.0
    log_scale: bool = False
    se: float = 0.1
    observed: float = math.nan

    def __post_init__(self):
        if math.isnan(self.observed):
            self.observed = math.log(self.reported) if self.log_scale else self.reported


def _betabinom_frac(k, n, a, b):
    from scipy.special import betaln, gammaln

    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + betaln(k + a, n - k + b) - betaln(a, b)


def test_proportion_term_is_the_beta_binomial_of_the_reported_count_under_the_virtual_cohort():
    t = T("proportion", 0.35, 0.18, 0.57, k=7, n=20, weight=2.0)
    a, b = 0.3 * 400 + 0.5, 0.7 * 400 + 0.5
    assert likelihood_term(t, 0.3, 400) == pytest.approx(-2.0 * scipy.stats.betabinom.logpmf(7, 20, a, b))
    # a large virtual cohort: the binomial
    p = 0.3
    assert likelihood_term(t, 0.3, 10**6) == pytest.approx(-2.0 * scipy.stats.binom.logpmf(7, 20, p), rel=1e-4)
    # a small virtual cohort is less sure of its rate: a reported count far from it costs less
    assert likelihood_term(t, 0.8, 50) < likelihood_term(t, 0.8, 5000)
    # a simulated 0 is finitely wrong; without a reported count, k = value x n
    assert math.isfinite(likelihood_term(t, 0.0, 400))
    t2 = T("cumulative_incidence", 0.41, 0.25, 0.62, n=32)
    expect = _betabinom_frac(0.41 * 32, 32, 0.5 * 1000 + 0.5, 0.5 * 1000 + 0.5)
    assert likelihood_term(t2, 0.5, 1000) == pytest.approx(-expect)


def test_the_proportion_term_is_smallest_at_the_reported_rate():
    t = T("proportion", 0.35, 0.18, 0.57, k=7, n=20)
    grid = np.linspace(0.05, 0.95, 91)
    terms = [likelihood_term(t, p, 10**6) for p in grid]
    assert grid[int(np.argmin(terms))] == pytest.approx(0.35, abs=0.011)
    assert all(np.diff(terms[:30]) < 0) and all(np.diff(terms[31:]) > 0)


def test_km_term_is_normal_on_the_log_minus_log_scale_with_the_reported_interval():
    t = T("km_estimate", 0.368, 0.138, 0.598, n=20)
    g = lambda s: math.log(-math.log(s))  # noqa: E731
    sd = (g(0.138) - g(0.598)) / (2 * 1.959963984540054)
    assert likelihood_term(t, 0.7, 1000) == pytest.approx(-scipy.stats.norm.logpdf(g(0.7), g(0.368), sd))
    assert likelihood_term(t, 0.368, 1000) < likelihood_term(t, 0.5, 1000) < likelihood_term(t, 0.7, 1000)
    # the simulated estimate's Monte Carlo interval adds its variance on the same scale
    sd_mc = (g(0.65) - g(0.75)) / (2 * 1.959963984540054)
    assert likelihood_term(t, 0.7, 1000, mc_lower=0.65, mc_upper=0.75) == pytest.approx(
        -scipy.stats.norm.logpdf(g(0.7), g(0.368), math.hypot(sd, sd_mc)))
    # an interval that reaches 1 has no log(-log) standard error: beta-binomial on n instead
    t1 = T("km_estimate", 0.68, 0.43, 1.0, n=10)
    assert likelihood_term(t1, 0.5, 1000) == pytest.approx(-_betabinom_frac(6.8, 10, 500.5, 500.5))


def test_median_term_needs_only_the_survival_at_the_reported_median():
    """A reported median of 134 days in 12 patients: 6 events by day 134. The term is finite when
    the simulated median is not reached (its survival stays above one half), and it falls as the
    simulated probability of the event by day 134 rises towards one half."""
    t = T("median", 134.0, n=12, log_scale=True, se=0.38)
    terms = [likelihood_term(t, math.nan, 1000, event_probability=q) for q in (0.05, 0.2, 0.35, 0.5)]
    assert all(math.isfinite(v) for v in terms) and terms == sorted(terms, reverse=True)
    assert terms[2] == pytest.approx(-scipy.stats.betabinom.logpmf(6, 12, 350.5, 650.5))
    # symmetric around one half: too many events by the median is as wrong as too few
    assert likelihood_term(t, 1.0, 10**6, event_probability=0.3) == pytest.approx(
        likelihood_term(t, 1.0, 10**6, event_probability=0.7), rel=1e-6)
    # the distance cannot score a median that is not reached
    assert distance_term(t, math.nan) == MISSING_TERM


def test_other_statistics_take_half_the_distance_which_equals_fit_targets_distance():
    t = T("median", 62390.0, 30000.0, 120000.0, log_scale=True, se=0.35, weight=1.5)
    for sim in (50000.0, 62390.0, 1e5):
        d = distance_term(t, sim)
        ref = target_distance([[sim]], [t.observed], [t.se], [t.log_scale], [t.weight])[0]
        assert d == pytest.approx(ref)
        assert likelihood_term(t, sim, 400) == pytest.approx(0.5 * d)
        # with a Monte Carlo interval of the simulated median, its variance adds to se^2
        se_mc = (math.log(1.1 * sim) - math.log(sim / 1.1)) / (2 * 1.959963984540054)
        expect = 1.5 * 0.5 * (math.log(sim) - t.observed) ** 2 / (t.se ** 2 + se_mc ** 2)
        assert likelihood_term(t, sim, 400, mc_lower=sim / 1.1, mc_upper=1.1 * sim) == pytest.approx(expect)
    assert distance_term(t, math.nan) == 1.5 * MISSING_TERM
