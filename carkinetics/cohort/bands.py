"""Quantile bands of a cohort's outputs over time, from streaming log-linear histograms.

Values are binned by the top bits of their IEEE-754 representation: each octave
``[2^e, 2^(e+1))`` is split into ``2^BAND_BITS = 64`` equal bins, so a bin is at most
1.56% of its value wide (0.0068 decade; 64 x 3.32 = 213 bins per decade). Exact zeros
are counted apart, negative values are binned the same way by magnitude, NaN is left
out; magnitudes below ``BAND_FLOOR`` (2^-70, about 8.5e-22) share one bin and those
above ``BAND_CEILING`` (2^100, about 1.3e30) another, so the range, and the memory, is
bounded whatever N. A quantile is the inverted-CDF order statistic ``k = ceil(q n)``
placed inside its bin by linear interpolation of the rank: within one bin of
``numpy.quantile(x, q, method="inverted_cdf")``. Memory is 3 bytes per (arm, output,
output time, bin between the smallest and largest value seen): a count is held as an 8-bit low
and a 16-bit high part (:class:`_Counts`), so that the counting, bound by the cache misses of
its scattered increments, touches one byte per value. Histogram counts are sums,
so the bands do not depend on how the patients were split into chunks. The outputs of one arm
are counted together (:class:`BandHistograms`), straight from the engine's (patient, time,
output) blocks.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.typed import List

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
#: Values a (bin, time) cell can take in its 8 + 16 bits; each value adds one to one cell of its
#: time, so a histogram folds its parts into 64-bit counts before it could count more values
#: per time than this (more than 16.7 million patients in one arm)
_FOLD_AT = (1 << 24) - 1
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_COLUMNS = ("q05", "q25", "q50", "q75", "q95")
BAND_RESOLUTION = (f"log-linear histogram: 2^{BAND_BITS} = {2 ** BAND_BITS} equal bins per octave (a bin is at most "
                   f"{100 / 2 ** BAND_BITS:.2f}% of its value wide, {math.log10(1 + 2.0 ** -BAND_BITS):.4f} decade); "
                   f"magnitudes below {BAND_FLOOR:.2g} share one bin [0, {BAND_FLOOR:.2g}), above "
                   f"{BAND_CEILING:.2g} one bin read as {BAND_CEILING:.2g}; exact zeros counted apart; quantile = "
                   f"inverted-CDF order statistic placed in its bin by linear interpolation of the rank")


@njit(cache=True, nogil=True)
def _key(bits):
    """Bin of a magnitude's bit pattern, clamped to [_KEY_UNDER, _KEY_OVER]."""
    k = bits >> _SHIFT
    if k < _KEY_MIN:
        return _KEY_UNDER
    if k > _KEY_OVER:
        return _KEY_OVER
    return k


@njit(cache=True, nogil=True, inline="always")
def _bump(low, high, r, t):
    """Add one to cell (r, t) of the counts held as ``low + 256 * high`` (uint8, uint16)."""
    v = np.uint8(low[r, t] + np.uint8(1))
    low[r, t] = v
    if v == 0:
        high[r, t] += np.uint16(1)


