"""Residual (observation) error models: how an observed value scatters around the model's output.

An error model is written on the command line as ``none``, ``additive:A``, ``proportional:B``,
``combined:B,A`` or ``exponential:S`` (:func:`parse_residual_error`), or declared per output in
a model file's optional ``[residual_error]`` section (:func:`parse_residual_error_section`)::

    [residual_error.transgene]
    model = "proportional"   # additive, proportional, combined or exponential
    proportional = 0.2       # fraction: 0.2 = 20 % coefficient of variation
    additive = 5.0           # output units (additive and combined models)
    log_sd = 0.3             # SD of the log of the observation (exponential model)
    source = "qPCR assay validation"

``y_obs = y + sqrt(additive**2 + (proportional * y)**2) * eps`` for the additive, proportional
and combined models (the combined model adds the two variances, NONMEM's
``y * (1 + eps1) + eps2``), and ``y_obs = y * exp(log_sd * eps)`` for the exponential model
(additive on the log scale; ``lognormal`` and ``log`` are aliases), ``eps ~ Normal(0, 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carkinetics.errors import CarKineticsError, is_number, suggestion

#: Kinds of error model.
ERROR_KINDS = ("none", "additive", "proportional", "combined", "exponential")
_ALIASES = {"lognormal": "exponential", "log": "exponential", "prop": "proportional", "add": "additive"}
#: The standard deviations each kind takes (model-file keys, command-line order).
ERROR_PARAMETERS = {"none": (), "additive": ("additive",), "proportional": ("proportional",),
                    "combined": ("proportional", "additive"), "exponential": ("log_sd",)}
_SECTION_KEYS = {"model", "proportional", "additive", "log_sd", "description", "source", "notes"}
_EXPECTED = "expected none, additive:A, proportional:B, combined:B,A or exponential:S (e.g. proportional:0.2)"


class ErrorModelError(CarKineticsError, ValueError):
    """An error model written on the command line is invalid."""


@dataclass(frozen=True)
class ResidualError:
    """A residual error model (see the module docstring for the formulas).

    Attributes
    ----------
    kind : str
        One of :data:`ERROR_KINDS`.
    proportional, additive, log_sd : float
        The model's standard deviations (0 when not part of it).
    """

    kind: str = "none"
    proportional: float = 0.0
    additive: float = 0.0
    log_sd: float = 0.0

    def apply(self, values, rng) -> np.ndarray:
        """``values`` with residual error drawn from ``rng`` (a :class:`numpy.random.Generator`)."""
        y = np.asarray(values, dtype=float)
        if self.kind == "none":
            return y.copy()
        eps = rng.standard_normal(y.shape)
        if self.kind == "exponential":
            return y * np.exp(self.log_sd * eps)
        return y + np.sqrt(self.additive ** 2 + (self.proportional * y) ** 2) * eps

    def describe(self) -> str:
        """The model as written on the command line (``proportional:0.2`` ...)."""
        if self.kind == "none":
            return "none"
        return f"{self.kind}:" + ",".join(f"{getattr(self, k):g}" for k in ERROR_PARAMETERS[self.kind])


def parse_residual_error(text, option="--error") -> ResidualError:
    """Parse an error model: ``none``, ``additive:A``, ``proportional:B``, ``combined:B,A``, ``exponential:S``.

    Parameters
    ----------
    text : str
    option : str
        Named in messages.

    Returns
    -------
    ResidualError

    Raises
    ------
    ErrorModelError
        For an unknown kind or a value that is not a finite number >= 0.
    """
    s = str(text).strip().lower()
    if s in ("", "none"):
        return ResidualError()
    kind, _, rest = s.partition(":")
    kind = _ALIASES.get(kind, kind)
    if kind not in ERROR_KINDS[1:] or not rest:
        raise ErrorModelError(f"{option}: '{text}' is not an error model; {_EXPECTED}")
    try:
        values = [float(v) for v in rest.split(",")]
    except ValueError:
        raise ErrorModelError(f"{option}: '{text}': the standard deviations must be numbers; {_EXPECTED}") from None
    names = ERROR_PARAMETERS[kind]
    if len(values) != len(names):
        raise ErrorModelError(f"{option}: '{text}': {kind} takes {len(names)} value(s) ({', '.join(names)}); "
                              f"{_EXPECTED}")
    if not all(np.isfinite(v) and v >= 0 for v in values):
        raise ErrorModelError(f"{option}: '{text}': standard deviations must be finite numbers >= 0")
    return ResidualError(kind, **dict(zip(names, values)))


def parse_residual_error_section(table, output_names, errs) -> dict:
    """Validate a model file's ``[residual_error.OUTPUT]`` tables.

    Parameters
    ----------
    table : dict
        ``[residual_error]`` as read from TOML.
    output_names : sequence of str
        The model's outputs.
    errs : ProblemCollector
        Collects every problem, keyed e.g. ``residual_error.transgene.proportional``.

    Returns
    -------
    dict of str to ResidualError
        By output.
    """
    if not isinstance(table, dict):
        errs.add("residual_error", "expected tables [residual_error.OUTPUT]")
        return {}
    out = {}
    for name, spec in table.items():
        key = f"residual_error.{name}"
        if name not in output_names:
            errs.add(key, f"'{name}' is not an output of the model{suggestion(name, output_names)}")
            continue
        if not isinstance(spec, dict):
            errs.add(key, "expected a table with model = \"proportional\", proportional = 0.2, ...")
            continue
        errs.unknown_keys(key, spec, tuple(sorted(_SECTION_KEYS)), "a key of a residual error")
        kind = _ALIASES.get(str(spec.get("model", "")).lower(), str(spec.get("model", "")).lower())
        if kind not in ERROR_KINDS:
            errs.add(f"{key}.model", f"expected one of {list(ERROR_KINDS)}, got {spec.get('model')!r}")
            continue
        values = {}
        for p in ERROR_PARAMETERS[kind]:
            v = spec.get(p)
            if not is_number(v) or v < 0:
                errs.add(f"{key}.{p}", f"the {kind} model needs {p} = a finite number >= 0, got {v!r}")
            else:
                values[p] = float(v)
        extra = [p for p in ("proportional", "additive", "log_sd") if p in spec and p not in ERROR_PARAMETERS[kind]]
        if extra:
            errs.add(key, f"{extra} are not used by the {kind} model (it takes {list(ERROR_PARAMETERS[kind])})")
        if len(values) == len(ERROR_PARAMETERS[kind]):
            out[name] = ResidualError(kind, **values)
    return out


def model_residual_errors(model) -> dict:
    """The residual error models a model file declares, by output (empty when it declares none).

    Read from ``model.residual_errors`` when the model was loaded with some, else from the
    ``[residual_error]`` section of the file at ``model.path``.

    Returns
    -------
    dict of str to ResidualError
    """
    from carkinetics.errors import ModelFileError, ProblemCollector, read_input_text, parse_toml

    declared = getattr(model, "residual_errors", None)
    if declared:
        return dict(declared)
    path = getattr(model, "path", None)
    if path is None or not Path(path).is_file():
        return {}
    data = parse_toml(read_input_text(path, ModelFileError, "model file"), path, ModelFileError)
    errs = ProblemCollector(str(path), ModelFileError)
    found = parse_residual_error_section(data.get("residual_error", {}), list(model.output_names), errs)
    errs.raise_if_any()
    return found
