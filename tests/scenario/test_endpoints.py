"""Endpoints (issue 3, part 2): NCA metrics, thresholds, hazard events, outcome rules, scenario sections.

References are hand-computed values (PKNCA's own test cases for the AUC with
below-limit handling), closed forms (exponential decay, linear and exponential
hazards) and scipy.
"""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import brentq

import carkinetics.stats.nca as nca
from carkinetics import ScenarioError
from carkinetics.scenario.load import load_scenario, scenario_from_dict
from carkinetics.scenario.schema import SECTIONS_BY_NAME
from carkinetics.stats.summary import kaplan_meier

from conftest import DATA

SCEN = DATA / "scenarios"
LN2 = math.log(2.0)


# ----------------------------------------------------------------------------------------
# non-compartmental metrics
# ----------------------------------------------------------------------------------------

# PKNCA test case (tests/testthat/test-auc.R): conc 0,2,0,1,2,1,0,0 at days 0..7.
PK_TIMES = np.arange(8.0)
PK_CONC = np.array([0, 2, 0, 1, 2, 1, 0, 0], dtype=float)


def test_auc_all_points_linear_and_lin_up_log_down():
    # segments: 0->2 up, 2->0 (zero: linear), 0->1 up, 1->2 up, 2->1 down (log), 1->0 (zero), 0->0
    assert nca.auc(PK_TIMES, PK_CONC, method="linear") == pytest.approx(1 + 1 + 0.5 + 1.5 + 1.5 + 0.5, rel=1e-14)
    assert nca.auc(PK_TIMES, PK_CONC) == pytest.approx(1 + 1 + 0.5 + 1.5 + 1 / LN2 + 0.5, rel=1e-14)


def test_auc_below_lloq_first_keep_middle_drop_last_keep():
    # the BLQ zero at day 2 is dropped (2 -> 1 over two days), trailing zeros kept (PKNCA AUCall)
    lin = nca.auc(PK_TIMES, PK_CONC, method="linear", lloq=0.5)
    log = nca.auc(PK_TIMES, PK_CONC, lloq=0.5)
    assert lin == pytest.approx(1 + 3 + 1.5 + 1.5 + 0.5, rel=1e-14)
    assert log == pytest.approx(1 + 2 / LN2 + 1.5 + 1 / LN2 + 0.5, rel=1e-14)


def test_auc_interval_end_interpolated_between_output_times():
    # PKNCA: conc 0,2,0,1,2,1,0 at days 0..5,7, interval [0, 6]: the value at day 6 is 0.5
    # (linear towards the zero), then the 1 -> 0.5 segment is log-down
    times = np.array([0, 1, 2, 3, 4, 5, 7], dtype=float)
    conc = np.array([0, 2, 0, 1, 2, 1, 0], dtype=float)
    assert nca.auc(times, conc, 0, 6, lloq=0.5) == pytest.approx(1 + 2 / LN2 + 1.5 + 1 / LN2 + 0.5 / LN2, rel=1e-14)
    assert nca.auc(times, conc, 0, 6, method="linear", lloq=0.5) == pytest.approx(1 + 3 + 1.5 + 1.5 + 0.75)


def test_log_down_auc_is_exact_for_exponential_decay_on_a_coarse_grid():
    times = np.array([0.0, 2.0, 5.0, 9.0])
    k, c0 = 0.3, 10.0
    conc = c0 * np.exp(-k * times)
    exact = c0 / k * (1 - math.exp(-k * 9))
    assert nca.auc(times, conc) == pytest.approx(exact, rel=1e-13)
    # window ends between output times are interpolated log-linearly on falling segments
    assert nca.auc(times, conc, 1.0, 7.0) == pytest.approx(c0 / k * (math.exp(-k) - math.exp(-7 * k)), rel=1e-13)
    # the linear trapezoid overestimates a convex decay
    assert nca.auc(times, conc, method="linear") > exact * 1.05


