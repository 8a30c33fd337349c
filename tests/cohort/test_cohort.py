"""Streaming cohort runner (issue 3, parts 4 and 5): reproducibility, bands, events, files, CLI."""

import math
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from carkinetics import simulate
from carkinetics.cli.main import main
from carkinetics.cohort.bands import QUANTILE_COLUMNS, QUANTILES, BandHistogram, BandHistograms, output_planes
from carkinetics.cohort.chunk import CohortError
from carkinetics.cohort.pipeline import run_cohort
from carkinetics.cohort.result import load_cohort_result
from carkinetics.io.results import exact_float_csv_kw
from carkinetics.io.csv import write_csv
from carkinetics.scenario.sampling import cohort_design
from carkinetics.scenario.load import load_scenario
from carkinetics.simulation.schedule import Action, Event, Schedule

from conftest import DATA, SCENARIOS

COHORT = DATA / "scenarios" / "cohort_linear.toml"
BIN = 2.0 ** -6  # the widest band bin, relative to its value


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(COHORT)


@pytest.fixture(scope="module")
def reference(scenario):
    """400 patients, default chunk size, all threads, every trajectory kept."""
    return run_cohort(scenario, n=400, keep_trajectories=True)


# ---------------------------------------------------------------------------------------
# streaming histograms
# ---------------------------------------------------------------------------------------


def test_band_quantiles_are_within_one_bin_of_the_exact_ones():
    rng = np.random.default_rng(0)
    x = np.exp(rng.normal(0, 6, size=(3000, 7)))
    x[:200, 1] = 0.0                 # exact zeros
    x[200:400, 2] *= -1              # negative values
    x[400:420, 3] = 1e-300           # below the floor
    x[420, 4] = np.nan               # missing
    ok = np.ones(3000, dtype=bool)
    ok[-50:] = False                 # failed patients are left out
    h = BandHistogram(7)
    h.add(x, ok)
    q = h.quantiles()
    for t in range(7):
        col = x[ok, t]
        col = col[~np.isnan(col)]
        exact = np.quantile(col, QUANTILES, method="inverted_cdf")
        floor = 2.0 ** -70
        for got, want in zip(q[t], exact):
            if abs(want) < floor:
                assert abs(got) <= floor
            else:
                assert abs(got - want) <= BIN * abs(want), (t, got, want)
    assert h.counts[4] == 2950 - 1 and h.nans[4] == 1
    assert h.counts[0] == 2950


@pytest.mark.parametrize("buffer", [1 << 16, 3])  # 3: values outside the range overflow the list
def test_histograms_do_not_depend_on_how_values_are_split(monkeypatch, buffer):
    import carkinetics.cohort.bands as bands

    monkeypatch.setattr(bands, "_MISSED_BUFFER", buffer)
    rng = np.random.default_rng(1)
    x = np.exp(rng.normal(0, 10, size=(2000, 5)))
    ok = rng.random(2000) > 0.1
    whole = BandHistogram(5)
    whole.add(x, ok)
    parts = BandHistogram(5)
    for a, b in ((0, 1), (1, 333), (333, 1500), (1500, 2000)):
        parts.add(x[a:b], ok[a:b])
    np.testing.assert_array_equal(whole.quantiles(), parts.quantiles())
    np.testing.assert_array_equal(whole.counts, parts.counts)
    merged = BandHistogram(5)
    merged.add(x[:700], ok[:700])
    other = BandHistogram(5)
    other.add(x[700:], ok[700:])
    np.testing.assert_array_equal(merged.merged(other).quantiles(), whole.quantiles())
    # and the counts are those of numpy's histogram on the same bins
    keys = x.view(np.int64) >> (52 - 6)
    for t in range(5):
        k, c = np.unique(keys[ok, t], return_counts=True)
        np.testing.assert_array_equal(whole.pos[k - whole.pos_lo, t], c)


@pytest.mark.parametrize("buffer", [1 << 16, 5])  # 5: values outside the ranges overflow the list
def test_a_set_of_histograms_counts_each_column_of_the_block_as_numpy_does(monkeypatch, buffer):
    # columns in any order, a column counted twice, two blocks (outputs and states) into one set,
    # chunks of any size: each histogram's counts are numpy's on the same bins, and its quantiles
    # those of a BandHistogram of that column alone
    import carkinetics.cohort.bands as bands

    monkeypatch.setattr(bands, "_MISSED_BUFFER", buffer)
    rng = np.random.default_rng(4)
    n, n_t = 900, 6
    block = np.exp(rng.normal(0, 12, size=(n, n_t, 5)))  # ranges grow as the chunks arrive
    block[:, :, 1] *= np.where(rng.random((n, n_t)) < 0.3, -1.0, 1.0)  # both signs
    block[rng.random((n, n_t)) < 0.1, 2] = 0.0
    block[5, 3, 2] = np.nan
    block[7, 1, 4] = 1e-300  # below the floor
    states = rng.normal(size=(n, n_t, 2))
    ok = rng.random(n) > 0.05
    columns, slots = [3, 0, 1, 2, 4, 3], [0, 1, 2, 3, 4, 6]
    hs = BandHistograms(n_t, 7)
    for a, b in ((0, 1), (1, 250), (250, 251), (251, 900)):
        hs.add(block[a:b], columns, slots, ok[a:b])
        hs.add(states[a:b], [1], [5], ok[a:b])
    planes = {s: block[:, :, c] for c, s in zip(columns, slots)} | {5: states[:, :, 1]}
    for s, x in planes.items():
        h = hs.histogram(s)
        x = x[ok]
        for side, arr, lo, sel in ((1, h.pos, h.pos_lo, x > 0), (-1, h.neg, h.neg_lo, x < 0)):
            keys = np.clip((np.abs(x).view(np.int64) >> (52 - 6)), bands._KEY_UNDER, bands._KEY_OVER)
            for t in range(n_t):
                k, c = np.unique(keys[sel[:, t], t], return_counts=True)
                got = np.zeros(len(k), dtype=np.int64) if arr.shape[0] == 0 else arr[k - lo, t]
                np.testing.assert_array_equal(got, c)
                assert arr[:, t].sum() == sel[:, t].sum() if arr.shape[0] else not sel[:, t].any()
        np.testing.assert_array_equal(h.zeros, (x == 0).sum(axis=0))
        np.testing.assert_array_equal(h.nans, np.isnan(x).sum(axis=0))
        alone = BandHistogram(n_t)
        alone.add(planes[s], ok)
        np.testing.assert_array_equal(h.quantiles(), alone.quantiles())
    assert hs.nbytes > 0


@pytest.mark.parametrize("fold_at", [None, 700])  # 700: the parts fold into 64-bit counts, blocks split
def test_counts_carry_past_a_byte_and_fold_as_numpy_counts(monkeypatch, fold_at):
    # cells far past 255 (a constant column, rounded values that share bins), a column counted
    # twice into one histogram, both signs: the counts are numpy's, whether or not they fold
    import carkinetics.cohort.bands as bands

    if fold_at is not None:
        monkeypatch.setattr(bands, "_FOLD_AT", fold_at)
    rng = np.random.default_rng(8)
    n, n_t = 3000, 4
    block = np.stack([np.full((n, n_t), 2.5), np.round(rng.normal(0, 3, size=(n, n_t)), 1),
                      np.exp(rng.normal(0, 5, size=(n, n_t)))], axis=2)
    ok = rng.random(n) > 0.02
    hs = BandHistograms(n_t, 2)
    for a, b in ((0, 999), (999, 1000), (1000, n)):
        hs.add(block[a:b], [0, 1, 2, 1], [0, 1, 1, 1], ok[a:b])
    for s, x in ((0, block[ok][:, :, 0]), (1, np.concatenate([block[ok][:, :, c] for c in (1, 2, 1)]))):
        h = hs.histogram(s)
        keys = np.abs(x).view(np.int64) >> (52 - 6)
        for arr, lo, sel in ((h.pos, h.pos_lo, x > 0), (h.neg, h.neg_lo, x < 0)):
            for t in range(n_t):
                k, c = np.unique(keys[sel[:, t], t], return_counts=True)
                np.testing.assert_array_equal(arr[k - lo, t], c)
                assert arr[:, t].sum() == sel[:, t].sum()
        np.testing.assert_array_equal(h.zeros, (x == 0).sum(axis=0))
    assert hs.histogram(0).pos.max() == ok.sum() > 2 * 255
    if fold_at is None:  # 3 bytes per (bin, time) cell, plus the zeros and NaNs
        h = hs.histogram(1)
        assert h.nbytes == 3 * (h.pos.size + h.neg.size) + 2 * 8 * n_t


@pytest.mark.parametrize("fold_at", [None, 50])  # 50: the block is counted in parts of 25 rows
def test_the_counting_pass_copies_the_endpoint_columns_of_every_patient(monkeypatch, fold_at):
    # the planes are numpy's columns of the block for every patient, failed ones included, and
    # the counts are those of a pass that copies nothing
    import carkinetics.cohort.bands as bands

    if fold_at is not None:
        monkeypatch.setattr(bands, "_FOLD_AT", fold_at)
    rng = np.random.default_rng(9)
    n, n_t = 301, 7
    block = np.exp(rng.normal(0, 4, size=(n, n_t, 5)))
    block[rng.random((n, n_t)) < 0.2, 2] = 0.0
    ok = rng.random(n) > 0.2
    planes = np.full((2, n, n_t), np.nan)
    with_planes, without = BandHistograms(n_t, 5), BandHistograms(n_t, 5)
    with_planes.add(block, [0, 1, 2, 3, 4], [4, 3, 2, 1, 0], ok, planes, [-1, 1, 0, -1, -1])
    without.add(block, [0, 1, 2, 3, 4], [4, 3, 2, 1, 0], ok)
    np.testing.assert_array_equal(planes[0], block[:, :, 2])
    np.testing.assert_array_equal(planes[1], block[:, :, 1])
    for s in range(5):
        a, b = with_planes.histogram(s), without.histogram(s)
        np.testing.assert_array_equal(a.pos, b.pos)
        np.testing.assert_array_equal(a.zeros, b.zeros)
        assert a.pos[:, 0].sum() + a.zeros[0] == ok.sum()


def test_histogram_memory_is_bounded_whatever_the_values():
    h = BandHistogram(10)
    h.add(np.array([[1e-300] * 10, [1e300] * 10, [-1e-300] * 10, [-1e300] * 10]), np.ones(4, dtype=bool))
    # 170 octaves (2^-70 .. 2^100) x 64 bins x 10 times x 4 bytes, both signs
    assert h.nbytes <= 2 * (170 * 64 + 2) * 10 * 4 + 2 * 10 * 8
    q = h.quantiles((0.0, 1.0))
    assert q[0, 0] == -(2.0 ** 100) and q[0, 1] == 2.0 ** 100


