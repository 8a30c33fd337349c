"""Declarative model files: validation and the :class:`Model` object.

A model file (``models/*.toml``) declares states, parameters, ordered
intermediate expressions, one ODE right-hand side per state, and named outputs,
all with units and sources. :func:`model_from_dict` checks the parsed document and
builds the :class:`Model`; :func:`carkinetics.model.load.load_model` finds and reads the file.

Example
-------
>>> from carkinetics import load_model
>>> model = load_model("models/multiphasic.toml")          # doctest: +SKIP
>>> model.state_names                                      # doctest: +SKIP
('expanding', 'persisting')
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from carkinetics.model import expressions as ex
from carkinetics.model.interventions import parse_interventions
from carkinetics.model.model_events import (KernelSystem, check_terminal, kernel_system, nonnegative_names,
                                             parse_model_events, parse_stochastic)
from carkinetics.model.residual_error import parse_residual_error_section
from carkinetics.errors import (CarKineticsError, ExpressionError, ModelFileError, ProblemCollector, is_number,
                                printable, suggestion)

PARAMETER_STATUSES = ("published", "derived", "fitted", "assumption", "fixed")
RESERVED_NAMES = {"t", "pi"} | set(ex.FUNCTIONS)
#: Longest ``[model] name`` (free text, one line; never part of generated code).
MAX_MODEL_NAME_LENGTH = 200
#: Whole numbers in a model file must fit a 64-bit integer.
MAX_INTEGER = 2**63 - 1

_MODEL_KEYS = {"name", "description", "time_unit", "references", "notes", "version", "breakpoints",
               "after_terminal", "outcome_parameters"}
_STATE_KEYS = {"unit", "description", "initial", "extinction", "atol", "notes", "stochastic"}
_PARAM_KEYS = {"value", "unit", "description", "symbol", "source", "bounds", "iiv_log_sd", "status", "notes"}
_EXPR_KEYS = {"expression", "unit", "description", "notes"}
_OUTPUT_KEYS = {"expression", "unit", "description", "notes", "reference"}
_REFERENCE_KEYS = {"value", "label"}
_TOP_KEYS = {"model", "states", "parameters", "expressions", "odes", "outputs", "interventions", "residual_error",
              "events"}


@dataclass(frozen=True)
class State:
    """A state variable of a model."""

    name: str
    unit: str
    description: str
    initial: ex.Expr
    extinction: float  # threshold below which the population is set to exactly zero
    atol: float | None = None


@dataclass(frozen=True)
class Parameter:
    """A model parameter with its annotation."""

    name: str
    value: float
    unit: str
    description: str
    source: str
    symbol: str = ""
    bounds: tuple[float, float] | None = None
    iiv_log_sd: float = 0.0  # between-patient variability: SD of log(value)
    status: str = "published"
    notes: str = ""


@dataclass(frozen=True)
class Output:
    """A named observable computed from states and parameters.

    ``references`` are clinical reference lines ``(value, label)`` in the output's unit
    (e.g. ``(0.05, "CR: blasts < 5%")``), drawn on the output's figure panels.
    """

    name: str
    expression: ex.Expr
    unit: str
    description: str = ""
    references: tuple[tuple[float, str], ...] = ()


@dataclass
class Model:
    """A validated model: names, defaults, equations and (lazily) its compiled kernel.

    Build one with :func:`carkinetics.model.load.load_model`. Arrays of parameters follow
    :attr:`parameter_names` order; state arrays follow :attr:`state_names`.
    """

    path: Path
    name: str
    description: str
    time_unit: str
    references: tuple[str, ...]
    states: tuple[State, ...]
    parameters: tuple[Parameter, ...]
    expressions: dict[str, ex.Expr]
    odes: dict[str, ex.Expr]
    outputs: tuple[Output, ...]
    breakpoints: tuple[ex.Expr, ...] = ()
    #: Named interventions (:mod:`carkinetics.model.interventions`) scenarios use by name.
    interventions: dict = field(default_factory=dict)
    #: Residual error of observed outputs (:mod:`carkinetics.model.residual_error`), by output.
    residual_errors: dict = field(default_factory=dict)
    #: Triggered and random events of the model (:mod:`carkinetics.model.model_events`), by name.
    events: dict = field(default_factory=dict)
    #: States counted exactly while small (:class:`~carkinetics.model.model_events.Stochastic`), by state.
    stochastic: dict = field(default_factory=dict)
    #: What saved values after a terminal event are: ``"nan"`` or ``"hold"``.
    after_terminal: str = "nan"
    #: Parameters of the clinical outcome model (``[model] outcome_parameters``): read by
    #: scenario endpoints only, never by the equations, outputs or events of the model.
    outcome_parameters: tuple[str, ...] = ()
    #: Folder of the calibration record of the outcome parameters' values (None: not calibrated).
    outcome_calibration: Path | None = None
    source_text: str = field(repr=False, default="")
    _kernel: object = field(default=None, repr=False, compare=False)

    # -- names ------------------------------------------------------------------------
    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the states, in model-file order."""
        return tuple(s.name for s in self.states)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Names of the parameters, in model-file order."""
        return tuple(p.name for p in self.parameters)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the outputs, in model-file order."""
        return tuple(o.name for o in self.outputs)

    @property
    def event_names(self) -> tuple[str, ...]:
        """Names of the model's own events (``[events]``), in model-file order."""
        return tuple(self.events)

    @property
    def stochastic_states(self) -> tuple[str, ...]:
        """Names of the states counted exactly while small."""
        return tuple(self.stochastic)

    @property
    def is_stochastic(self) -> bool:
        """Whether a simulation of this model draws random numbers (random events or stochastic states)."""
        return bool(self.stochastic) or any(e.kind == "hazard" for e in self.events.values())

    @property
    def n_states(self) -> int:
        """Number of states."""
        return len(self.states)

    @property
    def n_parameters(self) -> int:
        """Number of parameters."""
        return len(self.parameters)

    @property
    def n_outputs(self) -> int:
        """Number of outputs."""
        return len(self.outputs)

    @property
    def content_hash(self) -> str:
        """SHA-256 of the model file's text (hex)."""
        return hashlib.sha256(self.source_text.encode()).hexdigest()

    def state_index(self, name: str) -> int:
        """Position of state ``name`` in :attr:`state_names` (KeyError if there is none)."""
        try:
            return self.state_names.index(name)
        except ValueError:
            raise KeyError(f"'{name}' is not a state of model '{self.name}'"
                           f"{suggestion(name, self.state_names)}") from None

    def parameter_index(self, name: str) -> int:
        """Position of parameter ``name`` in :attr:`parameter_names` (KeyError if there is none)."""
        try:
            return self.parameter_names.index(name)
        except ValueError:
            raise KeyError(f"'{name}' is not a parameter of model '{self.name}'"
                           f"{suggestion(name, self.parameter_names)}") from None

    def output_index(self, name: str) -> int:
        """Position of output ``name`` in :attr:`output_names` (KeyError if there is none)."""
        try:
            return self.output_names.index(name)
        except ValueError:
            raise KeyError(f"'{name}' is not an output of model '{self.name}'"
                           f"{suggestion(name, self.output_names)}") from None

    def parameter(self, name: str) -> Parameter:
        """The :class:`Parameter` called ``name``."""
        return self.parameters[self.parameter_index(name)]

    def output(self, name: str) -> Output:
        """The :class:`Output` called ``name``."""
        return self.outputs[self.output_index(name)]

    # -- values -----------------------------------------------------------------------
    def default_parameters(self) -> np.ndarray:
        """Typical values of all parameters, in :attr:`parameter_names` order."""
        return np.array([p.value for p in self.parameters], dtype=float)

    def parameter_vector(self, overrides: dict[str, float] | None = None, *,
                         check_bounds: bool = True) -> np.ndarray:
        """Typical values with ``overrides`` (a mapping name -> value) applied.

        ``check_bounds=False`` lets a mechanism be switched off outside its plausible range
        (a rate of 0 in a structural test); values must still be finite numbers.

        Raises
        ------
        KeyError
            If an override names no parameter of the model.
        ParameterValueError
            If an override is not a finite number within the parameter's bounds (values at
            a bound up to a relative rounding of 1e-9 are accepted).
        """
        values = self.default_parameters()
        for name, value in (overrides or {}).items():
            i = self.parameter_index(name)
            values[i] = _checked_value(self.parameters[i], value, check_bounds)
        return values

    def breakpoint_times(self, parameters: np.typing.ArrayLike) -> np.ndarray:
        """Breakpoint times (N, n_breakpoints) for parameter vectors (N, n_parameters)."""
        parameters = np.atleast_2d(np.asarray(parameters, dtype=float))
        env = {n: parameters[:, i] for i, n in enumerate(self.parameter_names)}
        cols = [np.broadcast_to(np.asarray(ex.evaluate(b, env), float), (parameters.shape[0],))
                for b in self.breakpoints]
        if not cols:
            return np.zeros((parameters.shape[0], 0))
        return np.stack(cols, axis=1)

    def extinction_thresholds(self) -> np.ndarray:
        """Extinction threshold of each state (state units; 0 disables), in :attr:`state_names` order."""
        return np.array([s.extinction for s in self.states], dtype=float)

    def initial_state(self, parameters: np.typing.ArrayLike | None = None) -> np.ndarray:
        """Initial state for one parameter vector (numpy evaluation of ``initial``)."""
        p = self.default_parameters() if parameters is None else np.asarray(parameters, float)
        env = dict(zip(self.parameter_names, p))
        return np.array([float(ex.evaluate(s.initial, env)) for s in self.states])

    def environment(self, states: np.typing.ArrayLike, parameters: np.typing.ArrayLike,
                    t: np.typing.ArrayLike = 0.0) -> dict[str, object]:
        """Name -> value mapping with states, parameters, expressions and outputs.

        ``states`` has shape (..., n_states) and ``parameters`` (..., n_parameters);
        values broadcast. Used for numpy-side evaluation (conditions, endpoints).
        """
        states = np.asarray(states, dtype=float)
        parameters = np.asarray(parameters, dtype=float)
        env: dict = {"t": t}
        for i, name in enumerate(self.parameter_names):
            env[name] = parameters[..., i]
        for i, name in enumerate(self.state_names):
            env[name] = states[..., i]
        for name, expr in self.expressions.items():
            env[name] = ex.evaluate(expr, env)
        for out in self.outputs:
            env[out.name] = ex.evaluate(out.expression, env)
        return env

    def evaluate_outputs(self, t: np.typing.ArrayLike, states: np.typing.ArrayLike,
                         parameters: np.typing.ArrayLike) -> np.ndarray:
        """Outputs (..., n_outputs) from states and parameters, with numpy."""
        env = self.environment(states, parameters, t)
        shape = np.broadcast_shapes(np.shape(states)[:-1], np.shape(parameters)[:-1], np.shape(t))
        return np.stack([np.broadcast_to(np.asarray(env[o.name], float), shape) for o in self.outputs],
                        axis=-1)

    # -- expressions in scenario context -----------------------------------------------
    def parse_condition(self, text: str | float, where: str = "condition") -> ex.Expr:
        """Parse a condition on states, parameters, expressions, outputs and ``t``."""
        known = set(self.state_names) | set(self.parameter_names) | set(self.expressions) | set(self.output_names)
        return ex.parse(text, known)

    def condition_program(self, expr: ex.Expr) -> tuple[list[tuple[int, int]], list[float], int]:
        """Compile a condition to the kernel's stack program (states/params/t only)."""
        outputs = {o.name: o.expression for o in self.outputs}

        def slot(name):
            """Where the kernel finds ``name``: time, a state, a parameter or an expression."""
            if name == "t":
                return ("time", 0)
            if name in self.state_names:
                return ("state", self.state_names.index(name))
            if name in self.parameter_names:
                return ("param", self.parameter_names.index(name))
            if name in self.expressions:
                return ("expr", self.expressions[name])
            if name in outputs:
                return ("expr", outputs[name])
            raise ExpressionError(f"unknown name '{name}'")

        return ex.to_program(expr, slot)

    # -- kernel -----------------------------------------------------------------------
    @property
    def has_dynamics(self) -> bool:
        """Whether the model has its own events or stochastic states (its kernel then finds roots)."""
        return bool(self.events) or bool(self.stochastic)

    def kernel_system(self) -> KernelSystem | None:
        """The ODE system the kernel integrates, with hidden clocks and draws, and its roots
        (:func:`carkinetics.model.model_events.kernel_system`); None for a model without
        events or stochastic states (the kernel integrates the model as it is)."""
        return kernel_system(self, State, Parameter) if self.has_dynamics else None

    @property
    def kernel(self) -> object:
        """The compiled numba module of this model (built and cached on first use)."""
        if self._kernel is None:
            from carkinetics.model.codegen import build_kernel

            self._kernel = build_kernel(self)
        return self._kernel

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_kernel"] = None
        return state

    def __repr__(self) -> str:
        return (f"Model({self.name!r}, {self.n_states} states, {self.n_parameters} parameters, "
                f"{self.n_outputs} outputs, from {str(self.path)!r})")


