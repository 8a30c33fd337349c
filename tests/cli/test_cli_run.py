"""``carkinetics run --set NAME=VALUE``: refused cases write nothing, accepted ones change the run and are recorded."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from carkinetics.cli.main import main

from conftest import DATA, SCENARIOS

COHORT = DATA / "scenarios" / "cohort_linear.toml"


def _errors(output):
    return [line for line in output.splitlines() if line.startswith("Error:")]


@pytest.mark.parametrize("setting, part", [
    ("dose_per_kgg=2e4", "'dose_per_kgg' is not a variable, parameter or covariate of scenario 'cohort_linear'"),
    ("k_ab=11", "11 is outside the bounds of parameter 'k_ab'"),
    ("weight=500", "500 is outside the range of covariate 'weight'"),
    ("k_ab=fast", "expected a finite number, got 'fast'"),
    ("k_ab", "expected NAME=VALUE"),
])
def test_bad_set_exits_2_with_one_error_line_and_writes_nothing(tmp_path, setting, part):
    out = tmp_path / "never"
    result = CliRunner().invoke(main, ["run", str(COHORT), "--n", "20", "--set", setting, "-o", str(out)])
    assert result.exit_code == 2, result.output
    errors = _errors(result.output)
    assert len(errors) == 1 and errors[0].startswith("Error: --set ") and part in errors[0], result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_set_parameter_equals_the_file_and_is_recorded(tmp_path):
    text = COHORT.read_text().replace('"../models/linear.toml"', f'"{DATA / "models" / "linear.toml"}"')
    text = text.replace('"cohort_observations.csv"', f'"{DATA / "scenarios" / "cohort_observations.csv"}"')
    in_file = tmp_path / "in_file.toml"
    in_file.write_text(text.replace("decay_c = 0.05\n", "decay_c = 0.05\nk_ba = 0.4\n", 1))
    runs = {"set": [str(COHORT), "--set", "k_ba=0.4"], "file": [str(in_file)], "plain": [str(COHORT)]}
    tables = {}
    for name, args in runs.items():
        result = CliRunner().invoke(main, ["run", *args, "--n", "60", "--seed", "4", "-j", "1",
                                           "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        tables[name] = pd.read_csv(tmp_path / name / "patients.csv")
    info = json.loads((tmp_path / "set" / "run.json").read_text())
    assert info["overrides"] == {"k_ba": 0.4}
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["overrides"] == {}
    pd.testing.assert_frame_equal(tables["set"], tables["file"])
    # k_ba varies log-normally around its typical value: same random numbers, 4x the value (0.1 -> 0.4)
    np.testing.assert_allclose(tables["set"]["param_k_ba"], 4 * tables["plain"]["param_k_ba"], rtol=1e-9)
    assert not np.allclose(tables["set"]["peak"], tables["plain"]["peak"])


def test_set_covariate_fixes_it_for_every_patient(tmp_path):
    result = CliRunner().invoke(main, ["run", str(COHORT), "--n", "30", "--set", "weight=75", "--set",
                                       "dose_per_kg=3e4", "-j", "1", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    patients = pd.read_csv(tmp_path / "out" / "patients.csv")
    assert (patients["weight"] == 75).all()
    assert json.loads((tmp_path / "out" / "run.json").read_text())["overrides"] == {"weight": 75.0,
                                                                                     "dose_per_kg": 3e4}


def test_set_on_the_typical_patient(tmp_path):
    result = CliRunner().invoke(main, ["run", str(SCENARIOS / "multiphasic_typical.toml"), "--set", "cmax=12000",
                                       "-o", str(tmp_path / "typical")])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "typical" / "trajectory.csv")
    peak = table.loc[table.transgene.idxmax()]
    # day 10, 0.7 days after Tmax = 9.3: (1 - FB) Cmax e^{-0.7 alpha} + FB Cmax e^{-0.7 beta}, Cmax = 12000
    expected = (1 - 0.0079) * 12000 * np.exp(-0.7 * 0.16) + 0.0079 * 12000 * np.exp(-0.7 * 0.0032)
    assert peak.time == 10 and peak.transgene == pytest.approx(expected, rel=1e-5)
    assert json.loads((tmp_path / "typical" / "run.json").read_text())["overrides"] == {"cmax": 12000.0}
