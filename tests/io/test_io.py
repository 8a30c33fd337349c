"""Output folders (issue 12): staged beside the destination, refused before computing when they
cannot be written, owned by the run (no stale files of an earlier run), cleaned up after SIGTERM,
SIGINT and (by the next run) SIGKILL, moved across file systems, and write errors as messages."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from carkinetics.io import atomic as io
from carkinetics.cli.main import main
from carkinetics.io.atomic import OutputError, atomic_output_dir, check_output_dir
from carkinetics.io.results import write_json

from conftest import DATA, ROOT, SCENARIOS

COHORT = DATA / "scenarios" / "cohort_linear.toml"
TYPICAL = SCENARIOS / "multiphasic_typical.toml"


def partials(folder):
    return sorted(p.name for p in Path(folder).rglob("*.partial"))


def listing(folder):
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*"))


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def staging_name(name, pid, start, host=None):
    return f".{name}.{host or io._host_id()}-{pid}-{start}.abcd1234.partial"


# ---- 1. across file systems -------------------------------------------------------------------
def test_move_across_file_systems_copies_then_renames_in_the_destination(tmp_path, monkeypatch):
    """A destination on another file system (a Docker volume): os.replace out of the staging folder
    fails with EXDEV; the files are copied beside their destinations and renamed there."""
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.csv").write_text("old\n")
    real_replace = os.replace
    moves = []

    def replace(src, dst):
        if os.path.dirname(os.path.abspath(src)) != os.path.dirname(os.path.abspath(dst)):
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))
        moves.append((src, dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with atomic_output_dir(target, clean=True, known=("a.csv",)) as staging:
        (staging / "a.csv").write_text("new\n")
        (staging / "figures").mkdir()
        (staging / "figures" / "b.png").write_bytes(b"\x89PNG")
    assert (target / "a.csv").read_text() == "new\n"
    assert (target / "figures" / "b.png").read_bytes() == b"\x89PNG"
    assert listing(target) == [".carkinetics.json", "a.csv", "figures", "figures/b.png"]
    assert partials(tmp_path) == []
    assert any(Path(d).name == "b.png" for _, d in moves)


def test_mount_point_is_staged_inside_it(tmp_path, monkeypatch):
    target = tmp_path / "volume"
    target.mkdir()
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == target)
    with atomic_output_dir(target) as staging:
        assert staging.parent == target
        (staging / "x.csv").write_text("1\n")
    assert listing(target) == [".carkinetics.json", "x.csv"]
    assert partials(tmp_path) == []


# ---- 2. stale files -----------------------------------------------------------------------------
def test_rerun_leaves_no_file_of_the_earlier_run(tmp_path):
    out = tmp_path / "res"
    runner = CliRunner()
    res = runner.invoke(main, ["run", str(COHORT), "--n", "40", "--trajectories", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "trajectories.csv").exists() and (out / "km.csv").exists()
    res = runner.invoke(main, ["run", str(COHORT), "--n", "30", "-o", str(out)])  # no --trajectories
    assert res.exit_code == 0, res.output
    assert not (out / "trajectories.csv").exists()  # not a trajectory table of the first run beside the new one
    manifest = json.loads((out / io.MANIFEST).read_text())["files"]
    assert sorted(manifest) == sorted(p.name for p in out.iterdir() if p.name != io.MANIFEST)
    res = runner.invoke(main, ["run", str(TYPICAL), "-o", str(out)])  # the typical patient
    assert res.exit_code == 0, res.output
    assert listing(out) == [".carkinetics.json", "outputs.png", "run.json", "trajectory.csv"]


def test_folder_with_files_of_others_is_refused_before_computing(tmp_path, monkeypatch):
    out = tmp_path / "res"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "raw").mkdir()
    (out / "raw" / "data.csv").write_text("1")
    (out / ".DS_Store").write_text("")  # clutter of a file browser: ignored

    def no_computing(*args, **kwargs):
        raise AssertionError("computed before the output folder was checked")

    import carkinetics.cohort.pipeline
    import carkinetics.scenario.load

    monkeypatch.setattr(carkinetics.scenario.load, "load_scenario", no_computing)
    monkeypatch.setattr(carkinetics.cohort.pipeline, "run_cohort", no_computing)
    res = CliRunner().invoke(main, ["run", str(COHORT), "--n", "20", "-o", str(out)])
    assert res.exit_code == 1
    assert "Error:" in res.output and "notes.txt" in res.output and "raw/data.csv" in res.output
    assert "Traceback" not in res.output
    assert listing(out) == [".DS_Store", "notes.txt", "raw", "raw/data.csv"]
    assert partials(tmp_path) == []


def test_folder_of_an_earlier_version_is_recognised_by_its_file_names(tmp_path):
    """A result folder written before manifests: the names `carkinetics run` writes are its own."""
    out = tmp_path / "old"
    out.mkdir()
    for name in ("run.json", "patients.csv", "trajectories.csv", "bands.png"):
        (out / name).write_text("old")
    res = CliRunner().invoke(main, ["run", str(COHORT), "--n", "20", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert not (out / "trajectories.csv").exists()
    assert (out / "patients.csv").read_text() != "old"


def test_clean_removes_subfolders_of_other_commands_and_plain_mode_keeps_other_files(tmp_path):
    out = tmp_path / "res"
    with atomic_output_dir(out) as s:  # e.g. a sensitivity analysis ...
        (s / "tornado.csv").write_text("1")
    with atomic_output_dir(out / "figures") as s:  # ... and its figures, written separately
        (s / "tornado.png").write_text("1")
    (out / "user.txt").write_text("u")
    with atomic_output_dir(out) as s:  # without clean (a sweep adding to its folder): others stay
        (s / "more.csv").write_text("2")
    assert listing(out) == [".carkinetics.json", "figures", "figures/.carkinetics.json", "figures/tornado.png",
                            "more.csv", "tornado.csv", "user.txt"]
    with pytest.raises(OutputError, match="user.txt"):
        with atomic_output_dir(out, clean=True):
            raise AssertionError("not reached: refused before the block")
    (out / "user.txt").unlink()
    assert io.foreign_entries(out) == []
    with atomic_output_dir(out, clean=True) as s:
        (s / "run.json").write_text("{}")
    assert listing(out) == [".carkinetics.json", "run.json"]


def test_register_outputs_marks_files_written_directly(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text("{}")
    assert io.foreign_entries(out) == ["sweep.json"]
    io.register_outputs(out, ["sweep.json"])
    assert io.foreign_entries(out) == []


# ---- 3. interrupted and killed runs -------------------------------------------------------------------
@pytest.mark.parametrize("sig, status", [("SIGTERM", 143), ("SIGINT", None), ("SIGHUP", 129)])
def test_signal_removes_the_staging_folder(tmp_path, sig, status):
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from carkinetics.io.atomic import atomic_output_dir
        signal.signal(signal.{sig}, signal.default_int_handler if "{sig}" == "SIGINT" else signal.SIG_DFL)
        before = signal.getsignal(signal.{sig})  # (a test run under nohup inherits SIGHUP ignored)
        try:
            with atomic_output_dir(sys.argv[1]) as staging:
                (staging / "big.csv").write_text("x" * 1000)
                os.kill(os.getpid(), signal.{sig})
                time.sleep(5)
                print("not interrupted")
        finally:
            assert signal.getsignal(signal.{sig}) is before, "handler not restored"
    """)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=120)
    assert "not interrupted" not in proc.stdout
    if status is None:
        assert proc.returncode in (1, -signal.SIGINT) and "KeyboardInterrupt" in proc.stderr
    else:
        assert proc.returncode == status, proc.stderr
    assert "handler not restored" not in proc.stderr
    assert not out.exists() and partials(tmp_path) == []