#: Relative slack at a bound: a value computed to be at the bound (exp(log(upper)), an
#: expression such as "cmax * 1.0") may differ from it by rounding.
BOUND_TOLERANCE = 1e-9


def bound_slack(bound):
    """How far outside ``bound`` (a number or an array) a value may lie by rounding alone."""
    return BOUND_TOLERANCE * np.maximum(np.abs(bound), 1e-300)


class ParameterValueError(CarKineticsError, ValueError):
    """A parameter value given through the Python API is not finite or outside its bounds."""


def _checked_value(par, value, check_bounds: bool = True) -> float:
    """``value`` as a float if it is a finite number within ``par``'s bounds (1e-9 relative slack)."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ParameterValueError(f"parameter {par.name}: expected a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ParameterValueError(f"parameter {par.name}: expected a finite number, got {value!r}")
    if par.bounds and check_bounds:
        lo, hi = par.bounds
        if not lo - bound_slack(lo) <= v <= hi + bound_slack(hi):
            raise ParameterValueError(f"parameter {par.name} = {v:g} is outside the model's bounds "
                                      f"[{lo:g}, {hi:g}] ({par.unit})")
    return v


class _Problems(ProblemCollector):
    """Every problem one printable line: keys and values from the file may hold anything."""

    def add(self, key: str, message: str) -> None:
        """See :meth:`ProblemCollector.add`; key and message are made printable first."""
        super().add(printable(key, 200), printable(message, 2000))


def _check_integers(value, key, errs) -> None:
    """Record every whole number of the document outside the 64-bit range (TOML reads any size)."""
    stack = [(value, key)]
    while stack:
        v, k = stack.pop()
        if isinstance(v, dict):
            stack.extend((x, f"{k}.{n}" if k else str(n)) for n, x in v.items())
        elif isinstance(v, list):
            stack.extend((x, f"{k}[{i}]") for i, x in enumerate(v))
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INTEGER:
            errs.add(k, f"whole number of about 1e{int(v.bit_length() * math.log10(2.0))} is too large; "
                        f"whole numbers must lie within +-{MAX_INTEGER} (write large values as floats, "
                        f"e.g. 1e30)")


def model_from_dict(data: dict, path, text: str = "", outcome_parameters: dict | None = None) -> Model:
    """Validate a parsed model document and build the :class:`Model`.

    Parameters
    ----------
    data : dict
        The tables of the model file, as parsed from TOML.
    path : str or pathlib.Path
        The file the document was read from (used in messages and as the default name).
    text : str, optional
        The file's text; its hash keys the kernel cache.
    outcome_parameters : dict, optional
        ``[parameters.NAME]`` tables of the clinical outcome model the file names in
        ``[model] outcome_parameters`` (:func:`carkinetics.model.load.load_model` reads it):
        appended to the model's parameters, and refused where the model's own equations,
        outputs or events read them (they are for endpoints only).

    Returns
    -------
    Model

    Raises
    ------
    ModelFileError
        Listing every problem in the document: key, offending value, what was expected.
    """
    path = Path(path)
    errs = _Problems(path, ModelFileError)
    _check_integers(data, "", errs)
    errs.raise_if_any()  # later checks convert numbers to floats

    for key in data:
        if key not in _TOP_KEYS:
            errs.unknown_name(key, key, _TOP_KEYS, "a section of a model file")
    meta = _table(data.get("model", {}), "model", errs)
    name, time_unit, refs = _check_metadata(meta, path, errs)

    states_t = _table(data.get("states"), "states", errs, required=True)
    params_t = _table(data.get("parameters", {}), "parameters", errs)
    exprs_t = _table(data.get("expressions", {}), "expressions", errs)
    stochastic_t = {nm: spec["stochastic"] for nm, spec in states_t.items()
                    if isinstance(spec, dict) and "stochastic" in spec}
    odes_t = _table(data.get("odes", {} if stochastic_t and len(stochastic_t) == len(states_t) else None),
                    "odes", errs, required=True)
    outs_t = _table(data.get("outputs", {}), "outputs", errs)

    outcome_t = dict(outcome_parameters or {})
    _check_names((("states", states_t), ("parameters", params_t), ("expressions", exprs_t),
                  ("outputs", outs_t), ("outcome_parameters", outcome_t)), errs)
    state_names = list(states_t)
    param_names = list(params_t)  # the kinetic model's: its equations may not read the outcome parameters
    if not state_names and "states" in data:
        errs.add("states", "a model needs at least one state")

    n_problems = len(errs.problems)
    parameters = _parameters(params_t, errs)
    outcome = _parameters(outcome_t, errs, section="outcome_parameters")
    # typical parameter values, to check breakpoints and initial values (None: a parameter is bad)
    typical = ({p.name: p.value for p in parameters} if len(errs.problems) == n_problems
               and len(parameters) == len(params_t) else None)
    breakpoints = _breakpoints(meta, param_names, typical, errs)
    expressions = _expressions(exprs_t, state_names, param_names, errs)
    known = set(state_names) | set(param_names) | set(exprs_t)
    odes = _odes(odes_t, state_names, known, errs, stochastic=set(stochastic_t))
    states = _states(states_t, param_names, typical, errs)
    outputs = _outputs(outs_t, known, errs)
    nonneg = nonnegative_names(states, parameters, expressions)
    stochastic = {}
    for nm, spec in stochastic_t.items():
        st = parse_stochastic(spec, f"states.{nm}.stochastic", nm, known, nonneg, errs)
        if st is not None:
            stochastic[nm] = st
            odes[nm] = ex.sub(st.gain, st.loss)
    interventions = parse_interventions(data.get("interventions", {}), state_names, param_names, errs)
    events = parse_model_events(data.get("events", {}), state_names, param_names, known,
                                {o.name: o.expression for o in outputs}, nonneg, errs, interventions)
    after_terminal = check_terminal(meta, events, errs)
    residual_errors = parse_residual_error_section(data.get("residual_error", {}), list(outs_t), errs)

    errs.raise_if_any()
    return Model(
        path=path,
        name=name,
        description=meta["description"] if isinstance(meta.get("description"), str) else "",
        time_unit=str(time_unit),
        references=tuple(refs),
        states=tuple(states),
        parameters=tuple(parameters) + tuple(outcome),
        outcome_parameters=tuple(p.name for p in outcome),
        expressions=expressions,
        odes=odes,
        outputs=tuple(outputs),
        breakpoints=tuple(breakpoints),
        interventions=interventions,
        residual_errors=residual_errors,
        events=events,
        stochastic=stochastic,
        after_terminal=after_terminal,
        source_text=text,
    )


def _check_metadata(meta: dict, path: Path, errs) -> tuple:
    """The ``[model]`` table checked: ``(name, time_unit, references)``."""
    errs.unknown_keys("model", meta, _MODEL_KEYS, "a key of [model]")
    default_name = printable(path.stem, MAX_MODEL_NAME_LENGTH)  # file names may hold anything
    name = meta.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        errs.add("model.name", f"expected a non-empty string, got {name!r}")
        name = default_name
    elif len(name) > MAX_MODEL_NAME_LENGTH:
        errs.add("model.name", f"is {len(name):,} characters long; a model name may have at most "
                               f"{MAX_MODEL_NAME_LENGTH}")
    elif not name.isprintable():
        bad = next(c for c in name if not c.isprintable())
        errs.add("model.name", f"{name!r} contains the control character or line break {ascii(bad)}; "
                               f"a model name is one line of text")
    time_unit = meta.get("time_unit", "day")
    if not isinstance(time_unit, str):
        errs.add("model.time_unit", f"expected a string such as 'day', got {time_unit!r}")
    elif not time_unit.isprintable() or len(time_unit) > 64:
        errs.add("model.time_unit", f"expected a unit such as 'day' (one line, at most 64 characters), "
                                    f"got {time_unit!r}")
    for k in ("description", "notes"):
        if k in meta and not isinstance(meta[k], str):
            errs.add(f"model.{k}", f"expected a string, got {meta[k]!r}")
    version = meta.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, (str, int))):
        errs.add("model.version", f"expected a string such as \"1\", got {version!r}")
    refs = meta.get("references", [])
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        errs.add("model.references", "expected a list of strings")
        refs = []
    return name, time_unit, refs


def _check_names(sections, errs) -> None:
    """Names of states, parameters, expressions and outputs: valid, not reserved, unique."""
    seen: dict[str, str] = {}
    for section, table in sections:
        for nm in table:
            key = f"{section}.{nm}"
            why = ex.name_problem(nm)
            if why is not None:
                errs.add(key, why)
            elif nm in RESERVED_NAMES:
                errs.add(key, f"'{nm}' is reserved (time 't', constant 'pi' or a function name)")
            if nm in seen:
                errs.add(key, f"'{nm}' is already declared in [{seen[nm]}]; names must be unique")
            else:
                seen[nm] = section


def _parameters(params_t: dict, errs, section="parameters") -> list:
    """The ``[parameters]`` tables as :class:`Parameter` values (bad entries recorded and skipped)."""
    parameters = []
    for nm, spec in params_t.items():
        key = f"{section}.{nm}"
        if not isinstance(spec, dict):
            errs.add(key, f"expected a table with value, unit, description, source; got {spec!r}")
            continue
        errs.unknown_keys(key, spec, _PARAM_KEYS, "a parameter key")
        value = _number(spec, "value", key, errs, required=True)
        unit = _string(spec, "unit", key, errs, required=True)
        desc = _string(spec, "description", key, errs, required=True)
        source = _string(spec, "source", key, errs, required=True)
        symbol = _string(spec, "symbol", key, errs)
        notes = _string(spec, "notes", key, errs)
        status = spec.get("status", "published")
        if status not in PARAMETER_STATUSES:
            errs.add(f"{key}.status", f"expected one of {list(PARAMETER_STATUSES)}, got {status!r}"
                                      f"{suggestion(str(status), PARAMETER_STATUSES)}")
        iiv = spec.get("iiv_log_sd", 0.0)
        if not is_number(iiv) or iiv < 0:
            errs.add(f"{key}.iiv_log_sd", f"expected a number >= 0 (SD of log(value) between patients), got {iiv!r}")
            iiv = 0.0
        bounds = _bounds(spec.get("bounds"), value, key, errs)
        if iiv and value is not None and value <= 0:
            errs.add(f"{key}.iiv_log_sd", f"log-normal variability needs a positive value, got value = {value}")
        parameters.append(Parameter(nm, float(value if value is not None else 0.0), unit or "", desc or "",
                                    source or "", symbol or "", bounds, float(iiv), str(status), notes or ""))
    return parameters


def _bounds(bounds, value, key: str, errs):
    """A parameter's ``bounds`` as ``(lower, upper)`` floats, or None if absent or bad."""
    if bounds is None:
        return None
    ok = isinstance(bounds, list) and len(bounds) == 2 and all(is_number(b) for b in bounds)
    if not ok:
        errs.add(f"{key}.bounds", f"expected [lower, upper] (two finite numbers), got {bounds!r}")
        return None
    if not bounds[0] < bounds[1]:
        errs.add(f"{key}.bounds", f"lower bound {bounds[0]} must be below upper bound {bounds[1]}")
        return None
    if value is not None and not (bounds[0] <= value <= bounds[1]):
        errs.add(f"{key}.value", f"{value} is outside bounds [{bounds[0]}, {bounds[1]}]")
    return (float(bounds[0]), float(bounds[1]))


