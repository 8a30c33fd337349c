"""TOML writer: nested tables of strings, numbers, booleans and lists (the reader is ``tomllib``)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping


def toml_key(k):
    """A TOML key: bare when it is made of ``A-Za-z0-9_-``, else a quoted string.

    Examples
    --------
    >>> toml_key("k"), toml_key("a b")
    ('k', '"a b"')
    """
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else toml_value(k)


def toml_value(v):
    """A TOML value: boolean, integer, float (``repr``, or ``nan``/``inf``), string, array or inline table.

    Raises
    ------
    TypeError
        For any other type.

    Examples
    --------
    >>> toml_value(0.1), toml_value(float("inf")), toml_value(["a", True])
    ('0.1', 'inf', '["a", true]')
    """
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps_toml(data: Mapping, _prefix=()) -> str:
    """Serialise nested tables of strings, numbers, booleans and lists as TOML.

    Scalars of a table come first, then its sub-tables as ``[a.b]`` sections.

    Examples
    --------
    >>> print(dumps_toml({"name": "x", "parameters": {"k": 0.2}}))
    name = "x"
    <BLANKLINE>
    [parameters]
    k = 0.2
    <BLANKLINE>
    """
    lines = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    if _prefix and (scalars or not tables):
        lines.append("[" + ".".join(toml_key(p) for p in _prefix) + "]")
    for k, v in scalars.items():
        lines.append(f"{toml_key(k)} = {toml_value(v)}")
    if scalars or (_prefix and not tables):
        lines.append("")
    for k, v in tables.items():
        lines.append(dumps_toml(v, _prefix + (k,)))
    return "\n".join(lines)
