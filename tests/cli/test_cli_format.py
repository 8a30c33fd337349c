"""``--format csv|parquet`` of ``carkinetics run`` and ``carkinetics sweep``, and the command line in run.json."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from carkinetics.cli.main import main
from carkinetics.io import tables
from carkinetics.io.results import exact_float_csv_kw, read_result_csv
from carkinetics.io.tables import read_table

from conftest import DATA, TOY_SWEEP

COHORT = DATA / "scenarios" / "cohort_linear.toml"
TYPICAL = DATA / "scenarios" / "linear_events.toml"


def _errors(output):
    return [line for line in output.splitlines() if line.startswith("Error:")]


def _run(args, monkeypatch):
    """Invoke the command line with ``sys.argv`` set as the shell would set it."""
    argv = ["carkinetics", *map(str, args)]
    monkeypatch.setattr(sys, "argv", argv)
    return CliRunner().invoke(main, argv[1:]), argv


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_parquet_without_pyarrow_exits_2_and_writes_nothing(tmp_path, monkeypatch, command):
    monkeypatch.setattr(tables, "parquet_available", lambda: False)
    out = tmp_path / "never"
    scenario = COHORT if command == "run" else TOY_SWEEP
    result = CliRunner().invoke(main, [command, str(scenario), "--n", "5", "--format", "parquet", "-o", str(out)])
    assert result.exit_code == 2, result.output
    errors = _errors(result.output)
    assert len(errors) == 1 and errors[0].startswith("Error: --format parquet: "), result.output
    assert "pyarrow" in errors[0] and "pip install 'carkinetics[parquet]'" in errors[0]
    assert "Traceback" not in result.output and not out.exists()


def test_unknown_format_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["run", str(COHORT), "--n", "5", "--format", "xlsx", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "'xlsx' is not one of 'csv', 'parquet'" in result.output
    assert not (tmp_path / "o").exists()


def test_parquet_needs_a_cohort(tmp_path):
    pytest.importorskip("pyarrow")
    result = CliRunner().invoke(main, ["run", str(TYPICAL), "--format", "parquet", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert _errors(result.output) == ["Error: --seed, --jobs, --chunk-size, --trajectories and --format need a "
                                      "cohort (--n, or [population] in the scenario)"]
    assert not (tmp_path / "o").exists()


def test_default_csv_is_pandas_csv_and_run_json_records_the_command(tmp_path, monkeypatch):
    out = tmp_path / "csv"
    result, argv = _run(["run", COHORT, "--n", "30", "--seed", "7", "-j", "1", "-o", out], monkeypatch)
    assert result.exit_code == 0, result.output
    for name in ("patients.csv", "bands.csv"):  # the bytes pandas writes for the table it reads back
        assert (out / name).read_bytes() == read_result_csv(out / name).to_csv(index=False).encode()
    info = json.loads((out / "run.json").read_text())
    assert info["provenance"]["command"] == argv
    assert "git_commit" in info["provenance"] and info["table_format"] == "csv"
    assert not list(out.glob("*.parquet"))


def test_run_parquet_equals_the_csv_tables(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    common = ["--n", "60", "--seed", "4", "-j", "1"]
    r_csv, _ = _run(["run", COHORT, *common, "-o", tmp_path / "csv"], monkeypatch)
    r_pq, argv = _run(["run", COHORT, *common, "--format", "parquet", "-o", tmp_path / "pq"], monkeypatch)
    assert r_csv.exit_code == 0 and r_pq.exit_code == 0, r_csv.output + r_pq.output
    pq = tmp_path / "pq"
    assert (pq / "patients.parquet").exists() and (pq / "bands.parquet").exists()
    assert not (pq / "patients.csv").exists() and not (pq / "bands.csv").exists()
    for stem in ("patients", "bands"):
        a = read_result_csv(tmp_path / "csv" / f"{stem}.csv")
        b = read_table(pq / f"{stem}.parquet")
        pd.testing.assert_frame_equal(b, a, check_exact=True)
    patients = read_table(pq / "patients.parquet")
    assert patients["patient"].tolist() == list(range(60)) and patients["status"].dtype == np.int64
    info = json.loads((pq / "run.json").read_text())
    assert info["table_format"] == "parquet" and "patients.parquet" in info["files"]
    assert info["provenance"]["command"] == argv
    assert f"wrote {pq / 'patients.parquet'}" in r_pq.output
    # the same folder rerun as CSV: the Parquet files of the earlier run are gone
    again, _ = _run(["run", COHORT, *common, "-o", pq], monkeypatch)
    assert again.exit_code == 0, again.output
    assert (pq / "patients.csv").exists() and not list(pq.glob("*.parquet"))


def test_sweep_parquet_equals_the_csv_tables_and_resumes_only_as_parquet(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    from carkinetics.studies.sweep_result import load_sweep

    common = ["--n", "6", "--seed", "2", "-j", "1", "--points", "0,5", "--per-patient", "--no-plots",
              "--no-progress"]
    r_csv, _ = _run(["sweep", TOY_SWEEP, *common, "-o", tmp_path / "csv"], monkeypatch)
    r_pq, argv = _run(["sweep", TOY_SWEEP, *common, "--format", "parquet", "-o", tmp_path / "pq"], monkeypatch)
    assert r_csv.exit_code == 0 and r_pq.exit_code == 0, r_csv.output + r_pq.output
    pq = tmp_path / "pq"
    for f in ("summary.parquet", "km.parquet", "grid.csv", "points/0005/patients.parquet",
              "points/0000/summary.parquet"):
        assert (pq / f).exists(), f
    assert not (pq / "summary.csv").exists() and not (pq / "points" / "0005" / "patients.csv.gz").exists()
    a, b = load_sweep(tmp_path / "csv"), load_sweep(pq)
    pd.testing.assert_frame_equal(b.summary, a.summary, check_exact=True, check_dtype=False)
    pd.testing.assert_frame_equal(b.km, a.km, check_exact=True, check_dtype=False)
    pd.testing.assert_frame_equal(read_table(pq / "summary.parquet"), b.summary, check_exact=True)
    patients_csv = pd.read_csv(tmp_path / "csv" / "points" / "0005" / "patients.csv.gz", **exact_float_csv_kw())
    pd.testing.assert_frame_equal(read_table(pq / "points" / "0005" / "patients.parquet"), patients_csv,
                                  check_exact=True)
    info = json.loads((pq / "sweep.json").read_text())
    assert info["table_format"] == "parquet" and "--format parquet" in info["resume_command"]
    assert info["provenance"]["command"] == argv and "git_commit" in info["provenance"]
    # resuming with CSV tables into the Parquet sweep is refused, naming the format
    more = [a for a in common if a != "0,5" and a != "--points"]
    bad, _ = _run(["sweep", TOY_SWEEP, *more, "--points", "0,1", "--resume", "-o", pq], monkeypatch)
    assert bad.exit_code == 1, bad.output
    assert "the table format (--format) differs: parquet when the sweep started, csv now" in bad.output
