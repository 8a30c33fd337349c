"""Censored log-normal likelihood (Beal's M3 method) of observations given predictions.

Observations and predictions enter on the fitting scale ``g`` (log for log-scale observables,
the identity otherwise): ``g(y) = g(f) + eps``, ``eps ~ N(0, sigma^2)``. A censored observation
(below its LLOQ) holds ``g(LLOQ)`` and enters through ``P(y < LLOQ) = Phi((g(LLOQ) - g(f)) / sigma)``.
"""

from __future__ import annotations

import math

import numpy as np

LOG_2PI = math.log(2.0 * math.pi)


def censored_residuals(observed, predicted, censored, sigma):
    """Residuals whose sum of squares is ``-2 log L`` without the normalising constants.

    Parameters
    ----------
    observed : ndarray, shape (n_obs,)
        ``g(y)``, or ``g(LLOQ)`` for a censored observation.
    predicted : ndarray, shape (..., n_obs)
        ``g(f)`` for one or more parameter vectors.
    censored : ndarray of bool, shape (n_obs,)
    sigma : float
        Residual SD on the fitting scale.

    Returns
    -------
    ndarray, shape of ``predicted``
        ``(g(y) - g(f)) / sigma`` for an uncensored observation,
        ``sqrt(-2 log Phi((g(LLOQ) - g(f)) / sigma))`` for a censored one.
    """
    from scipy.special import log_ndtr

    z = (observed - predicted) / sigma
    r = np.where(censored, 0.0, z)
    if censored.any():
        c = censored
        r_c = np.sqrt(np.maximum(-2.0 * log_ndtr(z[..., c]), 0.0))
        r = r.copy()
        r[..., c] = r_c
    return r


def minus_two_log_likelihood(observed, predicted, censored, n_uncensored, sigma):
    """``-2 log L`` (constants included) of one prediction vector.

    Parameters
    ----------
    observed, predicted, censored, sigma
        As for :func:`censored_residuals` (``predicted`` of shape (n_obs,)).
    n_uncensored : int
        Number of uncensored observations (each contributes ``log(2 pi sigma^2)``).

    Returns
    -------
    float
    """
    r = censored_residuals(observed, predicted, censored, sigma)
    return float(np.sum(r ** 2) + n_uncensored * (LOG_2PI + 2.0 * math.log(sigma)))


def max_likelihood_sigma(observed, predicted, censored, n_uncensored, lo=1e-4, hi=1e2):
    """Maximum-likelihood residual SD for fixed predictions.

    Without censored observations this is the root mean square residual (clipped to
    ``[lo, hi]``); with them, ``-2 log L`` is minimised over ``log sigma`` in ``[log lo, log hi]``.

    Parameters
    ----------
    observed, predicted, censored, n_uncensored
        As for :func:`minus_two_log_likelihood`; ``n_uncensored`` must be positive.
    lo, hi : float
        Bounds of the residual SD.

    Returns
    -------
    float
    """
    from scipy.optimize import minimize_scalar

    e = (observed - predicted)[~censored]
    s_closed = math.sqrt(max(float(np.mean(e ** 2)), lo ** 2))
    if not censored.any():
        return min(s_closed, hi)
    res = minimize_scalar(lambda s: minus_two_log_likelihood(observed, predicted, censored, n_uncensored,
                                                             math.exp(s)),
                          bounds=(math.log(lo), math.log(hi)), method="bounded",
                          options={"xatol": 1e-6})
    return float(math.exp(res.x))


def prior_residuals(x, prior):
    """Residuals ``(x - mean) / sd`` of log-parameters under a normal prior ``(mean, sd)``.

    Their sum of squares is the prior's ``-2 log`` density without constants (the MAP fits
    of the iterative two-stage method add it to the objective).
    """
    return (x - prior[0]) / prior[1]
