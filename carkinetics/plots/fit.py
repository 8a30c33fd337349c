"""Goodness-of-fit figures for the fits of :mod:`carkinetics.fit`. Each function returns its figure.

Censored observations (below the LLOQ) are drawn as open triangles at the limit.
"""

from __future__ import annotations

import numpy as np

from carkinetics.plots.style import grid_shape, pyplot


def plot_observed_vs_predicted(residuals, title="Observed vs predicted"):
    """Observed against predicted on log axes, with the identity line."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    unc = ~residuals["censored"].to_numpy(bool)
    pred = residuals["pred"].to_numpy(float)
    obs = np.where(unc, residuals["value"].to_numpy(float), residuals["lloq"].to_numpy(float))
    ax.loglog(pred[unc], obs[unc], "o", ms=4, alpha=0.7, label="observed")
    if (~unc).any():
        ax.loglog(pred[~unc], obs[~unc], "v", ms=5, mfc="none", color="C3", label="censored (at LLOQ)")
    pos = np.concatenate([pred[pred > 0], obs[obs > 0]])
    if pos.size:
        lim = [pos.min() / 2, pos.max() * 2]
        ax.plot(lim, lim, "k-", lw=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("observed")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_residuals_vs_time(residuals, title="Residuals vs time"):
    """Scaled residuals (g(observed) - g(predicted)) / sigma against time."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    unc = ~residuals["censored"].to_numpy(bool)
    t = residuals["time"].to_numpy(float)
    r = residuals["residual"].to_numpy(float)
    ax.plot(t[unc], r[unc], "o", ms=4, alpha=0.7, label="observed")
    if (~unc).any():
        ax.plot(t[~unc], r[~unc], "v", ms=5, mfc="none", color="C3", label="censored (limit - predicted)")
    ax.axhline(0, color="k", lw=1)
    for y in (-1.96, 1.96):
        ax.axhline(y, color="k", lw=0.8, ls="--")
    ax.set_xlabel("time (day)")
    ax.set_ylabel("residual / sigma")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_individual_fits(fits, max_patients=12, n_points=300, title="Individual fits"):
    """Fitted curves over each patient's data (log scale); ``fits`` is a list of FitResult."""
    plt = pyplot()
    fits = list(fits)[:max_patients]
    rows, cols = grid_shape(len(fits))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, res in zip(axes.flat, fits):
        pr = res.problem
        t_end = float(pr.times.max())
        grid = np.unique(np.concatenate([np.linspace(0, t_end, n_points), pr.times]))
        from carkinetics.simulation.simulate import simulate_batch

        batch = simulate_batch(pr.model, pr.schedule, grid, pr.full_parameters(res.x), options=pr.options, t0=pr.t0,
                               n_threads=1, save_states=False, save_outputs=pr.outputs)
        for k, name in enumerate(pr.outputs):
            y = batch.outputs[0, :, k]
            ok = y > 0
            ax.semilogy(grid[ok], y[ok], "-", color=f"C{k}", label=f"{name} fit")
            sel = pr.obs["observable"] == name
            d = pr.obs[sel]
            unc = ~d["censored"].to_numpy(bool)
            ax.semilogy(d["time"][unc], d["value"][unc], "o", ms=4, color=f"C{k}")
            if (~unc).any():
                ax.semilogy(d["time"][~unc], d["lloq"][~unc], "v", ms=5, mfc="none", color="C3")
        ax.set_title(str(res.patient), fontsize=10)
        ax.set_xlabel("time (day)")
    for ax in list(axes.flat)[len(fits):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_profiles(profiles, title="Profile likelihoods"):
    """Each profile's -2 log L rise with the 3.84 threshold and the interval limits."""
    plt = pyplot()
    profiles = list(profiles.values()) if isinstance(profiles, dict) else list(profiles)
    rows, cols = grid_shape(len(profiles))
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.2 * rows), squeeze=False)
    for ax, pr in zip(axes.flat, profiles):
        ax.plot(pr.values, pr.objective - pr.minimum, "o-", ms=3)
        if np.nanmax(pr.values) / np.nanmin(pr.values) > 10:
            ax.set_xscale("log")
        ax.axhline(pr.threshold, color="C3", ls="--", lw=1)
        for v in (pr.lower, pr.upper):
            if np.isfinite(v):
                ax.axvline(v, color="k", ls=":", lw=1)
        flat = "" if pr.identifiable else " (flat: not identifiable)"
        ax.set_title(f"{pr.name}{flat}", fontsize=10)
        ax.set_xlabel(pr.name)
        ax.set_ylabel("rise in -2 log L")
    for ax in list(axes.flat)[len(profiles):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_target_comparison(comparison, title="Reported vs simulated"):
    """Reported values with intervals beside the simulated values, one row per target."""
    plt = pyplot()
    k = len(comparison)
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * k + 1.5))
    y = np.arange(k)
    rep = comparison["reported"].to_numpy(float)
    sim = comparison["simulated"].to_numpy(float)
    lo = comparison["lower"].to_numpy(float)
    hi = comparison["upper"].to_numpy(float)
    ratio_rep = np.ones(k)
    with np.errstate(divide="ignore", invalid="ignore"):
        ax.errorbar(ratio_rep, y, xerr=[np.nan_to_num(1 - lo / rep), np.nan_to_num(hi / rep - 1)], fmt="o",
                    color="k", label="reported (95% interval / range)")
        ax.plot(sim / rep, y, "s", color="C1", label="simulated")
    ax.set_xscale("log")
    ax.set_yticks(y, [f"{a} ({b})" for a, b in zip(comparison["target_id"], comparison["statistic"])])
    ax.set_xlabel("value / reported")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
