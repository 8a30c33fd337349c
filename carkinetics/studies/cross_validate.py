"""Leave-one-trial-out validation: ``carkinetics validate --cross-validate CALIBRATION``.

For each trial of a calibration, the calibration is refitted without that trial's targets,
and the trial is then predicted with the refitted values: every row of the table is out of
sample, except rows made by a constant of the scenario set by hand against that trial
(``hand_set``: their basis stays ``hand-set``; the refit does not touch those constants). A
trial is a seed arm (:func:`carkinetics.studies.baselines.trial_of`): the scenarios
whose targets belong to it are left out together, and a seed scenario outside the calibration
whose targets belong to it (the two-year follow-up ``LTFU-S2`` of ``S2``) is predicted by the
same refit. A product-specific estimate whose product has no target left cannot be fitted: it
takes the model file's value (not the value fitted with the left-out trial, which would leak it).

Each refit starts from the values the scenarios read, with the calibration's objective and a
budget given here (``maxiter``, ``starts``): a left-out fit from the full fit's optimum, with a
small budget, is biased towards that optimum, and so towards the left-out trial; the record says
which budget was used.

A calibration in stages (the T-ALL kinetics, then the clinical outcome links with the kinetics
fixed) is cross-validated as a chain: in each fold every stage is refitted without the trial,
each later stage with the earlier stages' refitted values fixed, so that no stage keeps what it
learnt from the left-out trial.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def _trial_of_scenario(scenario, reference) -> str:
    """The trial of a scenario's outcome targets (the most common one)."""
    from carkinetics.studies.baselines import trial_of

    by_id = reference.set_index("target_id")
    trials = [trial_of(by_id.loc[t, "arm"], by_id.loc[t, "trial"]) for t in scenario.target_specs
              if t in by_id.index]
    return max(set(trials), key=trials.count) if trials else scenario.name


def folds(cal, reference, extra_scenarios=()):
    """Trial -> (the calibration's scenarios of that trial, the extra scenarios of that trial).

    Parameters
    ----------
    cal : Calibration
    reference : pandas.DataFrame
    extra_scenarios : sequence of Scenario
        Seed scenarios outside the calibration; those of one of its trials are predicted with
        that trial's refit, the others are not part of the cross-validation.
    """
    out = {}
    for scenarios in cal.products.values():
        for sc in scenarios:
            if any(t.scenario is sc for t in cal.targets):
                out.setdefault(_trial_of_scenario(sc, reference), ([], []))[0].append(sc)
    for sc in extra_scenarios:
        trial = _trial_of_scenario(sc, reference)
        if trial in out and all(sc.path.resolve() != s.path.resolve() for s in out[trial][0]):
            out[trial][1].append(sc)
    return out


def without_trial(cal, scenarios):
    """The calibration without the targets of ``scenarios`` and without the estimates that lose all targets.

    Returns
    -------
    (Calibration, dict)
        The reduced calibration and ``label -> model file value`` of the estimates dropped.
    """
    left_out = {id(sc) for sc in scenarios}
    targets = [t for t in cal.targets if id(t.scenario) not in left_out]
    products_with_targets = {t.product for t in targets}
    keep, dropped = [], {}
    for e in cal.estimates:
        if e.product is None or e.product in products_with_targets:
            keep.append(e)
        else:
            dropped[e.label] = float(cal.model.parameter(e.parameter).value)
    return dataclasses.replace(cal, targets=targets, estimates=keep), dropped


def product_of(cal, scenario) -> str | None:
    """The product whose scenarios include ``scenario`` (by path), or None."""
    for product, scenarios in cal.products.items():
        if any(s.path.resolve() == scenario.path.resolve() for s in scenarios):
            return product
    return None


def cross_validate(cal, reference, *, extra_scenarios=(), n=None, seed=1, jobs=None, fit_n=None, maxiter=None,
                   starts=1, progress=None):
    """Refit the calibration without each trial in turn and predict that trial.

    Parameters
    ----------
    cal : Calibration or sequence of Calibration
        One calibration, or its stages in order (each later stage fitted with the earlier
        stages' values fixed; the folds are the trials of the last stage).
    reference : pandas.DataFrame
    extra_scenarios : sequence of Scenario
        Other seed scenarios (predicted with the refit of their trial, if it has one).
    n, seed, jobs :
        Virtual patients, seed and threads of the predictions (as ``validate``).
    fit_n, maxiter, starts :
        Patients per scenario, Nelder-Mead iterations per estimate and optimiser runs of each
        refit (default: the calibration file's).
    progress : callable(str), optional

    Returns
    -------
    (table, fits) : (pandas.DataFrame, pandas.DataFrame)
        ``table``: validation rows of every left-out trial (columns of ``validate`` plus
        ``left_out``), scored against the naive baselines; ``fits``: one row per fold and stage
        (trial, stage, scenarios, objective before and after, evaluations, seconds, estimates,
        estimates dropped to the model file's value).
    """
    import pandas as pd

    from carkinetics.studies.baselines import score_rows
    from carkinetics.studies.validate import validate_scenario

    stages = list(cal) if isinstance(cal, (list, tuple)) else [cal]
    last = stages[-1]
    tables, fit_rows = [], []
    for trial, (scenarios, extra) in folds(last, reference, extra_scenarios).items():
        values = {}
        for stage in stages:
            fit_rows.append(_refit_stage(stage, values, trial, reference, fit_n, starts, maxiter, jobs, progress))
        for sc in scenarios + extra:
            product = product_of(last, sc) or product_of(last, scenarios[0])
            t = validate_scenario(sc, reference, n=n or 1000, seed=seed, jobs=jobs,
                                  parameters=dict(values.get(product, {})))
            t.insert(1, "left_out", trial)
            # a row made by a constant set by hand against this very trial is not out of sample
            t["basis"] = np.where(t["role"] == "input", "input",
                                  np.where(t["hand_set"].fillna("") != "", "hand-set", "cross-validated"))
            tables.append(t)
    if not tables:
        raise ValueError(f"{last.path}: no trial to leave out (no scenario with targets)")
    table = score_rows(pd.concat(tables, ignore_index=True), reference)
    return table, pd.DataFrame(fit_rows)


