"""Validation against reported numbers: what ``carkinetics validate`` does.

A seed scenario says which reported numbers (rows of the reference target table,
``carkinetics/reference/targets.csv``) it must reproduce, and how each is computed from
its virtual cohort, in a ``[targets]`` section::

    [targets.s2_cr]                  # a target_id of the reference table
    endpoint = "cr_d28"              # a column of the per-patient endpoint table
    statistic = "proportion"         # default: the reference row's statistic
    arm = "hsct"                     # optional: only patients of this arm (or a list of arms)
    among = "cr_d28"                 # optional: only patients in whom this binary column is 1
    time = 365                       # km_estimate / cumulative_incidence: day (default: the row's)
    role = "input"                   # a protocol input (how many got which dose, who got a
                                     # transplant): shown, but not an outcome verdict
    hand_set = "icans_at_reference 0.15"  # the constants of this scenario, set by hand for this
                                     # trial, that make the row: it is in sample, not a prediction

Statistics: ``proportion`` (mean of a 0/1 column), ``km_estimate`` (Kaplan-Meier
survival at ``time`` from ``NAME``/``NAME_event``), ``cumulative_incidence`` (fraction
with the event by ``time``; the virtual cohort has no loss to follow-up, so this equals
one minus Kaplan-Meier when the event is the only one that ends follow-up), ``median``
(Kaplan-Meier median for a time-to-event column, else the sample median), ``mean``,
``geometric_mean``.

The Monte Carlo interval is the 95% interval of the simulated statistic due to the
finite virtual cohort (Wilson for proportions, Greenwood log-log for Kaplan-Meier,
order statistics for medians), so it shrinks as ``--n`` grows; the verdict compares the
simulated *value* with the *reported* 95% interval.

Each row also has a **basis** (:data:`BASES`: input, hand-set, fitted by the calibration that
made the scenario's parameter set, or predicted), a naive baseline (the pooled rate of the same
quantity in the other trials) and the binomial log-likelihood and Brier score of the reported
numbers under the model, that baseline and a constant (:mod:`carkinetics.studies.baselines`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from carkinetics.errors import ScenarioError, suggestion
from carkinetics.studies.baselines import score_rows, score_summary
from carkinetics.scenario.reference import FRACTION_STATISTICS
from carkinetics.scenario.targets import TargetSpec, check_target_ids
from carkinetics.stats.intervals import mean_interval, wilson_interval
from carkinetics.stats.km import kaplan_meier
from carkinetics.stats.quantiles import quantile_interval


# ----------------------------------------------------------------------------------------
# statistics of a virtual cohort
# ----------------------------------------------------------------------------------------


def cohort_statistic(patients, spec: TargetSpec, statistic: str, time: float | None):
    """Simulated value and Monte Carlo 95% interval of one target statistic.

    Parameters
    ----------
    patients : pandas.DataFrame
        The per-patient endpoint table of a virtual cohort (``arm`` column and endpoint
        columns; time-to-event endpoints as ``NAME`` and ``NAME_event``).
    spec : TargetSpec
    statistic : str
        One of :data:`~carkinetics.scenario.targets.COHORT_STATISTICS`.
    time : float or None
        The day for ``km_estimate`` and ``cumulative_incidence``.

    Returns
    -------
    (value, lower, upper, n) : tuple
    """
    df = target_patients(patients, spec)
    n = len(df)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    x = df[spec.endpoint].to_numpy(dtype=float)
    event_col = f"{spec.endpoint}_event"
    has_event = event_col in df.columns
    if statistic == "proportion":  # patients without a value (NaN: not applicable) are not in the denominator
        known = ~np.isnan(x)
        n = int(known.sum())
        if n == 0:
            return math.nan, math.nan, math.nan, 0
        k = float(x[known].sum())
        return (k / n, *wilson_interval(k, n), n)
    if statistic in ("km_estimate", "cumulative_incidence"):
        if not has_event:
            raise ValueError(f"'{spec.endpoint}' is not a time-to-event endpoint (no '{event_col}' column)")
        if time is None:
            raise ValueError("a day is needed ('time')")
        ev = df[event_col].to_numpy(dtype=float)
        if statistic == "cumulative_incidence":
            k = float(np.sum((ev == 1) & (x <= time)))
            return (k / n, *wilson_interval(k, n), n)
        km = kaplan_meier(x, ev)
        s, lo, hi = km.at(time)
        return float(s), float(lo), float(hi), n
    if statistic == "median":
        if has_event:
            km = kaplan_meier(x, df[event_col].to_numpy(dtype=float))
            m, lo, hi = km.median()
            return float(m), float(lo), float(hi), n
        m, lo, hi = quantile_interval(x, 0.5)
        return float(m), float(lo), float(hi), n
    if statistic == "mean":
        m, lo, hi = mean_interval(x)
        return m, lo, hi, n
    if statistic == "geometric_mean":
        m, lo, hi = mean_interval(x[x > 0], geometric=True)
        return m, lo, hi, n
    raise ValueError(f"unknown statistic '{statistic}'")


def target_patients(patients, spec):
    """The patients a target is read from: solved, of its arms, and among its ``among`` group."""
    df = patients
    if "status" in df.columns:
        df = df[df["status"] == 0]
    if spec.arms is not None:
        df = df[df["arm"].isin(spec.arms)]
    if spec.among is not None:
        df = df[df[spec.among].to_numpy() == 1]
    return df


#: Days per unit of a reported time (``unit`` column of the reference table); days are compared as they are.
TIME_UNITS = {"week": 7.0, "weeks": 7.0, "month": 30.4375, "months": 30.4375, "year": 365.25, "years": 365.25}


def time_unit_days(unit):
    """Days per ``unit`` for a reported time in weeks, months or years (30.4375 days a month); None otherwise."""
    return TIME_UNITS.get(str(unit).strip().lower()) if isinstance(unit, str) else None


def median_not_reached_by(patients, spec):
    """The last day a time-to-event target's cohort is followed, if its Kaplan-Meier median is not reached.

    None when the endpoint is not time-to-event, or the median is reached.
    """
    event_col = f"{spec.endpoint}_event"
    df = target_patients(patients, spec)
    if event_col not in df.columns or df.empty:
        return None
    km = kaplan_meier(df[spec.endpoint].to_numpy(dtype=float), df[event_col].to_numpy(dtype=float))
    if not math.isnan(km.median()[0]):
        return None
    return float(np.max(df[spec.endpoint].to_numpy(dtype=float)))


# ----------------------------------------------------------------------------------------
# validation runs
# ----------------------------------------------------------------------------------------

_COLUMNS = ["scenario", "target_id", "arm", "quantity", "role", "basis", "hand_set", "statistic", "timepoint_days",
            "reported", "reported_lower", "reported_upper", "simulated", "mc_lower", "mc_upper",
            "n_simulated", "inside", "evidence", "note", "n_reported", "trial_lower", "trial_upper"]


def seed_scenarios() -> list[Path]:
    """The shipped scenarios that declare ``[targets]`` (the seed trials)."""
    from carkinetics.errors import CarKineticsError
    from carkinetics.model.load import model_search_paths
    from carkinetics.scenario.load import read_toml

    found = {}
    for models_dir in model_search_paths():
        folder = models_dir.parent / "scenarios"
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            if path.name in found:
                continue
            try:
                data = read_toml(path)
            except CarKineticsError:  # unreadable or malformed: not a seed scenario
                continue
            if isinstance(data.get("targets"), dict):
                found[path.name] = path
    return [found[k] for k in sorted(found)]


def validate_scenario(scenario, reference, n=2000, seed=1, jobs=None, progress=None, parameters=None):
    """Run one seed scenario's virtual cohort and compare it with its reported numbers.

    Parameters
    ----------
    scenario : Scenario
        A loaded scenario with a ``[targets]`` section.
    reference : pandas.DataFrame
        The reference target table (:func:`carkinetics.scenario.reference.load_targets`).
    n, seed, jobs :
        Virtual cohort size, seed and number of threads.
    parameters : dict, optional
        Parameter values applied on top of the scenario's (as ``run_cohort``'s).

    Returns
    -------
    pandas.DataFrame
        One row per target (columns: see ``_COLUMNS``).
    """
    import pandas as pd

    from carkinetics.cohort.pipeline import run_cohort

    check_target_ids(scenario, reference)
    specs = scenario.target_specs
    by_id = reference.set_index("target_id")
    fitted = fitted_target_ids(scenario)
    result = run_cohort(scenario, n=n, seed=seed, jobs=jobs, bands=False, progress=progress, parameters=parameters)
    patients = result.patients
    rows = []
    for tid, spec in specs.items():
        ref = by_id.loc[tid]
        statistic = spec.statistic or str(ref["statistic"])
        time = spec.time if spec.time is not None else as_float(ref.get("timepoint_days"))
        missing = [c for c in (spec.endpoint, spec.among) if c and c not in patients.columns]
        if missing:
            raise ScenarioError(scenario.path, [f"targets.{tid}: '{c}' is not an endpoint column of this scenario"
                                                f"{suggestion(c, list(patients.columns))}" for c in missing])
        try:
            value, lo, hi, n_sim = cohort_statistic(patients, spec, statistic, time)
        except ValueError as err:
            raise ScenarioError(scenario.path, [f"targets.{tid}: {err}"]) from None
        r_lo, r_hi = as_float(ref.get("lower")), as_float(ref.get("upper"))
        days_per_unit = time_unit_days(ref.get("unit")) if statistic == "median" else None
        note = spec.note
        if days_per_unit is not None:  # a median time reported in weeks, months or years: compared in that unit
            value, lo, hi = value / days_per_unit, lo / days_per_unit, hi / days_per_unit
        inside = (bool(r_lo - 1e-12 <= value <= r_hi + 1e-12)
                  if math.isfinite(r_lo) and math.isfinite(r_hi) and math.isfinite(value) else None)
        if statistic == "median" and math.isnan(value) and math.isfinite(r_hi) and n_sim:
            reached = median_not_reached_by(patients, spec)
            if reached is not None and reached / (days_per_unit or 1.0) >= r_hi:  # still above 1/2 past the interval
                inside = False
                note = "; ".join(x for x in (note, f"median not reached by day {reached:g} (the last day followed): "
                                             f"above the reported interval") if x)
        rows.append({
            "scenario": scenario.name, "target_id": tid, "arm": ref.get("arm"), "quantity": ref.get("quantity"),
            "role": spec.role, "basis": basis_of(spec, fitted), "hand_set": spec.hand_set, "statistic": statistic, "timepoint_days": time, "reported": as_float(ref["value"]),
            "reported_lower": r_lo, "reported_upper": r_hi, "simulated": value, "mc_lower": lo, "mc_upper": hi,
            "n_simulated": n_sim, "inside": inside, "evidence": ref.get("evidence"),
            "note": note, "n_reported": as_float(ref.get("n")),
            **dict(zip(("trial_lower", "trial_upper"), trial_interval(statistic, value, as_float(ref.get("n"))))),
        })
    return pd.DataFrame(rows, columns=_COLUMNS)


#: What a row's agreement with the model is evidence of, from the weakest to the strongest.
BASES = {
    "input": "a protocol input (how many got which dose or a transplant): no verdict",
    "hand-set": "made by constants of the scenario set by hand for this trial (named in 'hand_set'): in sample",
    "fitted": "a target of the calibration that made the scenario's parameter set: in sample",
    "predicted": "neither fitted nor hand-set: a prediction",
}


def basis_of(spec: TargetSpec, fitted) -> str:
    """The :data:`BASES` key of one target: input, hand-set, fitted or predicted (first that applies)."""
    if spec.role == "input":
        return "input"
    if spec.hand_set:
        return "hand-set"
    return "fitted" if spec.target_id in fitted else "predicted"


def fitted_target_ids(scenario) -> set:
    """Target ids the scenario's parameter sets were fitted to.

    A parameter set written by ``carkinetics calibrate`` lies beside the record of its fit;
    ``comparison.csv`` there lists every target of the calibration with its weight; so does the
    record of the calibration of the model's clinical outcome links (``[outcome_model]
    calibration`` of its outcome-parameter file). Targets of
    weight 0 and parameter sets without that record count as not fitted.
    """
    import pandas as pd

    ids = set()
    records = [Path(path).parent / "comparison.csv" for path in getattr(scenario, "parameter_sets", ())]
    outcome_record = getattr(getattr(scenario, "model", None), "outcome_calibration", None)
    if outcome_record is not None:  # the clinical outcome links' own calibration (its targets are fitted too)
        records.append(Path(outcome_record) / "comparison.csv")
    for record in records:
        if not record.is_file():
            continue
        try:
            comp = pd.read_csv(record, usecols=lambda c: c in ("target_id", "weight"))
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise ScenarioError(scenario.path, [f"scenario.parameter_set: the record of its fit, {record}, "
                                                f"cannot be read: {err}"]) from None
        if "target_id" not in comp.columns:
            raise ScenarioError(scenario.path, [f"scenario.parameter_set: {record} has no 'target_id' column"])
        weight = comp["weight"].astype(float) if "weight" in comp.columns else 1.0
        ids.update(comp.loc[weight > 0, "target_id"].astype(str))
    return ids


def trial_interval(statistic, simulated, n_reported, level=0.95) -> tuple[float, float]:
    """The range a trial of ``n_reported`` patients would report (central ``level``), if the model is right.

    For a fraction (proportion, Kaplan-Meier estimate, cumulative incidence) with a reported
    denominator: the quantiles of Binomial(n, simulated) / n. A Kaplan-Meier estimate is
    treated as a proportion of n (no censoring before the day: the interval is then a little
    narrow). NaN for other statistics or without a denominator.

    >>> trial_interval("proportion", 0.5, 20)
    (0.3, 0.7)
    """
    from scipy.stats import binom

    if (statistic not in FRACTION_STATISTICS or not math.isfinite(simulated) or not math.isfinite(n_reported)
            or n_reported < 1):
        return math.nan, math.nan
    n = int(round(n_reported))
    p = min(1.0, max(0.0, simulated))
    tail = (1.0 - level) / 2.0
    return float(binom.ppf(tail, n, p) / n), float(binom.ppf(1.0 - tail, n, p) / n)


def as_float(v) -> float:
    """A cell of the reference table as a float; NaN when it is blank or not a number.

    Parameters
    ----------
    v : object

    Returns
    -------
    float
    """
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def verdict_counts(table) -> dict:
    """Outcome rows inside / outside / without a reported interval."""
    out = table[table["role"] == "outcome"]
    inside = int((out["inside"] == True).sum())  # noqa: E712 (object column with None)
    outside = int((out["inside"] == False).sum())  # noqa: E712
    counts = {"outcome_rows": len(out), "inside": inside, "outside": outside,
              "no_interval": len(out) - inside - outside, "inputs": int((table["role"] == "input").sum())}
    if "basis" in out.columns:
        counts["by_basis"] = {b: {"rows": int((out["basis"] == b).sum()),
                                  "inside": int(((out["basis"] == b) & (out["inside"] == True)).sum())}  # noqa: E712
                              for b in BASES if b != "input"}
    return counts


#: Files of ``carkinetics validate -o``.
VALIDATION_FILES = ("validation.csv", "validation.png", "validation.json")


def run_validation(paths=None, n=2000, seed=1, jobs=None, output=None, progress_factory=None, overrides=None,
                   reference=None):
    """Validate seed scenarios; write ``validation.csv``, ``validation.png`` and ``validation.json``
    to ``output``.

    The output folder belongs to the validation: the files of an earlier run there are replaced or
    removed, and a folder holding files carkinetics did not write is refused before anything is
    simulated (:class:`carkinetics.io.atomic.OutputError`).

    Parameters
    ----------
    paths : list of path, optional
        Scenario files (default: :func:`seed_scenarios`).
    n, seed, jobs : int
        Virtual patients per scenario, seed and threads.
    output : path, optional
        The folder for the files.
    progress_factory : callable, optional
        ``progress_factory(scenario, n)`` gives one cohort's progress callback.
    overrides : dict of str to float, optional
        Values set as with ``--set``, applied to every scenario
        (:func:`~carkinetics.scenario.overrides.apply_overrides`); recorded in ``validation.json``.
    reference : path, optional
        A reference target table (:func:`~carkinetics.scenario.reference.load_targets` format)
        that replaces the shipped one: the scenarios' target ids (``[targets.ID]`` and
        ``[scenario] targets``) are checked against it, and their rows are scored with its values.

    Returns
    -------
    pandas.DataFrame
        The combined table.
    """
    import pandas as pd

    from carkinetics.io.atomic import atomic_output_dir, check_output_dir
    from carkinetics.io.provenance import file_sha256, provenance
    from carkinetics.io.results import write_json
    from carkinetics.plots.cohort import save_figure
    from carkinetics.plots.validation import plot_validation
    from carkinetics.scenario.load import load_scenario
    from carkinetics.scenario.overrides import apply_overrides
    from carkinetics.scenario.reference import load_targets, reference_table

    if output is not None:
        check_output_dir(output, clean=True, known=VALIDATION_FILES)
    table_path = None if reference is None else Path(reference)
    reference = load_targets(table_path)
    paths = [Path(p) for p in paths] if paths else seed_scenarios()
    if not paths:
        raise ScenarioError(Path("scenarios"), ["no scenario with a [targets] section was found"])
    with reference_table(table_path):  # all inputs checked before anything runs
        scenarios = [apply_overrides(load_scenario(p), overrides) for p in paths]
    for sc in scenarios:
        check_target_ids(sc, reference)
    tables = []
    for sc in scenarios:
        progress = progress_factory(sc, n) if progress_factory else None
        try:
            tables.append(validate_scenario(sc, reference, n=n, seed=seed, jobs=jobs,
                                            progress=progress))
        finally:
            if progress is not None and hasattr(progress, "close"):
                progress.close()
    table = score_rows(pd.concat(tables, ignore_index=True), reference)
    if output is not None:
        with atomic_output_dir(output, clean=True, known=VALIDATION_FILES) as staging:
            table.to_csv(staging / "validation.csv", index=False)
            save_figure(plot_validation(table), staging / "validation", ("png",))
            write_json(staging / "validation.json", {
                "scenarios": [str(p) for p in paths], "n": n, "seed": seed, "overrides": dict(overrides or {}),
                "reference": {"path": reference.attrs["path"], "sha256": file_sha256(reference.attrs["path"])},
                "counts": verdict_counts(table),
                "scores": {"what": "binomial log-likelihood (sum) and Brier score (mean) of the reported k of n, "
                                   "outcome rows with a pooled baseline; see carkinetics.studies.baselines",
                           "all_rows": score_summary(table).to_dict(orient="records"),
                           "predicted_rows": score_summary(table, basis=["predicted"]).to_dict(orient="records")},
                "provenance": provenance()})
    return table
