"""Stochastic states of the hybrid jump/ODE engine against independent references.

References: the linear birth-death process (Kendall 1948; Bailey 1964, ch. 8: extinction
probability (d/b)^n0, mean, variance and the full distribution of N(t)), the deterministic
ODE for a large population, and plain-numpy Gillespie simulations written here (a logistic
birth-death process; a linear birth-death clone fed by a time-varying source, simulated
exactly by thinning) with the analytic mean and P(R(t) = 0) of the latter.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from carkinetics import SolverOptions, load_model, simulate, simulate_batch

from conftest import DATA, MODELS

ENGINE_V2 = DATA / "models" / "engine_v2"
BIRTH_DEATH = MODELS / "examples" / "birth_death.toml"


def _copy_with_below(tmp_path_factory, below):
    """The birth-death example with another `stochastic.below`."""
    text = BIRTH_DEATH.read_text(encoding="utf-8")
    assert "below = 100," in text
    path = tmp_path_factory.mktemp("bd") / f"birth_death_below_{below:g}.toml"
    path.write_text(text.replace("below = 100,", f"below = {below:g},"), encoding="utf-8")
    return load_model(path)


@pytest.fixture(scope="module")
def birth_death():
    return load_model(BIRTH_DEATH)


@pytest.fixture(scope="module")
def birth_death_exact(tmp_path_factory):
    """Discrete at every count reached here (below = 1e6): the exact linear birth-death process."""
    return _copy_with_below(tmp_path_factory, 1e6)


def _params(model, n, **values):
    return np.tile(model.parameter_vector(values), (n, 1))


def _within(measured, expected, se, k=4.0):
    return abs(measured - expected) <= k * se


# ---------------------------------------------------------------- references


def _bd_lineage(b, d, t):
    """(alpha, beta) of one lineage of the linear birth-death process at time t (Bailey 1964, 8.6):
    P(N=0) = alpha, P(N=n) = (1 - alpha)(1 - beta) beta^(n-1), n >= 1."""
    e = np.exp((b - d) * t)
    return d * (e - 1) / (b * e - d), b * (e - 1) / (b * e - d)


def _bd_pmf(n0, b, d, t, n_max):
    """P(N(t) = n), n = 0..n_max, from n0 cells: n0-fold convolution of one lineage's law."""
    alpha, beta = _bd_lineage(b, d, t)
    n = np.arange(n_max + 1)
    one = np.where(n == 0, alpha, (1 - alpha) * (1 - beta) * beta ** np.maximum(n - 1, 0))
    pmf = np.zeros(n_max + 1)
    pmf[0] = 1.0
    for _ in range(n0):
        pmf = np.convolve(pmf, one)[: n_max + 1]
    return pmf


def _gillespie_logistic(n0, b, d, c, n_pat, t_end, rng, n_cap=None):
    """Extinction times (inf if after t_end) of the birth-death process gain b n, loss d n + c n^2.

    A path that reaches ``n_cap`` cells is stopped and counted as surviving."""
    n = np.full(n_pat, n0, dtype=np.int64)
    t = np.zeros(n_pat)
    t_ext = np.full(n_pat, np.inf)
    active = n > 0
    while active.any():
        i = np.flatnonzero(active)
        ni = n[i].astype(float)
        gain = b * ni
        total = gain + d * ni + c * ni * ni
        t_new = t[i] + rng.exponential(1.0, i.size) / total
        birth = rng.random(i.size) * total < gain
        t[i] = t_new
        n[i] += np.where(birth, 1, -1)
        late = t_new > t_end
        dead = (n[i] == 0) & ~late
        t_ext[i[dead]] = t_new[dead]
        active[i[late | dead]] = False
        if n_cap is not None:
            active[i[n[i] >= n_cap]] = False
    return t_ext


