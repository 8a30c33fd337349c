"""Visual predictive check statistics: bins, censored percentiles, intervals, prediction correction, coverage."""

import numpy as np
import pytest

from carkinetics.model.residual_error import parse_residual_error
from carkinetics.scenario.observations import ObservedData
from carkinetics.stats.vpc import (BinnedVPC, VPCError, assign_bins, bin_centres, bin_edges, binned_vpc,
                                   blq_fractions, censored_percentile, observed_percentiles, prediction_correction,
                                   replicate_interval, simulated_percentiles)

from conftest import ROOT


# -- percentiles ---------------------------------------------------------------------------------
def test_percentiles_are_r_type_7_by_hand():
    x = np.arange(1.0, 11.0)  # 1..10: h = 9 q
    none = np.zeros(10, bool)
    assert censored_percentile(x, none, 0.5) == pytest.approx(5.5)
    assert censored_percentile(x, none, 0.05) == pytest.approx(1.45)  # h = 0.45: 1 + 0.45 * 1
    assert censored_percentile(x, none, 0.95) == pytest.approx(9.55)  # h = 8.55: 9 + 0.55 * 1
    assert censored_percentile(x[::-1], none, 0.95) == pytest.approx(9.55)  # order does not matter


def test_censored_percentile_is_missing_when_it_falls_on_a_censored_value():
    x = np.arange(1.0, 11.0)
    cens = x <= 2  # the two lowest below the limit (vpc::quantile_cens sets them to -Inf)
    assert np.isnan(censored_percentile(x, cens, 0.05))  # h = 0.45, lower neighbour censored
    assert np.isnan(censored_percentile(x, cens, 0.2))  # h = 1.8, lower neighbour (rank 2) censored
    assert censored_percentile(x, cens, 0.25) == pytest.approx(3.25)  # h = 2.25: 3 + 0.25 * (4 - 3)
    assert censored_percentile(x, cens, 0.5) == pytest.approx(5.5)
    # a censored row whose reported value is missing counts as censored too
    assert censored_percentile([np.nan, 5.0, 7.0], [True, False, False], 0.5) == pytest.approx(5.0)
    assert np.isnan(censored_percentile([], [], 0.5))


def test_observed_and_simulated_percentiles_per_bin():
    values = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 40.0])
    index = np.array([0, 0, 0, 1, 1, 1, 1])
    obs = observed_percentiles(values, np.zeros(7, bool), index, 3, qs=(0.5, 0.95))
    assert obs[0] == pytest.approx([2.0, 2.9])  # h = 1 and 1.9
    assert obs[1] == pytest.approx([25.0, 38.5])  # h = 1.5 and 2.85
    assert np.isnan(obs[2]).all()  # empty bin
    sim = simulated_percentiles(np.vstack([values, 2 * values]), index, 2, qs=(0.5,))
    assert sim[:, :, 0] == pytest.approx(np.array([[2.0, 25.0], [4.0, 50.0]]))


def test_blq_fraction_and_replicate_interval_by_hand():
    cens = np.array([True, False, False, False, True, True])
    index = np.array([0, 0, 0, 0, 1, 1])
    assert blq_fractions(cens, index, 2) == pytest.approx([0.25, 1.0])
    rep = blq_fractions(np.vstack([cens, ~cens]), index, 2)
    assert rep == pytest.approx(np.array([[0.25, 1.0], [0.75, 0.0]]))
    lo, med, hi = replicate_interval(np.arange(101.0))  # 0..100: the q-quantile is 100 q
    assert (lo, med, hi) == pytest.approx((2.5, 50.0, 97.5))


# -- bins ----------------------------------------------------------------------------------------
def test_nominal_times_get_one_bin_each():
    t = np.repeat([1.0, 4.0, 7.0, 28.0], 5)
    edges = bin_edges(t)
    assert edges == pytest.approx([1.0, 2.5, 5.5, 17.5, 28.0])
    k = assign_bins(t, edges)
    assert list(np.bincount(k)) == [5, 5, 5, 5]
    assert bin_centres(t, k, edges, "mean") == pytest.approx([1.0, 4.0, 7.0, 28.0])
    assert bin_centres(t, k, edges, "middle") == pytest.approx([1.75, 4.0, 11.5, 22.75])


