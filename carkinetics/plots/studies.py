"""Figures for protocol-design discussions, drawn from saved sweep and sensitivity results.

Every figure is meant to be projected: large type, thick lines, at least 1600 pixels wide,
saved as PNG and PDF. Each function takes results (never re-simulates) and returns the
matplotlib figure; :func:`carkinetics.studies.figures.plot_results` regenerates every figure of a
results folder with them.

- :func:`plot_outcome_curves`: outcome probabilities against one axis (e.g. dose), one line
  per value of another (e.g. donor source), 95% interval bands.
- :func:`plot_heatmap`: one outcome over any two grid axes.
- :func:`plot_km`: Kaplan-Meier curves per grid point, with reported survival points overlaid.
- :func:`plot_tornado`: one-at-a-time sensitivity; :func:`plot_global_sensitivity`: PRCC or
  Sobol indices with their intervals.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from carkinetics.plots.style import pyplot

#: Type and line sizes readable from the back of a room.
PROJECTOR_STYLE = {
    "figure.dpi": 100, "font.size": 17, "axes.titlesize": 19, "axes.labelsize": 18,
    "xtick.labelsize": 15, "ytick.labelsize": 15, "legend.fontsize": 14, "legend.title_fontsize": 15,
    "figure.titlesize": 21, "lines.linewidth": 3.0, "lines.markersize": 9, "axes.grid": True,
    "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
}
#: Saved PNG resolution; figures are at least 11 inches wide, so at least 1700 pixels.
PNG_DPI = 160
MIN_WIDTH_IN = 11.0
_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")
    plt = pyplot()
    plt.rcParams.update(PROJECTOR_STYLE)  # every key of the package style, larger
    return plt


def save_figure(fig, path, formats=("png", "pdf")) -> list:
    """Save ``fig`` as ``path.<fmt>`` for each format (PNG at :data:`PNG_DPI`); close it."""
    plt = _plt()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        p = path.with_suffix("." + fmt)
        fig.savefig(p, dpi=PNG_DPI if fmt == "png" else None)
        out.append(p)
    plt.close(fig)
    return out


# ----------------------------------------------------------------------------------------
# labels
# ----------------------------------------------------------------------------------------


def _fmt_value(v) -> str:
    if isinstance(v, str):
        return v
    v = float(v)
    if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-2):
        mant, exp = f"{v:.2e}".split("e")
        mant = mant.rstrip("0").rstrip(".")
        return f"{mant}e{int(exp)}"
    return f"{v:g}"


def _axis_title(name) -> str:
    return name.replace("_", " ")


def outcome_label(endpoint, statistic, descriptions=None) -> str:
    """A readable label: the endpoint's description (or name) and the statistic."""
    desc = (descriptions or {}).get(endpoint) or endpoint.replace("_", " ")
    if statistic.startswith("survival@"):
        return f"{desc}: survival at day {_fmt_value(float(statistic.split('@')[1]))}"
    if statistic == "proportion":
        return f"{desc}"
    return f"{desc} ({statistic})"


def _ylabel(statistic) -> str:
    if statistic == "proportion":
        return "probability"
    if statistic.startswith("survival@"):
        return "survival probability"
    return statistic


def _is_numeric(values) -> bool:
    for v in values:
        if isinstance(v, str):
            try:
                float(v)
            except ValueError:
                return False
            if v.strip().lower() in ("nan", "none", "inf"):
                return False
    return True


# ----------------------------------------------------------------------------------------
# selecting a slice of the grid
# ----------------------------------------------------------------------------------------


