"""The integrator against analytic solutions and scipy Radau; stiffness; counters; failures."""

import numpy as np
import pytest
from scipy.linalg import expm

from carkinetics import Action, Dose, Event, SolverError, SolverOptions, load_model, simulate, simulate_batch

from conftest import ROOT
from reference import reference_solve, scaled_error

METHODS = ["tsit5", "rodas4", "auto"]


def _linear_matrix(model, p):
    v = dict(zip(model.parameter_names, p))
    return np.array([
        [v["growth_a"] - v["k_ab"], v["k_ba"], 0.0],
        [v["k_ab"], -(v["k_ba"] + v["k_bc"]), 0.0],
        [0.0, v["k_bc"], -v["decay_c"]],
    ])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rtol", [1e-4, 1e-6, 1e-8])
def test_linear_matches_matrix_exponential(linear_model, method, rtol):
    times = np.linspace(0, 200, 81)
    opts = SolverOptions(method=method, rtol=rtol)
    traj = simulate(linear_model, None, times, options=opts)
    p = linear_model.default_parameters()
    A = _linear_matrix(linear_model, p)
    y0 = linear_model.initial_state(p)
    exact = np.array([expm(A * t) @ y0 for t in times])
    err = scaled_error(traj.states, exact, rtol, opts.atol_vector(linear_model))
    assert err.max() < 10, f"max tolerance-scaled error {err.max():.2f}"
    assert traj.success


@pytest.mark.parametrize("method", METHODS)
def test_dose_event_matches_piecewise_exponential(linear_model, method):
    times = np.linspace(0, 100, 51)
    schedule = [Dose(30.0, "b", 5e5)]
    traj = simulate(linear_model, schedule, times, options=SolverOptions(method=method, rtol=1e-8))
    p = linear_model.default_parameters()
    A = _linear_matrix(linear_model, p)
    y0 = linear_model.initial_state(p)
    y30 = expm(A * 30) @ y0 + np.array([0, 5e5, 0])
    exact = np.array([expm(A * t) @ y0 if t < 30 else expm(A * (t - 30)) @ y30 for t in times])
    np.testing.assert_allclose(traj.states, exact, rtol=2e-7)


def _forced_exact(p, t):
    y0, k, a, w = p
    c = a / (k * k + w * w)
    return (y0 - c * k) * np.exp(-k * t) + c * (k * np.cos(w * t) + w * np.sin(w * t))


@pytest.mark.parametrize("method", METHODS)
def test_non_autonomous_problem_matches_closed_form(forced_model, method):
    times = np.linspace(0, 20, 201)
    traj = simulate(forced_model, None, times, options=SolverOptions(method=method, rtol=1e-9, atol=1e-12))
    exact = _forced_exact(forced_model.default_parameters(), times)
    np.testing.assert_allclose(traj["y"], exact, rtol=0, atol=5e-8)


@pytest.mark.parametrize("method, order", [("tsit5", 5), ("rodas4", 4)])
def test_convergence_order_with_fixed_steps(forced_model, method, order):
    # tolerances so loose that no step is rejected: the step size is max_step
    errors, steps = [], [0.2, 0.1, 0.05, 0.025]
    for h in steps:
        opts = SolverOptions(method=method, rtol=0.5, atol=1e6, max_step=h)
        traj = simulate(forced_model, None, [0.0, 4.0], options=opts)
        assert traj.n_rejected == 0
        errors.append(abs(traj["y"][-1] - _forced_exact(forced_model.default_parameters(), 4.0)))
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert order - 0.4 < slope < order + 0.6, f"observed order {slope:.2f}"


def test_stiff_problem_needs_the_automatic_switch(fast_exchange_model):
    times = np.linspace(0, 100, 11)
    p = fast_exchange_model.default_parameters()
    exchange, growth, decay = p
    A = np.array([[growth - exchange, exchange], [exchange, -exchange - decay]])
    y0 = fast_exchange_model.initial_state(p)
    exact = np.array([expm(A * t) @ y0 for t in times])
    # explicit alone: stability limits the step to ~2e-4 day -> runs out of steps
    explicit = simulate(fast_exchange_model, None, times,
                        options=SolverOptions(method="tsit5", max_steps=50_000, raise_on_failure=False))
    assert explicit.status == 1
    auto = simulate(fast_exchange_model, None, times, options=SolverOptions(method="auto", rtol=1e-7))
    assert auto.n_stiff_switches >= 1
    assert auto.n_steps < 2_000
    np.testing.assert_allclose(auto.states, exact, rtol=2e-6)
    stiff = simulate(fast_exchange_model, None, times, options=SolverOptions(method="rodas4", rtol=1e-7))
    np.testing.assert_allclose(stiff.states, exact, rtol=2e-6)


