"""Virtual populations: scenario constants, between-patient variability, covariates, arms.

Three scenario sections are defined here (see the README section "Virtual cohorts"):

``[variables]``
    Named scenario constants (``dose_per_kg = 1e6``, ``transplant_day = 45``), usable
    in parameter and event expressions; sweeps and :func:`~carkinetics.cohort.pipeline.run_cohort`
    override them by name.

``[population]``
    ``size`` and ``seed`` of the cohort; ``[population.variability]`` (log-normal SD of a
    parameter, overriding the model file's ``iiv_log_sd``; 0 switches it off);
    ``[population.correlation]`` or ``[population.covariance]`` (one block of
    parameters whose log-values are correlated); ``[population.covariates.NAME]``
    (a value per patient drawn from a named distribution); ``[population.parameters]``
    (typical values as expressions of covariates, variables and typical parameters,
    e.g. ``cmax = "cmax * (weight / 70) ** 0.75"``).

``[arms.NAME]``
    A named share of the cohort with its own parameters (values or expressions) and
    variables; ``[[events]]`` with ``arms = [...]`` apply only to those arms.

A patient's parameters are built in this order: the model's typical values with the
scenario's ``[parameters]`` (and run-time overrides); the arm's ``parameters``; the
``[population.parameters]`` expressions; then between-patient variability,
``value * exp(eta)`` with ``eta ~ Normal(0, sd^2)`` (correlated within the block);
finally values are clipped to the model's ``bounds`` (clipped draws are counted). Values
the user wrote (constants, expressions of ``[arms]`` and ``[population.parameters]``, run-time
overrides) must lie within the bounds: only the random draws are clipped.

Random numbers are reproducible per patient, whatever the chunk size or number of
threads: patient ``i`` takes its numbers from block ``i // BLOCK`` of its stream, a
counter-based Philox generator seeded with ``(seed, stream, sub-stream, block)``.
Streams are separate for parameters, covariates (one sub-stream per covariate name),
arm assignment and random events, so adding a covariate or an arm does not change
the parameter draws of any patient.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from carkinetics.model import expressions as ex
from carkinetics.model.spec import bound_slack as _slack
from carkinetics.errors import CarKineticsError, FileProblem, ScenarioError, is_number, is_whole_number, suggestion
from carkinetics.scenario.load import parameter_items, register_section, value_expression

RESERVED_NAMES = {"t"} | set(ex.FUNCTIONS) | set(ex.CONSTANTS)

BLOCK = 4096
#: Largest ``[population] size`` (cohorts are simulated in chunks, but the patient table is kept
#: in memory: 1e8 patients are about 10 GB of table).
MAX_POPULATION = 100_000_000
#: Largest seed: seeds are written to run.json and tables, exact as 64-bit integers.
MAX_SEED = 2**63 - 1
#: Largest log-normal SD of a parameter: exp(5) = 148-fold per SD (published IIV is below 2);
#: larger values are typing mistakes, and exp(sd * z) overflows.
MAX_LOG_SD = 5.0
#: Largest arm share (relative weights: 1e308 + 1e308 overflowed and sent every patient to one arm).
MAX_SHARE = 1e6
STREAMS = {"parameters": 1, "covariates": 2, "arms": 3, "events": 4}
DEFAULT_ARM = "all"  # the arm name of a cohort without [arms]; reserved

_POPULATION_KEYS = {"size", "seed", "description", "notes", "model_variability", "variability", "correlation",
                    "covariance", "covariates", "parameters"}
_ARM_KEYS = {"share", "parameters", "variables", "description", "notes"}
_BLOCK_KEYS = {"parameters", "matrix"}
_COMMON_COV_KEYS = {"distribution", "unit", "description", "notes", "source"}


class PopulationError(CarKineticsError, ValueError):
    """Run-time population settings (seed, overrides, arm subset) are invalid."""


# ----------------------------------------------------------------------------------------
# Covariate distributions
# ----------------------------------------------------------------------------------------


def _ndtr(x):
    from scipy.special import ndtr

    return ndtr(x)


def _ndtri(p):
    from scipy.special import ndtri

    return ndtri(p)


@dataclass(frozen=True)
class Covariate:
    """One covariate: a named distribution, drawn by inverse CDF from one uniform per patient.

    Attributes
    ----------
    name, distribution : str
    params : dict
        The distribution's parameters as written (after conversion to floats).
    lower, upper : float
        Truncation bounds (``-inf``/``inf`` when absent); the distribution is
        truncated (renormalised), not clipped.
    unit, description : str
    """

    name: str
    distribution: str
    params: dict
    lower: float = -math.inf
    upper: float = math.inf
    unit: str = ""
    description: str = ""

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Values for uniforms ``u`` in (0, 1) (the inverse CDF of the truncated distribution)."""
        u = np.asarray(u, dtype=float)
        d, p = self.distribution, self.params
        if d == "constant":
            return np.full(u.shape, p["value"])
        if d == "bernoulli":
            return (u < p["p"]).astype(float)
        if d == "categorical":
            cum = np.cumsum(p["probabilities"])
            cum[-1] = 1.0
            k = np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)
            return np.asarray(p["values"], dtype=float)[k]
        # continuous: truncate through the CDF of the bounds
        lo, hi = self.lower, self.upper
        if d in ("normal", "truncnormal", "lognormal"):
            if d == "lognormal":
                loc, scale = math.log(p["median"]), p["sd_log"]
                lo = math.log(lo) if lo > 0 else -math.inf
                hi = math.log(hi) if hi < math.inf else math.inf
            else:
                loc, scale = p["mean"], p["sd"]
            if scale == 0:
                z = np.full(u.shape, loc)
                return np.exp(z) if d == "lognormal" else z
            f_lo = _ndtr((lo - loc) / scale) if lo > -math.inf else 0.0
            f_hi = _ndtr((hi - loc) / scale) if hi < math.inf else 1.0
            z = loc + scale * _ndtri(f_lo + u * (f_hi - f_lo))
            z = np.clip(z, lo, hi)  # rounding at the bounds
            return np.exp(z) if d == "lognormal" else z
        if d == "uniform":
            return p["lower"] + u * (p["upper"] - p["lower"])
        if d == "loguniform":
            a, b = math.log(p["lower"]), math.log(p["upper"])
            return np.exp(a + u * (b - a))
        if d == "beta":
            from scipy.special import betainc, betaincinv

            a, b = p["alpha"], p["beta"]
            f_lo = float(betainc(a, b, max(lo, 0.0))) if lo > 0 else 0.0
            f_hi = float(betainc(a, b, min(hi, 1.0))) if hi < 1 else 1.0
            return np.clip(betaincinv(a, b, f_lo + u * (f_hi - f_lo)), max(lo, 0.0), min(hi, 1.0))
        raise AssertionError(d)

    @property
    def typical(self) -> float:
        """The median of the (truncated) distribution: the value of the typical patient."""
        return float(self.ppf(np.array([0.5]))[0])


