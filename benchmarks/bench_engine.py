"""Engine benchmark: carkinetics against numbalsoda and scipy, same workload, one run.

Workload: the 10-state CAR-T-like model ``benchmarks/models/cart_benchmark.toml``
(fratricide, leukaemia, normal and donor T cells), a day-0 infusion and a day-60
transplant event, 365 days, states saved weekly, log-normal between-patient spread
(the model's ``iiv_log_sd``). Extinction thresholds are off for every method so all
solve the same ODE.

Peers, each given the very same right-hand side (generated from the model file):

* carkinetics ``simulate_batch`` (Tsit5 with automatic RODAS4 switching), all cores;
* numbalsoda ``lsoda`` and ``dop853`` called from a numba ``prange`` loop (all cores),
  the right-hand side as a numba ``cfunc``; installed only for the benchmark
  (``pip install numbalsoda``, needs a Fortran compiler such as Debian's gfortran);
* ``scipy.integrate.solve_ivp(method="LSODA")`` per patient in a Python loop.

Accuracy first: every method's error is the largest relative error against a scipy
Radau reference (rtol 1e-10) over a subset of patients, every output time and every
state above one cell. The work-precision table lists error and time per tolerance;
the throughput table compares each peer at the loosest tolerance that reaches 1e-4.

The run ends with the rows of ``bench_stochastic.py`` for the example models with random
births and deaths (``models/examples/birth_death.toml``, ``logistic_escape.toml``), in
patients per second.

Usage::

    python benchmarks/bench_engine.py              # full run (about 15 minutes on 2 cores)
    python benchmarks/bench_engine.py --quick      # small N, for a smoke test
    python benchmarks/bench_engine.py --json out.json

The script is not collected by pytest. Its classes follow airspeed velocity's shape
(``params``, ``setup``, ``time_*``, ``track_*``) so asv can adopt them later.
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
MODEL_PATH = HERE / "models" / "cart_benchmark.toml"
TIMES = np.append(np.arange(0.0, 365.0, 7.0), 365.0)
HSCT_DAY = 60.0
DOSE = 7e7  # CAR-T cells: 95% edited (antigen-negative), 5% still antigen-positive
ACCURACY_BAR = 1e-4


# ----------------------------------------------------------------------------------------
# workload
# ----------------------------------------------------------------------------------------


def load():
    from carkinetics import load_model

    return load_model(MODEL_PATH)


def cohort(model, n, seed=2024):
    rng = np.random.default_rng(seed)
    sd = np.array([p.iiv_log_sd for p in model.parameters])
    return model.default_parameters() * np.exp(rng.normal(size=(n, model.n_parameters)) * sd)


def schedule():
    from carkinetics import Action, Event

    return [
        Event(0.0, [Action("add", "effector_neg", 0.95 * DOSE), Action("add", "effector_pos", 0.05 * DOSE)],
              name="infusion"),
        Event(HSCT_DAY, [Action("multiply", "leukaemia_pos", 1e-2), Action("multiply", "leukaemia_neg", 1e-2),
                         Action("multiply", "normal_pos", 0.05), Action("multiply", "normal_neg", 0.05),
                         Action("add", "donor_t", 5e8)], name="transplant"),
    ]


def _initial_states(model, params):
    y0 = np.array([model.initial_state(p) for p in params])
    y0[:, model.state_index("effector_neg")] += 0.95 * DOSE
    y0[:, model.state_index("effector_pos")] += 0.05 * DOSE
    return y0


def _transplant(model):
    """(index, factor, addend) of the day-60 jump, as arrays for numba."""
    idx = [model.state_index(n) for n in ("leukaemia_pos", "leukaemia_neg", "normal_pos", "normal_neg",
                                          "donor_t")]
    return (np.array(idx, dtype=np.int64), np.array([1e-2, 1e-2, 0.05, 0.05, 1.0]),
            np.array([0.0, 0.0, 0.0, 0.0, 5e8]))


# ----------------------------------------------------------------------------------------
# the methods
# ----------------------------------------------------------------------------------------


def run_engine(model, params, rtol, n_threads=None):
    from carkinetics import SolverOptions, simulate_batch

    opts = SolverOptions(rtol=rtol, extinction=False)
    t0 = time.perf_counter()
    batch = simulate_batch(model, schedule(), TIMES, params, options=opts, n_threads=n_threads,
                           save_states=True, save_outputs=False)
    elapsed = time.perf_counter() - t0
    return batch.states, elapsed, float(batch.counter("n_rhs_evals").mean()), int((batch.status != 0).sum())


def _namespace(model, signature="t, y, p, dy"):
    """Python namespace with the model's rhs source and the helpers it calls."""
    import math

    import numba

    from carkinetics.model.codegen import rhs_function_source

    @numba.njit(inline="always")
    def _hill(x, k, n):
        if x <= 0.0:
            return 0.0
        return 1.0 / (1.0 + (k / x) ** n)

    ns = {"math": math, "_hill": _hill}
    exec(rhs_function_source(model, "rhs", signature), ns)  # generated from the validated model tree
    return ns