def test_output_planes_are_the_columns_of_the_block():
    # against numpy's own indexing of the (patient, time, output) block, columns in any order
    rng = np.random.default_rng(5)
    block = rng.normal(size=(13, 11, 7))
    block[2, 3, 4] = np.nan
    planes = output_planes(block, [4, 0, 6, 4])
    assert planes.shape == (4, 13, 11) and planes[0].flags.c_contiguous
    for c, j in enumerate([4, 0, 6, 4]):
        np.testing.assert_array_equal(planes[c], block[:, :, j])
    assert output_planes(block, []).shape == (0, 13, 11)
    # a histogram of a plane is the histogram of the strided column it replaces
    by_plane, by_view = BandHistogram(11), BandHistogram(11)
    ok = np.ones(13, dtype=bool)
    by_plane.add(planes[0], ok)
    by_view.add(block[:, :, 4], ok)
    np.testing.assert_array_equal(by_plane.pos, by_view.pos)
    np.testing.assert_array_equal(by_plane.nans, by_view.nans)


# ---------------------------------------------------------------------------------------
# reproducibility
# ---------------------------------------------------------------------------------------


def test_same_seed_same_tables_for_any_threads_and_chunks(scenario, reference):
    other = run_cohort(scenario, n=400, jobs=1, chunk_size=97, keep_trajectories=True)
    two = run_cohort(scenario, n=400, jobs=2, chunk_size=250)
    for res in (other, two):
        pd.testing.assert_frame_equal(res.patients, reference.patients)
        pd.testing.assert_frame_equal(res.bands, reference.bands)
        pd.testing.assert_frame_equal(res.summary, reference.summary)
        pd.testing.assert_frame_equal(res.km, reference.km)
    pd.testing.assert_frame_equal(other.trajectories, reference.trajectories)
    # the first patients of a larger cohort are the same patients
    bigger = run_cohort(scenario, n=500, chunk_size=128, bands=False)
    pd.testing.assert_frame_equal(bigger.patients.iloc[:400].reset_index(drop=True), reference.patients)
    # another seed, another cohort
    assert not run_cohort(scenario, n=400, seed=12, bands=False).patients["weight"].equals(
        reference.patients["weight"])


def test_bands_match_the_exact_quantiles_of_the_trajectories(scenario, reference):
    traj = reference.trajectories
    ok_ids = reference.patients.loc[reference.patients["status"] == 0, "patient"]
    traj = traj[traj["patient"].isin(ok_ids)]
    for arm in ("control", "boost", "all"):
        sub = traj if arm == "all" else traj[traj["arm"] == arm]
        for output in ("total", "a"):
            band = reference.bands[(reference.bands["arm"] == arm) & (reference.bands["output"] == output)]
            for t, row in zip(band["time"], band[list(QUANTILE_COLUMNS)].to_numpy()):
                values = sub.loc[sub["time"] == t, output].to_numpy()
                want = np.quantile(values, QUANTILES, method="inverted_cdf")
                np.testing.assert_array_less(np.abs(row - want), BIN * np.abs(want) + 1e-300)
            assert (band["n"] == sub.groupby("time").size().to_numpy()).all()


# ---------------------------------------------------------------------------------------
# patients: events from covariates and variables, arms, endpoints
# ---------------------------------------------------------------------------------------


def test_each_patient_is_the_single_simulation_of_its_own_schedule(scenario, reference):
    """Trajectories of the cohort equal `simulate` with a schedule built by hand."""
    m = scenario.model
    pats = reference.patients.set_index("patient")
    draws = cohort_design(scenario, 11).draw(0, 400)
    for i in (0, 1, 2, 57, 399):
        arm = pats.loc[i, "arm"]
        w = pats.loc[i, "weight"]
        dose_per_kg = 2.0e4 if arm == "boost" else 1.0e4
        events = [Event(0.0, [Action("add", "a", dose_per_kg * w)], name="infusion")]
        if arm == "boost":
            events.append(Event(30.0, [Action("add", "a", 0.5 * dose_per_kg * w)], name="boost"))
        p = draws.parameters[i]
        # the sampled parameters: typical values, the arm's growth_a, decay_c scaled by weight
        assert p[m.parameter_index("decay_c")] == pytest.approx(0.05 * (w / 60) ** 0.5, rel=1e-14)
        assert p[m.parameter_index("growth_a")] == (0.0 if arm == "boost" else 0.02)
        single = simulate(m, Schedule(events), scenario.times, parameters=p, options=scenario.solver)
        row = reference.trajectories[reference.trajectories["patient"] == i]
        np.testing.assert_allclose(row["total"].to_numpy(), single["total"], rtol=1e-12)
        np.testing.assert_allclose(row["a"].to_numpy(), single["a"], rtol=1e-12)
        # endpoints from the trajectory: the peak is the largest value on the grid
        assert pats.loc[i, "peak"] == pytest.approx(single["total"].max(), rel=1e-12)


