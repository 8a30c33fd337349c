"""Reported numbers to fit: the target table, the quantities and statistics that simulate them.

A :class:`Target` is one reported number (a median Cmax, a proportion of patients above a level
at a day...): its ``quantity`` names a function of simulated cohort outputs (:data:`QUANTITIES`,
per patient) and its ``statistic`` one of :data:`FITTED_STATISTICS` (over patients).
:func:`simulated_statistics` computes every target's value for S simulated cohorts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from carkinetics.errors import DataError, ProblemCollector, suggestion
from carkinetics.fit.cohort_simulators import MAX_TARGET_DAY, CohortOutputs
from carkinetics.fit.errors import FitError

FITTED_STATISTICS = ("median", "mean", "geometric_mean", "geometric_cv_percent", "proportion", "typical_value")
TARGET_REQUIRED = ("quantity", "statistic", "value")


@dataclass
class Target:
    """One reported number to match (a row of a target table)."""

    target_id: str
    quantity: str
    statistic: str
    value: float
    lower: float = math.nan
    upper: float = math.nan
    ci_method: str = "none"
    n: float = math.nan
    timepoint: float = math.nan
    output: str = ""
    threshold: float = math.nan
    direction: str = "above"
    se: float = math.nan
    weight: float = 1.0
    line: int = 0

    @property
    def log_scale(self) -> bool:
        """Whether the target is fitted on the log scale (positive values other than proportions)."""
        return self.statistic not in ("proportion",) and self.value > 0

    def standard_error(self):
        """(se on the fitting scale, how it was obtained)."""
        h = (lambda v: math.log(v)) if self.log_scale else (lambda v: v)
        if math.isfinite(self.se) and self.se > 0:
            return self.se, "given"
        ok = math.isfinite(self.lower) and math.isfinite(self.upper) and self.upper > self.lower
        if ok and self.log_scale and self.lower <= 0:
            ok = False
        if ok and self.ci_method in ("reported", "wilson"):
            return (h(self.upper) - h(self.lower)) / (2 * 1.959963984540054), f"95% interval ({self.ci_method})"
        if ok and self.ci_method == "range" and self.statistic == "median" and math.isfinite(self.n) and self.n > 1:
            # range/4 approximates the SD of log values; SE of a median = 1.2533 SD / sqrt(n)
            return (1.2533 * (h(self.upper) - h(self.lower)) / 4 / math.sqrt(self.n),
                    "range/4 as SD, SE of the median")
        if self.statistic == "proportion" and math.isfinite(self.n) and self.n > 0:
            p = min(max(self.value, 0.0), 1.0)
            return math.sqrt((p * (1 - p) + 1 / (4 * self.n)) / self.n), "binomial with n"
        return (0.1 if self.log_scale else 0.05), "default (no interval)"


def _builtin_quantities():
    def peak(ctx, tg):
        return ctx.peak()[0]

    def tmax(ctx, tg):
        return ctx.peak()[1]

    def auc(end):
        def f(ctx, tg):
            return ctx.auc(0.0, end)
        return f

    def level(ctx, tg):
        return ctx.at(tg.output or ctx.kinetic, tg.timepoint)

    def indicator(ctx, tg):
        return ctx.indicator(tg.output or ctx.kinetic, tg.timepoint, tg.threshold, tg.direction)

    return {"car_peak": peak, "car_cmax": peak, "car_tmax": tmax, "car_auc_0_28": auc(28.0),
            "car_level": level, "car_persistence": indicator, "threshold": indicator}


#: Built-in quantities: name -> ``f(cohort_outputs, target)`` giving per-patient values (S, n).
QUANTITIES = _builtin_quantities()


def load_target_table(path, *, quantities=None, select=None, frame=None):
    """Read a table of reported numbers to fit (the ``targets.csv`` layout or a subset).

    Required columns: ``quantity``, ``statistic``, ``value``. Optional: ``target_id``,
    ``lower``, ``upper``, ``ci_method``, ``n``, ``timepoint_days``, ``output`` (model output
    the quantity is computed from), ``threshold`` and ``direction`` (for proportions of
    patients above/below a level), ``se`` (standard error on the fitting scale), ``weight``.
    ``select`` keeps only the listed ``target_id`` s. Every problem is reported at once.
    """
    from carkinetics.io.provenance import file_sha256

    quantities = {**QUANTITIES, **(quantities or {})}
    sha = ""
    if frame is None:
        from carkinetics.scenario.data import read_csv_table

        frame, _ = read_csv_table(path, DataError, "file")
        sha = file_sha256(path)  # a regular file of bounded size: checked by read_csv_table
    else:
        columns = [str(c) for c in frame.columns]
        dups = sorted({c for c in columns if columns.count(c) > 1})
        if dups:
            raise DataError(str(path), [f"header: duplicate column names {dups}"])
    errs = ProblemCollector(str(path), DataError)
    cols = {c.strip().lower(): c for c in frame.columns}
    for c in TARGET_REQUIRED:
        if c not in cols:
            errs.add(f"column '{c}'", f"missing required column (columns found: {', '.join(frame.columns)})")
    errs.raise_if_any()
    out = []
    found = set()

    def num(row, name, line, default=math.nan):
        if name not in cols:
            return default
        s = str(row[cols[name]]).strip()
        if s in ("", "NA", "nan", "."):
            return default
        try:
            v = float(s)
        except ValueError:
            errs.add(f"line {line}", f"{name} {s!r} is not a number")
            return default
        if not math.isfinite(v):
            errs.add(f"line {line}", f"{name} {s!r} is not a finite number")
            return default
        return v

    for i, row in frame.iterrows():
        line = int(i) + 2
        tid = str(row[cols["target_id"]]).strip() if "target_id" in cols else f"row{line}"
        if select is not None and tid not in select:
            continue
        found.add(tid)
        q = str(row[cols["quantity"]]).strip()
        st = str(row[cols["statistic"]]).strip()
        n_before = len(errs.problems)
        if q not in quantities:
            errs.add(f"line {line}", f"quantity '{q}' has no simulator definition{suggestion(q, quantities)} "
                                     f"(known: {', '.join(sorted(quantities))})")
        if st not in FITTED_STATISTICS:
            errs.add(f"line {line}", f"statistic '{st}' cannot be fitted{suggestion(st, FITTED_STATISTICS)} "
                                     f"(fittable: {', '.join(FITTED_STATISTICS)})")
        value = num(row, "value", line)
        if not math.isfinite(value):
            errs.add(f"line {line}", "value is missing")
        tp = num(row, "timepoint_days", line)
        thr = num(row, "threshold", line)
        direction = str(row[cols["direction"]]).strip() if "direction" in cols else ""
        direction = direction or "above"
        if direction not in ("above", "below"):
            errs.add(f"line {line}", f"direction must be 'above' or 'below', got {direction!r}")
        if quantities.get(q) in (QUANTITIES["car_persistence"],) and not (math.isfinite(tp) and math.isfinite(thr)):
            errs.add(f"line {line}", f"quantity '{q}' needs timepoint_days and threshold")
        if q == "car_level" and not math.isfinite(tp):
            errs.add(f"line {line}", "quantity 'car_level' needs timepoint_days")
        if st == "proportion" and math.isfinite(value) and not (0 <= value <= 1):
            errs.add(f"line {line}", f"a proportion must be in [0, 1], got {value}")
        if math.isfinite(tp) and not 0 <= tp <= MAX_TARGET_DAY:
            errs.add(f"line {line}", f"timepoint_days {tp:g} must be in [0, {MAX_TARGET_DAY:g}] (days after infusion)")
        for col_name, low in (("weight", 0.0), ("se", 0.0), ("n", 0.0)):
            v = num(row, col_name, line)
            if math.isfinite(v) and v < low:
                errs.add(f"line {line}", f"{col_name} must be >= {low:g}, got {v:g}")
        if len(errs.problems) > n_before:
            continue
        out.append(Target(target_id=tid, quantity=q, statistic=st, value=value, lower=num(row, "lower", line),
                          upper=num(row, "upper", line),
                          ci_method=str(row[cols["ci_method"]]).strip() if "ci_method" in cols else "none",
                          n=num(row, "n", line), timepoint=tp,
                          output=str(row[cols["output"]]).strip() if "output" in cols else "",
                          threshold=thr, direction=direction, se=num(row, "se", line),
                          weight=num(row, "weight", line, 1.0), line=line))
    if select is not None:
        for tid in select:
            if tid not in found:
                errs.add("target_id", f"'{tid}' is not in the table{suggestion(tid, list(found))}")
    if not out and not errs:
        errs.add("", "no targets to fit")
    errs.raise_if_any()
    return out, sha


def _statistic(values, statistic, typical_values=None):
    """Statistic over patients (axis 1) of per-patient values (S, n); NaN-aware."""
    v = np.asarray(values, float)
    if statistic == "median":
        return np.nanmedian(v, axis=1)
    if statistic == "mean":
        return np.nanmean(v, axis=1)
    if statistic == "proportion":
        return np.nanmean(v, axis=1)
    lv = np.log(np.maximum(v, 1e-300))
    if statistic == "geometric_mean":
        return np.exp(np.nanmean(lv, axis=1))
    if statistic == "geometric_cv_percent":
        return 100 * np.sqrt(np.expm1(np.nanvar(lv, axis=1, ddof=1)))
    if statistic == "typical_value":
        return typical_values
    raise FitError(f"statistic '{statistic}' is not supported")


def simulated_statistics(cohort_outputs, targets, quantities=None):
    """Simulated value of each target (array T x S) for cohort outputs of S parameter sets."""
    quantities = {**QUANTITIES, **(quantities or {})}
    rows = []
    for tg in targets:
        fn = quantities[tg.quantity]
        per = fn(cohort_outputs, tg)
        typ = None
        if tg.statistic == "typical_value":
            if not hasattr(cohort_outputs, "typical"):
                raise FitError(f"target '{tg.target_id}': this cohort simulator has no typical patient "
                               f"(statistic typical_value needs the default CRNCohort)")
            typ_ctx = CohortOutputs(cohort_outputs.times, {k: v[:, None, :] for k, v in cohort_outputs.typical.items()},
                                    cohort_outputs.kinetic, soft_width=cohort_outputs.soft_width)
            typ = np.asarray(fn(typ_ctx, tg))[:, 0]
        rows.append(_statistic(per, tg.statistic, typ))
    return np.array(rows)
