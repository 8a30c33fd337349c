"""The ``[[events]]`` of a scenario: interventions by name and low-level actions.

An event happens at a time (``at``, or ``time``), to every patient or to the patients of
some ``arms``, optionally only ``if`` a patient-level condition holds (covariates,
variables, parameters: evaluated once per patient) and only ``when`` a condition on
the model's state holds at that time. What happens is a named intervention of the
model (``do = "transplant"`` with its arguments, :mod:`carkinetics.model.interventions`)
and/or low-level actions (``add``, ``multiply``, ``set``, ``set_parameter``)::

    [[events]]
    at = "transplant_day"
    do = "transplant"
    conditioning = "reduced_intensity"
    if = "hsct == 1"
    when = "marrow_blast_fraction < 0.05"

An event's ``name`` (default: its intervention's name) is how endpoints refer to it
(``fired.transplant``, ``time_of.transplant``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from carkinetics.errors import ExpressionError, is_number, suggestion
from carkinetics.model import expressions as ex
from carkinetics.model.interventions import INTERVENTION_ACTIONS, action_entries, check_argument_value
from carkinetics.scenario.parsing import value_expression
from carkinetics.simulation.simulate import MAX_TIME

#: Kinds of low-level action, as keys of an event.
ACTION_KEYS = INTERVENTION_ACTIONS
#: Keys every event may have (an intervention's arguments come on top).
EVENT_KEYS = {"name", "time", "at", "when", "if", "do", "notes", "arms", "every", "count", "ii", "addl"} | set(
    ACTION_KEYS)
#: Most doses one repeated event may give.
MAX_REPEATS = 10_000
#: Time given to an event for a patient whose ``if`` does not hold: beyond any horizon, so it
#: never fires (and ``fired.NAME`` is 0).
NEVER = MAX_TIME


@dataclass
class EventSpec:
    """An event as written in a scenario; values may be expressions.

    Attributes
    ----------
    name : str
        How endpoints refer to it (``fired.NAME``).
    time : Expr
    when : str or None
        A condition on the model's state at the event time.
    actions : list of (kind, target, Expr)
    arms : tuple of str or None
        None: every arm.
    key : str
        Where it was declared, e.g. ``events[2]``.
    condition : Expr or None
        The ``if`` condition on patient-level names (None: every patient).
    intervention : str
        The model intervention it applies ("" for low-level actions only).
    argument_checks : tuple of (Argument, Expr)
        The intervention's arguments whose value is an expression (given or by default) and
        that have bounds: checked for each patient (:func:`check_arguments`).
    """

    name: str
    time: ex.Expr
    when: str | None
    actions: list
    arms: tuple[str, ...] | None = None
    key: str = ""
    condition: ex.Expr | None = None
    intervention: str = ""
    argument_checks: tuple = ()  # (Argument, Expr): arguments given by expressions, checked per patient


def check_time(t: float, what: str = "time") -> None:
    """Raise ValueError for a time that is not finite or beyond ``MAX_TIME`` days."""
    if not math.isfinite(t) or abs(t) > MAX_TIME:
        raise ValueError(f"{what} {t:g} is beyond +-{MAX_TIME:g} days (the largest time carkinetics accepts)")


def check_action_value(model, kind: str, target: str, value: float) -> None:
    """Raise ValueError for an event value that cannot be right: a negative amount, factor or
    state (states are cell counts or fractions, >= 0), a parameter outside its bounds."""
    if kind in ("add", "multiply", "set") and value < 0:
        word = {"add": "amount", "multiply": "factor", "set": "value"}[kind]
        raise ValueError(f"{word} must be >= 0, got {value} (states are amounts: cells, copies, fractions)")
    if kind == "set_parameter":
        par = model.parameter(target)
        lo, hi = par.bounds or (-math.inf, math.inf)
        if not (lo - 1e-9 * abs(lo) <= value <= hi + 1e-9 * abs(hi)):  # slack: rounding at a bound
            raise ValueError(f"{value:g} is outside the bounds of parameter '{target}' "
                             f"[{par.bounds[0]:g}, {par.bounds[1]:g}] ({par.unit})")


def event_time(spec: EventSpec, time: float, env) -> float:
    """The event's time for one patient: ``time``, or :data:`NEVER` where its ``if`` is false."""
    return time if spec.condition is None else float(_unless_excluded(spec, np.array([time]), env)[0])


