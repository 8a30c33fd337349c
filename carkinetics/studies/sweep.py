"""Sweeps: a virtual cohort at every point of a protocol grid, aggregated as it streams.

A scenario's ``[sweep]`` section names the grid. Each axis is one protocol choice::

    [sweep]
    n = 2000                 # virtual patients per grid point (run_cohort's n)
    seed = 20240601
    per_patient = false      # also keep each point's per-patient table (large)
    km_step = 7              # days between Kaplan-Meier summary times (default 7)

    [sweep.axes]
    dose_per_kg = [5e5, 1e6, 2e6]          # a [variables] entry of the scenario
    transplant_day = [30, 45, 60, "none"]  # "none": the event timed by it never happens
    editing_efficiency = [0.9, 0.99]       # a model parameter (its typical value)
    arm = ["previous_donor", "new_donor"]  # arms of the scenario, one per point

    [sweep.axes.product]                   # named option sets of parameters / variables
    cd7 = { fratricide_rate = 0.02 }
    cd5 = { fratricide_rate = 0.005 }

    [sweep.plots]                          # optional: what `carkinetics plot` draws
    x = "dose_per_kg"
    lines = "arm"
    outcomes = ["cr_d28", "antigen_negative_relapse", "prolonged_aplasia", "os"]

Every combination of axis values is a grid point (the first axis varies slowest; point ``i``
is decoded from its id, so ``points=[...]`` builds only those points). A grid may have at
most :data:`MAX_GRID_POINTS` points (checked from the axis lengths when the scenario is
read). At each
point :func:`carkinetics.cohort.pipeline.run_cohort` simulates ``n`` virtual patients with the
point's variables, parameter values and arm; only the point's summary (outcome
probabilities with Wilson 95% intervals, quantiles, Kaplan-Meier summaries on a fixed time
grid) is kept, so memory does not grow with the grid and the per-patient table of one
point is freed before the next starts.

**Common random numbers.** Every point uses the same seed, so the same virtual patients
(covariates, between-patient variability, the uniforms behind hazard events) are treated
at every point: differences between points are due to the protocol, not to sampling, and
comparisons between neighbouring points are far more precise than two independent cohorts
of the same size would be.

**"none".** A variable axis may hold the string ``"none"``: the variable is then set to
:data:`NEVER` (a time long after any horizon), so an event whose time is that variable
never happens. This is only accepted for variables used as an event time.

**On disk** (one folder per sweep)::

    grid.csv            point + one column per axis (labels as written: numbers, "none", option names);
                        the points asked for (all of them unless ``points`` was given) and those finished
    summary.csv         point, arm, endpoint, statistic, value, lower, upper, n
    km.csv              point, arm, endpoint, time, survival, lower, upper, n_at_risk, n
    points/<id>/        summary.csv and km.csv of that point; patients.csv.gz when asked
    sweep.json          provenance, the inputs (each file with its SHA-256) and settings, which points
                        are finished, and the command that resumes the sweep
    figures/            written by `carkinetics plot` (and at the end of `carkinetics sweep`)

With ``table_format="parquet"`` (``--format parquet``; needs pyarrow) the summary, Kaplan-Meier
and per-patient tables are Parquet files (``summary.parquet``, ``km.parquet``,
``points/<id>/patients.parquet``); ``grid.csv`` stays CSV.

Each finished point is written atomically (staged, then renamed) before ``sweep.json``
records it, so an interrupted sweep keeps what finished and ``resume=True`` continues.
``sweep.json`` (and ``grid.csv``) are written once the first point has finished: a sweep that
fails before that leaves nothing a corrected rerun would have to resume. A resume is refused,
naming the input, unless the scenario, model, parameter-set and data files (SHA-256), the
grid, n, seed, per-patient tables, Kaplan-Meier days and carkinetics version are unchanged.

:class:`~carkinetics.studies.sweep_result.SweepResult` and the reading and writing of the folder are in
:mod:`carkinetics.studies.sweep_result`; running the points on Dask in :mod:`carkinetics.studies.dask`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time as _time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from carkinetics.errors import ScenarioError, is_whole_number
from carkinetics.io.atomic import atomic_write_text, register_outputs
from carkinetics.io.provenance import file_sha256, provenance
from carkinetics.io.results import write_json
from carkinetics.scenario.overrides import apply_overrides, check_not_swept
from carkinetics.progress import Progress
from carkinetics.scenario.grid import MAX_SEED, GridPoint, SweepError, check_grid_size, max_patients
from carkinetics.studies.dask import run_dask
from carkinetics.studies.sweep_result import (KM_COLUMNS, SUMMARY_COLUMNS, SweepResult, check_output_folder,
                                              grid_frame, holds_only_sweep_files, load_sweep, previous_sweep,
                                              remove_stale_staging, write_combined, write_point)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from carkinetics.scenario.load import Scenario


#: Days always in the Kaplan-Meier summary grid (when within follow-up): months 1, 2, 3, 6,
#: one and two years, at 30.4375 days per month for the months (as in the reference table)
#: and 365 / 730 for the years.
KM_LANDMARK_DAYS = (28.0, 30.0, 60.0, 90.0, 91.3125, 182.625, 183.0, 365.0, 730.0)


def km_time_grid(horizon, step=7.0, extra=()) -> np.ndarray:
    """Days at which Kaplan-Meier curves are summarised.

    0, step, 2 step, ..., the horizon, the landmark days :data:`KM_LANDMARK_DAYS` and
    ``extra`` (e.g. the endpoints' ``report_at`` days), all within follow-up.

    Parameters
    ----------
    horizon : float
        Follow-up (day).
    step : float, optional
        Days between regular summary times.
    extra : array_like, optional
        More days.

    Returns
    -------
    numpy.ndarray
        Sorted unique days in [0, horizon].
    """
    t = np.arange(0.0, horizon + 1e-9, step)
    allt = np.concatenate([t, [float(horizon)], KM_LANDMARK_DAYS, np.asarray(extra, float).ravel()])
    return np.unique(allt[(allt >= 0) & (allt <= horizon + 1e-9)])


def km_summary(patients, kinds, times, group="arm"):
    """Kaplan-Meier curves of every time-to-event endpoint, per group, at ``times``.

    Parameters
    ----------
    patients : pandas.DataFrame
        Per-patient table with a ``NAME`` (time) and ``NAME_event`` (0/1) column per
        time-to-event endpoint.
    kinds : dict
        Endpoint column -> kind (``"time"`` marks the time-to-event columns).
    times : array_like
        Days at which to evaluate the curves.

    Returns
    -------
    pandas.DataFrame
        Columns: arm, endpoint, time, survival, lower, upper, n_at_risk (follow-up
        beyond the day), n (patients in the curve).
    """
    import pandas as pd

    from carkinetics.stats.km import kaplan_meier

    times = np.asarray(times, float)
    frames = []
    ends = [c for c, k in kinds.items() if k == "time" and f"{c}_event" in patients.columns]
    groups = [("all", patients)]
    if group in patients.columns:
        groups += [(str(g), df) for g, df in patients.groupby(group, sort=True)]
        if patients[group].nunique() == 1:
            groups = groups[1:]  # a single arm: its curve is the cohort's
    for name in ends:
        for g, df in groups:
            t = df[name].to_numpy(float)
            e = df[f"{name}_event"].to_numpy(float)
            ok = np.isfinite(t)
            ok &= np.isfinite(e)
            km = kaplan_meier(t[ok], e[ok])
            s, lo, hi = km.at(times)
            # at risk just after each day: follow-up (event or censoring) later than it
            at_risk = ok.sum() - np.searchsorted(np.sort(t[ok]), times, side="right")
            frames.append(pd.DataFrame({"arm": g, "endpoint": name, "time": times, "survival": s,
                                        "lower": lo, "upper": hi, "n_at_risk": at_risk, "n": int(ok.sum())}))
    if not frames:
        return pd.DataFrame(columns=KM_COLUMNS[1:])
    return pd.concat(frames, ignore_index=True)


def run_point(scenario, point: GridPoint, *, n=None, seed=None, jobs=None, chunk_size=None,
              km_times=None, keep_patients=False, progress=None) -> dict:
    """Simulate one grid point's virtual cohort and reduce it to its summaries.

    Parameters
    ----------
    scenario : Scenario
    point : GridPoint
    n, seed, jobs, chunk_size : int, optional
        As for :func:`carkinetics.cohort.pipeline.run_cohort`.
    km_times : array_like, optional
        Days of the Kaplan-Meier summary (default :func:`km_time_grid` of the horizon).
    keep_patients : bool, optional
        Return the per-patient table too.
    progress : callable, optional
        ``run_cohort``'s progress callback.

    Returns
    -------
    dict
        ``summary`` and ``km`` (DataFrames with a ``point`` column), ``patients``
        (the per-patient table, or None), ``n_patients``, ``seconds``, ``kinds``.
    """
    from carkinetics.cohort.pipeline import run_cohort

    start = _time.perf_counter()
    result = run_cohort(scenario, n=n, seed=seed, jobs=jobs, chunk_size=chunk_size,
                        variables=point.variables or None, parameters=point.parameters or None,
                        arms=[point.arm] if point.arm else None, keep_trajectories=False, bands=False,
                        progress=progress)
    patients = result.patients
    kinds = endpoint_kinds(scenario, result)
    summary = result.summary.rename(columns={"group": "arm"}).copy()
    summary.insert(0, "point", point.id)
    summary["arm"] = summary["arm"].astype(str)
    summary = summary[SUMMARY_COLUMNS]
    times = km_times if km_times is not None else km_time_grid(scenario.horizon)
    km = km_summary(patients, kinds, times)
    km.insert(0, "point", point.id)
    out = {"summary": summary, "km": km[KM_COLUMNS], "n_patients": int(len(patients)),
           "seconds": _time.perf_counter() - start, "kinds": kinds,
           "patients": patients if keep_patients else None}
    return out


def endpoint_kinds(scenario, result) -> dict:
    """Endpoint name -> kind (``time_to_event``, ``binary``, ...) of a cohort result, else of its scenario."""
    es = getattr(result, "endpoint_set", None) or getattr(result, "endpoints", None)
    kinds = getattr(es, "kinds", None)
    if kinds is None:
        es = scenario.endpoints
        kinds = getattr(es, "kinds", None)
    return dict(kinds or {})


def sweep(scenario: Scenario | str | Path, output: str | Path | None = None, *, n: int | None = None,
          seed: int | None = None, jobs: int | None = None, chunk_size: int | None = None,
          per_patient: bool | None = None, resume: bool = False, scheduler: str | None = None,
          dask_workers: int | None = None, progress: bool | Progress | None = None, points: Sequence[int] | None = None,
          overrides: Mapping[str, float] | None = None, table_format: str = "csv",
          replicate: Mapping | None = None) -> SweepResult:
    """Run a virtual cohort at every point of the scenario's ``[sweep]`` grid.

    Parameters
    ----------
    scenario : Scenario or path
        A scenario with a ``[sweep]`` section.
    output : path, optional
        Results folder (see the module docstring). Without it nothing is written and
        ``resume`` is not available. Checked before anything is computed (see
        :func:`check_output_folder`).
    n, seed : int, optional
        Virtual patients per grid point and the seed (default: ``[sweep]``, then the
        scenario's population; without any seed one is drawn, recorded in ``sweep.json``
        and reused on resume). The same seed at every point: common random numbers.
    jobs : int, optional
        Threads per cohort (local runs) or per Dask task.
    chunk_size : int, optional
        Patients per chunk inside a cohort (memory; results do not depend on it).
    per_patient : bool, optional
        Also write each point's per-patient table (``points/<id>/patients.csv.gz``).
    resume : bool
        Continue the sweep in ``output``: finished points are kept, the rest run. Refused,
        naming what differs, unless every input is unchanged: the scenario, model and
        parameter-set files and the data file (SHA-256), the grid, n, seed, per-patient
        tables, Kaplan-Meier days and the carkinetics version.
    scheduler : str, optional
        Run on Dask: ``"local"`` for a local cluster, or the address of a scheduler
        (``tcp://host:8786``). Needs ``pip install 'carkinetics[distributed]'``.
    dask_workers : int, optional
        Workers of the local Dask cluster (default 2).
    progress : bool or Progress, optional
        ``True`` for a progress line on stderr.
    points : sequence of int, optional
        Only these grid points (ids); for tests and partial reruns. Only these points
        are built, whatever the size of the grid.
    overrides : dict of str to float, optional
        Values set as with ``--set`` (variables, parameters, covariates; not those the grid
        sets): applied to the scenario (:func:`~carkinetics.scenario.overrides.apply_overrides`),
        recorded in ``sweep.json`` and part of what a resume must match.
    table_format : str, optional
        ``"csv"`` or ``"parquet"`` (needs pyarrow): the format of the summary, Kaplan-Meier
        and per-patient tables; recorded in ``sweep.json`` and part of what a resume must match.
    replicate : dict, optional
        One parameter draw's sweep (:func:`carkinetics.studies.replicates.sweep_replicates`):
        ``draw``, ``parameter_sample_sha256`` (a resume must match), ``output``, ``resume_args``.

    Returns
    -------
    SweepResult

    Raises
    ------
    SweepError
        A bad output folder, a grid above :data:`MAX_GRID_POINTS` points, unknown point
        ids, a folder that holds another sweep (without ``resume``), or a resume whose
        inputs differ from those of the sweep in the folder.
    """
    from carkinetics.io.tables import check_table_format
    from carkinetics.scenario.load import load_scenario

    check_table_format(table_format, "table_format")
    out = check_output_folder(output) if output is not None else None  # before anything is computed
    overrides = dict(overrides or {})
    scenario, spec = swept_scenario(load_scenario(scenario) if isinstance(scenario, (str, Path)) else scenario,
                                     overrides)
    todo_ids = _point_ids(points, spec.n_points)
    keep = spec.per_patient if per_patient is None else bool(per_patient)
    es = scenario.endpoints
    km_times = _km_days(scenario, spec)

    old = previous_sweep(out) if out is not None else None
    _check_resume(out, old, resume)
    _check_replicate_folder(out, old, replicate)
    n = _resolve_n(scenario, spec, n)
    seed, seed_source = _resolve_seed(scenario, spec, seed, old)
    inputs = sweep_inputs(scenario)
    settings = _settings(scenario, spec, n, seed, keep, km_times)
    if replicate is not None:  # the draw is part of what a resume must match
        settings["replicate"] = {k: replicate[k] for k in ("draw", "parameter_sample_sha256")}
    settings = _checked_settings(out, old, inputs, settings, overrides, table_format)
    info = _sweep_info(scenario, spec, es, inputs, settings, n=n, seed=seed, seed_source=seed_source, keep=keep,
                       km_times=km_times, points=points, todo_ids=todo_ids, scheduler=scheduler)
    info["overrides"] = overrides
    info["table_format"] = table_format
    if out is not None:
        _add_folder_info(info, old, scenario, output, n=n, seed=seed, keep=keep, points=points, todo_ids=todo_ids,
                         chunk_size=chunk_size, overrides=overrides, table_format=table_format, replicate=replicate)
    done = set(info["finished"])
    todo = spec.points([i for i in todo_ids if i not in done])  # only the points asked for are built
    if out is not None:
        remove_stale_staging(out)
    bar = progress if isinstance(progress, Progress) else (
        Progress(len(todo), n * len(todo), label=scenario.name) if progress else None)
    recorder = _Recorder(out, info, spec, sorted(set(todo_ids) | done), bar)
    completed = False
    try:
        if scheduler is None:
            for point in todo:
                res = run_point(scenario, point, n=n, seed=seed, jobs=jobs, chunk_size=chunk_size,
                                km_times=km_times, keep_patients=keep, progress=bar)
                recorder.finish(point, res)
        else:
            path = str(Path(scenario.path).resolve())
            hashes = {k: v["sha256"] for k, v in inputs.items()}
            sha = file_sha256(path)
            items = [(p, (path, sha, p, n, seed, jobs or 1, chunk_size, km_times, keep, hashes, overrides))
                     for p in todo]
            run_dask(_dask_point, items, lambda done_point: recorder.finish(*done_point), scheduler=scheduler,
                     n_workers=dask_workers, key=lambda p: p.id, prefix="carkinetics-point")
        completed = True
    finally:
        recorder.close(completed)
    return recorder.result(points, todo_ids)


def _check_resume(out, old, resume) -> None:
    """Refuse a folder that holds another sweep (without ``resume``), or nothing to resume."""
    if old is not None and not resume:
        hint = old.get("resume_command")
        raise SweepError(f"{out} already holds a sweep ({len(old['finished'])} of {old.get('n_points')} points "
                         f"finished); pass --resume to continue it"
                         + (f" ({hint})" if hint else "") + " or choose another --output folder")
    if resume and out is not None and old is None and not holds_only_sweep_files(out):
        raise SweepError(f"{out}: nothing to resume (no sweep.json with a finished grid point)")


def swept_scenario(scenario, overrides) -> tuple:
    """The scenario with the ``--set`` values (refused where the grid sets them) and its checked grid."""
    scenario = apply_overrides(scenario, overrides)
    check_not_swept(scenario, overrides)
    spec = scenario.sweep
    if spec is None:
        raise ScenarioError(scenario.path, ["sweep: this scenario has no [sweep] section (add [sweep.axes])"])
    check_grid_size(spec)
    return scenario, spec


def report_days(scenario) -> list:
    """The days at which the scenario's outcomes are reported (their ``report_at``)."""
    return [d for days in getattr(scenario.endpoints, "report_at", {}).values() for d in (days or ())]


def _km_days(scenario, spec) -> np.ndarray:
    """The Kaplan-Meier summary days of a sweep: ``[sweep] km_times``, else the grid with the report days."""
    return np.asarray(spec.km_times if spec.km_times is not None
                      else km_time_grid(scenario.horizon, spec.km_step, report_days(scenario)), float)


def _check_replicate_folder(out, old, replicate) -> None:
    """Refuse to run a plain sweep into a folder of ``--replicates`` results (the summary over the
    draws, or one draw's sweep): its points would mix results with and without parameter draws."""
    if old is None or replicate is not None:
        return
    if old.get("replicates") or (old.get("settings") or {}).get("replicate"):
        hint = old.get("resume_command")
        raise SweepError(f"{out} holds results of a sweep with --replicates; a sweep without it would mix results "
                         f"with and without parameter draws there" + (f"; continue it with: {hint}" if hint else "")
                         + ", or choose another --output folder")


def _checked_settings(out, old, inputs, settings, overrides, table_format) -> dict:
    """``settings`` with the ``--set`` values and the table format, after refusing a resume whose inputs
    differ from those of the sweep in the folder (``old``: its record, or None).

    Both are recorded only when given (or given to the sweep resumed): sweeps without them resume as before.
    """
    before = (old or {}).get("settings") or {}
    if overrides or "overrides" in before:
        settings["overrides"] = overrides
    if table_format != "csv" or "table_format" in before:
        settings["table_format"] = table_format
    if old is not None:
        differences = compare_runs(old, inputs, settings)
        if differences:
            raise SweepError(f"{out}: cannot resume: " + "; ".join(differences)
                             + ". Resuming would mix results of different inputs in one sweep: restore the "
                               "inputs of the sweep there, or run this one into another --output folder")
    return settings


def _sweep_info(scenario, spec, es, inputs, settings, *, n, seed, seed_source, keep, km_times, points, todo_ids,
                scheduler) -> dict:
    """The content of ``sweep.json`` before any point has finished."""
    return {
        "scenario": str(scenario.path), "scenario_name": scenario.name,
        "scenario_sha256": inputs["scenario"]["sha256"], "model": str(scenario.model.path),
        "model_sha256": scenario.model.content_hash, "n": n, "seed": seed, "seed_source": seed_source,
        "per_patient": keep,
        "common_random_numbers": "the same seed at every grid point: the same virtual patients everywhere",
        "km_times": km_times.tolist(), "sweep": spec.to_json(), "inputs": inputs, "settings": settings,
        "fingerprint": _fingerprint(inputs, settings), "n_points": spec.n_points,
        "points_requested": None if points is None else todo_ids,
        "finished": [], "point_stats": {}, "status": "running",
        "backend": "dask" if scheduler else "local",
        "endpoint_kinds": dict(getattr(es, "kinds", {}) or {}),
        "endpoint_descriptions": {k: v for k, v in (getattr(es, "descriptions", {}) or {}).items() if v},
    }


def _add_folder_info(info, old, scenario, output, *, n, seed, keep, points, todo_ids, chunk_size,
                     overrides=None, table_format="csv", replicate=None) -> None:
    """The resume command and provenance of a sweep written to a folder; what an earlier run there finished.

    The sweep of one draw of a ``--replicates`` sweep records the command that resumes the whole.
    """
    info["resume_command"] = resume_command(scenario.path, output if replicate is None else replicate["output"],
                                            n=n, seed=seed, per_patient=keep,
                                            points=None if points is None else todo_ids, chunk_size=chunk_size,
                                            overrides=overrides, table_format=table_format,
                                            extra=() if replicate is None else replicate["resume_args"])
    info["provenance"] = provenance()
    info["created"] = info["provenance"]["created"]
    if old is not None:
        info["finished"] = sorted(old["finished"])
        info["point_stats"] = old.get("point_stats", {}) if isinstance(old.get("point_stats"), dict) else {}
        info["created"] = old.get("created") or info["created"]


class _Recorder:
    """Keeps each finished grid point: written to the folder (and recorded in ``sweep.json``), or in memory."""

    def __init__(self, out, info, spec, grid_ids, bar):
        self.out, self.info, self.spec, self.grid_ids, self.bar = out, info, spec, grid_ids, bar
        self.results = {}
        self.grid_written = False

    def record(self):
        """sweep.json (and grid.csv the first time): only once a grid point has finished, so a
        sweep that fails on its first point leaves nothing that a corrected rerun would refuse."""
        first = not self.grid_written
        if first:
            atomic_write_text(self.out / "grid.csv", grid_frame(self.spec, self.grid_ids).to_csv(index=False))
        write_json(self.out / "sweep.json", self.info)
        if first:
            register_outputs(self.out, ["grid.csv", "sweep.json"])  # the folder's manifest: carkinetics' files
            self.grid_written = True

    def finish(self, point, res):
        """A grid point finished with ``res`` (:func:`run_point`'s result)."""
        info = self.info
        if self.out is not None:
            write_point(self.out, point, res, info.get("table_format", "csv"))
            info["finished"] = sorted(set(info["finished"]) | {point.id})
            info["point_stats"][str(point.id)] = {"n_patients": res["n_patients"],
                                                  "seconds": round(res["seconds"], 3)}
            info["endpoint_kinds"] = info["endpoint_kinds"] or res["kinds"]
            self.record()
        else:
            info["finished"].append(point.id)
            info["endpoint_kinds"] = info["endpoint_kinds"] or res["kinds"]
        self.results[point.id] = (res["summary"], res["km"], res["patients"])
        if self.bar is not None:
            self.bar.point_done(res["n_patients"])

    def close(self, completed):
        """End the progress line; record the sweep's status and write the combined tables."""
        if self.bar is not None:
            self.bar.close()
        info = self.info
        if self.out is not None and info["finished"]:
            finished_all = set(info["finished"]) >= set(range(info["n_points"]))
            info["status"] = "complete" if finished_all else ("interrupted" if not completed else "partial")
            self.record()
            write_combined(self.out, info)

    def result(self, points, todo_ids) -> SweepResult:
        """The sweep's results: read back from the folder, or gathered in memory."""
        import pandas as pd

        out, results = self.out, self.results
        if out is not None and self.info["finished"]:
            result = load_sweep(out)
            if points is not None:
                keep_ids = set(todo_ids)
                result.summary = result.summary[result.summary["point"].isin(keep_ids)].reset_index(drop=True)
                result.km = result.km[result.km["point"].isin(keep_ids)].reset_index(drop=True)
            return result
        ids = sorted(results)
        summary = (pd.concat([results[i][0] for i in ids], ignore_index=True) if ids
                   else pd.DataFrame(columns=SUMMARY_COLUMNS))
        km = pd.concat([results[i][1] for i in ids], ignore_index=True) if ids else pd.DataFrame(columns=KM_COLUMNS)
        self.info["status"] = "complete"
        res = SweepResult(grid=grid_frame(self.spec, todo_ids), summary=summary, km=km, info=self.info, path=None)
        res.patients = {i: results[i][2] for i in ids if results[i][2] is not None}
        return res


def _point_ids(points, n_points) -> list:
    if points is None:
        return list(range(n_points))
    try:
        ids = sorted({int(p) for p in points})
    except (TypeError, ValueError):
        raise SweepError(f"grid point ids must be whole numbers, got {points!r}") from None
    if not ids:
        raise SweepError("no grid point given (--points)")
    bad = [p for p in ids if not 0 <= p < n_points]
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
        raise SweepError(f"grid points {shown} do not exist (the grid has {n_points:,} points: ids 0 to "
                         f"{n_points - 1:,})")
    return ids


def _resolve_n(scenario, spec, n) -> int:
    if n is None:
        n = spec.n
    if n is None:
        n = getattr(scenario.population, "size", None)
    if n is None:
        raise SweepError(f"{scenario.path}: no number of virtual patients per grid point: set n in [sweep] or "
                         f"size in [population], or pass --n")
    if not (is_whole_number(n, 1) and n <= max_patients()):
        raise SweepError(f"the number of virtual patients per grid point must be a whole number from 1 to "
                         f"{max_patients():,}, got {n!r}")
    return int(n)


def _resolve_seed(scenario, spec, seed, old):
    """The seed and where it comes from; a seed drawn for a sweep is reused when it is resumed."""
    if seed is not None:
        if not (is_whole_number(seed, 0) and seed <= MAX_SEED):
            raise SweepError(f"the seed must be a whole number from 0 to 2**63 - 1, got {seed!r}")
        return int(seed), "given"
    if spec.seed is not None:
        return int(spec.seed), "[sweep] seed"
    pop_seed = getattr(scenario.population, "seed", None)
    if pop_seed is not None:
        return int(pop_seed), "[population] seed"
    if old is not None and old.get("seed_source") == "drawn" and is_whole_number(old.get("seed"), 0):
        return int(old["seed"]), "drawn"
    return int(np.random.SeedSequence().entropy % (2 ** 63)), "drawn"


def sweep_inputs(scenario) -> dict:
    """Every file a sweep's results depend on, with its SHA-256: role -> {path, sha256}.

    The scenario file, the model (the text it was read from), each parameter-set file the
    scenario names (``[scenario] parameter_set``, its arms' and its sweep options'
    ``parameter_set``) and the
    ``[data]`` file. (The reference
    table of ``[targets]`` is not read by a sweep.)
    """
    from carkinetics.io.provenance import file_sha256

    inputs = {"scenario": {"path": str(scenario.path), "sha256": file_sha256(scenario.path)},
              "model": {"path": str(scenario.model.path), "sha256": scenario.model.content_hash}}
    sets = list(getattr(scenario, "parameter_sets", ()) or ())
    for k, p in enumerate(sets):
        role = "parameter_set" if len(sets) == 1 else f"parameter_set[{k}]"
        inputs[role] = {"path": str(p), "sha256": file_sha256(p)}
    arms = scenario.arms.arms.values() if scenario.arms is not None else ()
    for arm in arms:
        if getattr(arm, "parameter_set", None) is not None:
            inputs[f"parameter_set[arm {arm.name}]"] = {"path": str(arm.parameter_set),
                                                        "sha256": file_sha256(arm.parameter_set)}
    spec = getattr(scenario, "sweep", None)
    for axis in (spec.axes if spec is not None else ()):
        for label, st in zip(axis.labels, axis.settings):
            if st.get("parameter_set"):
                inputs[f"parameter_set[option {axis.name}.{label}]"] = {"path": st["parameter_set"],
                                                                       "sha256": file_sha256(st["parameter_set"])}
    data_file = scenario.data_file
    if data_file is not None and Path(data_file).is_file():
        inputs["data"] = {"path": str(data_file), "sha256": file_sha256(data_file)}
    return inputs


def _settings(scenario, spec, n, seed, keep, km_times) -> dict:
    from carkinetics.version import __version__

    # the tables as read (a scenario built from a dict has no file of its own to hash)
    content = hashlib.sha256(json.dumps(scenario.raw, sort_keys=True, default=str).encode()).hexdigest()
    return {"grid": spec.to_json()["axes"], "n": int(n), "seed": int(seed), "per_patient": bool(keep),
            "km_times": [float(t) for t in km_times], "scenario_content": content, "carkinetics": __version__}


_SETTING_NAMES = {"scenario_content": "the scenario's tables (as read)", "grid": "the grid (axes and their values)",
                  "replicate": "the parameter draw (its number and the sample's sha256)",
                  "n": "n (virtual patients per point)",
                  "seed": "the seed", "per_patient": "per-patient tables", "km_times": "the Kaplan-Meier days",
                  "carkinetics": "the carkinetics version", "overrides": "the set of --set values",
                  "table_format": "the table format (--format)"}


def compare_runs(old: dict, inputs: dict, settings: dict) -> list:
    """What differs between the sweep recorded in ``old`` (its sweep.json) and this one.

    Parameters
    ----------
    old : dict
        The content of the folder's ``sweep.json``.
    inputs : dict
        :func:`sweep_inputs` of this sweep.
    settings : dict
        This sweep's grid, n, seed, per-patient tables, Kaplan-Meier days, scenario content and version.

    Returns
    -------
    list of str
        One sentence per difference; empty when the sweep can be resumed.
    """
    if not isinstance(old.get("inputs"), dict) or not isinstance(old.get("settings"), dict):
        return ["the sweep there was written by an older carkinetics that did not record the hashes of all its "
                "inputs (parameter sets, data file), so an unchanged input cannot be told from a changed one"]
    out = []
    before = old["inputs"]
    for role in list(inputs) + [r for r in before if r not in inputs]:
        a, b = before.get(role), inputs.get(role)
        if not isinstance(a, dict):
            out.append(f"{role} {b['path']} is an input now but was not when the sweep started")
        elif b is None:
            out.append(f"{role} {a.get('path')} was an input when the sweep started but is not now")
        elif a.get("sha256") != b["sha256"]:
            moved = "" if a.get("path") == b["path"] else f" (then {a.get('path')})"
            out.append(f"{role} file {b['path']}{moved} has changed: sha256 {str(a.get('sha256'))[:16]} when the "
                       f"sweep started, {b['sha256'][:16]} now")
    for key, value in settings.items():
        then = old["settings"].get(key)
        if then != value:
            shown = (then, value) if key not in ("grid", "km_times", "scenario_content") else ("one", "another")
            out.append(f"{_SETTING_NAMES.get(key, key)} differs: {shown[0]} when the sweep started, {shown[1]} now")
    return out


def _fingerprint(inputs, settings) -> str:
    payload = json.dumps({"inputs": {k: v["sha256"] for k, v in inputs.items()}, "settings": settings},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def resume_command(scenario_path, output, *, n, seed, per_patient, points=None, chunk_size=None,
                   overrides=None, table_format="csv", extra=()) -> str:
    """The command that continues a sweep: every option that fixes its results, shell-quoted.

    Parameters
    ----------
    scenario_path, output : path
        The scenario file and the results folder.
    n, seed : int
    per_patient : bool
    points : list of int, optional
    chunk_size : int, optional
    overrides : dict of str to float, optional
        The ``--set`` values (repeated in the command).
    table_format : str, optional
        ``--format`` (given only when not ``"csv"``).
    extra : sequence of str, optional
        More arguments (e.g. ``--replicates K``), before ``--resume``.

    Returns
    -------
    str
    """

    def arg(p):
        s = os.fspath(p)
        return f"./{s}" if s.startswith("-") else s

    parts = ["carkinetics", "sweep", arg(scenario_path), "-o", arg(output), "--n", str(n), "--seed", str(seed),
             "--per-patient" if per_patient else "--no-per-patient"]
    if points is not None:
        parts += ["--points", ",".join(map(str, points))]
    if chunk_size is not None:
        parts += ["--chunk-size", str(chunk_size)]
    for name, value in (overrides or {}).items():
        parts += ["--set", f"{name}={value!r}"]
    if table_format != "csv":
        parts += ["--format", table_format]
    parts += list(extra)
    parts.append("--resume")
    return shlex.join(parts)


_WORKER_SCENARIOS: dict = {}


def _dask_point(scenario_path, scenario_sha, point, n, seed, jobs, chunk_size, km_times, keep, inputs=None,
                overrides=None):
    """A Dask task: load the scenario once per worker, run one grid point.

    ``inputs`` (role -> sha256 of the files the sweep started with): a worker that reads a
    changed model or parameter-set file refuses to run rather than mix results. ``overrides``:
    the ``--set`` values, applied to the scenario.
    """
    from carkinetics.scenario.load import load_scenario

    key = (str(scenario_path), scenario_sha, json.dumps(inputs, sort_keys=True),
           json.dumps(overrides or {}, sort_keys=True))
    sc = _WORKER_SCENARIOS.get(key)
    if sc is None:
        sc = load_scenario(scenario_path)
        if inputs is not None:
            now = {k: v["sha256"] for k, v in sweep_inputs(sc).items()}
            changed = sorted(k for k in set(now) | set(inputs) if now.get(k) != inputs.get(k))
            if changed:
                raise SweepError(f"{scenario_path}: {', '.join(changed)} changed since the sweep started; the "
                                 f"points still to run would not be those of the same inputs")
        sc = apply_overrides(sc, overrides)
        _WORKER_SCENARIOS[key] = sc
    return point, run_point(sc, point, n=n, seed=seed, jobs=jobs, chunk_size=chunk_size, km_times=km_times,
                            keep_patients=keep, progress=None)