def _lognormal_params(raw, add):
    """median & sd_log, or geometric_mean & geometric_sd, or mean & sd (arithmetic)."""
    if "median" in raw or "sd_log" in raw:
        return {"median": raw.get("median"), "sd_log": raw.get("sd_log")}, ("median", "sd_log")
    if "geometric_mean" in raw or "geometric_sd" in raw:
        gm, gsd = raw.get("geometric_mean"), raw.get("geometric_sd")
        if is_number(gsd) and gsd < 1:
            add("geometric_sd", f"a geometric SD is a factor >= 1, got {gsd}")
            return None, ()
        sd_log = math.log(gsd) if is_number(gsd) else gsd
        return {"median": gm, "sd_log": sd_log}, ("geometric_mean", "geometric_sd")
    if "mean" in raw or "sd" in raw:
        mean, sd = raw.get("mean"), raw.get("sd")
        if is_number(mean) and is_number(sd) and mean > 0 and sd >= 0:
            cv2 = (sd / mean) ** 2
            return {"median": mean / math.sqrt(1 + cv2), "sd_log": math.sqrt(math.log1p(cv2))}, ("mean", "sd")
        return {"median": mean, "sd_log": sd}, ("mean", "sd")
    return {"median": None, "sd_log": None}, ("median", "sd_log")


# distribution -> (required keys, optional keys, description for messages)
DISTRIBUTIONS = {
    "constant": ({"value"}, set(), "value"),
    "normal": ({"mean", "sd"}, {"lower", "upper"}, "mean, sd; optional lower/upper truncation"),
    "truncnormal": ({"mean", "sd"}, {"lower", "upper"}, "mean, sd and at least one of lower/upper"),
    "lognormal": (set(), {"median", "sd_log", "geometric_mean", "geometric_sd", "mean", "sd", "lower", "upper"},
                  "median & sd_log, or geometric_mean & geometric_sd, or mean & sd (arithmetic); "
                  "optional lower/upper truncation"),
    "uniform": ({"lower", "upper"}, set(), "lower, upper"),
    "loguniform": ({"lower", "upper"}, set(), "lower > 0, upper"),
    "beta": ({"alpha", "beta"}, {"lower", "upper"}, "alpha, beta; optional lower/upper truncation within [0, 1]"),
    "bernoulli": ({"p"}, set(), "p (probability of 1; values are 0 or 1)"),
    "categorical": ({"values"}, {"probabilities"}, "values (numbers), probabilities (default: equal)"),
}
DISTRIBUTION_ALIASES = {"choice": "categorical", "truncated_normal": "truncnormal", "log_normal": "lognormal",
                        "fixed": "constant"}


