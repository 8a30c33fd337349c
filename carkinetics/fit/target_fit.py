"""Fits of typical parameter values to reported numbers.

The cohort simulator is a :mod:`carkinetics.fit.cohort_simulators` callable, the error measure
is :func:`target_distance` and the optimiser :func:`~carkinetics.fit.optimise.minimise_distance`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from carkinetics.fit.cohort_simulators import CRNCohort
from carkinetics.fit.optimise import minimise_distance
from carkinetics.fit.space import ParameterSpace
from carkinetics.fit.targets import simulated_statistics


@dataclass
class TargetFitResult:
    """Result of :func:`fit_targets`.

    ``comparison`` has one row per target: reported value, interval, standard error used,
    simulated value at the optimum and its contribution to the objective. ``starts`` has
    one row per optimiser run (seed, objective, estimates); ``n_at_best`` counts runs
    within :data:`~carkinetics.fit.optimise.BEST_TOLERANCE` of the best objective.
    """

    model: object
    space: ParameterSpace
    estimates: dict
    x: np.ndarray
    objective: float
    comparison: object
    starts: object
    n_at_best: int
    converged: bool
    cohort_size: int
    seed: int
    method: str
    targets_path: str = ""
    targets_sha256: str = ""

    def table(self):
        """Estimates with bounds and their relative spread over the runs at the best objective."""
        import pandas as pd

        rows = []
        for j, name in enumerate(self.space.names):
            par = self.model.parameter(name)
            vals = self.starts[name].to_numpy(float)[self.starts["at_best"].to_numpy(bool)]
            rows.append({"parameter": name, "estimate": self.estimates[name], "unit": par.unit,
                         "initial": par.value, "lower_bound": math.exp(self.space.log_lower[j]),
                         "upper_bound": math.exp(self.space.log_upper[j]),
                         "spread_at_best": float(np.max(vals) / np.min(vals) - 1) if len(vals) else math.nan})
        return pd.DataFrame(rows)


def target_distance(simulated, observed, se, log_scale, weight):
    """Distance of simulated statistics (K x S: K targets, S candidates) to reported ones.

    ``sum_k w_k ((h(sim_k) - h(obs_k)) / se_k)^2`` with ``h = log`` where ``log_scale`` and the
    identity elsewhere; ``observed`` is already on that scale. A statistic that could not be
    computed (NaN, e.g. no patient in its subgroup) counts as 1000 standard errors away.
    """
    st = np.asarray(simulated, float)
    logs = np.asarray(log_scale, bool)[:, None]
    h = np.where(logs, np.log(np.maximum(np.where(np.isfinite(st), st, 1e-300), 1e-300)), st)
    d = (h - np.asarray(observed, float)[:, None]) / np.asarray(se, float)[:, None]
    d = np.where(np.isfinite(d), d, 1e3)
    return np.sum(np.asarray(weight, float)[:, None] * d ** 2, axis=0)


def fit_targets(model, targets, estimate, *, cohort=None, n=200, seed=0, events=(), bounds=None, initial=None,
                quantities=None, starts=3, method="differential_evolution", popsize=10, maxiter=200, tol=1e-7,
                progress=None, targets_path="", targets_sha256="") -> TargetFitResult:
    """Fit typical parameter values so a virtual cohort reproduces reported statistics.

    The distance is ``sum_k w_k ((h(sim_k) - h(obs_k)) / se_k)^2`` with ``h = log`` for
    positive statistics (medians, means, geometric means) and the identity for proportions;
    ``se_k`` comes from the reported interval
    (:meth:`~carkinetics.fit.targets.Target.standard_error`). The cohort uses common random
    numbers (the same draws at every step), proportions use smoothed indicators, and the optimiser is ``scipy.optimize.differential_evolution`` (vectorised:
    a whole generation is one simulation batch), run ``starts`` times with seeds
    ``seed+1, seed+2, ...`` and polished by bounded Nelder-Mead; ``method="nelder-mead"``
    runs Nelder-Mead from a seeded Latin hypercube of starts instead.

    Parameters
    ----------
    targets : list of Target
        From :func:`~carkinetics.fit.targets.load_target_table`.
    cohort : callable, optional
        ``cohort(typical (S x P)) -> CohortOutputs``; default a
        :class:`~carkinetics.fit.cohort_simulators.CRNCohort` of ``n`` patients with ``seed``
        and ``events`` (any cohort runner can be plugged in).

    Returns
    -------
    TargetFitResult
    """
    import pandas as pd

    base = model.parameter_vector(initial or {})
    space = ParameterSpace.build(model, estimate, bounds, base)
    if cohort is None:
        extra = [t.timepoint for t in targets if math.isfinite(t.timepoint)]
        horizon = max([60.0] + extra)
        cohort = CRNCohort(model, n, seed, events=events, horizon=horizon, extra_times=extra)
    obs, se, logs, w, how = [], [], [], [], []
    for tg in targets:
        s, h = tg.standard_error()
        obs.append(math.log(tg.value) if tg.log_scale else tg.value)
        se.append(s)
        logs.append(tg.log_scale)
        w.append(tg.weight)
        how.append(h)
    obs, se, logs, w = map(np.asarray, (obs, se, logs, w))
    n_eval = [0]

    def sims(X):
        X = np.atleast_2d(X)
        P = np.repeat(base[None, :], X.shape[0], axis=0)
        P[:, space.index] = np.exp(X)
        return simulated_statistics(cohort(P), targets, quantities)  # (K, S)

    def objective(X):
        X = np.atleast_2d(X)
        n_eval[0] += X.shape[0]
        return target_distance(sims(X), obs, se, logs, w)

    lo, hi = space.log_lower, space.log_upper
    x_init = space.clip(np.log(np.maximum(base[space.index], np.exp(lo))))
    starts_df, x, n_best = minimise_distance(objective, lo, hi, x_init, space.names, method=method, starts=starts,
                                             seed=seed, popsize=popsize, maxiter=maxiter, tol=tol,
                                             progress=progress, counter=n_eval)
    best = starts_df.loc[int(starts_df["objective"].idxmin())]
    st = sims(x[None, :])[:, 0]
    comp = pd.DataFrame({"target_id": [t.target_id for t in targets], "quantity": [t.quantity for t in targets],
                         "statistic": [t.statistic for t in targets], "reported": [t.value for t in targets],
                         "lower": [t.lower for t in targets], "upper": [t.upper for t in targets],
                         "simulated": st, "scale": np.where(logs, "log", "linear"), "se": se, "se_source": how})
    hs = np.where(logs, np.log(np.maximum(st, 1e-300)), st)
    comp["contribution"] = w * ((hs - obs) / se) ** 2
    return TargetFitResult(model=model, space=space,
                           estimates={nm: float(math.exp(v)) for nm, v in zip(space.names, x)},
                           x=x, objective=float(best["objective"]), comparison=comp,
                           starts=starts_df, n_at_best=n_best,
                           converged=bool(best["converged"]), cohort_size=getattr(cohort, "n", 0), seed=seed,
                           method=method, targets_path=str(targets_path), targets_sha256=targets_sha256)
