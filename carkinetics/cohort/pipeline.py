"""Virtual cohorts: simulate N patients in chunks and reduce them as they stream.

:func:`run_cohort` draws the patients of a scenario (:mod:`carkinetics.scenario.population`),
simulates them chunk by chunk with :func:`~carkinetics.simulation.simulate.simulate_batch`, and
keeps only what is small: the per-patient table (covariates, varying parameters,
status, endpoints) and, per arm, output and output time, a histogram of the values
from which the quantile bands are read. Memory therefore does not grow with N beyond
the patient table (about N x 20 numbers).

An engine thread draws and simulates the chunks while the calling thread reduces the
finished ones (and, for ``carkinetics run``, streams their rows to ``patients.csv``), so
that the reductions overlap the simulation (see docs/cohorts.md, "Speed and memory").

Every result is independent of the chunk size and of the number of threads: the
patients' random numbers depend only on the seed and the patient index, the engine's
arithmetic per patient is the same in any batch, chunks are reduced in patient order,
and histogram counts are sums.

Quantile bands
--------------
Values are binned by the top bits of their IEEE-754 representation: each octave
``[2^e, 2^(e+1))`` is split into ``2^BAND_BITS = 64`` equal bins, so a bin is at most
1.56% of its value wide (0.0068 decade; 64 x 3.32 = 213 bins per decade). Exact zeros
are counted apart, negative values are binned the same way by magnitude, NaN is left
out; magnitudes below ``BAND_FLOOR`` (2^-70, about 8.5e-22) share one bin and those
above ``BAND_CEILING`` (2^100, about 1.3e30) another, so the range, and the memory, is
bounded whatever N. A quantile is the inverted-CDF order statistic ``k = ceil(q n)``
placed inside its bin by linear interpolation of the rank: within one bin of
``numpy.quantile(x, q, method="inverted_cdf")``. Memory is 4 bytes per (arm, output,
output time, bin between the smallest and largest value seen).
"""

from __future__ import annotations

import io
import math
import queue
import sys
import threading
import time as _time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit

from carkinetics.errors import CarKineticsError, DataError, ScenarioError, suggestion
from carkinetics.scenario.population import DEFAULT_ARM, MAX_POPULATION, cohort_design
from carkinetics.scenario.observations import load_observations

BAND_BITS = 6
_SHIFT = 52 - BAND_BITS
_MAG = np.int64(0x7FFFFFFFFFFFFFFF)
BAND_FLOOR = 2.0 ** -70  # ~8.5e-22: smaller magnitudes share one bin [0, floor)
BAND_CEILING = 2.0 ** 100  # ~1.3e30: larger magnitudes share one bin, read as the ceiling
_KEY_MIN = int(np.array(BAND_FLOOR).view(np.int64)) >> _SHIFT
_KEY_UNDER = _KEY_MIN - 1
_KEY_OVER = int(np.array(BAND_CEILING).view(np.int64)) >> _SHIFT
_GROW_MARGIN = 4 << BAND_BITS  # bins added beyond the values seen when a histogram grows (4 octaves)
_SAMPLE_ROWS = 256  # patients whose values size an empty histogram
_MISSED_BUFFER = 1 << 16  # values outside the range recorded for a second, short pass
_NO_KEY = 1 << 40  # first key of an empty side's dummy row: above every key of a float64
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_COLUMNS = ("q05", "q25", "q50", "q75", "q95")
BAND_RESOLUTION = (f"log-linear histogram: 2^{BAND_BITS} = {2 ** BAND_BITS} equal bins per octave (a bin is at most "
                   f"{100 / 2 ** BAND_BITS:.2f}% of its value wide, {math.log10(1 + 2.0 ** -BAND_BITS):.4f} decade); "
                   f"magnitudes below {BAND_FLOOR:.2g} share one bin [0, {BAND_FLOOR:.2g}), above "
                   f"{BAND_CEILING:.2g} one bin read as {BAND_CEILING:.2g}; exact zeros counted apart; quantile = "
                   f"inverted-CDF order statistic placed in its bin by linear interpolation of the rank")
_QUEUE_CHUNKS, _QUEUE_BYTES = 4, 100e6  # finished chunks that may wait for their reduction
_SWITCH_INTERVAL = 0.0005  # s: interpreter-lock hand-over while the engine thread runs
_CHUNK_BYTES = 32e6  # target size of one chunk's saved outputs (up to _QUEUE_CHUNKS + 2 are alive at once)


class CohortError(CarKineticsError, ValueError):
    """A cohort run cannot start (no size, unknown output, bad chunk size...)."""


# ----------------------------------------------------------------------------------------
# Streaming histograms for quantile bands
# ----------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _key(bits):
    """Bin of a magnitude's bit pattern, clamped to [_KEY_UNDER, _KEY_OVER]."""
    k = bits >> _SHIFT
    if k < _KEY_MIN:
        return _KEY_UNDER
    if k > _KEY_OVER:
        return _KEY_OVER
    return k


@njit(cache=True, nogil=True)
def _accumulate(bits, vals, ok, pos, pos_lo, neg, neg_lo, zeros, nans, missed, buffer):
    """Count values whose bin lies in the current range; note the others.

    ``pos``/``neg`` have shape (n_bins, n_times), bin ``k`` in row ``k - lo``.
    ``missed`` = (min, max) key of positive, then negative values outside the
    current ranges (min > max when none), then their number; the flat indices
    ``i * n_times + t`` of the first ``len(buffer)`` of them go to ``buffer``.
    """
    n, n_t = vals.shape
    pos_hi = pos_lo + pos.shape[0] - 1
    neg_hi = neg_lo + neg.shape[0] - 1
    big = np.int64(1) << 62
    pmin, pmax, nmin, nmax = big, -big, big, -big
    n_missed = 0
    cap = buffer.shape[0]
    # Fast path: a positive value whose raw key lies in the positive range (one unsigned
    # comparison; zero, negative, NaN, infinite values and keys outside the range fail it and
    # take the full test below, which clamps keys as _key does: same counts, ~2x faster).
    flat = pos.reshape(-1)
    n_pos = np.uint64(pos.shape[0])
    u_t = np.uint64(n_t)
    for i in range(n):
        if not ok[i]:
            continue
        for t in range(n_t):
            j = np.uint64((bits[i, t] >> _SHIFT) - pos_lo)
            if j < n_pos:
                flat[j * u_t + np.uint64(t)] += np.uint32(1)
                continue
            x = vals[i, t]
            if x > 0:
                k = _key(bits[i, t])
                if k >= pos_lo and k <= pos_hi:
                    pos[k - pos_lo, t] += 1
                else:
                    pmin = min(pmin, k)
                    pmax = max(pmax, k)
                    if n_missed < cap:
                        buffer[n_missed] = i * n_t + t
                    n_missed += 1
            elif x < 0:
                k = _key(bits[i, t] & _MAG)
                if k >= neg_lo and k <= neg_hi:
                    neg[k - neg_lo, t] += 1
                else:
                    nmin = min(nmin, k)
                    nmax = max(nmax, k)
                    if n_missed < cap:
                        buffer[n_missed] = i * n_t + t
                    n_missed += 1
            elif x == 0:
                zeros[t] += 1
            else:
                nans[t] += 1
    missed[0] = pmin
    missed[1] = pmax
    missed[2] = nmin
    missed[3] = nmax
    missed[4] = n_missed


@njit(cache=True, nogil=True)
def _accumulate_listed(bits, vals, buffer, n_listed, pos, pos_lo, neg, neg_lo):
    """Count the values at the flat indices ``buffer[:n_listed]`` (after the histograms grew)."""
    n_t = vals.shape[1]
    for j in range(n_listed):
        i = buffer[j] // n_t
        t = buffer[j] - i * n_t
        if vals[i, t] > 0:
            pos[_key(bits[i, t]) - pos_lo, t] += 1
        else:
            neg[_key(bits[i, t] & _MAG) - neg_lo, t] += 1


