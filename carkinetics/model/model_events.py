"""Events a model file declares, and states that are counted exactly while small.

Model events (``[events.NAME]``) belong to the biology rather than to a protocol: a death
when the leukaemic burden reaches a lethal level, a resistant blast arising by mutation.
Each is either

* **triggered** (``trigger = "EXPR"``): fires when the expression of states, parameters,
  expressions, outputs and ``t`` crosses zero (``direction`` up, down or either), located on
  the integrator's dense output; or
* **random** (``hazard = "EXPR"``, per day, never negative): fires at a random time with that
  hazard; the engine integrates the cumulative hazard alongside the ODE and fires when it
  reaches an Exp(1) draw (first-reaction method, Gillespie 1976; with time-varying hazards,
  Anderson 2007).

``repeat`` (default false) lets an event fire more than once (a random event then draws a
fresh Exp(1)); ``terminal`` ends the patient's integration (``[model] after_terminal`` says
what the saved values after it are: ``"nan"`` or ``"hold"``). Actions are those of timed
events (``add``, ``multiply``, ``set``, ``set_parameter``), with values that are
expressions of states, parameters and ``t``, evaluated when the event fires; or ``do =
"INTERVENTION"`` with its arguments (an intervention of the model's ``[interventions]``,
as a scenario event uses it), e.g. ``do = "transplant", conditioning = "reduced_intensity"``.

A stochastic state (``stochastic = { below, gain, loss }`` in its ``[states]`` table) has
no ``[odes]`` entry: its right-hand side is ``gain - loss``. Below ``below`` it is an integer
count that moves by single births (propensity ``gain``) and deaths (``loss``), fired by the
same cumulative-hazard mechanism with the total propensity, the jump chosen with
probability gain/(gain + loss) (an exact hybrid method: Haseltine & Rawlings 2002;
Alfonsi et al. 2005); from ``below`` up it follows the ODE, and it becomes discrete again
when it falls to ``below / 2`` (rounded stochastically, keeping the mean).

:func:`kernel_system` turns a model with these features into the plain ODE system the
kernel integrates: hidden clock states (cumulative hazards), hidden parameters (Exp(1)
draws, discrete/continuous modes) and a table of root functions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from carkinetics.engine.constants import ACTION_ORDER, ENGINE, ROOT_KINDS
from carkinetics.errors import ExpressionError, is_number, printable, suggestion
from carkinetics.model import expressions as ex

#: Values of an event's ``direction``, with the sign the kernel uses.
DIRECTIONS = {"up": 1, "down": -1, "either": 0}
#: Values of ``[model] after_terminal``: what saved values after a terminal event are.
AFTER_TERMINAL = ("nan", "hold")
#: A continuous stochastic state becomes discrete again when it falls to this fraction of ``below``.
RETURN_FRACTION = next(c.value for c in ENGINE if c.name == "RETURN_FRACTION")

_EVENT_KEYS = {"description", "source", "notes", "trigger", "hazard", "direction", "repeat", "terminal",
               "do"} | set(ACTION_ORDER)
_STOCHASTIC_KEYS = {"below", "gain", "loss"}


@dataclass(frozen=True)
class Stochastic:
    """A state counted exactly (integer births and deaths) below ``below`` cells."""

    name: str
    below: float
    gain: ex.Expr
    loss: ex.Expr


@dataclass(frozen=True)
class ModelEvent:
    """An ``[events.NAME]`` table: a triggered or random event of the model.

    Attributes
    ----------
    name, description : str
    kind : str
        ``"trigger"`` or ``"hazard"``.
    expression : Expr
        The root function (trigger) or the hazard per day.
    direction : str
        ``"up"``, ``"down"`` or ``"either"`` (triggers).
    repeat, terminal : bool
    actions : tuple of (kind, target, Expr)
        In :data:`~carkinetics.engine.constants.ACTION_ORDER`.
    """

    name: str
    description: str
    kind: str
    expression: ex.Expr
    direction: str = "either"
    repeat: bool = False
    terminal: bool = False
    actions: tuple = ()


# ----------------------------------------------------------------------------------------
# parsing
# ----------------------------------------------------------------------------------------


def parse_stochastic(spec, key, state_name, known, nonnegative_names, errs):
    """A state's ``stochastic`` table as :class:`Stochastic` (None if absent or bad)."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        errs.add(key, f"expected a table {{ below = ..., gain = \"...\", loss = \"...\" }}, got {spec!r}")
        return None
    errs.unknown_keys(key, spec, _STOCHASTIC_KEYS, "a key of a stochastic state")
    below = spec.get("below")
    ok = True
    if not is_number(below) or not below >= 2:
        errs.add(f"{key}.below", f"expected the number of cells (>= 2) below which the state is counted "
                                 f"exactly, got {below!r}")
        ok = False
    parts = {}
    for part in ("gain", "loss"):
        if part not in spec:
            errs.add(f"{key}.{part}", f"a stochastic state needs its {part} term (cells per day) declared "
                                      f"separately: {part} = \"...\"")
            ok = False
            continue
        parts[part] = _expression(spec[part], f"{key}.{part}", known, errs)
        if parts[part] is None:
            ok = False
        elif not nonnegative(parts[part], nonnegative_names):
            errs.add(f"{key}.{part}", f"'{printable(spec[part], 100)}' can be negative; a {part} term is a "
                                      f"rate of jumps and must be >= 0 (write the opposite flow in "
                                      f"{'loss' if part == 'gain' else 'gain'}, give its parameters bounds "
                                      f"from 0, or wrap it in max(0, ...))")
            ok = False
    return Stochastic(state_name, float(below), parts["gain"], parts["loss"]) if ok else None


