"""Scenario files: one protocol and one clinical question each.

A scenario names a model (path relative to the scenario file, or a model name),
output times, parameter overrides, solver options and events; later sections add a
virtual population, arms, endpoints, survival rules, a sweep grid and the reported
targets the scenario must reproduce. The legal sections, and the order they are parsed
in, are :data:`carkinetics.scenario.schema.SECTIONS`: the core tables are validated here,
the others by the parsers the schema names, once, and all problems in a file are
reported together.

Minimal example::

    [scenario]
    name = "typical"
    model = "../models/multiphasic.toml"

    [times]
    end = 730
    step = 1

    [[events]]
    name = "infusion"
    time = 0
    add = { effector = 1e8 }
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from carkinetics.model import expressions as ex
from carkinetics.errors import (CarKineticsError, FileProblem, ProblemCollector, ScenarioError,
                                is_number, parse_toml, printable, read_input_text, suggestion)
from carkinetics.scenario.endpoints import EndpointSet
from carkinetics.scenario.events import check_action_value, check_arguments, check_time, event_time
from carkinetics.scenario.grid import SweepSpec
from carkinetics.scenario.parameter_sets import load_parameter_set, numeric_parameters
from carkinetics.scenario.parsing import SectionContext, parameter_items
from carkinetics.scenario.population import Arms, PopulationSpec, Variables
from carkinetics.scenario.schema import SECTIONS
from carkinetics.scenario.targets import TargetSpec
from carkinetics.simulation.options import METHODS, OptionsError, SolverOptions
from carkinetics.simulation.simulate import MAX_OUTPUT_TIMES, MAX_TIME

if TYPE_CHECKING:
    from carkinetics.scenario.events import EventSpec
    from carkinetics.simulation.schedule import Schedule

# limits of output and event times (MAX_OUTPUT_TIMES, MAX_TIME): see simulate.py

_SCENARIO_KEYS = {"name", "description", "model", "targets", "notes", "seed_file", "arm", "reproduces",
                  "parameter_set"}
_TIMES_KEYS = {"start", "end", "step", "values"}
_SOLVER_KEYS = {"method", "rtol", "atol", "max_steps", "max_step"}
_PLOT_KEYS = {"outputs", "log_scale", "title"}


@dataclass
class Scenario:
    """A validated scenario file.

    The core tables become the attributes ``name`` to ``plot_log``; each other section
    of :data:`~carkinetics.scenario.schema.SECTIONS` fills one attribute, None (or empty)
    when the file does not have it: ``variables``, ``population``, ``arms``,
    ``endpoints`` (``[endpoints]`` and ``[outcomes]``), ``target_specs`` (``[targets]``),
    ``sweep`` and ``data`` (``[data]``; its file is :attr:`data_file`).
    """

    path: Path
    name: str
    description: str
    model: object
    times: np.ndarray
    t0: float | None
    parameters: dict  # overrides: name -> float
    solver: SolverOptions
    events: list
    plot_outputs: tuple[str, ...]
    plot_log: bool
    targets: tuple[str, ...] = ()  # ids of the reference targets the scenario reproduces
    variables: Variables | None = None
    population: PopulationSpec | None = None
    arms: Arms | None = None
    endpoints: EndpointSet | None = None
    target_specs: dict[str, TargetSpec] = field(default_factory=dict)  # by target id
    sweep: SweepSpec | None = None
    data: object = None  # [data]: observed data for visual predictive checks (scenario.observations.ObservedData)
    vocabulary: object = None  # the [vocabulary] it imports (scenario.vocabulary.VocabularyUse)
    raw: dict = field(default_factory=dict, repr=False)
    parameter_sets: tuple[Path, ...] = ()  # files whose [parameters] the scenario starts from

    @property
    def data_file(self) -> Path | None:
        """The observation file of ``[data]`` (None without one)."""
        return None if self.data is None else self.data.path

    @property
    def horizon(self) -> float:
        return float(self.times[-1])

    def parameter_vector(self) -> np.ndarray:
        return self.model.parameter_vector(self.parameters)

    def schedule(self, env: dict[str, float] | None = None, arm: str | None = None) -> Schedule:
        """The events as a :class:`~carkinetics.simulation.schedule.Schedule`, for one patient.

        ``env`` maps names used in event expressions (parameters, covariates) to
        values; by default the typical parameters after overrides.
        """
        from carkinetics.simulation.schedule import Action, Event, Schedule

        env = env if env is not None else self.default_env()
        events = []
        for k, spec in enumerate(self.events_for_arm(arm)):
            key = spec.key or f"events[{k}]"
            where = f"{key}.time"
            try:
                t = event_time(spec, _event_number(spec.time, env), env)
                check_time(t, "event time")
                check_arguments(spec, env)
                acts = []
                for kind, target, value in spec.actions:
                    where = f"{key}.{kind}.{target}"
                    v = _event_number(value, env)
                    check_action_value(self.model, kind, target, v)
                    acts.append(Action(kind, target, v))
                events.append(Event(t, acts, when=spec.when, name=spec.name, source=(str(self.path), key)))
            except (CarKineticsError, ArithmeticError, ValueError, TypeError) as err:
                raise ScenarioError(self.path, [FileProblem(where, str(err))]) from None
        return Schedule(events)

    def events_for_arm(self, arm: str | None) -> list[EventSpec]:
        return [e for e in self.events if e.arms is None or arm is None or arm in e.arms]

    def default_env(self) -> dict[str, float]:
        """Names usable in event expressions, at the typical patient's values.

        The typical parameters after overrides, plus the scenario variables and the
        median of each covariate.
        """
        p = self.parameter_vector()
        env = dict(zip(self.model.parameter_names, p))
        for section in (self.variables, self.population):
            if section is not None:
                env.update(section.typical_values())
        return env


def _event_number(expr, env) -> float:
    """The value of an event expression for one patient (a finite number, or an error)."""
    with np.errstate(all="ignore"):
        value = np.asarray(ex.evaluate(expr, env), dtype=float)
    if value.size != 1:
        raise ValueError(f"expected one value, got {value.size}")
    v = float(value.reshape(-1)[0])
    if not math.isfinite(v):
        raise ValueError(f"evaluates to {v} (not a finite number)")
    return v


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario file.

    Raises
    ------
    ScenarioError
        Listing every problem in the file (and in the model file it names).
    """
    path = Path(path)
    return scenario_from_dict(read_toml(path, ScenarioError), path)