def event_times(spec: EventSpec, env, n: int) -> np.ndarray:
    """The event's times for ``n`` patients (``env``: names -> values or arrays of ``n``)."""
    times = np.broadcast_to(np.asarray(ex.evaluate(spec.time, env), dtype=float), (n,))
    return times if spec.condition is None else _unless_excluded(spec, times, env)


def _unless_excluded(spec: EventSpec, times: np.ndarray, env) -> np.ndarray:
    """``times``, with :data:`NEVER` for the patients whose ``if`` is false."""
    holds = np.broadcast_to(np.asarray(ex.evaluate(spec.condition, env)), times.shape)
    holds = holds if holds.dtype == bool else holds != 0
    return np.where(holds, times, NEVER)


def parse_events(raw, model, times, t0, errs, value_names, arm_names) -> list:
    """Validate the ``[[events]]`` array of tables.

    Parameters
    ----------
    raw : list of dict
    model : Model
    times : ndarray
        Output times (the last is the horizon).
    t0 : float or None
        Start of the scenario, if given.
    errs : ProblemCollector
    value_names : set of str
        Names event values, times and ``if`` may use (parameters, variables, covariates).
    arm_names : set of str
        The scenario's arms.

    Returns
    -------
    list of EventSpec
    """
    if not isinstance(raw, list):
        errs.add("events", "expected [[events]] tables (an array of tables)")
        return []
    out = []
    for k, ev in enumerate(raw):
        key = f"events[{k}]"
        if not isinstance(ev, dict):
            errs.add(key, "expected a table")
            continue
        spec = _parse_event(ev, key, k, model, times, t0, errs, value_names, arm_names)
        if spec is not None:
            out.extend(_repeated(spec, ev, key, times, errs))
    return out


def _repeated(spec: EventSpec, ev, key, times, errs) -> list:
    """The event and its repeats: ``every`` days, ``count`` times in all (NONMEM: ``ii`` and ``addl``).

    ``every = 28, count = 3`` gives doses at the event's time and 28 and 56 days later; the
    NONMEM-style ``ii = 28, addl = 2`` (two additional doses) means the same. Repeats share the
    event's name (``fired.NAME`` and ``time_of.NAME`` see the first that fired).
    """
    given = {k: ev[k] for k in ("every", "count", "ii", "addl") if k in ev}
    if not given:
        return [spec]
    if ("every" in given or "count" in given) and ("ii" in given or "addl" in given):
        errs.add(key, "give the repeats as every and count, or as NONMEM's ii and addl, not both")
        return [spec]
    interval_key, number_key = ("ii", "addl") if "ii" in given or "addl" in given else ("every", "count")
    interval, number = given.get(interval_key), given.get(number_key)
    if interval is None or number is None:
        missing = number_key if interval is not None else interval_key
        errs.add(f"{key}.{missing}", f"missing: {interval_key} and {number_key} go together (the interval in days "
                                     f"and the number of {'additional doses' if number_key == 'addl' else 'doses in all'})")
        return [spec]
    if not is_number(interval) or not interval > 0:
        errs.add(f"{key}.{interval_key}", f"expected a number of days > 0, got {interval!r}")
        return [spec]
    low = 0 if number_key == "addl" else 1
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= MAX_REPEATS:
        errs.add(f"{key}.{number_key}", f"expected a whole number in [{low}, {MAX_REPEATS:,}], got {number!r}")
        return [spec]
    doses = number + 1 if number_key == "addl" else number
    if spec.time.op == "num" and spec.time.value + (doses - 1) * interval > times[-1]:
        errs.add(f"{key}.{number_key}", f"the last of {doses} doses every {interval:g} days is on day "
                                         f"{spec.time.value + (doses - 1) * interval:g}, after the last output time "
                                         f"({times[-1]:g})")
    return [replace(spec, time=ex.add(spec.time, ex.Expr.num(k * float(interval)))) for k in range(doses)]


