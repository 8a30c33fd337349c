"""Figure style: matplotlib with the package's rcParams, and panel grids."""

from __future__ import annotations

import numpy as np

#: rcParams applied by :func:`pyplot`. Every key a larger style (the study figures' projector
#: style) sets is here too, at matplotlib's default where the package keeps it, so a figure
#: looks the same whatever was drawn before it in the process.
STYLE = {"figure.dpi": 110, "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11,
         "legend.fontsize": 9, "axes.grid": True, "grid.alpha": 0.3,
         "xtick.labelsize": "medium", "ytick.labelsize": "medium", "legend.title_fontsize": None,
         "figure.titlesize": "large", "lines.linewidth": 1.5, "lines.markersize": 6.0,
         "axes.spines.top": True, "axes.spines.right": True}


#: Clinical reference lines (a model output's ``reference`` entries): line and label style.
REFERENCE_LINE = {"color": "#555555", "ls": "--", "lw": 1.0, "alpha": 0.8, "zorder": 1.5}
REFERENCE_TEXT = {"color": "#333333", "fontsize": 8, "ha": "right", "va": "bottom", "zorder": 3,
                  "bbox": {"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 1.0}}
#: Longest panel title taken from an output's description (characters, before its unit).
TITLE_LENGTH = 60


def pyplot():
    """``matplotlib.pyplot`` with :data:`STYLE` applied (matplotlib is imported on first use).

    Returns
    -------
    module
        ``matplotlib.pyplot``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False) if matplotlib.get_backend().lower() == "agg" else None
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def grid_shape(n):
    """(rows, columns) of a grid of ``n`` panels: one column for one panel, two up to four, else three.

    Examples
    --------
    >>> grid_shape(1), grid_shape(4), grid_shape(7)
    ((1, 1), (2, 2), (3, 3))
    """
    cols = 1 if n == 1 else (2 if n <= 4 else 3)
    rows = int(np.ceil(n / cols))
    return rows, cols
