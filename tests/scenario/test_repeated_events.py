"""Repeated events in scenarios (``every``/``count`` and NONMEM's ``ii``/``addl``) and event tables
with NONMEM-style columns (:mod:`carkinetics.simulation.event_table`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carkinetics.errors import ScenarioError
from carkinetics.model.load import load_model
from carkinetics.simulation.event_table import schedule_from_frame, schedule_to_frame
from carkinetics.simulation.schedule import Action, Event, EventError, Schedule
from carkinetics.simulation.simulate import simulate

from conftest import DATA


@pytest.fixture
def inline_times():
    return {"end": 100, "step": 1}


def _times(scenario):
    return [(e.time, e.actions) for e in scenario.schedule()]


def test_every_and_count_give_the_same_schedule_as_the_doses_written_out(inline_scenario):
    repeated = inline_scenario(events=[{"at": 2, "every": 28, "count": 3, "add": {"a": 5.0}}])
    written = inline_scenario(events=[{"at": t, "add": {"a": 5.0}} for t in (2, 30, 58)])
    assert _times(repeated) == _times(written)
    assert [e.time for e in repeated.schedule()] == [2.0, 30.0, 58.0]


def test_nonmem_ii_and_addl_mean_additional_doses(inline_scenario):
    nonmem = inline_scenario(events=[{"at": 2, "ii": 28, "addl": 2, "add": {"a": 5.0}}])
    every = inline_scenario(events=[{"at": 2, "every": 28, "count": 3, "add": {"a": 5.0}}])
    assert _times(nonmem) == _times(every)
    single = inline_scenario(events=[{"at": 2, "ii": 28, "addl": 0, "add": {"a": 5.0}}])
    assert len(single.schedule()) == 1


def test_repeats_of_an_expression_time_follow_each_patient(inline_scenario):
    sc = inline_scenario(variables={"start": {"value": 3.0}},
                         events=[{"at": "start", "every": 10, "count": 2, "add": {"a": 1.0}}])
    assert [e.time for e in sc.schedule()] == [3.0, 13.0]
    assert [e.time for e in sc.schedule({**sc.default_env(), "start": 7.0})] == [7.0, 17.0]


@pytest.mark.parametrize("event, key, text", [
    ({"every": 28}, "count", "go together"),
    ({"count": 3}, "every", "go together"),
    ({"every": 0, "count": 3}, "every", "> 0"),
    ({"every": 28, "count": 2.5}, "count", "whole number"),
    ({"every": 28, "count": 0}, "count", "whole number in [1"),
    ({"ii": 28, "addl": -1}, "addl", "whole number in [0"),
    ({"every": 28, "count": 3, "ii": 28}, "events[0]", "not both"),
    ({"every": 40, "count": 4}, "count", "after the last output time"),
])
def test_bad_repeats_are_refused_naming_the_key(inline_scenario, event, key, text):
    with pytest.raises(ScenarioError) as err:
        inline_scenario(events=[{"at": 2, "add": {"a": 1.0}, **event}])
    message = str(err.value)
    assert key in message and text in message


def test_event_table_round_trip_and_nonmem_repeats():
    schedule = Schedule([Event(0.0, [Action("add", "a", 5.0), Action("multiply", "b", 0.5)], name="d"),
                         Event(10.0, [Action("set_parameter", "k_ab", 0.2)], when="a < 1", name="p")])
    table = schedule_to_frame(schedule)
    assert list(table.columns) == ["TIME", "EVID", "CMT", "AMT", "ACTION", "NAME", "WHEN"]
    assert len(table) == 3
    back = schedule_from_frame(table)
    assert [(e.time, e.name, e.when, sorted(e.actions, key=lambda a: a.kind)) for e in back] == [
        (e.time, e.name, e.when, sorted(e.actions, key=lambda a: a.kind)) for e in schedule]
    nonmem = pd.DataFrame({"TIME": [0.0, 5.0], "EVID": [1, 0], "CMT": [1, 1], "AMT": [5.0, np.nan],
                           "II": [7.0, np.nan], "ADDL": [2, np.nan]})
    model = load_model(DATA / "models" / "linear.toml")
    expanded = schedule_from_frame(nonmem, model)
    assert [(e.time, e.actions[0].target, e.actions[0].value) for e in expanded] == [
        (0.0, "a", 5.0), (7.0, "a", 5.0), (14.0, "a", 5.0)]


def test_a_schedule_from_a_nonmem_table_simulates_like_the_one_written_out():
    model = load_model(DATA / "models" / "linear.toml")
    times = np.linspace(0, 30, 31)
    table = pd.DataFrame({"TIME": [0.0], "CMT": ["a"], "AMT": [5.0], "II": [7.0], "ADDL": [3]})
    written = Schedule([Event(t, [Action("add", "a", 5.0)]) for t in (0.0, 7.0, 14.0, 21.0)])
    a = simulate(model, schedule_from_frame(table), times)
    b = simulate(model, written, times)
    np.testing.assert_array_equal(a.states, b.states)


@pytest.mark.parametrize("table, text", [
    (pd.DataFrame({"TIME": [0.0], "AMT": [1.0]}), "missing ['CMT']"),
    (pd.DataFrame({"TIME": [0.0], "CMT": ["a"], "AMT": [1.0], "EVID": [4]}), "EVID 4"),
    (pd.DataFrame({"TIME": [0.0], "CMT": ["a"], "AMT": [1.0], "ACTION": ["divide"]}), "ACTION 'divide'"),
    (pd.DataFrame({"TIME": [0.0], "CMT": [9], "AMT": [1.0]}), "CMT 9 is not a state number"),
    (pd.DataFrame({"TIME": [0.0], "CMT": ["a"], "AMT": ["lots"]}), "AMT = 'lots'"),
    (pd.DataFrame({"TIME": [0.0], "CMT": ["a"], "AMT": [1.0], "II": [0.0], "ADDL": [2]}), "ADDL must"),
])
def test_bad_event_tables_name_the_row_and_column(table, text):
    model = load_model(DATA / "models" / "linear.toml")
    with pytest.raises(EventError) as err:
        schedule_from_frame(table, model)
    assert text in str(err.value)
