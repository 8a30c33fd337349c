"""Endpoint vocabularies: ``[vocabulary] use = "clinical"``, its arguments, own endpoints replacing its
ones, endpoints left out for want of an event, and errors."""

from __future__ import annotations

import numpy as np
import pytest

from carkinetics.cohort.pipeline import run_cohort
from carkinetics.errors import ScenarioError
from carkinetics.scenario.load import scenario_from_dict
from carkinetics.scenario.vocabulary import load_vocabulary, shipped_vocabularies

from conftest import MODELS, SCENARIOS

TALL = str(MODELS / "cart_tall.toml")
INFUSION = {"at": 0, "do": "car_t_infusion", "dose_per_kg": 1e6, "weight": 60.0}
TRANSPLANT = {"at": 30, "do": "transplant", "when": "marrow_blast_fraction < 0.05"}


def scenario(vocabulary, endpoints=None, outcomes=None, events=(INFUSION,), end=200, **extra):
    data = {"scenario": {"name": "v", "model": TALL}, "times": {"end": end, "step": 1}, "vocabulary": vocabulary,
            "events": list(events), **extra}
    if endpoints is not None:
        data["endpoints"] = endpoints
    if outcomes is not None:
        data["outcomes"] = outcomes
    return scenario_from_dict(data, SCENARIOS / "vocabulary_test.toml")


def problems(excinfo):
    return {p.key: p.message for p in excinfo.value.problems}


@pytest.fixture(scope="module")
def clinical():
    return load_vocabulary("clinical")


def test_clinical_is_shipped(clinical):
    assert "clinical" in shipped_vocabularies()
    assert {"cr", "relapse", "os", "efs", "lfs", "transplanted"} <= set(clinical.endpoints) | set(clinical.outcomes)


def test_scenario_gets_the_vocabulary_endpoints(clinical):
    sc = scenario({"use": "clinical"}, events=(INFUSION, TRANSPLANT))
    names = {e.name for e in sc.endpoints.endpoints}
    assert names == set(clinical.endpoints) | set(clinical.outcomes)
    assert sc.vocabulary.left_out == {}
    assert "os_cause" in sc.endpoints.columns
    assert sc.endpoints.causes["os"] == ("crs_death", "infection_death", "other_nrm_death", "leukaemia_death",
                                         "gvhd_death")
    cr = sc.endpoints["cr"]
    assert cr.type == "condition" and cr.times == {"day": 28.0}  # the default response_day
    assert sc.endpoints["relapse"].options["threshold"] == 0.05
    assert sc.endpoints["lfs"].options["origin"] == "transplant"


def test_missing_transplant_event_leaves_endpoints_out():
    sc = scenario({"use": "clinical"})
    names = {e.name for e in sc.endpoints.endpoints}
    for name in ("transplanted", "time_to_transplant", "lfs"):
        assert name not in names
        assert "fired.transplant" in sc.vocabulary.left_out[name]
    assert {"cr", "os", "efs", "nrm"} <= names


def test_only_naming_a_left_out_endpoint_is_an_error():
    with pytest.raises(ScenarioError) as err:
        scenario({"use": "clinical", "only": ["cr", "transplanted"]})
    msg = problems(err)["vocabulary.only"]
    assert "'transplanted'" in msg and "fired.transplant" in msg


def test_only_keeps_just_those():
    sc = scenario({"use": "clinical", "only": ["cr", "car_peak"]})
    assert sc.endpoints.columns == ("cr", "car_peak")


def test_arguments_change_the_definitions():
    sc = scenario({"use": "clinical", "response_day": 30, "cr_threshold": 0.2, "relapse_threshold": 0.1})
    assert sc.endpoints["cr"].times == {"day": 30.0}
    assert sc.endpoints["relapse"].options["threshold"] == 0.1
    assert sc.endpoints["relapse"].times["after"] == 30.0
    assert sc.endpoints["leukaemia_death"].times["start"] == 30.0
    assert sc.vocabulary.arguments["response_day"] == 30.0


def _outputs(sc, blasts):
    """Hand-made outputs of every model output (1.0, blasts for marrow_blast_fraction)."""
    times = sc.times
    n = blasts.shape[0]
    out = {o: np.ones((n, times.size)) for o in sc.model.output_names}
    out["marrow_blast_fraction"] = blasts
    return out


