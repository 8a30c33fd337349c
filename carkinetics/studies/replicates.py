"""Parameter uncertainty propagated: ``carkinetics run|sweep --replicates K``.

A calibrated product ships a sample of its estimates (``parameter_sample.csv`` beside its
parameter sets, written by ``carkinetics calibrate --uncertainty``). With ``--replicates K``
the first ``K`` draws of that sample are taken in turn (outer loop); under each, the
scenario is read again as if the calibration had estimated that draw
(:func:`carkinetics.scenario.parameter_sets.parameter_draw`: every parameter set of the
sample's folder, the scenario's, its arms' and its sweep options', takes the draw's values)
and its virtual cohort is simulated (inner loop; the same virtual patients under every draw,
so the draws differ by their parameters only).

Every reported outcome is then summarised over the draws:

* ``value``: the median over the draws of the draw's estimate;
* ``lower``, ``upper``: the 95 % interval of the mixture of the draws' estimates with their
  Monte Carlo errors, each draw a split normal whose 95 % interval is its own Monte Carlo one
  (:func:`carkinetics.stats.mixture.mixture_quantiles`): parameter uncertainty *and* Monte
  Carlo error, inside [0, 1] for a probability;
* ``draws_lower``, ``draws_upper``: the 2.5 and 97.5 % quantiles of the draws' estimates
  alone (parameter uncertainty given this cohort);
* ``replicates``: the draws with an estimate.

With ``K = 20`` the 95 % quantiles of the draws are close to their extremes: read them as a
range, and use more replicates where the tails matter.
"""

from __future__ import annotations

import json
import time as _time
from pathlib import Path

import numpy as np

from carkinetics.errors import ScenarioError
from carkinetics.stats.mixture import Z95, mixture_quantiles

#: Name of the sample file beside a calibration's parameter sets.
SAMPLE_FILE = "parameter_sample.csv"
#: Files of ``carkinetics run --replicates`` (besides run.json and km.png of RUN_FILES).
REPLICATE_RUN_FILES = ("summary.csv", "km.csv", "replicates.csv", "replicates_km.csv", "draws.csv", "run.json",
                       "km.png", "outcomes.png")
LEVEL = 0.95


def scenario_parameter_sets(scenario) -> list:
    """The parameter-set files a scenario reads: its own, its arms' and its sweep options' (resolved paths)."""
    sets = [Path(p).resolve() for p in getattr(scenario, "parameter_sets", ()) or ()]
    arms = scenario.arms.arms.values() if getattr(scenario, "arms", None) is not None else ()
    sets += [Path(a.parameter_set).resolve() for a in arms if getattr(a, "parameter_set", None) is not None]
    spec = getattr(scenario, "sweep", None)
    for axis in (spec.axes if spec is not None else ()):
        sets += [Path(st["parameter_set"]).resolve() for st in axis.settings if st.get("parameter_set")]
    return list(dict.fromkeys(sets))


def find_parameter_sample(scenario, sample_path=None):
    """The parameter sample a scenario's replicates draw from.

    Parameters
    ----------
    scenario : Scenario
    sample_path : path-like, optional
        An explicit ``parameter_sample.csv`` (its folder's parameter sets are the ones replaced);
        default: the one beside the scenario's parameter sets.

    Returns
    -------
    ParameterSample

    Raises
    ------
    ScenarioError
        Naming the scenario: no parameter set, no sample beside them, or samples of two
        calibrations.
    """
    from carkinetics.scenario.parameter_sets import join_outcome_sample, read_parameter_sample

    if sample_path is not None:
        return join_outcome_sample(read_parameter_sample(sample_path, scenario.model), scenario.model)
    sets = scenario_parameter_sets(scenario)
    if not sets:
        raise ScenarioError(scenario.path, ["scenario.parameter_set: --replicates draws the estimates of a "
                                            "calibration, but the scenario reads no parameter set (name one "
                                            "with [scenario] parameter_set, or give --parameter-sample FILE)"])
    folders = sorted({p.parent for p in sets if (p.parent / SAMPLE_FILE).is_file()})
    if not folders:
        raise ScenarioError(scenario.path, [f"scenario.parameter_set: no {SAMPLE_FILE} beside its parameter sets "
                                            f"({', '.join(sorted({str(p.parent) for p in sets}))}): run carkinetics "
                                            f"calibrate --uncertainty for them, or give --parameter-sample FILE"])
    if len(folders) > 1:
        raise ScenarioError(scenario.path, [f"scenario.parameter_set: its parameter sets come from "
                                            f"{len(folders)} calibrations with a sample each "
                                            f"({', '.join(map(str, folders))}); give --parameter-sample FILE"])
    return join_outcome_sample(read_parameter_sample(folders[0] / SAMPLE_FILE, scenario.model), scenario.model)


