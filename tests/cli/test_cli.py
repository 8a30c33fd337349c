"""The command line: real scenario runs, exit codes and clean error messages."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from carkinetics.cli.main import main

from conftest import DATA, ROOT, SCENARIOS


def test_run_writes_csv_plot_and_summary(tmp_path):
    out = tmp_path / "typical"
    result = CliRunner().invoke(main, ["run", str(SCENARIOS / "multiphasic_typical.toml"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "trajectory.csv")
    assert list(table.columns) == ["time", "expanding", "persisting", "transgene"]
    assert len(table) == 731
    peak = table.loc[table.transgene.idxmax()]
    # the daily grid misses Tmax = 9.3; day 10 is (1 - FB) Cmax e^{-0.7 alpha} + FB Cmax e^{-0.7 beta}
    expected = (1 - 0.0079) * 24000 * np.exp(-0.7 * 0.16) + 0.0079 * 24000 * np.exp(-0.7 * 0.0032)
    assert peak.time == 10 and peak.transgene == pytest.approx(expected, rel=1e-5)
    assert (out / "outputs.png").stat().st_size > 10_000
    summary = json.loads((out / "run.json").read_text())
    assert summary["status"] == "ok" and summary["provenance"]["carkinetics"]
    assert not list(tmp_path.glob(".*partial"))  # staging folder cleaned up


def test_check_good_files():
    result = CliRunner().invoke(main, ["check", str(ROOT / "models" / "multiphasic.toml"),
                                       str(DATA / "scenarios" / "linear_events.toml")])
    assert result.exit_code == 0
    assert "model 'multiphasic' is valid" in result.output
    assert "scenario 'linear_events' is valid" in result.output


@pytest.mark.parametrize("name", ["bad_expressions.toml", "bad_scenario_values.toml", "bad_toml_syntax.toml"])
def test_check_bad_file_exits_non_zero_without_traceback(name):
    proc = subprocess.run([sys.executable, "-m", "carkinetics", "check", str(DATA / "bad" / name)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: ")
    assert name in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_run_bad_scenario_writes_nothing(tmp_path):
    out = tmp_path / "never"
    result = CliRunner().invoke(main, ["run", str(DATA / "bad" / "bad_scenario_names.toml"), "-o", str(out)])
    assert result.exit_code == 1
    assert "Error:" in result.output and "did you mean 'k_ab'" in result.output
    assert not out.exists()


def test_models_lists_shipped_models():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    assert "multiphasic" in result.output
