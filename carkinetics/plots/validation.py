"""The validation forest plot: every reported number beside what the model simulates.

One row per target, grouped by trial (scenario) with a header per group. Fractions
(proportions, Kaplan-Meier estimates, cumulative incidences) are drawn on their own axis
from 0 to 1; medians and means as the ratio simulated / reported on a log axis beside it.
Each row shows the reported value and its 95 % interval, the simulated value with its
Monte Carlo 95 % interval (coloured by the verdict), and, for fractions with a reported
denominator, the 95 % predictive interval of a trial of the reported size: the range a
trial of that many patients would report if the model were right. Where the table has them
(:mod:`carkinetics.studies.baselines`), a cross marks the naive prediction (the pooled rate of
the same quantity in the other trials), and each label says whether its row was fitted or made
by a constant set by hand (in sample) rather than predicted.
"""

from __future__ import annotations

import numpy as np

from carkinetics.scenario.reference import FRACTION_STATISTICS  # drawn on the fraction axis
#: Verdict -> (colour, legend label).
VERDICT_STYLE = {True: ("tab:blue", "simulated: inside the reported interval"),
                 False: ("tab:red", "simulated: outside the reported interval"),
                 None: ("tab:gray", "simulated: no reported interval")}


def _verdict(value):
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else bool(value)


def _basis_tag(row) -> str:
    """What a row's label says of it: a protocol input, or in sample (fitted, hand-set)."""
    if row.role == "input":
        return " (input)"
    basis = getattr(row, "basis", None)
    return f" ({basis})" if basis in ("fitted", "hand-set") else ""


def _rows(table):
    """Row positions top-down, with a gap and a header position before each trial's rows."""
    positions, headers, y = [], [], 0.0
    for scenario, group in table.groupby("scenario", sort=False):
        headers.append((y, str(scenario)))
        y += 1.0
        for _ in range(len(group)):
            positions.append(y)
            y += 1.0
        y += 0.5
    return np.array(positions), headers, y


def plot_validation(table, title="carkinetics validate"):
    """Forest plot of a validation table (:func:`carkinetics.studies.validate.run_validation`).

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``scenario, target_id, role, statistic, reported, reported_lower,
        reported_upper, simulated, mc_lower, mc_upper, inside`` and, when present,
        ``trial_lower, trial_upper``.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from carkinetics.plots.style import pyplot

    plt = pyplot()
    t = table.reset_index(drop=True)
    if "scenario" not in t.columns:
        t = t.assign(scenario="")
    t = t.iloc[np.argsort(t["scenario"].map({s: i for i, s in enumerate(dict.fromkeys(t["scenario"]))}),
                          kind="stable")].reset_index(drop=True)
    y, headers, height = _rows(t)
    fig, (ax_f, ax_r) = plt.subplots(1, 2, sharey=True, figsize=(12.0, 0.3 * height + 1.8),
                                     gridspec_kw={"width_ratios": [3, 2]})
    fraction = t["statistic"].isin(FRACTION_STATISTICS).to_numpy()
    seen = set()
    for i, r in enumerate(t.itertuples()):
        ax = ax_f if fraction[i] else ax_r
        scale = 1.0 if fraction[i] else (r.reported if r.reported and np.isfinite(r.reported) else np.nan)
        def v(x):
            return float(x) / scale if x is not None and np.isfinite(float(x)) else np.nan
        if np.isfinite(v(r.reported_lower)) and np.isfinite(v(r.reported_upper)):
            ax.hlines(y[i], v(r.reported_lower), v(r.reported_upper), color="0.75", lw=7,
                      label=None if "ci" in seen else "reported 95% interval")
            seen.add("ci")
        trial = (getattr(r, "trial_lower", np.nan), getattr(r, "trial_upper", np.nan))
        if np.isfinite(v(trial[0])) and np.isfinite(v(trial[1])):
            ax.hlines(y[i] + 0.28, v(trial[0]), v(trial[1]), color="tab:orange", lw=2.5,
                      label=None if "trial" in seen else "trial of the reported n if the model is right (95%)")
            seen.add("trial")
        ax.plot([v(r.reported)], [y[i]], "|", color="black", ms=13, mew=2,
                label=None if "rep" in seen else "reported value")
        seen.add("rep")
        verdict = _verdict(r.inside)
        colour, label = VERDICT_STYLE[verdict]
        ax.hlines(y[i], v(r.mc_lower), v(r.mc_upper), color=colour, lw=1.2)
        ax.plot([v(r.simulated)], [y[i]], "o", color=colour, ms=5, zorder=3,
                label=None if ("v", verdict) in seen else label)
        seen.add(("v", verdict))
        pooled = getattr(r, "baseline_pooled", np.nan)
        if fraction[i] and pooled is not None and np.isfinite(float(pooled)):
            ax.plot([float(pooled)], [y[i]], "x", color="tab:purple", ms=6, mew=1.5, zorder=2,
                    label=None if "pooled" in seen else "naive: pooled rate of the other trials")
            seen.add("pooled")
    labels = [f"{r.target_id}{_basis_tag(r)}" for r in t.itertuples()]
    ax_f.set_yticks(list(y) + [h for h, _ in headers],
                    labels + [name.replace("_", " ") for _, name in headers], fontsize=8)
    for tick in ax_f.get_yticklabels()[len(labels):]:
        tick.set_fontweight("bold")
    for h, _ in headers[1:]:
        for ax in (ax_f, ax_r):
            ax.axhline(h - 0.75, color="0.85", lw=0.8)
    ax_f.set_ylim(height, -1.0)
    ax_f.set_xlim(-0.02, 1.02)
    ax_f.set_xlabel("proportion, survival or cumulative incidence (fraction)")
    ax_r.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax_r.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax_r.xaxis.set_minor_formatter(NullFormatter())
    ax_r.axvline(1.0, color="0.5", lw=0.8, ls=":")
    ax_r.set_xlabel("medians and means: simulated / reported (ratio)")
    handles, names = [], []
    for ax in (ax_f, ax_r):
        for hnd, name in zip(*ax.get_legend_handles_labels()):
            if name not in names:
                handles.append(hnd)
                names.append(name)
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig
