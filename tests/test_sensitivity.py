"""Sensitivity: PRCC and Sobol against independent computations, tornado and typical patients."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from conftest import DATA

TOY = DATA / "sweep" / "toy_sweep.toml"


@pytest.fixture(scope="module")
def toy():
    from carkinetics.scenario import load_scenario

    return load_scenario(TOY)


# ----------------------------------------------------------------------------------------
# pure statistics
# ----------------------------------------------------------------------------------------


def _prcc_by_regression(X, y):
    """The textbook definition: correlate residuals of rank regressions on the other inputs."""
    R = rankdata(X, axis=0)
    ry = rankdata(y)
    n, k = X.shape
    out = []
    for i in range(k):
        Z = np.column_stack([np.ones(n), np.delete(R, i, axis=1)])
        rx = R[:, i] - Z @ np.linalg.lstsq(Z, R[:, i], rcond=None)[0]
        r_y = ry - Z @ np.linalg.lstsq(Z, ry, rcond=None)[0]
        out.append(np.corrcoef(rx, r_y)[0, 1])
    return np.array(out)


def test_prcc_equals_the_residual_regression_definition():
    from carkinetics.sensitivity import prcc

    rng = np.random.default_rng(3)
    X = rng.uniform(size=(300, 4))
    y = np.exp(2 * X[:, 0]) - X[:, 1] ** 3 + 0.2 * X[:, 2] + 0.3 * rng.normal(size=300)
    table = prcc(X, y, names=["a", "b", "c", "d"], n_boot=200, seed=1)
    np.testing.assert_allclose(table["value"], _prcc_by_regression(X, y), rtol=1e-10, atol=1e-12)
    assert list(table["parameter"]) == ["a", "b", "c", "d"]
    assert table.loc[0, "value"] > 0.9 and table.loc[1, "value"] < -0.5
    assert (table["lower"] <= table["value"]).all() and (table["value"] <= table["upper"]).all()
    # unrelated input: its interval covers 0 and its p-value is not small
    assert table.loc[3, "lower"] < 0 < table.loc[3, "upper"] and table.loc[3, "p_value"] > 0.01
    # ranks only: a monotone transform of the output changes nothing
    again = prcc(X, np.arctan(y) ** 3, n_boot=0)
    np.testing.assert_allclose(again["value"], table["value"], rtol=1e-12)


def test_prcc_of_a_constant_output_is_undefined():
    from carkinetics.sensitivity import prcc

    X = np.random.default_rng(0).uniform(size=(50, 2))
    table = prcc(X, np.ones(50), n_boot=10)
    assert table["value"].isna().all()


def test_latin_hypercube_has_one_point_per_stratum():
    from carkinetics.sensitivity import latin_hypercube

    n = 50
    X = latin_hypercube([0.0, 1e-3], [2.0, 10.0], n, seed=4)
    assert X.shape == (n, 2)
    # linear coordinate: one point in each of the n equal strata
    assert sorted(np.floor(X[:, 0] / 2.0 * n).astype(int)) == list(range(n))
    # the second spans 4 decades: sampled log-uniformly, one point per log-stratum
    u = (np.log(X[:, 1]) - math.log(1e-3)) / (math.log(10.0) - math.log(1e-3))
    assert sorted(np.floor(u * n).astype(int)) == list(range(n))


def test_sobol_indices_of_the_ishigami_function():
    """Closed form: Ishigami & Homma (1990), a = 7, b = 0.1 on [-pi, pi]^3."""
    from carkinetics.sensitivity import sobol

    a, b = 7.0, 0.1

    def f(X):
        return np.sin(X[:, 0]) + a * np.sin(X[:, 1]) ** 2 + b * X[:, 2] ** 4 * np.sin(X[:, 0])

    v = a ** 2 / 8 + b * math.pi ** 4 / 5 + b ** 2 * math.pi ** 8 / 18 + 0.5
    v1 = 0.5 * (1 + b * math.pi ** 4 / 5) ** 2
    v2 = a ** 2 / 8
    v13 = 8 * b ** 2 * math.pi ** 8 / 225
    table = sobol(f, [-math.pi] * 3, [math.pi] * 3, n=2 ** 12, names=["x1", "x2", "x3"], seed=2, n_boot=0)
    got = table.set_index(["index", "parameter"])["value"]
    assert got[("first_order", "x1")] == pytest.approx(v1 / v, abs=0.03)
    assert got[("first_order", "x2")] == pytest.approx(v2 / v, abs=0.03)
    assert got[("first_order", "x3")] == pytest.approx(0.0, abs=0.03)
    assert got[("total", "x1")] == pytest.approx((v1 + v13) / v, abs=0.03)
    assert got[("total", "x3")] == pytest.approx(v13 / v, abs=0.03)


# ----------------------------------------------------------------------------------------
# outcomes and ranges
# ----------------------------------------------------------------------------------------


def test_parse_outcome(toy):
    from carkinetics.sensitivity import SensitivityError, parse_outcome

    es = toy.sections["endpoints"]
    o = parse_outcome("remission_d28", es)
    assert (o.endpoint, o.statistic, o.kind) == ("remission_d28", "proportion", "binary")
    assert parse_outcome("cmax:q95", es).statistic == "q95"
    o = parse_outcome("overall_survival@365", es)
    assert (o.statistic, o.day) == ("survival", 365.0)
    assert parse_outcome("overall_survival:km_at_180", es).day == 180.0
    with pytest.raises(SensitivityError, match="did you mean 'cmax'"):
        parse_outcome("cmaxx", es)
    with pytest.raises(SensitivityError, match="is not a statistic of the continuous endpoint"):
        parse_outcome("cmax:proportion", es)
    with pytest.raises(SensitivityError, match="'overall_survival@a year': expected endpoint@day with a number"):
        parse_outcome("overall_survival@a year", es)
    with pytest.raises(SensitivityError, match="needs a time-to-event endpoint"):
        parse_outcome("cmax@30", es)


def test_parameter_ranges_from_bounds_and_fold(toy):
    from carkinetics.sensitivity import SensitivityError, parameter_ranges

    r = parameter_ranges(toy, ["expansion", "kill"]).set_index("parameter")
    assert tuple(r.loc["expansion", ["low", "high"]]) == (0.2, 1.2)
    assert not r.loc["expansion", "log"] and r.loc["kill", "log"]  # 100-fold range: log-uniform
    f = parameter_ranges(toy, ["expansion", "kill"], fold=3.0).set_index("parameter")
    assert f.loc["expansion", "low"] == pytest.approx(0.2)      # 0.6 / 3 = 0.2, the bound
    assert f.loc["expansion", "high"] == pytest.approx(1.2)     # 1.8 clipped to the bound 1.2
    assert f.loc["kill", "low"] == pytest.approx(1e-9 / 3) and f.loc["kill", "high"] == pytest.approx(3e-9)
    with pytest.raises(SensitivityError, match="did you mean 'expansion'"):
        parameter_ranges(toy, ["expansoin"])


# ----------------------------------------------------------------------------------------
# scenario-level analyses
# ----------------------------------------------------------------------------------------


def test_tornado_runs_the_cohort_at_each_bound_with_common_random_numbers(toy):
    from carkinetics.cohort import run_cohort
    from carkinetics.sensitivity import tornado

    table = tornado(toy, "cmax:median", ["expansion", "editing"], n=30, seed=5, jobs=1)
    assert table.attrs["outcome"] == "cmax: median"
    by = table.set_index("parameter")
    # independent: the cohort's median Cmax with the typical expansion at its upper bound
    ref = run_cohort(toy, n=30, seed=5, jobs=1, parameters={"expansion": 1.2}, bands=False).patients
    assert by.loc["expansion", "outcome_high"] == pytest.approx(np.median(ref.loc[ref["status"] == 0, "cmax"]))
    base = run_cohort(toy, n=30, seed=5, jobs=1, bands=False).patients
    assert by.loc["expansion", "baseline"] == pytest.approx(np.median(base["cmax"]))
    assert by.loc["expansion", "outcome_low"] < by.loc["expansion", "baseline"] < by.loc["expansion", "outcome_high"]
    # 'editing' does not enter the kinetics: with common random numbers its swing is exactly 0
    assert by.loc["editing", "swing"] == 0.0
    assert list(table["parameter"]) == ["expansion", "editing"]  # sorted by swing


def test_typical_patients_match_a_direct_simulation(toy):
    from carkinetics import simulate
    from carkinetics.sensitivity import simulate_typical

    values = np.array([[0.6, 1e-9], [1.0, 1e-9], [0.6, 3e-9]])
    table = simulate_typical(toy, values, ["expansion", "kill"], seed=5, jobs=1, arms=["previous_donor"])
    assert (table["status"] == 0).all() and (table["arm"] == "previous_donor").all()
    weight = 60.0  # the lognormal covariate's median: the typical patient
    for row, (expansion, kill) in enumerate(values):
        env = toy.default_env() | {"expansion": expansion, "kill": kill, "weight": weight}
        p = toy.model.parameter_vector({"expansion": expansion, "kill": kill})
        traj = simulate(toy.model, toy.schedule(env, "previous_donor"), toy.times, parameters=p)
        assert table.loc[row, "cmax"] == pytest.approx(float(np.max(traj["cart_blood"])), rel=1e-9)
        assert table.loc[row, "remission_d28"] == float(traj["blast_fraction"][28] < 0.05)


def test_global_prcc_ranks_the_driving_parameters(toy):
    from carkinetics.sensitivity import global_sensitivity

    table = global_sensitivity(toy, "cmax", ["expansion", "kill", "editing"], n_samples=64, seed=3, jobs=1,
                               arms=["previous_donor"], n_boot=100)
    by = table.set_index("parameter")
    assert by.loc["expansion", "value"] > 0.5      # faster expansion, higher peak
    assert by.loc["kill", "value"] < -0.5          # faster killing of the antigen, lower peak
    assert abs(by.loc["editing", "value"]) < 0.3   # not in the kinetics
    assert by.loc["editing", "lower"] < 0 < by.loc["editing", "upper"]


def test_cli_sensitivity_writes_tables_and_figures(tmp_path):
    from click.testing import CliRunner

    from carkinetics.cli import main

    out = tmp_path / "sens"
    r = CliRunner().invoke(main, ["sensitivity", str(TOY), "--outcome", "remission_d28", "-o", str(out),
                                  "--parameters", "expansion,kill", "--n", "20", "--samples", "16",
                                  "--jobs", "1"])
    assert r.exit_code == 0, r.output
    assert "sensitivity of remission_d28" in r.output
    t = pd.read_csv(out / "tornado.csv")
    assert set(t["parameter"]) == {"expansion", "kill"}
    assert set(pd.read_csv(out / "global.csv")["index"]) == {"prcc"}
    assert (out / "figures" / "tornado.png").exists() and (out / "figures" / "global_sensitivity.pdf").exists()
    bad = CliRunner().invoke(main, ["sensitivity", str(TOY), "--outcome", "remision", "-o", str(out)])
    assert bad.exit_code == 1 and "Error:" in bad.output and "Traceback" not in bad.output
