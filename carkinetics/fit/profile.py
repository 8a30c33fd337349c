"""Uncertainty of estimates on the log scale: profile likelihood, Laplace covariance, samples.

The objective ``f(x)`` is a negative log-likelihood (up to a constant) over log-parameters
``x`` in a box ``[lo, hi]``; ``scale`` converts another objective to one (0.5 for a sum of
squared standardised distances, which is ``-2 log L``).

* :func:`profile_likelihood`: for each parameter, the profile ``min over the others of f``
  at fixed values stepping out from the optimum in both directions until it has risen by
  ``chi2_1(level) / 2`` (1.92 for 95 %) or the bound is reached; the interval is where the
  profile crosses that rise (interpolated linearly in the square root of the rise between grid
  points: exact where the profile is quadratic). A side that never
  rises that far before its bound is *flat*: the data do not bound the parameter there.
* :func:`laplace_covariance`: the inverse of the central finite-difference Hessian of ``f``
  at the optimum (the covariance of the log-parameters if ``f`` is locally quadratic), its
  correlations and its eigenvalues (a near-zero eigenvalue is a direction the data do not fix).
* :func:`sample_parameter_sets`: draws from the normal approximation, inside the box.
"""

from __future__ import annotations

import math

import numpy as np


def rise(level: float = 0.95) -> float:
    """The rise of a negative log-likelihood profile at the edge of a ``level`` interval.

    >>> round(rise(0.95), 4)
    1.9207
    """
    from scipy.stats import chi2

    return float(chi2.ppf(level, 1) / 2.0)


def _minimise_others(f, x_fixed, j, lo, hi, start, maxiter):
    """min over the coordinates other than ``j`` of ``f`` (Nelder-Mead from ``start``)."""
    from scipy.optimize import minimize

    others = [i for i in range(len(lo)) if i != j]
    if not others:
        x = np.array(start, float)
        x[j] = x_fixed
        return float(f(x)), x

    def g(y):
        x = np.array(start, float)
        x[j] = x_fixed
        x[others] = y
        return float(f(x))

    y0 = np.clip(np.asarray(start, float)[others], lo[others], hi[others])
    span = 0.05 * (hi[others] - lo[others])
    simplex = np.vstack([y0] + [y0 + np.where(y0 + d <= hi[others], d, -d) * (np.arange(len(others)) == i)
                                for i, d in enumerate(span)])
    res = minimize(g, y0, method="Nelder-Mead", bounds=list(zip(lo[others], hi[others])),
                   options={"maxiter": maxiter, "xatol": 1e-4, "fatol": 1e-4, "initial_simplex": simplex,
                            "adaptive": len(others) > 3})
    x = np.array(start, float)
    x[j] = x_fixed
    x[others] = res.x
    return float(res.fun), x