@njit(cache=True, nogil=True)
def _accumulate_outside(bits, vals, ok, pos, pos_lo, old_pos_lo, old_pos_hi, neg, neg_lo, old_neg_lo, old_neg_hi):
    """Count the values that fell outside the old ranges, once the histograms have grown."""
    n, n_t = vals.shape
    for i in range(n):
        if not ok[i]:
            continue
        for t in range(n_t):
            x = vals[i, t]
            if x > 0:
                k = _key(bits[i, t])
                if k < old_pos_lo or k > old_pos_hi:
                    pos[k - pos_lo, t] += 1
            elif x < 0:
                k = _key(bits[i, t] & _MAG)
                if k < old_neg_lo or k > old_neg_hi:
                    neg[k - neg_lo, t] += 1


def _key_edges(keys: np.ndarray):
    """Lower and upper edge (magnitudes) of the bins with these keys."""
    keys = keys.astype(np.int64)
    lo = (np.clip(keys, _KEY_MIN, _KEY_OVER) << _SHIFT).view(np.float64)
    hi = ((np.clip(keys, _KEY_MIN, _KEY_OVER) + 1) << _SHIFT).view(np.float64)
    lo = np.where(keys == _KEY_UNDER, 0.0, lo)
    hi = np.where(keys == _KEY_UNDER, BAND_FLOOR, np.where(keys == _KEY_OVER, lo, hi))
    return lo, hi


class BandHistogram:
    """Counts of one output's values at each output time, in log-linear bins.

    See the module documentation for the bins. The bin range grows as values
    arrive (rows of ``pos``/``neg``, shape (n_bins, n_times)); counts are unsigned
    32-bit. Sums of histograms are histograms, so the counts do not depend on how
    the values were split into chunks.
    """

    def __init__(self, n_times: int):
        self.n_times = n_times
        self.pos = np.zeros((0, n_times), dtype=np.uint32)
        self.pos_lo = 0
        self.neg = np.zeros((0, n_times), dtype=np.uint32)
        self.neg_lo = 0
        self.zeros = np.zeros(n_times, dtype=np.int64)
        self.nans = np.zeros(n_times, dtype=np.int64)

    @staticmethod
    def _grow(arr, lo, kmin, kmax):
        """``arr`` extended to hold keys kmin..kmax, with a margin so that it rarely grows again."""
        if kmin > kmax:
            return arr, lo
        if arr.shape[0] and kmin >= lo and kmax <= lo + arr.shape[0] - 1:
            return arr, lo
        new_lo = max(_KEY_UNDER, kmin - _GROW_MARGIN)
        new_hi = min(_KEY_OVER, kmax + _GROW_MARGIN)
        if arr.shape[0] == 0:
            return np.zeros((new_hi - new_lo + 1, arr.shape[1]), dtype=np.uint32), new_lo
        new_lo, new_hi = min(lo, new_lo), max(lo + arr.shape[0] - 1, new_hi)
        out = np.zeros((new_hi - new_lo + 1, arr.shape[1]), dtype=np.uint32)
        out[lo - new_lo:lo - new_lo + arr.shape[0]] = arr
        return out, new_lo

    @staticmethod
    def _bounds(arr, lo):
        return (lo, lo + arr.shape[0] - 1) if arr.shape[0] else (1, 0)  # empty: lo > hi

    @staticmethod
    def _nonempty(arr):
        return arr if arr.shape[0] else np.zeros((1, arr.shape[1]), dtype=np.uint32)

    def add(self, values: np.ndarray, ok: np.ndarray) -> None:
        """Count ``values`` (n_patients, n_times) of the patients where ``ok`` is true."""
        vals = np.ascontiguousarray(values, dtype=np.float64)
        ok = np.ascontiguousarray(ok, dtype=np.bool_)
        bits = vals.view(np.int64)
        if self.pos.shape[0] == 0 and self.neg.shape[0] == 0:
            # size the ranges from the first patients, so most values fit in one pass
            sample = vals[np.flatnonzero(ok)[:_SAMPLE_ROWS]]
            keys = np.minimum(np.maximum(np.abs(sample).view(np.int64) >> _SHIFT, _KEY_UNDER), _KEY_OVER)
            for side, sel in (("pos", sample > 0), ("neg", sample < 0)):
                if sel.any():
                    arr, lo = self._grow(getattr(self, side), 0, int(keys[sel].min()), int(keys[sel].max()))
                    setattr(self, side, arr)
                    setattr(self, side + "_lo", lo)
        missed = np.empty(5, dtype=np.int64)
        buffer = np.empty(_MISSED_BUFFER, dtype=np.int64)
        p_old, n_old = self._bounds(self.pos, self.pos_lo), self._bounds(self.neg, self.neg_lo)
        # an empty side gets a dummy row at a key no value has, so nothing lands in it
        _accumulate(bits, vals, ok, self._nonempty(self.pos), np.int64(self.pos_lo if self.pos.shape[0] else _NO_KEY),
                    self._nonempty(self.neg), np.int64(self.neg_lo if self.neg.shape[0] else _NO_KEY), self.zeros,
                    self.nans, missed, buffer)
        pmin, pmax, nmin, nmax, n_missed = (int(x) for x in missed)
        if n_missed:
            self.pos, self.pos_lo = self._grow(self.pos, self.pos_lo, pmin, pmax)
            self.neg, self.neg_lo = self._grow(self.neg, self.neg_lo, nmin, nmax)
            pos, neg = self._nonempty(self.pos), self._nonempty(self.neg)
            if n_missed <= len(buffer):
                _accumulate_listed(bits, vals, buffer, n_missed, pos, np.int64(self.pos_lo), neg,
                                   np.int64(self.neg_lo))
            else:
                _accumulate_outside(bits, vals, ok, pos, np.int64(self.pos_lo), np.int64(p_old[0]),
                                    np.int64(p_old[1]), neg, np.int64(self.neg_lo), np.int64(n_old[0]),
                                    np.int64(n_old[1]))

    def merged(self, other: "BandHistogram") -> "BandHistogram":
        """The sum of two histograms (e.g. of the arms of a cohort)."""
        out = BandHistogram(self.n_times)
        for side in ("pos", "neg"):
            arrs = [(getattr(h, side), getattr(h, side + "_lo")) for h in (self, other) if getattr(h, side).shape[0]]
            if not arrs:
                continue
            lo = min(a_lo for _, a_lo in arrs)
            hi = max(a_lo + a.shape[0] - 1 for a, a_lo in arrs)
            acc = np.zeros((hi - lo + 1, self.n_times), dtype=np.uint32)
            for a, a_lo in arrs:
                acc[a_lo - lo:a_lo - lo + a.shape[0]] += a
            setattr(out, side, acc)
            setattr(out, side + "_lo", lo)
        out.zeros = self.zeros + other.zeros
        out.nans = self.nans + other.nans
        return out

    @property
    def nbytes(self) -> int:
        return int(self.pos.nbytes + self.neg.nbytes + self.zeros.nbytes + self.nans.nbytes)

    @property
    def counts(self) -> np.ndarray:
        """Non-NaN values counted per time."""
        return self.pos.sum(axis=0, dtype=np.int64) + self.neg.sum(axis=0, dtype=np.int64) + self.zeros

    def quantiles(self, qs=QUANTILES) -> np.ndarray:
        """Quantiles (n_times, len(qs)); NaN where no value was counted."""
        n_lo, n_hi = _key_edges(self.neg_lo + np.arange(self.neg.shape[0]))
        p_lo, p_hi = _key_edges(self.pos_lo + np.arange(self.pos.shape[0]))
        out = np.full((self.n_times, len(qs)), np.nan)
        _quantiles(self._nonempty(self.pos), p_lo if len(p_lo) else np.zeros(1), p_hi if len(p_hi) else np.zeros(1),
                   self._nonempty(self.neg), n_lo if len(n_lo) else np.zeros(1),
                   n_hi if len(n_hi) else np.zeros(1), self.zeros, np.asarray(qs, dtype=np.float64), out)
        return out


