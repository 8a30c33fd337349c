"""Figures. matplotlib is imported inside the functions; each returns its figure."""

from __future__ import annotations

import numpy as np

_STYLE = {"figure.dpi": 110, "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11,
          "legend.fontsize": 9, "axes.grid": True, "grid.alpha": 0.3}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False) if matplotlib.get_backend().lower() == "agg" else None
    import matplotlib.pyplot as plt

    plt.rcParams.update(_STYLE)
    return plt


def _grid(n):
    cols = 1 if n == 1 else (2 if n <= 4 else 3)
    rows = int(np.ceil(n / cols))
    return rows, cols


def plot_trajectory(trajectory, names=None, log_scale=True, title=None):
    """One panel per output (or state) of a :class:`~carkinetics.result.Trajectory`.

    Returns the matplotlib figure.
    """
    plt = _plt()
    model = trajectory.model
    names = list(names or model.output_names or model.state_names)
    units = {s.name: s.unit for s in model.states} | {o.name: o.unit for o in model.outputs}
    rows, cols = _grid(len(names))
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


def save_figure(fig, path, formats=("png",)):
    """Save ``fig`` as ``path`` with each suffix in ``formats``; close it."""
    from pathlib import Path

    plt = _plt()
    path = Path(path)
    out = []
    for fmt in formats:
        p = path.with_suffix("." + fmt)
        fig.savefig(p, bbox_inches="tight", dpi=150 if fmt == "png" else None)
        out.append(p)
    plt.close(fig)
    return out
