"""Throughput and memory of a sweep grid point as the number of virtual patients grows.

Each size runs in a fresh process (so peak memory is that run's), as one grid point of
``scenarios/protocol_design.toml`` (the T-ALL model, two years of follow-up, daily output,
CD7 product, 1e6 CAR+ cells/kg, previous donor, transplant at day 45, 99% editing),
aggregated as it streams (no per-patient table written). The numba kernel is compiled
(or loaded from the cache) before timing, and its time is reported apart.

Usage::

    python benchmarks/bench_sweep.py                    # N = 1e3, 1e4, 1e5
    python benchmarks/bench_sweep.py --full --jobs 2    # ... and 1e6 (the bar: < 5 min, < 2 GiB)
    python benchmarks/bench_sweep.py --sizes 1000 20000 --output benchmarks/sweep_scaling.md

The equivalent command line for one size::

    carkinetics sweep scenarios/protocol_design.toml -o /tmp/p --points ID --n 1000000 --jobs 2 --no-plots
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "protocol_design.toml"
POINT = {"product": "cd7", "dose_per_kg": 1e6, "arm": "previous_donor", "transplant_day": "45",
         "product_edited_fraction": 0.99}

# Peak memory is the child's VmHWM (its own high-water mark since exec; ru_maxrss would
# include the parent's, which Linux carries across fork + exec).
_CHILD = r"""
import json, sys, time
from pathlib import Path
from carkinetics.scenario.load import load_scenario
from carkinetics.studies.sweep import sweep
scenario, out, n, jobs, point = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
sc = load_scenario(scenario)
t0 = time.perf_counter()
res = sweep(sc, out, n=n, jobs=jobs, points=[point], progress=False)
wall = time.perf_counter() - t0
status = Path("/proc/self/status").read_text()
peak = int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1]) * 1024
s = res.summary
cr = s[(s["endpoint"] == "cr_d28") & (s["statistic"] == "proportion")]["value"].iloc[0]
print(json.dumps({"n": n, "wall_s": wall, "peak_bytes": peak, "cr_d28": cr}))
"""


def point_id():
    from carkinetics.scenario.load import load_scenario
    from carkinetics.studies.sweep_result import grid_frame

    grid = grid_frame(load_scenario(SCENARIO).sweep)
    sel = grid
    for k, v in POINT.items():
        sel = sel[sel[k].astype(str) == str(v)] if isinstance(v, str) else sel[sel[k] == v]
    return int(sel["point"].iloc[0])


def warm(jobs, pid):
    """Compile (or load) every kernel the timed runs use, in a child; return its wall time."""
    t0 = time.perf_counter()
    run_size(2000, jobs, pid)
    return time.perf_counter() - t0


def run_size(n, jobs, pid):
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", _CHILD, str(SCENARIO), str(Path(tmp) / "sweep"), str(n),
                              str(jobs), str(pid)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--full", action="store_true", help="include one million patients")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--output", type=Path, default=None, help="write the table (markdown) here")
    args = ap.parse_args(argv)
    sizes = args.sizes or ([1_000, 10_000, 100_000] + ([1_000_000] if args.full else []))
    pid = point_id()
    compile_s = warm(args.jobs, pid)
    rows = []
    for n in sizes:
        r = run_size(n, args.jobs, pid)
        r["us_per_patient"] = 1e6 * r["wall_s"] / n
        rows.append(r)
        print(f"N = {n:>9,d}: {r['wall_s']:8.1f} s, {n / r['wall_s']:8,.0f} patients/s, "
              f"{r['us_per_patient']:7.1f} us/patient, peak {r['peak_bytes'] / 2**30:5.2f} GiB, "
              f"CR d28 {r['cr_d28']:.3f}", flush=True)
    import platform

    lines = [f"Sweep grid point of `scenarios/protocol_design.toml` (point {pid}: "
             + ", ".join(f"{k} = {v}" for k, v in POINT.items()) + "), two years, daily output, "
             f"--jobs {args.jobs}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores; warm-up "
             f"run (kernel compile or cache load, 2,000 patients) {compile_s:.1f} s, not included.", "",
             "| virtual patients | wall time (s) | patients / s | µs / patient | peak memory (GiB) |",
             "|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['wall_s']:.1f} | {r['n'] / r['wall_s']:,.0f} | "
                     f"{r['us_per_patient']:.1f} | {r['peak_bytes'] / 2**30:.2f} |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.output:
        args.output.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
