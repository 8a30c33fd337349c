"""The sections of a virtual population: scenario constants, variability, covariates, arms.

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
    variables; ``parameter_set = "file.toml"`` (relative to the scenario file, the format of
    ``[scenario] parameter_set``) gives the arm a product's values, under its own
    ``parameters``; ``[[events]]`` with ``arms = [...]`` apply only to those arms.

The patients of a cohort are drawn by :mod:`carkinetics.scenario.sampling`, their
covariates from the distributions of :mod:`carkinetics.scenario.covariates`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from carkinetics.model import expressions as ex
from carkinetics.model.spec import bound_slack as _slack
from carkinetics.errors import CarKineticsError, ScenarioError, is_number, is_whole_number, suggestion
from carkinetics.scenario.covariates import parse_covariate
from carkinetics.scenario.parameter_sets import load_parameter_set
from carkinetics.scenario.parsing import parameter_items, value_expression

#: Names no variable or covariate may take (``t``, functions and constants of expressions).
RESERVED_NAMES = {"t"} | set(ex.FUNCTIONS) | set(ex.CONSTANTS)

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
DEFAULT_ARM = "all"  # the arm name of a cohort without [arms]; reserved

_POPULATION_KEYS = {"size", "seed", "description", "notes", "model_variability", "variability", "correlation",
                    "covariance", "covariates", "parameters"}
_ARM_KEYS = {"share", "parameters", "variables", "description", "notes", "parameter_set"}
_BLOCK_KEYS = {"parameters", "matrix"}


@dataclass
class Variables:
    """``[variables]``: named scenario constants (name -> value), with units."""

    values: dict
    units: dict = field(default_factory=dict)
    descriptions: dict = field(default_factory=dict)

    def typical_values(self) -> dict:
        """Name -> value of every variable."""
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
        """Covariate name -> its typical value (the median)."""
        return {name: cov.typical for name, cov in self.covariates.items()}


@dataclass
class Arm:
    """One arm of a cohort: its share and its parameter and variable settings."""

    name: str
    share: float
    parameters: dict = field(default_factory=dict)  # parameter -> Expr
    variables: dict = field(default_factory=dict)  # variable -> float
    description: str = ""
    parameter_set: Path | None = None  # the file the arm's values start from


@dataclass
class Arms:
    """``[arms.NAME]`` tables, in file order."""

    arms: dict  # name -> Arm

    @property
    def names(self) -> tuple[str, ...]:
        """The arm names, in file order."""
        return tuple(self.arms)


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


def parse_variables(raw, context) -> Variables:
    """Parse ``[variables]``: named scenario constants (``name = number`` or ``name = {value, unit}``).

    Parameters
    ----------
    raw : object
        The ``[variables]`` table as read.
    context : SectionContext
        The scenario being parsed; problems go to ``context.errors``, and the valid
        variables are declared in ``context.variables`` and ``context.event_names``.

    Returns
    -------
    Variables
        The valid variables.
    """
    errs, model = context.errors, context.model
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
    context.variables = values
    context.event_names = set(context.event_names) | set(values)
    return Variables(values, units, descr)


def parse_population(raw, context) -> PopulationSpec:
    """Parse ``[population]``: size, seed, variability, correlation, covariates and parameter expressions.

    Parameters
    ----------
    raw : object
        The ``[population]`` table as read.
    context : SectionContext
        The scenario being parsed (after its ``[variables]``); problems go to
        ``context.errors``, and the valid covariates are declared in
        ``context.covariates`` and ``context.event_names``.

    Returns
    -------
    PopulationSpec
        The population (entries with problems left out).
    """
    errs, model = context.errors, context.model
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
    variables = context.variables
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
        cov = parse_covariate(name, craw, key, errs.add)
        if cov is not None:
            spec.covariates[name] = cov

    # correlation / covariance block
    sds = effective_sds(model, spec)
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
    context.covariates = spec.covariates
    context.event_names = set(context.event_names) | set(spec.covariates)
    return spec


def _typical_env(context, covariates) -> dict:
    """Names usable in parameter expressions at the typical patient's values."""
    model = context.model
    env = dict(zip(model.parameter_names, model.parameter_vector(context.parameters)))
    env.update({name: cov.typical for name, cov in covariates.items()})
    env.update(context.variables)
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
    bad = outside_bounds(model, name, value)
    if bad:
        errs.add(key, f"{what}{bad}" + ("" if expr.op == "num" else " (for the typical patient)"))
        return False
    return True


