"""Parameter uncertainty propagated (``run|sweep --replicates K``), against independent references.

* The mixture interval against scipy: the normal quantile for one draw, the empirical
  quantile for draws without Monte Carlo error, a root of the mixture CDF (brentq) in general,
  and split normals that keep each draw's asymmetric interval (a probability's stays in [0, 1]).
* A draw of the sample replaces the values of every parameter set of its folder (the
  scenario's, an arm's, a sweep option's), and only those: each replicate's results equal a
  plain run of a scenario that writes the draw's values by hand.
* The summary over the draws is the median and the mixture interval of the replicates' own
  summaries, in ``run`` and in ``sweep`` (whose folder reads as a sweep with these intervals).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.optimize import brentq
from scipy.stats import norm

from carkinetics.cli.main import main
from carkinetics.errors import ScenarioError
from carkinetics.scenario.load import load_scenario
from carkinetics.scenario.parameter_sets import parameter_draw, read_parameter_sample
from carkinetics.stats.mixture import Z95, mixture_quantiles

from conftest import MODELS

SAMPLE = [(0, 0.2, 15000.0, 50000.0), (1, 0.3, 25000.0, 70000.0), (2, 0.25, 18000.0, 40000.0)]


# ---- the interval --------------------------------------------------------------------------------
def test_mixture_quantiles_match_scipy():
    # one component: the normal quantiles
    q = mixture_quantiles([[0.3]], [[0.05]], [0.025, 0.5, 0.975])[0]
    assert q == pytest.approx(norm.ppf([0.025, 0.5, 0.975], 0.3, 0.05), abs=1e-10)
    # no Monte Carlo error: the empirical (inverted CDF) quantiles of the draws
    v = np.array([[0.1, 0.5, 0.2, 0.4, 0.3, 0.35, 0.25]])
    q = mixture_quantiles(v, np.zeros_like(v), [0.025, 0.5, 0.975])[0]
    assert q == pytest.approx(np.quantile(v[0], [0.025, 0.5, 0.975], method="inverted_cdf"), abs=1e-10)
    # in general: the root of the mixture CDF
    rng = np.random.default_rng(1)
    v = rng.normal(0.4, 0.1, size=(5, 8))
    s = rng.uniform(0.01, 0.08, size=(5, 8))
    v[2, 3] = np.nan  # an absent component is left out
    q = mixture_quantiles(v, s, [0.025, 0.975])
    for g in range(5):
        ok = np.isfinite(v[g])
        for j, p in enumerate((0.025, 0.975)):
            expect = brentq(lambda x: norm.cdf(x, v[g, ok], s[g, ok]).mean() - p, -5, 5, xtol=1e-12)
            assert q[g, j] == pytest.approx(expect, abs=1e-9)
    assert np.isnan(mixture_quantiles([[np.nan, np.nan]], [[0.1, 0.1]], [0.5])).all()
    # split normals: one component gives back its own (asymmetric) interval; a mixture of
    # probabilities stays inside the components' intervals
    q = mixture_quantiles([[0.02]], [[0.02 / Z95]], [0.025, 0.975], ses_upper=[[0.1 / Z95]])[0]
    assert q == pytest.approx([0.0, 0.12], abs=1e-10)
    v, lo, hi = np.array([[0.0, 0.05, 0.02]]), np.array([[0.0, 0.01, 0.002]]), np.array([[0.06, 0.15, 0.09]])
    q = mixture_quantiles(v, (v - lo) / Z95, [0.025, 0.975], ses_upper=(hi - v) / Z95)[0]

    def split_cdf(x):
        s = np.where(x < v[0], (v[0] - lo[0]) / Z95, (hi[0] - v[0]) / Z95)
        return np.mean(np.where(s > 0, norm.cdf(x, v[0], np.where(s > 0, s, 1)), (x >= v[0]) * 1.0))

    assert q[1] == pytest.approx(brentq(lambda x: split_cdf(x) - 0.975, 0, 1, xtol=1e-12), abs=1e-9)
    assert 0.0 <= q[0] and q[1] <= 0.15


# ---- a calibration folder with a sample, and a scenario that reads it ---------------------------
def _setup(folder: Path) -> Path:
    cal = folder / "calibrated"
    cal.mkdir()
    for product, cmax in (("a", 20000.0), ("b", 60000.0)):
        (cal / f"{product}.toml").write_text(textwrap.dedent(f"""
        [calibration]
        name = "synthetic"
        product = "{product}"

        [parameters]
        alpha = 0.25
        cmax = {cmax}
        """))
    rows = "\n".join(",".join(map(str, r)) for r in SAMPLE)
    (cal / "parameter_sample.csv").write_text("draw,alpha,cmax[a],cmax[b]\n" + rows + "\n")
    other = folder / "elsewhere"
    other.mkdir()
    (other / "c.toml").write_text("[calibration]\nproduct = \"a\"\n\n[parameters]\nfb = 0.4\n")
    path = folder / "sc.toml"
    path.write_text(_scenario_text('parameter_set = ["calibrated/a.toml", "elsewhere/c.toml"]',
                                   'parameter_set = "calibrated/b.toml"',
                                   'a = { parameter_set = "calibrated/a.toml" }\n'
                                   'b = { parameter_set = "calibrated/b.toml", fb = 0.5 }'))
    return path


def _scenario_text(head, other_arm, options, parameters=""):
    return textwrap.dedent(f"""
    [scenario]
    name = "reps"
    model = "{(MODELS / 'multiphasic.toml').as_posix()}"
    {head}

    {parameters}

    [times]
    start = 0
    end = 40
    step = 0.5

    [population]
    size = 50
    seed = 5
    variability = {{ fold_expansion = 0.0, tmax = 0.2, cmax = 0.3, alpha = 0.3, fb = 0.3, beta = 0.3 }}

    [arms.own]
    share = 1

    [arms.other]
    share = 1
    {other_arm}

    [endpoints.peak]
    type = "cmax"
    output = "transgene"

    [endpoints.high]
    type = "condition"
    expr = "transgene > 30000"
    day = 5

    [endpoints.low]
    type = "first_below"
    output = "transgene"
    threshold = 3000

    [sweep]
    n = 40

    [sweep.axes.product]
    {options}
    """)


def _by_hand(folder: Path, k: int) -> Path:
    """The scenario with draw k's values written out (no parameter set, no sample)."""
    _, alpha, ca, cb = SAMPLE[k]
    path = folder / f"by_hand_{k}.toml"
    path.write_text(_scenario_text("", f"parameters = {{ alpha = {alpha}, cmax = {cb} }}",
                                   f"a = {{ alpha = {alpha}, cmax = {ca} }}\n"
                                   f"b = {{ alpha = {alpha}, cmax = {cb}, fb = 0.5 }}",
                                   parameters=f"[parameters]\nalpha = {alpha}\ncmax = {ca}\nfb = 0.4"))
    return path


