"""Cold compilation of model kernels: seconds, and how many times numba compiled each function.

For each model, a fresh process with an empty kernel cache (``CARKINETICS_CACHE_DIR`` set
to a new temporary folder) loads the model and calls the engine on the paths the tests and
the command line take:

1. ``simulate`` (one patient);
2. ``simulate_batch`` of 8 patients on one thread;
3. ``simulate_batch`` of 8 patients on two threads.

It reports the seconds of each call (the first compiles; the others add only what a new
combination of argument types makes numba compile) and the number of compiled
specialisations of the kernel's functions, listing every function compiled more than once
with the argument positions whose types differ. numba compiles a function anew for each
combination of argument types, a literal constant and a read-only array counting as types
of their own; the engine's intent is one specialisation per function, except the dense
output and root functions specialised on their method (Tsit5 or RODAS4) and the model's
output and trigger functions called on a lane's column (non-contiguous) and on a contiguous
copy.

Usage::

    python benchmarks/bench_compile.py                        # multiphasic and cart_tall
    python benchmarks/bench_compile.py models/cart_ball.toml  # any model files
    python benchmarks/bench_compile.py --ab /tmp/old .        # two source trees, alternating

With ``--ab OLD NEW`` each model is compiled by each tree's code in turn (``PYTHONPATH``),
``--rounds`` times, in fresh processes: machine-speed drift shows as a spread between
rounds rather than as a difference between trees. The script is not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_MODELS = (ROOT / "models" / "multiphasic.toml", ROOT / "models" / "cart_tall.toml")

# the measurement, run in a fresh process (argv: model file); prints one line of JSON
_CHILD = r"""
import json, sys, time
import numpy as np
from carkinetics import load_model, simulate, simulate_batch

model = load_model(sys.argv[1])
times = np.linspace(0.0, 30.0, 31)
params = np.tile(model.default_parameters(), (8, 1))
seconds = {}
t = time.perf_counter()
simulate(model, None, times)
seconds["single"] = time.perf_counter() - t
t = time.perf_counter()
simulate_batch(model, None, times, params, n_threads=1)
seconds["batch_1_thread"] = time.perf_counter() - t
t = time.perf_counter()
simulate_batch(model, None, times, params, n_threads=2)
seconds["batch_2_threads"] = time.perf_counter() - t


def positions(sigs):
    return [i for i in range(len(sigs[0])) if len({str(s[i]) for s in sigs}) > 1]


kernel = model.kernel
dispatchers = {name: getattr(kernel, name) for name in dir(kernel) if hasattr(getattr(kernel, name), "signatures")}
repeated = {name: {"count": len(d.signatures), "differing_arguments": positions(d.signatures)}
            for name, d in dispatchers.items() if len(d.signatures) > 1}
print(json.dumps({"seconds": seconds, "functions": len(dispatchers),
                  "specialisations": sum(len(d.signatures) for d in dispatchers.values()), "repeated": repeated}))
"""


def measure(model: Path, source_tree: Path | None = None) -> dict:
    """Compile ``model`` cold in a fresh process (with ``source_tree`` first on the path)."""
    env = dict(os.environ)
    env["CARKINETICS_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-compile-")
    if source_tree is not None:
        env["PYTHONPATH"] = str(Path(source_tree).resolve())
    out = subprocess.run([sys.executable, "-c", _CHILD, str(model)], env=env, capture_output=True, text=True,
                         cwd=tempfile.gettempdir())
    if out.returncode != 0:
        raise SystemExit(f"compiling {model} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _row(label: str, model: Path, r: dict) -> str:
    s = r["seconds"]
    total = sum(s.values())
    again = ", ".join(f"{name} x{v['count']} (arguments {v['differing_arguments']})"
                      for name, v in sorted(r["repeated"].items())) or "none"
    return (f"{label:8s} {model.name:20s} single {s['single']:6.1f}  1 thread {s['batch_1_thread']:5.1f}  "
            f"2 threads {s['batch_2_threads']:5.1f}  total {total:6.1f} s  "
            f"{r['specialisations']} specialisations of {r['functions']} functions; compiled more than once: {again}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", type=Path, default=list(DEFAULT_MODELS))
    ap.add_argument("--ab", nargs=2, metavar=("OLD", "NEW"), type=Path, help="two source trees, alternating")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", type=Path, help="write every measurement here")
    args = ap.parse_args(argv)
    trees = [("old", args.ab[0]), ("new", args.ab[1])] if args.ab else [("this", None)]
    rows = []
    for rnd in range(args.rounds):
        for model in args.models:
            for label, tree in trees:
                r = measure(model.resolve(), tree)
                rows.append({"round": rnd, "tree": label, "model": str(model), **r})
                print(_row(label, model, r), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
