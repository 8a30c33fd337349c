"""The [sweep] section of a scenario: the grid of protocol choices a sweep runs (axes, points, limits)."""

from __future__ import annotations

import math
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np

from carkinetics.errors import CarKineticsError, is_number, is_whole_number, printable, suggestion
from carkinetics.simulation.simulate import MAX_TIME as _MAX_TIME  # the largest event time the engine accepts
from carkinetics.stats.outcome import OUTCOME_PATTERN  # outcomes named in [sweep.plots]
#: The value a "none" entry of a variable axis stands for: an event at this time never happens
#: (the latest time an event may have, 2,700 years, beyond any follow-up).
NEVER = float(_MAX_TIME)
#: Labels of a variable axis meaning "this event does not happen".
NONE_LABELS = ("none",)

_SWEEP_KEYS = {"n", "seed", "per_patient", "km_step", "km_times", "axes", "plots", "notes", "description"}
_PLOT_KEYS = {"x", "lines", "outcomes", "heatmaps", "fixed", "km_endpoints"}
AXIS_KINDS = ("variable", "parameter", "arm", "options")
#: The largest grid a sweep accepts. A million points of even 100 patients each is 10^8
#: simulated patients; a larger grid is almost always a mistake (an axis written as a long
#: range), and its bookkeeping (grid.csv, sweep.json) would no longer be small.
MAX_GRID_POINTS = 1_000_000
#: Most Kaplan-Meier summary days (km.csv has one row per day, endpoint, arm and point).
MAX_KM_TIMES = 10_000
#: Largest seed (the random streams take a 63-bit seed).
MAX_SEED = 2 ** 63 - 1


class SweepError(CarKineticsError, ValueError):
    """A sweep cannot run as asked (e.g. resuming into a folder that holds another sweep)."""


def max_patients() -> int:
    """Most virtual patients per grid point (the largest cohort carkinetics simulates)."""
    from carkinetics.scenario.population import MAX_POPULATION

    return int(MAX_POPULATION)


def grid_size(lengths) -> int:
    """Points of a grid with axes of these lengths (an exact integer, however large)."""
    return math.prod(int(k) for k in lengths)


def _too_large(axes, size) -> str:
    dims = " x ".join(f"{len(a.labels)} {a.name}" for a in axes)
    return (f"the grid has {size:,} points ({dims}); a sweep accepts at most {MAX_GRID_POINTS:,}: "
            f"use fewer values per axis or split it into several sweeps")


def check_grid_size(spec) -> None:
    """Refuse a grid above :data:`MAX_GRID_POINTS` (computed from the axis lengths alone)."""
    size = spec.n_points
    if size > MAX_GRID_POINTS:
        raise SweepError(_too_large(spec.axes, size))


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
        """Points of the grid: the product of the axis lengths (computed, nothing is built)."""
        return grid_size(len(a.labels) for a in self.axes)

    def point(self, pid: int) -> GridPoint:
        """Grid point ``pid``, decoded from its id (mixed radix, the first axis varying slowest)."""
        pid = int(pid)
        if not 0 <= pid < self.n_points:
            raise SweepError(f"grid point {pid} does not exist (the grid has {self.n_points:,} points)")
        combo, rest = [], pid
        for axis in reversed(self.axes):
            rest, k = divmod(rest, len(axis.labels))
            combo.append(k)
        combo.reverse()
        labels, variables, parameters, arm = {}, {}, {}, None
        for axis, k in zip(self.axes, combo):
            labels[axis.name] = axis.labels[k]
            s = axis.settings[k]
            variables.update(s.get("variables", {}))
            parameters.update(s.get("parameters", {}))
            if s.get("arm") is not None:
                arm = s["arm"]
        return GridPoint(pid, labels, variables, parameters, arm)

    def points(self, ids=None) -> list:
        """Grid points ``ids`` (default: all of them), the first axis varying slowest.

        Only the points asked for are built: a few points of a large grid cost nothing.
        """
        if ids is None:
            check_grid_size(self)
            ids = range(self.n_points)
        return [self.point(i) for i in ids]

    def to_json(self) -> dict:
        return {"axes": [a.to_json() for a in self.axes], "n": self.n, "seed": self.seed,
                "per_patient": self.per_patient, "km_step": self.km_step,
                "km_times": None if self.km_times is None else list(self.km_times), "plots": self.plots}