def test_auc_per_row_rules_and_failed_rows():
    """Rows at once: the "log" rule is exact for growth too, equal ends are trapezoids, a zero
    end is linear, and a row with a NaN gives NaN."""
    times = np.array([0.0, 1.0, 3.0, 4.0])
    grow = 2.0 * np.exp(0.5 * times)
    rows = np.array([grow, [1.0, 1.0, 1.0, 1.0], [0.0, 2.0, 2.0, 0.0], [1.0, np.nan, 1.0, 1.0]])
    exact_growth = 2.0 / 0.5 * (math.exp(0.5 * 4.0) - 1.0)
    log = nca.auc(times, rows, method="log")
    assert log[0] == pytest.approx(exact_growth, rel=1e-13)
    assert log[1] == 4.0 and log[2] == 1.0 + 4.0 + 1.0 and np.isnan(log[3])
    updown = nca.auc(times, rows)  # lin-up/log-down: growth by trapezoids (above the exact area)
    trapezoids = float(np.sum(np.diff(times) * (grow[1:] + grow[:-1]) / 2))
    assert updown[0] == pytest.approx(trapezoids, rel=1e-14) and updown[0] > exact_growth
    assert np.array_equal(updown[1:3], log[1:3]) and np.isnan(updown[3])


def test_cmax_tmax_first_maximum_window_and_lloq():
    times = np.arange(6.0)
    v = np.array([[1.0, 3.0, 2.0, 3.0, 0.5, 4.0],
                  [0.1, 0.2, 0.1, 0.0, 0.0, 0.0],
                  [1.0, np.nan, 2.0, 3.0, 0.5, 4.0]])
    peak, tpeak = nca.cmax(times, v, end=4)
    np.testing.assert_array_equal(peak[:2], [3.0, 0.2])
    np.testing.assert_array_equal(tpeak[:2], [1.0, 1.0])  # first of the tied maxima
    assert np.isnan(peak[2]) and np.isnan(tpeak[2])  # a failed patient
    peak, tpeak = nca.cmax(times, v[:2], lloq=0.5)
    np.testing.assert_array_equal(peak, [4.0, 0.0])  # nothing quantifiable: Cmax 0, Tmax NaN
    assert tpeak[0] == 5.0 and np.isnan(tpeak[1])
    low, tlow = nca.cmin(times, v[:2], start=1, end=3)
    np.testing.assert_array_equal(low, [2.0, 0.0])
    np.testing.assert_array_equal(tlow, [2.0, 3.0])


def test_tlast_is_the_last_quantifiable_time():
    times = np.arange(6.0)
    v = np.array([0.0, 0.5, 2.0, 1.0, 0.2, 0.05])
    assert nca.tlast(times, v, lloq=0.2) == 4.0  # a value equal to the LLOQ is quantifiable
    assert nca.tlast(times, v, lloq=0.3) == 3.0
    assert nca.tlast(times, v) == 5.0  # without an LLOQ: last value > 0
    assert nca.tlast(times, v, lloq=0.2, end=3.5) == 3.0
    assert np.isnan(nca.tlast(times, v, lloq=5.0))


def test_level_interpolation_and_lloq():
    times = np.array([0.0, 10.0, 20.0])
    v = 100 * np.exp(-0.1 * times)
    assert nca.interpolate(times, v, 10.0) == 100 * math.exp(-1.0)
    assert nca.interpolate(times, v, 13.0) == pytest.approx(100 * math.exp(-1.3), rel=1e-13)  # log-down
    assert nca.interpolate(times, v, 13.0, "linear") == pytest.approx(0.7 * v[1] + 0.3 * v[2], rel=1e-14)
    rising = np.array([0.0, 10.0, 40.0])
    assert nca.interpolate(times, rising, 15.0) == pytest.approx(25.0)  # lin-up


# ----------------------------------------------------------------------------------------
# thresholds
# ----------------------------------------------------------------------------------------


def test_first_below_and_above_match_closed_forms():
    times = np.arange(0.0, 61.0, 3.0)  # coarse grid: interpolation must do the work
    decay = 100 * np.exp(-0.2 * times)
    t, e = nca.first_crossing(times, decay, 10.0, "below")
    assert t == pytest.approx(math.log(10) / 0.2, rel=1e-12) and e == 1.0
    rise = 2.0 * times
    t, e = nca.first_crossing(times, rise, 5.0, "above")
    assert t == pytest.approx(2.5, rel=1e-12) and e == 1.0
    # never crosses by `end`: censored at `end`
    t, e = nca.first_crossing(times, decay, 1e-9, "below", end=40)
    assert t == 40.0 and e == 0.0
    # already below at `after`: the time is `after`
    t, e = nca.first_crossing(times, decay, 10.0, "below", after=20.0)
    assert t == 20.0 and e == 1.0


