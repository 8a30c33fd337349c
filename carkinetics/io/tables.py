"""Result tables as CSV or Parquet files: the ``--format`` of ``carkinetics run`` and ``carkinetics sweep``.

CSV is written by :func:`carkinetics.io.csv.write_csv` (the bytes of ``DataFrame.to_csv(index=False)``)
and read back with every float exact; Parquet is written and read by pyarrow (the optional extra
``carkinetics[parquet]``) and keeps the column types (integers, floats with NaN, text,
categories) as they were.
"""

from __future__ import annotations

from pathlib import Path

from carkinetics.errors import CarKineticsError, FileError

#: The table formats, the first the default.
TABLE_FORMATS = ("csv", "parquet")

#: What to install for Parquet files.
PARQUET_INSTALL = "pip install 'carkinetics[parquet]'"


class TableFormatError(CarKineticsError, ValueError):
    """A table format that is unknown or cannot be written here (Parquet without pyarrow)."""


def parquet_available() -> bool:
    """Whether Parquet files can be written and read (pyarrow is installed and imports).

    Returns
    -------
    bool
    """
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def check_table_format(table_format, option="--format") -> str:
    """The table format, after checking that it is known and can be written here.

    Parameters
    ----------
    table_format : str
        ``"csv"`` or ``"parquet"``.
    option : str
        How the caller names the setting in messages.

    Returns
    -------
    str
        ``table_format``.

    Raises
    ------
    TableFormatError
        For an unknown format, or ``"parquet"`` without pyarrow.
    """
    if table_format not in TABLE_FORMATS:
        raise TableFormatError(f"{option}: expected one of {', '.join(TABLE_FORMATS)}, got {table_format!r}")
    if table_format == "parquet" and not parquet_available():
        raise TableFormatError(f"{option} parquet: writing Parquet files needs pyarrow (16.0 or later), which is not "
                               f"installed or does not import; install it ({PARQUET_INSTALL}) or use {option} csv")
    return table_format


def table_name(stem: str, table_format: str = "csv") -> str:
    """The file name of a table: ``stem`` and the format's suffix (``patients.parquet``).

    Parameters
    ----------
    stem : str
    table_format : str

    Returns
    -------
    str
    """
    return f"{stem}.{table_format}"


def format_of(path) -> str:
    """The table format of a file, from its suffix (``.parquet``; anything else is CSV).

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    str
    """
    return "parquet" if Path(path).suffix.lower() == ".parquet" else "csv"


def write_table(table, path, table_format=None) -> None:
    """Write a table (no index) as CSV or Parquet.

    Parameters
    ----------
    table : pandas.DataFrame
    path : str or pathlib.Path
        The file (replaced).
    table_format : str, optional
        ``"csv"`` or ``"parquet"``; default: from the suffix of ``path`` (:func:`format_of`).

    Raises
    ------
    TableFormatError
        For Parquet without pyarrow.
    """
    table_format = check_table_format(table_format or format_of(path), "table format")
    if table_format == "csv":
        from carkinetics.io.csv import write_csv

        write_csv(table, path)
        return
    table.to_parquet(path, engine="pyarrow", index=False)


def read_table(path, **read_csv_kw):
    """A table written by :func:`write_table`, its format read from the suffix.

    Parameters
    ----------
    path : str or pathlib.Path
    **read_csv_kw
        Further arguments for :func:`pandas.read_csv` (CSV files only).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    carkinetics.errors.FileError
        One ``Error: FILE: ...`` if it cannot be read (or is Parquet and pyarrow is missing).
    """
    from carkinetics.io.results import read_result_csv

    if format_of(path) == "csv":
        return read_result_csv(path, **read_csv_kw)
    if not parquet_available():
        raise FileError(path, [f"reading Parquet files needs pyarrow, which is not installed ({PARQUET_INSTALL})"])
    import pandas as pd

    try:
        return pd.read_parquet(path, engine="pyarrow")
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as err:
        raise FileError(path, [f"not a readable results table (Parquet): {str(err).strip()}"]) from None