def profile_likelihood(f, x_best, lo, hi, names, *, level=0.95, step=0.1, max_points=8, maxiter=60, scale=1.0,
                       progress=None):
    """Profile-likelihood intervals of every coordinate of ``x_best`` (log scale).

    Parameters
    ----------
    f : callable
        ``f(x) -> float`` (``x`` a vector of log-parameters).
    x_best : array_like
        The optimum.
    lo, hi : array_like
        Bounds (log scale).
    names : list of str
    level : float
        Interval level (rise ``chi2_1(level) / 2`` of ``scale * f``).
    step : float
        First step from the optimum (log scale); each next step doubles it.
    max_points : int
        Profile points per side at most.
    maxiter : int
        Nelder-Mead iterations over the other coordinates at each point.
    scale : float
        ``scale * f`` is the negative log-likelihood (0.5 for a ``-2 log L`` objective).

    Returns
    -------
    (intervals, points) : tuple of pandas.DataFrame
        ``intervals``: name, estimate, lower, upper (natural scale), ``lower_flat`` /
        ``upper_flat`` (the profile never rose enough before the bound on that side) and
        ``at_bound`` (the estimate is within 1e-3 of a bound, log scale). ``points``: name,
        value (natural scale), profile (``scale * (f - f_best)``).
    """
    import pandas as pd

    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    x_best = np.asarray(x_best, float)
    f_best = float(f(x_best))
    target = rise(level)
    intervals, points = [], []
    for j, name in enumerate(names):
        ends, flat = {}, {}
        points.append({"name": name, "value": math.exp(x_best[j]), "profile": 0.0})
        for side in (-1.0, 1.0):
            bound = lo[j] if side < 0 else hi[j]
            prev_x, prev_d = x_best[j], 0.0
            start = x_best.copy()
            ends[side], flat[side] = bound, True
            h = step
            for _ in range(max_points):
                xj = x_best[j] + side * h
                hit_bound = (xj <= lo[j]) if side < 0 else (xj >= hi[j])
                xj = min(max(xj, lo[j]), hi[j])
                if xj == prev_x:
                    break
                val, start = _minimise_others(f, xj, j, lo, hi, start, maxiter)
                d = scale * (val - f_best)
                points.append({"name": name, "value": math.exp(xj), "profile": d})
                if d >= target:
                    # linear in sqrt(rise): exact for a quadratic profile
                    a, b = math.sqrt(max(prev_d, 0.0)), math.sqrt(d)
                    w = (math.sqrt(target) - a) / (b - a) if b > a else 1.0
                    ends[side], flat[side] = prev_x + w * (xj - prev_x), False
                    break
                prev_x, prev_d = xj, max(d, prev_d)
                if hit_bound:
                    break
                h *= 2.0
            if progress is not None:
                progress(f"profile {name} {'lower' if side < 0 else 'upper'} side done")
        intervals.append({"name": name, "estimate": math.exp(x_best[j]), "lower": math.exp(ends[-1.0]),
                          "upper": math.exp(ends[1.0]), "lower_flat": flat[-1.0], "upper_flat": flat[1.0],
                          "at_bound": bool(min(x_best[j] - lo[j], hi[j] - x_best[j]) < 1e-3)})
    return pd.DataFrame(intervals), pd.DataFrame(points)


def laplace_covariance(f, x_best, lo, hi, *, step=0.05, scale=1.0):
    """Covariance of the log-parameters from the Hessian of ``scale * f`` at the optimum.

    Central differences with ``step`` (log scale), one-sided at a bound. The inverse is a
    pseudo-inverse (eigenvalues below 1e-8 of the largest are dropped), so a flat direction gives
    a large but finite variance; the eigenvalues are returned to show it.

    Returns
    -------
    (cov, corr, eigenvalues) : tuple of numpy.ndarray
    """
    x0 = np.asarray(x_best, float)
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    k = len(x0)
    cache = {}

    def F(dx):
        key = tuple(np.round(dx, 12))
        if key not in cache:
            cache[key] = scale * float(f(np.clip(x0 + dx, lo, hi)))
        return cache[key]

    hs = np.array([step if (x0[i] - step >= lo[i] and x0[i] + step <= hi[i]) else step / 2 for i in range(k)])
    H = np.empty((k, k))
    e = np.eye(k)
    for i in range(k):
        for j in range(i, k):
            a, b = hs[i] * e[i], hs[j] * e[j]
            if i == j:
                H[i, i] = (F(a) - 2 * F(np.zeros(k)) + F(-a)) / hs[i] ** 2
            else:
                H[i, j] = H[j, i] = (F(a + b) - F(a - b) - F(-a + b) + F(-a - b)) / (4 * hs[i] * hs[j])
    w, V = np.linalg.eigh(0.5 * (H + H.T))
    keep = w > 1e-8 * max(w.max(), 1e-300)
    inv_w = np.where(keep, 1.0 / np.where(keep, w, 1.0), 0.0)
    flat = ~keep
    # a flat direction: variance as wide as the box (not infinite), so samples stay usable
    box = float(np.max(hi - lo)) ** 2
    inv_w = np.where(flat, box, inv_w)
    cov = (V * inv_w) @ V.T
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    return cov, corr, w