def read_toml(path, error_class=ScenarioError) -> dict:
    """The tables of a TOML file; a missing, unreadable or malformed file raises ``error_class``."""
    path = Path(path)
    return parse_toml(read_input_text(path, error_class, "TOML file"), path, error_class)


def scenario_from_dict(data: dict, path) -> Scenario:
    """Validate the tables of a scenario file (as read from TOML) into a :class:`Scenario`.

    Parameters
    ----------
    data : dict
        The file's tables.
    path : str or pathlib.Path
        The file they come from: named in messages, and the folder relative paths start from.

    Returns
    -------
    Scenario
        The validated scenario.

    Raises
    ------
    ScenarioError
        Listing every problem in the file (and in the model file it names).
    """
    path = Path(path)
    errs = ProblemCollector(path, ScenarioError)
    known_sections = sorted(section.name for section in SECTIONS)
    for key in data:
        if key not in known_sections:
            errs.unknown_name(key, key, known_sections, "a section of a scenario file")

    head, model = header_and_model(data, "scenario", _SCENARIO_KEYS, path, errs)
    name, targets = _check_header(head, path, errs)
    times, t0 = _parse_times(data.get("times"), errs)

    # parameter sets (e.g. a product's calibrated values), then the scenario's own overrides
    overrides = {}
    set_paths = _parameter_set_paths(head.get("parameter_set"), path, errs)
    for set_path in set_paths:
        overrides.update(load_parameter_set(set_path, model))
    numeric_parameters(parameter_items(data.get("parameters", {}), "parameters", model, errs, "value"),
                        model, errs, overrides)
    solver = _parse_solver(data.get("solver", {}), model, errs)

    # the other sections, in schema order; sections parsed together share one attribute
    # endpoints read the model's own events (fired.NAME, time_of.NAME) with or without [[events]]
    context = SectionContext(model=model, path=path, errors=errs, times=times, t0=t0, parameters=overrides,
                             tables=data, protocol_events=list(model.event_names))
    parsed = {}
    for section in SECTIONS:
        imported = section.attribute == "endpoints" and context.vocabulary_tables  # endpoints from [vocabulary]
        if section.parse is not None and (section.name in data or imported) and section.attribute not in parsed:
            parsed[section.attribute] = section.parse(data.get(section.name, {}), context)

    plot_outputs, plot_log = _parse_plot(data.get("plot", {}), model, errs)

    errs.raise_if_any()
    scenario = Scenario(path=path, name=name, description=str(head.get("description", "")), model=model,
                        times=times, t0=t0, parameters=overrides, solver=solver, events=parsed.pop("events", []),
                        plot_outputs=plot_outputs, plot_log=plot_log, targets=tuple(targets), raw=data,
                        parameter_sets=tuple(set_paths), **parsed)
    # the typical patient's events: expressions that give a negative amount, a time beyond the
    # limits or a parameter outside its bounds are found here, not while simulating
    scenario.schedule()
    return scenario