def test_first_crossing_after_a_per_patient_time_with_a_rebound():
    # blasts fall below 5% then regrow: remission, then relapse after remission
    times = np.arange(0.0, 201.0, 2.0)
    rates = np.array([[0.3], [0.2]])
    blasts = 0.5 * np.exp(-rates * times) + 1e-4 * np.exp(0.05 * times)
    remission, _ = nca.first_crossing(times, blasts, 0.05, "below", method="log")
    relapse, event = nca.first_crossing(times, blasts, 0.05, "above", after=remission, method="log")
    # reference: root of the continuous curve (log-linear interpolation is close on a 2-day grid)
    for i, rate in enumerate(rates[:, 0]):
        def f(t):
            return 0.5 * math.exp(-rate * t) + 1e-4 * math.exp(0.05 * t) - 0.05
        assert remission[i] == pytest.approx(brentq(f, 0, 60), abs=0.05)
        assert relapse[i] == pytest.approx(brentq(f, 60, 200), abs=0.05)
        assert event[i] == 1.0
    # a NaN reference time (no remission) gives NaN, not a relapse at day 0
    t, e = nca.first_crossing(times, blasts, 0.05, "above", after=np.array([np.nan, 10.0]))
    assert np.isnan(t[0]) and np.isnan(e[0]) and e[1] == 1.0


def test_time_below_and_above():
    times = np.arange(0.0, 31.0, 2.0)
    decay = 100 * np.exp(-0.2 * times)
    assert nca.time_beyond(times, decay, 10.0, "below") == pytest.approx(30 - math.log(10) / 0.2, rel=1e-12)
    assert nca.time_beyond(times, decay, 10.0, "above", start=1, end=9) == pytest.approx(8.0)
    tent = np.interp(np.arange(0.0, 21.0), [0, 10, 20], [0, 10, 0])
    assert nca.time_beyond(np.arange(0.0, 21.0), tent, 4.0, "above", method="linear") == pytest.approx(12.0)
    assert nca.time_beyond(np.arange(0.0, 21.0), tent, 4.0, "below", method="linear") == pytest.approx(8.0)


# ----------------------------------------------------------------------------------------
# hazard events
# ----------------------------------------------------------------------------------------


def test_constant_hazard_gives_exact_exponential_times():
    times = np.arange(0.0, 366.0)
    rate = 0.01
    u = np.random.default_rng(3).uniform(size=6000)
    t, e = nca.hazard_event_times(times, np.full((u.size, times.size), rate), u)
    expected = -np.log(u) / rate
    event = expected <= 365
    np.testing.assert_array_equal(e, event.astype(float))
    np.testing.assert_allclose(t[event], expected[event], rtol=1e-12)
    assert np.all(t[~event] == 365.0)
    # with a risk window starting at day 100
    t, e = nca.hazard_event_times(times, np.full((u.size, times.size), rate), u, start=100.0)
    late = expected + 100 <= 365
    np.testing.assert_allclose(t[late], expected[late] + 100, rtol=1e-12)
    # Kaplan-Meier of the exponential times follows exp(-rate t) within its band
    t, e = nca.hazard_event_times(times, np.full((u.size, times.size), rate), u)
    km = kaplan_meier(t, e)
    for day in (30, 90, 180, 365):
        s, lo, hi = km.at(day)
        assert lo < math.exp(-rate * day) < hi
        assert abs(s - math.exp(-rate * day)) < 0.02


def test_linear_hazard_is_integrated_exactly():
    # h(t) = a + b t: H(t) = a t + b t^2 / 2, inverted in closed form; grid step 10 days
    times = np.arange(0.0, 201.0, 10.0)
    a, b = 0.002, 1e-4
    u = np.random.default_rng(5).uniform(size=5000)
    t, e = nca.hazard_event_times(times, np.broadcast_to(a + b * times, (u.size, times.size)), u)
    target = -np.log(u)
    expected = (-a + np.sqrt(a * a + 2 * b * target)) / b
    event = expected <= 200
    np.testing.assert_allclose(t[event], expected[event], rtol=1e-11)
    assert np.all(e[event] == 1) and np.all(e[~event] == 0)
    # and a decreasing hazard (negative slope), h = 0.05 - 2e-4 t > 0 on [0, 200]
    h = 0.05 - 2e-4 * times
    t, e = nca.hazard_event_times(times, np.broadcast_to(h, (u.size, times.size)), u)
    disc = 0.05 ** 2 - 4e-4 * target  # H(t) = 0.05 t - 1e-4 t^2 reaches target only if >= 0
    expected = (0.05 - np.sqrt(np.maximum(disc, 0.0))) / 2e-4
    ok = (disc >= 0) & (expected <= 200)
    assert ok.sum() > 1000
    np.testing.assert_allclose(t[ok], expected[ok], rtol=1e-10)


