"""Figures of a simulation and a virtual cohort: trajectories, cohort bands, Kaplan-Meier curves.

matplotlib is imported on first use (:func:`carkinetics.plots.style.pyplot`); each function returns its figure.
The survival figures are drawn by :mod:`carkinetics.plots.survival` and named here too, where
:class:`~carkinetics.cohort.result.CohortResult` and the figure helper look figures up by name.
"""

from __future__ import annotations

import re

import numpy as np

from carkinetics.plots.style import REFERENCE_LINE, REFERENCE_TEXT, TITLE_LENGTH, grid_shape, pyplot
from carkinetics.plots.survival import plot_cumulative_incidence, plot_kaplan_meier  # noqa: F401
from carkinetics.plots.survival import time_label, words

_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


def _log_tick_label(value, pos=None):
    """``10\u2074``-style label of a log-axis tick, as plain text (no mathtext to lay out)."""
    if not value > 0 or not np.isfinite(value):
        return ""
    e = int(np.round(np.log10(value)))
    if abs(value / 10.0 ** e - 1.0) < 1e-9:
        return "10" + str(e).translate(_SUPERSCRIPT)
    return f"{value:g}"


def plot_trajectory(trajectory, names=None, log_scale=True, title=None):
    """One panel per output (or state) of a :class:`~carkinetics.simulation.result.Trajectory`.

    Returns the matplotlib figure.
    """
    plt = pyplot()
    model = trajectory.model
    names = list(names or model.output_names or model.state_names)
    units = {s.name: s.unit for s in model.states} | {o.name: o.unit for o in model.outputs}
    rows, cols = grid_shape(len(names))
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        y = np.asarray(trajectory[name], float)
        if log_scale:
            positive = y > 0
            ax.semilogy(trajectory.times[positive], y[positive], lw=2)
        else:
            ax.plot(trajectory.times, y, lw=2)
        ax.set_title(name)
        ax.set_xlabel(f"time ({model.time_unit})")
        ax.set_ylabel(units.get(name, ""))
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(title or f"{model.name}")
    fig.tight_layout()
    return fig


def save_figure(fig, path, formats=("png",), tight=True, dpi=150):
    """Save ``fig`` as ``path`` with each suffix in ``formats``; close it.

    ``tight=True`` crops the page to the drawn artists (an extra layout pass); figures
    laid out with fixed margins (:func:`_fixed_layout`) are saved as they are, faster.
    ``dpi`` applies to raster formats (png).
    """
    from pathlib import Path

    plt = pyplot()
    path = Path(path)
    out = []
    for fmt in formats:
        p = path.with_suffix("." + fmt)
        fig.savefig(p, bbox_inches="tight" if tight else None, dpi=dpi if fmt == "png" else None)
        out.append(p)
    plt.close(fig)
    return out


def _fixed_layout(fig, rows, cols, title=False, title_lines=1):
    """Margins in inches for a grid of panels with titles, axis labels and a legend.

    Without the text measurements of ``tight_layout`` (a full draw of the figure), so
    cohort figures cost one draw when saved. ``title_lines``: lines of the longest panel title.
    """
    w, h = fig.get_size_inches()
    extra = 0.2 * (max(int(title_lines), 1) - 1)
    left, right, bottom, top = 0.9, 0.25, 0.6, 0.4 + extra + (0.35 if title else 0.0)
    gap_w, gap_h = 0.95, 0.85 + extra  # between panels: tick labels, y label, title of the next
    aw = (w - left - right - (cols - 1) * gap_w) / cols
    ah = (h - bottom - top - (rows - 1) * gap_h) / rows
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        wspace=gap_w / aw if cols > 1 else 0.2, hspace=gap_h / ah if rows > 1 else 0.2)


_ARM_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