def test_time_to_event_curves_per_arm(reference):
    km = reference.km
    pats = reference.patients
    for arm in ("control", "boost"):
        grp = pats[pats["arm"] == arm]
        curve = km[(km["arm"] == arm) & (km["endpoint"] == "low")]
        # no censoring before the horizon: Kaplan-Meier = the fraction still above the threshold
        for t in (20.0, 40.0, 80.0):
            before = curve.loc[curve["time"] <= t, "survival"]
            s = before.iloc[-1] if len(before) else 1.0
            assert s == pytest.approx(np.mean(~((grp["low"] <= t) & (grp["low_event"] == 1))), abs=1e-12)
    assert set(km["arm"]) == {"control", "boost", "all"}
    # a constant hazard of 0.01/day: fraction without event at 120 days ~ exp(-1.2) = 0.301
    death = km[(km["arm"] == "all") & (km["endpoint"] == "death")]
    s120 = death["survival"].iloc[-1]
    assert s120 == pytest.approx(math.exp(-1.2), abs=4 * math.sqrt(0.3 * 0.7 / 400))


def test_arm_subset_and_overrides(scenario, reference):
    boost = run_cohort(scenario, n=200, arms=["boost"], variables={"boost_day": 60}, bands=False,
                       keep_trajectories=True)
    assert (boost.patients["arm"] == "boost").all()
    # the boost now happens at day 60: compartment a jumps up between day 58 and 60 for every patient
    tr = boost.trajectories.pivot(index="patient", columns="time", values="a")
    assert (tr[60.0] > tr[58.0]).all() and (tr[30.0] < tr[28.0]).all()
    with pytest.raises(CohortError, match="the number of patients must be a whole number from 1 to 100,000,000"):
        run_cohort(scenario, n=0)
    with pytest.raises(CohortError, match="chunk_size"):
        run_cohort(scenario, n=10, chunk_size=0)


def test_failed_patients_are_flagged_and_left_out(scenario):
    import dataclasses

    # too few steps for the patients with the fastest exchange: some fail, the others do not
    solver = dataclasses.replace(scenario.solver, max_steps=60)
    sc = dataclasses.replace(scenario, solver=solver)
    res = run_cohort(sc, n=300, keep_trajectories=True)
    failed = res.patients["status"] != 0
    assert 0 < failed.sum() < 300
    assert res.patients.loc[failed, "peak"].isna().all()
    assert res.info["n_failed"] == int(failed.sum())
    band = res.bands[(res.bands["arm"] == "all") & (res.bands["output"] == "total")]
    assert (band["n"] == 300 - failed.sum()).all()


# ---------------------------------------------------------------------------------------
# files and the command line
# ---------------------------------------------------------------------------------------


def test_write_owns_its_folder(tmp_path, reference):
    """CohortResult.write, like `carkinetics run`: a rewrite leaves no file of the earlier result
    beside the new ones, and a folder with files carkinetics did not write is refused."""
    from carkinetics.io.atomic import OutputError

    out = tmp_path / "out"
    reference.write(out)
    (out / "extra.csv").write_text("mine")
    with pytest.raises(OutputError, match="extra.csv"):
        reference.write(out)
    assert (out / "extra.csv").read_text() == "mine"
    (out / "extra.csv").unlink()
    no_traj = load_cohort_result(out)  # the same result, read back without its trajectory table
    assert no_traj.trajectories is None and (out / "trajectories.csv").exists()
    no_traj.write(out)
    assert not (out / "trajectories.csv").exists()
    assert [f.name for f in load_cohort_result(out).files] == sorted(f.name for f in no_traj.files)


def test_write_and_load_round_trip(tmp_path, reference):
    files = reference.write(tmp_path / "out")
    names = {f.name for f in files}
    assert {"patients.csv", "summary.csv", "bands.csv", "km.csv", "observed.csv", "bands.png", "km.png",
            "run.json", "trajectories.csv"} <= names
    back = load_cohort_result(tmp_path / "out")
    pd.testing.assert_frame_equal(back.patients, reference.patients, check_exact=True)
    pd.testing.assert_frame_equal(back.bands, reference.bands, check_exact=True)
    pd.testing.assert_frame_equal(back.km, reference.km, check_exact=True)
    assert back.info["seed"] == 11 and back.info["n_patients"] == 400
    # the observations of [data] are kept for the visual predictive check
    assert len(back.observed) == 6 and set(back.observed["observable"]) == {"total"}


def test_csv_floats_are_written_as_pythons_repr():
    """The compiled float formatter against CPython's repr (David Gay's shortest round trip)."""
    import io

    rng = np.random.default_rng(5)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -2.5e-320, 2.2250738585072014e-308,
               1.7976931348623157e308, 1e16, 1e15, 9999999999999998.0, 1e-4, 1e-5, 0.1, 0.3, 1 / 3, 100.0,
               123456789012345678.0, 2.0 ** 52, 2.0 ** 53 + 2, 4.35e-05, 7.0, -1.5e300]
    x = np.concatenate([rng.integers(0, 2 ** 64, 100_000, dtype=np.uint64).view(np.float64),  # every exponent
                        rng.lognormal(0.0, 8.0, 20_000), np.arange(-500, 500) / 8.0,
                        10.0 ** np.arange(-320, 309), 2.0 ** np.arange(-1074, 1024),
                        np.nextafter(10.0 ** np.arange(-300, 300), np.inf), special])
    table = pd.DataFrame({"x": x, "i": np.arange(x.size) - 7})
    out = io.StringIO()
    write_csv(table, out)
    want = ["x,i"] + [f"{'' if v != v else repr(v)},{i - 7}" for i, v in enumerate(x.tolist())]
    assert out.getvalue().split("\n") == want + [""]
    # every supported column type: the bytes of pandas' to_csv; text that needs quoting goes to pandas
    mixed = pd.DataFrame({"a": np.array([0, -1, 2 ** 62, -2 ** 63], dtype=np.int64),
                          "b": np.array([1, 2, 3, 4], dtype=np.int32), "c": [True, False, True, False],
                          "d": ["x", None, "y z", "w"], "e": pd.Categorical(["u", None, "v", "u"]),
                          "f": [np.nan, 1e-310, -0.0, 2.5]})
    strings = mixed.assign(d=pd.array(["x", None, "y", "z"], dtype="string"))
    for t in (mixed, strings, mixed.assign(d=["a,b", "c", 'say "x"', "d"]), mixed.iloc[:0]):
        out = io.StringIO()
        write_csv(t, out)
        assert out.getvalue() == t.to_csv(index=False)