def test_hazard_from_a_start_inside_an_interval_to_a_censoring_time_per_patient():
    # h(t) = a + b t from a start s between grid times: H(t) - H(s) = target inverted in closed
    # form; each patient censored at its own end; a negative hazard counts as 0 (no event, the
    # end is the time) and a NaN hazard, start or uniform gives NaN
    times = np.arange(0.0, 301.0, 10.0)
    a, b = 0.002, 1e-4
    rng = np.random.default_rng(11)
    n = 4000
    u, s, end = rng.uniform(size=n), rng.uniform(0.0, 100.0, n), rng.uniform(50.0, 400.0, n)
    h = np.repeat((a + b * times)[None, :], n, axis=0)
    h[:100] = -1.0
    h[100, 7] = np.nan
    s[101], u[102] = np.nan, np.nan
    t, e = nca.hazard_event_times(times, h, u, start=s, end=end)
    target = -np.log(u) + a * s + b * s * s / 2.0
    expected = (-a + np.sqrt(a * a + 2 * b * target)) / b
    event = expected <= np.minimum(end, 300.0)
    rows = np.arange(n) > 102
    np.testing.assert_allclose(t[rows & event], expected[rows & event], rtol=1e-10)
    np.testing.assert_array_equal(t[rows & ~event], np.minimum(end, 300.0)[rows & ~event])
    np.testing.assert_array_equal(e[rows], event[rows].astype(float))
    assert np.all(e[:100] == 0) and np.array_equal(t[:100], np.minimum(end[:100], 300.0))
    assert np.isnan(t[100:103]).all() and np.isnan(e[100:103]).all()
    assert 1000 < event[rows].sum() < n - 1000


def test_hazard_driven_by_time_below_a_threshold():
    # T cells below 50/uL for the first 20 days: hazard 0.02/day then, 0 after; on a 1-day
    # grid the trapezoid adds half a day of risk at the step (documented resolution)
    times = np.arange(0.0, 101.0)
    cd3 = np.where(times <= 20, 10.0, 1000.0)
    u = np.array([0.9, 0.7, 0.5, 0.1])
    h = np.broadcast_to(0.02 * (cd3 < 50), (u.size, times.size))
    t, e = nca.hazard_event_times(times, h, u)
    target = -np.log(u)
    # events while the risk lasts (cumulative 0.02 * 20 = 0.4 by day 20)
    early = target < 0.4
    np.testing.assert_allclose(t[early], target[early] / 0.02, rtol=1e-12)
    assert np.all(e[early] == 1)
    # cumulative hazard ends at 0.41: u = 0.5 (target 0.69) and 0.1 never have the event
    assert np.all(e[target > 0.41] == 0) and np.all(t[target > 0.41] == 100.0)


# ----------------------------------------------------------------------------------------
# scenario sections
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good():
    return load_scenario(SCEN / "endpoints_good.toml")


def _toy_outputs(times, n, rng):
    """Closed-form trajectories for the toy model's outputs, one shape per patient."""
    rate = rng.uniform(0.05, 0.4, n)[:, None]  # below ~0.08/day: no remission by day 28
    regrowth = rng.uniform(0.005, 0.04, n)[:, None]  # below ~0.017/day: no relapse in a year
    cart = 100 * np.exp(-0.05 * times) * (1 - np.exp(-times))
    blasts = 0.5 * np.exp(-rate * times) + 1e-4 * np.exp(regrowth * times)
    return {"cart_blood": np.broadcast_to(cart, (n, times.size)).copy(),
            "blast_fraction": np.minimum(blasts, 0.9),
            "antigen_neg_fraction": np.broadcast_to(rng.uniform(size=(n, 1)), (n, times.size)).copy(),
            "cd3": np.broadcast_to(np.where(times < 30, 10.0, 500.0), (n, times.size)).copy()}


