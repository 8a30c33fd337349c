"""``carkinetics validate --reference TABLE.csv`` and ``--set``: another table's rows scored, bad input refused."""

import csv
import json
import math

import pandas as pd
import pytest
from click.testing import CliRunner

from carkinetics.cli.main import main
from carkinetics.scenario.reference import default_targets_path

from conftest import DATA

COHORT = DATA / "scenarios" / "cohort_linear.toml"


def _shipped_rows(*ids):
    with open(default_targets_path(), newline="", encoding="utf-8") as fh:
        rows = {r["target_id"]: r for r in csv.DictReader(fh)}
    return [dict(rows[i]) for i in ids]


@pytest.fixture
def study(tmp_path):
    """A reference table of two rows copied from the shipped one (new ids and values), and a scenario
    (cohort_linear with a constant death hazard of 0.01/day) whose targets are those rows."""
    death, km = _shipped_rows("s2_cr", "s2_hsct")
    death.update(target_id="my_death", value="0.7", lower="0.6", upper="0.8", k="14", n="20")
    km.update(target_id="my_surv_d60", statistic="km_estimate", value="0.55", lower="0.45", upper="0.65",
              ci_method="reported", timepoint_days="60", k="", n="")
    table = tmp_path / "my_targets.csv"
    with open(table, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(death))
        writer.writeheader()
        writer.writerows([death, km])
    text = COHORT.read_text().replace('"../models/linear.toml"', f'"{DATA / "models" / "linear.toml"}"')
    text = text.replace('"cohort_observations.csv"', f'"{DATA / "scenarios" / "cohort_observations.csv"}"')
    text = text.replace('model = ', 'targets = ["my_death"]\nmodel = ', 1)
    text += '\n[targets.my_death]\nendpoint = "death_event"\n\n[targets.my_surv_d60]\nendpoint = "death"\n'
    scenario = tmp_path / "study.toml"
    scenario.write_text(text)
    return scenario, table


def test_reference_table_is_scored(study, tmp_path):
    scenario, table = study
    out = tmp_path / "val"
    result = CliRunner().invoke(main, ["validate", str(scenario), "--reference", str(table), "--n", "400",
                                       "-j", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out / "validation.csv").set_index("target_id")
    assert list(rows.index) == ["my_death", "my_surv_d60"]
    assert rows.loc["my_death", ["reported", "reported_lower", "reported_upper"]].tolist() == [0.7, 0.6, 0.8]
    assert rows.loc["my_surv_d60", ["reported", "reported_lower", "reported_upper"]].tolist() == [0.55, 0.45, 0.65]
    assert rows.loc["my_surv_d60", "statistic"] == "km_estimate" and rows.loc["my_surv_d60", "timepoint_days"] == 60
    # a constant hazard of 0.01/day: death by day 120 with probability 1 - e^-1.2, survival at day 60 e^-0.6
    assert rows.loc["my_death", "simulated"] == pytest.approx(1 - math.exp(-1.2), abs=0.08)
    assert rows.loc["my_surv_d60", "simulated"] == pytest.approx(math.exp(-0.6), abs=0.08)
    info = json.loads((out / "validation.json").read_text())
    assert info["reference"]["path"] == str(table) and len(info["reference"]["sha256"]) == 64
    assert info["overrides"] == {}
    # nothing was fitted to these rows; the death row is scored against the reported 14 of 20
    import scipy.stats

    assert set(rows["basis"]) == {"predicted"}
    sim, n_sim = rows.loc["my_death", "simulated"], rows.loc["my_death", "n_simulated"]
    p = (sim * n_sim + 0.5) / (n_sim + 1)
    assert rows.loc["my_death", "loglik_model"] == pytest.approx(scipy.stats.binom.logpmf(14, 20, p))
    assert rows.loc["my_death", "loglik_constant"] == pytest.approx(scipy.stats.binom.logpmf(14, 20, 0.5))
    # both rows come from one trial: no other trial, no pooled baseline, no score sums
    assert rows["baseline_pooled"].isna().all() and info["scores"]["all_rows"] == []
    assert "No scores (all outcome rows)" in result.output


def test_without_the_reference_the_ids_are_unknown(study, tmp_path):
    scenario, _ = study
    result = CliRunner().invoke(main, ["validate", str(scenario), "--n", "20", "-o", str(tmp_path / "val")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and str(scenario) in result.output
    assert "'my_death' is not a target id of the reference table" in result.output
    assert not (tmp_path / "val").exists()


def test_target_missing_from_the_given_table_names_scenario_target_and_table(study, tmp_path):
    scenario, table = study
    scenario.write_text(scenario.read_text() + '\n[targets.s2_cr]\nendpoint = "death_event"\n')
    result = CliRunner().invoke(main, ["validate", str(scenario), "--reference", str(table), "--n", "20"])
    assert result.exit_code == 1
    assert str(scenario) in result.output and "targets.s2_cr: 's2_cr' is not a target_id of the reference " \
                                                f"table {table}" in result.output


def test_malformed_reference_table_exits_2(study, tmp_path):
    scenario, table = study
    table.write_text(table.read_text().replace(",0.7,0.6,0.8,", ",abc,0.6,0.8,"))
    out = tmp_path / "val"
    result = CliRunner().invoke(main, ["validate", str(scenario), "--reference", str(table), "-o", str(out)])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and str(table) in errors[0]
    assert "row 2 (target_id 'my_death'): value: 'abc' is not a number" in result.output
    assert not out.exists()


def test_set_applies_to_every_scenario_and_is_recorded(study, tmp_path):
    scenario, table = study
    out = tmp_path / "val"
    args = ["validate", str(scenario), "--reference", str(table), "--n", "100", "-j", "1"]
    result = CliRunner().invoke(main, [*args, "--set", "weight=70", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "validation.json").read_text())["overrides"] == {"weight": 70.0}
    bad = CliRunner().invoke(main, [*args, "--set", "wieght=70", "-o", str(tmp_path / "never")])
    assert bad.exit_code == 2 and "Error: --set wieght:" in bad.output and "did you mean 'weight'" in bad.output
    assert not (tmp_path / "never").exists()
