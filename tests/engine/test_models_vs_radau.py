"""Every model in models/ against scipy Radau at rtol 1e-10, with the scenarios that use it.

For each model file the first shipped scenario naming it provides the schedule and
times (a model without a scenario is run from its initial values for a year). Both
sides integrate the plain ODE (extinction thresholds off), so they solve the same
problem; the engine runs at its default rtol 1e-6.
"""

import numpy as np
import pytest

from carkinetics import SolverOptions, load_model, simulate
from carkinetics.scenario.load import load_scenario

from conftest import MODELS, SCENARIOS
from reference import reference_solve, scaled_error


# Models with their own Radau comparison over a full protocol (infusion, lymphodepletion,
# transplant) in tests/test_cart_models.py; a second one here would only double the
# suite's slowest test (the reference integrates a 16-state model in Python).
COVERED_ELSEWHERE = {"cart_tall", "cart_ball"}


def _cases():
    cases = []
    scenarios = sorted(SCENARIOS.glob("*.toml"))
    for path in sorted(MODELS.glob("*.toml")):
        if path.stem in COVERED_ELSEWHERE:
            continue
        found = None
        for sp in scenarios:
            sc = load_scenario(sp)
            if sc.model.path.resolve() == path.resolve():
                found = sp
                break
        cases.append(pytest.param(path, found, id=path.stem))
    return cases


@pytest.mark.parametrize("model_path, scenario_path", _cases())
@pytest.mark.parametrize("method", ["auto", "rodas4"])
def test_model_against_radau(model_path, scenario_path, method):
    if scenario_path is not None:
        sc = load_scenario(scenario_path)
        model, schedule, times, p, t0 = sc.model, sc.schedule(), sc.times, sc.parameter_vector(), sc.t0
    else:
        model = load_model(model_path)
        schedule, times, p, t0 = [], np.linspace(0, 365, 366), model.default_parameters(), None
    opts = SolverOptions(method=method, rtol=1e-6, extinction=False)
    traj = simulate(model, schedule, times, parameters=p, options=opts, t0=t0)
    atol = opts.atol_vector(model)
    ref = reference_solve(model, schedule, times, parameters=p, rtol=1e-10, atol=atol * 1e-4, t0=t0)
    err = scaled_error(traj.states, ref, 1e-6, atol)
    assert err.max() < 30, f"{model.name}: max tolerance-scaled error {err.max():.1f}"
    # the benchmark's bar: relative error <= 1e-4 on every population above one cell
    big = np.abs(ref) > 1.0
    rel = np.abs(traj.states - ref)[big] / np.abs(ref)[big]
    assert rel.max() <= 1e-4, f"{model.name}: max relative error {rel.max():.2e}"
