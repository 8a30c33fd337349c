"""Global sensitivity of a per-patient outcome: PRCC or Sobol indices on typical patients.

A Latin hypercube over the chosen parameters' ranges (log-uniform where a range spans
more than a factor of 10), one *typical* patient per sample (no between-patient
variability, :func:`carkinetics.studies.typical_patients.simulate_typical`), and either
the partial rank correlation coefficient (PRCC) of each parameter with the per-patient
outcome, or Sobol indices (:mod:`carkinetics.stats.sensitivity_indices`). Every global
analysis samples an inert :data:`~carkinetics.stats.sensitivity_indices.DUMMY`
parameter, and a parameter is flagged ``significant`` only when its index is
distinguishable from the dummy's; warnings say when samples are few. Parameters that
cannot reach the outcome (:func:`carkinetics.studies.reachability.reachability`) are not
sampled.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from carkinetics.errors import suggestion
from carkinetics.stats.outcome import patient_values
from carkinetics.stats.sensitivity_indices import (DUMMY, GLOBAL_COLUMNS, SensitivityError, SensitivityWarning,
                                                   flag_significance, latin_hypercube, prcc_with_replicates, sobol)
from carkinetics.studies.reachability import outcome_ranges_and_reach
from carkinetics.studies.typical_patients import simulate_typical

#: Global methods.
GLOBAL_METHODS = ("prcc", "sobol")
#: Columns of :func:`global_sensitivity` (the pure
#: :func:`~carkinetics.stats.sensitivity_indices.prcc` and
#: :func:`~carkinetics.stats.sensitivity_indices.sobol` give :data:`GLOBAL_COLUMNS`).
GLOBAL_TABLE_COLUMNS = GLOBAL_COLUMNS + ["rank", "rank_lower", "rank_upper", "significant", "reachable", "note"]
#: PRCC rule of thumb: at least this many samples per sampled parameter (dummy included).
PRCC_SAMPLES_PER_PARAMETER = 10
#: Sobol: warn when the dummy's interval reaches beyond this (estimator noise, in units of
#: the output variance).
SOBOL_NOISE_LIMIT = 0.05
#: Sobol indices of a positive continuous outcome spanning more than this factor use its log10.
LOG_OUTCOME_FACTOR = 100.0
#: Default number of global samples (Latin-hypercube points for PRCC).
DEFAULT_SAMPLES = 4096
#: Default base samples for Sobol indices (a power of 2; ``n * (k + 3)`` typical patients).
DEFAULT_SOBOL_SAMPLES = 256


def global_sensitivity(scenario, outcome, parameters=None, *, method="prcc", n_samples=None, fold=None, seed=1,
                       jobs=None, arms=None, variables=None, n_boot=500, keep_unreachable=False, level=0.95,
                       transform="auto"):
    """Global sensitivity of a per-patient outcome to the parameters, on typical patients.

    Every analysis includes an inert parameter, :data:`DUMMY`, sampled like the others
    (uniform on [0, 1]) and never given to the model: its index is what sampling noise
    alone gives, and a parameter is flagged ``significant`` only when its index is
    distinguishable from the dummy's (:func:`flag_significance`). Parameters that cannot
    reach the outcome (:func:`reachability`: only in outputs the outcome does not read, or
    only in events after the outcome's day) are not sampled (they stay at their typical
    values) and are listed with ``reachable`` False, a NaN value and the reason in ``note``.

    Parameters
    ----------
    scenario : Scenario
    outcome : str or Outcome
        See :func:`parse_outcome`; the per-patient value is used (:func:`patient_values`).
    parameters, fold :
        See :func:`parameter_ranges`.
    method : {"prcc", "sobol"}
        PRCC over a Latin hypercube of ``n_samples`` points (default
        :data:`DEFAULT_SAMPLES`), or Sobol indices with ``n_samples`` base samples (a power
        of 2, default :data:`DEFAULT_SOBOL_SAMPLES`; ``n_samples * (k + 3)`` patients with
        the dummy).
    seed, jobs, arms, variables :
        As for :func:`carkinetics.cohort.pipeline.run_cohort`.
    n_boot : int
        Bootstrap resamples for the intervals (PRCC; at most 200 for Sobol).
    keep_unreachable : bool
        Sample the parameters that cannot reach the outcome too (still flagged).
    level : float
        Confidence level of the intervals.
    transform : {"auto", "log10", "none"}
        Sobol only (PRCC uses ranks): ``auto`` analyses ``log10`` of a continuous outcome
        whose values are positive and span more than :data:`LOG_OUTCOME_FACTOR`-fold
        (a few extreme values would otherwise dominate the variance).

    Sobol samples are all the typical patient of one cohort patient (the first of the
    first arm): the outcome must be a deterministic function of the parameters, so the
    arm and the random numbers of random events are the same for every sample. PRCC
    samples are cohort patients 0, 1, ... (arms and random events vary, as noise).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`GLOBAL_TABLE_COLUMNS`: parameter, index, value, lower, upper,
        p_value, rank (of ``|value|`` among the sampled parameters, 1 the largest; PRCC
        only), rank_lower, rank_upper (bootstrap interval of the rank), significant,
        reachable, note. ``attrs``: outcome, warnings (list of str), dummy_bound,
        significance (the rule), n_samples, excluded (parameter -> reason).
    """
    if method not in GLOBAL_METHODS:
        raise SensitivityError(f"method must be one of {list(GLOBAL_METHODS)}, got {method!r}"
                               f"{suggestion(str(method), GLOBAL_METHODS)}")
    out, ranges, reachable, reason = outcome_ranges_and_reach(scenario, outcome, parameters, fold, variables=variables,
                                                              arms=arms)
    names, lo, hi, log = _sampled_box(ranges, reachable, reason, keep_unreachable, out)
    k = len(names)
    all_names = names + [DUMMY]

    notes = []
    patient = _sobol_patient(scenario, seed, variables, arms, notes) if method == "sobol" else None

    def evaluate(X):
        table = simulate_typical(scenario, np.ascontiguousarray(X[:, :k]), names, seed=seed, jobs=jobs, arms=arms,
                                 variables=variables, patient=patient)
        return patient_values(table, out)

    boots = None
    if method == "prcc":
        n_samples = DEFAULT_SAMPLES if n_samples is None else int(n_samples)
        table, boots = _prcc_analysis(evaluate, lo, hi, log, all_names, n_samples, out, seed=seed, n_boot=n_boot,
                                      level=level, notes=notes)
    else:
        n_samples = DEFAULT_SOBOL_SAMPLES if n_samples is None else int(n_samples)
        table = _sobol_analysis(evaluate, lo, hi, log, all_names, n_samples, out, seed=seed, n_boot=n_boot,
                                level=level, transform=transform, notes=notes)
    table = flag_significance(table, level=level, boots=boots)
    if method == "sobol":
        _note_sobol_noise(table, n_samples, k, level, notes)
    table, excluded = _global_table(table, ranges, names, reason, reachable)
    table.attrs["outcome"] = out.label
    table.attrs["warnings"] = notes
    table.attrs["n_samples"] = n_samples
    table.attrs["excluded"] = excluded
    for note in notes:
        warnings.warn(note, SensitivityWarning, stacklevel=2)
    return table


def _sampled_box(ranges, reachable, reason, keep_unreachable, out):
    """Names of the sampled parameters, and the box (lower, upper, log) with the dummy's coordinate last."""
    sampled = ranges if keep_unreachable else ranges[ranges["parameter"].map(reachable)]
    names = sampled["parameter"].tolist()
    if not names:
        raise SensitivityError(f"none of the parameters can reach the outcome '{out.text}' "
                               f"({'; '.join(f'{p}: {r}' for p, r in reason.items())})")
    if DUMMY in names:
        raise SensitivityError(f"a parameter is called {DUMMY!r}, the name of the dummy parameter")
    # the dummy: one more coordinate, uniform on [0, 1], never given to the model
    lo = np.append(sampled["low"].to_numpy(float), 0.0)
    hi = np.append(sampled["high"].to_numpy(float), 1.0)
    log = np.append(sampled["log"].to_numpy(bool), False)
    return names, lo, hi, log


