"""Exception hierarchy of carkinetics.

Every error caused by user input derives from :class:`CarKineticsError`, so the
command line can turn it into one ``Error: ...`` line and a non-zero exit status,
while genuine bugs still show a traceback.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class CarKineticsError(Exception):
    """Base class of all errors caused by input to carkinetics."""


class FileProblem:
    """One problem found in a file: where it is, what was found, what was expected."""

    __slots__ = ("key", "message")

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message

    def __repr__(self) -> str:
        return f"FileProblem({self.key!r}, {self.message!r})"


def printable(text, limit: int = 1000, keep_newlines: bool = False) -> str:
    """``text`` made safe to print as part of one message line.

    Parameters
    ----------
    text : object
        The text (converted with ``str``): a file name, a key or a value from a file.
    limit : int, optional
        Longest text kept (characters); longer text is cut, with a note of its length.
    keep_newlines : bool, optional
        Keep newlines and tabs (a message of several lines composed by carkinetics itself).

    Returns
    -------
    str
        The text with every character that is not printable (control characters,
        line and paragraph separators, format characters, which would let a file name or
        a value from a file start a new, forged line of output) written as its escape.
    """
    text = str(text)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text):,} characters)"
    if text.isprintable():
        return text
    kept = "\n\t" if keep_newlines else ""
    return "".join(c if c.isprintable() or c in kept else ascii(c)[1:-1] for c in text)


class FileError(CarKineticsError, ValueError):
    """A file (model, scenario, data, targets) has one or more problems.

    All problems found in the file are reported together, one per line, each as
    ``path: key: message``.
    """

    kind = "file"

    def __init__(self, path: str | Path, problems: Iterable[FileProblem | str]) -> None:
        self.path = str(path)
        self.problems = [p if isinstance(p, FileProblem) else FileProblem("", p) for p in problems]
        if not self.problems:
            raise ValueError("FileError needs at least one problem")
        super().__init__(self._format())

    def _format(self) -> str:
        path = printable(self.path)
        lines = [f"{path}: {printable(p.key)}: {printable(p.message, keep_newlines=True)}" if p.key
                 else f"{path}: {printable(p.message, keep_newlines=True)}" for p in self.problems]
        if len(lines) == 1:
            return lines[0]
        head = f"{path}: {len(lines)} problems in {self.kind} file"
        return "\n".join([head] + ["  " + line for line in lines])


class ModelFileError(FileError):
    """A model file (``models/*.toml``) is malformed."""

    kind = "model"


class ScenarioError(FileError):
    """A scenario file (``scenarios/*.toml``) is malformed."""

    kind = "scenario"


class DataError(FileError):
    """A data or target table (CSV) is malformed."""

    kind = "data"


class ExpressionError(CarKineticsError, ValueError):
    """An expression string is not in the safe arithmetic subset."""


class SolverError(CarKineticsError, RuntimeError):
    """Integration of a single simulation failed."""

    def __init__(self, message: str, status: int = -1) -> None:
        super().__init__(message)
        self.status = status


class ProblemCollector:
    """Collects problems while validating a file, then raises them all at once."""

    def __init__(self, path, error_class=FileError):
        self.path = path
        self.error_class = error_class
        self.problems: list[FileProblem] = []

    def add(self, key: str, message: str) -> None:
        """Record one problem at ``key`` (a key path such as ``parameters.rate.value``)."""
        self.problems.append(FileProblem(key, message))

    def unknown_name(self, key: str, name: str, known: Iterable[str], what: str) -> None:
        """Record an unknown name, with a close-match suggestion when there is one."""
        self.add(key, unknown_name_message(name, known, what))

    def unknown_keys(self, key: str, table, allowed: Iterable[str], what: str) -> None:
        """Record every key of ``table`` (the table at ``key``) that is not in ``allowed``."""
        for k in table:
            if k not in allowed:
                self.unknown_name(f"{key}.{k}", k, allowed, what)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        """Raise ``error_class`` listing every problem recorded, if there is any."""
        if self.problems:
            raise self.error_class(self.path, self.problems)


def is_number(value) -> bool:
    """Whether a value read from a file is a finite number (an int or a float, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):  # a TOML integer may exceed every float (math.isfinite would overflow)
        return -_FLOAT_MAX <= value <= _FLOAT_MAX
    return math.isfinite(value)


_FLOAT_MAX = 1.7976931348623157e308


def is_whole_number(value, minimum: int = 0) -> bool:
    """Whether a value read from a file is a whole number (an int, not a bool) >= ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def suggestion(name: str, known: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest known name, or ``''``."""
    matches = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def unknown_name_message(name: str, known: Iterable[str], what: str) -> str:
    """The message for an unknown ``name``: ``'x' is not <what>``, with a close match if any."""
    known = list(known)
    return f"'{name}' is not {what}{suggestion(name, known)}"


# ---- reading input files -------------------------------------------------------------------
#: Largest input file read (model, scenario, calibration, parameter set, data or target table).
#: Real files are kilobytes to a few megabytes; the limit keeps ``/dev/zero`` or a wrong path
#: to a disk image from being read whole.
MAX_INPUT_BYTES = 64 * 1024 * 1024


def read_input_text(path, error_class=None, what: str = "file", max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The text of one input file, or ``error_class(path, [reason])`` naming what is wrong.

    The one reader of every input file: refuses missing paths, folders, special files
    (devices, FIFOs, sockets), files over ``max_bytes`` and text that is not UTF-8,
    each with one message naming the file; nothing is read before the checks pass, and
    at most ``max_bytes + 1`` bytes are ever read (a file growing meanwhile cannot
    exhaust memory).
    """
    error_class = error_class or FileError
    p = check_input_file(path, error_class, what, max_bytes)
    try:
        with open(p, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as err:
        raise error_class(p, [f"cannot read the {what}: {err.strerror or err}"]) from None
    if len(raw) > max_bytes:
        raise error_class(p, [f"is larger than {max_bytes:,} bytes, the limit for a {what}"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise error_class(p, [f"not UTF-8 text (byte 0x{raw[err.start]:02x} at line {line}); "
                              f"save the {what} as UTF-8"]) from None
    return text.removeprefix("\ufeff")


def check_input_file(path, error_class=None, what: str = "file", max_bytes: int = MAX_INPUT_BYTES):
    """``path`` as a :class:`pathlib.Path` if it is a regular file of at most ``max_bytes``,
    else ``error_class(path, [reason])``: the checks of :func:`read_input_text`, for a reader
    that reads the file itself (a results table of a large cohort is read by pandas from disk)."""
    import os
    import stat
    from pathlib import Path

    error_class = error_class or FileError
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error_class(p, [f"{what} not found"]) from None
    except OSError as err:
        raise error_class(p, [f"cannot read the {what}: {err.strerror or err}"]) from None
    if stat.S_ISDIR(st.st_mode):
        raise error_class(p, [f"is a folder, expected a {what}"])
    if not stat.S_ISREG(st.st_mode):
        raise error_class(p, [f"is not a regular file (a device, pipe or socket), expected a {what}"])
    if st.st_size > max_bytes:
        raise error_class(p, [f"is {st.st_size:,} bytes; a {what} may be at most {max_bytes:,} bytes"])
    return p


def parse_toml(text: str, path, error_class=None) -> dict:
    """The tables of TOML ``text`` read from ``path``; malformed or absurdly nested text
    raises ``error_class(path, [reason])`` (``tomllib`` recurses once per nesting level)."""
    import tomllib

    error_class = error_class or FileError
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise error_class(path, [f"not valid TOML: {err}"]) from None
    except RecursionError:
        raise error_class(path, ["not valid TOML: arrays or tables nested too deeply"]) from None
