"""The clinical outcome model of the CAR-T models (models/outcomes/clinical.toml): read by the
model loader as parameters only endpoints may use, and its values equal to the estimates of
the calibration that produced them."""

import math
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from carkinetics.errors import ModelFileError
from carkinetics.model.load import load_model

ROOT = Path(__file__).resolve().parents[2]
OUTCOME_FILE = ROOT / "models" / "outcomes" / "clinical.toml"
RECORD = ROOT / "models" / "calibrated" / "cart_tall_outcomes"

MODEL = """
[model]
name = "tiny"
outcome_parameters = "links.toml"
[states.x]
initial = 1.0
unit = "cells"
description = "x"
[parameters.k]
value = 0.1
unit = "1/day"
description = "k"
source = "test"
[odes]
x = "{ode}"
[outputs.x_out]
expression = "x"
unit = "cells"
"""
LINKS = """
[outcome_model]
name = "links"
[parameters.death_rate]
value = 0.01
unit = "1/day"
description = "a link"
source = "test"
bounds = [0.0, 1.0]
"""


def _write(tmp_path, ode="-k * x", links=LINKS):
    (tmp_path / "links.toml").write_text(links)
    path = tmp_path / "tiny.toml"
    path.write_text(MODEL.format(ode=ode))
    return path


def test_outcome_parameters_become_parameters_the_equations_cannot_read(tmp_path):
    model = load_model(_write(tmp_path))
    assert model.parameter_names == ("k", "death_rate") and model.outcome_parameters == ("death_rate",)
    assert model.parameter("death_rate").bounds == (0.0, 1.0)
    with pytest.raises(ModelFileError, match="odes.x.*death_rate"):
        load_model(_write(tmp_path, ode="-(k + death_rate) * x"))


@pytest.mark.parametrize("links, message", [
    ("[outcome_model]\nname = 'l'\n", "parameters: expected"),
    (LINKS + "\n[odes]\nx = '1'\n", "odes: not a section"),
    (LINKS.replace("name = \"links\"", "name = \"links\"\ncode = 1"), "outcome_model.code: not a key"),
    (LINKS.replace("bounds = [0.0, 1.0]", "bounds = [0.5, 1.0]"), "outcome_parameters.death_rate"),
])
def test_bad_outcome_files_are_named(tmp_path, links, message):
    with pytest.raises(ModelFileError, match=message):
        load_model(_write(tmp_path, links=links))


def test_a_missing_outcome_file_is_named(tmp_path):
    path = _write(tmp_path)
    (tmp_path / "links.toml").unlink()
    with pytest.raises(ModelFileError, match="model.outcome_parameters: no file"):
        load_model(path)


def test_both_car_t_models_share_the_outcome_model():
    tall, ball = load_model(ROOT / "models" / "cart_tall.toml"), load_model(ROOT / "models" / "cart_ball.toml")
    assert tall.outcome_parameters == ball.outcome_parameters and len(tall.outcome_parameters) >= 10
    for name in tall.outcome_parameters:
        assert tall.parameter(name) == ball.parameter(name)
        assert tall.parameter(name).source  # every link states its source or that it is an assumption


def test_the_outcome_file_holds_the_calibrated_estimates():
    """Values equal the stage-2 estimates (rounded, within 1 %), so a scenario without a calibrated
    set of its own (the B-ALL model) predicts with the estimated links."""
    estimates = pd.read_csv(RECORD / "estimates.csv")
    values = tomllib.loads(OUTCOME_FILE.read_text())["parameters"]
    assert len(estimates) >= 10
    for row in estimates.itertuples():
        assert math.isclose(values[row.parameter]["value"], row.estimate, rel_tol=0.01), row.parameter


def test_replicates_draw_the_outcome_links_with_the_kinetics(tmp_path):
    """The links' own sample (beside their calibration record) is joined draw k to draw k to the
    kinetic sample the replicates read, so --replicates carries both uncertainties."""
    from carkinetics.scenario.parameter_sets import join_outcome_sample, read_parameter_sample, sample_sha256

    model = load_model(ROOT / "models" / "cart_tall.toml")
    kinetic = tmp_path / "kinetic" / "parameter_sample.csv"
    kinetic.parent.mkdir()
    kinetic.write_text("draw,kill_max\n1,2.0\n2,3.0\n3,4.0\n")
    links = tmp_path / "links"
    links.mkdir()
    (links / "parameter_sample.csv").write_text("draw,infection_death_rate,gvhd_scale\n1,0.001,2.0\n2,0.002,3.0\n")
    model.outcome_calibration = links
    base = read_parameter_sample(kinetic, model)
    joined = join_outcome_sample(base, model)
    assert joined.labels == ("kill_max", "infection_death_rate", "gvhd_scale") and len(joined) == 2
    assert joined.values_for(1, None, model) == {"kill_max": 3.0, "infection_death_rate": 0.002, "gvhd_scale": 3.0}
    assert join_outcome_sample(joined, model) is joined  # joined once
    sha = sample_sha256(joined)
    (links / "parameter_sample.csv").write_text("draw,infection_death_rate,gvhd_scale\n1,0.003,2.0\n2,0.002,3.0\n")
    assert sample_sha256(join_outcome_sample(base, model)) != sha  # a change of the links' sample is seen
    model.outcome_calibration = None
    assert join_outcome_sample(base, model) is base
