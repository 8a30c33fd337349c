"""Parameter-set files: a product's parameter values (e.g. from ``carkinetics calibrate``) in TOML.

A scenario names one or more with ``[scenario] parameter_set = "..."``, and an arm with
``[arms.NAME] parameter_set = "..."``; the scenario's (or arm's) own ``parameters`` apply on
top.
"""

from __future__ import annotations

import math
from pathlib import Path

from carkinetics.errors import ProblemCollector, ScenarioError, is_number, parse_toml, read_input_text
from carkinetics.scenario.parsing import parameter_items


def load_parameter_set(path, model) -> dict:
    """Parameter values from a parameter-set file: a TOML file with a ``[parameters]`` table.

    Such files are written by ``carkinetics calibrate`` (one per product, with the fit's
    provenance in comments and in a ``[calibration]`` table, which is not read here); a
    scenario names one with ``[scenario] parameter_set = "..."`` and its own
    ``[parameters]`` apply on top.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    model : Model
        The model whose parameters the file sets.

    Returns
    -------
    dict of str to float
        Parameter name -> value.

    Raises
    ------
    ScenarioError
        Naming the file: not TOML, no ``[parameters]`` table, unknown parameters, values
        that are not finite numbers within the model's bounds.
    """
    path = Path(path)
    errs = ProblemCollector(path, ScenarioError)
    data = parse_toml(read_input_text(path, ScenarioError, "TOML file"), path, ScenarioError)
    if not isinstance(data.get("parameters"), dict):
        raise ScenarioError(path, ["parameters: a parameter-set file needs a [parameters] table of "
                                   "parameter = value"])
    for k in data:
        if k not in ("parameters", "calibration"):
            errs.unknown_name(k, k, ("parameters", "calibration"), "a section of a parameter-set file")
    _check_provenance_numbers(data.get("calibration"), "calibration", errs)
    out = {}
    numeric_parameters(parameter_items(data["parameters"], "parameters", model, errs, "value"), model, errs, out)
    errs.raise_if_any()
    return out


def numeric_parameters(items, model, errs, out: dict) -> None:
    """Check ``(name, value, key)`` entries as finite numbers within the model's bounds into ``out``.

    Parameters
    ----------
    items : iterable of (str, object, str)
        Parameter name, value as read, key in the file.
    model : Model
    errs : ProblemCollector
        Where problems are recorded.
    out : dict
        Receives name -> float for the valid entries.
    """
    for nm, value, key in items:
        if not is_number(value):
            errs.add(key, f"expected a finite number, got {value!r}")
            continue
        par = model.parameter(nm)
        if par.bounds and not (par.bounds[0] <= value <= par.bounds[1]):
            errs.add(key, f"{value} is outside the model's bounds [{par.bounds[0]}, {par.bounds[1]}] "
                          f"({par.unit})")
            continue
        out[nm] = float(value)


def _check_provenance_numbers(value, key, errs) -> None:
    """A parameter set's ``[calibration]`` record is not used, but a NaN or infinite number in it
    means the file did not come from a finished calibration: refuse it."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_provenance_numbers(v, f"{key}.{k}", errs)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_provenance_numbers(v, f"{key}[{i}]", errs)
    elif isinstance(value, float) and not math.isfinite(value):
        errs.add(key, f"{value!r} in the record of the calibration: the file is not from a finished calibration")
