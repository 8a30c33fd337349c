"""The [data] section of a scenario: observed data shown in visual predictive checks."""

from __future__ import annotations

from pathlib import Path


def parse_data(raw, context) -> Path | None:
    """Parse ``[data] file = "observations.csv"``: the observed data of a visual predictive check.

    Parameters
    ----------
    raw : object
        The ``[data]`` table as read.
    context : SectionContext
        The scenario being parsed; problems go to ``context.errors``.

    Returns
    -------
    pathlib.Path or None
        The data file (relative paths are relative to the scenario's folder), or None
        after a problem.
    """
    errs = context.errors
    if not isinstance(raw, dict):
        errs.add("data", "expected a table with file = \"observations.csv\"")
        return None
    errs.unknown_keys("data", raw, ("file", "description", "notes", "source"), "a key of [data]")
    f = raw.get("file")
    if not isinstance(f, str) or not f:
        errs.add("data.file", f"expected the path of a CSV file (relative to the scenario), got {f!r}")
        return None
    path = Path(context.path).parent / f
    if not path.exists():
        errs.add("data.file", f"'{f}' not found (looked for {path})")
        return None
    return path


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
