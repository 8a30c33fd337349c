"""Calibration targets: the reported numbers the scenarios of a calibration must reproduce.

The targets are the outcome rows each scenario lists in its ``[targets]`` section (the
rows ``carkinetics validate`` compares), looked up in the reference table, with the
calibration file's per-target settings (``[targets.<target_id>]``: a standard error where
the paper gives no interval, a weight, or an exclusion with its reason).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from carkinetics.errors import is_number, suggestion

_TARGET_KEYS = {"se", "weight", "exclude", "note"}
_PROBABILITY_STATISTICS = ("proportion", "km_estimate", "cumulative_incidence")


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
    k: float = math.nan  # the reported count, where the paper gives one
    n: float = math.nan  # the reported denominator


def collect_targets(products, raw_targets, reference, errs):
    """The targets of a calibration's scenarios, with the settings of its ``[targets]`` tables.

    Parameters
    ----------
    products : dict
        Product -> list of Scenario.
    raw_targets : dict
        The calibration file's ``[targets]`` tables (target_id -> se, weight, exclude, note).
    reference : pandas.DataFrame
        The reference target table (:func:`carkinetics.scenario.reference.load_targets`).
    errs : ProblemCollector
        Problems are recorded here (unknown targets, bad settings, a target listed twice).

    Returns
    -------
    targets : list of CalibrationTarget
    excluded : dict
        target_id -> why it is not fitted (a protocol input, excluded in the file, or no
        standard error).
    """
    from carkinetics.fit.targets import Target
    from carkinetics.studies.validate import as_float

    by_id = reference.set_index("target_id")
    seen = {}
    targets, excluded = [], {}
    for product, scenarios in products.items():
        for sc in scenarios:
            for tid, spec in sc.target_specs.items():
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
                time = spec.time if spec.time is not None else as_float(ref.get("timepoint_days"))
                time = None if time is None or not math.isfinite(time) else time
                value = as_float(ref["value"])
                tg = Target(target_id=tid, quantity=str(ref["quantity"]),
                            statistic="proportion" if statistic in _PROBABILITY_STATISTICS else statistic,
                            value=value, lower=as_float(ref.get("lower")), upper=as_float(ref.get("upper")),
                            ci_method=str(ref.get("ci_method") or "none"), n=as_float(ref.get("n")))
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
                    log_scale=tg.log_scale, weight=float(weight), note=note, k=as_float(ref.get("k")),
                    n=as_float(ref.get("n"))))
    unknown = [t for t in raw_targets if t not in seen and t not in excluded]
    for t in unknown:
        errs.add(f"targets.{t}", f"'{t}' is not an outcome target of any scenario of this calibration"
                                 f"{suggestion(t, list(seen))}")
    return targets, excluded