def test_a_draw_replaces_every_parameter_set_of_its_folder_and_only_those(tmp_path):
    path = _setup(tmp_path)
    plain = load_scenario(path)
    sample = read_parameter_sample(tmp_path / "calibrated" / "parameter_sample.csv", plain.model)
    assert plain.parameters["cmax"] == 20000.0 and plain.parameters["fb"] == 0.4
    with parameter_draw(sample, 1) as read:
        sc = load_scenario(path)
    assert {p.name for p in read} == {"a.toml", "b.toml"}  # elsewhere/c.toml is not the sample's
    assert sc.parameters["alpha"] == 0.3 and sc.parameters["cmax"] == 25000.0 and sc.parameters["fb"] == 0.4
    arm = sc.arms.arms["other"]
    assert arm.parameters["cmax"].is_num(70000.0)
    # an option's set brings only its product's own values (those that differ from the scenario's set),
    # so the scenario's own [parameters] and --set keep applying at every point
    options = dict(zip(sc.sweep.axes[0].labels, sc.sweep.axes[0].settings))
    assert options["a"]["parameters"] == {}
    assert options["b"]["parameters"] == {"cmax": 70000.0, "fb": 0.5}
    assert load_scenario(path).parameters["cmax"] == 20000.0  # outside the block: the files' values


