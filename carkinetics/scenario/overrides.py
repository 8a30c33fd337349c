"""Run-time overrides of a scenario's values: ``--set NAME=VALUE`` on the command line.

A NAME is a scenario variable (``[variables]``), a model parameter, or a covariate of
``[population.covariates]``. The three kinds of names never clash: a scenario may not give a
variable or a covariate the name of a parameter (or of each other), so every NAME means one
thing. An override has the effect of writing the value into the scenario file:

* a variable: its value in ``[variables]`` (an arm's own ``variables`` still apply to that arm);
* a parameter: an entry of ``[parameters]``, on top of any parameter set (an arm's
  ``parameters`` and ``[population.parameters]`` still apply, and between-patient
  variability still varies it around the new typical value);
* a covariate: the covariate becomes a constant, the same value for every patient.

The scenario is validated again with the new values, so a value that makes an event or a
parameter expression invalid is refused before anything is simulated.
"""

from __future__ import annotations

import copy
import math

from carkinetics.errors import ScenarioError, suggestion

#: Covariate distributions whose values are labels of groups: any finite number may be set.
_DISCRETE = ("categorical", "bernoulli", "constant")


class OverrideError(ScenarioError):
    """A ``--set NAME=VALUE`` option is malformed, or its name or value does not fit the scenario.

    Its "file" is the option (``--set NAME``): the command line reports it as a usage error.
    """

    kind = "option"


def parse_set_options(texts) -> dict:
    """``NAME=VALUE`` texts (the values of repeated ``--set`` options) as a dict.

    Parameters
    ----------
    texts : iterable of str

    Returns
    -------
    dict of str to float
        NAME -> VALUE, in the order given.

    Raises
    ------
    OverrideError
        Naming the option: a text without ``=``, an empty or invalid name, a value that is
        not a finite number, or a name given twice.
    """
    out = {}
    for text in texts or ():
        text = str(text)
        if "=" not in text:
            raise OverrideError(f"--set {text}", ["expected NAME=VALUE (a variable, parameter or covariate of the "
                                                  "scenario and a number), e.g. --set dose_per_kg=2e6"])
        name, _, value = text.partition("=")
        name, value = name.strip(), value.strip()
        if not name.isidentifier():
            raise OverrideError(f"--set {text}", [f"'{name}' is not a name (letters, digits and _): expected "
                                                  f"NAME=VALUE"])
        try:
            number = float(value)
        except ValueError:
            number = math.nan
            finite = False
        else:
            finite = math.isfinite(number)
        if not finite:
            raise OverrideError(f"--set {name}", [f"expected a finite number, got '{value}'"])
        if name in out:
            raise OverrideError(f"--set {name}", ["given twice; give each name once"])
        out[name] = number
    return out


def settable_names(scenario) -> dict:
    """The names ``--set`` accepts for a scenario, and what each is.

    Parameters
    ----------
    scenario : Scenario

    Returns
    -------
    dict of str to str
        Name -> ``"variable"``, ``"parameter"`` or ``"covariate"``.
    """
    kinds = {name: "parameter" for name in scenario.model.parameter_names}
    if scenario.population is not None:
        kinds.update({name: "covariate" for name in scenario.population.covariates})
    if scenario.variables is not None:
        kinds.update({name: "variable" for name in scenario.variables.values})
    return kinds


def _value_problem(scenario, name, kind, value) -> str:
    """Why ``value`` cannot be given to ``name`` (a ``kind``), or ''."""
    if kind == "parameter":
        par = scenario.model.parameter(name)
        if par.bounds:
            lo, hi = par.bounds
            if not lo <= value <= hi:
                return (f"{value:g} is outside the bounds of parameter '{name}' of model '{scenario.model.name}': "
                        f"expected a number in [{lo:g}, {hi:g}] ({par.unit})")
        return ""
    if kind == "covariate":
        cov = scenario.population.covariates[name]
        if cov.distribution in _DISCRETE:
            return ""
        lo, hi = cov.lower, cov.upper
        positive = cov.distribution in ("lognormal", "loguniform")  # values > 0
        if cov.distribution == "beta":
            lo, hi = max(lo, 0.0), min(hi, 1.0)
        if (positive and value <= 0) or not lo <= value <= hi:
            unit = f" ({cov.unit})" if cov.unit else ""
            rng = f"[{lo:g}, {hi:g}]" + (" and > 0" if positive and lo <= 0 else "")
            return (f"{value:g} is outside the range of covariate '{name}' ({cov.distribution}): expected a number "
                    f"in {rng}{unit}")
    return ""