def _breakpoints(meta: dict, param_names: list, typical, errs) -> list:
    """``[model] breakpoints``: times (expressions of parameters) where integration restarts."""
    breakpoints = []
    bp_raw = meta.get("breakpoints", [])
    if not isinstance(bp_raw, list):
        errs.add("model.breakpoints", f"expected a list of expressions of parameters, got {bp_raw!r}")
        bp_raw = []
    for k, text in enumerate(bp_raw):
        key = f"model.breakpoints[{k}]"
        parsed = _parse(text, key, set(param_names), errs, hint=" (breakpoints may use parameters only)",
                        allow_t=False)
        if parsed is not None:
            v = _typical_value(parsed, typical)
            if v is not None and not math.isfinite(v):
                errs.add(key, f"'{printable(text, 100)}' is {v} at the parameters' typical values; "
                              f"breakpoints must be finite numbers")
            breakpoints.append(parsed)
    return breakpoints


def _expressions(exprs_t: dict, state_names: list, param_names: list, errs) -> dict:
    """``[expressions]`` parsed in order: each may use states, parameters and earlier expressions."""
    expressions: dict[str, ex.Expr] = {}
    for nm, spec in exprs_t.items():
        key = f"expressions.{nm}"
        text = spec
        if isinstance(spec, dict):
            errs.unknown_keys(key, spec, _EXPR_KEYS, "a key of an expression")
            for k in ("unit", "description", "notes"):
                _string(spec, k, key, errs)
            text = spec.get("expression")
            if text is None:
                errs.add(key, "missing 'expression'")
                continue
        available = set(state_names) | set(param_names) | set(expressions)
        later = set(exprs_t) - set(expressions) - {nm}
        parsed = _parse(text, key, available, errs, later=later, self_name=nm)
        if parsed is not None:
            expressions[nm] = parsed
    return expressions


