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

Each finished point is written atomically (staged, then renamed) before ``sweep.json``
records it, so an interrupted sweep keeps what finished and ``resume=True`` continues.
``sweep.json`` (and ``grid.csv``) are written once the first point has finished: a sweep that
fails before that leaves nothing a corrected rerun would have to resume. A resume is refused,
naming the input, unless the scenario, model, parameter-set and data files (SHA-256), the
grid, n, seed, per-patient tables, Kaplan-Meier days and carkinetics version are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import time as _time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carkinetics.errors import ScenarioError, is_number, is_whole_number, suggestion
from carkinetics.scenario.grid import (MAX_SEED, GridPoint, SweepError, SweepSpec, check_grid_size,
                                       max_patients)

SUMMARY_COLUMNS = ["point", "arm", "endpoint", "statistic", "value", "lower", "upper", "n"]
KM_COLUMNS = ["point", "arm", "endpoint", "time", "survival", "lower", "upper", "n_at_risk", "n"]


# ----------------------------------------------------------------------------------------
# progress on stderr
# ----------------------------------------------------------------------------------------


class Progress:
    """A progress line on stderr: points done, patients done, patients per second, ETA.

    Pass an instance as ``progress`` to :func:`sweep`; it is also accepted by
    ``run_cohort`` (called with the patients of the current point done so far, or via
    :meth:`update` with increments). On a terminal the line is redrawn in place; otherwise one line is
    printed per finished grid point.
    """

    def __init__(self, n_points, n_patients_total=None, stream=None, label="sweep", min_interval=0.25):
        self.n_points = int(n_points)
        self.total = n_patients_total
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.min_interval = min_interval
        self.start = _time.perf_counter()
        self.patients = 0
        self.points = 0
        self._point_base = 0  # patients counted before the current point
        self._last = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, n_done, n_total=None):
        """``run_cohort``'s callback: ``n_done`` patients of the current point finished so far."""
        self.patients = self._point_base + int(n_done)
        self._maybe_draw()

    def update(self, n_new):
        """``n_new`` more patients finished."""
        self.patients += int(n_new)
        self._maybe_draw()

    def _maybe_draw(self):
        now = _time.perf_counter()
        if self._tty and now - self._last >= self.min_interval:
            self._last = now
            self._draw(now)

    def point_done(self, n_patients=0):
        """A grid point finished with ``n_patients`` patients (whether or not they were reported)."""
        self.points += 1
        self.patients = self._point_base = self._point_base + int(n_patients)
        now = _time.perf_counter()
        if self._tty:
            self._draw(now)
        else:
            self.stream.write(self._line(now) + "\n")
            self.stream.flush()

    def _line(self, now) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.patients / elapsed
        done = self.points / self.n_points if self.n_points else 1.0
        if self.total:
            done = max(done, min(1.0, self.patients / self.total))
        width = 24
        bar = "#" * int(round(done * width)) + "-" * (width - int(round(done * width)))
        eta = (elapsed / done - elapsed) if 0 < done < 1 else 0.0
        return (f"{self.label} [{bar}] {self.points}/{self.n_points} points, {self.patients:,} patients, "
                f"{rate:,.0f} patients/s, {_fmt_seconds(elapsed)} elapsed, ETA {_fmt_seconds(eta)}")

    def _draw(self, now):
        self.stream.write("\r" + self._line(now) + "\x1b[K")
        self.stream.flush()

    def close(self):
        if self._tty:
            self._draw(_time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()


def _fmt_seconds(s) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


# ----------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """The aggregated results of a sweep.

    Attributes
    ----------
    grid : pandas.DataFrame
        ``point`` and one column per axis (labels as written in the scenario).
    summary : pandas.DataFrame
        Long table: point, arm, endpoint, statistic, value, lower, upper, n.
    km : pandas.DataFrame
        Kaplan-Meier summaries on a fixed time grid: point, arm, endpoint, time,
        survival, lower, upper, n_at_risk.
    info : dict
        Provenance and settings (the content of ``sweep.json``).
    path : pathlib.Path or None
        The results folder, if written.
    """

    grid: object
    summary: object
    km: object
    info: dict
    path: Path | None = None

    @property
    def axis_names(self) -> list:
        return [a["name"] for a in self.info.get("sweep", {}).get("axes", [])]

    @property
    def axis_kinds(self) -> dict:
        return {a["name"]: a["kind"] for a in self.info.get("sweep", {}).get("axes", [])}

    @property
    def endpoint_kinds(self) -> dict:
        return dict(self.info.get("endpoint_kinds", {}))

    def parse_outcome(self, spec):
        """Split ``endpoint``, ``endpoint:statistic`` or ``endpoint@day`` into (endpoint, statistic).

        ``endpoint@day`` is Kaplan-Meier survival at that day (statistic ``survival@day``).
        """
        from carkinetics.studies.sensitivity import split_outcome

        spec = str(spec)
        try:
            endpoint, statistic, day = split_outcome(spec)
        except ValueError as err:
            raise SweepError(f"'{spec}': {err}") from None
        if day is not None:
            return endpoint, f"survival@{day:g}"
        if statistic is not None:
            return endpoint, statistic
        s = self.summary
        if spec not in set(s["endpoint"]):
            if spec in set(self.km["endpoint"]):
                horizon = float(self.km["time"].max())
                return spec, f"survival@{min(365.0, horizon):g}"
            raise SweepError(f"'{spec}' is not an endpoint of this sweep"
                             f"{suggestion(spec, sorted(set(s['endpoint'])))}")
        return spec, default_statistic(spec, self.endpoint_kinds, set(s.loc[s["endpoint"] == spec, "statistic"]))

    def outcome(self, endpoint, statistic=None, arm=None):
        """One statistic at every grid point, beside the axis values.

        Parameters
        ----------
        endpoint : str
            An endpoint column (e.g. ``cr_d28``).
        statistic : str, optional
            Default: ``proportion`` for binary endpoints, ``median`` otherwise.
        arm : str, optional
            Only this arm (summary group).

        Returns
        -------
        pandas.DataFrame
            Columns: point, the axes, arm, value, lower, upper, n.
        """
        if statistic is not None and statistic.startswith("survival@"):
            return self._km_outcome(endpoint, float(statistic.split("@", 1)[1]), arm)
        s = self.summary
        if endpoint not in set(s["endpoint"]):
            raise SweepError(f"'{endpoint}' is not an endpoint of this sweep"
                             f"{suggestion(endpoint, sorted(set(s['endpoint'])))}")
        statistic = statistic or default_statistic(endpoint, self.endpoint_kinds,
                                                   set(s.loc[s["endpoint"] == endpoint, "statistic"]))
        rows = s[(s["endpoint"] == endpoint) & (s["statistic"] == statistic)]
        if rows.empty:
            have = sorted(set(s.loc[s["endpoint"] == endpoint, "statistic"]))
            raise SweepError(f"'{statistic}' is not a statistic of '{endpoint}'{suggestion(statistic, have)} "
                             f"(available: {', '.join(have)})")
        if arm is not None:
            rows = rows[rows["arm"] == arm]
        on = ["point", "arm"] if "arm" in self.grid.columns else ["point"]
        out = self.grid.merge(rows.drop(columns=["endpoint", "statistic"]), on=on, how="inner")
        return out.sort_values(on).reset_index(drop=True)

    def _km_outcome(self, endpoint, day, arm=None):
        km = self.km[self.km["endpoint"] == endpoint]
        if km.empty:
            have = sorted(set(self.km["endpoint"]))
            raise SweepError(f"'{endpoint}' has no Kaplan-Meier summary{suggestion(endpoint, have)} "
                             f"(time-to-event endpoints: {', '.join(have)})")
        times = np.unique(km["time"].to_numpy(float))
        hit = np.isclose(times, day, rtol=0, atol=1e-6)
        if not hit.any():
            raise SweepError(f"day {day:g} is not one of the Kaplan-Meier summary days of this sweep; add it to "
                             f"[sweep] km_times (days available: {_fmt_days(times)})")
        rows = km[np.isclose(km["time"].to_numpy(float), day, rtol=0, atol=1e-6)]
        rows = rows.rename(columns={"survival": "value"}).drop(columns=["endpoint", "time", "n_at_risk"])
        if arm is not None:
            rows = rows[rows["arm"] == arm]
        on = ["point", "arm"] if "arm" in self.grid.columns else ["point"]
        out = self.grid.merge(rows, on=on, how="inner")
        return out.sort_values(on).reset_index(drop=True)


def _fmt_days(times) -> str:
    t = [f"{x:g}" for x in times]
    return ", ".join(t) if len(t) <= 12 else ", ".join(t[:6] + ["..."] + t[-3:])


def default_statistic(endpoint, kinds, available) -> str:
    """``proportion`` for binary endpoints, ``median`` (or the first available) otherwise."""
    kind = kinds.get(endpoint)
    for stat in (("proportion",) if kind == "binary" else ()) + ("proportion", "median", "value"):
        if stat in available:
            return stat
    return sorted(available)[0]


def load_sweep(path) -> SweepResult:
    """Read a sweep results folder written by :func:`sweep` (finished points only)."""
    import pandas as pd

    from carkinetics.io.atomic import read_result_csv, read_result_json

    path = Path(path)
    meta_path = path / "sweep.json"
    if not meta_path.exists():
        raise SweepError(f"{path}: not a sweep results folder (no sweep.json)")
    info = read_result_json(meta_path)
    grid = _read_grid(path / "grid.csv")
    finished = sorted(info.get("finished", []))
    summaries, kms = [], []
    for pid in finished:
        folder = path / "points" / f"{pid:04d}"
        summaries.append(read_result_csv(folder / "summary.csv", keep_default_na=False, na_values=[""]))
        kms.append(read_result_csv(folder / "km.csv", keep_default_na=False, na_values=[""]))
    summary = (pd.concat(summaries, ignore_index=True) if summaries
               else pd.DataFrame(columns=SUMMARY_COLUMNS))
    km = pd.concat(kms, ignore_index=True) if kms else pd.DataFrame(columns=KM_COLUMNS)
    for df in (summary, km):
        if "arm" in df.columns:
            df["arm"] = df["arm"].astype(str)
    return SweepResult(grid=grid, summary=summary, km=km, info=info, path=path)


def _read_grid(path):
    from carkinetics.io.atomic import read_result_csv

    grid = read_result_csv(path, keep_default_na=False, na_values=[""])
    for col in grid.columns:
        if col != "point" and grid[col].dtype == object:
            grid[col] = grid[col].astype(str)
    return grid


def grid_frame(spec: SweepSpec, ids=None):
    """The grid as a table: ``point`` and one column per axis (labels).

    ``ids``: only these points (default: the whole grid).
    """
    import pandas as pd

    points = spec.points(ids)
    rows = [{"point": p.id, **p.labels} for p in points]
    df = pd.DataFrame(rows, columns=["point"] + spec.axis_names)
    for a in spec.axes:
        if not all(is_number(v) for v in a.labels):
            df[a.name] = df[a.name].astype(str)
    return df


# ----------------------------------------------------------------------------------------
# running one point
# ----------------------------------------------------------------------------------------


#: Days always in the Kaplan-Meier summary grid (when within follow-up): months 1, 2, 3, 6,
#: one and two years, at 30.4375 days per month for the months (as in the reference table)
#: and 365 / 730 for the years.
KM_LANDMARK_DAYS = (28.0, 30.0, 60.0, 90.0, 91.3125, 182.625, 183.0, 365.0, 730.0)


def km_time_grid(horizon, step=7.0, extra=()) -> np.ndarray:
    """Days at which Kaplan-Meier curves are summarised.

    0, step, 2 step, ..., the horizon, the landmark days :data:`KM_LANDMARK_DAYS` and
    ``extra`` (e.g. the endpoints' ``report_at`` days), all within follow-up.
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

    from carkinetics.stats.summary import kaplan_meier

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
    kinds = _endpoint_kinds(scenario, result)
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


def _endpoint_kinds(scenario, result) -> dict:
    es = getattr(result, "endpoint_set", None) or getattr(result, "endpoints", None)
    kinds = getattr(es, "kinds", None)
    if kinds is None:
        es = scenario.sections.get("endpoints")
        kinds = getattr(es, "kinds", None)
    return dict(kinds or {})


# ----------------------------------------------------------------------------------------
# the sweep
# ----------------------------------------------------------------------------------------


def sweep(scenario, output=None, *, n=None, seed=None, jobs=None, chunk_size=None, per_patient=None,
          resume=False, scheduler=None, dask_workers=None, progress=None, points=None) -> SweepResult:
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
    import pandas as pd

    from carkinetics.io.atomic import provenance, write_json
    from carkinetics.scenario.load import load_scenario

    out = check_output_folder(output) if output is not None else None  # before anything is computed
    if not hasattr(scenario, "sections"):
        scenario = load_scenario(scenario)
    spec = scenario.sections.get("sweep")
    if spec is None:
        raise ScenarioError(scenario.path, ["sweep: this scenario has no [sweep] section (add [sweep.axes])"])
    check_grid_size(spec)
    n_points = spec.n_points
    todo_ids = _point_ids(points, n_points)
    keep = spec.per_patient if per_patient is None else bool(per_patient)
    es = scenario.sections.get("endpoints") or scenario.sections.get("outcomes")
    report_days = [d for days in getattr(es, "report_at", {}).values() for d in (days or ())]
    km_times = np.asarray(spec.km_times if spec.km_times is not None
                          else km_time_grid(scenario.horizon, spec.km_step, report_days), float)

    old = _previous_sweep(out) if out is not None else None
    if old is not None and not resume:
        hint = old.get("resume_command")
        raise SweepError(f"{out} already holds a sweep ({len(old['finished'])} of {old.get('n_points')} points "
                         f"finished); pass --resume to continue it"
                         + (f" ({hint})" if hint else "") + " or choose another --output folder")
    if resume and out is not None and old is None and not _holds_only_sweep_files(out):
        raise SweepError(f"{out}: nothing to resume (no sweep.json with a finished grid point)")
    n = _resolve_n(scenario, spec, n)
    seed, seed_source = _resolve_seed(scenario, spec, seed, old)
    inputs = sweep_inputs(scenario)
    settings = _settings(scenario, spec, n, seed, keep, km_times)
    fingerprint = _fingerprint(inputs, settings)
    if old is not None:
        differences = compare_runs(old, inputs, settings)
        if differences:
            raise SweepError(f"{out}: cannot resume: " + "; ".join(differences)
                             + ". Resuming would mix results of different inputs in one sweep: restore the "
                               "inputs of the sweep there, or run this one into another --output folder")
    info = {
        "scenario": str(scenario.path), "scenario_name": scenario.name,
        "scenario_sha256": inputs["scenario"]["sha256"], "model": str(scenario.model.path),
        "model_sha256": scenario.model.content_hash, "n": n, "seed": seed, "seed_source": seed_source,
        "per_patient": keep,
        "common_random_numbers": "the same seed at every grid point: the same virtual patients everywhere",
        "km_times": km_times.tolist(), "sweep": spec.to_json(), "inputs": inputs, "settings": settings,
        "fingerprint": fingerprint, "n_points": n_points, "points_requested": None if points is None else todo_ids,
        "finished": [], "point_stats": {}, "status": "running",
        "backend": "dask" if scheduler else "local",
        "endpoint_kinds": dict(getattr(es, "kinds", {}) or {}),
        "endpoint_descriptions": {k: v for k, v in (getattr(es, "descriptions", {}) or {}).items() if v},
    }
    if out is not None:
        info["resume_command"] = resume_command(scenario.path, output, n=n, seed=seed, per_patient=keep,
                                                points=None if points is None else todo_ids,
                                                chunk_size=chunk_size)
        info["provenance"] = provenance()
        info["created"] = info["provenance"]["created"]
    if old is not None:
        info["finished"] = sorted(old["finished"])
        info["point_stats"] = old.get("point_stats", {}) if isinstance(old.get("point_stats"), dict) else {}
        info["created"] = old.get("created") or info["created"]
    done = set(info["finished"])
    todo = spec.points([i for i in todo_ids if i not in done])  # only the points asked for are built
    if out is not None:
        _remove_stale_staging(out)
    n_total = n * len(todo)
    bar = progress if isinstance(progress, Progress) else (
        Progress(len(todo), n_total, label=scenario.name) if progress else None)
    results = {}
    grid_ids = sorted(set(todo_ids) | done)
    grid_written = [False]

    def record():
        """sweep.json (and grid.csv the first time): only once a grid point has finished, so a
        sweep that fails on its first point leaves nothing that a corrected rerun would refuse."""
        from carkinetics.io import atomic as io

        first = not grid_written[0]
        if first:
            io.atomic_write_text(out / "grid.csv", grid_frame(spec, grid_ids).to_csv(index=False))
        write_json(out / "sweep.json", info)
        if first:
            io.register_outputs(out, ["grid.csv", "sweep.json"])  # the folder's manifest: carkinetics' files
            grid_written[0] = True

    def finish(point, res):
        if out is not None:
            _write_point(out, point, res)
            info["finished"] = sorted(set(info["finished"]) | {point.id})
            info["point_stats"][str(point.id)] = {"n_patients": res["n_patients"],
                                                  "seconds": round(res["seconds"], 3)}
            info["endpoint_kinds"] = info["endpoint_kinds"] or res["kinds"]
            record()
        else:
            info["finished"].append(point.id)
            info["endpoint_kinds"] = info["endpoint_kinds"] or res["kinds"]
        results[point.id] = (res["summary"], res["km"], res["patients"])
        if bar is not None:
            bar.point_done(res["n_patients"])

    inner = bar if (bar is not None and scheduler is None) else None

    completed = False
    try:
        if scheduler is None:
            for point in todo:
                res = run_point(scenario, point, n=n, seed=seed, jobs=jobs, chunk_size=chunk_size,
                                km_times=km_times, keep_patients=keep, progress=inner)
                finish(point, res)
        else:
            _run_dask(scenario, todo, finish, scheduler=scheduler, n_workers=dask_workers, n=n, seed=seed,
                      jobs=jobs, chunk_size=chunk_size, km_times=km_times, keep=keep, inputs=inputs)
        completed = True
    finally:
        if bar is not None:
            bar.close()
        if out is not None and info["finished"]:
            finished_all = set(info["finished"]) >= set(range(n_points))
            info["status"] = "complete" if finished_all else ("interrupted" if not completed else "partial")
            record()
            _write_combined(out, info)

    if out is not None and info["finished"]:
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
    info["status"] = "complete"
    res = SweepResult(grid=grid_frame(spec, todo_ids), summary=summary, km=km, info=info, path=None)
    res.patients = {i: results[i][2] for i in ids if results[i][2] is not None}
    return res


# ----------------------------------------------------------------------------------------
# what a sweep depends on, and the folder it writes to
# ----------------------------------------------------------------------------------------


def check_output_folder(output) -> Path:
    """Refuse a results folder that cannot be one, before anything is computed; return it.

    An empty path, an existing file or device (``/dev/null``), a path below a file, a
    broken symbolic link, or a folder that cannot be created or written
    (:func:`carkinetics.io.atomic.check_output_dir`; files already in the folder are left alone: a
    sweep adds points to its folder).
    """
    from carkinetics.io import atomic as io

    if not isinstance(output, (str, bytes, os.PathLike)):
        raise SweepError(f"the output folder must be a path, got {output!r}")
    io.check_output_dir(output)
    return Path(os.fsdecode(os.fspath(output)))


#: What a sweep writes in its folder (anything else there is not the sweep's).
_SWEEP_FILES = {"grid.csv", "summary.csv", "km.csv", "sweep.json", "points", "figures"}


def _holds_only_sweep_files(out: Path) -> bool:
    if not out.exists():
        return True
    return all(p.name in _SWEEP_FILES or p.name.startswith(".") for p in out.iterdir())


def _remove_stale_staging(out: Path) -> None:
    """Staging folders and temporary files that a killed run left (atomic writes never finished):
    beside and inside the folder, and in ``points/``."""
    from carkinetics.io import atomic as io

    io.remove_orphaned_partials(out)  # only those of processes no longer running
    io.remove_orphaned_partials(out / "points")
    for f in list(out.glob(".grid.csv.*tmp")) + list(out.glob(".sweep.json.*.tmp")):
        if f.is_file():
            f.unlink(missing_ok=True)


def _previous_sweep(out: Path):
    """The ``sweep.json`` in ``out`` if at least one of its grid points finished, else None.

    A sweep whose every point failed or was interrupted left nothing to keep: the folder is
    used afresh (sweep.json is only written once a point finished; older versions wrote it at
    the start).
    """
    meta = out / "sweep.json"
    if not meta.is_file():
        return None
    try:
        old = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise SweepError(f"{meta}: cannot read the record of the sweep in {out} ({err}); choose another "
                         f"--output folder") from None
    if not isinstance(old, dict):
        raise SweepError(f"{meta}: not the record of a sweep; choose another --output folder")
    finished = old.get("finished", [])
    finished = [p for p in finished if isinstance(p, int) and not isinstance(p, bool)
                and all((out / "points" / f"{p:04d}" / f).is_file() for f in ("summary.csv", "km.csv"))] \
        if isinstance(finished, list) else []
    if not finished:
        return None
    old["finished"] = finished
    return old


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
        n = getattr(scenario.sections.get("population"), "size", None)
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
    pop_seed = getattr(scenario.sections.get("population"), "seed", None)
    if pop_seed is not None:
        return int(pop_seed), "[population] seed"
    if old is not None and old.get("seed_source") == "drawn" and is_whole_number(old.get("seed"), 0):
        return int(old["seed"]), "drawn"
    return int(np.random.SeedSequence().entropy % (2 ** 63)), "drawn"


def sweep_inputs(scenario) -> dict:
    """Every file a sweep's results depend on, with its SHA-256: role -> {path, sha256}.

    The scenario file, the model (the text it was read from), each parameter-set file the
    scenario names (``[scenario] parameter_set``) and the ``[data]`` file. (The reference
    table of ``[targets]`` is not read by a sweep.)
    """
    from carkinetics.io.atomic import file_sha256

    inputs = {"scenario": {"path": str(scenario.path), "sha256": file_sha256(scenario.path)},
              "model": {"path": str(scenario.model.path), "sha256": scenario.model.content_hash}}
    sets = list(getattr(scenario, "parameter_sets", ()) or ())
    for k, p in enumerate(sets):
        role = "parameter_set" if len(sets) == 1 else f"parameter_set[{k}]"
        inputs[role] = {"path": str(p), "sha256": file_sha256(p)}
    data = scenario.sections.get("data")
    if isinstance(data, dict) and data.get("file") is not None and Path(data["file"]).is_file():
        inputs["data"] = {"path": str(data["file"]), "sha256": file_sha256(data["file"])}
    return inputs


def _settings(scenario, spec, n, seed, keep, km_times) -> dict:
    from carkinetics.version import __version__

    # the tables as read (a scenario built from a dict has no file of its own to hash)
    content = hashlib.sha256(json.dumps(scenario.raw, sort_keys=True, default=str).encode()).hexdigest()
    return {"grid": spec.to_json()["axes"], "n": int(n), "seed": int(seed), "per_patient": bool(keep),
            "km_times": [float(t) for t in km_times], "scenario_content": content, "carkinetics": __version__}


_SETTING_NAMES = {"scenario_content": "the scenario's tables (as read)", "grid": "the grid (axes and their values)",
                  "n": "n (virtual patients per point)",
                  "seed": "the seed", "per_patient": "per-patient tables", "km_times": "the Kaplan-Meier days",
                  "carkinetics": "the carkinetics version"}


def compare_runs(old: dict, inputs: dict, settings: dict) -> list:
    """What differs between the sweep recorded in ``old`` (its sweep.json) and this one."""
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


def resume_command(scenario_path, output, *, n, seed, per_patient, points=None, chunk_size=None) -> str:
    """The command that continues a sweep: every option that fixes its results, shell-quoted."""

    def arg(p):
        s = os.fspath(p)
        return f"./{s}" if s.startswith("-") else s

    parts = ["carkinetics", "sweep", arg(scenario_path), "-o", arg(output), "--n", str(n), "--seed", str(seed),
             "--per-patient" if per_patient else "--no-per-patient"]
    if points is not None:
        parts += ["--points", ",".join(map(str, points))]
    if chunk_size is not None:
        parts += ["--chunk-size", str(chunk_size)]
    parts.append("--resume")
    return shlex.join(parts)


def _write_point(out, point, res) -> None:
    from carkinetics.io.atomic import atomic_output_dir

    with atomic_output_dir(out / "points" / point.folder) as staging:
        res["summary"].to_csv(staging / "summary.csv", index=False)
        res["km"].to_csv(staging / "km.csv", index=False)
        if res["patients"] is not None:
            res["patients"].to_csv(staging / "patients.csv.gz", index=False)
    if res["patients"] is None:  # a per-patient table left by an earlier, failed run is not this point's
        (out / "points" / point.folder / "patients.csv.gz").unlink(missing_ok=True)


def _write_combined(out, info) -> None:
    """Rewrite summary.csv and km.csv from the finished points (atomically)."""
    import pandas as pd

    from carkinetics.io.atomic import atomic_output_dir, exact_float_csv_kw

    with atomic_output_dir(out) as staging:
        for name, cols in (("summary.csv", SUMMARY_COLUMNS), ("km.csv", KM_COLUMNS)):
            frames = [pd.read_csv(out / "points" / f"{p:04d}" / name, keep_default_na=False, na_values=[""],
                                  **exact_float_csv_kw())
                      for p in sorted(info["finished"])]
            df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
            df.to_csv(staging / name, index=False)


# ----------------------------------------------------------------------------------------
# Dask
# ----------------------------------------------------------------------------------------

_WORKER_SCENARIOS: dict = {}


def _dask_point(scenario_path, scenario_sha, point, n, seed, jobs, chunk_size, km_times, keep, inputs=None):
    """A Dask task: load the scenario once per worker, run one grid point.

    ``inputs`` (role -> sha256 of the files the sweep started with): a worker that reads a
    changed model or parameter-set file refuses to run rather than mix results.
    """
    from carkinetics.scenario.load import load_scenario

    key = (str(scenario_path), scenario_sha, json.dumps(inputs, sort_keys=True))
    sc = _WORKER_SCENARIOS.get(key)
    if sc is None:
        sc = load_scenario(scenario_path)
        if inputs is not None:
            now = {k: v["sha256"] for k, v in sweep_inputs(sc).items()}
            changed = sorted(k for k in set(now) | set(inputs) if now.get(k) != inputs.get(k))
            if changed:
                raise SweepError(f"{scenario_path}: {', '.join(changed)} changed since the sweep started; the "
                                 f"points still to run would not be those of the same inputs")
        _WORKER_SCENARIOS[key] = sc
    return point, run_point(sc, point, n=n, seed=seed, jobs=jobs, chunk_size=chunk_size, km_times=km_times,
                            keep_patients=keep, progress=None)


def import_distributed():
    """Import ``distributed`` or explain how to install it."""
    try:
        import distributed
    except ImportError:
        raise SweepError("running on Dask needs the optional dependency 'distributed': "
                         "pip install 'carkinetics[distributed]' (or pip install 'dask[distributed]')") from None
    return distributed


def _run_dask(scenario, todo, finish, *, scheduler, n_workers, n, seed, jobs, chunk_size, km_times, keep,
              inputs=None):
    """Submit one task per grid point; write each as it completes."""
    from carkinetics.io.atomic import file_sha256

    distributed = import_distributed()
    cluster = None
    if scheduler == "local":
        cluster = distributed.LocalCluster(n_workers=n_workers or 2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
    elif isinstance(scheduler, str):
        client = distributed.Client(scheduler)
    else:
        client = scheduler  # an existing distributed.Client
    try:
        path = str(Path(scenario.path).resolve())
        sha = file_sha256(path)
        run_id = uuid.uuid4().hex[:12]
        hashes = None if inputs is None else {k: v["sha256"] for k, v in inputs.items()}
        futures = [client.submit(_dask_point, path, sha, p, n, seed, jobs or 1, chunk_size, km_times, keep, hashes,
                                 pure=False, key=f"carkinetics-point-{run_id}-{p.id}") for p in todo]
        try:
            for fut in distributed.as_completed(futures):
                point, res = fut.result()
                finish(point, res)
        finally:
            for fut in futures:
                fut.cancel()
    finally:
        if client is not scheduler:
            client.close()
        if cluster is not None:
            cluster.close()