def check_overrides(scenario, overrides: dict) -> dict:
    """Check overrides against a scenario: known names, values within range.

    Parameters
    ----------
    scenario : Scenario
    overrides : dict of str to float
        NAME -> VALUE (:func:`parse_set_options`).

    Returns
    -------
    dict of str to str
        Name -> ``"variable"``, ``"parameter"`` or ``"covariate"`` for each override.

    Raises
    ------
    OverrideError
        Naming the option (``--set NAME``) and the scenario: an unknown name (with a close
        match), a value that is not a finite number, a parameter outside the model's
        bounds, a covariate outside its range.
    """
    kinds = settable_names(scenario)
    out = {}
    for name, value in overrides.items():
        if name not in kinds:
            raise OverrideError(f"--set {name}", [f"'{name}' is not a variable, parameter or covariate of scenario "
                                                  f"'{scenario.name}' ({scenario.path}){suggestion(name, kinds)}"])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise OverrideError(f"--set {name}", [f"expected a finite number, got {value!r}"])
        problem = _value_problem(scenario, name, kinds[name], float(value))
        if problem:
            raise OverrideError(f"--set {name}", [problem])
        out[name] = kinds[name]
    return out


def apply_overrides(scenario, overrides: dict):
    """The scenario with ``--set`` values: variables replaced, parameters overridden, covariates fixed.

    Parameters
    ----------
    scenario : Scenario
        A loaded scenario.
    overrides : dict of str to float
        NAME -> VALUE (:func:`parse_set_options`); empty: ``scenario`` itself is returned.

    Returns
    -------
    Scenario
        A new scenario, validated again as if the values were written in its file (its
        ``raw`` tables hold them); ``scenario`` is not changed.

    Raises
    ------
    OverrideError
        See :func:`check_overrides`; and, naming the options, when the scenario is not valid
        with the new values (an event or a parameter expression out of range).
    """
    from carkinetics.scenario.load import scenario_from_dict

    if not overrides:
        return scenario
    kinds = check_overrides(scenario, overrides)
    data = copy.deepcopy(scenario.raw)
    for name, value in overrides.items():
        value = float(value)
        if kinds[name] == "parameter":
            params = data.get("parameters")
            data["parameters"] = dict(params) if isinstance(params, dict) else {}
            data["parameters"][name] = value
        elif kinds[name] == "variable":
            entry = data["variables"][name]
            data["variables"][name] = dict(entry, value=value) if isinstance(entry, dict) else value
        else:
            entry = data["population"]["covariates"][name]
            kept = {k: entry[k] for k in ("unit", "description", "notes", "source") if k in entry}
            data["population"]["covariates"][name] = {"distribution": "constant", "value": value, **kept}
    try:
        return scenario_from_dict(data, scenario.path)
    except ScenarioError as err:
        shown = " ".join(f"{k}={v:g}" for k, v in overrides.items())
        raise OverrideError(f"--set {shown}", [f"scenario {err.path} is not valid with these values: "
                                               + "; ".join(map(str, err.problems))]) from None


def check_not_swept(scenario, overrides: dict) -> None:
    """Refuse overrides of names that the scenario's ``[sweep]`` grid sets at its points.

    Parameters
    ----------
    scenario : Scenario
    overrides : dict of str to float

    Raises
    ------
    OverrideError
        Naming the option: the grid would replace the value at every point.
    """
    spec = scenario.sweep
    if spec is None or not overrides:
        return
    for axis in spec.axes:
        for setting in axis.settings:
            names = set(setting.get("variables", {})) | set(setting.get("parameters", {}))
            for name in overrides:
                if name in names:
                    raise OverrideError(f"--set {name}", [f"'{name}' is set by the axis '{axis.name}' of the [sweep] "
                                                          f"grid of {scenario.path}: its values come from the grid"])