def _slice(table, result, free, fixed=None):
    """Rows of ``table`` with every axis other than ``free`` at its fixed value.

    Returns the rows and a dict of the values the other axes were fixed at.
    """
    fixed = dict(result.info.get("sweep", {}).get("plots", {}).get("fixed", {}) | (fixed or {}))
    chosen = {}
    rows = table
    for name in result.axis_names:
        if name in free:
            continue
        labels = list(result.grid[name].unique())
        want = fixed.get(name, labels[0])
        match = rows[rows[name].astype(str) == str(want)]
        if match.empty:
            raise ValueError(f"axis '{name}' has no value {want!r} (values: {labels})")
        rows = match
        chosen[name] = want
    if "arm" not in free and "arm" not in result.axis_names and "arm" in rows.columns:
        arms = list(rows["arm"].unique())
        want = fixed.get("arm", "all" if "all" in arms else arms[0])
        rows = rows[rows["arm"] == want]
        if len(arms) > 1:
            chosen["arm"] = want
    return rows, chosen


def _fixed_text(chosen) -> str:
    return ", ".join(f"{_axis_title(k)} = {_fmt_value(v)}" for k, v in chosen.items())


# ----------------------------------------------------------------------------------------
# outcome curves
# ----------------------------------------------------------------------------------------


def plot_outcome_curves(result, outcomes, x=None, lines=None, fixed=None, title=None, log_x=None):
    """Outcome probabilities against one grid axis, one line per value of another.

    Parameters
    ----------
    result : SweepResult
    outcomes : sequence of str
        ``endpoint``, ``endpoint:statistic`` or ``endpoint@day`` (Kaplan-Meier survival
        at that day), one panel each.
    x : str, optional
        The axis on the horizontal axis (default: the first numeric axis).
    lines : str, optional
        The axis (or ``"arm"``) drawn as separate lines (default: ``arm`` if the sweep
        has arms, else the next axis).
    fixed : dict, optional
        Values of the remaining axes (default: ``[sweep.plots] fixed``, then each axis's
        first value); stated under the title.
    log_x : bool, optional
        Logarithmic horizontal axis (default: when the values span more than 3-fold).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    x, lines = _default_axes(result, x, lines)
    outcomes = list(outcomes)
    n = len(outcomes)
    cols = 1 if n == 1 else 2
    rows_n = math.ceil(n / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(max(MIN_WIDTH_IN, 7.5 * cols), 5.6 * rows_n + 1.2),
                             squeeze=False)
    descriptions = result.info.get("endpoint_descriptions", {})
    chosen_all = {}
    handles = {}
    for ax, spec in zip(axes.flat, outcomes):
        endpoint, statistic = result.parse_outcome(spec)
        table = result.outcome(endpoint, statistic)
        free = {x} | ({lines} if lines else set())
        rows, chosen = _slice(table, result, free, fixed)
        chosen_all.update(chosen)
        xs_all = list(result.grid[x].unique()) if x in result.grid.columns else list(rows[x].unique())
        numeric = _is_numeric(xs_all)
        groups = list(dict.fromkeys(rows[lines])) if lines else [None]
        for k, g in enumerate(groups):
            sub = rows if g is None else rows[rows[lines] == g]
            if numeric:
                sub = sub.assign(_x=sub[x].astype(float)).sort_values("_x")
                xv = sub["_x"].to_numpy(float)
            else:
                order = {str(v): i for i, v in enumerate(xs_all)}
                sub = sub.assign(_x=[order[str(v)] for v in sub[x]]).sort_values("_x")
                xv = sub["_x"].to_numpy(float)
            colour = _COLOURS[k % len(_COLOURS)]
            label = "all patients" if g is None else _fmt_value(g)
            (h,) = ax.plot(xv, sub["value"].to_numpy(float), "-o", color=colour, label=label)
            ax.fill_between(xv, sub["lower"].to_numpy(float), sub["upper"].to_numpy(float), color=colour,
                            alpha=0.18, lw=0)
            handles[label] = h
        if numeric:
            xs = np.array([float(v) for v in xs_all])
            use_log = log_x if log_x is not None else (xs.min() > 0 and xs.max() / xs.min() > 3)
            if use_log:
                ax.set_xscale("log")
                ax.minorticks_off()
            ax.set_xticks(np.sort(xs), [_fmt_value(v) for v in np.sort(xs)])
        else:
            ax.set_xticks(range(len(xs_all)), [str(v) for v in xs_all])
        ax.set_xlabel(_axis_title(x))
        ax.set_ylabel(_ylabel(statistic))
        if statistic == "proportion" or statistic.startswith("survival@"):
            ax.set_ylim(-0.02, 1.02)
        ax.set_title(outcome_label(endpoint, statistic, descriptions))
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if lines:
        fig.legend(list(handles.values()), list(handles.keys()), title=_axis_title(lines), loc="center right",
                   frameon=False)
    sub = _fixed_text(chosen_all)
    fig.suptitle((title or f"{result.info.get('scenario_name', 'sweep')}: outcomes by {_axis_title(x)}")
                 + (f"\n{sub}" if sub else "") + f"\nshaded: {interval_note(result.info)}")
    fig.tight_layout(rect=(0, 0, 0.86 if lines else 1, 1))
    return fig


def interval_note(info, short=False) -> str:
    """What the shaded intervals of a sweep's figures hold: Monte Carlo error, or also parameter uncertainty."""
    reps = (info or {}).get("replicates")
    if isinstance(reps, dict) and reps.get("n"):
        if short:
            return f"95% over {reps['n']} parameter draws + Monte Carlo"
        return f"95% interval over {reps['n']} parameter draws and Monte Carlo error; line: median"
    return "95% interval (Monte Carlo)"


