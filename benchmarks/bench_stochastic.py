"""Stochastic-engine benchmark: throughput of models with stochastic states and model events.

Rows (patients per second of ``simulate_batch``, 2 threads and 1 thread, after a warm-up
that compiles the kernel):

* ``birth_death``: ``models/examples/birth_death.toml``, 20,000 patients, daily outputs to
  day 200 (the workload of ``scenarios/examples/birth_death.toml``), with the share extinct
  on day 200 as a sanity check (exact: 0.216);
* ``logistic_escape``: ``models/examples/logistic_escape.toml``, 5,000 patients, daily
  outputs to day 365, with the share that escaped (about 0.943);
* ``stochastic16``: ``benchmarks/models/stochastic16.toml`` (16 coupled cell populations, the
  two rare clones stochastic) against its deterministic twin
  ``benchmarks/models/stochastic16_deterministic.toml``, 365 days, weekly outputs, the same
  patients (log-normal spread from the models' ``iiv_log_sd``), one after the other in the
  same process: the ratio of costs.

Deterministic throughput of two source trees (the check that the deterministic path did not
slow down), alternating fresh processes of each tree's own ``benchmarks/bench_engine.py``
workload (``--ab OLD NEW``; see ``benchmarks/README.md``).

Usage::

    python benchmarks/bench_stochastic.py                   # all rows (a few minutes on 2 cores)
    python benchmarks/bench_stochastic.py --quick           # small N, for a smoke test
    python benchmarks/bench_stochastic.py --json out.json
    python benchmarks/bench_stochastic.py --ab /tmp/base . --rounds 3

The script is not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEED = 20261205


# ----------------------------------------------------------------------------------------
# workloads
# ----------------------------------------------------------------------------------------


def _load(path):
    from carkinetics import load_model

    return load_model(path)


def _cohort(model, n, seed=2024):
    """n parameter vectors: typical values times the model's log-normal spread (none: copies)."""
    rng = np.random.default_rng(seed)
    sd = np.array([p.iiv_log_sd for p in model.parameters])
    return model.default_parameters() * np.exp(rng.normal(size=(n, model.n_parameters)) * sd)


def _counter(batch, name):
    from carkinetics.engine.constants import COUNTER_NAMES

    return float(batch.counter(name).mean()) if name in COUNTER_NAMES else float("nan")


def timed(model, times, params, n_threads=None, repeats=1, **kw):
    """Best of ``repeats`` runs of simulate_batch -> (batch, seconds)."""
    from carkinetics import simulate_batch

    best, batch = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        batch = simulate_batch(model, None, times, params, n_threads=n_threads, seed=SEED, **kw)
        best = min(best, time.perf_counter() - t0)
    return batch, best


def _row(name, model, times, params, repeats, check):
    """Throughput of one model at 2 threads and 1 thread, and a sanity figure."""
    timed(model, times, params[:8])  # compile / load the kernel (parallel and serial entry points)
    timed(model, times, params[:8], n_threads=1)
    n = len(params)
    batch, e2 = timed(model, times, params, repeats=repeats)
    _, e1 = timed(model, times, params, n_threads=1, repeats=repeats)
    row = dict(model=name, n=n, days=float(times[-1]), patients_per_s_2threads=n / e2,
               patients_per_s_1thread=n / e1, us_per_patient_1thread=1e6 * e1 / n,
               failures=int((batch.status != 0).sum()), steps_per_patient=_counter(batch, "n_steps"),
               rhs_per_patient=_counter(batch, "n_rhs_evals"))
    row.update(check(batch))
    print(f"  {name:26s} N {n:6d}  {row['patients_per_s_2threads']:9.0f} patients/s (2 threads)  "
          f"{row['patients_per_s_1thread']:9.0f} (1 thread)  steps/patient {row['steps_per_patient']:7.0f}  "
          + "  ".join(f"{k} {v:.4g}" for k, v in check(batch).items()), flush=True)
    return row


def birth_death(n, repeats):
    model = _load(ROOT / "models" / "examples" / "birth_death.toml")
    times = np.arange(0.0, 201.0)
    params = _cohort(model, n)

    def check(b):
        return dict(extinct_d200=float((b.output("cells_total")[:, -1] == 0).mean()))

    return _row("birth_death", model, times, params, repeats, check)


def logistic_escape(n, repeats):
    model = _load(ROOT / "models" / "examples" / "logistic_escape.toml")
    times = np.arange(0.0, 366.0)
    params = _cohort(model, n)

    def check(b):
        k = list(b.model_event_names).index("escape")
        return dict(escaped=float((b.model_event_count[:, k] > 0).mean()))

    return _row("logistic_escape", model, times, params, repeats, check)