def _gillespie_source_clone(s0, k, mu, b, d, n_pat, times, rng):
    """R at `times` for gain mu s0 e^{-k t} + b R, loss d R (R(0) = 0), by exact thinning.

    Between jumps the total propensity mu s0 e^{-k t} + (b + d) R decreases, so its value at
    the current time bounds it until the next jump: propose with the bound, accept with the
    ratio (Lewis & Shedler 1979).
    """
    times = np.asarray(times, dtype=float)
    r = np.zeros(n_pat, dtype=np.int64)
    t = np.zeros(n_pat)
    out = np.full((n_pat, times.size), -1, dtype=np.int64)
    active = np.ones(n_pat, dtype=bool)
    while active.any():
        i = np.flatnonzero(active)
        ri = r[i].astype(float)
        bound = mu * s0 * np.exp(-k * t[i]) + (b + d) * ri
        t_new = t[i] + rng.exponential(1.0, i.size) / bound
        for j, tj in enumerate(times):
            due = (out[i, j] < 0) & (tj < t_new)
            out[i[due], j] = r[i[due]]
        source = mu * s0 * np.exp(-k * t_new)
        u = rng.random(i.size) * bound
        accept = u < source + (b + d) * ri
        up = u < source + b * ri
        r[i] += np.where(accept, np.where(up, 1, -1), 0)
        t[i] = t_new
        active[i[t_new > times[-1]]] = False
    return out


def _source_clone_mean(s0, k, mu, b, d, t):
    """E[R(t)]: m' = mu s0 e^{-k t} + (b - d) m, m(0) = 0."""
    a = b - d
    return mu * s0 * (np.exp(a * t) - np.exp(-k * t)) / (a + k)


def _source_clone_p_zero(s0, k, mu, b, d, t):
    """P(R(t) = 0): clones arise as a Poisson process; each is alive at age u with prob 1 - alpha(u)."""
    def alive(u):
        return 1.0 - _bd_lineage(b, d, u)[0]

    expected_alive, _ = integrate.quad(lambda s: mu * s0 * np.exp(-k * s) * alive(t - s), 0, t,
                                       epsabs=1e-13, epsrel=1e-12)
    return np.exp(-expected_alive)


def _two_sample_counts_p(a, b, min_count=10):
    """Chi-square p-value that two samples of counts come from one distribution (tail bins merged)."""
    top = int(max(a.max(), b.max()))
    ca = np.bincount(a.astype(np.int64), minlength=top + 1)
    cb = np.bincount(b.astype(np.int64), minlength=top + 1)
    cols, acc_a, acc_b = [], 0, 0
    for x, y in zip(ca, cb):
        acc_a, acc_b = acc_a + x, acc_b + y
        if acc_a + acc_b >= min_count:
            cols.append((acc_a, acc_b))
            acc_a = acc_b = 0
    if acc_a + acc_b and cols:
        cols[-1] = (cols[-1][0] + acc_a, cols[-1][1] + acc_b)
    table = np.array(cols).T
    if table.shape[1] < 2:
        return 1.0
    return stats.chi2_contingency(table)[1]


def test_references_agree_with_theory():
    """The numpy references themselves: Gillespie extinction vs (d/b)^n0, thinning vs the analytic mean."""
    rng = np.random.default_rng(2024)
    t_ext = _gillespie_logistic(3, 0.5, 0.3, 0.0, 2000, 200.0, rng, n_cap=200)  # linear: from 3 cells
    p = np.isfinite(t_ext).mean()
    # extinction from 200 cells has probability 0.6^200 ~ 0: within 4 SE of 0.216
    assert _within(p, 0.6 ** 3, np.sqrt(0.216 * 0.784 / 2000)), p
    out = _gillespie_source_clone(1000, 0.5, 0.002, 0.1, 0.3, 4000, [2.0, 10.0], rng)
    for j, tj in enumerate([2.0, 10.0]):
        mean = _source_clone_mean(1000, 0.5, 0.002, 0.1, 0.3, tj)
        assert _within(out[:, j].mean(), mean, out[:, j].std() / np.sqrt(4000)), (tj, out[:, j].mean(), mean)
        p0 = _source_clone_p_zero(1000, 0.5, 0.002, 0.1, 0.3, tj)
        assert _within((out[:, j] == 0).mean(), p0, np.sqrt(p0 * (1 - p0) / 4000))
    pmf = _bd_pmf(3, 0.5, 0.3, 5.0, 3000)
    n = np.arange(pmf.size)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert (n * pmf).sum() == pytest.approx(3 * np.e, rel=1e-10)


# ---------------------------------------------------------------- linear birth-death