def plot_replicate_outcomes(summary, title=""):
    """Outcome probabilities of a cohort under parameter draws: median and intervals, per arm.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`carkinetics.studies.replicates.combine_replicates`: arm, endpoint,
        statistic, value, lower, upper, draws_lower, draws_upper.

    Returns
    -------
    matplotlib.figure.Figure or None
        None when there is no proportion to draw.
    """
    plt = _plt()
    rows = summary[(summary["statistic"] == "proportion") & summary["value"].notna()]
    if rows.empty:
        return None
    endpoints = list(dict.fromkeys(rows["endpoint"]))
    arms = list(dict.fromkeys(rows["arm"]))
    fig, ax = plt.subplots(figsize=(MIN_WIDTH_IN, max(4.5, 0.55 * len(endpoints) * max(1, len(arms)) ** 0.5 + 3)))
    width = 0.7 / max(1, len(arms))
    for k, arm in enumerate(arms):
        sub = rows[rows["arm"] == arm].set_index("endpoint").reindex(endpoints)
        y = np.arange(len(endpoints)) + (k - (len(arms) - 1) / 2) * width
        v = sub["value"].to_numpy(float)
        colour = _COLOURS[k % len(_COLOURS)]
        err = np.clip([v - sub["lower"].to_numpy(float), sub["upper"].to_numpy(float) - v], 0, None)  # rounding
        ax.errorbar(v, y, xerr=err, fmt="o",
                    color=colour, capsize=4, label=str(arm))
        ax.hlines(y, sub["draws_lower"].to_numpy(float), sub["draws_upper"].to_numpy(float), color=colour, lw=5,
                  alpha=0.3)
    ax.set_yticks(np.arange(len(endpoints)), endpoints)
    ax.invert_yaxis()
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("probability")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, title="arm")
    ax.set_title((title + "\n" if title else "") + "dot: median over the draws; bar: 95% interval (parameter\n"
                 "uncertainty and Monte Carlo error); thick: 95% range of the draws", fontsize=12)
    fig.tight_layout()
    return fig


