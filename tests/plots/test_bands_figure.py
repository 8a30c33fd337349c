"""The cohort bands figure read through its artists: titles, units, reference lines, axis scales."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carkinetics.model.load import load_model, resolve_model_path
from carkinetics.plots.cohort import plot_cohort_bands, short_title, use_log_axis

QCOLS = ("q05", "q25", "q50", "q75", "q95")
TIMES = np.arange(-2.0, 8.0)


@pytest.fixture(scope="module")
def tall():
    return load_model(resolve_model_path("cart_tall"))


def _rows(name, quantiles, arm="all"):
    """Bands rows of one output: ``quantiles`` (n_times, 5) at TIMES."""
    return [dict(arm=arm, output=name, time=t, **dict(zip(QCOLS, map(float, q)))) for t, q in zip(TIMES, quantiles)]


def _table(rows):
    cols = ("arm", "output", "time") + QCOLS
    return {c: np.array([r[c] for r in rows]) for c in cols}


def _spread(median):
    """Quantiles around a median: x/4, x/2, x, 2x, 4x."""
    m = np.asarray(median, float)[:, None]
    return m * np.array([0.25, 0.5, 1.0, 2.0, 4.0])


def _bands():
    """car_t_per_ul: 0 before infusion (t < 0); marrow_blast_fraction: positive, falling through CR;
    mrd_log10: negative; donor_fraction: median 0, upper quantiles positive later; cd4_per_ul: positive."""
    car = _spread(np.where(TIMES < 0, 0.0, 10.0 ** (TIMES / 2)))
    blasts = _spread(0.2 * 10.0 ** (-TIMES / 2 - 1))
    mrd = np.log10(np.clip(blasts, 1e-8, None))
    donor = np.zeros((TIMES.size, 5))
    donor[TIMES >= 3, 3:] = 0.1  # transplanted in a quarter of the patients: the median stays 0
    cd4 = _spread(np.full(TIMES.size, 150.0))
    rows = (_rows("car_t_per_ul", car) + _rows("marrow_blast_fraction", blasts) + _rows("mrd_log10", mrd)
            + _rows("donor_fraction", donor) + _rows("cd4_per_ul", cd4))
    return _table(rows)


def _info(model):
    """What the cohort result passes: units, descriptions, references of the model's outputs."""
    return dict(units={o.name: o.unit for o in model.outputs},
                descriptions={o.name: o.description for o in model.outputs},
                references={o.name: [list(r) for r in o.references] for o in model.outputs if o.references},
                time_unit=model.time_unit)


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def _reference_artists(ax):
    lines = {round(float(ln.get_ydata()[0]), 12) for ln in ax.get_lines() if ln.get_gid() == "reference"}
    texts = {t.get_text(): round(float(t.get_position()[1]), 12) for t in ax.texts if t.get_gid() == "reference"}
    return lines, texts


def test_panel_titles_units_and_time_axis(tall):
    import matplotlib.pyplot as plt

    fig = plot_cohort_bands(_bands(), **_info(tall))
    axes = _panels(fig)
    titles = [ax.get_title() for ax in axes]
    plt.close(fig)
    assert len(axes) == 5
    # the descriptions' short forms (hand-cut from cart_tall.toml), then the units
    assert titles[0] == "CAR-T cells per microlitre of blood (cells/\u00b5L)"
    assert titles[1] == "Blasts among nucleated marrow cells (fraction)"
    assert titles[4] == "CD4+ T cells per microlitre (cells/\u00b5L)"
    assert not any("_" in t for t in titles)
    assert [ax.get_ylabel() for ax in axes] == ["cells/\u00b5L", "fraction", "log10 fraction", "fraction",
                                               "cells/\u00b5L"]
    assert {ax.get_xlabel() for ax in axes} == {"days from infusion"}


def test_titles_and_units_without_descriptions():
    import matplotlib.pyplot as plt

    fig = plot_cohort_bands(_bands(), units={"car_t_per_ul": "cells/\u00b5L", "mrd_log10": "1"}, time_unit="hour")
    axes = _panels(fig)
    got = [(ax.get_title(), ax.get_ylabel(), ax.get_xlabel()) for ax in axes[:3]]
    plt.close(fig)
    assert got == [("car t per ul (cells/\u00b5L)", "cells/\u00b5L", "hours from infusion"),
                   ("marrow blast fraction", "dimensionless", "hours from infusion"),
                   ("mrd log10", "dimensionless", "hours from infusion")]


def test_reference_lines_with_labels(tall):
    import matplotlib.pyplot as plt

    fig = plot_cohort_bands(_bands(), **_info(tall))
    car, blasts, mrd, donor, cd4 = _panels(fig)
    found = {name: _reference_artists(ax) for name, ax in
             (("car", car), ("blasts", blasts), ("mrd", mrd), ("donor", donor), ("cd4", cd4))}
    blasts_ylim = blasts.get_ylim()
    legend_texts = [t.get_text() for t in blasts.get_legend().get_texts()]
    plt.close(fig)
    lines, texts = found["blasts"]
    assert lines == {0.05, 1e-4}
    assert texts == {"CR: blasts < 5%": 0.05, "MRD-negative: < 10\u207b\u2074 (flow)": 1e-4}
    # the MRD line is inside the axis (blast medians reach 2e-6 here, the floor is the decade below)
    assert blasts_ylim[0] <= 1e-4 <= blasts_ylim[1]
    assert found["mrd"][0] == {-4.0, round(math.log10(0.05), 12)}
    assert found["cd4"][0] == {200.0} and found["car"][0] == {0.1}
    assert found["donor"] == (set(), {})
    assert not any("MRD" in t or "CR" in t for t in legend_texts)  # labelled on the panel, not in the legend


