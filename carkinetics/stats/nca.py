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

import math
from typing import NamedTuple

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


@njit(cache=True, nogil=True)
def _hazard_rows(times, h, log_u, start, end, time, event):
    """Each row's event time: where the trapezoid-rule cumulative hazard from ``start`` reaches
    ``-log_u`` (see :func:`hazard_event_times`), in one pass over the row.

    The arithmetic is that of the array expressions it replaced (the same operations in the same
    order), so the times are the same to the bit. ``time``/``event`` get NaN for a row with a NaN
    hazard, start or uniform.
    """
    n, n_t = h.shape
    cum = np.empty(n_t)
    half_dt = np.empty(n_t)
    for k in range(1, n_t):
        half_dt[k] = 0.5 * (times[k] - times[k - 1])
    for i in range(n):
        n_nan = 0
        prev = h[i, 0]
        n_nan += prev != prev
        prev = max(prev, 0.0)
        c = 0.0
        cum[0] = 0.0
        for k in range(1, n_t):
            hk = h[i, k]
            n_nan += hk != hk
            hk = max(hk, 0.0)
            c += (prev + hk) * half_dt[k]
            cum[k] = c
            prev = hk
        if n_nan > 0 or start[i] != start[i] or log_u[i] != log_u[i]:
            time[i] = np.nan
            event[i] = np.nan
            continue
        # cumulative hazard at the start (piecewise-linear hazard within its interval)
        k = np.searchsorted(times, start[i], side="right") - 1
        k = min(max(k, 0), n_t - 2)
        x = start[i] - times[k]
        h0, h1 = max(h[i, k], 0.0), max(h[i, k + 1], 0.0)
        target = cum[k] + h0 * x + (h1 - h0) * x * x / (2.0 * (times[k + 1] - times[k])) - log_u[i]
        reach = 0
        while reach < n_t and not cum[reach] >= target:
            reach += 1
        t_event = np.inf
        if reach < n_t:
            k = max(reach, 1)
            h0, h1 = max(h[i, k - 1], 0.0), max(h[i, k], 0.0)
            seg_dt = times[k] - times[k - 1]
            remaining = max(target - cum[k - 1], 0.0)
            slope_half = (h1 - h0) / (2.0 * seg_dt)
            # root of slope_half x^2 + h0 x - remaining = 0 in the stable form (no cancellation)
            x = 2.0 * remaining / (h0 + math.sqrt(max(h0 * h0 + 4.0 * slope_half * remaining, 0.0)))
            x = 0.0 if x != x else min(max(x, 0.0), seg_dt)
            t_event = max(times[k - 1] + x, start[i])
        if t_event <= end[i]:
            time[i] = t_event
            event[i] = 1.0
        else:
            time[i] = end[i]
            event[i] = 0.0


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
    if n_t < 2:
        raise ValueError("a hazard needs at least two output times")
    u = np.broadcast_to(np.asarray(uniforms, dtype=float), (n,))
    start = np.broadcast_to(np.asarray(times[0] if start is None else start, dtype=float), (n,))
    end_arr = np.broadcast_to(np.asarray(times[-1] if end is None else end, dtype=float), (n,))
    end_arr = np.minimum(end_arr, times[-1])
    with np.errstate(all="ignore"):
        log_u = np.log(u)  # numpy's log, as before (numba's may differ in the last bit)
    time, event = np.empty(n), np.empty(n)
    _hazard_rows(times, h, np.ascontiguousarray(log_u), np.ascontiguousarray(start, dtype=float),
                 np.ascontiguousarray(end_arr, dtype=float), time, event)
    return _out(time, single), _out(event, single)


# ----------------------------------------------------------------------------------------
# terminal phase (PKNCA conventions): lambda_z, half-life, AUClast/AUCall/AUCinf, AUMC, MRT
# ----------------------------------------------------------------------------------------

class TerminalPhase(NamedTuple):
    """The terminal log-linear fit of :func:`lambda_z`, one value per patient (NaN: no fit).

    Attributes
    ----------
    lambda_z : ndarray
        Terminal elimination rate (1/day), the negative slope of log(value) on time.
    r_squared, adj_r_squared : ndarray
        Coefficient of determination of the chosen fit and its adjusted value
        ``1 - (1 - r2) (n - 1) / (n - 2)`` (NaN for two points).
    n_points : ndarray
        Number of points in the fit.
    half_life : ndarray
        ``ln 2 / lambda_z`` (day).
    intercept : ndarray
        The fitted log(value) at time 0 of the output times: log C(t) = intercept - lambda_z t.
    clast_pred : ndarray
        The value predicted by the fit at ``tlast``.
    clast_obs : ndarray
        The last quantifiable value (0 when none is).
    tlast : ndarray
        Last output time with a quantifiable value (day).
    time_first : ndarray
        First output time in the fit (day).
    span_ratio : ndarray
        Time spanned by the fit divided by the half-life.
    """

    lambda_z: np.ndarray
    r_squared: np.ndarray
    adj_r_squared: np.ndarray
    n_points: np.ndarray
    half_life: np.ndarray
    intercept: np.ndarray
    clast_pred: np.ndarray
    clast_obs: np.ndarray
    tlast: np.ndarray
    time_first: np.ndarray
    span_ratio: np.ndarray