@njit(cache=True, nogil=True)
def _accumulate(bits, vals, columns, slots, ok, pos8, pos16, pos_lo, neg8, neg16, neg_lo, zeros, nans, missed, buffer,
                planes, plane_of):
    """Count the listed columns of a (patient, time, output) block, each in its histogram.

    Column ``columns[c]`` of the block goes to histogram ``slots[c]``: ``pos8[s]``, ``pos16[s]``
    (``neg8``, ``neg16``; lists) are the low and high parts of its (n_bins, n_times) counts of
    positive (negative) values (:func:`_bump`), bin ``k`` in row ``k - pos_lo[s]``
    (``neg_lo[s]``); ``zeros``, ``nans``: (n_histograms, n_times). Values
    whose bin lies outside the current range are noted for a second, short pass once the
    ranges have grown: ``missed[s]`` = (min, max) key of positive, then negative values, their
    number; the flat indices ``(i * n_times + t) * n_columns + c`` of the first ``len(buffer)``
    of them go to ``buffer``. Returns the number of values noted. Column c is also copied to
    ``planes[plane_of[c]]`` (a (patient, time) plane, every patient's) where ``plane_of[c] >= 0``:
    the endpoints' outputs, read in the same pass.

    The block is read where it lies, one output of one patient at a time: its bins at
    successive times are mostly in the same or the next cache line (a (bin, time) layout).
    Reading each output of all patients as a contiguous plane needed a copy of the block first
    (a gather that cost about a quarter of the counting).
    """
    n, n_t = vals.shape[0], vals.shape[1]
    n_c = columns.shape[0]
    big = np.int64(1) << 62
    for s in range(missed.shape[0]):
        missed[s, 0] = big
        missed[s, 1] = -big
        missed[s, 2] = big
        missed[s, 3] = -big
        missed[s, 4] = 0
    n_missed = 0
    cap = buffer.shape[0]
    u_t = np.uint64(n_t)
    for i in range(n):
        if not ok[i]:
            for c in range(n_c):
                if plane_of[c] >= 0:
                    for t in range(n_t):
                        planes[plane_of[c], i, t] = vals[i, t, columns[c]]
            continue
        for c in range(n_c):
            col = columns[c]
            s = slots[c]
            pc = plane_of[c]
            if pc >= 0:
                for t in range(n_t):
                    planes[pc, i, t] = vals[i, t, col]
            P8, P16, N8, N16 = pos8[s], pos16[s], neg8[s], neg16[s]
            p_lo, n_lo = pos_lo[s], neg_lo[s]
            p_nb = P8.shape[0]
            flat8 = P8.reshape(-1)
            flat16 = P16.reshape(-1)
            for t in range(n_t):
                b = bits[i, t, col]
                # fast path: a positive value whose raw key lies in the positive range (one unsigned
                # comparison; zero, negative, NaN, infinite values and keys outside the range fail it
                # and take the full test below, which clamps keys as _key does: same counts, ~2x faster)
                j = np.uint64((b >> _SHIFT) - p_lo)
                if j < np.uint64(p_nb):
                    f = j * u_t + np.uint64(t)
                    v = np.uint8(flat8[f] + np.uint8(1))
                    flat8[f] = v
                    if v == 0:
                        flat16[f] += np.uint16(1)
                    continue
                x = vals[i, t, col]
                if x > 0:
                    side = 0
                    k = _key(b)
                    if k >= p_lo and k < p_lo + p_nb:
                        _bump(P8, P16, k - p_lo, t)
                        continue
                elif x < 0:
                    side = 1
                    k = _key(b & _MAG)
                    if k >= n_lo and k < n_lo + N8.shape[0]:
                        _bump(N8, N16, k - n_lo, t)
                        continue
                elif x == 0:
                    zeros[s, t] += 1
                    continue
                else:
                    nans[s, t] += 1
                    continue
                missed[s, 2 * side] = min(missed[s, 2 * side], k)
                missed[s, 2 * side + 1] = max(missed[s, 2 * side + 1], k)
                missed[s, 4] += 1
                if n_missed < cap:
                    buffer[n_missed] = (i * n_t + t) * n_c + c
                n_missed += 1
    return n_missed


