"""Survival figures drawn from small hand-made cohorts: numbers at risk, censoring marks, styles, labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carkinetics.plots.survival import (AT_RISK, DRAWN_STEPS, MAX_CENSOR_MARKS, censor_marks, curve_style,
                                        drawn_steps, events_and_censored, plot_cumulative_incidence,
                                        plot_kaplan_meier, time_label)
from carkinetics.stats.km import kaplan_meier

# two arms of 12 patients: (time, event); ties, censorings inside the follow-up and at the horizon 100
ARMS = {
    "previous_donor": ([5, 8, 8, 12, 20, 20, 33, 41, 60, 75, 100, 100], [1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0]),
    "new_donor": ([10, 15, 22, 30, 30, 45, 52, 70, 88, 100, 100, 100], [1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0]),
}


def _km_table(arms=ARMS, endpoint="os"):
    """``km.csv``-style table as the cohort pipeline builds it (whole cohort ``all`` included)."""
    frames = []
    groups = dict(arms)
    groups["all"] = (sum((list(t) for t, _ in arms.values()), []), sum((list(e) for _, e in arms.values()), []))
    for arm, (t, e) in groups.items():
        km = kaplan_meier(t, e)
        frames.append(pd.DataFrame({"arm": arm, "endpoint": endpoint, "time": km.time, "survival": km.survival,
                                    "lower": km.lower, "upper": km.upper, "n_at_risk": km.n_at_risk}))
    return pd.concat(frames, ignore_index=True)


def _texts(fig):
    """Every visible text of the figure: titles, axis labels, tick labels, legends, table cells."""
    out = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_visible())]
    return [t for t in out if t]


def _at_risk(ax_t):
    """The numbers-at-risk table: {row label: {day: count}} read from the table's cells."""
    table = {}
    for t in ax_t.texts:
        gid = t.get_gid()
        if gid and gid.startswith(AT_RISK + "|"):
            _, label, day = gid.split("|")
            table.setdefault(label, {})[float(day)] = int(t.get_text())
    return table


def _curves(ax):
    return [ln for ln in ax.get_lines() if ln.get_gid() != "censored" and ln.get_label()[:1] != "_"]


def test_kaplan_meier_figure_has_risk_table_censor_marks_and_words():
    fig = plot_kaplan_meier(_km_table(), time_unit="day", title="toy: Kaplan-Meier",
                            descriptions={"os": "Overall survival"})
    ax = fig.axes[0]
    ax_t = next(a for a in fig.axes if a.get_label() == AT_RISK)
    ticks = [d for d in ax.get_xticks() if ax.get_xlim()[0] <= d <= ax.get_xlim()[1]]
    assert len(ticks) >= 3 and ticks[0] == 0
    table = _at_risk(ax_t)
    assert set(table) == {"previous donor", "new donor"}  # the whole cohort is not drawn beside arms
    for arm, (t, _) in ARMS.items():
        expected = {float(d): int(np.sum(np.asarray(t) >= d)) for d in ticks}  # at risk: time >= day
        assert table[arm.replace("_", " ")] == expected
    assert table["previous donor"][0.0] == 12
    # censoring marks: one per distinct censoring time, on the curve
    marks = [ln for ln in ax.get_lines() if ln.get_gid() == "censored"]
    assert len(marks) == 2 and all(m.get_marker() == "+" for m in marks)
    for m, (t, e) in zip(marks, ARMS.values()):
        t, e = np.asarray(t, float), np.asarray(e)
        np.testing.assert_array_equal(m.get_xdata(), np.unique(t[e == 0]))
        km = kaplan_meier(t, e)
        np.testing.assert_allclose(m.get_ydata(), km.at(np.unique(t[e == 0]))[0])
    curves = _curves(ax)
    assert [c.get_label() for c in curves] == ["previous donor", "new donor"]
    assert len({(c.get_color(), c.get_linestyle()) for c in curves}) == len(curves)
    assert ax.get_title() == "Overall survival"
    assert ax.get_xlabel() == "days from infusion"
    assert "probability" in ax.get_ylabel() and "0-1" in ax.get_ylabel()
    lo, hi = ax.get_ylim()
    assert lo <= 0 and 1 <= hi <= 1.05
    assert not [s for s in _texts(fig) if "_" in s]
    # the band is drawn (one filled area per arm)
    assert len(ax.collections) >= 2