def test_response_day_reads_cr_at_that_day_like_an_own_endpoint():
    own = {"my_cr": {"type": "condition", "expr": "marrow_blast_fraction < 0.2", "day": 30}}
    sc = scenario({"use": "clinical", "response_day": 30, "cr_threshold": 0.2, "only": ["cr"]}, endpoints=own)
    default = scenario({"use": "clinical", "only": ["cr"]})
    t = sc.times
    blasts = np.array([np.where(t < 29, 0.3, 0.01),    # CR from day 29: not at 28, at 30
                       np.where(t < 29, 0.01, 0.3),    # the other way round
                       np.where(t < 29, 0.1, 0.15),    # < 0.2 (the argument) but not < 0.05 (the default)
                       np.full(t.size, 0.5)])          # never
    out = sc.endpoints.compute(t, _outputs(sc, blasts), np.zeros((4, 0)), sc.horizon)
    np.testing.assert_array_equal(out["cr"], [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(out["cr"], out["my_cr"])
    base = default.endpoints.compute(t, _outputs(default, blasts), np.zeros((4, 0)), default.horizon)
    np.testing.assert_array_equal(base["cr"], [0.0, 1.0, 0.0, 0.0])


def test_own_endpoint_replaces_the_vocabularys():
    own = {"cr": {"type": "condition", "expr": "marrow_blast_fraction < 0.5", "day": 10}}
    sc = scenario({"use": "clinical"}, endpoints=own)
    assert sc.endpoints["cr"].times == {"day": 10.0}
    assert "cr" not in sc.vocabulary.included
    assert sc.endpoints.columns.count("cr") == 1
    t = sc.times
    blasts = np.array([np.where(t < 20, 0.3, 0.9)])  # < 0.5 at day 10 (own), not < 0.05 at 28 (vocabulary)
    u = np.full((1, sc.endpoints.n_uniforms), 0.5)
    out = sc.endpoints.compute(t, _outputs(sc, blasts), u, sc.horizon)
    assert out["cr"][0] == 1.0
    # the vocabulary's endpoints that read cr read the scenario's own
    assert "cr" in sc.endpoints["relapse_after_cr"].references()
    assert out["in_remission"][0] == 0.0  # relapsed (blasts >= 0.05 after the response day)


def test_own_outcome_replaces_the_vocabularys():
    sc = scenario({"use": "clinical"}, outcomes={"os": {"events": ["leukaemia_death"]}})
    assert sc.endpoints.causes["os"] == ("leukaemia_death",)


def test_unknown_argument_suggests():
    with pytest.raises(ScenarioError) as err:
        scenario({"use": "clinical", "respons_day": 30})
    msg = problems(err)["vocabulary.respons_day"]
    assert "did you mean 'response_day'" in msg


@pytest.mark.parametrize("value", ["thirty", True, [30]])
def test_argument_must_be_a_number(value):
    with pytest.raises(ScenarioError) as err:
        scenario({"use": "clinical", "response_day": value})
    assert "expected a number" in problems(err)["vocabulary.response_day"]


def test_unknown_vocabulary():
    with pytest.raises(ScenarioError) as err:
        scenario({"use": "nonexistent"})
    assert "nonexistent" in problems(err)["vocabulary.use"]


def test_unknown_only_name_suggests():
    with pytest.raises(ScenarioError) as err:
        scenario({"use": "clinical", "only": ["crr"]})
    assert "did you mean 'cr'" in problems(err)["vocabulary.only"]


def test_clinical_cohort_end_to_end():
    """A small cart_tall cohort: the transplant endpoints follow the event; lfs counts from it."""
    own = {"rem30": {"type": "condition", "expr": "marrow_blast_fraction < 0.05", "day": 30},
           "my_cr": {"type": "condition", "expr": "marrow_blast_fraction < 0.05", "day": 28}}
    sc = scenario({"use": "clinical", "car_persistence_day": 50, "chimerism_day": 50}, endpoints=own,
                  events=(INFUSION, TRANSPLANT), end=60, population={"size": 30, "seed": 2})
    p = run_cohort(sc, n=30, jobs=1, bands=False).patients
    assert (p["status"] == 0).all()
    np.testing.assert_array_equal(p["cr"], p["my_cr"])
    transplanted = p["transplanted"] == 1
    assert 0 < transplanted.sum() < len(p)  # both kinds of patient
    np.testing.assert_array_equal(p["transplanted"], p["rem30"])  # `when` blasts < 5% at day 30
    np.testing.assert_array_equal(p["time_to_transplant_event"], p["transplanted"])
    assert (p.loc[transplanted, "time_to_transplant"] == 30.0).all()
    assert (p.loc[~transplanted, "time_to_transplant"] == 60.0).all()
    assert p.loc[~transplanted, ["lfs", "lfs_event", "lfs_cause"]].isna().all().all()
    # counted from the transplant; an event before it (a CRS death on day 10) leaves no LFS
    before = transplanted & (p["efs"] < 30.0)
    assert p.loc[before, "lfs"].isna().all()
    after = transplanted & ~before
    np.testing.assert_allclose(p.loc[after, "lfs"], p.loc[after, "efs"] - 30.0)
    np.testing.assert_array_equal(p.loc[after, "lfs_event"], p.loc[after, "efs_event"])
