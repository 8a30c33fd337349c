"""The figure of a visual predictive check: observed percentiles over simulated intervals, BLQ fractions.

One column per arm; per observable a panel of percentiles and, when the data has a limit of
quantification, a panel of the fraction of observations below it. Drawn as the R ``vpc``
package does: shaded areas are the intervals of the simulated 5th/50th/95th percentiles
(blue, red, blue), lines are the observed percentiles (solid median, dashed outer ones),
grey points the observations.
"""

from __future__ import annotations

import numpy as np

from carkinetics.plots.style import pyplot

_OUTER, _MEDIAN = "#3c78d8", "#d83c3c"


def _percentile_panel(ax, b, points, log_scale, unit, time_unit):
    """Simulated intervals, observed percentiles and observations of one stratum."""
    t, y, cens, lloq = points
    x = b.centres
    lo, med, hi = b.simulated
    floor = None
    if log_scale:
        positive = np.concatenate([y[~cens & (y > 0)], hi[np.isfinite(hi) & (hi > 0)].ravel()])
        floor = positive.min() / 10 if positive.size else 1e-12
    for j, q in enumerate(b.qs):
        colour = _MEDIAN if abs(q - 0.5) < 1e-9 else _OUTER
        low = lo[:, j] if floor is None else np.maximum(lo[:, j], floor)
        ax.fill_between(x, low, hi[:, j], color=colour, alpha=0.22, lw=0,
                        label=(f"simulated p{100 * q:g} interval" if colour == _MEDIAN else
                               "simulated p5/p95 intervals" if j == 0 else None))
        ax.plot(x, med[:, j], color=colour, lw=0.8, alpha=0.6)
        obs = b.observed[:, j]
        ax.plot(x, obs, color="black", lw=1.6 if colour == _MEDIAN else 1.0,
                ls="-" if colour == _MEDIAN else "--", marker="o", ms=3,
                label="observed p50" if colour == _MEDIAN else ("observed p5/p95" if j == 0 else None))
    shown = ~cens & (True if floor is None else y > 0)
    ax.scatter(t[shown], y[shown], s=6, color="0.55", alpha=0.5, lw=0, zorder=1)
    limits = lloq[np.isfinite(lloq)]
    if limits.size:
        ax.axhline(np.median(limits), color="0.3", lw=0.8, ls=":", label="LLOQ")
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel(f"time ({time_unit})" if time_unit else "time")
    ax.set_ylabel(unit)


def _blq_panel(ax, b, time_unit):
    """Observed fraction below the limit over its simulated interval."""
    lo, med, hi = b.blq_simulated
    ax.fill_between(b.centres, lo, hi, color=_OUTER, alpha=0.22, lw=0, label="simulated")
    ax.plot(b.centres, med, color=_OUTER, lw=0.8)
    ax.plot(b.centres, b.blq_observed, color="black", marker="o", ms=3, lw=1.2, label="observed")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("fraction < LLOQ")
    ax.set_xlabel(f"time ({time_unit})" if time_unit else "time")


def plot_vpc(strata, points, info):
    """The figure of a visual predictive check.

    Parameters
    ----------
    strata : dict of (str, str) to carkinetics.stats.vpc.BinnedVPC
        By ``(observable, arm)``.
    points : dict of (str, str) to tuple
        Observed ``(times, values, censored, lloq)`` of each stratum.
    info : dict
        ``replicates``, ``interval``, ``pred_corr``, ``error``, ``log_scale``, ``time_unit``,
        ``units`` (by output), ``scenario``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    observables = list(dict.fromkeys(o for o, _ in strata))
    arms = list(dict.fromkeys(a for _, a in strata))
    rows = []
    for o in observables:
        rows.append((o, "main"))
        if any(np.isfinite(points[k][3]).any() for k in strata if k[0] == o):
            rows.append((o, "blq"))
    ratios = [3.0 if kind == "main" else 1.3 for _, kind in rows]
    fig, axes = plt.subplots(len(rows), len(arms), figsize=(4.8 * len(arms), sum(ratios) * 1.15 + 0.9),
                             squeeze=False, gridspec_kw={"height_ratios": ratios})
    units = info.get("units", {})
    pc = "prediction-corrected " if info.get("pred_corr") else ""
    for i, (o, kind) in enumerate(rows):
        for j, arm in enumerate(arms):
            ax = axes[i, j]
            b = strata.get((o, arm))
            if b is None:
                ax.set_visible(False)
                continue
            if kind == "main":
                _percentile_panel(ax, b, points[(o, arm)], info.get("log_scale", False),
                                  f"{o} ({units.get(o, '')})", info.get("time_unit", ""))
                ax.set_title(f"{o}, arm {arm}" if len(arms) > 1 or arm != "all" else o, fontsize=10)
            else:
                _blq_panel(ax, b, info.get("time_unit", ""))
            if i == 0 and j == 0 or (kind == "blq" and j == 0):
                ax.legend(fontsize=7, loc="best", frameon=False)
    lo, hi = info.get("interval", (0.025, 0.975))
    fig.suptitle(f"{pc}VPC: {info.get('replicates', '?')} replicate trials, {100 * (hi - lo):g} % intervals, "
                 f"residual error {info.get('error', 'none')}", fontsize=10)
    fig.tight_layout()
    return fig