def stochastic16(n, repeats):
    """The 16-state model with two stochastic states against its deterministic twin."""
    stoch = _load(HERE / "models" / "stochastic16.toml")
    det = _load(HERE / "models" / "stochastic16_deterministic.toml")
    assert stoch.parameter_names == det.parameter_names and stoch.state_names == det.state_names
    times = np.append(np.arange(0.0, 365.0, 7.0), 365.0)
    params = _cohort(det, n)
    rows = []
    for name, model in (("stochastic16_deterministic", det), ("stochastic16", stoch)):
        def check(b, model=model):
            return dict(resistant_d28=float(np.median(b.state("resistant")[:, 4])),
                        preleukaemic_d365=float(np.median(b.state("preleukaemic")[:, -1])))

        rows.append(_row(name, model, times, params, repeats, check))
    det_row, st_row = rows
    ratio = dict(cost_ratio_2threads=det_row["patients_per_s_2threads"] / st_row["patients_per_s_2threads"],
                 cost_ratio_1thread=det_row["patients_per_s_1thread"] / st_row["patients_per_s_1thread"])
    print(f"  stochastic16 / deterministic cost: {ratio['cost_ratio_2threads']:.2f} x (2 threads), "
          f"{ratio['cost_ratio_1thread']:.2f} x (1 thread)", flush=True)
    return rows, ratio


# ----------------------------------------------------------------------------------------
# deterministic A/B between two source trees
# ----------------------------------------------------------------------------------------

_AB_CHILD = r"""
import json, sys, time
tree = {tree!r}
sys.path.insert(0, tree + "/benchmarks")
import carkinetics
assert carkinetics.__file__.startswith(tree), (carkinetics.__file__, tree)
import bench_engine as b
model = b.load()
params = b.cohort(model, {n})
b.run_engine(model, params[:4], 1e-6)
b.run_engine(model, params[:4], 1e-6, n_threads=1)
out = {{}}
for label, threads in (("2threads", None), ("1thread", 1)):
    best = float("inf")
    for _ in range({repeats}):
        states, elapsed, rhs, fails = b.run_engine(model, params, 1e-6, n_threads=threads)
        best = min(best, elapsed)
    out[label] = {n} / best
out["rhs_per_patient"] = rhs
print(json.dumps(out))
"""


def ab_child(tree, n, repeats):
    """One fresh process of ``tree``: its bench_engine workload, best of ``repeats`` timings."""
    tree = str(Path(tree).resolve())
    env = dict(os.environ, PYTHONPATH=tree)
    code = _AB_CHILD.format(tree=tree, n=n, repeats=repeats)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tree)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: benchmark child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ab(trees, n, rounds, repeats):
    """Alternate A, B, B, A, ... ``rounds`` times; mean of each tree and B against A in percent."""
    a, b = (str(Path(tree).resolve()) for tree in trees)
    runs = {a: [], b: []}
    for r in range(rounds):
        order = (a, b) if r % 2 == 0 else (b, a)
        for tree in order:
            res = ab_child(tree, n, repeats)
            runs[tree].append(res)
            print(f"  round {r + 1} {tree}: {res['2threads']:9.0f} patients/s (2 threads)  "
                  f"{res['1thread']:9.0f} (1 thread)  rhs/patient {res['rhs_per_patient']:.0f}", flush=True)
    report = {}
    for label in ("2threads", "1thread"):
        ma = float(np.mean([x[label] for x in runs[a]]))
        mb = float(np.mean([x[label] for x in runs[b]]))
        report[label] = dict(a=ma, b=mb, change_percent=100.0 * (mb / ma - 1.0))
        print(f"  {label}: A {ma:9.0f}  B {mb:9.0f}  B vs A {report[label]['change_percent']:+.1f} %")
    return dict(trees=[a, b], n=n, rounds=rounds, repeats=repeats, runs=runs, summary=report)


# ----------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------


def _machine():
    import numba

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return dict(cpu=cpu, cores=os.cpu_count(), numba_threads=numba.config.NUMBA_NUM_THREADS,
                python=platform.python_version(), numba=numba.__version__)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--json", type=Path, help="write all figures to this JSON file")
    parser.add_argument("--repeats", type=int, default=2, help="timings per row (the best is kept)")
    parser.add_argument("--only", choices=["birth_death", "logistic_escape", "stochastic16"], action="append",
                        help="run only these rows (repeatable)")
    parser.add_argument("--ab", nargs=2, metavar=("OLD_TREE", "NEW_TREE"),
                        help="deterministic throughput (bench_engine workload) of two source trees, alternating")
    parser.add_argument("--ab-n", type=int, default=10_000, help="patients per A/B run")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds (each runs both trees)")
    args = parser.parse_args(argv)

    report = {"machine": _machine(), "command": " ".join(["bench_stochastic.py"] + (argv or sys.argv[1:]))}
    print(f"# stochastic engine benchmark ({report['machine']})", flush=True)
    if args.ab:
        report["ab"] = ab(args.ab, args.ab_n, args.rounds, args.repeats)
    else:
        q = args.quick
        only = set(args.only or ["birth_death", "logistic_escape", "stochastic16"])
        rows = []
        if "birth_death" in only:
            rows.append(birth_death(2_000 if q else 20_000, args.repeats))
        if "logistic_escape" in only:
            rows.append(logistic_escape(500 if q else 5_000, args.repeats))
        if "stochastic16" in only:
            pair, ratio = stochastic16(200 if q else 2_000, args.repeats)
            rows += pair
            report["stochastic16_ratio"] = ratio
        report["rows"] = rows
    print(json.dumps(report, indent=2, default=float))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