def _parse_km_days(raw, times, errs) -> tuple:
    """``km_step`` and ``km_times`` of ``[sweep]``: the days Kaplan-Meier summaries report (problems in ``errs``)."""
    km_step = raw.get("km_step", 7.0)
    horizon = float(np.max(times)) if times is not None and len(times) else 0.0
    if not is_number(km_step) or km_step <= 0:
        errs.add("sweep.km_step", f"expected a positive number of days, got {km_step!r}")
        km_step = 7.0
    elif horizon / km_step > MAX_KM_TIMES:
        errs.add("sweep.km_step", f"{km_step!r} days over {horizon:g} days of follow-up gives more than "
                                  f"{MAX_KM_TIMES:,} Kaplan-Meier summary days; use a longer step")
        km_step = 7.0
    km_times = raw.get("km_times")
    if km_times is not None:
        if (not isinstance(km_times, list) or not km_times or not all(is_number(t) and t >= 0 for t in km_times)):
            errs.add("sweep.km_times", "expected a non-empty list of days >= 0")
            km_times = None
        elif times is not None and max(km_times) > horizon:
            errs.add("sweep.km_times", f"{max(km_times):g} is after the end of follow-up ({horizon:g} days)")
            km_times = None
        elif len(km_times) > MAX_KM_TIMES:
            errs.add("sweep.km_times", f"{len(km_times):,} days; at most {MAX_KM_TIMES:,} Kaplan-Meier summary "
                                       f"days are kept")
            km_times = None
        else:
            km_times = tuple(sorted({float(t) for t in km_times}))
    return km_step, km_times


def parse_sweep(raw, context) -> SweepSpec:
    """Parse ``[sweep]``: the axes of the grid, the patients per point and the summaries kept.

    Parameters
    ----------
    raw : object
        The ``[sweep]`` table as read.
    context : SectionContext
        The scenario being parsed (after its ``[variables]`` and ``[arms]``, which
        variable and arm axes name); problems go to ``context.errors``.

    Returns
    -------
    SweepSpec
        The grid (axes with problems left out).
    """
    errs = context.errors
    model = context.model
    if not isinstance(raw, dict):
        errs.add("sweep", "expected a table with [sweep.axes]")
        return SweepSpec(axes=())
    errs.unknown_keys("sweep", raw, _SWEEP_KEYS, "a key of [sweep]")
    n = raw.get("n")
    if n is not None and not (is_whole_number(n, 1) and n <= max_patients()):
        errs.add("sweep.n", f"expected a whole number of virtual patients per point from 1 to "
                            f"{max_patients():,}, got {n!r}")
        n = None
    seed = raw.get("seed")
    if seed is not None and not (is_whole_number(seed, 0) and seed <= MAX_SEED):
        errs.add("sweep.seed", f"expected a whole number from 0 to 2**63 - 1, got {seed!r}")
        seed = None
    per_patient = raw.get("per_patient", False)
    if not isinstance(per_patient, bool):
        errs.add("sweep.per_patient", f"expected true or false, got {per_patient!r}")
        per_patient = False
    km_step, km_times = _parse_km_days(raw, context.times, errs)

    variables = list(context.variables)
    arms = list(context.arm_names)
    params = list(model.parameter_names)
    event_time_names = context.event_time_names
    axes_raw = raw.get("axes", {})
    if not isinstance(axes_raw, dict) or not axes_raw:
        errs.add("sweep.axes", "expected a table of axes, e.g. dose_per_kg = [5e5, 1e6, 2e6]")
        axes_raw = {}
    axes = []
    failed = set()  # axes with problems (already reported): not reported again under [sweep.plots]
    set_by = {}  # name -> axis, to catch two axes setting the same thing
    for name, values in axes_raw.items():
        key = f"sweep.axes.{name}"
        axis = _parse_axis(name, values, key, errs, model, variables, arms, params, event_time_names,
                           scenario_path=context.path, base=context.parameters,
                           explicit=set((context.tables or {}).get("parameters") or {}))
        if axis is None:
            failed.add(name)
            continue
        for s in axis.settings:
            for target in list(s.get("variables", {})) + list(s.get("parameters", {})) + (
                    ["arm"] if s.get("arm") else []):
                other = set_by.get(target)
                if other is not None and other != name:
                    errs.add(key, f"'{target}' is also set by axis '{other}'; each name may vary along one axis")
                set_by[target] = name
        axes.append(axis)
    size = grid_size(len(a.labels) for a in axes)
    if size > MAX_GRID_POINTS:
        errs.add("sweep.axes", _too_large(axes, size))
    plots = raw.get("plots", {})
    if not isinstance(plots, dict):
        errs.add("sweep.plots", "expected a table (x, lines, outcomes, heatmaps, fixed)")
        plots = {}
    errs.unknown_keys("sweep.plots", plots, _PLOT_KEYS, "a key of [sweep.plots]")
    axis_names = [a.name for a in axes]
    known = set(axis_names) | failed | {"arm"}
    for key in ("x", "lines"):
        v = plots.get(key)
        if v is not None and not isinstance(v, str):
            errs.add(f"sweep.plots.{key}", f"expected the name of an axis, got {v!r}")
        elif v is not None and v not in known:
            errs.add(f"sweep.plots.{key}", f"'{v}' is not an axis of the sweep{suggestion(str(v), axis_names)}")
    for key in ("outcomes", "km_endpoints"):
        v = plots.get(key)
        if v is not None and (not isinstance(v, list)
                              or not all(isinstance(x, str) and OUTCOME_PATTERN.fullmatch(x) for x in v)):
            errs.add(f"sweep.plots.{key}", f"expected a list of endpoint names (e.g. [\"cr_d28\", \"os@365\"]), "
                                           f"got {v!r}")
    heatmaps = plots.get("heatmaps", []) or []
    if not isinstance(heatmaps, list):
        errs.add("sweep.plots.heatmaps", f"expected a list of pairs of axis names, got {heatmaps!r}")
        heatmaps = []
    for k, pair in enumerate(heatmaps):
        if (not isinstance(pair, list) or len(pair) != 2
                or not all(isinstance(p, str) and p in known for p in pair)):
            errs.add(f"sweep.plots.heatmaps[{k}]", f"expected a pair of axis names from {axis_names}, got {pair!r}")
    fixed = plots.get("fixed", {})
    if not isinstance(fixed, dict):
        errs.add("sweep.plots.fixed", "expected a table axis = value")
    else:
        by_name = {a.name: a for a in axes}
        for ax_name, v in fixed.items():
            if ax_name in failed:
                continue
            if ax_name not in by_name:
                errs.add(f"sweep.plots.fixed.{ax_name}", f"'{ax_name}' is not an axis of the sweep"
                                                         f"{suggestion(ax_name, axis_names)}")
            elif v not in by_name[ax_name].labels:
                errs.add(f"sweep.plots.fixed.{ax_name}", f"{v!r} is not a value of axis '{ax_name}' "
                                                         f"({list(by_name[ax_name].labels)})")
    return SweepSpec(axes=tuple(axes), n=n, seed=seed, per_patient=per_patient, km_step=float(km_step),
                     km_times=km_times, plots=dict(plots))