def test_two_arms_show_the_log_rank_p_value_of_the_raw_data():
    stats = pytest.importorskip("scipy.stats")
    if not hasattr(stats, "logrank"):
        pytest.skip("scipy < 1.11 has no scipy.stats.logrank")
    data = []
    for t, e in ARMS.values():
        t, e = np.asarray(t, float), np.asarray(e, bool)
        data.append(stats.CensoredData(uncensored=t[e], right=t[~e]))
    p = stats.logrank(*data).pvalue
    fig = plot_kaplan_meier(_km_table(), time_unit="day")
    legend_title = fig.axes[0].get_legend().get_title().get_text()
    assert 0.001 < p < 0.99  # the example is neither degenerate nor extreme
    assert legend_title == (f"log-rank p = {p:.2f}" if p >= 0.1 else f"log-rank p = {p:.3f}")


def test_one_arm_has_no_log_rank_and_calls_the_cohort_all_patients():
    t, e = ARMS["new_donor"]
    km = kaplan_meier(t, e)
    table = {"arm": np.array(["all"] * km.time.size), "endpoint": np.array(["pfs"] * km.time.size),
             "time": km.time, "survival": km.survival, "lower": km.lower, "upper": km.upper,
             "n_at_risk": km.n_at_risk}
    fig = plot_kaplan_meier(table, time_unit="day", origins={"pfs": "first_infusion"})
    ax = fig.axes[0]
    assert not fig.axes[0].get_legend().get_title().get_text()
    assert [c.get_label() for c in _curves(ax)] == ["all patients"]
    assert ax.get_title() == "pfs" and ax.get_xlabel() == "days from first infusion"
    assert set(_at_risk(fig.axes[1])) == {"all patients"}


def test_endpoint_objects_give_titles_and_origins():
    from carkinetics.scenario.endpoints import Endpoint

    ep = Endpoint(name="time_to_relapse", type="first_above", key="endpoints.time_to_relapse", kind="time",
                  options={"origin": "second_dose"}, description="Relapse after the second dose")
    fig = plot_kaplan_meier(_km_table(endpoint="time_to_relapse"), endpoints={"time_to_relapse": ep},
                            time_unit="day")
    ax = fig.axes[0]
    assert ax.get_title() == "Relapse after the second dose"
    assert ax.get_xlabel() == "days from second dose"


def test_many_arms_never_share_colour_and_line_style():
    rng = np.random.default_rng(0)
    arms = {f"arm_{k}": (rng.integers(1, 50, 10), rng.integers(0, 2, 10)) for k in range(11)}
    fig = plot_kaplan_meier(_km_table(arms), time_unit="day")
    curves = _curves(fig.axes[0])
    assert len(curves) == 11
    assert len({(c.get_color(), c.get_linestyle()) for c in curves}) == 11
    assert not [s for s in _texts(fig) if "_" in s]
    pairs = [curve_style(k) for k in range(32)]
    assert len(set(pairs)) == 32
    assert all(a[0] != b[0] and a[1] != b[1] for a, b in zip(pairs[:4], pairs[1:4]))


def test_events_and_censorings_read_back_from_a_curve():
    t, e = ARMS["previous_donor"]
    km = kaplan_meier(t, e)
    d, c = events_and_censored(km.survival, km.n_at_risk)
    t, e = np.asarray(t), np.asarray(e)
    np.testing.assert_array_equal(d, [np.sum((t == x) & (e == 1)) for x in km.time])
    np.testing.assert_array_equal(c, [np.sum((t == x) & (e == 0)) for x in km.time])


def test_time_label_names_the_origin():
    assert time_label("day") == "days from infusion"
    assert time_label("", "car_t_infusion") == "days from car t infusion"
    assert time_label("week") == "weeks from infusion"