def test_cli_cohort_files_identical_for_one_and_two_jobs(tmp_path):
    runner = CliRunner()
    outs = []
    for jobs, chunk in ((1, 100), (2, 4096), (2, 64)):
        out = tmp_path / f"j{jobs}_c{chunk}"
        res = runner.invoke(main, ["run", str(COHORT), "--n", "300", "--seed", "4", "--jobs", str(jobs),
                                   "--chunk-size", str(chunk), "--trajectories", "-o", str(out)])
        assert res.exit_code == 0, res.output
        assert "300 virtual patients (seed 4" in res.stdout
        outs.append(out)
    for name in ("patients.csv", "summary.csv", "bands.csv", "km.csv", "trajectories.csv", "observed.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes() == (outs[2] / name).read_bytes(), name
    # the streamed patient table is the one pandas writes
    written = pd.read_csv(outs[0] / "patients.csv", **exact_float_csv_kw())
    assert (outs[2] / "patients.csv").read_text() == written.to_csv(index=False)
    tr = pd.read_csv(outs[0] / "trajectories.csv")
    assert len(tr) == 300 * 61 and list(tr.columns) == ["patient", "arm", "time", "total", "a"]
    # the figures `carkinetics run` wrote are the ones drawn here from the written files
    import matplotlib.image

    from carkinetics.plots.cohort import save_figure

    back = load_cohort_result(outs[1])
    for figure, name in ((back.plot_bands(), "bands"), (back.plot_km(), "km")):
        save_figure(figure, tmp_path / name, ("png",), tight=False, dpi=120)
        np.testing.assert_array_equal(matplotlib.image.imread(tmp_path / f"{name}.png"),
                                      matplotlib.image.imread(outs[1] / f"{name}.png"))
    # every file as open() would create it under the umask (run.json too, written through mkstemp)
    umask = os.umask(0)
    os.umask(umask)
    for f in outs[1].iterdir():
        assert f.stat().st_mode & 0o777 == 0o666 & ~umask, f.name


def test_cli_population_size_and_typical_patient(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["run", str(COHORT), "-o", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(tmp_path / "c" / "patients.csv")) == 600  # [population] size
    assert not (tmp_path / "c" / "trajectories.csv").exists()
    # no [population], no --n: the typical patient, as before
    res = runner.invoke(main, ["run", str(SCENARIOS / "multiphasic_typical.toml"), "-o", str(tmp_path / "t")])
    assert res.exit_code == 0 and (tmp_path / "t" / "trajectory.csv").exists()
    res = runner.invoke(main, ["run", str(SCENARIOS / "multiphasic_typical.toml"), "--seed", "3",
                               "-o", str(tmp_path / "t2")])
    assert res.exit_code == 2 and "need a cohort" in res.output


def test_cli_bad_population_is_an_error_without_traceback(tmp_path):
    res = CliRunner().invoke(main, ["run", str(DATA / "scenarios" / "population_notpd.toml"), "--n", "10",
                                    "-o", str(tmp_path / "x")])
    assert res.exit_code == 1
    assert "Error:" in res.output and "not positive definite" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x").exists()


def test_shipped_cohort_scenario(tmp_path):
    sc = load_scenario(SCENARIOS / "multiphasic_cohort.toml")
    res = run_cohort(sc, n=300, seed=1)
    p = res.patients
    assert p["dose_per_kg"].between(0.2e6, 5.0e6).all()
    # dose exponent 0 (Stein 2019: no dose covariate on Cmax): cmax is the typical value x exp(eta)
    eta = np.log(p["param_cmax"] / 24000.0)
    assert abs(eta.mean()) < 4 * 0.806 / math.sqrt(300)
    # the NCA peak on the daily grid cannot exceed the model's peak parameter
    assert (p["cmax"] <= p["param_cmax"] * (1 + 1e-9)).all()
    assert set(res.summary["endpoint"]) == {"cmax", "tmax", "auc_0_28", "level_d365"}


def test_band_panels_of_negative_outputs_are_linear():
    """A log10 output (negative values) gets a linear axis; a count with zeros stays logarithmic."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from carkinetics.plots.cohort import plot_cohort_bands

    t = np.arange(5.0)
    rows = [dict(arm="all", output="mrd_log10", time=x, n=10, q05=-6 + x, q25=-5 + x, q50=-4 + x, q75=-3 + x,
                 q95=-2 + x) for x in t]
    rows += [dict(arm="all", output="cells", time=x, n=10, q05=0.0, q25=x, q50=10 * x, q75=100 * x, q95=1e3 * x)
             for x in t]
    fig = plot_cohort_bands(pd.DataFrame(rows), log_scale=True)
    scales = {ax.get_title(): ax.get_yscale() for ax in fig.axes if ax.get_visible()}
    plt.close(fig)
    assert scales == {"mrd log10": "linear", "cells": "log"}  # titles: names as words without descriptions


# ---------------------------------------------------------------------------------------
# the pipeline's engine thread, tables as mappings
# ---------------------------------------------------------------------------------------


def test_an_error_in_the_engine_thread_is_raised_and_the_thread_ends(scenario, monkeypatch):
    import importlib
    import threading

    sim_module = importlib.import_module("carkinetics.simulation.simulate")  # the package's `simulate` is the function
    real = sim_module.simulate_batch
    calls = []

    def failing(*args, **kwargs):
        calls.append(len(args[3]))
        if len(calls) == 4:  # (the first call loads the kernel; each chunk is simulated arm by arm)
            raise RuntimeError("engine failure in chunk 2")
        return real(*args, **kwargs)

    monkeypatch.setattr(sim_module, "simulate_batch", failing)
    with pytest.raises(RuntimeError, match="engine failure in chunk 2"):
        run_cohort(scenario, n=500, chunk_size=100, jobs=2)
    assert not [t for t in threading.enumerate() if t.name == "carkinetics-engine"]
    # the other engine thread finishes the chunks it had taken (each simulated arm by arm) and takes no more
    assert calls[0] == 2 and len(calls) < 1 + 2 * 5


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_engine_threads_hand_over_the_chunks_in_order_and_bound_those_alive(workers):
    import random
    import threading
    import time

    from carkinetics.cohort.chunk import EngineThreads

    depth, n_chunks, fail_at = 2, 40, 29
    lock = threading.Lock()
    alive, peak, drawn = [0], [0], []
    rng = random.Random(workers)
    delays = [rng.uniform(0, 0.004) for _ in range(n_chunks)]

    def draw(start):
        drawn.append(start)  # one thread at a time, in order
        with lock:
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])
        return start

    def simulate(start):
        time.sleep(delays[start // 10])
        if start // 10 == fail_at:
            raise ValueError(f"chunk {fail_at}")
        return start * 2

    engine = EngineThreads(draw, simulate, range(0, 10 * n_chunks, 10), depth, workers=workers)
    engine.start()
    got = []
    try:
        with pytest.raises(ValueError, match=f"chunk {fail_at}"):
            while True:
                item = engine.get()
                with lock:
                    alive[0] -= 1
                got.append(item)
                time.sleep(0.002 * (len(got) % 3))  # a reduction that is sometimes slower than the threads
    finally:
        engine.close()
    assert got == [20 * i for i in range(fail_at)]  # every chunk before the failure, in order
    assert drawn == sorted(drawn) and drawn == list(range(0, 10 * len(drawn), 10))
    assert peak[0] <= depth + 2  # drawn, not yet handed over (simulated or waiting), + the one handed over
    assert len(drawn) <= fail_at + depth + 1  # no chunk taken once the failure was recorded, but those in flight
    assert not any(t.name == "carkinetics-engine" and t.is_alive() for t in threading.enumerate())


def test_patient_table_as_a_mapping_writes_the_bytes_of_to_csv():
    import io

    rng = np.random.default_rng(3)
    cols = {"patient": np.arange(50), "arm": pd.Categorical.from_codes(rng.integers(0, 2, 50), ["a", "b"]),
            "dose": rng.lognormal(0, 3, 50), "status": np.zeros(50, dtype=np.int64),
            "peak": np.where(rng.random(50) < 0.2, np.nan, rng.random(50))}
    for header in (True, False):
        out = io.StringIO()
        write_csv(cols, out, header=header)
        assert out.getvalue() == pd.DataFrame(cols).to_csv(index=False, header=header)


def test_a_table_written_in_blocks_of_rows_has_the_bytes_of_to_csv(monkeypatch):
    # blocks of 7 rows (the default is 2^17): the same bytes as pandas, header once, every
    # column type, text that needs quoting included (pandas writes those blocks)
    import io

    from carkinetics.io import csv as csv_module

    monkeypatch.setattr(csv_module, "WRITE_BLOCK_ROWS", 7)
    rng = np.random.default_rng(4)
    n = 30
    table = pd.DataFrame({"t": rng.lognormal(0, 3, n), "k": np.arange(n, dtype=np.int64) - 3,
                          "arm": pd.Categorical.from_codes(rng.integers(0, 2, n), ["a", "b"]),
                          "ok": rng.random(n) < 0.5, "x": np.where(rng.random(n) < 0.2, np.nan, rng.random(n))},
                         index=np.arange(n) * 3)  # not a 0..n-1 index: rows are taken by position
    quoted = table.assign(note=["a,b" if i % 4 == 0 else "c" for i in range(n)])
    for t in (table, quoted, {c: table[c].to_numpy() for c in ("t", "k", "x")}):
        for header in (True, False):
            out = io.StringIO()
            write_csv(t, out, header=header)
            assert out.getvalue() == pd.DataFrame(t).reset_index(drop=True).to_csv(index=False, header=header)


def _pixels(fig):
    import matplotlib.pyplot as plt

    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return img


def test_cohort_figures_are_the_same_from_mappings_of_arrays(reference):
    """The helper process draws from plain arrays (no pandas): the very same pixels."""
    from carkinetics.plots import cohort as plots

    for function, _, kwargs in reference.figure_args():
        plain = dict(next(kw for f, _, kw in reference.figure_args(plain=True) if f == function))
        assert not any(isinstance(v, pd.DataFrame) for v in plain.values())
        np.testing.assert_array_equal(_pixels(getattr(plots, function)(**kwargs)),
                                      _pixels(getattr(plots, function)(**plain)))


def test_figures_drawn_by_the_helper_process_or_here_when_it_fails(tmp_path, reference, monkeypatch):
    import matplotlib.image

    from carkinetics.plots import render

    here = tmp_path / "here"
    reference.write(here)
    helper_dir = tmp_path / "helper"
    helper_dir.mkdir()
    with render.FigureHelper() as figures:
        assert figures.available
        names = reference.write_into(helper_dir, figures=figures)
    assert {"bands.png", "km.png"} <= set(names)
    for name in ("bands.png", "km.png"):
        np.testing.assert_array_equal(matplotlib.image.imread(helper_dir / name), matplotlib.image.imread(here / name))
    # a helper that dies before drawing: the figures are drawn in this process instead
    monkeypatch.setattr(render, "_COMMAND", "import sys; sys.exit(3)")
    failed_dir = tmp_path / "failed"
    failed_dir.mkdir()
    with render.FigureHelper() as figures:
        reference.write_into(failed_dir, figures=figures)
        assert not figures.available
    for name in ("bands.png", "km.png"):
        np.testing.assert_array_equal(matplotlib.image.imread(failed_dir / name), matplotlib.image.imread(here / name))
    # an unused helper is stopped
    unused = render.FigureHelper()
    proc = unused._proc
    unused.close()
    assert proc.poll() is not None


def test_reused_output_arrays_give_the_tables_of_fresh_ones(scenario, reference, monkeypatch):
    """run_cohort simulates the chunks into arrays handed back once a chunk is reduced
    (carkinetics.cohort.chunk.OutputBlocks). Chunks of 37 (11 chunks, the last partial, each
    arm's patients in consecutive rows) on two engine threads, the reduction slowed so that
    chunks wait: the tables are those of the same run with a fresh pair of arrays per chunk, and
    the reference's, value for value; fewer pairs were made than chunks."""
    import time

    from carkinetics.cohort import chunk as chunk_module
    from carkinetics.cohort import pipeline

    made = []
    real_take, real_reduce = chunk_module.OutputBlocks.take, pipeline._ChunkReducer.reduce

    def take(self, rows):
        views = real_take(self, rows)
        made.append(views[2])  # kept, so that no two pairs share an id
        return views

    def slow_reduce(self, *args, **kwargs):
        time.sleep(0.01)
        return real_reduce(self, *args, **kwargs)

    monkeypatch.setattr(chunk_module.OutputBlocks, "take", take)
    monkeypatch.setattr(pipeline._ChunkReducer, "reduce", slow_reduce)
    with monkeypatch.context() as m:
        m.setattr(chunk_module.OutputBlocks, "give", lambda self, pair: None)  # never handed back: fresh arrays
        fresh = run_cohort(scenario, n=400, jobs=2, chunk_size=37, keep_trajectories=True)
    assert len(made) == len({id(p) for p in made}) == 11
    made.clear()
    res = run_cohort(scenario, n=400, jobs=2, chunk_size=37, keep_trajectories=True)
    assert len(made) == 11 and len({id(p) for p in made}) < 11
    for got in (res, fresh):
        pd.testing.assert_frame_equal(got.patients, reference.patients)
        pd.testing.assert_frame_equal(got.bands, reference.bands)
        pd.testing.assert_frame_equal(got.trajectories, reference.trajectories)


def test_output_blocks_hand_out_views_of_a_larger_free_pair_and_make_a_pair_when_none_fits():
    from carkinetics.cohort.chunk import OutputBlocks

    blocks = OutputBlocks(n_times=5, n_states=2, n_outputs=3)
    s, o, pair = blocks.take(10)
    assert s.shape == (10, 5, 2) and o.shape == (10, 5, 3) and blocks.n_made == 1
    blocks.give(pair)
    s2, o2, pair2 = blocks.take(4)  # the last, partial chunk: the first rows of the free pair
    assert pair2 is pair and s2.shape == (4, 5, 2) and np.shares_memory(s2, pair[0]) and s2.flags.c_contiguous
    assert o2.flags.c_contiguous and blocks.n_made == 1
    s3, _, pair3 = blocks.take(10)  # none free: a new pair
    assert pair3 is not pair and blocks.n_made == 2
    blocks.give(pair2)
    blocks.give(pair3)
    small = OutputBlocks(n_times=5, n_states=2, n_outputs=3)
    small.give(small.take(3)[2])
    assert small.take(8)[0].shape == (8, 5, 2) and small.n_made == 2  # too small a pair is dropped


def test_patient_table_is_the_chunks_in_order_whatever_the_chunk_size(scenario):
    """The patient table is filled chunk by chunk into columns allocated once
    (carkinetics.cohort.table.PatientColumns): chunks of 100, 64 (a last partial chunk) and a
    single chunk of 300 give the same table, value for value and type for type, and each of
    its numeric columns owns its data (a view would keep a larger array alive)."""
    whole = run_cohort(scenario, n=300, chunk_size=300, bands=False).patients
    for size in (100, 64):
        chunked = run_cohort(scenario, n=300, chunk_size=size, bands=False).patients
        pd.testing.assert_frame_equal(chunked, whole)
    assert any(c.startswith("param_") for c in whole.columns)
    for name in whole.columns:
        values = whole[name].to_numpy()
        if values.dtype.kind in "biuf":
            assert values.base is None or values.base.size == values.size, name


def test_run_without_the_parameters_in_memory_writes_them_to_the_file(scenario, tmp_path):
    """run_population(keep_parameters=False), what ``carkinetics run`` does: the returned table
    lacks the varying parameters' columns, patients.csv has them, value for value those of a
    run that keeps them, and the other files are the same bytes."""
    from carkinetics.studies.run import run_population

    kept = run_population(scenario, tmp_path / "kept", n=150, seed=4, plots=False)
    lean = run_population(scenario, tmp_path / "lean", n=150, seed=4, plots=False, keep_parameters=False)
    params = [c for c in kept.patients.columns if c.startswith("param_")]
    assert params and not any(c.startswith("param_") for c in lean.patients.columns)
    pd.testing.assert_frame_equal(lean.patients, kept.patients.drop(columns=params))
    for name in ("patients.csv", "summary.csv", "bands.csv", "km.csv"):
        if (tmp_path / "kept" / name).exists():
            assert (tmp_path / "lean" / name).read_bytes() == (tmp_path / "kept" / name).read_bytes(), name
    written = pd.read_csv(tmp_path / "lean" / "patients.csv", **exact_float_csv_kw())
    np.testing.assert_array_equal(written[params].to_numpy(), kept.patients[params].to_numpy())
    with pytest.raises(CohortError, match="needs patients_csv"):  # the parameters would go nowhere
        run_cohort(scenario, n=10, keep_parameters=False)


def test_patient_columns_widen_a_column_and_refuse_a_mismatch():
    """A later chunk that needs a wider type widens the column (no value is cast down); the
    arm stays categorical codes until the frame is made; chunks with other columns or other
    categories, or a table not filled, are refused."""
    from carkinetics.cohort.table import PatientColumns

    t = PatientColumns(5)
    arm = pd.Categorical.from_codes([0, 1], categories=["a", "b"])
    t.add({"arm": arm, "k": np.array([1, 2], dtype=np.int64), "flag": np.array([True, False])}, 0)
    t.add({"arm": pd.Categorical.from_codes([1, 1, 0], categories=["a", "b"]),
           "k": np.array([0.25, np.nan, 7.0]), "flag": np.array([True, True, False])}, 2)
    frame = t.frame()
    assert frame["arm"].tolist() == ["a", "b", "b", "b", "a"]
    assert frame["k"].dtype == np.float64
    np.testing.assert_array_equal(frame["k"].to_numpy(), [1.0, 2.0, 0.25, np.nan, 7.0])
    assert frame["flag"].tolist() == [True, False, True, True, False]
    t = PatientColumns(4)
    t.add({"k": np.array([1.0, 2.0])}, 0)
    with pytest.raises(ValueError, match="differ"):
        t.add({"j": np.array([1.0, 2.0])}, 2)
    with pytest.raises(ValueError, match="2 of 4 rows"):
        t.frame()
    t = PatientColumns(4)
    t.add({"arm": pd.Categorical.from_codes([0, 0], categories=["a", "b"])}, 0)
    with pytest.raises(ValueError, match="categories"):
        t.add({"arm": pd.Categorical.from_codes([0, 0], categories=["b", "a"])}, 2)


def test_km_table_has_a_row_per_event_time_of_each_curve(scenario):
    """The Kaplan-Meier table, built column by column, against the curves computed one by one
    with carkinetics.stats.km.kaplan_meier and stacked with pandas (arm, endpoint and values)."""
    from carkinetics.stats.km import kaplan_meier

    res = run_cohort(scenario, n=300, chunk_size=100, bands=False)
    km, patients = res.km, res.patients
    assert len(km) > 0
    pieces = []
    assert isinstance(km["arm"].dtype, pd.CategoricalDtype) and isinstance(km["endpoint"].dtype, pd.CategoricalDtype)
    for (arm, endpoint), _ in km.groupby(["arm", "endpoint"], sort=False, observed=True):
        rows = patients if arm not in set(patients["arm"]) else patients[patients["arm"] == arm]
        rows = rows[rows["status"] == 0]
        t = rows[endpoint].to_numpy(float)
        e = rows[f"{endpoint}_event"].to_numpy(float)
        keep = np.isfinite(t)
        curve = kaplan_meier(t[keep], e[keep])
        pieces.append(pd.DataFrame({"arm": arm, "endpoint": endpoint, "time": curve.time,
                                    "survival": curve.survival, "lower": curve.lower, "upper": curve.upper,
                                    "n_at_risk": curve.n_at_risk.astype(float)}))
    expected = pd.concat(pieces, ignore_index=True)
    got = km.set_index(["arm", "endpoint"]).loc[list(dict.fromkeys(zip(expected.arm, expected.endpoint)))]
    got = got.reset_index().astype({"arm": str, "endpoint": str})
    pd.testing.assert_frame_equal(got, expected.astype({"arm": str, "endpoint": str}), check_dtype=False)


def test_figure_tables_share_one_object_per_text_value(scenario):
    """The tables handed to the figure helper: text columns as object arrays with the values of
    the table, equal values one Python object (so pickling them stays small), numbers as they are."""
    res = run_cohort(scenario, n=200, chunk_size=100)
    for _, _, kwargs in res.figure_args(plain=True):
        for key in ("km", "bands", "patients"):
            table = kwargs.get(key)
            if not isinstance(table, dict):
                continue
            source = {"km": res.km, "bands": res.bands, "patients": res.patients}[key]
            for name, values in table.items():
                np.testing.assert_array_equal(values, source[name].to_numpy())
                if values.dtype == object:
                    assert len({id(v) for v in values}) == len(set(values.tolist())), (key, name)
