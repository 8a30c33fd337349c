"""The progress line on stderr: steps done, patients done, patients per second, elapsed time, ETA.

:class:`Progress` is the one progress line. Long runs report to it in two ways:

- a callable ``progress(n_done, n_total)`` (what ``run_cohort`` calls with the patients of the
  current step done so far), plus :meth:`Progress.point_done` when a step (a grid point, a
  tornado run) finishes;
- a callable ``progress(done, total, label)`` (what the fits call after each start, profile,
  bootstrap replicate or patient): :class:`ProgressBars` draws one :class:`Progress` line per
  label.
"""

from __future__ import annotations

import sys
import time as _time


def format_seconds(seconds) -> str:
    """Seconds as ``m:ss``, or ``h:mm:ss`` from one hour on.

    Parameters
    ----------
    seconds : float
        A duration (s); rounded to whole seconds.

    Returns
    -------
    str
    """
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """A progress line on stderr: points done, patients done, patients per second, ETA.

    Pass an instance as ``progress`` to :func:`carkinetics.studies.sweep.sweep`; it is also accepted by
    ``run_cohort`` (called with the patients of the current point done so far, or via
    :meth:`update` with increments). On a terminal the line is redrawn in place; otherwise one line is
    printed per finished grid point.

    Parameters
    ----------
    n_points : int
        Steps (grid points, runs) in all.
    n_patients_total : int, optional
        Patients in all; when given, the bar also advances with the patients done.
    stream : file-like, optional
        Where the line is written (default: ``sys.stderr``).
    label : str, optional
        Written first on the line.
    min_interval : float, optional
        Least time between redraws on a terminal (s).
    unit : str, optional
        What a step is called on the line (default ``points``).
    count_patients : bool, optional
        Show the patients done and the patients per second (default True).
    """

    def __init__(self, n_points, n_patients_total=None, stream=None, label="sweep", min_interval=0.25,
                 unit="points", count_patients=True):
        self.n_points = int(n_points)
        self.total = n_patients_total
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.min_interval = min_interval
        self.unit = unit
        self.count_patients = count_patients
        self.start = _time.perf_counter()
        self.patients = 0
        self.points = 0
        self._point_base = 0  # patients counted before the current point
        self._last = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, n_done, n_total=None):
        """``run_cohort``'s callback: ``n_done`` patients of the current point finished so far."""
        self.patients = self._point_base + int(n_done)
        self._maybe_draw()

    def update(self, n_new):
        """``n_new`` more patients finished.

        Parameters
        ----------
        n_new : int
        """
        self.patients += int(n_new)
        self._maybe_draw()

    def _maybe_draw(self):
        now = _time.perf_counter()
        if self._tty and now - self._last >= self.min_interval:
            self._last = now
            self._draw(now)

    def point_done(self, n_patients=0):
        """A grid point finished with ``n_patients`` patients (whether or not they were reported).

        Parameters
        ----------
        n_patients : int, optional
        """
        self.points += 1
        self.patients = self._point_base = self._point_base + int(n_patients)
        now = _time.perf_counter()
        if self._tty:
            self._draw(now)
        else:
            self.stream.write(self._line(now) + "\n")
            self.stream.flush()

    def _line(self, now) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.patients / elapsed
        done = self.points / self.n_points if self.n_points else 1.0
        if self.total:
            done = max(done, min(1.0, self.patients / self.total))
        width = 24
        bar = "#" * int(round(done * width)) + "-" * (width - int(round(done * width)))
        eta = (elapsed / done - elapsed) if 0 < done < 1 else 0.0
        patients = f"{self.patients:,} patients, {rate:,.0f} patients/s, " if self.count_patients else ""
        return (f"{self.label} [{bar}] {self.points}/{self.n_points} {self.unit}, {patients}"
                f"{format_seconds(elapsed)} elapsed, ETA {format_seconds(eta)}")

    def _draw(self, now):
        self.stream.write("\r" + self._line(now) + "\x1b[K")
        self.stream.flush()

    def close(self):
        """End the line (on a terminal: draw it a last time and move to the next line)."""
        if self._tty:
            self._draw(_time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()


class ProgressBars:
    """A ``progress(done, total, label)`` callback: one :class:`Progress` line per label.

    A line starts at the first call with its label and is closed when ``done`` reaches ``total``.

    Parameters
    ----------
    stream : file-like, optional
        Where the lines are written (default: ``sys.stderr``).
    """

    def __init__(self, stream=None):
        self.stream = stream
        self.bars = {}

    def __call__(self, done, total, label):
        """``done`` of ``total`` steps called ``label`` finished."""
        bar = self.bars.get(label)
        if bar is None:
            bar = self.bars[label] = Progress(total, stream=self.stream, label=f"{label:>20s}", unit=label,
                                              count_patients=False)
        while bar.points < min(int(done), bar.n_points):
            bar.point_done(0)
        if done >= total:
            bar.close()
            del self.bars[label]