def parse_model_events(table, state_names, parameter_names, known, outputs, nonnegative_names, errs,
                       interventions=None):
    """The ``[events]`` tables as :class:`ModelEvent` values, in file order."""
    if not isinstance(table, dict):
        errs.add("events", "expected tables [events.NAME]")
        return {}
    found = {}
    for name, spec in table.items():
        key = f"events.{name}"
        why = ex.name_problem(name)
        if why is not None:
            errs.add(key, why)
            continue
        if not isinstance(spec, dict):
            errs.add(key, "expected a table with trigger or hazard, and actions")
            continue
        event = _parse_event(name, spec, key, state_names, parameter_names, known, outputs, nonnegative_names,
                             errs, interventions or {})
        if event is not None:
            found[name] = event
    return found


def _parse_event(name, spec, key, state_names, parameter_names, known, outputs, nonnegative_names, errs,
                 interventions):
    intervention = None
    if "do" in spec:
        intervention = interventions.get(spec["do"]) if isinstance(spec["do"], str) else None
        if intervention is None:
            errs.add(f"{key}.do", f"expected the name of an intervention of the model's [interventions], got "
                                  f"{spec['do']!r}{suggestion(str(spec['do']), interventions)}")
            return None
    allowed = _EVENT_KEYS | (set(intervention.arguments) if intervention is not None else set())
    errs.unknown_keys(key, spec, allowed, "a key of a model event" + (
        f" or an argument of intervention '{intervention.name}'" if intervention is not None else ""))
    for k in ("description", "source", "notes"):
        if k in spec and not isinstance(spec[k], str):
            errs.add(f"{key}.{k}", f"expected a string, got {spec[k]!r}")
    has = [k for k in ("trigger", "hazard") if k in spec]
    if len(has) != 1:
        errs.add(key, "expected exactly one of trigger = \"EXPR\" (fires when EXPR crosses zero) and "
                      "hazard = \"EXPR\" (fires at random with that hazard per day)"
                 + ("; got both" if len(has) == 2 else ""))
        return None
    kind = has[0]
    expr = _expression(spec[kind], f"{key}.{kind}", known | set(outputs), errs)
    if expr is not None:
        expr = ex.substitute(expr, outputs) if ex.names(expr) & set(outputs) else expr
    if expr is not None and kind == "trigger" and expr.is_bool:
        hint = "e.g. 'x - 5' with direction = \"down\" for 'x < 5'"
        if expr.op in ("<", "<=", ">", ">=") and len(expr.args) == 2:
            way = "down" if expr.op in ("<", "<=") else "up"
            hint = f"'{ex.sub(expr.args[0], expr.args[1])}' with direction = \"{way}\""
        errs.add(f"{key}.trigger", f"'{printable(spec['trigger'], 100)}' is a condition (true or false); a trigger "
                                   f"is a quantity that crosses zero: write {hint}")
        expr = None
    if expr is not None and kind == "hazard" and not nonnegative(expr, nonnegative_names):
        errs.add(f"{key}.hazard", f"'{printable(spec['hazard'], 100)}' can be negative; a hazard is a rate "
                                  f"per day and must be >= 0 (give its parameters bounds from 0, or wrap it "
                                  f"in max(0, ...))")
        expr = None
    direction = spec.get("direction", "either")
    if direction not in DIRECTIONS:
        errs.add(f"{key}.direction", f"expected one of 'up', 'down', 'either', got {direction!r}"
                                     f"{suggestion(str(direction), DIRECTIONS)}")
    elif kind == "hazard" and "direction" in spec:
        errs.add(f"{key}.direction", "a random (hazard) event has no direction; direction is for triggers")
    flags = {}
    for flag in ("repeat", "terminal"):
        value = spec.get(flag, False)
        if not isinstance(value, bool):
            errs.add(f"{key}.{flag}", f"expected true or false, got {value!r}")
            value = False
        flags[flag] = value
    actions = []
    if intervention is not None:
        if any(k in spec for k in ACTION_ORDER):
            errs.add(key, "give either do = \"INTERVENTION\" or add/multiply/set/set_parameter, not both")
            return None
        actions = _intervention_actions(intervention, spec, key, known | set(outputs), outputs, errs)
        if actions is None:
            return None
    for akind in ACTION_ORDER:
        entries = spec.get(akind)
        if entries is None:
            continue
        targets = parameter_names if akind == "set_parameter" else state_names
        if not isinstance(entries, dict) or not entries:
            errs.add(f"{key}.{akind}", "expected a table of name = value")
            continue
        for target, value in entries.items():
            akey = f"{key}.{akind}.{target}"
            if target not in targets:
                what = "a parameter" if akind == "set_parameter" else "a state"
                errs.add(akey, f"'{target}' is not {what} of the model{suggestion(target, targets)}")
                continue
            value_expr = _expression(value, akey, known | set(outputs), errs)
            if value_expr is not None:
                value_expr = ex.substitute(value_expr, outputs) if ex.names(value_expr) & set(outputs) else value_expr
                actions.append((akind, target, value_expr))
    if expr is None or direction not in DIRECTIONS:
        return None
    return ModelEvent(name, spec.get("description", "") if isinstance(spec.get("description", ""), str) else "",
                      kind, expr, direction, flags["repeat"], flags["terminal"], tuple(actions))