def test_run_replicates_equal_plain_runs_of_the_draws_and_are_summarised_over_them(tmp_path):
    from carkinetics.cohort.pipeline import run_cohort

    path = _setup(tmp_path)
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["run", str(path), "-o", str(out), "--replicates", "3", "--n", "80", "--seed",
                                  "11", "--jobs", "1"])
    assert r.exit_code == 0, r.output
    per = pd.read_csv(out / "replicates.csv")
    for k in range(3):
        ref = run_cohort(load_scenario(_by_hand(tmp_path, k)), n=80, seed=11, jobs=1, bands=False).summary
        got = per[per["replicate"] == k].rename(columns={"arm": "group"})
        m = ref.merge(got, on=["group", "endpoint", "statistic"], suffixes=("_ref", ""))
        assert len(m) == len(ref) > 10
        assert m["value"].to_numpy(float) == pytest.approx(m["value_ref"].to_numpy(float), rel=1e-12, nan_ok=True)
    summary = pd.read_csv(out / "summary.csv")
    row = summary[(summary["arm"] == "other") & (summary["endpoint"] == "high")
                  & (summary["statistic"] == "proportion")].iloc[0]
    reps = per[(per["arm"] == "other") & (per["endpoint"] == "high") & (per["statistic"] == "proportion")]
    assert row["value"] == pytest.approx(np.median(reps["value"]))
    rv, rl, ru = (reps[c].to_numpy(float) for c in ("value", "lower", "upper"))

    def split_cdf(x):  # each draw a split normal with its own Wilson interval as 95 % interval
        sd = np.where(x < rv, (rv - rl) / Z95, (ru - rv) / Z95)
        return np.mean(np.where(sd > 0, norm.cdf(x, rv, np.where(sd > 0, sd, 1)), (x >= rv) * 1.0))

    lo = brentq(lambda x: split_cdf(x) - 0.025, -1, 2, xtol=1e-12)
    assert row["lower"] == pytest.approx(lo, abs=1e-8)
    assert row["replicates"] == 3
    assert row["lower"] <= row["draws_lower"] <= row["value"] <= row["draws_upper"] <= row["upper"]
    draws = pd.read_csv(out / "draws.csv")
    assert list(draws["cmax[b]"]) == [s[3] for s in SAMPLE]
    info = json.loads((out / "run.json").read_text())
    assert info["replicates"] == 3 and info["seed"] == 11 and "km.csv" in " ".join(info["files"])
    km = pd.read_csv(out / "km.csv")
    assert {"survival", "lower", "upper", "draws_lower", "draws_upper"} <= set(km.columns)


