"""What the parsers of scenario sections share: their context, and checks of parameter tables and values."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from carkinetics.errors import ExpressionError, ProblemCollector, is_number, printable, suggestion
from carkinetics.model import expressions as ex


@dataclass
class SectionContext:
    """What a section parser reads, and the names that earlier sections declare for later ones.

    :func:`~carkinetics.scenario.load.scenario_from_dict` builds one per file after the
    ``[scenario]``, ``[times]``, ``[parameters]`` and ``[solver]`` tables, then runs the
    parsers of :data:`~carkinetics.scenario.schema.SECTIONS` in order; each parser records
    its problems in ``errors`` and may fill the declared names below.

    Attributes
    ----------
    model : Model
        The model the scenario names.
    path : pathlib.Path
        The scenario file (relative paths in sections are relative to its folder).
    errors : ProblemCollector
        Problems of the whole file, reported together.
    times : numpy.ndarray
        The output times (day).
    t0 : float or None
        ``[times] start``, if given (day).
    parameters : dict of str to float
        Parameter overrides (parameter sets, then ``[parameters]``).
    tables : dict
        Every table of the file as read (sections that are parsed together, such as
        ``[endpoints]`` and ``[outcomes]``, read each other's table here).
    variables : dict of str to float
        The valid ``[variables]``, name -> value.
    covariates : dict of str to Covariate
        The valid ``[population.covariates]``, name -> distribution.
    arm_names : set of str
        Names of the ``[arms]`` tables.
    event_names : set of str
        Names, besides the model's parameters, that event expressions may use.
    protocol_events : list of str
        Names of the ``[[events]]`` (what endpoints read as ``fired.NAME``, ``time_of.NAME``).
    event_time_names : set of str
        Names the events' times use (a sweep's "none" needs one).
    vocabulary_tables : dict
        ``{"endpoints": ..., "outcomes": ...}``: the tables the ``[vocabulary]`` imports.
    """

    model: object
    path: Path
    errors: ProblemCollector
    times: np.ndarray
    t0: float | None
    parameters: dict
    tables: dict
    variables: dict = field(default_factory=dict)
    covariates: dict = field(default_factory=dict)
    arm_names: set = field(default_factory=set)
    event_names: set = field(default_factory=set)
    protocol_events: list = field(default_factory=list)
    vocabulary_tables: dict = field(default_factory=dict)
    event_time_names: set = field(default_factory=set)

    def patient_names(self) -> set:
        """Names an endpoint expression may read besides outputs and endpoints: covariates,
        variables, the model's parameters (each patient's value; the clinical outcome
        model's links among them), ``arm.NAME``, ``fired.EVENT`` and ``time_of.EVENT``."""
        names = (set(self.covariates) | set(self.variables) | set(self.model.parameter_names)
                 | {f"arm.{a}" for a in self.arm_names})
        for event in self.protocol_events:
            names |= {f"fired.{event}", f"time_of.{event}"}
        return names


def parameter_items(raw, section: str, model, errs, expected: str) -> list:
    """Entries ``(name, value, key)`` of a table keyed by the model's parameter names.

    A table that is not a table, and names that are not parameters of ``model`` (with
    a close-match suggestion), are recorded in ``errs`` and left out.

    Parameters
    ----------
    raw : object
        The table as read from the file.
    section : str
        Its key path in the file, e.g. ``"population.variability"``.
    model : Model
        The model whose parameter names are the legal keys.
    errs : ProblemCollector
        Where problems are recorded.
    expected : str
        What each value is, for the message about a table that is not one.

    Returns
    -------
    list of tuple
        ``(name, value, key)`` for every entry that names a parameter, in file order.
    """
    if not isinstance(raw, dict):
        errs.add(section, f"expected a table of parameter = {expected}")
        return []
    items = []
    for nm, value in raw.items():
        key = f"{section}.{nm}"
        if nm not in model.parameter_names:
            errs.add(key, f"'{nm}' is not a parameter of model '{model.name}'"
                          f"{suggestion(nm, model.parameter_names)}")
            continue
        items.append((nm, value, key))
    return items


def value_expression(value, key, names, errs, hint="event values may use parameters and covariates"):
    """A number or an expression string over ``names`` as an :class:`~carkinetics.model.expressions.Expr`.

    Problems (wrong type, non-finite number, parse error, unknown names with a
    close-match suggestion and ``hint``) are recorded in ``errs``; returns None then.

    Parameters
    ----------
    value : object
        The value as read from the file: a number or an expression string.
    key : str
        Its key path in the file.
    names : collection of str
        Names the expression may use.
    errs : ProblemCollector
        Where problems are recorded.
    hint : str, optional
        What names may be used, appended to the message about an unknown name.

    Returns
    -------
    Expr or None
        The expression (a constant for a number), or None after a problem.
    """
    if isinstance(value, bool):
        errs.add(key, f"expected a number or an expression, got {value!r}")
        return None
    if isinstance(value, (int, float)):
        if not is_number(value):
            errs.add(key, f"expected a finite number, got {printable(repr(value), 60)}")
            return None
        return ex.Expr.num(float(value))
    if not isinstance(value, str):
        errs.add(key, f"expected a number or an expression string, got {value!r}")
        return None
    try:
        e = ex.parse(value)
    except ExpressionError as err:
        errs.add(key, str(err))
        return None
    bad = [n for n in ex.names(e) if n not in names]
    for n in bad:
        errs.add(key, f"unknown name '{n}' in '{value}'{suggestion(n, names)} ({hint})")
    return None if bad else e
