"""Event semantics (the mrgsolve metamorphic tests) and event validation."""

import numpy as np
import pytest

from carkinetics import Action, Dose, Event, Schedule, SolverOptions, simulate
from carkinetics.simulation.schedule import EventError

TIMES = np.linspace(0, 120, 121)
OPTS = SolverOptions(rtol=1e-8)


def test_two_doses_at_the_same_time_equal_one_summed_dose(linear_model):
    split = simulate(linear_model, [Dose(10.0, "b", 3e5), Dose(10.0, "b", 2e5)], TIMES, options=OPTS)
    summed = simulate(linear_model, [Dose(10.0, "b", 5e5)], TIMES, options=OPTS)
    np.testing.assert_allclose(split.states, summed.states, rtol=1e-13)


def test_a_zero_dose_equals_no_dose(linear_model):
    zero = simulate(linear_model, [Dose(10.0, "b", 0.0)], TIMES, options=OPTS)
    none = simulate(linear_model, [], TIMES, options=OPTS)
    # the event time is a segment boundary, so the steps differ: equal within tolerance
    np.testing.assert_allclose(zero.states, none.states, rtol=1e-7)


def test_splitting_the_output_grid_changes_nothing(linear_model):
    sched = [Dose(10.0, "b", 5e5), Event(40.0, [Action("multiply", "a", 0.2)])]
    coarse = simulate(linear_model, sched, TIMES[::10], options=OPTS)
    fine = simulate(linear_model, sched, TIMES, options=OPTS)
    odd = simulate(linear_model, sched, np.unique(np.concatenate([TIMES[::10], [3.3, 57.7, 99.9]])),
                   options=OPTS)
    # outputs never influence the steps taken: identical, not just close
    np.testing.assert_array_equal(coarse.states, fine.states[::10])
    np.testing.assert_array_equal(coarse.states, odd.states[np.isin(odd.times, TIMES[::10])])


def test_shifting_the_schedule_shifts_the_trajectory(linear_model):
    p = linear_model.parameter_vector({"a0": 0.0})  # nothing before the first dose
    sched = Schedule([Dose(0.0, "a", 1e6), Event(25.0, [Action("multiply", "b", 0.5)])])
    shift = 13.75
    base = simulate(linear_model, sched, TIMES, parameters=p, options=OPTS)
    later = simulate(linear_model, sched.shifted(shift), TIMES + shift, parameters=p, options=OPTS)
    np.testing.assert_allclose(later.states, base.states, rtol=1e-9)


def test_a_false_condition_changes_nothing(linear_model):
    gated = Event(30.0, [Action("multiply", "a", 1e-3), Action("add", "c", 1e7)], when="c > 1e12")
    marker = Event(30.0, [Action("add", "c", 0.0)])
    with_false = simulate(linear_model, [gated], TIMES, options=OPTS)
    without = simulate(linear_model, [marker], TIMES, options=OPTS)  # same segment boundary
    np.testing.assert_array_equal(with_false.states, without.states)
    assert list(with_false.events_applied) == [False]


def test_a_true_condition_equals_an_unconditional_event(linear_model):
    acts = [Action("multiply", "a", 1e-3), Action("add", "c", 1e7)]
    gated = simulate(linear_model, [Event(30.0, acts, when="a > 1 and total > 0")], TIMES, options=OPTS)
    plain = simulate(linear_model, [Event(30.0, acts)], TIMES, options=OPTS)
    np.testing.assert_array_equal(gated.states, plain.states)
    assert list(gated.events_applied) == [True]


def test_conditions_see_the_state_before_events_of_the_same_time(linear_model):
    first = Event(30.0, [Action("set", "a", 0.0)])
    second = Event(30.0, [Action("add", "c", 1e7)], when="a > 1")  # a > 1 before the first event
    traj = simulate(linear_model, [first, second], TIMES, options=OPTS)
    assert list(traj.events_applied) == [True, True]
    assert traj["a"][30] == 0.0


def test_values_at_an_event_time_are_after_the_event(linear_model):
    traj = simulate(linear_model, [Dose(20.0, "c", 1e8)], TIMES, options=OPTS)
    assert traj["c"][20] - traj["c"][19] > 0.9e8


def test_multiply_set_and_set_parameter(linear_model):
    sched = [Event(10.0, [Action("multiply", "a", 0.5)]),
             Event(20.0, [Action("set", "b", 123.0)]),
             Event(30.0, [Action("set_parameter", "k_bc", 0.0), Action("set_parameter", "decay_c", 0.0)])]
    traj = simulate(linear_model, sched, [0, 9.999999, 10, 20, 30, 60, 90], options=OPTS)
    assert traj["a"][2] == pytest.approx(0.5 * traj["a"][1], rel=1e-5)
    assert traj["b"][3] == 123.0
    assert traj["c"][5] == pytest.approx(traj["c"][4], rel=1e-12)  # no inflow, no loss after t = 30
    assert traj["c"][6] == pytest.approx(traj["c"][4], rel=1e-12)


def test_actions_within_an_event_apply_multiply_set_add_then_parameters():
    e = Event(0.0, [Action("set_parameter", "k", 1.0), Action("add", "x", 1.0), Action("multiply", "x", 2.0)])
    assert [a.kind for a in e.actions] == ["multiply", "add", "set_parameter"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="add", target="b", value=-1.0), "amount must be >= 0"),
    (dict(kind="multiply", target="b", value=-2.0), "factor must be >= 0"),
    (dict(kind="add", target="b", value=float("nan")), "value must be finite"),
    (dict(kind="remove", target="b", value=1.0), "action kind must be one of"),
])
def test_bad_actions_are_refused(kwargs, message):
    with pytest.raises(EventError, match=message):
        Action(**kwargs)


def test_unknown_targets_and_bad_conditions_are_refused(linear_model):
    with pytest.raises(EventError, match="'bb' is not a state of model 'linear' \\(did you mean 'b'\\?\\)"):
        simulate(linear_model, [Dose(1.0, "bb", 1.0)], TIMES)
    with pytest.raises(EventError, match="'k_abb' is not a parameter"):
        simulate(linear_model, [Event(1.0, [Action("set_parameter", "k_abb", 1.0)])], TIMES)
    with pytest.raises(EventError, match="when = 'a >> 2'"):
        simulate(linear_model, [Event(1.0, [Action("add", "a", 1.0)], when="a >> 2")], TIMES)
    with pytest.raises(EventError, match="unknown name 'blasts'"):
        simulate(linear_model, [Event(1.0, [Action("add", "a", 1.0)], when="blasts < 0.05")], TIMES)
