"""The terminal-phase endpoints ``half_life`` and ``auc_inf`` computed through an EndpointSet.

References: closed forms of an exponential decay (half-life ln 2 / k, AUC to infinity
C(start) / k) and the array functions of :mod:`carkinetics.stats.nca`, which are
checked against PKNCA's own values in tests/stats/test_nca_pknca.py.
"""

import math

import numpy as np
import pytest

import carkinetics.stats.nca as nca
from carkinetics import ScenarioError
from carkinetics.scenario.load import scenario_from_dict

from conftest import DATA

SCEN = DATA / "scenarios"


def _endpoints(endpoints):
    data = {"scenario": {"name": "inline", "model": "endpoints_model.toml"}, "times": {"end": 365, "step": 1},
            "endpoints": endpoints}
    return scenario_from_dict(data, SCEN / "inline.toml").endpoints


def _expansion_contraction(times, k_up, k_down, t_peak, peak):
    """Exponential expansion to a peak, then exponential contraction."""
    return np.where(times <= t_peak, peak * np.exp(k_up * (times - t_peak)), peak * np.exp(-k_down * (times - t_peak)))


def test_contraction_half_life_of_a_mono_exponential_decay_is_ln2_over_k():
    es = _endpoints({"t_half": {"type": "half_life", "output": "cart_blood", "end": 60},
                     "auc_tot": {"type": "auc_inf", "output": "cart_blood", "start": 10}})
    times = np.arange(0.0, 366.0)
    ks = np.array([0.1, 0.2, 0.35])
    rows = np.vstack([_expansion_contraction(times, 0.8, k, 10.0, 1e4) for k in ks])
    res = es.compute(times, {"cart_blood": rows}, np.zeros((3, 0)), 365.0)
    np.testing.assert_allclose(res["t_half"], math.log(2.0) / ks, rtol=1e-10)
    # AUC from the peak (day 10) to infinity: 1e4 / k; the log-down trapezoid is exact
    np.testing.assert_allclose(res["auc_tot"], 1e4 / ks, rtol=1e-10)


def test_half_life_window_lloq_and_failed_rows():
    es = _endpoints({"t_half": {"type": "half_life", "output": "cd3", "start": 5, "end": 100, "lloq": 1.0},
                     "auc_i": {"type": "auc_inf", "output": "cd3", "method": "linear", "lloq": 1.0}})
    times = np.arange(0.0, 366.0)
    decay = 500.0 * np.exp(-0.05 * times)  # below 1 after day 124
    flat = np.full(times.size, 7.0)  # no decline: no terminal phase
    failed = decay.copy()
    failed[200] = np.nan
    rows = np.vstack([decay, flat, failed])
    res = es.compute(times, {"cd3": rows}, np.zeros((3, 0)), 365.0)
    assert res["t_half"][0] == pytest.approx(math.log(2.0) / 0.05, rel=1e-10)
    assert np.isnan(res["t_half"][1]) and np.isnan(res["auc_i"][1])
    assert np.isnan(res["t_half"][2]) and np.isnan(res["auc_i"][2])  # NaN anywhere: a failed patient
    expected = nca.auc_inf(times, decay, method="linear", lloq=1.0)
    assert res["auc_i"][0] == pytest.approx(expected, rel=1e-12)
    # linear trapezoids overestimate the decay, the extrapolation from the last value >= 1 is exact
    assert 500.0 / 0.05 < res["auc_i"][0] < 500.0 / 0.05 * 1.001


def test_half_life_bad_keys_are_reported():
    with pytest.raises(ScenarioError, match="endpoints.t_half.output: missing"):
        _endpoints({"t_half": {"type": "half_life"}})
    with pytest.raises(ScenarioError, match="'threshold' is not a key of endpoints.t_half"):
        _endpoints({"t_half": {"type": "half_life", "output": "cd3", "threshold": 3}})
    with pytest.raises(ScenarioError, match="endpoints.a.method: expected one of"):
        _endpoints({"a": {"type": "auc_inf", "output": "cd3", "method": "lin-log"}})
