"""Scenario ``[[events]]``: ``if`` per patient, ``when`` on the state, ``arms``, and what endpoints read of
them (``fired.NAME``, ``time_of.NAME``, ``arm.NAME``), through a simulated cohort."""

from __future__ import annotations

import numpy as np
import pytest

from carkinetics.cohort.pipeline import run_cohort
from carkinetics.errors import ScenarioError
from carkinetics.scenario.events import NEVER, event_times
from carkinetics.scenario.load import scenario_from_dict

from conftest import MODELS

BOOST = """
[interventions.boost]
description = "A test boost of the expanding pool"
arguments.amount = { default = 1000.0, bounds = [0.0, 1e9] }
add = { expanding = "amount" }
"""
N = 60


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("events") / "multiphasic_iv.toml"
    path.write_text((MODELS / "multiphasic.toml").read_text() + BOOST)
    return path


def scenario(model_path, events, endpoints=None, **extra):
    data = {
        "scenario": {"name": "events", "model": str(model_path)},
        "times": {"end": 30, "step": 1},
        "population": {"size": N, "seed": 5, "covariates": {
            "hsct": {"distribution": "bernoulli", "p": 0.5},
            "day": {"distribution": "uniform", "lower": 2.0, "upper": 8.0}}},
        "arms": {"a": {"share": 1.0}, "b": {"share": 1.0}},
        "events": events,
        **extra,
    }
    if endpoints is not None:
        data["endpoints"] = endpoints
    return scenario_from_dict(data, model_path.parent / "events.toml")


EVENTS = [
    {"name": "boost", "at": "day", "do": "boost", "if": "hsct == 1"},
    {"name": "never", "at": 3, "add": {"expanding": 1.0}, "when": "expanding < 0"},
    {"name": "late", "at": 10, "arms": ["b"], "add": {"persisting": 1.0}},
]
ENDPOINTS = {
    "got": {"type": "condition", "expr": "fired.boost == 1"},
    "tb": {"type": "event_time", "event": "boost"},
    "tob": {"type": "value", "expr": "time_of.boost"},
    "nev": {"type": "condition", "expr": "fired.never == 1"},
    "in_b": {"type": "condition", "expr": "arm.b == 1"},
    "got_late": {"type": "condition", "expr": "fired.late == 1"},
    "tl": {"type": "value", "expr": "time_of.late"},
    "level": {"type": "level", "output": "transgene", "day": 29},
}


@pytest.fixture(scope="module")
def cohort(model_path):
    return run_cohort(scenario(model_path, EVENTS, ENDPOINTS), n=N, jobs=1, bands=False).patients


def test_cohort_has_both_values_of_the_condition_and_both_arms(cohort):
    assert (cohort["status"] == 0).all()
    assert 0 < cohort["hsct"].sum() < N
    assert set(cohort["arm"]) == {"a", "b"}


def test_if_false_never_fires(cohort):
    np.testing.assert_array_equal(cohort["got"].to_numpy(), (cohort["hsct"] == 1).astype(float).to_numpy())


def test_time_of_is_the_patients_event_time(cohort):
    fired = cohort["hsct"] == 1
    np.testing.assert_allclose(cohort.loc[fired, "tob"], cohort.loc[fired, "day"], rtol=0, atol=1e-12)
    assert cohort.loc[~fired, "tob"].isna().all()


def test_event_time_endpoint(cohort):
    fired = cohort["hsct"] == 1
    np.testing.assert_allclose(cohort.loc[fired, "tb"], cohort.loc[fired, "day"], rtol=0, atol=1e-12)
    assert (cohort.loc[~fired, "tb"] == 30.0).all()  # censored at the horizon
    np.testing.assert_array_equal(cohort["tb_event"].to_numpy(), fired.astype(float).to_numpy())


def test_when_false_never_fires(cohort):
    assert (cohort["nev"] == 0).all()


