"""T-ALL model at scale: ``carkinetics run`` of a two-year seed cohort, 10^4 to 10^6 patients.

Workload: the seed scenario ``scenarios/seed_s2_pan2021_cd7.toml`` (donor-derived CD7
CAR-T, lymphodepletion on day -5, infusion on day 0, transplant on day 45 for the patients
with ``hsct`` who are in remission then) on ``models/cart_tall.toml`` (its four blast
populations are stochastic states), with the horizon extended to 730 days (``times.end``;
everything else as in the file, read when the benchmark starts). The scenario is written to
a temporary TOML file, its model and parameter set copied next to it at the start (so that all
rows see one version of a model being edited meanwhile; ``--live-model`` names the
repository's files instead), and run the way a user runs it:

    carkinetics run SCENARIO --n N --jobs 2 --seed 1 -o DIR

in a fresh process (patients.csv, bands, summaries, figures; chunked), after one warm-up run
of the same command (200 patients) that compiles the model's kernel into a fresh cache
(``CARKINETICS_CACHE_DIR`` in the temporary folder, so the compile time is a real compile;
``--keep-cache`` uses the usual cache instead).

Per N: wall time of the command, patients/s, peak resident memory (``ru_maxrss`` of the
largest process, from ``getrusage(RUSAGE_CHILDREN)`` in a wrapper process, and the largest sum
over the process tree, sampled from ``/proc`` every 0.1 s: the command and its figure helper),
``run.json``'s timings (``run_cohort`` total, engine time, reduction: endpoints, histograms,
CSV), the size of the files written, and the load average before and after. Engine counters per
patient (accepted and rejected steps, right-hand-side evaluations, RODAS steps, births and
deaths of the stochastic states, several of which may fire inside one step) come from one
``simulate_batch`` call on the first ``--sample`` patients of the same cohort, in this process.

Usage::

    python benchmarks/bench_tall_v2.py                        # N = 10^4, 10^5, 10^6 (about 10 minutes)
    python benchmarks/bench_tall_v2.py --quick                # N = 10^4 only, smoke test
    python benchmarks/bench_tall_v2.py --n 10000 100000 --json tall.json
    python benchmarks/bench_tall_v2.py --profile 100000       # cProfile of run_cohort's reducing thread
    python benchmarks/bench_tall_v2.py --cpu 100000           # run_cohort's CPU per patient, reducing thread apart

The script is not collected by pytest. The bar: 10^6 patients in under 300 s and 2 GiB on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCENARIO = ROOT / "scenarios" / "seed_s2_pan2021_cd7.toml"
HORIZON = 730.0
BAR_SECONDS = 300.0
BAR_MIB = 2048.0
PATH_KEYS = ("model", "parameter_set")  # [scenario] keys holding paths relative to the file


# ----------------------------------------------------------------------------------------
# the scenario with a two-year horizon
# ----------------------------------------------------------------------------------------


def _absolute(value, folder: Path, snapshot: Path | None = None):
    """A relative path (or list of them) made absolute against ``folder``; a model name stays.

    With ``snapshot``, the repository's ``models/`` folder is copied into that folder once (the
    files a model names beside it, such as its outcome file, come along) and the copy is named
    instead: the runs then see one version of a model that is being edited meanwhile.
    """
    if isinstance(value, list):
        return [_absolute(v, folder, snapshot) for v in value]
    if isinstance(value, str) and (value.endswith(".toml") or "/" in value):
        path = (folder / value).resolve()
        if snapshot is not None:
            if not (snapshot / "models").exists():
                shutil.copytree(ROOT / "models", snapshot / "models")
            path = snapshot / path.relative_to(ROOT)
        return str(path)
    return value


def scenario_data(text: str, folder: Path, end: float = HORIZON, snapshot: Path | None = None) -> dict:
    """The tables of a scenario file's ``text`` with ``times.end = end`` and absolute paths
    (relative to ``folder``; to copies in ``snapshot``, if given)."""
    data = tomllib.loads(text)
    data["times"]["end"] = end
    for key in PATH_KEYS:
        if key in data["scenario"]:
            data["scenario"][key] = _absolute(data["scenario"][key], folder, snapshot)
    return data


def write_scenario(folder: Path, path: Path = SCENARIO, end: float = HORIZON, snapshot: Path | None = None) -> Path:
    """Write the scenario with the new horizon and absolute paths into ``folder`` (a line edit of
    the file, checked by parsing it back against :func:`scenario_data`)."""
    original = path.read_text()
    section = None
    lines = []
    for line in original.splitlines():
        head = re.match(r"\s*\[+([^\]]+)\]+\s*(#.*)?$", line)
        if head:
            section = head.group(1).strip()
        elif section == "times" and re.match(r"\s*end\s*=", line):
            line = f"end = {end:g}"
        elif section == "scenario":
            m = re.match(r"(\s*)(\w+)(\s*=\s*)(.*?)(\s*#.*)?$", line)
            if m and m.group(2) in PATH_KEYS:
                value = tomllib.loads(f"v = {m.group(4)}")["v"]
                line = f"{m.group(1)}{m.group(2)}{m.group(3)}{json.dumps(_absolute(value, path.parent, snapshot))}"
        lines.append(line)
    text = "\n".join(lines) + "\n"
    if tomllib.loads(text) != scenario_data(original, path.parent, end, snapshot):
        raise RuntimeError(f"could not rewrite {path} (times.end, paths): write the scenario by hand")
    out = folder / path.name
    out.write_text(text)
    return out


# ----------------------------------------------------------------------------------------
# measurements
# ----------------------------------------------------------------------------------------

# the same wrapper as bench_cohort.py: wall time and peak RSS of a command in a child process
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cohort import _WRAPPER  # noqa: E402


def _tree_rss_kib(root_pid: int, per_process: dict | None = None) -> int:
    """Sum of VmRSS (KiB) over ``root_pid`` and its descendants, read from /proc; with
    ``per_process``, each process's largest VmRSS so far is kept there under its role
    (``main``: the ``carkinetics run`` process; ``figures``: its figure helper)."""
    children, rss = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        pid, ppid = int(entry), int(fields.get("PPid", "0").strip())
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, ()))
        if per_process is not None and pid != root_pid:
            role = _role(pid)
            if role:
                per_process[role] = max(per_process.get(role, 0), rss.get(pid, 0))
    return total


def _role(pid: int) -> str:
    """``main`` for the ``carkinetics run`` process, ``figures`` for its figure helper, else ''."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ")
    except OSError:
        return ""
    if b"carkinetics run" in cmd or b"-m carkinetics" in cmd:
        return "main"
    return "figures" if b"serve()" in cmd else ""