@njit(cache=True, nogil=True)
def _terminal_rows(tw, vz, first, min_points, factor, out):
    """PKNCA's "best fit" of the terminal phase for each row (``pk.calc.half.life``).

    Points of row ``i`` eligible for the fit: output index ``>= first[i]`` with a value > 0
    (``vz`` has BLQ values set to 0). Fits use the last k eligible points, k = min_points
    up to all of them, with running (Welford) sums from the end. The chosen fit has
    lambda_z > 0 and an adjusted r2 above (the best adjusted r2 of all fits) - ``factor``,
    and among those the most points. ``out[i]`` gets lambda_z, r2, adjusted r2, points,
    intercept (at time 0) and the first time used.
    """
    n, m = vz.shape
    for i in range(n):
        for c in range(6):
            out[i, c] = np.nan
        count = 0
        for j in range(first[i], m):
            if vz[i, j] > 0:
                count += 1
        if count < min_points or count < 2:
            continue
        lam = np.full(count + 1, np.nan)
        r2s = np.full(count + 1, np.nan)
        adj = np.full(count + 1, np.nan)
        icp = np.full(count + 1, np.nan)
        tfirst = np.full(count + 1, np.nan)
        best = -np.inf
        k = 0
        mt = 0.0
        my = 0.0
        ctt = 0.0
        cty = 0.0
        cyy = 0.0
        for j in range(m - 1, first[i] - 1, -1):
            if not vz[i, j] > 0:
                continue
            k += 1
            t = tw[j]
            y = np.log(vz[i, j])
            dt = t - mt
            dy = y - my
            mt += dt / k
            my += dy / k
            ctt += dt * (t - mt)
            cty += dt * (y - my)
            cyy += dy * (y - my)
            if k < min_points or k < 2:
                continue
            slope = cty / ctt
            lam[k] = -slope
            icp[k] = my - slope * mt
            tfirst[k] = t
            if cyy > 0:
                r2s[k] = cty * cty / (ctt * cyy)
            if k > 2:
                adj[k] = 1.0 - (1.0 - r2s[k]) * (k - 1) / (k - 2)
                if adj[k] > best:
                    best = adj[k]
        chosen = -1
        if min_points == 2 and count == 2:  # PKNCA: two points only, no adjusted r2 to compare
            if lam[2] > 0:
                chosen = 2
        else:
            for kk in range(count, 1, -1):  # the most points first
                if lam[kk] > 0 and adj[kk] > best - factor:
                    chosen = kk
                    break
        if chosen > 0:
            out[i, 0] = lam[chosen]
            out[i, 1] = r2s[chosen]
            out[i, 2] = adj[chosen]
            out[i, 3] = chosen
            out[i, 4] = icp[chosen]
            out[i, 5] = tfirst[chosen]


def _quantified(vw, lloq):
    """Values with BLQ (below ``lloq``; <= 0 without one) set to 0, the quantifiable mask, the
    index of the last quantifiable value (-1: none) and which points PKNCA keeps
    (``conc.blq``: first keep, middle drop, last keep)."""
    quant = vw >= lloq if lloq is not None else vw > 0
    n_t = vw.shape[1]
    idx = np.arange(n_t)
    any_q = quant.any(axis=1)
    first_q = np.where(any_q, quant.argmax(axis=1), n_t)
    last_q = np.where(any_q, n_t - 1 - quant[:, ::-1].argmax(axis=1), -1)
    keep = quant | (idx[None, :] < first_q[:, None]) | (idx[None, :] > last_q[:, None])
    return np.where(quant, vw, 0.0), quant, last_q, keep


