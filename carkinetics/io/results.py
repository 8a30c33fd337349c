"""Result files: writing JSON records, and reading the JSON records and CSV tables of a results folder back."""

from __future__ import annotations

import json
from pathlib import Path

from carkinetics.errors import FileError, read_input_text
from carkinetics.io.atomic import atomic_write_text


def write_json(path, obj) -> None:
    """Write ``obj`` as an indented JSON record with sorted keys, atomically.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to write (its folder is created if needed).
    obj : object
        JSON data; numpy numbers and arrays and paths are written as numbers, lists and strings.

    Raises
    ------
    carkinetics.io.atomic.OutputError
        Naming ``path`` when it cannot be written.
    """
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_default) + "\n")


def _default(o):
    """``o`` (a numpy number or array, a path) as JSON data, for :func:`json.dumps`."""
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")


def read_result_json(path) -> dict:
    """A JSON record of a results folder (``run.json``, ``sweep.json``, ...).

    Parameters
    ----------
    path : str or pathlib.Path
        The record.

    Returns
    -------
    dict
        The JSON object.

    Raises
    ------
    carkinetics.errors.FileError
        One ``Error: FILE: ...`` if it is not readable JSON or not a JSON object.
    """
    text = read_input_text(path, FileError, "results record (JSON)")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise FileError(path, [f"not a readable results record: {err}"]) from None
    if not isinstance(obj, dict):
        raise FileError(path, [f"not a readable results record: expected a JSON object, got {type(obj).__name__}"])
    return obj


def exact_float_csv_kw():
    """``pandas.read_csv`` arguments that read every float back exactly as written.

    pandas 3.1 and later parse floats exactly by default (and deprecate ``float_precision``);
    before 3.1 the default parser can be one unit in the last place off, so written tables
    would not read back to the same numbers.

    Returns
    -------
    dict
        Keyword arguments for :func:`pandas.read_csv` (empty on pandas 3.1 and later).
    """
    import pandas as pd

    major, minor = (int(x) for x in pd.__version__.split(".")[:2])
    return {} if (major, minor) >= (3, 1) else {"float_precision": "round_trip"}


def read_result_csv(path, **read_csv_kw):
    """A CSV table of a results folder, every float read back exactly (:func:`exact_float_csv_kw`).

    Parameters
    ----------
    path : str or pathlib.Path
        The table.
    **read_csv_kw
        Further arguments for :func:`pandas.read_csv`.

    Returns
    -------
    pandas.DataFrame
        The table; an empty frame for an empty file.

    Raises
    ------
    carkinetics.errors.FileError
        One ``Error: FILE: ...`` if it cannot be read.
    """
    import io as _io

    import pandas as pd

    text = read_input_text(path, FileError, "results table (CSV)")
    try:
        return pd.read_csv(_io.StringIO(text), **{**exact_float_csv_kw(), **read_csv_kw})
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, ValueError) as err:
        raise FileError(path, [f"not a readable results table: {str(err).strip()}"]) from None