def test_quantile_bins_hold_equal_counts_and_keep_ties_together():
    t = np.arange(1.0, 101.0)  # 100 distinct times, 4 bins: 25 each
    edges = bin_edges(t, 4)
    assert list(np.bincount(assign_bins(t, edges))) == [25, 25, 25, 25]
    ties = np.concatenate([np.full(30, 5.0), np.arange(10.0, 80.0)])  # 100 times, 30 tied at day 5
    edges = bin_edges(ties, 5)
    k = assign_bins(ties, edges)
    assert len(set(k[:30])) == 1  # the tied times stay in one bin
    assert k.min() == 0 and k.max() == len(edges) - 2
    assert bin_centres(np.array([1.0, 2.0, 9.0]), np.zeros(3, int), np.array([0.0, 10.0]), "median") == [2.0]


def test_explicit_edges_and_times_outside_them():
    edges = bin_edges([0.5, 3, 12], [0, 7, 14])
    assert list(assign_bins(np.array([0.0, 6.9, 7.0, 14.0, 14.5, -1.0]), edges)) == [0, 0, 1, 1, -1, -1]
    with pytest.raises(VPCError, match="increasing"):
        bin_edges([1, 2], [0, 7, 7])
    with pytest.raises(VPCError, match=">= 1"):
        bin_edges([1, 2], 0)


# -- prediction correction -----------------------------------------------------------------------
def test_prediction_correction_factors_by_hand():
    pred = np.array([1.0, 2.0, 4.0, 10.0, 30.0, 0.0])
    index = np.array([0, 0, 0, 1, 1, 1])
    f = prediction_correction(pred, index, 2)
    # bin 0: median PRED 2; bin 1: median of the positive predictions (10, 30) is 20; PRED 0 has no factor
    assert f[:5] == pytest.approx([2.0, 1.0, 0.5, 2.0, 20.0 / 30.0])
    assert np.isnan(f[5])


def test_pcvpc_removes_the_trend_of_the_typical_prediction_within_a_bin():
    # observations equal to their typical prediction: corrected, every value in a bin is the bin's median PRED
    t = np.array([0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0])
    pred = 100.0 * np.exp(-0.5 * t)
    edges = np.array([0.0, 5.0, 12.0])
    k = assign_bins(t, edges)
    f = prediction_correction(pred, k, 2)
    sim = np.vstack([pred, pred])
    b = binned_vpc(t, pred, np.zeros(7, bool), sim, np.zeros((2, 7), bool), edges=edges, factor=f)
    med0, med1 = np.median(pred[:4]), np.median(pred[4:])
    assert b.observed[0] == pytest.approx([med0] * 3)
    assert b.observed[1] == pytest.approx([med1] * 3)
    assert b.simulated[:, 0, :] == pytest.approx(np.full((3, 3), med0))
    # uncorrected, the spread within bin 0 is the spread of the prediction
    raw = binned_vpc(t, pred, np.zeros(7, bool), sim, np.zeros((2, 7), bool), edges=edges)
    assert raw.observed[0, 0] == pytest.approx(pred[3] + 0.15 * (pred[2] - pred[3]))  # h = 0.15 on ascending


def test_binned_vpc_counts_and_inside():
    b = BinnedVPC(np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.5]), np.array([3, 3]), np.array([0, 1]), (0.5,),
                  observed=np.array([[1.0], [np.nan]]), simulated=np.array([[[0.5], [0.0]], [[1.0], [1.0]],
                                                                            [[2.0], [2.0]]]),
                  blq_observed=np.zeros(2), blq_simulated=np.zeros((3, 2)))
    assert b.inside()[0, 0] == 1.0 and np.isnan(b.inside()[1, 0])
    with pytest.raises(VPCError, match="shapes"):
        binned_vpc([1, 2], [1, 2], [False, False], np.zeros((3, 3)), np.zeros((3, 3), bool), edges=np.array([0, 3.0]))