def _option_parameter_set(raw, key, errs, model, scenario_path) -> tuple:
    """The path and values of a named option's ``parameter_set`` file (relative to the scenario), or (None, {})."""
    from carkinetics.errors import ScenarioError
    from carkinetics.scenario.parameter_sets import load_parameter_set

    if not isinstance(raw, str) or not raw or len(raw) > 4096 or "\x00" in raw:
        errs.add(key, f"expected the path of a parameter-set file (relative to this scenario), got {raw!r:.200}")
        return None, {}
    path = Path(scenario_path).parent / raw
    if not path.is_file():
        errs.add(key, f"parameter-set file '{raw}' not found (looked for {path})")
        return None, {}
    try:
        return path, load_parameter_set(path, model)
    except ScenarioError as err:
        errs.add(key, f"parameter-set file '{raw}' could not be read:\n    " + str(err).replace("\n", "\n    "))
        return None, {}


def _own_values(values, base, explicit) -> dict:
    """The values of an option's parameter set that are its product's own: those that differ from the
    scenario's (its parameter sets') and that the scenario does not set itself in ``[parameters]``.

    The values a product shares with the scenario's set are left out, so that the scenario's own
    ``[parameters]`` and ``--set`` keep applying at every grid point.
    """
    return {k: v for k, v in values.items() if k not in explicit and base.get(k) != v}


def _parse_axis(name, values, key, errs, model, variables, arms, params, event_time_names, scenario_path=".",
                base=None, explicit=()):
    if isinstance(values, dict):  # named option sets
        if not values:
            errs.add(key, "expected at least one option, e.g. cd7 = { parameter = value }")
            return None
        labels, settings = [], []
        for opt, table in values.items():
            okey = f"{key}.{opt}"
            if not isinstance(table, dict) or not table:
                errs.add(okey, "expected a table of parameter or variable = number (and optionally "
                               "parameter_set = \"file.toml\")")
                continue
            vs, ps, set_path = {}, {}, None
            if "parameter_set" in table:  # a product's own values; the option's own apply on top
                set_path, values = _option_parameter_set(table["parameter_set"], f"{okey}.parameter_set", errs,
                                                         model, scenario_path)
                ps.update(_own_values(values, base or {}, explicit or ()))
            for target, v in table.items():
                tkey = f"{okey}.{target}"
                if target == "parameter_set":
                    continue
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
            settings.append({"variables": vs, "parameters": ps, "arm": None,
                             **({"parameter_set": str(set_path)} if set_path is not None else {})})
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
            elif is_number(v) and name in event_time_names and not 0 <= v <= NEVER:
                errs.add(key, f"'{name}' times an event: expected days in [0, {NEVER:g}] (or \"none\"), "
                              f"got {printable(v, 60)}")
                return None
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