def test_a_marginally_stiff_lane_backs_off_from_the_switch(fast_exchange_model):
    # exchange 2.3/day: Tsit5's step is held by stability (h ~ 3.5 / 4.6 day) but RODAS4's
    # step at rtol 1e-6 is not 4 times longer, so each switch is an episode that does not pay.
    # Without the back-off the lane switched 41 times in 2,000 days (a check every 3 flagged
    # steps); with it the wait doubles after each episode (3, 6, ..., 96 flagged steps): 10.
    p = fast_exchange_model.default_parameters().copy()
    p[0] = 2.3
    exchange, growth, decay = p
    A = np.array([[growth - exchange, exchange], [exchange, -exchange - decay]])
    y0 = fast_exchange_model.initial_state(p)
    times = np.linspace(0, 2000, 5)
    traj = simulate(fast_exchange_model, None, times, p,
                    options=SolverOptions(method="auto", rtol=1e-6, extinction=False))
    assert 1 <= traj.n_stiff_switches <= 12
    exact = np.array([expm(A * t) @ y0 for t in times])
    np.testing.assert_allclose(traj.states, exact, rtol=1e-4, atol=1e-6)


def test_robertson_against_radau(robertson_model):
    times = np.array([0, 0.4, 4, 40, 400, 4e3, 4e4, 4e5])
    ref = reference_solve(robertson_model, [], times, rtol=1e-11, atol=1e-16)
    for method in ("auto", "rodas4"):
        traj = simulate(robertson_model, None, times, options=SolverOptions(method=method, rtol=1e-7))
        err = scaled_error(traj.states, ref, 1e-7, np.array([1e-8, 1e-14, 1e-8]))
        assert err.max() < 20
        assert abs(traj["mass"][-1] - 1.0) < 1e-6
        assert traj.n_steps < 1_000


def test_extinction_threshold_sets_exact_zero_and_holds_it(extinction_model):
    # clone = 1000 exp(-t/2) crosses one cell at t* = ln(1000)/0.5
    t_star = np.log(1000.0) / 0.5
    times = np.linspace(0, 60, 601)
    traj = simulate(extinction_model, [Dose(40.0, "clone", 100.0)], times,
                    options=SolverOptions(rtol=1e-9))
    clone = traj["clone"]
    before = times < t_star - 1e-6
    np.testing.assert_allclose(clone[before], 1000 * np.exp(-0.5 * times[before]), rtol=1e-7)
    dead = (times > t_star + 1e-6) & (times < 40)
    assert np.all(clone[dead] == 0.0)
    # the dose revives it; it declines from 100 cells and dies again
    t2 = 40 + np.log(100.0) / 0.5
    revived = (times >= 40) & (times < t2 - 1e-6)
    np.testing.assert_allclose(clone[revived], 100 * np.exp(-0.5 * (times[revived] - 40)), rtol=1e-7)
    assert np.all(clone[times > t2 + 1e-6] == 0.0)
    # the daughter population starts at zero and is fed by the clone (not held at zero)
    feed, d = 0.1, 0.05
    daughter = traj["daughter"]
    mid = times < t_star - 1e-6
    exact = feed * 1000 / (d - 0.5) * (np.exp(-0.5 * times[mid]) - np.exp(-d * times[mid]))
    np.testing.assert_allclose(daughter[mid], exact, rtol=1e-7)
    assert np.all(traj.states >= 0)


def test_extinction_can_be_disabled(extinction_model):
    traj = simulate(extinction_model, None, [0, 30], options=SolverOptions(extinction=False, rtol=1e-9))
    assert traj["clone"][-1] == pytest.approx(1000 * np.exp(-15), rel=1e-6)


def test_populations_stay_non_negative_in_a_batch(linear_model):
    rng = np.random.default_rng(3)
    p = linear_model.default_parameters() * np.exp(rng.normal(0, 0.8, (500, linear_model.n_parameters)))
    p[:, linear_model.parameter_names.index("growth_a")] = -np.abs(p[:, 4])  # all declining
    batch = simulate_batch(linear_model, None, np.linspace(0, 400, 41), p, n_threads=1)
    assert np.all(batch.success)
    assert np.all(batch.states >= 0)


def test_failure_raises_for_one_and_flags_in_batch(extinction_model):
    p = extinction_model.parameter_vector({"blowup": 1.0})  # y' = y^2, y(0) = 1: blows up at t = 1
    with pytest.raises(SolverError, match="failed near t = 1"):
        simulate(extinction_model, None, np.linspace(0, 2, 21), parameters=p)
    params = np.tile(extinction_model.default_parameters(), (4, 1))
    params[1, 3] = 1.0
    batch = simulate_batch(extinction_model, None, np.linspace(0, 2, 21), params, n_threads=1)
    assert list(batch.success) == [True, False, True, True]
    assert np.isnan(batch.states[1, -1]).all() and np.isfinite(batch.states[[0, 2, 3]]).all()
    assert batch.failures()[0][0] == 1


