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

Every combination of axis values is a grid point (the first axis varies slowest). At each
point :func:`carkinetics.cohort.run_cohort` simulates ``n`` virtual patients with the
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

    grid.csv            point + one column per axis (labels as written: numbers, "none", option names)
    summary.csv         point, arm, endpoint, statistic, value, lower, upper, n
    km.csv              point, arm, endpoint, time, survival, lower, upper, n_at_risk, n
    points/<id>/        summary.csv and km.csv of that point; patients.csv.gz when asked
    sweep.json          provenance, the grid fingerprint and which points are finished
    figures/            written by `carkinetics plot` (and at the end of `carkinetics sweep`)

Each finished point is written atomically (staged, then renamed) before ``sweep.json``
records it, so an interrupted sweep keeps what finished and ``resume=True`` continues.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
import time as _time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import expressions as ex
from .errors import CarKineticsError, ScenarioError, is_number, is_whole_number, suggestion
from .scenario import register_section

#: The value a "none" entry of a variable axis stands for: an event at this time never happens.
NEVER = 1.0e12
#: Labels of a variable axis meaning "this event does not happen".
NONE_LABELS = ("none",)

SUMMARY_COLUMNS = ["point", "arm", "endpoint", "statistic", "value", "lower", "upper", "n"]
KM_COLUMNS = ["point", "arm", "endpoint", "time", "survival", "lower", "upper", "n_at_risk", "n"]
_SWEEP_KEYS = {"n", "seed", "per_patient", "km_step", "km_times", "axes", "plots", "notes", "description"}
_PLOT_KEYS = {"x", "lines", "outcomes", "heatmaps", "fixed", "km_endpoints"}
AXIS_KINDS = ("variable", "parameter", "arm", "options")


class SweepError(CarKineticsError, ValueError):
    """A sweep cannot run as asked (e.g. resuming into a folder that holds another sweep)."""


# ----------------------------------------------------------------------------------------
# the [sweep] section
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One axis of a sweep grid.

    Attributes
    ----------
    name : str
        Axis name: a variable, a parameter, ``arm``, or the name of an option axis.
    kind : str
        One of :data:`AXIS_KINDS`.
    labels : tuple
        The values as written (numbers, ``"none"``, option names, arm names).
    settings : tuple of dict
        Per value: ``{"variables": {...}, "parameters": {...}, "arm": str or None}``.
    """

    name: str
    kind: str
    labels: tuple
    settings: tuple

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "labels": list(self.labels),
                "settings": [dict(s) for s in self.settings]}


@dataclass(frozen=True)
class GridPoint:
    """One point of a sweep grid: what changes in the scenario there."""

    id: int
    labels: dict  # axis name -> label
    variables: dict
    parameters: dict
    arm: str | None

    @property
    def folder(self) -> str:
        return f"{self.id:04d}"


@dataclass(frozen=True)
class SweepSpec:
    """The parsed ``[sweep]`` section of a scenario."""

    axes: tuple
    n: int | None = None
    seed: int | None = None
    per_patient: bool = False
    km_step: float = 7.0
    km_times: tuple | None = None
    plots: dict = field(default_factory=dict)

    @property
    def axis_names(self) -> list:
        return [a.name for a in self.axes]

    @property
    def n_points(self) -> int:
        return int(np.prod([len(a.labels) for a in self.axes])) if self.axes else 1

    def points(self) -> list:
        """All grid points, the first axis varying slowest."""
        out = []
        ranges = [range(len(a.labels)) for a in self.axes]
        for pid, combo in enumerate(itertools.product(*ranges)):
            labels, variables, parameters, arm = {}, {}, {}, None
            for axis, k in zip(self.axes, combo):
                labels[axis.name] = axis.labels[k]
                s = axis.settings[k]
                variables.update(s.get("variables", {}))
                parameters.update(s.get("parameters", {}))
                if s.get("arm") is not None:
                    arm = s["arm"]
            out.append(GridPoint(pid, labels, variables, parameters, arm))
        return out

    def to_json(self) -> dict:
        return {"axes": [a.to_json() for a in self.axes], "n": self.n, "seed": self.seed,
                "per_patient": self.per_patient, "km_step": self.km_step,
                "km_times": None if self.km_times is None else list(self.km_times), "plots": self.plots}


def _variable_names(context) -> list:
    """Names of the scenario's [variables] (parsed by the cohort module, or read raw)."""
    names = context.get("variables")
    if isinstance(names, dict):
        return list(names)
    raw = context["data"].get("variables")
    return list(raw) if isinstance(raw, dict) else []


