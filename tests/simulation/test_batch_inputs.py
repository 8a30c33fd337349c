"""``simulate_batch`` takes a DataFrame of parameters by column name; a batch result names a missing
output or state with a suggestion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carkinetics.model.load import load_model
from carkinetics.simulation.schedule import Dose
from carkinetics.simulation.simulate import SimulationInputError, simulate_batch

from conftest import DATA

TIMES = np.linspace(0.0, 10.0, 11)


@pytest.fixture(scope="module")
def model():
    return load_model(DATA / "models" / "linear.toml")


def test_a_dataframe_is_matched_by_column_name_whatever_the_column_order(model):
    frame = pd.DataFrame({"k_bc": [0.05, 0.3], "k_ab": [0.1, 0.2]})  # not the model's order
    matrix = np.tile(model.default_parameters(), (2, 1))
    matrix[:, model.parameter_index("k_ab")] = [0.1, 0.2]
    matrix[:, model.parameter_index("k_bc")] = [0.05, 0.3]
    by_name = simulate_batch(model, [Dose(0.0, "a", 5.0)], TIMES, frame)
    by_position = simulate_batch(model, [Dose(0.0, "a", 5.0)], TIMES, matrix)
    np.testing.assert_array_equal(by_name.states, by_position.states)
    np.testing.assert_array_equal(by_name.parameters, matrix)


def test_a_column_that_is_not_a_parameter_is_refused_with_a_suggestion(model):
    with pytest.raises(SimulationInputError, match="'kab' is not a parameter.*did you mean 'k_ab'"):
        simulate_batch(model, [Dose(0.0, "a", 5.0)], TIMES, pd.DataFrame({"kab": [0.1]}))


def test_output_and_state_lookups_say_what_is_wrong(model):
    res = simulate_batch(model, [Dose(0.0, "a", 5.0)], TIMES, model.default_parameters()[None, :],
                         save_states=["a"], save_outputs=False)
    assert res.state("a").shape == (1, TIMES.size)
    with pytest.raises(KeyError, match="'aa' is not a state of model 'linear' \\(did you mean 'a'\\?\\)"):
        res.state("aa")
    with pytest.raises(KeyError, match="'b' was not saved"):
        res.state("b")
    with pytest.raises(KeyError, match="not an output"):
        res.output("nope")