def check_replicates(sample, replicates: int, model) -> None:
    """Refuse more replicates than the sample has draws, or draws it cannot apply (before anything runs)."""
    if replicates > len(sample):
        raise ScenarioError(sample.path, [f"--replicates {replicates}: the sample has {len(sample)} draws; ask "
                                          f"for at most {len(sample)}, or draw a larger sample "
                                          f"(carkinetics calibrate --uncertainty --samples N)"])
    sample.check(model, replicates)


def load_replicate(scenario_path, sample, k: int, overrides=None):
    """The scenario read under draw ``k`` of the sample, with the ``--set`` values applied.

    Raises
    ------
    ScenarioError
        When the draw replaces none of the scenario's parameter sets (the sample belongs to
        another calibration).
    """
    from carkinetics.scenario.load import load_scenario
    from carkinetics.scenario.overrides import apply_overrides
    from carkinetics.scenario.parameter_sets import parameter_draw

    with parameter_draw(sample, k) as read:
        sc = load_scenario(scenario_path)
    if not read:
        raise ScenarioError(scenario_path, [f"scenario.parameter_set: none of its parameter sets is in the folder "
                                            f"of {sample.path}: the sample's draws would change nothing"])
    return apply_overrides(sc, overrides)


def combine_replicates(frame, keys, *, value="value", lower="lower", upper="upper", level=LEVEL):
    """Summaries over parameter draws: one row per ``keys`` group of a long table with ``replicate``.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per replicate and group: ``replicate``, ``keys``, the estimate ``value``
        and its Monte Carlo interval (``lower``, ``upper``; NaN when there is none).
    keys : list of str
    level : float

    Returns
    -------
    pandas.DataFrame
        ``keys``, ``value`` (median over the draws), ``lower``/``upper`` (interval of the normal
        mixture: parameter uncertainty and Monte Carlo error), ``draws_lower``/``draws_upper``
        (quantiles of the draws' estimates), ``replicates`` (draws with an estimate), and the
        first value of any other column (e.g. ``n``).
    """
    import pandas as pd

    if frame.empty:
        return pd.DataFrame(columns=list(keys) + [value, lower, upper, "draws_lower", "draws_upper", "replicates"])
    reps = sorted(frame["replicate"].unique())
    # sorted unstack, then the groups in their order in ``frame`` (unstack(sort=False) mislabels rows
    # on pandas 2.2)
    wide = frame.set_index(list(keys) + ["replicate"])[[value, lower, upper]].unstack("replicate")
    wide = wide.reindex(pd.MultiIndex.from_frame(frame[list(keys)].drop_duplicates()))
    v = wide[value].reindex(columns=reps).to_numpy(float)
    lo = wide[lower].reindex(columns=reps).to_numpy(float)
    hi = wide[upper].reindex(columns=reps).to_numpy(float)
    a = (1 - level) / 2
    # each draw's Monte Carlo interval as a split normal (Wilson and log-log intervals are not symmetric)
    mix = mixture_quantiles(v, (v - lo) / Z95, [a, 1 - a], ses_upper=(hi - v) / Z95)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(v, axis=1)
            qd = np.nanquantile(v, [a, 1 - a], axis=1)
    out = wide.index.to_frame(index=False)
    out[value] = med
    out[lower] = mix[:, 0]
    out[upper] = mix[:, 1]
    out["draws_lower"] = qd[0]
    out["draws_upper"] = qd[1]
    out["replicates"] = np.isfinite(v).sum(axis=1)
    others = [c for c in frame.columns if c not in set(keys) | {"replicate", value, lower, upper}]
    if others:
        first = frame.sort_values("replicate").groupby(list(keys), sort=False, dropna=False)[others].first()
        out = out.merge(first.reset_index(), on=list(keys), how="left")
    return out