# -- the key property: data from the model itself fall inside the intervals at the nominal rate ----
_BOUNDS = {"fold_expansion": (2.0, 1e7), "tmax": (0.5, 60.0), "cmax": (1.0, 1e7), "alpha": (0.005, 5.0),
           "fb": (1e-6, 0.9), "beta": (1e-5, 0.1)}
_TYPICAL = {"fold_expansion": (3900.0, 1.549), "tmax": (9.3, 0.616), "cmax": (24000.0, 0.806),
            "alpha": (0.16, 0.954), "fb": (0.0079, 0.894), "beta": (0.0032, 0.927)}
_TIMES = np.array([1.0, 4.0, 7.0, 10.0, 14.0, 21.0, 28.0, 56.0, 90.0, 180.0, 365.0])


def _stein_analytic(p, t):
    """The multiphasic model's closed form (Stein 2019), independent of the ODE engine."""
    rho = np.log(p["fold_expansion"]) / p["tmax"]
    tau = t - p["tmax"]
    before = p["cmax"] / p["fold_expansion"] * np.exp(rho * np.minimum(t, p["tmax"]))
    tau = np.maximum(tau, 0.0)
    after = p["cmax"] * ((1 - p["fb"]) * np.exp(-p["alpha"] * tau) + p["fb"] * np.exp(-p["beta"] * tau))
    return np.where(t < p["tmax"], before, after)


def _synthetic_study(rng, n_subjects, lloq):
    """40 subjects of the example scenario's two arms (cmax x 3 in 'high'), drawn here with numpy."""
    rows = []
    for i in range(n_subjects):
        arm = "high" if rng.random() < 0.5 else "standard"
        p = {n: float(np.clip(v * np.exp(sd * rng.standard_normal()), *_BOUNDS[n])) for n, (v, sd) in _TYPICAL.items()}
        if arm == "high":
            p["cmax"] = float(np.clip(p["cmax"] * 3, *_BOUNDS["cmax"]))
        y = _stein_analytic(p, _TIMES) * (1 + 0.2 * rng.standard_normal(_TIMES.size))
        rows += [(f"S{i}", t, "transgene", v, lloq, arm) for t, v in zip(_TIMES, y)]
    import pandas as pd

    return pd.DataFrame(rows, columns=["id", "time", "observable", "value", "lloq", "arm"])


def _coverage(tmp_path, scale):
    """Pooled fraction of observed percentiles (and BLQ fractions) inside their intervals, 5 studies."""
    import dataclasses

    from carkinetics.scenario.load import load_scenario
    from carkinetics.studies.vpc import run_vpc

    base = load_scenario(ROOT / "scenarios" / "examples" / "vpc_synthetic.toml")
    rng = np.random.default_rng(20261205)
    inside = reported = blq_inside = blq_n = 0
    for k in range(5):
        path = tmp_path / f"study{k}_{scale:g}.csv"
        study = _synthetic_study(rng, 40, 20.0)
        study["value"] *= scale
        study.to_csv(path, index=False)
        result = run_vpc(dataclasses.replace(base, data=ObservedData(path)), 100, seed=k + 1,
                         error=parse_residual_error("proportional:0.2"), jobs=1)
        inside += result.info["percentiles_inside"]
        reported += result.info["percentiles_reported"]
        b = result.table["blq_inside"].dropna()
        blq_inside += b.sum()
        blq_n += len(b)
    assert reported > 5 * 2 * 11 * 2  # most of the 5 x 2 arms x 11 bins x 3 percentiles are above the LLOQ
    return inside / reported, blq_inside / blq_n


def test_data_from_the_model_fall_inside_the_simulated_intervals_at_about_the_nominal_rate(tmp_path):
    # nominal 95 %; with 100 replicates the interpolated 2.5/97.5 % bounds cover about 93 % (measured
    # 0.936 over 30 studies); these 5 studies: 0.914
    coverage, blq = _coverage(tmp_path, 1.0)
    assert 0.85 <= coverage <= 1.0
    assert blq >= 0.85
    # the check has power: the same studies with every value 3 times too high fall outside (measured 0.47)
    wrong, _ = _coverage(tmp_path, 3.0)
    assert wrong < 0.7
