"""The bar of the clinical outcome model: no scenario sets a hazard or a probability of a clinical
outcome. Clinical outcomes are the vocabulary's endpoints, functions of model outputs with the
parameters of models/outcomes/clinical.toml (estimated across trials)."""

import re
import tomllib
from pathlib import Path

import pytest

from carkinetics.model.load import load_model
from carkinetics.scenario.load import load_scenario
from carkinetics.scenario.vocabulary import VOCABULARY_DIR

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").rglob("*.toml"))
NUMBER = re.compile(r"(?<![A-Za-z_.])\d+\.?\d*(e-?\d+)?")
OUTCOME_PARAMETERS = set(load_model(ROOT / "models" / "cart_tall.toml").outcome_parameters)


def _own_endpoints(data):
    ep = data.get("endpoints", {})
    return {k: v for k, v in ep.items() if isinstance(v, dict)}


def _parameter_tables(data):
    """Every table of a scenario that sets parameters: [parameters], [population.parameters],
    each arm's parameters, each sweep option."""
    yield "parameters", data.get("parameters", {})
    yield "population.parameters", data.get("population", {}).get("parameters", {})
    for arm, spec in data.get("arms", {}).items():
        if isinstance(spec, dict):
            yield f"arms.{arm}.parameters", spec.get("parameters", {})
    for axis, options in data.get("sweep", {}).get("axes", {}).items():
        if isinstance(options, dict):
            for option, values in options.items():
                if isinstance(values, dict):
                    yield f"sweep.axes.{axis}.{option}", values


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_no_hazard_or_probability_constant_of_a_clinical_outcome(path):
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    problems = []
    for name, spec in _own_endpoints(data).items():
        for key in ("hazard", "probability"):
            if key in spec:
                text = str(spec[key])
                if NUMBER.search(text.replace("where(", "")) or not isinstance(spec[key], str):
                    problems.append(f"endpoints.{name}.{key} = {spec[key]!r}")
    for where, table in _parameter_tables(data):
        problems += [f"{where}.{k}" for k in table if k in OUTCOME_PARAMETERS]
    assert not problems, f"{path.name} sets clinical outcome constants: {problems}"


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_scenario_still_loads(path):
    load_scenario(path)


def test_the_vocabulary_takes_definitions_only():
    """Its arguments are days, thresholds and windows; rates and probabilities are model parameters."""
    vocab = tomllib.loads((VOCABULARY_DIR / "clinical.toml").read_text(encoding="utf-8"))
    units = {k: v["unit"] for k, v in vocab["arguments"].items()}
    assert not [k for k, u in units.items() if u in ("1/day", "probability")]
    assert set(units.values()) <= {"day", "fraction", "cells/uL"}


def test_a_planted_constant_is_found(tmp_path):
    """The check itself fails on a scenario that sets one (so it is not vacuous)."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[endpoints]\nx = { type = "hazard", hazard = "0.002 * where(cd4_per_ul < 200, 1, 0)" }\n'
                   '[parameters]\ninfection_death_rate = 0.001\n')
    with pytest.raises(AssertionError, match="hazard.*infection_death_rate"):
        test_no_hazard_or_probability_constant_of_a_clinical_outcome(bad)