def test_arm_names_and_arm_only_events(cohort):
    in_b = (cohort["arm"] == "b").astype(float).to_numpy()
    np.testing.assert_array_equal(cohort["in_b"].to_numpy(), in_b)
    np.testing.assert_array_equal(cohort["got_late"].to_numpy(), in_b)
    assert (cohort.loc[in_b == 1, "tl"] == 10.0).all()
    assert cohort.loc[in_b == 0, "tl"].isna().all()


def test_if_false_leaves_the_trajectory_alone(model_path, cohort):
    """Without the boost event, the patients whose `if` is false have the same trajectories; the others not."""
    without = run_cohort(scenario(model_path, EVENTS[1:], {"level": ENDPOINTS["level"]}), n=N, jobs=1,
                         bands=False).patients
    fired = (cohort["hsct"] == 1).to_numpy()
    np.testing.assert_array_equal(without["hsct"], cohort["hsct"])
    np.testing.assert_array_equal(without.loc[~fired, "level"].to_numpy(), cohort.loc[~fired, "level"].to_numpy())
    assert (cohort.loc[fired, "level"].to_numpy() > without.loc[fired, "level"].to_numpy()).all()


def test_event_times_of_an_if():
    """`event_times`: the time where the condition holds, NEVER elsewhere (numbers or 0/1 arrays)."""
    from carkinetics.model import expressions as ex
    from carkinetics.scenario.events import EventSpec

    spec = EventSpec(name="x", time=ex.parse("d + 1"), when=None, actions=[], condition=ex.parse("g == 1"))
    env = {"d": np.array([1.0, 2.0, 3.0]), "g": np.array([1.0, 0.0, 1.0])}
    np.testing.assert_array_equal(event_times(spec, env, 3), [2.0, NEVER, 4.0])
    spec = EventSpec(name="x", time=ex.Expr.num(5.0), when=None, actions=[], condition=ex.parse("g"))
    np.testing.assert_array_equal(event_times(spec, env, 3), [5.0, NEVER, 5.0])


def test_typical_schedule_respects_if(model_path):
    sc = scenario(model_path, EVENTS[:1])
    env = sc.default_env()
    events = {e.name: e for e in sc.schedule({**env, "hsct": 0.0, "day": 4.0})}
    assert events["boost"].time == NEVER
    events = {e.name: e for e in sc.schedule({**env, "hsct": 1.0, "day": 4.0})}
    assert events["boost"].time == 4.0


def test_if_and_names_errors(model_path):
    with pytest.raises(ScenarioError) as err:
        scenario(model_path, [{"name": "boost", "at": 3, "do": "boost", "if": "hsc == 1"}],
                 {"x": {"type": "condition", "expr": "fired.bost == 1"}})
    found = {p.key: p.message for p in err.value.problems}
    assert "hsc" in found["events[0].if"] and "hsct" in found["events[0].if"]
    assert "fired.bost" in found["endpoints.x.expr"] and "fired.boost" in found["endpoints.x.expr"]


def test_unknown_arm_of_an_event(model_path):
    with pytest.raises(ScenarioError) as err:
        scenario(model_path, [{"name": "late", "at": 3, "arms": ["c"], "add": {"persisting": 1.0}}])
    assert "'c' is not an arm" in {p.key: p.message for p in err.value.problems}["events[0].arms"]


def test_events_sharing_a_name_report_the_first_that_fired(model_path):
    events = [{"name": "dose", "at": 5, "add": {"persisting": 1.0}},
              {"name": "dose", "at": "day", "add": {"persisting": 1.0}, "if": "hsct == 1"}]
    endpoints = {"t_dose": {"type": "value", "expr": "time_of.dose"},
                 "n_dose": {"type": "condition", "expr": "fired.dose == 1"}}
    p = run_cohort(scenario(model_path, events, endpoints), n=N, jobs=1, bands=False).patients
    expected = np.where(p["hsct"] == 1, np.minimum(p["day"], 5.0), 5.0)
    np.testing.assert_allclose(p["t_dose"], expected, rtol=0, atol=1e-12)
    assert (p["n_dose"] == 1).all()
    assert ((p["hsct"] == 1) & (p["day"] < 5)).any() and ((p["hsct"] == 1) & (p["day"] > 5)).any()