def _check_header(head: dict, path: Path, errs) -> tuple:
    """The scenario's name and reference target ids from ``[scenario]`` (problems recorded in ``errs``)."""
    name = head.get("name", path.stem)
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or not name.isprintable():
        errs.add("scenario.name", f"expected a non-empty line of at most 200 printable characters, got "
                                  f"{printable(repr(name), 200)}")
        name = printable(path.stem, 200)
    for k in ("description", "notes", "seed_file", "arm", "reproduces"):
        if k in head and not isinstance(head[k], str):
            errs.add(f"scenario.{k}", f"expected a string, got {head[k]!r}")
    targets = head.get("targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        errs.add("scenario.targets", "expected a list of target ids (strings)")
        targets = []
    _check_target_ids(targets, errs)
    return name, targets


def _parse_plot(plot, model, errs) -> tuple:
    """The outputs and log scale of the scenario's figure from ``[plot]`` (problems recorded in ``errs``)."""
    plot_outputs = tuple(model.output_names)
    plot_log = True
    if not isinstance(plot, dict):
        errs.add("plot", "expected a table")
        return plot_outputs, plot_log
    errs.unknown_keys("plot", plot, _PLOT_KEYS, "a key of [plot]")
    if "outputs" in plot:
        outs = plot["outputs"]
        if not isinstance(outs, list):
            errs.add("plot.outputs", "expected a list of output or state names")
        else:
            names = model.output_names + model.state_names
            for o in outs:
                if not isinstance(o, str) or o not in names:
                    errs.add("plot.outputs", f"'{o}' is not an output or state of model "
                                             f"'{model.name}'{suggestion(str(o), names)}")
            plot_outputs = tuple(outs)
    plot_log = plot.get("log_scale", True)
    if not isinstance(plot_log, bool):
        errs.add("plot.log_scale", f"expected true or false, got {plot_log!r}")
        plot_log = True
    if "title" in plot and not isinstance(plot["title"], str):
        errs.add("plot.title", f"expected a string, got {plot['title']!r}")
    return plot_outputs, plot_log


_TARGET_IDS: dict = {}


def _reference_target_ids() -> list:
    """Ids of the reference target table in use (the shipped one unless
    :func:`~carkinetics.scenario.reference.reference_table` names another; each file read once
    per version)."""
    from carkinetics.scenario.reference import active_targets_path, load_targets

    path = active_targets_path()
    try:
        stamp = (str(path), path.stat().st_mtime_ns, path.stat().st_size)
    except OSError:
        stamp = None
    if stamp is None or _TARGET_IDS.get("stamp") != stamp:
        _TARGET_IDS["ids"] = list(load_targets(path)["target_id"])
        _TARGET_IDS["stamp"] = stamp
    return _TARGET_IDS["ids"]


def _check_target_ids(targets, errs) -> None:
    """Record ids of ``[scenario] targets`` that are not in the reference table in use."""
    from carkinetics.scenario.reference import active_targets_path, is_default_table

    if not targets:
        return
    try:
        known = _reference_target_ids()
    except CarKineticsError as err:
        errs.add("scenario.targets", f"the reference target table could not be read: {err}")
        return
    table = "" if is_default_table(active_targets_path()) else f" {active_targets_path()}"
    known_set = set(known)
    seen = set()
    for t in targets:
        if t in seen:
            errs.add("scenario.targets", f"'{t}' is listed twice")
        seen.add(t)
        if t not in known_set:
            errs.add("scenario.targets", f"'{t}' is not a target id of the reference table{table}"
                                         f"{suggestion(t, known)}")


def header_and_model(data, table, keys, path, errs):
    """The ``[table]`` of a file that names a model, and that model.

    Checks the table's keys against ``keys`` and loads ``model`` (a path relative to the
    file, or a shipped model's name); a missing table, a missing or unloadable model raise
    ``errs`` at once (nothing else can be checked without them).
    """
    from carkinetics.model.load import load_model

    head = data.get(table)
    if not isinstance(head, dict):
        errs.add(table, f"missing [{table}] table with at least 'model'")
        errs.raise_if_any()
    errs.unknown_keys(table, head, keys, f"a key of [{table}]")
    model_ref = head.get("model")
    if not isinstance(model_ref, str) or not model_ref or len(model_ref) > 4096 or "\x00" in model_ref:
        errs.add(f"{table}.model", f"expected the path of a model file (relative to this file) "
                                   f"or a model name, got {printable(repr(model_ref), 200)}")
        errs.raise_if_any()
    model_path = Path(path).parent / model_ref
    try:
        model = load_model(model_path if (model_path.suffix == ".toml" or "/" in model_ref) else model_ref)
    except CarKineticsError as err:
        errs.add(f"{table}.model", f"model '{model_ref}' could not be loaded:\n    "
                 + str(err).replace("\n", "\n    "))
        errs.raise_if_any()
    return head, model


def _parameter_set_paths(raw, path: Path, errs) -> list:
    if raw is None:
        return []
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(x, str) and x for x in items):
        errs.add("scenario.parameter_set", f"expected the path of a parameter-set file (relative to this "
                                           f"scenario) or a list of them, got {raw!r}")
        return []
    out = []
    for x in items:
        p = path.parent / x
        if not p.exists():
            errs.add("scenario.parameter_set", f"parameter-set file '{x}' not found (looked for {p})")
        else:
            out.append(p)  # folders, devices, huge files: refused by read_toml, naming the file
    return out