def test_birth_death_extinction_probability(birth_death):
    """From 3 cells with b = 0.5, d = 0.3: P(extinct) = (d/b)^3 = 0.216 (below = 100, then ODE)."""
    n = 8000
    res = simulate_batch(birth_death, [], [0.0, 200.0], _params(birth_death, n), seed=12345, n_threads=2)
    assert (res.status == 0).all()
    final = res.state("cells")[:, -1]
    extinct = final == 0
    p, expected = extinct.mean(), 0.6 ** 3
    assert _within(p, expected, np.sqrt(expected * (1 - expected) / n)), (p, expected)
    # survivors grew through `below` and follow the ODE: far above 100 cells by day 200
    assert (final[~extinct] > 1e10).all()


def test_birth_death_exact_distribution_at_day_5(birth_death_exact):
    """Fully discrete (below = 1e6): mean, variance (Bailey 1964) and the whole law of N(5)."""
    n, b, d, n0, t = 8000, 0.5, 0.3, 3, 5.0
    res = simulate_batch(birth_death_exact, [], [0.0, t], _params(birth_death_exact, n), seed=7, n_threads=2)
    assert (res.status == 0).all()
    counts = res.state("cells")[:, -1]
    assert np.array_equal(counts, np.round(counts)) and (counts >= 0).all()
    e = np.exp((b - d) * t)
    mean, var = n0 * e, n0 * (b + d) / (b - d) * e * (e - 1)
    assert _within(counts.mean(), mean, np.sqrt(var / n)), (counts.mean(), mean)
    m4 = np.mean((counts - counts.mean()) ** 4)
    s2 = counts.var(ddof=1)
    assert _within(s2, var, np.sqrt((m4 - s2 ** 2) / n)), (s2, var)
    alpha = _bd_lineage(b, d, t)[0]
    assert _within((counts == 0).mean(), alpha ** n0, np.sqrt(alpha ** n0 * (1 - alpha ** n0) / n))
    # chi-square goodness of fit to the exact law, bins with >= 20 expected patients
    pmf = _bd_pmf(n0, b, d, t, 2000)
    observed = np.bincount(counts.astype(np.int64), minlength=pmf.size)[: pmf.size]
    edges = [0]
    acc = 0.0
    for i, q in enumerate(pmf):
        acc += q * n
        if acc >= 20:
            edges.append(i + 1)
            acc = 0.0
    expected_bins = [pmf[a:z].sum() * n for a, z in zip(edges[:-1], edges[1:])]
    observed_bins = [observed[a:z].sum() for a, z in zip(edges[:-1], edges[1:])]
    expected_bins.append(n - sum(expected_bins))
    observed_bins.append(n - sum(observed_bins))
    assert stats.chisquare(observed_bins, expected_bins).pvalue > 1e-3


def test_non_integer_initial_count_is_rounded_stochastically(birth_death_exact):
    """2.3 cells at day 0 < below: 2 or 3 cells, 3 with probability 0.3 (the mean is kept)."""
    n = 8000
    p = _params(birth_death_exact, n, initial_cells=2.3)
    res = simulate_batch(birth_death_exact, [], [0.0, 5.0], p, seed=99, n_threads=2)
    start = res.state("cells")[:, 0]
    assert set(np.unique(start)) <= {2.0, 3.0}
    assert _within((start == 3).mean(), 0.3, np.sqrt(0.21 / n)), (start == 3).mean()
    # E[N(5)] = 2.3 e^{0.2 * 5}, Var = E over the start of Var + Var of the mean
    e = np.e
    var_given = (0.5 + 0.3) / (0.5 - 0.3) * e * (e - 1) * np.array([2.0, 3.0])
    var = 0.7 * var_given[0] + 0.3 * var_given[1] + 0.21 * e ** 2
    assert _within(res.state("cells")[:, 1].mean(), 2.3 * e, np.sqrt(var / n))


def test_large_population_follows_the_ode(birth_death):
    """1e6 cells >= below = 100: a plain ODE, n0 e^{(b-d)t}, the same for every seed."""
    times = np.linspace(0.0, 30.0, 31)
    p = _params(birth_death, 3, initial_cells=1e6)
    opts = SolverOptions(rtol=1e-8)
    res = simulate_batch(birth_death, [], times, p, seed=1, options=opts)
    other = simulate_batch(birth_death, [], times, p, seed=2, options=opts)
    exact = 1e6 * np.exp(0.2 * times)
    for i in range(3):
        np.testing.assert_allclose(res.state("cells")[i], exact, rtol=1e-5)
    np.testing.assert_array_equal(res.states, other.states)