def _patients():
    """Two arms; outcome ``relapse_or_death`` with causes relapse (1) and non-relapse death (2)."""
    rows = []
    for arm, (t, e) in ARMS.items():
        for i, (ti, ei) in enumerate(zip(t, e)):
            rows.append({"arm": arm, "status": 0, "efs": float(ti), "efs_cause": (1 + i % 2) if ei else 0,
                         "os": float(ti), "os_cause": 1 if ei else 0})
    rows.append({"arm": "new_donor", "status": 3, "efs": np.nan, "efs_cause": np.nan, "os": np.nan,
                 "os_cause": np.nan})  # a failed patient: left out
    return pd.DataFrame(rows)


def test_cumulative_incidence_figure():
    patients = _patients()
    fig = plot_cumulative_incidence(patients, {"efs": ("relapse", "non_relapse_death"), "os": ("death",)},
                                    time_unit="day", descriptions={"efs": "Relapse or death"},
                                    origins={"efs": "first_infusion"})
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 2  # one outcome with competing causes: one panel and its table
    ax, ax_t = visible
    assert ax.get_title() == "Relapse or death" and ax.get_xlabel() == "days from first infusion"
    assert "probability" in ax.get_ylabel()
    curves = _curves(ax)
    assert sorted(c.get_label() for c in curves) == sorted(
        f"{cause}, {arm}" for cause in ("relapse", "non relapse death") for arm in ("previous donor", "new donor"))
    assert len({(c.get_color(), c.get_linestyle()) for c in curves}) == 4
    # relapse in the previous-donor arm, by hand (Aalen-Johansen: + S(t-) d_relapse / n at each time):
    # causes by patient: t5 relapse, t8 death, t8 censored, t12 death, t20 relapse, t20 censored, ...
    #   t=5:  n=12, S-=1                  -> 1/12
    #   t=8:  n=11, S-=11/12, no relapse  -> 1/12
    #   t=12: n=9 (two leave at 8: a death, a censoring), S-=11/12*10/11=10/12, a death -> 1/12
    #   t=20: n=8,  S-=10/12*8/9=80/108, one relapse -> 1/12 + (80/108)/8 = 1/12 + 10/108
    c0 = next(c for c in curves if c.get_label() == "relapse, previous donor")
    np.testing.assert_allclose(c0.get_xdata()[:5], [0, 5, 8, 12, 20])
    np.testing.assert_allclose(c0.get_ydata()[:5], [0, 1 / 12, 1 / 12, 1 / 12, 1 / 12 + 10 / 108], rtol=1e-12)
    ticks = [d for d in ax.get_xticks() if ax.get_xlim()[0] <= d <= ax.get_xlim()[1]]
    table = _at_risk(ax_t)
    for arm, (t, _) in ARMS.items():
        assert table[arm.replace("_", " ")] == {float(d): int(np.sum(np.asarray(t) >= d)) for d in ticks}
    marks = [ln for ln in ax.get_lines() if ln.get_gid() == "censored"]
    assert marks and all(m.get_marker() == "+" for m in marks)
    assert not [s for s in _texts(fig) if "_" in s]


def test_figures_save(tmp_path):
    from carkinetics.plots.cohort import plot_kaplan_meier as from_cohort
    from carkinetics.plots.cohort import save_figure

    assert from_cohort is plot_kaplan_meier  # CohortResult and the figure helper find it there
    out = save_figure(plot_kaplan_meier(_km_table(), time_unit="day"), tmp_path / "km", ("png",), tight=False)
    assert out[0].stat().st_size > 10_000


def test_cumulative_incidence_arms_in_the_given_order():
    fig = plot_cumulative_incidence(_patients(), {"efs": ("relapse", "non_relapse_death")}, time_unit="day",
                                    arms=["new_donor", "previous_donor", "not_drawn"])
    assert list(_at_risk(fig.axes[1])) == ["new donor", "previous donor"]