def _odes(odes_t: dict, state_names: list, known: set, errs, stochastic=frozenset()) -> dict:
    """``[odes]`` parsed: one right-hand side per declared state that is not stochastic, no other."""
    odes: dict[str, ex.Expr] = {}
    for nm, text in odes_t.items():
        key = f"odes.{nm}"
        if nm not in state_names:
            errs.unknown_name(key, nm, state_names, "a declared state")
            continue
        if nm in stochastic:
            errs.add(key, f"state '{nm}' is stochastic: its right-hand side is gain - loss of "
                          f"states.{nm}.stochastic; remove it from [odes]")
            continue
        parsed = _parse(text, key, known, errs)
        if parsed is not None:
            odes[nm] = parsed
    for nm in state_names:
        if nm not in odes_t and nm not in stochastic:
            errs.add(f"odes.{nm}", f"state '{nm}' has no right-hand side in [odes]")
    return odes


def _states(states_t: dict, param_names: list, typical, errs) -> list:
    """The ``[states]`` tables as :class:`State` values (bad entries recorded and skipped)."""
    states = []
    for nm, spec in states_t.items():
        key = f"states.{nm}"
        if not isinstance(spec, dict):
            errs.add(key, f"expected a table with unit, description, initial; got {spec!r}")
            continue
        errs.unknown_keys(key, spec, _STATE_KEYS, "a state key")
        unit = _string(spec, "unit", key, errs, required=True)
        desc = _string(spec, "description", key, errs, required=True)
        _string(spec, "notes", key, errs)
        initial = _initial_value(spec.get("initial", 0.0), f"{key}.initial", param_names, typical, errs)
        default_thr = 1.0 if (unit or "").strip().lower() in ("cells", "cell") and "stochastic" not in spec else 0.0
        thr = spec.get("extinction", default_thr)
        if "stochastic" in spec and is_number(thr) and thr > 0:
            errs.add(f"{key}.extinction", "a stochastic state has no extinction threshold: it dies out when its "
                                          "count reaches 0 (remove extinction or set it to 0)")
            thr = 0.0
        elif not is_number(thr) or thr < 0:
            errs.add(f"{key}.extinction", f"expected a threshold >= 0 (0 disables extinction), got {thr!r}")
            thr = 0.0
        atol = spec.get("atol")
        if atol is not None and (not is_number(atol) or not atol > 0):
            errs.add(f"{key}.atol", f"expected a positive absolute tolerance, got {atol!r}")
            atol = None
        states.append(State(nm, unit or "", desc or "", initial if initial is not None else ex.ZERO,
                            float(thr), None if atol is None else float(atol)))
    return states


