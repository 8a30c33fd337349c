"""What a calibration minimises: one term per target, summed (``[calibration] objective``).

``distance`` (the default): ``w ((h(simulated) - h(reported)) / se)^2``, ``h = log`` for medians
and means, the identity for fractions, ``se`` from the reported interval
(:func:`carkinetics.fit.target_fit.target_distance`). A statistic the cohort cannot give (a
median its survival never reaches) is 1000 standard errors away.

``likelihood``: ``-w log L`` of the reported number given the virtual cohort
(:mod:`carkinetics.stats.scores`), with the Monte Carlo error of the finite virtual cohort in
it (so that a calibration's uncertainty is not understated by treating one virtual cohort as
exact):

* a proportion or cumulative incidence with a reported denominator: beta-binomial, the
  reported ``k`` of ``n`` (``k = value x n`` without a count) under the simulated rate of
  ``n_sim`` virtual patients (the rate's Jeffreys posterior);
* a Kaplan-Meier estimate: normal on the ``log(-log)`` scale, variance the reported interval's
  plus the simulated estimate's (its Monte Carlo interval), where the estimate and interval lie
  strictly inside (0, 1); else beta-binomial as a proportion of ``n``;
* a median time to an event: ``n/2`` of ``n`` reported patients with the event by the reported
  median, under the simulated probability of the event by that day (Kaplan-Meier of the virtual
  cohort; beta-binomial): censoring-aware, finite when the simulated median is not reached;
* anything else (medians of levels, means): normal on the fitting scale,
  ``0.5 (h(simulated) - h(reported))^2 / (se^2 + se_mc^2)`` with ``se_mc`` from the statistic's
  Monte Carlo interval.

The two objectives are on different scales: compare objective values only within one.
"""

from __future__ import annotations

import math

from carkinetics.stats.scores import (Z975, beta_binomial_loglik, cloglog, cloglog_loglik, cloglog_usable,
                                      median_loglik)

#: The term of a statistic that cannot be computed (1000 standard errors, as the distance).
MISSING_TERM = 1e6


def distance_term(target, simulated) -> float:
    """``w ((h(simulated) - observed) / se)^2`` (:data:`MISSING_TERM` when not finite)."""
    if not math.isfinite(simulated) or (target.log_scale and simulated <= 0):
        return target.weight * MISSING_TERM
    h = math.log(simulated) if target.log_scale else simulated
    return target.weight * ((h - target.observed) / target.se) ** 2


def likelihood_term(target, simulated, n_simulated, event_probability=math.nan, mc_lower=math.nan,
                    mc_upper=math.nan) -> float:
    """``-w log L`` of one reported number (module docstring).

    Parameters
    ----------
    target : CalibrationTarget
    simulated : float
        The simulated statistic.
    n_simulated : int
        Virtual patients behind it (the subgroup's size).
    event_probability : float, optional
        For a median time to an event: the simulated probability of the event by the
        reported median (NaN for other statistics).
    mc_lower, mc_upper : float, optional
        The simulated statistic's Monte Carlo 95 % interval (its Monte Carlo error enters the
        Kaplan-Meier and normal terms; the binomial terms take it from ``n_simulated``).
    """
    w, n = target.weight, target.n
    fraction = target.statistic in ("proportion", "cumulative_incidence", "km_estimate")
    if not math.isfinite(simulated) and not math.isfinite(event_probability):
        return w * MISSING_TERM
    if target.statistic == "median" and math.isfinite(event_probability) and math.isfinite(n) and n > 0:
        ll = median_loglik(n, event_probability, n_simulated)
    elif target.statistic == "km_estimate" and cloglog_usable(target.reported, target.lower, target.upper):
        edge = 0.5 / (n_simulated + 1.0)
        s = min(max(simulated, edge), 1.0 - edge)
        sd_mc = 0.0
        if cloglog_usable(s, mc_lower, mc_upper):
            sd_mc = (cloglog(mc_lower) - cloglog(mc_upper)) / (2.0 * Z975)
        ll = cloglog_loglik(s, target.reported, target.lower, target.upper, sd_mc)
    elif fraction and math.isfinite(n) and n > 0:
        k = target.k if math.isfinite(target.k) else target.reported * n
        ll = beta_binomial_loglik(k, n, simulated, n_simulated)
    else:
        if target.log_scale and simulated <= 0:
            return w * MISSING_TERM
        h = (lambda v: math.log(v) if v > 0 else math.nan) if target.log_scale else (lambda v: v)
        se_mc = (h(mc_upper) - h(mc_lower)) / (2.0 * Z975) if math.isfinite(mc_lower) and math.isfinite(
            mc_upper) else math.nan
        var = target.se ** 2 + (se_mc ** 2 if math.isfinite(se_mc) else 0.0)
        return w * 0.5 * (h(simulated) - target.observed) ** 2 / var
    return w * (-ll) if math.isfinite(ll) else w * MISSING_TERM
