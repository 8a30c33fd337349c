"""The [data] section of a scenario: observed data shown in visual predictive checks.

::

    [data]
    file = "observations.csv"                               # relative to the scenario
    vpc = { replicates = 200, error = "proportional:0.2" }  # optional: `carkinetics run` writes a VPC
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from carkinetics.errors import CarKineticsError, is_number
from carkinetics.model.residual_error import parse_residual_error

_VPC_KEYS = ("replicates", "error", "pred_corr", "bins")


@dataclass(frozen=True)
class VPCSettings:
    """What ``[data] vpc`` asks ``carkinetics run`` for: a visual predictive check of the data.

    Attributes
    ----------
    replicates : int
        Replicate trials of the study's size.
    error : str or None
        Residual error model (``proportional:0.2``, ...; None: the model file's, else none).
    pred_corr : bool
        Prediction-corrected VPC.
    bins : int or None
        Number of bins (None: the default binning).
    """

    replicates: int = 200
    error: str | None = None
    pred_corr: bool = False
    bins: int | None = None


@dataclass(frozen=True)
class ObservedData:
    """A scenario's ``[data]``: the observation file and, optionally, the VPC ``run`` writes."""

    path: Path
    vpc: VPCSettings | None = None


def _parse_vpc(raw, errs) -> VPCSettings | None:
    if not isinstance(raw, dict):
        errs.add("data.vpc", "expected a table { replicates = 200, error = \"proportional:0.2\", pred_corr = false }")
        return None
    errs.unknown_keys("data.vpc", raw, _VPC_KEYS, "a key of [data] vpc")
    reps = raw.get("replicates", 200)
    if isinstance(reps, bool) or not isinstance(reps, int) or not 1 <= reps <= 10_000:
        errs.add("data.vpc.replicates", f"expected a whole number from 1 to 10,000, got {reps!r}")
        return None
    error = raw.get("error")
    if error is not None:
        try:
            parse_residual_error(error, "data.vpc.error")
        except (CarKineticsError, ValueError, TypeError) as err:
            errs.add("data.vpc.error", str(err))
            return None
    pred_corr = raw.get("pred_corr", False)
    if not isinstance(pred_corr, bool):
        errs.add("data.vpc.pred_corr", f"expected true or false, got {pred_corr!r}")
        return None
    bins = raw.get("bins")
    if bins is not None and (isinstance(bins, bool) or not is_number(bins) or bins != int(bins) or bins < 1):
        errs.add("data.vpc.bins", f"expected a whole number of bins >= 1, got {bins!r}")
        return None
    return VPCSettings(reps, error, pred_corr, None if bins is None else int(bins))


def parse_data(raw, context) -> ObservedData | None:
    """Parse ``[data] file = "observations.csv"``: the observed data of a visual predictive check.

    Parameters
    ----------
    raw : object
        The ``[data]`` table as read.
    context : SectionContext
        The scenario being parsed; problems go to ``context.errors``.

    Returns
    -------
    ObservedData or None
        The data file (relative paths are relative to the scenario's folder) and the VPC
        settings, or None after a problem.
    """
    errs = context.errors
    if not isinstance(raw, dict):
        errs.add("data", "expected a table with file = \"observations.csv\"")
        return None
    errs.unknown_keys("data", raw, ("file", "description", "notes", "source", "vpc"), "a key of [data]")
    f = raw.get("file")
    if not isinstance(f, str) or not f:
        errs.add("data.file", f"expected the path of a CSV file (relative to the scenario), got {f!r}")
        return None
    path = Path(context.path).parent / f
    if not path.exists():
        errs.add("data.file", f"'{f}' not found (looked for {path})")
        return None
    vpc = _parse_vpc(raw["vpc"], errs) if "vpc" in raw else None
    return ObservedData(path, vpc)


def load_observations(path, model):
    """Observations of a data file for a visual predictive check.

    Read with :func:`carkinetics.scenario.data.load_data` (the fitting data format: long CSV
    ``id, time, observable, value``, optional ``lloq``/``blq`` and NONMEM aliases).

    Returns
    -------
    pandas.DataFrame
        ``id, time, observable, value, lloq, censored``.
    """
    from carkinetics.scenario.data import load_data

    obs = load_data(path, model).observations
    return obs[["id", "time", "observable", "value", "lloq", "censored"]].reset_index(drop=True)