@njit(cache=True, nogil=True)
def _quantiles(pos, p_lo, p_hi, neg, n_lo, n_hi, zeros, qs, out):
    """Inverted-CDF quantiles from the histograms, interpolated within their bins.

    Values in ascending order: negative bins from the largest magnitude down, the
    zeros, then positive bins. ``p_lo``/``p_hi`` (``n_lo``/``n_hi``) are the
    magnitude edges of each row of ``pos`` (``neg``). Rows are walked in order, so
    memory is read contiguously.
    """
    n_t = zeros.shape[0]
    n_q = qs.shape[0]
    total = zeros.copy()
    for r in range(pos.shape[0]):
        for t in range(n_t):
            total[t] += pos[r, t]
    for r in range(neg.shape[0]):
        for t in range(n_t):
            total[t] += neg[r, t]
    target = np.zeros((n_t, n_q), dtype=np.int64)
    for t in range(n_t):
        for j in range(n_q):
            k = int(math.ceil(qs[j] * total[t] - 1e-9))
            target[t, j] = min(max(k, 1), total[t])
    seen = np.zeros(n_t, dtype=np.int64)
    for r in range(neg.shape[0] - 1, -1, -1):
        for t in range(n_t):
            c = neg[r, t]
            if c == 0:
                continue
            for j in range(n_q):
                k = target[t, j]
                if seen[t] < k <= seen[t] + c:
                    out[t, j] = -n_hi[r] + (k - seen[t] - 0.5) / c * (n_hi[r] - n_lo[r])
            seen[t] += c
    for t in range(n_t):
        c = zeros[t]
        for j in range(n_q):
            k = target[t, j]
            if c > 0 and seen[t] < k <= seen[t] + c:
                out[t, j] = 0.0
        seen[t] += c
    for r in range(pos.shape[0]):
        for t in range(n_t):
            c = pos[r, t]
            if c == 0:
                continue
            for j in range(n_q):
                k = target[t, j]
                if seen[t] < k <= seen[t] + c:
                    out[t, j] = p_lo[r] + (k - seen[t] - 0.5) / c * (p_hi[r] - p_lo[r])
            seen[t] += c



# ----------------------------------------------------------------------------------------
# Events per patient
# ----------------------------------------------------------------------------------------

_KIND_ORDER = {"multiply": 0, "set": 1, "add": 2, "set_parameter": 3}


class _ArmEvents:
    """The schedule of one arm and the expressions behind its per-patient event arrays."""

    def __init__(self, scenario, arm_name, typical_env):
        from carkinetics.model import expressions as ex

        self.specs = scenario.events_for_arm(None if arm_name == DEFAULT_ARM else arm_name)
        self.schedule = scenario.schedule(typical_env, None if arm_name == DEFAULT_ARM else arm_name)
        self.time_exprs = [s.time for s in self.specs]
        self.action_exprs = []
        for s in self.specs:
            for kind, target, e in sorted(s.actions, key=lambda a: _KIND_ORDER[a[0]]):
                self.action_exprs.append(e)
        # constant expressions need no per-patient arrays
        self.constant = all(e.op == "num" for e in self.time_exprs + self.action_exprs)
        self._ex = ex

    def arrays(self, env, n):
        if self.constant:
            return None, None
        ex = self._ex
        times = np.empty((n, len(self.time_exprs)))
        for j, e in enumerate(self.time_exprs):
            times[:, j] = np.broadcast_to(np.asarray(ex.evaluate(e, env), dtype=float), (n,))
        values = np.empty((n, len(self.action_exprs)))
        for j, e in enumerate(self.action_exprs):
            values[:, j] = np.broadcast_to(np.asarray(ex.evaluate(e, env), dtype=float), (n,))
        return times, values


class _EngineThread:
    """Runs ``simulate(start)`` for each chunk start in order in a thread; ``get()`` returns the
    results in the same order. At most ``depth`` finished chunks wait in the queue (the thread
    blocks until one is taken); an exception in the thread is raised by ``get()``."""

    def __init__(self, simulate, starts, depth):
        self._queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(simulate, list(starts)),
                                        name="carkinetics-engine", daemon=True)

    def start(self):
        self._thread.start()

    def is_alive(self):
        return self._thread.is_alive()

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, simulate, starts):
        try:
            for start in starts:
                if self._stop.is_set() or not self._put((True, simulate(start))):
                    return
        except BaseException as err:  # handed to the calling thread
            self._put((False, err))

    def get(self):
        ok, item = self._queue.get()
        if not ok:
            raise item
        return item

    def close(self):
        """Stop after the chunk being simulated (if any) and wait for the thread."""
        self._stop.set()
        while self._thread.is_alive():
            self._thread.join(0.05)
        while not self._queue.empty():  # free the outputs of chunks nobody took
            self._queue.get_nowait()


# ----------------------------------------------------------------------------------------
# CSV: the bytes of pandas' DataFrame.to_csv(index=False), written faster
# ----------------------------------------------------------------------------------------

_CSV_SPECIAL = (",", '"', "\r", "\n")


def _csv_text_cells(values):
    """Cells of text values (NaN/None -> empty), or None when one would need quoting."""
    cells = []
    for v in values:
        if v is None or (isinstance(v, float) and v != v):
            cells.append("")
            continue
        v = str(v)
        if not v or any(ch in v for ch in _CSV_SPECIAL):
            return None
        cells.append(v)
    return cells


# Shortest round-trip decimal of a double (what repr() and numpy's str() print), compiled:
# the Schubfach algorithm (R. Giulietti, "The Schubfach way to render doubles", 2020; the
# algorithm of Java's Double.toString since JDK 19), then Python's repr layout (positional
# for decimal exponents -4 < e <= 16, else d.ddde+XX). Subnormal numbers (below 2.2e-308)
# are left to repr(). The tests compare it with repr() on millions of bit patterns.

_SCHUBFACH_K_MIN, _SCHUBFACH_K_MAX = -324, 292
_CELL = 24  # bytes per formatted number
_schubfach_g = None


def _schubfach_table() -> np.ndarray:
    """g = floor(10^-k / 2^r) + 1 with 2^125 <= 10^-k / 2^r < 2^126, as (g >> 63, g mod 2^63) per k."""
    global _schubfach_g
    if _schubfach_g is None:
        g = np.empty((_SCHUBFACH_K_MAX - _SCHUBFACH_K_MIN + 1, 2), dtype=np.uint64)
        for i, k in enumerate(range(_SCHUBFACH_K_MIN, _SCHUBFACH_K_MAX + 1)):
            if k <= 0:
                v = 10 ** (-k)
                r = v.bit_length() - 126
                beta = v >> r if r >= 0 else v << -r
            else:
                d = 10 ** k
                s = 125 + d.bit_length()
                beta = (1 << s) // d
                while beta >= 1 << 126:
                    s -= 1
                    beta = (1 << s) // d
                while beta < 1 << 125:
                    s += 1
                    beta = (1 << s) // d
            g[i, 0] = (beta + 1) >> 63
            g[i, 1] = (beta + 1) & ((1 << 63) - 1)
        _schubfach_g = g
    return _schubfach_g


@njit(cache=True, nogil=True, inline="always")
def _mulhi(a, b):
    """High 64 bits of the 128-bit product of two uint64."""
    m32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    a_lo, a_hi, b_lo, b_hi = a & m32, a >> s32, b & m32, b >> s32
    p0, p1, p2 = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo
    mid = (p0 >> s32) + (p1 & m32) + (p2 & m32)
    return a_hi * b_hi + (p1 >> s32) + (p2 >> s32) + (mid >> s32)


@njit(cache=True, nogil=True, inline="always")
def _rop(g1, g0, cp):
    """Round-to-odd product of g = g1 2^63 + g0 and cp, shifted right by 127 (Schubfach)."""
    m63 = np.uint64(0x7FFFFFFFFFFFFFFF)
    x1 = _mulhi(g0, cp)
    y1 = _mulhi(g1, cp)
    z = ((g1 * cp) >> np.uint64(1)) + x1
    return (y1 + (z >> np.uint64(63))) | (((z & m63) + m63) >> np.uint64(63))