@njit(cache=True, nogil=True)
def _accumulate_listed(bits, vals, columns, slots, buffer, n_listed, pos8, pos16, pos_lo, neg8, neg16, neg_lo):
    """Count the block's values at the flat indices ``buffer[:n_listed]`` (after the histograms grew)."""
    n_t = vals.shape[1]
    n_c = columns.shape[0]
    for m in range(n_listed):
        c = buffer[m] % n_c
        i = (buffer[m] // n_c) // n_t
        t = (buffer[m] // n_c) - i * n_t
        s = slots[c]
        b = bits[i, t, columns[c]]
        if vals[i, t, columns[c]] > 0:
            _bump(pos8[s], pos16[s], _key(b) - pos_lo[s], t)
        else:
            _bump(neg8[s], neg16[s], _key(b & _MAG) - neg_lo[s], t)


@njit(cache=True, nogil=True)
def _accumulate_outside(bits, vals, columns, slots, ok, pos8, pos16, pos_lo, neg8, neg16, neg_lo, old):
    """Count the block's values that fell outside the old ranges (``old[s]``: first and last key,
    positive then negative), once the histograms have grown."""
    n, n_t = vals.shape[0], vals.shape[1]
    for i in range(n):
        if not ok[i]:
            continue
        for c in range(columns.shape[0]):
            s = slots[c]
            for t in range(n_t):
                x = vals[i, t, columns[c]]
                b = bits[i, t, columns[c]]
                if x > 0:
                    k = _key(b)
                    if k < old[s, 0] or k > old[s, 1]:
                        _bump(pos8[s], pos16[s], k - pos_lo[s], t)
                elif x < 0:
                    k = _key(b & _MAG)
                    if k < old[s, 2] or k > old[s, 3]:
                        _bump(neg8[s], neg16[s], k - neg_lo[s], t)


@njit(cache=True, nogil=True)
def _gather_planes(block, columns, out):
    """``out[c, i, t] = block[i, t, columns[c]]``: the listed outputs of a (patient, time,
    output) block as contiguous (patient, time) planes, in one pass over the block."""
    n, n_t = block.shape[0], block.shape[1]
    for i in range(n):
        for t in range(n_t):
            for c in range(columns.shape[0]):
                out[c, i, t] = block[i, t, columns[c]]


def output_planes(block: np.ndarray, columns) -> np.ndarray:
    """Contiguous (len(columns), patients, times) copy of the ``columns`` of a (patient, time,
    output) block. Reading each output as a strided view (one cache line per value, once per
    output) cost the band histograms more than their counting; one pass reads each line once."""
    columns = np.asarray(columns, dtype=np.int64)
    out = np.empty((columns.shape[0], block.shape[0], block.shape[1]), dtype=np.float64)
    if columns.shape[0] and block.shape[0]:
        _gather_planes(np.ascontiguousarray(block, dtype=np.float64), columns, out)
    return out


def _key_edges(keys: np.ndarray):
    """Lower and upper edge (magnitudes) of the bins with these keys."""
    keys = keys.astype(np.int64)
    lo = (np.clip(keys, _KEY_MIN, _KEY_OVER) << _SHIFT).view(np.float64)
    hi = ((np.clip(keys, _KEY_MIN, _KEY_OVER) + 1) << _SHIFT).view(np.float64)
    lo = np.where(keys == _KEY_UNDER, 0.0, lo)
    hi = np.where(keys == _KEY_UNDER, BAND_FLOOR, np.where(keys == _KEY_OVER, lo, hi))
    return lo, hi


class _Counts:
    """Counts of the values of one sign of a histogram: (n_bins, n_times), bin ``k`` in row
    ``k - lo``, the range grown as values arrive.

    A count is ``low + 256 * high`` (uint8, uint16) and, once the histogram has folded
    (:meth:`fold`), plus ``base`` (uint64). Each value adds one to one cell of its time, so 24
    bits hold the counts of :data:`_FOLD_AT` values per time; the kernel's increment touches one
    byte and carries into ``high`` once in 256.
    """

    __slots__ = ("low", "high", "base", "lo")

    def __init__(self, n_times: int):
        self.low = np.zeros((0, n_times), dtype=np.uint8)
        self.high = np.zeros((0, n_times), dtype=np.uint16)
        self.base = None
        self.lo = 0

    @classmethod
    def of_total(cls, total: np.ndarray, lo: int) -> "_Counts":
        """Counts holding ``total`` (non-negative integers, rows from bin ``lo``)."""
        out = cls(total.shape[1])
        total = np.asarray(total, dtype=np.uint64)
        out.lo = lo
        if total.size and total.max() > _FOLD_AT:
            out.low = np.zeros(total.shape, dtype=np.uint8)
            out.high = np.zeros(total.shape, dtype=np.uint16)
            out.base = total.copy()
        else:
            out.low = (total & np.uint64(0xFF)).astype(np.uint8)
            out.high = (total >> np.uint64(8)).astype(np.uint16)
        return out

    @property
    def n_bins(self) -> int:
        return self.low.shape[0]

    @property
    def nbytes(self) -> int:
        return int(self.low.nbytes + self.high.nbytes + (0 if self.base is None else self.base.nbytes))

    def total(self, dtype=None) -> np.ndarray:
        """The counts (uint32, or uint64 once folded, unless ``dtype`` says otherwise)."""
        dtype = dtype or (np.uint32 if self.base is None else np.uint64)
        out = self.high.astype(dtype)
        out <<= 8
        out += self.low
        if self.base is not None:
            out += self.base
        return out

    def fold(self) -> None:
        """Move the low and high parts into ``base``, so that 2^24 - 1 more values fit in them."""
        if self.n_bins:
            self.base = self.total().astype(np.uint64)
            self.low[:] = 0
            self.high[:] = 0

    def grow(self, kmin: int, kmax: int) -> None:
        """Extend the rows to hold keys kmin..kmax, with a margin so that they rarely grow again."""
        if kmin > kmax or (self.n_bins and kmin >= self.lo and kmax <= self.lo + self.n_bins - 1):
            return
        new_lo = max(_KEY_UNDER, kmin - _GROW_MARGIN)
        new_hi = min(_KEY_OVER, kmax + _GROW_MARGIN)
        if self.n_bins:
            new_lo, new_hi = min(self.lo, new_lo), max(self.lo + self.n_bins - 1, new_hi)
        at = self.lo - new_lo
        for name in ("low", "high", "base"):
            arr = getattr(self, name)
            if arr is None:
                continue
            out = np.zeros((new_hi - new_lo + 1, arr.shape[1]), dtype=arr.dtype)
            out[at:at + arr.shape[0]] = arr
            setattr(self, name, out)
        self.lo = new_lo


class BandHistogram:
    """Counts of one output's values at each output time, in log-linear bins.

    See the module documentation for the bins. The bin range grows as values
    arrive (rows of ``pos``/``neg``, shape (n_bins, n_times), from bins ``pos_lo``/``neg_lo``);
    the counts are held in 3 bytes per cell (:class:`_Counts`). Sums of histograms are
    histograms, so the counts do not depend on how the values were split into chunks.
    """

    def __init__(self, n_times: int):
        self.n_times = n_times
        self._pos = _Counts(n_times)
        self._neg = _Counts(n_times)
        self.zeros = np.zeros(n_times, dtype=np.int64)
        self.nans = np.zeros(n_times, dtype=np.int64)
        self.n_unfolded = 0  # values per time counted in the low and high parts since the last fold

    @property
    def pos(self) -> np.ndarray:
        """Counts of the positive values (n_bins, n_times), bin ``pos_lo + row``."""
        return self._pos.total()

    @property
    def neg(self) -> np.ndarray:
        """Counts of the negative values by magnitude (n_bins, n_times), bin ``neg_lo + row``."""
        return self._neg.total()

    @property
    def pos_lo(self) -> int:
        return self._pos.lo

    @property
    def neg_lo(self) -> int:
        return self._neg.lo

    def _reserve(self, n_values: int) -> None:
        """Fold the parts first if ``n_values`` more values per time might not fit in them."""
        if self.n_unfolded + n_values > _FOLD_AT:
            self._pos.fold()
            self._neg.fold()
            self.n_unfolded = 0
        self.n_unfolded += n_values

    def add(self, values: np.ndarray, ok: np.ndarray) -> None:
        """Count ``values`` (n_patients, n_times) of the patients where ``ok`` is true."""
        BandHistograms.of(self).add(np.asarray(values, dtype=np.float64)[:, :, None], [0], [0], ok)

    def merged(self, other: "BandHistogram") -> "BandHistogram":
        """The sum of two histograms (e.g. of the arms of a cohort)."""
        out = BandHistogram(self.n_times)
        for side in ("_pos", "_neg"):
            arrs = [(c.total(), c.lo) for c in (getattr(self, side), getattr(other, side)) if c.n_bins]
            if not arrs:
                continue
            lo = min(a_lo for _, a_lo in arrs)
            hi = max(a_lo + a.shape[0] - 1 for a, a_lo in arrs)
            acc = np.zeros((hi - lo + 1, self.n_times), dtype=np.uint64)
            for a, a_lo in arrs:
                acc[a_lo - lo:a_lo - lo + a.shape[0]] += a
            setattr(out, side, _Counts.of_total(acc, lo))
        out.zeros = self.zeros + other.zeros
        out.nans = self.nans + other.nans
        out.n_unfolded = _FOLD_AT  # fold before counting more values into a sum
        return out

    @property
    def nbytes(self) -> int:
        """Memory held by the counts (bytes)."""
        return int(self._pos.nbytes + self._neg.nbytes + self.zeros.nbytes + self.nans.nbytes)

    @property
    def counts(self) -> np.ndarray:
        """Non-NaN values counted per time."""
        return self.pos.sum(axis=0, dtype=np.int64) + self.neg.sum(axis=0, dtype=np.int64) + self.zeros

    def quantiles(self, qs=QUANTILES) -> np.ndarray:
        """Quantiles (n_times, len(qs)); NaN where no value was counted."""
        pos, neg = self._pos.total(np.int64), self._neg.total(np.int64)
        n_lo, n_hi = _key_edges(self.neg_lo + np.arange(neg.shape[0]))
        p_lo, p_hi = _key_edges(self.pos_lo + np.arange(pos.shape[0]))
        out = np.full((self.n_times, len(qs)), np.nan)
        empty = np.zeros((1, self.n_times), dtype=np.int64)
        _quantiles(pos if pos.shape[0] else empty, p_lo if len(p_lo) else np.zeros(1),
                   p_hi if len(p_hi) else np.zeros(1), neg if neg.shape[0] else empty,
                   n_lo if len(n_lo) else np.zeros(1), n_hi if len(n_hi) else np.zeros(1), self.zeros,
                   np.asarray(qs, dtype=np.float64), out)
        return out


class BandHistograms:
    """The band histograms of several outputs (of one arm), counted together from the engine's
    (patient, time, output) blocks.

    Histogram ``s`` is a :class:`BandHistogram` (:meth:`histogram`); one pass over a block
    counts every listed output of every patient in it (:func:`_accumulate`).

    Parameters
    ----------
    n_times : int
        Output times.
    n_histograms : int
        Histograms (outputs) in the set.
    """

    def __init__(self, n_times: int, n_histograms: int):
        self.zeros = np.zeros((n_histograms, n_times), dtype=np.int64)
        self.nans = np.zeros((n_histograms, n_times), dtype=np.int64)
        self.hists = []
        self._listed = (None, None)  # (key, typed lists): see _lists
        for s in range(n_histograms):
            h = BandHistogram(n_times)
            h.zeros, h.nans = self.zeros[s], self.nans[s]  # views: the kernel counts into them
            self.hists.append(h)

    @classmethod
    def of(cls, h: BandHistogram) -> "BandHistograms":
        """A set of one histogram that counts into ``h``."""
        one = cls.__new__(cls)
        one.zeros, one.nans, one.hists, one._listed = h.zeros[None, :], h.nans[None, :], [h], (None, None)
        return one

    def histogram(self, s: int) -> BandHistogram:
        """Histogram ``s``."""
        return self.hists[s]

    @property
    def nbytes(self) -> int:
        """Memory held by the counts (bytes)."""
        return sum(h.nbytes for h in self.hists)

    def _lists(self):
        """The histograms' count arrays as the kernels' typed lists, and their first bins. Kept
        between blocks while no histogram grows or folds (a list holds its arrays, so an array's
        ``id`` names it while it is listed), instead of 4 new typed lists of 24 arrays for each
        block (cProfile put those at 7 us per patient; paired 10^5-patient runs showed no
        difference beyond the noise)."""
        key = tuple((id(h._pos.low), id(h._pos.high), id(h._neg.low), id(h._neg.high), h.pos_lo, h.neg_lo)
                    for h in self.hists)
        if self._listed[0] != key:
            pos8, pos16, neg8, neg16 = List(), List(), List(), List()
            for h in self.hists:
                pos8.append(h._pos.low)
                pos16.append(h._pos.high)
                neg8.append(h._neg.low)
                neg16.append(h._neg.high)
            self._listed = (key, (pos8, pos16, np.array([h.pos_lo for h in self.hists], dtype=np.int64), neg8, neg16,
                                  np.array([h.neg_lo for h in self.hists], dtype=np.int64)))
        return self._listed[1]

    def add(self, block: np.ndarray, columns, slots, ok: np.ndarray, planes=None, plane_of=None) -> None:
        """Count ``block[:, :, columns[c]]`` (a (patient, time, output) block) in histogram
        ``slots[c]``, for the patients where ``ok`` is true; and copy it, for every patient, to
        ``planes[plane_of[c]]`` where ``plane_of[c] >= 0`` (``planes``: (k, patients, times))."""
        vals = np.ascontiguousarray(block, dtype=np.float64)
        ok = np.ascontiguousarray(ok, dtype=np.bool_)
        columns = np.asarray(columns, dtype=np.int64)
        slots = np.asarray(slots, dtype=np.int64)
        if planes is None:
            planes, plane_of = np.zeros((0, 0, 0)), np.full(len(columns), -1, dtype=np.int64)
        plane_of = np.asarray(plane_of, dtype=np.int64)
        # each patient adds one value per time to a histogram per column counted into it: a block
        # that could carry a cell past its 24 bits is counted in parts
        per_patient = np.bincount(slots, minlength=len(self.hists)) if len(slots) else np.zeros(1, dtype=np.int64)
        rows = max(1, _FOLD_AT // max(1, int(per_patient.max())))
        for a in range(0, vals.shape[0], rows):
            n_ok = int(np.count_nonzero(ok[a:a + rows]))
            for s in np.flatnonzero(per_patient):
                self.hists[s]._reserve(n_ok * int(per_patient[s]))
            self._add(vals[a:a + rows], columns, slots, ok[a:a + rows], planes[:, a:a + rows], plane_of)

    def _add(self, vals, columns, slots, ok, planes, plane_of):
        bits = vals.view(np.int64)
        rows = None
        for c, s in enumerate(slots):
            h = self.hists[s]
            if h._pos.n_bins or h._neg.n_bins:
                continue
            # size an empty histogram's ranges from the first patients, so most values fit in one pass
            rows = np.flatnonzero(ok)[:_SAMPLE_ROWS] if rows is None else rows
            sample = vals[rows, :, columns[c]]
            keys = np.minimum(np.maximum(np.abs(sample).view(np.int64) >> _SHIFT, _KEY_UNDER), _KEY_OVER)
            for side, sel in ((h._pos, sample > 0), (h._neg, sample < 0)):
                if sel.any():
                    side.grow(int(keys[sel].min()), int(keys[sel].max()))
        missed = np.empty((len(self.hists), 5), dtype=np.int64)
        buffer = np.empty(_MISSED_BUFFER, dtype=np.int64)
        old = np.array([[h.pos_lo, h.pos_lo + h._pos.n_bins - 1, h.neg_lo, h.neg_lo + h._neg.n_bins - 1]
                        for h in self.hists], dtype=np.int64)  # an empty side: last < first, all outside
        n_missed = _accumulate(bits, vals, columns, slots, ok, *self._lists(), self.zeros, self.nans, missed, buffer,
                               planes, plane_of)
        if n_missed:
            for s in np.flatnonzero(missed[:, 4]):
                h = self.hists[s]
                h._pos.grow(int(missed[s, 0]), int(missed[s, 1]))
                h._neg.grow(int(missed[s, 2]), int(missed[s, 3]))
            if n_missed <= len(buffer):
                _accumulate_listed(bits, vals, columns, slots, buffer, n_missed, *self._lists())
            else:
                _accumulate_outside(bits, vals, columns, slots, ok, *self._lists(), old)


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


def band_table(histograms, band_names, arm_names, times, all_arms):
    """The long table of quantile bands: ``arm, output, time, n, q05, q25, q50, q75, q95``.

    Parameters
    ----------
    histograms : mapping of (int, str) to BandHistogram
        By (arm index, output name).
    band_names : sequence of str
        The outputs, in the order of the table.
    arm_names : sequence of str
        The arms, in the order of their index.
    times : ndarray, shape (n_times,)
        The output times (model time unit).
    all_arms : str
        Name of the whole cohort, listed after the arms when there are several.

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    rows = []
    arm_list = list(enumerate(arm_names))
    for name in band_names:
        per_arm = [(a, histograms[(k, name)]) for k, a in arm_list]
        if len(per_arm) > 1:
            total = per_arm[0][1]
            for _, h in per_arm[1:]:
                total = total.merged(h)
            per_arm.append((all_arms, total))
        for a, h in per_arm:
            q = h.quantiles()
            frame = pd.DataFrame({"arm": a, "output": name, "time": times, "n": h.counts})
            for j, col in enumerate(QUANTILE_COLUMNS):
                frame[col] = q[:, j]
            rows.append(frame)
    return pd.concat(rows, ignore_index=True)
