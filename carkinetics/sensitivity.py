"""Which parameters drive an outcome: one-at-a-time (tornado) and global sensitivity.

- :func:`tornado`: the virtual cohort with one parameter's typical value at its low and
  then at its high value (the model's ``bounds``, or a fold change around the typical
  value), every other parameter as in the scenario, the same virtual patients each time
  (common random numbers). The outcome is any cohort statistic of an endpoint.
- :func:`global_sensitivity`: a Latin hypercube over the chosen parameters' ranges
  (log-uniform where a range spans more than a factor of 10), one *typical* patient per
  sample (no between-patient variability), and either the partial rank correlation
  coefficient (PRCC, :func:`prcc`, with a bootstrap interval) of each parameter with the
  per-patient outcome, or Sobol indices through :func:`scipy.stats.sobol_indices`
  (:func:`sobol`).

Outcomes are written ``endpoint`` (the default statistic: ``proportion`` for a binary
endpoint, ``median`` for a continuous one, ``km_median`` for a time-to-event one),
``endpoint:statistic`` (any statistic of :func:`carkinetics.summary.summarise`, e.g.
``cmax:median``, ``cmax:q95``) or ``endpoint@day`` (Kaplan-Meier survival at that day).
For the global measures the per-patient value is used: the 0/1 or continuous endpoint
value, the event time of a time-to-event endpoint, or for ``endpoint@day`` whether the
patient is event-free at that day.

References
----------
Marino S, Hogue IB, Ray CJ, Kirschner DE (2008). A methodology for performing global
uncertainty and sensitivity analysis in systems biology. J Theor Biol 254:178-196,
doi:10.1016/j.jtbi.2008.04.011 (LHS-PRCC).
Saltelli A et al. (2010). Variance based sensitivity analysis of model output. Comput
Phys Commun 181:259-270, doi:10.1016/j.cpc.2009.09.018 (the estimator of
``scipy.stats.sobol_indices``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import CarKineticsError, suggestion

#: Global methods.
METHODS = ("prcc", "sobol")
#: A parameter range wider than this factor is sampled log-uniformly.
LOG_RANGE_FACTOR = 10.0
GLOBAL_COLUMNS = ["parameter", "index", "value", "lower", "upper", "p_value"]
TORNADO_COLUMNS = ["parameter", "typical", "low", "high", "outcome_low", "outcome_high", "baseline", "swing"]


class SensitivityError(CarKineticsError, ValueError):
    """A sensitivity analysis cannot run as asked (unknown outcome, parameter, range)."""


# ----------------------------------------------------------------------------------------
# pure statistics
# ----------------------------------------------------------------------------------------


def latin_hypercube(lower, upper, n, seed=0, log=None) -> np.ndarray:
    """A Latin-hypercube sample of ``n`` points in a box.

    Parameters
    ----------
    lower, upper : array_like, shape (k,)
        The box; ``lower < upper``.
    n : int
        Number of points.
    seed : int
    log : array_like of bool, shape (k,), optional
        Sample these coordinates uniformly in log (needs ``lower > 0``). Default: where
        ``upper / lower > LOG_RANGE_FACTOR``.

    Returns
    -------
    ndarray, shape (n, k)
    """
    from scipy.stats import qmc

    lo = np.asarray(lower, float)
    hi = np.asarray(upper, float)
    if lo.shape != hi.shape or lo.ndim != 1 or not np.all(hi > lo):
        raise SensitivityError("latin_hypercube: need lower < upper, one value per parameter")
    log = default_log(lo, hi) if log is None else np.asarray(log, bool)
    if np.any(log & (lo <= 0)):
        raise SensitivityError("latin_hypercube: log-uniform sampling needs lower > 0")
    u = qmc.LatinHypercube(d=lo.size, rng=np.random.default_rng(seed)).random(int(n))
    out = np.empty_like(u)
    lin = ~log
    out[:, lin] = lo[lin] + u[:, lin] * (hi[lin] - lo[lin])
    if log.any():
        a, b = np.log(lo[log]), np.log(hi[log])
        out[:, log] = np.exp(a + u[:, log] * (b - a))
    return out


def default_log(lower, upper) -> np.ndarray:
    """Whether each range is sampled in log: positive and wider than :data:`LOG_RANGE_FACTOR`."""
    lo = np.asarray(lower, float)
    hi = np.asarray(upper, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (lo > 0) & (hi / np.where(lo > 0, lo, 1.0) > LOG_RANGE_FACTOR)


def _prcc_values(X, y) -> np.ndarray:
    """PRCC of every column of X with y, from the inverse of the rank correlation matrix."""
    from scipy.stats import rankdata

    R = np.column_stack([rankdata(X, axis=0), rankdata(y)])
    C = np.corrcoef(R, rowvar=False)
    k = X.shape[1]
    try:
        P = np.linalg.inv(C)
    except np.linalg.LinAlgError:
        P = np.linalg.pinv(C)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = -P[:k, k] / np.sqrt(P[np.arange(k), np.arange(k)] * P[k, k])
    return np.clip(r, -1.0, 1.0)


def prcc(X, y, names=None, n_boot=500, level=0.95, seed=0):
    """Partial rank correlation coefficients of each input with an output.

    The PRCC of input ``i`` is the correlation between the residuals of the ranks of
    ``x_i`` and of ``y`` after linear regression on the ranks of all other inputs
    (Marino et al. 2008); it is computed here from the inverse of the rank correlation
    matrix, which is algebraically the same.

    Parameters
    ----------
    X : array_like, shape (n, k)
        Inputs (e.g. a Latin-hypercube sample of parameters).
    y : array_like, shape (n,)
        Output; rows where it is NaN are left out.
    names : sequence of str, optional
    n_boot : int
        Bootstrap resamples (rows drawn with replacement) for the percentile interval;
        0 for none.
    level : float
        Confidence level of the interval.
    seed : int

    Returns
    -------
    pandas.DataFrame
        Columns parameter, index (``"prcc"``), value, lower, upper, p_value (two-sided
        t test of zero partial correlation with ``n - 2 - (k - 1)`` degrees of freedom).
    """
    import pandas as pd
    from scipy import stats

    X = np.asarray(X, float)
    y = np.asarray(y, float)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise SensitivityError(f"prcc: X must be (n, k) and y (n,), got {X.shape} and {y.shape}")
    ok = np.isfinite(y) & np.all(np.isfinite(X), axis=1)
    X, y = X[ok], y[ok]
    n, k = X.shape
    names = list(names) if names is not None else [f"x{i}" for i in range(k)]
    if n < k + 3 or np.ptp(y) == 0:
        value = np.full(k, np.nan)
    else:
        value = _prcc_values(X, y)
    dof = n - 2 - (k - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = value * np.sqrt(dof / (1 - value ** 2))
    p = 2 * stats.t.sf(np.abs(t), dof) if dof > 0 else np.full(k, np.nan)
    lower = np.full(k, np.nan)
    upper = np.full(k, np.nan)
    if n_boot and np.all(np.isfinite(value)):
        rng = np.random.default_rng(seed)
        boots = np.empty((n_boot, k))
        for b in range(n_boot):
            idx = rng.integers(0, n, n)
            yb = y[idx]
            boots[b] = _prcc_values(X[idx], yb) if np.ptp(yb) > 0 else np.nan
        a = (1 - level) / 2
        lower, upper = np.nanquantile(boots, [a, 1 - a], axis=0)
    return pd.DataFrame({"parameter": names, "index": "prcc", "value": value, "lower": lower, "upper": upper,
                         "p_value": p}, columns=GLOBAL_COLUMNS)


def sobol(func, lower, upper, n=256, names=None, seed=0, log=None, n_boot=200, level=0.95):
    """First-order and total Sobol indices of ``func`` over a box, by :func:`scipy.stats.sobol_indices`.

    Parameters
    ----------
    func : callable
        ``func(X)`` with ``X`` of shape (m, k) (one row per sample) returns m outputs.
    lower, upper : array_like, shape (k,)
    n : int
        Base sample size, a power of 2; ``func`` is evaluated at ``n * (k + 2)`` points.
    names : sequence of str, optional
    seed : int
    log : array_like of bool, optional
        Log-uniform coordinates (default as in :func:`latin_hypercube`).
    n_boot : int
        Bootstrap resamples for the intervals.

    Returns
    -------
    pandas.DataFrame
        Columns parameter, index (``"first_order"`` or ``"total"``), value, lower,
        upper, p_value (NaN).
    """
    import pandas as pd
    from scipy import stats

    lo = np.asarray(lower, float)
    hi = np.asarray(upper, float)
    k = lo.size
    names = list(names) if names is not None else [f"x{i}" for i in range(k)]
    if n < 2 or (n & (n - 1)) != 0:
        raise SensitivityError(f"sobol: n must be a power of 2, got {n}")
    log = default_log(lo, hi) if log is None else np.asarray(log, bool)
    dists = [stats.loguniform(lo[i], hi[i]) if log[i] else stats.uniform(lo[i], hi[i] - lo[i]) for i in range(k)]

    def f(x):  # scipy passes (k, m) and wants (1, m)
        return np.asarray(func(np.asarray(x).T), float).reshape(1, -1)

    res = stats.sobol_indices(func=f, n=int(n), dists=dists, rng=np.random.default_rng(seed))
    rows = []
    if n_boot:
        boot = res.bootstrap(confidence_level=level, n_resamples=int(n_boot))
        ci = {"first_order": boot.first_order.confidence_interval, "total": boot.total_order.confidence_interval}
    first = np.reshape(res.first_order, (-1, k))[0]
    total = np.reshape(res.total_order, (-1, k))[0]
    for idx, values in (("first_order", first), ("total", total)):
        for i, name in enumerate(names):
            lo_i = float(np.ravel(ci[idx].low)[i]) if n_boot else np.nan
            hi_i = float(np.ravel(ci[idx].high)[i]) if n_boot else np.nan
            rows.append((name, idx, float(values[i]), lo_i, hi_i, np.nan))
    return pd.DataFrame(rows, columns=GLOBAL_COLUMNS)


# ----------------------------------------------------------------------------------------
# outcomes of a scenario
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """An outcome: an endpoint column and how a cohort is reduced to one number.

    Attributes
    ----------
    endpoint : str
    statistic : str
        A statistic of :func:`carkinetics.summary.summarise`, or ``survival`` (with ``day``).
    day : float or None
        For ``survival``: Kaplan-Meier survival at this day.
    kind : str
        The endpoint's kind (binary, continuous, time).
    text : str
        As written.
    """

    endpoint: str
    statistic: str
    day: float | None
    kind: str
    text: str

    @property
    def label(self) -> str:
        if self.statistic == "survival":
            return f"{self.endpoint}: survival at day {self.day:g}"
        if self.statistic == "proportion":
            return f"{self.endpoint}: proportion of patients"
        return f"{self.endpoint}: {self.statistic}"


_DEFAULT_STATISTIC = {"binary": "proportion", "continuous": "median", "time": "km_median"}


def split_outcome(text):
    """Split ``endpoint``, ``endpoint:statistic`` or ``endpoint@day`` into (endpoint, statistic or
    None, day or None); the grammar of outcomes here and in :meth:`SweepResult.parse_outcome
    <carkinetics.sweep.SweepResult.parse_outcome>`.

    Raises
    ------
    ValueError
        When the day after ``@`` is not a number.
    """
    text = str(text)
    if "@" in text:
        endpoint, d = text.split("@", 1)
        try:
            return endpoint, None, float(d)
        except ValueError:
            raise ValueError("expected endpoint@day with a number of days") from None
    if ":" in text:
        endpoint, statistic = text.split(":", 1)
        return endpoint, statistic, None
    return text, None, None


def parse_outcome(text, endpoint_set) -> Outcome:
    """Parse ``endpoint``, ``endpoint:statistic`` or ``endpoint@day`` against a scenario's endpoints.

    Raises
    ------
    SensitivityError
        For an unknown endpoint or statistic, with the valid choices.
    """
    from .summary import QUANTILES

    if endpoint_set is None:
        raise SensitivityError("the scenario has no [endpoints]: an outcome needs an endpoint")
    kinds = {c: k for c, k in endpoint_set.kinds.items() if k != "event_flag"}
    text = str(text).strip()
    try:
        endpoint, statistic, day = split_outcome(text)
    except ValueError as err:
        raise SensitivityError(f"outcome '{text}': {err}") from None
    if day is not None:
        statistic = "survival"
    if endpoint not in kinds:
        raise SensitivityError(f"outcome '{text}': '{endpoint}' is not an endpoint of the scenario"
                               f"{suggestion(endpoint, list(kinds))} (endpoints: {', '.join(kinds)})")
    kind = kinds[endpoint]
    statistic = statistic or _DEFAULT_STATISTIC[kind]
    allowed = {"binary": ["proportion"],
               "continuous": list(QUANTILES) + ["mean", "geomean"],
               "time": ["km_median", "survival"]}[kind]
    if kind == "time" and statistic.startswith("km_at_"):
        try:
            day = float(statistic[len("km_at_"):])
            statistic = "survival"
        except ValueError:
            pass
    if statistic == "survival" and kind != "time":
        raise SensitivityError(f"outcome '{text}': survival at a day needs a time-to-event endpoint; "
                               f"'{endpoint}' is {kind}")
    if statistic not in allowed:
        raise SensitivityError(f"outcome '{text}': '{statistic}' is not a statistic of the {kind} endpoint "
                               f"'{endpoint}'{suggestion(statistic, allowed)} (choose from {', '.join(allowed)}"
                               f"{', or endpoint@day' if kind == 'time' else ''})")
    return Outcome(endpoint, statistic, day, kind, text)


def cohort_value(patients, outcome: Outcome, endpoint_set) -> float:
    """The outcome of a whole virtual cohort (all its arms together; failed patients left out)."""
    from . import summary as sm

    df = patients[patients["status"] == 0] if "status" in patients.columns else patients
    if outcome.statistic == "survival":
        t = df[outcome.endpoint].to_numpy(float)
        e = df[f"{outcome.endpoint}_event"].to_numpy(float)
        return float(sm.kaplan_meier(t, e).at(outcome.day)[0])
    table = sm.summarise(df, endpoint_set, by=None)
    row = table[(table["endpoint"] == outcome.endpoint) & (table["statistic"] == outcome.statistic)]
    return float(row["value"].iloc[0]) if len(row) else math.nan


def patient_values(patients, outcome: Outcome) -> np.ndarray:
    """The outcome per patient, for global measures.

    Binary and continuous endpoints: the value itself. ``endpoint@day``: 1 if the
    patient is event-free at the day, 0 if the event came by then, NaN if censored
    before it. Other time-to-event statistics: the event (or censoring) time.
    """
    x = patients[outcome.endpoint].to_numpy(float)
    if outcome.kind != "time":
        return x
    if outcome.statistic == "survival":
        e = patients[f"{outcome.endpoint}_event"].to_numpy(float)
        alive = (x > outcome.day) | ((x >= outcome.day) & (e == 0))  # censored at the day: event-free there
        out = np.where(alive, 1.0, np.where(e == 1, 0.0, np.nan))
        return np.where(np.isfinite(x), out, np.nan)
    return x


# ----------------------------------------------------------------------------------------
# parameter ranges
# ----------------------------------------------------------------------------------------


def parameter_ranges(scenario, parameters=None, fold=None):
    """Low and high value of each parameter for a sensitivity analysis.

    Parameters
    ----------
    scenario : Scenario
        Typical values are the model's after the scenario's ``[parameters]``.
    parameters : sequence of str, optional
        Default: every parameter with ``bounds`` (with ``fold``: every parameter with a
        non-zero typical value), whose range is not a single point.
    fold : float, optional
        Range ``typical / fold .. typical * fold``, within the bounds; default: the bounds.

    Returns
    -------
    pandas.DataFrame
        Columns parameter, typical, low, high, log (sampled log-uniformly by the global
        methods), unit.
    """
    import pandas as pd

    model = scenario.model
    typical = dict(zip(model.parameter_names, scenario.parameter_vector()))
    if parameters is not None:
        bad = [p for p in parameters if p not in model.parameter_names]
        if bad:
            raise SensitivityError("; ".join(f"'{p}' is not a parameter of model '{model.name}'"
                                             f"{suggestion(p, model.parameter_names)}" for p in bad))
        names = list(dict.fromkeys(parameters))
    else:
        names = list(model.parameter_names)
    rows, problems = [], []
    for name in names:
        par = model.parameter(name)
        typ = float(typical[name])
        bounds = par.bounds
        if fold is not None:
            if typ == 0:
                if parameters is not None:
                    problems.append(f"'{name}' has typical value 0: a fold range is empty (use its bounds)")
                continue
            lo, hi = sorted((typ / fold, typ * fold))
            if bounds:
                lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        elif bounds:
            lo, hi = bounds
        else:
            if parameters is not None:
                problems.append(f"'{name}' has no bounds in the model file; give --fold")
            continue
        if not hi > lo:
            if parameters is not None:
                problems.append(f"'{name}': the range [{lo:g}, {hi:g}] is a single point")
            continue
        rows.append({"parameter": name, "typical": typ, "low": float(lo), "high": float(hi),
                     "log": bool(default_log([lo], [hi])[0]), "unit": par.unit})
    if problems:
        raise SensitivityError("; ".join(problems))
    if not rows:
        raise SensitivityError(f"no parameter of model '{model.name}' has a range to vary (bounds, or --fold)")
    return pd.DataFrame(rows, columns=["parameter", "typical", "low", "high", "log", "unit"])


# ----------------------------------------------------------------------------------------
# tornado
# ----------------------------------------------------------------------------------------


def tornado(scenario, outcome, parameters=None, *, fold=None, n=200, seed=1, jobs=None, arms=None,
            variables=None, progress=None):
    """One-at-a-time sensitivity of a cohort outcome over each parameter's range.

    The cohort is simulated at the typical values (baseline), then with one
    parameter's typical value at its low and at its high value, the others unchanged,
    always with the same seed (common random numbers: the same virtual patients and
    between-patient variability in every run).

    Parameters
    ----------
    scenario : Scenario
    outcome : str or Outcome
        See :func:`parse_outcome`.
    parameters, fold :
        See :func:`parameter_ranges`.
    n : int
        Virtual patients per run (``2 * n_parameters + 1`` runs).
    seed, jobs, arms, variables :
        As for :func:`carkinetics.cohort.run_cohort`.
    progress : callable(k_done, k_total), optional

    Returns
    -------
    pandas.DataFrame
        Columns parameter, typical, low, high, outcome_low, outcome_high, baseline,
        swing (``|outcome_high - outcome_low|``), sorted by swing (largest first);
        ``attrs["outcome"]`` holds the outcome's label.
    """
    from .cohort import run_cohort

    es = scenario.sections.get("endpoints")
    out = outcome if isinstance(outcome, Outcome) else parse_outcome(outcome, es)
    ranges = parameter_ranges(scenario, parameters, fold)
    total = 2 * len(ranges) + 1

    def value(overrides):
        res = run_cohort(scenario, n=n, seed=seed, jobs=jobs, parameters=overrides or None, arms=arms,
                         variables=variables, bands=False)
        return cohort_value(res.patients, out, es)

    baseline = value({})
    done = 1
    if progress is not None:
        progress(done, total)
    rows = []
    for r in ranges.itertuples(index=False):
        lo_v = value({r.parameter: r.low})
        hi_v = value({r.parameter: r.high})
        done += 2
        if progress is not None:
            progress(done, total)
        rows.append({"parameter": r.parameter, "typical": r.typical, "low": r.low, "high": r.high,
                     "outcome_low": lo_v, "outcome_high": hi_v, "baseline": baseline,
                     "swing": abs(hi_v - lo_v)})
    import pandas as pd

    table = pd.DataFrame(rows, columns=TORNADO_COLUMNS).sort_values("swing", ascending=False, kind="stable")
    table = table.reset_index(drop=True)
    table.attrs["outcome"] = out.label
    return table


# ----------------------------------------------------------------------------------------
# typical patients at given parameter values
# ----------------------------------------------------------------------------------------


def simulate_typical(scenario, values, names, *, seed=1, jobs=None, arms=None, variables=None):
    """Typical patients of a scenario with the given parameter values, one per row.

    Each patient is the scenario's typical patient (covariates at their typical values,
    no between-patient variability), in the arm the cohort's seed assigns to it, with
    the parameters ``names`` set to the row of ``values``; random events (hazards) use
    the uniforms of the cohort's patient with the same index.

    Parameters
    ----------
    scenario : Scenario
    values : array_like, shape (n, k)
    names : sequence of str, length k
    seed, jobs, arms, variables :
        As for :func:`carkinetics.cohort.run_cohort`.

    Returns
    -------
    pandas.DataFrame
        ``patient``, ``arm``, ``status`` and the endpoint columns.
    """
    import dataclasses

    import pandas as pd

    from .cohort import _ArmEvents
    from .population import Covariate, cohort_design
    from .simulate import simulate_batch

    model = scenario.model
    es = scenario.sections.get("endpoints")
    if es is None:
        raise SensitivityError(f"{scenario.path}: the scenario has no [endpoints]")
    X = np.asarray(values, float)
    n = X.shape[0]
    design = cohort_design(scenario, seed, variables=variables, arms=arms)
    spec = design.spec
    typical_covs = {k: Covariate(k, "constant", {"value": c.typical}) for k, c in spec.covariates.items()}
    design.spec = dataclasses.replace(spec, covariates=typical_covs)
    design.sd = np.zeros_like(design.sd)
    draws = design.draw(0, n)
    cols = [model.parameter_index(nm) for nm in names]
    params = draws.parameters.copy()
    params[:, cols] = X
    draws.parameters = params
    uniforms = design.uniforms(0, n, es.n_uniforms) if es.n_uniforms else np.zeros((n, 0))
    env_all = scenario.default_env()
    env_all.update(design.variables)
    status = np.zeros(n, dtype=np.int64)
    ep = {c: np.full(n, np.nan) for c in es.columns}
    outs = list(es.outputs_needed)
    save_outputs = [x for x in outs if x in model.output_names]
    save_states = [x for x in outs if x not in model.output_names]
    for k, arm in enumerate(design.arms):
        mask = draws.arm == k
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            continue
        arm_ev = _ArmEvents(scenario, arm.name, {**env_all, **arm.variables})
        ev_times, act_values = arm_ev.arrays(draws.env(model.parameter_names, mask), idx.size)
        res = simulate_batch(model, arm_ev.schedule, scenario.times, params[idx], event_times=ev_times,
                             action_values=act_values, options=scenario.solver, t0=scenario.t0, n_threads=jobs,
                             save_states=save_states, save_outputs=save_outputs)
        series = {x: np.ascontiguousarray(res.output(x) if x in res.output_names else res.state(x)) for x in outs}
        vals = es.compute(scenario.times, series, uniforms[idx], scenario.horizon)
        ok = res.status == 0
        status[idx] = res.status
        for c in es.columns:
            ep[c][idx] = np.where(ok, np.asarray(vals[c], float), np.nan)
    table = pd.DataFrame({"patient": draws.index, "arm": np.asarray(design.arm_names, dtype=object)[draws.arm],
                          "status": status})
    for c in es.columns:
        table[c] = ep[c]
    return table


# ----------------------------------------------------------------------------------------
# global sensitivity
# ----------------------------------------------------------------------------------------


def global_sensitivity(scenario, outcome, parameters=None, *, method="prcc", n_samples=256, fold=None, seed=1,
                       jobs=None, arms=None, variables=None, n_boot=500):
    """Global sensitivity of a per-patient outcome to the parameters, on typical patients.

    Parameters
    ----------
    scenario : Scenario
    outcome : str or Outcome
        See :func:`parse_outcome`; the per-patient value is used (:func:`patient_values`).
    parameters, fold :
        See :func:`parameter_ranges`.
    method : {"prcc", "sobol"}
        PRCC over a Latin hypercube of ``n_samples`` points, or Sobol indices with
        ``n_samples`` base samples (a power of 2; ``n_samples * (k + 2)`` patients).
    seed, jobs, arms, variables :
        As for :func:`carkinetics.cohort.run_cohort`.
    n_boot : int
        Bootstrap resamples for the intervals.

    Returns
    -------
    pandas.DataFrame
        Columns parameter, index, value, lower, upper, p_value; ``attrs["outcome"]``.
    """
    if method not in METHODS:
        raise SensitivityError(f"method must be one of {list(METHODS)}, got {method!r}"
                               f"{suggestion(str(method), METHODS)}")
    es = scenario.sections.get("endpoints")
    out = outcome if isinstance(outcome, Outcome) else parse_outcome(outcome, es)
    ranges = parameter_ranges(scenario, parameters, fold)
    names = ranges["parameter"].tolist()
    lo, hi, log = ranges["low"].to_numpy(float), ranges["high"].to_numpy(float), ranges["log"].to_numpy(bool)

    def evaluate(X):
        table = simulate_typical(scenario, X, names, seed=seed, jobs=jobs, arms=arms, variables=variables)
        return patient_values(table, out)

    if method == "prcc":
        if n_samples < len(names) + 3:
            raise SensitivityError(f"PRCC of {len(names)} parameters needs more than {len(names) + 3} samples, "
                                   f"got {n_samples}")
        X = latin_hypercube(lo, hi, n_samples, seed=seed, log=log)
        y = evaluate(X)
        table = prcc(X, y, names, n_boot=n_boot, seed=seed)
    else:
        if n_samples & (n_samples - 1):
            raise SensitivityError(f"Sobol indices need a power of 2 base samples, got {n_samples}")

        def func(X):
            y = evaluate(X)
            if not np.all(np.isfinite(y)):
                bad = int((~np.isfinite(y)).sum())
                raise SensitivityError(f"Sobol indices need a value for every sample; {bad} typical patients "
                                       f"gave none (failed simulation or censored before the day): use PRCC")
            return y

        table = sobol(func, lo, hi, n=n_samples, names=names, seed=seed, log=log, n_boot=min(n_boot, 200))
    table.attrs["outcome"] = out.label
    return table


# ----------------------------------------------------------------------------------------
# everything, written to a folder
# ----------------------------------------------------------------------------------------


@dataclass
class SensitivityResult:
    """Tornado and global tables of one outcome, and the settings that made them."""

    tornado: object
    global_: object
    ranges: object
    info: dict = field(default_factory=dict)
    path: Path | None = None

    def report_lines(self, top=5) -> list:
        """A few lines naming the parameters that drive the outcome most."""
        lines = [f"{self.info.get('scenario_name', '')}: sensitivity of {self.info.get('outcome_label')}"]
        if self.tornado is not None and len(self.tornado):
            t = self.tornado
            lines.append(f"  baseline {t['baseline'].iloc[0]:.4g}; largest one-at-a-time swings:")
            for r in t.head(top).itertuples():
                lines.append(f"    {r.parameter:32s} {r.outcome_low:.4g} (low) .. {r.outcome_high:.4g} (high)")
        if self.global_ is not None and len(self.global_):
            g = self.global_
            first = g["index"].iloc[0]
            sub = g[g["index"] == first].assign(a=lambda d: d["value"].abs()).sort_values("a", ascending=False)
            lines.append(f"  global ({first}), strongest:")
            for r in sub.head(top).itertuples():
                lines.append(f"    {r.parameter:32s} {r.value:+.3f} [{r.lower:+.3f}, {r.upper:+.3f}]")
        if self.path is not None:
            lines.append(f"  results in {self.path}")
        return lines


def run_sensitivity(scenario, outcome, output=None, *, methods=("tornado", "prcc"), parameters=None, fold=None,
                    n=200, n_samples=256, seed=1, jobs=None, arms=None, variables=None, progress=False):
    """Run the chosen sensitivity analyses of one outcome; write them to ``output``.

    Files: ``tornado.csv``, ``global.csv``, ``ranges.csv``, ``sensitivity.json``
    (figures: :func:`carkinetics.sweepplots.plot_results`).

    Returns
    -------
    SensitivityResult
    """
    from .io import atomic_output_dir, file_sha256, provenance, write_json

    allowed = ("tornado",) + METHODS
    bad = [m for m in methods if m not in allowed]
    if bad:
        raise SensitivityError(f"unknown method(s) {bad}; choose from {', '.join(allowed)}")
    if "prcc" in methods and "sobol" in methods:
        raise SensitivityError("choose one global method: prcc or sobol")
    es = scenario.sections.get("endpoints")
    out = parse_outcome(outcome, es)
    ranges = parameter_ranges(scenario, parameters, fold)
    names = ranges["parameter"].tolist()
    bar = None
    if progress:
        from .sweep import Progress

        bar = Progress(2 * len(names) + 1, label="tornado")
    tor = glob = None
    if "tornado" in methods:
        last = [0]

        def tick(done, total):
            while last[0] < done:
                last[0] += 1
                if bar is not None:
                    bar.point_done(n)

        tor = tornado(scenario, out, names, fold=fold, n=n, seed=seed, jobs=jobs, arms=arms, variables=variables,
                      progress=tick)
        if bar is not None:
            bar.close()
    method = next((m for m in methods if m in METHODS), None)
    if method is not None:
        glob = global_sensitivity(scenario, out, names, method=method, n_samples=n_samples, fold=fold, seed=seed,
                                  jobs=jobs, arms=arms, variables=variables)
    info = {"scenario": str(scenario.path), "scenario_name": scenario.name,
            "scenario_sha256": file_sha256(scenario.path), "model": str(scenario.model.path),
            "model_sha256": scenario.model.content_hash, "outcome": out.text, "outcome_label": out.label,
            "methods": list(methods), "n": n, "n_samples": n_samples, "seed": seed, "fold": fold,
            "range": "typical / fold .. typical * fold within bounds" if fold else "the model's bounds",
            "common_random_numbers": "every tornado run uses the same seed: the same virtual patients",
            "global_patients": "typical patients (covariates at typical values, no between-patient "
                               "variability), one per sample", "provenance": provenance()}
    res = SensitivityResult(tor, glob, ranges, info, None)
    if output is not None:
        with atomic_output_dir(output) as staging:
            ranges.to_csv(staging / "ranges.csv", index=False)
            if tor is not None:
                tor.to_csv(staging / "tornado.csv", index=False)
            if glob is not None:
                glob.to_csv(staging / "global.csv", index=False)
            write_json(staging / "sensitivity.json", info)
        res.path = Path(output)
    return res
