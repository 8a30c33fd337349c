"""Named interventions a model file declares: protocol building blocks with arguments.

A model's ``[interventions.NAME]`` tables say once what a clinical step does to the
model (which states it adds to or multiplies, which parameters it sets), with named
arguments and their defaults. A scenario event then names the intervention and gives
only the arguments it changes::

    [[events]]
    at = 0
    do = "car_t_infusion"
    dose_per_kg = "dose"          # a number or an expression of the scenario's names
    edited_fraction = 0.95

An intervention table has ``description``, optionally ``source`` (where its actions
come from, or that they are an assumption), ``arguments`` (name -> ``default``,
``unit``, ``description``, ``bounds`` or ``choices``), ``values`` (named intermediate
expressions of the arguments, in order) and the actions ``add``, ``multiply``, ``set``
and ``set_parameter`` (state or parameter -> expression of the arguments, values and
parameters). ``same_as = "OTHER"`` copies another intervention's arguments, values
and actions (e.g. a second infusion of the same product).

An argument's ``default`` is a number or an expression; an expression may use the
model's parameters and names the scenario declares (e.g. the covariate ``weight``).
An argument with ``choices`` takes one of the choice names (each stands for a
number the actions use). :meth:`Intervention.expand` substitutes the arguments into
the actions and returns plain ``(kind, target, expression)`` actions.

Examples
--------
>>> from carkinetics.model.interventions import parse_interventions
>>> from carkinetics.errors import ProblemCollector, ModelFileError
>>> errs = ProblemCollector("m.toml", ModelFileError)
>>> table = {"dose": {"description": "A dose", "arguments": {"amount": {"default": 1.0}},
...                   "add": {"x": "amount * scale"}}}
>>> found = parse_interventions(table, ["x"], ["scale"], errs)
>>> from carkinetics.model import expressions as ex
>>> [(k, s, str(e)) for k, s, e in found["dose"].expand({"amount": ex.Expr.num(5.0)})]
[('add', 'x', '5 * scale')]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from carkinetics.engine.constants import ACTION_ORDER
from carkinetics.errors import ExpressionError, is_number, suggestion
from carkinetics.model import expressions as ex

#: Kinds of action an intervention may take, in the order they are applied.
INTERVENTION_ACTIONS = ACTION_ORDER
_KEYS = {"description", "source", "arguments", "values", "same_as", "notes"} | set(INTERVENTION_ACTIONS)
_ARGUMENT_KEYS = {"default", "unit", "description", "bounds", "choices", "notes"}


@dataclass(frozen=True)
class Argument:
    """One argument of an intervention.

    Attributes
    ----------
    name : str
    default : Expr or None
        Its value when a scenario does not give it (None: the scenario must give it).
        May name model parameters and names the scenario declares.
    unit, description : str
    bounds : (float, float) or None
        Allowed range of a numeric value.
    choices : dict of str to float
        For a choice argument: choice name -> the number the actions see.
    """

    name: str
    default: ex.Expr | None
    unit: str = ""
    description: str = ""
    bounds: tuple[float, float] | None = None
    choices: dict = field(default_factory=dict)

    def describe(self) -> str:
        """A one-line description for messages and documentation."""
        if self.choices:
            return f"one of {', '.join(repr(c) for c in self.choices)}"
        rng = f" in [{self.bounds[0]:g}, {self.bounds[1]:g}]" if self.bounds else ""
        unit = f" ({self.unit})" if self.unit else ""
        return f"a number or an expression{rng}{unit}"


@dataclass(frozen=True)
class Intervention:
    """A named intervention of a model: arguments, intermediate values and actions.

    Attributes
    ----------
    name, description, source : str
    arguments : dict of str to Argument
    values : dict of str to Expr
        Intermediate expressions, in order (each may use the arguments and earlier values).
    actions : tuple of (kind, target, Expr)
        In :data:`INTERVENTION_ACTIONS` order.
    """

    name: str
    description: str
    source: str
    arguments: dict
    values: dict
    actions: tuple

    def expand(self, given: dict) -> list:
        """The actions with the arguments substituted.

        Parameters
        ----------
        given : dict of str to Expr
            Argument name -> its value (an expression of names the caller resolves);
            arguments not given take their default. A ``set_parameter`` action that
            leaves the parameter at its own value is left out.

        Returns
        -------
        list of (kind, target, Expr)

        Raises
        ------
        KeyError
            For an argument that is not given and has no default.
        """
        subst = {}
        for name, arg in self.arguments.items():
            if name in given:
                subst[name] = given[name]
            elif arg.default is not None:
                subst[name] = arg.default
            else:
                raise KeyError(name)
        for name, value in self.values.items():
            subst[name] = ex.substitute(value, subst)
        out = []
        for kind, target, e in self.actions:
            value = ex.substitute(e, subst)
            if kind == "set_parameter" and value == ex.Expr.var(target):
                continue  # the parameter keeps its value: no action
            out.append((kind, target, value))
        return out


def parse_interventions(table, state_names, parameter_names, errs) -> dict:
    """Validate a model file's ``[interventions]`` tables.

    Parameters
    ----------
    table : dict
        ``[interventions]`` as read from TOML.
    state_names, parameter_names : sequence of str
        The model's states (targets of add, multiply and set) and parameters (targets of
        ``set_parameter``, and names the expressions may use).
    errs : ProblemCollector
        Collects every problem, keyed e.g. ``interventions.transplant.arguments.conditioning``.

    Returns
    -------
    dict of str to Intervention
    """
    if not isinstance(table, dict):
        errs.add("interventions", "expected tables [interventions.NAME]")
        return {}
    out = {}
    copies = {}
    for name, spec in table.items():
        key = f"interventions.{name}"
        problem = ex.name_problem(name)
        if problem:
            errs.add(key, problem)
            continue
        if not isinstance(spec, dict):
            errs.add(key, "expected a table")
            continue
        errs.unknown_keys(key, spec, _KEYS, "a key of an intervention")
        description = spec.get("description", "")
        if not isinstance(description, str) or not description:
            errs.add(f"{key}.description", "missing (a one-line description of what the intervention does)")
        if "same_as" in spec:
            copies[name] = spec
            continue
        intervention = _parse_one(name, spec, key, state_names, parameter_names, errs)
        if intervention is not None:
            out[name] = intervention
    for name, spec in copies.items():
        other = spec["same_as"]
        if other not in out:
            errs.add(f"interventions.{name}.same_as", f"'{other}' is not an intervention of this model "
                                                      f"(one declared in full){suggestion(str(other), out)}")
            continue
        extra = sorted(set(spec) & ({"arguments", "values"} | set(INTERVENTION_ACTIONS)))
        if extra:
            errs.add(f"interventions.{name}", f"an intervention with same_as takes only a description and "
                                               f"a source, not {', '.join(extra)}")
            continue
        base = out[other]
        out[name] = Intervention(name, str(spec.get("description", "")), str(spec.get("source", base.source)),
                                 base.arguments, base.values, base.actions)
    return out


def _parse_one(name, spec, key, state_names, parameter_names, errs):
    arguments = _arguments(spec.get("arguments", {}), f"{key}.arguments", parameter_names, errs)
    known = set(parameter_names) | set(arguments)
    values = {}
    raw_values = spec.get("values", {})
    if not isinstance(raw_values, dict):
        errs.add(f"{key}.values", "expected a table of name = expression")
        raw_values = {}
    for vname, text in raw_values.items():
        vkey = f"{key}.values.{vname}"
        if vname in known:
            errs.add(vkey, f"'{vname}' is already a parameter or an argument")
            continue
        expr = _expression(text, vkey, known, errs)
        if expr is not None:
            values[vname] = expr
        known.add(vname)
    actions = []
    for kind, target, text, akey in action_entries(spec, key, state_names, parameter_names, errs, "the model"):
        expr = _expression(text, akey, known, errs)
        if expr is not None:
            actions.append((kind, target, expr))
    if not actions:
        errs.add(key, "an intervention needs at least one action (add, multiply, set or set_parameter)")
        return None
    return Intervention(name, str(spec.get("description", "")), str(spec.get("source", "")), arguments, values,
                        tuple(actions))


def action_entries(table, key, state_names, parameter_names, errs, model_label):
    """The ``add``, ``multiply``, ``set`` and ``set_parameter`` entries of a table whose targets exist.

    Parameters
    ----------
    table : dict
        An event or intervention table as read.
    key : str
        Its key path, for messages.
    state_names, parameter_names : sequence of str
        Targets of add/multiply/set, and of set_parameter.
    errs : ProblemCollector
        Records a non-table or empty action, and targets that are not states or parameters.
    model_label : str
        How messages name the model, e.g. ``"model 'cart_tall'"``.

    Yields
    ------
    (kind, target, value, key) : tuple
        In :data:`INTERVENTION_ACTIONS` order; ``value`` as read.
    """
    for kind in INTERVENTION_ACTIONS:
        entries = table.get(kind)
        if entries is None:
            continue
        if not isinstance(entries, dict) or not entries:
            errs.add(f"{key}.{kind}", "expected a table of name = value")
            continue
        targets = parameter_names if kind == "set_parameter" else state_names
        what = "a parameter" if kind == "set_parameter" else "a state"
        for target, value in entries.items():
            akey = f"{key}.{kind}.{target}"
            if target not in targets:
                errs.add(akey, f"'{target}' is not {what} of {model_label}{suggestion(target, targets)}")
                continue
            yield kind, target, value, akey


def _arguments(table, key, parameter_names, errs) -> dict:
    if not isinstance(table, dict):
        errs.add(key, "expected a table of argument = { default, unit, description, ... }")
        return {}
    out = {}
    for name, spec in table.items():
        akey = f"{key}.{name}"
        problem = ex.name_problem(name)
        if problem or name in parameter_names:
            errs.add(akey, problem or f"'{name}' is a parameter of the model; name the argument differently")
            continue
        if not isinstance(spec, dict):
            errs.add(akey, "expected a table { default, unit, description, bounds or choices }")
            continue
        errs.unknown_keys(akey, spec, _ARGUMENT_KEYS, "a key of an intervention argument")
        choices = {}
        if "choices" in spec:
            raw = spec["choices"]
            if not isinstance(raw, dict) or not raw or not all(is_number(v) for v in raw.values()):
                errs.add(f"{akey}.choices", "expected a table of choice name = number")
                continue
            choices = {str(c): float(v) for c, v in raw.items()}
        bounds = None
        if "bounds" in spec:
            b = spec["bounds"]
            if (not isinstance(b, list) or len(b) != 2 or not all(is_number(v) for v in b)
                    or not float(b[0]) <= float(b[1])):
                errs.add(f"{akey}.bounds", f"expected [lower, upper] with lower <= upper, got {b!r}")
            else:
                bounds = (float(b[0]), float(b[1]))
        default = None
        if "default" in spec:
            raw = spec["default"]
            if choices:
                if not isinstance(raw, str) or raw not in choices:
                    errs.add(f"{akey}.default", f"expected one of the choices {list(choices)}, got {raw!r}")
                    continue
                default = ex.Expr.num(choices[raw])
            else:
                try:
                    default = ex.parse(raw)
                except ExpressionError as err:
                    errs.add(f"{akey}.default", str(err))
                    continue
                if default.op == "num" and bounds and not bounds[0] <= default.value <= bounds[1]:
                    errs.add(f"{akey}.default", f"{default.value:g} is outside the bounds "
                                                f"[{bounds[0]:g}, {bounds[1]:g}]")
        out[name] = Argument(name, default, str(spec.get("unit", "")), str(spec.get("description", "")), bounds,
                             choices)
    return out


def _expression(text, key, known, errs):
    try:
        expr = ex.parse(text)
    except ExpressionError as err:
        errs.add(key, str(err))
        return None
    for name in sorted(ex.names(expr)):
        if name not in known:
            errs.add(key, f"unknown name '{name}' (expressions of an intervention use its arguments, its "
                          f"values and the model's parameters){suggestion(name, known)}")
            return None
    return expr


def check_argument_value(argument: Argument, value: float) -> str | None:
    """What is wrong with a numeric argument value (outside its bounds, not finite), or None."""
    if not math.isfinite(value):
        return f"{value} is not a finite number"
    if argument.bounds and not argument.bounds[0] <= value <= argument.bounds[1]:
        lo, hi = argument.bounds
        unit = f" ({argument.unit})" if argument.unit else ""
        return f"{value:g} is outside [{lo:g}, {hi:g}]{unit}"
    return None
