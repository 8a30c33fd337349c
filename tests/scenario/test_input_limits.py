"""Issue 12, item 2: limits on the sizes and ranges of inputs, read through one reader.

Every input that could exhaust memory (time grids, ADDL expansion, huge or special files),
overflow (max_steps), or give nonsense accepted silently (negative states, values outside
bounds, strings read as booleans) must be refused with one message naming the file and the
key; errors found while simulating a scenario name the scenario file and the key too.
"""

import os

import numpy as np
import pytest

from carkinetics import ScenarioError, load_model, simulate
from carkinetics.scenario.data import load_data
from carkinetics.errors import DataError, FileError, SolverError
from carkinetics.fit.targets import load_target_table
from carkinetics.simulation.options import OptionsError, SolverOptions
from carkinetics.scenario.sampling import cohort_design
from carkinetics.scenario.load import check_file, load_scenario
from carkinetics.simulation.schedule import Action, Event, EventError, Schedule
from carkinetics.simulation.simulate import SimulationInputError, simulate_batch
from carkinetics.scenario.reference import load_targets

from conftest import DATA

LINEAR = str(DATA / "models" / "linear.toml")
SCEN = DATA / "scenarios"


@pytest.fixture
def inline_times():
    """Output times of the inline scenarios of this module (overrides the conftest default)."""
    return {"end": 100, "step": 5}


def _message(build, **sections):
    with pytest.raises(ScenarioError) as exc:
        build(**sections)
    return str(exc.value)


# ---------------------------------------------------------------------------------------
# CSV readers: one reader, one message naming the file
# ---------------------------------------------------------------------------------------

def _read_data(path):
    return load_data(path, load_model(LINEAR))


def _read_covariates(path, tmp_path):
    data = tmp_path / "obs.csv"
    data.write_text("id,time,observable,value\nP1,1,total,10\n")
    return load_data(data, load_model(LINEAR), covariates=path)


READERS = {
    "data": lambda p, tmp: _read_data(p),
    "covariates": _read_covariates,
    "targets": lambda p, tmp: load_targets(p),
    "fit targets": lambda p, tmp: load_target_table(p),
}


def _bad_files(tmp_path):
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    huge = tmp_path / "huge.csv"
    with open(huge, "wb") as fh:  # sparse: takes no disk space
        fh.truncate(65 * 1024 * 1024)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,time,value,poids\nP1,1,10,\xe9\n".encode("latin-1"))
    files = {"folder": (folder, "is a folder"), "huge": (huge, "bytes"), "latin-1": (latin, "not UTF-8")}
    if os.path.exists("/dev/zero"):
        files["/dev/zero"] = ("/dev/zero", "not a regular file")
    return files


@pytest.mark.parametrize("reader", sorted(READERS))
def test_csv_readers_refuse_folders_devices_huge_and_non_utf8_files(reader, tmp_path):
    for label, (path, expected) in _bad_files(tmp_path).items():
        with pytest.raises(DataError) as exc:
            READERS[reader](path, tmp_path)
        msg = str(exc.value)
        assert msg.startswith(f"{path}: ") and expected in msg, (label, msg)
        assert "\n" not in msg, (label, msg)  # one message