def plot_replicate_km(km, title=""):
    """Kaplan-Meier curves under parameter draws, one panel per endpoint, one curve per arm, with intervals."""
    plt = _plt()
    endpoints = list(dict.fromkeys(km["endpoint"]))
    cols = 1 if len(endpoints) == 1 else 2
    nrows = math.ceil(len(endpoints) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(max(MIN_WIDTH_IN, 7.5 * cols), 5.0 * nrows + 1.0),
                             squeeze=False)
    for ax, ep in zip(axes.flat, endpoints):
        sub_ep = km[km["endpoint"] == ep]
        for k, arm in enumerate(dict.fromkeys(sub_ep["arm"])):
            sub = sub_ep[sub_ep["arm"] == arm].sort_values("time")
            colour = _COLOURS[k % len(_COLOURS)]
            ax.step(sub["time"], sub["survival"], where="post", color=colour, lw=2, label=str(arm))
            ax.fill_between(sub["time"].to_numpy(float), sub["lower"].to_numpy(float), sub["upper"].to_numpy(float),
                            step="post", color=colour, alpha=0.15, lw=0)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(ep)
        ax.set_xlabel("days after CAR-T infusion")
        ax.set_ylabel("event-free probability")
        ax.legend(frameon=False, fontsize=10)
    for ax in list(axes.flat)[len(endpoints):]:
        ax.set_visible(False)
    fig.suptitle((title + "\n" if title else "") + "line: median over the draws; shaded: 95% interval (parameter\n"
                 "uncertainty and Monte Carlo error)", fontsize=12)
    fig.tight_layout()
    return fig


def _default_axes(result, x, lines):
    names = result.axis_names
    if x is None:
        x = result.info.get("sweep", {}).get("plots", {}).get("x")
    if x is None:
        numeric = [a for a in names if _is_numeric(result.grid[a].unique())]
        x = numeric[0] if numeric else (names[0] if names else "arm")
    if lines is None:
        lines = result.info.get("sweep", {}).get("plots", {}).get("lines")
    if lines is None:
        has_arms = "arm" in names or ("arm" in result.summary.columns
                                      and len(set(result.summary["arm"]) - {"all"}) > 1)
        others = [a for a in names if a != x]
        lines = "arm" if has_arms and x != "arm" else (others[0] if others else None)
    if x not in names and x != "arm":
        raise ValueError(f"'{x}' is not an axis of this sweep (axes: {names})")
    if lines is not None and lines not in names and lines != "arm":
        raise ValueError(f"'{lines}' is not an axis of this sweep (axes: {names})")
    return x, lines


# ----------------------------------------------------------------------------------------
# heatmap
# ----------------------------------------------------------------------------------------


def plot_heatmap(result, outcome, x, y, fixed=None, title=None):
    """One outcome over two grid axes, every cell annotated with its value.

    Parameters
    ----------
    result : SweepResult
    outcome : str
        ``endpoint``, ``endpoint:statistic`` or ``endpoint@day``.
    x, y : str
        Grid axes (or ``"arm"``) on the horizontal and vertical axes.
    fixed : dict, optional
        Values of the other axes (default: their first values), stated in the title.
    """
    plt = _plt()
    endpoint, statistic = result.parse_outcome(outcome)
    table = result.outcome(endpoint, statistic)
    rows, chosen = _slice(table, result, {x, y}, fixed)
    xs = _ordered(result, rows, x)
    ys = _ordered(result, rows, y)
    z = np.full((len(ys), len(xs)), np.nan)
    zlo, zhi = np.full_like(z, np.nan), np.full_like(z, np.nan)
    xi = {str(v): i for i, v in enumerate(xs)}
    yi = {str(v): i for i, v in enumerate(ys)}
    for r in rows.itertuples(index=False):
        rd = r._asdict()
        cell = yi[str(rd[y])], xi[str(rd[x])]
        z[cell], zlo[cell], zhi[cell] = rd["value"], rd.get("lower", np.nan), rd.get("upper", np.nan)
    with_interval = bool(result.info.get("replicates"))  # parameter uncertainty: each cell shows its interval
    fig, ax = plt.subplots(figsize=(max(MIN_WIDTH_IN, 1.6 * len(xs) + 4), max(6.0, 1.0 * len(ys) + 3)))
    prob = statistic == "proportion" or statistic.startswith("survival@")
    im = ax.imshow(z, origin="lower", aspect="auto", cmap="viridis",
                   vmin=0 if prob else None, vmax=1 if prob else None)
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(z[i, j]):
                light = im.norm(z[i, j]) < 0.55
                text = f"{z[i, j]:.2f}" if abs(z[i, j]) < 100 else _fmt_value(z[i, j])
                if with_interval and np.isfinite(zlo[i, j]) and np.isfinite(zhi[i, j]) and abs(z[i, j]) < 100:
                    text += f"\n[{zlo[i, j]:.2f}, {zhi[i, j]:.2f}]"
                ax.text(j, i, text, ha="center", va="center", fontsize=16 if "\n" not in text else 13,
                        color="white" if light else "black")
    ax.set_xticks(range(len(xs)), [_fmt_value(v) for v in xs])
    ax.set_yticks(range(len(ys)), [_fmt_value(v) for v in ys])
    ax.set_xlabel(_axis_title(x))
    ax.set_ylabel(_axis_title(y))
    ax.grid(False)
    cb = fig.colorbar(im, ax=ax)
    cb.set_label(_ylabel(statistic))
    sub = _fixed_text(chosen)
    descriptions = result.info.get("endpoint_descriptions", {})
    note = f"\nmedian [{interval_note(result.info, short=True)}]" if with_interval else ""
    ax.set_title((title or outcome_label(endpoint, statistic, descriptions)) + (f"\n{sub}" if sub else "") + note)
    fig.tight_layout()
    return fig


