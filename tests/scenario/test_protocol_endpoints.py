"""Endpoints that read the protocol: ``event_time``, ``origin``, ``otherwise``, patient names, outcome causes
and random streams keyed by endpoint name."""

from __future__ import annotations

import numpy as np
import pytest

from carkinetics.cohort.pipeline import run_cohort
from carkinetics.errors import ScenarioError
from carkinetics.scenario.load import scenario_from_dict

from conftest import MODELS

TIMES = np.arange(11.0)  # the inline scenario's output times, 0..10
HORIZON = 10.0


@pytest.fixture
def inline_times():
    return {"start": 0, "end": 10, "step": 1}


def make(inline_scenario, endpoints, outcomes=None, events=None):
    sections = dict(
        events=events if events is not None else [{"name": "tx", "at": 4, "add": {"a": 1.0}}],
        endpoints=endpoints,
        population={"size": 4, "seed": 1, "covariates": {"weight": {"distribution": "uniform", "lower": 40.0,
                                                                    "upper": 80.0}}},
    )
    if outcomes is not None:
        sections["outcomes"] = outcomes
    return inline_scenario(**sections)


# Patients (rows) of the hand-made output `total`: rising lines (crossing times are exact under
# linear interpolation) and one that stays at 0.
SLOPES = np.array([1.0, 2.0, 0.0, 0.5])
TOTAL = SLOPES[:, None] * TIMES[None, :]
# the protocol event `tx`: fired for patients 0, 1, 3 at days 1, 0.5, 2; not for patient 2
PATIENT = {"fired.tx": np.array([1.0, 1.0, 0.0, 1.0]), "time_of.tx": np.array([1.0, 0.5, np.nan, 2.0]),
           "weight": np.array([50.0, 60.0, 70.0, 80.0])}


def compute(sc, total=TOTAL, patient=PATIENT, uniforms=None):
    n = total.shape[0]
    u = np.full((n, sc.endpoints.n_uniforms), 0.5) if uniforms is None else uniforms
    return sc.endpoints.compute(TIMES, {"total": total}, u, HORIZON, patient=patient)


def test_event_time_endpoint(inline_scenario):
    sc = make(inline_scenario, {"tx_time": {"type": "event_time", "event": "tx"}})
    assert sc.endpoints.columns == ("tx_time", "tx_time_event")
    out = compute(sc)
    np.testing.assert_array_equal(out["tx_time"], [1.0, 0.5, HORIZON, 2.0])
    np.testing.assert_array_equal(out["tx_time_event"], [1.0, 1.0, 0.0, 1.0])