def _sobol_patient(scenario, seed, variables, arms, notes) -> int:
    """The cohort patient whose typical patient every Sobol sample is: the first of the first arm.

    The outcome must be a deterministic function of the parameters, so the arm and the random
    numbers of random events are those of one patient.
    """
    from carkinetics.scenario.sampling import cohort_design

    design = cohort_design(scenario, seed, variables=variables, arms=arms)
    first = np.flatnonzero(design.draw(0, 1024).arm == 0)
    if len(design.arm_names) > 1:
        notes.append(f"Sobol indices need a deterministic outcome: every sample is the typical patient of "
                     f"arm '{design.arm_names[0]}' only (the other arms: choose them with arms=)")
    return int(first[0]) if first.size else 0


def _prcc_analysis(evaluate, lo, hi, log, all_names, n_samples, out, *, seed, n_boot, level, notes):
    """PRCC over a Latin hypercube of ``n_samples`` points: (table, bootstrap replicates); notes appended."""
    k = len(all_names) - 1
    if n_samples < k + 4:
        raise SensitivityError(f"PRCC of {k} parameters and the dummy needs more than {k + 4} samples, "
                               f"got {n_samples}")
    X = latin_hypercube(lo, hi, n_samples, seed=seed, log=log)
    y = evaluate(X)
    table, boots = prcc_with_replicates(X, y, all_names, n_boot=n_boot, level=level, seed=seed)
    n_ok = int(np.isfinite(y).sum())
    if n_ok and np.nanmax(y) == np.nanmin(y):
        notes.append(f"the outcome is {np.nanmax(y):g} for every sample: no PRCC (widen the ranges or choose "
                     f"another outcome)")
    if n_ok < n_samples:
        notes.append(f"{n_samples - n_ok} of {n_samples} typical patients gave no value (failed simulation "
                     f"or censored before the day) and were left out")
    need = PRCC_SAMPLES_PER_PARAMETER * (k + 1)
    if n_ok < need:
        notes.append(f"few samples for PRCC: {n_ok} for {k} parameters and the dummy; rule of thumb "
                     f"n >= {PRCC_SAMPLES_PER_PARAMETER} x (parameters + 1) = {need} (raise --samples or "
                     f"choose fewer --parameters)")
    if out.kind == "binary" or (out.kind == "time" and out.statistic == "survival"):
        share = float(np.nanmean(y)) if n_ok else math.nan
        notes.append(f"the per-patient outcome is 0/1 (mean {share:.2f} over the samples): ranks are mostly "
                     f"ties and PRCC has little power; a continuous endpoint, if there is one, ranks more "
                     f"reliably")
    return table, boots