def _intervention_actions(intervention, spec, key, known, outputs, errs):
    """The actions of ``do = INTERVENTION`` with the event's arguments (None if one is bad)."""
    given = {}
    ok = True
    for name, arg in intervention.arguments.items():
        akey = f"{key}.{name}"
        where = f"intervention '{intervention.name}', argument '{name}'"
        if name not in spec:
            unknown = sorted(n for n in ex.names(arg.default) if n not in known) if arg.default is not None else []
            if arg.default is None or unknown:
                errs.add(akey, f"{where}: give it in the event ({arg.describe()}); "
                               + ("it has no default" if arg.default is None else
                                  f"its default '{arg.default}' names {', '.join(unknown)}, which a model event "
                                  f"cannot see"))
                ok = False
            continue
        value = spec[name]
        if arg.choices:
            if not isinstance(value, str) or value not in arg.choices:
                errs.add(akey, f"{where}: expected {arg.describe()}, got {value!r}")
                ok = False
                continue
            given[name] = ex.Expr.num(arg.choices[value])
            continue
        expr = _expression(value, akey, known, errs)
        if expr is None:
            ok = False
            continue
        expr = ex.substitute(expr, outputs) if ex.names(expr) & set(outputs) else expr
        if expr.op == "num" and arg.bounds and not arg.bounds[0] <= expr.value <= arg.bounds[1]:
            errs.add(akey, f"{where}: {expr.value:g} is outside [{arg.bounds[0]:g}, {arg.bounds[1]:g}]")
            ok = False
            continue
        given[name] = expr
    return intervention.expand(given) if ok else None