def cli_run(scenario: Path, n: int, jobs: int, seed: int, out: Path, env: dict) -> dict:
    """``carkinetics run`` in a fresh process: wall time, peak RSS, run.json timings, files."""
    cmd = [sys.executable, "-m", "carkinetics", "run", str(scenario), "--n", str(n), "--seed", str(seed),
           "--jobs", str(jobs), "-o", str(out)]
    load0 = os.getloadavg()[0]
    proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, *cmd], stdout=subprocess.PIPE, text=True, env=env)
    peak = [0]
    per_process = {}
    stop = threading.Event()

    def sample():
        while not stop.wait(0.1):
            peak[0] = max(peak[0], _tree_rss_kib(proc.pid, per_process))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    stop.set()
    sampler.join()
    rc, wall, maxrss_kib = stdout.split()
    if int(rc) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit status {rc} (run it by hand to see why)")
    info = json.loads((out / "run.json").read_text())
    t = info["timings"]
    return {"n": n, "jobs": jobs, "wall_s": float(wall), "patients_per_s": n / float(wall),
            "peak_rss_mib": int(maxrss_kib) / 1024, "peak_tree_rss_mib": peak[0] / 1024,
            "peak_main_rss_mib": per_process.get("main", 0) / 1024,
            "peak_figures_rss_mib": per_process.get("figures", 0) / 1024,
            "run_total_s": t["total_s"], "draw_s": t["draw_s"], "simulate_s": t["simulate_s"],
            "reduce_s": t["reduce_s"], "finalise_s": t["finalise_s"], "chunk_size": info["chunk_size"],
            "n_failed": info["n_failed"], "status": info["status"],
            "files_mib": sum(f.stat().st_size for f in out.iterdir() if f.is_file()) / 2**20,
            "load_before": load0, "load_after": os.getloadavg()[0]}


def _sample_inputs(sc, n, seed):
    """The first ``n`` patients of the cohort and the keyword arguments of simulate_batch."""
    from bench_cohort import engine_inputs

    return engine_inputs(sc, n, seed)


