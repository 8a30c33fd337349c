"""Named model interventions (``[interventions.NAME]``) and scenario events that use them (``do``)."""

from __future__ import annotations

import math

import pytest

from carkinetics import load_model
from carkinetics.errors import ModelFileError, ScenarioError
from carkinetics.scenario.load import scenario_from_dict

from conftest import MODELS

MULTIPHASIC = (MODELS / "multiphasic.toml").read_text()
FB = 0.0079  # multiphasic.toml parameters.fb
CMAX = 24000.0  # multiphasic.toml parameters.cmax

BOOST = """
[interventions.boost]
description = "A test boost: adds to the expanding pool, multiplies the persisting one"
arguments.amount = { default = 100.0, bounds = [0.0, 1e9], unit = "copies/kg" }
arguments.per_kg = { default = "weight", bounds = [1.0, 300.0], unit = "kg" }
arguments.conditioning = { default = "full", choices = { full = 1.0, reduced_intensity = 0.5, none = 0.0 } }
arguments.needed = { default = 2.0 }
values.total = "amount * per_kg"
values.twice = "2 * total"
add = { expanding = "twice * fb" }
multiply = { persisting = "fb ** conditioning" }

[interventions.again]
same_as = "boost"
description = "The same boost again"

[interventions.plain]
description = "Adds a fixed amount of the peak"
arguments.share = { bounds = [0.0, 1.0] }
add = { persisting = "share * cmax" }
"""


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("interventions") / "multiphasic_iv.toml"
    path.write_text(MULTIPHASIC + BOOST)
    return path


def build(model_path, events, variables=None, **sections):
    data = {"scenario": {"name": "t", "model": str(model_path)}, "times": {"end": 20, "step": 1},
            "events": events, **sections}
    if variables is not None:
        data["variables"] = variables
    return scenario_from_dict(data, model_path.parent / "s.toml")


def schedule_of(model_path, events, variables=None, **sections):
    return list(build(model_path, events, variables, **sections).schedule())


def problems(excinfo):
    return {p.key: p.message for p in excinfo.value.problems}


# ---------------------------------------------------------------------------------------
# expansion == the same event written with low-level actions
# ---------------------------------------------------------------------------------------


def test_defaults_give_the_low_level_event(model_path):
    weight = 70.0
    high = schedule_of(model_path, [{"at": 3, "do": "boost"}], {"weight": weight})
    low = schedule_of(model_path, [{"at": 3, "name": "boost", "add": {"expanding": f"2 * 100 * {weight} * fb"},
                                    "multiply": {"persisting": "fb ** 1"}}], {"weight": weight})
    assert high == low
    (event,) = high
    assert event.time == 3.0 and event.name == "boost"
    values = {(a.kind, a.target): a.value for a in event.actions}
    assert values == {("add", "expanding"): pytest.approx(2 * 100 * weight * FB, rel=1e-14),
                      ("multiply", "persisting"): pytest.approx(FB, rel=1e-14)}


@pytest.mark.parametrize("choice, exponent", [("none", 0.0), ("reduced_intensity", 0.5), ("full", 1.0)])
def test_choice_arguments(model_path, choice, exponent):
    (event,) = schedule_of(model_path, [{"at": 1, "do": "boost", "conditioning": choice, "amount": 3.0,
                                         "per_kg": 10.0}])
    values = {(a.kind, a.target): a.value for a in event.actions}
    assert values[("multiply", "persisting")] == pytest.approx(FB ** exponent, rel=1e-14)
    if choice == "none":
        assert values[("multiply", "persisting")] == 1.0
    assert values[("add", "expanding")] == pytest.approx(2 * 3.0 * 10.0 * FB, rel=1e-14)


def test_arguments_may_be_expressions_of_scenario_names(model_path):
    (event,) = schedule_of(model_path, [{"at": "day", "do": "boost", "amount": "dose / 2", "per_kg": 5.0}],
                           {"dose": 400.0, "day": 4.0})
    values = {(a.kind, a.target): a.value for a in event.actions}
    assert event.time == 4.0
    assert values[("add", "expanding")] == pytest.approx(2 * 200.0 * 5.0 * FB, rel=1e-14)


