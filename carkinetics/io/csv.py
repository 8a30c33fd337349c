"""Fast CSV writing: the bytes of pandas' ``DataFrame.to_csv(index=False)``, several times faster.

:func:`write_csv` formats float, integer, boolean, text and categorical columns with compiled
kernels (floats as their shortest round-trip decimal, the Schubfach algorithm) and leaves any
other column type, or text that needs quoting, to pandas.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
from numba import njit

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


#: Rows formatted at a time by :func:`write_csv` (the bytes written do not depend on it).
WRITE_BLOCK_ROWS = 1 << 17


def _row_block(column, start, stop):
    """Rows start..stop-1 of a column (numpy array, pandas Series or Categorical)."""
    return column.iloc[start:stop] if hasattr(column, "iloc") else column[start:stop]


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
    if n_rows > WRITE_BLOCK_ROWS and len(set(names)) == len(names):
        # in blocks of rows: the cells of a block take about 3 times its text in memory, so a
        # table of millions of rows (a Kaplan-Meier table of 10^6 patients) is not held as text whole
        for start in range(0, n_rows, WRITE_BLOCK_ROWS):
            write_csv({name: _row_block(col, start, start + WRITE_BLOCK_ROWS) for name, col in zip(names, columns)},
                      file, header and start == 0)
        return
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

