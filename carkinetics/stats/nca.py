"""Non-compartmental analysis of time series: interpolation, Cmax, Cmin, AUC, Tlast, threshold
crossings, time beyond a threshold and event times drawn from a hazard.

Each function works on output values of ``n`` patients on one grid of output times,
an ``(n, T)`` array (patients in rows), or on one ``(T,)`` row.

The metrics follow the conventions of the R package PKNCA
(https://github.com/billdenney/pknca, its default options): :func:`auc`
integrates with the linear trapezoid while the value rises or stays equal and the
log trapezoid while it falls (both values positive), Tmax is the first time of the
maximum, and values below a limit of quantification (``lloq``) are treated as
PKNCA's default ``conc.blq = list(first="keep", middle="drop", last="keep")``:
zeros before the first quantifiable value and after the last are kept, those
between quantifiable values are dropped.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Interpolation between output times: how a value (and a threshold crossing) is read
#: between two grid points. "lin-up/log-down": linear when rising or level, log-linear
#: when falling with both values positive (PKNCA); "log": log-linear whenever both
#: values are positive; "linear": always linear.
INTERPOLATIONS = ("lin-up/log-down", "linear", "log")

#: Trapezoid rules of :func:`auc` (the interpolations).
AUC_METHODS = INTERPOLATIONS


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

    Parameters
    ----------
    times : array_like, shape (T,)
        Output times (day).
    values : array_like, shape (n, T) or (T,)
        Output values (the output's unit).
    start, end : float, optional
        Window (day); default the whole grid.

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

    Parameters
    ----------
    times : array_like, shape (T,)
        Output times (day).
    values : array_like, shape (n, T) or (T,)
        Output values (the output's unit).
    lloq : float, optional
        Lower limit of quantification (the output's unit).
    start, end : float, optional
        Window (day); default the whole grid.

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
    start, end : float, optional
        Window (day); default the whole grid.
    method : {"lin-up/log-down", "linear", "log"}

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
