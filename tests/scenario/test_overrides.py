"""``--set NAME=VALUE`` overrides: parsing, checks, and that a value set equals the value written in the file."""

import math

import numpy as np
import pytest

from carkinetics.scenario.load import load_scenario
from carkinetics.scenario.overrides import (OverrideError, apply_overrides, check_not_swept, parse_set_options,
                                            settable_names)
from carkinetics.scenario.sampling import sample_population

from conftest import DATA, TOY_SWEEP

COHORT = DATA / "scenarios" / "cohort_linear.toml"


def _copy(tmp_path, old, new, name="copy.toml"):
    """cohort_linear.toml in tmp_path with ``old`` replaced by ``new`` (model and data paths fixed)."""
    text = COHORT.read_text()
    assert old in text
    text = text.replace(old, new).replace('"../models/linear.toml"', f'"{DATA / "models" / "linear.toml"}"')
    text = text.replace('"cohort_observations.csv"', f'"{DATA / "scenarios" / "cohort_observations.csv"}"')
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_set_options():
    assert parse_set_options(["a=1", " b = 2e6 ", "c=-0.5"]) == {"a": 1.0, "b": 2e6, "c": -0.5}
    assert parse_set_options(()) == {}
    for text, part in (("dose", "expected NAME=VALUE"), ("dose=abc", "expected a finite number, got 'abc'"),
                       ("dose=nan", "finite number"), ("dose=inf", "finite number"), ("dose=", "finite number"),
                       ("1x=2", "is not a name"), ("=2", "is not a name")):
        with pytest.raises(OverrideError, match="^--set ") as err:
            parse_set_options([text])
        assert part in str(err.value)
    with pytest.raises(OverrideError, match="given twice"):
        parse_set_options(["a=1", "a=2"])


def test_names_are_variables_parameters_and_covariates():
    sc = load_scenario(COHORT)
    kinds = settable_names(sc)
    assert kinds["dose_per_kg"] == "variable" and kinds["weight"] == "covariate" and kinds["k_ab"] == "parameter"
    assert set(kinds) == set(sc.model.parameter_names) | {"dose_per_kg", "boost_day", "weight"}


def test_parameter_set_on_the_command_line_equals_the_file(tmp_path):
    sc = load_scenario(COHORT)
    in_file = load_scenario(_copy(tmp_path, "decay_c = 0.05\n", "decay_c = 0.05\nk_ba = 0.4\n"))
    by_set = apply_overrides(sc, {"k_ba": 0.4})
    assert by_set.parameters["k_ba"] == 0.4 and "k_ba" not in sc.parameters  # the original is unchanged
    assert by_set.parameter_vector()[sc.model.parameter_index("k_ba")] == 0.4
    a, b = sample_population(by_set, 300, seed=5), sample_population(in_file, 300, seed=5)
    c = sample_population(sc, 300, seed=5)
    assert a.equals(b)
    # k_ba has a log-normal SD of 0.2 and nothing else changes it: same random numbers, 4x the typical value
    np.testing.assert_allclose(a["param_k_ba"], 4.0 * c["param_k_ba"], rtol=1e-12)


def test_variable_and_covariate_overrides(tmp_path):
    sc = load_scenario(COHORT)
    new = apply_overrides(sc, {"dose_per_kg": 3e4, "weight": 70})
    assert new.variables.values["dose_per_kg"] == 3e4 and sc.variables.values["dose_per_kg"] == 1e4
    assert new.variables.units == sc.variables.units
    cov = new.population.covariates["weight"]
    assert cov.distribution == "constant" and cov.unit == "kg" and cov.typical == 70
    df = sample_population(new, 200, seed=3)
    assert (df["weight"] == 70).all()
    # the infusion is dose_per_kg * weight: the typical patient's event
    assert new.schedule()[0].actions[0].value == pytest.approx(3e4 * 70)
    # the variable alone equals one written in the file
    in_file = load_scenario(_copy(tmp_path, "dose_per_kg = 1.0e4", "dose_per_kg = 3.0e4"))
    by_set = apply_overrides(sc, {"dose_per_kg": 3e4})
    assert by_set.schedule()[0].actions[0].value == pytest.approx(3e4 * sc.population.covariates["weight"].typical)
    assert by_set.schedule()[0].actions[0].value == in_file.schedule()[0].actions[0].value


def test_bad_names_and_values_are_refused_naming_the_option():
    sc = load_scenario(COHORT)
    cases = [({"dose_per_kgg": 1.0}, "--set dose_per_kgg: 'dose_per_kgg' is not a variable, parameter or covariate",
              "did you mean 'dose_per_kg'?"),
             ({"k_ab": 11.0}, "--set k_ab: 11 is outside the bounds of parameter 'k_ab'", "[0, 10]"),
             ({"k_ab": -1.0}, "--set k_ab: -1 is outside the bounds", "(1/day)"),
             ({"weight": 200.0}, "--set weight: 200 is outside the range of covariate 'weight'", "[20, 150]"),
             ({"weight": 10.0}, "--set weight: 10 is outside the range", "(kg)"),
             ({"k_ab": math.nan}, "--set k_ab: expected a finite number", "")]
    for overrides, start, part in cases:
        with pytest.raises(OverrideError) as err:
            apply_overrides(sc, overrides)
        assert str(err.value).startswith(start) and part in str(err.value)
    # a value that makes an event invalid: the scenario is validated again with it
    with pytest.raises(OverrideError) as err:
        apply_overrides(sc, {"dose_per_kg": -1.0})
    msg = str(err.value)
    assert msg.startswith("--set dose_per_kg=-1: scenario") and "events[0].add.a" in msg and ">= 0" in msg


def test_a_categorical_covariate_takes_any_finite_number(inline_scenario):
    sc = inline_scenario(variables={}, population={"covariates": {"level": {"distribution": "categorical",
                                                                            "values": [1, 2]}}})
    new = apply_overrides(sc, {"level": 7.5})
    assert new.population.covariates["level"].typical == 7.5
    with pytest.raises(OverrideError, match="finite"):
        apply_overrides(sc, {"level": math.inf})


def test_names_the_sweep_grid_sets_are_refused():
    sc = load_scenario(TOY_SWEEP)
    check_not_swept(sc, {"weight": 60.0})
    with pytest.raises(OverrideError, match="--set dose_per_kg: 'dose_per_kg' is set by the axis"):
        check_not_swept(sc, {"dose_per_kg": 2e6})
