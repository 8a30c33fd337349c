"""Joint calibration across products (carkinetics.studies.calibrate) and scenario parameter sets.

The recovery test uses the Stein 2019 multiphasic model, whose typical peak equals its
``cmax`` parameter, so the reported median peak of a cohort with symmetric log-normal
variability is known in closed form (the truth); the day-28 medians come from an
independent, larger cohort with another seed at the true values.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from carkinetics.studies.calibrate import CalibrationError, calibrate
from carkinetics.studies.calibration_file import CalibrationFileError, load_calibration
from carkinetics.studies.calibration_output import write_calibration
from carkinetics.cli.main import main
from carkinetics.errors import ScenarioError
from carkinetics.scenario.load import load_scenario
from carkinetics.scenario.reference import TARGET_COLUMNS

from conftest import MODELS, ROOT

TRUTH = {"alpha": 0.25, "cmax_a": 20000.0, "cmax_b": 60000.0}


def _scenario(folder: Path, name: str, ids: tuple[str, str], extra_head: str = "") -> Path:
    text = f"""
    [scenario]
    name = "{name}"
    model = "{(MODELS / 'multiphasic.toml').as_posix()}"
    {extra_head}

    [times]
    start = 0
    end = 40
    step = 0.5

    [population]
    size = 200
    seed = 5
    variability = {{ fold_expansion = 0.0, tmax = 0.2, cmax = 0.3, alpha = 0.3, fb = 0.3, beta = 0.3 }}

    [endpoints.peak]
    type = "cmax"
    output = "transgene"

    [endpoints.level_d28]
    type = "level"
    output = "transgene"
    day = 28

    [targets.{ids[0]}]
    endpoint = "peak"

    [targets.{ids[1]}]
    endpoint = "level_d28"
    """
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(text))
    return path


def _reference(folder: Path, rows) -> Path:
    import csv

    path = folder / "reference.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=TARGET_COLUMNS)
        w.writeheader()
        for tid, value, rel in rows:
            lo, hi = value / math.exp(1.96 * rel), value * math.exp(1.96 * rel)
            w.writerow({"target_id": tid, "trial": "synthetic", "arm": "synthetic", "quantity": "car_peak",
                        "statistic": "median", "value": value, "lower": lo, "upper": hi, "ci_method": "reported",
                        "n": 100, "unit": "copies/ug gDNA", "product": "CD19", "evidence": "D",
                        "note": "synthetic target of tests/test_calibrate.py"})
    return path


def _median_level_d28(scenario_path, parameters, n=4000, seed=99):
    from carkinetics.cohort.pipeline import run_cohort

    res = run_cohort(load_scenario(scenario_path), n=n, seed=seed, bands=False, parameters=parameters)
    return float(np.median(res.patients["level_d28"]))


@pytest.fixture()
def synthetic(tmp_path):
    a = _scenario(tmp_path, "product_a", ("a_peak", "a_d28"))
    b = _scenario(tmp_path, "product_b", ("b_peak", "b_d28"))
    d28_a = _median_level_d28(a, {"alpha": TRUTH["alpha"], "cmax": TRUTH["cmax_a"]})
    d28_b = _median_level_d28(b, {"alpha": TRUTH["alpha"], "cmax": TRUTH["cmax_b"]})
    # the median peak is the typical cmax (log-symmetric variability): closed form
    ref = _reference(tmp_path, [("a_peak", TRUTH["cmax_a"], 0.05), ("a_d28", d28_a, 0.05),
                                ("b_peak", TRUTH["cmax_b"], 0.05), ("b_d28", d28_b, 0.05)])
    cal = tmp_path / "calibration.toml"
    cal.write_text(textwrap.dedent(f"""
    [calibration]
    name = "synthetic"
    model = "{(MODELS / 'multiphasic.toml').as_posix()}"
    reference = "{ref.name}"
    n = 300
    seed = 3
    maxiter = 60
    output = "calibrated"

    [products.a]
    scenarios = ["{a.name}"]

    [products.b]
    scenarios = ["{b.name}"]

    [estimate.alpha]
    bounds = [0.05, 1.0]
    note = "shared"

    [estimate.cmax]
    products = ["a", "b"]
    bounds = [1000, 1e6]

    [fixed.beta]
    reason = "day-28 levels do not reach the memory phase"
    """))
    return tmp_path, cal


def test_shared_and_product_specific_estimates_are_recovered(synthetic):
    folder, path = synthetic
    cal = load_calibration(path)
    assert [e.label for e in cal.estimates] == ["alpha", "cmax[a]", "cmax[b]"]
    res = calibrate(cal)
    est = res.estimates
    assert est["alpha"] == pytest.approx(TRUTH["alpha"], rel=0.1)
    assert est["cmax[a]"] == pytest.approx(TRUTH["cmax_a"], rel=0.1)
    assert est["cmax[b]"] == pytest.approx(TRUTH["cmax_b"], rel=0.1)
    assert res.objective < res.objective_initial
    # each product's set holds the shared value and only its own specific value
    assert res.parameter_set("a") == {"alpha": est["alpha"], "cmax": est["cmax[a]"]}
    assert res.parameter_set("b")["cmax"] == est["cmax[b]"]

    with pytest.raises(CalibrationError, match="no output folder"):
        write_calibration(res, None)
    out = folder / "calibrated"
    files = write_calibration(res, out, command="test")
    assert {"a.toml", "b.toml", "calibration.json", "comparison.csv"} <= set(files)
    info = json.loads((out / "calibration.json").read_text())
    assert info["fixed"]["beta"]["reason"].startswith("day-28")
    assert info["provenance"]["calibration_sha256"] and info["provenance"]["patients_per_scenario"] == 300

    # a scenario naming the product's parameter set starts from the calibrated values,
    # and its own [parameters] still apply on top
    sc = _scenario(folder, "uses_set", ("x1", "x2"),
                   extra_head=f'parameter_set = "{(out / "b.toml").as_posix()}"')
    s = load_scenario(sc)
    assert s.parameters["cmax"] == pytest.approx(est["cmax[b]"])
    assert s.parameters["alpha"] == pytest.approx(est["alpha"])
    text = sc.read_text() + "\n[parameters]\nalpha = 0.5\n"
    sc.write_text(text)
    assert load_scenario(sc).parameters["alpha"] == 0.5


def test_the_objective_is_named_in_the_file_and_checked(synthetic):
    folder, path = synthetic
    assert load_calibration(path).objective == "distance"  # the default
    path.write_text(path.read_text().replace("n = 300", 'n = 300\nobjective = "likelihood"'))
    assert load_calibration(path).objective == "likelihood"
    path.write_text(path.read_text().replace('objective = "likelihood"', 'objective = "likelyhood"'))
    with pytest.raises(CalibrationFileError) as err:
        load_calibration(path)
    assert "calibration.objective" in str(err.value) and "did you mean 'likelihood'" in str(err.value)


def test_calibration_file_problems_are_reported_together(synthetic):
    folder, path = synthetic
    bad = path.read_text().replace('products = ["a", "b"]', 'products = ["a", "c"]')
    bad = bad.replace("[estimate.alpha]", "[estimate.alpah]")
    bad = bad.replace('reason = "day-28 levels do not reach the memory phase"', 'reason = ""')
    bad += '\n[targets.a_peak]\nse = 0.2\n\n[targets.zz]\nweight = 1\n\n[extra]\nx = 1\n'
    p = folder / "bad.toml"
    p.write_text(bad)
    with pytest.raises(CalibrationFileError) as err:
        load_calibration(p)
    msg = str(err.value)
    assert str(p) in msg
    for part in ("estimate.alpah: 'alpah' is not a parameter", "did you mean 'alpha'",
                 "estimate.cmax.products: 'c' is not a product", "fixed.beta.reason",
                 "targets.a_peak.note: say where the standard error comes from",
                 "targets.zz: 'zz' is not an outcome target", "extra"):
        assert part in msg, part


def test_an_estimated_parameter_set_by_a_scenario_is_refused(synthetic):
    folder, path = synthetic
    sa = folder / "product_a.toml"
    sa.write_text(sa.read_text() + "\n[parameters]\nalpha = 0.3\n")
    with pytest.raises(CalibrationFileError, match="product_a.toml sets 'alpha' in its own \\[parameters\\]"):
        load_calibration(path)


def test_parameter_set_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "set.toml"
    bad.write_text("[parameters]\nalpah = 0.2\ncmax = -1\n")
    sc = _scenario(tmp_path, "s", ("x1", "x2"), extra_head='parameter_set = "set.toml"')
    with pytest.raises(ScenarioError) as err:
        load_scenario(sc)
    msg = str(err.value)
    assert str(bad) in msg and "'alpah' is not a parameter" in msg and "outside the model's bounds" in msg
    missing = _scenario(tmp_path, "m", ("x1", "x2"), extra_head='parameter_set = "nowhere.toml"')
    with pytest.raises(ScenarioError, match="parameter-set file 'nowhere.toml' not found"):
        load_scenario(missing)


def test_cli_calibrate_dry_run_and_errors(synthetic):
    folder, path = synthetic
    r = CliRunner().invoke(main, ["calibrate", str(path), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "3 estimates (alpha, cmax[a], cmax[b]), 4 targets" in r.output
    assert "a_d28" in r.output
    r = CliRunner().invoke(main, ["calibrate", str(folder / "nope.toml")])
    assert r.exit_code == 1 and "file not found" in r.output and "Traceback" not in r.output


def test_cli_calibrate_writes_results_not_the_parameter_sets_unless_asked(synthetic, monkeypatch):
    """Without options the results go to results/calibration/<name> (of the current folder);
    the parameter sets the scenarios read ([calibration] output) only with --write-parameter-sets."""
    folder, path = synthetic
    work = folder / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    quick = ["--n", "20", "--maxiter", "1", "--jobs", "1"]
    r = CliRunner().invoke(main, ["calibrate", str(path), *quick])
    assert r.exit_code == 0, r.output
    assert not (folder / "calibrated").exists()
    default = work / "results" / "calibration" / "synthetic"
    assert {"a.toml", "b.toml", "calibration.json"} <= {f.name for f in default.iterdir()}
    assert "--write-parameter-sets" in r.output and "(unchanged)" in r.output
    r = CliRunner().invoke(main, ["calibrate", str(path), "--dry-run"])
    assert r.exit_code == 0 and "would write to results/calibration/synthetic" in r.output, r.output
    r = CliRunner().invoke(main, ["calibrate", str(path), "-o", str(folder / "mine"), *quick])
    assert r.exit_code == 0 and (folder / "mine" / "a.toml").is_file() and not (folder / "calibrated").exists()
    info = json.loads((folder / "mine" / "calibration.json").read_text())
    assert info["provenance"]["command"].startswith("carkinetics calibrate")
    # asked explicitly: the folder the scenarios read
    r = CliRunner().invoke(main, ["calibrate", str(path), "--write-parameter-sets", *quick])
    assert r.exit_code == 0, r.output
    assert (folder / "calibrated" / "a.toml").is_file() and "still read" not in r.output
    r = CliRunner().invoke(main, ["calibrate", str(path), "--write-parameter-sets", "-o", "x", "--dry-run"])
    assert r.exit_code == 2 and "either it or --output" in r.output
    # a folder of other files (here: the calibration's own inputs) is refused before anything is fitted
    r = CliRunner().invoke(main, ["calibrate", str(path), "-o", str(folder), *quick])
    assert r.exit_code == 1 and "did not write" in r.output and "product_a.toml" in r.output, r.output
    for bad, message in (("", "empty"), ("/dev/null", "device"), (str(path), "is a file")):
        r = CliRunner().invoke(main, ["calibrate", str(path), "-o", bad, *quick])
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, (bad, r.output)


def test_calibration_name_and_target_settings_are_checked(synthetic):
    folder, path = synthetic
    text = path.read_text().replace('name = "synthetic"', 'name = "../../elsewhere"')
    text = text.replace("seed = 3", "seed = 99999999999999999999").replace('note = "shared"', "note = 5")
    text += ('\n[targets.a_peak]\nexclude = 5\n\n[targets.b_peak]\nweight = inf\n\n'
             '[targets.a_d28]\nse = inf\nnote = "x"\n')
    p = folder / "bad_settings.toml"
    p.write_text(text)
    with pytest.raises(CalibrationFileError) as err:
        load_calibration(p)
    msg = str(err.value)
    for part in ("calibration.name: expected a name of letters", "targets.a_peak.exclude: expected true or false",
                 "calibration.seed: expected a whole number from 0 to 2**63 - 1",
                 "estimate.alpha.note: expected a text",
                 "targets.b_peak.weight: expected a finite number >= 0", "targets.a_d28.se: expected a standard error"):
        assert part in msg, part
    twice = folder / "twice.toml"
    twice.write_text(path.read_text().replace('scenarios = ["product_b.toml"]',
                                              'scenarios = ["product_b.toml", "product_b.toml"]'))
    with pytest.raises(CalibrationFileError, match="products.b.scenarios: listed more than once: product_b.toml"):
        load_calibration(twice)


# ---- the shipped calibrations ------------------------------------------------------------
SHIPPED = {"cart_tall": ("cd7_donor", "cd7_auto", "cd5"), "cart_ball": ("cd19_donor",)}


@pytest.mark.parametrize("name", ["cart_tall", "cart_ball"])
def test_shipped_calibration_is_consistent_with_its_parameter_sets(name):
    """The calibration file checks out, every product has its set, each set holds the values
    recorded in calibration.json, shared values are equal across sets, and the scenarios of
    each product name that product's set (so what validate runs is what was fitted)."""
    from carkinetics.scenario.load import load_parameter_set

    cal = load_calibration(ROOT / "models" / "calibration" / f"{name}.toml")
    assert set(cal.products) == set(SHIPPED[name])
    out = ROOT / "models" / "calibrated" / name
    info = json.loads((out / "calibration.json").read_text())
    assert info["provenance"]["model_sha256"]
    for e in cal.estimates:  # every estimate has a value in the record
        assert e.label in info["estimates"]
    for product, scenarios in cal.products.items():
        values = load_parameter_set(out / f"{product}.toml", cal.model)
        assert values == pytest.approx(info["parameter_sets"][product])
        for e in cal.estimates:
            if e.applies_to(product):
                assert values[e.parameter] == pytest.approx(info["estimates"][e.label])
        for sc in scenarios:
            assert [p.resolve() for p in sc.parameter_sets] == [(out / f"{product}.toml").resolve()]
    for reason in cal.fixed.values():
        assert reason
    sample_file = out / "parameter_sample.csv"
    if sample_file.exists():  # the sample --replicates draws from: this calibration's estimates, applicable
        from carkinetics.scenario.parameter_sets import read_parameter_sample

        sample = read_parameter_sample(sample_file, cal.model)
        assert list(sample.labels) == list(cal.labels) and len(sample) >= 20
        sample.check(cal.model, len(sample))
        assert (out / info["uncertainty"]["intervals_file"]).is_file()  # and its profile intervals