def draws_table(sample, replicates: int):
    """The parameter values of the draws used: ``replicate``, ``draw`` and one column per label."""
    import pandas as pd

    df = pd.DataFrame(sample.values[:replicates], columns=list(sample.labels))
    df.insert(0, "draw", sample.draws[:replicates])
    df.insert(0, "replicate", np.arange(replicates))
    return df


# ---- carkinetics run --replicates ----------------------------------------------------------------
def run_replicates(scenario_path, output_dir, *, replicates, sample_path=None, n=None, seed=None, jobs=None,
                   chunk_size=None, overrides=None, progress=None, plots=True) -> dict:
    """A virtual cohort under each of ``replicates`` parameter draws, summarised over the draws.

    Writes, atomically: ``summary.csv`` (arm, endpoint, statistic, value, lower, upper,
    draws_lower, draws_upper, replicates, n: see the module), ``km.csv`` (the same for the
    Kaplan-Meier curves on a fixed day grid), ``replicates.csv`` and ``replicates_km.csv``
    (each draw's own summaries), ``draws.csv`` (the parameter values of each draw),
    ``outcomes.png`` and ``km.png`` (with the intervals over the draws) and ``run.json``.

    Parameters
    ----------
    scenario_path : path-like
    output_dir : path-like
    replicates : int
        Parameter draws (the first ``replicates`` rows of the sample).
    sample_path : path-like, optional
        See :func:`find_parameter_sample`.
    n, seed, jobs, chunk_size :
        As for :func:`carkinetics.cohort.pipeline.run_cohort`; the same seed (the same virtual
        patients) for every draw.
    overrides : dict, optional
        ``--set`` values, applied under every draw.
    progress : callable, optional
        Called with ``(replicate, replicates)`` as each draw starts.

    Returns
    -------
    dict
        The record written as ``run.json`` (with ``files``).
    """
    import pandas as pd

    from carkinetics.cohort.pipeline import run_cohort
    from carkinetics.io.atomic import atomic_output_dir, check_output_dir
    from carkinetics.io.provenance import file_sha256, provenance
    from carkinetics.scenario.parameter_sets import sample_sha256
    from carkinetics.io.results import write_json
    from carkinetics.scenario.load import load_scenario
    from carkinetics.scenario.overrides import apply_overrides
    from carkinetics.studies.sweep import endpoint_kinds, km_summary, km_time_grid, report_days

    from carkinetics.cohort.result import RUN_FILES

    known = tuple(set(RUN_FILES) | set(REPLICATE_RUN_FILES))
    check_output_dir(output_dir, clean=True, known=known)
    base = apply_overrides(load_scenario(scenario_path), overrides)  # bad --set refused before anything runs
    sample = find_parameter_sample(base, sample_path)
    check_replicates(sample, replicates, base.model)
    start = _time.perf_counter()
    summaries, kms, seed_used, n_patients = [], [], seed, None
    times = None
    for k in range(replicates):
        if progress is not None:
            progress(k, replicates)
        sc = load_replicate(scenario_path, sample, k, overrides)
        res = run_cohort(sc, n=n, seed=seed_used, jobs=jobs, chunk_size=chunk_size, bands=False)
        seed_used = res.info.get("seed", seed_used)
        n_patients = int(len(res.patients))
        s = res.summary.rename(columns={"group": "arm"}).copy()
        s.insert(0, "replicate", k)
        summaries.append(s)
        if times is None:
            times = km_time_grid(sc.horizon, 7.0, report_days(sc))
        km = km_summary(res.patients, endpoint_kinds(sc, res), times)
        km.insert(0, "replicate", k)
        kms.append(km)
    per_rep = pd.concat(summaries, ignore_index=True)
    per_rep["arm"] = per_rep["arm"].astype(str)
    per_km = pd.concat(kms, ignore_index=True) if kms else pd.DataFrame()
    summary = combine_replicates(per_rep, ["arm", "endpoint", "statistic"])
    km = (combine_replicates(per_km, ["arm", "endpoint", "time"], value="survival")
          if not per_km.empty else per_km)
    draws = draws_table(sample, replicates)
    info = {
        "scenario": str(Path(scenario_path)), "scenario_sha256": file_sha256(scenario_path),
        "model": str(base.model.path), "model_sha256": base.model.content_hash,
        "kind": "virtual cohort under parameter draws (carkinetics run --replicates)",
        "replicates": int(replicates), "parameter_sample": str(sample.path),
        "parameter_sample_sha256": sample_sha256(sample), "n_patients_per_replicate": n_patients,
        "parameter_samples_joined": [str(p) for p in sample.joined],
        "seed": seed_used, "same_patients_in_every_replicate": True, "level": LEVEL,
        "interval": "lower/upper: normal mixture of the draws' estimates and their Monte Carlo errors; "
                    "draws_lower/draws_upper: quantiles of the draws' estimates; value: their median",
        "overrides": dict(overrides or {}), "seconds": _time.perf_counter() - start, "provenance": provenance(),
    }
    with atomic_output_dir(output_dir, clean=True, known=known) as staging:
        summary.to_csv(staging / "summary.csv", index=False)
        per_rep.to_csv(staging / "replicates.csv", index=False)
        draws.to_csv(staging / "draws.csv", index=False)
        names = ["summary.csv", "replicates.csv", "draws.csv"]
        if not per_km.empty:
            km.to_csv(staging / "km.csv", index=False)
            per_km.to_csv(staging / "replicates_km.csv", index=False)
            names += ["km.csv", "replicates_km.csv"]
        if plots:
            from carkinetics.plots.cohort import save_figure
            from carkinetics.plots.studies import plot_replicate_km, plot_replicate_outcomes

            title = f"{base.name}: {replicates} parameter draws x {n_patients} patients"
            fig = plot_replicate_outcomes(summary, title=title)
            if fig is not None:
                names += [p.name for p in save_figure(fig, staging / "outcomes", ("png",))]
            if not per_km.empty:
                fig = plot_replicate_km(km, title=title)
                names += [p.name for p in save_figure(fig, staging / "km", ("png",))]
        info["files"] = sorted(names + ["run.json"])
        write_json(staging / "run.json", info)
    info["files"] = [str(Path(output_dir) / f) for f in info["files"]]
    return info