def _parse_covariate(name, raw, key, add_problem) -> Covariate | None:
    def add(k, msg):
        add_problem(f"{key}.{k}" if k else key, msg)

    if not isinstance(raw, dict):
        add("", "expected a table with at least 'distribution'")
        return None
    dist = raw.get("distribution")
    names = sorted(DISTRIBUTIONS) + sorted(DISTRIBUTION_ALIASES)
    if not isinstance(dist, str) or dist not in names:
        add("distribution", f"unknown distribution {dist!r}; expected one of {', '.join(sorted(DISTRIBUTIONS))}"
                            f"{suggestion(str(dist), names)}")
        return None
    dist = DISTRIBUTION_ALIASES.get(dist, dist)
    required, optional, expects = DISTRIBUTIONS[dist]
    ok = True
    for k in raw:
        if k not in _COMMON_COV_KEYS | required | optional:
            add(k, f"'{k}' is not a key of a {dist} covariate (expected {expects})"
                   f"{suggestion(k, sorted(required | optional))}")
            ok = False
    for k in sorted(required):
        if k not in raw:
            add(k, f"missing: a {dist} covariate needs {expects}")
            ok = False
    if not ok:
        return None
    params = {}
    if dist == "lognormal":
        conv, given = _lognormal_params(raw, add)
        if conv is None:
            return None
        for k in given:
            if k not in raw:
                add(k, f"missing: a lognormal covariate needs {expects}")
                ok = False
        if not ok:
            return None
        for k in given:
            if not is_number(raw[k]):
                add(k, f"expected a number, got {raw[k]!r}")
                ok = False
        if not ok:
            return None
        if not conv["median"] > 0:
            add(given[0], f"must be > 0, got {raw[given[0]]}")
            return None
        if not conv["sd_log"] >= 0:
            add(given[1], f"must be >= 0, got {raw[given[1]]}")
            return None
        params = conv
    elif dist == "categorical":
        values = raw["values"]
        if not isinstance(values, list) or not values or not all(is_number(v) for v in values):
            add("values", f"expected a non-empty list of numbers (use arms for named groups), got {values!r}")
            return None
        probs = raw.get("probabilities", [1.0 / len(values)] * len(values))
        if (not isinstance(probs, list) or len(probs) != len(values) or not all(is_number(q) for q in probs)
                or any(q < 0 for q in probs) or abs(sum(probs) - 1) > 1e-6):
            add("probabilities", f"expected {len(values)} probabilities >= 0 that sum to 1, got {probs!r}")
            return None
        params = {"values": [float(v) for v in values], "probabilities": np.array(probs, dtype=float)}
    else:
        for k in sorted(required | (optional - {"lower", "upper"})):
            if k in raw:
                if not is_number(raw[k]):
                    add(k, f"expected a number, got {raw[k]!r}")
                    ok = False
                else:
                    params[k] = float(raw[k])
        if not ok:
            return None
    lower, upper = -math.inf, math.inf
    if dist in ("uniform", "loguniform"):
        lower, upper = params["lower"], params["upper"]
        if not lower < upper:
            add("upper", f"upper = {upper:g} must be greater than lower = {lower:g}")
            return None
        if dist == "loguniform" and lower <= 0:
            add("lower", f"a loguniform covariate needs lower > 0, got {lower:g}")
            return None
    else:
        for k in ("lower", "upper"):
            if k in raw:
                if not is_number(raw[k]):
                    add(k, f"expected a number, got {raw[k]!r}")
                    return None
        lower = float(raw.get("lower", -math.inf))
        upper = float(raw.get("upper", math.inf))
        if not lower < upper:
            add("upper", f"upper = {upper:g} must be greater than lower = {lower:g}")
            return None
    if dist == "truncnormal" and "lower" not in raw and "upper" not in raw:
        add("", "a truncnormal covariate needs lower and/or upper (or use 'normal')")
        return None
    if dist in ("normal", "truncnormal") and params["sd"] < 0:
        add("sd", f"must be >= 0, got {params['sd']:g}")
        return None
    if dist == "beta":
        for k in ("alpha", "beta"):
            if params[k] <= 0:
                add(k, f"must be > 0, got {params[k]:g}")
                return None
    if dist == "bernoulli" and not 0 <= params["p"] <= 1:
        add("p", f"a probability in [0, 1], got {params['p']:g}")
        return None
    for k in ("unit", "description", "notes", "source"):
        if k in raw and not isinstance(raw[k], str):
            add(k, f"expected a string, got {raw[k]!r}")
            return None
    cov = Covariate(name, dist, params, lower, upper, str(raw.get("unit", "")), str(raw.get("description", "")))
    # a truncation window with (numerically) no mass
    if dist in ("normal", "truncnormal", "lognormal", "beta"):
        probe = cov.ppf(np.array([1e-12, 0.5, 1 - 1e-12]))
        if not np.all(np.isfinite(probe)):
            add("", f"the bounds [{lower:g}, {upper:g}] leave no probability mass in this distribution")
            return None
    return cov


# ----------------------------------------------------------------------------------------
# Section objects
# ----------------------------------------------------------------------------------------


@dataclass
class Variables:
    """``[variables]``: named scenario constants (name -> value), with units."""

    values: dict
    units: dict = field(default_factory=dict)
    descriptions: dict = field(default_factory=dict)

    def typical_values(self) -> dict:
        return dict(self.values)


@dataclass
class CorrelationBlock:
    """Log-parameters whose deviations are correlated (``correlation``/``covariance``)."""

    parameters: tuple[str, ...]
    correlation: np.ndarray
    sds: tuple[float, ...] | None = None  # from a covariance matrix: the SDs it implies
    cholesky: np.ndarray = None


@dataclass
class PopulationSpec:
    """``[population]`` as validated."""

    size: int | None = None
    seed: int | None = None
    model_variability: bool = True
    variability: dict = field(default_factory=dict)  # parameter -> log-normal SD
    correlation: CorrelationBlock | None = None
    covariates: dict = field(default_factory=dict)  # name -> Covariate
    parameters: dict = field(default_factory=dict)  # parameter -> Expr (typical value)
    description: str = ""

    def typical_values(self) -> dict:
        return {name: cov.typical for name, cov in self.covariates.items()}


@dataclass
class Arm:
    """One arm of a cohort: its share and its parameter and variable settings."""

    name: str
    share: float
    parameters: dict = field(default_factory=dict)  # parameter -> Expr
    variables: dict = field(default_factory=dict)  # variable -> float
    description: str = ""


@dataclass
class Arms:
    """``[arms.NAME]`` tables, in file order."""

    arms: dict  # name -> Arm

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.arms)


# ----------------------------------------------------------------------------------------
# Parsers (registered scenario sections)
# ----------------------------------------------------------------------------------------


def _model_names(model) -> set:
    return set(model.parameter_names) | set(model.state_names) | set(model.output_names) | set(model.expressions)


def _check_new_name(name, key, model, taken, what, errs) -> bool:
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        errs.add(key, f"'{name}' is not a valid {what} name (letters, digits and _, not starting with a digit or _)")
        return False
    if name in RESERVED_NAMES:
        errs.add(key, f"'{name}' is reserved (a function, a constant or 't'); choose another {what} name")
        return False
    if name in _model_names(model):
        errs.add(key, f"{what} '{name}' has the name of a parameter, state, expression or output of model "
                      f"'{model.name}'; choose another name")
        return False
    if name in taken:
        errs.add(key, f"{what} '{name}' has the name of a {taken[name]}; choose another name")
        return False
    return True


