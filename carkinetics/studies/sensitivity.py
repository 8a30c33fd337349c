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
  (:func:`sobol`). Every global analysis samples an inert :data:`DUMMY` parameter, and a
  parameter is flagged ``significant`` only when its index is distinguishable from the
  dummy's (:func:`flag_significance`); warnings say when samples are few.
- :func:`reachability`: parameters that cannot change the outcome by the model's structure
  and the event times (only in outputs the outcome does not read, only in events after the
  last day it reads) are not simulated by either analysis and are reported with the reason.

Outcomes are written ``endpoint`` (the default statistic: ``proportion`` for a binary
endpoint, ``median`` for a continuous one, ``km_median`` for a time-to-event one),
``endpoint:statistic`` (any statistic of :func:`carkinetics.stats.summary.summarise`, e.g.
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
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from carkinetics.errors import CarKineticsError, ScenarioError, suggestion

#: Global methods.
METHODS = ("prcc", "sobol")
#: A parameter range wider than this factor is sampled log-uniformly.
LOG_RANGE_FACTOR = 10.0
GLOBAL_COLUMNS = ["parameter", "index", "value", "lower", "upper", "p_value"]
#: Columns of :func:`global_sensitivity` (the pure :func:`prcc` and :func:`sobol` give
#: :data:`GLOBAL_COLUMNS`).
GLOBAL_TABLE_COLUMNS = GLOBAL_COLUMNS + ["rank", "rank_lower", "rank_upper", "significant", "reachable", "note"]
TORNADO_COLUMNS = ["parameter", "typical", "low", "high", "outcome_low", "outcome_high", "baseline", "swing"]
TORNADO_TABLE_COLUMNS = TORNADO_COLUMNS + ["reachable", "note"]
#: Name of the inert parameter added to every global analysis: sampled like the others
#: (uniform on [0, 1]) and never given to the model, so its index shows how large an index
#: sampling noise alone gives.
DUMMY = "(dummy)"
#: PRCC rule of thumb: at least this many samples per sampled parameter (dummy included).
PRCC_SAMPLES_PER_PARAMETER = 10
#: Sobol: warn when the dummy's interval reaches beyond this (estimator noise, in units of
#: the output variance).
SOBOL_NOISE_LIMIT = 0.05
#: Sobol indices below this are negligible (not flagged significant).
SOBOL_NEGLIGIBLE = 0.01
#: Sobol indices of a positive continuous outcome spanning more than this factor use its log10.
LOG_OUTCOME_FACTOR = 100.0
#: Default number of global samples (Latin-hypercube points for PRCC).
DEFAULT_SAMPLES = 4096
#: Default base samples for Sobol indices (a power of 2; ``n * (k + 3)`` typical patients).
DEFAULT_SOBOL_SAMPLES = 256


class SensitivityError(CarKineticsError, ValueError):
    """A sensitivity analysis cannot run as asked (unknown outcome, parameter, range)."""


class SensitivityWarning(UserWarning):
    """A sensitivity analysis ran but its statistics may be unreliable (too few samples)."""


def _scipy_rng(seed, old_name):
    """``{"rng": Generator}`` for scipy >= 1.15, else ``{old_name: Generator}`` (``seed`` or
    ``random_state``: scipy 1.11-1.14 do not know ``rng``)."""
    import scipy

    major, minor = (int(x) for x in scipy.__version__.split(".")[:2])
    gen = np.random.default_rng(seed)
    return {"rng": gen} if (major, minor) >= (1, 15) else {old_name: gen}


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
    u = qmc.LatinHypercube(d=lo.size, **_scipy_rng(seed, "seed")).random(int(n))
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
    return _prcc(X, y, names, n_boot, level, seed)[0]


def _prcc(X, y, names=None, n_boot=500, level=0.95, seed=0):
    """:func:`prcc` and its bootstrap replicates, shape (n_boot, k) (None without bootstrap)."""
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
    boots = None
    if n_boot and np.all(np.isfinite(value)):
        rng = np.random.default_rng(seed)
        boots = np.empty((n_boot, k))
        for b in range(n_boot):
            idx = rng.integers(0, n, n)
            yb = y[idx]
            boots[b] = _prcc_values(X[idx], yb) if np.ptp(yb) > 0 else np.nan
        a = (1 - level) / 2
        lower, upper = np.nanquantile(boots, [a, 1 - a], axis=0)
    table = pd.DataFrame({"parameter": names, "index": "prcc", "value": value, "lower": lower, "upper": upper,
                          "p_value": p}, columns=GLOBAL_COLUMNS)
    return table, boots


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

    def f(x):  # scipy passes (k, m) and wants (1, m), a writable array (it centres it in place)
        return np.array(func(np.asarray(x).T), dtype=float, copy=True).reshape(1, -1)

    res = stats.sobol_indices(func=f, n=int(n), dists=dists, **_scipy_rng(seed, "random_state"))
    rows = []
    if n_boot:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # an input the function ignores has indices exactly 0 in every resample: BCa is
            # degenerate there (NaN, with warnings); its interval is [0, 0]
            warnings.simplefilter("ignore")
            boot = res.bootstrap(confidence_level=level, n_resamples=int(n_boot))
        ci = {"first_order": boot.first_order.confidence_interval, "total": boot.total_order.confidence_interval}
    first = np.reshape(res.first_order, (-1, k))[0]
    total = np.reshape(res.total_order, (-1, k))[0]
    for idx, values in (("first_order", first), ("total", total)):
        for i, name in enumerate(names):
            lo_i = float(np.ravel(ci[idx].low)[i]) if n_boot else np.nan
            hi_i = float(np.ravel(ci[idx].high)[i]) if n_boot else np.nan
            if n_boot and values[i] == 0 and not (np.isfinite(lo_i) and np.isfinite(hi_i)):
                lo_i = hi_i = 0.0
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
        A statistic of :func:`carkinetics.stats.summary.summarise`, or ``survival`` (with ``day``).
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
    <carkinetics.studies.sweep.SweepResult.parse_outcome>`.

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
    from carkinetics.stats.summary import QUANTILES

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
    from carkinetics.stats import summary as sm

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
    x = np.array(patients[outcome.endpoint].to_numpy(float), dtype=float, copy=True)  # writable (pandas 3)
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
# which parameters can reach the outcome (model structure and event times)
# ----------------------------------------------------------------------------------------


def _name_closure(start, model) -> set:
    """``start`` and every name reachable from it through the model's named expressions and outputs."""
    from carkinetics.model import expressions as ex

    defs = dict(model.expressions)
    defs.update({o.name: o.expression for o in model.outputs})
    out, stack = set(), list(start)
    while stack:
        name = stack.pop()
        if name in out:
            continue
        out.add(name)
        e = defs.get(name)
        if e is not None:
            stack.extend(ex.names(e))
    return out


def _endpoint_last_day(e, horizon) -> float:
    """The last day at which endpoint ``e`` itself reads model outputs (-inf: reads none itself;
    the endpoints it refers to are followed separately)."""
    if e.type == "outcome":
        return -math.inf
    if e.type in ("condition", "value", "bernoulli", "level"):
        day = e.times.get("day")
        return float(day) if day is not None and not isinstance(day, str) else -math.inf
    end = e.times.get("end")
    return min(float(end), horizon) if end is not None and not isinstance(end, str) else horizon


def outcome_reads(scenario, outcome):
    """What the per-patient outcome reads: (model outputs and states, last day read).

    Follows the outcome's endpoint and every endpoint it refers to (``at``, ``after``,
    ``start``, names in its expression, ``among``, an outcome's events). The last day is the
    latest window end (the horizon when a window is open), ``day`` of a condition, value,
    bernoulli or level endpoint; for ``endpoint@day`` (event-free at the day) no later than
    the first output time at or after the day.
    """
    es = scenario.sections.get("endpoints")
    out = outcome if isinstance(outcome, Outcome) else parse_outcome(outcome, es)
    model = scenario.model
    horizon = float(scenario.times[-1])
    names = set(model.output_names) | set(model.state_names)
    by = {e.name: e for e in es.endpoints}
    seen, stack, reads, last = set(), [out.endpoint], set(), -math.inf
    while stack:
        name = stack.pop()
        name = name[:-len("_event")] if name.endswith("_event") and name not in by else name
        if name in seen or name not in by:
            continue
        seen.add(name)
        e = by[name]
        used = e.outputs_used(names)
        reads |= used
        if used:
            last = max(last, _endpoint_last_day(e, horizon))
        stack.extend(e.references())
    if out.statistic == "survival" and out.day is not None:
        later = scenario.times[scenario.times >= out.day]
        last = min(last, float(later[0]) if later.size else horizon)
    return reads, last


def _event_earliest(spec, scenario, design, varied) -> float:
    """Earliest time event ``spec`` can happen: its time expression evaluated over every
    combination of the values its names can take (variables with arm settings and
    overrides; constant, bernoulli and categorical covariates; parameters the patients do
    not vary). ``-inf`` when a name can take a continuum of values (a continuous
    covariate, a sampled or variable parameter) or there are too many combinations."""
    import itertools

    from carkinetics.model import expressions as ex

    used = sorted(ex.names(spec.time))
    if not used:
        return float(ex.evaluate(spec.time, {}))
    model = scenario.model
    spec_pop = design.spec
    touched = set(spec_pop.parameters) | {p for a in design.arms for p in a.parameters}
    candidates = []
    for name in used:
        if name in design.variables:
            vals = {float(design.variables[name])} | {float(a.variables[name]) for a in design.arms
                                                       if name in a.variables}
        elif name in spec_pop.covariates:
            cov = spec_pop.covariates[name]
            if cov.distribution == "constant":
                vals = {float(cov.params["value"])}
            elif cov.distribution == "bernoulli":
                vals = {0.0, 1.0}
            elif cov.distribution == "categorical":
                vals = {float(v) for v in cov.params["values"]}
            else:
                return -math.inf
        elif name in model.parameter_names:
            i = model.parameter_index(name)
            if name in varied or name in touched or design.sd[i] > 0:
                return -math.inf
            vals = {float(design.typical[i])}
        else:
            return -math.inf
        candidates.append(sorted(vals))
    if math.prod(len(c) for c in candidates) > 100_000:
        return -math.inf
    times = [float(ex.evaluate(spec.time, dict(zip(used, combo)))) for combo in itertools.product(*candidates)]
    return min(times)


def reachability(scenario, outcome, parameters=None, *, variables=None, arms=None):
    """Which parameters can change the outcome, by the model's structure and the event times.

    A parameter *can* reach the outcome when it enters (directly or through named
    expressions) an output or state the outcome reads; or, when the outcome reads any
    state, the right-hand side of an ODE or a state's initial value; or an event (its
    time, its values or its ``when``) that can happen no later than the last day the
    outcome reads (:func:`outcome_reads`); or the ``[population.parameters]`` or
    ``[arms]`` expression of a parameter that can reach it. Everything else cannot: a
    parameter only in outputs the outcome does not read (unit conversions), or only in
    events after the outcome's day (a transplant at day 45 for remission at day 28). An
    event time that cannot be bounded (it depends on a sampled parameter or a continuous
    covariate) counts as early: when unsure, the parameter is kept.

    Parameters
    ----------
    scenario : Scenario
    outcome : str or Outcome
    parameters : sequence of str, optional
        Default every model parameter.
    variables, arms :
        As for :func:`carkinetics.cohort.pipeline.run_cohort` (the variable values and arms whose
        events count).

    Returns
    -------
    pandas.DataFrame
        Columns parameter, reachable (bool), reason (why not; empty when reachable);
        ``attrs["last_day"]`` and ``attrs["reads"]``.
    """
    import pandas as pd

    from carkinetics.model import expressions as ex
    from carkinetics.scenario.population import cohort_design

    model = scenario.model
    es = scenario.sections.get("endpoints")
    out = outcome if isinstance(outcome, Outcome) else parse_outcome(outcome, es)
    names = list(model.parameter_names) if parameters is None else list(parameters)
    params = set(model.parameter_names)
    states = set(model.state_names)
    reads, last = outcome_reads(scenario, out)
    read_names = _name_closure(reads, model)
    reach = read_names & params
    late = {}  # parameter -> [(event, earliest day)]
    design = cohort_design(scenario, None, variables=variables, arms=arms)
    arm_names = None if arms is None else set([arms] if isinstance(arms, str) else arms)
    if read_names & states:
        dyn = set()
        for e in model.odes.values():
            dyn |= ex.names(e)
        for st in model.states:
            dyn |= ex.names(st.initial)
        for b in model.breakpoints:
            dyn |= ex.names(b)
        reach |= _name_closure(dyn, model) & params
        for spec in scenario.events:
            if spec.arms is not None and arm_names is not None and not (set(spec.arms) & arm_names):
                continue
            used = set(ex.names(spec.time))
            for _, _, value in spec.actions:
                used |= ex.names(value)
            if spec.when:
                used |= ex.names(model.parse_condition(spec.when))
            used = _name_closure(used, model) & params
            t = _event_earliest(spec, scenario, design, set(names))
            if t <= last:
                reach |= used
            else:
                for p in used:
                    late.setdefault(p, []).append((spec.name, t))
    # parameters computed from others ([population.parameters], [arms]): the others reach too
    edges = [(q, e) for q, e in design.spec.parameters.items()]
    edges += [(q, e) for a in design.arms for q, e in a.parameters.items()]
    changed = True
    while changed:
        changed = False
        for q, e in edges:
            if q in reach:
                new = (ex.names(e) & params) - reach
                if new:
                    reach |= new
                    changed = True
    output_uses = {o.name: _name_closure([o.name], model) & params for o in model.outputs}
    rows = []
    for p in names:
        if p in reach:
            rows.append((p, True, ""))
            continue
        parts = []
        outs = [o for o, ps in output_uses.items() if p in ps]
        if outs:
            parts.append(f"enters only outputs the outcome does not read ({', '.join(outs)})")
        if p in late:
            evs = ", ".join(f"'{n}' (day >= {t:g})" for n, t in late[p])
            parts.append(f"{'and' if outs else 'enters only'} event(s) {evs} after day {last:g}, the last day "
                         f"the outcome reads")
        if not parts:
            parts.append("not used by the model equations, the outputs the outcome reads or an event before "
                         f"day {last:g}")
        rows.append((p, False, " ".join(parts)))
    table = pd.DataFrame(rows, columns=["parameter", "reachable", "reason"])
    table.attrs["last_day"] = last
    table.attrs["reads"] = sorted(reads)
    return table


# ----------------------------------------------------------------------------------------
# tornado
# ----------------------------------------------------------------------------------------


def tornado(scenario, outcome, parameters=None, *, fold=None, n=200, seed=1, jobs=None, arms=None,
            variables=None, progress=None, keep_unreachable=False):
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
        As for :func:`carkinetics.cohort.pipeline.run_cohort`.
    progress : callable(k_done, k_total), optional
    keep_unreachable : bool
        Also simulate the parameters that cannot reach the outcome (:func:`reachability`);
        by default they are not simulated: with common random numbers their swing is
        exactly 0, and their rows say so (``reachable`` False, the reason in ``note``).

    Returns
    -------
    pandas.DataFrame
        Columns parameter, typical, low, high, outcome_low, outcome_high, baseline,
        swing (``|outcome_high - outcome_low|``), reachable, note; sorted by swing
        (largest first); ``attrs["outcome"]`` holds the outcome's label.
    """
    from carkinetics.cohort.pipeline import run_cohort

    es = scenario.sections.get("endpoints")
    out = outcome if isinstance(outcome, Outcome) else parse_outcome(outcome, es)
    ranges = parameter_ranges(scenario, parameters, fold)
    reach = reachability(scenario, out, ranges["parameter"].tolist(), variables=variables, arms=arms)
    reason = dict(zip(reach["parameter"], reach["reason"]))
    reachable = dict(zip(reach["parameter"], reach["reachable"]))
    simulate_it = {p: keep_unreachable or reachable[p] for p in ranges["parameter"]}
    total = 2 * sum(simulate_it.values()) + 1

    problems = {}

    def value(overrides):
        if not overrides:
            res = run_cohort(scenario, n=n, seed=seed, jobs=jobs, arms=arms, variables=variables, bands=False)
            return cohort_value(res.patients, out, es)
        try:
            res = run_cohort(scenario, n=n, seed=seed, jobs=jobs, parameters=overrides, arms=arms,
                             variables=variables, bands=False)
        except ScenarioError as err:  # e.g. an [arms] expression of the value leaves the bounds
            (name, v), = overrides.items()
            problems.setdefault(name, []).append(f"{v:g}: {err}")
            return math.nan
        return cohort_value(res.patients, out, es)

    baseline = value({})
    done = 1
    if progress is not None:
        progress(done, total)
    rows = []
    for r in ranges.itertuples(index=False):
        note = reason[r.parameter]
        if simulate_it[r.parameter]:
            lo_v = value({r.parameter: r.low})
            hi_v = value({r.parameter: r.high})
            done += 2
            if progress is not None:
                progress(done, total)
        else:  # cannot change the outcome: the same patients give the baseline exactly
            lo_v = hi_v = baseline
            note = f"not simulated (outcome = baseline): {note}"
        if r.parameter in problems:
            note = "; ".join([f"cohort not simulated at {m}" for m in problems[r.parameter]] + ([note] if note else []))
        rows.append({"parameter": r.parameter, "typical": r.typical, "low": r.low, "high": r.high,
                     "outcome_low": lo_v, "outcome_high": hi_v, "baseline": baseline,
                     "swing": abs(hi_v - lo_v), "reachable": bool(reachable[r.parameter]), "note": note})
    import pandas as pd

    table = pd.DataFrame(rows, columns=TORNADO_TABLE_COLUMNS).sort_values("swing", ascending=False, kind="stable",
                                                                          na_position="last")
    table = table.reset_index(drop=True)
    table.attrs["outcome"] = out.label
    return table


# ----------------------------------------------------------------------------------------
# typical patients at given parameter values
# ----------------------------------------------------------------------------------------


def simulate_typical(scenario, values, names, *, seed=1, jobs=None, arms=None, variables=None, patient=None):
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
        As for :func:`carkinetics.cohort.pipeline.run_cohort`.
    patient : int, optional
        Every row is this cohort patient's typical patient (its arm, the uniforms of its
        random events): the outcome is then a deterministic function of ``values``, as
        Sobol indices need. Default: row ``i`` is patient ``i``.

    Returns
    -------
    pandas.DataFrame
        ``patient``, ``arm``, ``status`` and the endpoint columns.
    """
    import dataclasses

    import pandas as pd

    from carkinetics.cohort.pipeline import _ArmEvents
    from carkinetics.scenario.population import Covariate, cohort_design
    from carkinetics.simulation.simulate import simulate_batch

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
    if patient is None:
        draws = design.draw(0, n)
        uniforms = design.uniforms(0, n, es.n_uniforms) if es.n_uniforms else np.zeros((n, 0))
    else:
        one = design.draw(int(patient), int(patient) + 1)
        rep = (lambda v: np.repeat(v, n, axis=0) if isinstance(v, np.ndarray) else v)
        draws = dataclasses.replace(one, index=rep(one.index), arm=rep(one.arm),
                                    covariates={k: rep(v) for k, v in one.covariates.items()},
                                    variables={k: rep(v) for k, v in one.variables.items()},
                                    parameters=rep(one.parameters))
        uniforms = (np.repeat(design.uniforms(int(patient), int(patient) + 1, es.n_uniforms), n, axis=0)
                    if es.n_uniforms else np.zeros((n, 0)))
    cols = [model.parameter_index(nm) for nm in names]
    params = draws.parameters.copy()
    params[:, cols] = X
    draws.parameters = params
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


def global_sensitivity(scenario, outcome, parameters=None, *, method="prcc", n_samples=None, fold=None, seed=1,
                       jobs=None, arms=None, variables=None, n_boot=500, keep_unreachable=False, level=0.95,
                       transform="auto"):
    """Global sensitivity of a per-patient outcome to the parameters, on typical patients.

    Every analysis includes an inert parameter, :data:`DUMMY`, sampled like the others
    (uniform on [0, 1]) and never given to the model: its index is what sampling noise
    alone gives, and a parameter is flagged ``significant`` only when its index is
    distinguishable from the dummy's (:func:`flag_significance`). Parameters that cannot
    reach the outcome (:func:`reachability`: only in outputs the outcome does not read, or
    only in events after the outcome's day) are not sampled (they stay at their typical
    values) and are listed with ``reachable`` False, a NaN value and the reason in ``note``.

    Parameters
    ----------
    scenario : Scenario
    outcome : str or Outcome
        See :func:`parse_outcome`; the per-patient value is used (:func:`patient_values`).
    parameters, fold :
        See :func:`parameter_ranges`.
    method : {"prcc", "sobol"}
        PRCC over a Latin hypercube of ``n_samples`` points (default
        :data:`DEFAULT_SAMPLES`), or Sobol indices with ``n_samples`` base samples (a power
        of 2, default :data:`DEFAULT_SOBOL_SAMPLES`; ``n_samples * (k + 3)`` patients with
        the dummy).
    seed, jobs, arms, variables :
        As for :func:`carkinetics.cohort.pipeline.run_cohort`.
    n_boot : int
        Bootstrap resamples for the intervals (PRCC; at most 200 for Sobol).
    keep_unreachable : bool
        Sample the parameters that cannot reach the outcome too (still flagged).
    level : float
        Confidence level of the intervals.
    transform : {"auto", "log10", "none"}
        Sobol only (PRCC uses ranks): ``auto`` analyses ``log10`` of a continuous outcome
        whose values are positive and span more than :data:`LOG_OUTCOME_FACTOR`-fold
        (a few extreme values would otherwise dominate the variance).

    Sobol samples are all the typical patient of one cohort patient (the first of the
    first arm): the outcome must be a deterministic function of the parameters, so the
    arm and the random numbers of random events are the same for every sample. PRCC
    samples are cohort patients 0, 1, ... (arms and random events vary, as noise).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`GLOBAL_TABLE_COLUMNS`: parameter, index, value, lower, upper,
        p_value, rank (of ``|value|`` among the sampled parameters, 1 the largest; PRCC
        only), rank_lower, rank_upper (bootstrap interval of the rank), significant,
        reachable, note. ``attrs``: outcome, warnings (list of str), dummy_bound,
        significance (the rule), n_samples, excluded (parameter -> reason).
    """
    import pandas as pd

    if method not in METHODS:
        raise SensitivityError(f"method must be one of {list(METHODS)}, got {method!r}"
                               f"{suggestion(str(method), METHODS)}")
    es = scenario.sections.get("endpoints")
    out = outcome if isinstance(outcome, Outcome) else parse_outcome(outcome, es)
    ranges = parameter_ranges(scenario, parameters, fold)
    reach = reachability(scenario, out, ranges["parameter"].tolist(), variables=variables, arms=arms)
    reason = dict(zip(reach["parameter"], reach["reason"]))
    reachable = dict(zip(reach["parameter"], reach["reachable"]))
    sampled = ranges if keep_unreachable else ranges[ranges["parameter"].map(reachable)]
    names = sampled["parameter"].tolist()
    if not names:
        raise SensitivityError(f"none of the parameters can reach the outcome '{out.text}' "
                               f"({'; '.join(f'{p}: {r}' for p, r in reason.items())})")
    if DUMMY in names:
        raise SensitivityError(f"a parameter is called {DUMMY!r}, the name of the dummy parameter")
    # the dummy: one more coordinate, uniform on [0, 1], never given to the model
    lo = np.append(sampled["low"].to_numpy(float), 0.0)
    hi = np.append(sampled["high"].to_numpy(float), 1.0)
    log = np.append(sampled["log"].to_numpy(bool), False)
    k = len(names)
    all_names = names + [DUMMY]

    notes = []
    patient = None
    if method == "sobol":  # a deterministic function of the parameters: one patient's arm and random numbers
        from carkinetics.scenario.population import cohort_design

        design = cohort_design(scenario, seed, variables=variables, arms=arms)
        first = np.flatnonzero(design.draw(0, 1024).arm == 0)
        patient = int(first[0]) if first.size else 0
        if len(design.arm_names) > 1:
            notes.append(f"Sobol indices need a deterministic outcome: every sample is the typical patient of "
                         f"arm '{design.arm_names[0]}' only (the other arms: choose them with arms=)")

    def evaluate(X):
        table = simulate_typical(scenario, np.ascontiguousarray(X[:, :k]), names, seed=seed, jobs=jobs, arms=arms,
                                 variables=variables, patient=patient)
        return patient_values(table, out)

    boots = None
    if method == "prcc":
        n_samples = DEFAULT_SAMPLES if n_samples is None else int(n_samples)
        if n_samples < k + 4:
            raise SensitivityError(f"PRCC of {k} parameters and the dummy needs more than {k + 4} samples, "
                                   f"got {n_samples}")
        X = latin_hypercube(lo, hi, n_samples, seed=seed, log=log)
        y = evaluate(X)
        table, boots = _prcc(X, y, all_names, n_boot=n_boot, level=level, seed=seed)
        n_ok = int(np.isfinite(y).sum())
        if n_ok and np.nanmax(y) == np.nanmin(y):
            notes.append(f"the outcome is {np.nanmax(y):g} for every sample: no PRCC (widen the ranges or choose "
                         f"another outcome)")
        if n_ok < n_samples:
            notes.append(f"{n_samples - n_ok} of {n_samples} typical patients gave no value (failed simulation "
                         f"or censored before the day) and were left out")
        need = PRCC_SAMPLES_PER_PARAMETER * (k + 1)
        if n_ok < need:
            notes.append(f"few samples for PRCC: {n_ok} for {k} parameters and the dummy; rule of thumb "
                         f"n >= {PRCC_SAMPLES_PER_PARAMETER} x (parameters + 1) = {need} (raise --samples or "
                         f"choose fewer --parameters)")
        if out.kind == "binary" or (out.kind == "time" and out.statistic == "survival"):
            share = float(np.nanmean(y)) if n_ok else math.nan
            notes.append(f"the per-patient outcome is 0/1 (mean {share:.2f} over the samples): ranks are mostly "
                         f"ties and PRCC has little power; a continuous endpoint, if there is one, ranks more "
                         f"reliably")
    else:
        n_samples = DEFAULT_SOBOL_SAMPLES if n_samples is None else int(n_samples)
        if n_samples < 2 or n_samples & (n_samples - 1):
            raise SensitivityError(f"Sobol indices need a power of 2 base samples, got {n_samples}")

        log_scale = []  # decided on the first call (scipy evaluates A, then B, then the AB matrices)

        def func(X):
            y = evaluate(X)
            if not np.all(np.isfinite(y)):
                bad = int((~np.isfinite(y)).sum())
                raise SensitivityError(f"Sobol indices need a value for every sample; {bad} typical patients "
                                       f"gave none (failed simulation or censored before the day): use PRCC")
            if not log_scale:
                log_scale.append(transform == "log10" or (
                    transform == "auto" and out.kind == "continuous" and np.all(y > 0)
                    and y.max() > LOG_OUTCOME_FACTOR * y.min()))
            if log_scale[0]:
                if not np.all(y > 0):
                    raise SensitivityError("Sobol indices of log10(outcome): some samples gave an outcome <= 0; "
                                           "use transform='none' or PRCC")
                y = np.log10(y)
            return y

        table = sobol(func, lo, hi, n=n_samples, names=all_names, seed=seed, log=log, n_boot=min(n_boot, 200),
                      level=level)
        if log_scale and log_scale[0]:
            notes.append(f"Sobol indices of log10({out.endpoint}): its values span more than "
                         f"{LOG_OUTCOME_FACTOR:g}-fold over the samples, and a few extreme values would dominate "
                         f"the variance")
    table = flag_significance(table, level=level, boots=boots)
    sig_attrs = {key: table.attrs[key] for key in ("dummy_bound", "significance")}
    if method == "sobol":
        real = table[table["parameter"] != DUMMY]
        v = real["value"].to_numpy(float)
        half = (real["upper"] - real["lower"]).to_numpy(float) / 2
        first_sum = float(real.loc[real["index"] == "first_order", "value"].sum())
        widest = float(np.nanmax(half)) if np.isfinite(half).any() else math.nan
        if (np.any(v < -SOBOL_NOISE_LIMIT) or np.any(v > 1 + SOBOL_NOISE_LIMIT) or first_sum > 1 + SOBOL_NOISE_LIMIT
                or not widest <= SOBOL_NOISE_LIMIT):
            notes.append(f"noisy Sobol estimates ({n_samples} base samples for {k} parameters): indices from "
                         f"{np.nanmin(v):.3g} to {np.nanmax(v):.3g}, first-order sum {first_sum:.3g}, widest "
                         f"{level:.0%} half-interval {widest:.3g}; rule: indices within [-{SOBOL_NOISE_LIMIT:g}, "
                         f"1 + {SOBOL_NOISE_LIMIT:g}], first-order sum <= 1 + {SOBOL_NOISE_LIMIT:g}, half-intervals "
                         f"<= {SOBOL_NOISE_LIMIT:g}; raise --samples (a power of 2) or choose fewer --parameters")
    table["reachable"] = [reachable.get(p, True) for p in table["parameter"]]
    table["note"] = [reason.get(p, "") if p != DUMMY else "inert: sampled, never given to the model"
                     for p in table["parameter"]]
    excluded = [p for p in ranges["parameter"] if p not in names]
    if excluded:
        indices = list(dict.fromkeys(table["index"]))
        extra = pd.DataFrame([{"parameter": p, "index": idx, "value": np.nan, "lower": np.nan, "upper": np.nan,
                               "p_value": np.nan, "rank": np.nan, "rank_lower": np.nan, "rank_upper": np.nan,
                               "significant": False, "reachable": False,
                               "note": f"not sampled: {reason[p]}"} for idx in indices for p in excluded])
        table = pd.concat([table, extra], ignore_index=True)
    table = table[GLOBAL_TABLE_COLUMNS].reset_index(drop=True)
    table.attrs = dict(sig_attrs)
    table.attrs["outcome"] = out.label
    table.attrs["warnings"] = notes
    table.attrs["n_samples"] = n_samples
    table.attrs["excluded"] = {p: reason[p] for p in excluded}
    for note in notes:
        warnings.warn(note, SensitivityWarning, stacklevel=2)
    return table


def flag_significance(table, level=0.95, boots=None):
    """Add columns rank, rank_lower, rank_upper and significant, judged against :data:`DUMMY`.

    PRCC: ``dummy_bound`` is the largest ``|PRCC|`` in the dummy's bootstrap interval (its
    ``|value|`` without bootstrap); a parameter is significant when its whole interval
    lies beyond ``+-dummy_bound`` and its p-value is below ``(1 - level) / k`` (Bonferroni
    over the ``k`` sampled parameters). Sobol: per index (first order, total), a
    parameter is significant when the lower end of its interval is above the upper end
    of the dummy's (without intervals: its value above the dummy's) and the index is at
    least :data:`SOBOL_NEGLIGIBLE` (the Saltelli/Jansen estimators give an input the
    function ignores exactly 0, so the dummy alone would flag every tiny effect).
    Ranks (PRCC with bootstrap replicates ``boots``): the rank of ``|PRCC|`` among the
    sampled parameters (1 the largest, the dummy left out) and its bootstrap interval.
    """
    t = table.copy()
    t["rank"] = np.nan
    t["rank_lower"] = np.nan
    t["rank_upper"] = np.nan
    t["significant"] = False
    rules = {}
    bounds = {}
    for idx in dict.fromkeys(t["index"]):
        rows = t.index[t["index"] == idx]
        sub = t.loc[rows]
        is_dummy = (sub["parameter"] == DUMMY).to_numpy()
        if not is_dummy.any():
            continue
        d = sub[is_dummy].iloc[0]
        real = ~is_dummy
        k = int(real.sum())
        v = sub["value"].to_numpy(float)
        lo = sub["lower"].to_numpy(float)
        hi = sub["upper"].to_numpy(float)
        with np.errstate(invalid="ignore"):
            if idx == "prcc":
                has_ci = np.isfinite(d["lower"]) and np.isfinite(d["upper"])
                bound = max(abs(d["lower"]), abs(d["upper"])) if has_ci else abs(d["value"])
                alpha = (1 - level) / max(k, 1)
                beyond = (lo > bound) | (hi < -bound) if has_ci else np.abs(v) > bound
                sig = beyond & (sub["p_value"].to_numpy(float) < alpha)
                rules[idx] = (f"|PRCC| interval beyond the dummy's bound {bound:.3f} and p < {alpha:.2g} "
                              f"(Bonferroni over {k})")
            else:
                # the estimators give an input the model ignores exactly 0, so the dummy bounds
                # only the estimator's bias; SOBOL_NEGLIGIBLE screens out tiny but real effects
                has_ci = np.isfinite(d["upper"]) and np.isfinite(d["lower"])
                bound = d["upper"] if has_ci else d["value"]
                sig = ((lo > bound) if has_ci else (v > bound)) & (v >= SOBOL_NEGLIGIBLE)
                rules[idx] = (f"{idx}: interval above the dummy's upper bound {bound:.3f} and index >= "
                              f"{SOBOL_NEGLIGIBLE:g}")
        if not np.isfinite(bound):
            rules[idx] = f"{idx}: no finite index for the dummy: nothing flagged"
        bounds[idx] = float(bound)
        sig = np.where(real, sig, False)
        t.loc[rows, "significant"] = sig.astype(bool)
        # rank by |value| among the real parameters
        a = np.where(real & np.isfinite(v), np.abs(v), -np.inf)
        order = np.argsort(-a, kind="stable")
        rank = np.empty(len(a))
        rank[order] = np.arange(1, len(a) + 1)
        rank = np.where(real & np.isfinite(v), rank, np.nan)
        t.loc[rows, "rank"] = rank
        if idx == "prcc" and boots is not None and boots.shape[1] == len(sub):
            b = np.where(real[None, :], np.abs(boots), -np.inf)
            b = np.where(np.isfinite(b), b, -np.inf)
            # rank within each replicate: 1 + number of real parameters with a larger |PRCC|
            r = 1 + (b[:, None, :] > b[:, :, None]).sum(axis=2)
            a_ = (1 - level) / 2
            rl, ru = np.quantile(r, [a_, 1 - a_], axis=0)
            t.loc[rows, "rank_lower"] = np.where(real, rl, np.nan)
            t.loc[rows, "rank_upper"] = np.where(real, ru, np.nan)
    t["significant"] = t["significant"].astype(bool)
    t.attrs["dummy_bound"] = bounds
    t.attrs["significance"] = rules
    return t


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
        """A few lines naming the parameters that drive the outcome most, what was left out and
        the warnings."""
        lines = [f"{self.info.get('scenario_name', '')}: sensitivity of {self.info.get('outcome_label')}"]
        unreachable = self.info.get("unreachable") or self.info.get("excluded") or {}
        if unreachable:
            how = "not simulated" if self.info.get("excluded") else "simulated anyway, flagged"
            lines.append(f"  {len(unreachable)} parameter(s) cannot reach the outcome ({how}):")
            for p, why in unreachable.items():
                lines.append(f"    {p:32s} {why}")
        if self.tornado is not None and len(self.tornado):
            t = self.tornado
            lines.append(f"  baseline {t['baseline'].iloc[0]:.4g}; largest one-at-a-time swings:")
            for r in t.head(top).itertuples():
                lines.append(f"    {r.parameter:32s} {r.outcome_low:.4g} (low) .. {r.outcome_high:.4g} (high)")
            if "note" in t:
                for r in t[t["note"].fillna("").str.startswith("cohort not simulated")].itertuples():
                    lines.append(f"  warning: tornado, {r.parameter}: {r.note}")
        if self.global_ is not None and len(self.global_):
            g = self.global_
            indices = list(dict.fromkeys(g["index"]))
            first = "total" if "total" in indices else indices[0]
            sub = g[(g["index"] == first) & g["value"].notna()]
            dummy = sub[sub["parameter"] == DUMMY]
            sub = sub[sub["parameter"] != DUMMY].assign(a=lambda d: d["value"].abs())
            sub = sub.sort_values("a", ascending=False)
            n_sig = int(sub["significant"].sum()) if "significant" in sub else 0
            lines.append(f"  global ({first}, {self.info.get('n_samples')} samples), strongest "
                         f"({n_sig} of {len(sub)} distinguishable from the dummy):")
            for r in sub.head(top).itertuples():
                rank = (f"  rank {r.rank:.0f} [{r.rank_lower:.0f}, {r.rank_upper:.0f}]"
                        if "rank_lower" in sub and np.isfinite(r.rank_lower) else "")
                flag = "" if getattr(r, "significant", True) else "  (not distinguishable from the dummy)"
                lines.append(f"    {r.parameter:32s} {r.value:+.3f} [{r.lower:+.3f}, {r.upper:+.3f}]{rank}{flag}")
            if len(dummy):
                d = dummy.iloc[0]
                lines.append(f"    {DUMMY:32s} {d['value']:+.3f} [{d['lower']:+.3f}, {d['upper']:+.3f}]  (inert)")
            for rule in (self.info.get("significance") or {}).values():
                lines.append(f"  significant: {rule}")
        for w in self.info.get("warnings") or []:
            lines.append(f"  warning: {w}")
        if self.path is not None:
            lines.append(f"  results in {self.path}")
        return lines


def run_sensitivity(scenario, outcome, output=None, *, methods=("tornado", "prcc"), parameters=None, fold=None,
                    n=200, n_samples=None, seed=1, jobs=None, arms=None, variables=None, progress=False,
                    keep_unreachable=False):
    """Run the chosen sensitivity analyses of one outcome; write them to ``output``.

    Parameters that cannot reach the outcome (:func:`reachability`) are not simulated
    unless ``keep_unreachable``; they are listed with the reason. ``n_samples`` default:
    :data:`DEFAULT_SAMPLES` for PRCC, :data:`DEFAULT_SOBOL_SAMPLES` for Sobol.

    Files: ``tornado.csv``, ``global.csv``, ``ranges.csv`` (with columns reachable and
    reason), ``sensitivity.json`` (settings, excluded parameters, warnings, the
    significance rule; figures: :func:`carkinetics.plots.studies.plot_results`).

    Returns
    -------
    SensitivityResult
    """
    from carkinetics.io.atomic import atomic_output_dir, file_sha256, provenance, write_json

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
    reach = reachability(scenario, out, names, variables=variables, arms=arms)
    ranges = ranges.assign(reachable=reach["reachable"].to_numpy(bool), reason=reach["reason"].to_numpy(object))
    excluded = {p: r for p, ok, r in reach.itertuples(index=False) if not ok}
    bar = None
    if progress:
        from carkinetics.studies.sweep import Progress

        n_runs = 2 * (len(names) if keep_unreachable else len(names) - len(excluded)) + 1
        bar = Progress(n_runs, label="tornado")
    tor = glob = None
    if "tornado" in methods:
        last = [0]

        def tick(done, total):
            while last[0] < done:
                last[0] += 1
                if bar is not None:
                    bar.point_done(n)

        tor = tornado(scenario, out, names, fold=fold, n=n, seed=seed, jobs=jobs, arms=arms, variables=variables,
                      progress=tick, keep_unreachable=keep_unreachable)
        if bar is not None:
            bar.close()
    method = next((m for m in methods if m in METHODS), None)
    notes = []
    if method is not None:
        with warnings.catch_warnings(record=True):  # kept in the table and reported once below
            warnings.simplefilter("always", SensitivityWarning)
            glob = global_sensitivity(scenario, out, names, method=method, n_samples=n_samples, fold=fold,
                                      seed=seed, jobs=jobs, arms=arms, variables=variables,
                                      keep_unreachable=keep_unreachable)
        notes = list(glob.attrs.get("warnings", []))
        n_samples = glob.attrs.get("n_samples", n_samples)
    info = {"scenario": str(scenario.path), "scenario_name": scenario.name,
            "scenario_sha256": file_sha256(scenario.path), "model": str(scenario.model.path),
            "model_sha256": scenario.model.content_hash, "outcome": out.text, "outcome_label": out.label,
            "methods": list(methods), "n": n, "n_samples": n_samples, "seed": seed, "fold": fold,
            "range": "typical / fold .. typical * fold within bounds" if fold else "the model's bounds",
            "common_random_numbers": "every tornado run uses the same seed: the same virtual patients",
            "global_patients": "typical patients (covariates at typical values, no between-patient "
                               "variability), one per sample",
            "outcome_reads": reach.attrs.get("reads", []), "outcome_last_day": reach.attrs.get("last_day"),
            "excluded": excluded if not keep_unreachable else {},
            "unreachable": excluded,
            "dummy": f"{DUMMY}: an inert parameter, uniform on [0, 1], sampled in every global analysis and "
                     f"never given to the model",
            "dummy_bound": glob.attrs.get("dummy_bound", {}) if glob is not None else {},
            "significance": glob.attrs.get("significance", {}) if glob is not None else {},
            "warnings": notes, "provenance": provenance()}
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