def sample_parameter_sets(x_best, cov, lo, hi, n, seed=0):
    """``n`` draws of the log-parameters from ``N(x_best, cov)`` inside the box (resampled, then clipped).

    Returns
    -------
    numpy.ndarray, shape (n, k)
    """
    rng = np.random.default_rng(seed)
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    x0 = np.asarray(x_best, float)
    L = np.linalg.cholesky(np.asarray(cov, float) + 1e-12 * np.eye(len(x0)))
    out = np.empty((0, len(x0)))
    for _ in range(50):
        z = x0 + rng.standard_normal((2 * n, len(x0))) @ L.T
        ok = np.all((z >= lo) & (z <= hi), axis=1)
        out = np.vstack([out, z[ok]])
        if len(out) >= n:
            return out[:n]
    z = x0 + rng.standard_normal((n - len(out), len(x0))) @ L.T
    return np.vstack([out, np.clip(z, lo, hi)])[:n]


def _truncated_normal(rng, mean, cov, m, lo, hi):
    """``m`` points of N(mean, cov) inside the box [lo, hi] (by rejection), and the normal's share inside it."""
    from carkinetics.fit.errors import FitError

    k = len(mean)
    L = np.linalg.cholesky(cov)
    pts, tried = np.empty((0, k)), 0
    for _ in range(1000):
        z = mean + rng.standard_normal((2 * m, k)) @ L.T
        tried += len(z)
        pts = np.vstack([pts, z[np.all((z >= lo) & (z <= hi), axis=1)]])
        if len(pts) >= m:
            break
    if len(pts) < m:
        raise FitError("SIR: the proposal falls outside the bounds almost always; check the covariance")
    return pts[:m], len(pts) / tried


def _normalised_weights(logw, n_points):
    """Importance weights summing to 1 from log weights (non-finite: weight 0), and which were finite."""
    from carkinetics.fit.errors import FitError

    ok = np.isfinite(logw)
    if not ok.any():
        raise FitError(f"SIR: the objective is not finite at any of the {n_points} proposals")
    w = np.exp(np.where(ok, logw, -np.inf) - np.max(logw[ok]))
    return w / w.sum(), ok