def _fit_terminal(tw, vw, lloq, min_points, adj_r2_factor, allow_tmax):
    """:class:`TerminalPhase` fields (arrays) for observed values ``vw`` on times ``tw``."""
    if int(min_points) != min_points or min_points < 2:
        raise ValueError(f"`min_points` must be an integer >= 2, got {min_points!r}")
    n = vw.shape[0]
    vz, quant, last_q, _ = _quantified(vw, lloq)
    kmax = vz.argmax(axis=1)  # PKNCA's first Tmax
    first = (kmax if allow_tmax else kmax + 1).astype(np.int64)
    out = np.empty((n, 6))
    _terminal_rows(tw, np.ascontiguousarray(vz), first, int(min_points), float(adj_r2_factor), out)
    rows = np.arange(n)
    has_q = last_q >= 0
    tl = np.where(has_q, tw[np.maximum(last_q, 0)], np.nan)
    clast_obs = np.where(has_q, vz[rows, np.maximum(last_q, 0)], 0.0)
    lam = out[:, 0]
    with np.errstate(all="ignore"):
        half = np.log(2.0) / lam
        clast_pred = np.exp(out[:, 4] - lam * tl)
        span = (tl - out[:, 5]) / half
    bad = np.isnan(vw).any(axis=1)
    fields = (lam, out[:, 1], out[:, 2], out[:, 3], half, out[:, 4], clast_pred, clast_obs, tl, out[:, 5], span)
    return TerminalPhase(*(np.where(bad, np.nan, f) for f in fields))


def lambda_z(times, values, start=None, end=None, lloq=None, min_points=3, adj_r2_factor=1e-4,
             allow_tmax=False):
    """Terminal elimination rate and half-life of each row, with PKNCA's automatic point selection.

    Follows ``pk.calc.half.life`` of PKNCA with its default options: of the
    output times in [start, end], only those after Tmax (``allow.tmax.in.half.life
    = FALSE``) with a quantifiable value (>= ``lloq``; > 0 without one) are used.
    log(value) is regressed on time over the last k of them, for every k from
    ``min_points`` (``min.hl.points`` = 3) up to all. The fit kept has lambda_z > 0
    and an adjusted r² greater than the best adjusted r² of all fits minus
    ``adj_r2_factor`` (``adj.r.squared.factor`` = 1e-4); of those, the one with the
    most points. No fit (too few points, or none with lambda_z > 0) gives NaN.

    Parameters
    ----------
    times : array_like, shape (T,)
        Output times (day).
    values : array_like, shape (n, T) or (T,)
        Output values, patients in rows.
    start, end : float, optional
        Window (day); default the whole grid. Only output times inside it are used.
    lloq : float, optional
        Lower limit of quantification (the output's unit).
    min_points : int
        Fewest points in a fit (>= 2).
    adj_r2_factor : float
        Tolerance on the adjusted r² that lets a fit with more points win.
    allow_tmax : bool
        Let the point at Tmax be part of a fit.

    Returns
    -------
    TerminalPhase
        Named fields, each an ndarray of shape (n,) (floats for one row).

    Examples
    --------
    >>> t = [0, 1, 2, 4, 8]
    >>> round(float(lambda_z(t, [0.0, 8.0, 4.0, 1.0, 0.0625]).half_life), 12)
    1.0
    """
    tw, vw, single = _observed_window(times, values, start, end)
    fit = _fit_terminal(tw, vw, lloq, min_points, adj_r2_factor, allow_tmax)
    return TerminalPhase(*(_out(f, single) for f in fit))


def _areas(tw, vw, method, lloq, t0):
    """AUClast, AUCall, AUMClast and AUMCall of each row (PKNCA), moments about time ``t0``."""
    _check_method(method, AUC_METHODS)
    vz, quant, last_q, keep = _quantified(vw, lloq)
    n, n_t = vz.shape
    idx = np.arange(n_t)
    pos = np.where(keep, idx[None, :], n_t)
    nxt = np.minimum.accumulate(pos[:, ::-1], axis=1)[:, ::-1]  # first kept index >= i
    nxt = np.concatenate([nxt[:, 1:], np.full((n, 1), n_t)], axis=1)  # first kept index > i
    valid = keep & (nxt < n_t)
    j = np.minimum(nxt, n_t - 1)
    rows = np.arange(n)[:, None]
    a, b = vz, vz[rows, j]
    ta, tb = tw[None, :] - t0, tw[j] - t0
    dt = tb - ta
    use_log = _log_segments(a, b, method)
    with np.errstate(all="ignore"):
        lr = np.log(b / a)
        area = np.where(use_log, dt * (b - a) / lr, 0.5 * dt * (a + b))
        moment = np.where(use_log, dt * (b * tb - a * ta) / lr - dt * dt * (b - a) / (lr * lr),
                          0.5 * dt * (a * ta + b * tb))
    in_last = valid & (j <= last_q[:, None])  # AUClast: segments up to Tlast
    auc_l = np.where(in_last, area, 0.0).sum(axis=1)
    auc_a = np.where(valid, area, 0.0).sum(axis=1)  # AUCall: also Tlast -> the next (BLQ, 0) point
    aumc_l = np.where(in_last, moment, 0.0).sum(axis=1)
    aumc_a = np.where(valid, moment, 0.0).sum(axis=1)
    bad = np.isnan(vw).any(axis=1) | (n_t < 2)  # PKNCA: no AUC from a single value
    return tuple(np.where(bad, np.nan, x) for x in (auc_l, auc_a, aumc_l, aumc_a))


