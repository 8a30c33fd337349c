"""Sweeps: the grid, streaming aggregation, determinism, resume, Dask, and the CLI.

The toy scenario (tests/data/sweep/toy_sweep.toml) is 2 doses x transplant at day 60
or none x 2 donor arms, 40 virtual patients per point; every statistic is checked
against an independent computation from the saved per-patient tables.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import tomllib

import numpy as np
import pandas as pd
import pytest

from carkinetics.io.results import exact_float_csv_kw
from conftest import TOY_SWEEP as TOY


@pytest.fixture(scope="module")
def full_run(toy, tmp_path_factory):
    """One uninterrupted sweep with per-patient tables (1 thread, default chunks)."""
    from carkinetics.studies.sweep import sweep

    out = tmp_path_factory.mktemp("sweep") / "full"
    return sweep(toy, out, jobs=1, per_patient=True)


def _raw():
    return tomllib.loads(TOY.read_text(encoding="utf-8"))


def _scenario(data):
    from carkinetics.scenario.load import scenario_from_dict

    return scenario_from_dict(data, TOY)


# ----------------------------------------------------------------------------------------
# the [sweep] section
# ----------------------------------------------------------------------------------------


def test_grid_is_the_product_of_the_axes_first_axis_slowest(toy):
    from carkinetics.scenario.grid import NEVER

    spec = toy.sweep
    assert [a.name for a in spec.axes] == ["dose_per_kg", "transplant_day", "arm"]
    assert [a.kind for a in spec.axes] == ["variable", "variable", "arm"]
    points = spec.points()
    expected = [(d, t, a) for d in (5e5, 2e6) for t in (60, "none") for a in ("previous_donor", "new_donor")]
    assert [(p.labels["dose_per_kg"], p.labels["transplant_day"], p.labels["arm"]) for p in points] == expected
    assert [p.id for p in points] == list(range(8))
    # "none": the transplant's time is pushed beyond any horizon
    assert points[2].variables == {"dose_per_kg": 5e5, "transplant_day": NEVER}
    assert points[2].arm == "previous_donor" and points[3].arm == "new_donor"
    assert NEVER > 1e3 * toy.horizon


def test_parameter_and_option_axes(toy):
    data = _raw()
    del data["sweep"]["plots"]
    data["sweep"]["axes"] = {"expansion": [0.3, 0.9],
                             "product": {"cd7": {"kill": 2e-9, "dose_per_kg": 1e6},
                                         "cd5": {"kill": 5e-10, "dose_per_kg": 2e6}}}
    sc = _scenario(data)
    spec = sc.sweep
    assert [a.kind for a in spec.axes] == ["parameter", "options"]
    pts = spec.points()
    assert len(pts) == 4
    assert pts[1].labels == {"expansion": 0.3, "product": "cd5"}
    assert pts[1].parameters == {"expansion": 0.3, "kill": 5e-10}
    assert pts[1].variables == {"dose_per_kg": 2e6}
    assert pts[1].arm is None


def test_bad_sweep_section_reports_every_problem_at_once():
    from carkinetics.errors import ScenarioError

    data = _raw()
    data["sweep"]["n"] = 0
    data["sweep"]["axes"] = {
        "dose_per_kgg": [1e6],                      # misspelled variable
        "growth": [0.001, 0.05],                    # below the model's bounds [0.01, 0.1]
        "expansion": [0.3, 0.5],
        "dose_per_kg": [1e6, "none"],               # 'none' for a variable that is no event time
        "arm": ["previous_donor", "old_donor"],     # unknown arm
        "product": {"cd7": {"expansion": 0.5}},     # expansion already varies on its own axis
    }
    with pytest.raises(ScenarioError) as err:
        _scenario(data)
    msg = str(err.value)
    assert "sweep.n" in msg
    assert "sweep.axes.dose_per_kgg" in msg and "did you mean 'dose_per_kg'" in msg
    assert "growth = 0.001 is outside the model's bounds [0.01, 0.1]" in msg
    assert "'none' needs 'dose_per_kg' to be the time of an event" in msg
    assert "'old_donor' is not an arm" in msg
    assert "'expansion' is also set by axis" in msg


# ----------------------------------------------------------------------------------------
# aggregation equals the per-patient tables
# ----------------------------------------------------------------------------------------


def _wilson(k, n, z=1.959963984540054):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return p, centre - half, centre + half


def _km_at(t, e, day):
    """Product-limit estimate at ``day`` by a plain loop over distinct event times."""
    s = 1.0
    for u in np.unique(t[(e == 1) & (t <= day)]):
        at_risk = np.sum(t >= u)
        deaths = np.sum((t == u) & (e == 1))
        s *= 1 - deaths / at_risk
    return s


def test_summary_equals_statistics_of_the_per_patient_table(full_run):
    res = full_run
    assert res.info["status"] == "complete"
    assert sorted(res.info["finished"]) == list(range(8))
    for pid in range(8):
        patients = pd.read_csv(res.path / "points" / f"{pid:04d}" / "patients.csv.gz")
        ok = patients[patients["status"] == 0]
        assert len(patients) == 40
        rows = res.summary[res.summary["point"] == pid].set_index(["endpoint", "statistic"])
        # a binary endpoint: proportion and Wilson interval from k / n
        x = ok["remission_d28"].dropna()
        p, lo, hi = _wilson(int(x.sum()), len(x))
        got = rows.loc[("remission_d28", "proportion")]
        assert got["value"] == pytest.approx(p, abs=1e-12)
        assert got["lower"] == pytest.approx(lo, abs=1e-9) and got["upper"] == pytest.approx(hi, abs=1e-9)
        assert got["n"] == len(x)
        # antigen-negative relapse among relapsing patients
        x = ok["antigen_negative_relapse"].dropna()
        if len(x):
            assert rows.loc[("antigen_negative_relapse", "proportion"), "value"] == pytest.approx(x.mean(), abs=1e-12)
        # quantiles of Cmax, Tmax and aplasia duration
        for ep in ("cmax", "tmax", "aplasia_days"):
            v = ok[ep].dropna().to_numpy()
            for stat, q in (("median", 0.5), ("q05", 0.05), ("q95", 0.95)):
                assert rows.loc[(ep, stat), "value"] == pytest.approx(np.quantile(v, q), rel=1e-12)
        # Kaplan-Meier summary on the fixed day grid
        km = res.km[(res.km["point"] == pid) & (res.km["endpoint"] == "overall_survival")]
        t = ok["overall_survival"].to_numpy(float)
        e = ok["overall_survival_event"].to_numpy(float)
        for day in (30.0, 180.0, 300.0):
            got = km[np.isclose(km["time"], day)]
            assert len(got) == 1
            assert got["survival"].iloc[0] == pytest.approx(_km_at(t, e, day), abs=1e-12)
            assert got["n_at_risk"].iloc[0] == np.sum(t > day)


def test_common_random_numbers_same_patients_at_every_point(full_run):
    """Every point treats the same virtual patients: covariates and drawn parameters agree."""
    path = full_run.path / "points"
    tables = [pd.read_csv(path / f"{pid:04d}" / "patients.csv.gz") for pid in range(8)]
    shared = ["patient", "weight", "param_blasts0", "param_neg_fraction", "param_kill"]
    for t in tables[1:]:
        pd.testing.assert_frame_equal(t[shared], tables[0][shared])
    # within an arm, even the arm-modified expansion parameter is the same across doses
    pd.testing.assert_series_equal(tables[0]["param_expansion"], tables[4]["param_expansion"])
    np.testing.assert_allclose(tables[1]["param_expansion"], 0.7 * tables[0]["param_expansion"], rtol=1e-12)


def test_none_means_the_event_never_happens(full_run, toy):
    """Point 2 (transplant 'none') equals the scenario without its transplant event."""
    from carkinetics.cohort.pipeline import run_cohort

    data = _raw()
    data["events"] = [e for e in data["events"] if e["name"] != "transplant"]
    data["variables"].pop("transplant_day")
    del data["sweep"]
    no_tx = _scenario(data)
    ref = run_cohort(no_tx, n=40, seed=7, jobs=1, variables={"dose_per_kg": 5e5}, arms=["previous_donor"],
                     bands=False).patients
    got = pd.read_csv(full_run.path / "points" / "0002" / "patients.csv.gz", **exact_float_csv_kw())
    for col in ("cmax", "remission_d28", "relapse", "overall_survival", "overall_survival_event"):
        np.testing.assert_array_equal(got[col].to_numpy(float), ref[col].to_numpy(float))
    # and the transplant at day 60 does change outcomes (the axis is not inert)
    tx = pd.read_csv(full_run.path / "points" / "0000" / "patients.csv.gz")
    assert not np.array_equal(tx["relapse"].to_numpy(float), got["relapse"].to_numpy(float), equal_nan=True)


# ----------------------------------------------------------------------------------------
# determinism, resume, memory-only
# ----------------------------------------------------------------------------------------


def test_same_seed_same_tables_for_threads_and_chunk_sizes(full_run, toy, tmp_path):
    from carkinetics.studies.sweep import sweep

    other = sweep(toy, tmp_path / "j2", jobs=2, chunk_size=7)
    pd.testing.assert_frame_equal(other.summary, full_run.summary)
    pd.testing.assert_frame_equal(other.km, full_run.km)
    pd.testing.assert_frame_equal(other.grid, full_run.grid)
    in_memory = sweep(toy, None, jobs=1, chunk_size=13)
    pd.testing.assert_frame_equal(in_memory.summary.reset_index(drop=True), full_run.summary)


def _interrupt_after(k):
    """A progress object that raises KeyboardInterrupt once k grid points have finished."""
    import io

    from carkinetics.progress import Progress

    class InterruptAfter(Progress):
        def point_done(self, n_patients=0):
            super().point_done(n_patients)
            if self.points == k:
                raise KeyboardInterrupt

    return InterruptAfter(8, stream=io.StringIO())


def test_interrupted_sweep_keeps_finished_points_and_resumes_to_the_same_result(full_run, toy, tmp_path):
    from carkinetics.studies.sweep import SweepError, load_sweep, sweep

    out = tmp_path / "resume"
    bar = _interrupt_after(3)
    with pytest.raises(KeyboardInterrupt):
        sweep(toy, out, jobs=1, per_patient=True, progress=bar)
    info = json.loads((out / "sweep.json").read_text())
    assert info["status"] == "interrupted"
    assert sorted(info["finished"]) == [0, 1, 2]
    partial = load_sweep(out)
    assert sorted(set(partial.summary["point"])) == [0, 1, 2]
    assert sorted(set(pd.read_csv(out / "summary.csv")["point"])) == [0, 1, 2]
    # a new run into the same folder must say --resume; a different n cannot resume
    with pytest.raises(SweepError, match="--resume"):
        sweep(toy, out, jobs=1, per_patient=True)
    with pytest.raises(SweepError, match="cannot resume"):
        sweep(toy, out, n=41, jobs=1, per_patient=True, resume=True)
    resumed = sweep(toy, out, jobs=1, per_patient=True, resume=True)
    assert resumed.info["status"] == "complete"
    pd.testing.assert_frame_equal(resumed.summary, full_run.summary)
    pd.testing.assert_frame_equal(resumed.km, full_run.km)
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), pd.read_csv(full_run.path / "summary.csv"))


# ----------------------------------------------------------------------------------------
# Dask
# ----------------------------------------------------------------------------------------


def test_local_dask_cluster_gives_the_identical_table(full_run, toy, tmp_path):
    distributed = pytest.importorskip("distributed")
    from carkinetics.studies.sweep import sweep

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        res = sweep(toy, tmp_path / "dask", scheduler=client)
    assert res.info["backend"] == "dask"
    pd.testing.assert_frame_equal(res.summary, full_run.summary)
    pd.testing.assert_frame_equal(res.km, full_run.km)


def test_missing_dask_gives_an_install_hint(monkeypatch):
    import builtins

    from carkinetics.scenario.grid import SweepError
    from carkinetics.studies.dask import import_distributed

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "distributed":
            raise ImportError("no distributed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(SweepError, match=r"pip install 'carkinetics\[distributed\]'"):
        import_distributed()


# ----------------------------------------------------------------------------------------
# results API and command line
# ----------------------------------------------------------------------------------------


def test_outcome_table_and_survival_at_a_day(full_run):
    res = full_run
    table = res.outcome("remission_d28")
    assert list(table["point"]) == list(range(8))
    assert {"dose_per_kg", "transplant_day", "arm", "value", "lower", "upper", "n"} <= set(table.columns)
    assert ((table["lower"] <= table["value"]) & (table["value"] <= table["upper"])).all()
    endpoint, stat = res.parse_outcome("overall_survival@365")
    assert (endpoint, stat) == ("overall_survival", "survival@365")
    surv = res.outcome(endpoint, stat)
    km = res.km[(res.km["endpoint"] == "overall_survival") & np.isclose(res.km["time"], 365)]
    np.testing.assert_allclose(surv["value"], km.sort_values("point")["survival"])
    from carkinetics.studies.sweep import SweepError

    with pytest.raises(SweepError, match="did you mean 'remission_d28'"):
        res.outcome("remision_d28")
    with pytest.raises(SweepError, match="not one of the Kaplan-Meier summary days"):
        res.outcome("overall_survival", "survival@123.5")
    with pytest.raises(SweepError, match="'overall_survival@day 365': expected endpoint@day with a number"):
        res.parse_outcome("overall_survival@day 365")
    assert res.parse_outcome("cmax:q95") == ("cmax", "q95")


def test_cli_sweep_then_plot(tmp_path):
    from click.testing import CliRunner

    from carkinetics.cli.main import main

    out = tmp_path / "cli"
    runner = CliRunner()
    r = runner.invoke(main, ["sweep", str(TOY), "-o", str(out), "--n", "12", "--jobs", "1", "--no-plots",
                             "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "8 of 8 grid points finished" in r.output
    for f in ("grid.csv", "summary.csv", "km.csv", "sweep.json"):
        assert (out / f).exists()
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.loc[summary["statistic"] == "missing", "n"]) == {12}
    again = runner.invoke(main, ["sweep", str(TOY), "-o", str(out), "--n", "12", "--no-plots", "--no-progress"])
    assert again.exit_code == 1 and "--resume" in again.output and "Traceback" not in again.output
    r = runner.invoke(main, ["plot", str(out), "--format", "png"])
    assert r.exit_code == 0, r.output
    assert len(list((out / "figures").glob("*.png"))) >= 3
    bad = runner.invoke(main, ["plot", str(tmp_path)])
    assert bad.exit_code == 1 and "not a sweep or sensitivity results folder" in bad.output


def test_copy_of_raw_is_not_mutated():
    """Parsing must not alter the raw TOML tables (they are reused by resume fingerprints)."""
    data = _raw()
    before = copy.deepcopy(data)
    _scenario(data)
    assert data == before


# ----------------------------------------------------------------------------------------
# issue 12: what a resume checks, a failing first point, large grids, bad output folders
# ----------------------------------------------------------------------------------------


def _toy_with_parameter_set(folder, expansion=0.5, head_extra=""):
    """The toy sweep copied into ``folder`` with ``[scenario] parameter_set = "set.toml"``."""
    import shutil

    shutil.copy(TOY.parent / "toy_model.toml", folder / "toy_model.toml")
    text = TOY.read_text(encoding="utf-8").replace(
        'model = "toy_model.toml"', f'model = "toy_model.toml"\nparameter_set = "set.toml"{head_extra}')
    (folder / "scenario.toml").write_text(text, encoding="utf-8")
    (folder / "set.toml").write_text(f"[parameters]\nexpansion = {expansion}\n", encoding="utf-8")
    return folder / "scenario.toml"


def test_resume_is_refused_when_a_parameter_set_changed_and_names_it(tmp_path):
    from carkinetics.scenario.load import load_scenario
    from carkinetics.studies.sweep import SweepError, sweep

    path = _toy_with_parameter_set(tmp_path)
    out = tmp_path / "out"
    first = sweep(load_scenario(path), out, n=6, jobs=1, points=[0])
    assert first.info["finished"] == [0]
    old_sha = hashlib.sha256((tmp_path / "set.toml").read_bytes()).hexdigest()
    # another calibration's parameter set: the sweep there cannot be continued with it
    (tmp_path / "set.toml").write_text("[parameters]\nexpansion = 0.45\n", encoding="utf-8")
    with pytest.raises(SweepError) as err:
        sweep(load_scenario(path), out, n=6, jobs=1, resume=True)
    msg = str(err.value)
    assert "cannot resume" in msg and "parameter_set file" in msg and str(tmp_path / "set.toml") in msg
    assert old_sha[:16] in msg
    info = json.loads((out / "sweep.json").read_text())
    assert set(info["inputs"]) == {"scenario", "model", "parameter_set"}
    assert info["inputs"]["parameter_set"]["sha256"] == old_sha
    assert json.loads((out / "sweep.json").read_text())["finished"] == [0]  # nothing touched
    # the same inputs again: the sweep continues
    (tmp_path / "set.toml").write_text("[parameters]\nexpansion = 0.5\n", encoding="utf-8")
    resumed = sweep(load_scenario(path), out, n=6, jobs=1, resume=True, points=[0, 1])
    assert resumed.info["finished"] == [0, 1] and resumed.info["point_stats"].keys() == {"0", "1"}
    # a changed model file or option is named too
    with pytest.raises(SweepError, match=r"the seed differs: 7 when the sweep started, 8 now"):
        sweep(load_scenario(path), out, n=6, seed=8, jobs=1, resume=True)


def test_the_printed_resume_command_works(tmp_path, monkeypatch):
    """Interrupted with options (n, seed, points, per-patient) and a folder with a space in its
    name: the hint is a command that resumes that very sweep."""
    import shlex

    from click.testing import CliRunner

    import carkinetics.studies.sweep as sweep_module
    from carkinetics.cli.main import main

    path = _toy_with_parameter_set(tmp_path)
    out = tmp_path / "my results"
    real = sweep_module.run_point
    calls = []

    def interrupt_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "run_point", interrupt_second)
    r = CliRunner().invoke(main, ["sweep", str(path), "-o", str(out), "--n", "5", "--seed", "3", "--points",
                                  "1,2,5", "--per-patient", "--jobs", "1", "--no-progress", "--no-plots"])
    assert r.exit_code == 130, r.output
    hint = r.output.split("continue with: ", 1)[1].strip()
    args = shlex.split(hint)
    assert args[:2] == ["carkinetics", "sweep"] and args[-1] == "--resume"
    for part in (["--n", "5"], ["--seed", "3"], ["--points", "1,2,5"], ["--per-patient"], ["-o", str(out)]):
        assert " ".join(part) in " ".join(args), part
    monkeypatch.setattr(sweep_module, "run_point", real)
    # without the options the folder's sweep is not continued (another n, another seed)
    r = CliRunner().invoke(main, ["sweep", str(path), "-o", str(out), "--resume", "--no-progress", "--no-plots"])
    assert r.exit_code == 1 and "cannot resume" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, args[1:] + ["--no-progress", "--no-plots"])
    assert r.exit_code == 0, r.output
    info = json.loads((out / "sweep.json").read_text())
    assert info["finished"] == [1, 2, 5] and info["n"] == 5 and info["seed"] == 3
    assert (out / "points" / "0005" / "patients.csv.gz").exists()


def test_a_sweep_failing_on_its_first_point_can_be_rerun(tmp_path, monkeypatch):
    import carkinetics.studies.sweep as sweep_module
    from carkinetics.errors import CarKineticsError
    from carkinetics.scenario.load import load_scenario

    sc = load_scenario(_toy_with_parameter_set(tmp_path))
    out = tmp_path / "out"
    real = sweep_module.run_point

    def fail(*args, **kwargs):
        raise CarKineticsError("the first point failed")

    monkeypatch.setattr(sweep_module, "run_point", fail)
    with pytest.raises(CarKineticsError, match="the first point failed"):
        sweep_module.sweep(sc, out, n=5, jobs=1, points=[0, 1])
    assert not (out / "sweep.json").exists()
    monkeypatch.setattr(sweep_module, "run_point", real)
    res = sweep_module.sweep(sc, out, n=5, jobs=1, points=[0])  # a corrected rerun: no --resume needed
    assert res.info["finished"] == [0]
    # a sweep.json of an older version that recorded no finished point does not block a rerun either
    info = json.loads((out / "sweep.json").read_text())
    info["finished"] = []
    (out / "sweep.json").write_text(json.dumps(info))
    assert sweep_module.sweep(sc, out, n=5, jobs=1, points=[1]).info["finished"] == [1]


def test_grid_points_are_decoded_from_their_ids(toy):
    spec = toy.sweep
    assert spec.n_points == 8
    assert [spec.point(i) for i in range(8)] == spec.points()
    assert spec.points([5, 2]) == [spec.points()[5], spec.points()[2]]


def test_only_the_requested_points_of_a_large_grid_are_built(tmp_path, monkeypatch):
    import time

    from carkinetics.errors import ScenarioError
    from carkinetics.studies.sweep import sweep

    data = _raw()
    del data["sweep"]["plots"]
    data["sweep"]["axes"] = {"dose_per_kg": [1e5 + 1e3 * k for k in range(1000)],
                             "transplant_day": list(range(1000))}
    sc = _scenario(data)
    spec = sc.sweep
    assert spec.n_points == 1_000_000  # the largest grid accepted
    start = time.perf_counter()
    res = sweep(sc, tmp_path / "big", n=3, jobs=1, points=[0, 999_999])
    assert time.perf_counter() - start < 60
    assert res.info["finished"] == [0, 999_999]
    grid = pd.read_csv(tmp_path / "big" / "grid.csv")
    assert list(grid["point"]) == [0, 999_999]
    assert grid.iloc[1].to_dict() == {"point": 999_999, "dose_per_kg": 1e5 + 999e3, "transplant_day": 999}
    # 600 x 600 x 600 = 216 million points: refused from the axis lengths, with the size
    data["sweep"]["axes"] = {"dose_per_kg": [1e5 + k for k in range(600)], "transplant_day": list(range(600)),
                             "expansion": [0.3 + k * 1e-4 for k in range(600)]}
    with pytest.raises(ScenarioError, match=r"the grid has 216,000,000 points \(600 dose_per_kg x 600 "
                                            r"transplant_day x 600 expansion\); a sweep accepts at most 1,000,000"):
        _scenario(data)


def test_a_bad_output_folder_is_refused_before_any_point_is_computed(toy, tmp_path, monkeypatch):
    from click.testing import CliRunner

    import carkinetics.studies.sweep as sweep_module
    from carkinetics.cli.main import main
    from carkinetics.errors import CarKineticsError

    def must_not_run(*args, **kwargs):
        raise AssertionError("a grid point was computed")

    monkeypatch.setattr(sweep_module, "run_point", must_not_run)
    a_file = tmp_path / "results.txt"
    a_file.write_text("x")
    for bad, message in (("", "empty"), ("/dev/null", "device"), (str(a_file), "is a file"),
                         (str(a_file / "sub"), "is a file, not a folder")):
        with pytest.raises(CarKineticsError, match=message):
            sweep_module.sweep(toy, bad, jobs=1)
        r = CliRunner().invoke(main, ["sweep", str(TOY), "-o", bad, "--no-progress", "--no-plots"])
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, (bad, r.output)
    assert a_file.read_text() == "x"


def test_staging_left_by_a_killed_run_is_removed_and_a_drawn_seed_is_kept(tmp_path):
    from carkinetics.studies.sweep import sweep

    data = _raw()
    del data["sweep"]["seed"]
    del data["population"]["seed"]
    sc = _scenario(data)
    out = tmp_path / "out"
    first = sweep(sc, out, n=4, jobs=1, points=[0])
    assert first.info["seed_source"] == "drawn"
    import os

    # staging folders of a run killed long ago (names as tempfile.mkdtemp makes them)
    for stale in (out / "points" / ".0001.abcd1234.partial", tmp_path / ".out.efgh5678.partial"):
        stale.mkdir()
        (stale / "summary.csv").write_text("half")
        for f in (stale / "summary.csv", stale):
            os.utime(f, (0, 0))
    (out / ".sweep.json.ijkl.tmp").write_text("{")
    again = sweep(sc, out, n=4, jobs=1, points=[1], resume=True)  # the drawn seed is reused, not redrawn
    assert again.info["seed"] == first.info["seed"] and again.info["finished"] == [0, 1]
    assert not list(out.rglob("*.partial")) and not list(tmp_path.glob(".out.*")) and not list(out.glob("*.tmp"))


def test_sweep_section_limits_and_no_echo_of_a_bad_axis_under_plots():
    from carkinetics.errors import ScenarioError

    data = _raw()
    data["sweep"].update({"seed": 10 ** 20, "n": 10 ** 30, "km_step": 1e-9})
    data["sweep"]["axes"]["dose_per_kg"] = [5e5, float("nan")]
    data["sweep"]["plots"]["outcomes"] = "remission_d28"
    with pytest.raises(ScenarioError) as err:
        _scenario(data)
    msg = str(err.value)
    assert "sweep.seed: expected a whole number from 0 to 2**63 - 1" in msg
    assert "sweep.n: expected a whole number of virtual patients per point from 1 to" in msg
    assert "sweep.km_step: 1e-09 days over 365 days of follow-up gives more than 10,000" in msg
    assert "sweep.axes.dose_per_kg: expected numbers" in msg
    assert "sweep.plots.outcomes: expected a list of endpoint names" in msg
    assert "sweep.plots.x" not in msg and "heatmaps" not in msg  # the bad axis is reported once


def test_set_is_applied_recorded_and_part_of_a_resume(tmp_path):
    """``--set weight=75``: every patient weighs 75 kg, sweep.json records it, the resume command repeats
    it, a resume without it is refused, and a name the grid sets is refused (exit status 2)."""
    import shlex

    from click.testing import CliRunner

    from carkinetics.cli.main import main
    from carkinetics.scenario.load import load_scenario
    from carkinetics.studies.sweep import SweepError, sweep

    out = tmp_path / "out"
    res = sweep(load_scenario(TOY), out, n=6, jobs=1, points=[0], per_patient=True, overrides={"weight": 75.0})
    patients = pd.read_csv(out / "points" / "0000" / "patients.csv.gz")
    assert (patients["weight"] == 75).all()
    info = json.loads((out / "sweep.json").read_text())
    assert info["overrides"] == {"weight": 75.0} and info["settings"]["overrides"] == {"weight": 75.0}
    assert res.info["overrides"] == {"weight": 75.0}
    assert ["--set", "weight=75.0"] == shlex.split(info["resume_command"])[-3:-1]
    with pytest.raises(SweepError, match=r"the set of --set values differs: \{.weight.: 75.0\} when the sweep started, \{\} now"):
        sweep(load_scenario(TOY), out, n=6, jobs=1, resume=True, per_patient=True)
    r = CliRunner().invoke(main, shlex.split(info["resume_command"])[1:] + ["--points", "0,1", "--no-progress",
                                                                            "--no-plots"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "sweep.json").read_text())["finished"] == [0, 1]
    r = CliRunner().invoke(main, ["sweep", str(TOY), "-o", str(tmp_path / "never"), "--set", "dose_per_kg=2e6"])
    assert r.exit_code == 2 and "Error: --set dose_per_kg: 'dose_per_kg' is set by the axis" in r.output
    assert not (tmp_path / "never").exists()