def test_staging_folders_of_dead_processes_are_removed(tmp_path):
    target = tmp_path / "out"
    pid = dead_pid()
    dead = tmp_path / staging_name("out", pid, 123)
    mine = tmp_path / staging_name("out", os.getpid(), io._process_start(os.getpid()) or 0)
    reused = tmp_path / staging_name("out", os.getpid(), 1)  # our pid, but another start: a dead process
    other_name = tmp_path / staging_name("other", pid, 123)  # another destination's: not ours to judge
    foreign_old = tmp_path / staging_name("out", 1, 1, host="00000000")  # another host or container
    foreign_new = tmp_path / staging_name("out", 2, 1, host="00000000")
    legacy_old = tmp_path / ".out.k2j4h5g6.partial"  # written before process tags
    for p in (dead, mine, reused, other_name, foreign_old, foreign_new, legacy_old):
        p.mkdir()
        (p / "trajectories.csv").write_text("x")
    old = time.time() - 2 * io.FOREIGN_STAGING_AGE
    for p in (foreign_old, legacy_old):
        for f in (p / "trajectories.csv", p):
            os.utime(f, (old, old))
    check_output_dir(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other_name.name, foreign_new.name])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_killed_run_then_rerun_leaves_only_the_rerun(tmp_path, sig):
    """Issue 12 bar, small: `carkinetics run --trajectories` killed midway, then rerun into the
    same folder: no staging folder anywhere, only the rerun's files, no figure helper left."""
    out = tmp_path / "killtest"
    first = subprocess.run([sys.executable, "-m", "carkinetics", "run", str(COHORT), "--n", "20", "--trajectories",
                            "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    proc = subprocess.Popen([sys.executable, "-m", "carkinetics", "run", str(COHORT), "--n", "1000000",
                             "--trajectories", "--jobs", "1", "--chunk-size", "1000", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while True:  # simulating: the staging folder's trajectory table is growing
            traj = [p / "trajectories.csv" for p in tmp_path.glob(".killtest.*.partial")]
            if traj and traj[0].exists() and traj[0].stat().st_size > 0:
                break
            assert proc.poll() is None and time.time() < deadline, "the run ended or never started simulating"
            time.sleep(0.05)
        helpers = [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit() and _parent(d) == proc.pid]
        os.kill(proc.pid, getattr(signal, sig))
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    time.sleep(0.5)
    assert not any(_alive(h) for h in helpers), "the figure helper outlived the run"
    if sig == "SIGKILL":
        assert len(partials(tmp_path)) == 1  # nothing could remove it ...
    else:
        assert proc.returncode == (143 if sig == "SIGTERM" else 1)
        assert partials(tmp_path) == []  # ... here the run removed its own
    assert (out / "trajectories.csv").stat().st_size > 0  # the earlier results are untouched
    rerun = subprocess.run([sys.executable, "-m", "carkinetics", "run", str(COHORT), "--n", "20", "-o", str(out)],
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert partials(tmp_path) == []  # ... and the next run removed the killed one's
    assert listing(out) == [".carkinetics.json", "bands.csv", "bands.png", "km.csv", "km.png", "observed.csv",
                            "patients.csv", "run.json", "summary.csv"]


def _parent(proc_dir):
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid):
    return io._process_start(pid) is not None


# ---- 4. bad destinations --------------------------------------------------------------------------------
def _bad_destinations(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    return {
        "empty": ("", "empty"),
        "device": ("/dev/null", "not a folder"),
        "file": (str(afile), "is a file"),
        "parent is a file": (str(afile / "sub"), "is a file, not a folder"),
        "name too long": (str(tmp_path / ("n" * 300)), "too long"),
        "path too long": (str(tmp_path / "/".join(["d" * 200] * 30)), "too long"),
        "broken link": (str(tmp_path / "dangling"), "broken symbolic link"),
    }


@pytest.mark.parametrize("case", ["empty", "device", "file", "parent is a file", "name too long", "path too long",
                                  "broken link"])
@pytest.mark.parametrize("command", ["run", "validate", "fit"])
def test_bad_destination_is_refused_before_anything_else(tmp_path, command, case):
    dest, words = _bad_destinations(tmp_path)[case]
    missing = str(tmp_path / "no_such_input.toml")  # read only after the destination was checked
    args = {"run": ["run", missing, "-o", dest],
            "validate": ["validate", missing, "-o", dest],
            "fit": ["fit", missing, missing, "-e", "k", "-o", dest]}[command]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: ") and words in res.output, res.output
    assert "no_such_input" not in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert partials(tmp_path) == []


def test_plot_refuses_a_figures_folder_that_is_a_file(tmp_path):
    (tmp_path / "figures").write_text("x")
    res = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert res.exit_code == 1 and "figures: exists and is a file" in res.output


def test_read_only_parent_is_refused(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
    else:  # root writes anywhere: the file system's refusal is simulated
        real_mkdir = os.mkdir

        def mkdir(path, *args, **kwargs):
            if Path(path).parent == ro:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "mkdir", mkdir)
    try:
        res = CliRunner().invoke(main, ["run", str(COHORT), "--n", "10", "-o", str(ro / "out")])
        assert res.exit_code == 1
        assert res.output == f"Error: {ro / 'out'}: cannot create the output folder: Permission denied\n"
        with pytest.raises(OutputError, match="cannot create the output folder"):
            with atomic_output_dir(ro / "out"):
                pass
    finally:
        ro.chmod(0o755)
    assert list(ro.iterdir()) == []


def test_existing_folder_of_a_read_only_parent_is_staged_inside(tmp_path, monkeypatch):
    parent = tmp_path / "ro"
    target = parent / "out"
    target.mkdir(parents=True)
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        if Path(path).parent == parent:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    with atomic_output_dir(target, clean=True) as staging:
        assert staging.parent == target
        (staging / "a.csv").write_text("1")
    assert listing(target) == [".carkinetics.json", "a.csv"]


# ---- write errors --------------------------------------------------------------------------------------------
def test_write_errors_become_messages_naming_the_file(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OutputError) as err:
        with atomic_output_dir(out) as staging:
            (staging / "patients.csv").mkdir()
            open(staging / "patients.csv", "w")
    assert str(err.value).startswith(f"{out / 'patients.csv'}: cannot write: Is a directory")
    with pytest.raises(OutputError, match="No space left on device"):
        with atomic_output_dir(out) as staging:
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(FileNotFoundError):  # an input that is missing is not about the output
        with atomic_output_dir(out):
            open(tmp_path / "missing-input.csv")
    assert partials(tmp_path) == [] and not out.exists()


def test_disk_full_during_a_run_is_an_error_message(tmp_path, monkeypatch):
    import carkinetics.cohort.pipeline as cohort

    def full(table, file, header=True):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cohort, "write_csv", full)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(COHORT), "--n", "20", "-o", str(out)])
    assert res.exit_code == 1
    assert res.output.endswith(f"Error: {out}: cannot write the results: No space left on device\n")
    assert not out.exists() and partials(tmp_path) == []