def test_protocol_design_uses_the_calibrated_product_values():
    """protocol_design.toml starts from the donor-derived CD7 set; its autologous arm and its CD5
    product option read the calibrated autologous-CD7 and CD5 sets (not copies of their
    values), so that a re-calibration and --replicates reach them."""
    sc = load_scenario(ROOT / "scenarios" / "protocol_design.toml")
    out = (ROOT / "models" / "calibrated" / "cart_tall").resolve()
    assert [p.resolve() for p in sc.parameter_sets] == [out / "cd7_donor.toml"]
    assert sc.arms.arms["autologous"].parameter_set.resolve() == out / "cd7_auto.toml"
    assert sc.raw["sweep"]["axes"]["product"]["cd5"]["parameter_set"].endswith("calibrated/cart_tall/cd5.toml")
    from carkinetics.scenario.load import load_parameter_set

    cd5 = load_parameter_set(out / "cd5.toml", sc.model)
    options = dict(zip(sc.sweep.axes[0].labels, sc.sweep.axes[0].settings))
    assert options["cd5"]["parameters"]["product_fitness"] == cd5["product_fitness"]


def test_uncertainty_intervals_sample_and_a_restart_from_the_record(synthetic):
    """calibrate --uncertainty on the synthetic products (likelihood objective, which carries the
    virtual cohort's Monte Carlo error): each profile interval holds the truth and its estimate,
    the sample stays inside the bounds around the estimates, and --start-from begins at the
    earlier run's estimates (its objective before equals that run's objective after)."""
    folder, path = synthetic
    out = folder / "unc"
    r = CliRunner().invoke(main, ["calibrate", str(path), "-o", str(out), "--uncertainty", "--samples", "50",
                                  "--objective", "likelihood", "--jobs", "1"])
    assert r.exit_code == 0, r.output
    assert "profile-likelihood 95% intervals" in r.output
    for name in ("intervals.csv", "profiles.csv", "parameter_sample.csv", "uncertainty.json", "profiles.png"):
        assert (out / name).is_file(), name
    import pandas as pd

    iv = pd.read_csv(out / "intervals.csv").set_index("label")
    truth = {"alpha": TRUTH["alpha"], "cmax[a]": TRUTH["cmax_a"], "cmax[b]": TRUTH["cmax_b"]}
    for label, value in truth.items():
        row = iv.loc[label]
        assert row["lower"] < row["estimate"] < row["upper"], label
        assert row["lower"] <= value <= row["upper"], (label, value, row["lower"], row["upper"])
        assert not row["lower_flat"] and not row["upper_flat"] and not row["at_bound"]
    assert (pd.read_csv(out / "starts.csv")["n_evaluations"] > 10).all()  # each run counts its evaluations
    sample = pd.read_csv(out / "parameter_sample.csv")
    assert len(sample) == 50 and list(sample.columns) == ["draw", "alpha", "cmax[a]", "cmax[b]"]
    assert sample["alpha"].between(0.05, 1.0).all() and sample["cmax[a]"].between(1000, 1e6).all()
    assert np.median(sample["cmax[b]"]) == pytest.approx(iv.loc["cmax[b]", "estimate"], rel=0.05)
    info = json.loads((out / "uncertainty.json").read_text())
    assert set(info["correlation"]) == set(truth) and len(info["hessian_eigenvalues"]) == 3
    assert not any("did not reach the optimum" in note for note in info["identifiability"])
    # restart from the record: "before" is that run's optimum
    first = json.loads((out / "calibration.json").read_text())
    r = CliRunner().invoke(main, ["calibrate", str(path), "-o", str(folder / "again"), "--start-from", str(out),
                                  "--objective", "likelihood", "--maxiter", "1", "--jobs", "1"])
    assert r.exit_code == 0, r.output
    again = json.loads((folder / "again" / "calibration.json").read_text())
    assert again["provenance"]["objective_initial"] == pytest.approx(first["provenance"]["objective"], rel=1e-9)
    assert again["provenance"]["started_from"] == str(out)
    # --maxiter 0 keeps the record's estimates; --profiles-from reads its profiles; SIR draws the sample
    r = CliRunner().invoke(main, ["calibrate", str(path), "-o", str(folder / "sir"), "--start-from", str(out),
                                  "--objective", "likelihood", "--maxiter", "0", "--uncertainty", "--profiles-from",
                                  str(out), "--sir-proposals", "80", "--samples", "30", "--jobs", "1"])
    assert r.exit_code == 0, r.output
    assert "sampling importance resampling" in r.output
    sir = json.loads((folder / "sir" / "calibration.json").read_text())
    assert sir["estimates"] == pytest.approx(first["estimates"], rel=1e-12)
    assert (folder / "sir" / "intervals.csv").read_text() == (out / "intervals.csv").read_text()
    unc = json.loads((folder / "sir" / "uncertainty.json").read_text())
    assert unc["sampling"]["proposals"] == 80 and unc["profiles_from"] == str(out)
    assert len(pd.read_csv(folder / "sir" / "parameter_sample.csv")) == 30
    r = CliRunner().invoke(main, ["calibrate", str(path), "-o", str(folder / "sir2"), "--start-from", str(out),
                                  "--objective", "likelihood", "--maxiter", "0", "--uncertainty", "--profiles-from",
                                  str(out), "--n", "150", "--jobs", "1"])
    assert r.exit_code == 2 and "not the profiles of this optimum" in r.output and "patients per scenario" in r.output
    # a folder without a record is refused, naming the file
    r = CliRunner().invoke(main, ["calibrate", str(path), "--start-from", str(folder), "--jobs", "1"])
    assert r.exit_code == 2 and "calibration.json" in r.output and "Traceback" not in r.output