def test_log_axes_only_for_positive_outputs(tall):
    import matplotlib.pyplot as plt

    fig = plot_cohort_bands(_bands(), log_scale=True, **_info(tall))
    scales = [ax.get_yscale() for ax in _panels(fig)]
    plt.close(fig)
    # CAR-T: zero only before infusion -> log; mrd_log10: negative -> linear; donor: median 0 -> linear
    assert scales == ["log", "log", "linear", "linear", "log"]
    fig = plot_cohort_bands(_bands(), log_scale=False, **_info(tall))
    assert {ax.get_yscale() for ax in _panels(fig)} == {"linear"}
    plt.close(fig)


def test_negative_references_are_not_drawn_on_log_axes():
    import matplotlib.pyplot as plt

    fig = plot_cohort_bands(_table(_rows("x", _spread(np.ones(TIMES.size)))), units={"x": "cells"},
                            references={"x": [[-1.0, "below"], [2.0, "above"]]})
    ax = _panels(fig)[0]
    lines, texts = _reference_artists(ax)
    plt.close(fig)
    assert ax.get_yscale() == "log" and lines == {2.0} and set(texts) == {"above"}


def test_observations_are_overlaid(tall):
    import matplotlib.pyplot as plt

    obs = {"id": np.array([1, 1, 2]), "time": np.array([1.0, 3.0, 3.0]),
           "observable": np.array(["car_t_per_ul", "car_t_per_ul", "cd4_per_ul"]),
           "value": np.array([5.0, 0.05, 120.0]), "censored": np.array([False, True, False]),
           "lloq": np.array([0.1, 0.1, 0.1])}
    fig = plot_cohort_bands(_bands(), observed=obs, **_info(tall))
    car = _panels(fig)[0]
    marks = {ln.get_label(): (list(ln.get_xdata()), list(ln.get_ydata())) for ln in car.get_lines()}
    plt.close(fig)
    assert marks["observed"] == ([1.0], [5.0])
    assert marks["below LLOQ (at LLOQ)"] == ([3.0], [0.1])


@pytest.mark.parametrize("quantiles, expected", [
    (_spread([1.0, 2.0, 3.0]), True),
    (_spread([0.0, 0.0, 3.0]), True),                      # zero before it starts: left off
    (np.array([[0, 1, 2, 3, 4.0], [0, 1, 2, 3, 4.0]]), True),  # a lower band at 0: drawn at the floor
    (_spread([1.0, 0.0, 3.0]), False),                     # 0 after being positive
    (np.zeros((3, 5)), False),                             # never positive
    (_spread([1.0, 2.0, 3.0]) - 1.5, False),               # negative values
    (np.full((2, 5), np.nan), False),
])
def test_use_log_axis(quantiles, expected):
    assert use_log_axis(quantiles) is expected


@pytest.mark.parametrize("description, unit, expected", [
    ("Blasts among nucleated marrow cells; also the MRD level", "fraction",
     "Blasts among nucleated marrow cells (fraction)"),
    ("CAR transgene copies per microgram of blood genomic DNA (qPCR): copies per cell", "copies/\u00b5g gDNA",
     "CAR transgene copies per microgram of blood genomic DNA (copies/\u00b5g gDNA)"),
    ("Donor share of haematopoiesis after a transplant (0 before; the donor chimerism)", "fraction",
     "Donor share of haematopoiesis after a transplant (fraction)"),
    ("Per-CAR-T stimulation (0..1): diagnostic of the expansion mechanism", "1", "Per-CAR-T stimulation"),
    # 60 characters at most, cut between words
    ("Hazard of clinically significant GVHD from alloreactive donor T cells", "1/day",
     "Hazard of clinically significant GVHD from alloreactive\u2026 (1/day)"),
    ("", "cells", "blasts total (cells)"),
])
def test_short_title(description, unit, expected):
    assert short_title("blasts_total", description, unit) == expected


def test_same_figure_after_a_projector_style_figure(tall):
    """A study figure's larger style set before (same process) does not change the bands figure."""
    import matplotlib
    import matplotlib.pyplot as plt

    from carkinetics.plots.studies import PROJECTOR_STYLE

    def pixels():
        fig = plot_cohort_bands(_bands(), **_info(tall))
        fig.canvas.draw()
        img = np.asarray(fig.canvas.buffer_rgba()).copy()
        plt.close(fig)
        return img

    with matplotlib.rc_context():
        before = pixels()
        plt.rcParams.update(PROJECTOR_STYLE)
        np.testing.assert_array_equal(pixels(), before)
