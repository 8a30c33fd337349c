"""Survival figures as clinical reports draw them: Kaplan-Meier curves and cumulative incidence.

Every panel has its curves (one line per arm, or per cause and arm), a shaded 95% band
(log-log), ``+`` marks where patients were censored, and under the x axis a table of the
numbers at risk at the tick days. Curves never share both colour and line style
(:func:`curve_style`); labels are words (underscores become spaces), the x label names the
time origin ("days from infusion", or the endpoint's ``origin`` event).

Censoring marks: one ``+`` per curve at each distinct time with at least one censoring
(the number censored there is not drawn). Where a curve has more than
:data:`MAX_CENSOR_MARKS` distinct censoring times (thousands of virtual patients censored
at random times) they are thinned to the first censoring time in each of
:data:`MAX_CENSOR_MARKS` equal stretches of the time axis, so that the marks do not hide
the lines; the last censoring time (the administrative censoring at the horizon, where
most virtual patients end) is always marked.

matplotlib is imported on first use (:func:`carkinetics.plots.style.pyplot`); each
function returns its figure, laid out with fixed margins (no tight bounding box).
"""

from __future__ import annotations

import numpy as np

from carkinetics.plots.style import grid_shape, pyplot
from carkinetics.stats.competing import aalen_johansen
from carkinetics.stats.logrank import logrank

#: Line colours, cycled (colour-blind-safe first).
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
#: Line styles, cycled with the colours so that no two of the first 32 curves share both.
LINESTYLES = ("-", "--", "-.", ":")
#: Most curves of a cumulative-incidence panel drawn with their bands (more would hide each other).
MAX_BANDS = 4
#: Most censoring marks per curve; more distinct censoring times are thinned (:func:`censor_marks`).
MAX_CENSOR_MARKS = 60
#: A curve with more steps than twice this is drawn through its value at the end of each of
#: this many equal stretches of the time axis (:func:`drawn_steps`)
DRAWN_STEPS = 2000
#: Label of the table under each panel (also the ``label`` of its axes).
AT_RISK = "numbers at risk"

_UNITS = {"d": "days", "day": "days", "days": "days", "h": "hours", "hour": "hours", "hours": "hours",
          "wk": "weeks", "week": "weeks", "weeks": "weeks", "month": "months", "months": "months"}