def test_scenario_sections_parse_into_one_endpoint_set(good):
    es = good.endpoints
    assert SECTIONS_BY_NAME["outcomes"].attribute == SECTIONS_BY_NAME["endpoints"].attribute == "endpoints"
    assert es.columns[:7] == ("cmax", "tmax", "auc28", "tlast", "persist_d90", "remission", "remission_event")
    assert es.columns[-3:] == ("event_free_survival", "event_free_survival_event", "event_free_survival_cause")
    assert es.kinds["remission_d28"] == "binary" and es.kinds["relapse"] == "time"
    assert es.kinds["relapse_event"] == "event_flag" and es.kinds["auc28"] == "continuous"
    assert set(es.outputs_needed) == {"cart_blood", "blast_fraction", "antigen_neg_fraction", "cd3"}
    assert es.n_uniforms == 2 and es.uniform_columns == {"infection_death": 0, "leukaemia_death": 1}
    assert es.report_at["remission"] == (28.0, 90.0) and es.report_at["relapse"] == (365.0,)
    names = [e.name for e in es.endpoints]  # evaluation order respects references
    assert names.index("remission") < names.index("relapse") < names.index("antigen_negative_relapse")
    assert names.index("overall_survival") < names.index("event_free_survival")


def test_compute_from_a_scenario_matches_the_array_functions(good):
    es = good.endpoints
    times = good.times
    n = 300
    rng = np.random.default_rng(11)
    outs = _toy_outputs(times, n, rng)
    outs["cd3"][7] = np.nan  # a failed patient
    uniforms = rng.uniform(size=(n, es.n_uniforms))
    res = es.compute(times, outs, uniforms, good.horizon)
    assert list(res) == list(es.columns) and all(v.shape == (n,) for v in res.values())

    assert res["cmax"] == pytest.approx(nca.cmax(times, outs["cart_blood"])[0])
    np.testing.assert_allclose(res["auc28"], nca.auc(times, outs["cart_blood"], 0, 28))
    rem, rem_ev = nca.first_crossing(times, outs["blast_fraction"], 0.05, "below")
    np.testing.assert_array_equal(res["remission"], rem)
    d28 = nca.interpolate(times, outs["blast_fraction"], 28.0) < 0.05
    np.testing.assert_array_equal(res["remission_d28"], d28.astype(float))
    # relapse only among those in remission at day 28, searched after the remission time
    rel, rel_ev = nca.first_crossing(times, outs["blast_fraction"], 0.05, "above", after=rem)
    np.testing.assert_array_equal(res["relapse"], np.where(d28, rel, np.nan))
    # antigen-negative relapse is read at each patient's relapse time, NaN without relapse
    at = np.where(d28 & (rel_ev == 1), rel, np.nan)
    neg = nca.interpolate(times, outs["antigen_neg_fraction"], at) > 0.5
    np.testing.assert_array_equal(res["antigen_negative_relapse"], np.where(np.isnan(at), np.nan, neg))
    # T-cell aplasia: below 50/uL for the first 30 days (step between days 29 and 30)
    ok = np.arange(n) != 7
    assert np.all(res["aplasia_days"][ok] > 29) and np.all(res["aplasia_days"][ok] < 30)
    assert np.isnan(res["aplasia_days"][7]) and np.isnan(res["infection_death"][7])
    assert not np.isnan(res["cmax"][7])  # endpoints on other outputs are unaffected
    # infection death: the hazard's own uniforms column
    h = 0.002 * (outs["cd3"] < 50)
    t_inf, e_inf = nca.hazard_event_times(times, h, uniforms[:, 0])
    np.testing.assert_array_equal(res["infection_death"][ok], t_inf[ok])
    np.testing.assert_array_equal(res["infection_death_event"][ok], e_inf[ok])
    # leukaemia death starts at relapse: NaN where no relapse happened
    np.testing.assert_array_equal(np.isnan(res["leukaemia_death"]), ~(d28 & (rel_ev == 1)))
    assert 0 < np.isnan(res["leukaemia_death"]).sum() < n
    assert np.all(res["leukaemia_death"][~np.isnan(res["leukaemia_death"])]
                  >= res["relapse"][~np.isnan(res["leukaemia_death"])])