def _parse_times(raw, errs):
    if raw is None:
        errs.add("times", "missing [times] (e.g. end = 365, step = 1, or values = [...])")
        return np.array([0.0, 1.0]), None
    if not isinstance(raw, dict):
        errs.add("times", "expected a table")
        return np.array([0.0, 1.0]), None
    errs.unknown_keys("times", raw, _TIMES_KEYS, "a key of [times]")
    start = raw.get("start")
    if start is not None and not is_number(start):
        errs.add("times.start", f"expected a number, got {start!r}")
        start = None
    if start is not None and abs(start) > MAX_TIME:
        errs.add("times.start", f"{start:g} is beyond +-{MAX_TIME:g} days (the largest time carkinetics accepts)")
        start = None
    if "values" in raw:
        if "end" in raw or "step" in raw:
            errs.add("times", "give either 'values' or 'end' (with 'step'), not both")
        vals = raw["values"]
        ok = isinstance(vals, list) and vals and all(is_number(v) for v in vals)
        if not ok:
            errs.add("times.values", "expected a non-empty list of numbers")
            return np.array([0.0, 1.0]), start
        if len(vals) > MAX_OUTPUT_TIMES:
            errs.add("times.values", f"{len(vals):,} output times; at most {MAX_OUTPUT_TIMES:,} are allowed")
            return np.array([0.0, 1.0]), start
        far = [v for v in vals if abs(v) > MAX_TIME]
        if far:
            errs.add("times.values", f"{far[0]:g} is beyond +-{MAX_TIME:g} days (the largest time carkinetics "
                                     f"accepts)")
            return np.array([0.0, 1.0]), start
        arr = np.array(vals, dtype=float)
        if arr.size > 1 and not np.all(np.diff(arr) > 0):
            errs.add("times.values", "output times must be strictly increasing")
            arr = np.unique(arr)
    else:
        end = raw.get("end")
        step = raw.get("step", 1.0)
        if not is_number(end):
            errs.add("times.end", f"expected the last output time (a number), got {end!r}")
            return np.array([0.0, 1.0]), start
        if abs(end) > MAX_TIME:
            errs.add("times.end", f"{end:g} is beyond +-{MAX_TIME:g} days (the largest time carkinetics accepts)")
            return np.array([0.0, 1.0]), start
        if not is_number(step) or not step > 0:
            errs.add("times.step", f"expected a positive number, got {printable(repr(step), 60)}")
            step = 1.0
        step, end = float(step), float(end)  # TOML integers may exceed numpy's int64
        first = 0.0 if start is None else float(start)
        if end <= first:
            errs.add("times.end", f"end = {end} must be after start = {first}")
            return np.array([first, first + 1.0]), start
        if step > end - first:
            errs.add("times.step", f"step = {step:g} is longer than the whole grid ({first:g} to {end:g}); "
                                   f"for a few chosen times write 'values = [...]'")
            return np.array([first, end]), start
        n_float = (end - first) / step
        if n_float + 2 > MAX_OUTPUT_TIMES:
            errs.add("times.step", f"step = {step:g} from {first:g} to {end:g} gives {n_float + 1:,.0f} output "
                                   f"times; at most {MAX_OUTPUT_TIMES:,} are allowed (choose a larger step)")
            return np.array([first, float(end)]), start
        n = int(math.floor(n_float + 1e-9))
        arr = first + step * np.arange(n + 1)
        if arr[-1] < end - 1e-9 * max(1.0, abs(end)):
            arr = np.append(arr, float(end))
    if start is not None and arr[0] < start:
        errs.add("times.start", f"start = {start} is after the first output time {arr[0]}")
    return arr, (None if start is None else float(start))


