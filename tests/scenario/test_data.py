"""Observation datasets: column mapping (long and NONMEM style), censoring, bad-input messages."""

import math

import numpy as np
import pandas as pd
import pytest

from carkinetics import load_model
from carkinetics.scenario.data import load_data
from carkinetics.errors import DataError

from conftest import FIT_DATA as FIT


@pytest.fixture(scope="module")
def dosed():
    return load_model(FIT / "dosed.toml")


def test_long_format_censoring_and_parameter_covariates(decay):
    ds = load_data(FIT / "long_good.csv", decay)
    obs = ds.observations
    assert ds.ids == ["A", "B"]
    assert len(obs) == 5 and ds.n_censored == 1
    # 10 < lloq 20: censored, kept (not dropped), value as reported
    row = obs[(obs.id == "A") & (obs.time == 20)].iloc[0]
    assert row.censored and row.value == 10 and row.lloq == 20 and row.line == 4
    # a covariate named like a parameter sets that parameter for the patient
    assert ds.parameter_overrides(decay, "B") == {"k": 0.15}
    assert ds.parameter_overrides(decay, "A") == {}
    assert len(ds.sha256) == 64


def test_nonmem_columns_doses_evid_mdv_cmt(dosed):
    ds = load_data(FIT / "nonmem_good.csv", dosed)
    obs, doses = ds.observations, ds.doses
    # EVID=2 and MDV=1 rows are skipped; observations by output name or 1-based output number
    assert list(obs.line) == [3, 4, 5, 9, 11]
    assert list(obs.observable) == ["conc", "conc", "depot_level", "conc", "depot_level"]
    # DV 0.5 below LLOQ 1 -> censored; no LLOQ -> not censored
    assert list(obs.censored) == [False, False, True, False, False]
    # doses: CMT by state name and by 1-based state number; two doses at the same time both kept
    assert list(zip(doses.id, doses.time, doses.state, doses.amount)) == [
        ("1", 0.0, "depot", 1000.0), ("2", 0.0, "depot", 500.0), ("2", 0.0, "depot", 500.0)]
    assert ds.covariates.loc["1", "WT"] == 70 and ds.covariates.loc["2", "WT"] == 55
    sched = ds.schedule("2")
    assert len(sched) == 2 and all(e.time == 0 for e in sched)


def test_blq_flag_uses_lloq_or_dv_as_the_limit(decay):
    ds = load_data(FIT / "blq_flag.csv", decay)
    obs = ds.observations
    assert list(obs.censored) == [False, False, True, True]
    assert obs.lloq.iloc[2] == 20 and math.isnan(obs.value.iloc[2])
    assert obs.lloq.iloc[3] == 20  # Monolix style: the limit is in DV


def test_addl_ii_expand_to_repeated_doses(dosed):
    frame = pd.DataFrame({"ID": [1, 1], "TIME": [0, 1], "AMT": [10, None], "EVID": [1, 0], "CMT": ["depot", "conc"],
                          "DV": [None, 3.0], "ADDL": [2, None], "II": [7, None]})
    ds = load_data("inline", dosed, frame=frame.astype(object).where(frame.notna(), ""))
    assert list(ds.doses.time) == [0.0, 7.0, 14.0]


def test_every_bad_row_reported_at_once_with_line_numbers(decay):
    with pytest.raises(DataError) as err:
        load_data(FIT / "bad_rows.csv", decay)
    msg = str(err.value)
    assert "7 problems" in msg
    expected = {
        3: "missing patient id",
        4: "negative time -1",
        5: "time 'abc' is not a number",
        6: "'levl_obs' is not an output of model 'decay' (did you mean 'level_obs'?)",
        7: "missing value (NaN)",
        8: "value '12x' is not a number",
        9: "lloq '-5' must be a positive number",
    }
    for line, text in expected.items():
        assert f"bad_rows.csv: line {line}: {text}" in msg
    assert "line 2:" not in msg  # the good row is not blamed


def test_missing_columns_are_named_with_the_columns_found(decay):
    with pytest.raises(DataError) as err:
        load_data(FIT / "bad_columns.csv", decay)
    msg = str(err.value)
    assert "missing required column 'id'" in msg and "missing required column 'time'" in msg
    assert "columns found: patient_name, t, reading" in msg


def test_unknown_id_against_a_covariate_file(decay):
    with pytest.raises(DataError, match=r"line 3: unknown patient id 'Z'"):
        load_data(FIT / "unknown_id.csv", decay, covariates=FIT / "covariates.csv")
    ds = load_data(FIT / "long_good.csv", decay, covariates=None)
    assert ds.ids == ["A", "B"]


def test_nonmem_problems_reported_together(dosed):
    with pytest.raises(DataError) as err:
        load_data(FIT / "bad_nonmem.csv", dosed)
    msg = str(err.value)
    assert "line 2: 'nowhere' is not a state of model 'dosed'" in msg
    assert "line 3: EVID 4 is not supported" in msg
    assert "line 4: RATE = 10 is not supported" in msg
    assert "line 5: covariate 'WT' = '71' differs from '70' on line 2" in msg
    assert "line 6: dose row needs AMT >= 0" in msg


def test_missing_file_and_no_observations(decay):
    with pytest.raises(DataError, match="file not found"):
        load_data(FIT / "does_not_exist.csv", decay)
    frame = pd.DataFrame({"id": ["A"], "time": ["0"], "value": [""], "evid": ["2"]})
    with pytest.raises(DataError, match="no observations"):
        load_data("inline", decay, frame=frame)


def test_single_output_needs_no_observable_column_but_several_do(decay, dosed):
    frame = pd.DataFrame({"id": ["A"], "time": ["1"], "value": ["5"]})
    assert list(load_data("x", decay, frame=frame).observations.observable) == ["level_obs"]
    with pytest.raises(DataError, match="add a column 'observable'"):
        load_data("x", dosed, frame=frame)


def test_covariate_setting_a_parameter_out_of_bounds_is_rejected(decay):
    frame = pd.DataFrame({"id": ["A"], "time": ["1"], "value": ["5"], "k": ["50"]})
    with pytest.raises(DataError, match=r"covariate 'k' = 50 .* outside the parameter's bounds \[0.001, 5\]"):
        load_data("x", decay, frame=frame)
    np.testing.assert_equal(load_data("x", decay, frame=frame.assign(k="0.3")).parameter_overrides(decay, "A"),
                            {"k": 0.3})
