"""Uncertainty of an individual fit: profile likelihood and parametric bootstrap."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from carkinetics.fit.errors import FitError, NonIdentifiableWarning
from carkinetics.fit.optimise import fit_once

CHI2_1_95 = 3.841458820694124  # scipy.stats.chi2.ppf(0.95, 1)


@dataclass
class Profile:
    """A profile likelihood of one parameter.

    ``values`` are parameter values (natural scale), ``objective`` the minimised ``-2 log L``
    at each; ``lower``/``upper`` the 95% limits (NaN when the profile does not rise by 3.84
    before the bound: then ``flat_lower``/``flat_upper`` is true).
    """

    name: str
    values: np.ndarray
    objective: np.ndarray
    minimum: float
    lower: float
    upper: float
    flat_lower: bool
    flat_upper: bool
    threshold: float = CHI2_1_95

    @property
    def identifiable(self) -> bool:
        """Whether the profile crosses the threshold on both sides of the estimate."""
        return not (self.flat_lower or self.flat_upper)


def profile_likelihood(result, names=None, *, threshold=CHI2_1_95, max_points=30, progress=None):
    """Profile-likelihood 95% intervals for chosen parameters of an individual fit.

    For each parameter the log-value is fixed on a grid walking out from the estimate in
    both directions; at each point the other parameters (and sigma, when it was estimated)
    are re-optimised, warm-started from the neighbouring point. The interval is where
    ``-2 log L`` stays within ``threshold`` (3.84 = chi-square(1) 95%) of the minimum; the
    crossing is found by linear interpolation between grid points.

    Scaling: the objective is the full ``-2 log L``. With a known ``sigma`` it equals
    ``SSR / sigma^2 + const`` (SSR on the log scale), so the threshold 3.84 corresponds to
    an SSR rise of ``3.84 sigma^2``; with ``sigma`` estimated it is profiled out too (for
    uncensored data ``n log(SSR/n) + const``). A profile that stays below the threshold up
    to a bound is flat on that side: the limit is NaN and a
    :class:`NonIdentifiableWarning` is emitted.

    Parameters
    ----------
    result : FitResult
        From :func:`~carkinetics.fit.individual.fit_individual`.
    names : sequence of str, optional
        Estimated parameters to profile (default: all).
    threshold : float
        Rise of ``-2 log L`` that bounds the interval.
    max_points : int
        Grid points per side at most.
    progress : callable(done, total, label), optional

    Returns
    -------
    dict of str to Profile (also stored in ``result.profiles``)
    """
    problem = result.problem
    space = result.space
    names = list(space.names if names is None else names)
    for n in names:
        if n not in space.names:
            raise FitError(f"cannot profile '{n}': it is not estimated (estimated: {', '.join(space.names)})")
    sigma_fixed = None if result.sigma_estimated else result.sigma
    out = {}
    se = np.sqrt(np.clip(np.diag(result.covariance_log), 0, None)) if result.covariance_log is not None \
        else np.full(space.size, 0.2)
    for pi, name in enumerate(names):
        j = space.names.index(name)
        mask = np.zeros(space.size, bool)
        mask[j] = True
        pts = {result.x[j]: result.objective}
        limits = {}
        flat = {}
        for direction in (-1, 1):
            step = float(np.clip(se[j] / 2 if np.isfinite(se[j]) else 0.2, 0.02, 0.5))
            x_prev = result.x.copy()
            v = result.x[j]
            obj_prev = result.objective
            bound = space.log_lower[j] if direction < 0 else space.log_upper[j]
            limits[direction] = math.nan
            flat[direction] = False
            for _ in range(max_points):
                v_new = v + direction * step
                at_bound = (v_new <= bound) if direction < 0 else (v_new >= bound)
                if at_bound:
                    v_new = bound
                x, sg, obj, conv, _, _ = fit_once(problem, x_prev, sigma_fixed, mask, [v_new], max_nfev=100)
                pts[v_new] = obj
                delta = obj - result.objective
                if delta >= threshold:
                    limits[direction] = math.exp(_refine_crossing(problem, sigma_fixed, mask, x_prev, v, v_new,
                                                                  obj_prev, obj, result.objective + threshold, pts))
                    break
                if at_bound:
                    flat[direction] = True
                    break
                # adapt the step to the curvature: aim at ~1/3 of the threshold per step
                rise = obj - obj_prev
                if rise < 0.3:
                    step *= 2.0
                elif rise > 1.5:
                    step *= 0.5
                v, obj_prev, x_prev = v_new, obj, x
            else:
                flat[direction] = True
        vals = np.array(sorted(pts))
        prof = Profile(name=name, values=np.exp(vals), objective=np.array([pts[v] for v in vals]),
                       minimum=result.objective, lower=limits[-1], upper=limits[1],
                       flat_lower=flat[-1], flat_upper=flat[1], threshold=threshold)
        if not prof.identifiable:
            sides = " and ".join(s for s, f in (("below", flat[-1]), ("above", flat[1])) if f)
            warnings.warn(f"profile of '{name}' is flat {sides} the estimate (-2 log L rises by less than "
                          f"{threshold:.2f} up to the bound): '{name}' is not identifiable from these data",
                          NonIdentifiableWarning, stacklevel=2)
        out[name] = prof
        result.profiles[name] = prof
        if progress is not None:
            progress(pi + 1, len(names), "profiles")
    return out


def _refine_crossing(problem, sigma_fixed, mask, x_start, v_in, v_out, obj_in, obj_out, level, pts, tol=1e-4):
    """Where the profile crosses ``level`` between ``v_in`` (below) and ``v_out`` (above).

    Regula falsi (Illinois variant) on the re-optimised profile, to ``tol`` in log-value.
    """
    a, fa, b, fb = v_in, obj_in - level, v_out, obj_out - level
    side = 0
    x_warm = x_start
    for _ in range(12):
        c = b - fb * (b - a) / (fb - fa) if fb != fa else 0.5 * (a + b)
        if not (min(a, b) < c < max(a, b)):
            c = 0.5 * (a + b)
        x, _, obj, _, _, _ = fit_once(problem, x_warm, sigma_fixed, mask, [c], max_nfev=100)
        pts[c] = obj
        fc = obj - level
        if abs(b - a) < tol or abs(fc) < 1e-5:
            return c
        if fc < 0:
            a, fa, x_warm = c, fc, x
            if side == -1:
                fb /= 2
            side = -1
        else:
            b, fb = c, fc
            if side == 1:
                fa /= 2
            side = 1
        if abs(b - a) < tol:
            break
    return a - fa * (b - a) / (fb - fa) if fb != fa else 0.5 * (a + b)


def parametric_bootstrap(result, n=100, seed=0, progress=None):
    """Refit ``n`` datasets simulated from the fitted model (same times, censoring rule).

    Each replicate draws ``g(y*) = g(f(theta_hat)) + sigma_hat * eps``; a replicate value below
    the observation's LLOQ is censored at that LLOQ. Fits start at the estimate (one start).
    Returns a DataFrame (one row per replicate: estimates, sigma, objective, converged),
    also stored in ``result.bootstrap``.
    """
    import pandas as pd

    problem = result.problem
    rng = np.random.default_rng(seed)
    g_hat = problem.transform(problem.predict(result.x)[0])
    saved = (problem.gy.copy(), problem.censored.copy(), problem.n_uncensored)
    lloq = problem.lloq
    glloq = np.where(problem.log_scale, np.log(np.where(lloq > 0, lloq, 1.0)), lloq)
    rows = []
    try:
        for b in range(n):
            gy = g_hat + result.sigma * rng.standard_normal(g_hat.shape)
            cens = np.isfinite(lloq) & (gy < glloq)
            problem.gy = np.where(cens, glloq, gy)
            problem.censored = cens
            problem.n_uncensored = int((~cens).sum())
            sigma_fixed = None if result.sigma_estimated else result.sigma
            try:
                x, sg, obj, conv, _, _ = fit_once(problem, result.x, sigma_fixed)
                rows.append({"replicate": b, **{nm: math.exp(v) for nm, v in zip(result.space.names, x)},
                             "sigma": sg, "objective": obj, "converged": conv})
            except FitError:
                rows.append({"replicate": b, "converged": False})
            if progress is not None:
                progress(b + 1, n, "bootstrap")
    finally:
        problem.gy, problem.censored, problem.n_uncensored = saved
    result.bootstrap = pd.DataFrame(rows)
    return result.bootstrap
