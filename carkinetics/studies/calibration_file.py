"""The calibration file: reading and checking it (every problem reported at once).

A *calibration file* (TOML, data: nothing in it is executed) declares

* the model and the **products** (e.g. donor-derived CD7 CAR-T, autologous CD7 CAR-T,
  CD5 CAR-T), each with the scenarios of the trials that used it;
* the **estimated** parameters, each either shared by all products (one value) or
  product-specific (one value per listed product), with bounds on the log scale;
* the parameters deliberately **fixed** at their cited values because the targets cannot
  identify them (with the reason: the calibration says so in its outputs);
* per-target settings: a standard error where the paper gives no interval, a weight, or
  an exclusion with its reason (:mod:`carkinetics.studies.calibration_targets`).

The file's ``[calibration] output`` names the folder of the parameter sets that scenarios
read (e.g. ``models/calibrated/...``): it is written only when asked
(``carkinetics calibrate --write-parameter-sets``), never by default.

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

from carkinetics.errors import CarKineticsError, ProblemCollector, ScenarioError, is_whole_number, printable, suggestion
from carkinetics.scenario.population import MAX_POPULATION
from carkinetics.studies.calibration_targets import collect_targets

OPTIMISERS = ("nelder-mead", "differential_evolution")
#: What a calibration minimises (:mod:`carkinetics.studies.calibration_objective`).
OBJECTIVES = ("distance", "likelihood")
_HEAD_KEYS = {"name", "description", "model", "n", "seed", "method", "objective", "starts", "maxiter", "popsize",
              "output", "reference", "jobs", "notes"}
_PRODUCT_KEYS = {"description", "scenarios"}
_ESTIMATE_KEYS = {"products", "bounds", "note"}
_FIXED_KEYS = {"reason"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class CalibrationFileError(ScenarioError):
    """A calibration file with problems (every one of them, with the file and the key)."""

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
        """``parameter`` for a shared estimate, ``parameter[product]`` for a product's own."""
        return self.parameter if self.product is None else f"{self.parameter}[{self.product}]"

    def applies_to(self, product: str) -> bool:
        """Whether the estimate sets the parameter of ``product`` (a shared one sets every product's)."""
        return self.product is None or self.product == product


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
    objective: str = "distance"
    starts: int = 1
    maxiter: int | None = None
    popsize: int = 8
    output: Path | None = None  # [calibration] output: the parameter sets scenarios read
    reference_path: Path | None = None
    jobs: int | None = None
    raw: dict = field(default_factory=dict, repr=False)
    #: product -> parameter values held fixed under the estimates (an earlier stage's refit in a
    #: staged cross-validation); empty: the values the scenarios read.
    fixed_values: dict = field(default_factory=dict, repr=False)

    @property
    def labels(self) -> list:
        """The estimates' labels, in order (the optimiser's coordinates)."""
        return [e.label for e in self.estimates]

    def overrides(self, x, product) -> dict:
        """Parameter values for one product at log-parameters ``x`` (over :attr:`fixed_values`)."""
        return {**self.fixed_values.get(product, {}),
                **{e.parameter: float(math.exp(v)) for e, v in zip(self.estimates, x) if e.applies_to(product)}}

    def initial_x(self) -> np.ndarray:
        """The starting point: the log of each estimate's initial value, clipped to its bounds."""
        return np.array([min(max(math.log(e.initial), e.log_lower), e.log_upper) if e.initial > 0
                         else 0.5 * (e.log_lower + e.log_upper) for e in self.estimates])