def curve_style(k):
    """Colour and line style of the ``k``-th curve of a panel.

    The colour cycles through :data:`COLOURS`; the line style shifts by one each time
    the colours wrap, so curves ``0 .. 31`` all differ in (colour, line style), and the
    first ones differ in both.

    Parameters
    ----------
    k : int

    Returns
    -------
    (str, str)
        Colour and matplotlib line style.
    """
    n = len(COLOURS)
    return COLOURS[k % n], LINESTYLES[(k + k // n) % len(LINESTYLES)]


def words(name):
    """A name as words: underscores become spaces (``new_donor`` -> ``new donor``).

    Parameters
    ----------
    name : object

    Returns
    -------
    str
    """
    return str(name).replace("_", " ").strip()


def time_label(time_unit="", origin=None):
    """The x label of a survival panel: ``days from infusion`` or ``days from <origin event>``.

    Parameters
    ----------
    time_unit : str
        The model's time unit (``day`` when empty).
    origin : str, optional
        The event the times are counted from (an endpoint's ``options['origin']``).

    Returns
    -------
    str
    """
    unit = _UNITS.get(str(time_unit or "day").strip().lower(), words(time_unit))
    return f"{unit} from {words(origin) if origin else 'infusion'}"


def at_risk_at(days, time, n_at_risk):
    """Numbers at risk at ``days``: patients whose time is at least the day.

    Parameters
    ----------
    days : array_like
        Days to count at.
    time : array_like
        Distinct observed times of a curve, increasing.
    n_at_risk : array_like
        Patients at risk just before each of ``time`` (a time on or after it).

    Returns
    -------
    ndarray of int
        The at-risk count of the first observed time on or after each day; 0 after the last.
    """
    time, n_at_risk = np.asarray(time, float), np.asarray(n_at_risk, float)
    i = np.searchsorted(time, np.asarray(days, float), side="left")
    return np.where(i < time.size, n_at_risk[np.clip(i, 0, max(time.size - 1, 0))] if time.size else 0,
                    0).astype(int)


def events_and_censored(survival, n_at_risk):
    """Events and censorings at each time of a Kaplan-Meier curve, from its survival and at-risk numbers.

    ``d_i = n_i (1 - S_i / S_{i-1})`` and ``c_i = n_i - d_i - n_{i+1}``, rounded (the
    Kaplan-Meier product-limit step read backwards).

    Parameters
    ----------
    survival, n_at_risk : array_like, shape (m,)
        As in :class:`carkinetics.stats.km.KaplanMeier` (or a ``km.csv`` curve).

    Returns
    -------
    (ndarray, ndarray)
        Events and censorings at each time (int).
    """
    s, n = np.asarray(survival, float), np.asarray(n_at_risk, float)
    before = np.concatenate([[1.0], s[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(before > 0, n * (1.0 - s / before), 0.0)
    d = np.clip(np.round(np.nan_to_num(d)), 0, n)
    c = np.clip(n - d - np.concatenate([n[1:], [0.0]]), 0, None)
    return d.astype(int), np.round(c).astype(int)


def censor_marks(censor_times, t_max, max_marks=MAX_CENSOR_MARKS):
    """The censoring times to mark: all of them, or thinned to ``max_marks`` stretches of ``[0, t_max]``.

    Parameters
    ----------
    censor_times : array_like
        Distinct censoring times of a curve, increasing.
    t_max : float
        End of the time axis.
    max_marks : int
        Most marks before thinning: then the first time in each of ``max_marks`` equal
        stretches of ``[0, t_max]``, and the last time.

    Returns
    -------
    ndarray of int
        Indices into ``censor_times``.
    """
    times = np.asarray(censor_times, float)
    if times.size <= max_marks:
        return np.arange(times.size)
    stretch = np.floor(times / (max(float(t_max), 1e-300) / max_marks))
    keep = np.flatnonzero(np.concatenate([[True], np.diff(stretch) > 0]))
    return np.union1d(keep, [times.size - 1])


def _table(t):
    """A table (DataFrame or mapping) as a dict of numpy arrays."""
    if hasattr(t, "columns") and hasattr(t, "to_numpy"):
        return {str(c): t[c].to_numpy() for c in t.columns}
    return {str(k): np.asarray(v) for k, v in dict(t).items()}


def _endpoint_texts(names, endpoints, descriptions, origins):
    """Per endpoint: (panel title, time origin or None)."""
    descriptions, origins = dict(descriptions or {}), dict(origins or {})
    if isinstance(endpoints, dict):  # name -> Endpoint (or a mapping with description / origin)
        for name, e in endpoints.items():
            get = e.get if isinstance(e, dict) else (lambda key, e=e: getattr(e, key, None))
            descriptions.setdefault(name, get("description") or "")
            options = get("options") or {}
            origin = get("origin") or options.get("origin")
            if origin:
                origins.setdefault(name, origin)
    return {n: (descriptions.get(n) or words(n), origins.get(n)) for n in names}


def _arm_order(arms):
    """Arms in order; the whole-cohort ``all`` only when alone."""
    arms = list(dict.fromkeys(str(a) for a in arms))
    if len(arms) > 1 and "all" in arms:
        arms.remove("all")
    return arms


def _arm_label(arm, arms):
    return "all patients" if arm == "all" and len(arms) == 1 else words(arm)


def _panels(plt, n, table_rows, title):
    """A figure with a grid of ``n`` panels, each with a numbers-at-risk table under its x axis.

    Sizes in inches: title 0.45, plot 2.9, tick labels and x label 0.6, table header and
    rows 0.2 each; 1.5 at the left for the y label and the table's row labels.
    """
    rows, cols = grid_shape(n)
    left, plot_w, right = 1.5, 4.2, 0.35
    top, plot_h, xaxis, row_h, gap = 0.45, 2.9, 0.6, 0.2, 0.25
    table_h = row_h * (table_rows + 1)
    cell_w, cell_h = left + plot_w + right, top + plot_h + xaxis + table_h + gap
    head = 0.45 if title else 0.0
    width, height = cols * cell_w, rows * cell_h + head
    fig = plt.figure(figsize=(width, height))
    pairs = []
    for i in range(n):
        r, c = divmod(i, cols)
        x0 = c * cell_w + left
        y_plot = height - head - r * cell_h - top - plot_h
        ax = fig.add_axes((x0 / width, y_plot / height, plot_w / width, plot_h / height))
        y_table = y_plot - xaxis - table_h
        ax_t = fig.add_axes((x0 / width, y_table / height, plot_w / width, table_h / height), label=AT_RISK)
        ax_t.set_axis_off()
        pairs.append((ax, ax_t))
    if title:
        fig.suptitle(title, y=1 - 0.3 / height, va="center")
    return fig, pairs


def _time_axis(plt, ax, t_max, time_unit=""):
    """Fix the x range to ``[0, t_max]`` (a margin for the marks at the horizon) and its ticks; return the ticks.

    In days over two months or more the ticks are whole months of 30 days (30, 60, 90, 180, 360 ...,
    at most 6 intervals), else round numbers.
    """
    t_max = float(t_max) if np.isfinite(t_max) and t_max > 0 else 1.0
    if _UNITS.get(str(time_unit or "day").strip().lower()) == "days" and t_max >= 60:
        step = next(s for s in (30, 60, 90, 180, 360, 720, 1440, 2880, np.inf) if t_max / s <= 6)
        step = step if np.isfinite(step) else 10.0 ** np.ceil(np.log10(t_max / 6))
        ticks = np.arange(0.0, t_max * (1 + 1e-9), step)
    else:
        ticks = plt.MaxNLocator(nbins=7, steps=[1, 2, 3, 5, 6, 10]).tick_values(0.0, t_max)
        ticks = ticks[(ticks >= 0) & (ticks <= t_max * (1 + 1e-9))]
    ax.set_xticks(ticks)
    ax.set_xlim(0.0, t_max * 1.02)
    return ticks


def _risk_table(ax_t, ticks, xlim, rows):
    """Write the numbers at risk: ``rows`` of (label, colour, counts at ``ticks``)."""
    ax_t.set_xlim(*xlim)
    ax_t.set_ylim(0, len(rows) + 1)
    trans = ax_t.get_yaxis_transform()  # x in axes fraction, y in data
    ax_t.text(-0.07, len(rows) + 0.5, "At risk", transform=trans, ha="right", va="center", fontsize=9,
              fontweight="bold")
    for i, (label, colour, counts) in enumerate(rows):
        y = len(rows) - i - 0.5
        ax_t.text(-0.07, y, label, transform=trans, ha="right", va="center", fontsize=9, color=colour)
        for day, count in zip(ticks, counts):
            ax_t.text(day, y, f"{int(count)}", ha="center", va="center", fontsize=9, color=colour,
                      gid=f"{AT_RISK}|{label}|{day:g}")


def _p_text(p):
    return "log-rank p < 0.001" if p < 0.001 else f"log-rank p = {p:.3f}" if p < 0.1 else f"log-rank p = {p:.2f}"


def _legend(ax, plt, loc, title=None, band=True):
    """The curves' legend with the band and censoring marks explained."""
    handles, labels = ax.get_legend_handles_labels()
    if band:
        handles.append(plt.Rectangle((0, 0), 1, 1, color="grey", alpha=0.25, lw=0))
        labels.append("95% CI (log-log)")
    if any(ln.get_gid() == "censored" and len(ln.get_xdata()) for ln in ax.get_lines()):
        handles.append(plt.Line2D([], [], ls="none", marker="+", color="black", ms=7))
        labels.append("censored")
    ax.legend(handles, labels, loc=loc, title=title, title_fontsize=9)


def _factorized(values):
    """``(codes, labels)``: each value as the index of its text in ``labels`` (the distinct
    values as text, in the order they first come).

    A Kaplan-Meier table lists each curve's rows together, so its text columns are read as
    runs of one value: a text copy of the column (``astype(str)``) of the 4.6 million rows of
    a 10^6-patient table took 460 MB in the process drawing the figure.
    """
    v = np.asarray(values)
    if v.size == 0:
        return np.zeros(0, dtype=np.int32), []
    starts = np.concatenate([[0], np.flatnonzero(v[1:] != v[:-1]) + 1])
    labels = {}
    run_codes = np.array([labels.setdefault(str(v[i]), len(labels)) for i in starts], dtype=np.int32)
    return np.repeat(run_codes, np.diff(np.append(starts, v.size))), list(labels)


def _km_curves(cols, name, arms, ends, arm_col):
    """Per arm of endpoint ``name``: (time, survival, lower, upper, n_at_risk or None), sorted by
    time. ``ends``, ``arm_col``: the endpoint and arm columns, :func:`_factorized`."""
    time = cols["time"].astype(float)
    curves = {}
    if name not in ends[1]:
        return curves
    in_panel = ends[0] == ends[1].index(name)
    for arm in arms:
        if arm not in arm_col[1]:
            continue
        a = np.flatnonzero(in_panel & (arm_col[0] == arm_col[1].index(arm)))
        if not a.size:
            continue
        a = a[np.argsort(time[a], kind="stable")]
        n = cols["n_at_risk"][a].astype(float) if "n_at_risk" in cols else None
        curves[arm] = (time[a], cols["survival"][a].astype(float), cols["lower"][a].astype(float),
                       cols["upper"][a].astype(float), n)
    return curves


def _km_logrank(curves):
    """Log-rank p-value between two curves rebuilt from their events and censorings (or None)."""
    if len(curves) != 2 or any(c[4] is None for c in curves.values()):
        return None
    t, e, g = [], [], []
    for k, (time, s, _, _, n) in enumerate(curves.values()):
        d, c = events_and_censored(s, n)
        t += [np.repeat(time, d), np.repeat(time, c)]
        e += [np.ones(d.sum()), np.zeros(c.sum())]
        g += [np.full(d.sum() + c.sum(), k)]
    t, e, g = np.concatenate(t), np.concatenate(e), np.concatenate(g)
    if not e.any() or np.unique(g).size < 2:
        return None
    return logrank(t, e, g).pvalue


def plot_kaplan_meier(km, endpoints=None, time_unit="", title=None, descriptions=None, origins=None):
    """Kaplan-Meier curves, one panel per time-to-event endpoint, one line per arm.

    Each panel shows the curves with their 95% log-log bands, ``+`` at the censoring
    times, and the numbers at risk per arm at the tick days in a table under the x axis;
    with exactly two arms the legend's title gives the log-rank p-value.

    Parameters
    ----------
    km : pandas.DataFrame or mapping of str to array
        ``arm, endpoint, time, survival, lower, upper, n_at_risk`` (:attr:`CohortResult.km`);
        each curve starts at 1 at time 0 and steps down at the listed times. The whole-cohort
        arm ``all`` is drawn only when it is the only arm. Without ``n_at_risk`` there are no
        at-risk numbers, censoring marks or log-rank test.
    endpoints : sequence of str or mapping of str to Endpoint, optional
        Panels to draw (default: every endpoint in ``km``); a mapping to
        :class:`~carkinetics.scenario.endpoints.Endpoint` objects (or dicts with
        ``description`` / ``origin``) also gives the titles and time origins.
    time_unit : str
        The model's time unit (``day`` when empty).
    title : str, optional
    descriptions : mapping of str to str, optional
        Endpoint -> panel title (default: the name in words).
    origins : mapping of str to str, optional
        Endpoint -> the event its times are counted from (default: infusion).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    cols = _table(km)
    ends, arm_col = _factorized(cols["endpoint"]), _factorized(cols["arm"])
    names = list(endpoints or ends[1])
    texts = _endpoint_texts(names, endpoints, descriptions, origins)
    arms = _arm_order(arm_col[1])
    fig, pairs = _panels(plt, max(1, len(names)), len(arms) if "n_at_risk" in cols else 0, title)
    for (ax, ax_t), name in zip(pairs, names):
        curves = _km_curves(cols, name, arms, ends, arm_col)
        t_max = max((c[0].max() for c in curves.values() if c[0].size), default=1.0)
        ticks = _time_axis(plt, ax, t_max, time_unit)
        rows = []
        for k, arm in enumerate(arms):
            if arm not in curves:
                continue
            time, s, lo, hi, n = curves[arm]
            colour, style = curve_style(k)
            label = _arm_label(arm, arms)
            t, s_drawn, lo_drawn, hi_drawn = drawn_steps(np.concatenate([[0.0], time]), t_max,
                                                         np.concatenate([[1.0], s]), np.concatenate([[1.0], lo]),
                                                         np.concatenate([[1.0], hi]))
            ax.fill_between(t, lo_drawn, hi_drawn, step="post", color=colour, alpha=0.15, lw=0)
            ax.step(t, s_drawn, where="post", color=colour, ls=style, lw=2, label=label)
            if n is not None:
                _, c = events_and_censored(s, n)
                tc, sc = time[c > 0], s[c > 0]
                shown = censor_marks(tc, t_max)
                ax.plot(tc[shown], sc[shown], ls="none", marker="+", ms=6, mew=1.1, color=colour,
                        gid="censored", clip_on=False)
                rows.append((label, colour, at_risk_at(ticks, time, n)))
        if rows:
            _risk_table(ax_t, ticks, ax.get_xlim(), rows)
        ax.set_ylim(-0.02, 1.02)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_title(texts[name][0], y=1.0)
        ax.set_xlabel(time_label(time_unit, texts[name][1]))
        ax.set_ylabel("event-free probability (0-1)")
        p = _km_logrank(curves)
        _legend(ax, plt, "best", title=None if p is None else _p_text(p))
    for ax, ax_t in pairs[len(names):]:
        ax.set_visible(False)
        ax_t.set_visible(False)
    return fig


def drawn_steps(t, t_max, *curves, steps=DRAWN_STEPS):
    """The points of step curves (right-continuous, ``where="post"``) that a figure draws.

    A curve of a large cohort has a step at every distinct event time (about a million at
    10^6 patients): far more than a figure has pixels, and matplotlib's paths for it take
    gigabytes. With more than ``2 * steps`` points, the curves keep their first and last point
    and, in each of ``steps`` equal stretches of [0, ``t_max``], the last point in it; so the
    drawn curve has the exact value at the end of every stretch, and a step inside a stretch
    is drawn at most one stretch (1/``steps`` of the axis, under a pixel) late. The numbers at
    risk, censoring marks and log-rank test are computed from the whole curve, not these points.

    Parameters
    ----------
    t : ndarray
        Increasing times of the steps.
    t_max : float
        The end of the time axis.
    *curves : ndarray
        Values at ``t``, one array per curve (estimate, lower, upper).

    Returns
    -------
    tuple of ndarray
        ``t`` and each curve at the kept points.
    """
    t = np.asarray(t, dtype=float)
    if t.size <= 2 * steps or not t_max > 0:
        return (t, *curves)
    ends = np.linspace(0.0, float(t_max), steps + 1)[1:]
    last = np.searchsorted(t, ends, side="right") - 1
    keep = np.unique(np.concatenate([[0], last[last >= 0], [t.size - 1]]))
    return (t[keep], *(np.asarray(c)[keep] for c in curves))


def _cif_panel(plt, ax, data, outcome, causes, arms, arm_of, time_unit):
    """Draw one outcome's cumulative incidence per cause and arm; return its numbers-at-risk rows."""
    time = data[outcome].astype(float)
    code = data[f"{outcome}_cause"].astype(float)
    keep = np.isfinite(time) & np.isfinite(code)
    t_max = time[keep].max() if keep.any() else 1.0
    ticks = _time_axis(plt, ax, t_max, time_unit)
    bands = len(causes) * len(arms) <= MAX_BANDS
    by_cause = len(causes) <= len(COLOURS) and len(arms) <= len(LINESTYLES)
    rows = []
    for a, arm in enumerate(arms):
        sel = keep & (arm_of == arm)
        if not sel.any():
            continue
        ci = aalen_johansen(time[sel], code[sel], causes=range(1, len(causes) + 1))
        t = np.concatenate([[0.0], ci.times])
        arm_label = _arm_label(arm, arms)
        censored = np.flatnonzero(np.isin(ci.times, time[sel & (code == 0)]))
        censored = censored[censor_marks(ci.times[censored], t_max)]
        for j, cause in enumerate(causes):
            if by_cause:  # colour by cause, line style by arm
                colour, style = COLOURS[j], LINESTYLES[a]
            else:
                colour, style = curve_style(a * len(causes) + j)
            label = words(cause) if len(arms) == 1 else f"{words(cause)}, {arm_label}"
            td, cif, lower, upper = drawn_steps(t, t_max, np.concatenate([[0.0], ci.cif[j]]),
                                                np.concatenate([[0.0], ci.lower[j]]),
                                                np.concatenate([[0.0], ci.upper[j]]))
            if bands:
                ax.fill_between(td, lower, upper, step="post", color=colour, alpha=0.12, lw=0)
            ax.step(td, cif, where="post", color=colour, ls=style, lw=2, label=label)
            ax.plot(ci.times[censored], ci.cif[j][censored], ls="none", marker="+", ms=6, mew=1.1, color=colour,
                    gid="censored", clip_on=False)
        colour = "black" if by_cause else curve_style(a * len(causes))[0]
        rows.append((arm_label, colour, at_risk_at(ticks, ci.times, ci.n_at_risk)))
    return ticks, rows, bands


def plot_cumulative_incidence(patients, causes, time_unit="", title=None, descriptions=None, origins=None,
                              arms=None):
    """Cumulative incidence of competing causes (Aalen-Johansen), one panel per outcome.

    One line per cause (and arm) with its 95% log-log band (up to :data:`MAX_BANDS` lines;
    with more lines the bands would hide each other and are left out), overlaid; with at most 8
    causes and 4 arms the colour gives the cause and the line style the arm. ``+`` marks
    the censoring times on every curve; the table under the x axis gives the patients
    at risk (event-free of every cause) per arm.

    Parameters
    ----------
    patients : pandas.DataFrame or mapping of str to array
        ``arm``, optional ``status`` (only status 0 is used), and per outcome ``NAME`` (time)
        and ``NAME_cause`` (0 censored, ``k`` the k-th cause).
    causes : mapping of str to sequence of str
        Outcome -> its cause names (:attr:`EndpointSet.causes`); outcomes with a single
        cause are left out (their incidence is one minus the Kaplan-Meier curve).
    time_unit : str
    title : str, optional
    descriptions, origins : mapping of str to str, optional
        As for :func:`plot_kaplan_meier`.
    arms : sequence of str, optional
        The arms in the order to draw them (default: as they come in ``patients``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    data = _table(patients)
    ok = data["status"].astype(float) == 0 if "status" in data else np.ones(len(data["arm"]), bool)
    data = {k: v[ok] for k, v in data.items()}
    outcomes = [name for name, c in dict(causes).items() if len(c) > 1]
    texts = _endpoint_texts(outcomes, None, descriptions, origins)
    arm_of = data["arm"].astype(str)
    arms = _arm_order([a for a in (arms or ()) if a in set(arm_of)] + list(arm_of))
    fig, pairs = _panels(plt, max(1, len(outcomes)), len(arms), title)
    for (ax, ax_t), name in zip(pairs, outcomes):
        ticks, rows, bands = _cif_panel(plt, ax, data, name, tuple(causes[name]), arms, arm_of, time_unit)
        _risk_table(ax_t, ticks, ax.get_xlim(), rows)
        ax.set_ylim(-0.02, 1.02)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_title(texts[name][0], y=1.0)
        ax.set_xlabel(time_label(time_unit, texts[name][1]))
        ax.set_ylabel("cumulative incidence, probability (0-1)")
        _legend(ax, plt, "best", band=bands)
    for ax, ax_t in pairs[len(outcomes):]:
        ax.set_visible(False)
        ax_t.set_visible(False)
    return fig