def _parse_variables(raw, context) -> Variables:
    errs, model = context["errors"], context["model"]
    values, units, descr = {}, {}, {}
    if not isinstance(raw, dict):
        errs.add("variables", "expected a table of name = number (or name = {value, unit, description})")
        return Variables({})
    for name, v in raw.items():
        key = f"variables.{name}"
        if not _check_new_name(name, key, model, {}, "variable", errs):
            continue
        if isinstance(v, dict):
            errs.unknown_keys(key, v, ("value", "unit", "description", "notes", "source"), "a key of a variable")
            for k in ("unit", "description", "notes", "source"):
                if k in v and not isinstance(v[k], str):
                    errs.add(f"{key}.{k}", f"expected a string, got {v[k]!r}")
            units[name] = str(v.get("unit", ""))
            descr[name] = str(v.get("description", ""))
            v = v.get("value")
        if not is_number(v):
            errs.add(key, f"expected a finite number, got {v!r}")
            continue
        values[name] = float(v)
    context["variables"] = values
    context["event_names"] = set(context.get("event_names", ())) | set(values)
    return Variables(values, units, descr)


def _parse_population(raw, context) -> PopulationSpec:
    errs, model = context["errors"], context["model"]
    spec = PopulationSpec()
    if not isinstance(raw, dict):
        errs.add("population", "expected a table (size, seed, [population.variability], ...)")
        return spec
    errs.unknown_keys("population", raw, _POPULATION_KEYS, "a key of [population]")
    size = raw.get("size")
    if size is not None:
        if not is_whole_number(size, 1):
            errs.add("population.size", f"expected a whole number of patients >= 1, got {size!r}")
        elif size > MAX_POPULATION:
            errs.add("population.size", f"{size:,} patients; at most {MAX_POPULATION:,} (simulate larger "
                                        f"cohorts in parts, with different seeds)")
        else:
            spec.size = size
    seed = raw.get("seed")
    if seed is not None:
        if not is_whole_number(seed, 0):
            errs.add("population.seed", f"expected a whole number >= 0, got {seed!r}")
        elif seed > MAX_SEED:
            errs.add("population.seed", f"expected a whole number in [0, 2**63 - 1], got {seed!r}")
        else:
            spec.seed = seed
    mv = raw.get("model_variability", True)
    if not isinstance(mv, bool):
        errs.add("population.model_variability", f"expected true or false, got {mv!r}")
    else:
        spec.model_variability = mv
    for k in ("description", "notes"):
        if k in raw and not isinstance(raw[k], str):
            errs.add(f"population.{k}", f"expected a string, got {raw[k]!r}")
    spec.description = str(raw.get("description", ""))

    # variability: parameter -> log-normal SD
    for name, sd, key in parameter_items(raw.get("variability", {}), "population.variability", model, errs,
                                         "log-normal SD"):
        if not is_number(sd) or sd < 0:
            errs.add(key, f"expected a log-normal SD >= 0 (SD of log(value); 0 switches variability off), "
                          f"got {sd!r}")
            continue
        if sd > MAX_LOG_SD:
            errs.add(key, f"a log-normal SD of {sd:g} is a {math.exp(min(sd, 700)):.3g}-fold spread per SD; at "
                          f"most {MAX_LOG_SD:g} is allowed (SD of log(value), not of value)")
            continue
        spec.variability[name] = float(sd)

    # covariates
    covs = raw.get("covariates", {})
    variables = context.get("variables", {})
    if not isinstance(covs, dict):
        errs.add("population.covariates", "expected tables [population.covariates.NAME]")
        covs = {}
    taken = {v: "variable" for v in variables}
    for name, craw in covs.items():
        key = f"population.covariates.{name}"
        if not _check_new_name(name, key, model, taken, "covariate", errs):
            continue
        if name == DEFAULT_ARM or name in ("patient", "arm", "status"):
            errs.add(key, f"'{name}' is a column of the patient table; choose another covariate name")
            continue
        cov = _parse_covariate(name, craw, key, errs.add)
        if cov is not None:
            spec.covariates[name] = cov

    # correlation / covariance block
    sds = _effective_sds(model, spec)
    if "correlation" in raw and "covariance" in raw:
        errs.add("population", "give either [population.correlation] or [population.covariance], not both")
    for kind in ("correlation", "covariance"):
        if kind in raw:
            spec.correlation = _parse_block(raw[kind], f"population.{kind}", kind, model, spec, sds, errs)

    # parameter expressions (typical values)
    allowed = set(model.parameter_names) | set(spec.covariates) | set(variables)
    for name, value, key in parameter_items(raw.get("parameters", {}), "population.parameters", model, errs,
                                            "expression"):
        e = value_expression(value, key, allowed, errs, "population parameters may use parameters (their typical "
                                                         "values), covariates and variables")
        if e is not None and not _check_typical(model, name, e, _typical_env(context, spec.covariates), key, errs):
            continue
        if e is not None:
            spec.parameters[name] = e
    context["covariates"] = spec.covariates
    context["event_names"] = set(context.get("event_names", ())) | set(spec.covariates)
    return spec


def _typical_env(context, covariates) -> dict:
    """Names usable in parameter expressions at the typical patient's values."""
    model = context["model"]
    env = dict(zip(model.parameter_names, model.parameter_vector(context.get("parameters", {}))))
    env.update({name: cov.typical for name, cov in covariates.items()})
    env.update(context.get("variables", {}))
    return env


