"""Sensitivity: PRCC and Sobol against independent computations, tornado and typical patients."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from conftest import DATA, TOY_SWEEP as TOY


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
    from carkinetics.stats.sensitivity_indices import prcc

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
    from carkinetics.stats.sensitivity_indices import prcc

    X = np.random.default_rng(0).uniform(size=(50, 2))
    table = prcc(X, np.ones(50), n_boot=10)
    assert table["value"].isna().all()


def test_latin_hypercube_has_one_point_per_stratum():
    from carkinetics.stats.sensitivity_indices import latin_hypercube

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
    from carkinetics.stats.sensitivity_indices import sobol

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
    from carkinetics.stats.sensitivity_indices import SensitivityError
    from carkinetics.studies.sensitivity_inputs import parse_outcome

    es = toy.endpoints
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
    from carkinetics.stats.sensitivity_indices import SensitivityError
    from carkinetics.studies.sensitivity_inputs import parameter_ranges

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
    from carkinetics.cohort.pipeline import run_cohort
    from carkinetics.studies.tornado import tornado

    # one arm: the new_donor arm's expansion = 0.7 x typical leaves the bounds at the low value
    arm = ["previous_donor"]
    table = tornado(toy, "cmax:median", ["expansion", "editing"], n=30, seed=5, jobs=1, arms=arm)
    assert table.attrs["outcome"] == "cmax: median"
    by = table.set_index("parameter")
    # independent: the cohort's median Cmax with the typical expansion at its upper bound
    ref = run_cohort(toy, n=30, seed=5, jobs=1, parameters={"expansion": 1.2}, bands=False, arms=arm).patients
    assert by.loc["expansion", "outcome_high"] == pytest.approx(np.median(ref.loc[ref["status"] == 0, "cmax"]))
    base = run_cohort(toy, n=30, seed=5, jobs=1, bands=False, arms=arm).patients
    assert by.loc["expansion", "baseline"] == pytest.approx(np.median(base["cmax"]))
    assert by.loc["expansion", "outcome_low"] < by.loc["expansion", "baseline"] < by.loc["expansion", "outcome_high"]
    # 'editing' does not enter the kinetics: not simulated, its swing is exactly 0 ...
    assert by.loc["editing", "swing"] == 0.0 and not by.loc["editing", "reachable"]
    assert by.loc["editing", "note"].startswith("not simulated")
    # ... as simulating it with common random numbers confirms
    kept = tornado(toy, "cmax:median", ["editing"], n=30, seed=5, jobs=1, keep_unreachable=True, arms=arm)
    assert kept.loc[0, "swing"] == 0.0 and kept.loc[0, "outcome_low"] == by.loc["editing", "baseline"]
    assert list(table["parameter"]) == ["expansion", "editing"]  # sorted by swing


def test_typical_patients_match_a_direct_simulation(toy):
    from carkinetics import simulate
    from carkinetics.studies.typical_patients import simulate_typical

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
    from carkinetics.studies.global_sensitivity import global_sensitivity

    table = global_sensitivity(toy, "cmax", ["expansion", "kill", "editing"], n_samples=64, seed=3, jobs=1,
                               arms=["previous_donor"], n_boot=100)
    by = table.set_index("parameter")
    assert by.loc["expansion", "value"] > 0.5      # faster expansion, higher peak
    assert by.loc["kill", "value"] < -0.5          # faster killing of the antigen, lower peak
    assert by.loc["expansion", "significant"] and by.loc["kill", "significant"]
    # not in the kinetics: not sampled, reported with the reason
    assert not by.loc["editing", "reachable"] and np.isnan(by.loc["editing", "value"])
    assert "not used by the model equations" in by.loc["editing", "note"]
    # the inert dummy: sampled, index near 0, its interval covers 0
    from carkinetics.stats.sensitivity_indices import DUMMY

    assert abs(by.loc[DUMMY, "value"]) < 0.3 and by.loc[DUMMY, "lower"] < 0 < by.loc[DUMMY, "upper"]
    assert not by.loc[DUMMY, "significant"]


def test_cli_sensitivity_writes_tables_and_figures(tmp_path):
    from click.testing import CliRunner

    from carkinetics.cli.main import main

    out = tmp_path / "sens"
    r = CliRunner().invoke(main, ["sensitivity", str(TOY), "--outcome", "remission_d28", "-o", str(out),
                                  "--parameters", "expansion,kill", "--n", "20", "--samples", "16",
                                  "--jobs", "1"])
    assert r.exit_code == 0, r.output
    assert "sensitivity of remission_d28" in r.output
    t = pd.read_csv(out / "tornado.csv")
    assert set(t["parameter"]) == {"expansion", "kill"}
    g = pd.read_csv(out / "global.csv")
    assert set(g["index"]) == {"prcc"} and "(dummy)" in set(g["parameter"])
    assert "warning: few samples for PRCC" in r.output and "rule of thumb n >= 10 x (parameters + 1) = 30" in r.output
    assert (out / "figures" / "tornado.png").exists() and (out / "figures" / "global_sensitivity.pdf").exists()
    bad = CliRunner().invoke(main, ["sensitivity", str(TOY), "--outcome", "remision", "-o", str(out)])
    assert bad.exit_code == 1 and "Error:" in bad.output and "Traceback" not in bad.output


# ----------------------------------------------------------------------------------------
# pandas 3 (copy-on-write: arrays from DataFrames are read-only), scipy < 1.15
# ----------------------------------------------------------------------------------------


def test_sobol_accepts_a_read_only_output_as_pandas_3_gives():
    """scipy.stats.sobol_indices centres the output in place; pandas 3 hands out read-only arrays."""
    from carkinetics.stats.sensitivity_indices import sobol

    def f(X):
        y = pd.DataFrame({"y": 2.0 * X[:, 0] + X[:, 1]})["y"].to_numpy()
        y.flags.writeable = False  # what pandas 3 (copy-on-write) gives without being asked
        return y

    table = sobol(f, [0, 0], [1, 1], n=256, names=["a", "b"], seed=1, n_boot=20)
    got = table.set_index(["index", "parameter"])["value"]
    assert got[("first_order", "a")] == pytest.approx(0.8, abs=0.05)


def test_patient_values_are_writable(toy):
    from carkinetics.stats.outcome import patient_values
    from carkinetics.studies.sensitivity_inputs import parse_outcome

    es = toy.endpoints
    with pd.option_context("mode.copy_on_write", True) if pd.__version__ < "3" else _nullcontext():
        df = pd.DataFrame({"cmax": [1.0, 2.0], "overall_survival": [10.0, 400.0],
                           "overall_survival_event": [1.0, 0.0]})
        for text in ("cmax", "overall_survival@365", "overall_survival"):
            y = patient_values(df, parse_outcome(text, es))
            y -= 1.0  # in place, as scipy does
    assert df["cmax"].tolist() == [1.0, 2.0]  # and the table is untouched


def _nullcontext():
    import contextlib

    return contextlib.nullcontext()


def test_scipy_random_argument_for_old_and_new_scipy(monkeypatch):
    import scipy

    from carkinetics.stats.sampling import scipy_rng

    monkeypatch.setattr(scipy, "__version__", "1.11.4")
    assert set(scipy_rng(3, "random_state")) == {"random_state"}
    monkeypatch.setattr(scipy, "__version__", "1.15.0")
    (key, gen), = scipy_rng(3, "random_state").items()
    assert key == "rng" and isinstance(gen, np.random.Generator)


# ----------------------------------------------------------------------------------------
# the dummy parameter and significance, against independent references
# ----------------------------------------------------------------------------------------


def test_prcc_with_a_dummy_flags_the_known_drivers_only():
    """Linear toy with a known ordering; an unused input and the dummy are not significant."""
    from carkinetics.stats.sensitivity_indices import DUMMY, flag_significance, prcc_with_replicates

    rng = np.random.default_rng(11)
    n = 600
    X = rng.uniform(size=(n, 5))
    y = 3 * X[:, 0] - 2 * X[:, 1] + 1 * X[:, 2] + 0.5 * rng.normal(size=n)  # x3 unused, column 4 the dummy
    names = ["a", "b", "c", "unused", DUMMY]
    table, boots = prcc_with_replicates(X, y, names, n_boot=300, seed=2)
    # independent: plain numpy partial correlation of ranks (residuals of the rank regressions)
    np.testing.assert_allclose(table["value"], _prcc_by_regression(X, y), rtol=1e-10, atol=1e-12)
    t = flag_significance(table, boots=boots).set_index("parameter")
    assert abs(t.loc[DUMMY, "value"]) < 0.1
    assert list(t.loc[["a", "b", "c"], "rank"]) == [1, 2, 3]
    assert t.loc["a", "rank_lower"] == t.loc["a", "rank_upper"] == 1
    assert list(t["significant"]) == [True, True, True, False, False]
    bound = t.attrs["dummy_bound"]["prcc"]
    assert bound == pytest.approx(max(abs(t.loc[DUMMY, "lower"]), abs(t.loc[DUMMY, "upper"])))
    assert t.loc["c", "lower"] > bound and abs(t.loc["unused", "value"]) < bound + 0.1


def test_sobol_of_a_linear_additive_function_and_its_dummy():
    """y = 4 x1 + 2 x2 + x3 on U(0,1)^3: S_i = a_i^2 / sum a_j^2, first order = total; dummy 0."""
    from carkinetics.stats.sensitivity_indices import DUMMY, flag_significance, sobol

    a = np.array([4.0, 2.0, 1.0])

    def f(X):
        return X[:, :3] @ a

    table = sobol(f, [0] * 4, [1] * 4, n=2 ** 12, names=["x1", "x2", "x3", DUMMY], seed=3, n_boot=50)
    t = flag_significance(table)
    exact = a ** 2 / np.sum(a ** 2)
    for idx in ("first_order", "total"):
        sub = t[t["index"] == idx].set_index("parameter")
        np.testing.assert_allclose(sub.loc[["x1", "x2", "x3"], "value"], exact, atol=0.02)
        # the function ignores the dummy: the estimators give exactly 0, interval [0, 0]
        assert tuple(sub.loc[DUMMY, ["value", "lower", "upper"]]) == (0.0, 0.0, 0.0)
        assert list(sub["significant"]) == [True, True, True, False]


# ----------------------------------------------------------------------------------------
# structural reachability
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reach_scenario(tmp_path_factory):
    """The toy model with an output-only parameter (blood_volume), a parameter used only by an
    event at day 60 (graft), one used by an event at day 10 (conditioning) and one by an event
    whose day depends on a continuous covariate (late_dose)."""
    from carkinetics.scenario.load import load_scenario

    d = tmp_path_factory.mktemp("reach")
    model = (DATA / "sweep" / "toy_model.toml").read_text()
    model = model.replace('expression = "cart / 5e6"', 'expression = "cart / blood_volume"')
    for name, value in (("blood_volume", 5e6), ("graft", 1e9), ("conditioning", 0.5), ("late_dose", 1e7)):
        model += (f"\n[parameters.{name}]\nvalue = {value}\nunit = \"1\"\ndescription = \"test\"\n"
                  f"source = \"test\"\nbounds = [{value / 2}, {value * 2}]\n")
    (d / "toy_model.toml").write_text(model)
    scen = (DATA / "sweep" / "toy_sweep.toml").read_text()
    scen = scen.split("[sweep]")[0]
    scen = scen.replace('multiply = { blasts_pos = 0.001, blasts_neg = 0.001, cart = 0.1 }',
                        'multiply = { blasts_pos = 0.001, blasts_neg = 0.001, cart = 0.1 }\n'
                        'add = { tcells = "graft" }\n\n'
                        '[[events]]\nname = "conditioning"\ntime = 10\n'
                        'multiply = { tcells = "conditioning" }\n\n'
                        '[[events]]\nname = "late_dose"\ntime = "80 - weight"\n'
                        'add = { cart = "late_dose" }\n')
    scen += ('\n[endpoints.blasts_d28]\ntype = "level"\noutput = "blast_fraction"\nday = 28\n'
             '\n[endpoints.cd3_d28]\ntype = "level"\noutput = "cd3"\nday = 28\n')

    (d / "reach.toml").write_text(scen)
    return load_scenario(d / "reach.toml")


def test_reachability_from_outputs_and_event_times(reach_scenario):
    from carkinetics.studies.reachability import outcome_reads, reachability

    sc = reach_scenario
    assert outcome_reads(sc, "remission_d28") == ({"blast_fraction"}, 28.0)
    r = reachability(sc, "remission_d28").set_index("parameter")
    assert not r.loc["blood_volume", "reachable"]
    assert "outputs the outcome does not read (cart_blood)" in r.loc["blood_volume", "reason"]
    assert not r.loc["graft", "reachable"]
    assert "'transplant' (day >= 60) after day 28" in r.loc["graft", "reason"]
    assert not r.loc["editing", "reachable"]  # used nowhere
    # in the ODEs; in an event at day 10 <= 28; in an event whose day depends on a continuous
    # covariate (weight, lognormal): cannot be bounded, so kept
    assert r.loc[["expansion", "kill", "blasts0", "conditioning", "late_dose"], "reachable"].all()
    # Cmax over the whole follow-up reads cart_blood: blood_volume and the day-60 graft reach it
    r = reachability(sc, "cmax").set_index("parameter")
    assert r.loc[["blood_volume", "graft"], "reachable"].all() and not r.loc["editing", "reachable"]
    # survival at day 30 reads up to day 30 only; a transplant that never happens in the
    # analysed variables cannot reach anything
    r = reachability(sc, "overall_survival@30").set_index("parameter")
    assert not r.loc["graft", "reachable"] and not r.loc["blood_volume", "reachable"]
    r = reachability(sc, "overall_survival@365", variables={"transplant_day": 1e6}).set_index("parameter")
    assert not r.loc["graft", "reachable"]
    assert reachability(sc, "overall_survival@365").set_index("parameter").loc["graft", "reachable"]


def test_unreachable_parameters_do_not_change_the_simulated_outcome(reach_scenario):
    """Independent check of the structural claim: vary them over their whole range."""
    from carkinetics.studies.typical_patients import simulate_typical

    sc = reach_scenario
    rng = np.random.default_rng(0)
    base = [0.6, 1e-9]
    X = np.column_stack([np.tile(base, (40, 1)), rng.uniform(2.5e6, 1e7, 40), rng.uniform(5e8, 2e9, 40)])
    t = simulate_typical(sc, X, ["expansion", "kill", "blood_volume", "graft"], seed=2, jobs=1,
                         arms=["previous_donor"])
    assert (t["status"] == 0).all()
    assert t["blasts_d28"].nunique() == 1 and t["remission_d28"].nunique() == 1
    assert t["cmax"].nunique() == 40  # blood_volume does reach Cmax (cart_blood)
    # and graft does act, after day 60: normal T cells then differ
    from carkinetics import simulate

    env = sc.default_env() | {"weight": 60.0}
    cd3 = []
    for graft in (5e8, 2e9):
        p = sc.model.parameter_vector({"graft": graft})
        traj = simulate(sc.model, sc.schedule(env | {"graft": graft}, "previous_donor"), sc.times, parameters=p)
        cd3.append(np.asarray(traj["cd3"]))
    assert np.allclose(cd3[0][:60], cd3[1][:60], rtol=0, atol=0) and not np.allclose(cd3[0][61:], cd3[1][61:])


def test_global_sensitivity_has_the_dummy_and_excludes_unreachable_parameters(reach_scenario):
    from carkinetics.stats.sensitivity_indices import DUMMY
    from carkinetics.studies.global_sensitivity import GLOBAL_TABLE_COLUMNS, global_sensitivity

    sc = reach_scenario
    pars = ["tcells0", "t_recovery", "growth", "blood_volume", "graft"]
    table = global_sensitivity(sc, "cd3_d28", pars, n_samples=200, seed=4, jobs=1, arms=["previous_donor"],
                               n_boot=100)  # no warning: 200 >= 10 x 4 samples, a continuous outcome
    assert list(table.columns) == GLOBAL_TABLE_COLUMNS
    by = table.set_index("parameter")
    assert DUMMY in by.index and abs(by.loc[DUMMY, "value"]) < 0.2 and not by.loc[DUMMY, "significant"]
    for p in ("blood_volume", "graft"):
        assert not by.loc[p, "reachable"] and np.isnan(by.loc[p, "value"]) and not by.loc[p, "significant"]
        assert by.loc[p, "note"].startswith("not sampled:")
    assert set(table.attrs["excluded"]) == {"blood_volume", "graft"}
    assert by.loc["tcells0", "value"] > 0.5 and by.loc["tcells0", "significant"]
    assert by.loc["t_recovery", "significant"]
    # kept on request: sampled, flagged, and indistinguishable from the dummy
    kept = global_sensitivity(sc, "cd3_d28", pars, n_samples=200, seed=4, jobs=1, arms=["previous_donor"],
                              n_boot=100, keep_unreachable=True)
    k = kept.set_index("parameter")
    assert np.isfinite(k.loc["graft", "value"]) and not k.loc["graft", "reachable"]
    assert not k.loc["graft", "significant"] and not k.loc["blood_volume", "significant"]


def test_few_samples_warn_with_the_rule(toy):
    from carkinetics.stats.sensitivity_indices import SensitivityWarning
    from carkinetics.studies.global_sensitivity import global_sensitivity

    with pytest.warns(SensitivityWarning, match=r"rule of thumb n >= 10 x \(parameters \+ 1\) = 40"):
        global_sensitivity(toy, "cmax", ["expansion", "kill", "growth"], n_samples=16, seed=3, jobs=1,
                           arms=["previous_donor"], n_boot=20)
    with pytest.warns(SensitivityWarning, match="noisy Sobol estimates"):
        global_sensitivity(toy, "cmax", ["expansion", "kill"], method="sobol", n_samples=8, seed=3, jobs=1,
                           arms=["previous_donor"], n_boot=20)


def test_significance_needs_the_interval_beyond_the_dummy():
    """A small p-value alone is not enough: the interval must clear the dummy's bound."""
    from carkinetics.stats.sensitivity_indices import DUMMY, flag_significance

    table = pd.DataFrame({"parameter": ["a", "b", "c", DUMMY], "index": "prcc",
                          "value": [0.30, 0.12, -0.25, 0.05], "lower": [0.25, 0.08, -0.30, -0.02],
                          "upper": [0.35, 0.16, -0.20, 0.10], "p_value": [1e-9, 1e-6, 0.02, 0.3]})
    t = flag_significance(table).set_index("parameter")
    assert t.attrs["dummy_bound"]["prcc"] == pytest.approx(0.10)
    # a: clear of the bound, tiny p; b: tiny p but its interval reaches into the dummy's;
    # c: clear of the bound but p above 0.05 / 3 (Bonferroni); the dummy itself never
    assert list(t["significant"]) == [True, False, False, False]
    assert list(t["rank"].iloc[:3]) == [1, 3, 2] and np.isnan(t.loc[DUMMY, "rank"])


def test_global_sobol_on_typical_patients_has_the_exact_zero_dummy(toy):
    from carkinetics.stats.sensitivity_indices import DUMMY, SensitivityWarning
    from carkinetics.studies.global_sensitivity import global_sensitivity

    with pytest.warns(SensitivityWarning):  # 64 base samples: noisy, and cmax spans > 100-fold: log10
        table = global_sensitivity(toy, "cmax", ["expansion", "kill", "editing"], method="sobol", n_samples=64,
                                   seed=3, jobs=1, arms=["previous_donor"], n_boot=50)
    t = table.set_index(["index", "parameter"])
    for idx in ("first_order", "total"):
        # the model never sees the dummy: the estimators give exactly 0
        assert tuple(t.loc[(idx, DUMMY), ["value", "lower", "upper"]]) == (0.0, 0.0, 0.0)
        assert np.isnan(t.loc[(idx, "editing"), "value"]) and not t.loc[(idx, "editing"), "reachable"]
    assert t.loc[("total", "expansion"), "significant"] or t.loc[("total", "kill"), "significant"]
    # deterministic in the parameters: the same patient (arm, random numbers) for every sample
    assert t.loc[("total", "expansion"), "value"] + t.loc[("total", "kill"), "value"] > 0.8