def _arm_names(context) -> list:
    names = context.get("arm_names")
    if names:
        return list(names)
    raw = context["data"].get("arms")
    return list(raw) if isinstance(raw, dict) else []


def _event_time_names(data) -> set:
    """Names used in the time expressions of the scenario's events (raw TOML)."""
    used = set()
    for ev in data.get("events", []) if isinstance(data.get("events"), list) else []:
        t = ev.get("time") if isinstance(ev, dict) else None
        if isinstance(t, str):
            try:
                used |= set(ex.names(ex.parse(t)))
            except CarKineticsError:
                pass  # the event parser reports it
    return used


def _parse_sweep(raw, context) -> SweepSpec:
    errs = context["errors"]
    model = context["model"]
    if not isinstance(raw, dict):
        errs.add("sweep", "expected a table with [sweep.axes]")
        return SweepSpec(axes=())
    errs.unknown_keys("sweep", raw, _SWEEP_KEYS, "a key of [sweep]")
    n = raw.get("n")
    if n is not None and not is_whole_number(n, 1):
        errs.add("sweep.n", f"expected a positive whole number of virtual patients per point, got {n!r}")
        n = None
    seed = raw.get("seed")
    if seed is not None and not is_whole_number(seed, 0):
        errs.add("sweep.seed", f"expected a non-negative integer, got {seed!r}")
        seed = None
    per_patient = raw.get("per_patient", False)
    if not isinstance(per_patient, bool):
        errs.add("sweep.per_patient", f"expected true or false, got {per_patient!r}")
        per_patient = False
    km_step = raw.get("km_step", 7.0)
    if not is_number(km_step) or km_step <= 0:
        errs.add("sweep.km_step", f"expected a positive number of days, got {km_step!r}")
        km_step = 7.0
    km_times = raw.get("km_times")
    if km_times is not None:
        if (not isinstance(km_times, list) or not km_times or not all(is_number(t) and t >= 0 for t in km_times)):
            errs.add("sweep.km_times", "expected a non-empty list of days >= 0")
            km_times = None
        else:
            km_times = tuple(sorted({float(t) for t in km_times}))

    variables = _variable_names(context)
    arms = _arm_names(context)
    params = list(model.parameter_names)
    event_time_names = _event_time_names(context["data"])
    axes_raw = raw.get("axes", {})
    if not isinstance(axes_raw, dict) or not axes_raw:
        errs.add("sweep.axes", "expected a table of axes, e.g. dose_per_kg = [5e5, 1e6, 2e6]")
        axes_raw = {}
    axes = []
    set_by = {}  # name -> axis, to catch two axes setting the same thing
    for name, values in axes_raw.items():
        key = f"sweep.axes.{name}"
        axis = _parse_axis(name, values, key, errs, model, variables, arms, params, event_time_names)
        if axis is None:
            continue
        for s in axis.settings:
            for target in list(s.get("variables", {})) + list(s.get("parameters", {})) + (
                    ["arm"] if s.get("arm") else []):
                other = set_by.get(target)
                if other is not None and other != name:
                    errs.add(key, f"'{target}' is also set by axis '{other}'; each name may vary along one axis")
                set_by[target] = name
        axes.append(axis)
    plots = raw.get("plots", {})
    if not isinstance(plots, dict):
        errs.add("sweep.plots", "expected a table (x, lines, outcomes, heatmaps, fixed)")
        plots = {}
    errs.unknown_keys("sweep.plots", plots, _PLOT_KEYS, "a key of [sweep.plots]")
    axis_names = [a.name for a in axes]
    for key in ("x", "lines"):
        v = plots.get(key)
        if v is not None and v not in axis_names and v != "arm":
            errs.add(f"sweep.plots.{key}", f"'{v}' is not an axis of the sweep{suggestion(str(v), axis_names)}")
    for k, pair in enumerate(plots.get("heatmaps", []) or []):
        if (not isinstance(pair, list) or len(pair) != 2
                or not all(p in axis_names or p == "arm" for p in pair)):
            errs.add(f"sweep.plots.heatmaps[{k}]", f"expected a pair of axis names from {axis_names}, got {pair!r}")
    fixed = plots.get("fixed", {})
    if not isinstance(fixed, dict):
        errs.add("sweep.plots.fixed", "expected a table axis = value")
    else:
        by_name = {a.name: a for a in axes}
        for ax_name, v in fixed.items():
            if ax_name not in by_name:
                errs.add(f"sweep.plots.fixed.{ax_name}", f"'{ax_name}' is not an axis of the sweep"
                                                         f"{suggestion(ax_name, axis_names)}")
            elif v not in by_name[ax_name].labels:
                errs.add(f"sweep.plots.fixed.{ax_name}", f"{v!r} is not a value of axis '{ax_name}' "
                                                         f"({list(by_name[ax_name].labels)})")
    return SweepSpec(axes=tuple(axes), n=n, seed=seed, per_patient=per_patient, km_step=float(km_step),
                     km_times=km_times, plots=dict(plots))