@njit(cache=True, nogil=True)
def _repr_floats(bits, g, buf, lens):
    """Write repr() of each double (given as its bits) to ``buf`` (_CELL = 24 bytes per value: the
    longest repr, e.g. ``-1.2345678901234567e-308``).

    ``lens[i]``: the length of cell i (at ``buf[24 i:]``); 0 for NaN (an empty CSV
    cell); -1 for a subnormal number, left to the caller.
    """
    one = np.uint64(1)
    two = np.uint64(2)
    ten = np.uint64(10)
    c_min = np.uint64(1 << 52)
    digits = np.empty(20, dtype=np.uint8)
    for i in range(bits.shape[0]):
        ux = bits[i]
        p = _CELL * i
        p0 = p
        bq = np.int64((ux >> np.uint64(52)) & np.uint64(0x7FF))
        t = ux & np.uint64((1 << 52) - 1)
        neg = (ux >> np.uint64(63)) != 0
        if bq == 0x7FF and t != 0:
            lens[i] = 0  # NaN
            continue
        if bq == 0 and t != 0:
            lens[i] = -1  # subnormal
            continue
        if neg:
            buf[p] = 45  # -
            p += 1
        if bq == 0x7FF:
            buf[p], buf[p + 1], buf[p + 2] = 105, 110, 102  # inf
            lens[i] = p + 3 - p0
            continue
        if bq == 0:
            buf[p], buf[p + 1], buf[p + 2] = 48, 46, 48  # 0.0
            lens[i] = p + 3 - p0
            continue
        mq = 1075 - bq  # the double is c 2^-mq
        c = c_min | t
        f = np.uint64(0)
        e = 0
        exact = False
        if 0 < mq < 53:  # an integer below 2^53: its digits
            f = c >> np.uint64(mq)
            exact = (f << np.uint64(mq)) == c
        if not exact:
            q = -mq
            out = c & one
            cb = c << two
            cbr = cb + two
            if c != c_min:
                cbl = cb - two
                k = (q * 661971961083) >> 41  # floor(q log10 2)
            else:
                cbl = cb - one
                k = (q * 661971961083 - 274743187321) >> 41  # floor(log10(3/4 2^q))
            h = np.uint64(q + ((-k * 913124641741) >> 38) + 2)  # q + floor(-k log2 10) + 2
            g1 = g[k + 324, 0]
            g0 = g[k + 324, 1]
            vb = _rop(g1, g0, cb << h)
            vbl = _rop(g1, g0, cbl << h)
            vbr = _rop(g1, g0, cbr << h)
            s = vb >> two
            e = k
            found = False
            if s >= 100:
                sp10 = ten * _mulhi(s, np.uint64(115292150460684698 << 4))
                tp10 = sp10 + ten
                upin = vbl + out <= sp10 << two
                wpin = (tp10 << two) + out <= vbr
                if upin != wpin:
                    f = sp10 if upin else tp10
                    found = True
            if not found:
                t1 = s + one
                uin = vbl + out <= s << two
                win = (t1 << two) + out <= vbr
                if uin != win:
                    f = s if uin else t1
                else:
                    cmp = np.int64(vb) - np.int64((s + t1) << one)
                    f = s if (cmp < 0 or (cmp == 0 and (s & one) == 0)) else t1
        while f % ten == 0:
            f //= ten
            e += 1
        n = 0
        while f > 0:
            digits[n] = np.uint8(48 + f % ten)
            f //= ten
            n += 1
        decpt = n + e  # value = 0.d1d2...dn x 10^decpt
        if decpt <= -4 or decpt > 16:  # d.ddde+XX
            buf[p] = digits[n - 1]
            p += 1
            if n > 1:
                buf[p] = 46
                p += 1
                for j in range(n - 2, -1, -1):
                    buf[p] = digits[j]
                    p += 1
            x10 = decpt - 1
            buf[p] = 101  # e
            buf[p + 1] = 45 if x10 < 0 else 43
            p += 2
            x10 = abs(x10)
            if x10 >= 100:
                buf[p] = 48 + x10 // 100
                p += 1
                x10 %= 100
            buf[p] = 48 + x10 // 10
            buf[p + 1] = 48 + x10 % 10
            p += 2
        elif decpt <= 0:  # 0.000ddd
            buf[p] = 48
            buf[p + 1] = 46
            p += 2
            for j in range(-decpt):
                buf[p] = 48
                p += 1
            for j in range(n - 1, -1, -1):
                buf[p] = digits[j]
                p += 1
        elif decpt >= n:  # ddd000.0
            for j in range(n - 1, -1, -1):
                buf[p] = digits[j]
                p += 1
            for j in range(decpt - n):
                buf[p] = 48
                p += 1
            buf[p] = 46
            buf[p + 1] = 48
            p += 2
        else:  # ddd.ddd
            for j in range(n - 1, -1, -1):
                buf[p] = digits[j]
                p += 1
                if n - j == decpt:
                    buf[p] = 46
                    p += 1
        lens[i] = p - p0


@njit(cache=True, nogil=True)
def _format_ints(values, buf, lens):
    """Decimal integers at ``buf[24 i:]`` (at most 20 characters), lengths in ``lens``."""
    digits = np.empty(20, dtype=np.uint8)
    for i in range(values.shape[0]):
        v = values[i]
        p = _CELL * i
        if v < 0:
            buf[p] = 45
            p += 1
        n = 0
        while True:  # digits from the least significant (no overflow at -2^63: one digit at a time)
            d = v % 10 if v >= 0 else -(v % -10)
            digits[n] = 48 + d
            n += 1
            v = v // 10 if v >= 0 else -((-(v + d)) // 10)
            if v == 0:
                break
        for j in range(n - 1, -1, -1):
            buf[p] = digits[j]
            p += 1
        lens[i] = p - _CELL * i


@njit(cache=True, nogil=True)
def _join_cells(buf, starts, lens, out):
    """CSV rows into ``out``: cell (row i, column j) is ``buf[starts[i, j]:][:lens[i, j]]``.

    Returns the number of bytes written.
    """
    n, n_cols = starts.shape
    p = 0
    for i in range(n):
        for j in range(n_cols):
            s = starts[i, j]
            for b in range(lens[i, j]):
                out[p] = buf[s + b]
                p += 1
            out[p] = 44 if j < n_cols - 1 else 10  # , or newline
            p += 1
    return p


