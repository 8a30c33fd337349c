"""``carkinetics vpc``: replicate trials of the observed design, the shipped example, pcVPC and input errors."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from carkinetics.cli.main import main
from carkinetics.errors import DataError, ScenarioError
from carkinetics.scenario.load import load_scenario
from carkinetics.stats.vpc import VPCError
from carkinetics.studies.vpc import observed_subjects, run_vpc, vpc_simulation

from conftest import ROOT

EXAMPLE = ROOT / "scenarios" / "examples" / "vpc_synthetic.toml"
EXAMPLE_DATA = ROOT / "scenarios" / "examples" / "vpc_synthetic_data.csv"
MODEL = ROOT / "models" / "multiphasic.toml"
TYPICAL = {"fold_expansion": 3900.0, "tmax": 9.3, "cmax": 24000.0, "alpha": 0.16, "fb": 0.0079, "beta": 0.0032}


def _stein_typical(t, cmax_factor=1.0):
    """The multiphasic model's closed form at its typical values (Stein 2019)."""
    p = dict(TYPICAL, cmax=TYPICAL["cmax"] * cmax_factor)
    t = np.asarray(t, float)
    rho = np.log(p["fold_expansion"]) / p["tmax"]
    before = p["cmax"] / p["fold_expansion"] * np.exp(rho * np.minimum(t, p["tmax"]))
    tau = np.maximum(t - p["tmax"], 0.0)
    after = p["cmax"] * ((1 - p["fb"]) * np.exp(-p["alpha"] * tau) + p["fb"] * np.exp(-p["beta"] * tau))
    return np.where(t < p["tmax"], before, after)


def _scenario(tmp_path, data, arms=True, with_data=True):
    """A scenario of the multiphasic model in ``tmp_path`` with ``data`` (a DataFrame) as its [data]."""
    text = f'[scenario]\nname = "t"\nmodel = "{MODEL.as_posix()}"\n\n[times]\nend = 365\nstep = 1\n\n' \
           '[population]\nsize = 10\nseed = 3\n\n'
    if arms:
        text += '[arms.standard]\nshare = 1\n\n[arms.high]\nshare = 1\nparameters = { cmax = "cmax * 3" }\n\n'
    if with_data:
        data.to_csv(tmp_path / "data.csv", index=False)
        text += '[data]\nfile = "data.csv"\n'
    (tmp_path / "s.toml").write_text(text)
    return load_scenario(tmp_path / "s.toml")


def test_the_shipped_example_writes_the_vpc_and_its_table_matches_the_data(tmp_path):
    out = tmp_path / "vpc"
    res = CliRunner().invoke(main, ["vpc", str(EXAMPLE), "-o", str(out), "--replicates", "40", "--jobs", "1",
                                    "--error", "proportional:0.2"])
    assert res.exit_code == 0, res.output
    assert "observed percentiles inside their simulated 95 % intervals" in res.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["vpc.csv", "vpc.json", "vpc.png"]
    table = pd.read_csv(out / "vpc.csv")
    info = json.loads((out / "vpc.json").read_text())
    assert info["replicates"] == 40 and info["error"] == "proportional:0.2"
    data = pd.read_csv(EXAMPLE_DATA)
    assert info["arms"] == {a: data.loc[data["arm"] == a, "id"].nunique() for a in ("standard", "high")}
    # nominal sampling times: one bin per time, 11 bins x (3 percentiles + BLQ fraction) per arm
    assert len(table) == 2 * 11 * 4
    assert set(table["statistic"]) == {"p5", "p50", "p95", "blq_fraction"}
    for arm in ("standard", "high"):
        for day in (14.0, 365.0):
            rows = data[(data["arm"] == arm) & (data["time"] == day)]
            cens = rows["value"] < rows["lloq"]
            got = table[(table["arm"] == arm) & (table["time"] == day)].set_index("statistic")
            assert got.loc["p50", "n_obs"] == len(rows) and got.loc["p50", "n_blq"] == cens.sum()
            assert got.loc["blq_fraction", "observed"] == pytest.approx(cens.mean())
            if not cens.any():  # no censoring: the plain type-7 percentiles of pandas
                assert got.loc["p50", "observed"] == pytest.approx(rows["value"].quantile(0.5))
                assert got.loc["p95", "observed"] == pytest.approx(rows["value"].quantile(0.95))
    ok = table[table["statistic"] != "blq_fraction"]
    assert (ok["sim_lower"] <= ok["sim_median"]).all() and (ok["sim_median"] <= ok["sim_upper"]).all()


