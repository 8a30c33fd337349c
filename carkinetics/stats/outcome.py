"""Outcomes of a virtual cohort: the grammar ``endpoint``, ``endpoint:statistic``, ``endpoint@day``.

An outcome names an endpoint column and how a cohort is reduced to one number:

- ``endpoint``: the default statistic of its kind (:data:`DEFAULT_STATISTIC`: ``proportion``
  for a binary endpoint, ``median`` for a continuous one, ``km_median`` for a time-to-event one);
- ``endpoint:statistic``: any statistic of :func:`carkinetics.stats.summary.summarise`, e.g.
  ``cmax:median``, ``cmax:q95`` (``km_at_<day>`` is read as ``endpoint@day``);
- ``endpoint@day``: Kaplan-Meier survival at that day.

:data:`OUTCOME_PATTERN` is the shape of a name as a scenario file may write it; :func:`split_outcome`
splits a name and :func:`parse_outcome` checks it against a scenario's endpoints.
:func:`cohort_value` and :func:`patient_values` reduce a table of patients to the outcome.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from carkinetics.errors import CarKineticsError, suggestion
from carkinetics.stats.km import kaplan_meier
from carkinetics.stats.quantiles import QUANTILES
from carkinetics.stats.summary import summarise

#: The shape of an outcome name: endpoint, endpoint:statistic or endpoint@day (whether the
#: endpoint and statistic exist is checked against the scenario's endpoints).
OUTCOME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}(:[A-Za-z0-9_.]{1,32})?(@[0-9]+(\.[0-9]+)?)?")

#: The statistic an outcome written as a bare endpoint name means, by endpoint kind.
DEFAULT_STATISTIC = {"binary": "proportion", "continuous": "median", "time": "km_median"}


class OutcomeError(CarKineticsError, ValueError):
    """An outcome that names no endpoint of the scenario, or a statistic its endpoint does not have."""


@dataclass(frozen=True)
class Outcome:
    """An outcome: an endpoint column and how a cohort is reduced to one number.

    Attributes
    ----------
    endpoint : str
    statistic : str
        A statistic of :func:`carkinetics.stats.summary.summarise`, or ``survival`` (with ``day``).
    day : float or None
        For ``survival``: Kaplan-Meier survival at this day.
    kind : str
        The endpoint's kind (binary, continuous, time).
    text : str
        As written.
    """

    endpoint: str
    statistic: str
    day: float | None
    kind: str
    text: str

    @property
    def label(self) -> str:
        """A label for an axis or a table: the endpoint and what is reported of it."""
        if self.statistic == "survival":
            return f"{self.endpoint}: survival at day {self.day:g}"
        if self.statistic == "proportion":
            return f"{self.endpoint}: proportion of patients"
        return f"{self.endpoint}: {self.statistic}"


def split_outcome(text):
    """Split an outcome name into its endpoint, statistic and day.

    Parameters
    ----------
    text : str
        ``endpoint``, ``endpoint:statistic`` or ``endpoint@day``.

    Returns
    -------
    tuple
        (endpoint, statistic or None, day or None); the day in days.

    Raises
    ------
    ValueError
        When the day after ``@`` is not a number.
    """
    text = str(text)
    if "@" in text:
        endpoint, d = text.split("@", 1)
        try:
            return endpoint, None, float(d)
        except ValueError:
            raise ValueError("expected endpoint@day with a number of days") from None
    if ":" in text:
        endpoint, statistic = text.split(":", 1)
        return endpoint, statistic, None
    return text, None, None


def parse_outcome(text, endpoint_set, error=OutcomeError) -> Outcome:
    """Parse ``endpoint``, ``endpoint:statistic`` or ``endpoint@day`` against a scenario's endpoints.

    Parameters
    ----------
    text : str
        The outcome as written.
    endpoint_set : object or None
        The scenario's endpoints: anything with a ``kinds`` mapping of column to kind.
    error : type, optional
        The exception class raised for a bad outcome (default :class:`OutcomeError`).

    Returns
    -------
    Outcome

    Raises
    ------
    OutcomeError
        (or ``error``) For an unknown endpoint or statistic, with the valid choices.
    """
    if endpoint_set is None:
        raise error("the scenario has no [endpoints]: an outcome needs an endpoint")
    kinds = {c: k for c, k in endpoint_set.kinds.items() if k not in ("event_flag", "cause")}
    text = str(text).strip()
    try:
        endpoint, statistic, day = split_outcome(text)
    except ValueError as err:
        raise error(f"outcome '{text}': {err}") from None
    if day is not None:
        statistic = "survival"
    if endpoint not in kinds:
        raise error(f"outcome '{text}': '{endpoint}' is not an endpoint of the scenario"
                    f"{suggestion(endpoint, list(kinds))} (endpoints: {', '.join(kinds)})")
    kind = kinds[endpoint]
    statistic = statistic or DEFAULT_STATISTIC[kind]
    allowed = {"binary": ["proportion"],
               "continuous": list(QUANTILES) + ["mean", "geomean"],
               "time": ["km_median", "survival"]}[kind]
    if kind == "time" and statistic.startswith("km_at_"):
        try:
            day = float(statistic[len("km_at_"):])
            statistic = "survival"
        except ValueError:
            pass
    if statistic == "survival" and kind != "time":
        raise error(f"outcome '{text}': survival at a day needs a time-to-event endpoint; "
                    f"'{endpoint}' is {kind}")
    if statistic not in allowed:
        raise error(f"outcome '{text}': '{statistic}' is not a statistic of the {kind} endpoint "
                    f"'{endpoint}'{suggestion(statistic, allowed)} (choose from {', '.join(allowed)}"
                    f"{', or endpoint@day' if kind == 'time' else ''})")
    return Outcome(endpoint, statistic, day, kind, text)


def cohort_value(patients, outcome: Outcome, endpoint_set) -> float:
    """The outcome of a whole virtual cohort (all its arms together; failed patients left out).

    Parameters
    ----------
    patients : pandas.DataFrame
        One row per patient with the endpoint columns (and ``status``, if any).
    outcome : Outcome
    endpoint_set : object
        The scenario's endpoints, as :func:`carkinetics.stats.summary.summarise` takes them.

    Returns
    -------
    float
        The statistic; NaN when the cohort does not have it.
    """
    df = patients[patients["status"] == 0] if "status" in patients.columns else patients
    if outcome.statistic == "survival":
        t = df[outcome.endpoint].to_numpy(float)
        e = df[f"{outcome.endpoint}_event"].to_numpy(float)
        return float(kaplan_meier(t, e).at(outcome.day)[0])
    table = summarise(df, endpoint_set, by=None)
    row = table[(table["endpoint"] == outcome.endpoint) & (table["statistic"] == outcome.statistic)]
    return float(row["value"].iloc[0]) if len(row) else math.nan


def patient_values(patients, outcome: Outcome) -> np.ndarray:
    """The outcome per patient, for global measures.

    Binary and continuous endpoints: the value itself. ``endpoint@day``: 1 if the
    patient is event-free at the day, 0 if the event came by then, NaN if censored
    before it. Other time-to-event statistics: the event (or censoring) time.

    Parameters
    ----------
    patients : pandas.DataFrame
        One row per patient with the endpoint column (and ``<endpoint>_event`` for a time-to-event one).
    outcome : Outcome

    Returns
    -------
    numpy.ndarray, shape (n_patients,)
    """
    x = np.array(patients[outcome.endpoint].to_numpy(float), dtype=float, copy=True)  # writable (pandas 3)
    if outcome.kind != "time":
        return x
    if outcome.statistic == "survival":
        e = patients[f"{outcome.endpoint}_event"].to_numpy(float)
        alive = (x > outcome.day) | ((x >= outcome.day) & (e == 0))  # censored at the day: event-free there
        out = np.where(alive, 1.0, np.where(e == 1, 0.0, np.nan))
        return np.where(np.isfinite(x), out, np.nan)
    return x