def _csv_column(col):
    """One column's CSV cells as (bytes, start offsets, lengths), or None to leave the table to pandas.

    ``col``: a pandas Series, a pandas Categorical or a numpy array.

    Floats (float64) as their shortest round-trip representation (``repr``, which is what
    numpy's string conversion and so ``to_csv`` give), NaN as an empty cell; integers and
    booleans as ``str``; text and categories of text without characters that need quoting.
    """
    import pandas as pd

    dtype = col.dtype
    if dtype == np.float64:
        a = np.ascontiguousarray(np.asarray(col))
        buf = np.empty(_CELL * a.size, dtype=np.uint8)
        lens = np.empty(a.size, dtype=np.int64)
        _repr_floats(a.view(np.uint64), _schubfach_table(), buf, lens)
        sub = np.flatnonzero(lens < 0)
        for i in sub.tolist():  # subnormal numbers: Python's repr
            text = repr(float(a[i])).encode("ascii")
            buf[_CELL * i:_CELL * i + len(text)] = np.frombuffer(text, dtype=np.uint8)
            lens[i] = len(text)
        return buf, _CELL * np.arange(a.size, dtype=np.int64), lens
    if isinstance(dtype, pd.CategoricalDtype):  # each category's bytes once, gathered by code
        cats = _csv_text_cells(list(dtype.categories))
        if cats is None:
            return None
        encoded = [c.encode("utf-8") for c in cats] + [b""]  # code -1 (missing) -> ""
        cat_lens = np.array([len(c) for c in encoded], dtype=np.int64)
        cat_starts = np.concatenate([[0], np.cumsum(cat_lens[:-1])]).astype(np.int64)
        codes = np.asarray(col.cat.codes if hasattr(col, "cat") else col.codes).astype(np.int64)
        return (np.frombuffer(b"".join(encoded) or b" ", dtype=np.uint8), cat_starts[codes],
                cat_lens[codes])
    if isinstance(dtype, np.dtype) and dtype.kind in "iu" and dtype.itemsize <= 8:
        if dtype == np.uint64 and np.asarray(col).max(initial=0) >= 2 ** 63:
            return None
        a = np.ascontiguousarray(np.asarray(col), dtype=np.int64)
        buf = np.empty(_CELL * a.size, dtype=np.uint8)
        lens = np.empty(a.size, dtype=np.int64)
        _format_ints(a, buf, lens)
        return buf, _CELL * np.arange(a.size, dtype=np.int64), lens
    if dtype == np.bool_:
        cells = list(map(str, np.asarray(col).tolist()))
    elif dtype == object or isinstance(dtype, pd.StringDtype):
        missing = np.asarray(pd.isna(col))
        cells = _csv_text_cells([None if m else v for v, m in zip(col.tolist(), missing.tolist())])
        if cells is None:
            return None
    else:
        return None
    encoded = [c.encode("utf-8") for c in cells]
    lens = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    starts = np.zeros(len(encoded), dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), starts, lens


def write_csv(table, file, header=True) -> None:
    """Write a table as ``table.to_csv(file, index=False)`` would, several times faster.

    Float, integer, boolean, text and categorical columns are formatted here, to the
    same bytes as pandas (floats in their shortest round-trip form, so the file reads
    back exactly); any other column type, or text that needs quoting, is left to pandas.

    Parameters
    ----------
    table : pandas.DataFrame or mapping of str to array
        A mapping: columns by name (numpy arrays or pandas Categoricals, of one length).
    file : path-like, text file object or binary file object
        A path is created (replaced); a file object is appended to (a binary one gets
        UTF-8, as a path does).
    header : bool
        Write the header line.
    """
    if not hasattr(file, "write"):
        with open(file, "wb") as f:
            write_csv(table, f, header)
        return
    binary = not isinstance(file, io.TextIOBase)

    def put(text):
        file.write(text.encode("utf-8") if binary else text)

    if isinstance(table, Mapping):
        names, columns = [str(c) for c in table], list(table.values())
        n_rows = len(columns[0]) if columns else 0
    else:
        names, columns, n_rows = [str(c) for c in table.columns], [table[c] for c in table.columns], len(table)
    cols = []
    if _csv_text_cells(names) is not None and len(names) > 1 and len(set(names)) == len(names):
        for col in columns:
            cells = _csv_column(col)
            if cells is None:
                cols = []
                break
            cols.append(cells)
    if not cols:
        import pandas as pd

        put((pd.DataFrame(dict(table)) if isinstance(table, Mapping) else table).to_csv(index=False, header=header))
        return
    if header:
        put(",".join(names) + "\n")
    if not n_rows:
        return
    base = np.cumsum([0] + [b.size for b, _, _ in cols[:-1]])
    buf = np.concatenate([b for b, _, _ in cols])
    starts = np.stack([s + o for (_, s, _), o in zip(cols, base)], axis=1)
    lens = np.stack([ln for _, _, ln in cols], axis=1)
    out = np.empty(int(lens.sum()) + lens.size, dtype=np.uint8)
    size = _join_cells(buf, starts, lens, out)
    if binary:
        file.write(out[:size])  # the UTF-8 bytes as they are (no decoding to text and encoding back)
    else:
        file.write(out[:size].tobytes().decode("utf-8"))


# ----------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------


@dataclass
class CohortResult:
    """What :func:`run_cohort` returns.

    Attributes
    ----------
    patients : pandas.DataFrame
        One row per patient: ``patient`` (0-based index), ``arm``, covariates, the
        parameters that vary between patients (``param_NAME``), ``status`` (0 = solved;
        see :data:`carkinetics.simulation.result.STATUS_MESSAGES`) and the endpoint columns (NaN for
        failed patients).
    summary : pandas.DataFrame
        Cohort summaries of the endpoints per arm (:func:`carkinetics.stats.summary.summarise`),
        of the patients with status 0. Empty without ``[endpoints]``.
    bands : pandas.DataFrame or None
        Long table ``arm, output, time, n, q05, q25, q50, q75, q95``; arm ``all`` is the
        whole cohort (listed separately only when there are several arms).
    km : pandas.DataFrame
        Kaplan-Meier curves ``arm, endpoint, time, survival, lower, upper, n_at_risk``
        of each time-to-event endpoint, per arm.
    info : dict
        Provenance and run facts (seed, n, chunk size, threads, timings, failures,
        clipped parameter draws, units), written as ``run.json``.
    trajectories : pandas.DataFrame or None
        With ``keep_trajectories=True``: ``patient, arm, time`` and one column per
        band output.
    observed : pandas.DataFrame or None
        The scenario's ``[data]`` observations, for the visual predictive check.
    files : list of Path
        Files written by :meth:`write` (or ``carkinetics run``).
    streamed_csv : Path or None
        Where :func:`run_cohort` streamed ``patients.csv`` (its ``patients_csv``), if anywhere.
    """

    patients: object
    summary: object
    bands: object
    km: object
    info: dict
    trajectories: object = None
    observed: object = None
    files: list = field(default_factory=list)
    streamed_csv: object = field(default=None, repr=False)

    @staticmethod
    def _table(t, plain):
        """``t``, or with ``plain`` its columns as numpy arrays (for :mod:`carkinetics.plots.render`)."""
        return None if t is None else ({str(c): t[c].to_numpy() for c in t.columns} if plain else t)

    def _bands_kwargs(self, plain=False) -> dict:
        """Arguments of :func:`~carkinetics.plots.cohort.plot_cohort_bands` for this result."""
        return dict(bands=self._table(self.bands, plain), outputs=self.info.get("band_outputs"),
                    log_scale=self.info.get("log_scale", True), observed=self._table(self.observed, plain),
                    units=self.info.get("units"), time_unit=self.info.get("time_unit", ""),
                    title=f"{self.info.get('scenario_name', '')}: {self.info.get('n_patients', '')} virtual patients")

    def _km_kwargs(self, plain=False) -> dict:
        """Arguments of :func:`~carkinetics.plots.cohort.plot_kaplan_meier` for this result."""
        return dict(km=self._table(self.km, plain), time_unit=self.info.get("time_unit", ""),
                    title=f"{self.info.get('scenario_name', '')}: Kaplan-Meier")

    def _figure_args(self, plain=False, skip=()):
        """``(function, file name, kwargs)`` of each figure of :meth:`write_into` whose function
        is not in ``skip``; with ``plain``, tables as mappings of numpy arrays."""
        figures = []
        if self.bands is not None and len(self.bands) and "plot_cohort_bands" not in skip:
            figures.append(("plot_cohort_bands", "bands.png", self._bands_kwargs(plain)))
        if self.km is not None and len(self.km) and "plot_kaplan_meier" not in skip:
            figures.append(("plot_kaplan_meier", "km.png", self._km_kwargs(plain)))
        return figures

    def plot_bands(self, outputs=None):
        """Median and 5-95% / 25-75% bands per arm over time, with the observations if any."""
        from carkinetics.plots.cohort import plot_cohort_bands

        kwargs = self._bands_kwargs()
        if outputs:
            kwargs["outputs"] = outputs
        return plot_cohort_bands(**kwargs)

    def plot_km(self):
        """Kaplan-Meier curves of each time-to-event endpoint, per arm."""
        from carkinetics.plots.cohort import plot_kaplan_meier

        return plot_kaplan_meier(**self._km_kwargs())

    def write_into(self, folder, plots=True, figures=None) -> list[str]:
        """Write the result files into an existing folder (no staging); return their names.

        ``figures``: a :class:`carkinetics.plots.render.FigureHelper` that draws the plots in its
        own process while the tables are written (else, or if it fails, they are drawn here).
        """
        from carkinetics.plots import cohort as plotting
        from carkinetics.io.atomic import write_json

        folder = Path(folder)
        names = ["patients.csv", "summary.csv"]
        to_draw = self._figure_args() if plots else []
        if figures is not None and to_draw:  # the figures not handed over yet (see run_cohort's on_bands)
            figures.send([(f, folder / file, kw) for f, file, kw in self._figure_args(plain=True, skip=figures.sent)])
        streamed = self.streamed_csv is not None and Path(self.streamed_csv) == folder / "patients.csv"
        if not (streamed and (folder / "patients.csv").exists()):
            write_csv(self.patients, folder / "patients.csv")
        write_csv(self.summary, folder / "summary.csv")
        if self.bands is not None:
            write_csv(self.bands, folder / "bands.csv")
            names.append("bands.csv")
        if self.km is not None and len(self.km):
            write_csv(self.km, folder / "km.csv")
            names.append("km.csv")
        if self.observed is not None:
            write_csv(self.observed, folder / "observed.csv")
            names.append("observed.csv")
        if self.trajectories is not None:
            write_csv(self.trajectories, folder / "trajectories.csv")
            names.append("trajectories.csv")
        elif (folder / "trajectories.csv").exists():
            names.append("trajectories.csv")
        # fixed margins and one draw per figure (no tight bounding box): cheap at any N
        if to_draw and not (figures is not None and figures.wait()):
            for function, file, kwargs in to_draw:
                plotting.save_figure(getattr(plotting, function)(**kwargs), folder / file, ("png",), tight=False,
                                     dpi=120)
        names += [file for _, file, _ in to_draw]
        names.append("run.json")
        self.info["files"] = names
        write_json(folder / "run.json", self.info)
        return names

    def write(self, directory, plots=True) -> list[Path]:
        """Write ``patients.csv``, ``summary.csv``, ``bands.csv``, ``km.csv``, plots and
        ``run.json`` into ``directory``, atomically.

        As for ``carkinetics run``, the folder belongs to the result: the files of an earlier
        run there are replaced or removed, and a folder holding files carkinetics did not
        write is refused (:class:`carkinetics.io.atomic.OutputError`)."""
        from carkinetics.io.atomic import atomic_output_dir
        from carkinetics.studies.run import RUN_FILES

        with atomic_output_dir(directory, clean=True, known=RUN_FILES) as staging:
            names = self.write_into(staging, plots=plots)
        self.files = [Path(directory) / n for n in names]
        return self.files


