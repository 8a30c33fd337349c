"""What a sensitivity analysis measures and varies: the outcome and each parameter's range.

Outcomes are written ``endpoint`` (the default statistic: ``proportion`` for a binary
endpoint, ``median`` for a continuous one, ``km_median`` for a time-to-event one),
``endpoint:statistic`` (any statistic of :func:`carkinetics.stats.summary.summarise`, e.g.
``cmax:median``, ``cmax:q95``) or ``endpoint@day`` (Kaplan-Meier survival at that day).
For the global measures the per-patient value is used: the 0/1 or continuous endpoint
value, the event time of a time-to-event endpoint, or for ``endpoint@day`` whether the
patient is event-free at that day.

A parameter's range is the model's ``bounds``, or a fold change around its typical value
(within the bounds); a range wider than
:data:`~carkinetics.stats.sensitivity_indices.LOG_RANGE_FACTOR` is sampled log-uniformly
by the global methods.
"""

from __future__ import annotations

from carkinetics.errors import suggestion
from carkinetics.stats import outcome as outcome_grammar
from carkinetics.stats.outcome import Outcome
from carkinetics.stats.sensitivity_indices import SensitivityError, default_log


def parse_outcome(text, endpoint_set) -> Outcome:
    """Parse an outcome against a scenario's endpoints, as :func:`carkinetics.stats.outcome.parse_outcome`.

    Parameters
    ----------
    text : str
        ``endpoint``, ``endpoint:statistic`` or ``endpoint@day``.
    endpoint_set : object or None
        The scenario's endpoints.

    Returns
    -------
    Outcome

    Raises
    ------
    SensitivityError
        For an unknown endpoint or statistic, with the valid choices.
    """
    return outcome_grammar.parse_outcome(text, endpoint_set, error=SensitivityError)


def parameter_ranges(scenario, parameters=None, fold=None):
    """Low and high value of each parameter for a sensitivity analysis.

    Parameters
    ----------
    scenario : Scenario
        Typical values are the model's after the scenario's ``[parameters]``.
    parameters : sequence of str, optional
        Default: every parameter with ``bounds`` (with ``fold``: every parameter with a
        non-zero typical value), whose range is not a single point.
    fold : float, optional
        Range ``typical / fold .. typical * fold``, within the bounds; default: the bounds.

    Returns
    -------
    pandas.DataFrame
        Columns parameter, typical, low, high, log (sampled log-uniformly by the global
        methods), unit.
    """
    import pandas as pd

    model = scenario.model
    typical = dict(zip(model.parameter_names, scenario.parameter_vector()))
    if parameters is not None:
        bad = [p for p in parameters if p not in model.parameter_names]
        if bad:
            raise SensitivityError("; ".join(f"'{p}' is not a parameter of model '{model.name}'"
                                             f"{suggestion(p, model.parameter_names)}" for p in bad))
        names = list(dict.fromkeys(parameters))
    else:
        names = list(model.parameter_names)
    rows, problems = [], []
    for name in names:
        par = model.parameter(name)
        typ = float(typical[name])
        bounds = par.bounds
        if fold is not None:
            if typ == 0:
                if parameters is not None:
                    problems.append(f"'{name}' has typical value 0: a fold range is empty (use its bounds)")
                continue
            lo, hi = sorted((typ / fold, typ * fold))
            if bounds:
                lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        elif bounds:
            lo, hi = bounds
        else:
            if parameters is not None:
                problems.append(f"'{name}' has no bounds in the model file; give --fold")
            continue
        if not hi > lo:
            if parameters is not None:
                problems.append(f"'{name}': the range [{lo:g}, {hi:g}] is a single point")
            continue
        rows.append({"parameter": name, "typical": typ, "low": float(lo), "high": float(hi),
                     "log": bool(default_log([lo], [hi])[0]), "unit": par.unit})
    if problems:
        raise SensitivityError("; ".join(problems))
    if not rows:
        raise SensitivityError(f"no parameter of model '{model.name}' has a range to vary (bounds, or --fold)")
    return pd.DataFrame(rows, columns=["parameter", "typical", "low", "high", "log", "unit"])
