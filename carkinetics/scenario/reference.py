"""The reference targets: published numbers a calibrated scenario must reproduce.

The table ships with carkinetics as ``carkinetics/reference/targets.csv`` (its columns,
evidence codes and sources are described in ``carkinetics/reference/README.md``), so
``carkinetics validate`` works on a fresh clone or an installed package. Each row is one
reported number (a response rate, a survival estimate, a CAR-T peak, ...) with its
interval, denominator, source and evidence code.

>>> from carkinetics.scenario.reference import load_targets
>>> table = load_targets()
>>> table.set_index("target_id").loc["s2_cr", ["value", "lower", "upper", "k", "n"]].tolist()
[0.9, 0.699, 0.9721, 18.0, 20.0]
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from pathlib import Path
from typing import TYPE_CHECKING

from carkinetics.errors import DataError, ProblemCollector, suggestion

if TYPE_CHECKING:
    import pandas as pd

#: Columns of the table, in file order.
TARGET_COLUMNS = (
    "target_id", "trial", "seed_file", "arm", "quantity", "statistic", "value", "lower", "upper",
    "ci_method", "k", "n", "unit", "timepoint_days", "product", "cell_source", "dose_per_kg", "hsct",
    "evidence", "note",
)
#: Columns read as floats (NaN when empty); ``value`` may not be empty.
NUMERIC_COLUMNS = ("value", "lower", "upper", "k", "n", "timepoint_days", "dose_per_kg")
#: Allowed values of ``statistic`` (see the README of the table).
REPORTED_STATISTICS = (
    "proportion", "km_estimate", "cumulative_incidence", "median", "mean", "geometric_mean",
    "geometric_cv_percent", "ratio", "parameter", "iiv_omega2", "typical_value", "max_observed",
    "lower_bound", "individual_value",
)
#: Statistics whose value (and interval) is a fraction in [0, 1].
FRACTION_STATISTICS = ("proportion", "km_estimate", "cumulative_incidence")
#: Allowed values of ``ci_method``; ``none`` if and only if ``lower`` and ``upper`` are empty.
CI_METHODS = ("reported", "wilson", "range", "none")
#: Evidence codes; a row may combine several with ``+`` (e.g. ``V-seed+D``).
EVIDENCE_CODES = ("V-seed", "V-abs", "V-sec", "D")


#: The reference table in use while scenarios are loaded (None: the shipped one); set with
#: :func:`reference_table`.
_ACTIVE_TABLE: contextvars.ContextVar = contextvars.ContextVar("carkinetics_reference_table", default=None)


def default_targets_path() -> Path:
    """Path of the reference table shipped with carkinetics."""
    return Path(__file__).resolve().parent.parent / "reference" / "targets.csv"


def active_targets_path() -> Path:
    """The reference table scenarios are checked against: the one of :func:`reference_table`, else
    the shipped one (:func:`default_targets_path`).

    Returns
    -------
    pathlib.Path
    """
    active = _ACTIVE_TABLE.get()
    return default_targets_path() if active is None else active


def is_default_table(path) -> bool:
    """Whether ``path`` is the reference table shipped with carkinetics.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    bool
    """
    try:
        return Path(path).resolve() == default_targets_path()
    except OSError:
        return False


@contextlib.contextmanager
def reference_table(path=None):
    """Use another reference table (``carkinetics validate --reference``) while scenarios are loaded.

    Inside the ``with`` block, the target ids a scenario lists in ``[scenario] targets``
    are checked against ``path`` instead of the shipped table.

    Parameters
    ----------
    path : str or pathlib.Path, optional
        A reference table (:func:`load_targets` format); None: the shipped one.

    Examples
    --------
    >>> from carkinetics.scenario.reference import active_targets_path, reference_table
    >>> with reference_table("my_targets.csv"):
    ...     active_targets_path().name
    'my_targets.csv'
    """
    token = _ACTIVE_TABLE.set(None if path is None else Path(path))
    try:
        yield
    finally:
        _ACTIVE_TABLE.reset(token)


def load_targets(path: str | Path | None = None) -> pd.DataFrame:
    """Load and validate a reference target table.

    Parameters
    ----------
    path : str or pathlib.Path, optional
        A CSV file with the columns of :data:`TARGET_COLUMNS` (UTF-8, header row,
        RFC-4180 quoting). Default: the table shipped with carkinetics.

    Returns
    -------
    pandas.DataFrame
        One row per target, columns in :data:`TARGET_COLUMNS` order (the file's path in
        ``attrs["path"]``). The columns of
        :data:`NUMERIC_COLUMNS` are floats (NaN where the file leaves them empty:
        ``k`` and ``n`` are whole numbers when given); the other columns are strings
        (empty string where the file leaves them empty).

    Raises
    ------
    DataError
        If the file is missing or unreadable, or if any row breaks a rule (missing or
        unknown columns, duplicate or empty ``target_id``, non-numeric or non-finite
        numbers, an unknown ``statistic``, ``ci_method`` or evidence code, an interval
        that does not contain the value, a ``ci_method`` inconsistent with the interval,
        ``k`` > ``n``, a proportion outside [0, 1]). Every problem in the file is
        reported at once, each with its row number, ``target_id`` and column.

    Examples
    --------
    >>> from carkinetics.scenario.reference import load_targets
    >>> t = load_targets()
    >>> float(t.loc[t.target_id == "stein_tmax", "value"].iloc[0])
    9.3
    """
    import pandas as pd

    from carkinetics.scenario.data import read_csv_table

    path = default_targets_path() if path is None else Path(path)
    if not path.exists():
        raise DataError(path, ["file not found (expected a CSV table of reference targets)"])
    raw, _ = read_csv_table(path, DataError, "target table")

    errs = ProblemCollector(path, DataError)
    columns = [str(c) for c in raw.columns]
    missing = [c for c in TARGET_COLUMNS if c not in columns]
    for c in columns:
        if c not in TARGET_COLUMNS:
            errs.add(f"column '{c}'", f"is not a column of the target table{suggestion(c, missing or TARGET_COLUMNS)}"
                                      f"; expected columns: {', '.join(TARGET_COLUMNS)}")
    for c in missing:
        errs.add(f"column '{c}'", f"missing (expected columns: {', '.join(TARGET_COLUMNS)})")
    if len(set(columns)) != len(columns):
        dup = sorted({c for c in columns if columns.count(c) > 1})
        errs.add("header", f"duplicate column names {dup}")
    errs.raise_if_any()
    if raw.empty:
        raise DataError(path, ["the table has a header but no rows"])

    table = raw[list(TARGET_COLUMNS)].copy()
    for c in TARGET_COLUMNS:
        table[c] = table[c].str.strip()
    numbers = {c: [] for c in NUMERIC_COLUMNS}
    seen: dict[str, int] = {}
    for i, row in enumerate(table.itertuples(index=False)):
        line = i + 2  # 1-based, after the header
        tid = row.target_id
        where = f"row {line} (target_id '{tid}')" if tid else f"row {line}"
        if not tid:
            errs.add(f"row {line}: target_id", "empty (every row needs a unique target_id)")
        elif tid in seen:
            errs.add(f"{where}: target_id", f"duplicate of row {seen[tid]}")
        else:
            seen[tid] = line
        vals = {}
        for c in NUMERIC_COLUMNS:
            text = getattr(row, c)
            v = math.nan
            if text == "":
                if c == "value":
                    errs.add(f"{where}: value", "empty (every target needs a numeric value)")
            else:
                try:
                    v = float(text)
                except ValueError:
                    errs.add(f"{where}: {c}", f"'{text}' is not a number")
                    v = math.nan
                else:
                    if not math.isfinite(v):
                        errs.add(f"{where}: {c}", f"'{text}' is not a finite number")
                        v = math.nan
                    elif c in ("k", "n") and (v < 0 or not v.is_integer()):
                        errs.add(f"{where}: {c}", f"'{text}' is not a whole number >= 0")
                    elif c == "timepoint_days" and v < 0:
                        errs.add(f"{where}: {c}", f"{text} is negative (days after infusion, >= 0)")
            vals[c] = v
            numbers[c].append(v)
        _check_row(row, vals, where, errs)
    errs.raise_if_any()
    for c in NUMERIC_COLUMNS:
        table[c] = pd.Series(numbers[c], index=table.index, dtype=float)
    table = table.reset_index(drop=True)
    table.attrs["path"] = str(path)
    return table


def _check_row(row, vals, where, errs) -> None:
    """Rules that relate the columns of one row."""
    if row.statistic not in REPORTED_STATISTICS:
        errs.add(f"{where}: statistic", f"'{row.statistic}' is not one of {', '.join(REPORTED_STATISTICS)}"
                                        f"{suggestion(row.statistic, REPORTED_STATISTICS)}")
    if row.ci_method not in CI_METHODS:
        errs.add(f"{where}: ci_method", f"'{row.ci_method}' is not one of {', '.join(CI_METHODS)}"
                                        f"{suggestion(row.ci_method, CI_METHODS)}")
    codes = row.evidence.split("+") if row.evidence else []
    bad = [c for c in codes if c not in EVIDENCE_CODES]
    if not codes or bad:
        shown = row.evidence if row.evidence else "(empty)"
        hint = suggestion(bad[0], EVIDENCE_CODES) if bad else ""
        errs.add(f"{where}: evidence", f"'{shown}' is not one of {', '.join(EVIDENCE_CODES)} "
                                       f"or a '+' combination of them{hint}")
    value, lower, upper = vals["value"], vals["lower"], vals["upper"]
    has_lo, has_hi = row.lower != "", row.upper != ""
    if has_lo != has_hi:
        errs.add(f"{where}: lower/upper", "give both ends of the interval or neither")
    if has_lo and has_hi and row.ci_method == "none":
        errs.add(f"{where}: ci_method", "'none' but the row has an interval (lower, upper)")
    if not has_lo and not has_hi and row.ci_method in CI_METHODS and row.ci_method != "none":
        errs.add(f"{where}: ci_method", f"'{row.ci_method}' but lower and upper are empty")
    if all(math.isfinite(x) for x in (value, lower, upper)) and not lower <= value <= upper:
        errs.add(f"{where}: value", f"{value:g} is outside its interval [{lower:g}, {upper:g}]")
    if row.statistic in FRACTION_STATISTICS:
        for c, x in (("value", value), ("lower", lower), ("upper", upper)):
            if math.isfinite(x) and not 0.0 <= x <= 1.0:
                errs.add(f"{where}: {c}", f"{x:g} is outside [0, 1] (a {row.statistic} is a fraction)")
    k, n = vals["k"], vals["n"]
    if math.isfinite(k) and math.isfinite(n) and k > n:
        errs.add(f"{where}: k", f"{k:g} events exceed the denominator n = {n:g}")
