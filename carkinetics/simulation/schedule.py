"""Events: doses, multiplications, settings of states and parameters.

An :class:`Event` happens at one time and applies one or more :class:`Action` s,
optionally only when a condition on the state just before that time holds. Within
one event the actions apply in a fixed order: ``multiply``, ``set``, ``add``,
``set_parameter`` (so a transplant that conditions, then grafts, reads naturally).
Events at the same time apply in the order they were given; all their conditions
are evaluated first, on the state before any of them.

>>> from carkinetics.simulation.schedule import Dose, Event, Action, Schedule
>>> schedule = Schedule([Dose(0.0, "effector", 1e8),
...                      Event(60.0, [Action("multiply", "leukaemia", 1e-3)], when="blasts < 0.05")])
>>> len(schedule)
2
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from carkinetics.engine.constants import ACTION_CODES, ACTION_ORDER
from carkinetics.errors import CarKineticsError, ExpressionError

if TYPE_CHECKING:
    from carkinetics.model.spec import Model

ACTION_KINDS = tuple(ACTION_CODES)
_KIND_ORDER = {kind: i for i, kind in enumerate(ACTION_ORDER)}


class EventError(CarKineticsError, ValueError):
    """An event does not fit the model (unknown target, bad amount or condition)."""


@dataclass(frozen=True)
class Action:
    """One change applied by an event.

    Parameters
    ----------
    kind : {'add', 'multiply', 'set', 'set_parameter'}
    target : str
        A state name (or a parameter name for ``set_parameter``).
    value : float
        Amount added (state units, >= 0), factor (>= 0) or new value (>= 0 for a
        state: states are amounts; within the parameter's bounds for ``set_parameter``,
        checked by :meth:`Schedule.expand`).
    """

    kind: str
    target: str
    value: float

    def __post_init__(self):
        if self.kind not in ACTION_KINDS:
            raise EventError(f"action kind must be one of {list(ACTION_KINDS)}, got {self.kind!r}")
        v = float(self.value)
        if not math.isfinite(v):
            raise EventError(f"{self.kind} {self.target}: value must be finite, got {self.value!r}")
        if self.kind in ("add", "multiply", "set") and v < 0:
            what = {"add": "amount", "multiply": "factor", "set": "value"}[self.kind]
            raise EventError(f"{self.kind} {self.target}: {what} must be >= 0 (states are amounts), got {v}")
        object.__setattr__(self, "value", v)


@dataclass(frozen=True)
class Event:
    """Actions applied at one time, optionally only when ``when`` holds."""

    time: float
    actions: tuple[Action, ...]
    when: str | None = None
    name: str = ""
    #: ``(file, key)`` the event was read from (e.g. a scenario's ``events[2]``), named by
    #: errors found while simulating it; not compared.
    source: tuple | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        t = float(self.time)
        if not math.isfinite(t):
            raise EventError(f"event {self.name!r}: time must be finite, got {self.time!r}")
        object.__setattr__(self, "time", t)
        acts = tuple(self.actions)
        if not acts:
            raise EventError(f"event {self.name!r} at t = {t} has no actions")
        object.__setattr__(self, "actions", tuple(sorted(acts, key=lambda a: _KIND_ORDER[a.kind])))


def Dose(time: float, state: str, amount: float, when: str | None = None, name: str = "") -> Event:
    """An event that adds ``amount`` to ``state`` at ``time``."""
    return Event(time, (Action("add", state, amount),), when=when, name=name or f"dose {state}")


@dataclass
class EventTable:
    """Flat arrays of a schedule, as the kernel reads them."""

    names: list[str]
    time: np.ndarray  # (E,)
    cond: np.ndarray  # (E,) program index or -1
    act_start: np.ndarray  # (E+1,)
    act_kind: np.ndarray  # (A,)
    act_target: np.ndarray  # (A,)
    act_value: np.ndarray  # (A,)
    act_labels: list[str] = field(default_factory=list)  # "event/kind/target"
    act_sources: list = field(default_factory=list)  # (file, "events[k].kind.target") or None, per action
    prog_code: np.ndarray = None
    prog_const: np.ndarray = None
    prog_start: np.ndarray = None
    prog_cstart: np.ndarray = None

    @property
    def n_events(self) -> int:
        return len(self.time)

    @property
    def n_actions(self) -> int:
        return len(self.act_kind)


class Schedule(Sequence):
    """An ordered collection of events."""

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self._events = list(events)
        for e in self._events:
            if not isinstance(e, Event):
                raise EventError(f"a schedule holds Event objects, got {type(e).__name__}")

    def __getitem__(self, i: int | slice) -> Event | list[Event]:
        return self._events[i]

    def __len__(self) -> int:
        return len(self._events)

    def __add__(self, other: Iterable[Event]) -> Schedule:
        return Schedule(list(self) + list(other))

    def __repr__(self) -> str:
        return f"Schedule({self._events!r})"

    def shifted(self, dt: float) -> Schedule:
        """The same schedule ``dt`` time units later."""
        return Schedule(Event(e.time + dt, e.actions, e.when, e.name, e.source) for e in self._events)

    def expand(self, model: Model) -> EventTable:
        """Check names against ``model`` and flatten to kernel arrays.

        Raises
        ------
        EventError
            For an unknown state or parameter or a malformed condition.
        """
        from carkinetics.errors import suggestion

        times, conds, starts, kinds, targets, values, labels, names = [], [], [0], [], [], [], [], []
        sources = []
        programs = []
        for k, e in enumerate(self._events):
            label = e.name or f"event {k}"
            names.append(label)
            times.append(e.time)
            for a in e.actions:
                if a.kind == "set_parameter":
                    if a.target not in model.parameter_names:
                        raise EventError(f"{label}: '{a.target}' is not a parameter of model "
                                         f"'{model.name}'{suggestion(a.target, model.parameter_names)}")
                    targets.append(model.parameter_names.index(a.target))
                    par = model.parameter(a.target)
                    if par.bounds and not (par.bounds[0] <= a.value <= par.bounds[1]):
                        raise EventError(f"{label}: set_parameter {a.target} = {a.value:g} is outside the "
                                         f"parameter's bounds [{par.bounds[0]:g}, {par.bounds[1]:g}]")
                else:
                    if a.target not in model.state_names:
                        raise EventError(f"{label}: '{a.target}' is not a state of model "
                                         f"'{model.name}'{suggestion(a.target, model.state_names)}")
                    targets.append(model.state_names.index(a.target))
                kinds.append(ACTION_CODES[a.kind])
                values.append(a.value)
                labels.append(f"{label}/{a.kind}/{a.target}")
                sources.append(None if e.source is None else (e.source[0], f"{e.source[1]}.{a.kind}.{a.target}"))
            starts.append(len(kinds))
            if e.when is None:
                conds.append(-1)
            else:
                try:
                    expr = model.parse_condition(e.when)
                    programs.append(model.condition_program(expr))
                except ExpressionError as err:
                    raise EventError(f"{label}: when = {e.when!r}: {err}") from None
                conds.append(len(programs) - 1)
        code_rows, consts, pstart, cstart = [], [], [0], [0]
        for code, cst, depth in programs:
            if depth > 60:
                raise EventError(f"condition too deeply nested (stack depth {depth} > 60)")
            code_rows.extend(code)
            consts.extend(cst)
            pstart.append(len(code_rows))
            cstart.append(len(consts))
        return EventTable(
            names=names,
            time=np.array(times, dtype=float),
            cond=np.array(conds, dtype=np.int64),
            act_start=np.array(starts, dtype=np.int64),
            act_kind=np.array(kinds, dtype=np.int64),
            act_target=np.array(targets, dtype=np.int64),
            act_value=np.array(values, dtype=float),
            act_labels=labels,
            act_sources=sources,
            prog_code=np.array(code_rows, dtype=np.int64).reshape(-1, 2),
            prog_const=np.array(consts if consts else [0.0], dtype=float),
            prog_start=np.array(pstart, dtype=np.int64),
            prog_cstart=np.array(cstart, dtype=np.int64),
        )


def as_schedule(events: Schedule | Event | Iterable[Event] | None) -> Schedule:
    """Accept None, a Schedule, one Event or an iterable of Events."""
    if events is None:
        return Schedule()
    if isinstance(events, Schedule):
        return events
    if isinstance(events, Event):
        return Schedule([events])
    return Schedule(list(events))