def _refit_stage(stage, values, trial, reference, fit_n, starts, maxiter, jobs, progress) -> dict:
    """Refit one stage without ``trial`` (earlier stages' ``values`` fixed); add its values to ``values``
    (product -> parameter values, updated in place) and return its row of ``folds.csv``."""
    from carkinetics.studies.calibrate import CalibrationError, calibrate

    scenarios = folds(stage, reference).get(trial, ([], []))[0]
    reduced, dropped = without_trial(dataclasses.replace(stage, fixed_values={p: dict(v) for p, v in values.items()}),
                                     scenarios)
    if not reduced.targets or not reduced.estimates:
        raise CalibrationError(f"{stage.path}: leaving out trial {trial} ({', '.join(s.name for s in scenarios)}) "
                               f"leaves nothing to fit: cross-validation needs at least two trials")
    if progress is not None:
        progress(f"fold {trial}, {stage.name}: refitting without {', '.join(s.name for s in scenarios) or 'none'}")
    res = calibrate(reduced, n=fit_n, starts=starts, maxiter=maxiter, jobs=jobs)
    for product in stage.products:
        over = reduced.overrides(res.x, product)
        for label, value in dropped.items():
            e = next(e for e in stage.estimates if e.label == label)
            if e.applies_to(product):
                over[e.parameter] = value
        values[product] = {**values.get(product, {}), **over}
    return {"left_out": trial, "stage": stage.name, "scenarios": ",".join(s.name for s in scenarios),
            "objective_initial": res.objective_initial, "objective": res.objective,
            "n_evaluations": res.n_evaluations, "seconds": res.seconds,
            **{f"estimate:{k}": v for k, v in res.estimates.items()},
            **{f"model_file:{k}": v for k, v in dropped.items()}}


def loto_summary(table):
    """The out-of-sample score sums by category (:func:`carkinetics.studies.baselines.score_summary`):
    the cross-validated rows, not the hand-set ones."""
    from carkinetics.studies.baselines import score_summary

    return score_summary(table, basis=["cross-validated"])


#: Files of ``carkinetics validate --cross-validate -o``.
CROSS_VALIDATION_FILES = ("validation.csv", "folds.csv", "validation.png", "validation.json")


def run_cross_validation(calibration, *, n=1000, seed=1, jobs=None, output=None, fit_n=None, maxiter=None, starts=1,
                         progress=None):
    """Leave-one-trial-out validation of a calibration file; write its files to ``output``.

    Parameters
    ----------
    calibration : path or sequence of paths
        A calibration file (:func:`carkinetics.studies.calibration_file.load_calibration`), or the
        files of its stages in order.
    n, seed, jobs, fit_n, maxiter, starts, progress :
        As :func:`cross_validate`.
    output : path, optional
        Folder for :data:`CROSS_VALIDATION_FILES` (written atomically; an earlier run's files
        there are replaced, a folder with other files is refused before anything runs).

    Returns
    -------
    (table, fits) : tuple of pandas.DataFrame
    """
    from pathlib import Path

    from carkinetics.io.atomic import atomic_output_dir, check_output_dir
    from carkinetics.io.provenance import file_sha256, provenance
    from carkinetics.io.results import write_json
    from carkinetics.plots.cohort import save_figure
    from carkinetics.plots.validation import plot_validation
    from carkinetics.scenario.load import load_scenario
    from carkinetics.scenario.reference import load_targets
    from carkinetics.studies.calibration_file import load_calibration
    from carkinetics.studies.validate import seed_scenarios, verdict_counts

    if output is not None:
        check_output_dir(output, clean=True, known=CROSS_VALIDATION_FILES)
    paths = list(calibration) if isinstance(calibration, (list, tuple)) else [calibration]
    stages = [load_calibration(p) for p in paths]
    cal = stages[-1]
    reference = load_targets(cal.reference_path)
    inside = {sc.path.resolve() for stage in stages for scs in stage.products.values() for sc in scs}
    extra = [load_scenario(p) for p in seed_scenarios() if Path(p).resolve() not in inside]
    table, fits = cross_validate(stages, reference, extra_scenarios=extra, n=n, seed=seed, jobs=jobs, fit_n=fit_n,
                                 maxiter=maxiter, starts=starts, progress=progress)
    if output is not None:
        with atomic_output_dir(output, clean=True, known=CROSS_VALIDATION_FILES) as staging:
            table.to_csv(staging / "validation.csv", index=False)
            fits.to_csv(staging / "folds.csv", index=False)
            save_figure(plot_validation(table, title=f"carkinetics validate --cross-validate {cal.name}"),
                        staging / "validation", ("png",))
            write_json(staging / "validation.json", {
                "kind": "leave-one-trial-out cross-validation", "calibration_file": str(cal.path),
                "calibration_sha256": file_sha256(cal.path), "objective": cal.objective, "n": n, "seed": seed,
                "stages": [{"file": str(st.path), "sha256": file_sha256(st.path), "estimates": st.labels}
                           for st in stages],
                "refit": {"patients_per_scenario": fit_n or cal.n, "maxiter": maxiter or cal.maxiter,
                          "starts": starts},
                "counts": verdict_counts(table),
                "scores_out_of_sample": loto_summary(table).to_dict(orient="records"),
                "folds": fits.to_dict(orient="records"), "provenance": provenance()})
    return table, fits