def test_argument_default_is_the_scenario_covariate(model_path):
    population = {"size": 10, "seed": 1,
                  "covariates": {"weight": {"distribution": "uniform", "lower": 40.0, "upper": 60.0}}}
    sc = build(model_path, [{"at": 2, "do": "boost"}], population=population)
    env = sc.default_env()
    assert env["weight"] == pytest.approx(50.0)  # the median of the covariate
    (event,) = sc.schedule({**env, "weight": 42.0})
    values = {(a.kind, a.target): a.value for a in event.actions}
    assert values[("add", "expanding")] == pytest.approx(2 * 100 * 42.0 * FB, rel=1e-14)


def test_same_as_copies_arguments_values_and_actions(model_path):
    one = schedule_of(model_path, [{"at": 2, "do": "boost", "amount": 7.0, "conditioning": "reduced_intensity"}],
                      {"weight": 3.0})
    two = schedule_of(model_path, [{"at": 2, "do": "again", "amount": 7.0, "conditioning": "reduced_intensity",
                                    "name": "boost"}], {"weight": 3.0})
    assert one == two
    model = load_model(model_path)
    assert model.interventions["again"].description == "The same boost again"
    assert model.interventions["again"].actions == model.interventions["boost"].actions


def test_intervention_and_low_level_actions_in_one_event(model_path):
    (event,) = schedule_of(model_path, [{"at": 2, "do": "plain", "share": 0.25, "add": {"expanding": 5.0}}])
    assert sorted((a.kind, a.target, a.value) for a in event.actions) == [
        ("add", "expanding", 5.0), ("add", "persisting", pytest.approx(0.25 * CMAX, rel=1e-14))]


def test_event_name_defaults_to_the_intervention(model_path):
    events = schedule_of(model_path, [{"at": 1, "do": "plain", "share": 0.1},
                                      {"at": 2, "do": "plain", "share": 0.1, "name": "second"}])
    assert [e.name for e in events] == ["plain", "second"]


# ---------------------------------------------------------------------------------------
# scenario errors
# ---------------------------------------------------------------------------------------


def test_unknown_intervention_lists_the_models(model_path):
    with pytest.raises(ScenarioError) as err:
        build(model_path, [{"at": 1, "do": "bost"}], {"weight": 1.0})
    msg = problems(err)["events[0].do"]
    assert "'bost'" in msg and "boost" in msg
    for name in ("boost", "again", "plain"):
        assert name in msg.split("its interventions:")[1]


def test_unknown_argument_suggests(model_path):
    with pytest.raises(ScenarioError) as err:
        build(model_path, [{"at": 1, "do": "boost", "amont": 3.0}], {"weight": 1.0})
    msg = problems(err)["events[0].amont"]
    assert "amount" in msg


def test_bad_choice(model_path):
    with pytest.raises(ScenarioError) as err:
        build(model_path, [{"at": 1, "do": "boost", "conditioning": "half"}], {"weight": 1.0})
    msg = problems(err)["events[0].conditioning"]
    assert "'half'" in msg and "reduced_intensity" in msg


def test_choice_given_as_a_list_is_a_scenario_error(model_path):
    """A TOML array where a choice name is expected: one clear error, not a TypeError (unhashable)."""
    with pytest.raises(ScenarioError) as err:
        build(model_path, [{"at": 1, "do": "boost", "conditioning": ["none"]}], {"weight": 1.0})
    assert "events[0].conditioning" in problems(err)


@pytest.mark.parametrize("value", [2e9, -1.0])
def test_number_outside_bounds(model_path, value):
    with pytest.raises(ScenarioError) as err:
        build(model_path, [{"at": 1, "do": "boost", "amount": value}], {"weight": 1.0})
    msg = problems(err)["events[0].amount"]
    assert "outside [0, 1e+09]" in msg


def test_required_argument_missing(model_path):
    with pytest.raises(ScenarioError) as err:
        build(model_path, [{"at": 1, "do": "plain"}])
    msg = problems(err)["events[0].share"]
    assert "needs argument 'share'" in msg and "no default" in msg


