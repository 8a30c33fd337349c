"""Optimisers of the fits.

- :func:`fit_once`: one local maximum-likelihood fit of a
  :class:`~carkinetics.fit.problem.PatientProblem`: ``scipy.optimize.least_squares`` on the
  residuals (central-difference Jacobian from one batched simulation), alternating with the
  maximum-likelihood residual SD when it is estimated;
- :func:`minimise_distance`: a box-bounded minimiser of a vectorised distance (differential
  evolution or Nelder-Mead from seeded starts), the optimiser of target fits.
"""

from __future__ import annotations

import math

import numpy as np

from carkinetics.fit.errors import FitError
from carkinetics.fit.likelihood import prior_residuals
from carkinetics.fit.problem import FD_STEP, PatientProblem
from carkinetics.stats.sampling import latin_hypercube

BEST_TOLERANCE = 0.01  # starts within this of the best -2 log L "reached the best optimum"


def _least_squares(problem: PatientProblem, x0, sigma, fixed_mask=None, fixed_values=None, max_nfev=200):
    """Minimise -2 log L over the free log-parameters for a fixed sigma.

    ``fixed_mask`` (bool, k) holds some log-parameters at ``fixed_values`` (profiles).
    """
    from scipy.optimize import least_squares

    space = problem.space
    k = space.size
    free = np.ones(k, bool) if fixed_mask is None else ~np.asarray(fixed_mask, bool)
    xf = np.array(x0, float)
    if fixed_mask is not None:
        xf[~free] = fixed_values
    lo, hi = space.log_lower[free], space.log_upper[free]
    cache = {}
    prior = problem.prior

    def full(z):
        x = xf.copy()
        x[free] = z
        return x

    def fun(z):
        key = z.tobytes()
        if key not in cache:
            cache.clear()
            r = problem.residuals_from(problem.transform(problem.predict(full(z))[0]), sigma)
            if prior is not None:
                r = np.concatenate([r, prior_residuals(full(z), prior)[free]])
            cache[key] = r
        return cache[key]

    def jac(z):
        n = free.sum()
        X = np.repeat(full(z)[None, :], 2 * n, axis=0)
        cols = np.flatnonzero(free)
        for j, c in enumerate(cols):
            X[2 * j, c] += FD_STEP
            X[2 * j + 1, c] -= FD_STEP
        g = problem.transform(problem.predict(X))
        R = problem.residuals_from(g, sigma)
        J = np.nan_to_num((R[0::2] - R[1::2]).T / (2 * FD_STEP))
        if prior is not None:
            J = np.vstack([J, np.diag(1.0 / prior[1][free])])
        return J

    if free.sum() == 0:
        r = fun(np.zeros(0))
        return full(np.zeros(0)), r, None
    z0 = np.clip(np.asarray(x0, float)[free], lo, hi)
    res = least_squares(fun, z0, jac=jac, bounds=(lo, hi), method="trf", x_scale=1.0,
                        ftol=1e-10, xtol=1e-10, gtol=1e-10, max_nfev=max_nfev)
    return full(res.x), res.fun, res


def fit_once(problem, x0, sigma_fixed, fixed_mask=None, fixed_values=None, max_nfev=200, max_alternations=6):
    """One local fit: least squares for theta, alternating with the ML sigma if it is estimated.

    Parameters
    ----------
    problem : PatientProblem
    x0 : ndarray, shape (k,)
        Starting log-parameters.
    sigma_fixed : float or None
        Known residual SD, or None to estimate it.
    fixed_mask : ndarray of bool, shape (k,), optional
        Log-parameters held at ``fixed_values`` (profiles).
    fixed_values : sequence of float, optional
    max_nfev : int
        Evaluations per least-squares run.
    max_alternations : int
        Least-squares runs alternating with the residual SD at most.

    Returns
    -------
    (x, sigma, objective, converged, nfev, message)
        Log-parameters, residual SD, ``-2 log L`` (plus the prior term when ``problem.prior`` is
        set), whether the optimiser converged, function evaluations and its message.
    """
    sigma = sigma_fixed if sigma_fixed is not None else 0.5
    x = np.array(x0, float)
    res = None
    converged = True
    nfev = 0
    for _ in range(max_alternations):
        x, r, res = _least_squares(problem, x, sigma, fixed_mask, fixed_values, max_nfev=max_nfev)
        if res is not None:
            nfev += res.nfev
            converged = converged and res.status > 0
        if sigma_fixed is not None:
            break
        g = problem.transform(problem.predict(x)[0])
        new = problem.best_sigma(g)
        done = abs(math.log(new / sigma)) < 1e-4
        sigma = new
        if done:
            break
    else:
        converged = False
    g = problem.transform(problem.predict(x)[0])
    obj = problem.objective_from(g, sigma)
    if problem.prior is not None:
        obj += float(np.sum(prior_residuals(x, problem.prior) ** 2))
    msg = res.message if res is not None else "no free parameters"
    return x, sigma, obj, bool(converged and np.isfinite(obj)), nfev, msg