# ---- carkinetics sweep --replicates --------------------------------------------------------------
def sweep_replicates(scenario_path, output, *, replicates, sample_path=None, n=None, seed=None, jobs=None,
                     chunk_size=None, per_patient=None, resume=False, progress=True, points=None, overrides=None,
                     table_format="csv"):
    """The scenario's sweep under each of ``replicates`` parameter draws, summarised over the draws.

    Each draw's sweep is a complete sweep folder, ``OUTPUT/replicates/rNNN`` (resumable with
    the whole: ``resume=True`` continues the unfinished ones; a resume is refused if the sample,
    or anything a plain sweep's resume checks, changed). ``OUTPUT`` itself is a sweep folder
    (read by ``carkinetics plot`` and :func:`~carkinetics.studies.sweep_result.load_sweep`)
    whose summaries and Kaplan-Meier curves are those over the draws
    (:func:`combine_replicates`): its intervals hold parameter uncertainty. ``OUTPUT/draws.csv``
    lists the parameter values of each draw and, once the whole grid is finished,
    ``OUTPUT/effects.csv`` the paired design effects over the draws (:func:`design_effects`) of
    the ``[sweep.plots]`` outcomes.

    Returns
    -------
    SweepResult
        Of ``OUTPUT``.

    Raises
    ------
    SweepError
        ``OUTPUT`` holds a sweep without ``--replicates``, or (without ``resume``) one with it, or
        (with ``resume``) one of another sample or number of draws.
    """
    import pandas as pd

    from carkinetics.io.atomic import atomic_output_dir, atomic_write_text
    from carkinetics.io.tables import table_name, write_table
    from carkinetics.plots.studies import default_outcomes
    from carkinetics.scenario.load import load_scenario
    from carkinetics.scenario.parameter_sets import sample_sha256
    from carkinetics.studies.sweep import swept_scenario, sweep
    from carkinetics.studies.sweep_result import SweepResult, check_output_folder, load_sweep, write_combined

    out = check_output_folder(output)
    base, _ = swept_scenario(load_scenario(scenario_path), dict(overrides or {}))
    sample = find_parameter_sample(base, sample_path)
    check_replicates(sample, replicates, base.model)
    sha = sample_sha256(sample)
    _check_replicates_folder(out, replicates, sha, resume)
    resume_args = ["--replicates", str(replicates)] + (
        ["--parameter-sample", str(sample_path)] if sample_path is not None else [])
    folders, seed_used = [], seed
    for k in range(replicates):
        sc = load_replicate(scenario_path, sample, k)  # sweep() applies (and checks) the --set values
        folder = out / "replicates" / f"r{k:03d}"
        if isinstance(progress, bool) and progress:
            import sys

            print(f"{base.name}: parameter draw {k + 1} of {replicates}", file=sys.stderr)
        res = sweep(sc, folder, n=n, seed=seed_used, jobs=jobs, chunk_size=chunk_size, per_patient=per_patient,
                    resume=resume and (folder / "sweep.json").exists(), progress=progress, points=points,
                    overrides=overrides, table_format=table_format,
                    replicate={"draw": int(sample.draws[k]), "parameter_sample_sha256": sha, "output": out,
                               "resume_args": resume_args})
        seed_used = res.info.get("seed", seed_used)
        folders.append(folder)
    results = [load_sweep(f) for f in folders]
    finished = sorted(set.intersection(*(set(r.info["finished"]) for r in results)))
    summ = pd.concat([r.summary.assign(replicate=k) for k, r in enumerate(results)], ignore_index=True)
    kms = pd.concat([r.km.assign(replicate=k) for k, r in enumerate(results)], ignore_index=True)
    combined = combine_replicates(summ[summ["point"].isin(finished)], ["point", "arm", "endpoint", "statistic"])
    combined_km = combine_replicates(kms[kms["point"].isin(finished)], ["point", "arm", "endpoint", "time"],
                                     value="survival")
    info = dict(results[0].info)
    info.update({
        "finished": finished, "status": "complete" if len(finished) == info["n_points"] else "partial",
        "replicates": {"n": int(replicates), "parameter_sample": str(sample.path), "parameter_sample_sha256": sha,
                       "draws": [int(d) for d in sample.draws[:replicates]],
                       "folders": [str(f.relative_to(out)) for f in folders], "level": LEVEL,
                       "interval": "value: median over the draws; lower/upper: 95% interval of the mixture of the "
                                   "draws' estimates with their Monte Carlo errors; draws_lower/draws_upper: "
                                   "quantiles of the draws' estimates; the same virtual patients under every draw"},
        "point_stats": {},
    })
    for pid in finished:
        with atomic_output_dir(out / "points" / f"{pid:04d}") as staging:
            write_table(combined[combined["point"] == pid], staging / table_name("summary", table_format),
                        table_format)
            write_table(combined_km[combined_km["point"] == pid], staging / table_name("km", table_format),
                        table_format)
    atomic_write_text(out / "grid.csv", (folders[0] / "grid.csv").read_text(encoding="utf-8"))
    atomic_write_text(out / "draws.csv", draws_table(sample, replicates).to_csv(index=False))
    if info["status"] == "complete":  # design effects need the whole grid
        plots = info.get("sweep", {}).get("plots", {}) or {}
        combined_result = SweepResult(grid=results[0].grid, summary=combined, km=combined_km, info=info, path=out)
        outcomes = list(plots.get("outcomes") or default_outcomes(combined_result))
        effects = design_effects(results, outcomes, plots.get("fixed"))
        atomic_write_text(out / "effects.csv", effects.to_csv(index=False))
    else:
        (out / "effects.csv").unlink(missing_ok=True)  # an earlier run's would not describe this grid
    write_combined(out, info)
    atomic_write_text(out / "sweep.json", json.dumps(info, indent=2, default=str))
    return load_sweep(out)