def test_default_naming_a_name_the_scenario_lacks(model_path):
    with pytest.raises(ScenarioError) as err:
        build(model_path, [{"at": 1, "do": "boost"}])  # per_kg defaults to `weight`: not declared
    msg = problems(err)["events[0].per_kg"]
    assert "weight" in msg and "per_kg = ..." in msg
    build(model_path, [{"at": 1, "do": "boost", "per_kg": 2.0}])  # given: fine without weight


# ---------------------------------------------------------------------------------------
# model-file errors
# ---------------------------------------------------------------------------------------


def model_problems(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(MULTIPHASIC + text)
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    return {p.key: p.message for p in err.value.problems}


def test_model_action_target_not_a_state(tmp_path):
    found = model_problems(tmp_path, '[interventions.x]\ndescription = "x"\nadd = { expandin = "1" }\n')
    assert "not a state" in found["interventions.x.add.expandin"]
    assert "expanding" in found["interventions.x.add.expandin"]


def test_model_set_parameter_target_not_a_parameter(tmp_path):
    found = model_problems(tmp_path, '[interventions.x]\ndescription = "x"\nset_parameter = { expanding = "1" }\n')
    assert "not a parameter" in found["interventions.x.set_parameter.expanding"]


def test_model_expression_with_an_unknown_name(tmp_path):
    found = model_problems(tmp_path, '[interventions.x]\ndescription = "x"\nadd = { expanding = "foo * fb" }\n')
    assert "unknown name 'foo'" in found["interventions.x.add.expanding"]


def test_model_argument_named_like_a_parameter(tmp_path):
    found = model_problems(tmp_path, '[interventions.x]\ndescription = "x"\narguments.cmax = { default = 1.0 }\n'
                                     'add = { expanding = "cmax" }\n')
    assert "is a parameter" in found["interventions.x.arguments.cmax"]


def test_model_same_as_a_missing_intervention(tmp_path):
    found = model_problems(tmp_path, '[interventions.y]\nsame_as = "nothere"\ndescription = "y"\n')
    assert "'nothere' is not an intervention" in found["interventions.y.same_as"]


def test_model_value_named_like_an_argument_and_default_out_of_bounds(tmp_path):
    found = model_problems(tmp_path, '[interventions.x]\ndescription = "x"\n'
                                     'arguments.a = { default = 5.0, bounds = [0.0, 1.0] }\n'
                                     'values.a = "2"\nadd = { expanding = "a" }\n')
    assert "outside the bounds" in found["interventions.x.arguments.a.default"]


def test_model_intervention_without_actions(tmp_path):
    found = model_problems(tmp_path, '[interventions.x]\ndescription = "x"\narguments.a = { default = 1.0 }\n')
    assert "at least one action" in found["interventions.x"]


# ---------------------------------------------------------------------------------------
# cart_tall: the infusion adds what the model's product parameters say
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cart_tall():
    return load_model(MODELS / "cart_tall.toml")


def _tall(events, weight=62.5):
    data = {"scenario": {"name": "t", "model": str(MODELS / "cart_tall.toml")}, "times": {"end": 10, "step": 1},
            "variables": {"weight": weight}, "events": events}
    return scenario_from_dict(data, MODELS.parent / "scenarios" / "inline.toml")


def test_cart_tall_infusion_by_hand(cart_tall):
    weight, dose = 62.5, 1e6
    value = {n: cart_tall.parameter(n).value for n in
             ("product_edited_fraction", "product_memory_fraction", "product_noncar_ratio", "product_activation")}
    edited, memory, noncar = (value["product_edited_fraction"], value["product_memory_fraction"],
                              value["product_noncar_ratio"])
    cells = dose * weight
    expected = {
        ("add", "car_effector_neg"): cells * edited * (1 - memory),
        ("add", "car_memory_neg"): cells * edited * memory,
        ("add", "car_effector_pos"): cells * (1 - edited) * (1 - memory),
        ("add", "car_memory_pos"): cells * (1 - edited) * memory,
        ("add", "product_t_neg"): cells * noncar * edited,
        ("set", "car_activation"): value["product_activation"],  # the product arrives activated
    }
    (event,) = _tall([{"at": 0, "do": "car_t_infusion", "dose_per_kg": dose}], weight).schedule()
    got = {(a.kind, a.target): a.value for a in event.actions}
    # source = as_parameters: the set_parameter actions leave the parameters at their values
    sets = {k: v for k, v in got.items() if k[0] == "set_parameter"}
    for (kind, target), v in sets.items():
        assert v == cart_tall.parameter(target).value
    adds = {k: v for k, v in got.items() if k[0] != "set_parameter"}
    assert adds.keys() == expected.keys()
    for k, v in expected.items():
        assert adds[k] == pytest.approx(v, rel=1e-13), k


def test_cart_tall_infusion_source_sets_parameters(cart_tall):
    (event,) = _tall([{"at": 0, "do": "car_t_infusion", "dose_per_kg": 1e6, "source": "new_donor",
                       "edited_fraction": 0.5}]).schedule()
    got = {(a.kind, a.target): a.value for a in event.actions}
    assert got[("set_parameter", "rejection_rate")] == 0.5  # new_donor_rejection default
    assert got[("set_parameter", "product_alloreactivity")] == 0.3  # new_donor_alloreactivity default
    memory = cart_tall.parameter("product_memory_fraction").value
    assert got[("add", "car_effector_neg")] == pytest.approx(1e6 * 62.5 * 0.5 * (1 - memory), rel=1e-13)


def test_cart_tall_transplant_conditioning(cart_tall):
    survival = cart_tall.parameter("conditioning_survival_leukaemia").value
    for choice, share in (("myeloablative", 1.0), ("reduced_intensity", 0.5), ("none", 0.0)):
        (event,) = _tall([{"at": 5, "do": "transplant", "conditioning": choice}]).schedule()
        got = {(a.kind, a.target): a.value for a in event.actions}
        assert got[("multiply", "leukaemia_pos")] == pytest.approx(survival ** share, rel=1e-13)
        assert math.isclose(got[("add", "graft_t_neg")], cart_tall.parameter("graft_t_cells").value
                            * cart_tall.parameter("graft_edited_fraction").value, rel_tol=1e-13)
        # donor share of haematopoiesis after the conditioning: 1 - (1 - seed) * marrow survival ** share
        seed = cart_tall.parameter("donor_haematopoiesis_seed").value
        marrow = cart_tall.parameter("conditioning_survival_marrow").value
        assert got[("set", "donor_haematopoiesis")] == pytest.approx(1 - (1 - seed) * marrow ** share, rel=1e-13)


def test_cart_tall_transplant_donor_type_and_prophylaxis(cart_tall):
    """Graft alloreactivity is the donor-type factor times the prophylaxis factor (the model's
    choices), and the product's donor sets whether the graft rejects the CAR-T."""
    factors = {("matched_sibling", "standard"): 1.0 * 0.4, ("unrelated", "ptcy"): 1.5 * 0.3,
               ("haploidentical", "none"): 2.0 * 1.0}
    for (donor, proph), value in factors.items():
        (event,) = _tall([{"at": 5, "do": "transplant", "donor_type": donor, "prophylaxis": proph,
                           "product_donor": 1}]).schedule()
        got = {(a.kind, a.target): a.value for a in event.actions}
        assert got[("set_parameter", "graft_alloreactivity")] == pytest.approx(value, rel=1e-13)
        assert got[("set_parameter", "product_from_graft_donor")] == 1.0


def test_model_choice_default_given_as_a_table(tmp_path):
    """A TOML table where a choice name is expected: one clear error, not a TypeError (unhashable)."""
    found = model_problems(tmp_path, '[interventions.x]\ndescription = "x"\n'
                                     'arguments.c = { default = { a = 1 }, choices = { a = 1.0, b = 0.5 } }\n'
                                     'add = { expanding = "c" }\n')
    assert "interventions.x.arguments.c.default" in found
