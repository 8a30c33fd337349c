"""Figures of ``carkinetics run`` drawn by a helper process.

Importing matplotlib takes about 0.3 s of interpreter work, and drawing a cohort's figures
about 0.1 s. In the main process both would compete with the simulation for the cores
(or come after it). ``carkinetics run`` therefore starts a helper process first: the helper
imports matplotlib and draws a small figure (fonts, caches) while the main process starts
up and loads the compiled engine (a stretch with a core idle), then waits. As soon as the
quantile bands are known, the main process sends them (with the observations, as plain
numpy arrays: the helper does not import pandas) and goes on with the summaries and the
tables while the helper draws; then it waits for the PNG files. The figures are the ones
:mod:`carkinetics.plots.cohort` draws in the main process; if the helper cannot be started, fails,
or is not done within :data:`TIMEOUT` seconds, they are drawn in the main process instead.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

#: Figures the helper may draw: functions of :mod:`carkinetics.plots.cohort`.
FIGURES = ("plot_cohort_bands", "plot_kaplan_meier", "plot_cumulative_incidence")
#: Seconds to wait for the helper once the last figure is sent.
TIMEOUT = 120.0

# The helper ends with the process that started it, even one killed by SIGKILL: on Linux the
# kernel sends it SIGKILL when its parent ends (PR_SET_PDEATHSIG, set before anything else is
# imported; a parent gone before that is seen by getppid). Elsewhere it ends when it reads the
# end of its input, which a parent that ends closes.
_COMMAND = """\
import os, sys
try:
    import ctypes
    ctypes.CDLL(None).prctl(1, 9)
except Exception:
    pass
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
from carkinetics.plots.render import serve
serve()
"""


class FigureHelper:
    """A helper process that draws figures (see the module documentation).

    Use as a context manager, or call :meth:`close`: a helper that was never given
    figures is stopped.
    """

    def __init__(self):
        self._proc = None
        self._failed = False
        self.sent = []  # figure functions handed over, in order
        if not sys.executable:
            return
        try:
            self._proc = subprocess.Popen([sys.executable, "-c", _COMMAND, str(os.getpid())],
                                          stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          env=dict(os.environ, MPLBACKEND="Agg"))
        except OSError:
            self._proc = None

    @property
    def available(self) -> bool:
        """Whether figures can still be sent."""
        return self._proc is not None and not self._failed and not self._proc.stdin.closed

    def send(self, jobs) -> bool:
        """Hand over figures to draw: ``(function, path, kwargs)`` with ``function`` in
        :data:`FIGURES`, ``path`` the PNG file (written by the helper) and ``kwargs`` its
        arguments (numpy arrays, mappings, strings, numbers), or a callable that makes them.
        Each figure is pickled on its own, its arguments made just before and dropped after, and
        the helper draws it and drops its arguments before it reads the next: neither process
        holds the tables of all figures at once (at 10^6 patients the Kaplan-Meier table has
        millions of rows, the cumulative incidence a million patients' outcomes). Returns once
        the helper has read them; False when there is no helper to take them."""
        if not self.available:
            return False
        for function, path, kwargs in jobs:
            try:
                # streamed into the pipe: the pickled tables are never held whole as bytes here
                job = (str(function), str(path), dict(kwargs() if callable(kwargs) else kwargs))
                pickle.dump(job, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self._proc.stdin.flush()
            except (OSError, ValueError):  # the helper is gone
                self._failed = True
                return False
            job = None  # this figure's arguments, dropped before the next figure's are made
            self.sent.append(str(function))
        return True

    def wait(self) -> bool:
        """No more figures: wait for those sent; True when the helper drew them all."""
        if self._proc is None:
            return False
        proc, self._proc = self._proc, None
        try:
            proc.stdin.close()
        except OSError:
            self._failed = True
        try:
            code = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return False
        except BaseException:  # interrupted (SIGTERM, SIGINT) while waiting: the helper goes too
            proc.kill()
            proc.wait()
            raise
        return code == 0 and not self._failed and bool(self.sent)

    def close(self) -> None:
        """Stop a helper that was given nothing (or wait for the one that was)."""
        if self._proc is None:
            return
        if self.sent:
            self.wait()
        else:
            self.kill()

    def kill(self) -> None:
        """Stop the helper now, whatever it was given (the run failed or was interrupted: it must
        not go on writing into a folder that is being removed)."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        proc.kill()
        proc.wait()
        try:
            proc.stdin.close()
        except OSError:  # a broken pipe to a killed process: nothing to flush
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.kill()


def serve() -> None:
    """The helper: import matplotlib, then draw what arrives on standard input until it closes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (what the drawing needs, imported before the data arrives)

    from carkinetics.plots import cohort as plots

    _warm_up(plots)
    while True:
        try:
            function, path, kwargs = pickle.load(sys.stdin.buffer)
        except EOFError:
            break
        if function not in FIGURES:
            raise ValueError(f"unknown figure function {function!r}")
        plots.save_figure(getattr(plots, function)(**kwargs), path, ("png",), tight=False, dpi=120)
        kwargs = None  # this figure's tables, freed before the next figure's are read
    # the files are written and closed: end now, without the interpreter's clean-up of
    # matplotlib's modules (~0.05 s the main process would wait for)
    sys.stderr.flush()
    os._exit(0)


def _warm_up(plots) -> None:
    """Draw a small band figure into memory: matplotlib's first figure loads fonts and builds
    caches (~0.1 s), done here while the main process is still simulating."""
    import io

    import numpy as np

    from carkinetics.plots.style import pyplot

    t = np.linspace(0.0, 10.0, 11)
    fig = plots.plot_cohort_bands({"arm": np.array(["all"] * 11), "output": np.array(["x"] * 11), "time": t,
                                   "q05": t + 1, "q25": t + 2, "q50": t + 3, "q75": t + 4, "q95": t + 5},
                                  time_unit="day", units={"x": "cells"}, title="warm-up")
    fig.savefig(io.BytesIO(), format="png", dpi=120)
    pyplot().close(fig)
