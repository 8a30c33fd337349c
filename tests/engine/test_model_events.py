"""Model events (``[events.NAME]`` in a model file) against analytic and independent references.

Hazard events: first firing times with survival S(t) = exp(-integral of the hazard)
(constant, linear in time, proportional to a decaying state) and Poisson counts of a
repeated event. Triggered events: crossing times of exponential growth, ln(K / x0) / r,
direction, repetition, order of simultaneous events, terminal events, actions with
expressions, and a nonlinear system against scipy's Radau with event location.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.integrate import solve_ivp

from carkinetics import Dose, SolverOptions, load_model, simulate, simulate_batch

from conftest import DATA

ENGINE_V2 = DATA / "models" / "engine_v2"
T_STAR = np.log(5.0) / 0.1  # x0 = 1, K = 5, r = 0.1 in the trigger models


def _model(name):
    return load_model(ENGINE_V2 / f"{name}.toml")


def _params(model, n, **values):
    return np.tile(model.parameter_vector(values), (n, 1))


def _within(measured, expected, se, k=4.0):
    return abs(measured - expected) <= k * se


def _event(res, name):
    k = list(res.model_event_names).index(name)
    return res.model_event_time[:, k], res.model_event_count[:, k]


# ---------------------------------------------------------------- hazard events


@pytest.fixture(scope="module")
def hazard_run():
    model = _model("hazards")
    assert model.is_stochastic
    assert list(model.events) == ["constant", "linear_in_time", "state_dependent", "repeated"]
    n = 4000
    times = np.array([0.0, 2.0, 5.0, 10.0, 20.0, 40.0, 200.0])
    res = simulate_batch(model, [], times, _params(model, n), seed=2718, n_threads=2)
    assert (res.status == 0).all()
    return res


def test_hazard_result_layout(hazard_run):
    res = hazard_run
    assert res.model_event_names == ("constant", "linear_in_time", "state_dependent", "repeated")
    assert res.model_event_count.shape == (4000, 4) and res.model_event_count.dtype == np.int64
    assert res.model_event_time.shape == (4000, 4)
    # non-repeating events fire at most once; each firing added 1 to its counter state
    assert res.model_event_count[:, :3].max() == 1
    for name, state in [("constant", "hits_constant"), ("linear_in_time", "hits_linear"),
                        ("state_dependent", "hits_state"), ("repeated", "hits_repeated")]:
        t_first, count = _event(res, name)
        np.testing.assert_array_equal(res.state(state)[:, -1], count)
        assert np.array_equal(np.isnan(t_first), count == 0)


def test_constant_hazard_gives_exponential_times(hazard_run):
    t_first, _ = _event(hazard_run, "constant")
    lam = 0.1  # P(no firing by day 200) = e^-20: every patient fires
    assert np.isfinite(t_first).all()
    assert stats.kstest(t_first, "expon", args=(0, 1 / lam)).pvalue > 1e-3
    assert _within(t_first.mean(), 1 / lam, (1 / lam) / np.sqrt(t_first.size)), t_first.mean()


@pytest.mark.parametrize("name, cumulative", [
    ("linear_in_time", lambda t: 0.01 * t ** 2 / 2),
    ("state_dependent", lambda t: 0.05 * 10 * (1 - np.exp(-0.2 * t)) / 0.2),
])
def test_time_varying_hazard_survival(hazard_run, name, cumulative):
    """S(t) = exp(-integral_0^t h) at several times, for h = a t and h = c x0 e^{-k t}."""
    t_first, _ = _event(hazard_run, name)
    n = t_first.size
    fired = np.isfinite(t_first)
    for t in [2.0, 5.0, 10.0, 20.0, 40.0]:
        s = np.exp(-cumulative(t))
        measured = np.mean(~fired | (t_first > t))
        assert _within(measured, s, np.sqrt(s * (1 - s) / n)), (name, t, measured, s)
    # the law of the firing time, given a firing by day 200
    total = cumulative(200.0)
    cdf = lambda t: (1 - np.exp(-cumulative(t))) / (1 - np.exp(-total))  # noqa: E731
    assert stats.kstest(t_first[fired], cdf).pvalue > 1e-3
    never = np.exp(-total)  # e^-2.5 for the decaying state, ~0 for a t
    assert _within(np.mean(~fired), never, max(np.sqrt(never * (1 - never) / n), 1 / n)), (name, np.mean(~fired))


def test_repeated_constant_hazard_gives_poisson_counts(hazard_run):
    """Firings by day 40 ~ Poisson(0.5 * 40) and by day 200 ~ Poisson(100): mean and variance."""
    res = hazard_run
    by_40 = res.state("hits_repeated")[:, list(res.times).index(40.0)]
    _, by_200 = _event(res, "repeated")
    n = by_40.size
    for counts, mu in [(by_40, 20.0), (by_200, 100.0)]:
        assert _within(counts.mean(), mu, np.sqrt(mu / n)), (counts.mean(), mu)
        # Var of the sample variance of a Poisson(mu) sample: (mu + 2 mu^2) / n
        assert _within(counts.var(ddof=1), mu, np.sqrt((mu + 2 * mu ** 2) / n)), (counts.var(ddof=1), mu)
    t_first, _ = _event(res, "repeated")
    assert stats.kstest(t_first, "expon", args=(0, 2.0)).pvalue > 1e-3


# ---------------------------------------------------------------- triggered events


@pytest.fixture(scope="module")
def triggers():
    return _model("triggers")


TIMES = np.arange(0.0, 41.0)


def test_trigger_time_of_exponential_growth(triggers):
    assert not triggers.is_stochastic
    res = simulate_batch(triggers, [], TIMES, _params(triggers, 1))
    t_up, n_up = _event(res, "up")
    assert n_up[0] == 1
    assert t_up[0] == pytest.approx(T_STAR, rel=1e-6)
    tight = simulate_batch(triggers, [], TIMES, _params(triggers, 1), options=SolverOptions(rtol=1e-11))
    assert _event(tight, "up")[0][0] == pytest.approx(T_STAR, rel=1e-9)
    # per-patient parameters: t* = ln(K / x0) / r
    p = _params(triggers, 3)
    p[:, triggers.parameter_names.index("r")] = [0.1, 0.2, 0.5]
    p[:, triggers.parameter_names.index("K")] = [5.0, 20.0, 3.0]
    many = simulate_batch(triggers, [], TIMES, p)
    np.testing.assert_allclose(_event(many, "up")[0], np.log([5.0, 20.0, 3.0]) / [0.1, 0.2, 0.5], rtol=1e-6)


def test_trigger_direction(triggers):
    res = simulate_batch(triggers, [], TIMES, _params(triggers, 1))
    t_down, n_down = _event(res, "down")
    t_either, n_either = _event(res, "either")
    assert n_down[0] == 0 and np.isnan(t_down[0])
    assert n_either[0] == 1 and t_either[0] == pytest.approx(T_STAR, rel=1e-6)
    after = TIMES > T_STAR
    np.testing.assert_array_equal(res.state("hits_up")[0], np.where(after, 1.0, 0.0))
    np.testing.assert_array_equal(res.state("hits_down")[0], 0.0)
    np.testing.assert_array_equal(res.state("hits_either")[0], np.where(after, 1.0, 0.0))
    # decreasing through K (x0 = 8 > K, r < 0 is outside r's bounds: built without checks)
    p = triggers.parameter_vector({"x0": 8.0}, check_bounds=False)
    p[triggers.parameter_names.index("r")] = -0.1
    falling = simulate_batch(triggers, [], TIMES, p[None, :])
    t_cross = np.log(8.0 / 5.0) / 0.1
    assert _event(falling, "up")[1][0] == 0
    assert _event(falling, "down")[0][0] == pytest.approx(t_cross, rel=1e-6)
    assert _event(falling, "either")[0][0] == pytest.approx(t_cross, rel=1e-6)


def test_simultaneous_triggers_apply_in_file_order(triggers):
    """first_set (y1 = 1) then then_triple (y1 *= 3): 3; triple_first then then_set: 1."""
    res = simulate_batch(triggers, [], TIMES, _params(triggers, 1))
    after = TIMES > T_STAR
    np.testing.assert_array_equal(res.state("y1")[0], np.where(after, 3.0, 0.0))
    np.testing.assert_array_equal(res.state("y2")[0], np.where(after, 1.0, 0.0))


def test_action_with_an_expression(triggers):
    """add = { z = "2 * z" } at z = K: z = 3 K e^{r (t - t*)} afterwards."""
    res = simulate_batch(triggers, [], TIMES, _params(triggers, 1), options=SolverOptions(rtol=1e-10))
    expected = np.where(TIMES < T_STAR, np.exp(0.1 * TIMES), 15.0 * np.exp(0.1 * (TIMES - T_STAR)))
    np.testing.assert_allclose(res.state("z")[0], expected, rtol=1e-7)
    assert _event(res, "tripling")[1][0] == 1


def test_repeated_trigger_resets_periodically():
    """x reset to x0 at every crossing of K: fires at t*, 2 t*, ...; x(t) = x0 e^{r (t mod t*)}."""
    model = _model("trigger_reset")
    times = np.arange(0.0, 100.5, 0.5)
    res = simulate_batch(model, [], times, _params(model, 1), options=SolverOptions(rtol=1e-10))
    assert res.status[0] == 0
    t_reset, n_reset = _event(res, "reset")
    t_once, n_once = _event(res, "once")
    assert n_reset[0] == int(100 // T_STAR) == 6
    assert n_once[0] == 1
    assert t_reset[0] == pytest.approx(T_STAR, rel=1e-8) and t_once[0] == pytest.approx(T_STAR, rel=1e-8)
    np.testing.assert_array_equal(res.state("hits_once")[0], np.where(times > T_STAR, 1.0, 0.0))
    phase = np.mod(times, T_STAR)
    away = np.minimum(phase, T_STAR - phase) > 1e-3
    np.testing.assert_allclose(res.state("x")[0][away], np.exp(0.1 * phase[away]), rtol=1e-6)


@pytest.mark.parametrize("mode", ["nan", "hold"])
def test_terminal_event(mode):
    model = _model(f"terminal_{mode}")
    times = np.arange(0.0, 31.0)
    res = simulate_batch(model, [], times, _params(model, 2), options=SolverOptions(rtol=1e-10))
    assert (res.status == 0).all()
    t_stop, n_stop = _event(res, "stop")
    np.testing.assert_allclose(t_stop, T_STAR, rtol=1e-8)
    assert (n_stop == 1).all()
    before = times < T_STAR
    x = res.state("x")
    np.testing.assert_allclose(x[:, before], np.tile(np.exp(0.1 * times[before]), (2, 1)), rtol=1e-8)
    np.testing.assert_allclose(res.output("x_twice")[:, before], 2 * x[:, before], rtol=1e-12)
    if mode == "nan":
        assert np.isnan(x[:, ~before]).all() and np.isnan(res.output("x_twice")[:, ~before]).all()
    else:
        np.testing.assert_allclose(x[:, ~before], 5.0, rtol=1e-8)
        np.testing.assert_allclose(res.output("x_twice")[:, ~before], 10.0, rtol=1e-8)
    single = simulate(model, [], times, options=SolverOptions(rtol=1e-10))
    np.testing.assert_array_equal(single.model_event_count, [1])
    assert single.model_event_time[0] == pytest.approx(T_STAR, rel=1e-8)


def test_scheduled_dose_across_the_threshold_fires_the_trigger(triggers):
    """A dose at day 5 takes x from e^0.5 to e^0.5 + 10 > K: the state is re-checked after the
    scheduled event, so `up` and `either` fire at day 5 (and `down` does not)."""
    res = simulate_batch(triggers, [Dose(5.0, "x", 10.0)], TIMES, _params(triggers, 1))
    assert _event(res, "up")[0][0] == pytest.approx(5.0, abs=1e-9)
    assert _event(res, "either")[0][0] == pytest.approx(5.0, abs=1e-9)
    assert _event(res, "down")[1][0] == 0


def _radau_predator_prey(times):
    """Reference: scipy Radau (rtol 1e-10) with its event location, one-off events applied in turn."""
    a, cap, beta, delta, g = 1.0, 10.0, 0.5, 0.2, 0.3

    def rhs(t, y):
        u, v = y
        return [a * u * (1 - u / cap) - beta * u * v, delta * u * v - g * v]

    def cull(t, y):
        return y[0] * y[1] - 4.0
    cull.terminal, cull.direction = True, 1

    def halve(t, y):
        return y[1] - 1.6
    halve.terminal, halve.direction = True, -1

    pending = {"cull_prey": (cull, np.array([0.8, 1.0])), "halve_predator": (halve, np.array([1.0, 0.5]))}
    t, y, fired, pieces = 0.0, np.array([1.0, 1.0]), {}, []
    while True:
        names = list(pending)
        sol = solve_ivp(rhs, (t, times[-1]), y, method="Radau", rtol=1e-10, atol=1e-12, dense_output=True,
                        events=[pending[n][0] for n in names])
        pieces.append((t, sol))
        hits = [(sol.t_events[i][0], n) for i, n in enumerate(names) if len(sol.t_events[i])]
        if not hits:
            break
        t, name = min(hits)
        y = sol.sol(t) * pending.pop(name)[1]
        fired[name] = t
    out = np.empty((times.size, 2))
    for k, tk in enumerate(times):
        start, sol = [pc for pc in pieces if pc[0] <= tk][-1]
        out[k] = sol.sol(tk)
    return fired, out


def test_nonlinear_triggers_vs_radau():
    model = _model("predator_prey")
    times = np.linspace(0.0, 40.0, 81)
    fired, expected = _radau_predator_prey(times)
    assert set(fired) == {"cull_prey", "halve_predator"} and fired["cull_prey"] < fired["halve_predator"]
    for method in ["tsit5", "rodas4"]:
        res = simulate_batch(model, [], times, _params(model, 1), options=SolverOptions(rtol=1e-10, method=method))
        assert res.status[0] == 0
        for name, t_ref in fired.items():
            t_eng, n_eng = _event(res, name)
            assert n_eng[0] == 1
            assert t_eng[0] == pytest.approx(t_ref, rel=1e-7), (method, name)
        away = np.min(np.abs(times[:, None] - np.array(list(fired.values()))[None, :]), axis=1) > 1e-3
        np.testing.assert_allclose(res.state("u")[0][away], expected[away, 0], rtol=1e-6)
        np.testing.assert_allclose(res.state("v")[0][away], expected[away, 1], rtol=1e-6)


# ---------------------------------------------------------------- hazards driven by a discrete state


def test_hazard_proportional_to_a_jumping_count():
    """Hazard c N(t) with N a pure-death count from n0 (lifetimes Exp(d)):
    P(no firing by t) = [d/(d+c) (1 - e^{-(d+c)t}) + e^{-(d+c)t}]^n0, P(never) = (d/(d+c))^n0;
    a repeated event fires Poisson(c * integral N) times: mean c n0 / d, variance that + c^2 n0 / d^2."""
    model = _model("death_signal")
    n, n0, d, c = 6000, 5, 0.2, 0.05
    times = np.array([0.0, 2.0, 5.0, 10.0, 20.0, 400.0])
    res = simulate_batch(model, [], times, _params(model, n), seed=77, n_threads=2)
    assert (res.status == 0).all()
    cells = res.state("cells")
    assert (np.diff(cells, axis=1) <= 0).all() and (cells[:, -1] == 0).all()  # deaths only, all dead by day 400
    t_first, count_first = _event(res, "first_signal")
    assert count_first.max() == 1
    for t in times[1:]:
        e = np.exp(-(d + c) * t)
        s = (d / (d + c) * (1 - e) + e) ** n0
        measured = np.mean(np.isnan(t_first) | (t_first > t))
        assert _within(measured, s, np.sqrt(s * (1 - s) / n)), (t, measured, s)
    # the count at day 0 has 5 cells; each surviving cell ~ Binomial(5, e^{-d t}) at day 10
    q = np.exp(-d * 10.0)
    assert _within(cells[:, 3].mean(), n0 * q, np.sqrt(n0 * q * (1 - q) / n))
    _, repeated = _event(res, "repeated_signal")
    np.testing.assert_array_equal(res.state("signals")[:, -1], repeated)
    mean, var = c * n0 / d, c * n0 / d + c ** 2 * n0 / d ** 2
    assert _within(repeated.mean(), mean, np.sqrt(var / n)), (repeated.mean(), mean)
    m4 = np.mean((repeated - repeated.mean()) ** 4)
    s2 = repeated.var(ddof=1)
    assert _within(s2, var, np.sqrt((m4 - s2 ** 2) / n)), (s2, var)


def test_hazard_event_streams_are_per_patient():
    model = _model("hazards")
    times = [0.0, 10.0, 50.0]
    full = simulate_batch(model, [], times, _params(model, 12), seed=5, n_threads=2)
    part = simulate_batch(model, [], times, _params(model, 2), seed=5, patient_index=[11, 4], n_threads=1)
    np.testing.assert_array_equal(part.model_event_time, full.model_event_time[[11, 4]])
    np.testing.assert_array_equal(part.model_event_count, full.model_event_count[[11, 4]])
    np.testing.assert_array_equal(part.states, full.states[[11, 4]])
    other = simulate_batch(model, [], times, _params(model, 12), seed=6, n_threads=2)
    assert not np.array_equal(other.model_event_time, full.model_event_time)


@pytest.mark.parametrize("method", ["tsit5", "rodas4"])
def test_trigger_on_an_extinction(method):
    """A population with a 1-cell extinction threshold decays from 10 cells (x' = -x) and is set
    to zero at the end of the step where it falls below 1 (t > ln 10): that jump fires the
    trigger 'x - 0.5' (down), with either method, at that step's end."""
    model = load_model(ENGINE_V2 / "extinction_trigger.toml")
    tr = simulate(model, None, [0.0, 5.0, 10.0], options=SolverOptions(method=method))
    assert list(tr.model_event_count) == [1]
    assert np.log(10.0) <= tr.model_event_time[0] < np.log(10.0) + 1.0
    assert tr["x"][-1] == 0.0