def _initial_simplex(x0, lo, hi, fraction):
    """Nelder-Mead simplex: ``x0`` and one vertex per coordinate moved by ``fraction`` of its range,
    towards the farther bound (so every vertex lies inside the box)."""
    k = len(x0)
    step = fraction * (hi - lo)
    sim = np.repeat(x0[None, :], k + 1, axis=0)
    for i in range(k):
        sim[i + 1, i] += step[i] if hi[i] - x0[i] >= x0[i] - lo[i] else -step[i]
    return sim


def minimise_distance(objective, lo, hi, x_init, names, *, method="differential_evolution", starts=3, seed=0,
                      popsize=10, maxiter=200, tol=1e-7, polish_maxiter=4000, progress=None, counter=None):
    """Minimise a distance over a box in log-parameter space: the optimiser of the target fits.

    ``objective(X)`` takes candidates in rows (S x k, log scale) and returns S distances.
    ``method="differential_evolution"`` runs ``scipy.optimize.differential_evolution``
    (vectorised: a generation is one call, Sobol initialisation) ``starts`` times with seeds
    ``seed+1, seed+2, ...``, each polished by bounded Nelder-Mead; ``"nelder-mead"`` runs
    bounded Nelder-Mead from ``x_init`` and then from seeded Latin-hypercube points
    (``polish_maxiter`` iterations at most per Nelder-Mead run).

    Returns
    -------
    (starts, x, n_at_best) : (pandas.DataFrame, ndarray, int)
        One row per optimiser run (run, seed, objective, converged, n_evaluations, start and
        final values by name, ``at_best``); the best point; how many runs reached the best
        objective within :data:`BEST_TOLERANCE`.
    """
    import pandas as pd
    from scipy.optimize import differential_evolution, minimize

    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    counter = counter if counter is not None else [0]
    k = len(lo)

    def one(x):
        return float(objective(np.asarray(x, float)[None, :])[0])

    rows = []
    for s in range(starts):
        counter[0] = 0
        if method == "differential_evolution":
            res = differential_evolution(lambda x: objective(x.T) if x.ndim == 2 else objective(x[None, :])[0],
                                         list(zip(lo, hi)), seed=seed + 1 + s, popsize=popsize, maxiter=maxiter,
                                         tol=tol, atol=1e-6, polish=False, vectorized=True, updating="deferred",
                                         init="sobol")
            x0, start = res.x, None
        elif method == "nelder-mead":
            if s == 0:
                start = np.clip(np.asarray(x_init, float), lo, hi)
            else:
                start = latin_hypercube(lo, hi, starts, seed)[s]
            x0 = start
        else:
            raise FitError(f"method must be 'differential_evolution' or 'nelder-mead', got {method!r}")
        options = {"xatol": 1e-6, "fatol": 1e-8, "maxiter": polish_maxiter, "adaptive": k > 3}
        if method == "nelder-mead":
            # a simplex spanning a tenth of each log-range: scipy's default (5 % of each
            # coordinate) is almost nothing for log-values near 0 (parameters near 1)
            options["initial_simplex"] = _initial_simplex(np.asarray(x0, float), lo, hi, 0.1)
        pol = minimize(one, x0, method="Nelder-Mead", bounds=list(zip(lo, hi)), options=options)
        f0 = one(x0)
        x = pol.x if pol.fun <= f0 else np.asarray(x0, float)
        obj = min(float(pol.fun), f0)
        conv = bool(pol.success and (method != "differential_evolution" or res.success))
        rows.append({"run": s, "seed": seed + 1 + s if method == "differential_evolution" else seed,
                     "objective": obj, "converged": conv, "n_evaluations": counter[0],
                     **({f"start_{nm}": math.exp(v) for nm, v in zip(names, start)} if start is not None else {}),
                     **{nm: math.exp(v) for nm, v in zip(names, x)}, "_x": x})
        if progress is not None:
            progress(s + 1, starts, "optimiser runs")
    table = pd.DataFrame(rows)
    b = int(table["objective"].idxmin())
    table["at_best"] = table["objective"] - table.loc[b, "objective"] <= BEST_TOLERANCE
    x = np.asarray(table.loc[b, "_x"], float)
    return table.drop(columns="_x"), x, int(table["at_best"].sum())