@pytest.mark.parametrize("reader", sorted(READERS))
def test_duplicated_csv_columns_are_refused_by_name(reader, tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("id,time,observable,value,weight,weight\nP1,1,total,10,70,71\n")
    with pytest.raises(DataError, match=r"dup\.csv: header: duplicate column names \['weight'\]"):
        READERS[reader](path, tmp_path)


# ---------------------------------------------------------------------------------------
# data: ADDL expansion, ids, times, non-finite numbers
# ---------------------------------------------------------------------------------------

def _data_error(tmp_path, text):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(DataError) as exc:
        _read_data(path)
    return str(exc.value)


def test_addl_expansion_is_limited_before_allocating(tmp_path):
    head = "id,time,observable,value,amt,addl,ii,cmt\n"
    msg = _data_error(tmp_path, head + "P1,0,,,1,1000000000,1,a\nP1,1,total,10,,,,\n")
    assert "line 2: ADDL = 1e+09 asks for 1,000,000,000 additional doses; at most 10,000 per row" in msg
    # per patient, over several rows
    rows = "".join(f"P1,{k},,,1,9000,0.001,a\n" for k in range(3))
    msg = _data_error(tmp_path, head + rows + "P1,1,total,10,,,,\n")
    assert "line 3: patient 'P1' has 18,002 doses by this row (ADDL expanded); at most 10,000 per patient" in msg
    msg = _data_error(tmp_path, head + "P1,0,,,1,inf,1,a\nP1,1,total,10,,,,\n")
    assert "line 2: addl 'inf' is not a finite number" in msg
    msg = _data_error(tmp_path, head + "P1,0,,,1,5000,1000,a\nP1,1,total,10,,,,\n")
    assert "beyond 1e+06 days" in msg


def test_long_patient_ids_and_far_times_are_refused(tmp_path):
    msg = _data_error(tmp_path, "id,time,observable,value\n" + "P" * 100_000 + ",1,total,10\nP2,1,total,3\n")
    assert "line 2: patient id of 100,000 characters (at most 256)" in msg
    assert len(msg) < 500
    msg = _data_error(tmp_path, "id,time,observable,value\nP1,1e300,total,10\n")
    assert "line 2: time 1e+300 is beyond 1e+06 days" in msg


def test_non_finite_compartment_and_output_numbers_are_refused(tmp_path):
    msg = _data_error(tmp_path, "id,time,value,amt,cmt\nP1,0,,1,inf\nP1,1,10,,inf\n")
    assert "line 2: inf is not a state of model 'linear': give a name or a number 1..3" in msg
    assert "line 3: inf is not an output of model 'linear': give a name or a number 1..1" in msg


def test_non_finite_covariates_are_refused(tmp_path):
    msg = _data_error(tmp_path, "id,time,observable,value,k_ab\nP1,1,total,10,inf\n")
    assert "covariate 'k_ab' = 'inf' for patient 'P1' is not a finite number" in msg


def test_fit_target_table_refuses_non_finite_and_negative_numbers(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("target_id,quantity,statistic,value,se,weight,timepoint_days\n"
                    "a,peak,median,10,inf,1,\nb,peak,median,10,0.1,-1,\nc,peak,median,10,,,1e9\n")
    with pytest.raises(DataError) as exc:
        load_target_table(path)
    msg = str(exc.value)
    assert "line 2: se 'inf' is not a finite number" in msg
    assert "line 3: weight must be >= 0, got -1" in msg
    assert "line 4: timepoint_days 1e+09 must be in [0, 36500]" in msg


# ---------------------------------------------------------------------------------------
# scenario: time grids, solver limits, types
# ---------------------------------------------------------------------------------------

def test_time_grids_are_sized_before_they_are_allocated(inline_scenario):
    msg = _message(inline_scenario, times={"end": 730, "step": 1e-9})
    assert ("times.step: step = 1e-09 from 0 to 730 gives 730,000,000,001 output times; at most 100,000 "
            "are allowed") in msg
    assert "times.end: 1e+308 is beyond +-1e+06 days" in _message(inline_scenario, times={"end": 1e308, "step": 1e300})
    assert "times.start: -1e+308 is beyond" in _message(inline_scenario, times={"start": -1e308})
    assert "times.values: 1e+300 is beyond" in _message(inline_scenario, times={"values": [0, 1, 1e300]})
    assert "times.step: expected a positive number, got inf" in _message(inline_scenario, times={"step": float("inf")})


def test_solver_options_are_range_and_type_checked(inline_scenario):
    assert "`max_steps` must be a whole number in [1, 1_000_000_000]" in _message(inline_scenario, solver={"max_steps": 10**30})
    assert "`max_step` must be a positive number" in _message(inline_scenario, solver={"max_step": "x"})
    assert "solver.method: expected one of" in _message(inline_scenario, solver={"method": ["x"]})
    assert "`atol` must be a positive number" in _message(inline_scenario, solver={"atol": True})
    assert "`rtol` must be a number" in _message(inline_scenario, solver={"rtol": True})
    assert "atol['a'] must be a positive finite number" in _message(inline_scenario, solver={"atol": {"a": float("inf")}})
    with pytest.raises(OptionsError):
        SolverOptions(max_steps=2**63)
    with pytest.raises(OptionsError):
        SolverOptions(extinction="no")


def test_scenario_fields_have_their_types(inline_scenario):
    assert "scenario.name: expected a non-empty line of at most 200 printable characters, got 5" in _message(inline_scenario, scenario={"name": 5})
    assert "scenario.description: expected a string, got 5" in _message(inline_scenario, scenario={"description": 5})
    assert "plot.log_scale: expected true or false, got 'no'" in _message(inline_scenario, plot={"log_scale": "no"})
    assert "plot.title: expected a string" in _message(inline_scenario, plot={"title": 3})


def test_unknown_reference_targets_are_refused_with_a_suggestion(inline_scenario):
    msg = _message(inline_scenario, scenario={"targets": ["stein_typical_d77"]})
    assert ("scenario.targets: 'stein_typical_d77' is not a target id of the reference table "
            "(did you mean 'stein_typical_d7'?)") in msg
    assert inline_scenario(scenario={"targets": ["stein_typical_d7"]}).targets == ("stein_typical_d7",)


def test_check_file_reads_through_the_input_reader(tmp_path):
    folder = tmp_path / "scenario.toml"
    folder.mkdir()
    with pytest.raises(FileError, match="is a folder"):
        check_file(folder)
    if os.path.exists("/dev/zero"):
        with pytest.raises(FileError, match="not a regular file"):
            check_file("/dev/zero")


# ---------------------------------------------------------------------------------------
# events: states stay >= 0, parameters within bounds, times within range
# ---------------------------------------------------------------------------------------

def test_event_values_that_make_nonsense_are_refused_at_load(inline_scenario):
    ev = {"name": "e", "time": 10}
    msg = _message(inline_scenario, events=[{**ev, "set": {"a": -1e6}}])
    assert "events[0].set.a: value must be >= 0, got -1000000.0" in msg
    assert "events[0].multiply.a: factor must be >= 0" in _message(inline_scenario, events=[{**ev, "multiply": {"a": -2}}])
    msg = _message(inline_scenario, events=[{**ev, "set_parameter": {"k_ab": 1e9}}])
    assert "events[0].set_parameter.k_ab: 1e+09 is outside the bounds of parameter 'k_ab' [0, 10]" in msg
    # expressions: checked for the typical patient at load
    assert "events[0].set.b: value must be >= 0, got -0.3" in _message(inline_scenario, events=[{**ev, "set": {"b": "-k_ab"}}])
    msg = _message(inline_scenario, events=[{"time": "k_ab * 1e308 * 10", "add": {"a": 1}}])
    assert "events[0].time: " in msg and "not a finite number" in msg
    assert "events[0].time: 1e+308 is beyond" in _message(inline_scenario, events=[{"time": 1e308, "add": {"a": 1}}])


def test_python_api_refuses_negative_states_and_parameters_outside_bounds(linear_model):
    with pytest.raises(EventError, match="must be >= 0"):
        Action("set", "a", -1.0)
    sched = Schedule([Event(1.0, [Action("set_parameter", "k_ab", 50.0)])])
    with pytest.raises(EventError, match="outside the parameter's bounds"):
        sched.expand(linear_model)
    with pytest.raises(SimulationInputError, match=r"event time for patient 0 is 2e\+06: not a finite number within"):
        simulate(linear_model, [Event(2e6, [Action("add", "a", 1.0)])], [0.0, 1.0])


def test_batch_memory_is_checked_before_allocating(linear_model):
    P = np.tile(linear_model.default_parameters(), (300_000, 1))
    with pytest.raises(SimulationInputError, match=r"300,000 patients x 5,000 output times .* GiB"):
        simulate_batch(linear_model, [], np.arange(5000.0), P)


# ---------------------------------------------------------------------------------------
# population: values written by the user are not clipped; integer fields have ranges
# ---------------------------------------------------------------------------------------

def test_arm_and_population_values_outside_bounds_are_errors_not_clips(inline_scenario):
    msg = _message(inline_scenario, arms={"high": {"share": 1, "parameters": {"k_ab": 100}}})
    assert "arms.high.parameters.k_ab: arm 'high': k_ab = 100 is outside the model's bounds [0, 10]" in msg
    msg = _message(inline_scenario, population={"parameters": {"k_ab": "k_ab * 100"}})
    assert "population.parameters.k_ab: k_ab = 30 is outside the model's bounds" in msg
    # an expression outside the bounds for some patients only: an error when they are drawn
    sc = inline_scenario(population={"covariates": {"w": {"distribution": "uniform", "lower": 1, "upper": 40}},
                               "parameters": {"k_ab": "k_ab * w"}})
    design = cohort_design(sc, 1)
    with pytest.raises(ScenarioError, match=r"inline\.toml: population\.parameters\.k_ab: k_ab = .* for patient"):
        design.draw(0, 2000)
    with pytest.raises(ScenarioError, match="parameters.k_ab: k_ab = 50 is outside the model's bounds"):
        cohort_design(inline_scenario(), 1, parameters={"k_ab": 50.0})


def test_population_integers_and_sds_are_range_checked(inline_scenario):
    assert "population.size: 100,000,000,000,000,000,000 patients; at most 100,000,000" in _message(inline_scenario, 
        population={"size": 10**20})
    assert "population.seed: expected a whole number in [0, 2**63 - 1]" in _message(inline_scenario, population={"seed": 2**64})
    assert "population.variability.k_ab: a log-normal SD of 1e+300 is a" in _message(inline_scenario, 
        population={"variability": {"k_ab": 1e300}})
    assert "variables.x.unit: expected a string" in _message(inline_scenario, variables={"x": {"value": 1, "unit": 5}})


# ---------------------------------------------------------------------------------------
# errors while simulating name the scenario file and key
# ---------------------------------------------------------------------------------------

def test_per_patient_event_values_name_the_file_and_event(inline_scenario, tmp_path):
    sc = inline_scenario(tmp_path / "s.toml", events=[{"name": "dose", "time": 1, "add": {"b": "a0"}}])
    sched = sc.schedule()
    with pytest.raises(ScenarioError) as exc:
        simulate_batch(sc.model, sched, sc.times, np.tile(sc.parameter_vector(), (2, 1)),
                       action_values=np.array([[1.0], [-5.0]]))
    assert str(exc.value) == (f"{tmp_path / 's.toml'}: events[0].add.b: value for patient 1 is negative (-5); "
                              f"doses, factors and values set must be >= 0 (states are amounts)")
    assert isinstance(exc.value, SimulationInputError)  # still what the API documents


def test_solver_failures_name_the_scenario_file(inline_scenario, tmp_path):
    sc = inline_scenario(tmp_path / "s.toml", solver={"max_steps": 2}, events=[{"time": 1, "add": {"a": 1e3}}])
    with pytest.raises(SolverError, match=r"s\.toml: solver: integration of model 'linear' failed"):
        simulate(sc.model, sc.schedule(), sc.times, parameters=sc.parameter_vector(), options=sc.solver)


def test_endpoint_errors_name_the_file_and_endpoint(inline_scenario, tmp_path):
    sc = inline_scenario(tmp_path / "s.toml", endpoints={"late_peak": {"type": "cmax", "output": "total", "start": 50}})
    es = sc.endpoints
    times = sc.times
    with pytest.raises(ScenarioError, match=r"s\.toml: endpoints\.late_peak: could not be computed: the window"):
        es.compute(times, {"total": np.ones((2, times.size))}, np.zeros((2, 0)), 20.0)


def test_shipped_scenarios_still_load(root):
    for path in sorted((root / "scenarios").glob("*.toml")):
        load_scenario(path)


def test_hazards_and_probabilities_must_be_rates_and_probabilities(inline_scenario, tmp_path):
    assert "endpoints.h.hazard: a hazard is a rate >= 0, got -0.1" in _message(inline_scenario, 
        endpoints={"h": {"type": "hazard", "hazard": -0.1}})
    assert "endpoints.p.probability: a probability is in [0, 1], got 2" in _message(inline_scenario, 
        endpoints={"p": {"type": "bernoulli", "probability": 2}})
    assert "endpoints.p.type: expected a string" in _message(inline_scenario, endpoints={"p": {"type": ["cmax"]}})
    assert "outcomes.o.combine: expected one of" in _message(inline_scenario, 
        endpoints={"h": {"type": "hazard", "hazard": 0.1}}, outcomes={"o": {"events": ["h"], "combine": ["first"]}})
    sc = inline_scenario(tmp_path / "s.toml", endpoints={"h": {"type": "hazard", "hazard": "0.01 - total * 1e-6"},
                                                   "p": {"type": "bernoulli", "probability": "total / 100",
                                                         "day": 10}})
    es = sc.endpoints
    times = sc.times
    total = np.full((2, times.size), 50.0)
    u = np.full((2, 2), 0.5)
    # hazard >= 0 and probability <= 1 for these values; a failed patient (NaN) gives NaN, not an error
    total[1] = np.nan
    res = es.compute(times, {"total": total}, u, sc.horizon)
    assert np.isnan(res["h"][1]) and np.isnan(res["p"][1])
    total[0] = 1e5  # hazard 0.01 - 0.1 < 0; probability 1000
    with pytest.raises(ScenarioError, match=r"s\.toml: endpoints\.h: could not be computed: the hazard is -0\.09"):
        es.compute(times, {"total": total}, u, sc.horizon)
    total[0] = 500.0  # hazard 0.0095, probability 5
    with pytest.raises(ScenarioError, match=r"endpoints\.p: could not be computed: the probability is 5 for"):
        es.compute(times, {"total": total}, u, sc.horizon)
