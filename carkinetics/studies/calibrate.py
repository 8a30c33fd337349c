"""Calibration of a model across products and trials: the objective and the fit.

The objective is ``[calibration] objective``: ``distance`` (standardised squared distances on
the log scale, linear for proportions, as :func:`carkinetics.fit.target_fit.fit_targets`) or
``likelihood`` (binomial, log(-log) normal and censoring-aware median terms:
:mod:`carkinetics.studies.calibration_objective`); the optimiser is that of ``fit_targets``: common random
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
        # estimating only links of the clinical outcome model: each scenario is simulated
        # once and only its endpoints are recomputed (OutcomeCohort; the same tables)
        outcome = set(cal.model.outcome_parameters)
        self.outcome_only = bool(cal.estimates) and all(e.parameter in outcome for e in cal.estimates)
        self._cohorts = {}

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
        from carkinetics.cohort.pipeline import OutcomeCohort, run_cohort

        tables = {}
        for product, scenarios in self.cal.products.items():
            over = self.cal.overrides(x, product)
            for sc in scenarios:
                if not any(t.scenario is sc for t in self.cal.targets):
                    continue
                if self.outcome_only:
                    if id(sc) not in self._cohorts:
                        self._cohorts[id(sc)] = OutcomeCohort(sc, self.n, self.cal.seed, over, jobs=self.jobs)
                    tables[id(sc)] = self._cohorts[id(sc)].patients(over)
                    continue
                res = run_cohort(sc, n=self.n, seed=self.cal.seed, jobs=self.jobs, parameters=over, bands=False)
                tables[id(sc)] = res.patients
        return tables

    def evaluate(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Simulated value of each target and its term of the objective, at log-parameters ``x``.

        Returns
        -------
        (statistics, terms) : tuple of numpy.ndarray
            In the calibration's target order; the objective is ``terms.sum()``
            (:mod:`carkinetics.studies.calibration_objective`).
        """
        from carkinetics.studies.calibration_objective import distance_term, likelihood_term
        from carkinetics.studies.validate import cohort_statistic

        self.n_evaluations += 1
        tables = self.patients(x)
        k = len(self.cal.targets)
        stats, terms = np.empty(k), np.empty(k)
        for j, tg in enumerate(self.cal.targets):
            table = tables[id(tg.scenario)]
            try:
                value, mc_lo, mc_hi, n_sim = cohort_statistic(table, tg.spec, tg.statistic, tg.time)
                p_event = math.nan
                if (self.cal.objective == "likelihood" and tg.statistic == "median"
                        and f"{tg.spec.endpoint}_event" in table.columns and math.isfinite(tg.reported)):
                    p_event = 1.0 - cohort_statistic(table, tg.spec, "km_estimate", tg.reported)[0]
            except (ValueError, KeyError) as err:
                raise CalibrationError(f"{tg.scenario.path}: targets.{tg.target_id}: {err}") from None
            stats[j] = value
            terms[j] = (likelihood_term(tg, value, n_sim, p_event, mc_lo, mc_hi) if self.cal.objective == "likelihood"
                        else distance_term(tg, value))
        return stats, terms

    def statistics(self, x) -> np.ndarray:
        """Simulated value of each target (vector, the calibration's target order)."""
        return self.evaluate(x)[0]

    def objective(self, X) -> np.ndarray:
        """The calibration's objective at each row of ``X``.

        Parameters
        ----------
        X : array_like, shape (n_points, n_estimates) or (n_estimates,)
            Log parameter values.

        Returns
        -------
        numpy.ndarray, shape (n_points,)
            The sum of the targets' terms (:meth:`evaluate`).
        """
        X = np.atleast_2d(X)
        return np.array([float(self.evaluate(x)[1].sum()) for x in X])


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
    uncertainty: object = None  # CalibrationUncertainty, when asked for
    started_from: str = ""  # the record whose estimates the optimiser started from, if not the scenarios' sets

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