def test_replicates_copy_the_observed_design_and_pred_is_the_typical_patient(tmp_path, monkeypatch):
    data = pd.DataFrame({"id": ["a", "a", "b", "c", "c", "c"], "time": [1.0, 20.0, 3.5, 2.0, 9.0, 100.0],
                         "observable": "transgene", "value": 100.0, "arm": ["high", "high", "standard",
                                                                            "standard", "standard", "standard"]})
    sc = _scenario(tmp_path, data)
    obs, arms = observed_subjects(sc)
    assert arms == ["standard", "high"]
    sim, pred = vpc_simulation(sc, obs, arms, 7, seed=5)
    assert sim.shape == (7, 6) and np.isfinite(sim).all()
    factor = np.where(obs["arm"] == "high", 3.0, 1.0)
    assert pred == pytest.approx(_stein_typical(obs["time"], factor), rel=1e-4)
    # each replicate's subject is one virtual patient: its two samples come from the same trajectory, so
    # across replicates the values of one subject are correlated (different subjects are not)
    sim, _ = vpc_simulation(sc, obs, arms, 400, seed=5)
    r_same = np.corrcoef(np.log(sim[:, 3]), np.log(sim[:, 4]))[0, 1]  # subject c, days 2 and 9
    r_other = np.corrcoef(np.log(sim[:, 2]), np.log(sim[:, 3]))[0, 1]  # subjects b and c
    assert r_same > 0.5 and abs(r_other) < 0.2
    # the same replicates whatever the number simulated at once (here one trial per chunk)
    import carkinetics.cohort.chunk as chunk

    monkeypatch.setattr(chunk, "default_chunk_size", lambda n_times, n_saved: 1)
    again, _ = vpc_simulation(sc, obs, arms, 400, seed=5)
    assert np.array_equal(again, sim)


def test_prediction_correction_uses_the_typical_prediction(tmp_path):
    times = np.array([1.0, 2.0, 3.0, 5.0, 30.0, 60.0, 90.0, 120.0])
    data = pd.DataFrame({"id": np.repeat(["a", "b"], 4), "time": times, "observable": "transgene",
                         "value": [50.0, 80.0, 300.0, 900.0, 500.0, 200.0, 100.0, 90.0]})
    sc = _scenario(tmp_path, data, arms=False)
    result = run_vpc(sc, 20, seed=1, pred_corr=True, bins=[0, 10, 200])
    t, y, cens, _ = result.points[("transgene", "all")]
    pred = _stein_typical(times)
    med = np.where(times < 10, np.median(pred[:4]), np.median(pred[4:]))
    assert y == pytest.approx(data["value"] * med / pred, rel=1e-4)
    plain = run_vpc(sc, 20, seed=1, bins=[0, 10, 200])
    assert plain.points[("transgene", "all")][1] == pytest.approx(data["value"])
    assert result.info["pred_corr"] and not plain.info["pred_corr"]


