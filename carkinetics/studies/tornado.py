"""One-at-a-time (tornado) sensitivity of a cohort outcome.

The virtual cohort with one parameter's typical value at its low and then at its high
value (the model's ``bounds``, or a fold change around the typical value), every other
parameter as in the scenario, the same virtual patients each time (common random
numbers). The outcome is any cohort statistic of an endpoint
(:func:`carkinetics.studies.sensitivity_inputs.parse_outcome`).
"""

from __future__ import annotations

import math

from carkinetics.errors import ScenarioError
from carkinetics.stats.outcome import cohort_value
from carkinetics.studies.reachability import outcome_ranges_and_reach

TORNADO_COLUMNS = ["parameter", "typical", "low", "high", "outcome_low", "outcome_high", "baseline", "swing"]
TORNADO_TABLE_COLUMNS = TORNADO_COLUMNS + ["reachable", "note"]


def tornado(scenario, outcome, parameters=None, *, fold=None, n=200, seed=1, jobs=None, arms=None,
            variables=None, progress=None, keep_unreachable=False):
    """One-at-a-time sensitivity of a cohort outcome over each parameter's range.

    The cohort is simulated at the typical values (baseline), then with one
    parameter's typical value at its low and at its high value, the others unchanged,
    always with the same seed (common random numbers: the same virtual patients and
    between-patient variability in every run).

    Parameters
    ----------
    scenario : Scenario
    outcome : str or Outcome
        See :func:`parse_outcome`.
    parameters, fold :
        See :func:`parameter_ranges`.
    n : int
        Virtual patients per run (``2 * n_parameters + 1`` runs).
    seed, jobs, arms, variables :
        As for :func:`carkinetics.cohort.pipeline.run_cohort`.
    progress : callable(k_done, k_total), optional
    keep_unreachable : bool
        Also simulate the parameters that cannot reach the outcome (:func:`reachability`);
        by default they are not simulated: with common random numbers their swing is
        exactly 0, and their rows say so (``reachable`` False, the reason in ``note``).

    Returns
    -------
    pandas.DataFrame
        Columns parameter, typical, low, high, outcome_low, outcome_high, baseline,
        swing (``|outcome_high - outcome_low|``), reachable, note; sorted by swing
        (largest first); ``attrs["outcome"]`` holds the outcome's label.
    """
    from carkinetics.cohort.pipeline import run_cohort

    es = scenario.endpoints
    out, ranges, reachable, reason = outcome_ranges_and_reach(scenario, outcome, parameters, fold, variables=variables,
                                                              arms=arms)
    simulate_it = {p: keep_unreachable or reachable[p] for p in ranges["parameter"]}
    total = 2 * sum(simulate_it.values()) + 1

    problems = {}

    def value(overrides):
        if not overrides:
            res = run_cohort(scenario, n=n, seed=seed, jobs=jobs, arms=arms, variables=variables, bands=False)
            return cohort_value(res.patients, out, es)
        try:
            res = run_cohort(scenario, n=n, seed=seed, jobs=jobs, parameters=overrides, arms=arms,
                             variables=variables, bands=False)
        except ScenarioError as err:  # e.g. an [arms] expression of the value leaves the bounds
            (name, v), = overrides.items()
            problems.setdefault(name, []).append(f"{v:g}: {err}")
            return math.nan
        return cohort_value(res.patients, out, es)

    baseline = value({})
    done = 1
    if progress is not None:
        progress(done, total)
    rows = []
    for r in ranges.itertuples(index=False):
        note = reason[r.parameter]
        if simulate_it[r.parameter]:
            lo_v = value({r.parameter: r.low})
            hi_v = value({r.parameter: r.high})
            done += 2
            if progress is not None:
                progress(done, total)
        else:  # cannot change the outcome: the same patients give the baseline exactly
            lo_v = hi_v = baseline
            note = f"not simulated (outcome = baseline): {note}"
        if r.parameter in problems:
            note = "; ".join([f"cohort not simulated at {m}" for m in problems[r.parameter]] + ([note] if note else []))
        rows.append({"parameter": r.parameter, "typical": r.typical, "low": r.low, "high": r.high,
                     "outcome_low": lo_v, "outcome_high": hi_v, "baseline": baseline,
                     "swing": abs(hi_v - lo_v), "reachable": bool(reachable[r.parameter]), "note": note})
    import pandas as pd

    table = pd.DataFrame(rows, columns=TORNADO_TABLE_COLUMNS).sort_values("swing", ascending=False, kind="stable",
                                                                          na_position="last")
    table = table.reset_index(drop=True)
    table.attrs["outcome"] = out.label
    return table