# a value within the rounding slack of a bound (model.bound_slack) is set to the bound


def outside_bounds(model, name, value) -> str:
    """A message when ``value`` is outside the bounds of parameter ``name``, else ''.

    Parameters
    ----------
    model : Model
    name : str
        A parameter of ``model``.
    value : float

    Returns
    -------
    str
        The problem, naming the bounds; '' when ``value`` is within them (up to rounding).
    """
    par = model.parameter(name)
    if par.bounds and not (par.bounds[0] - _slack(par.bounds[0]) <= value <= par.bounds[1] + _slack(par.bounds[1])):
        return (f"{name} = {value:g} is outside the model's bounds [{par.bounds[0]:g}, {par.bounds[1]:g}] "
                f"({par.unit}); values written in a scenario are not clipped")
    return ""


def effective_sds(model, spec) -> dict:
    """Log-normal SD of each parameter's between-patient variability.

    Parameters
    ----------
    model : Model
    spec : PopulationSpec
        Its ``model_variability`` and ``variability`` override the model's ``iiv_log_sd``.

    Returns
    -------
    dict of str to float
        Parameter name -> SD of log(value) (0: no variability).
    """
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


def _arm_parameter_set(raw, key, context) -> tuple:
    """The file of an arm's ``parameter_set`` and its values as constant expressions
    (``(None, {})`` without one, or after a recorded problem)."""
    if raw is None:
        return None, {}
    if not isinstance(raw, str) or not raw or len(raw) > 4096 or "\x00" in raw:
        context.errors.add(key, f"expected the path of a parameter-set file (relative to this scenario), got "
                                f"{raw!r:.200}")
        return None, {}
    path = Path(context.path).parent / raw
    if not path.exists():
        context.errors.add(key, f"parameter-set file '{raw}' not found (looked for {path})")
        return None, {}
    try:
        values = load_parameter_set(path, context.model)
    except ScenarioError as err:
        context.errors.add(key, f"parameter-set file '{raw}' could not be read:\n    "
                                + str(err).replace("\n", "\n    "))
        return None, {}
    return path, {name: ex.Expr.num(value) for name, value in values.items()}


def parse_arms(raw, context) -> Arms:
    """Parse ``[arms.NAME]`` tables: each arm's share, parameters and variables.

    Parameters
    ----------
    raw : object
        The ``[arms]`` table as read.
    context : SectionContext
        The scenario being parsed (after its ``[variables]`` and ``[population]``);
        problems go to ``context.errors``, and the arm names are declared in
        ``context.arm_names``. An arm's ``parameter_set`` is a file relative to
        ``context.path``; the arm's ``parameters`` override its values.

    Returns
    -------
    Arms
        The valid arms, in file order.
    """
    errs, model = context.errors, context.model
    if not isinstance(raw, dict) or not raw:
        errs.add("arms", "expected tables [arms.NAME] with 'share' and 'parameters' / 'variables'")
        return Arms({})
    variables = context.variables
    covariates = context.covariates
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
        set_path, params = _arm_parameter_set(a.get("parameter_set"), f"{key}.parameter_set", context)
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
            arms[name] = Arm(name, float(share), params, avars, str(a.get("description", "")), set_path)
    context.arm_names = set(context.arm_names) | set(raw)
    return Arms(arms)
