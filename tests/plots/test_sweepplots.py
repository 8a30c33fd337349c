"""Figures from small, hand-made results: expected axes, labels, data and file sizes."""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd
import pytest

from carkinetics.studies.sweep_result import KM_COLUMNS, SUMMARY_COLUMNS, SweepResult


def _result():
    """2 doses x 2 transplant days x 2 arms; remission rises with dose, lower for new donors."""
    axes = [{"name": "dose_per_kg", "kind": "variable", "labels": [5e5, 2e6]},
            {"name": "transplant_day", "kind": "variable", "labels": [30, "none"]},
            {"name": "arm", "kind": "arm", "labels": ["previous_donor", "new_donor"]}]
    grid_rows, summary_rows, km_rows = [], [], []
    pid = 0
    for dose in (5e5, 2e6):
        for tx in ("30", "none"):
            for arm in ("previous_donor", "new_donor"):
                grid_rows.append({"point": pid, "dose_per_kg": dose, "transplant_day": tx, "arm": arm})
                p = 0.5 + 0.2 * (dose == 2e6) - 0.1 * (arm == "new_donor") + 0.05 * (tx == "30")
                summary_rows.append((pid, arm, "cr_d28", "proportion", p, p - 0.1, p + 0.1, 100))
                summary_rows.append((pid, arm, "cmax", "median", 1000 * p, 900 * p, 1100 * p, 100))
                for t in (0.0, 100.0, 365.0):
                    s = float(np.exp(-t * (1 - p) / 365))
                    km_rows.append((pid, arm, "os", t, s, s - 0.05, min(1.0, s + 0.05), 100 - int(t / 10), 100))
                pid += 1
    info = {"scenario_name": "toy", "sweep": {"axes": axes, "plots": {}},
            "endpoint_kinds": {"cr_d28": "binary", "cmax": "continuous", "os": "time"},
            "endpoint_descriptions": {"cr_d28": "Remission at day 28"}}
    grid = pd.DataFrame(grid_rows)
    grid["transplant_day"] = grid["transplant_day"].astype(str)
    return SweepResult(grid=grid, summary=pd.DataFrame(summary_rows, columns=SUMMARY_COLUMNS),
                       km=pd.DataFrame(km_rows, columns=KM_COLUMNS), info=info)


def _png_size(path):
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_outcome_curves_one_line_per_arm_with_bands():
    from carkinetics.plots.studies import plot_outcome_curves

    fig = plot_outcome_curves(_result(), ["cr_d28", "cmax:median", "os@365"], x="dose_per_kg", lines="arm",
                              fixed={"transplant_day": "none"})
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3
    ax = axes[0]
    assert ax.get_title() == "Remission at day 28"
    assert ax.get_xlabel() == "dose per kg" and ax.get_ylabel() == "probability"
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5e5", "2e6"]
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["previous_donor", "new_donor"]
    # values at transplant 'none': p = 0.5 + 0.2 (high dose) - 0.1 (new donor)
    np.testing.assert_allclose(lines[0].get_ydata(), [0.5, 0.7])
    np.testing.assert_allclose(lines[1].get_ydata(), [0.4, 0.6])
    assert len(ax.collections) == 2  # one interval band per line
    assert axes[1].get_ylabel() == "median"
    assert axes[2].get_ylabel() == "survival probability" and "day 365" in axes[2].get_title()
    assert "transplant day = none" in fig._suptitle.get_text()
    assert fig.legends and fig.legends[0].get_title().get_text() == "arm"


def test_heatmap_over_two_axes_holds_the_values():
    from carkinetics.plots.studies import plot_heatmap

    fig = plot_heatmap(_result(), "cr_d28", "dose_per_kg", "transplant_day", fixed={"arm": "new_donor"})
    ax = fig.axes[0]
    assert ax.get_xlabel() == "dose per kg" and ax.get_ylabel() == "transplant day"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["30", "none"]
    z = ax.images[0].get_array()
    np.testing.assert_allclose(z, [[0.45, 0.65], [0.4, 0.6]])
    assert "arm = new_donor" in ax.get_title()
    assert fig.axes[1].get_ylabel() == "probability"  # the colour bar
    assert sorted(t.get_text() for t in ax.texts) == ["0.40", "0.45", "0.60", "0.65"]


def test_km_curves_with_reported_points():
    from carkinetics.plots.studies import plot_km

    targets = pd.DataFrame({"time": [365.0], "value": [0.6], "lower": [0.4], "upper": [0.8], "label": ["s1_os"]})
    fig = plot_km(_result(), "os", points=[0, 1], targets=targets)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "days after CAR-T infusion" and ax.get_ylabel() == "survival probability"
    labels = [ln.get_label() for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    assert labels[:2] == ["arm previous_donor", "arm new_donor"]
    assert "reported (95% interval)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.get_text() == "s1_os" for t in ax.texts)
    with pytest.raises(ValueError, match="no Kaplan-Meier summary"):
        plot_km(_result(), "cr_d28")


def test_tornado_and_global_bars():
    from carkinetics.plots.studies import plot_global_sensitivity, plot_tornado

    t = pd.DataFrame({"parameter": ["a", "b"], "typical": [1.0, 1.0], "low": [0.5, 0.1], "high": [2.0, 10.0],
                      "outcome_low": [0.4, 0.45], "outcome_high": [0.6, 0.9], "baseline": [0.5, 0.5],
                      "swing": [0.2, 0.45]})
    fig = plot_tornado(t, outcome="remission")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "remission"
    assert [tk.get_text() for tk in ax.get_yticklabels()] == ["a  [0.5, 2]", "b  [0.1, 10]"]  # largest on top
    widths = sorted(round(p.get_width(), 6) for p in ax.patches)
    assert widths == sorted([-0.1, 0.1, -0.05, 0.4])
    g = pd.DataFrame({"parameter": ["a", "b"], "index": "prcc", "value": [0.2, -0.8], "lower": [0.0, -0.9],
                      "upper": [0.4, -0.7], "p_value": [0.1, 0.0]})
    fig = plot_global_sensitivity(g, outcome="remission")
    ax = fig.axes[0]
    assert [tk.get_text() for tk in ax.get_yticklabels()] == ["a", "b"]
    assert sorted(p.get_width() for p in ax.patches) == [-0.8, 0.2]


def test_saved_figures_are_projector_sized(tmp_path):
    from carkinetics.plots.studies import plot_outcome_curves, save_figure

    files = save_figure(plot_outcome_curves(_result(), ["cr_d28"]), tmp_path / "fig", ("png", "pdf"))
    assert [f.suffix for f in files] == [".png", ".pdf"]
    width, height = _png_size(files[0])
    assert width >= 1600 and height >= 800
    assert files[1].read_bytes()[:4] == b"%PDF"