def load_cohort_result(directory) -> CohortResult:
    """Read a result folder written by :meth:`CohortResult.write` (or ``carkinetics run --n``).

    Raises
    ------
    DataError
        If the folder lacks ``run.json`` or ``patients.csv``.
    """
    import pandas as pd

    from carkinetics.io.atomic import read_result_csv, read_result_json

    d = Path(directory)
    missing = [f for f in ("run.json", "patients.csv") if not (d / f).exists()]
    if missing:
        raise DataError(d, [f"not a cohort result folder: missing {', '.join(missing)}"])
    info = read_result_json(d / "run.json")

    def read(name):
        p = d / name
        if not p.exists():
            return None
        return read_result_csv(p)

    patients = read("patients.csv")
    patients["arm"] = patients["arm"].astype(str)
    bands = read("bands.csv")
    if bands is not None and len(bands):
        bands["arm"] = bands["arm"].astype(str)
    km = read("km.csv")
    if km is None:
        km = pd.DataFrame(columns=["arm", "endpoint", "time", "survival", "lower", "upper", "n_at_risk"])
    observed = read("observed.csv")
    summary = read("summary.csv")
    return CohortResult(patients, summary if summary is not None else pd.DataFrame(), bands, km, info,
                        observed=observed, files=sorted(p for p in d.iterdir() if not p.name.startswith(".")))


# ----------------------------------------------------------------------------------------
# The runner
# ----------------------------------------------------------------------------------------


def default_chunk_size(n_times: int, n_saved: int) -> int:
    """Patients per chunk: about 32 MB of saved values, a multiple of 4096 where possible."""
    size = int(_CHUNK_BYTES / (8.0 * max(1, n_times) * max(1, n_saved)))
    if size >= 4096:
        return min(16384, size - size % 4096)
    return max(16, size)


#: Largest chunk of saved values (patients x times x outputs, 8 bytes each) simulated at once.
_MAX_CHUNK_GIB = 2.0


def _endpoint_modules():
    try:
        from carkinetics.stats import summary
    except ModuleNotFoundError as err:
        if err.name != f"{__package__}.summary":
            raise
        summary = None
    return summary


