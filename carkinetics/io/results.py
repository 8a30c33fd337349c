"""Result files: writing JSON records, and reading the JSON records and CSV tables of a results folder back."""

from __future__ import annotations

import json
from pathlib import Path

from carkinetics.errors import FileError, check_input_file, read_input_text
from carkinetics.io.atomic import atomic_write_text

#: Largest results table read back (a patient table of 10^6 patients is about 1.3 GB of CSV);
#: the limit keeps a wrong path to a disk image from being parsed.
MAX_RESULT_BYTES = 64 * 1024 ** 3


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
    import pandas as pd

    # read by pandas from disk, not as one string first: the patient table of 10^6 patients
    # is over a gigabyte (input files, read whole, are limited to MAX_INPUT_BYTES)
    p = check_input_file(path, FileError, "results table (CSV)", MAX_RESULT_BYTES)
    try:
        return pd.read_csv(p, encoding="utf-8-sig", **{**exact_float_csv_kw(), **read_csv_kw})
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except UnicodeDecodeError as err:
        raise FileError(p, [f"not UTF-8 text ({err.reason} at byte {err.start} of a block); "
                            f"a results table is written as UTF-8"]) from None
    except OSError as err:
        raise FileError(p, [f"cannot read the results table: {err.strerror or err}"]) from None
    except (pd.errors.ParserError, ValueError) as err:
        raise FileError(p, [f"not a readable results table: {str(err).strip()}"]) from None