def test_sweep_replicates_folder_is_a_sweep_with_intervals_over_the_draws(tmp_path):
    from carkinetics.studies.sweep_result import load_sweep

    path = _setup(tmp_path)
    out = tmp_path / "sweep"
    args = ["sweep", str(path), "-o", str(out), "--replicates", "2", "--no-progress", "--jobs", "1"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "under 2 parameter draws" in r.output
    res = load_sweep(out)
    reps = [load_sweep(out / "replicates" / f"r{k:03d}") for k in range(2)]
    key = ["point", "arm", "endpoint", "statistic"]
    both = reps[0].summary.merge(reps[1].summary, on=key)
    m = res.summary.merge(both, on=key)
    assert len(m) == len(res.summary) > 20
    expect = np.nanmedian(np.c_[m["value_x"].to_numpy(float), m["value_y"].to_numpy(float)], axis=1)
    assert m["value"].to_numpy(float) == pytest.approx(expect, nan_ok=True)
    # each draw's sweep is the hand-written scenario's sweep
    from carkinetics.studies.sweep import sweep

    hand = sweep(load_scenario(_by_hand(tmp_path, 1)), None, progress=False, jobs=1)
    h = hand.summary.merge(reps[1].summary, on=key)
    assert h["value_x"].to_numpy(float) == pytest.approx(h["value_y"].to_numpy(float), rel=1e-12, nan_ok=True)
    assert res.info["replicates"]["n"] == 2 and res.info["status"] == "complete"
    assert (out / "figures" / "outcomes_1.png").is_file()
    # design effects: option b against a, paired within each draw, for arm "all"
    eff = pd.read_csv(out / "effects.csv")
    row = eff[(eff["axis"] == "product") & (eff["outcome"] == "high")].iloc[0]
    d = []
    for rep in reps:
        s = rep.summary
        v = s[(s["arm"] == "all") & (s["endpoint"] == "high") & (s["statistic"] == "proportion")].set_index("point")
        d.append(v.loc[1, "value"] - v.loc[0, "value"])
    assert row["level"] == "b" and row["reference"] == "a" and row["replicates"] == 2
    assert row["value"] == pytest.approx(np.median(d)) and row["share_positive"] == np.mean(np.array(d) > 0)
    assert row["draws_lower"] == pytest.approx(np.quantile(d, 0.025))
    # resumed: nothing left to do, the same results; the recorded command is the --replicates one
    assert "--replicates 2" in res.info["resume_command"]
    assert load_sweep(out / "replicates" / "r001").info["resume_command"] == res.info["resume_command"]
    r = CliRunner().invoke(main, args + ["--resume"])
    assert r.exit_code == 0, r.output
    assert load_sweep(out).summary["value"].to_numpy(float) == pytest.approx(res.summary["value"].to_numpy(float),
                                                                             nan_ok=True)
    # refused, naming why: again without --resume; a plain sweep into the folder or into one draw's
    # folder; a resume after the sample changed
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "pass --resume" in r.output
    for folder in (out, out / "replicates" / "r000"):
        r = CliRunner().invoke(main, ["sweep", str(path), "-o", str(folder), "--resume", "--no-progress"])
        assert r.exit_code == 1 and "holds results of a sweep with --replicates" in r.output, r.output
    sample = tmp_path / "calibrated" / "parameter_sample.csv"
    sample.write_text(sample.read_text().replace("0.2,15000", "0.21,15000"))
    r = CliRunner().invoke(main, args + ["--resume"])
    assert r.exit_code == 1 and "cannot resume" in r.output and "Traceback" not in r.output
    # --set of a value the options' sets share with the scenario's stays allowed
    r = CliRunner().invoke(main, ["sweep", str(path), "-o", str(tmp_path / "set"), "--replicates", "1",
                                  "--no-progress", "--jobs", "1", "--set", "alpha=0.3", "--no-plots"])
    assert r.exit_code == 0, r.output


def test_replicates_input_errors_are_clear(tmp_path):
    path = _setup(tmp_path)
    runner = CliRunner()
    r = runner.invoke(main, ["run", str(path), "-o", str(tmp_path / "o"), "--replicates", "4", "--n", "5"])
    assert r.exit_code == 1 and "the sample has 3 draws" in r.output and "parameter_sample.csv" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "o").exists()
    r = runner.invoke(main, ["run", str(path), "-o", str(tmp_path / "o"), "--parameter-sample",
                             str(tmp_path / "calibrated" / "parameter_sample.csv")])
    assert r.exit_code == 2 and "--parameter-sample needs --replicates" in r.output
    r = runner.invoke(main, ["sweep", str(path), "-o", str(tmp_path / "o"), "--replicates", "2", "--scheduler",
                             "local"])
    assert r.exit_code == 2 and "--scheduler" in r.output
    bare = _by_hand(tmp_path, 0)  # no parameter set: nothing to draw
    r = runner.invoke(main, ["run", str(bare), "-o", str(tmp_path / "o"), "--replicates", "2", "--n", "5"])
    assert r.exit_code == 1 and "reads no parameter set" in r.output and "Traceback" not in r.output
    bad = tmp_path / "calibrated" / "parameter_sample.csv"
    bad.write_text("draw,alpha,kmax[a]\n0,0.2,3\n")
    r = runner.invoke(main, ["run", str(path), "-o", str(tmp_path / "o"), "--replicates", "1", "--n", "5"])
    assert r.exit_code == 1 and "column 'kmax[a]'" in r.output and str(bad) in r.output
    bad.write_text("draw,alpha,cmax[zzz]\n0,0.2,3\n")
    r = runner.invoke(main, ["run", str(path), "-o", str(tmp_path / "o"), "--replicates", "1", "--n", "5"])
    assert r.exit_code == 1 and "declares product 'zzz'" in r.output
    bad.write_text("draw,alpha\n0,0.2\n1,0.3\n2,7.0\n")  # draw 2 outside alpha's bounds: found before anything runs
    r = runner.invoke(main, ["sweep", str(path), "-o", str(tmp_path / "o"), "--replicates", "3", "--no-progress"])
    assert r.exit_code == 1 and "draw 2, column 'alpha'" in r.output and "outside the model's bounds" in r.output
    bad.write_text("draw,alpha\n0,-1\n")
    with pytest.raises(ScenarioError, match="expected a finite positive number"):
        read_parameter_sample(bad, load_scenario(path).model)
    assert not (tmp_path / "o").exists()