def _check_typical(model, name, expr, env, key, errs, what="") -> bool:
    """Whether ``expr`` gives a finite value within the bounds of ``name`` for the typical patient
    (else a problem is recorded)."""
    try:
        with np.errstate(all="ignore"):
            value = float(np.asarray(ex.evaluate(expr, env), dtype=float).reshape(-1)[0])
    except (CarKineticsError, ArithmeticError, ValueError, TypeError) as err:
        errs.add(key, f"{what}cannot be evaluated for the typical patient: {err}")
        return False
    if not math.isfinite(value):
        errs.add(key, f"{what}{name} = {value} for the typical patient (not a finite number)")
        return False
    bad = _outside_bounds(model, name, value)
    if bad:
        errs.add(key, f"{what}{bad}" + ("" if expr.op == "num" else " (for the typical patient)"))
        return False
    return True


# a value within the rounding slack of a bound (model.bound_slack) is set to the bound


def _outside_bounds(model, name, value) -> str:
    """A message when ``value`` is outside the bounds of parameter ``name``, else ''."""
    par = model.parameter(name)
    if par.bounds and not (par.bounds[0] - _slack(par.bounds[0]) <= value <= par.bounds[1] + _slack(par.bounds[1])):
        return (f"{name} = {value:g} is outside the model's bounds [{par.bounds[0]:g}, {par.bounds[1]:g}] "
                f"({par.unit}); values written in a scenario are not clipped")
    return ""


def _effective_sds(model, spec) -> dict:
    sds = {p.name: (p.iiv_log_sd if spec.model_variability else 0.0) for p in model.parameters}
    sds.update(spec.variability)
    return sds


def _parse_block(raw, key, kind, model, spec, sds, errs):
    if not isinstance(raw, dict):
        errs.add(key, "expected a table: parameters = [...], matrix = [[...], ...]")
        return None
    errs.unknown_keys(key, raw, _BLOCK_KEYS, f"a key of [{key}]")
    names = raw.get("parameters")
    if (not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names)):
        errs.add(f"{key}.parameters", f"expected a list of at least two distinct parameter names, got {names!r}")
        return None
    bad = False
    for n in names:
        if n not in model.parameter_names:
            errs.add(f"{key}.parameters", f"'{n}' is not a parameter of model '{model.name}'"
                                          f"{suggestion(n, model.parameter_names)}")
            bad = True
    mat = raw.get("matrix")
    k = len(names)
    if (not isinstance(mat, list) or len(mat) != k
            or not all(isinstance(r, list) and len(r) == k and all(is_number(x) for x in r) for r in mat)):
        errs.add(f"{key}.matrix", f"expected a {k} x {k} matrix of numbers (a list of {k} rows), one row and "
                                  f"column per parameter in 'parameters'")
        return None
    if bad:
        return None
    m = np.array(mat, dtype=float)
    if not np.allclose(m, m.T, rtol=0, atol=1e-12 * max(1.0, np.abs(m).max())):
        i, j = np.argwhere(np.abs(m - m.T) > 1e-12 * max(1.0, np.abs(m).max()))[0]
        errs.add(f"{key}.matrix", f"the matrix is not symmetric: row {i + 1}, column {j + 1} is {m[i, j]:g} but "
                                  f"row {j + 1}, column {i + 1} is {m[j, i]:g}")
        return None
    block_sds = None
    if kind == "correlation":
        diag = np.diag(m)
        if not np.allclose(diag, 1.0, rtol=0, atol=1e-12):
            errs.add(f"{key}.matrix", f"a correlation matrix has 1 on the diagonal, got {diag.tolist()}")
            return None
        if np.any(np.abs(m) > 1):
            errs.add(f"{key}.matrix", "correlations must lie in [-1, 1]")
            return None
        for n in names:
            if sds[n] == 0:
                errs.add(f"{key}.parameters", f"'{n}' has no between-patient variability (SD 0), so it cannot be "
                                              f"correlated; give it an SD in [population.variability]")
                bad = True
        corr = m
    else:
        diag = np.diag(m)
        if np.any(diag <= 0):
            errs.add(f"{key}.matrix", f"a covariance matrix has variances > 0 on the diagonal, got {diag.tolist()}")
            return None
        for n in names:
            if n in spec.variability:
                errs.add(f"{key}.parameters", f"the SD of '{n}' is given twice: in [population.variability] and "
                                              f"on the diagonal of the covariance (variance of log({n}))")
                bad = True
        block_sds = tuple(float(s) for s in np.sqrt(diag))
        corr = m / np.outer(np.sqrt(diag), np.sqrt(diag))
    if bad:
        return None
    try:
        chol = np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        ev = float(np.linalg.eigvalsh(corr).min())
        errs.add(f"{key}.matrix", f"the {kind} matrix is not positive definite (smallest eigenvalue of the "
                                  f"correlation {ev:.3g}); check the signs and sizes of the off-diagonal entries")
        return None
    return CorrelationBlock(tuple(names), corr, block_sds, chol)