def test_cost_regression(linear_model):
    traj = simulate(linear_model, None, np.linspace(0, 365, 366))
    assert traj.n_rhs_evals < 1_500
    assert traj.n_rejected < 10


def test_batch_is_independent_of_threads_and_equals_single_runs(linear_model):
    rng = np.random.default_rng(4)
    n = 64
    p = linear_model.default_parameters() * np.exp(rng.normal(0, 0.3, (n, linear_model.n_parameters)))
    sched = [Dose(5.0, "b", 1e5), Event(20.0, [Action("multiply", "a", 0.1)], when="c > 1e4")]
    times = np.linspace(0, 60, 31)
    ev_t = np.column_stack([rng.uniform(1, 10, n), rng.uniform(15, 30, n)])
    amounts = np.column_stack([rng.uniform(1e4, 1e6, n), np.full(n, 0.1)])
    one = simulate_batch(linear_model, sched, times, p, event_times=ev_t, action_values=amounts, n_threads=1)
    two = simulate_batch(linear_model, sched, times, p, event_times=ev_t, action_values=amounts, n_threads=2,
                         block=3)
    np.testing.assert_array_equal(one.states, two.states)
    np.testing.assert_array_equal(one.counters, two.counters)
    np.testing.assert_array_equal(one.events_applied, two.events_applied)
    for i in (0, 17, 63):
        own = [Dose(ev_t[i, 0], "b", amounts[i, 0]),
               Event(ev_t[i, 1], [Action("multiply", "a", 0.1)], when="c > 1e4")]
        single = simulate(linear_model, own, times, parameters=p[i])
        np.testing.assert_array_equal(single.states, one.states[i])
        assert list(single.events_applied) == list(one.events_applied[i])


# Functions numba compiles more than once by design, and how often at most: the dense-output
# and root functions once per method (Tsit5 or RODAS4, a constant argument) and on a lane's
# column or a contiguous copy; the model's outputs and triggers on either of those.
_SPECIALISED = {"_dense_state": 3, "_lane_roots": 3, "_root_state": 3, "_rodas_interp": 3, "model_outputs": 2,
                "model_roots": 3}


def test_the_engine_is_compiled_once_whatever_the_path(linear_model):
    # numba compiles a function anew for each combination of argument types, and a read-only
    # array or a literal constant is a type of its own: a single patient (whose broadcast event
    # times were read-only) and a batch on one or two threads (a serial wrapper passing the
    # constant 0, a prange loop) compiled the engine up to three times over
    times = np.linspace(0, 30, 7)
    birth_death = load_model(ROOT / "models" / "examples" / "birth_death.toml")  # stochastic: roots and jumps
    for model in (linear_model, birth_death):
        sched = [Dose(2.0, model.state_names[0], 10.0)]
        p = np.tile(model.default_parameters(), (5, 1))
        simulate(model, sched, times)
        simulate_batch(model, sched, times, p, n_threads=1)
        simulate_batch(model, sched, times, p, n_threads=2, block=2)
        kernel = model.kernel
        counts = {name: len(getattr(kernel, name).signatures) for name in dir(kernel)
                  if hasattr(getattr(kernel, name), "signatures")}
        assert counts["run_range"] == 1
        assert {name: n for name, n in counts.items() if n > _SPECIALISED.get(name, 1)} == {}


def test_rodas_dense_output_reads_unchanged_states_back_exactly(linear_model):
    # a state a RODAS4 step left unchanged (an event counter, a population at zero) must be read
    # back exactly anywhere inside the step: a root located there acts on it (the form
    # (1 - s) y + s y is off by an ulp for some s, and the event count 74 came out 74.00000000000003)
    kernel = linear_model.kernel
    n = linear_model.n_states
    rng = np.random.default_rng(5)
    out = np.empty(n)
    for s in np.concatenate([rng.random(2000), [0.0, 1.0, 0.5, 1 / 3]]):
        y = np.round(rng.lognormal(3, 2, n)) * rng.choice([1.0, 0.1, 1e-3], n)
        zeros = np.zeros(n)
        kernel._rodas_interp(s, y, y.copy(), zeros, zeros, out)
        assert np.array_equal(out, y), s
    # and the interpolant is still RODAS4's: (1 - s) y + s ynew + s (1 - s)(c3 + s c4), to rounding
    y, ynew, c3, c4 = (rng.normal(0, 1, n) for _ in range(4))
    for s in (0.0, 0.25, 0.7, 1.0):
        kernel._rodas_interp(s, y, ynew, c3, c4, out)
        np.testing.assert_allclose(out, (1 - s) * y + s * ynew + s * (1 - s) * (c3 + s * c4), rtol=1e-14, atol=1e-14)
