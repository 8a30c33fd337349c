"""Aalen-Johansen cumulative incidence: a hand-worked example, Kaplan-Meier identities, lifelines."""

import math
import warnings
from fractions import Fraction as Fr

import numpy as np
import pytest
from scipy import stats

from carkinetics.stats.competing import aalen_johansen
from carkinetics.stats.km import kaplan_meier

# Ten patients, two causes; + marks censoring. Two causes tie at day 2, an event and a
# censoring tie at day 4 (the censored patient is at risk at day 4).
#   day:    1   2   2   3+  4   4+  5   6+  7   8+
#   cause:  1   2   1   0   1   0   2   0   1   0
HAND_TIME = [1, 2, 2, 3, 4, 4, 5, 6, 7, 8]
HAND_CAUSE = [1, 2, 1, 0, 1, 0, 2, 0, 1, 0]
# By hand, S(t-) the all-cause survival just before t, n at risk:
#   day 1: n = 10, S- = 1,     d1 = 1        -> F1 = 1/10,                   S = 9/10
#   day 2: n = 9,  S- = 9/10,  d1 = d2 = 1   -> F1 = 1/10 + 9/10 * 1/9 = 1/5,
#                                               F2 = 9/10 * 1/9 = 1/10,     S = 7/10
#   day 3: censored                                                          S = 7/10
#   day 4: n = 6,  S- = 7/10,  d1 = 1        -> F1 = 1/5 + 7/10 * 1/6 = 19/60, S = 7/12
#          (censoring first would give n = 5 and F1 = 1/5 + 7/50 = 17/50)
#   day 5: n = 4,  S- = 7/12,  d2 = 1        -> F2 = 1/10 + 7/12 * 1/4 = 59/240, S = 7/16
#   day 6: censored
#   day 7: n = 2,  S- = 7/16,  d1 = 1        -> F1 = 19/60 + 7/16 * 1/2 = 257/480, S = 7/32
#   day 8: censored; F1 + F2 + S = 257/480 + 118/480 + 105/480 = 1
HAND_F1 = [Fr(1, 10), Fr(1, 5), Fr(1, 5), Fr(19, 60), Fr(19, 60), Fr(19, 60), Fr(257, 480), Fr(257, 480)]
HAND_F2 = [0, Fr(1, 10), Fr(1, 10), Fr(1, 10), Fr(59, 240), Fr(59, 240), Fr(59, 240), Fr(59, 240)]