def _ordered(result, rows, axis):
    if axis in result.axis_names:
        labels = list(result.grid[axis].unique())
    else:
        labels = list(dict.fromkeys(rows[axis]))
    present = {str(v) for v in rows[axis]}
    labels = [v for v in labels if str(v) in present]
    if _is_numeric(labels):
        labels = sorted(labels, key=float)
    return labels


# ----------------------------------------------------------------------------------------
# Kaplan-Meier
# ----------------------------------------------------------------------------------------


def plot_km(result, endpoint, points=None, arm=None, targets=None, max_curves=12, title=None):
    """Kaplan-Meier curves of one time-to-event endpoint, one per grid point.

    Parameters
    ----------
    result : SweepResult
    endpoint : str
        A time-to-event endpoint (e.g. ``os``).
    points : sequence of int, optional
        Grid points to draw (default: all, up to ``max_curves``).
    arm : str, optional
        Summary group (default: the point's arm, or ``all``).
    targets : pandas.DataFrame, optional
        Reported survival to overlay: columns ``time``, ``value``, ``lower``,
        ``upper``, ``label`` (see :func:`km_targets`).
    """
    plt = _plt()
    km = result.km[result.km["endpoint"] == endpoint]
    if km.empty:
        have = sorted(set(result.km["endpoint"]))
        raise ValueError(f"'{endpoint}' has no Kaplan-Meier summary in this sweep (time-to-event endpoints: {have})")
    ids = sorted(set(km["point"])) if points is None else list(points)
    ids = ids[:max_curves]
    fig, ax = plt.subplots(figsize=(MIN_WIDTH_IN + 2, 7.5))
    grid = result.grid.set_index("point")
    varying = [a for a in result.axis_names if grid.loc[ids, a].nunique() > 1] if ids else []
    for k, pid in enumerate(ids):
        sub = km[km["point"] == pid]
        groups = list(dict.fromkeys(sub["arm"]))
        g = arm if arm is not None else ("all" if "all" in groups else groups[0])
        sub = sub[sub["arm"] == g].sort_values("time")
        colour = _COLOURS[k % len(_COLOURS)] if len(ids) <= len(_COLOURS) else plt.cm.viridis(k / max(1, len(ids) - 1))
        lab = ", ".join(f"{_axis_title(a)} {_fmt_value(grid.loc[pid, a])}" for a in varying) or f"point {pid}"
        ax.step(sub["time"], sub["survival"], where="post", color=colour, label=lab, lw=2.5)
        if len(ids) <= 4:  # more bands than that hide each other
            ax.fill_between(sub["time"].to_numpy(float), sub["lower"].to_numpy(float),
                            sub["upper"].to_numpy(float), step="post", color=colour, alpha=0.12, lw=0)
    if targets is not None and len(targets):
        t = targets
        # plain lists: matplotlib calls float() on a one-element Series or array, which warns
        # with pandas < 3 and older numpy
        yerr = [(t["value"] - t["lower"]).tolist(), (t["upper"] - t["value"]).tolist()]
        ax.errorbar(t["time"], t["value"], yerr=yerr, fmt="s",
                    color="black", ms=11, capsize=6, lw=2, label="reported (95% interval)", zorder=5)
        for r in t.itertuples():
            ax.annotate(str(r.label), (r.time, r.value), textcoords="offset points", xytext=(8, 8), fontsize=13)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("days after CAR-T infusion")
    ax.set_ylabel("survival probability")
    desc = result.info.get("endpoint_descriptions", {}).get(endpoint) or endpoint
    fixed = {a: grid.loc[ids[0], a] for a in result.axis_names if a not in varying} if ids else {}
    sub_title = _fixed_text(fixed)
    note = f"\nshaded: {interval_note(result.info, short=True)}" if result.info.get("replicates") else ""
    ax.set_title((title or f"Kaplan-Meier: {desc}") + (f"\n{sub_title}" if sub_title else "") + note)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=12)
    fig.tight_layout()
    return fig