class NumbalsodaPeer:
    """numbalsoda's LSODA or DOP853 from a numba prange loop (all cores)."""

    def __init__(self, model, solver):
        import numba
        import numbalsoda

        ns = _namespace(model, "t, y, dy, p")  # numbalsoda's argument order
        self.cfunc = numba.cfunc(numbalsoda.lsoda_sig, error_model="numpy")(ns["rhs"])
        self.address = self.cfunc.address
        self.model = model
        solve = numbalsoda.lsoda if solver == "lsoda" else numbalsoda.dop853
        idx, fac, add = _transplant(model)
        first = TIMES[TIMES < HSCT_DAY]
        t1 = np.append(first, HSCT_DAY)
        t2 = np.concatenate([[HSCT_DAY], TIMES[TIMES > HSCT_DAY]])
        n1 = len(first)
        n_out = len(TIMES)
        n_states = model.n_states

        @numba.njit(parallel=True)
        def batch(address, params, y0, rtol, atol):
            n = params.shape[0]
            out = np.empty((n, n_out, n_states))
            ok = np.ones(n, dtype=np.bool_)
            for i in numba.prange(n):
                u1, s1 = solve(address, y0[i].copy(), t1, params[i].copy(), rtol, atol, 500000)
                y = u1[-1].copy()
                for k in range(idx.shape[0]):
                    y[idx[k]] = y[idx[k]] * fac[k] + add[k]
                u2, s2 = solve(address, y, t2, params[i].copy(), rtol, atol, 500000)
                out[i, :n1] = u1[:n1]
                out[i, n1:] = u2[1:]
                ok[i] = s1 and s2
            return out, ok

        self.batch = batch

    def run(self, params, rtol):
        y0 = _initial_states(self.model, params)
        t0 = time.perf_counter()
        out, ok = self.batch(self.address, params, y0, rtol, rtol * 1.0)  # atol: rtol x one cell
        return out, time.perf_counter() - t0, float("nan"), int((~ok).sum())


def run_scipy(model, params, rtol):
    from scipy.integrate import solve_ivp

    from carkinetics.model.codegen import python_rhs

    f = python_rhs(model)
    idx, fac, add = _transplant(model)
    y0s = _initial_states(model, params)
    out = np.empty((len(params), len(TIMES), model.n_states))
    nfev = []
    fails = 0
    t_start = time.perf_counter()
    for i, p in enumerate(params):
        pp = list(p)
        first = TIMES[TIMES < HSCT_DAY]
        s1 = solve_ivp(lambda t, y: f(t, y, pp), (0.0, HSCT_DAY), y0s[i], method="LSODA", rtol=rtol,
                       atol=rtol, t_eval=np.append(first, HSCT_DAY))
        y = s1.y[:, -1].copy()
        y[idx] = y[idx] * fac + add
        s2 = solve_ivp(lambda t, y: f(t, y, pp), (HSCT_DAY, 365.0), y, method="LSODA", rtol=rtol,
                       atol=rtol, t_eval=TIMES[TIMES > HSCT_DAY])
        fails += int(not (s1.success and s2.success))
        out[i, :len(first)] = s1.y[:, :-1].T
        out[i, len(first):] = s2.y.T
        nfev.append(s1.nfev + s2.nfev)
    return out, time.perf_counter() - t_start, float(np.mean(nfev)), fails


def reference(model, params):
    """Radau at rtol 1e-10 (atol 1e-10 cells) for each patient of ``params``."""
    from scipy.integrate import solve_ivp

    from carkinetics.model.codegen import python_rhs

    f = python_rhs(model)
    idx, fac, add = _transplant(model)
    y0s = _initial_states(model, params)
    out = np.empty((len(params), len(TIMES), model.n_states))
    first = TIMES[TIMES < HSCT_DAY]
    for i, p in enumerate(params):
        pp = list(p)
        s1 = solve_ivp(lambda t, y: f(t, y, pp), (0.0, HSCT_DAY), y0s[i], method="Radau", rtol=1e-10,
                       atol=1e-10, t_eval=np.append(first, HSCT_DAY))
        y = s1.y[:, -1].copy()
        y[idx] = y[idx] * fac + add
        s2 = solve_ivp(lambda t, y: f(t, y, pp), (HSCT_DAY, 365.0), y, method="Radau", rtol=1e-10,
                       atol=1e-10, t_eval=TIMES[TIMES > HSCT_DAY])
        assert s1.success and s2.success
        out[i, :len(first)] = s1.y[:, :-1].T
        out[i, len(first):] = s2.y.T
    return out