def test_declining_population_switches_to_jumps_keeping_the_mean(birth_death):
    """b = 0.3 < d = 0.5 from 1e4 cells: continuous down to below / 2 = 50, then discrete counts.
    The mean of the linear process is n0 e^{(b-d)t} for both parts and at the switch."""
    n = 4000
    p = _params(birth_death, n, initial_cells=1e4, birth_rate=0.3, death_rate=0.5)
    times = np.array([0.0, 20.0, 35.0, 60.0])
    res = simulate_batch(birth_death, [], times, p, seed=5, n_threads=2)
    assert (res.status == 0).all()
    cells = res.state("cells")
    np.testing.assert_allclose(cells[:, 1], 1e4 * np.exp(-0.2 * 20), rtol=1e-4)  # still continuous
    late = cells[:, 2]
    assert np.array_equal(late, np.round(late)), "below below/2 the count is an integer"
    assert _within(late.mean(), 1e4 * np.exp(-7.0), late.std() / np.sqrt(n)), late.mean()
    # from 50 cells at t_s = ln(200)/0.2, discrete: P(extinct by day 60) = alpha(60 - t_s)^50
    alpha = _bd_lineage(0.3, 0.5, 60.0 - np.log(200.0) / 0.2)[0]
    q = alpha ** 50
    assert _within((cells[:, 3] == 0).mean(), q, np.sqrt(q * (1 - q) / n)), ((cells[:, 3] == 0).mean(), q)


# ---------------------------------------------------------------- nonlinear and time-varying


def test_logistic_birth_death_extinction_vs_gillespie():
    """Gain b n, loss d n + c n^2 (fully discrete): extinction-time law and P(extinct by day 20)."""
    model = load_model(ENGINE_V2 / "logistic_bd.toml")
    n, t_end, dt = 4000, 20.0, 0.25
    times = np.arange(0.0, t_end + dt / 2, dt)
    res = simulate_batch(model, [], times, _params(model, n), seed=31, n_threads=2, save_outputs=False)
    assert (res.status == 0).all()
    cells = res.state("cells")
    gone = cells == 0
    # once extinct, always extinct
    assert (np.diff(gone.astype(int), axis=1) >= 0).all()
    engine_idx = np.where(gone.any(axis=1), gone.argmax(axis=1), -1)
    ref = _gillespie_logistic(10, 0.6, 0.2, 0.1, 8000, t_end, np.random.default_rng(8))
    ref_idx = np.where(np.isfinite(ref), np.searchsorted(times, ref), -1)  # first grid time >= t_ext
    p_eng, p_ref = (engine_idx >= 0).mean(), (ref_idx >= 0).mean()
    pooled = (p_eng * n + p_ref * ref.size) / (n + ref.size)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / ref.size))
    assert _within(p_eng, p_ref, se), (p_eng, p_ref)
    assert 0.2 < p_ref < 0.8
    assert stats.ks_2samp(times[engine_idx[engine_idx >= 0]], times[ref_idx[ref_idx >= 0]]).pvalue > 1e-3


def test_trigger_on_a_jump_of_a_discrete_state():
    """`extinct` (trigger cells - 0.5, down) fires when the count jumps from 1 to 0: at the
    extinction time seen on the output grid, with the Gillespie law of extinction times."""
    model = load_model(ENGINE_V2 / "logistic_bd.toml")
    n, t_end, dt = 2000, 20.0, 0.25
    times = np.arange(0.0, t_end + dt / 2, dt)
    res = simulate_batch(model, [], times, _params(model, n), seed=32, n_threads=2, save_outputs=False)
    gone = res.state("cells") == 0
    engine_idx = np.where(gone.any(axis=1), gone.argmax(axis=1), -1)
    ref = _gillespie_logistic(10, 0.6, 0.2, 0.1, 8000, t_end, np.random.default_rng(9))
    t_event = res.model_event_time[:, list(res.model_event_names).index("extinct")]
    has = engine_idx >= 0
    assert np.array_equal(np.isfinite(t_event), has)
    assert (t_event[has] <= times[engine_idx[has]]).all()
    assert (t_event[has] > times[engine_idx[has]] - dt).all()
    assert stats.ks_2samp(t_event[has], ref[np.isfinite(ref)]).pvalue > 1e-3


