"""Scenario files: the core sections and every validation message."""

import numpy as np
import pytest

from carkinetics import ScenarioError, simulate
from carkinetics.scenario.load import check_file, load_scenario
from carkinetics.scenario.schema import SECTIONS

from conftest import DATA, SCENARIOS

BAD = DATA / "bad"


def test_good_scenario_loads_and_builds_its_schedule():
    sc = load_scenario(DATA / "scenarios" / "linear_events.toml")
    assert sc.model.name == "linear"
    np.testing.assert_array_equal(sc.times, np.arange(0, 101, 5.0))
    assert sc.parameters == {"k_ab": 0.25}
    assert sc.solver.method == "auto" and sc.solver.rtol == 1e-7
    sched = sc.schedule()
    assert [e.name for e in sched] == ["dose", "conditional cut"]
    assert sched[0].actions[0].value == pytest.approx(5e5)  # "a0 / 2"
    assert sched[1].when == "c > 100"
    traj = simulate(sc.model, sched, sc.times, parameters=sc.parameter_vector(), options=sc.solver)
    assert list(traj.events_applied) == [True, True]


def test_every_shipped_scenario_validates():
    paths = sorted(SCENARIOS.rglob("*.toml"))
    assert any(p.parent.name == "examples" for p in paths)
    for path in paths:
        assert "is valid" in check_file(path)


def _problems(name):
    with pytest.raises(ScenarioError) as info:
        load_scenario(BAD / name)
    return "\n".join(str(p) for p in info.value.problems)


def test_unknown_keys_are_refused_with_suggestions():
    text = _problems("bad_scenario_keys.toml")
    assert "populaton: 'populaton' is not a section of a scenario file" in text
    assert "scenario.modle_version: 'modle_version' is not a key of [scenario]" in text
    assert "times.stpe: 'stpe' is not a key of [times] (did you mean 'step'?)" in text
    assert "solver.method: expected one of ['auto', 'rodas4', 'tsit5'], got 'rk45'" in text
    assert "events[0].ad: 'ad' is not a key of an event (did you mean 'add'?)" in text
    assert "events[0]: event 'event 0' has no actions" in text


def test_the_schema_lists_every_legal_section_once_in_parse_order():
    names = [s.name for s in SECTIONS]
    assert names == ["scenario", "times", "parameters", "solver", "variables", "population", "arms", "events",
                     "vocabulary", "endpoints", "outcomes", "targets", "sweep", "data", "plot"]
    assert all(s.description for s in SECTIONS)
    assert "populaton: 'populaton' is not a section of a scenario file (did you mean 'population'?)" in _problems(
        "bad_scenario_keys.toml")


def test_unknown_names_are_refused_with_suggestions():
    text = _problems("bad_scenario_names.toml")
    assert "parameters.k_abb: 'k_abb' is not a parameter of model 'linear' (did you mean 'k_ab'?)" in text
    assert "parameters.decay_c: -5.0 is outside the model's bounds [0.0, 1.0]" in text
    assert "events[0].add.bb: 'bb' is not a state of model 'linear' (did you mean 'b'?)" in text
    assert "events[0].add.c: unknown name 'dose_per_kg'" in text
    assert "events[0].set_parameter.a: 'a' is not a parameter of model 'linear'" in text
    assert "events[0].when: operator 'RShift' is not allowed" in text


def test_event_times_outside_the_horizon_and_negative_amounts():
    text = _problems("bad_scenario_values.toml")
    assert "events[0].time: -5.0 is before the start of the scenario (0.0)" in text
    assert "events[1].time: 150.0 is after the last output time (100.0)" in text
    assert "events[2].add.b: amount must be >= 0, got -1000000.0" in text
    assert "events[2].multiply.a: factor must be >= 0, got -0.5" in text
    assert "events[3].time: missing" in text
    assert "events[4].add.c: expected a finite number, got nan" in text


def test_missing_and_invalid_model_files():
    assert "model file not found" in _problems("bad_scenario_model.toml")
    text = _problems("bad_scenario_badmodel.toml")
    assert "could not be loaded" in text and "odes.effector: unknown name 'efector'" in text


def test_missing_scenario_file():
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(DATA / "scenarios" / "nope.toml")