class _Columns:
    """A table's columns as numpy arrays, from a pandas DataFrame or a mapping of name -> array.

    The cohort plots read their tables through it, so they draw the same figure from either.
    """

    def __init__(self, table):
        if isinstance(table, _Columns):
            self.data = table.data
        elif hasattr(table, "columns") and hasattr(table, "to_numpy"):  # a DataFrame
            self.data = {str(c): table[c].to_numpy() for c in table.columns}
        else:
            self.data = {str(k): np.asarray(v) for k, v in dict(table).items()}

    def __len__(self):
        return len(next(iter(self.data.values()))) if self.data else 0

    def __contains__(self, name):
        return name in self.data

    def col(self, name, dtype=float):
        return np.asarray(self.data[name], dtype=dtype)

    def text(self, name):
        return np.asarray(self.data[name]).astype(str)


def _drawn_arms(table):
    """Arms of a bands or Kaplan-Meier table in order; the whole-cohort ``all`` only when alone."""
    arms = list(dict.fromkeys(_Columns(table).text("arm")))
    if len(arms) > 1 and "all" in arms:
        arms.remove("all")
    return arms


def _panels(plt, n):
    """A figure with a grid of ``n`` panels (squeezed 2-d array of axes)."""
    rows, cols = grid_shape(n)
    return plt.subplots(rows, cols, figsize=(5.6 * cols, 3.8 * rows), squeeze=False)


def _finish_panels(fig, axes, n_used, title):
    """Hide the unused panels, add the title, lay the grid out."""
    for ax in list(axes.flat)[n_used:]:
        ax.set_visible(False)
    if title:  # 0.1 inch from the top, whatever the figure's height (the margins are in inches too)
        fig.suptitle(title, y=1.0 - 0.1 / fig.get_size_inches()[1], va="top")
    lines = max([ax.get_title().count("\n") + 1 for ax in list(axes.flat)[:n_used]] or [1])
    _fixed_layout(fig, axes.shape[0], axes.shape[1], bool(title), lines)
    return fig


def short_title(name, description="", unit=""):
    """A panel title for an output: its description shortened, then its unit.

    The description without its parenthetical remarks, cut at its first ``;`` or ``:`` and at
    a word boundary within :data:`~carkinetics.plots.style.TITLE_LENGTH` characters; without
    a description the output's name with spaces for underscores. A dimensionless unit (``1``)
    is left out.

    Parameters
    ----------
    name : str
        The output (or state) name.
    description : str, optional
        Its description in the model file.
    unit : str, optional
        Its unit.

    Returns
    -------
    str

    Examples
    --------
    >>> short_title("car_t_per_ul", "CAR-T cells per microlitre of blood (flow cytometry)", "cells/\u00b5L")
    'CAR-T cells per microlitre of blood (cells/\u00b5L)'
    >>> short_title("t_pos", "Normal (non-CAR) T cells carrying the antigen; aplasia when low", "cells/\u00b5L")
    'Normal T cells carrying the antigen (cells/\u00b5L)'
    >>> short_title("mrd_log10", "", "log10 fraction")
    'mrd log10 (log10 fraction)'
    """
    text = str(description or "")
    while True:  # innermost parentheses first: "(a (b) c)" goes whole
        shorter = re.sub(r"\s*\([^()]*\)", "", text)
        if shorter == text:
            break
        text = shorter
    text = " ".join(text.split("(")[0].split())  # an unclosed "(" cuts the rest
    for stop in (";", ":"):
        text = text.split(stop)[0]
    text = text.strip(" ,.-")
    if len(text) > TITLE_LENGTH:
        cut = text[:TITLE_LENGTH].rsplit(" ", 1)[0] if " " in text[:TITLE_LENGTH] else text[:TITLE_LENGTH]
        text = cut.rstrip(" ,.-") + "\u2026"
    if not text:
        text = words(name)
    unit = str(unit or "").strip()
    return f"{text} ({unit})" if unit and unit != "1" else text


def _wrapped(title, width=46):
    """``title`` on two lines when it is longer than ``width`` characters (the unit on the second if it fits)."""
    if len(title) <= width:
        return title
    head, sep, unit = title.rpartition(" (")
    if sep and len(head) <= width + 14 and len(unit) < width:
        return f"{head}\n({unit}"
    import textwrap

    lines = textwrap.wrap(title, width)
    return "\n".join(lines[:1] + [" ".join(lines[1:])])


def _axis_unit(unit):
    """The y-axis label of an output's unit (``1`` read as dimensionless)."""
    unit = str(unit or "").strip()
    return "dimensionless" if unit in ("", "1") else unit