def km_targets(scenario_targets, reference, endpoint):
    """Reported survival points for an endpoint, from a scenario's ``[targets]`` section.

    Parameters
    ----------
    scenario_targets : dict
        ``target_id -> TargetSpec`` (``scenario.target_specs``).
    reference : pandas.DataFrame
        The reference table (:func:`carkinetics.scenario.reference.load_targets`).
    endpoint : str

    Returns
    -------
    pandas.DataFrame
        Columns time, value, lower, upper, label: rows whose statistic is
        ``km_estimate`` for this endpoint.
    """
    import pandas as pd

    rows = []
    by_id = reference.set_index("target_id")
    for tid, spec in (scenario_targets or {}).items():
        if spec.endpoint != endpoint or tid not in by_id.index:
            continue
        ref = by_id.loc[tid]
        stat = spec.statistic or ref["statistic"]
        day = spec.time if spec.time is not None else ref["timepoint_days"]
        if stat != "km_estimate" or day is None or not np.isfinite(float(day)):
            continue
        lo = ref["lower"] if np.isfinite(ref["lower"]) else ref["value"]
        hi = ref["upper"] if np.isfinite(ref["upper"]) else ref["value"]
        rows.append({"time": float(day), "value": float(ref["value"]), "lower": float(lo), "upper": float(hi),
                     "label": tid})
    return pd.DataFrame(rows, columns=["time", "value", "lower", "upper", "label"])


# ----------------------------------------------------------------------------------------
# sensitivity
# ----------------------------------------------------------------------------------------