def _check_replicates_folder(out, replicates, sha, resume) -> None:
    """Refuse an output folder that holds another sweep, or (to resume) one of other draws."""
    from carkinetics.io.results import read_result_json
    from carkinetics.scenario.grid import SweepError

    record = out / "sweep.json"
    old = read_result_json(record) if record.is_file() else None
    started = (out / "replicates").is_dir()
    if old is not None and not old.get("replicates"):
        raise SweepError(f"{out} holds a sweep without --replicates; run this one into another --output folder")
    hint = (old or {}).get("resume_command") or _first_replicate_hint(out)
    if (old is not None or started) and not resume:
        raise SweepError(f"{out} already holds a sweep with --replicates; pass --resume to continue it"
                         + (f" ({hint})" if hint else "") + " or choose another --output folder")
    if old is not None:
        then = old["replicates"]
        if then.get("parameter_sample_sha256") != sha or int(then.get("n", -1)) != replicates:
            raise SweepError(f"{out}: cannot resume: the sweep there drew {then.get('n')} parameter sets from "
                             f"{then.get('parameter_sample')} (sha256 {str(then.get('parameter_sample_sha256'))[:16]}"
                             f"), this one {replicates} from a sample with sha256 {sha[:16]}; resuming would mix "
                             f"results of different draws: run this one into another --output folder")


