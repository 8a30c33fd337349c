"""Figures of a simulation and a virtual cohort: trajectories, cohort bands, Kaplan-Meier curves.

matplotlib is imported on first use (:func:`carkinetics.plots.style.pyplot`); each function returns its figure.
The survival figures are drawn by :mod:`carkinetics.plots.survival` and named here too, where
:class:`~carkinetics.cohort.result.CohortResult` and the figure helper look figures up by name.
"""

from __future__ import annotations

import numpy as np

from carkinetics.plots.style import grid_shape, pyplot
from carkinetics.plots.survival import plot_cumulative_incidence, plot_kaplan_meier  # noqa: F401

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


def _fixed_layout(fig, rows, cols, title=False):
    """Margins in inches for a grid of panels with titles, axis labels and a legend.

    Without the text measurements of ``tight_layout`` (a full draw of the figure), so
    cohort figures cost one draw when saved.
    """
    w, h = fig.get_size_inches()
    left, right, bottom, top = 0.9, 0.25, 0.6, 0.4 + (0.35 if title else 0.0)
    gap_w, gap_h = 0.95, 0.85  # between panels: tick labels, y label, title of the next
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
    if title:
        fig.suptitle(title)
    _fixed_layout(fig, axes.shape[0], axes.shape[1], bool(title))
    return fig


def plot_cohort_bands(bands, outputs=None, log_scale=True, observed=None, units=None, time_unit="", title=None):
    """Median with 25-75% and 5-95% bands over time, one panel per output, one colour per arm.

    Parameters
    ----------
    bands : pandas.DataFrame or mapping of str to array
        ``arm, output, time, q05, q25, q50, q75, q95`` (:attr:`CohortResult.bands`).
        The whole-cohort arm ``all`` is drawn only when it is the only arm.
    outputs : sequence of str, optional
        Panels to draw (default: every output in ``bands``).
    log_scale : bool
        Logarithmic y axis; quantiles at zero are drawn at the bottom of the axis.
    observed : pandas.DataFrame or mapping of str to array, optional
        Observations ``id, time, observable, value`` (optional ``censored``, ``lloq``) drawn as
        points over the bands of the matching output: a visual predictive check.
    units : mapping of str to str, optional
    time_unit : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    bands = _Columns(bands)
    observed = None if observed is None or not len(_Columns(observed)) else _Columns(observed)
    qcols = ["q05", "q25", "q50", "q75", "q95"]
    band_outputs, band_arms, band_times = bands.text("output"), bands.text("arm"), bands.col("time")
    quantiles = np.column_stack([bands.col(c) for c in qcols]) if len(bands) else np.zeros((0, len(qcols)))
    if observed is not None:
        obs_names, obs_times, obs_values = observed.text("observable"), observed.col("time"), observed.col("value")
        obs_censored = (observed.col("censored", bool) if "censored" in observed
                        else np.zeros(len(observed), dtype=bool))
        obs_lloq = observed.col("lloq") if "lloq" in observed else None
    outputs = list(outputs or dict.fromkeys(band_outputs))
    arms = _drawn_arms(bands)
    fig, axes = _panels(plt, len(outputs))
    for ax, name in zip(axes.flat, outputs):
        sel = band_outputs == name
        floor = None
        # an output that takes negative values (a log10 MRD, a difference) is drawn on a
        # linear axis even when the scenario asks for log scales
        qv = quantiles[sel]
        panel_log = log_scale and not (qv < 0).any() and (qv > 0).any()
        if panel_log:
            pos = qv[np.isfinite(qv) & (qv > 0)]
            if pos.size:
                floor = 10.0 ** np.floor(np.log10(pos.min()))
            if observed is not None:
                ob = (obs_names == name) & (obs_values > 0)
                if ob.any():
                    floor = min(floor or np.inf, 10.0 ** np.floor(np.log10(obs_values[ob].min())))
        for k, arm in enumerate(arms):
            a = sel & (band_arms == arm)
            if not a.any():
                continue
            colour = _ARM_COLOURS[k % len(_ARM_COLOURS)]
            t = band_times[a]
            q = dict(zip(qcols, quantiles[a].T))
            if floor is not None:
                q = {c: np.where(v > 0, v, floor) for c, v in q.items()}
            label = arm if len(arms) > 1 else "median"
            ax.fill_between(t, q["q05"], q["q95"], color=colour, alpha=0.15, lw=0,
                            label="5-95%" if len(arms) == 1 else None)
            ax.fill_between(t, q["q25"], q["q75"], color=colour, alpha=0.3, lw=0,
                            label="25-75%" if len(arms) == 1 else None)
            ax.plot(t, q["q50"], color=colour, lw=2, label=label)
        if observed is not None:
            ob = obs_names == name
            if ob.any():
                cens, t_obs, y = obs_censored[ob], obs_times[ob], obs_values[ob]
                keep = ~cens & (y > 0 if panel_log else np.isfinite(y))
                ax.plot(t_obs[keep], y[keep], "o", ms=3, color="black", alpha=0.6, label="observed")
                if cens.any() and obs_lloq is not None:
                    lloq = obs_lloq[ob]
                    kc = cens & np.isfinite(lloq) & (lloq > 0 if panel_log else True)
                    if kc.any():
                        ax.plot(t_obs[kc], lloq[kc], "v", ms=4, mfc="none", color="black", alpha=0.6,
                                label="below LLOQ (at LLOQ)")
        if panel_log:
            ax.set_yscale("log")
            ax.yaxis.set_minor_locator(plt.NullLocator())  # unlabelled; 100+ tick artists to lay out
            ax.yaxis.set_major_formatter(plt.FuncFormatter(_log_tick_label))
            if floor is not None:
                ax.set_ylim(bottom=floor)
        ax.set_title(name, y=1.0)  # a fixed position: no measuring of the tick labels
        ax.set_xlabel(f"time ({time_unit})" if time_unit else "time")
        ax.set_ylabel((units or {}).get(name, ""))
        ax.legend(loc="best")
    return _finish_panels(fig, axes, len(outputs), title)
