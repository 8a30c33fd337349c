"""Schedules as event tables with NONMEM-style columns, and back.

One row per action: ``TIME``, ``EVID`` (1: a dose or other event; NONMEM's dose record),
``CMT`` (the state, or the parameter of ``set_parameter``), ``AMT`` (the amount added, the
factor, the value set), ``ACTION`` (``add``, the NONMEM meaning of a dose, or ``multiply``,
``set``, ``set_parameter``: carkinetics' extensions), ``NAME`` and ``WHEN`` (the event's name
and condition). Reading also accepts ``II`` and ``ADDL`` (repeat the dose ``ADDL`` more times
every ``II`` days), ``CMT`` as a 1-based state number when a model is given, and ignores
observation records (``EVID`` 0); other ``EVID`` values (resets, ``EVID`` 2-4) are refused.

>>> from carkinetics.simulation.schedule import Dose, Schedule
>>> table = schedule_to_frame(Schedule([Dose(0.0, "effector", 1e8, name="infusion")]))
>>> table[["TIME", "EVID", "CMT", "AMT", "ACTION"]].values.tolist()
[[0.0, 1, 'effector', 100000000.0, 'add']]
>>> schedule_from_frame(table)[0].actions[0].value
100000000.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from carkinetics.simulation.schedule import ACTION_KINDS, Action, Event, EventError, Schedule

if TYPE_CHECKING:
    import pandas as pd

    from carkinetics.model.spec import Model

#: Columns of an event table, in order.
EVENT_TABLE_COLUMNS = ("TIME", "EVID", "CMT", "AMT", "ACTION", "NAME", "WHEN")


def schedule_to_frame(schedule: Schedule | Iterable[Event]) -> pd.DataFrame:
    """The schedule as an event table (one row per action, :data:`EVENT_TABLE_COLUMNS`).

    Parameters
    ----------
    schedule : Schedule or iterable of Event

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    rows = [(e.time, 1, a.target, a.value, a.kind, e.name, e.when or "") for e in schedule for a in e.actions]
    return pd.DataFrame(rows, columns=list(EVENT_TABLE_COLUMNS))


def schedule_from_frame(table: pd.DataFrame, model: Model | None = None) -> Schedule:
    """A schedule from an event table (NONMEM-style columns; see the module docstring).

    Rows with the same ``TIME``, ``NAME`` and ``WHEN`` that follow each other make one event.

    Parameters
    ----------
    table : pandas.DataFrame
        Needs ``TIME``, ``CMT`` and ``AMT``; ``EVID``, ``ACTION``, ``NAME``, ``WHEN``, ``II``
        and ``ADDL`` are optional (defaults: 1, ``add``, "", none, no repeats).
    model : Model, optional
        Needed when ``CMT`` gives states by number (1-based, in the model's state order).

    Returns
    -------
    Schedule

    Raises
    ------
    EventError
        Naming the row and the column: a missing column, an unsupported ``EVID`` or
        ``ACTION``, a state number out of range, ``II``/``ADDL`` that are not a positive
        interval and a whole number.
    """
    missing = [c for c in ("TIME", "CMT", "AMT") if c not in table.columns]
    if missing:
        raise EventError(f"an event table needs the columns TIME, CMT and AMT; missing {missing}")
    events: list[Event] = []
    for i, row in enumerate(table.to_dict("records")):
        where = f"event table row {i + 1}"
        evid = _number(row.get("EVID", 1), where, "EVID", default=1)
        if evid == 0:
            continue  # an observation record
        if evid != 1:
            raise EventError(f"{where}: EVID {evid:g} is not supported (1: an event; 0: an observation, skipped)")
        kind = _text(row.get("ACTION"), "add")
        if kind not in ACTION_KINDS:
            raise EventError(f"{where}: ACTION {kind!r} is not one of {list(ACTION_KINDS)}")
        target = _target(row["CMT"], model, where)
        action = Action(kind, target, _number(row["AMT"], where, "AMT"))
        name, when = _text(row.get("NAME"), ""), _text(row.get("WHEN"), "") or None
        time = _number(row["TIME"], where, "TIME")
        interval = _number(row.get("II", 0), where, "II", default=0.0)
        extra = _number(row.get("ADDL", 0), where, "ADDL", default=0.0)
        if extra != int(extra) or extra < 0 or (extra > 0 and not interval > 0):
            raise EventError(f"{where}: ADDL must be a whole number >= 0 with II > 0, got ADDL {extra:g}, "
                             f"II {interval:g}")
        for k in range(int(extra) + 1):
            t = time + k * interval
            last = events[-1] if events else None
            if k == 0 and last is not None and (last.time, last.name, last.when) == (t, name, when):
                events[-1] = Event(t, list(last.actions) + [action], when, name)
            else:
                events.append(Event(t, [action], when, name))
    return Schedule(events)


def _number(value, where, column, default=None) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if default is not None:
            return float(default)
        raise EventError(f"{where}: {column} is empty (expected a number)")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise EventError(f"{where}: {column} = {value!r} is not a number") from None
    if not math.isfinite(v):
        raise EventError(f"{where}: {column} = {value!r} is not a finite number")
    return v


def _text(value, default) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    return str(value)


def _target(cmt, model, where) -> str:
    """``CMT`` as a state (or parameter) name; a number is a 1-based state number of ``model``."""
    if isinstance(cmt, str) and not cmt.strip().lstrip("-").isdigit():
        return cmt
    number = _number(cmt, where, "CMT")
    if model is None:
        raise EventError(f"{where}: CMT {number:g} is a compartment number: give the model to map it to a state")
    if number != int(number) or not 1 <= number <= model.n_states:
        raise EventError(f"{where}: CMT {number:g} is not a state number of model '{model.name}' "
                         f"(1 to {model.n_states}: {', '.join(model.state_names)})")
    return model.state_names[int(number) - 1]