def _parse_axis(name, values, key, errs, model, variables, arms, params, event_time_names):
    if isinstance(values, dict):  # named option sets
        if not values:
            errs.add(key, "expected at least one option, e.g. cd7 = { parameter = value }")
            return None
        labels, settings = [], []
        for opt, table in values.items():
            okey = f"{key}.{opt}"
            if not isinstance(table, dict) or not table:
                errs.add(okey, "expected a table of parameter or variable = number")
                continue
            vs, ps = {}, {}
            for target, v in table.items():
                tkey = f"{okey}.{target}"
                if not is_number(v):
                    errs.add(tkey, f"expected a finite number, got {v!r}")
                    continue
                if target in params:
                    if _check_bounds(model, target, v, tkey, errs):
                        ps[target] = float(v)
                elif target in variables:
                    vs[target] = float(v)
                else:
                    errs.add(tkey, f"'{target}' is neither a parameter of model '{model.name}' nor a "
                                   f"[variables] entry{suggestion(target, params + variables)}")
            labels.append(str(opt))
            settings.append({"variables": vs, "parameters": ps, "arm": None})
        return Axis(name, "options", tuple(labels), tuple(settings))
    if not isinstance(values, list) or not values:
        errs.add(key, "expected a non-empty list of values, or a table of named options")
        return None
    if len(set(map(repr, values))) != len(values):
        errs.add(key, f"values must be distinct, got {values!r}")
        return None
    if name == "arm":
        ok = True
        for v in values:
            if not isinstance(v, str) or v not in arms:
                errs.add(key, f"{v!r} is not an arm of this scenario{suggestion(str(v), arms)} (arms: {arms})")
                ok = False
        if not ok:
            return None
        return Axis(name, "arm", tuple(values), tuple({"variables": {}, "parameters": {}, "arm": v} for v in values))
    if name in params:
        settings = []
        for v in values:
            if not is_number(v):
                errs.add(key, f"expected finite numbers for parameter '{name}', got {v!r}")
                return None
            if not _check_bounds(model, name, v, key, errs):
                return None
            settings.append({"variables": {}, "parameters": {name: float(v)}, "arm": None})
        return Axis(name, "parameter", tuple(values), tuple(settings))
    if name in variables:
        settings = []
        for v in values:
            if isinstance(v, str) and v.lower() in NONE_LABELS:
                if name not in event_time_names:
                    errs.add(key, f"'none' needs '{name}' to be the time of an event (it means the event never "
                                  f"happens); '{name}' is not used in any event's time")
                    return None
                settings.append({"variables": {name: NEVER}, "parameters": {}, "arm": None})
            elif is_number(v):
                settings.append({"variables": {name: float(v)}, "parameters": {}, "arm": None})
            else:
                errs.add(key, f"expected numbers (or \"none\" for an event time), got {v!r}")
                return None
        return Axis(name, "variable", tuple(values), tuple(settings))
    errs.add(key, f"'{name}' is not a [variables] entry, a parameter of model '{model.name}', or 'arm'"
                  f"{suggestion(name, variables + params + ['arm'])}; for named option sets write a table "
                  f"[sweep.axes.{name}] with one sub-table per option")
    return None


def _check_bounds(model, name, v, key, errs) -> bool:
    bounds = model.parameter(name).bounds
    if bounds and not (bounds[0] <= v <= bounds[1]):
        errs.add(key, f"{name} = {v} is outside the model's bounds [{bounds[0]}, {bounds[1]}]")
        return False
    return True


register_section("sweep", _parse_sweep)


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
        from .sensitivity import split_outcome

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

    path = Path(path)
    meta_path = path / "sweep.json"
    if not meta_path.exists():
        raise SweepError(f"{path}: not a sweep results folder (no sweep.json)")
    info = json.loads(meta_path.read_text(encoding="utf-8"))
    grid = _read_grid(path / "grid.csv")
    finished = sorted(info.get("finished", []))
    summaries, kms = [], []
    for pid in finished:
        folder = path / "points" / f"{pid:04d}"
        summaries.append(pd.read_csv(folder / "summary.csv", keep_default_na=False, na_values=[""]))
        kms.append(pd.read_csv(folder / "km.csv", keep_default_na=False, na_values=[""]))
    summary = (pd.concat(summaries, ignore_index=True) if summaries
               else pd.DataFrame(columns=SUMMARY_COLUMNS))
    km = pd.concat(kms, ignore_index=True) if kms else pd.DataFrame(columns=KM_COLUMNS)
    for df in (summary, km):
        if "arm" in df.columns:
            df["arm"] = df["arm"].astype(str)
    return SweepResult(grid=grid, summary=summary, km=km, info=info, path=path)