def test_cross_validation_refits_without_each_trial_and_predicts_it(synthetic, tmp_path):
    """Two trials (S1: product a, S2: product b). Leaving out S1 drops cmax[a] (no target left)
    to the model file's value and refits alpha and cmax[b] on S2 alone, which still identify
    them; S1 is then predicted with the model file's cmax: its peak is the model file's, not
    the truth. Every row is marked cross-validated; a single trial cannot be cross-validated."""
    import pandas as pd

    from carkinetics.model.load import load_model

    folder, path = synthetic
    ref = folder / "reference.csv"
    rows = pd.read_csv(ref)
    rows["arm"] = ["S1" if t.startswith("a_") else "S2" for t in rows["target_id"]]
    rows.to_csv(ref, index=False)
    out = tmp_path / "loto"
    r = CliRunner().invoke(main, ["validate", "--cross-validate", str(path), "--n", "300", "--fit-n", "150",
                                  "--maxiter", "30", "-j", "1", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "Out of sample:" in r.output
    folds = pd.read_csv(out / "folds.csv").set_index("left_out")
    assert list(folds.index) == ["S1", "S2"]
    cmax_file = load_model(MODELS / "multiphasic.toml").parameter("cmax").value
    assert folds.loc["S1", "model_file:cmax[a]"] == pytest.approx(cmax_file)
    assert folds.loc["S1", "estimate:alpha"] == pytest.approx(TRUTH["alpha"], rel=0.15)
    assert folds.loc["S1", "estimate:cmax[b]"] == pytest.approx(TRUTH["cmax_b"], rel=0.15)
    table = pd.read_csv(out / "validation.csv").set_index("target_id")
    assert set(table["basis"]) == {"cross-validated"}
    assert table.loc["a_peak", "left_out"] == "S1" and table.loc["b_peak", "left_out"] == "S2"
    # S1 predicted at the model file's cmax: the median peak is that value (log-symmetric variability)
    assert table.loc["a_peak", "simulated"] == pytest.approx(cmax_file, rel=0.1)
    info = json.loads((out / "validation.json").read_text())
    assert info["kind"] == "leave-one-trial-out cross-validation" and len(info["folds"]) == 2
    # one trial only: refused with a message, no traceback
    rows["arm"] = "S1"
    rows.to_csv(ref, index=False)
    r = CliRunner().invoke(main, ["validate", "--cross-validate", str(path), "--n", "50", "-j", "1"])
    assert r.exit_code != 0 and "cross-validation needs at least two trials" in r.output
    assert "Traceback" not in r.output
    r = CliRunner().invoke(main, ["validate", "--maxiter", "3"])
    assert r.exit_code == 2 and "go with --cross-validate" in r.output


def test_cross_validation_in_stages_chains_the_refits(synthetic, monkeypatch):
    """Two stages (alpha, then the per-product cmax with alpha fixed): in each fold both stages are
    refitted without the left-out trial, and the second starts from the first's refitted alpha
    (not from the value the scenarios read, which the full data made)."""
    import dataclasses

    import pandas as pd

    import carkinetics.studies.calibrate as calibrate_module
    from carkinetics.scenario.reference import load_targets
    from carkinetics.studies.cross_validate import cross_validate

    folder, path = synthetic
    ref = folder / "reference.csv"
    rows = pd.read_csv(ref)
    rows["arm"] = ["S1" if t.startswith("a_") else "S2" for t in rows["target_id"]]
    rows.to_csv(ref, index=False)
    cal = load_calibration(path)
    first = dataclasses.replace(cal, name="first", estimates=[e for e in cal.estimates if e.parameter == "alpha"])
    second = dataclasses.replace(cal, name="second", estimates=[e for e in cal.estimates if e.parameter == "cmax"])
    calls = []
    real = calibrate_module.calibrate

    def recording(c, **kw):
        res = real(c, **kw)
        calls.append((c.name, {t.target_id for t in c.targets}, c.fixed_values, res.estimates))
        return res

    monkeypatch.setattr(calibrate_module, "calibrate", recording)
    table, fits = cross_validate([first, second], load_targets(ref), n=100, fit_n=100, maxiter=10, jobs=1)
    assert [(f.left_out, f.stage) for f in fits.itertuples()] == [("S1", "first"), ("S1", "second"),
                                                                   ("S2", "first"), ("S2", "second")]
    for k, left_out in ((0, "a_"), (2, "b_")):
        (_, targets1, fixed1, est1), (_, targets2, fixed2, _) = calls[k], calls[k + 1]
        assert not any(t.startswith(left_out) for t in targets1 | targets2)  # the left-out trial is in neither
        assert fixed1 == {} and all(v["alpha"] == est1["alpha"] for v in fixed2.values())
    assert set(table["left_out"]) == {"S1", "S2"}