def run_cohort(scenario, n=None, seed=None, *, jobs=None, chunk_size=None, variables=None, parameters=None,
               arms=None, keep_trajectories=False, bands=True, progress=None, patients_csv=None,
               while_simulating=None, on_bands=None) -> CohortResult:
    """Simulate a virtual cohort of a scenario and reduce it as it streams.

    Parameters
    ----------
    scenario : Scenario
        From :func:`carkinetics.scenario.load.load_scenario`.
    n : int, optional
        Number of patients (default: ``[population] size``).
    seed : int, optional
        Default: ``[population] seed``, else a fresh random seed (recorded in
        ``result.info["seed"]``). The same seed gives the same cohort whatever
        ``jobs`` and ``chunk_size``.
    jobs : int, optional
        Threads of the engine (default: all cores).
    chunk_size : int, optional
        Patients simulated at once (default: about 32 MB of saved outputs per chunk, at most 16,384).
    variables : mapping of str to float, optional
        Overrides of the scenario's ``[variables]``.
    parameters : mapping of str to float, optional
        Overrides of typical parameter values (before arms, covariates, variability).
    arms : sequence of str, optional
        Simulate only these arms (shares renormalised).
    keep_trajectories : bool or path-like
        True: keep every trajectory of the band outputs in ``result.trajectories``
        (memory N x n_times x outputs); a path: stream them to that CSV file instead.
    bands : bool
        Compute quantile bands of the plot outputs (``[plot] outputs``, default all).
    progress : callable(n_done, n_total), optional
        Called after each chunk.
    patients_csv : path-like, optional
        Also stream the patient table to this CSV file as the chunks are reduced (the
        bytes :meth:`CohortResult.write` would write; it is then not written again by
        :meth:`CohortResult.write_into` into the same folder).
    while_simulating : callable(), optional
        Called in a helper thread while the engine simulates the first chunks (e.g.
        imports needed later for the files and plots); an exception it raises is
        raised by ``run_cohort``.
    on_bands : callable(CohortResult), optional
        Called as soon as the quantile bands are known, before the summaries, with a
        result holding only the bands, the observations and the ``info`` fields the band
        figure needs (e.g. to start drawing it in a helper process).

    Returns
    -------
    CohortResult

    Raises
    ------
    ScenarioError, CohortError
        For an unknown variable, parameter, arm or output, no cohort size, or bad sizes.
    """
    from carkinetics.simulation.simulate import simulate_batch

    t_begin = _time.perf_counter()
    model = scenario.model
    design = cohort_design(scenario, seed, variables=variables, parameters=parameters, arms=arms)
    spec = design.spec
    if n is None:
        n = spec.size
    if n is None:
        raise CohortError(f"{scenario.path}: no cohort size: set 'size' in [population] or pass n (--n)")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_POPULATION:
        raise CohortError(f"the number of patients must be a whole number from 1 to {MAX_POPULATION:,}, "
                          f"got {n!r}")
    n = int(n)
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1):
        raise CohortError(f"jobs must be a whole number >= 1, got {jobs!r}")

    endpoints = scenario.sections.get("endpoints") or scenario.sections.get("outcomes")
    times = scenario.times
    horizon = scenario.horizon
    band_names = list(scenario.plot_outputs) if bands else []
    traj_names = list(scenario.plot_outputs) if keep_trajectories else []
    needed = list(dict.fromkeys(band_names + traj_names + list(endpoints.outputs_needed if endpoints else ())))
    known = set(model.output_names) | set(model.state_names)
    unknown = [x for x in needed if x not in known]
    if unknown:
        raise ScenarioError(scenario.path, [f"'{x}' is not an output or state of model '{model.name}'"
                                            f"{suggestion(x, known)}" for x in unknown])
    save_outputs = [x for x in needed if x in model.output_names]
    save_states = [x for x in needed if x not in model.output_names]
    if chunk_size is None:
        chunk_size = default_chunk_size(len(times), len(needed))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise CohortError(f"chunk_size must be a whole number >= 1, got {chunk_size!r}")
    chunk_size = int(chunk_size)
    chunk_gib = 8.0 * chunk_size * len(times) * max(1, len(needed)) / 1024**3
    if chunk_gib > _MAX_CHUNK_GIB:
        raise CohortError(f"{scenario.path}: chunk_size = {chunk_size:,} patients x {len(times):,} output times x "
                          f"{max(1, len(needed))} saved outputs needs {chunk_gib:,.1f} GiB per chunk; at most "
                          f"{_MAX_CHUNK_GIB:g} GiB (choose a smaller chunk size)")

    typical_env = scenario.default_env()
    typical_env.update(design.variables)
    arm_events = [_ArmEvents(scenario, a.name, {**typical_env, **a.variables}) for a in design.arms]
    n_uniforms = int(getattr(endpoints, "n_uniforms", 0) or 0) if endpoints else 0
    hists = {(k, name): BandHistogram(len(times)) for k in range(len(design.arms)) for name in band_names}
    ep_columns = list(endpoints.columns) if endpoints else []
    taken = {"patient", "arm", "status", *design.covariate_names, *(f"param_{p}" for p in design.varying)}
    clash = [c for c in ep_columns if c in taken]
    if clash:
        raise ScenarioError(scenario.path, [f"endpoints.{c}: the endpoint column '{c}' has the name of a covariate "
                                            f"or another column of the patient table; rename one of them"
                                            for c in clash])

    traj_path = None
    traj_frames = []
    if keep_trajectories and not isinstance(keep_trajectories, bool):
        traj_path = Path(keep_trajectories)
        traj_path.parent.mkdir(parents=True, exist_ok=True)
        traj_path.write_text("")

    tables = []
    n_clipped = np.zeros(model.n_parameters, dtype=np.int64)
    t_draw = t_sim = t_reduce = 0.0

    kernel_ready = threading.Event()

    def prepare_chunk(start):
        """Draws, uniforms and per-arm event arrays of the chunk at ``start``."""
        stop = min(n, start + chunk_size)
        t0 = _time.perf_counter()
        draws = design.draw(start, stop)
        uniforms = design.uniforms(start, stop, n_uniforms) if n_uniforms else np.zeros((stop - start, 0))
        arms_in = []
        for k, arm_ev in enumerate(arm_events):
            mask = draws.arm == k
            idx = np.flatnonzero(mask)
            if idx.size:
                arms_in.append((k, idx, *arm_ev.arrays(draws.env(model.parameter_names, mask), idx.size)))
        return draws, uniforms, arms_in, _time.perf_counter() - t0

    def simulate_chunk(start):
        """Draw and simulate the chunk at ``start``, arm by arm (in the engine thread when pipelined)."""
        draws, uniforms, arms_in, t_d = prepare_chunk(start)
        sims = []
        t_s = 0.0
        kwargs = dict(options=scenario.solver, t0=scenario.t0, n_threads=jobs, save_states=save_states,
                      save_outputs=save_outputs)
        for k, idx, ev_times, act_values in arms_in:
            ta = _time.perf_counter()
            schedule = arm_events[k].schedule
            if engine is not None and not kernel_ready.is_set() and idx.size > 2:
                # two patients first: the compiled kernel is loaded (~0.4 s of interpreter work)
                # before the calling thread's imports compete with it for the interpreter lock
                try:
                    simulate_batch(model, schedule, times, draws.parameters[idx[:2]],
                                   event_times=None if ev_times is None else ev_times[:2],
                                   action_values=None if act_values is None else act_values[:2], **kwargs)
                finally:
                    kernel_ready.set()
            res = simulate_batch(model, schedule, times, draws.parameters[idx], event_times=ev_times,
                                 action_values=act_values, **kwargs)
            kernel_ready.set()
            t_s += _time.perf_counter() - ta
            sims.append((k, idx, res))
        return draws, uniforms, sims, t_d, t_s

    # Pipeline: an engine thread draws and simulates the chunks in patient order (the engine
    # releases the GIL) and hands them over through a bounded queue; this thread reduces them
    # in the same order (endpoints, histograms, the patient table and its CSV lines). The
    # engine waits only when `depth` finished chunks (about 100 MB of outputs) are queued.
    # Chunks are drawn, simulated and reduced in patient order, so the results do not depend
    # on the timing; at most depth + 2 chunks of outputs are alive (queued, being simulated,
    # being reduced). With jobs=1 everything runs in this thread, one chunk at a time.
    starts = list(range(0, n, chunk_size))
    engine = None
    if (len(starts) > 1 or while_simulating is not None) and (jobs is None or jobs > 1):
        chunk_bytes = 8.0 * chunk_size * len(times) * max(1, len(needed))
        engine = _EngineThread(simulate_chunk, starts, depth=max(1, min(_QUEUE_CHUNKS,
                                                                        int(_QUEUE_BYTES // chunk_bytes))))

    csv_file = None
    importer = None
    import_errors = []
    switch_interval = sys.getswitchinterval()
    try:
        if engine is not None:
            # between chunks the engine thread needs the interpreter lock for a moment; while this
            # thread runs Python it would wait up to the switch interval (5 ms) for it, with one
            # core idle: ask for the lock to be handed over sooner (restored below)
            sys.setswitchinterval(min(switch_interval, _SWITCH_INTERVAL))
            engine.start()
            while not kernel_ready.wait(0.005) and engine.is_alive():
                pass  # the engine thread loads the compiled kernel (interpreter work: nothing else meanwhile)
        # imports needed from here on, while the engine works on the first chunks: pandas now,
        # the rest in a helper thread while this one goes on with the chunks (mostly in code
        # that releases the GIL)
        import pandas as pd

        def import_later():
            try:
                if endpoints:
                    from scipy import special  # noqa: F401  (summary statistics)
                if while_simulating is not None:
                    while_simulating()
            except BaseException as err:  # re-raised in the calling thread
                import_errors.append(err)

        if engine is None:  # one thread (jobs=1): everything in this one
            import_later()
        else:
            importer = threading.Thread(target=import_later, name="carkinetics-imports", daemon=True)
            importer.start()
        if patients_csv is not None:
            csv_file = open(patients_csv, "wb")
        for c, start in enumerate(starts):
            draws, uniforms, sims, t_d, t_s = simulate_chunk(start) if engine is None else engine.get()
            t_draw += t_d
            t_sim += t_s
            tb = _time.perf_counter()
            stop = min(n, start + chunk_size)
            m = stop - start
            n_clipped += draws.n_clipped
            status = np.zeros(m, dtype=np.int64)
            ep_values = {col: np.full(m, np.nan) for col in ep_columns}
            traj = {name: np.empty((m, len(times))) for name in traj_names}
            for k, idx, res in sims:
                status[idx] = res.status
                ok = res.status == 0

                def series(name, res=res):
                    return res.output(name) if name in res.output_names else res.state(name)

                if endpoints:
                    vals = endpoints.compute(times, {x: np.ascontiguousarray(series(x))
                                                     for x in endpoints.outputs_needed}, uniforms[idx], horizon)
                    for col in ep_columns:
                        v = np.asarray(vals[col], dtype=float)
                        ep_values[col][idx] = np.where(ok, v, np.nan)
                for name in band_names:
                    hists[(k, name)].add(series(name), ok)
                for name in traj_names:
                    traj[name][idx] = series(name)
            sims = res = series = None  # free this chunk's outputs before the next one arrives
            table = design.columns(draws)  # a DataFrame per chunk would cost ~3 ms
            table["status"] = status
            for col in ep_columns:
                table[col] = ep_values[col]
            tables.append(table)
            if csv_file is not None:
                write_csv(table, csv_file, header=(c == 0))
            if traj_names:
                tf = pd.DataFrame({"patient": np.repeat(draws.index, len(times)),
                                   "arm": np.repeat(np.asarray(design.arm_names, dtype=object)[draws.arm],
                                                    len(times)),
                                   "time": np.tile(times, m)})
                for name in traj_names:
                    tf[name] = traj[name].reshape(-1)
                if traj_path is not None:
                    with open(traj_path, "ab") as f:
                        write_csv(tf, f, header=(start == 0))
                else:
                    traj_frames.append(tf)
            t_reduce += _time.perf_counter() - tb
            if progress is not None:
                progress(stop, n)
    finally:
        if csv_file is not None:
            csv_file.close()
        if engine is not None:
            engine.close()
            sys.setswitchinterval(switch_interval)
        if importer is not None:
            importer.join()
    if import_errors:
        raise import_errors[0]

    t_post = _time.perf_counter()
    # quantile bands
    band_table = None
    if band_names:
        rows = []
        arm_list = list(enumerate(design.arm_names))
        for name in band_names:
            per_arm = [(a, hists[(k, name)]) for k, a in arm_list]
            if len(per_arm) > 1:
                total = per_arm[0][1]
                for _, h in per_arm[1:]:
                    total = total.merged(h)
                per_arm.append((DEFAULT_ARM, total))
            for a, h in per_arm:
                q = h.quantiles()
                frame = pd.DataFrame({"arm": a, "output": name, "time": times, "n": h.counts})
                for j, col in enumerate(QUANTILE_COLUMNS):
                    frame[col] = q[:, j]
                rows.append(frame)
        band_table = pd.concat(rows, ignore_index=True)

    observed = None
    data_sec = scenario.raw.get("data") if isinstance(scenario.raw.get("data"), dict) else None
    data_file = None
    if data_sec and isinstance(data_sec.get("file"), str):
        data_file = Path(scenario.path).parent / data_sec["file"]
        observed = load_observations(data_file, model)
    if on_bands is not None and band_table is not None:
        on_bands(CohortResult(None, None, band_table, None, _figure_info(scenario, n, band_names), None, observed))

    # one column at a time, each chunk's part dropped as it is joined: the table is held once
    # (plus a column), not twice; the DataFrame keeps the joined arrays as they are
    columns = {}
    for name in list(tables[0]):
        parts = [t.pop(name) for t in tables]
        columns[name] = (pd.Categorical.from_codes(np.concatenate([x.codes for x in parts]),
                                                   categories=parts[0].categories)
                         if isinstance(parts[0], pd.Categorical) else np.concatenate(parts))
        parts = None
    tables = None
    patients = pd.DataFrame(columns, copy=False)
    columns = None
    patients["arm"] = patients["arm"].astype(str)
    ok_patients = patients[patients["status"] == 0]

    # summaries and Kaplan-Meier curves
    summary_mod = _endpoint_modules() if endpoints else None
    if endpoints and summary_mod is not None:
        summary = summary_mod.summarise(patients, endpoints, by="arm")
        if len(design.arm_names) > 1:
            summary = pd.concat([summary, summary_mod.summarise(patients, endpoints, by=None)], ignore_index=True)
    else:
        summary = pd.DataFrame()
    km = _km_table(ok_patients, endpoints, design.arm_names, summary_mod)

    trajectories = pd.concat(traj_frames, ignore_index=True) if traj_frames else None
    t_end = _time.perf_counter()

    info = _run_info(scenario, design, n, chunk_size, jobs, patients, n_clipped, band_names, endpoints,
                     data_file, {"total_s": t_end - t_begin, "draw_s": t_draw, "simulate_s": t_sim,
                                 "reduce_s": t_reduce, "finalise_s": t_end - t_post})
    return CohortResult(patients, summary, band_table, km, info, trajectories, observed,
                        streamed_csv=Path(patients_csv) if patients_csv is not None else None)


def _km_table(patients, endpoints, arm_names, summary_mod):
    import pandas as pd

    cols = ["arm", "endpoint", "time", "survival", "lower", "upper", "n_at_risk"]
    if not endpoints or summary_mod is None:
        return pd.DataFrame(columns=cols)
    kinds = dict(endpoints.kinds)
    time_cols = [c for c in endpoints.columns if kinds.get(c) == "time"]
    frames = []
    groups = [(a, patients[patients["arm"] == a]) for a in arm_names]
    if len(arm_names) > 1:
        groups.append((DEFAULT_ARM, patients))
    for c in time_cols:
        ev_col = f"{c}_event"
        for a, df in groups:
            if len(df) == 0:
                continue
            t = df[c].to_numpy(dtype=float)
            e = df[ev_col].to_numpy(dtype=float) if ev_col in df.columns else np.isfinite(t).astype(float)
            keep = np.isfinite(t)
            km = summary_mod.kaplan_meier(t[keep], e[keep])
            frames.append(pd.DataFrame({"arm": a, "endpoint": c, "time": km.time, "survival": km.survival,
                                        "lower": km.lower, "upper": km.upper, "n_at_risk": km.n_at_risk}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def _figure_info(scenario, n, band_names) -> dict:
    """The fields of ``run.json`` the figures use."""
    model = scenario.model
    return {"scenario_name": scenario.name, "n_patients": n, "band_outputs": band_names,
            "log_scale": bool(scenario.plot_log), "time_unit": model.time_unit,
            "units": {s.name: s.unit for s in model.states} | {o.name: o.unit for o in model.outputs}}


def _run_info(scenario, design, n, chunk_size, jobs, patients, n_clipped, band_names, endpoints, data_file,
              timings) -> dict:
    import numba

    from carkinetics.io.atomic import file_sha256, provenance
    from carkinetics.simulation.result import status_message

    model = scenario.model
    status_counts = patients["status"].value_counts().sort_index()
    shares = np.diff(np.concatenate([[0.0], design.cum_shares]))
    info = {
        "kind": "virtual cohort",
        "scenario": str(scenario.path),
        "scenario_sha256": file_sha256(scenario.path) if Path(scenario.path).exists() else None,
        "model": str(model.path),
        "model_name": model.name,
        "model_sha256": model.content_hash,
        "seed": design.seed,
        "chunk_size": chunk_size,
        "jobs": int(jobs) if jobs is not None else int(numba.config.NUMBA_NUM_THREADS),
        "arms": {a: {"share": float(s), "n": int((patients["arm"] == a).sum())}
                 for a, s in zip(design.arm_names, shares)},
        "variables": design.variables,
        "parameter_overrides": design.parameter_overrides,
        "varying_parameters": list(design.varying),
        "log_normal_sd": {nm: float(sd) for nm, sd in zip(model.parameter_names, design.sd) if sd > 0},
        "clipped_to_bounds": {nm: int(c) for nm, c in zip(model.parameter_names, n_clipped) if c},
        "covariates": list(design.covariate_names),
        "n_failed": int((patients["status"] != 0).sum()),
        "status": {status_message(int(s)): int(c) for s, c in status_counts.items()},
        "band_resolution": BAND_RESOLUTION,
        "endpoints": ({c: endpoints.kinds.get(c, "") for c in endpoints.columns} if endpoints else {}),
        "data_file": str(data_file) if data_file else None,
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "patients_per_second": round(n / timings["total_s"], 1) if timings["total_s"] > 0 else None,
        "provenance": provenance(),
        **_figure_info(scenario, n, band_names),
    }
    return info
