"""Log-likelihoods and scores of reported trial numbers under a predicted probability.

A trial reports a fraction of ``n`` patients (a proportion ``k/n``, a Kaplan-Meier estimate
with its 95 % interval, a median time to an event); a model or a naive predictor gives a
probability. These functions score the reported number under it:

* :func:`binomial_loglik`: ``k`` of ``n`` under ``p`` (``k`` may be fractional, as
  ``value x n`` for a Kaplan-Meier estimate without a reported count);
* :func:`cloglog_loglik`: a Kaplan-Meier estimate with its reported 95 % interval, normal on the
  ``log(-log S)`` scale (the scale of the usual interval; its standard error read off the
  interval);
* :func:`median_loglik`: a reported median time ``m`` of ``n`` patients, as about ``n/2``
  events by ``m`` under the predicted probability of the event by ``m`` (censoring-aware: it
  needs the predicted survival at ``m`` only, not a predicted median, which a model whose
  survival stays above one half never reaches);
* :func:`beta_binomial_loglik`: ``k`` of ``n`` under a rate that is itself estimated from
  ``m`` virtual patients (the posterior predictive of the virtual cohort: Monte Carlo error
  included; it tends to :func:`binomial_loglik` as ``m`` grows);
* :func:`brier`: the mean Brier score of ``k`` of ``n`` under ``p``.

:func:`shrunk` keeps a rate estimated from ``m`` patients off exactly 0 and 1 (``(value m +
0.5) / (m + 1)``), so that no prediction is infinitely wrong.
"""

from __future__ import annotations

import math

Z975 = 1.959963984540054


def shrunk(value, n) -> float:
    """``(value n + 0.5) / (n + 1)``: a rate estimated from ``n`` patients, never exactly 0 or 1.

    >>> shrunk(0.0, 1999)
    0.00025
    """
    if not (math.isfinite(value) and math.isfinite(n) and n >= 0):
        return math.nan
    return (value * n + 0.5) / (n + 1.0)


def binomial_loglik(k, n, p) -> float:
    """Log-likelihood of ``k`` events in ``n`` under probability ``p`` (``k`` may be fractional).

    >>> round(binomial_loglik(1, 2, 0.5), 6) == round(math.log(0.5), 6)
    True
    """
    if not (math.isfinite(k) and math.isfinite(n) and n > 0 and math.isfinite(p)):
        return math.nan
    from scipy.special import gammaln

    p = min(max(p, 1e-300), 1.0 - 1e-16)
    return float(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p))


def beta_binomial_loglik(k, n, rate, m) -> float:
    """Log-likelihood of ``k`` of ``n`` when the rate is ``rate`` estimated from ``m`` patients.

    Beta-binomial with ``a = rate m + 0.5``, ``b = (1 - rate) m + 0.5`` (the Jeffreys posterior
    of the rate given the virtual cohort), so the Monte Carlo error of a finite virtual cohort
    widens the likelihood instead of being ignored; ``k`` may be fractional.

    >>> abs(beta_binomial_loglik(3, 10, 0.3, 10**6) - binomial_loglik(3, 10, 0.3)) < 1e-4
    True
    """
    if not (math.isfinite(k) and math.isfinite(n) and n > 0 and math.isfinite(rate) and math.isfinite(m)):
        return math.nan
    from scipy.special import betaln, gammaln

    rate = min(max(rate, 0.0), 1.0)
    a, b = rate * m + 0.5, (1.0 - rate) * m + 0.5
    return float(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + betaln(k + a, n - k + b) - betaln(a, b))


def brier(k, n, p) -> float:
    """Mean Brier score of ``n`` patients, ``k`` with the event, under probability ``p``.

    >>> brier(1, 4, 0.25)
    0.1875
    """
    if not (math.isfinite(k) and math.isfinite(n) and n > 0 and math.isfinite(p)):
        return math.nan
    return float((k * (1.0 - p) ** 2 + (n - k) * p ** 2) / n)


def cloglog(s) -> float:
    """``log(-log s)`` for a survival probability strictly between 0 and 1."""
    return math.log(-math.log(s))


def cloglog_usable(value, lower, upper) -> bool:
    """Whether a reported survival and its interval lie strictly inside (0, 1), as the scale needs."""
    return all(math.isfinite(v) and 0.0 < v < 1.0 for v in (value, lower, upper)) and lower < value < upper


def cloglog_loglik(simulated, value, lower, upper, sd_simulated=0.0) -> float:
    """Log-density of a reported Kaplan-Meier estimate under a predicted survival, log(-log) scale.

    ``log(-log S_reported) ~ N(log(-log S_predicted), sd^2 + sd_simulated^2)`` with ``sd`` the
    half-width of the reported 95 % interval on that scale over 1.96 and ``sd_simulated`` the
    Monte Carlo standard error of the prediction on that scale. NaN when the interval is not
    usable (:func:`cloglog_usable`) or the prediction is not strictly inside (0, 1).

    >>> round(cloglog_loglik(0.5, 0.5, 0.3, 0.7) - cloglog_loglik(0.6, 0.5, 0.3, 0.7), 3) > 0
    True
    """
    if not cloglog_usable(value, lower, upper) or not (math.isfinite(simulated) and 0.0 < simulated < 1.0):
        return math.nan
    sd = math.hypot((cloglog(lower) - cloglog(upper)) / (2.0 * Z975), sd_simulated if sd_simulated > 0 else 0.0)
    z = (cloglog(simulated) - cloglog(value)) / sd
    return float(-0.5 * z * z - math.log(sd) - 0.5 * math.log(2.0 * math.pi))


def median_loglik(n, event_probability, m=math.inf) -> float:
    """Log-likelihood of a reported median time ``t`` of ``n`` patients under ``P(event by t)``.

    Half of the patients have had the event by their median: ``n/2`` events of ``n`` under the
    predicted probability of the event by ``t``, estimated from ``m`` virtual patients
    (:func:`beta_binomial_loglik`; binomial for ``m`` infinite). Censoring before ``t`` is
    ignored (the reported median is taken as that of an uncensored sample).

    >>> median_loglik(12, 0.5) > median_loglik(12, 0.2)
    True
    """
    if math.isinf(m):
        return binomial_loglik(n / 2.0, n, event_probability)
    return beta_binomial_loglik(n / 2.0, n, event_probability, m)