def plot_tornado(tornado, outcome=None, max_bars=20, title=None):
    """One-at-a-time sensitivity: outcome at each parameter's low and high value.

    Parameters
    ----------
    tornado : pandas.DataFrame
        From :func:`carkinetics.studies.tornado.tornado` (columns parameter, low, high,
        outcome_low, outcome_high, baseline).
    outcome : str, optional
        Label of the outcome (horizontal axis).
    """
    plt = _plt()
    t = tornado.copy()
    t["swing"] = (t["outcome_high"] - t["outcome_low"]).abs()
    t = t.sort_values("swing", ascending=True).tail(max_bars)
    base = float(t["baseline"].iloc[0]) if len(t) else 0.0
    fig, ax = plt.subplots(figsize=(MIN_WIDTH_IN + 2, max(6.0, 0.55 * len(t) + 2.5)))
    y = np.arange(len(t))
    lo = t["outcome_low"].to_numpy(float) - base
    hi = t["outcome_high"].to_numpy(float) - base
    ax.barh(y, lo, left=base, color=_COLOURS[0], label="parameter at its low value", height=0.7)
    ax.barh(y, hi, left=base, color=_COLOURS[1], label="parameter at its high value", height=0.7, alpha=0.85)
    ax.axvline(base, color="black", lw=2)
    labels = [f"{p}  [{_fmt_value(a)}, {_fmt_value(b)}]" for p, a, b in zip(t["parameter"], t["low"], t["high"])]
    ax.set_yticks(y, labels)
    ax.set_xlabel(outcome or str(tornado.attrs.get("outcome", "outcome")))
    ax.grid(axis="y", visible=False)
    ax.legend(loc="lower right", frameon=False)
    ax.set_title(title or f"One-at-a-time sensitivity (baseline {base:.3g})")
    fig.tight_layout()
    return fig