def test_time_varying_source_vs_thinning_reference():
    """R fed at rate mu S(t), S(t) = S0 e^{-k t} an ODE state: law of R(t) at several times vs a
    Gillespie-with-thinning reference, its mean and P(R(t) = 0) vs the analytic values."""
    model = load_model(ENGINE_V2 / "sr_mutation.toml")
    s0, k, mu, b, d = 1000.0, 0.5, 0.002, 0.1, 0.3
    n = 6000
    times = np.array([0.0, 1.0, 2.0, 5.0, 10.0, 20.0])
    res = simulate_batch(model, [], times, _params(model, n), seed=2, n_threads=2)
    assert (res.status == 0).all()
    np.testing.assert_allclose(res.state("sensitive")[0], s0 * np.exp(-k * times), rtol=1e-4)
    r_eng = res.state("resistant")
    assert np.array_equal(r_eng, np.round(r_eng))
    ref = _gillespie_source_clone(s0, k, mu, b, d, 8000, times[1:], np.random.default_rng(3))
    for j, tj in enumerate(times[1:], start=1):
        eng = r_eng[:, j]
        mean = _source_clone_mean(s0, k, mu, b, d, tj)
        assert _within(eng.mean(), mean, eng.std() / np.sqrt(n)), (tj, eng.mean(), mean)
        p0 = _source_clone_p_zero(s0, k, mu, b, d, tj)
        assert _within((eng == 0).mean(), p0, np.sqrt(p0 * (1 - p0) / n)), (tj, (eng == 0).mean(), p0)
        assert _two_sample_counts_p(eng, ref[:, j - 1]) > 1e-3, tj



def _bd_signal(coupling, n, seed):
    model = load_model(ENGINE_V2 / "bd_signal.toml")
    times = np.array([0.0, 2.0, 4.0, 6.0])
    res = simulate_batch(model, [], times, _params(model, n, coupling=coupling), seed=seed, n_threads=2)
    assert (res.status == 0).all()
    return res, times


@pytest.mark.parametrize("coupling", [1.0, 0.0])
def test_a_continuous_state_driven_by_the_count_keeps_its_mean(coupling):
    """signal' = coupling * clone: E[signal(t)] = coupling (e^{(b-d)t} - 1)/(b - d) (Kendall). With
    a strong coupling a jump fired inside a step would leave the signal on the old count for the
    rest of the step, a lag that biases the mean low (without the engine's check, 14 to 39
    standard errors low here); the engine must end the step at such a jump."""
    b, d, n = 1.0, 0.6, 6000
    res, times = _bd_signal(coupling, n, seed=11)
    for j, tj in enumerate(times[1:], start=1):
        clone, signal = res.state("clone")[:, j], res.state("signal")[:, j]
        assert _within(clone.mean(), np.exp((b - d) * tj), clone.std() / np.sqrt(n)), (tj, clone.mean())
        if coupling > 0.0:
            expected = coupling * (np.exp((b - d) * tj) - 1.0) / (b - d)
            assert _within(signal.mean(), expected, signal.std() / np.sqrt(n)), (tj, signal.mean(), expected)


def test_jumps_fired_inside_steps_keep_the_exact_law():
    """Uncoupled, the steps are long and most jumps are fired inside a step (several jumps per
    step); the count at day 6 still has the law of the linear birth-death process (chi-square
    against Kendall's distribution)."""
    b, d, n, t = 1.0, 0.6, 6000, 6.0
    res, _ = _bd_signal(0.0, n, seed=12)
    jumps, steps = res.counter("n_jumps"), res.counter("n_steps")
    assert jumps.sum() > 4 * steps.sum(), (jumps.sum(), steps.sum())
    counts = res.state("clone")[:, -1].astype(int)
    pmf = _bd_pmf(1, b, d, t, 400)
    edges = [0, 1, 2, 3, 5, 8, 12, 18, 27, 40, 60, 401]
    observed = np.array([((counts >= lo) & (counts < hi)).sum() for lo, hi in zip(edges[:-1], edges[1:])])
    expected = np.array([pmf[lo:hi].sum() for lo, hi in zip(edges[:-1], edges[1:])]) * n
    expected[-1] += n - expected.sum()  # the tail beyond 400 cells
    assert expected.min() > 20
    assert stats.chisquare(observed, expected).pvalue > 1e-3, (observed, expected.round(1))