def parse_event_section(raw, context) -> list:
    """The ``[[events]]`` section's parser (see :data:`~carkinetics.scenario.schema.SECTIONS`).

    Records the events' names in ``context.protocol_events``, for the endpoints that read
    ``fired.NAME`` and ``time_of.NAME``, followed by the model's own events (``[events]`` of
    the model file: triggered and random events), which endpoints read the same way.
    """
    events = parse_events(raw, context.model, context.times, context.t0, context.errors,
                          set(context.model.parameter_names) | set(context.event_names), set(context.arm_names))
    for e in events:
        if e.name in context.model.event_names:
            context.errors.add(f"{e.key}.name", f"'{e.name}' is the name of an event of model "
                                                    f"'{context.model.name}' ([events.{e.name}]): endpoints read "
                                                    f"fired.NAME and time_of.NAME, so give this one another name")
            break
    context.protocol_events = list(dict.fromkeys([e.name for e in events] + list(context.model.event_names)))
    context.event_time_names = {n for e in events for n in ex.names(e.time)}
    return events


def _parse_event(ev, key, k, model, times, t0, errs, value_names, arm_names):
    intervention = _intervention(ev, key, model, errs)
    allowed = EVENT_KEYS | (set(intervention.arguments) if intervention is not None else set())
    errs.unknown_keys(key, ev, allowed, "a key of an event" + (
        f" or an argument of intervention '{intervention.name}'" if intervention is not None else ""))
    name = ev.get("name", intervention.name if intervention is not None else f"event {k}")
    if not isinstance(name, str):
        errs.add(f"{key}.name", f"expected a string, got {name!r}")
        name = f"event {k}"
    time_expr = _time(ev, key, times, t0, errs, value_names)
    if time_expr is None:
        return None
    condition = None
    if "if" in ev:
        condition = value_expression(ev["if"], f"{key}.if", value_names, errs,
                                     hint="an event's `if` may use parameters, variables and covariates")
    actions, checks = [], ()
    if intervention is not None:
        actions, checks = _intervention_actions(intervention, ev, key, errs, value_names)
    actions = actions + _low_level_actions(ev, key, model, errs, value_names)
    if intervention is None and not any(kind in ev for kind in ACTION_KEYS) and "do" not in ev:
        errs.add(key, f"event '{name}' has no actions (use do = an intervention of model '{model.name}', "
                      f"or add, multiply, set or set_parameter)")
    return EventSpec(name=name, time=time_expr, when=_when(ev, key, model, errs), actions=actions,
                     arms=_arms(ev, key, errs, arm_names), key=key, condition=condition,
                     intervention=intervention.name if intervention is not None else "", argument_checks=checks)


def _intervention(ev, key, model, errs):
    if "do" not in ev:
        return None
    do = ev["do"]
    available = getattr(model, "interventions", {})
    if not isinstance(do, str) or do not in available:
        listing = ", ".join(available) if available else "none declared"
        errs.add(f"{key}.do", f"{do!r} is not an intervention of model '{model.name}'"
                              f"{suggestion(str(do), available)} (its interventions: {listing})")
        return None
    return available[do]


def _time(ev, key, times, t0, errs, value_names):
    if "time" in ev and "at" in ev:
        errs.add(key, "give the event's time once: `at` or `time`, not both")
        return None
    tkey = "at" if "at" in ev else "time"
    if tkey not in ev:
        errs.add(f"{key}.time", "missing (the event's time, as `at` or `time`: a number or an expression, "
                                 "model time unit)")
        return None
    expr = value_expression(ev[tkey], f"{key}.{tkey}", value_names, errs)
    if expr is not None and expr.op == "num":
        tv = expr.value
        if abs(tv) > MAX_TIME:
            errs.add(f"{key}.{tkey}", f"{tv:g} is beyond +-{MAX_TIME:g} days (the largest time carkinetics "
                                      f"accepts)")
        elif t0 is not None and tv < t0:
            errs.add(f"{key}.{tkey}", f"{tv} is before the start of the scenario ({t0})")
        if tv > times[-1]:
            errs.add(f"{key}.{tkey}", f"{tv} is after the last output time ({times[-1]}); the event would "
                                      f"never happen")
    return expr if expr is not None else ex.ZERO