def _initial_value(init_raw, key: str, param_names: list, typical, errs):
    """A state's ``initial`` parsed (parameters only) and checked at the typical values, or None."""
    initial = _parse(init_raw, key, set(param_names), errs,
                     hint=" (initial values may use parameters only)", allow_t=False)
    if initial is not None:
        v = _typical_value(initial, typical)
        if v is None:
            pass
        elif not math.isfinite(v) or v < 0:
            if not ex.names(initial):  # a constant: a number or e.g. "-5"
                errs.add(key, f"expected a value >= 0, got {printable(init_raw, 100)}")
            else:
                errs.add(key, f"'{printable(init_raw, 100)}' is {v} at the parameters' "
                              f"typical values; initial values must be finite and >= 0")
    return initial


def _outputs(outs_t: dict, known: set, errs) -> list:
    """The ``[outputs]`` tables as :class:`Output` values (bad entries recorded and skipped)."""
    outputs = []
    for nm, spec in outs_t.items():
        key = f"outputs.{nm}"
        if isinstance(spec, str):
            errs.add(key, "expected a table with 'expression' and 'unit'")
            continue
        if not isinstance(spec, dict):
            errs.add(key, f"expected a table with 'expression' and 'unit', got {spec!r}")
            continue
        errs.unknown_keys(key, spec, _OUTPUT_KEYS, "an output key")
        unit = _string(spec, "unit", key, errs, required=True)
        desc = _string(spec, "description", key, errs)
        _string(spec, "notes", key, errs)
        if "expression" not in spec:
            errs.add(key, "missing 'expression'")
            continue
        references = _references(spec.get("reference", []), f"{key}.reference", errs)
        parsed = _parse(spec["expression"], f"{key}.expression", known, errs)
        if parsed is not None:
            outputs.append(Output(nm, parsed, unit or "", desc or "", references))
    return outputs