def test_hand_example_estimates_and_tie_order():
    ci = aalen_johansen(HAND_TIME, HAND_CAUSE)
    assert ci.causes == (1, 2) and ci.n == 10
    np.testing.assert_array_equal(ci.times, [1, 2, 3, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(ci.n_at_risk, [10, 9, 7, 6, 4, 3, 2, 1])
    np.testing.assert_array_equal(ci.n_events, [[1, 1, 0, 1, 0, 0, 1, 0], [0, 1, 0, 0, 1, 0, 0, 0]])
    np.testing.assert_allclose(ci.cif[0], [float(f) for f in HAND_F1], rtol=1e-14)
    np.testing.assert_allclose(ci.cif[1], [float(f) for f in HAND_F2], rtol=1e-14)
    np.testing.assert_allclose(ci.survival[-1], 7 / 32, rtol=1e-14)
    # the step function: 0 before day 1, constant between times, unknown after day 8
    assert ci.at(0.5, 1) == (0.0, 0.0, 0.0)
    assert ci.at(4.999, 1)[0] == pytest.approx(19 / 60, rel=1e-14)
    assert ci.at(5.0, 2)[0] == pytest.approx(59 / 240, rel=1e-14)
    est = ci.at(np.array([1.0, 2.5, 7.0, 8.0, 8.5, np.nan]), 1)[0]
    np.testing.assert_allclose(est, [0.1, 0.2, 257 / 480, 257 / 480, np.nan, np.nan], rtol=1e-14)
    with pytest.raises(ValueError, match="cause codes"):
        ci.at(3.0, 3)


def test_hand_example_variance_and_band():
    ci = aalen_johansen(HAND_TIME, HAND_CAUSE)
    # F1 at day 2, before any censoring: the binomial variance F (1 - F) / n = (1/5)(4/5)/10 = 2/125;
    # term by term, day 1: (1/5 - 1/10)^2 * 1/(10*9) + 1*1*9/10^3 - 2 (1/10) * 1/10^2 = 8/1125,
    # day 2: 0 + (9/10)^2 * 1*8/9^3 - 0 = 2/225; 8/1125 + 2/225 = 2/125.
    assert ci.variance[0, 1] == pytest.approx(2 / 125, rel=1e-13)
    # F2 at day 5 (F = 59/240), with a censoring before: terms at the event days 1, 2, 4, 5
    F = Fr(59, 240)
    day1 = F ** 2 * Fr(1, 10 * 9)
    day2 = (F - Fr(1, 10)) ** 2 * Fr(2, 9 * 7) + Fr(81, 100) * 1 * 8 / Fr(9 ** 3) \
        - 2 * (F - Fr(1, 10)) * Fr(9, 10) * 1 / Fr(9 ** 2)
    day4 = (F - Fr(1, 10)) ** 2 * Fr(1, 6 * 5)
    day5 = Fr(7, 12) ** 2 * 1 * 3 / Fr(4 ** 3)
    var = day1 + day2 + day4 + day5
    assert ci.variance[1, 4] == pytest.approx(float(var), rel=1e-13)
    # the band: F ** exp(+-z se / (F |log F|)), at 95 % and at 80 %
    for level in (0.95, 0.8):
        c = aalen_johansen(HAND_TIME, HAND_CAUSE, level=level)
        z = stats.norm.ppf(0.5 + level / 2)
        f = float(F)
        s = math.sqrt(float(var)) / (f * abs(math.log(f)))
        assert c.at(5.5, 2) == pytest.approx((f, f ** math.exp(z * s), f ** math.exp(-z * s)), rel=1e-12)


def _plain_km(time, event, t):
    """Kaplan-Meier survival at day t, straight from the definition (events before censorings)."""
    s = 1.0
    for u in np.unique(time[event == 1]):
        if u > t:
            break
        s *= 1 - np.sum((time == u) & (event == 1)) / np.sum(time >= u)
    return s


def _censored_causes(seed, n, n_causes, censor_high=250):
    rng = np.random.default_rng(seed)
    t_event = np.round(rng.exponential(100, n), 0)  # rounding makes ties
    t_cens = np.round(rng.uniform(20, censor_high, n), 0)
    time = np.minimum(t_event, t_cens)
    cause = np.where(t_event <= t_cens, rng.integers(1, n_causes + 1, n), 0).astype(float)
    return time, cause


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_cause_is_one_minus_kaplan_meier(seed):
    time, event = _censored_causes(seed, 120, 1)
    ci = aalen_johansen(time, event)
    km = kaplan_meier(time, event)
    probe = np.concatenate([np.linspace(-1, time.max() + 5, 97), np.unique(time)])
    est = ci.at(probe, 1)[0]
    np.testing.assert_allclose(est, 1 - km.at(probe)[0], rtol=1e-12, atol=1e-14)
    inside = probe <= time.max()
    plain = np.array([_plain_km(time, event, t) for t in probe[inside]])
    np.testing.assert_allclose(est[inside], 1 - plain, rtol=1e-12, atol=1e-14)
    assert np.isnan(est[~inside]).all()  # censored last: unknown beyond
    # the variance is Greenwood's variance of the survival, S^2 sum d / (n (n - d))
    greenwood = km.survival ** 2 * np.cumsum(km.n_events / (km.n_at_risk * (km.n_at_risk - km.n_events)))
    np.testing.assert_allclose(ci.variance[0], greenwood, rtol=1e-10, atol=1e-16)


def test_one_cause_reaching_one_is_known_beyond_the_last_time():
    ci = aalen_johansen([1.0, 2.0, 2.0, 3.0], [1, 0, 1, 1])
    assert ci.at(10.0, 1)[0] == pytest.approx(1.0)
    assert ci.at(2.5, 1)[0] == pytest.approx(1 - 3 / 4 * 2 / 3)
    everyone = aalen_johansen([5.0, 5.0], [2, 2])
    assert everyone.at(6.0, 2) == (1.0, pytest.approx(np.nan, nan_ok=True), 1.0)


def test_without_censoring_the_variance_is_binomial():
    rng = np.random.default_rng(7)
    time = np.round(rng.exponential(30, 80))
    cause = rng.integers(1, 4, 80)
    ci = aalen_johansen(time, cause)
    for k in ci.causes:
        # the empirical proportion of patients with an event of cause k by each time
        empirical = np.array([np.mean((time <= t) & (cause == k)) for t in ci.times])
        np.testing.assert_allclose(ci.cif[ci.index(k)], empirical, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(ci.variance[ci.index(k)], empirical * (1 - empirical) / 80,
                                   rtol=1e-9, atol=1e-16)


@pytest.mark.parametrize("seed", [3, 4])
def test_causes_add_up_to_all_cause_kaplan_meier(seed):
    time, cause = _censored_causes(seed, 300, 3, censor_high=600)
    ci = aalen_johansen(time, cause)
    assert ci.causes == (1, 2, 3)
    km = kaplan_meier(time, (cause > 0).astype(float))
    np.testing.assert_array_equal(ci.times, km.time)
    np.testing.assert_allclose(ci.cif.sum(axis=0), 1 - km.survival, rtol=1e-12, atol=1e-14)
    probe = np.linspace(0, time.max(), 50)
    total = sum(ci.at(probe, k)[0] for k in ci.causes)
    np.testing.assert_allclose(total, 1 - np.array([_plain_km(time, (cause > 0) * 1.0, t) for t in probe]),
                               rtol=1e-12, atol=1e-14)
    # each cause's incidence is below one minus the Kaplan-Meier curve treating the others as censored
    for k in ci.causes:
        naive = 1 - kaplan_meier(time, (cause == k).astype(float)).survival
        assert (ci.cif[ci.index(k)] <= naive + 1e-12).all()
    assert (ci.lower <= ci.cif + 1e-15).all() and (ci.cif <= ci.upper + 1e-15).all()


def test_matches_lifelines_aalen_johansen():
    lifelines = pytest.importorskip("lifelines")
    rng = np.random.default_rng(11)
    n = 150  # continuous times: lifelines jitters tied times
    t_event, t_cens = rng.exponential(10, n), rng.exponential(15, n)
    time = np.minimum(t_event, t_cens)
    cause = np.where(t_event <= t_cens, rng.integers(1, 3, n), 0)
    ci = aalen_johansen(time, cause)
    for k in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = lifelines.AalenJohansenFitter(calculate_variance=True).fit(time, cause, event_of_interest=k)
        at = ref.cumulative_density_.index.to_numpy()[1:]  # the first row is day 0
        est, lo, hi = ci.at(at, k)
        np.testing.assert_allclose(est, ref.cumulative_density_.to_numpy()[1:, 0], rtol=1e-12, atol=1e-15)
        var = ci.variance[ci.index(k), np.searchsorted(ci.times, at)]
        ref_var = ref.variance_.to_numpy()[1:]
        # lifelines has NaN where the last patient at risk has the event (0 * inf in its first term)
        keep = np.isfinite(ref_var)
        assert keep[:-1].all() and np.isfinite(var).all()
        np.testing.assert_allclose(var[keep], ref_var[keep], rtol=1e-9)
        band = np.sort(ref.confidence_interval_.to_numpy()[1:], axis=1)  # its columns are lower/upper swapped
        keep &= est > 0
        np.testing.assert_allclose(np.c_[lo, hi][keep], band[keep], rtol=1e-9)


def test_variance_against_simulation():
    # 2,000 cohorts of 150: T ~ round(Exp(mean 10)), cause 1 or 2 with probability 1/2, censoring
    # round(U(0, 25)); CIF_1(8) = P(T < 8.5) / 2. The empirical SD of the estimate across cohorts
    # matches the mean estimated SD, and the 95 % band covers the true value about 95 % of the time.
    rng = np.random.default_rng(5)
    n, reps, day = 150, 2000, 8.0
    true = 0.5 * (1 - math.exp(-8.5 / 10))
    est, sd, covered = np.empty(reps), np.empty(reps), 0
    for r in range(reps):
        t = np.round(rng.exponential(10, n))
        c = rng.integers(1, 3, n)
        cens = np.round(rng.uniform(0, 25, n))
        ci = aalen_johansen(np.minimum(t, cens), np.where(t <= cens, c, 0), causes=(1, 2))
        i = np.searchsorted(ci.times, day, side="right") - 1
        est[r], sd[r] = ci.cif[0, i], math.sqrt(ci.variance[0, i])
        covered += ci.lower[0, i] <= true <= ci.upper[0, i]
    assert abs(est.mean() - true) < 0.004  # unbiased: Monte Carlo SE 0.0009
    assert est.std(ddof=1) == pytest.approx(sd.mean(), rel=0.1)
    assert 0.925 < covered / reps < 0.975  # binomial SE 0.005


def test_input_handling():
    time = np.array([1.0, 2.0, np.nan, 3.0, 4.0, 5.0])
    cause = np.array([1.0, np.nan, 2.0, 0.0, 2.0, 1.0])
    ci = aalen_johansen(time, cause)
    ref = aalen_johansen([1.0, 3.0, 4.0, 5.0], [1, 0, 2, 1])
    assert ci.n == 4
    np.testing.assert_array_equal(ci.times, ref.times)
    np.testing.assert_array_equal(ci.cif, ref.cif)
    # a declared cause without events has an incidence of 0 with a band of 0
    ci = aalen_johansen([1.0, 2.0, 3.0], [1, 0, 1], causes=[2, 1])
    assert ci.causes == (1, 2)
    assert ci.at(2.5, 2) == (0.0, 0.0, 0.0) and ci.at(2.5, 1)[0] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="not in `causes`"):
        aalen_johansen([1.0, 2.0], [1, 3], causes=[1, 2])
    with pytest.raises(ValueError, match="whole-number"):
        aalen_johansen([1.0, 2.0], [1, 1.5])
    with pytest.raises(ValueError, match="whole-number"):
        aalen_johansen([1.0, 2.0], [1, -1])
    with pytest.raises(ValueError, match="whole-number"):
        aalen_johansen([1.0, 2.0], [1, np.inf])
    with pytest.raises(ValueError, match="differ in length"):
        aalen_johansen([1.0, 2.0], [1])
    with pytest.raises(ValueError, match="level"):
        aalen_johansen([1.0], [1], level=1.5)
    empty = aalen_johansen([], [], causes=[1])
    assert empty.n == 0 and all(math.isnan(v) for v in empty.at(1.0, 1))