def max_rel_error(states, ref):
    big = np.abs(ref) > 1.0  # populations above one cell
    return float((np.abs(states - ref)[big] / np.abs(ref)[big]).max())


# ----------------------------------------------------------------------------------------
# compile and load times, memory (fresh processes)
# ----------------------------------------------------------------------------------------

_CHILD = r"""
import sys, time, json
t0 = time.perf_counter()
sys.path.insert(0, {here!r})
import bench_engine as b
model = b.load()
params = b.cohort(model, {n})
from carkinetics import SolverOptions, simulate_batch
def vmhwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1]) * 1024
import numpy as np
if {n} <= 4:
    t1 = time.perf_counter()
    b.run_engine(model, params, 1e-6, n_threads=1)
    t2 = time.perf_counter()
    b.run_engine(model, params, 1e-6)
    t3 = time.perf_counter()
    print(json.dumps(dict(serial=t2 - t1, parallel=t3 - t2)))
else:
    b.run_engine(model, params[:4], 1e-6)
    base = vmhwm()
    states, elapsed, rhs, fails = b.run_engine(model, params, 1e-6)
    print(json.dumps(dict(peak_increase=vmhwm() - base, outputs_bytes=states.nbytes, elapsed=elapsed)))
"""


def child(n, cache_dir):
    env = dict(os.environ, CARKINETICS_CACHE_DIR=str(cache_dir))
    code = _CHILD.format(here=str(HERE), n=n)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compile_and_load_times():
    with tempfile.TemporaryDirectory() as cache:
        cold = child(2, cache)
        warm = child(2, cache)
    return cold, warm


# ----------------------------------------------------------------------------------------
# asv-shaped suites
# ----------------------------------------------------------------------------------------


class EngineThroughput:
    params = [100, 1_000, 10_000, 100_000]
    param_names = ["n_patients"]

    def setup(self, n):
        self.model = load()
        self.cohort = cohort(self.model, n)
        run_engine(self.model, self.cohort[:4], 1e-6)

    def time_engine(self, n):
        run_engine(self.model, self.cohort, 1e-6)

    def track_rhs_evals_per_patient(self, n):
        return run_engine(self.model, self.cohort, 1e-6)[2]


# ----------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------