def calibrate(cal: Calibration, *, n=None, method=None, starts=None, maxiter=None, jobs=None, progress=None,
              start=None, started_from=""):
    """Fit the calibration's estimates to its targets.

    Parameters
    ----------
    cal : Calibration
        From :func:`carkinetics.studies.calibration_file.load_calibration`.
    n, method, starts, maxiter, jobs :
        Overrides of the file's settings (patients per scenario, optimiser, optimiser
        runs, its iteration budget: generations of differential evolution, or
        Nelder-Mead iterations per estimate; 0: no optimisation, the start is the result, to
        profile or sample an earlier run's estimates).
    progress : callable(str), optional
        Called with a line after each evaluation batch.
    start : dict, optional
        Estimate label -> value to start from (and to report as "before") instead of the values
        the scenarios read (:func:`start_from_record` reads one from an earlier run).
    started_from : str, optional
        Where ``start`` came from, for the record.

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
    no_fit = maxiter == 0  # the start is the result (to profile or sample an earlier record)
    maxiter = maxiter or cal.maxiter
    t0 = time.perf_counter()
    joint = JointCohorts(cal, n=n, jobs=jobs)
    lo = np.array([e.log_lower for e in cal.estimates])
    hi = np.array([e.log_upper for e in cal.estimates])
    x0 = cal.initial_x()
    if start is not None:
        x0 = np.clip([math.log(start[label]) for label in cal.labels], lo, hi)
    st0, terms0 = joint.evaluate(x0)
    best = [math.inf]

    counter = [0]  # evaluations of the current optimiser run (minimise_distance resets it per run)

    def objective(X):
        f = joint.objective(X)
        counter[0] += len(f)
        best[0] = min(best[0], float(np.min(f)))
        if progress is not None:
            progress(f"evaluations {joint.n_evaluations}, best objective {best[0]:.4g}")
        return f

    k = len(cal.estimates)
    if no_fit:
        starts_df = pd.DataFrame([{"run": 0, "seed": cal.seed, "objective": float(terms0.sum()), "converged": False,
                                   "n_evaluations": 0, **{f"start_{a}": math.exp(v) for a, v in zip(cal.labels, x0)},
                                   **{a: math.exp(v) for a, v in zip(cal.labels, x0)}, "at_best": True}])
        x, n_best = x0, 1
    else:
        starts_df, x, n_best = minimise_distance(
            objective, lo, hi, x0, cal.labels, method=method, starts=starts, seed=cal.seed, popsize=cal.popsize,
            maxiter=maxiter or 30, tol=1e-3,
            polish_maxiter=(maxiter or 60) * k if method == "nelder-mead" else 40 * k, counter=counter)
    st, terms = joint.evaluate(x)
    t = cal.targets
    f0 = float(terms0.sum())
    rows = []
    for g, a, b, c0, c in zip(t, st0, st, terms0, terms):
        rows.append({"target_id": g.target_id, "product": g.product, "scenario": g.scenario.name,
                     "statistic": g.statistic, "timepoint_days": g.time, "reported": g.reported,
                     "reported_lower": g.lower, "reported_upper": g.upper, "scale": "log" if g.log_scale else "linear",
                     "se": g.se, "se_source": g.se_source, "weight": g.weight, "simulated_initial": a,
                     "simulated": b, "contribution_initial": float(c0), "contribution": float(c),
                     "inside_initial": _inside(a, g), "inside": _inside(b, g)})
    comparison = pd.DataFrame(rows)
    obj = float(comparison["contribution"].sum())
    return CalibrationResult(calibration=cal, x=np.asarray(x, float), x_initial=x0, objective=obj,
                             objective_initial=f0, comparison=comparison, starts=starts_df, n_at_best=n_best,
                             n_evaluations=joint.n_evaluations, n=joint.n, seconds=time.perf_counter() - t0,
                             started_from=str(started_from))


def start_from_record(cal: Calibration, folder) -> dict:
    """The estimates of an earlier run of the same calibration (its ``calibration.json``).

    Raises
    ------
    CalibrationError
        Naming the file: missing, unreadable, or its estimates are not this calibration's
        (a label missing, or a value that is not a positive number).
    """
    import json
    from pathlib import Path

    record = Path(folder) / "calibration.json"
    try:
        info = json.loads(record.read_text(encoding="utf-8"))
        est = info["estimates"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CalibrationError(f"{record}: not the record of a calibration run ({err})") from None
    missing = [label for label in cal.labels if label not in est]
    if missing:
        raise CalibrationError(f"{record}: estimates: no value for {', '.join(missing)} (expected the estimates of "
                               f"{cal.path.name}: {', '.join(cal.labels)})")
    bad = [label for label in cal.labels
           if not isinstance(est[label], (int, float)) or isinstance(est[label], bool) or not est[label] > 0
           or not math.isfinite(est[label])]
    if bad:
        raise CalibrationError(f"{record}: estimates: expected positive numbers, got "
                               + ", ".join(f"{b} = {est[b]!r}" for b in bad))
    return {label: float(est[label]) for label in cal.labels}


def _inside(v, g):
    """Whether ``v`` lies in target ``g``'s reported interval (None without an interval or a value)."""
    if not (math.isfinite(g.lower) and math.isfinite(g.upper) and math.isfinite(v)):
        return None
    return bool(g.lower - 1e-12 <= v <= g.upper + 1e-12)