def _references(raw, key: str, errs) -> tuple:
    """An output's ``reference`` list as ``((value, label), ...)`` (bad entries recorded and skipped)."""
    expected = 'a list of tables like { value = 0.05, label = "CR: blasts < 5%" }'
    if not isinstance(raw, list):
        errs.add(key, f"expected {expected}, got {printable(raw, 100)}")
        return ()
    references = []
    for i, entry in enumerate(raw):
        k = f"{key}[{i}]"
        if not isinstance(entry, dict):
            errs.add(k, f"expected a table like {{ value = 0.05, label = \"CR: blasts < 5%\" }}, "
                        f"got {printable(entry, 100)}")
            continue
        errs.unknown_keys(k, entry, _REFERENCE_KEYS, "a reference key")
        value = _number(entry, "value", k, errs, required=True)
        label = _string(entry, "label", k, errs, required=True)
        if label is not None and not label.strip():
            errs.add(f"{k}.label", "expected a non-empty string naming the reference line")
            label = None
        if value is not None and label is not None:
            references.append((value, label.strip()))
    return tuple(references)


def _table(value, key, errs, required=False) -> dict:
    if value is None:
        if required:
            errs.add(key, f"missing section [{key}]")
        return {}
    if not isinstance(value, dict):
        errs.add(key, f"expected a table [{key}], got {type(value).__name__}")
        return {}
    return value