def _machine():
    import numba

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip()
    return dict(cpu=cpu, cores=os.cpu_count(), numba_threads=numba.config.NUMBA_NUM_THREADS,
                python=platform.python_version(), numba=numba.__version__, commit=commit)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--json", type=Path, help="write all figures to this JSON file")
    parser.add_argument("--n-ref", type=int, default=12, help="patients in the Radau reference subset")
    args = parser.parse_args(argv)

    quick = args.quick
    sizes = [100, 1_000] if quick else [100, 1_000, 10_000, 100_000]
    n_wp = 500 if quick else 4_000
    n_scipy = 20 if quick else 100
    n_ref = min(args.n_ref, 4 if quick else args.n_ref)
    report = {"machine": _machine(), "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:]))}
    print(f"# engine benchmark ({report['machine']})", flush=True)

    model = load()
    params_all = cohort(model, max(sizes))
    subset = params_all[:n_ref]

    t0 = time.perf_counter()
    ref = reference(model, subset)
    print(f"reference: Radau rtol 1e-10 for {n_ref} patients in {time.perf_counter() - t0:.0f} s", flush=True)

    peers = {}
    try:
        import numbalsoda  # noqa: F401

        for solver in ("lsoda", "dop853"):
            t0 = time.perf_counter()
            peer = NumbalsodaPeer(model, solver)
            peer.run(subset[:2], 1e-6)  # compile
            peers[f"numbalsoda {solver}"] = peer
            print(f"numbalsoda {solver}: compiled in {time.perf_counter() - t0:.1f} s", flush=True)
    except ImportError:
        print("numbalsoda is not installed: its rows are skipped (pip install numbalsoda; needs gfortran)")
    report["numbalsoda_installed"] = bool(peers)

    run_engine(model, subset[:4], 1e-6)
    run_engine(model, subset[:4], 1e-6, n_threads=1)

    # ---- work-precision
    grids = {
        "carkinetics": [1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 1e-7, 1e-8],
        "numbalsoda lsoda": [1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11],
        "numbalsoda dop853": [1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10],
        "scipy LSODA": [1e-6, 1e-8, 1e-10],
    }
    wp_params = params_all[:n_wp]
    rows = []
    for method, tols in grids.items():
        if method.startswith("numbalsoda") and method not in peers:
            continue
        for rtol in tols:
            if method == "carkinetics":
                _, elapsed, rhs, fails = run_engine(model, wp_params, rtol)
                states_ref = run_engine(model, subset, rtol)[0]
                n = len(wp_params)
            elif method == "scipy LSODA":
                states_ref, elapsed, rhs, fails = run_scipy(model, params_all[:n_scipy], rtol)
                states_ref = states_ref[:n_ref]
                n = n_scipy
            else:
                _, elapsed, rhs, fails = peers[method].run(wp_params, rtol)
                states_ref = peers[method].run(subset, rtol)[0]
                n = len(wp_params)
            err = max_rel_error(states_ref, ref)
            rows.append(dict(method=method, rtol=rtol, max_rel_error=err, us_per_patient=1e6 * elapsed / n,
                             patients_per_s=n / elapsed, rhs_per_patient=rhs, failures=fails, n=n))
            print(f"  {method:18s} rtol {rtol:7.0e}  error {err:9.2e}  {1e6 * elapsed / n:9.1f} us/patient  "
                  f"rhs/patient {rhs:7.0f}  failures {fails}", flush=True)
    report["work_precision"] = rows

    # ---- equal accuracy: the loosest tolerance of each method that reaches the bar
    chosen = {}
    for method in grids:
        ok = [r for r in rows if r["method"] == method and r["max_rel_error"] <= ACCURACY_BAR]
        if ok:
            chosen[method] = max(ok, key=lambda r: r["patients_per_s"])
    report["equal_accuracy"] = {m: dict(rtol=r["rtol"], error=r["max_rel_error"]) for m, r in chosen.items()}

    # ---- throughput by N at equal accuracy (engine at rtol 1e-6)
    engine_rtol = 1e-6
    eng_err = max_rel_error(run_engine(model, subset, engine_rtol)[0], ref)
    thr = []
    for n in sizes:
        params = params_all[:n]
        _, e2, rhs, f2 = run_engine(model, params, engine_rtol)
        row = dict(n=n, engine_2threads=n / e2, rhs_per_patient=rhs)
        if n <= 10_000:
            _, e1, _, _ = run_engine(model, params, engine_rtol, n_threads=1)
            row["engine_1thread"] = n / e1
        for method in ("numbalsoda lsoda", "numbalsoda dop853"):
            if method in peers and method in chosen:
                _, ep, _, _ = peers[method].run(params, chosen[method]["rtol"])
                row[method] = n / ep
        if n <= n_scipy and "scipy LSODA" in chosen:
            _, es, _, _ = run_scipy(model, params, chosen["scipy LSODA"]["rtol"])
            row["scipy LSODA"] = n / es
        thr.append(row)
        print("  N", n, {k: (round(v) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    if "scipy LSODA" in chosen:
        # the scipy loop's rate does not depend on N; measure it once on n_scipy patients
        _, es, _, _ = run_scipy(model, params_all[:n_scipy], chosen["scipy LSODA"]["rtol"])
        report["scipy_patients_per_s"] = n_scipy / es
    report["throughput"] = thr
    report["engine_rtol"] = engine_rtol
    report["engine_error"] = eng_err

    # ---- ratios (at the largest N where each peer ran)
    ratios = {}
    last = thr[-1]
    for method in ("numbalsoda lsoda", "numbalsoda dop853"):
        if method in last:
            ratios[method] = last["engine_2threads"] / last[method]
    if "scipy_patients_per_s" in report:
        ratios["scipy LSODA"] = last["engine_2threads"] / report["scipy_patients_per_s"]
    report["ratios"] = ratios

    # ---- models with random events and stochastic states (rows of bench_stochastic.py)
    from bench_stochastic import birth_death, logistic_escape

    print("models with stochastic states (patients/s):", flush=True)
    report["stochastic"] = [birth_death(2_000 if quick else 20_000, 1 if quick else 2),
                            logistic_escape(500 if quick else 5_000, 1 if quick else 2)]

    # ---- compile / load, memory
    cold, warm = compile_and_load_times()
    report["compile_s"] = cold
    report["cache_load_s"] = warm
    if not quick:
        with tempfile.TemporaryDirectory() as cache:
            child(2, cache)
            report["memory_100k"] = child(100_000, cache)

    print(json.dumps(report, indent=2, default=float))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
