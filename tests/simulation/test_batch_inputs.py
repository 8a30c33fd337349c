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


def test_out_arrays_are_written_whole_and_give_the_results_of_fresh_arrays(model):
    """``out=``: every value of the given arrays is written (a sentinel left in them would show),
    failed patients' values from their failure on included, and the result is that of fresh
    arrays, value for value; the result refers to the given arrays."""
    from carkinetics.simulation.options import SolverOptions

    rng = np.random.default_rng(5)
    params = np.tile(model.default_parameters(), (40, 1))
    params[:, model.parameter_index("k_ab")] = rng.lognormal(0.0, 2.0, 40)  # the fastest need the most steps
    options = SolverOptions(max_steps=30)
    schedule = [Dose(0.0, "a", 5.0)]
    fresh = simulate_batch(model, schedule, TIMES, params, options=options, save_states=["b"])
    assert 0 < (fresh.status != 0).sum() < 40  # some patients fail part way
    states = np.full((40, TIMES.size, 1), 7.0e300)
    outputs = np.full((40, TIMES.size, len(model.output_names)), -7.0e300)
    into = simulate_batch(model, schedule, TIMES, params, options=options, save_states=["b"], out=(states, outputs))
    assert into.states is states and into.outputs is outputs
    assert not np.isin(states, [7.0e300]).any() and not np.isin(outputs, [-7.0e300]).any()
    np.testing.assert_array_equal(into.states, fresh.states)
    np.testing.assert_array_equal(into.outputs, fresh.outputs)
    np.testing.assert_array_equal(into.status, fresh.status)
    assert np.isnan(into.states[fresh.status != 0, -1]).all()


@pytest.mark.parametrize("bad, message", [
    (lambda s, o: (s[:2], o), r"`out` states: expected .* shape \(3, 11, 1\).*got float64 array of shape \(2, 11, 1\)"),
    (lambda s, o: (s, o.astype(np.float32)), r"`out` outputs: expected .*float64.*got float32"),
    (lambda s, o: (s, np.asfortranarray(o)), r"`out` outputs: .*not C-contiguous"),
    (lambda s, o: (s,), r"`out` must be a pair of arrays"),
    (lambda s, o: (s, [0.0]), r"`out` outputs: expected .*got list"),
    (lambda s, o: (s, s), r"share memory"),
])
def test_bad_out_arrays_are_refused_saying_what_was_expected(model, bad, message):
    states, outputs = np.zeros((3, TIMES.size, 1)), np.zeros((3, TIMES.size, len(model.output_names)))
    with pytest.raises(SimulationInputError, match=message):
        simulate_batch(model, [Dose(0.0, "a", 5.0)], TIMES, np.tile(model.default_parameters(), (3, 1)),
                       save_states=["b"], out=bad(states, outputs))


@pytest.mark.parametrize("kwargs, message", [
    ({"n_threads": 0}, "`n_threads` must be >= 1, got 0"),
    ({"n_threads": -2}, "`n_threads` must be >= 1, got -2"),
    ({"block": 0}, "`block` must be a whole number of patients >= 1, got 0"),
    ({"block": 2.5}, "`block` must be a whole number of patients >= 1, got 2.5"),
    ({"block": True}, "`block` must be a whole number of patients >= 1, got True"),
])
def test_bad_thread_counts_and_block_sizes_are_refused(model, kwargs, message):
    p = np.tile(model.default_parameters(), (4, 1))
    with pytest.raises(SimulationInputError) as err:
        simulate_batch(model, [Dose(0.0, "a", 5.0)], TIMES, p, **kwargs)
    assert str(err.value) == message


def test_an_error_in_a_batch_thread_is_raised_in_the_caller_after_the_threads_end(model, monkeypatch):
    # the kernel's run_range fails for the block starting at patient 4 (of 12, blocks of 2 on
    # two threads): simulate_batch raises that error, and no thread is left running
    import threading

    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one core: simulate_batch runs the batch in the calling thread")
    kernel = model.kernel
    real = kernel.run_range
    calls = []

    def failing(start, stop, prob, res):
        calls.append(start)
        if start == 4:
            raise RuntimeError("block 4 failed")
        return real(start, stop, prob, res)

    monkeypatch.setattr(kernel, "run_range", failing)
    p = np.tile(model.default_parameters(), (12, 1))
    with pytest.raises(RuntimeError, match="block 4 failed"):
        simulate_batch(model, [Dose(0.0, "a", 5.0)], TIMES, p, n_threads=2, block=2)
    assert 4 in calls and len(calls) < 6  # the threads stop taking blocks after the failure
    assert not [t for t in threading.enumerate() if t.name == "carkinetics-batch"]