def test_results_that_cannot_be_moved_into_place_are_kept(tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == "b.csv":  # as os.replace raises it: both names, the staged file first
            raise PermissionError(errno.EACCES, "Permission denied", str(src), None, str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputError) as err:
        with atomic_output_dir(out) as staging:
            (staging / "a.csv").write_text("a")
            (staging / "b.csv").write_text("b")
    kept = Path(str(err.value).rsplit("kept in ", 1)[1])
    assert str(err.value).startswith(f"{out / 'b.csv'}: cannot write: Permission denied")
    assert kept.parent == tmp_path and kept.name.startswith("out.unsaved-")
    assert (kept / "b.csv").read_text() == "b"
    assert partials(tmp_path) == []


def test_write_json_error_names_the_file(tmp_path):
    (tmp_path / "x.json").mkdir()
    with pytest.raises(OutputError, match="x.json: cannot write"):
        write_json(tmp_path / "x.json", {})


def test_seed_scenarios_skip_unreadable_files(tmp_path, monkeypatch):
    """validate's search for seed scenarios reads each file through the one input reader."""
    import carkinetics.model.load
    from carkinetics.studies.validate import seed_scenarios

    (tmp_path / "models").mkdir()
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "a_bad.toml").write_bytes(b"\xff\xfe[targets]\n")
    (tmp_path / "scenarios" / "b_dir.toml").mkdir()
    (tmp_path / "scenarios" / "c_good.toml").write_text("[targets.x]\nendpoint = 'y'\n")
    monkeypatch.setattr(carkinetics.model.load, "model_search_paths", lambda: [tmp_path / "models"])
    assert [p.name for p in seed_scenarios()] == ["c_good.toml"]
    assert ROOT.exists()
