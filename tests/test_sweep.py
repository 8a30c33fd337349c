"""Sweeps: the grid, streaming aggregation, determinism, resume, Dask, and the CLI.

The toy scenario (tests/data/sweep/toy_sweep.toml) is 2 doses x transplant at day 60
or none x 2 donor arms, 40 virtual patients per point; every statistic is checked
against an independent computation from the saved per-patient tables.
"""

from __future__ import annotations

import copy
import json
import math
import tomllib

import numpy as np
import pandas as pd
import pytest

from conftest import DATA

TOY = DATA / "sweep" / "toy_sweep.toml"


@pytest.fixture(scope="module")
def toy():
    from carkinetics.scenario import load_scenario

    return load_scenario(TOY)


@pytest.fixture(scope="module")
def full_run(toy, tmp_path_factory):
    """One uninterrupted sweep with per-patient tables (1 thread, default chunks)."""
    from carkinetics.sweep import sweep

    out = tmp_path_factory.mktemp("sweep") / "full"
    return sweep(toy, out, jobs=1, per_patient=True)


def _raw():
    return tomllib.loads(TOY.read_text(encoding="utf-8"))


def _scenario(data):
    from carkinetics.scenario import scenario_from_dict

    return scenario_from_dict(data, TOY)


# ----------------------------------------------------------------------------------------
# the [sweep] section
# ----------------------------------------------------------------------------------------


def test_grid_is_the_product_of_the_axes_first_axis_slowest(toy):
    from carkinetics.sweep import NEVER

    spec = toy.sections["sweep"]
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
    spec = sc.sections["sweep"]
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
    from carkinetics.cohort import run_cohort

    data = _raw()
    data["events"] = [e for e in data["events"] if e["name"] != "transplant"]
    data["variables"].pop("transplant_day")
    del data["sweep"]
    no_tx = _scenario(data)
    ref = run_cohort(no_tx, n=40, seed=7, jobs=1, variables={"dose_per_kg": 5e5}, arms=["previous_donor"],
                     bands=False).patients
    got = pd.read_csv(full_run.path / "points" / "0002" / "patients.csv.gz")
    for col in ("cmax", "remission_d28", "relapse", "overall_survival", "overall_survival_event"):
        np.testing.assert_array_equal(got[col].to_numpy(float), ref[col].to_numpy(float))
    # and the transplant at day 60 does change outcomes (the axis is not inert)
    tx = pd.read_csv(full_run.path / "points" / "0000" / "patients.csv.gz")
    assert not np.array_equal(tx["relapse"].to_numpy(float), got["relapse"].to_numpy(float), equal_nan=True)


# ----------------------------------------------------------------------------------------
# determinism, resume, memory-only
# ----------------------------------------------------------------------------------------


def test_same_seed_same_tables_for_threads_and_chunk_sizes(full_run, toy, tmp_path):
    from carkinetics.sweep import sweep

    other = sweep(toy, tmp_path / "j2", jobs=2, chunk_size=7)
    pd.testing.assert_frame_equal(other.summary, full_run.summary)
    pd.testing.assert_frame_equal(other.km, full_run.km)
    pd.testing.assert_frame_equal(other.grid, full_run.grid)
    in_memory = sweep(toy, None, jobs=1, chunk_size=13)
    pd.testing.assert_frame_equal(in_memory.summary.reset_index(drop=True), full_run.summary)


def _interrupt_after(k):
    """A progress object that raises KeyboardInterrupt once k grid points have finished."""
    import io

    from carkinetics.sweep import Progress

    class InterruptAfter(Progress):
        def point_done(self, n_patients=0):
            super().point_done(n_patients)
            if self.points == k:
                raise KeyboardInterrupt

    return InterruptAfter(8, stream=io.StringIO())


def test_interrupted_sweep_keeps_finished_points_and_resumes_to_the_same_result(full_run, toy, tmp_path):
    from carkinetics.sweep import SweepError, load_sweep, sweep

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
    from carkinetics.sweep import sweep

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        res = sweep(toy, tmp_path / "dask", scheduler=client)
    assert res.info["backend"] == "dask"
    pd.testing.assert_frame_equal(res.summary, full_run.summary)
    pd.testing.assert_frame_equal(res.km, full_run.km)


def test_missing_dask_gives_an_install_hint(monkeypatch):
    import builtins

    from carkinetics.sweep import SweepError, import_distributed

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
    from carkinetics.sweep import SweepError

    with pytest.raises(SweepError, match="did you mean 'remission_d28'"):
        res.outcome("remision_d28")
    with pytest.raises(SweepError, match="not one of the Kaplan-Meier summary days"):
        res.outcome("overall_survival", "survival@123.5")
    with pytest.raises(SweepError, match="'overall_survival@day 365': expected endpoint@day with a number"):
        res.parse_outcome("overall_survival@day 365")
    assert res.parse_outcome("cmax:q95") == ("cmax", "q95")


def test_cli_sweep_then_plot(tmp_path):
    from click.testing import CliRunner

    from carkinetics.cli import main

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