def _load(scenario: Path):
    """The written scenario, built from its tables; its horizon checked."""
    from carkinetics.scenario.load import scenario_from_dict

    sc = scenario_from_dict(tomllib.loads(scenario.read_text()), scenario)
    if float(sc.times[-1]) != HORIZON:
        raise RuntimeError(f"the horizon did not reach {HORIZON:g} days")
    return sc


def engine_sample(scenario: Path, n: int, jobs: int, seed: int) -> dict:
    """Per-patient engine counters and raw patients/s on the cohort's first ``n`` patients."""
    from carkinetics import simulate_batch
    from carkinetics.engine.constants import COUNTER_NAMES

    sc = _load(scenario)
    params, schedule, kwargs = _sample_inputs(sc, n, seed)
    simulate_batch(sc.model, schedule, sc.times, params, n_threads=jobs, **kwargs)  # warm
    t0 = time.perf_counter()
    res = simulate_batch(sc.model, schedule, sc.times, params, n_threads=jobs, **kwargs)
    seconds = time.perf_counter() - t0
    row = {"sample_n": n, "raw_patients_per_s": n / seconds, "n_times": len(sc.times),
           "n_states": sc.model.n_states}
    for name in ("n_steps", "n_rejected", "n_rhs_evals", "n_stiff_steps", "n_jumps"):
        if name in COUNTER_NAMES:
            c = res.counter(name)
            row[name] = float(c.mean())
            row[name + "_p99"] = float(np.percentile(c, 99))
    return row


def profile_run(scenario: Path, n: int, jobs: int, seed: int, out: Path, top: int = 25) -> str:
    """cProfile of run_cohort (this process, warm kernel) on ``n`` patients: cumulative times."""
    import cProfile
    import io
    import pstats

    from carkinetics.cohort.pipeline import run_cohort

    sc = _load(scenario)
    run_cohort(sc, 500, seed, jobs=jobs)  # load the kernel
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    res = run_cohort(sc, n, seed, jobs=jobs, patients_csv=out / "patients.csv")
    prof.disable()
    wall = time.perf_counter() - t0
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return f"run_cohort, {n:,} patients, {wall:.1f} s; timings {res.info['timings']}\n" + buf.getvalue()


def cpu_run(scenario: Path, n: int, jobs: int, seed: int, out: Path) -> str:
    """run_cohort of ``n`` patients in this process (warm kernel): wall time, CPU per patient, and
    the reducing thread's share (``time.thread_time`` around each chunk's reduction)."""
    from carkinetics.cohort import pipeline

    sc = _load(scenario)
    pipeline.run_cohort(sc, 500, seed, jobs=jobs)  # load the kernel
    spent = [0.0]
    reduce = pipeline._ChunkReducer.reduce

    def timed(self, *args, **kwargs):
        t = time.thread_time()
        try:
            return reduce(self, *args, **kwargs)
        finally:
            spent[0] += time.thread_time() - t

    pipeline._ChunkReducer.reduce = timed
    try:
        c0, w0 = time.process_time(), time.perf_counter()
        pipeline.run_cohort(sc, n, seed, jobs=jobs, patients_csv=out / "patients.csv")
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    finally:
        pipeline._ChunkReducer.reduce = reduce
    return (f"run_cohort, {n:,} patients: wall {wall:.1f} s, CPU {cpu:.1f} s ({cpu / n * 1e3:.3f} ms per patient), "
            f"reducing thread {spent[0]:.1f} s ({spent[0] / n * 1e3:.3f} ms per patient), "
            f"the rest {(cpu - spent[0]) / n * 1e3:.3f} ms per patient")


# ----------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------


