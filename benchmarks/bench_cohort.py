"""Cohort benchmark: `carkinetics run --n` against the engine's raw batch throughput, and memory.

Two workloads:

* ``multiphasic``: the shipped cohort scenario of the reference model
  (``scenarios/multiphasic_cohort.toml``: Stein 2019, 2 states, daily outputs over 730
  days, between-patient variability, a dose-per-kg covariate, four NCA endpoints, bands
  of the transgene output);
* ``cart10``: the 10-state CAR-T-like model of the engine benchmark
  (``benchmarks/models/cart_benchmark.toml``, day-0 infusion and day-60 transplant,
  weekly outputs over 365 days, the model's variability), as a generated scenario with
  bands of its two outputs and three endpoints.

For each workload and N (10,000 and 100,000 by default):

* **raw engine**: one :func:`carkinetics.simulate_batch` call on the very same N
  patients (parameters drawn by the cohort's own design), same times, schedule, solver
  options and saved outputs, warm kernels, in this process: the engine's batch
  throughput with nothing else;
* **run (library)**: :func:`carkinetics.cohort.pipeline.run_cohort` time inside the CLI process
  (``run.json`` ``timings.total_s``: drawing, simulation in chunks, endpoints, bands,
  summaries), i.e. what streaming costs on top of the engine;
* **run (CLI)**: wall time of ``carkinetics run SCENARIO --n N --jobs J`` in a fresh
  process, including Python start-up, imports, loading cached kernels and writing
  files; and its peak resident memory (``ru_maxrss`` of that process alone, measured
  in a wrapper process).

Raw engine and CLI are each the best of ``--repeats`` runs (default 2), measured back to
back for each workload and N, so that both see the same machine load.

Usage::

    python benchmarks/bench_cohort.py                      # N = 10,000 and 100,000, 2 threads
    python benchmarks/bench_cohort.py --n 2000 20000 --jobs 1
    python benchmarks/bench_cohort.py --markdown out.md --json out.json

Not collected by pytest. Timings on a shared machine vary; run it alone if you can.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CART10_SCENARIO = """
[scenario]
name = "cart10_cohort"
description = "10-state benchmark model: infusion and day-60 transplant, weekly outputs over a year"
model = "{model}"

[times]
values = {times}

[population]
seed = 2024

[[events]]
name = "infusion"
time = 0
add = {{ effector_neg = 6.65e7, effector_pos = 3.5e6 }}

[[events]]
name = "transplant"
time = 60
multiply = {{ leukaemia_pos = 1e-2, leukaemia_neg = 1e-2, normal_pos = 0.05, normal_neg = 0.05 }}
add = {{ donor_t = 5e8 }}

[endpoints.car_peak]
type = "cmax"
output = "car_t_blood"

[endpoints.car_auc_0_28]
type = "auc"
output = "car_t_blood"
start = 0
end = 28

[endpoints.blasts_d90]
type = "level"
output = "blasts"
day = 90
"""


def _write_cart10(folder: Path) -> Path:
    times = np.append(np.arange(0.0, 365.0, 7.0), 365.0)
    text = CART10_SCENARIO.format(model=(HERE / "models" / "cart_benchmark.toml").as_posix(),
                                  times="[" + ", ".join(f"{t:g}" for t in times) + "]")
    path = folder / "cart10_cohort.toml"
    path.write_text(text)
    return path


def engine_inputs(sc, n: int, seed: int):
    """The first ``n`` patients of a scenario's cohort, all given the first arm's events, as
    simulate_batch inputs: (parameters, event schedule, keyword arguments), the outputs saved
    as ``carkinetics run`` saves them (band outputs and what the endpoints need)."""
    from carkinetics.cohort.chunk import ArmEvents
    from carkinetics.scenario.sampling import cohort_design

    design = cohort_design(sc, seed)
    draws = design.draw(0, n)
    es = sc.endpoints
    names = list(dict.fromkeys(list(sc.plot_outputs) + list(es.outputs_needed if es else ())))
    env = sc.default_env()
    env.update(design.variables)
    ev = ArmEvents(sc, design.arm_names[0], env)
    times_, values = ev.arrays(draws.env(sc.model.parameter_names), n)
    kwargs = dict(event_times=times_, action_values=values, options=sc.solver, t0=sc.t0,
                  save_states=[x for x in names if x not in sc.model.output_names],
                  save_outputs=[x for x in names if x in sc.model.output_names])
    return draws.parameters, ev.schedule, kwargs


def raw_engine(scenario_path: Path, n: int, jobs: int, seed: int, repeats: int = 2) -> float:
    """Seconds for one simulate_batch call on the cohort's N patients (best of ``repeats``)."""
    from carkinetics import simulate_batch
    from carkinetics.scenario.load import load_scenario

    sc = load_scenario(scenario_path)
    parameters, schedule, kwargs = engine_inputs(sc, n, seed)
    kwargs["n_threads"] = jobs
    times_, values = kwargs["event_times"], kwargs["action_values"]
    simulate_batch(sc.model, schedule, sc.times, parameters[:256], **{
        **kwargs, "event_times": None if times_ is None else times_[:256],
        "action_values": None if values is None else values[:256]})  # warm
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = simulate_batch(sc.model, schedule, sc.times, parameters, **kwargs)
        best = min(best, time.perf_counter() - t0)
        del res
    return best