def _expression(text, key, known, errs):
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        errs.add(key, f"expected an expression (a string or a number), got {text!r}")
        return None
    try:
        expr = ex.parse(text)
    except ExpressionError as err:
        errs.add(key, str(err))
        return None
    for nm in sorted(ex.names(expr)):
        if nm not in known and nm != "t":
            errs.add(key, f"unknown name '{nm}' in '{printable(text, 100)}'{suggestion(nm, known)}")
            return None
    return expr


# ----------------------------------------------------------------------------------------
# sign analysis
# ----------------------------------------------------------------------------------------

_NONNEG_ALWAYS = {"exp", "sqrt", "abs", "hill", "step"}  # results >= 0 whatever the arguments
_NONNEG_IF_ARGS = {"+", "*", "/", "min", "log1p", "tanh", "expm1", "clip"}  # >= 0 when all arguments are


def nonnegative(expr: ex.Expr, nonneg_names) -> bool:
    """Whether ``expr`` is provably >= 0 (NaN aside) when the names in ``nonneg_names`` are.

    A conservative sign analysis: numbers >= 0; non-negative names; ``exp``, ``sqrt``, ``abs``,
    ``hill``, ``step`` and comparisons; sums, products, quotients, ``min``, ``clip``, ``tanh``,
    ``log1p``, ``expm1`` of non-negative arguments; ``x ** y`` with ``x >= 0``; ``max`` with one
    non-negative argument; ``where(c, a, b)`` with both branches non-negative. Anything else
    (a difference, a negation, a logarithm) is not provably non-negative.
    """
    op = expr.op
    if op == "num":
        return expr.value >= 0
    if op == "var":
        return expr.value in nonneg_names
    if expr.is_bool or op in _NONNEG_ALWAYS:
        return True
    if op in _NONNEG_IF_ARGS:
        return all(nonnegative(a, nonneg_names) for a in expr.args)
    if op == "**":
        return nonnegative(expr.args[0], nonneg_names)
    if op == "max":
        return any(nonnegative(a, nonneg_names) for a in expr.args)
    if op == "where":
        return nonnegative(expr.args[1], nonneg_names) and nonnegative(expr.args[2], nonneg_names)
    return False


def nonnegative_names(states, parameters, expressions) -> set:
    """Names whose values are >= 0: states (amounts), parameters whose bounds start at >= 0
    (values outside the bounds are refused for scenarios, arms and run-time overrides; a
    parameter without bounds may be set to anything), and expressions that are provably >= 0
    given the others (in order). ``t`` is not included (scenarios may start before day 0)."""
    names = {s.name for s in states}
    for p in parameters:
        if p.bounds is not None and p.bounds[0] >= 0:
            names.add(p.name)
    for name, e in expressions.items():
        if nonnegative(e, names):
            names.add(name)
    return names


def check_terminal(meta: dict, events: dict, errs) -> str:
    """``[model] after_terminal``, required when an event is terminal."""
    value = meta.get("after_terminal")
    terminal = [n for n, e in events.items() if e.terminal]
    if value is None:
        if terminal:
            errs.add("model.after_terminal", f"event '{terminal[0]}' is terminal: say what the saved states and "
                                             f"outputs after a terminal event are, after_terminal = \"nan\" "
                                             f"(not observed) or \"hold\" (the values at that time)")
        return "nan"
    if value not in AFTER_TERMINAL:
        errs.add("model.after_terminal", f"expected \"nan\" or \"hold\", got {value!r}")
        return "nan"
    return value


# ----------------------------------------------------------------------------------------
# the system the kernel integrates
# ----------------------------------------------------------------------------------------

ROOT_TRIGGER, ROOT_HAZARD, ROOT_JUMP, ROOT_RETURN = (c.value for c in ROOT_KINDS)