def table(rows: list, sample: dict | None) -> str:
    """The markdown table of the CLI rows (and the engine sample's counters)."""
    lines = ["| N | wall (s) | patients/s | peak RSS, largest process (MiB) | main / figure helper (MiB) | "
             "peak RSS, process tree (MiB) | run_cohort (s) | engine (s) | reduce (s) | finalise (s) | "
             "start-up + files (s) | files (MiB) | chunk | failed | load avg before / after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['wall_s']:.1f} | {r['patients_per_s']:,.0f} | {r['peak_rss_mib']:,.0f} | "
            f"{r.get('peak_main_rss_mib', 0):,.0f} / {r.get('peak_figures_rss_mib', 0):,.0f} | "
            f"{r['peak_tree_rss_mib']:,.0f} | {r['run_total_s']:.1f} | {r['simulate_s']:.1f} | "
            f"{r['reduce_s']:.1f} | {r['finalise_s']:.1f} | {r['wall_s'] - r['run_total_s']:.1f} | "
            f"{r['files_mib']:,.0f} | {r['chunk_size']:,} | {r['n_failed']} | "
            f"{r['load_before']:.2f} / {r['load_after']:.2f} |")
    if sample:
        lines += ["", f"Engine sample ({sample['sample_n']:,} patients, {sample['n_states']} states, "
                      f"{sample['n_times']} output times, one simulate_batch call): "
                      f"{sample['raw_patients_per_s']:,.0f} patients/s; per patient "
                      + ", ".join(f"{k} {sample[k]:,.0f} (p99 {sample[k + '_p99']:,.0f})"
                                  for k in ("n_steps", "n_rejected", "n_rhs_evals", "n_stiff_steps", "n_jumps")
                                  if k in sample)
                      + "."]
    big = [r for r in rows if r["n"] >= 1_000_000]
    for r in big:
        ok = r["wall_s"] < BAR_SECONDS and r["peak_tree_rss_mib"] < BAR_MIB
        lines += ["", f"**Bar ({r['n']:,} patients x {HORIZON:g} days < {BAR_SECONDS:g} s and < 2 GiB, "
                      f"{r['jobs']} cores): {'met' if ok else 'NOT met'}** ({r['wall_s']:.0f} s, "
                      f"{r['peak_tree_rss_mib']:,.0f} MiB)."]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--quick", action="store_true", help="N = 10,000 only (smoke test)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sample", type=int, default=4096, help="patients of the in-process engine sample (0: none)")
    ap.add_argument("--keep-cache", action="store_true", help="use the usual kernel cache (no fresh compile)")
    ap.add_argument("--live-model", action="store_true",
                    help="name the repository's model and parameter set files (default: copies made at the start)")
    ap.add_argument("--profile", type=int, default=None, metavar="N",
                    help="instead of the table: cProfile of run_cohort on N patients in this process")
    ap.add_argument("--cpu", type=int, default=None, metavar="N",
                    help="instead of the table: run_cohort of N patients in this process, CPU per patient and "
                         "the reducing thread's share")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    ns = [10_000] if args.quick else args.n

    with tempfile.TemporaryDirectory(prefix="bench_tall_v2_") as tmp:
        tmp = Path(tmp)
        env = dict(os.environ)
        if not args.keep_cache:
            env["CARKINETICS_CACHE_DIR"] = os.environ["CARKINETICS_CACHE_DIR"] = str(tmp / "cache")
        scen_dir = tmp / "scenario"
        scen_dir.mkdir()
        snapshot = None
        if not args.live_model:
            snapshot = tmp / "snapshot"
            snapshot.mkdir()
        scenario = write_scenario(scen_dir, snapshot=snapshot)
        warm = cli_run(scenario, 200, args.jobs, args.seed, tmp / "warm", env)
        print(f"warm-up (200 patients, {'usual kernel cache' if args.keep_cache else 'fresh compile'}): "
              f"{warm['wall_s']:.1f} s wall", flush=True)
        if args.profile:
            (tmp / "prof").mkdir()
            print(profile_run(scenario, args.profile, args.jobs, args.seed, tmp / "prof"))
            return
        if args.cpu:
            (tmp / "cpu").mkdir()
            print(cpu_run(scenario, args.cpu, args.jobs, args.seed, tmp / "cpu"))
            return
        sample = engine_sample(scenario, args.sample, args.jobs, args.seed) if args.sample else None
        if sample:
            print(json.dumps(sample), flush=True)
        rows = []
        for n in ns:
            out = tmp / f"run_{n}"
            rows.append(cli_run(scenario, n, args.jobs, args.seed, out, env))
            print(json.dumps(rows[-1]), flush=True)
            subprocess.run(["rm", "-rf", str(out)], check=True)  # patients.csv of 10^6 patients is large
    head = (f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}; --jobs {args.jobs}, seed {args.seed}, {HORIZON:g} days; "
            f"warm-up ({'usual kernel cache' if args.keep_cache else 'compile'}) {warm['wall_s']:.1f} s")
    text = head + "\n\n" + table(rows, sample)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"header": head, "warm_up": warm, "engine_sample": sample, "rows": rows},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