def test_a_failed_row_gives_nan_for_every_endpoint_even_outside_its_window():
    # the shipped Stein cohort scenario: Cmax (whole grid) first, then Tmax, AUC 0-28 and the day-365
    # level; a NaN at day 700 (a failed integration) must blank all four, not only the peak
    from conftest import SCENARIOS

    sc = load_scenario(SCENARIOS / "multiphasic_cohort.toml")
    eps = sc.endpoints
    times = sc.times
    rows = np.vstack([1e4 * np.exp(-0.01 * times)] * 3)
    rows[1, 700] = np.nan
    got = eps.compute(times, {"transgene": rows}, np.zeros((3, 0)), sc.horizon)
    for col in ("cmax", "tmax", "auc_0_28", "level_d365"):
        assert np.isnan(got[col][1]) and not np.isnan(got[col][[0, 2]]).any(), col
    assert got["cmax"][0] == 1e4 and got["tmax"][0] == 0.0


def test_outcome_is_the_first_event_and_censoring_is_respected(good):
    es = good.endpoints
    times = good.times
    n = 300
    rng = np.random.default_rng(12)
    res = es.compute(times, _toy_outputs(times, n, rng), rng.uniform(size=(n, 2)), good.horizon)
    inf_t, inf_e = res["infection_death"], res["infection_death_event"]
    leu_t, leu_e = res["leukaemia_death"], res["leukaemia_death_event"]
    # hand rule: earliest event among components that apply; NaN components are ignored
    ev_times = np.where(inf_e == 1, inf_t, np.inf)
    ev_times = np.where(leu_e == 1, np.minimum(ev_times, leu_t), ev_times)
    os_event = np.isfinite(ev_times)
    np.testing.assert_array_equal(res["overall_survival_event"], os_event.astype(float))
    np.testing.assert_array_equal(res["overall_survival"], np.where(os_event, ev_times, 365.0))
    # event-free: no remission at day 28 is an event at day 28
    nr = res["no_remission_d28"] == 1
    assert 0 < nr.sum() < n
    np.testing.assert_array_equal(res["event_free_survival"][nr], 28.0)
    assert np.all(res["event_free_survival_event"][nr] == 1)
    # responders: the earlier of relapse and death (relapse censoring at the horizon)
    r = ~nr
    first = np.minimum(np.where(res["relapse_event"][r] == 1, res["relapse"][r], np.inf),
                       np.where(res["overall_survival_event"][r] == 1, res["overall_survival"][r], np.inf))
    np.testing.assert_array_equal(res["event_free_survival"][r], np.where(np.isfinite(first), first, 365.0))
    np.testing.assert_array_equal(res["event_free_survival_event"][r], np.isfinite(first).astype(float))
    assert 0 < np.isfinite(first).sum() < r.sum()


def test_outcome_censored_by_a_component_window():
    data = _base()
    data["endpoints"] = {
        "a": {"type": "first_below", "output": "cd3", "threshold": 50, "interpolation": "linear"},
        "b": {"type": "first_below", "output": "cd3", "threshold": 10, "end": 30, "interpolation": "linear"},
        "c": {"type": "first_below", "output": "cd3", "threshold": 80, "interpolation": "linear"},
    }
    data["outcomes"] = {"ab": {"events": ["a", "b"]}, "ac": {"events": ["a", "c"]}}
    es = scenario_from_dict(data, SCEN / "inline.toml").endpoints
    times = np.arange(0.0, 101.0)
    cd3 = (100.0 - times)[None, :]
    outs = {"cd3": cd3}
    res = es.compute(times, outs, np.zeros((1, 0)), 100.0)
    assert (res["a"][0], res["a_event"][0]) == (50.0, 1.0)
    assert (res["b"][0], res["b_event"][0]) == (30.0, 0.0)
    # a happens at 50, but b was only followed to day 30: censored at 30
    assert (res["ab"][0], res["ab_event"][0]) == (30.0, 0.0)
    assert (res["ac"][0], res["ac_event"][0]) == (20.0, 1.0)