def _sobol_analysis(evaluate, lo, hi, log, all_names, n_samples, out, *, seed, n_boot, level, transform, notes):
    """Sobol indices with ``n_samples`` base samples (of log10 of the outcome, see ``transform``); notes appended."""
    if n_samples < 2 or n_samples & (n_samples - 1):
        raise SensitivityError(f"Sobol indices need a power of 2 base samples, got {n_samples}")

    log_scale = []  # decided on the first call (scipy evaluates A, then B, then the AB matrices)

    def func(X):
        y = evaluate(X)
        if not np.all(np.isfinite(y)):
            bad = int((~np.isfinite(y)).sum())
            raise SensitivityError(f"Sobol indices need a value for every sample; {bad} typical patients "
                                   f"gave none (failed simulation or censored before the day): use PRCC")
        if not log_scale:
            log_scale.append(transform == "log10" or (
                transform == "auto" and out.kind == "continuous" and np.all(y > 0)
                and y.max() > LOG_OUTCOME_FACTOR * y.min()))
        if log_scale[0]:
            if not np.all(y > 0):
                raise SensitivityError("Sobol indices of log10(outcome): some samples gave an outcome <= 0; "
                                       "use transform='none' or PRCC")
            y = np.log10(y)
        return y

    table = sobol(func, lo, hi, n=n_samples, names=all_names, seed=seed, log=log, n_boot=min(n_boot, 200),
                  level=level)
    if log_scale and log_scale[0]:
        notes.append(f"Sobol indices of log10({out.endpoint}): its values span more than "
                     f"{LOG_OUTCOME_FACTOR:g}-fold over the samples, and a few extreme values would dominate "
                     f"the variance")
    return table


def _note_sobol_noise(table, n_samples, k, level, notes):
    """Append a note when the Sobol indices look noisy (out of range, sum above 1, wide intervals)."""
    real = table[table["parameter"] != DUMMY]
    v = real["value"].to_numpy(float)
    half = (real["upper"] - real["lower"]).to_numpy(float) / 2
    first_sum = float(real.loc[real["index"] == "first_order", "value"].sum())
    widest = float(np.nanmax(half)) if np.isfinite(half).any() else math.nan
    if (np.any(v < -SOBOL_NOISE_LIMIT) or np.any(v > 1 + SOBOL_NOISE_LIMIT) or first_sum > 1 + SOBOL_NOISE_LIMIT
            or not widest <= SOBOL_NOISE_LIMIT):
        notes.append(f"noisy Sobol estimates ({n_samples} base samples for {k} parameters): indices from "
                     f"{np.nanmin(v):.3g} to {np.nanmax(v):.3g}, first-order sum {first_sum:.3g}, widest "
                     f"{level:.0%} half-interval {widest:.3g}; rule: indices within [-{SOBOL_NOISE_LIMIT:g}, "
                     f"1 + {SOBOL_NOISE_LIMIT:g}], first-order sum <= 1 + {SOBOL_NOISE_LIMIT:g}, half-intervals "
                     f"<= {SOBOL_NOISE_LIMIT:g}; raise --samples (a power of 2) or choose fewer --parameters")


def _global_table(table, ranges, names, reason, reachable):
    """The flagged table with columns reachable and note and a row per index of each parameter not
    sampled; and the parameters not sampled, with the reason."""
    import pandas as pd

    sig_attrs = {key: table.attrs[key] for key in ("dummy_bound", "significance")}
    table["reachable"] = [reachable.get(p, True) for p in table["parameter"]]
    table["note"] = [reason.get(p, "") if p != DUMMY else "inert: sampled, never given to the model"
                     for p in table["parameter"]]
    excluded = [p for p in ranges["parameter"] if p not in names]
    if excluded:
        indices = list(dict.fromkeys(table["index"]))
        extra = pd.DataFrame([{"parameter": p, "index": idx, "value": np.nan, "lower": np.nan, "upper": np.nan,
                               "p_value": np.nan, "rank": np.nan, "rank_lower": np.nan, "rank_upper": np.nan,
                               "significant": False, "reachable": False,
                               "note": f"not sampled: {reason[p]}"} for idx in indices for p in excluded])
        table = pd.concat([table, extra], ignore_index=True)
    table = table[GLOBAL_TABLE_COLUMNS].reset_index(drop=True)
    table.attrs = dict(sig_attrs)
    return table, {p: reason[p] for p in excluded}