def sir_sample(f, x_best, cov, lo, hi, n, proposals, *, scale=1.0, inflation=2.0, seed=0, progress=None):
    """Sampling importance resampling (SIR) of the log-parameters: ``n`` draws from the likelihood.

    Two rounds of ``proposals / 2`` points each (Dosne et al. 2016, J Pharmacokinet Pharmacodyn
    43:583; the second round adapted as in their iterative SIR). Round 1 proposes from a normal
    centred on ``x_best`` with the covariance ``cov`` times ``inflation`` (each standard
    deviation capped at half the width of its box, so that directions the data do not fix are
    spread over the box instead of falling outside it); round 2 from a normal with the mean and
    covariance of round 1's importance-weighted points (times ``inflation``). Every point is
    kept inside the box ``[lo, hi]`` and weighted by its likelihood
    ``exp(-scale * (f(x) - f(x_best)))`` over the density of the equal mixture of the two
    truncated proposals (each normalised by its share inside the box); ``n`` points are then
    resampled in proportion to the weights, without replacement. The target is the likelihood
    under a uniform prior on the log-parameters inside the box: unlike draws from the normal
    approximation, the sample follows profiles that are not quadratic and does not spread where
    the data do bound an estimate. When the effective sample size of the weights is below ``n``
    the draws are taken with replacement (repeated sets; ``info["warning"]`` says so), since
    ``n`` distinct points would then have to include points of negligible weight.

    Parameters
    ----------
    f : callable
        Objective of one log-parameter vector (``scale * f`` is -log L up to a constant).
    x_best, cov, lo, hi : array_like
        Optimum, covariance of the normal approximation, box.
    n : int
        Draws returned (at most ``proposals``).
    proposals : int
        Points proposed in all (each costs one evaluation of ``f``).
    scale, inflation, seed :
        As above.
    progress : callable, optional
        Called with a message after each evaluation.

    Returns
    -------
    draws : numpy.ndarray, shape (n, k)
    info : dict
        ``proposals``, ``effective_sample_size`` (Kish, of the importance weights),
        ``max_weight_share``, ``inflation``, ``n_failed`` (proposals whose objective was not finite),
        ``with_replacement``, ``distinct``, ``effective_sample_size_round_1`` and, when resampled
        with replacement, ``warning``.

    Raises
    ------
    FitError
        Fewer proposals than draws, a proposal almost always outside the box, or an objective
        not finite at any proposal.
    """
    from scipy.stats import multivariate_normal

    from carkinetics.fit.errors import FitError

    x0 = np.asarray(x_best, float)
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    if n > proposals:
        raise FitError(f"SIR needs at least as many proposals as draws ({proposals} < {n})")
    k = len(x0)
    cov = np.asarray(cov, float)
    sd = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
    corr = cov / np.outer(sd, sd)
    sd_p = np.minimum(sd * math.sqrt(inflation), (hi - lo) / 2.0)
    rng = np.random.default_rng(seed)
    f0 = float(f(x0))
    done = [0]

    def propose(mean, cov_p, m):
        return _truncated_normal(rng, mean, cov_p, m, lo, hi)

    def evaluate(pts):
        vals = np.empty(len(pts))
        for i, x in enumerate(pts):
            vals[i] = f(x)
            done[0] += 1
            if progress is not None:
                progress(f"SIR proposal {done[0]} of {proposals}")
        return vals

    def normalised(logw):
        return _normalised_weights(logw, done[0])

    m1 = proposals // 2
    cov1 = corr * np.outer(sd_p, sd_p) + 1e-12 * np.eye(k)
    pts1, z1 = propose(x0, cov1, m1)
    vals1 = evaluate(pts1)
    q1 = multivariate_normal(mean=x0, cov=cov1, allow_singular=True)
    w1, _ = normalised(-scale * (vals1 - f0) - np.atleast_1d(q1.logpdf(pts1)) + math.log(z1))
    ess1 = float(1.0 / np.sum(w1 ** 2))
    mean2 = w1 @ pts1
    d = pts1 - mean2
    cov2 = inflation * (d.T * w1) @ d + 1e-8 * np.eye(k)
    pts2, z2 = propose(mean2, cov2, proposals - m1)
    vals2 = evaluate(pts2)
    q2 = multivariate_normal(mean=mean2, cov=cov2, allow_singular=True)
    pts, vals = np.vstack([pts1, pts2]), np.concatenate([vals1, vals2])
    logq = np.logaddexp(np.atleast_1d(q1.logpdf(pts)) - math.log(z1), np.atleast_1d(q2.logpdf(pts)) - math.log(z2))
    w, ok = normalised(-scale * (vals - f0) - (logq + math.log(0.5)))
    ess = float(1.0 / np.sum(w ** 2))
    positive = int(np.count_nonzero(w > 0))
    # without replacement (no repeated sets) while the weights allow it; otherwise drawing n
    # distinct points would have to take points of negligible weight and spread the sample
    replace = ess < n or positive < n
    idx = rng.choice(len(pts), size=n, replace=replace, p=w)
    info = {"method": "sampling importance resampling", "proposals": int(proposals), "inflation": float(inflation),
            "effective_sample_size": ess, "effective_sample_size_round_1": ess1, "max_weight_share": float(np.max(w)),
            "n_failed": int(np.sum(~ok)), "with_replacement": bool(replace), "distinct": int(len(np.unique(idx)))}
    if replace:
        info["warning"] = (f"effective sample size {ess:.0f} is below the {n} draws: resampled with replacement "
                           f"({info['distinct']} distinct sets); the proposal was too narrow or too wide for the "
                           f"likelihood: use more proposals")
    return pts[idx], info