def test_two_constant_hazards_combine_into_an_exponential_with_the_summed_rate():
    data = _base()
    data["endpoints"] = {"d1": {"type": "hazard", "hazard": 0.004},
                         "d2": {"type": "hazard", "hazard": "0.001 * cd3"}}
    data["outcomes"] = {"os": {"combine": "first", "events": ["d1", "d2"]}}
    es = scenario_from_dict(data, SCEN / "inline.toml").endpoints
    times = np.arange(0.0, 366.0)
    n = 20000
    rng = np.random.default_rng(2)
    res = es.compute(times, {"cd3": np.full((n, times.size), 6.0)}, rng.uniform(size=(n, 2)), 365.0)
    rate = 0.004 + 0.006
    km = kaplan_meier(res["os"], res["os_event"])
    for day in (50, 100, 200, 365):
        s, lo, hi = km.at(day)
        assert lo < math.exp(-rate * day) < hi
    # the minimum of exponentials is exponential: KS test against the truncated law
    t = res["os"][res["os_event"] == 1]
    cdf = lambda x: (1 - np.exp(-rate * x)) / (1 - math.exp(-rate * 365))  # noqa: E731
    assert stats.kstest(t, cdf).pvalue > 1e-3


def test_ordered_dependencies_declared_out_of_order_and_among():
    data = _base()
    data["endpoints"] = {
        "late_value": {"type": "value", "expr": "cd3 * 2", "at": "drop"},
        "drop": {"type": "first_below", "output": "cd3", "threshold": 50, "interpolation": "linear",
                 "among": "flag == 1"},
        "flag": {"type": "condition", "expr": "cd3 > 90", "day": 5},
    }
    es = scenario_from_dict(data, SCEN / "inline.toml").endpoints
    assert [e.name for e in es.endpoints] == ["flag", "drop", "late_value"]
    assert es.columns == ("late_value", "drop", "drop_event", "flag")
    times = np.arange(0.0, 101.0)
    cd3 = np.stack([100.0 - times, 94.0 - times])  # flag: 95 > 90 yes; 89 > 90 no
    res = es.compute(times, {"cd3": cd3}, np.zeros((2, 0)), 100.0)
    np.testing.assert_array_equal(res["flag"], [1.0, 0.0])
    assert res["drop"][0] == 50.0 and np.isnan(res["drop"][1])
    assert res["late_value"][0] == pytest.approx(100.0) and np.isnan(res["late_value"][1])


def test_bernoulli_and_timeless_values_from_other_endpoints():
    # e.g. severe CRS drawn with a probability that rises with the CAR-T peak
    data = _base()
    data["endpoints"] = {
        "peak": {"type": "cmax", "output": "cart_blood"},
        "severe_crs": {"type": "bernoulli", "probability": "min(1, peak / 200)"},
        "crs_grade": {"type": "value", "expr": "where(peak > 100, 3, where(peak > 20, 2, 1))"},
        "early_infection": {"type": "bernoulli", "probability": 0.25, "day": 30},
        "death": {"type": "hazard", "hazard": 0.001},
    }
    data["outcomes"] = {"efs": {"events": ["early_infection", "death"]}}
    es = scenario_from_dict(data, SCEN / "inline.toml").endpoints
    assert es.n_uniforms == 3 and es.uniform_columns == {"severe_crs": 0, "early_infection": 1, "death": 2}
    assert es.kinds["severe_crs"] == "binary" and es.kinds["crs_grade"] == "continuous"
    times = np.arange(0.0, 366.0)
    n = 4000
    rng = np.random.default_rng(7)
    peak = rng.uniform(0, 300, n)
    cart = peak[:, None] * np.exp(-0.01 * times)
    u = rng.uniform(size=(n, 3))
    res = es.compute(times, {"cart_blood": cart}, u, 365.0)
    np.testing.assert_array_equal(res["severe_crs"], (u[:, 0] < np.minimum(1, peak / 200)).astype(float))
    np.testing.assert_array_equal(res["crs_grade"], np.select([peak > 100, peak > 20], [3.0, 2.0], 1.0))
    np.testing.assert_array_equal(res["early_infection"], (u[:, 1] < 0.25).astype(float))
    # a yes/no event with a day is an outcome event at that day
    inf = res["early_infection"] == 1
    np.testing.assert_array_equal(res["efs"][inf], np.minimum(30.0, res["death"][inf]))
    bad = _base()
    bad["endpoints"] = {"crs": {"type": "bernoulli", "probability": 0.1}, "d": {"type": "hazard", "hazard": 0.01}}
    bad["outcomes"] = {"efs": {"events": ["crs", "d"]}}
    with pytest.raises(ScenarioError, match="outcomes.efs.events: 'crs' is a binary endpoint of type 'bernoulli'"):
        scenario_from_dict(bad, SCEN / "inline.toml")


