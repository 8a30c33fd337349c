"""Which parameters drive an outcome: the tornado and global analyses of one outcome, written to a folder.

:func:`run_sensitivity` runs :func:`carkinetics.studies.tornado.tornado` and
:func:`carkinetics.studies.global_sensitivity.global_sensitivity` (PRCC or Sobol) on the
parameter ranges of :func:`carkinetics.studies.sensitivity_inputs.parameter_ranges`,
leaving out the parameters that cannot reach the outcome
(:func:`carkinetics.studies.reachability.reachability`), and writes the tables and the
settings; :class:`SensitivityResult` holds them and summarises them in a few lines.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from carkinetics.progress import Progress
from carkinetics.stats.sensitivity_indices import DUMMY, SensitivityError, SensitivityWarning
from carkinetics.studies.global_sensitivity import GLOBAL_METHODS, global_sensitivity
from carkinetics.studies.reachability import reachability
from carkinetics.studies.sensitivity_inputs import parameter_ranges, parse_outcome
from carkinetics.studies.tornado import tornado


@dataclass
class SensitivityResult:
    """Tornado and global tables of one outcome, and the settings that made them."""

    tornado: object
    global_: object
    ranges: object
    info: dict = field(default_factory=dict)
    path: Path | None = None

    def report_lines(self, top=5) -> list:
        """A few lines naming the parameters that drive the outcome most, what was left out and the warnings.

        Parameters
        ----------
        top : int
            Parameters listed per analysis.

        Returns
        -------
        list of str
        """
        lines = [f"{self.info.get('scenario_name', '')}: sensitivity of {self.info.get('outcome_label')}"]
        unreachable = self.info.get("unreachable") or self.info.get("excluded") or {}
        if unreachable:
            how = "not simulated" if self.info.get("excluded") else "simulated anyway, flagged"
            lines.append(f"  {len(unreachable)} parameter(s) cannot reach the outcome ({how}):")
            for p, why in unreachable.items():
                lines.append(f"    {p:32s} {why}")
        if self.tornado is not None and len(self.tornado):
            t = self.tornado
            lines.append(f"  baseline {t['baseline'].iloc[0]:.4g}; largest one-at-a-time swings:")
            for r in t.head(top).itertuples():
                lines.append(f"    {r.parameter:32s} {r.outcome_low:.4g} (low) .. {r.outcome_high:.4g} (high)")
            if "note" in t:
                for r in t[t["note"].fillna("").str.startswith("cohort not simulated")].itertuples():
                    lines.append(f"  warning: tornado, {r.parameter}: {r.note}")
        if self.global_ is not None and len(self.global_):
            g = self.global_
            indices = list(dict.fromkeys(g["index"]))
            first = "total" if "total" in indices else indices[0]
            sub = g[(g["index"] == first) & g["value"].notna()]
            dummy = sub[sub["parameter"] == DUMMY]
            sub = sub[sub["parameter"] != DUMMY].assign(a=lambda d: d["value"].abs())
            sub = sub.sort_values("a", ascending=False)
            n_sig = int(sub["significant"].sum()) if "significant" in sub else 0
            lines.append(f"  global ({first}, {self.info.get('n_samples')} samples), strongest "
                         f"({n_sig} of {len(sub)} distinguishable from the dummy):")
            for r in sub.head(top).itertuples():
                rank = (f"  rank {r.rank:.0f} [{r.rank_lower:.0f}, {r.rank_upper:.0f}]"
                        if "rank_lower" in sub and np.isfinite(r.rank_lower) else "")
                flag = "" if getattr(r, "significant", True) else "  (not distinguishable from the dummy)"
                lines.append(f"    {r.parameter:32s} {r.value:+.3f} [{r.lower:+.3f}, {r.upper:+.3f}]{rank}{flag}")
            if len(dummy):
                d = dummy.iloc[0]
                lines.append(f"    {DUMMY:32s} {d['value']:+.3f} [{d['lower']:+.3f}, {d['upper']:+.3f}]  (inert)")
            for rule in (self.info.get("significance") or {}).values():
                lines.append(f"  significant: {rule}")
        for w in self.info.get("warnings") or []:
            lines.append(f"  warning: {w}")
        if self.path is not None:
            lines.append(f"  results in {self.path}")
        return lines


def run_sensitivity(scenario, outcome, output=None, *, methods=("tornado", "prcc"), parameters=None, fold=None,
                    n=200, n_samples=None, seed=1, jobs=None, arms=None, variables=None, progress=False,
                    keep_unreachable=False):
    """Run the chosen sensitivity analyses of one outcome; write them to ``output``.

    Parameters that cannot reach the outcome (:func:`carkinetics.studies.reachability.reachability`) are not simulated
    unless ``keep_unreachable``; they are listed with the reason. ``n_samples`` default:
    :data:`~carkinetics.studies.global_sensitivity.DEFAULT_SAMPLES` for PRCC,
    :data:`~carkinetics.studies.global_sensitivity.DEFAULT_SOBOL_SAMPLES` for Sobol.

    Files: ``tornado.csv``, ``global.csv``, ``ranges.csv`` (with columns reachable and
    reason), ``sensitivity.json`` (settings, excluded parameters, warnings, the
    significance rule; figures: :func:`carkinetics.studies.figures.plot_results`).

    Returns
    -------
    SensitivityResult
    """
    from carkinetics.io.atomic import atomic_output_dir
    from carkinetics.io.provenance import file_sha256, provenance
    from carkinetics.io.results import write_json

    allowed = ("tornado",) + GLOBAL_METHODS
    bad = [m for m in methods if m not in allowed]
    if bad:
        raise SensitivityError(f"unknown method(s) {bad}; choose from {', '.join(allowed)}")
    if "prcc" in methods and "sobol" in methods:
        raise SensitivityError("choose one global method: prcc or sobol")
    es = scenario.endpoints
    out = parse_outcome(outcome, es)
    ranges = parameter_ranges(scenario, parameters, fold)
    names = ranges["parameter"].tolist()
    reach = reachability(scenario, out, names, variables=variables, arms=arms)
    ranges = ranges.assign(reachable=reach["reachable"].to_numpy(bool), reason=reach["reason"].to_numpy(object))
    excluded = {p: r for p, ok, r in reach.itertuples(index=False) if not ok}
    bar = None
    if progress:
        n_runs = 2 * (len(names) if keep_unreachable else len(names) - len(excluded)) + 1
        bar = Progress(n_runs, label="tornado")
    tor = glob = None
    if "tornado" in methods:
        last = [0]

        def tick(done, total):
            while last[0] < done:
                last[0] += 1
                if bar is not None:
                    bar.point_done(n)

        tor = tornado(scenario, out, names, fold=fold, n=n, seed=seed, jobs=jobs, arms=arms, variables=variables,
                      progress=tick, keep_unreachable=keep_unreachable)
        if bar is not None:
            bar.close()
    method = next((m for m in methods if m in GLOBAL_METHODS), None)
    notes = []
    if method is not None:
        with warnings.catch_warnings(record=True):  # kept in the table and reported once below
            warnings.simplefilter("always", SensitivityWarning)
            glob = global_sensitivity(scenario, out, names, method=method, n_samples=n_samples, fold=fold,
                                      seed=seed, jobs=jobs, arms=arms, variables=variables,
                                      keep_unreachable=keep_unreachable)
        notes = list(glob.attrs.get("warnings", []))
        n_samples = glob.attrs.get("n_samples", n_samples)
    info = {"scenario": str(scenario.path), "scenario_name": scenario.name,
            "scenario_sha256": file_sha256(scenario.path), "model": str(scenario.model.path),
            "model_sha256": scenario.model.content_hash, "outcome": out.text, "outcome_label": out.label,
            "methods": list(methods), "n": n, "n_samples": n_samples, "seed": seed, "fold": fold,
            "range": "typical / fold .. typical * fold within bounds" if fold else "the model's bounds",
            "common_random_numbers": "every tornado run uses the same seed: the same virtual patients",
            "global_patients": "typical patients (covariates at typical values, no between-patient "
                               "variability), one per sample",
            "outcome_reads": reach.attrs.get("reads", []), "outcome_last_day": reach.attrs.get("last_day"),
            "excluded": excluded if not keep_unreachable else {},
            "unreachable": excluded,
            "dummy": f"{DUMMY}: an inert parameter, uniform on [0, 1], sampled in every global analysis and "
                     f"never given to the model",
            "dummy_bound": glob.attrs.get("dummy_bound", {}) if glob is not None else {},
            "significance": glob.attrs.get("significance", {}) if glob is not None else {},
            "warnings": notes, "provenance": provenance()}
    res = SensitivityResult(tor, glob, ranges, info, None)
    if output is not None:
        with atomic_output_dir(output) as staging:
            ranges.to_csv(staging / "ranges.csv", index=False)
            if tor is not None:
                tor.to_csv(staging / "tornado.csv", index=False)
            if glob is not None:
                glob.to_csv(staging / "global.csv", index=False)
            write_json(staging / "sensitivity.json", info)
        res.path = Path(output)
    return res