def _when(ev, key, model, errs):
    when = ev.get("when")
    if when is None:
        return None
    if not isinstance(when, str):
        errs.add(f"{key}.when", f"expected a condition string, got {when!r}")
        return None
    try:
        model.parse_condition(when)
    except ExpressionError as err:
        errs.add(f"{key}.when", str(err))
        return None
    return when


def _arms(ev, key, errs, arm_names):
    arms = ev.get("arms")
    if arms is None:
        return None
    if not isinstance(arms, list) or not all(isinstance(a, str) for a in arms):
        errs.add(f"{key}.arms", "expected a list of arm names")
        return None
    for a in arms:
        if a not in arm_names:
            errs.add(f"{key}.arms", f"'{a}' is not an arm of this scenario{suggestion(a, arm_names)}")
    return tuple(arms)


def _intervention_actions(intervention, ev, key, errs, value_names) -> list:
    given = {}
    for name, arg in intervention.arguments.items():
        if name not in ev:
            continue
        akey = f"{key}.{name}"
        value = ev[name]
        where = f"intervention '{intervention.name}', argument '{name}'"
        if arg.choices:
            if not isinstance(value, str) or value not in arg.choices:
                errs.add(akey, f"{where}: expected {arg.describe()}, got {value!r}")
                continue
            given[name] = ex.Expr.num(arg.choices[value])
            continue
        expr = value_expression(value, akey, value_names, errs,
                                hint=f"{where} may use parameters, variables and covariates")
        if expr is None:
            continue
        if expr.op == "num":
            problem = check_argument_value(arg, expr.value)
            if problem:
                errs.add(akey, f"{where}: {problem}")
                continue
        given[name] = expr
    missing = [n for n, a in intervention.arguments.items() if a.default is None and n not in given]
    for name in missing:
        errs.add(f"{key}.{name}", f"intervention '{intervention.name}' needs argument '{name}' "
                                  f"({intervention.arguments[name].describe()}): it has no default")
    if missing:
        return [], ()
    for name, arg in intervention.arguments.items():  # defaults naming scenario names must find them
        if name in given or arg.default is None:
            continue
        unknown = sorted(n for n in ex.names(arg.default) if n not in value_names)
        if unknown:
            errs.add(f"{key}.{name}", f"intervention '{intervention.name}', argument '{name}' defaults to "
                                      f"'{arg.default}', but this scenario has no {', '.join(unknown)} (a "
                                      f"covariate or variable); give {name} = ... in the event")
            return [], ()
    values = {name: given.get(name, arg.default) for name, arg in intervention.arguments.items()}
    checks = tuple((arg, values[name]) for name, arg in intervention.arguments.items()
                   if arg.bounds and values[name] is not None and values[name].op != "num")
    return intervention.expand(given), checks


def check_arguments(spec: EventSpec, env, n: int | None = None) -> None:
    """Raise ValueError for an intervention argument outside its bounds for a patient.

    Parameters
    ----------
    spec : EventSpec
    env : dict
        Names -> values (scalars for one patient, or arrays of ``n`` patients).
    n : int, optional
        Patients (None: one).
    """
    for arg, expr in spec.argument_checks:
        value = np.asarray(ex.evaluate(expr, env), dtype=float).reshape(-1)
        lo, hi = arg.bounds
        wrong = ~((value >= lo) & (value <= hi))
        if wrong.any():
            i = int(np.argmax(wrong))
            who = f" for patient {i} of the chunk ({int(wrong.sum())} patients)" if n is not None else ""
            unit = f" ({arg.unit})" if arg.unit else ""
            raise ValueError(f"intervention '{spec.intervention}', argument '{arg.name}' = '{expr}' is "
                             f"{value[i]:g}{who}: expected a value in [{lo:g}, {hi:g}]{unit}")


def _low_level_actions(ev, key, model, errs, value_names) -> list:
    actions = []
    for kind, target, value, akey in action_entries(ev, key, model.state_names, model.parameter_names, errs,
                                                    f"model '{model.name}'"):
        vexpr = value_expression(value, akey, value_names, errs)
        if vexpr is None:
            continue
        if vexpr.op == "num":
            try:
                check_action_value(model, kind, target, vexpr.value)
            except ValueError as err:
                errs.add(akey, str(err))
                continue
        actions.append((kind, target, vexpr))
    return actions

