"""Validation statistics against hand-computed values, and the [targets] section's checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from carkinetics.errors import ScenarioError
from carkinetics.scenario.targets import TargetSpec
from carkinetics.plots.validation import plot_validation
from carkinetics.studies.validate import cohort_statistic, median_not_reached_by, time_unit_days, verdict_counts
from conftest import DATA


def _spec(endpoint, **kw):
    base = dict(target_id="x", endpoint=endpoint, statistic=None, arms=None, among=None, time=None, role="outcome")
    base.update(kw)
    return TargetSpec(**base)


@pytest.fixture
def patients():
    rng = np.random.default_rng(5)
    n = 4000
    arm = np.where(rng.random(n) < 0.3, "hsct", "none")
    cr = (rng.random(n) < 0.8).astype(float)
    death = rng.exponential(400.0, n)
    horizon = 730.0
    return pd.DataFrame({
        "patient": np.arange(n), "arm": arm, "status": np.zeros(n, int), "cr": cr,
        "os": np.minimum(death, horizon), "os_event": (death < horizon).astype(float),
        "cmax": rng.lognormal(np.log(1e4), 1.0, n),
    })


def test_proportion_with_arm_and_among(patients):
    spec = _spec("cr", arms=("hsct",))
    value, lo, hi, n = cohort_statistic(patients, spec, "proportion", None)
    sub = patients[patients.arm == "hsct"]
    k = int(sub.cr.sum())
    assert n == len(sub)
    assert value == pytest.approx(k / n)
    ci = scipy.stats.binomtest(k, n).proportion_ci(method="wilson")
    assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-9)
    # among: the denominator is the responders
    spec = _spec("cr", among="cr")
    value, *_, n = cohort_statistic(patients, spec, "proportion", None)
    assert value == 1.0 and n == int(patients.cr.sum())


def test_failed_patients_are_excluded(patients):
    p = patients.copy()
    p.loc[:99, "status"] = 3
    p.loc[:99, "cr"] = np.nan
    value, *_, n = cohort_statistic(p, _spec("cr"), "proportion", None)
    assert n == len(p) - 100
    assert value == pytest.approx(p.cr.iloc[100:].mean())


def test_km_and_cumulative_incidence_against_exponential(patients):
    value, lo, hi, n = cohort_statistic(patients, _spec("os"), "km_estimate", 365.0)
    # no censoring before the horizon: Kaplan-Meier is the empirical survival
    assert value == pytest.approx(np.mean(patients.os > 365.0))
    assert lo < value < hi
    assert lo < math.exp(-365 / 400) < hi
    ci, *_ = cohort_statistic(patients, _spec("os"), "cumulative_incidence", 365.0)
    assert ci == pytest.approx(np.mean((patients.os_event == 1) & (patients.os <= 365.0)))
    assert ci == pytest.approx(1 - value)


def test_median_time_to_event_and_geometric_mean(patients):
    m, lo, hi, _ = cohort_statistic(patients, _spec("os"), "median", None)
    assert m == pytest.approx(np.quantile(patients.os, 0.5), rel=0.01)
    assert lo <= 400 * math.log(2) <= hi
    g, glo, ghi, _ = cohort_statistic(patients, _spec("cmax"), "geometric_mean", None)
    assert g == pytest.approx(scipy.stats.gmean(patients.cmax))
    assert glo < 1e4 < ghi


def test_months_and_a_median_not_reached(patients):
    assert time_unit_days("months") == 30.4375 and time_unit_days("Weeks") == 7.0
    assert time_unit_days("days") is None and time_unit_days(None) is None
    # exponential deaths with mean 400 days followed to 730: the median (277 days) is reached
    assert median_not_reached_by(patients, _spec("os")) is None
    # a mean of 4000 days: survival at 730 is exp(-730/4000) = 0.83 > 1/2, not reached by day 730
    late = patients.assign(os=np.minimum(patients.os * 10, 730.0), os_event=(patients.os * 10 < 730).astype(float))
    assert median_not_reached_by(late, _spec("os")) == 730.0
    assert math.isnan(cohort_statistic(late, _spec("os"), "median", None)[0])
    assert median_not_reached_by(patients, _spec("cmax")) is None  # not time-to-event


def test_mean_intervals_are_student_t(patients):
    """Validation reports the mean and geometric mean with the t interval of the cohort summaries."""
    x = patients.cmax.to_numpy()[:30]
    small = patients.iloc[:30]
    m, lo, hi, n = cohort_statistic(small, _spec("cmax"), "mean", None)
    ci = scipy.stats.t.interval(0.95, n - 1, loc=x.mean(), scale=scipy.stats.sem(x))
    assert (m, lo, hi) == pytest.approx((x.mean(), *ci), rel=1e-9)
    g, glo, ghi, _ = cohort_statistic(small, _spec("cmax"), "geometric_mean", None)
    lci = scipy.stats.t.interval(0.95, n - 1, loc=np.log(x).mean(), scale=scipy.stats.sem(np.log(x)))
    assert (glo, ghi) == pytest.approx(tuple(np.exp(lci)), rel=1e-9)


def test_km_needs_time_to_event_column(patients):
    with pytest.raises(ValueError, match="not a time-to-event"):
        cohort_statistic(patients, _spec("cr"), "km_estimate", 30.0)


def test_verdicts_and_plot():
    table = pd.DataFrame({
        "scenario": ["trial_one", "trial_one", "trial_two", "trial_two"],
        "target_id": ["a", "b", "c", "d"], "role": ["outcome", "outcome", "outcome", "input"],
        "statistic": ["proportion", "proportion", "median", "proportion"],
        "reported": [0.5, 0.5, 100.0, 0.3], "reported_lower": [0.4, 0.4, np.nan, 0.2],
        "reported_upper": [0.6, 0.6, np.nan, 0.4], "simulated": [0.45, 0.9, 120.0, 0.3],
        "mc_lower": [0.44, 0.89, 110.0, 0.29], "mc_upper": [0.46, 0.91, 130.0, 0.31],
        "inside": [True, False, None, True], "trial_lower": [0.3, 0.75, np.nan, 0.1],
        "trial_upper": [0.6, 1.0, np.nan, 0.5],
    })
    assert verdict_counts(table) == {"outcome_rows": 3, "inside": 1, "outside": 1, "no_interval": 1, "inputs": 1}
    fig = plot_validation(table)
    ax_fraction, ax_ratio = fig.axes[:2]
    labels = {t.get_text(): t.get_position()[1] for t in ax_fraction.get_yticklabels()}
    bottom, top = ax_fraction.get_ylim()
    assert bottom > top  # rows run downwards: the first target is on top
    # grouped by trial, a header above each group, rows in table order
    assert labels["trial one"] < labels["a"] < labels["b"] < labels["trial two"] < labels["c"] < labels["d (input)"]
    # fractions on a 0-1 axis, the median as a ratio on a log axis
    assert ax_ratio.get_xscale() == "log" and ax_fraction.get_xlim()[1] <= 1.05
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    for text in ("reported value", "reported 95% interval", "inside the reported interval",
                 "outside the reported interval", "no reported interval", "trial of the reported n"):
        assert any(text in entry for entry in legend), text
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_bad_targets_section(tmp_path):
    from carkinetics.scenario.load import load_scenario

    (tmp_path / "m.toml").write_text((DATA / "models" / "linear.toml").read_text())
    (tmp_path / "s.toml").write_text("""