# ---------------------------------------------------------------- random streams


def test_same_seed_same_result_different_seed_differs(birth_death):
    p = _params(birth_death, 200)
    times = [0.0, 10.0, 40.0]
    a = simulate_batch(birth_death, [], times, p, seed=42)
    b = simulate_batch(birth_death, [], times, p, seed=42)
    c = simulate_batch(birth_death, [], times, p, seed=43)
    np.testing.assert_array_equal(a.states, b.states)
    assert not np.array_equal(a.states, c.states)
    # patients of one batch get different streams
    assert len(np.unique(a.state("cells")[:, 1])) > 5


def test_patient_index_selects_the_stream(birth_death):
    times = [0.0, 10.0, 40.0]
    full = simulate_batch(birth_death, [], times, _params(birth_death, 20), seed=9)
    one = simulate_batch(birth_death, [], times, _params(birth_death, 1), seed=9, patient_index=[7])
    np.testing.assert_array_equal(one.states[0], full.states[7])
    some = simulate_batch(birth_death, [], times, _params(birth_death, 3), seed=9, patient_index=[12, 3, 19])
    np.testing.assert_array_equal(some.states, full.states[[12, 3, 19]])
    single = simulate(birth_death, [], times, seed=9)
    np.testing.assert_array_equal(single.states, full.states[0])


def test_thread_count_does_not_change_results(birth_death):
    p = _params(birth_death, 300)
    times = [0.0, 10.0, 40.0]
    one = simulate_batch(birth_death, [], times, p, seed=4, n_threads=1)
    two = simulate_batch(birth_death, [], times, p, seed=4, n_threads=2)
    np.testing.assert_array_equal(one.states, two.states)
    np.testing.assert_array_equal(one.outputs, two.outputs)


def test_deterministic_model_ignores_the_seed(linear_model):
    assert not linear_model.is_stochastic
    times = np.linspace(0.0, 30.0, 16)
    p = _params(linear_model, 5)
    a = simulate_batch(linear_model, [], times, p, seed=0)
    b = simulate_batch(linear_model, [], times, p, seed=123456)
    c = simulate_batch(linear_model, [], times, p, seed=5, patient_index=[4, 3, 2, 1, 0])
    np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_array_equal(a.states, c.states)
    np.testing.assert_array_equal(a.counters, b.counters)


# ---------------------------------------------------------------- jumps of the state by events


def test_scheduled_multiply_makes_a_continuous_state_discrete(birth_death):
    """1e4 cells (continuous) knocked down to 1.22 cells by a scheduled multiply: the state is
    rounded to a whole number (1 or 2, mean kept) and counted exactly from then on, so the
    lineage dies out with the branching-process probability (d/b)^n of its count."""
    from carkinetics import Action, Event

    n = 4000
    events = [Event(1.0, [Action("multiply", "cells", 1e-4)])]
    res = simulate_batch(birth_death, events, [0.0, 1.0, 80.0], _params(birth_death, n, initial_cells=1e4),
                         seed=7, n_threads=2)
    after = res.state("cells")[:, 1]
    assert np.array_equal(after, np.round(after)) and set(np.unique(after)) <= {1.0, 2.0}
    y = 1e4 * np.exp(0.2) * 1e-4
    frac = y - np.floor(y)
    assert _within(after.mean(), y, np.sqrt(frac * (1 - frac) / n))
    p_extinct = (1 - frac) * 0.6 + frac * 0.6 ** 2
    extinct = (res.state("cells")[:, -1] == 0).mean()
    assert _within(extinct, p_extinct, np.sqrt(p_extinct * (1 - p_extinct) / n)), (extinct, p_extinct)


def test_halving_a_discrete_count_keeps_it_whole(birth_death):
    """A discrete count of 3 multiplied by 0.5 becomes 1 or 2 (mean 1.5), never 1.5."""
    from carkinetics import Action, Event

    n = 4000
    events = [Event(0.001, [Action("multiply", "cells", 0.5)])]
    res = simulate_batch(birth_death, events, [0.0, 0.001], _params(birth_death, n), seed=8, n_threads=2)
    after = res.state("cells")[:, 1]
    assert np.array_equal(after, np.round(after))
    assert _within(after.mean(), 1.5, 0.5 / np.sqrt(n)), after.mean()