_KINDS = ("last", "all", "inf_obs", "inf_pred")


def _area_metric(times, values, start, end, method, lloq, kind, lambda_z_, clast_pred, moment):
    """AUC (``moment`` False) or AUMC of the given kind, and whether ``values`` was one row."""
    if kind not in _KINDS:
        raise ValueError(f"`kind` must be one of {list(_KINDS)}, got {kind!r}")
    tw, vw, single = _observed_window(times, values, start, end)
    t0 = float(tw[0]) if start is None else float(start)  # moments: time from the window's start
    auc_l, auc_a, aumc_l, aumc_a = _areas(tw, vw, method, lloq, t0)
    if kind in ("last", "all"):
        return (aumc_l if kind == "last" and moment else aumc_a if moment else
                auc_l if kind == "last" else auc_a), single
    n = vw.shape[0]
    if lambda_z_ is None or (kind == "inf_pred" and clast_pred is None):
        fit = _fit_terminal(tw, vw, lloq, 3, 1e-4, False)
    lam = fit.lambda_z if lambda_z_ is None else np.broadcast_to(np.asarray(lambda_z_, dtype=float), (n,))
    vz, _, last_q, _ = _quantified(vw, lloq)
    li = np.maximum(last_q, 0)
    if kind == "inf_obs":
        clast = vz[np.arange(n), li]
    else:
        clast = fit.clast_pred if clast_pred is None else np.broadcast_to(np.asarray(clast_pred, float), (n,))
    tl = tw[li] - t0
    with np.errstate(all="ignore"):
        if moment:
            total = aumc_l + clast * tl / lam + clast / (lam * lam)
        else:
            total = auc_l + clast / lam
    total = np.where(last_q < 0, np.where(np.isnan(auc_l), np.nan, 0.0), total)  # all BLQ: 0 (PKNCA)
    return total, single


def auc_last(times, values, start=None, end=None, method="lin-up/log-down", lloq=None):
    """AUClast: area under each row from the first output time in [start, end] to Tlast (PKNCA).

    Uses the output times inside the window (no interpolation at its ends), BLQ
    values set to 0 and dropped between quantifiable values (PKNCA's default
    ``conc.blq``), and the rule ``method`` per segment (segments touching a 0 are
    linear). A row with every value BLQ gives 0; a window with one output time, NaN.

    Parameters
    ----------
    times : array_like, shape (T,)
        Output times (day).
    values : array_like, shape (n, T) or (T,)
        Output values, patients in rows.
    start, end : float, optional
        Window (day); default the whole grid.
    method : {"lin-up/log-down", "linear", "log"}
        Trapezoid rule per segment.
    lloq : float, optional
        Lower limit of quantification (the output's unit); without it, values <= 0 are BLQ.

    Returns
    -------
    ndarray, shape (n,) (a float for one row)
    """
    total, single = _area_metric(times, values, start, end, method, lloq, "last", None, None, False)
    return _out(total, single)


def auc_all(times, values, start=None, end=None, method="lin-up/log-down", lloq=None):
    """AUCall: AUClast plus the linear triangle from Tlast to the next (BLQ) output time (PKNCA).

    Parameters
    ----------
    times : array_like, shape (T,)
        Output times (day).
    values : array_like, shape (n, T) or (T,)
        Output values, patients in rows.
    start, end : float, optional
        Window (day); default the whole grid.
    method : {"lin-up/log-down", "linear", "log"}
        Trapezoid rule per segment.
    lloq : float, optional
        Lower limit of quantification (the output's unit).

    Returns
    -------
    ndarray, shape (n,) (a float for one row)

    See Also
    --------
    auc_last
    """
    total, single = _area_metric(times, values, start, end, method, lloq, "all", None, None, False)
    return _out(total, single)