def test_origin_shifts_by_the_event_time(inline_scenario):
    sc = make(inline_scenario, {"up": {"type": "first_above", "output": "total", "threshold": 2.5},
                                "up_tx": {"type": "first_above", "output": "total", "threshold": 2.5,
                                          "origin": "tx"}})
    out = compute(sc)
    crossing = np.array([2.5, 1.25, HORIZON, 5.0])  # 2.5 / slope; patient 2 censored at the horizon
    np.testing.assert_allclose(out["up"], crossing, rtol=1e-12)
    np.testing.assert_array_equal(out["up_event"], [1.0, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(out["up_tx"], [2.5 - 1.0, 1.25 - 0.5, np.nan, 5.0 - 2.0], rtol=1e-12)
    np.testing.assert_array_equal(out["up_tx_event"], [1.0, 1.0, np.nan, 1.0])


def test_origin_on_an_outcome(inline_scenario):
    sc = make(inline_scenario, {"up": {"type": "first_above", "output": "total", "threshold": 2.5}},
              outcomes={"o": {"events": ["up"], "origin": "tx"}})
    out = compute(sc)
    np.testing.assert_allclose(out["o"], [2.5 - 1.0, 1.25 - 0.5, np.nan, 5.0 - 2.0], rtol=1e-12)
    assert np.isnan(out["o_event"][2]) and np.isnan(out["o_cause"][2])


def test_value_at_an_endpoint_with_an_origin_reads_the_event_day(inline_scenario):
    """`at` names the day an event happened, whatever the origin its time column is counted from."""
    sc = make(inline_scenario, {"up_tx": {"type": "first_above", "output": "total", "threshold": 2.5,
                                          "origin": "tx"},
                                "t_at": {"type": "value", "expr": "t", "at": "up_tx"}})
    out = compute(sc)
    np.testing.assert_allclose(out["t_at"], [2.5, 1.25, np.nan, 5.0], rtol=1e-12)


def test_otherwise_where_the_at_event_did_not_happen(inline_scenario):
    sc = make(inline_scenario, {
        "up": {"type": "first_above", "output": "total", "threshold": 2.5},
        "v": {"type": "value", "expr": "total * 10", "at": "up", "otherwise": -1},
        "v_nan": {"type": "value", "expr": "total * 10", "at": "up"},
        "c": {"type": "condition", "expr": "t > 2", "at": "up", "otherwise": 1},
    })
    out = compute(sc)
    np.testing.assert_allclose(out["v"], [25.0, 25.0, -1.0, 25.0], rtol=1e-12)
    np.testing.assert_allclose(out["v_nan"], [25.0, 25.0, np.nan, 25.0], rtol=1e-12)
    np.testing.assert_array_equal(out["c"], [1.0, 0.0, 1.0, 1.0])


def test_otherwise_errors(inline_scenario):
    with pytest.raises(ScenarioError) as err:
        make(inline_scenario, {"v": {"type": "value", "expr": "total", "day": 3, "otherwise": 0},
                               "up": {"type": "first_above", "output": "total", "threshold": 2.5},
                               "c": {"type": "condition", "expr": "total > 2", "at": "up", "otherwise": 0.5}})
    found = {p.key: p.message for p in err.value.problems}
    assert "needs 'at'" in found["endpoints.v.otherwise"]
    assert "0 or 1" in found["endpoints.c.otherwise"]


def test_patient_names_in_expressions(inline_scenario):
    sc = make(inline_scenario, {"dose": {"type": "value", "expr": "weight * 2 + fired.tx"},
                                "tx_d": {"type": "value", "expr": "total + time_of.tx", "day": 5}})
    out = compute(sc)
    np.testing.assert_array_equal(out["dose"], [101.0, 121.0, 140.0, 161.0])
    np.testing.assert_allclose(out["tx_d"], SLOPES * 5 + PATIENT["time_of.tx"], rtol=1e-12)


def test_origin_and_event_must_name_an_event(inline_scenario):
    with pytest.raises(ScenarioError) as err:
        make(inline_scenario, {"e": {"type": "event_time", "event": "tz"},
                               "up": {"type": "first_above", "output": "total", "threshold": 2.5, "origin": "tx2"},
                               "lv": {"type": "level", "output": "total", "day": 3, "origin": "tx"}})
    found = {p.key: p.message for p in err.value.problems}
    assert "'tz'" in found["endpoints.e.event"] and "tx" in found["endpoints.e.event"]
    assert "'tx2'" in found["endpoints.up.origin"]
    assert "only time-to-event" in found["endpoints.lv.origin"]


# ---------------------------------------------------------------------------------------
# outcome causes
# ---------------------------------------------------------------------------------------


def test_outcome_cause_is_the_first_component_event(inline_scenario):
    sc = make(inline_scenario, {
        "late": {"type": "first_above", "output": "total", "threshold": 5.5},
        "early": {"type": "first_above", "output": "total", "threshold": 2.5},
        "early_too": {"type": "first_above", "output": "total", "threshold": 2.5},
        "big": {"type": "condition", "expr": "total > 3", "day": 2},
    }, outcomes={"o": {"events": ["late", "early"]},
                 "tie": {"events": ["early_too", "late", "early"]},
                 "tie2": {"events": ["late", "early", "early_too"]},
                 "with_binary": {"events": ["late", "big"]}})
    assert sc.endpoints.causes == {"o": ("late", "early"), "tie": ("early_too", "late", "early"),
                                   "tie2": ("late", "early", "early_too"), "with_binary": ("late", "big")}
    assert sc.endpoints.kinds["o_cause"] == "cause"
    assert sc.endpoints.columns[-12:] == ("o", "o_event", "o_cause", "tie", "tie_event", "tie_cause",
                                          "tie2", "tie2_event", "tie2_cause",
                                          "with_binary", "with_binary_event", "with_binary_cause")
    out = compute(sc)
    early = np.array([2.5, 1.25, HORIZON, 5.0])
    np.testing.assert_allclose(out["o"], early, rtol=1e-12)
    np.testing.assert_array_equal(out["o_event"], [1.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(out["o_cause"], [2.0, 2.0, 0.0, 2.0])  # early is the 2nd listed; 0 censored
    np.testing.assert_array_equal(out["tie_cause"], [1.0, 1.0, 0.0, 1.0])  # ties: the first listed
    np.testing.assert_array_equal(out["tie2_cause"], [2.0, 2.0, 0.0, 2.0])
    # big at day 2: total(2) = 2 slope > 3 only for patient 1 (slope 2: 4 > 3); late at 5.5 / slope
    np.testing.assert_allclose(out["with_binary"], [5.5, 2.0, HORIZON, HORIZON], rtol=1e-12)
    np.testing.assert_array_equal(out["with_binary_cause"], [1.0, 2.0, 0.0, 0.0])


def test_outcome_cause_when_a_later_component_is_censored_earlier(inline_scenario):
    """A component censored (end = 3) before another's event: censored there, cause 0; an event before 3 counts."""
    sc = make(inline_scenario, {
        "short": {"type": "first_above", "output": "total", "threshold": 100.0, "end": 3},
        "late": {"type": "first_above", "output": "total", "threshold": 5.5},
    }, outcomes={"o": {"events": ["short", "late"]}})
    out = compute(sc)
    # late crosses 5.5 at 5.5, 2.75, never, 11 (> horizon): only patient 1 has it before day 3
    np.testing.assert_array_equal(out["o_event"], [0.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(out["o_cause"], [0.0, 2.0, 0.0, 0.0])
    np.testing.assert_allclose(out["o"], [3.0, 2.75, 3.0, 3.0], rtol=1e-12)


# ---------------------------------------------------------------------------------------
# random streams keyed by endpoint name
# ---------------------------------------------------------------------------------------


def _cohort(endpoints, n=40):
    data = {"scenario": {"name": "streams", "model": str(MODELS / "multiphasic.toml")},
            "times": {"end": 60, "step": 2}, "population": {"size": n, "seed": 3}, "endpoints": endpoints}
    sc = scenario_from_dict(data, MODELS.parent / "scenarios" / "streams.toml")
    return run_cohort(sc, n=n, jobs=1, bands=False).patients


def test_adding_a_random_endpoint_leaves_the_others_draws():
    death = {"type": "hazard", "hazard": "0.03"}
    crs = {"type": "bernoulli", "probability": "0.5"}
    one = _cohort({"death": death, "crs": crs})
    two = _cohort({"aaa": {"type": "hazard", "hazard": "0.02"}, "crs": crs, "zzz": crs, "death": death})
    assert 0 < one["death_event"].sum() < len(one) and 0 < one["crs"].sum() < len(one)
    for col in ("death", "death_event", "crs"):
        np.testing.assert_array_equal(one[col].to_numpy(), two[col].to_numpy(), err_msg=col)
    # the stream is the name's: the same definition under another name draws other numbers
    assert not np.array_equal(two["zzz"].to_numpy(), two["crs"].to_numpy())
    renamed = _cohort({"death2": death})
    assert not np.array_equal(renamed["death2"].to_numpy(), one["death"].to_numpy())


def test_uniform_streams_follow_the_names_not_the_order(inline_scenario):
    h = {"type": "hazard", "hazard": "0.01"}
    a = make(inline_scenario, {"x": h, "y": h}).endpoints
    b = make(inline_scenario, {"y": h, "w": h, "x": h}).endpoints
    sa = dict(zip(a.uniform_columns, a.uniform_streams))
    sb = dict(zip(b.uniform_columns, b.uniform_streams))
    assert sa["x"] == sb["x"] and sa["y"] == sb["y"] and len(set(sb.values())) == 3
