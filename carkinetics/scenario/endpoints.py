"""Per-patient endpoints computed from model outputs, vectorised over patients.

A scenario declares its endpoints in ``[endpoints.NAME]`` tables and combines
time-to-event endpoints into survival outcomes in ``[outcomes.NAME]`` tables.
Both sections are parsed into one :class:`EndpointSet`; the cohort runner calls
:meth:`EndpointSet.compute` on each chunk of simulated patients, with the model
outputs on the scenario's output grid, and gets one column per endpoint.

Endpoint types (the registry :data:`ENDPOINT_TYPES`):

========================  =============================================================
``cmax`` / ``tmax``       maximum of an output in a window and the first time it is reached
``cmin`` / ``tmin``       minimum (nadir) and the first time it is reached
``auc``                   area under the curve over [start, end], linear-up/log-down or linear
``tlast``                 last output time with a value at or above the limit of quantification
``level``                 value at a day (interpolated between output times)
``first_above``           first time an output rises above a threshold after a day (time + event)
``first_below``           first time an output falls below a threshold after a day (time + event)
``time_above``            time spent above a threshold in [start, end]
``time_below``            time spent below a threshold in [start, end]
``condition``             whether a condition on outputs holds at a day or at another event (binary)
``value``                 an expression of outputs at a day or at another event (continuous)
``hazard``                a random event drawn from a hazard expression (time + event)
``bernoulli``             a random yes/no event with a probability given by an expression (binary)
========================  =============================================================

The non-compartmental metrics follow the conventions of the R package PKNCA
(https://github.com/billdenney/pknca, its default options): ``auc``
integrates with the linear trapezoid while the value rises or stays equal and the
log trapezoid while it falls (both values positive), Tmax is the first time of the
maximum, and values below a limit of quantification (``lloq``) are treated as
PKNCA's default ``conc.blq = list(first="keep", middle="drop", last="keep")``:
zeros before the first quantifiable value and after the last are kept, those
between quantifiable values are dropped.

Time-to-event endpoints give two columns, ``NAME`` (event time, or the end of the
window when censored) and ``NAME_event`` (1 event, 0 censored). A value of NaN
means "not applicable": the patient's simulation failed (a NaN in an output the
endpoint uses), the patient is not in the endpoint's ``among`` subgroup, or a
reference event (``after = "remission"``) did not happen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from carkinetics.model import expressions as ex
from carkinetics.errors import CarKineticsError, ExpressionError, FileProblem, ScenarioError, is_number, suggestion
from carkinetics.scenario.load import register_section


class EndpointError(CarKineticsError, ValueError):
    """An endpoint could not be computed (outside a scenario: no file to name)."""

# ----------------------------------------------------------------------------------------
# registries
# ----------------------------------------------------------------------------------------

#: Interpolation between output times: how a value (and a threshold crossing) is read
#: between two grid points. "lin-up/log-down": linear when rising or level, log-linear
#: when falling with both values positive (PKNCA); "log": log-linear whenever both
#: values are positive; "linear": always linear.
INTERPOLATIONS = ("lin-up/log-down", "linear", "log")

#: Endpoint type -> (keys it accepts beyond the common ones, required keys, kind, description)
ENDPOINT_TYPES: dict[str, tuple[frozenset, frozenset, str, str]] = {
    "cmax": (frozenset({"output", "start", "end", "lloq"}), frozenset({"output"}), "continuous",
             "maximum of an output over [start, end]"),
    "tmax": (frozenset({"output", "start", "end", "lloq"}), frozenset({"output"}), "continuous",
             "first time of the maximum over [start, end]"),
    "cmin": (frozenset({"output", "start", "end"}), frozenset({"output"}), "continuous",
             "minimum (nadir) of an output over [start, end]"),
    "tmin": (frozenset({"output", "start", "end"}), frozenset({"output"}), "continuous",
             "first time of the minimum over [start, end]"),
    "auc": (frozenset({"output", "start", "end", "method", "lloq"}), frozenset({"output"}), "continuous",
            "area under the curve over [start, end]"),
    "tlast": (frozenset({"output", "start", "end", "lloq"}), frozenset({"output"}), "continuous",
              "last output time with a quantifiable value"),
    "level": (frozenset({"output", "day", "lloq", "below_lloq", "interpolation"}), frozenset({"output", "day"}),
              "continuous", "value of an output at a day"),
    "first_above": (frozenset({"output", "threshold", "after", "end", "interpolation", "report_at"}),
                    frozenset({"output", "threshold"}), "time",
                    "first time an output rises above a threshold after a day"),
    "first_below": (frozenset({"output", "threshold", "after", "end", "interpolation", "report_at"}),
                    frozenset({"output", "threshold"}), "time",
                    "first time an output falls below a threshold after a day"),
    "time_above": (frozenset({"output", "threshold", "start", "end", "interpolation"}),
                   frozenset({"output", "threshold"}), "continuous", "time spent above a threshold"),
    "time_below": (frozenset({"output", "threshold", "start", "end", "interpolation"}),
                   frozenset({"output", "threshold"}), "continuous", "time spent below a threshold"),
    "condition": (frozenset({"expr", "day", "at", "interpolation"}), frozenset({"expr"}), "binary",
                  "whether a condition on outputs holds at a day or at another endpoint's event time"),
    "value": (frozenset({"expr", "day", "at", "interpolation"}), frozenset({"expr"}), "continuous",
              "an expression of outputs at a day or at another endpoint's event time"),
    "bernoulli": (frozenset({"probability", "day", "at", "interpolation"}), frozenset({"probability"}), "binary",
                  "random yes/no event with a probability given by an expression (e.g. severe CRS from Cmax)"),
    "hazard": (frozenset({"hazard", "start", "end", "report_at"}), frozenset({"hazard"}), "time",
               "random event drawn from a hazard (1/day) integrated along the trajectory"),
}
_COMMON_KEYS = frozenset({"type", "description", "notes", "among"})

#: Rules that combine time-to-event endpoints into an outcome.
COMBINE_RULES = {"first": "the earliest of the events (e.g. death from any cause); censored at the "
                          "earliest censoring time of a component that has not had its event"}
_OUTCOME_KEYS = frozenset({"combine", "events", "among", "report_at", "description", "notes"})

AUC_METHODS = INTERPOLATIONS
BELOW_LLOQ = ("zero", "missing")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ----------------------------------------------------------------------------------------
# array functions (public; each works on (n_patients, n_times) arrays or one (n_times,) row)
# ----------------------------------------------------------------------------------------


def _rows(values):
    v = np.asarray(values, dtype=float)
    return (v[None, :], True) if v.ndim == 1 else (v, False)


def _out(x, single):
    return x[0] if single else x


@njit(cache=True, nogil=True)
def _auc_rows(tw, vw, log_rule):
    """Area under each row (no NaN handling): segments read log-linearly where ``log_rule`` is
    1 ("log": both ends > 0 and different) or 2 ("lin-up/log-down": also decreasing), else
    trapezoids."""
    n, m = vw.shape
    out = np.zeros(n)
    for i in range(n):
        total = 0.0
        for j in range(m - 1):
            a = vw[i, j]
            b = vw[i, j + 1]
            dt = tw[j + 1] - tw[j]
            if log_rule > 0 and a > 0 and b > 0 and a != b and (log_rule == 1 or b < a):
                total += dt * (a - b) / np.log(a / b)
            else:
                total += 0.5 * dt * (a + b)
        out[i] = total
    return out


def _check_method(method, allowed=INTERPOLATIONS):
    if method not in allowed:
        raise ValueError(f"`method` must be one of {list(allowed)}, got {method!r}")


def _log_segments(a, b, method):
    """Which segments (a -> b) are read log-linearly."""
    if method == "linear":
        return np.zeros(np.broadcast_shapes(np.shape(a), np.shape(b)), dtype=bool)
    pos = (a > 0) & (b > 0) & (a != b)
    return pos if method == "log" else pos & (b < a)


def _segment_value(a, b, f, method):
    """Value a fraction ``f`` (0..1) along a segment from ``a`` to ``b``."""
    lin = a + f * (b - a)
    use_log = _log_segments(a, b, method)
    if not np.any(use_log):
        return np.where(f == 1.0, b, lin)
    with np.errstate(all="ignore"):
        logv = a * np.exp(f * np.log(b / a))
    return np.where(f == 1.0, b, np.where(use_log, logv, lin))


def _crossing_fraction(a, b, level, method):
    """Fraction along the segment a -> b where the interpolant equals ``level``."""
    use_log = _log_segments(a, b, method) & (level > 0)
    with np.errstate(all="ignore"):
        lin = (level - a) / (b - a)
        logf = np.log(level / a) / np.log(b / a)
    f = np.where(use_log, logf, lin)
    return np.clip(np.nan_to_num(f, nan=0.0), 0.0, 1.0)


def interpolate(times, values, at, method="lin-up/log-down"):
    """Values of each patient's output at time(s) ``at``, read between output times.

    Parameters
    ----------
    times : array_like, shape (T,)
        Output times (day), strictly increasing.
    values : array_like, shape (n, T) or (T,)
        Output values, patients in rows.
    at : float or array_like, shape (n,)
        Time (day) for all patients, or one per patient; NaN gives NaN. Times
        outside the grid are clamped to its first or last segment.
    method : {"lin-up/log-down", "linear", "log"}
        See :data:`INTERPOLATIONS`.

    Returns
    -------
    ndarray, shape (n,) (or a float for one row)
    """
    _check_method(method)
    times = np.asarray(times, dtype=float)
    v, single = _rows(values)
    n, n_t = v.shape
    at = np.broadcast_to(np.asarray(at, dtype=float), (n,))
    if n_t == 1:
        return _out(np.where(np.isnan(at), np.nan, v[:, 0]), single)
    k = np.clip(np.searchsorted(times, np.nan_to_num(at, nan=times[0]), side="right") - 1, 0, n_t - 2)
    rows = np.arange(n)
    t0, t1 = times[k], times[k + 1]
    f = np.clip((at - t0) / (t1 - t0), 0.0, 1.0)
    out = _segment_value(v[rows, k], v[rows, k + 1], f, method)
    return _out(np.where(np.isnan(at), np.nan, out), single)


def _window(times, v, start, end, method):
    """Grid restricted to [start, end] with interpolated values at both ends added.

    When both ends are output times the result is a view (no copy, no interpolation).
    """
    i0 = int(np.searchsorted(times, start))
    i1 = int(np.searchsorted(times, end))
    if i1 < times.size and times[i0] == start and times[i1] == end:
        return times[i0:i1 + 1], v[:, i0:i1 + 1]
    inner = (times > start) & (times < end)
    tw = np.concatenate([[start], times[inner], [end]])
    vs = interpolate(times, v, start, method)
    ve = interpolate(times, v, end, method)
    vw = np.concatenate([vs[:, None], v[:, inner], ve[:, None]], axis=1)
    return tw, vw


def _bounds(times, start, end):
    start = float(times[0]) if start is None else float(start)
    end = float(times[-1]) if end is None else min(float(end), float(times[-1]))
    if not start < end:
        raise ValueError(f"the window must satisfy start < end within the output times, got [{start}, {end}]")
    return start, end


def _observed_window(times, values, start, end):
    """Output times inside [start, end] and the rows' values there (no interpolation), and
    whether ``values`` was one row."""
    times = np.asarray(times, dtype=float)
    v, single = _rows(values)
    start, end = _bounds(times, start, end)
    m = _grid_window(times, start, end)
    return times[m], v[:, m], single


def _grid_window(times, start, end):
    """Slice of the output times inside [start, end] (a closed window of observed values)."""
    i0 = int(np.searchsorted(times, start, side="left"))
    i1 = int(np.searchsorted(times, end, side="right"))
    if i1 <= i0:
        raise ValueError(f"no output time lies in [{start}, {end}]")
    return slice(i0, i1)


def cmax(times, values, start=None, end=None, lloq=None):
    """Maximum of each row over the output times in [start, end], and its first time.

    Values below ``lloq`` count as 0 (PKNCA); when every value is 0 (or BLQ), Cmax is
    0 and Tmax is NaN.

    Parameters
    ----------
    times : array_like, shape (T,)
        Output times (day).
    values : array_like, shape (n, T) or (T,)
        Output values (the output's unit).
    start, end : float, optional
        Window (day); default the whole grid.
    lloq : float, optional
        Lower limit of quantification (the output's unit).

    Returns
    -------
    (cmax, tmax) : tuple of ndarray, shape (n,) (floats for one row)
    """
    tw, vw, single = _observed_window(times, values, start, end)
    if lloq is not None:
        vw = np.where(vw < lloq, 0.0, vw)
    k = vw.argmax(axis=1)  # the first maximum, or the first NaN (numpy propagates NaN)
    peak = vw[np.arange(vw.shape[0]), k]  # one pass instead of max() and argmax()
    tpeak = tw[k]
    zero = np.nonzero(peak == 0)[0]  # PKNCA: no Tmax when all values are 0
    tpeak[zero[(vw[zero] == 0).all(axis=1)]] = np.nan
    bad = np.isnan(peak)  # the maximum is NaN exactly where a row has a NaN
    peak = np.where(bad, np.nan, peak)
    tpeak = np.where(bad, np.nan, tpeak)
    return _out(peak, single), _out(tpeak, single)


def cmin(times, values, start=None, end=None):
    """Minimum (nadir) of each row over the output times in [start, end], and its first time.

    Returns
    -------
    (cmin, tmin) : tuple of ndarray, shape (n,)
    """
    tw, vw, single = _observed_window(times, values, start, end)
    low = vw.min(axis=1)
    tlow = tw[vw.argmin(axis=1)]
    bad = np.isnan(low)  # the minimum is NaN exactly where a row has a NaN
    return _out(np.where(bad, np.nan, low), single), _out(np.where(bad, np.nan, tlow), single)


def auc(times, values, start=None, end=None, method="lin-up/log-down", lloq=None):
    """Area under each row's curve over [start, end].

    Values at ``start`` and ``end`` that fall between output times are interpolated
    with the same rule (as PKNCA's ``aucint``). With ``lloq``, values below it are
    BLQ: set to 0 before the first and after the last quantifiable value, dropped
    between quantifiable values (PKNCA's default). Segments touching a zero are
    always linear. The area covers the whole window, like PKNCA's AUCall.

    Parameters
    ----------
    times : array_like, shape (T,)
        Output times (day).
    values : array_like, shape (n, T) or (T,)
        Output values (the output's unit).
    start, end : float, optional
        Interval (day); default the whole grid.
    method : {"lin-up/log-down", "linear", "log"}
        Trapezoid rule per segment.
    lloq : float, optional
        Lower limit of quantification (the output's unit).

    Returns
    -------
    ndarray, shape (n,)
        AUC in (output unit) x day.

    Examples
    --------
    >>> auc([0, 1, 2], [0.0, 2.0, 1.0])          # 1 + 1/log(2)
    np.float64(2.4426950408889634)
    """
    _check_method(method, AUC_METHODS)
    times = np.asarray(times, dtype=float)
    v, single = _rows(values)
    start, end = _bounds(times, start, end)
    tw, vw = _window(times, v, start, end, method)
    bad = np.isnan(vw).any(axis=1)
    if lloq is not None:
        quant = vw >= lloq
        n_t = vw.shape[1]
        idx = np.arange(n_t)
        first_q = np.where(quant.any(axis=1), quant.argmax(axis=1), n_t)
        last_q = np.where(quant.any(axis=1), n_t - 1 - quant[:, ::-1].argmax(axis=1), -1)
        keep = quant | (idx[None, :] < first_q[:, None]) | (idx[None, :] > last_q[:, None])
        vw = np.where(quant, vw, 0.0)
        # pair each kept point with the next kept point (middle BLQs dropped)
        pos = np.where(keep, idx[None, :], n_t)
        nxt = np.minimum.accumulate(pos[:, ::-1], axis=1)[:, ::-1]  # first kept index >= i
        nxt = np.concatenate([nxt[:, 1:], np.full((nxt.shape[0], 1), n_t)], axis=1)  # > i
        valid = keep & (nxt < n_t)
        j = np.minimum(nxt, n_t - 1)
        rows = np.arange(vw.shape[0])[:, None]
        a, b = vw, vw[rows, j]
        dt = tw[j] - tw[None, :]
    else:
        total = _auc_rows(tw, vw, {"linear": 0, "log": 1}.get(method, 2))
        return _out(np.where(bad, np.nan, total), single)
    use_log = _log_segments(a, b, method)
    with np.errstate(all="ignore"):
        seg = np.where(use_log, dt * (a - b) / np.log(a / b), 0.5 * dt * (a + b))
    total = np.where(valid, seg, 0.0).sum(axis=1)
    return _out(np.where(bad, np.nan, total), single)


def tlast(times, values, lloq=None, start=None, end=None):
    """Last output time in [start, end] with a value at or above ``lloq`` (> 0 without one).

    NaN when no value in the window is quantifiable (PKNCA gives NA).

    Returns
    -------
    ndarray, shape (n,)
    """
    tw, vw, single = _observed_window(times, values, start, end)
    quant = vw >= lloq if lloq is not None else vw > 0
    any_q = quant.any(axis=1)
    k = vw.shape[1] - 1 - quant[:, ::-1].argmax(axis=1)
    out = np.where(any_q, tw[k], np.nan)
    return _out(np.where(np.isnan(vw).any(axis=1), np.nan, out), single)


def first_crossing(times, values, threshold, direction, after=None, end=None, method="lin-up/log-down"):
    """First time after ``after`` that each row is above (or below) ``threshold``.

    The crossing time between two output times is read on the interpolant
    (``method``). When the condition already holds at ``after``, the time is
    ``after``. Rows where it never holds by ``end`` are censored at ``end``.

    Parameters
    ----------
    times : array_like, shape (T,)
        Output times (day).
    values : array_like, shape (n, T) or (T,)
        Output values.
    threshold : float
        Threshold (the output's unit); "above" means ``value > threshold``, "below"
        ``value < threshold``.
    direction : {"above", "below"}
    after : float or array_like, shape (n,), optional
        Start of the search (day), per patient allowed; NaN gives NaN. Default: the
        first output time.
    end : float, optional
        Censoring time (day); default the last output time.
    method : {"lin-up/log-down", "linear", "log"}

    Returns
    -------
    (time, event) : tuple of ndarray, shape (n,)
        Event time or censoring time (day), and 1.0 for an event, 0.0 when censored.
    """
    if direction not in ("above", "below"):
        raise ValueError(f"`direction` must be one of ['above', 'below'], got {direction!r}")
    _check_method(method)
    times = np.asarray(times, dtype=float)
    v, single = _rows(values)
    n = v.shape[0]
    end = float(times[-1]) if end is None else min(float(end), float(times[-1]))
    after = np.broadcast_to(np.asarray(times[0] if after is None else after, dtype=float), (n,))

    def holds(x):
        return x > threshold if direction == "above" else x < threshold

    # at `after` itself the condition must hold by more than rounding: `after` is often
    # the time another endpoint crossed this very threshold (relapse after remission)
    margin = 1e-9 * max(abs(threshold), np.finfo(float).tiny)
    v_after = interpolate(times, v, after, method)
    at_after = v_after > threshold + margin if direction == "above" else v_after < threshold - margin
    cond = holds(v) & (times[None, :] > after[:, None])
    has = cond.any(axis=1)
    k = cond.argmax(axis=1)
    k0 = np.maximum(k - 1, 0)
    rows = np.arange(n)
    a, b = v[rows, k0], v[rows, k]
    f = _crossing_fraction(a, b, threshold, method)
    crossing = np.maximum(times[k0] + f * (times[k] - times[k0]), after)
    t_event = np.where(at_after, after, np.where(has, crossing, np.inf))
    event = t_event <= end
    time = np.where(event, t_event, end)
    bad = np.isnan(v).any(axis=1) | np.isnan(after)
    time = np.where(bad, np.nan, time)
    event = np.where(bad, np.nan, event.astype(float))
    return _out(time, single), _out(event, single)


def time_beyond(times, values, threshold, direction, start=None, end=None, method="lin-up/log-down"):
    """Time (day) each row spends above or below ``threshold`` within [start, end].

    Crossings between output times are read on the interpolant (``method``).

    Returns
    -------
    ndarray, shape (n,)
    """
    if direction not in ("above", "below"):
        raise ValueError(f"`direction` must be one of ['above', 'below'], got {direction!r}")
    _check_method(method)
    times = np.asarray(times, dtype=float)
    v, single = _rows(values)
    start, end = _bounds(times, start, end)
    tw, vw = _window(times, v, start, end, method)
    a, b = vw[:, :-1], vw[:, 1:]
    if direction == "above":
        in_a, in_b = a > threshold, b > threshold
    else:
        in_a, in_b = a < threshold, b < threshold
    dt = np.diff(tw)
    total = (in_a & in_b) @ dt  # whole segments inside
    rows, cols = np.nonzero(in_a != in_b)  # segments with a crossing (few): the part inside
    f = _crossing_fraction(a[rows, cols], b[rows, cols], threshold, method)
    part = np.where(in_a[rows, cols], f, 1.0 - f) * dt[cols]
    total = total + np.bincount(rows, weights=part, minlength=vw.shape[0])
    return _out(np.where(np.isnan(vw).any(axis=1), np.nan, total), single)


def _cumulative_at(times, hazard, cumulative, at):
    """Cumulative hazard at per-patient times ``at`` (piecewise-linear hazard)."""
    n, n_t = hazard.shape
    k = np.clip(np.searchsorted(times, np.nan_to_num(at, nan=times[0]), side="right") - 1, 0, n_t - 2)
    rows = np.arange(n)
    x = at - times[k]
    dt = times[k + 1] - times[k]
    h0, h1 = hazard[rows, k], hazard[rows, k + 1]
    return cumulative[rows, k] + h0 * x + (h1 - h0) * x * x / (2.0 * dt)


def hazard_event_times(times, hazard, uniforms, start=None, end=None):
    """Event times drawn from a hazard given on the output grid.

    The hazard is taken as piecewise linear between output times (so the
    cumulative hazard is the trapezoid rule, exact for such a hazard) and counts
    only in [start, end]. The event happens when the cumulative hazard from
    ``start`` reaches ``-log(U)``; a constant hazard gives exactly exponential
    times. Negative hazard values count as 0.

    Parameters
    ----------
    times : array_like, shape (T,)
        Output times (day).
    hazard : array_like, shape (n, T)
        Hazard (1/day) at the output times.
    uniforms : array_like, shape (n,)
        Uniform random numbers in (0, 1), one per patient.
    start : float or array_like, shape (n,), optional
        Start of the risk window (day), per patient allowed; NaN gives NaN.
    end : float or array_like, shape (n,), optional
        Censoring time (day); default the last output time.

    Returns
    -------
    (time, event) : tuple of ndarray, shape (n,)
    """
    times = np.asarray(times, dtype=float)
    h, single = _rows(hazard)
    n, n_t = h.shape
    u = np.broadcast_to(np.asarray(uniforms, dtype=float), (n,))
    start = np.broadcast_to(np.asarray(times[0] if start is None else start, dtype=float), (n,))
    end_arr = np.broadcast_to(np.asarray(times[-1] if end is None else end, dtype=float), (n,))
    end_arr = np.minimum(end_arr, times[-1])
    if n_t < 2:
        raise ValueError("a hazard needs at least two output times")
    h = np.maximum(h, 0.0)
    dt = np.diff(times)
    cumulative = np.empty((n, n_t))  # trapezoid rule, built in place (large arrays)
    cumulative[:, 0] = 0.0
    inc = cumulative[:, 1:]
    np.add(h[:, :-1], h[:, 1:], out=inc)
    inc *= 0.5 * dt
    np.cumsum(inc, axis=1, out=inc)
    with np.errstate(all="ignore"):
        target = _cumulative_at(times, h, cumulative, start) - np.log(u)
    reach = cumulative >= target[:, None]
    has = reach.any(axis=1)
    k = np.maximum(reach.argmax(axis=1), 1)
    rows = np.arange(n)
    h0, h1 = h[rows, k - 1], h[rows, k]
    seg_dt = times[k] - times[k - 1]
    remaining = np.maximum(target - cumulative[rows, k - 1], 0.0)
    slope_half = (h1 - h0) / (2.0 * seg_dt)
    with np.errstate(all="ignore"):
        # root of slope_half x^2 + h0 x - remaining = 0 in the stable form (no cancellation)
        x = 2.0 * remaining / (h0 + np.sqrt(np.maximum(h0 * h0 + 4.0 * slope_half * remaining, 0.0)))
    x = np.clip(np.nan_to_num(x, nan=0.0), 0.0, seg_dt)
    t_event = np.where(has, np.maximum(times[k - 1] + x, start), np.inf)
    event = t_event <= end_arr
    time = np.where(event, t_event, end_arr)
    bad = np.isnan(h).any(axis=1) | np.isnan(start) | np.isnan(u)
    time = np.where(bad, np.nan, time)
    event = np.where(bad, np.nan, event.astype(float))
    return _out(time, single), _out(event, single)


# ----------------------------------------------------------------------------------------
# declared endpoints
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One declared endpoint (or outcome), validated.

    ``options`` holds the type's settings (numbers, method names); ``times`` holds
    time settings that may be a number or the name of a time-to-event endpoint
    (``after``, ``start``, ``at``); ``expr`` the parsed condition, value or hazard.
    """

    name: str
    type: str  # an ENDPOINT_TYPES key, or "outcome"
    key: str  # where it was declared, e.g. "endpoints.relapse"
    kind: str  # "continuous", "binary" or "time"
    output: str | None = None
    options: dict = field(default_factory=dict)
    times: dict = field(default_factory=dict)  # key -> float or endpoint name
    expr: ex.Expr | None = None
    among: ex.Expr | None = None
    events: tuple[str, ...] = ()  # outcomes: component endpoints
    report_at: tuple[float, ...] = ()
    description: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.name, f"{self.name}_event") if self.kind == "time" else (self.name,)

    def references(self) -> set[str]:
        """Names of the endpoints this one needs first."""
        refs = {v for v in self.times.values() if isinstance(v, str)}
        for e in (self.expr, self.among):
            if e is not None:
                refs |= {_base_name(n) for n in ex.names(e)}
        refs |= set(self.events)
        return refs

    def outputs_used(self, output_names) -> set[str]:
        used = {self.output} if self.output else set()
        if self.expr is not None:
            used |= {n for n in ex.names(self.expr) if n in output_names}
        return used


def _base_name(column: str) -> str:
    return column[:-len("_event")] if column.endswith("_event") else column


class EndpointSet:
    """The endpoints and outcomes of a scenario, in evaluation order.

    The same object is stored as ``scenario.sections["endpoints"]`` and
    ``scenario.sections["outcomes"]`` (whichever sections the file has): outcomes are
    endpoints of type ``"outcome"``.

    Attributes
    ----------
    endpoints : tuple of Endpoint
        In evaluation order (every endpoint after those it refers to).
    columns : tuple of str
        Output column names, in declaration order (endpoints, then outcomes); a
        time-to-event endpoint gives ``NAME`` and ``NAME_event``.
    kinds : dict of str to str
        Column -> "binary", "continuous", "time" or "event_flag".
    outputs_needed : tuple of str
        Model outputs the endpoints read.
    n_uniforms : int
        Uniform random numbers needed per patient (one per hazard or bernoulli endpoint).
    uniform_columns : dict of str to int
        Hazard or bernoulli endpoint -> column of ``uniforms`` it uses (declaration order).
    report_at : dict of str to tuple of float
        Time column -> days at which summaries report Kaplan-Meier survival.
    """

    def __init__(self, endpoints, output_names=(), declared_order=None):
        self.endpoints = tuple(endpoints)
        by_name = {e.name: e for e in self.endpoints}
        order = declared_order or [e.name for e in self.endpoints]
        self.declared = tuple(by_name[n] for n in order if n in by_name)
        self.columns = tuple(c for e in self.declared for c in e.columns)
        kinds = {}
        for e in self.declared:
            kinds[e.name] = e.kind
            if e.kind == "time":
                kinds[f"{e.name}_event"] = "event_flag"
        self.kinds = kinds
        needed = []
        for e in self.declared:
            for o in sorted(e.outputs_used(output_names)):
                if o not in needed:
                    needed.append(o)
        self.outputs_needed = tuple(needed)
        hazards = [e.name for e in self.declared if e.type in ("hazard", "bernoulli")]
        self.uniform_columns = {name: i for i, name in enumerate(hazards)}
        self.n_uniforms = len(hazards)
        self.report_at = {e.name: e.report_at for e in self.declared if e.kind == "time"}
        self.descriptions = {e.name: e.description for e in self.declared}
        self._output_names = tuple(output_names)
        self.path = None  # the scenario file that declares them, named by errors in compute()

    def __len__(self) -> int:
        return len(self.endpoints)

    def __getitem__(self, name) -> Endpoint:
        for e in self.endpoints:
            if e.name == name:
                return e
        raise KeyError(f"'{name}' is not an endpoint{suggestion(name, [e.name for e in self.endpoints])}")

    def __repr__(self) -> str:
        return f"EndpointSet({', '.join(f'{e.name}:{e.type}' for e in self.declared)})"

    def _error(self, e: Endpoint, err: Exception) -> CarKineticsError:
        """An error in computing endpoint ``e``, naming the scenario file and the endpoint's key."""
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        if self.path is not None:
            return ScenarioError(self.path, [FileProblem(e.key, f"could not be computed: {message}")])
        return EndpointError(f"{e.key}: could not be computed: {message}")

    def compute(self, times, outputs, uniforms, horizon) -> dict:
        """Compute every endpoint for a chunk of patients.

        Parameters
        ----------
        times : array_like, shape (T,)
            Output times (day), strictly increasing.
        outputs : mapping of str to ndarray, shape (n, T)
            Model outputs on the grid, patients in rows; at least
            :attr:`outputs_needed`. A row with NaN in an output an endpoint uses
            gives NaN for that endpoint (failed simulation).
        uniforms : ndarray, shape (n, n_uniforms)
            Uniform random numbers in (0, 1), column ``uniform_columns[name]`` for
            hazard endpoint ``name``.
        horizon : float
            End of follow-up (day): the default end of every window and the
            censoring time of time-to-event endpoints without their own ``end``.

        Returns
        -------
        dict of str to ndarray, shape (n,)
            One float array per column of :attr:`columns`.
        """
        times = np.asarray(times, dtype=float)
        missing = [o for o in self.outputs_needed if o not in outputs]
        if missing:
            raise KeyError(f"outputs {missing} are needed by the endpoints but were not given")
        arrays = {o: np.asarray(outputs[o], dtype=float) for o in self.outputs_needed}
        n = next(iter(arrays.values())).shape[0] if arrays else np.shape(uniforms)[0]
        for o, a in arrays.items():
            if a.shape != (n, times.size):
                raise ValueError(f"output '{o}' has shape {a.shape}, expected ({n}, {times.size})")
        u = np.zeros((n, 0)) if uniforms is None else np.asarray(uniforms, dtype=float)
        if u.ndim == 1 and self.n_uniforms == 1:
            u = u[:, None]
        if u.ndim != 2 or u.shape[0] != n or u.shape[1] < self.n_uniforms:
            raise ValueError(f"uniforms has shape {u.shape}, the endpoints need ({n}, {self.n_uniforms})")
        horizon = min(float(horizon), float(times[-1]))
        state = _State(times, arrays, u, horizon, n, self.uniform_columns)
        row_nan = {}

        def nan_rows(o):
            """Rows of output ``o`` with a NaN: where its maximum over the whole grid is NaN
            (a Cmax over the whole grid has it already; else one pass, no n x T temporary)."""
            if o not in row_nan:
                peak = state.cache.get(("cmax", o, None, float(times[-1]), None))
                a = arrays[o]
                row_nan[o] = (np.isnan(peak[0]) if peak is not None else
                              np.isnan(a.max(axis=1)) if a.shape[1] else np.zeros(n, dtype=bool))
            return row_nan[o]

        with np.errstate(all="ignore"):
            for e in self.endpoints:
                try:
                    cols = _COMPUTE[e.type](e, state)
                except (CarKineticsError, ArithmeticError, ValueError, TypeError, KeyError) as err:
                    raise self._error(e, err) from None
                # a failed patient (NaN anywhere in an output used) or a NaN endpoint used in
                # the expression gives NaN, even where where() or a window would hide it
                bad = np.zeros(n, dtype=bool)
                for o in e.outputs_used(arrays):
                    bad |= nan_rows(o)
                if e.expr is not None:
                    for name in ex.names(e.expr):
                        if name in state.results:
                            bad |= np.isnan(state.results[name])
                if e.among is not None:
                    bad |= ~_among(e.among, state.results)
                cols = {c: np.where(bad, np.nan, v) for c, v in cols.items()}
                for c, v in cols.items():
                    state.results[c] = np.asarray(v, dtype=float)
        return {c: state.results[c] for c in self.columns}


@dataclass
class _State:
    times: np.ndarray
    outputs: dict
    uniforms: np.ndarray
    horizon: float
    n: int
    uniform_columns: dict
    results: dict = field(default_factory=dict)
    eval_times: dict = field(default_factory=dict)  # binary endpoint -> time it refers to
    cache: dict = field(default_factory=dict)  # shared intermediate results (Cmax for Tmax)

    def end(self, e: Endpoint) -> float:
        end = e.times.get("end")
        return self.horizon if end is None else min(float(end), self.horizon)

    def start(self, e: Endpoint, key="start"):
        value = e.times.get(key)
        if value is None:
            return float(self.times[0])
        if isinstance(value, str):  # a reference event: its time where it happened, else NaN
            return np.where(self.results[f"{value}_event"] == 1.0, self.results[value], np.nan)
        return float(value)

    def env_at(self, expr: ex.Expr, at, method) -> dict:
        env = {"t": np.broadcast_to(np.asarray(at, dtype=float), (self.n,))}
        for name in ex.names(expr):
            if name in self.outputs:
                env[name] = interpolate(self.times, self.outputs[name], at, method)
            elif name in self.results:
                env[name] = self.results[name]
        return env

    def env_grid(self, expr: ex.Expr) -> dict:
        env = {"t": self.times[None, :]}
        for name in ex.names(expr):
            if name in self.outputs:
                env[name] = self.outputs[name]
            elif name in self.results:
                env[name] = self.results[name][:, None]
        return env


def _among(expr, results):
    env = {n: results[n] for n in ex.names(expr)}
    value = np.asarray(ex.evaluate(expr, env))
    nan = np.zeros(np.shape(value), dtype=bool)
    for v in env.values():
        nan = nan | np.isnan(v)
    truth = value if value.dtype == bool else (value != 0)
    return truth & ~nan


def _c_cmax(e, s):
    args = (e.output, e.times.get("start"), s.end(e), e.options.get("lloq"))
    if ("cmax",) + args not in s.cache:  # Cmax and Tmax of the same output share one pass
        s.cache[("cmax",) + args] = cmax(s.times, s.outputs[e.output], *args[1:])
    peak, tpeak = s.cache[("cmax",) + args]
    return {e.name: peak if e.type == "cmax" else tpeak}


def _c_cmin(e, s):
    args = (e.output, e.times.get("start"), s.end(e))
    if ("cmin",) + args not in s.cache:
        s.cache[("cmin",) + args] = cmin(s.times, s.outputs[e.output], *args[1:])
    low, tlow = s.cache[("cmin",) + args]
    return {e.name: low if e.type == "cmin" else tlow}


def _c_auc(e, s):
    return {e.name: auc(s.times, s.outputs[e.output], e.times.get("start"), s.end(e),
                        e.options.get("method", "lin-up/log-down"), e.options.get("lloq"))}


def _c_tlast(e, s):
    return {e.name: tlast(s.times, s.outputs[e.output], e.options.get("lloq"), e.times.get("start"), s.end(e))}


def _c_level(e, s):
    v = interpolate(s.times, s.outputs[e.output], e.times["day"], e.options.get("interpolation", "lin-up/log-down"))
    lloq = e.options.get("lloq")
    if lloq is not None:
        v = np.where(v < lloq, 0.0 if e.options.get("below_lloq", "zero") == "zero" else np.nan, v)
    return {e.name: v}


def _c_first(e, s):
    direction = "above" if e.type == "first_above" else "below"
    time, event = first_crossing(s.times, s.outputs[e.output], e.options["threshold"], direction,
                                 s.start(e, "after"), s.end(e), e.options.get("interpolation", "lin-up/log-down"))
    return {e.name: time, f"{e.name}_event": event}


def _c_time_beyond(e, s):
    direction = "above" if e.type == "time_above" else "below"
    return {e.name: time_beyond(s.times, s.outputs[e.output], e.options["threshold"], direction,
                                e.times.get("start"), s.end(e), e.options.get("interpolation", "lin-up/log-down"))}


def _c_at(e, s):
    if "at" in e.times:
        at = s.start(e, "at")
    elif "day" in e.times:
        at = np.full(s.n, float(e.times["day"]))
    else:  # an expression of other endpoints only: no time to read outputs at
        at = None
    method = e.options.get("interpolation", "lin-up/log-down")
    env = s.env_at(e.expr, np.nan if at is None else at, method)
    value = np.broadcast_to(np.asarray(ex.evaluate(e.expr, env), dtype=float), (s.n,))
    bad = np.zeros(s.n, dtype=bool) if at is None else np.isnan(at)
    for name in ex.names(e.expr):
        if name != "t":
            bad = bad | np.isnan(env[name])
    if at is not None:
        s.eval_times[e.name] = at
    if e.type == "bernoulli":  # probability -> a yes/no draw with this endpoint's uniform
        wrong = ~bad & ~((value >= -1e-12) & (value <= 1 + 1e-12))  # NaN too, where its inputs are numbers
        if wrong.any():
            i = int(np.argmax(wrong))
            raise ValueError(f"the probability is {value[i]:g} for patient {i} of the chunk ({int(wrong.sum())} "
                             f"patients outside [0, 1]); write it so it stays in [0, 1], e.g. min(1, ...)")
        value = (s.uniforms[:, s.uniform_columns[e.name]] < np.clip(value, 0.0, 1.0)).astype(float)
    return {e.name: np.where(bad, np.nan, value)}


def _c_hazard(e, s):
    env = s.env_grid(e.expr)
    h = np.broadcast_to(np.asarray(ex.evaluate(e.expr, env), dtype=float), (s.n, s.times.size))
    inputs_nan = np.zeros(s.n, dtype=bool)  # failed patients: NaN outputs give a NaN hazard (and endpoint)
    for name in ex.names(e.expr):
        if name != "t":
            v = np.asarray(env[name], dtype=float)
            inputs_nan |= np.isnan(v).any(axis=1) if v.ndim == 2 else np.isnan(v).reshape(-1)
    # a rate >= 0; outputs that are 0 in exact arithmetic may come out of the solver at -1e-15
    wrong = ~inputs_nan & ~(h >= -1e-9).all(axis=1)
    if wrong.any():
        i = int(np.argmax(wrong))
        j = int(np.argmax(~(h[i] >= -1e-9)))
        raise ValueError(f"the hazard is {h[i, j]:g} at t = {s.times[j]:g} for patient {i} of the chunk "
                         f"({int(wrong.sum())} patients with a negative or NaN hazard); a hazard is a rate >= 0")
    u = s.uniforms[:, s.uniform_columns[e.name]]
    time, event = hazard_event_times(s.times, h, u, s.start(e), s.end(e))
    return {e.name: time, f"{e.name}_event": event}


def _c_outcome(e, s):
    event_time = np.full(s.n, np.inf)
    censor_time = np.full(s.n, s.horizon)
    known = np.zeros(s.n, dtype=bool)
    for comp in e.events:
        t = s.results[comp]
        if f"{comp}_event" in s.results:  # time-to-event component
            flag = s.results[f"{comp}_event"]
            t_ev = np.where(flag == 1.0, t, np.inf)
            t_cens = np.where(flag == 0.0, t, np.inf)
        else:  # binary component: an event at the time it was assessed when it is 1
            flag = t
            t_ev = np.where(flag == 1.0, s.eval_times[comp], np.inf)
            t_cens = np.full(s.n, np.inf)
        ok = ~np.isnan(flag) & ~(np.isnan(t_ev) & (flag == 1.0))
        event_time = np.where(ok, np.minimum(event_time, t_ev), event_time)
        censor_time = np.where(ok, np.minimum(censor_time, t_cens), censor_time)
        known |= ok
    event = event_time <= censor_time
    time = np.where(event, event_time, censor_time)
    return {e.name: np.where(known, time, np.nan), f"{e.name}_event": np.where(known, event.astype(float), np.nan)}


_COMPUTE = {
    "cmax": _c_cmax, "tmax": _c_cmax, "cmin": _c_cmin, "tmin": _c_cmin, "auc": _c_auc, "tlast": _c_tlast,
    "level": _c_level, "first_above": _c_first, "first_below": _c_first, "time_above": _c_time_beyond,
    "time_below": _c_time_beyond, "condition": _c_at, "value": _c_at, "bernoulli": _c_at, "hazard": _c_hazard,
    "outcome": _c_outcome,
}


# ----------------------------------------------------------------------------------------
# scenario sections
# ----------------------------------------------------------------------------------------


class _Parser:
    """Parses [endpoints] and [outcomes] together (outcomes refer to endpoints)."""

    def __init__(self, context):
        self.context = context
        self.errs = context["errors"]
        self.model = context["model"]
        self.times = np.asarray(context["times"], dtype=float)
        self.outputs = tuple(self.model.output_names)
        data = context.get("data", {})
        self.raw_endpoints = data.get("endpoints", {})
        self.raw_outcomes = data.get("outcomes", {})

    # -- helpers ----------------------------------------------------------------------
    def number(self, spec, k, key, *, positive=False):
        value = spec[k]
        if not is_number(value):
            self.errs.add(f"{key}.{k}", f"expected a finite number, got {value!r}")
            return None
        if positive and not value > 0:
            self.errs.add(f"{key}.{k}", f"expected a number > 0, got {value!r}")
            return None
        return float(value)

    def day(self, spec, k, key):
        """A day within the output times."""
        value = self.number(spec, k, key)
        if value is None:
            return None
        lo, hi = float(self.times[0]), float(self.times[-1])
        if not lo <= value <= hi:
            self.errs.add(f"{key}.{k}", f"{value:g} is outside the output times [{lo:g}, {hi:g}] (day)")
            return None
        return value

    def day_or_event(self, spec, k, key):
        value = spec[k]
        if isinstance(value, str):
            return value  # checked once every endpoint is known
        return self.day(spec, k, key)

    def choice(self, spec, k, key, allowed):
        value = spec[k]
        if value not in allowed:
            self.errs.add(f"{key}.{k}", f"expected one of {list(allowed)}, got {value!r}"
                                        f"{suggestion(str(value), allowed)}")
            return None
        return value

    def days_list(self, spec, k, key):
        value = spec[k]
        if not isinstance(value, list) or not all(is_number(v) for v in value):
            self.errs.add(f"{key}.{k}", f"expected a list of days (numbers), got {value!r}")
            return None
        bad = [v for v in value if not float(self.times[0]) <= v <= float(self.times[-1])]
        if bad:
            self.errs.add(f"{key}.{k}", f"{bad} outside the output times "
                                        f"[{float(self.times[0]):g}, {float(self.times[-1]):g}] (day)")
            return None
        return tuple(float(v) for v in value)

    def check_name(self, name, key):
        if not _NAME_RE.match(name) or name in ex.FUNCTIONS or name in ("t", "pi"):
            self.errs.add(key, f"'{name}' cannot name an endpoint: use letters, digits and _ (not starting "
                               f"with a digit), and not a function name, 't' or 'pi'")
            return False
        if name in self.outputs:
            self.errs.add(key, f"'{name}' is already an output of model '{self.model.name}'; endpoint names "
                               f"must differ from output names (both can appear in expressions)")
            return False
        return True

    # -- sections ---------------------------------------------------------------------
    def parse(self) -> EndpointSet:
        raw_ep, raw_out = self.raw_endpoints, self.raw_outcomes
        specs = []
        if not isinstance(raw_ep, dict):
            self.errs.add("endpoints", "expected tables [endpoints.NAME] with a 'type'")
            raw_ep = {}
        if not isinstance(raw_out, dict):
            self.errs.add("outcomes", "expected tables [outcomes.NAME] with 'events'")
            raw_out = {}
        declared = []
        for name, spec in raw_ep.items():
            key = f"endpoints.{name}"
            if not isinstance(spec, dict):
                self.errs.add(key, f"expected a table with a 'type' (one of {sorted(ENDPOINT_TYPES)}), "
                                   f"got {spec!r}")
                continue
            if name in declared or not self.check_name(name, key):
                continue
            declared.append(name)
            specs.append((name, key, spec, "endpoint"))
        for name, spec in raw_out.items():
            key = f"outcomes.{name}"
            if not isinstance(spec, dict):
                self.errs.add(key, f"expected a table with 'events' (a list of endpoint names), got {spec!r}")
                continue
            if name in declared:
                self.errs.add(key, f"'{name}' is already declared as an endpoint; outcome names must differ")
                continue
            if not self.check_name(name, key):
                continue
            declared.append(name)
            specs.append((name, key, spec, "outcome"))
        columns = set(declared) | {f"{n}_event" for n in declared}
        for n in declared:
            if n.endswith("_event") and _base_name(n) in declared:
                self.errs.add(f"endpoints.{n}", f"'{n}' clashes with the event column of '{_base_name(n)}'")
        self.columns = columns
        self.names = declared
        endpoints = []
        for name, key, spec, what in specs:
            ep = self.endpoint(name, key, spec) if what == "endpoint" else self.outcome(name, key, spec)
            if ep is not None:
                endpoints.append(ep)
        by_name = {e.name: e for e in endpoints}
        self.check_references(by_name)
        ordered = self.order(by_name)
        return EndpointSet(ordered, self.outputs, declared_order=[n for n in declared if n in by_name])

    def common(self, name, key, spec, allowed):
        self.errs.unknown_keys(key, spec, allowed, f"a key of {key}")
        among = None
        if "among" in spec:
            among = self.expression(spec, "among", key, allow_outputs=False)
        description = spec.get("description", "")
        if not isinstance(description, str):
            self.errs.add(f"{key}.description", f"expected a string, got {description!r}")
            description = ""
        return among, description

    def expression(self, spec, k, key, *, allow_outputs=True):
        text = spec[k]
        if is_number(text) and k in ("hazard", "probability"):
            if k == "hazard" and text < 0:
                self.errs.add(f"{key}.{k}", f"a hazard is a rate >= 0, got {text}")
                return None
            if k == "probability" and not 0 <= text <= 1:
                self.errs.add(f"{key}.{k}", f"a probability is in [0, 1], got {text}")
                return None
            return ex.Expr.num(float(text))
        if not isinstance(text, str):
            self.errs.add(f"{key}.{k}", f"expected an expression string, got {text!r}")
            return None
        try:
            expr = ex.parse(text)
        except ExpressionError as err:
            self.errs.add(f"{key}.{k}", str(err))
            return None
        allowed = set(self.columns) | ({"t"} | set(self.outputs) if allow_outputs else set())
        what = ("model outputs, t and other endpoints" if allow_outputs else "other endpoints")
        ok = True
        for nm in sorted(ex.names(expr)):
            if nm not in allowed:
                hint = ""
                if nm in self.model.state_names or nm in self.model.parameter_names:
                    hint = f"; '{nm}' is a state or parameter of the model: declare an output for it"
                self.errs.add(f"{key}.{k}", f"unknown name '{nm}' in '{text}'{suggestion(nm, allowed)} "
                                            f"(this expression may use {what}{hint})")
                ok = False
        return expr if ok else None

    def endpoint(self, name, key, spec):
        typ = spec.get("type")
        if typ is not None and not isinstance(typ, str):
            self.errs.add(f"{key}.type", f"expected a string, one of {sorted(ENDPOINT_TYPES)}, got {typ!r}")
            return None
        if typ is None:
            self.errs.add(f"{key}.type", f"missing; expected one of {sorted(ENDPOINT_TYPES)}")
            return None
        if typ not in ENDPOINT_TYPES:
            self.errs.add(f"{key}.type", f"{typ!r} is not an endpoint type{suggestion(str(typ), ENDPOINT_TYPES)}; "
                                         f"expected one of {sorted(ENDPOINT_TYPES)}")
            return None
        keys, required, kind, _ = ENDPOINT_TYPES[typ]
        among, description = self.common(name, key, spec, keys | _COMMON_KEYS)
        ok = True
        for k in sorted(required):
            if k not in spec:
                self.errs.add(f"{key}.{k}", f"missing (required for type '{typ}')")
                ok = False
        output = None
        if "output" in spec:
            output = spec["output"]
            if output not in self.outputs:
                self.errs.add(f"{key}.output", f"{output!r} is not an output of model '{self.model.name}'"
                                               f"{suggestion(str(output), self.outputs)}; outputs: "
                                               f"{list(self.outputs)}")
                ok = False
        options, times = {}, {}
        if "threshold" in spec:
            options["threshold"] = self.number(spec, "threshold", key)
            ok &= options["threshold"] is not None
        if "lloq" in spec:
            options["lloq"] = self.number(spec, "lloq", key, positive=True)
            ok &= options["lloq"] is not None
        if "method" in spec:
            options["method"] = self.choice(spec, "method", key, AUC_METHODS)
            ok &= options["method"] is not None
        if "interpolation" in spec:
            options["interpolation"] = self.choice(spec, "interpolation", key, INTERPOLATIONS)
            ok &= options["interpolation"] is not None
        if "below_lloq" in spec:
            options["below_lloq"] = self.choice(spec, "below_lloq", key, BELOW_LLOQ)
            ok &= options["below_lloq"] is not None
            if "lloq" not in spec:
                self.errs.add(f"{key}.below_lloq", "needs 'lloq'")
        for k in ("start", "end", "day"):
            if k in spec:
                # a hazard may start at another endpoint's event (e.g. death after relapse)
                by_event = typ == "hazard" and k == "start"
                times[k] = self.day_or_event(spec, k, key) if by_event else self.day(spec, k, key)
                ok &= times[k] is not None
        for k in ("after", "at"):
            if k in spec:
                times[k] = self.day_or_event(spec, k, key)
                ok &= times[k] is not None
        if typ in ("condition", "value", "bernoulli") and "day" in spec and "at" in spec:
            self.errs.add(key, f"give one of 'day' (a number) or 'at' (the name of a time-to-event "
                               f"endpoint) for type '{typ}', not both")
            ok = False
        start, end = times.get("start"), times.get("end")
        if is_number(start) and is_number(end) and not start < end:
            self.errs.add(f"{key}.end", f"end = {end:g} must be after start = {start:g}")
            ok = False
        elif is_number(start) and end is None and not start < self.times[-1]:
            self.errs.add(f"{key}.start", f"start = {start:g} must be before the last output time "
                                          f"{float(self.times[-1]):g}")
            ok = False
        expr = None
        k = next((k for k in ("expr", "hazard", "probability") if k in spec), None)
        if k is not None:
            expr = self.expression(spec, k, key)
            ok &= expr is not None
            if expr is not None and typ == "condition" and not expr.is_bool:
                self.errs.add(f"{key}.expr", f"expected a condition (a comparison such as "
                                             f"'blast_fraction < 0.05'), got '{spec[k]}'")
                ok = False
            timeless = typ in ("condition", "value", "bernoulli") and "day" not in spec and "at" not in spec
            if expr is not None and timeless and ex.names(expr) & (set(self.outputs) | {"t"}):
                self.errs.add(key, f"'{spec[k]}' reads model outputs or t: give 'day' (a number) or 'at' "
                                   f"(the name of a time-to-event endpoint) to say when")
                ok = False
        report_at = (float(self.times[-1]),)
        if "report_at" in spec:
            r = self.days_list(spec, "report_at", key)
            ok &= r is not None
            report_at = r or report_at
        if not ok:
            return None
        return Endpoint(name=name, type=typ, key=key, kind=kind, output=output, options=options, times=times,
                        expr=expr, among=among, report_at=report_at, description=description)

    def outcome(self, name, key, spec):
        among, description = self.common(name, key, spec, _OUTCOME_KEYS)
        ok = True
        combine = spec.get("combine", "first")
        if not isinstance(combine, str) or combine not in COMBINE_RULES:
            self.errs.add(f"{key}.combine", f"expected one of {sorted(COMBINE_RULES)}, got {combine!r}"
                                            f"{suggestion(str(combine), COMBINE_RULES)}")
            ok = False
        events = spec.get("events")
        if not isinstance(events, list) or not events or not all(isinstance(v, str) for v in events):
            self.errs.add(f"{key}.events", f"expected a non-empty list of endpoint names, got {events!r}")
            return None
        for comp in events:
            if comp not in self.names:
                self.errs.add(f"{key}.events", f"'{comp}' is not an endpoint of this scenario"
                                               f"{suggestion(comp, self.names)}")
                ok = False
        report_at = (float(self.times[-1]),)
        if "report_at" in spec:
            r = self.days_list(spec, "report_at", key)
            ok &= r is not None
            report_at = r or report_at
        if not ok:
            return None  # the problems are recorded; keep checking the component names
        return Endpoint(name=name, type="outcome", key=key, kind="time", events=tuple(events), among=among,
                        report_at=report_at, description=description, options={"combine": combine})

    def check_references(self, by_name):
        for e in list(by_name.values()):
            for k, v in e.times.items():
                if not isinstance(v, str):
                    continue
                target = by_name.get(v)
                if target is None:
                    self.errs.add(f"{e.key}.{k}", f"'{v}' is not a time-to-event endpoint of this scenario"
                                                  f"{suggestion(v, self.names)}; expected a number (day) or "
                                                  f"the name of a time-to-event endpoint")
                    by_name.pop(e.name, None)
                elif target.kind != "time":
                    self.errs.add(f"{e.key}.{k}", f"'{v}' is a {target.kind} endpoint, not a time-to-event one "
                                                  f"(expected a number or a time-to-event endpoint)")
                    by_name.pop(e.name, None)
            if e.type == "outcome":
                for comp in e.events:
                    target = by_name.get(comp)
                    timed_binary = target is not None and target.kind == "binary" and (
                        "day" in target.times or "at" in target.times)
                    if target is not None and not (target.kind == "time" or timed_binary):
                        self.errs.add(f"{e.key}.events", f"'{comp}' is a {target.kind} endpoint of type "
                                                         f"'{target.type}'; expected time-to-event endpoints, or "
                                                         f"conditions with a 'day' or 'at' (an event then when "
                                                         f"true)")
                        by_name.pop(e.name, None)

    def order(self, by_name):
        """Topological order (declaration order where free); report cycles."""
        done, ordered, visiting = set(), [], []

        def visit(name):
            if name in done or name not in by_name:
                return
            if name in visiting:
                cycle = visiting[visiting.index(name):] + [name]
                self.errs.add(by_name[name].key, f"endpoints refer to each other in a cycle: "
                                                 f"{' -> '.join(cycle)}")
                return
            visiting.append(name)
            for ref in sorted(by_name[name].references()):
                if ref != name:
                    visit(ref)
                else:
                    self.errs.add(by_name[name].key, f"'{name}' refers to itself")
            visiting.pop()
            done.add(name)
            ordered.append(by_name[name])

        for name in by_name:
            visit(name)
        return ordered


def _parse_sections(raw, context):
    """Parser for both [endpoints] and [outcomes]: one EndpointSet, built once per scenario."""
    cached = context.get("_endpoint_set")
    if cached is None:
        cached = _Parser(context).parse()
        cached.path = context.get("path")
        context["_endpoint_set"] = cached
    return cached


register_section("endpoints", _parse_sections)
register_section("outcomes", _parse_sections)