def use_log_axis(quantiles):
    """Whether a panel of quantiles (rows: times in order) is drawn on a logarithmic axis.

    Only when no value is negative, some value is positive, and the median is positive at
    every time from its first positive one on: zeros before it (an output that starts at
    infusion, e.g. CAR-T before day 0) are left off the axis, but an output that is 0 later
    (a donor fraction before a transplant, a share that falls to 0) or that takes negative
    values (a log10 MRD) is drawn on a linear axis. Quantiles below the median that are 0
    (patients in whom the cells died out) are drawn at the bottom of the axis.

    Parameters
    ----------
    quantiles : array of shape (n_times, 5)
        ``q05, q25, q50, q75, q95`` at each time.

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np
    >>> use_log_axis(np.array([[0, 0, 0, 0, 0], [1, 2, 3, 4, 5.0]]))
    True
    >>> use_log_axis(np.array([[1, 2, 3, 4, 5.0], [0, 0, 0, 0, 0]]))
    False
    """
    q = np.asarray(quantiles, float)
    finite = q[np.isfinite(q)]
    if not finite.size or (finite < 0).any() or not (finite > 0).any():
        return False
    median = q[:, q.shape[1] // 2] if q.ndim == 2 and q.shape[1] else np.zeros(0)
    positive = np.isfinite(median) & (median > 0)
    if not positive.any():
        return False
    return bool(positive[int(np.argmax(positive)):].all())


def _references_of(references, name, log_axis):
    """``[(value, label), ...]`` of an output that can be drawn (positive ones on a log axis)."""
    out = []
    for entry in (references or {}).get(name, ()) or ():
        try:
            value, label = float(entry[0]), str(entry[1])
        except (TypeError, ValueError, IndexError):
            continue
        if np.isfinite(value) and (value > 0 or not log_axis):
            out.append((value, label))
    return out


def _draw_references(ax, refs):
    """Horizontal reference lines, each labelled at the right end of the panel."""
    for value, label in refs:
        ax.axhline(value, gid="reference", label=f"_reference {label}", **REFERENCE_LINE)
        ax.text(0.99, value, label, transform=ax.get_yaxis_transform(), gid="reference", **REFERENCE_TEXT)


def _draw_observed(ax, obs, name, panel_log):
    """The observations of output ``name`` over its bands (censored ones at their LLOQ)."""
    names, times, values, censored, lloq_all = obs
    ob = names == name
    if not ob.any():
        return
    cens, t_obs, y = censored[ob], times[ob], values[ob]
    keep = ~cens & (y > 0 if panel_log else np.isfinite(y))
    ax.plot(t_obs[keep], y[keep], "o", ms=3, color="black", alpha=0.6, label="observed")
    if cens.any() and lloq_all is not None:
        lloq = lloq_all[ob]
        kc = cens & np.isfinite(lloq) & (lloq > 0 if panel_log else True)
        if kc.any():
            ax.plot(t_obs[kc], lloq[kc], "v", ms=4, mfc="none", color="black", alpha=0.6,
                    label="below LLOQ (at LLOQ)")


def _log_floor(qv, obs, name, refs):
    """Bottom of a log panel: the decade below the smallest positive quantile, observation or reference."""
    lows = [qv[np.isfinite(qv) & (qv > 0)].min()] if (np.isfinite(qv) & (qv > 0)).any() else []
    if obs is not None:
        ob = (obs[0] == name) & (obs[2] > 0)
        if ob.any():
            lows.append(obs[2][ob].min())
    lows += [v for v, _ in refs]
    return 10.0 ** np.floor(np.log10(min(lows))) if lows else None


def _draw_bands(ax, t, q, colour, label, single):
    """The 5-95% and 25-75% bands and the median of one arm."""
    ax.fill_between(t, q["q05"], q["q95"], color=colour, alpha=0.15, lw=0, label="5-95%" if single else None)
    ax.fill_between(t, q["q25"], q["q75"], color=colour, alpha=0.3, lw=0, label="25-75%" if single else None)
    ax.plot(t, q["q50"], color=colour, lw=2, label=label)


def plot_cohort_bands(bands, outputs=None, log_scale=True, observed=None, units=None, time_unit="", title=None,
                      descriptions=None, references=None):
    """Median with 25-75% and 5-95% bands over time, one panel per output, one colour per arm.

    Parameters
    ----------
    bands : pandas.DataFrame or mapping of str to array
        ``arm, output, time, q05, q25, q50, q75, q95`` (:attr:`CohortResult.bands`).
        The whole-cohort arm ``all`` is drawn only when it is the only arm.
    outputs : sequence of str, optional
        Panels to draw (default: every output in ``bands``).
    log_scale : bool
        Logarithmic y axes where the values allow it (:func:`use_log_axis`); quantiles at zero
        are drawn at the bottom of the axis.
    observed : pandas.DataFrame or mapping of str to array, optional
        Observations ``id, time, observable, value`` (optional ``censored``, ``lloq``) drawn as
        points over the bands of the matching output: a visual predictive check.
    units : mapping of str to str, optional
        Output -> unit, the y-axis label and the end of the panel title.
    time_unit : str
        The model's time unit (days when empty); time 0 is the infusion.
    title : str, optional
        The figure title.
    descriptions : mapping of str to str, optional
        Output -> description in the model file; panel titles are their short form
        (:func:`short_title`), else the output names.
    references : mapping of str to sequence of (float, str), optional
        Output -> clinical reference lines ``(value, label)`` (a model output's ``reference``
        entries), drawn as labelled dashed lines.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    bands = _Columns(bands)
    observed = None if observed is None or not len(_Columns(observed)) else _Columns(observed)
    units, descriptions = units or {}, descriptions or {}
    qcols = ["q05", "q25", "q50", "q75", "q95"]
    band_outputs, band_arms, band_times = bands.text("output"), bands.text("arm"), bands.col("time")
    quantiles = np.column_stack([bands.col(c) for c in qcols]) if len(bands) else np.zeros((0, len(qcols)))
    obs = None
    if observed is not None:
        obs = (observed.text("observable"), observed.col("time"), observed.col("value"),
               observed.col("censored", bool) if "censored" in observed else np.zeros(len(observed), dtype=bool),
               observed.col("lloq") if "lloq" in observed else None)
    outputs = list(outputs or dict.fromkeys(band_outputs))
    arms = _drawn_arms(bands)
    fig, axes = _panels(plt, len(outputs))
    for ax, name in zip(axes.flat, outputs):
        sel = band_outputs == name
        order = np.argsort(band_times[sel], kind="stable")
        qv = quantiles[sel]
        panel_log = bool(log_scale) and use_log_axis(qv[order])
        refs = _references_of(references, name, panel_log)
        floor = _log_floor(qv, obs, name, refs) if panel_log else None
        for k, arm in enumerate(arms):
            a = sel & (band_arms == arm)
            if not a.any():
                continue
            q = dict(zip(qcols, quantiles[a].T))
            if floor is not None:
                q = {c: np.where(v > 0, v, floor) for c, v in q.items()}
            _draw_bands(ax, band_times[a], q, _ARM_COLOURS[k % len(_ARM_COLOURS)],
                        arm if len(arms) > 1 else "median", len(arms) == 1)
        if obs is not None:
            _draw_observed(ax, obs, name, panel_log)
        _draw_references(ax, refs)
        if panel_log:
            ax.set_yscale("log")
            ax.yaxis.set_minor_locator(plt.NullLocator())  # unlabelled; 100+ tick artists to lay out
            ax.yaxis.set_major_formatter(plt.FuncFormatter(_log_tick_label))
            if floor is not None:
                ax.set_ylim(bottom=floor)
        ax.set_title(_wrapped(short_title(name, descriptions.get(name, ""), units.get(name, ""))), y=1.0,
                     fontsize="medium")  # a fixed position: no measuring of the tick labels
        ax.set_xlabel(time_label(time_unit))  # time 0: the infusion
        ax.set_ylabel(_axis_unit(units.get(name, "")))
        ax.legend(loc="best")
    return _finish_panels(fig, axes, len(outputs), title)
