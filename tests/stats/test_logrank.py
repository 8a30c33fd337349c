"""The log-rank test and the O/E hazard ratio against hand computations and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carkinetics.stats.logrank import hazard_ratio, logrank

# Group A: events at 2, 4, 7, censored at 5.   Group B: events at 3, 4, censored at 6, 8.
TIME = [2, 4, 5, 7, 3, 4, 6, 8]
EVENT = [1, 1, 0, 1, 1, 1, 0, 0]
GROUP = ["A"] * 4 + ["B"] * 4

# By hand, per distinct event time t: at risk nA, nB (time >= t), n; events d (dA in A);
# E_A = d nA / n; V = d (nA/n)(nB/n)(n-d)/(n-1).
#   t=2: nA=4 nB=4 n=8 d=1 (A)    E_A = 4/8 = 1/2   V = 1 * 1/2 * 1/2 * 7/7 = 1/4
#   t=3: nA=3 nB=4 n=7 d=1 (B)    E_A = 3/7         V = 1 * 3/7 * 4/7 * 6/6 = 12/49
#   t=4: nA=3 nB=3 n=6 d=2 (A, B) E_A = 2*3/6 = 1   V = 2 * 1/2 * 1/2 * 4/5 = 2/5
#   t=7: nA=1 nB=1 n=2 d=1 (A)    E_A = 1/2         V = 1 * 1/2 * 1/2 * 1/1 = 1/4
# O_A = 3, E_A = 17/7, O_A - E_A = 4/7; O_B = 2, E_B = 5 - 17/7 = 18/7;
# V = 1/4 + 12/49 + 2/5 + 1/4 = 56.1/49.
# chi2 = (4/7)^2 / V = (16/49) / (56.1/49) = 16/56.1 = 0.2852049910873...
# p (1 df) = erfc(sqrt(chi2 / 2)) = 0.59330979888...
CHI2 = 16 / 56.1
O_A, E_A, V = 3.0, 17 / 7, 56.1 / 49


def test_two_groups_match_the_hand_computation():
    r = logrank(TIME, EVENT, GROUP)
    assert r.groups == ("A", "B") and r.df == 1
    np.testing.assert_allclose(r.observed, [3, 2])
    np.testing.assert_allclose(r.expected, [17 / 7, 18 / 7], rtol=1e-12)
    np.testing.assert_allclose(r.covariance, [[V, -V], [-V, V]], rtol=1e-12)
    assert r.statistic == pytest.approx(CHI2, rel=1e-12)
    assert r.pvalue == pytest.approx(math.erfc(math.sqrt(CHI2 / 2)), rel=1e-10)
    assert r.pvalue == pytest.approx(0.5933097988806, rel=1e-9)


def test_hazard_ratio_matches_the_hand_computation():
    # O/E ratio A over B: (3 / (17/7)) / (2 / (18/7)) = (21/17) / (14/18) = 378/238 = 1.5882352941
    # se of its log: sqrt(1/E_A + 1/E_B) = sqrt(7/17 + 7/18) = 0.8947926...
    # Peto: exp((O_A - E_A) / V) = exp((4/7) / (56.1/49)) = exp(28/56.1) = 1.64725247...
    #       se of its log 1/sqrt(V) = 7/sqrt(56.1)
    z = 1.959963984540054
    h = hazard_ratio(TIME, EVENT, GROUP, reference="B")
    assert h.group == "A" and h.reference == "B"
    se = math.sqrt(7 / 17 + 7 / 18)
    assert h.estimate == pytest.approx(378 / 238, rel=1e-12)
    assert h.lower == pytest.approx(378 / 238 * math.exp(-z * se), rel=1e-9)
    assert h.upper == pytest.approx(378 / 238 * math.exp(z * se), rel=1e-9)
    assert h.peto == pytest.approx(math.exp(28 / 56.1), rel=1e-12)
    assert h.peto_lower == pytest.approx(math.exp(28 / 56.1 - z * 7 / math.sqrt(56.1)), rel=1e-9)
    assert h.peto_upper == pytest.approx(math.exp(28 / 56.1 + z * 7 / math.sqrt(56.1)), rel=1e-9)
    # the reference swapped: the reciprocal
    g = hazard_ratio(TIME, EVENT, GROUP)
    assert g.reference == "A" and g.estimate == pytest.approx(238 / 378, rel=1e-12)
    assert g.peto == pytest.approx(math.exp(-28 / 56.1), rel=1e-12)


def _reference_logrank(time, event, group):
    """A plain-loop k-group log-rank statistic (independent of the vectorised code)."""
    labels = sorted(set(group))
    k = len(labels)
    o, e = np.zeros(k), np.zeros(k)
    v = np.zeros((k, k))
    for t in sorted({ti for ti, ev in zip(time, event) if ev}):
        n_g = [sum(1 for ti, gi in zip(time, group) if gi == lab and ti >= t) for lab in labels]
        d_g = [sum(1 for ti, ev, gi in zip(time, event, group) if gi == lab and ti == t and ev) for lab in labels]
        n, d = sum(n_g), sum(d_g)
        for a in range(k):
            o[a] += d_g[a]
            e[a] += d * n_g[a] / n
            for b in range(k):
                if n > 1:
                    v[a, b] += d * (n - d) / (n - 1) * n_g[a] / n * ((a == b) - n_g[b] / n)
    diff = (o - e)[:-1]
    return float(diff @ np.linalg.inv(v[:-1, :-1]) @ diff)


def test_three_groups_match_a_plain_loop():
    rng = np.random.default_rng(3)
    group = np.repeat(["x", "y", "z"], 15)
    time = np.round(rng.exponential(np.repeat([10.0, 15.0, 25.0], 15)), 0) + 1  # ties included
    event = (rng.random(45) < 0.7).astype(float)
    r = logrank(time, event, group)
    assert r.df == 2
    stat = _reference_logrank(list(time), list(event), list(group))
    assert r.statistic == pytest.approx(stat, rel=1e-10)
    assert r.pvalue == pytest.approx(math.exp(-stat / 2), rel=1e-10)  # chi2 with 2 df: exp(-x/2)


def test_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    if not hasattr(stats, "logrank"):
        pytest.skip("scipy < 1.11 has no scipy.stats.logrank")
    rng = np.random.default_rng(7)
    t = rng.exponential(10.0, 80).round(1)
    e = rng.random(80) < 0.6
    g = np.repeat([0, 1], 40)
    ref = stats.logrank(stats.CensoredData(uncensored=t[(g == 0) & e], right=t[(g == 0) & ~e]),
                        stats.CensoredData(uncensored=t[(g == 1) & e], right=t[(g == 1) & ~e]))
    r = logrank(t, e, g)
    assert r.statistic == pytest.approx(ref.statistic ** 2, rel=1e-9)
    assert r.pvalue == pytest.approx(ref.pvalue, rel=1e-9)


def test_nan_rows_are_left_out_and_bad_input_is_refused():
    r = logrank(TIME + [np.nan, 3], EVENT + [1, np.nan], GROUP + ["A", "B"])
    assert r.statistic == pytest.approx(CHI2, rel=1e-12)
    with pytest.raises(ValueError, match="two groups"):
        logrank([1, 2], [1, 1], ["a", "a"])
    with pytest.raises(ValueError, match="differ in length"):
        logrank([1, 2], [1], ["a", "b"])
    with pytest.raises(ValueError, match="exactly two groups"):
        hazard_ratio([1, 2, 3], [1, 1, 1], ["a", "b", "c"])
    with pytest.raises(ValueError, match="is not a group"):
        hazard_ratio(TIME, EVENT, GROUP, reference="C")