def _int(head, key, default, errs, minimum=1, maximum=10**9):
    """Setting ``key`` of ``[calibration]``: a whole number in range (``default`` when absent or wrong)."""
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

    Parameters
    ----------
    path : path
        The calibration file (TOML).

    Returns
    -------
    Calibration

    Raises
    ------
    CalibrationFileError
        Naming the file and the key: unknown sections or keys, unknown products,
        parameters or targets (with close-match suggestions), bounds that are not a
        positive interval, an estimated parameter that a scenario also sets in its own
        ``[parameters]`` (it would shadow the calibrated value), targets without a
        standard error.
    """
    from carkinetics.scenario.load import header_and_model, read_toml
    from carkinetics.scenario.reference import load_targets

    path = Path(path)
    data = read_toml(path, CalibrationFileError)
    errs = ProblemCollector(path, CalibrationFileError)
    sections = {"calibration", "products", "estimate", "fixed", "targets"}
    for key in data:
        if key not in sections:
            errs.unknown_name(key, key, sorted(sections), "a section of a calibration file")
    head, model = header_and_model(data, "calibration", _HEAD_KEYS, path, errs)
    settings = _read_head(head, path, errs)
    raw_products, products = _load_products(data, path, model, errs)
    raw_est, estimates = _read_estimates(data, raw_products, products, model, errs)
    fixed = _read_fixed(data, raw_est, model, errs)
    raw_targets = data.get("targets", {})
    if not isinstance(raw_targets, dict):
        errs.add("targets", "expected [targets.<target_id>] tables (keys: se, weight, exclude, note)")
        raw_targets = {}
    try:
        reference = load_targets(settings["reference_path"])
    except CarKineticsError as err:
        errs.add("calibration.reference", str(err))
        errs.raise_if_any()
    targets, excluded = collect_targets(products, raw_targets, reference, errs)
    if not targets and not errs:
        errs.add("targets", "no target to fit: the scenarios list no outcome rows with a standard error")
    if not estimates and not errs:
        errs.add("estimate", "nothing to estimate")
    errs.raise_if_any()
    output = settings.pop("output")
    return Calibration(path=path, description=str(head.get("description", "")), model=model, products=products,
                       estimates=estimates, fixed=fixed, targets=targets, excluded=excluded,
                       output=(path.parent / output) if output else None, raw=data, **settings)


def _read_head(head, path, errs) -> dict:
    """The settings of ``[calibration]``: n, seed, starts, maxiter, popsize, jobs, name, method, output,
    reference_path."""
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
    if not isinstance(method, str) or method not in OPTIMISERS:
        errs.add("calibration.method", f"expected one of {', '.join(OPTIMISERS)}, got {method!r}"
                                       f"{suggestion(str(method), OPTIMISERS)}")
    objective = head.get("objective", "distance")
    if not isinstance(objective, str) or objective not in OBJECTIVES:
        errs.add("calibration.objective", f"expected one of {', '.join(OBJECTIVES)}, got {objective!r}"
                                          f"{suggestion(str(objective), OBJECTIVES)}")
        objective = "distance"
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

    return {"n": n, "seed": seed, "starts": starts, "maxiter": maxiter, "popsize": popsize, "jobs": jobs,
            "name": name, "method": method, "objective": objective, "output": output,
            "reference_path": reference_path}


def _load_products(data, path, model, errs):
    """``[products.<name>]``: (the tables as written, product -> its loaded scenarios)."""
    from carkinetics.scenario.load import load_scenario

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
    return raw_products, products


def _read_estimates(data, raw_products, products, model, errs):
    """``[estimate.<parameter>]``: (the tables as written, the :class:`Estimate` list)."""
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
    return raw_est, estimates


def _read_fixed(data, raw_est, model, errs) -> dict:
    """``[fixed.<parameter>]`` (documented non-identifiable parameters): parameter -> reason."""
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
    return fixed


def _parameter_tables(raw, section, allowed, model, errs):
    """``(parameter, table, key)`` of the ``[section.<parameter>]`` tables that name a model
    parameter and are tables; unknown parameters and keys are recorded in ``errs``."""
    from carkinetics.scenario.parsing import parameter_items

    for pname, spec, key in parameter_items(raw, section, model, errs, "table"):
        if not isinstance(spec, dict):
            errs.add(key, f"expected a table (keys: {', '.join(sorted(allowed))})")
            continue
        errs.unknown_keys(key, spec, allowed, f"a key of [{key}]")
        yield pname, spec, key


def _shadowing(scenario, name) -> str:
    """Where a scenario sets parameter ``name`` to a value that ignores its typical value ('' if nowhere)."""
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