def _parse_arms(raw, context) -> Arms:
    errs, model = context["errors"], context["model"]
    if not isinstance(raw, dict) or not raw:
        errs.add("arms", "expected tables [arms.NAME] with 'share' and 'parameters' / 'variables'")
        return Arms({})
    variables = context.get("variables", {})
    covariates = context.get("covariates", {})
    allowed = set(model.parameter_names) | set(covariates) | set(variables)
    arms = {}
    for name, a in raw.items():
        key = f"arms.{name}"
        if name == DEFAULT_ARM:
            errs.add(key, f"'{DEFAULT_ARM}' is reserved for the whole cohort; choose another arm name")
            continue
        if not isinstance(a, dict):
            errs.add(key, "expected a table with 'share'")
            continue
        errs.unknown_keys(key, a, _ARM_KEYS, "a key of an arm")
        share = a.get("share")
        if not is_number(share) or share <= 0:
            errs.add(f"{key}.share", f"expected the arm's share of the cohort (a number > 0; shares are relative "
                                     f"weights, normalised to sum to 1), got {share!r}")
            share = None
        elif share > MAX_SHARE:
            errs.add(f"{key}.share", f"{share:g} is larger than {MAX_SHARE:g}; shares are relative weights "
                                     f"(e.g. 1 and 2, or 0.3 and 0.7)")
            share = None
        params = {}
        for pname, value, pkey in parameter_items(a.get("parameters", {}), f"{key}.parameters", model, errs,
                                                  "value or expression"):
            e = value_expression(value, pkey, allowed, errs, "arm parameters may use parameters (their typical "
                                                             "values), covariates and variables")
            if e is not None:
                env = _typical_env(context, covariates)
                env.update({v: float(x) for v, x in a.get("variables", {}).items()
                            if v in env and is_number(x)} if isinstance(a.get("variables"), dict) else {})
                if not _check_typical(model, pname, e, env, pkey, errs, f"arm '{name}': "):
                    continue
                params[pname] = e
        avars = {}
        vraw = a.get("variables", {})
        if not isinstance(vraw, dict):
            errs.add(f"{key}.variables", "expected a table of variable = number")
            vraw = {}
        for vname, value in vraw.items():
            vkey = f"{key}.variables.{vname}"
            if vname not in variables:
                errs.add(vkey, f"'{vname}' is not a variable of this scenario (declare it in [variables])"
                               f"{suggestion(vname, variables)}")
                continue
            if not is_number(value):
                errs.add(vkey, f"expected a finite number, got {value!r}")
                continue
            avars[vname] = float(value)
        for k in ("description", "notes"):
            if k in a and not isinstance(a[k], str):
                errs.add(f"{key}.{k}", f"expected a string, got {a[k]!r}")
        if share is not None:
            arms[name] = Arm(name, float(share), params, avars, str(a.get("description", "")))
    context["arm_names"] = set(context.get("arm_names", ())) | set(raw)
    return Arms(arms)


register_section("variables", _parse_variables)
register_section("population", _parse_population)
register_section("arms", _parse_arms)


# ----------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------


def _block_generator(seed: int, stream: int, sub: int, block: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, stream, sub, block])))


