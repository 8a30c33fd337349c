"""Calibration of a model across products and trials: the objective and the fit.

The distance and the optimiser are those of :func:`carkinetics.fit.target_fit.fit_targets`:
standardised squared distances on the log scale (linear for proportions), common random
numbers (every scenario's virtual cohort is the same patients at every step), scipy's
differential evolution polished by Nelder-Mead, or Nelder-Mead from the model values.
:func:`calibrate` fits a :class:`~carkinetics.studies.calibration_file.Calibration`
(:func:`carkinetics.studies.calibration_file.load_calibration`); its result is written by
:func:`carkinetics.studies.calibration_output.write_calibration`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from carkinetics.errors import CarKineticsError
from carkinetics.studies.calibration_file import OPTIMISERS, Calibration


class CalibrationError(CarKineticsError, ValueError):
    """A calibration file or run has a problem."""


class JointCohorts:
    """Simulated statistics of every target at log-parameters ``x``: one cohort per scenario.

    Every scenario's virtual cohort uses the calibration's ``n`` and ``seed`` at every
    evaluation (common random numbers) with the product's current parameter values.
    """

    def __init__(self, cal: Calibration, n=None, jobs=None):
        self.cal = cal
        self.n = int(n or cal.n)
        self.jobs = jobs if jobs is not None else cal.jobs
        self.n_evaluations = 0

    def patients(self, x):
        """The per-patient table of every scenario with a target, at log-parameters ``x``.

        Parameters
        ----------
        x : numpy.ndarray, shape (n_estimates,)
            Log parameter values, in the order of the calibration's estimates.

        Returns
        -------
        dict
            ``id(scenario)`` -> pandas.DataFrame.
        """
        from carkinetics.cohort.pipeline import run_cohort

        tables = {}
        for product, scenarios in self.cal.products.items():
            over = self.cal.overrides(x, product)
            for sc in scenarios:
                if not any(t.scenario is sc for t in self.cal.targets):
                    continue
                res = run_cohort(sc, n=self.n, seed=self.cal.seed, jobs=self.jobs, parameters=over, bands=False)
                tables[id(sc)] = res.patients
        return tables

    def statistics(self, x) -> np.ndarray:
        """Simulated value of each target (vector, the calibration's target order)."""
        from carkinetics.studies.validate import cohort_statistic

        self.n_evaluations += 1
        tables = self.patients(x)
        out = np.empty(len(self.cal.targets))
        for k, tg in enumerate(self.cal.targets):
            try:
                out[k] = cohort_statistic(tables[id(tg.scenario)], tg.spec, tg.statistic, tg.time)[0]
            except (ValueError, KeyError) as err:
                raise CalibrationError(f"{tg.scenario.path}: targets.{tg.target_id}: {err}") from None
        return out

    def objective(self, X) -> np.ndarray:
        """The distance between simulated and reported targets at each row of ``X``.

        Parameters
        ----------
        X : array_like, shape (n_points, n_estimates) or (n_estimates,)
            Log parameter values.

        Returns
        -------
        numpy.ndarray, shape (n_points,)
            :func:`carkinetics.fit.target_fit.target_distance`.
        """
        from carkinetics.fit.target_fit import target_distance

        X = np.atleast_2d(X)
        st = np.column_stack([self.statistics(x) for x in X])
        t = self.cal.targets
        return target_distance(st, [g.observed for g in t], [g.se for g in t], [g.log_scale for g in t],
                               [g.weight for g in t])


@dataclass
class CalibrationResult:
    """Result of :func:`calibrate`."""

    calibration: Calibration
    x: np.ndarray
    x_initial: np.ndarray
    objective: float
    objective_initial: float
    comparison: object  # pandas.DataFrame
    starts: object  # pandas.DataFrame
    n_at_best: int
    n_evaluations: int
    n: int
    seconds: float

    @property
    def estimates(self) -> dict:
        """Estimate label -> calibrated value (model units)."""
        return {e.label: float(math.exp(v)) for e, v in zip(self.calibration.estimates, self.x)}

    def parameter_set(self, product) -> dict:
        """The calibrated values of one product (shared and product-specific)."""
        return self.calibration.overrides(self.x, product)

    def table(self):
        """The estimates as a table: parameter, product, estimate, initial value, unit, spread over the best starts.

        Returns
        -------
        pandas.DataFrame
        """
        import pandas as pd

        rows = []
        at = self.starts[self.starts["at_best"]]
        for e, v, v0 in zip(self.calibration.estimates, self.x, self.x_initial):
            par = self.calibration.model.parameter(e.parameter)
            vals = at[e.label].to_numpy(float) if e.label in at else np.array([])
            rows.append({"parameter": e.parameter, "product": e.product or "all (shared)",
                         "estimate": math.exp(v), "initial": math.exp(v0), "unit": par.unit,
                         "lower_bound": math.exp(e.log_lower), "upper_bound": math.exp(e.log_upper),
                         "at_bound": bool(min(v - e.log_lower, e.log_upper - v) < 1e-3),
                         "spread_at_best": float(vals.max() / vals.min() - 1) if len(vals) else math.nan,
                         "source_before": par.source, "note": e.note})
        return pd.DataFrame(rows)


def calibrate(cal: Calibration, *, n=None, method=None, starts=None, maxiter=None, jobs=None, progress=None):
    """Fit the calibration's estimates to its targets.

    Parameters
    ----------
    cal : Calibration
        From :func:`carkinetics.studies.calibration_file.load_calibration`.
    n, method, starts, maxiter, jobs :
        Overrides of the file's settings (patients per scenario, optimiser, optimiser
        runs, its iteration budget: generations of differential evolution, or
        Nelder-Mead iterations per estimate).
    progress : callable(str), optional
        Called with a line after each evaluation batch.

    Returns
    -------
    CalibrationResult
    """
    import time

    import pandas as pd

    from carkinetics.fit.optimise import minimise_distance

    method = method or cal.method
    if method not in OPTIMISERS:
        raise CalibrationError(f"method must be one of {', '.join(OPTIMISERS)}, got {method!r}")
    starts = int(starts or cal.starts)
    maxiter = maxiter or cal.maxiter
    t0 = time.perf_counter()
    joint = JointCohorts(cal, n=n, jobs=jobs)
    lo = np.array([e.log_lower for e in cal.estimates])
    hi = np.array([e.log_upper for e in cal.estimates])
    x0 = cal.initial_x()
    st0 = joint.statistics(x0)
    best = [math.inf]

    def objective(X):
        f = joint.objective(X)
        best[0] = min(best[0], float(np.min(f)))
        if progress is not None:
            progress(f"evaluations {joint.n_evaluations}, best objective {best[0]:.4g}")
        return f

    k = len(cal.estimates)
    starts_df, x, n_best = minimise_distance(
        objective, lo, hi, x0, cal.labels, method=method, starts=starts, seed=cal.seed, popsize=cal.popsize,
        maxiter=maxiter or 30, tol=1e-3, polish_maxiter=(maxiter or 60) * k if method == "nelder-mead" else 40 * k)
    st = joint.statistics(x)
    t = cal.targets
    from carkinetics.fit.target_fit import target_distance

    f0 = float(target_distance(st0[:, None], [g.observed for g in t], [g.se for g in t],
                               [g.log_scale for g in t], [g.weight for g in t])[0])
    rows = []
    for g, a, b in zip(t, st0, st):
        h = (lambda v: math.log(max(v, 1e-300))) if g.log_scale else (lambda v: v)
        contrib = (lambda v: g.weight * ((h(v) - g.observed) / g.se) ** 2 if math.isfinite(v) else math.inf)
        rows.append({"target_id": g.target_id, "product": g.product, "scenario": g.scenario.name,
                     "statistic": g.statistic, "timepoint_days": g.time, "reported": g.reported,
                     "reported_lower": g.lower, "reported_upper": g.upper, "scale": "log" if g.log_scale else "linear",
                     "se": g.se, "se_source": g.se_source, "weight": g.weight, "simulated_initial": a,
                     "simulated": b, "contribution_initial": contrib(a), "contribution": contrib(b),
                     "inside_initial": _inside(a, g), "inside": _inside(b, g)})
    comparison = pd.DataFrame(rows)
    obj = float(comparison["contribution"].sum())
    return CalibrationResult(calibration=cal, x=np.asarray(x, float), x_initial=x0, objective=obj,
                             objective_initial=f0, comparison=comparison, starts=starts_df, n_at_best=n_best,
                             n_evaluations=joint.n_evaluations, n=joint.n, seconds=time.perf_counter() - t0)


def _inside(v, g):
    """Whether ``v`` lies in target ``g``'s reported interval (None without an interval or a value)."""
    if not (math.isfinite(g.lower) and math.isfinite(g.upper) and math.isfinite(v)):
        return None
    return bool(g.lower - 1e-12 <= v <= g.upper + 1e-12)