[scenario]
model = "m.toml"
[times]
end = 10
step = 1
[targets.s2_cr]
endpoint = "cr"
statistc = "proportion"
[targets.s2_hsct]
endpoint = "x"
statistic = "propotion"
role = "maybe"
time = -3
""")
    with pytest.raises(ScenarioError) as err:
        load_scenario(tmp_path / "s.toml")
    msg = str(err.value)
    assert "targets.s2_cr.statistc" in msg and "did you mean 'statistic'" in msg
    assert "did you mean 'proportion'" in msg
    assert "targets.s2_hsct.role" in msg and "targets.s2_hsct.time" in msg


@pytest.mark.parametrize("p, n", [(0.5, 20), (0.965, 20), (0.1, 16), (0.37, 43)])
def test_trial_interval_is_the_binomial_95_percent_range_of_a_trial_of_the_reported_size(p, n):
    import math

    from carkinetics.studies.validate import trial_interval

    # independent: the smallest k with P(X <= k) >= 0.025 and with P(X <= k) >= 0.975, by summing the pmf
    cdf = np.cumsum([math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)])
    lo = int(np.argmax(cdf >= 0.025 - 1e-12))
    hi = int(np.argmax(cdf >= 0.975 - 1e-12))
    assert trial_interval("proportion", p, n) == pytest.approx((lo / n, hi / n))
    assert all(math.isnan(v) for v in trial_interval("median", p, n))
    assert all(math.isnan(v) for v in trial_interval("proportion", p, float("nan")))