def _name_id(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def _stream(seed, stream, sub, start, stop, draw):
    """Rows ``start..stop-1`` of a per-block stream; ``draw(gen, BLOCK)`` makes one block."""
    parts = []
    for b in range(start // BLOCK, (stop - 1) // BLOCK + 1):
        block = draw(_block_generator(seed, stream, sub, b), BLOCK)
        lo = max(start, b * BLOCK) - b * BLOCK
        hi = min(stop, (b + 1) * BLOCK) - b * BLOCK
        parts.append(block[lo:hi])
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _uniform_open(gen, shape):
    # doubles k / 2^53 shifted by half a step: strictly inside (0, 1)
    return gen.random(shape) + 2.0 ** -54


@dataclass
class Draws:
    """Patients ``start..stop-1`` of a cohort.

    Attributes
    ----------
    index : ndarray of int64
    arm : ndarray of int64
        Index into :attr:`CohortDesign.arm_names`.
    covariates : dict of str to ndarray
    variables : dict of str to float or ndarray
        Per-patient values where an arm overrides them.
    parameters : ndarray, shape (n, n_parameters)
        Individual parameter vectors (after variability and clipping to bounds).
    n_clipped : ndarray of int64, shape (n_parameters,)
        How many draws of each parameter were clipped to the model's bounds.
    """

    index: np.ndarray
    arm: np.ndarray
    covariates: dict
    variables: dict
    parameters: np.ndarray
    n_clipped: np.ndarray

    def env(self, names, mask=None) -> dict:
        """Name -> values for event expressions (individual parameters, covariates, variables)."""
        sel = (lambda v: v) if mask is None else (lambda v: v[mask] if isinstance(v, np.ndarray) else v)
        env = {n: sel(self.parameters[:, i]) for i, n in enumerate(names)}
        env.update({k: sel(v) for k, v in self.covariates.items()})
        env.update({k: sel(v) for k, v in self.variables.items()})
        return env


class CohortDesign:
    """Everything needed to draw patients of one scenario reproducibly.

    Build with :func:`cohort_design`; :meth:`draw` gives any range of patients, the
    same values whatever the ranges asked for.
    """

    def __init__(self, scenario, seed, variables=None, parameters=None, arms=None):
        model = scenario.model
        self.scenario = scenario
        self.model = model
        self.seed = int(seed)
        spec = scenario.sections.get("population") or PopulationSpec()
        self.spec = spec
        var_sec = scenario.sections.get("variables")
        base_vars = dict(var_sec.values) if var_sec is not None else {}
        problems = []
        for name, value in (variables or {}).items():
            if name not in base_vars:
                problems.append(f"variables.{name}: '{name}' is not a variable of this scenario"
                                f"{suggestion(name, base_vars)}")
            elif not is_number(value):
                problems.append(f"variables.{name}: expected a finite number, got {value!r}")
            else:
                base_vars[name] = float(value)
        typical = scenario.parameter_vector()
        self.parameter_overrides = {}
        for name, value in (parameters or {}).items():
            if name not in model.parameter_names:
                problems.append(f"parameters.{name}: '{name}' is not a parameter of model '{model.name}'"
                                f"{suggestion(name, model.parameter_names)}")
            elif not is_number(value):
                problems.append(f"parameters.{name}: expected a finite number, got {value!r}")
            elif _outside_bounds(model, name, value):
                problems.append(f"parameters.{name}: {_outside_bounds(model, name, value)}")
            else:
                par = model.parameter(name)
                value = float(np.clip(value, *par.bounds)) if par.bounds else float(value)  # rounding only
                typical[model.parameter_index(name)] = value
                self.parameter_overrides[name] = value
        arms_sec = scenario.sections.get("arms")
        all_arms = dict(arms_sec.arms) if arms_sec is not None else {}
        if arms is not None:
            arms = [arms] if isinstance(arms, str) else list(arms)
            for a in arms:
                if a not in all_arms:
                    problems.append(f"arms: '{a}' is not an arm of this scenario{suggestion(a, all_arms)}"
                                    if all_arms else f"arms: this scenario has no [arms] (asked for '{a}')")
            chosen = {a: all_arms[a] for a in all_arms if a in arms}
        else:
            chosen = all_arms
        if problems:
            raise ScenarioError(scenario.path, problems)
        self.variables = base_vars
        self.typical = typical
        self.arms = list(chosen.values()) if chosen else [Arm(DEFAULT_ARM, 1.0)]
        self.arm_names = tuple(a.name for a in self.arms)
        shares = np.array([a.share for a in self.arms], dtype=float)
        self.cum_shares = np.cumsum(shares / shares.sum())
        self.cum_shares[-1] = 1.0

        sds = _effective_sds(model, spec)
        block = spec.correlation
        if block is not None and block.sds is not None:
            sds.update(dict(zip(block.parameters, block.sds)))
        self.sd = np.array([sds[n] for n in model.parameter_names], dtype=float)
        self.block_index = (np.array([model.parameter_index(n) for n in block.parameters])
                            if block is not None else None)
        self.block_cholesky = block.cholesky if block is not None else None
        lo = np.array([p.bounds[0] if p.bounds else -np.inf for p in model.parameters])
        hi = np.array([p.bounds[1] if p.bounds else np.inf for p in model.parameters])
        self.lower, self.upper = lo, hi
        touched = set(spec.parameters)
        for a in self.arms:
            touched |= set(a.parameters)
        self.varying = tuple(n for i, n in enumerate(model.parameter_names) if self.sd[i] > 0 or n in touched)
        self.covariate_names = tuple(spec.covariates)
        self.arm_variable_names = tuple(sorted({v for a in self.arms for v in a.variables}))

    # -- drawing -----------------------------------------------------------------------------
    def draw(self, start: int, stop: int) -> Draws:
        """Patients ``start..stop-1`` (0-based)."""
        model, seed = self.model, self.seed
        n = stop - start
        index = np.arange(start, stop, dtype=np.int64)
        u_arm = _stream(seed, STREAMS["arms"], 0, start, stop, lambda g, b: _uniform_open(g, b))
        arm = np.minimum(np.searchsorted(self.cum_shares, u_arm, side="right"), len(self.arms) - 1).astype(np.int64)
        covs = {}
        for name, cov in self.spec.covariates.items():
            u = _stream(seed, STREAMS["covariates"], _name_id(name), start, stop, lambda g, b: _uniform_open(g, b))
            covs[name] = cov.ppf(u)
        variables = dict(self.variables)
        for v in self.arm_variable_names:
            arr = np.full(n, self.variables[v])
            for k, a in enumerate(self.arms):
                if v in a.variables:
                    arr[arm == k] = a.variables[v]
            variables[v] = arr
        P = np.tile(self.typical, (n, 1))
        names = model.parameter_names

        def env_of(P, mask=None):
            sel = (lambda v: v) if mask is None else (lambda v: v[mask] if isinstance(v, np.ndarray) else v)
            env = {nm: sel(P[:, i]) for i, nm in enumerate(names)}
            env.update({k: sel(v) for k, v in covs.items()})
            env.update({k: sel(v) for k, v in variables.items()})
            return env

        # arm settings, then covariate expressions: each set evaluated on the values before it
        for k, a in enumerate(self.arms):
            if not a.parameters:
                continue
            mask = arm == k
            if not mask.any():
                continue
            env = env_of(P, mask)
            new = {nm: self._evaluate(e, env, int(mask.sum()), f"arms.{a.name}.parameters.{nm}")
                   for nm, e in a.parameters.items()}
            for nm, val in new.items():
                self._check_values(nm, val, index[mask], f"arms.{a.name}.parameters.{nm}")
                j = model.parameter_index(nm)
                P[mask, j] = np.clip(val, self.lower[j], self.upper[j])  # rounding at a bound only
        if self.spec.parameters:
            env = env_of(P)
            new = {nm: self._evaluate(e, env, n, f"population.parameters.{nm}")
                   for nm, e in self.spec.parameters.items()}
            for nm, val in new.items():
                self._check_values(nm, val, index, f"population.parameters.{nm}")
                j = model.parameter_index(nm)
                P[:, j] = np.clip(val, self.lower[j], self.upper[j])  # rounding at a bound only
        # between-patient variability
        if np.any(self.sd > 0):
            z = _stream(seed, STREAMS["parameters"], 0, start, stop,
                        lambda g, b: g.standard_normal((b, model.n_parameters)))
            if self.block_index is not None:
                z = z.copy()
                z[:, self.block_index] = z[:, self.block_index] @ self.block_cholesky.T
            with np.errstate(over="ignore"):
                P = P * np.exp(z * self.sd)
        if not np.all(np.isfinite(P)):
            i, j = np.argwhere(~np.isfinite(P))[0]
            raise PopulationError(f"{self.scenario.path}: parameter '{names[j]}' of patient {start + i} is not "
                                  f"finite ({P[i, j]}); check the expressions in [population.parameters] and "
                                  f"[arms]")
        n_clipped = (P < self.lower).sum(axis=0) + (P > self.upper).sum(axis=0)
        P = np.clip(P, self.lower, self.upper)
        return Draws(index, arm, covs, variables, P, n_clipped.astype(np.int64))

    def _evaluate(self, expr, env, n, key) -> np.ndarray:
        """Values of a parameter expression for ``n`` patients; an error names the file and key."""
        try:
            with np.errstate(all="ignore"):
                return _as_column(ex.evaluate(expr, env), n)
        except (CarKineticsError, ArithmeticError, ValueError, TypeError) as err:
            raise ScenarioError(self.scenario.path, [FileProblem(key, str(err))]) from None

    def _check_values(self, name, values, index, key) -> None:
        """A parameter value written in the scenario (before variability) must be finite and within
        the model's bounds: it is an error, not clipped."""
        j = self.model.parameter_index(name)
        lo, hi = self.lower[j], self.upper[j]
        bad = ~np.isfinite(values) | (values < lo - _slack(lo)) | (values > hi + _slack(hi))
        if bad.any():
            k = int(np.argmax(bad))
            raise ScenarioError(self.scenario.path, [FileProblem(
                key, f"{name} = {values[k]:g} for patient {int(index[k])} is not finite or outside the model's "
                     f"bounds [{self.lower[j]:g}, {self.upper[j]:g}] ({int(bad.sum())} of {len(values)} patients "
                     f"in this chunk); values written in a scenario are not clipped, only random draws are")])

    def uniforms(self, start: int, stop: int, n_uniforms: int) -> np.ndarray:
        """Uniforms in (0, 1) for random events (hazards), shape (stop - start, n_uniforms).

        Column ``j`` comes from its own sub-stream, so adding a random event after
        the others leaves theirs unchanged.
        """
        out = np.empty((stop - start, max(0, int(n_uniforms))))
        for j in range(out.shape[1]):
            out[:, j] = _stream(self.seed, STREAMS["events"], j, start, stop, lambda g, b: _uniform_open(g, b))
        return out

    def columns(self, draws: Draws) -> dict:
        """The patient table columns of ``draws`` by name: patient, arm (a pandas Categorical),
        covariates, varying parameters."""
        import pandas as pd

        data = {"patient": draws.index,
                "arm": pd.Categorical.from_codes(draws.arm, categories=list(self.arm_names))}
        for k in self.covariate_names:
            data[k] = draws.covariates[k]
        for nm in self.varying:
            data[f"param_{nm}"] = draws.parameters[:, self.model.parameter_index(nm)]
        return data

    def table(self, draws: Draws):
        """The patient table of ``draws`` (:meth:`columns` as a DataFrame)."""
        import pandas as pd

        return pd.DataFrame(self.columns(draws))


def _as_column(v, n) -> np.ndarray:
    return np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy()


def resolve_seed(scenario, seed=None) -> int:
    """The seed of a run: ``seed``, else ``[population] seed``, else a fresh random one."""
    if seed is None:
        spec = scenario.sections.get("population")
        seed = spec.seed if spec is not None else None
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2 ** 63))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise PopulationError(f"seed must be a whole number in [0, 2**63 - 1], got {seed!r}")
    return int(seed)