def _number(spec, name, key, errs, required=False):
    if name not in spec:
        if required:
            errs.add(f"{key}.{name}", "missing (expected a number)")
        return None
    v = spec[name]
    if not is_number(v):
        errs.add(f"{key}.{name}", f"expected a finite number, got {v!r}")
        return None
    return float(v)


def _string(spec, name, key, errs, required=False):
    if name not in spec:
        if required:
            errs.add(f"{key}.{name}", "missing (expected a string)")
        return None
    v = spec[name]
    if not isinstance(v, str):
        errs.add(f"{key}.{name}", f"expected a string, got {v!r}")
        return None
    return v


def _typical_value(expr, typical):
    """``expr`` (of parameters only) at the typical parameter values, or None if unknown."""
    if typical is None:
        return None
    try:
        v = ex.evaluate(expr, typical)
    except (ExpressionError, ArithmeticError, ValueError, TypeError):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _parse(text, key, known, errs, later=(), self_name=None, hint="", allow_t=True):
    try:
        expr = ex.parse(text)
    except ExpressionError as err:
        errs.add(key, str(err))
        return None
    for nm in sorted(ex.names(expr)):
        if nm in known or (nm == "t" and allow_t):
            continue
        if nm == "t":
            errs.add(key, f"time 't' cannot be used here{hint}")
            expr = None
            continue
        if nm == self_name:
            errs.add(key, f"expression '{nm}' refers to itself")
        elif nm in later:
            errs.add(key, f"'{nm}' is used before it is defined (expressions are evaluated in order)")
        else:
            errs.add(key, f"unknown name '{nm}' in '{text}'{suggestion(nm, known)}{hint}")
        expr = None
    return expr