def auc_inf(times, values, start=None, end=None, method="lin-up/log-down", lloq=None, kind="obs",
            lambda_z=None, clast_pred=None):
    """AUCinf: AUClast + Clast / lambda_z (PKNCA's ``aucinf.obs`` and ``aucinf.pred``).

    Parameters
    ----------
    times : array_like, shape (T,)
        Output times (day).
    values : array_like, shape (n, T) or (T,)
        Output values, patients in rows.
    start, end : float, optional
        Window (day); default the whole grid. AUClast and the terminal fit both use
        the output times inside it.
    method : {"lin-up/log-down", "linear", "log"}
        Trapezoid rule per segment of AUClast.
    lloq : float, optional
        Lower limit of quantification (the output's unit).
    kind : {"obs", "pred"}
        Extrapolate from the observed last value (``aucinf.obs``) or from the value
        the terminal fit predicts at Tlast (``aucinf.pred``).
    lambda_z : float or array_like, shape (n,), optional
        Terminal rate (1/day); default the fit of :func:`lambda_z` (PKNCA's defaults).
    clast_pred : float or array_like, shape (n,), optional
        For ``kind="pred"``: the predicted last value; default from the fit.

    Returns
    -------
    ndarray, shape (n,) (a float for one row)
        NaN where there is no terminal fit; 0 where every value is BLQ.
    """
    if kind not in ("obs", "pred"):
        raise ValueError(f"`kind` must be one of ['obs', 'pred'], got {kind!r}")
    total, single = _area_metric(times, values, start, end, method, lloq, f"inf_{kind}", lambda_z, clast_pred,
                                 False)
    return _out(total, single)


def aumc(times, values, start=None, end=None, method="lin-up/log-down", lloq=None, kind="last",
         lambda_z=None, clast_pred=None):
    """Area under the first-moment curve t·C(t), time counted from the window's start (PKNCA).

    Each segment uses PKNCA's moment formulas (``aumcintegrate_linear`` /
    ``aumcintegrate_log``); the extrapolation is ``Clast tlast / lambda_z +
    Clast / lambda_z²``. Times are counted from ``start`` (default the first output
    time), as ``pk.nca`` counts them from the start of its interval.

    Parameters
    ----------
    times : array_like, shape (T,)
        Output times (day).
    values : array_like, shape (n, T) or (T,)
        Output values, patients in rows.
    start, end : float, optional
        Window (day); default the whole grid.
    method : {"lin-up/log-down", "linear", "log"}
        Rule per segment.
    lloq : float, optional
        Lower limit of quantification (the output's unit).
    kind : {"last", "all", "inf_obs", "inf_pred"}
        AUMClast, AUMCall, AUMCinf,obs or AUMCinf,pred.
    lambda_z, clast_pred : float or array_like, optional
        As in :func:`auc_inf`.

    Returns
    -------
    ndarray, shape (n,) (a float for one row)
    """
    total, single = _area_metric(times, values, start, end, method, lloq, kind, lambda_z, clast_pred, True)
    return _out(total, single)


def mrt(times, values, start=None, end=None, method="lin-up/log-down", lloq=None, kind="obs",
        lambda_z=None, clast_pred=None):
    """Mean residence time AUMC / AUC (PKNCA's ``mrt.last``, ``mrt.obs``, ``mrt.pred``).

    This is PKNCA's ``pk.calc.mrt``: no correction for the duration of an infusion
    (the ``mrt.iv`` variants subtract half of it), as for a bolus or an
    extravascular single dose; time is counted from the window's start. NaN where
    the AUC is not > 0.

    Parameters
    ----------
    times : array_like, shape (T,)
        Output times (day).
    values : array_like, shape (n, T) or (T,)
        Output values, patients in rows.
    start, end : float, optional
        Window (day); default the whole grid.
    method : {"lin-up/log-down", "linear", "log"}
        Rule per segment.
    lloq : float, optional
        Lower limit of quantification (the output's unit).
    kind : {"last", "obs", "pred"}
        AUMClast/AUClast, AUMCinf,obs/AUCinf,obs or AUMCinf,pred/AUCinf,pred.
    lambda_z, clast_pred : float or array_like, optional
        As in :func:`auc_inf`.

    Returns
    -------
    ndarray, shape (n,) (a float for one row)
    """
    if kind not in ("last", "obs", "pred"):
        raise ValueError(f"`kind` must be one of ['last', 'obs', 'pred'], got {kind!r}")
    k = "last" if kind == "last" else f"inf_{kind}"
    a, single = _area_metric(times, values, start, end, method, lloq, k, lambda_z, clast_pred, False)
    m, _ = _area_metric(times, values, start, end, method, lloq, k, lambda_z, clast_pred, True)
    with np.errstate(all="ignore"):
        out = np.where(a > 0, m / a, np.nan)
    return _out(out, single)
