"""Calibration of a model across products and trials: one parameter set per product.

A *calibration file* (TOML, data: nothing in it is executed) declares

* the model and the **products** (e.g. donor-derived CD7 CAR-T, autologous CD7 CAR-T,
  CD5 CAR-T), each with the scenarios of the trials that used it;
* the **estimated** parameters, each either shared by all products (one value) or
  product-specific (one value per listed product), with bounds on the log scale;
* the parameters deliberately **fixed** at their cited values because the targets cannot
  identify them (with the reason: the calibration says so in its outputs);
* per-target settings: a standard error where the paper gives no interval, a weight, or
  an exclusion with its reason.

The targets are the outcome rows each scenario lists in its ``[targets]`` section (the
rows ``carkinetics validate`` compares), looked up in the reference table. The distance
and the optimiser are those of :func:`carkinetics.fit.individual.fit_targets`: standardised squared
distances on the log scale (linear for proportions), common random numbers (every
scenario's virtual cohort is the same patients at every step), scipy's differential
evolution polished by Nelder-Mead, or Nelder-Mead from the model values.

:func:`calibrate` runs it; :func:`write_calibration` writes one parameter-set file per
product (``[parameters]``, read by a scenario's ``[scenario] parameter_set``), the
comparison of every target before and after, the optimiser runs and ``calibration.json``
(provenance: file hashes, cohort size, seed, objective, versions, command) to a results
folder: ``carkinetics calibrate`` writes to ``--output``, by default
``results/calibration/<name>`` (:func:`default_output`). The file's ``[calibration] output``
names the folder of the parameter sets that scenarios read (e.g. ``models/calibrated/...``):
it is written only when asked (``--write-parameter-sets``), never by default.

Example calibration file::

    [calibration]
    name = "cart_tall"
    model = "../cart_tall.toml"
    n = 500                    # virtual patients per scenario and evaluation
    seed = 1                   # common random numbers
    method = "nelder-mead"
    output = "../calibrated/cart_tall"   # the parameter sets scenarios read; written only with
                                         # carkinetics calibrate --write-parameter-sets

    [products.cd7_donor]
    scenarios = ["../../scenarios/seed_s2_pan2021_cd7.toml"]

    [products.cd7_auto]
    scenarios = ["../../scenarios/seed_s4_xiao2025_cd7_auto.toml"]

    [estimate.kill_max]                 # shared by every product
    bounds = [0.3, 3.0]

    [estimate.product_fitness]          # one value per listed product
    products = ["cd7_auto"]
    bounds = [0.2, 1.0]

    [fixed.car_effector_death]
    reason = "Stein 2019 alpha; the response rates do not inform the contraction rate"

    [targets.s4_os_median]
    se = 0.35
    note = "no interval reported: log-scale SE of a median ~ 1/sqrt(events), 8 events (assumption)"
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from carkinetics.errors import CarKineticsError, ProblemCollector, ScenarioError, is_number, is_whole_number, printable, suggestion
from carkinetics.scenario.population import MAX_POPULATION

METHODS = ("nelder-mead", "differential_evolution")
_HEAD_KEYS = {"name", "description", "model", "n", "seed", "method", "starts", "maxiter", "popsize",
              "output", "reference", "jobs", "notes"}
_PRODUCT_KEYS = {"description", "scenarios"}
_ESTIMATE_KEYS = {"products", "bounds", "note"}
_FIXED_KEYS = {"reason"}
_TARGET_KEYS = {"se", "weight", "exclude", "note"}
_PROBABILITY_STATISTICS = ("proportion", "km_estimate", "cumulative_incidence")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class CalibrationError(CarKineticsError, ValueError):
    """A calibration file or run has a problem."""


class CalibrationFileError(ScenarioError):
    kind = "calibration"


@dataclass(frozen=True)
class Estimate:
    """One estimated quantity: a model parameter, shared or for one product."""

    parameter: str
    product: str | None  # None: shared by every product
    log_lower: float
    log_upper: float
    initial: float
    note: str = ""

    @property
    def label(self) -> str:
        return self.parameter if self.product is None else f"{self.parameter}[{self.product}]"

    def applies_to(self, product: str) -> bool:
        return self.product is None or self.product == product


@dataclass
class CalibrationTarget:
    """A reported number one scenario must reproduce, with its standard error."""

    target_id: str
    product: str
    scenario: object
    spec: object  # validate.TargetSpec
    statistic: str
    time: float | None
    reported: float
    lower: float
    upper: float
    observed: float  # on the fitting scale
    se: float
    se_source: str
    log_scale: bool
    weight: float = 1.0
    note: str = ""


@dataclass
class Calibration:
    """A parsed calibration file."""

    path: Path
    name: str
    description: str
    model: object
    products: dict  # name -> list of Scenario
    estimates: list  # Estimate
    fixed: dict  # parameter -> reason
    targets: list  # CalibrationTarget
    excluded: dict  # target_id -> reason
    n: int = 500
    seed: int = 1
    method: str = "nelder-mead"
    starts: int = 1
    maxiter: int | None = None
    popsize: int = 8
    output: Path | None = None  # [calibration] output: the parameter sets scenarios read
    reference_path: Path | None = None
    jobs: int | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def labels(self) -> list:
        return [e.label for e in self.estimates]

    def overrides(self, x, product) -> dict:
        """Parameter values for one product at log-parameters ``x``."""
        return {e.parameter: float(math.exp(v)) for e, v in zip(self.estimates, x) if e.applies_to(product)}

    def initial_x(self) -> np.ndarray:
        return np.array([min(max(math.log(e.initial), e.log_lower), e.log_upper) if e.initial > 0
                         else 0.5 * (e.log_lower + e.log_upper) for e in self.estimates])


def _int(head, key, default, errs, minimum=1, maximum=10**9):
    v = head.get(key, default)
    if v is None:
        return None
    if not is_whole_number(v, minimum) or v > maximum:
        top = "2**63 - 1" if maximum == 2**63 - 1 else f"{maximum:,}"
        errs.add(f"calibration.{key}", f"expected a whole number from {minimum} to {top}, got {printable(v, 60)}")
        return default
    return int(v)


def load_calibration(path) -> Calibration:
    """Read and check a calibration file (every problem reported at once).

    Raises
    ------
    CalibrationFileError
        Naming the file and the key: unknown sections or keys, unknown products,
        parameters or targets (with close-match suggestions), bounds that are not a
        positive interval, an estimated parameter that a scenario also sets in its own
        ``[parameters]`` (it would shadow the calibrated value), targets without a
        standard error.
    """
    from carkinetics.scenario.load import header_and_model, load_scenario, read_toml
    from carkinetics.scenario.reference import load_targets
    from carkinetics.scenario.targets import TargetSpec  # noqa: F401  (registers the [targets] scenario section)

    path = Path(path)
    data = read_toml(path, CalibrationFileError)
    errs = ProblemCollector(path, CalibrationFileError)
    sections = {"calibration", "products", "estimate", "fixed", "targets"}
    for key in data:
        if key not in sections:
            errs.unknown_name(key, key, sorted(sections), "a section of a calibration file")
    head, model = header_and_model(data, "calibration", _HEAD_KEYS, path, errs)
    n = _int(head, "n", 500, errs, minimum=2, maximum=MAX_POPULATION)
    seed = _int(head, "seed", 1, errs, minimum=0, maximum=2**63 - 1)
    starts = _int(head, "starts", 1, errs)
    maxiter = _int(head, "maxiter", None, errs)
    popsize = _int(head, "popsize", 8, errs, minimum=2)
    jobs = _int(head, "jobs", None, errs)
    name = head.get("name", path.stem)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        errs.add("calibration.name", f"expected a name of letters, digits, '_', '-' or '.' (it names the "
                                     f"results folder results/calibration/<name>), got {name!r}")
        name = "calibration"
    method = head.get("method", "nelder-mead")
    if not isinstance(method, str) or method not in METHODS:
        errs.add("calibration.method", f"expected one of {', '.join(METHODS)}, got {method!r}"
                                       f"{suggestion(str(method), METHODS)}")
    output = head.get("output")
    if output is not None and not (isinstance(output, str) and output.strip()):
        errs.add("calibration.output", f"expected the folder of the parameter sets (relative to this file; "
                                       f"written only with --write-parameter-sets), got {output!r}")
        output = None
    reference_path = None
    if "reference" in head:
        ref = head["reference"]
        if not isinstance(ref, str) or not (path.parent / ref).is_file():
            errs.add("calibration.reference", f"expected the path of a reference target table (CSV, relative "
                                              f"to this file), got {ref!r}")
        else:
            reference_path = path.parent / ref

    # ---- products and their scenarios
    products = {}
    raw_products = data.get("products")
    if not isinstance(raw_products, dict) or not raw_products:
        errs.add("products", "expected at least one [products.<name>] table with 'scenarios'")
        raw_products = {}
    for pname, spec in raw_products.items():
        key = f"products.{pname}"
        if not isinstance(spec, dict):
            errs.add(key, "expected a table with 'scenarios' (a list of scenario files)")
            continue
        errs.unknown_keys(key, spec, _PRODUCT_KEYS, f"a key of [{key}]")
        files = spec.get("scenarios")
        if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
            errs.add(f"{key}.scenarios", f"expected a non-empty list of scenario files, got {files!r}")
            continue
        loaded = []
        twice = sorted({f for f in files if files.count(f) > 1})
        if twice:
            errs.add(f"{key}.scenarios", f"listed more than once: {', '.join(twice)}")
            continue
        for f in files:
            try:
                sc = load_scenario(path.parent / f)
            except CarKineticsError as err:
                errs.add(f"{key}.scenarios", f"scenario '{f}' could not be loaded:\n    "
                         + str(err).replace("\n", "\n    "))
                continue
            if sc.model.content_hash != model.content_hash:
                errs.add(f"{key}.scenarios", f"scenario '{f}' uses model file {sc.model.path}, not the calibrated "
                                             f"model {model.path}")
                continue
            loaded.append(sc)
        products[pname] = loaded

    # ---- estimates
    estimates = []
    raw_est = data.get("estimate")
    if not isinstance(raw_est, dict) or not raw_est:
        errs.add("estimate", "expected at least one [estimate.<parameter>] table")
        raw_est = {}
    for pname, spec, key in _parameter_tables(raw_est, "estimate", _ESTIMATE_KEYS, model, errs):
        par = model.parameter(pname)
        b = spec.get("bounds", par.bounds)
        ok = (isinstance(b, (list, tuple)) and len(b) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b))
        if not ok or not (0 < b[0] < b[1] < math.inf):
            errs.add(f"{key}.bounds", f"expected [lower, upper] with 0 < lower < upper (estimated on the log "
                                      f"scale), got {b!r}")
            continue
        if par.bounds and (b[0] < par.bounds[0] or b[1] > par.bounds[1]):
            errs.add(f"{key}.bounds", f"[{b[0]}, {b[1]}] reaches outside the model's bounds "
                                      f"[{par.bounds[0]}, {par.bounds[1]}] ({par.unit})")
            continue
        which = spec.get("products", "all")
        if which == "all":
            targets_of = [None]
        elif isinstance(which, list) and which and all(isinstance(p, str) for p in which):
            targets_of = []
            for p in which:
                if p not in raw_products:
                    errs.add(f"{key}.products", f"'{p}' is not a product of this calibration"
                                                f"{suggestion(p, list(raw_products))}")
                else:
                    targets_of.append(p)
        else:
            errs.add(f"{key}.products", f"expected \"all\" (one shared value) or a list of product names, "
                                        f"got {which!r}")
            continue
        note = spec.get("note", "")
        if not isinstance(note, str):
            errs.add(f"{key}.note", f"expected a text, got {note!r}")
            note = ""
        for p in targets_of:
            scs = products.get(p, []) if p else [s for v in products.values() for s in v]
            values = [s.parameter_vector()[model.parameter_index(pname)] for s in scs] or [par.value]
            init = float(np.median(values))
            estimates.append(Estimate(pname, p, math.log(b[0]), math.log(b[1]), init, note))
        for p, scs in products.items():
            if not any(e.parameter == pname and e.applies_to(p) for e in estimates):
                continue
            for sc in scs:
                where = _shadowing(sc, pname)
                if where:
                    errs.add(key, f"scenario {sc.path.name} sets '{pname}' in {where}, which would shadow the "
                                  f"calibrated value: remove it there (the calibrated value comes from the "
                                  f"product's parameter set)")

    # ---- fixed (documented non-identifiable parameters)
    fixed = {}
    raw_fixed = data.get("fixed", {})
    if not isinstance(raw_fixed, dict):
        errs.add("fixed", "expected [fixed.<parameter>] tables with 'reason'")
        raw_fixed = {}
    for pname, spec, key in _parameter_tables(raw_fixed, "fixed", _FIXED_KEYS, model, errs):
        if pname in raw_est:
            errs.add(key, f"'{pname}' is both estimated and fixed")
            continue
        reason = spec.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            errs.add(f"{key}.reason", "say why the parameter is fixed (which source, why the targets cannot "
                                      "identify it)")
            continue
        fixed[pname] = reason.strip()

    # ---- targets
    raw_targets = data.get("targets", {})
    if not isinstance(raw_targets, dict):
        errs.add("targets", "expected [targets.<target_id>] tables (keys: se, weight, exclude, note)")
        raw_targets = {}
    try:
        reference = load_targets(reference_path)
    except CarKineticsError as err:
        errs.add("calibration.reference", str(err))
        errs.raise_if_any()
    targets, excluded = _collect_targets(products, raw_targets, reference, errs)
    if not targets and not errs:
        errs.add("targets", "no target to fit: the scenarios list no outcome rows with a standard error")
    if not estimates and not errs:
        errs.add("estimate", "nothing to estimate")
    errs.raise_if_any()
    out = (path.parent / output) if output else None
    return Calibration(path=path, name=name, description=str(head.get("description", "")),
                       model=model, products=products, estimates=estimates, fixed=fixed, targets=targets,
                       excluded=excluded, n=n, seed=seed, method=method, starts=starts, maxiter=maxiter,
                       popsize=popsize, output=out, reference_path=reference_path, jobs=jobs, raw=data)


def _parameter_tables(raw, section, allowed, model, errs):
    """``(parameter, table, key)`` of the ``[section.<parameter>]`` tables that name a model
    parameter and are tables; unknown parameters and keys are recorded in ``errs``."""
    from carkinetics.scenario.load import parameter_items

    for pname, spec, key in parameter_items(raw, section, model, errs, "table"):
        if not isinstance(spec, dict):
            errs.add(key, f"expected a table (keys: {', '.join(sorted(allowed))})")
            continue
        errs.unknown_keys(key, spec, allowed, f"a key of [{key}]")
        yield pname, spec, key


def _shadowing(scenario, name) -> str:
    """Where a scenario sets parameter ``name`` to a value that ignores its typical value ('' if nowhere)."""
    import re

    raw = scenario.raw
    own = raw.get("parameters", {})
    if isinstance(own, dict) and name in own:
        return "its own [parameters]"
    uses = re.compile(rf"\b{re.escape(name)}\b")
    pop = raw.get("population", {}).get("parameters", {}) if isinstance(raw.get("population"), dict) else {}
    if isinstance(pop, dict) and name in pop and not uses.search(str(pop[name])):
        return "[population.parameters]"
    arms = raw.get("arms", {}) if isinstance(raw.get("arms"), dict) else {}
    for arm, spec in arms.items():
        ap = spec.get("parameters", {}) if isinstance(spec, dict) else {}
        if isinstance(ap, dict) and name in ap and not uses.search(str(ap[name])):
            return f"[arms.{arm}] parameters"
    return ""


def _collect_targets(products, raw_targets, reference, errs):
    from carkinetics.fit.individual import Target
    from carkinetics.studies.validate import _float

    by_id = reference.set_index("target_id")
    seen = {}
    targets, excluded = [], {}
    for product, scenarios in products.items():
        for sc in scenarios:
            for tid, spec in (sc.sections.get("targets") or {}).items():
                if tid not in by_id.index:
                    errs.add(f"products.{product}.scenarios", f"{sc.path.name}: targets.{tid} is not in the "
                                                              f"reference table{suggestion(tid, list(by_id.index))}")
                    continue
                if spec.role != "outcome":
                    excluded[tid] = "protocol input of its scenario (role = input)"
                    continue
                if tid in seen:
                    errs.add(f"products.{product}.scenarios", f"target '{tid}' is listed by both {seen[tid]} and "
                                                              f"{sc.path.name}")
                    continue
                seen[tid] = sc.path.name
                ref = by_id.loc[tid]
                settings = raw_targets.get(tid, {})
                if not isinstance(settings, dict):
                    errs.add(f"targets.{tid}", "expected a table (keys: se, weight, exclude, note)")
                    continue
                errs.unknown_keys(f"targets.{tid}", settings, _TARGET_KEYS, f"a key of [targets.{tid}]")
                note = settings.get("note", "")
                if not isinstance(note, str):
                    errs.add(f"targets.{tid}.note", f"expected a text, got {note!r}")
                    note = ""
                if not isinstance(settings.get("exclude", False), bool):
                    errs.add(f"targets.{tid}.exclude", f"expected true or false, got {settings['exclude']!r}")
                    continue
                if settings.get("exclude", False) is True:
                    if not note:
                        errs.add(f"targets.{tid}.note", "say why the target is excluded")
                    excluded[tid] = note
                    continue
                statistic = spec.statistic or str(ref["statistic"])
                time = spec.time if spec.time is not None else _float(ref.get("timepoint_days"))
                time = None if time is None or not math.isfinite(time) else time
                value = _float(ref["value"])
                tg = Target(target_id=tid, quantity=str(ref["quantity"]),
                            statistic="proportion" if statistic in _PROBABILITY_STATISTICS else statistic,
                            value=value, lower=_float(ref.get("lower")), upper=_float(ref.get("upper")),
                            ci_method=str(ref.get("ci_method") or "none"), n=_float(ref.get("n")))
                se_given = settings.get("se")
                if se_given is not None:
                    if not is_number(se_given) or not se_given > 0:
                        errs.add(f"targets.{tid}.se", f"expected a standard error > 0 on the fitting scale, "
                                                      f"got {se_given!r}")
                        continue
                    if not note:
                        errs.add(f"targets.{tid}.note", "say where the standard error comes from")
                    se, how = float(se_given), f"given in the calibration file: {note}"
                else:
                    se, how = tg.standard_error()
                    if how.startswith("default"):
                        excluded[tid] = ("no reported interval and no 'se' in the calibration file "
                                         "(give [targets.%s] se = ... with its reason to fit it)" % tid)
                        continue
                weight = settings.get("weight", 1.0)
                if not is_number(weight) or not weight >= 0:
                    errs.add(f"targets.{tid}.weight", f"expected a finite number >= 0, got {weight!r}")
                    continue
                targets.append(CalibrationTarget(
                    target_id=tid, product=product, scenario=sc, spec=spec, statistic=statistic, time=time,
                    reported=value, lower=tg.lower, upper=tg.upper,
                    observed=math.log(value) if tg.log_scale else value, se=se, se_source=how,
                    log_scale=tg.log_scale, weight=float(weight), note=note))
    unknown = [t for t in raw_targets if t not in seen and t not in excluded]
    for t in unknown:
        errs.add(f"targets.{t}", f"'{t}' is not an outcome target of any scenario of this calibration"
                                 f"{suggestion(t, list(seen))}")
    return targets, excluded


# ----------------------------------------------------------------------------------------
# the objective
# ----------------------------------------------------------------------------------------
class JointCohorts:
    """Simulated statistics of every target at log-parameters ``x``: one cohort per scenario.

    Every scenario's virtual cohort uses the calibration's ``n`` and ``seed`` at every
    evaluation (common random numbers) with the product's current parameter values.
    """

    def __init__(self, cal: Calibration, n=None, jobs=None):
        self.cal = cal
        self.n = int(n or cal.n)
        self.jobs = jobs if jobs is not None else cal.jobs
        self.n_evaluations = 0

    def patients(self, x):
        from carkinetics.cohort.pipeline import run_cohort

        tables = {}
        for product, scenarios in self.cal.products.items():
            over = self.cal.overrides(x, product)
            for sc in scenarios:
                if not any(t.scenario is sc for t in self.cal.targets):
                    continue
                res = run_cohort(sc, n=self.n, seed=self.cal.seed, jobs=self.jobs, parameters=over, bands=False)
                tables[id(sc)] = res.patients
        return tables

    def statistics(self, x) -> np.ndarray:
        """Simulated value of each target (vector, the calibration's target order)."""
        from carkinetics.studies.validate import cohort_statistic

        self.n_evaluations += 1
        tables = self.patients(x)
        out = np.empty(len(self.cal.targets))
        for k, tg in enumerate(self.cal.targets):
            try:
                out[k] = cohort_statistic(tables[id(tg.scenario)], tg.spec, tg.statistic, tg.time)[0]
            except (ValueError, KeyError) as err:
                raise CalibrationError(f"{tg.scenario.path}: targets.{tg.target_id}: {err}") from None
        return out

    def objective(self, X) -> np.ndarray:
        from carkinetics.fit.individual import target_distance

        X = np.atleast_2d(X)
        st = np.column_stack([self.statistics(x) for x in X])
        t = self.cal.targets
        return target_distance(st, [g.observed for g in t], [g.se for g in t], [g.log_scale for g in t],
                               [g.weight for g in t])


@dataclass
class CalibrationResult:
    """Result of :func:`calibrate`."""

    calibration: Calibration
    x: np.ndarray
    x_initial: np.ndarray
    objective: float
    objective_initial: float
    comparison: object  # pandas.DataFrame
    starts: object  # pandas.DataFrame
    n_at_best: int
    n_evaluations: int
    n: int
    seconds: float

    @property
    def estimates(self) -> dict:
        return {e.label: float(math.exp(v)) for e, v in zip(self.calibration.estimates, self.x)}

    def parameter_set(self, product) -> dict:
        """The calibrated values of one product (shared and product-specific)."""
        return self.calibration.overrides(self.x, product)

    def table(self):
        import pandas as pd

        rows = []
        at = self.starts[self.starts["at_best"]]
        for e, v, v0 in zip(self.calibration.estimates, self.x, self.x_initial):
            par = self.calibration.model.parameter(e.parameter)
            vals = at[e.label].to_numpy(float) if e.label in at else np.array([])
            rows.append({"parameter": e.parameter, "product": e.product or "all (shared)",
                         "estimate": math.exp(v), "initial": math.exp(v0), "unit": par.unit,
                         "lower_bound": math.exp(e.log_lower), "upper_bound": math.exp(e.log_upper),
                         "at_bound": bool(min(v - e.log_lower, e.log_upper - v) < 1e-3),
                         "spread_at_best": float(vals.max() / vals.min() - 1) if len(vals) else math.nan,
                         "source_before": par.source, "note": e.note})
        return pd.DataFrame(rows)


def calibrate(cal: Calibration, *, n=None, method=None, starts=None, maxiter=None, jobs=None, progress=None):
    """Fit the calibration's estimates to its targets.

    Parameters
    ----------
    cal : Calibration
        From :func:`load_calibration`.
    n, method, starts, maxiter, jobs :
        Overrides of the file's settings (patients per scenario, optimiser, optimiser
        runs, its iteration budget: generations of differential evolution, or
        Nelder-Mead iterations per estimate).
    progress : callable(str), optional
        Called with a line after each evaluation batch.

    Returns
    -------
    CalibrationResult
    """
    import time

    import pandas as pd

    from carkinetics.fit.individual import minimise_distance

    method = method or cal.method
    if method not in METHODS:
        raise CalibrationError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    starts = int(starts or cal.starts)
    maxiter = maxiter or cal.maxiter
    t0 = time.perf_counter()
    joint = JointCohorts(cal, n=n, jobs=jobs)
    lo = np.array([e.log_lower for e in cal.estimates])
    hi = np.array([e.log_upper for e in cal.estimates])
    x0 = cal.initial_x()
    st0 = joint.statistics(x0)
    best = [math.inf]

    def objective(X):
        f = joint.objective(X)
        best[0] = min(best[0], float(np.min(f)))
        if progress is not None:
            progress(f"evaluations {joint.n_evaluations}, best objective {best[0]:.4g}")
        return f

    k = len(cal.estimates)
    starts_df, x, n_best = minimise_distance(
        objective, lo, hi, x0, cal.labels, method=method, starts=starts, seed=cal.seed, popsize=cal.popsize,
        maxiter=maxiter or 30, tol=1e-3, polish_maxiter=(maxiter or 60) * k if method == "nelder-mead" else 40 * k)
    st = joint.statistics(x)
    t = cal.targets
    from carkinetics.fit.individual import target_distance

    f0 = float(target_distance(st0[:, None], [g.observed for g in t], [g.se for g in t],
                               [g.log_scale for g in t], [g.weight for g in t])[0])
    rows = []
    for g, a, b in zip(t, st0, st):
        h = (lambda v: math.log(max(v, 1e-300))) if g.log_scale else (lambda v: v)
        contrib = (lambda v: g.weight * ((h(v) - g.observed) / g.se) ** 2 if math.isfinite(v) else math.inf)
        rows.append({"target_id": g.target_id, "product": g.product, "scenario": g.scenario.name,
                     "statistic": g.statistic, "timepoint_days": g.time, "reported": g.reported,
                     "reported_lower": g.lower, "reported_upper": g.upper, "scale": "log" if g.log_scale else "linear",
                     "se": g.se, "se_source": g.se_source, "weight": g.weight, "simulated_initial": a,
                     "simulated": b, "contribution_initial": contrib(a), "contribution": contrib(b),
                     "inside_initial": _inside(a, g), "inside": _inside(b, g)})
    comparison = pd.DataFrame(rows)
    obj = float(comparison["contribution"].sum())
    return CalibrationResult(calibration=cal, x=np.asarray(x, float), x_initial=x0, objective=obj,
                             objective_initial=f0, comparison=comparison, starts=starts_df, n_at_best=n_best,
                             n_evaluations=joint.n_evaluations, n=joint.n, seconds=time.perf_counter() - t0)


def _inside(v, g):
    if not (math.isfinite(g.lower) and math.isfinite(g.upper) and math.isfinite(v)):
        return None
    return bool(g.lower - 1e-12 <= v <= g.upper + 1e-12)


# ----------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------
def default_output(cal: Calibration) -> Path:
    """Where ``carkinetics calibrate`` writes without ``--output``: ``results/calibration/<name>``
    (relative to the current folder). Never the parameter sets the scenarios read (the
    file's ``[calibration] output``): those are replaced only when asked."""
    return Path("results") / "calibration" / cal.name


#: Files :func:`write_calibration` writes besides one ``<product>.toml`` per product.
RECORD_FILES = ("estimates.csv", "comparison.csv", "starts.csv", "calibration.json", "comparison.png")


def calibration_files(cal: Calibration) -> list:
    """Names of the files a calibration writes into its folder."""
    return [f"{p}.toml" for p in cal.products] + list(RECORD_FILES)


def check_calibration_output(cal: Calibration, directory) -> Path:
    """Refuse a folder the calibration cannot write to, before anything is fitted.

    Also a folder holding files that no carkinetics run wrote (the folder belongs to the
    calibration: the files of an earlier calibration there are replaced, and those it does not
    write again removed).
    """
    from carkinetics.io import atomic as io
    from carkinetics.studies.sweep import check_output_folder

    directory = check_output_folder(directory)
    io.check_output_dir(directory, clean=True, known=calibration_files(cal))
    return directory


def calibration_provenance(result: CalibrationResult, command="") -> dict:
    """Where a calibration came from: files and their hashes, settings, objective, versions."""
    from carkinetics.io.atomic import file_sha256, provenance
    from carkinetics.scenario.reference import default_targets_path

    cal = result.calibration
    ref = cal.reference_path or default_targets_path()
    scen = {sc.path.name: file_sha256(sc.path) for scs in cal.products.values() for sc in scs}
    sets = {str(p): file_sha256(p) for scs in cal.products.values() for sc in scs
            for p in getattr(sc, "parameter_sets", ())}
    info = {"kind": "joint calibration to reported targets (carkinetics calibrate)",
            "calibration_file": str(cal.path), "calibration_sha256": file_sha256(cal.path),
            "model": str(cal.model.path), "model_sha256": file_sha256(cal.model.path),
            "reference_table": str(ref), "reference_sha256": file_sha256(ref), "scenarios_sha256": scen,
            "parameter_sets_read_sha256": sets,
            "patients_per_scenario": result.n, "seed": cal.seed, "method": cal.method,
            "objective": result.objective, "objective_initial": result.objective_initial,
            "objective_definition": "sum over targets of weight * ((h(simulated) - h(reported)) / se)^2, "
                                    "h = log for positive statistics, identity for probabilities",
            "n_targets": len(cal.targets), "n_evaluations": result.n_evaluations,
            "optimiser_runs_at_best": f"{result.n_at_best} of {len(result.starts)}",
            "seconds": round(result.seconds, 1)}
    if command:
        info["command"] = command
    return provenance(info)


def parameter_set_text(result: CalibrationResult, product: str, prov: dict) -> str:
    """The parameter-set file of one product (read by ``[scenario] parameter_set``)."""
    from carkinetics.fit.individual import _toml_value

    cal = result.calibration
    lines = [f"# Calibrated parameter set of product '{product}' ({cal.name}), written by `carkinetics calibrate`.",
             "# A scenario uses it with  [scenario] parameter_set = \"<path of this file>\"; its own",
             "# [parameters] apply on top. Do not edit by hand: re-run the calibration.",
             f"# Calibration file: {cal.path.name} (sha256 {prov['calibration_sha256'][:16]}...)",
             f"# Model: {Path(cal.model.path).name} (sha256 {prov['model_sha256'][:16]}...)",
             f"# Fitted to {len(cal.targets)} reported targets of "
             f"{', '.join(sorted({t.scenario.name for t in cal.targets}))}",
             f"# Objective {result.objective:.4g} (initial {result.objective_initial:.4g}); "
             f"{result.n} virtual patients per scenario, seed {cal.seed}; created {prov.get('created', '')}",
             "# Full provenance, the comparison of every target and the fixed parameters: calibration.json",
             "", "[calibration]", f"name = {_toml_value(cal.name)}", f"product = {_toml_value(product)}",
             f"created = {_toml_value(str(prov.get('created', '')))}",
             f"objective = {_toml_value(float(result.objective))}", "", "[parameters]"]
    for e, v in zip(cal.estimates, result.x):
        if not e.applies_to(product):
            continue
        par = cal.model.parameter(e.parameter)
        scope = "shared by all products" if e.product is None else f"specific to {product}"
        lines.append(f"{e.parameter} = {_toml_value(float(math.exp(v)))}  # {par.unit}; fitted, {scope}; "
                     f"model file value {par.value}")
    return "\n".join(lines) + "\n"


def plot_calibration(result: CalibrationResult):
    """Reported value with its interval against the simulated value before and after, per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comp = result.comparison
    k = len(comp)
    fig, ax = plt.subplots(figsize=(8, 0.3 * k + 1.5), dpi=200)
    y = np.arange(k)[::-1]
    rep = comp["reported"].to_numpy(float)
    lo = comp["reported_lower"].to_numpy(float)
    hi = comp["reported_upper"].to_numpy(float)
    scale = np.where(comp["scale"] == "log", rep, 1.0)
    norm = lambda v: np.where(comp["scale"] == "log", v / scale, v)  # noqa: E731
    ok = np.isfinite(lo) & np.isfinite(hi)
    ax.hlines(y[ok], norm(lo)[ok], norm(hi)[ok], color="0.6", lw=3, label="reported 95% interval")
    ax.plot(norm(rep), y, "k|", ms=10, label="reported")
    ax.plot(norm(comp["simulated_initial"].to_numpy(float)), y, "o", mfc="none", color="tab:grey",
            label="before calibration")
    ax.plot(norm(comp["simulated"].to_numpy(float)), y, "o", color="tab:blue", label="calibrated")
    ax.set_yticks(y, comp["target_id"])
    ax.set_xlabel("probability (proportions) or simulated / reported (other statistics)")
    ax.set_title(f"Calibration {result.calibration.name}: objective {result.objective_initial:.3g} -> "
                 f"{result.objective:.3g}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def write_calibration(result: CalibrationResult, directory, *, command="", plots=True) -> list:
    """Write the parameter set of each product and the calibration's record (atomically) to ``directory``.

    ``directory`` is required: a results folder (:func:`default_output`), or, to replace the
    parameter sets the scenarios read, the file's ``[calibration] output``
    (``result.calibration.output``) passed explicitly.

    Files: ``<product>.toml`` (one per product: ``[parameters]`` with the calibrated values),
    ``estimates.csv``, ``comparison.csv`` (every target: reported, simulated before and
    after, standard error and its source, contribution), ``starts.csv`` (optimiser runs),
    ``calibration.json`` (provenance, estimates, fixed parameters with reasons, excluded
    targets with reasons) and ``comparison.png``.
    """
    from carkinetics.io.atomic import atomic_output_dir, write_json
    from carkinetics.plots.cohort import save_figure

    cal = result.calibration
    if directory is None:
        raise CalibrationError(f"{cal.path}: no output folder: pass a results folder (e.g. "
                               f"{default_output(cal)}), or the calibration's output ({cal.output}) to "
                               f"replace the parameter sets the scenarios read")
    directory = Path(directory)
    prov = calibration_provenance(result, command)
    files = []
    with atomic_output_dir(directory, clean=True, known=calibration_files(cal)) as tmp:
        for product in cal.products:
            (tmp / f"{product}.toml").write_text(parameter_set_text(result, product, prov), encoding="utf-8")
            files.append(f"{product}.toml")
        result.table().to_csv(tmp / "estimates.csv", index=False)
        result.comparison.to_csv(tmp / "comparison.csv", index=False)
        result.starts.to_csv(tmp / "starts.csv", index=False)
        files += ["estimates.csv", "comparison.csv", "starts.csv"]
        model = cal.model
        info = {"provenance": prov, "estimates": result.estimates,
                "parameter_sets": {p: result.parameter_set(p) for p in cal.products},
                "products": {p: [sc.path.name for sc in scs] for p, scs in cal.products.items()},
                "fixed": {p: {"value": model.parameter(p).value, "unit": model.parameter(p).unit,
                              "source": model.parameter(p).source, "reason": r} for p, r in cal.fixed.items()},
                "excluded_targets": cal.excluded,
                "targets_inside_reported_interval": {
                    "initial": int(np.sum(result.comparison["inside_initial"] == True)),  # noqa: E712
                    "calibrated": int(np.sum(result.comparison["inside"] == True)),  # noqa: E712
                    "with_interval": int(result.comparison["inside"].notna().sum())}}
        write_json(tmp / "calibration.json", info)
        files.append("calibration.json")
        if plots:
            import matplotlib.pyplot as plt

            fig = plot_calibration(result)
            save_figure(fig, tmp / "comparison.png")
            plt.close(fig)
            files.append("comparison.png")
    return files