def test_thousands_of_censoring_times_are_thinned_and_the_horizon_kept():
    rng = np.random.default_rng(5)
    t = np.minimum(rng.uniform(0, 400, 3000), 365.0)
    e = (rng.random(3000) < 0.3) & (t < 365)
    fig = plot_kaplan_meier(_km_table({"only_arm": (t, e.astype(int))}), time_unit="day")
    mark = next(ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "censored")
    x = np.asarray(mark.get_xdata())
    cens = np.unique(t[~e])
    assert cens.size > 1000
    assert MAX_CENSOR_MARKS // 2 <= x.size <= MAX_CENSOR_MARKS + 1
    assert np.isin(x, cens).all() and x[-1] == 365.0  # real censoring times; the horizon marked
    # at most one mark per stretch of 365 / MAX_CENSOR_MARKS days, apart from the horizon
    stretch = np.floor(x[:-1] / (365.0 / MAX_CENSOR_MARKS))
    assert np.unique(stretch).size == stretch.size
    # a few censoring times are all marked
    np.testing.assert_array_equal(censor_marks([1.0, 2.0, 3.0], 10.0), [0, 1, 2])


def test_a_curve_of_a_large_cohort_is_drawn_through_its_value_at_each_stretch_end():
    """A step curve with more points than 2 x DRAWN_STEPS is drawn through a subset of its
    points: its value at the end of every stretch of the axis is the exact Kaplan-Meier value
    (checked against the whole curve evaluated there), a step is drawn at most one stretch
    late, and the numbers at risk (read from the whole curve) are unchanged."""
    rng = np.random.default_rng(11)
    n = 60_000
    t = rng.exponential(200.0, n)
    e = (t < 700).astype(int)
    t = np.minimum(t, 700.0)
    km = kaplan_meier(t, e)
    assert km.time.size > 2 * DRAWN_STEPS
    fig = plot_kaplan_meier(_km_table({"only_arm": (t, e)}), time_unit="day")
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_gid() != "censored")
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert x.size <= DRAWN_STEPS + 2
    whole_t, whole_s = np.concatenate([[0.0], km.time]), np.concatenate([[1.0], km.survival])
    assert np.isin(x, whole_t).all()

    def step(tt, ss, at):  # right-continuous step function
        return ss[np.searchsorted(tt, at, side="right") - 1]

    ends = np.linspace(0.0, km.time.max(), DRAWN_STEPS + 1)[1:]
    np.testing.assert_array_equal(step(x, y, ends), step(whole_t, whole_s, ends))
    stretch = km.time.max() / DRAWN_STEPS
    fine = np.linspace(0.0, km.time.max(), 20_001)
    drawn, exact = step(x, y, fine), step(whole_t, whole_s, fine)
    earlier = step(whole_t, whole_s, np.maximum(fine - stretch, 0.0))
    # a step is drawn late by at most a stretch: exact(t) <= drawn(t) <= exact(t - stretch)
    assert np.all(drawn >= exact) and np.all(drawn <= earlier)
    assert np.any(drawn != exact)  # the curve was thinned
    # the at-risk numbers come from the whole curve
    full = plot_kaplan_meier(_km_table({"only_arm": (t[:2 * DRAWN_STEPS], e[:2 * DRAWN_STEPS])}), time_unit="day")
    assert _at_risk(fig.axes[1]) and _at_risk(full.axes[1])
    ticks = sorted(next(iter(_at_risk(fig.axes[1]).values())))
    expected = {d: int(np.sum(t >= d)) for d in ticks}
    assert next(iter(_at_risk(fig.axes[1]).values())) == expected


def test_drawn_steps_leaves_small_curves_alone():
    t = np.arange(10.0)
    out = drawn_steps(t, 9.0, t * 2)
    assert out[0] is t or np.array_equal(out[0], t)
    np.testing.assert_array_equal(out[1], t * 2)


def test_text_columns_are_factorised_as_their_text():
    # the codes of a column (runs of one value, as a Kaplan-Meier table lists its curves, or
    # values in any order; text, numbers, an object column) index labels in order of first
    # appearance, the same as numpy's text of each value
    from carkinetics.plots.survival import _factorized

    rng = np.random.default_rng(2)
    for values in (np.array(["os", "os", "efs", "efs", "efs", "os", "nrm"], dtype=object),
                   np.array(["b", "a", "b", "c", "a"]), rng.integers(0, 4, 50), np.array([], dtype=object)):
        codes, labels = _factorized(values)
        text = np.asarray(values).astype(str)
        assert labels == list(dict.fromkeys(text.tolist()))
        np.testing.assert_array_equal(np.asarray(labels, dtype=object)[codes] if len(codes) else text, text)