def plot_global_sensitivity(table, outcome=None, max_bars=20, title=None, dummy=None):
    """Global sensitivity: PRCC (or Sobol indices) per parameter, with 95% intervals.

    The inert dummy parameter (named ``dummy``), when the table has it, is drawn in grey with
    its bound shaded: indices inside the band are what sampling noise alone gives. Parameters
    not distinguishable from the dummy (column ``significant`` False) are drawn pale;
    parameters not sampled (no value: they cannot reach the outcome) are left out.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`carkinetics.studies.global_sensitivity.global_sensitivity` (or the pure
        :func:`~carkinetics.stats.sensitivity_indices.prcc` / :func:`~carkinetics.stats.sensitivity_indices.sobol`;
        columns parameter, index, value, lower, upper, optionally significant).
    outcome : str, optional
        Axis label (default: the table's ``outcome`` attribute).
    max_bars : int, optional
        Most parameters drawn (those with the largest indices).
    title : str, optional
    dummy : str, optional
        The name of the inert dummy parameter in ``table``
        (:data:`carkinetics.stats.sensitivity_indices.DUMMY`); None: no parameter is drawn as the dummy.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    label = outcome or table.attrs.get("outcome", "the outcome")
    table = table[table["value"].notna()]
    if not len(table):  # e.g. an outcome that is the same for every sample
        fig, ax = plt.subplots(figsize=(MIN_WIDTH_IN + 2, 6.0))
        ax.text(0.5, 0.5, "no finite sensitivity index\n(the outcome did not vary over the samples?)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        ax.set_title(title or f"Global sensitivity of {label}")
        return fig
    indices = list(dict.fromkeys(table["index"]))
    rank_by = "total" if "total" in indices else indices[0]
    ranked = (table[table["index"] == rank_by].assign(a=lambda d: d["value"].abs())
              .sort_values("a"))
    order = ranked[ranked["parameter"] != dummy].tail(max_bars)["parameter"].tolist()
    if (ranked["parameter"] == dummy).any():
        order = [dummy] + order
    height = max(6.0, 0.55 * len(order) * len(indices) + 2.5)
    fig, ax = plt.subplots(figsize=(MIN_WIDTH_IN + 2, height))
    y = np.arange(len(order), dtype=float)
    h = 0.8 / len(indices)
    has_sig = "significant" in table.columns
    from matplotlib.patches import Patch

    handles = []
    for k, idx in enumerate(indices):
        sub = table[table["index"] == idx].set_index("parameter").reindex(order)
        yy = y + (k - (len(indices) - 1) / 2) * h
        v = sub["value"].to_numpy(float)
        err = np.vstack([v - sub["lower"].to_numpy(float), sub["upper"].to_numpy(float) - v])
        colour = _COLOURS[k % len(_COLOURS)]
        sig = (sub["significant"].astype(str).str.lower().isin(["true", "1"]).to_numpy() if has_sig
               else np.ones(len(order), bool))
        is_dummy = np.array([p == dummy for p in order])
        colours = ["0.55" if d else colour for d in is_dummy]
        alphas = [1.0 if (s or d) else 0.35 for s, d in zip(sig, is_dummy)]
        for j in range(len(order)):
            ax.barh(yy[j], v[j], height=h * 0.9, color=colours[j], alpha=alphas[j],
                    xerr=np.where(np.isfinite(err[:, j:j + 1]), np.abs(err[:, j:j + 1]), 0).tolist(),  # lists: as above
                    capsize=4)
        handles.append(Patch(color=colour, label=idx))
        if is_dummy.any():
            d = sub.loc[dummy]
            if idx == "prcc":
                bound = np.nanmax(np.abs([d["lower"], d["upper"], d["value"]]))
                ax.axvspan(-bound, bound, color="0.85", zorder=0)
            else:
                ax.axvspan(min(0.0, np.nanmin([d["lower"], d["value"]])), np.nanmax([d["upper"], d["value"]]),
                           color=colour, alpha=0.12, zorder=0)
    ax.axvline(0, color="black", lw=1.5)
    ax.set_yticks(y, ["dummy (inert)" if p == dummy else p for p in order])
    ax.grid(axis="y", visible=False)
    note = "\nshaded: the inert dummy's range; pale: not distinguishable from it" if dummy in order else ""
    ax.set_xlabel(f"sensitivity index (95% interval){note}")
    if len(indices) > 1 or indices[0] != "prcc":
        ax.legend(handles=handles, loc="lower right", frameon=False)
    ax.set_title(title or f"Global sensitivity of {label}")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------
# defaults of the figures of a results folder
# ----------------------------------------------------------------------------------------


def default_outcomes(result) -> list:
    """Outcomes to draw when ``[sweep.plots] outcomes`` is not given.

    Every binary endpoint (proportion), then every time-to-event endpoint at one year
    (or at the last summary day if follow-up is shorter).
    """
    kinds = result.endpoint_kinds
    have = list(dict.fromkeys(result.summary["endpoint"]))
    out = [e for e in have if kinds.get(e) == "binary"]
    if len(result.km):
        horizon = float(result.km["time"].max())
        day = 365.0 if horizon >= 365 else horizon
        out += [f"{e}@{day:g}" for e in dict.fromkeys(result.km["endpoint"])]
    if not out:
        out = have[:4]
    return out


def chunks(seq, k):
    """``seq`` cut into lists of ``k`` items (the last may be shorter)."""
    return [seq[i:i + k] for i in range(0, len(seq), k)]


def default_km_endpoints(result, outcomes):
    """Time-to-event endpoints named in the outcomes (``os@365``), else every one.

    Parameters
    ----------
    result : SweepResult
    outcomes : list of str
        Outcomes as written (``endpoint``, ``endpoint:statistic``, ``endpoint@day``).

    Returns
    -------
    list of str
    """
    have = list(dict.fromkeys(result.km["endpoint"]))
    named = [str(o).split("@")[0].split(":")[0] for o in outcomes]
    chosen = [e for e in have if e in named]
    return chosen or have


def km_point_groups(result, max_curves=9):
    """Grid points for KM figures: those along the ``x`` and ``lines`` axes, others held fixed.

    Small grids (up to ``max_curves`` points) are drawn whole, in one figure.

    Parameters
    ----------
    result : SweepResult
    max_curves : int, optional
        Most curves in one figure.

    Returns
    -------
    list of list of int
        Grid point ids, one list per figure.
    """
    ids = sorted(set(result.km["point"]))
    if len(ids) <= max_curves or not result.axis_names:
        return [ids]
    x, lines = _default_axes(result, None, None)
    free = {x} | ({lines} if lines else set())
    rows, _ = _slice(result.grid, result, free)
    chosen = [p for p in rows["point"].tolist() if p in set(ids)]
    return chunks(chosen, max_curves)
