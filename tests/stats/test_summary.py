"""Cohort summaries (issue 3, part 3): intervals and Kaplan-Meier against scipy, the long table."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from carkinetics.scenario.load import scenario_from_dict
from carkinetics.stats.intervals import clopper_pearson_interval, mean_interval, wilson_interval
from carkinetics.stats.km import kaplan_meier
from carkinetics.stats.quantiles import quantile_interval
from carkinetics.stats.summary import summarise

from conftest import DATA

CASES = [(0, 10), (1, 10), (7, 20), (20, 20), (13, 57), (500, 1000), (3, 5000)]


@pytest.mark.parametrize("k, n", CASES)
def test_wilson_matches_scipy(k, n):
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-12) and hi == pytest.approx(ref.high, abs=1e-12)
    ref90 = stats.binomtest(k, n).proportion_ci(confidence_level=0.9, method="wilson")
    assert wilson_interval(k, n, 0.9) == pytest.approx((ref90.low, ref90.high), abs=1e-12)


@pytest.mark.parametrize("k, n", CASES)
def test_clopper_pearson_matches_scipy_exact(k, n):
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert clopper_pearson_interval(k, n) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_proportion_intervals_vectorise_and_handle_no_patients():
    k = np.array([k for k, _ in CASES])
    n = np.array([n for _, n in CASES])
    lo, hi = wilson_interval(k, n)
    for i, (ki, ni) in enumerate(CASES):
        assert (lo[i], hi[i]) == pytest.approx(wilson_interval(ki, ni), abs=1e-15)
    assert all(math.isnan(v) for v in wilson_interval(0, 0) + clopper_pearson_interval(0, 0))


@pytest.mark.parametrize("q", [0.05, 0.25, 0.5, 0.95])
@pytest.mark.parametrize("n", [15, 40, 1001])
def test_quantile_interval_matches_scipy_quantile_test(q, n):
    x = np.random.default_rng(n).lognormal(size=n)
    est, lo, hi = quantile_interval(x, q, 0.95)
    assert est == np.quantile(x, q)
    ci = stats.quantile_test(x, q=np.median(x), p=q).confidence_interval(0.95)
    np.testing.assert_equal([lo, hi], [ci.low, ci.high])  # NaN where too few patients
    assert not np.isnan(lo) or q < 0.5  # small samples lose the bound on their short side
    assert np.nan_to_num(lo, nan=-np.inf) <= est <= np.nan_to_num(hi, nan=np.inf)
    if n > 100:
        assert np.isfinite([lo, hi]).all()


def test_binomial_order_statistics_by_bisection_match_scipy():
    """The order statistics of the quantile intervals (bisection over the binomial CDF) are
    scipy.stats.binom.ppf / isf, for small samples and for the 10^5-10^6 of a large cohort."""
    from carkinetics.stats.quantiles import _binomial_crossing

    for n in [1, 2, 3, 7, 30, 59, 1000, 12345, 100_000, 1_000_000]:
        for q in (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99):
            lo = _binomial_crossing(n, q, True, 0.025 * (1 - 1e-12))
            hi = _binomial_crossing(n, q, False, 0.025 * (1 + 1e-12))
            assert lo == stats.binom.ppf(0.025, n, q), (n, q)
            assert hi == stats.binom.isf(0.025, n, q), (n, q)


def test_quantile_interval_coverage_is_at_least_the_level():
    # distribution-free: check coverage of the true median of an exponential law by simulation
    rng = np.random.default_rng(4)
    true = math.log(2)
    hits = 0
    for _ in range(400):
        _, lo, hi = quantile_interval(rng.exponential(size=30), 0.5, 0.9)
        hits += lo <= true <= hi
    assert hits / 400 > 0.86  # nominal >= 0.90; binomial SE 0.015


def test_mean_and_geometric_mean_intervals_match_scipy():
    x = np.random.default_rng(8).lognormal(1.0, 0.7, size=50)
    ref = stats.ttest_1samp(x, 0.0).confidence_interval(0.95)
    assert mean_interval(x) == pytest.approx((x.mean(), ref.low, ref.high), rel=1e-12)
    ref_log = stats.ttest_1samp(np.log(x), 0.0).confidence_interval(0.95)
    est, lo, hi = mean_interval(np.append(x, np.nan), geometric=True)
    assert est == pytest.approx(stats.gmean(x), rel=1e-12)
    assert (lo, hi) == pytest.approx((math.exp(ref_log.low), math.exp(ref_log.high)), rel=1e-12)
    assert all(math.isnan(v) for v in mean_interval(np.array([1.0, 0.0]), geometric=True))


def _censored_sample(seed, n=300):
    rng = np.random.default_rng(seed)
    t_event = np.round(rng.exponential(100, n), 0)  # rounding makes ties
    t_cens = np.round(rng.uniform(20, 250, n), 0)
    time = np.minimum(t_event, t_cens)
    return time, (t_event <= t_cens).astype(float)


@pytest.mark.parametrize("seed", [0, 1])
def test_kaplan_meier_matches_scipy_ecdf(seed):
    time, event = _censored_sample(seed)
    km = kaplan_meier(time, event)
    data = stats.CensoredData(uncensored=time[event == 1], right=time[event == 0])
    ref = stats.ecdf(data).sf
    np.testing.assert_array_equal(km.time, ref.quantiles)
    np.testing.assert_allclose(km.survival, ref.probabilities, rtol=1e-13)
    ci = ref.confidence_interval(0.95, method="log-log")
    inside = (km.survival < 1) & (km.survival > 0)
    np.testing.assert_allclose(km.lower[inside], ci.low.probabilities[inside], rtol=1e-10)
    np.testing.assert_allclose(km.upper[inside], ci.high.probabilities[inside], rtol=1e-10)
    # the step function between and beyond the observed times
    probe = np.array([-1.0, 0.5, 10.3, 77.7, 150.0])
    np.testing.assert_allclose(km.at(probe)[0], ref.evaluate(probe), rtol=1e-13)
    assert math.isnan(km.at(km.time[-1] + 1)[0]) or km.survival[-1] == 0


def test_kaplan_meier_small_example_by_hand():
    # times 1, 2+, 3, 3, 4+, 5 (+ censored): S = 5/6 at 1, 5/6 * 2/4 at 3, 0 at 5
    km = kaplan_meier([1, 2, 3, 3, 4, 5], [1, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(km.time, [1, 2, 3, 4, 5])
    np.testing.assert_allclose(km.survival, [5 / 6, 5 / 6, 5 / 12, 5 / 12, 0.0])
    np.testing.assert_array_equal(km.n_at_risk, [6, 5, 4, 2, 1])
    np.testing.assert_array_equal(km.n_events, [1, 0, 2, 0, 1])
    assert km.median()[0] == 3.0
    assert km.at(4.5)[0] == pytest.approx(5 / 12) and km.at(0.5) == (1.0, 1.0, 1.0)
    assert km.at(9.0)[0] == 0.0  # the curve reached 0: known beyond the last time
    # Greenwood by hand at t = 3: var(log S) = 1/(6*5) + 2/(4*2)
    var_log = 1 / 30 + 2 / 8
    se = math.sqrt(var_log) / abs(math.log(5 / 12))
    z = stats.norm.ppf(0.975)
    assert km.lower[2] == pytest.approx((5 / 12) ** math.exp(z * se), rel=1e-12)
    assert km.upper[2] == pytest.approx((5 / 12) ** math.exp(-z * se), rel=1e-12)


def test_kaplan_meier_median_of_exponential_times():
    rate = 0.01
    rng = np.random.default_rng(9)
    t = rng.exponential(1 / rate, 4000)
    event = (t <= 365).astype(float)
    km = kaplan_meier(np.minimum(t, 365), event)
    est, lo, hi = km.median()
    assert lo < math.log(2) / rate < hi
    assert lo < est < hi and hi - lo < 12
    # a median that is not reached has no estimate and no upper bound
    est, lo, hi = kaplan_meier(np.minimum(t, 30), (t <= 30).astype(float)).median()
    assert math.isnan(est) and math.isnan(hi)


@pytest.fixture(scope="module")
def endpoint_set():
    data = {"scenario": {"name": "summary", "model": "endpoints_model.toml"}, "times": {"end": 100, "step": 1},
            "endpoints": {"cmax": {"type": "cmax", "output": "cart_blood"},
                          "remission_d28": {"type": "condition", "expr": "blast_fraction < 0.05", "day": 28},
                          "death": {"type": "hazard", "hazard": 0.01, "report_at": [30, 100]}}}
    return scenario_from_dict(data, DATA / "scenarios" / "inline.toml").endpoints


def test_summarise_per_arm_against_the_reference_functions(endpoint_set):
    rng = np.random.default_rng(21)
    n = 600
    arm = np.where(np.arange(n) < 200, "low", "high")
    df = pd.DataFrame({
        "arm": arm,
        "cmax": rng.lognormal(3, 1, n),
        "remission_d28": (rng.uniform(size=n) < np.where(arm == "low", 0.4, 0.8)).astype(float),
        "death": np.minimum(rng.exponential(100, n), 100.0),
    })
    df["death_event"] = (df["death"] < 100).astype(float)
    df.loc[[3, 250], ["cmax", "remission_d28", "death", "death_event"]] = np.nan  # failed patients
    table = summarise(df, endpoint_set)
    assert list(table.columns) == ["group", "endpoint", "statistic", "value", "lower", "upper", "n"]
    assert set(table.group) == {"low", "high"}

    def row(group, endpoint, statistic):
        r = table[(table.group == group) & (table.endpoint == endpoint) & (table.statistic == statistic)]
        assert len(r) == 1
        return r.iloc[0]

    for group in ("low", "high"):
        sub = df[df.arm == group]
        ok = sub["remission_d28"].notna()
        k, m = int(sub.loc[ok, "remission_d28"].sum()), int(ok.sum())
        r = row(group, "remission_d28", "proportion")
        ref = stats.binomtest(k, m).proportion_ci(method="wilson")
        assert (r.value, r.lower, r.upper, r.n) == pytest.approx((k / m, ref.low, ref.high, m))
        assert row(group, "remission_d28", "missing").value == 1
        x = sub["cmax"].dropna().to_numpy()
        r = row(group, "cmax", "median")
        ci = stats.quantile_test(x, q=np.median(x), p=0.5).confidence_interval(0.95)
        assert (r.value, r.lower, r.upper, r.n) == pytest.approx((np.median(x), ci.low, ci.high, x.size))
        assert row(group, "cmax", "geomean").value == pytest.approx(stats.gmean(x))
        assert row(group, "cmax", "q95").value == pytest.approx(np.quantile(x, 0.95))
        d = sub.dropna(subset=["death"])
        ecdf = stats.ecdf(stats.CensoredData(uncensored=d.death[d.death_event == 1].to_numpy(),
                                             right=d.death[d.death_event == 0].to_numpy())).sf
        for day in (30, 100):
            assert row(group, "death", f"km_at_{day}").value == pytest.approx(ecdf.evaluate(day))
        assert row(group, "death", "events").value == d.death_event.sum()
        assert not any(table.endpoint == "death_event")
    # the proportions differ between arms as drawn (0.4 vs 0.8)
    assert row("low", "remission_d28", "proportion").upper < row("high", "remission_d28", "proportion").lower


def test_summarise_without_groups_and_with_clopper_pearson(endpoint_set):
    df = pd.DataFrame({"cmax": [1.0, 2.0, 4.0], "remission_d28": [1.0, 0.0, 1.0],
                       "death": [10.0, 100.0, 50.0], "death_event": [1.0, 0.0, 1.0]})
    table = summarise(df, endpoint_set, by=None, interval="clopper-pearson")
    assert set(table.group) == {"all"}
    r = table[(table.endpoint == "remission_d28") & (table.statistic == "proportion")].iloc[0]
    ref = stats.binomtest(2, 3).proportion_ci(method="exact")
    assert (r.lower, r.upper) == pytest.approx((ref.low, ref.high))
    with pytest.raises(ValueError, match="interval"):
        summarise(df, endpoint_set, interval="agresti")


def _competing_table():
    # arm "a": the ten patients of tests/stats/test_competing.py (causes 1 relapse, 2 toxicity),
    # plus one with a time but no cause code; arm "b": toxicity at day 3, censored at day 6
    time = [1, 2, 2, 3, 4, 4, 5, 6, 7, 8, 9, 3, 6]
    cause = [1, 2, 1, 0, 1, 0, 2, 0, 1, 0, np.nan, 2, 0]
    df = pd.DataFrame({"arm": ["a"] * 11 + ["b"] * 2, "os": np.array(time, dtype=float),
                       "os_cause": np.array(cause, dtype=float)})
    df["os_event"] = (df["os_cause"].fillna(1) > 0).astype(float)
    df["cmax"] = np.arange(13, dtype=float) + 1
    return df


def _stub_endpoints(causes):
    from types import SimpleNamespace

    kinds = {"cmax": "continuous", "os": "time", "os_event": "event_flag", "os_cause": "cause"}
    stub = SimpleNamespace(kinds=kinds, report_at={"os": (2.0, 5.5)})
    if causes is not None:
        stub.causes = causes
    return stub


def test_summarise_competing_causes_by_hand():
    from carkinetics.stats.competing import aalen_johansen

    df = _competing_table()
    table = summarise(df, _stub_endpoints({"os": ("relapse", "toxicity")}))

    def row(group, statistic):
        r = table[(table.group == group) & (table.endpoint == "os") & (table.statistic == statistic)]
        assert len(r) == 1, statistic
        return r.iloc[0]

    # the hand-worked values of tests/stats/test_competing.py (the patient without a cause is left out)
    expected = {"cif_relapse_at_2": 1 / 5, "cif_relapse_at_5.5": 19 / 60,
                "cif_toxicity_at_2": 1 / 10, "cif_toxicity_at_5.5": 59 / 240}
    ref = aalen_johansen(df.os[:10], df.os_cause[:10])
    for stat, value in expected.items():
        r = row("a", stat)
        code = 1 if "relapse" in stat else 2
        day = float(stat.rsplit("_", 1)[1])
        assert r.value == pytest.approx(value, rel=1e-13) and r.n == 10
        assert (r.lower, r.upper) == pytest.approx(ref.at(day, code)[1:], rel=1e-13)
        assert 0 < r.lower < r.value < r.upper < 1
    assert (row("a", "events_relapse").value, row("a", "events_toxicity").value) == (4, 2)
    assert row("a", "events_relapse").n == 10
    assert row("a", "events").n == 11  # the Kaplan-Meier rows keep the patient without a cause
    # arm b: toxicity at day 3 of 2 patients; no relapse (an incidence of 0 with a band of 0)
    assert row("b", "cif_toxicity_at_5.5").value == pytest.approx(0.5)
    assert (row("b", "cif_relapse_at_5.5").value, row("b", "cif_relapse_at_5.5").lower,
            row("b", "cif_relapse_at_5.5").upper) == (0.0, 0.0, 0.0)
    assert row("b", "events_relapse").value == 0 and row("b", "events_toxicity").value == 1
    assert not any(table.endpoint == "os_cause")
    # the rows of the cause come after the Kaplan-Meier rows, before "missing"
    stats_a = table[(table.group == "a") & (table.endpoint == "os")].statistic.tolist()
    assert stats_a == ["km_median", "km_at_2", "km_at_5.5", "events", "cif_relapse_at_2", "cif_relapse_at_5.5",
                       "cif_toxicity_at_2", "cif_toxicity_at_5.5", "events_relapse", "events_toxicity", "missing"]


def test_summarise_without_causes_is_unchanged():
    df = _competing_table()
    plain = summarise(df, _stub_endpoints(None))
    with_causes = summarise(df, _stub_endpoints({"os": ("relapse", "toxicity")}))
    extra = with_causes.statistic.str.startswith(("cif_", "events_"))
    assert extra.sum() == 2 * (4 + 2)
    pd.testing.assert_frame_equal(plain, with_causes[~extra].reset_index(drop=True))
    assert not plain.statistic.str.startswith("cif_").any()
    pd.testing.assert_frame_equal(plain, summarise(df, _stub_endpoints({})))


def test_summarise_rejects_bad_cause_codes():
    df = _competing_table()
    df.loc[0, "os_cause"] = 3.0
    with pytest.raises(ValueError, match=r"os_cause.*1 to 2 \(relapse, toxicity\), got 3"):
        summarise(df, _stub_endpoints({"os": ("relapse", "toxicity")}))
    with pytest.raises(ValueError, match="'cmax', which is not a time-to-event endpoint"):
        summarise(_competing_table(), _stub_endpoints({"cmax": ("relapse",)}))