def _parse_solver(raw, model, errs) -> SolverOptions:
    if not isinstance(raw, dict):
        errs.add("solver", "expected a table")
        return SolverOptions()
    kwargs = {"source": f"{errs.path}: solver"}
    for key, value in raw.items():
        if key not in _SOLVER_KEYS:
            errs.unknown_name(f"solver.{key}", key, _SOLVER_KEYS, "a solver option")
            continue
        kwargs[key] = value
    if "method" in kwargs and (not isinstance(kwargs["method"], str) or kwargs["method"] not in METHODS):
        errs.add("solver.method", f"expected one of {sorted(METHODS)}, got {kwargs['method']!r}"
                                  f"{suggestion(str(kwargs['method']), METHODS)}")
        kwargs.pop("method")
    try:
        opts = SolverOptions(**kwargs)
        opts.atol_vector(model)
        return opts
    except (OptionsError, TypeError) as err:
        errs.add("solver", str(err))
        return SolverOptions()


def check_file(path) -> str:
    """Validate a model or scenario file; return a one-line summary or raise."""
    from carkinetics.errors import FileError, ModelFileError
    from carkinetics.model.load import load_model

    path = Path(path)
    data = read_toml(path, FileError)
    if "scenario" in data:
        sc = load_scenario(path)
        if sc.target_specs:  # the ids of [targets.ID] must be rows of the reference table in use
            from carkinetics.scenario.reference import active_targets_path, load_targets
            from carkinetics.scenario.targets import check_target_ids

            check_target_ids(sc, load_targets(active_targets_path()))
        vocabulary = ""
        if sc.vocabulary is not None:
            left = "; ".join(f"{n} ({why})" for n, why in sc.vocabulary.left_out.items())
            vocabulary = (f", {len(sc.vocabulary.included)} endpoints of vocabulary '{sc.vocabulary.vocabulary.name}'"
                          + (f" (left out: {left})" if left else ""))
        return (f"{path}: scenario '{sc.name}' is valid: model '{sc.model.name}', {len(sc.times)} output times "
                f"to day {sc.horizon:g}, {len(sc.events)} events{vocabulary}")
    if "odes" in data or "states" in data or "model" in data:
        m = load_model(path)
        return (f"{path}: model '{m.name}' is valid: {m.n_states} states, {m.n_parameters} parameters, "
                f"{len(m.expressions)} expressions, {m.n_outputs} outputs")
    raise ModelFileError(path, ["neither a model file ([states], [odes]) nor a scenario file ([scenario])"])