def cohort_design(scenario, seed=None, *, variables=None, parameters=None, arms=None) -> CohortDesign:
    """Prepare the reproducible drawing of a scenario's virtual patients.

    Parameters
    ----------
    scenario : Scenario
    seed : int, optional
        Default: ``[population] seed``, else a fresh random seed (see ``design.seed``).
    variables : mapping of str to float, optional
        Overrides of ``[variables]``.
    parameters : mapping of str to float, optional
        Overrides of typical parameter values (before arms, covariates and variability).
    arms : sequence of str, optional
        Only these arms, their shares renormalised.

    Raises
    ------
    ScenarioError
        For unknown variables, parameters or arms.
    """
    return CohortDesign(scenario, resolve_seed(scenario, seed), variables, parameters, arms)


def sample_population(scenario, n, seed=None, *, start=0, variables=None, parameters=None, arms=None):
    """Draw patients ``start .. start + n - 1`` of a scenario's population, without simulating.

    Returns
    -------
    pandas.DataFrame
        ``patient``, ``arm``, the covariates, and every model parameter (individual
        values, as ``param_NAME``).

    Examples
    --------
    >>> from carkinetics.scenario.load import load_scenario                     # doctest: +SKIP
    >>> df = sample_population(load_scenario("scenarios/multiphasic_cohort.toml"), 10_000, seed=1)  # doctest: +SKIP
    """
    import pandas as pd

    design = cohort_design(scenario, seed, variables=variables, parameters=parameters, arms=arms)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_POPULATION:
        raise PopulationError(f"n must be a whole number in [1, {MAX_POPULATION:,}], got {n!r}")
    draws = design.draw(int(start), int(start) + int(n))
    df = design.table(draws)
    for i, nm in enumerate(scenario.model.parameter_names):
        col = f"param_{nm}"
        if col not in df.columns:
            df[col] = draws.parameters[:, i]
    cols = ["patient", "arm", *design.covariate_names] + [f"param_{nm}" for nm in scenario.model.parameter_names]
    return pd.DataFrame(df[cols])