_WRAPPER = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
wall = time.perf_counter() - t0
print(rc, wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def cli_run(scenario_path: Path, n: int, jobs: int, seed: int, out: Path) -> dict:
    """Run ``carkinetics run`` in a fresh process; wall time, peak RSS (MiB) and run.json timings."""
    cmd = [sys.executable, "-m", "carkinetics", "run", str(scenario_path), "--n", str(n), "--seed", str(seed),
           "--jobs", str(jobs), "-o", str(out)]
    res = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True, check=True)
    rc, wall, maxrss_kib = res.stdout.split()
    if int(rc) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit status {rc}")
    info = json.loads((out / "run.json").read_text())
    return {"wall_s": float(wall), "peak_rss_mib": int(maxrss_kib) / 1024, "run_total_s": info["timings"]["total_s"],
            "simulate_s": info["timings"]["simulate_s"], "chunk_size": info["chunk_size"],
            "n_failed": info["n_failed"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workloads", nargs="+", default=["multiphasic", "cart10"], choices=["multiphasic", "cart10"])
    ap.add_argument("--repeats", type=int, default=2, help="runs of the raw engine and of the CLI (best kept)")
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_cohort_") as tmp:
        tmp = Path(tmp)
        scenarios = {"multiphasic": ROOT / "scenarios" / "multiphasic_cohort.toml", "cart10": _write_cart10(tmp)}
        for w in args.workloads:
            path = scenarios[w]
            cli_run(path, 1000, args.jobs, args.seed, tmp / f"{w}_warm")  # compile / load the kernels once
            for n in args.n:
                raw = raw_engine(path, n, args.jobs, args.seed, repeats=args.repeats)
                runs = [cli_run(path, n, args.jobs, args.seed, tmp / f"{w}_{n}_{r}") for r in range(args.repeats)]
                cli = min(runs, key=lambda r: r["wall_s"])
                cli["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
                row = {"workload": w, "n": n, "jobs": args.jobs, "raw_s": raw, "raw_per_s": n / raw,
                       "run_per_s": n / cli["run_total_s"], "cli_per_s": n / cli["wall_s"], **cli}
                row["run_vs_raw"] = row["run_per_s"] / row["raw_per_s"]
                row["cli_vs_raw"] = row["cli_per_s"] / row["raw_per_s"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    by = {(r["workload"], r["n"]): r for r in rows}
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; {args.jobs} threads; seed {args.seed}; raw engine and CLI best of "
        f"{args.repeats} runs each.",
        "",
        "| workload | N | raw engine (patients/s) | run, library (patients/s) | library / raw | "
        "run, CLI end to end (patients/s) | CLI / raw | peak RSS (MiB) | chunk |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['n']:,} | {r['raw_per_s']:,.0f} | {r['run_per_s']:,.0f} | "
                     f"{r['run_vs_raw']:.2f} | {r['cli_per_s']:,.0f} | {r['cli_vs_raw']:.2f} | "
                     f"{r['peak_rss_mib']:,.0f} | {r['chunk_size']} |")
    lines.append("")
    for w in args.workloads:
        ns = sorted(n for (ww, n) in by if ww == w)
        if len(ns) >= 2:
            lo, hi = by[(w, ns[0])], by[(w, ns[-1])]
            lines.append(f"* {w}: peak RSS at N = {ns[-1]:,} is {hi['peak_rss_mib'] / lo['peak_rss_mib']:.2f} x "
                         f"that at N = {ns[0]:,}.")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