def test_input_errors_name_the_file_and_what_was_expected(tmp_path):
    data = pd.DataFrame({"id": ["a"], "time": [1.0], "observable": "transgene", "value": [1.0]})
    with pytest.raises(ScenarioError, match="needs observed data"):
        run_vpc(_scenario(tmp_path, data, with_data=False), 5)
    with pytest.raises(DataError, match="column 'arm'.*add a column 'arm'"):
        run_vpc(_scenario(tmp_path, data), 5)
    with pytest.raises(DataError, match=r"\['placebo'\] are not arms"):
        run_vpc(_scenario(tmp_path, data.assign(arm="placebo")), 5)
    with pytest.raises(VPCError, match="replicates"):
        run_vpc(_scenario(tmp_path, data, arms=False), 0)
    res = CliRunner().invoke(main, ["vpc", str(EXAMPLE), "-o", str(tmp_path / "o"), "--error", "proportional"])
    assert res.exit_code != 0 and "Error: --error: 'proportional' is not an error model" in res.output
    res = CliRunner().invoke(main, ["vpc", str(EXAMPLE), "-o", str(tmp_path / "o"), "--bins", "x,y"])
    assert res.exit_code == 2 and "--bins" in res.output
    assert not (tmp_path / "o").exists()


def test_without_error_option_the_model_files_residual_error_is_used(tmp_path):
    import dataclasses

    data = pd.read_csv(EXAMPLE_DATA)
    sc = _scenario(tmp_path, data)
    model_file = tmp_path / "m.toml"
    model_file.write_text(MODEL.read_text() + '\n[residual_error.transgene]\nmodel = "exponential"\nlog_sd = 2.0\n')
    declared = dataclasses.replace(sc, model=dataclasses.replace(sc.model, path=model_file))
    plain = run_vpc(sc, 30, seed=2)
    noisy = run_vpc(declared, 30, seed=2)
    assert plain.info["error"] == "none" and plain.info["error_source"] == "none"
    assert noisy.info["error"] == "transgene exponential:2" and noisy.info["error_source"] == "model file"
    # a log-scale SD of 2 widens every simulated p5-p95 range
    width = {name: (r.table.query("statistic == 'p95'")["sim_median"].to_numpy()
                    / r.table.query("statistic == 'p5'")["sim_median"].to_numpy()) for name, r in
             (("plain", plain), ("noisy", noisy))}
    assert (width["noisy"] > width["plain"]).all()


def test_run_writes_the_vpc_that_the_scenario_data_asks_for(tmp_path):
    from carkinetics.scenario.load import read_toml, scenario_from_dict
    from carkinetics.studies.run import run_population

    path = ROOT / "scenarios" / "examples" / "vpc_synthetic.toml"
    raw = read_toml(path)
    assert raw["data"]["vpc"] == {"replicates": 200, "error": "proportional:0.2"}  # the shipped example asks for one
    raw["data"]["vpc"] = {"replicates": 20, "error": "proportional:0.2"}
    scenario = scenario_from_dict(raw, path)
    result = run_population(scenario, tmp_path / "out", n=40, seed=3, jobs=1, plots=False)
    names = {p.name for p in result.files}
    assert {"vpc.csv", "vpc.png", "vpc.json", "patients.csv"} <= names
    table = pd.read_csv(tmp_path / "out" / "vpc.csv")
    assert set(table["statistic"]) >= {"p5", "p50", "p95", "blq_fraction"}
    info = json.loads((tmp_path / "out" / "vpc.json").read_text())
    assert info["replicates"] == 20 and info["percentiles_reported"] > 0


@pytest.mark.parametrize("vpc, key", [
    ({"replicates": 0}, "data.vpc.replicates"),
    ({"error": "proportionl:0.2"}, "data.vpc.error"),
    ({"pred_corr": "yes"}, "data.vpc.pred_corr"),
    ({"replicate": 5}, "data.vpc"),
])
def test_bad_vpc_settings_name_the_key(vpc, key):
    from carkinetics.errors import ScenarioError
    from carkinetics.scenario.load import read_toml, scenario_from_dict

    path = ROOT / "scenarios" / "examples" / "vpc_synthetic.toml"
    raw = read_toml(path)
    raw["data"]["vpc"] = vpc
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(raw, path)
    assert key in str(err.value)
