"""NUMBA_DISABLE_JIT=1: the engine runs as plain Python and gives the compiled results (issue 13).

Debugging the engine in pure Python is the first thing a contributor tries. The same
simulations of the shipped models run here compiled and in a subprocess with
NUMBA_DISABLE_JIT=1 (and its own kernel cache, which must stay free of numba cache
files); the results must agree to round-off (they are bit-identical on x86-64 Linux:
same operations, same libm).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from conftest import ROOT

# defines cases(): the simulations compared, as {name: {field: value}} of plain lists
_CASES = r'''
import numpy as np

from carkinetics import SolverOptions, load_model, simulate
from carkinetics.simulation.schedule import Action, Event
from carkinetics.simulation.simulate import simulate_batch


def cases(root):
    out = {}
    multiphasic = load_model(f"{root}/models/multiphasic.toml")
    tall = load_model(f"{root}/models/cart_tall.toml")
    p = dict(zip(tall.parameter_names, tall.parameter_vector(None)))
    tall_events = [
        Event(-5.0, [Action("multiply", s, p["lymphodepletion_survival"])
                     for s in ("normal_t_pos", "normal_t_neg", "nk_pos", "nk_neg")], name="lymphodepletion"),
        Event(0.0, [Action("add", "car_effector_neg", 5e7), Action("add", "car_memory_neg", 1e7)],
              name="infusion"),
    ]
    runs = [("multiphasic", multiphasic, [], np.linspace(0.0, 30.0, 31)),
            ("cart_tall", tall, tall_events, np.linspace(-5.0, 60.0, 66))]
    for name, model, events, times in runs:
        for method in ("auto", "tsit5", "rodas4"):
            tr = simulate(model, events, times, options=SolverOptions(method=method))
            out[f"{name}/{method}"] = {
                "states": tr.states.tolist(), "outputs": tr.outputs.tolist(),
                "status": int(tr.status), "counters": tr.counters.tolist(),
                "kernel": type(model.kernel.run_range).__name__,
            }
    # several patients side by side in the SIMD lanes (one thread)
    params = np.outer(np.linspace(0.8, 1.2, 20), multiphasic.parameter_vector(None))
    batch = simulate_batch(multiphasic, [], np.linspace(0.0, 30.0, 31), params, n_threads=1)
    out["multiphasic/batch"] = {
        "states": batch.states.tolist(), "outputs": batch.outputs.tolist(),
        "status": batch.status.tolist(), "counters": batch.counters.tolist(),
        "kernel": type(multiphasic.kernel.run_range).__name__,
    }
    # random jumps (a stochastic state), a triggered event: the same random numbers and roots
    bd = load_model(f"{root}/models/examples/birth_death.toml")
    batch = simulate_batch(bd, [], np.linspace(0.0, 15.0, 16), np.tile(bd.parameter_vector(None), (6, 1)),
                           n_threads=1, seed=11)
    out["birth_death/batch"] = {
        "states": batch.states.tolist(), "outputs": batch.outputs.tolist(),
        "status": batch.status.tolist(), "counters": batch.counters.tolist(),
        "kernel": type(bd.kernel.run_range).__name__,
    }
    return out
'''


def _compiled():
    namespace: dict = {}
    exec(compile(_CASES, "<pure-python cases>", "exec"), namespace)  # noqa: S102
    return namespace["cases"](str(ROOT))


def _pure_python(cache):
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", CARKINETICS_CACHE_DIR=str(cache), MPLBACKEND="Agg")
    script = _CASES + f"\nimport json\nprint(json.dumps(cases({str(ROOT)!r})))\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_disable_jit_gives_the_compiled_results(tmp_path):
    python = _pure_python(tmp_path)
    compiled = _compiled()
    assert python.keys() == compiled.keys()
    for key, ref in compiled.items():
        got = python[key]
        assert ref["kernel"] == "CPUDispatcher" and got["kernel"] == "function", key
        assert got["status"] == ref["status"] and not np.any(ref["status"]), key
        assert got["counters"] == ref["counters"], key  # the same steps, accepted and rejected
        for field in ("states", "outputs"):
            np.testing.assert_allclose(np.array(got[field], dtype=float), np.array(ref[field], dtype=float),
                                       rtol=1e-12, atol=0.0, err_msg=f"{key} {field}")
    # the pure-Python run wrote kernel sources only: no numba cache to mix with compiled ones
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(p.suffix == ".py" or p.suffix == ".pyc" for p in written), written