def _read_grid(path):
    import pandas as pd

    grid = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for col in grid.columns:
        if col != "point" and grid[col].dtype == object:
            grid[col] = grid[col].astype(str)
    return grid


def grid_frame(spec: SweepSpec):
    """The grid as a table: ``point`` and one column per axis (labels)."""
    import pandas as pd

    points = spec.points()
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

    from .summary import kaplan_meier

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
    from .cohort import run_cohort

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
        ``resume`` is not available.
    n, seed : int, optional
        Virtual patients per grid point and the seed (default: ``[sweep]``, then the
        scenario's population). The same seed at every point: common random numbers.
    jobs : int, optional
        Threads per cohort (local runs) or per Dask task.
    chunk_size : int, optional
        Patients per chunk inside a cohort (memory; results do not depend on it).
    per_patient : bool, optional
        Also write each point's per-patient table (``points/<id>/patients.csv.gz``).
    resume : bool
        Continue the sweep in ``output``: finished points are kept, the rest run.
    scheduler : str, optional
        Run on Dask: ``"local"`` for a local cluster, or the address of a scheduler
        (``tcp://host:8786``). Needs ``pip install 'carkinetics[distributed]'``.
    dask_workers : int, optional
        Workers of the local Dask cluster (default 2).
    progress : bool or Progress, optional
        ``True`` for a progress line on stderr.
    points : sequence of int, optional
        Only these grid points (ids); for tests and partial reruns.

    Returns
    -------
    SweepResult
    """
    import pandas as pd

    from .io import file_sha256, provenance, write_json
    from .scenario import load_scenario

    if not hasattr(scenario, "sections"):
        scenario = load_scenario(scenario)
    spec = scenario.sections.get("sweep")
    if spec is None:
        raise ScenarioError(scenario.path, ["sweep: this scenario has no [sweep] section (add [sweep.axes])"])
    n = n if n is not None else spec.n
    seed = seed if seed is not None else spec.seed
    keep = spec.per_patient if per_patient is None else bool(per_patient)
    es = scenario.sections.get("endpoints") or scenario.sections.get("outcomes")
    report_days = [d for days in getattr(es, "report_at", {}).values() for d in (days or ())]
    km_times = np.asarray(spec.km_times if spec.km_times is not None
                          else km_time_grid(scenario.horizon, spec.km_step, report_days), float)
    all_points = spec.points()
    todo_ids = list(range(len(all_points))) if points is None else sorted(set(int(p) for p in points))
    bad = [p for p in todo_ids if not 0 <= p < len(all_points)]
    if bad:
        raise SweepError(f"grid points {bad} do not exist (the grid has {len(all_points)} points)")
    grid = grid_frame(spec)
    fingerprint = _fingerprint(scenario, spec, n, seed, keep)
    info = {
        "scenario": str(scenario.path), "scenario_name": scenario.name,
        "scenario_sha256": file_sha256(scenario.path), "model": str(scenario.model.path),
        "model_sha256": scenario.model.content_hash, "n": n, "seed": seed, "per_patient": keep,
        "common_random_numbers": "the same seed at every grid point: the same virtual patients everywhere",
        "km_times": km_times.tolist(), "sweep": spec.to_json(), "fingerprint": fingerprint,
        "n_points": len(all_points), "finished": [], "point_stats": {}, "status": "running",
        "backend": "dask" if scheduler else "local",
        "endpoint_kinds": dict(getattr(es, "kinds", {}) or {}),
        "endpoint_descriptions": {k: v for k, v in (getattr(es, "descriptions", {}) or {}).items() if v},
    }
    out = Path(output) if output is not None else None
    done = {}
    if out is not None:
        meta_path = out / "sweep.json"
        if meta_path.exists():
            old = json.loads(meta_path.read_text(encoding="utf-8"))
            if not resume:
                raise SweepError(f"{out} already holds a sweep ({len(old.get('finished', []))} of "
                                 f"{old.get('n_points')} points finished); pass --resume to continue it or "
                                 f"choose another --output folder")
            if old.get("fingerprint") != fingerprint:
                raise SweepError(f"{out}: cannot resume: the sweep there was run with a different scenario, "
                                 f"model, grid, n, seed or per-patient setting (compare {meta_path})")
            info["finished"] = [p for p in old.get("finished", [])
                                if (out / "points" / f"{p:04d}" / "summary.csv").exists()]
            info["point_stats"] = old.get("point_stats", {})
            info["created"] = old.get("created")
        elif resume and not meta_path.exists() and out.exists() and any(out.iterdir()):
            raise SweepError(f"{out}: nothing to resume (no sweep.json)")
        out.mkdir(parents=True, exist_ok=True)
        info["provenance"] = provenance()
        info.setdefault("created", info["provenance"]["created"])
        if info.get("created") is None:
            info["created"] = info["provenance"]["created"]
        grid.to_csv(out / ".grid.csv.tmp", index=False)
        (out / ".grid.csv.tmp").replace(out / "grid.csv")
        write_json(out / "sweep.json", info)
        done = {p: None for p in info["finished"]}
    todo = [all_points[i] for i in todo_ids if i not in done]
    n_total = None if n is None else n * len(todo)
    bar = progress if isinstance(progress, Progress) else (
        Progress(len(todo), n_total, label=scenario.name) if progress else None)
    results = {}

    def finish(point, res):
        if out is not None:
            _write_point(out, point, res)
            info["finished"] = sorted(set(info["finished"]) | {point.id})
            info["point_stats"][str(point.id)] = {"n_patients": res["n_patients"],
                                                  "seconds": round(res["seconds"], 3)}
            info["endpoint_kinds"] = info["endpoint_kinds"] or res["kinds"]
            write_json(out / "sweep.json", info)
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
                      jobs=jobs, chunk_size=chunk_size, km_times=km_times, keep=keep)
        completed = True
    finally:
        if bar is not None:
            bar.close()
        if out is not None:
            finished_all = set(info["finished"]) >= set(range(len(all_points)))
            info["status"] = "complete" if finished_all else ("interrupted" if not completed else "partial")
            write_json(out / "sweep.json", info)
            _write_combined(out, info)

    if out is not None:
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
    res = SweepResult(grid=grid, summary=summary, km=km, info=info, path=None)
    res.patients = {i: results[i][2] for i in ids if results[i][2] is not None}
    return res


def _fingerprint(scenario, spec, n, seed, keep) -> str:
    from .io import file_sha256

    payload = json.dumps({"scenario": file_sha256(scenario.path), "model": scenario.model.content_hash,
                          "sweep": spec.to_json(), "n": n, "seed": seed, "per_patient": keep},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _write_point(out, point, res) -> None:
    from .io import atomic_output_dir

    with atomic_output_dir(out / "points" / point.folder) as staging:
        res["summary"].to_csv(staging / "summary.csv", index=False)
        res["km"].to_csv(staging / "km.csv", index=False)
        if res["patients"] is not None:
            res["patients"].to_csv(staging / "patients.csv.gz", index=False)


def _write_combined(out, info) -> None:
    """Rewrite summary.csv and km.csv from the finished points (atomically)."""
    import pandas as pd

    from .io import atomic_output_dir

    with atomic_output_dir(out) as staging:
        for name, cols in (("summary.csv", SUMMARY_COLUMNS), ("km.csv", KM_COLUMNS)):
            frames = [pd.read_csv(out / "points" / f"{p:04d}" / name, keep_default_na=False, na_values=[""])
                      for p in sorted(info["finished"])]
            df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
            df.to_csv(staging / name, index=False)


# ----------------------------------------------------------------------------------------
# Dask
# ----------------------------------------------------------------------------------------

_WORKER_SCENARIOS: dict = {}


def _dask_point(scenario_path, scenario_sha, point, n, seed, jobs, chunk_size, km_times, keep):
    """A Dask task: load the scenario once per worker, run one grid point."""
    from .scenario import load_scenario

    key = (str(scenario_path), scenario_sha)
    sc = _WORKER_SCENARIOS.get(key)
    if sc is None:
        sc = _WORKER_SCENARIOS[key] = load_scenario(scenario_path)
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


def _run_dask(scenario, todo, finish, *, scheduler, n_workers, n, seed, jobs, chunk_size, km_times, keep):
    """Submit one task per grid point; write each as it completes."""
    from .io import file_sha256

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
        futures = [client.submit(_dask_point, path, sha, p, n, seed, jobs or 1, chunk_size, km_times, keep,
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