def _base():
    return {"scenario": {"name": "inline", "model": "endpoints_model.toml"}, "times": {"end": 365, "step": 1}}


def test_bad_sections_report_every_problem():
    path = SCEN / "endpoints_bad.toml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    text = str(info.value)
    assert text.startswith(str(path))
    expected = [
        "endpoints.peak.type: 'cmaxx' is not an endpoint type (did you mean 'cmax'?)",
        "endpoints.peak2.output: 'cart_blod' is not an output of model 'endpoints_toy' (did you mean 'cart_blood'?)",
        "endpoints.remission.threshold: expected a finite number, got 'low'",
        "endpoints.aplasia.treshold: 'treshold' is not a key of endpoints.aplasia (did you mean 'threshold'?)",
        "endpoints.aplasia.threshold: missing (required for type 'time_below')",
        "endpoints.remission_d28.expr: expected a condition (a comparison such as",
        "endpoints.late.day: 400 is outside the output times [0, 365] (day)",
        "endpoints.relapse.after: 'remision' is not a time-to-event endpoint of this scenario "
        "(did you mean 'remission'?)",
        "endpoints.auc_bad.method: expected one of ['lin-up/log-down', 'linear', 'log'], got 'log-down'",
        "endpoints.hazard_bad.hazard: unknown name 'tcells'",
        "declare an output for it",
        "endpoints refer to each other in a cycle: loop_a -> loop_b -> loop_a",
        "outcomes.os.combine: expected one of ['first'], got 'earliest'",
        "outcomes.os.events: 'infection_death' is not an endpoint of this scenario",
    ]
    for line in expected:
        assert line in text, f"missing: {line}\n--- got:\n{text}"
    assert f"{len(info.value.problems)} problems in scenario file" in text


@pytest.mark.parametrize("spec, message", [
    ({"type": "level", "output": "cd3", "day": 10, "lloq": -1}, "lloq: expected a number > 0, got -1"),
    ({"type": "first_above", "output": "cd3", "threshold": float("nan")}, "threshold: expected a finite number"),
    ({"type": "first_above", "output": "cd3", "threshold": True}, "threshold: expected a finite number, got True"),
    ({"type": "condition", "expr": "cd3 < 5", "day": 3, "at": "x"}, "not both"),
    ({"type": "condition", "expr": "cd3 < 5"}, "reads model outputs or t: give 'day'"),
    ({"type": "condition", "expr": "cd3 < 5", "at": "y"}, "at: 'y' is not a time-to-event endpoint"),
    ({"type": "auc", "output": "cd3", "start": 30, "end": 10}, "end = 10 must be after start = 30"),
    ({"output": "cd3"}, "x.type: missing; expected one of"),
    ({"type": "value", "expr": "cd3 +", "day": 3}, "x.expr: cannot parse"),
    ({"type": "first_above", "output": "cd3", "threshold": 1, "report_at": [10, 900]}, "report_at: [900]"),
])
def test_bad_values_name_key_value_and_expectation(spec, message):
    data = _base()
    data["endpoints"] = {"x": spec}
    with pytest.raises(ScenarioError, match="endpoints") as info:
        scenario_from_dict(data, SCEN / "inline.toml")
    assert message in str(info.value)


def test_names_that_clash_are_refused():
    data = _base()
    data["endpoints"] = {"cd3": {"type": "cmax", "output": "cd3"},
                         "a": {"type": "cmax", "output": "cd3"}}
    data["outcomes"] = {"a": {"events": ["a"]}}
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(data, SCEN / "inline.toml")
    text = str(info.value)
    assert "endpoints.cd3: 'cd3' is already an output of model 'endpoints_toy'" in text
    assert "outcomes.a: 'a' is already declared as an endpoint" in text


def test_compute_checks_its_inputs(good):
    es = good.endpoints
    times = good.times
    with pytest.raises(KeyError, match="cd3"):
        es.compute(times, {"cart_blood": np.zeros((2, times.size))}, np.zeros((2, 2)), 365.0)
    outs = _toy_outputs(times, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"uniforms has shape \(2, 1\), the endpoints need \(2, 2\)"):
        es.compute(times, outs, np.zeros((2, 1)), 365.0)