def _first_replicate_hint(out):
    """The resume command recorded by the first draw's sweep (before the summary's sweep.json exists)."""
    from carkinetics.io.results import read_result_json

    for record in sorted((out / "replicates").glob("r*/sweep.json")):
        try:
            return read_result_json(record).get("resume_command")
        except Exception:  # noqa: BLE001 - a hint only
            return None
    return None


def replicates_progress(out):
    """(replicate folders with a sweep record, resume command) of an interrupted ``--replicates`` sweep."""
    records = sorted((out / "replicates").glob("r*/sweep.json")) if (out / "replicates").is_dir() else []
    return len(records), _first_replicate_hint(out) if records else None


def _label_key(v) -> str:
    """A grid label as text, numbers written alike (45, 45.0 and "45" are one label)."""
    try:
        return f"{float(v):g}"
    except (TypeError, ValueError):
        return str(v)


def design_effects(results, outcomes, fixed=None, level=LEVEL):
    """Paired design effects under parameter uncertainty: each axis's levels against its first.

    For every outcome and every axis of the grid, each level is compared with the axis's
    first level, the other axes held at ``fixed`` (default: their first level), within each
    parameter draw (the same virtual patients at both points); the differences are then
    summarised over the draws.

    Parameters
    ----------
    results : list of SweepResult
        One sweep per draw (the same grid).
    outcomes : list of str
        Outcome specs (``cr_d28``, ``os@365``, ``endpoint:statistic``).
    fixed : dict, optional
        Axis -> label of the axes held fixed.

    Returns
    -------
    pandas.DataFrame
        ``outcome``, ``axis``, ``level``, ``reference``, ``held`` (the other axes' labels),
        ``value`` (median over the draws of the difference), ``lower``/``upper`` (95 % interval
        over the draws, each draw's difference with the Monte Carlo standard error of two
        *independent* cohorts: an upper bound, since the same patients at both points make
        the paired error smaller), ``draws_lower``/``draws_upper`` (quantiles of the draws'
        differences), ``share_positive`` and ``share_negative`` (shares of draws with a positive and a
        negative difference), ``replicates``.
    """
    import pandas as pd

    first = results[0]
    grid = first.grid
    axes = [a for a in first.axis_names if a in grid.columns]
    keys = {a: [_label_key(v) for v in dict.fromkeys(grid[a])] for a in axes}
    held_at = {a: _label_key((fixed or {}).get(a, grid[a].iloc[0])) for a in axes}
    a_lo = (1 - level) / 2
    rows = []
    for spec in outcomes:
        endpoint, statistic = first.parse_outcome(spec)
        tables = []
        for k, r in enumerate(results):
            t = r.outcome(endpoint, statistic)
            if "arm" not in axes and "arm" in t.columns:
                groups = set(t["arm"])
                t = t[t["arm"] == ("all" if "all" in groups else sorted(groups)[0])]
            tables.append(t.assign(replicate=k))
        t = pd.concat(tables, ignore_index=True)
        lab = pd.DataFrame({a: t[a].map(_label_key) for a in axes})
        for axis in axes:
            if len(keys[axis]) < 2:
                continue
            others = [a for a in axes if a != axis]
            base = np.ones(len(t), bool)
            for a in others:
                base &= (lab[a] == held_at[a]).to_numpy()
            ref = keys[axis][0]
            ref_rows = t[base & (lab[axis] == ref).to_numpy()].set_index("replicate")
            for level_key in keys[axis][1:]:
                lv = t[base & (lab[axis] == level_key).to_numpy()].set_index("replicate")
                both = lv[["value", "lower", "upper"]].merge(ref_rows[["value", "lower", "upper"]], left_index=True,
                                                             right_index=True, suffixes=("", "_ref"))
                if both.empty:
                    continue
                d = (both["value"] - both["value_ref"]).to_numpy(float)
                se = np.sqrt(((both["upper"] - both["lower"]) / (2 * Z95)) ** 2
                             + ((both["upper_ref"] - both["lower_ref"]) / (2 * Z95)) ** 2).to_numpy(float)
                mix = mixture_quantiles(d[None, :], se[None, :], [a_lo, 1 - a_lo])[0]
                ok = np.isfinite(d)
                rows.append({"outcome": spec, "axis": axis, "level": level_key, "reference": ref,
                             "held": ", ".join(f"{a}={held_at[a]}" for a in others),
                             "value": float(np.median(d[ok])) if ok.any() else np.nan,
                             "lower": mix[0], "upper": mix[1],
                             "draws_lower": float(np.quantile(d[ok], a_lo)) if ok.any() else np.nan,
                             "draws_upper": float(np.quantile(d[ok], 1 - a_lo)) if ok.any() else np.nan,
                             "share_positive": float(np.mean(d[ok] > 0)) if ok.any() else np.nan,
                             "share_negative": float(np.mean(d[ok] < 0)) if ok.any() else np.nan,
                             "replicates": int(ok.sum())})
    return pd.DataFrame(rows, columns=["outcome", "axis", "level", "reference", "held", "value", "lower", "upper",
                                       "draws_lower", "draws_upper", "share_positive", "share_negative",
                                       "replicates"])