@dataclass(frozen=True)
class KernelSystem:
    """A model as the kernel integrates it, with the tables of its roots.

    Attributes
    ----------
    model : Model
        The model with hidden clock states and hidden parameters appended (after the
        model's own, so their indices are unchanged), and the right-hand sides of
        stochastic states switched off while they are discrete.
    roots : list of (kind, direction, ref, Expr)
        Root functions in firing order: model events in file order (``ref``: event index),
        then per stochastic state its jump clock and its return to discrete (``ref``:
        stochastic index).
    event_clock : list of (state index, parameter index) or (-1, -1), per model event
    stochastic : list of (state, below, mode parameter, clock state, draw parameter)
    """

    model: object
    roots: tuple
    event_clock: tuple
    stochastic: tuple


def _hidden_name(base, taken):
    name = base
    while name in taken:
        name = "z" + name
    taken.add(name)
    return name


def kernel_system(model, state_class, parameter_class) -> KernelSystem:
    """The plain ODE system and root tables the kernel integrates for ``model``.

    ``state_class`` and ``parameter_class`` build the hidden states and parameters
    (:class:`~carkinetics.model.spec.State`, :class:`~carkinetics.model.spec.Parameter`);
    call it as :meth:`Model.kernel_system() <carkinetics.model.spec.Model.kernel_system>`.
    """
    State, Parameter = state_class, parameter_class
    taken = set(model.state_names) | set(model.parameter_names) | set(model.expressions) | set(model.output_names)
    n, n_par = model.n_states, model.n_parameters
    hidden_states, hidden_params = [], []
    odes = dict(model.odes)
    roots, event_clock, stoch = [], [], []

    def new_state(base, rhs):
        nm = _hidden_name(base, taken)
        hidden_states.append(State(nm, "1", "engine clock (cumulative hazard)", ex.ZERO, 0.0, 1e-9))
        odes[nm] = rhs
        return n + len(hidden_states) - 1, nm

    def new_param(base):
        nm = _hidden_name(base, taken)
        hidden_params.append(Parameter(nm, 0.0, "1", "engine draw or mode", "engine"))
        return n_par + len(hidden_params) - 1, nm

    for k, event in enumerate(model.events.values()):
        if event.kind == "trigger":
            roots.append((ROOT_TRIGGER, DIRECTIONS[event.direction], k, event.expression))
            event_clock.append((-1, -1))
        else:
            js, s_name = new_state(f"clock_{event.name}", event.expression)
            jp, p_name = new_param(f"draw_{event.name}")
            roots.append((ROOT_HAZARD, 1, k, ex.sub(ex.Expr.var(s_name), ex.Expr.var(p_name))))
            event_clock.append((js, jp))
    for q, (name, st) in enumerate(model.stochastic.items()):
        jm, m_name = new_param(f"discrete_{name}")
        m = ex.Expr.var(m_name)
        odes[name] = ex.mul(ex.sub(ex.ONE, m), ex.sub(st.gain, st.loss))
        js, s_name = new_state(f"clock_{name}", ex.mul(m, ex.add(st.gain, st.loss)))
        jp, p_name = new_param(f"draw_{name}")
        roots.append((ROOT_JUMP, 1, q, ex.sub(ex.Expr.var(s_name), ex.Expr.var(p_name))))
        level = ex.sub(ex.Expr.var(name), ex.Expr.num(RETURN_FRACTION * st.below))
        roots.append((ROOT_RETURN, -1, q, ex.where(ex.parse(f"{m_name} > 0.5"), ex.ONE, level)))
        stoch.append((model.state_index(name), st.below, jm, js, jp))
    system = dataclasses.replace(model, states=model.states + tuple(hidden_states),
                                 parameters=model.parameters + tuple(hidden_params), odes=odes, _kernel=None)
    return KernelSystem(system, tuple(roots), tuple(event_clock), tuple(stoch))


__all__ = ["AFTER_TERMINAL", "DIRECTIONS", "KernelSystem", "ModelEvent", "Stochastic", "check_terminal",
           "kernel_system", "nonnegative", "nonnegative_names", "parse_model_events",
           "parse_stochastic", "math"]
