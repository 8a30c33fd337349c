"""Command line: parse, call the library, print. No logic of its own."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import click

from carkinetics.errors import CarKineticsError


class _Group(click.Group):
    """Turn input errors into ``Error: ...`` and exit status 1, without a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CarKineticsError as err:
            raise click.ClickException(str(err)) from None
        except FileNotFoundError as err:
            raise click.ClickException(str(err)) from None
        except OSError as err:  # a file that cannot be read or written (no space, permissions): not a bug
            if err.filename is None and err.errno not in _DISK_ERRNOS:
                raise
            where = f"{os.fsdecode(err.filename)}: " if err.filename is not None else ""
            raise click.ClickException(f"{where}{err.strerror or err}") from None


_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                errno.ENAMETOOLONG}


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="carkinetics")
def main():
    """carkinetics: CAR-T cell kinetics for protocol design in T-cell leukaemia."""


def _engine_threads_sleep_when_idle():
    """For ``carkinetics run``, which simulates cohorts chunk by chunk: unless the user chose otherwise,
    the engine's OpenMP threads sleep as soon as a chunk is done instead of spinning for the
    next one (``OMP_WAIT_POLICY=PASSIVE``), which leaves the core to the thread that reduces
    the finished chunks meanwhile (about 0.25 core-seconds per 100,000 patients of the
    two-state reference model). Read when the OpenMP runtime loads: before the first batch."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def check(files):
    """Validate model or scenario files without running them (all problems at once)."""
    from carkinetics.scenario.load import check_file

    failed = []
    for f in files:
        try:
            click.echo(check_file(f))
        except CarKineticsError as err:
            failed.append(str(err))
    if failed:
        raise click.ClickException("\n".join(failed))


# ---- run (issue 3 cohort: carkinetics/run.py, carkinetics/cohort.py) --------------------------
class _PatientProgress:
    """A progress bar on stderr with the patients simulated per second."""

    def __init__(self, label):
        import time

        self._time = time.perf_counter
        self.label = label
        self.bar = None
        self.start = None

    def __call__(self, done, total):
        if self.bar is None:
            self.start = self._time()
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_pos=True,
                                         item_show_func=lambda s: s)
            self.bar.__enter__()
        rate = done / max(self._time() - self.start, 1e-9)
        self.bar.update(done - self.bar.pos, current_item=f"{rate:,.0f} patients/s")
        if done >= total:
            self.close()

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", "-o", "output", type=str, required=True, metavar="DIRECTORY",
              help="Folder for the results (created; files are replaced atomically, files of an earlier run "
                   "there are removed; a folder with other files is refused).")
@click.option("--n", "n", type=click.IntRange(1), default=None,
              help="Virtual patients (default: [population] size). Without --n and without [population] or "
                   "[arms], the scenario's typical patient is simulated.")
@click.option("--seed", type=click.IntRange(0), default=None,
              help="Random seed (default: [population] seed, else a fresh one, printed and kept in run.json).")
@click.option("--jobs", "-j", type=click.IntRange(1), default=None,
              help="Engine threads (default: all cores); with more than one, finished chunks are reduced and "
                   "written alongside. Results are identical for any number.")
@click.option("--chunk-size", type=click.IntRange(1), default=None,
              help="Patients simulated at once (default: about 32 MB of outputs per chunk).")
@click.option("--trajectories", is_flag=True, default=False,
              help="Also write every patient's trajectory (trajectories.csv; large).")
def run(scenario, output, n, seed, jobs, chunk_size, trajectories):
    """Simulate a scenario (its typical patient, or a virtual cohort) and write results and plots to OUTPUT."""
    import gc

    _engine_threads_sleep_when_idle()
    # No garbage collections during the run: each full pass walks every object of numba, pandas
    # and matplotlib (~0.2 s of a 3 s run), and a run makes little cyclic garbage (a few objects
    # per chunk). Afterwards the objects alive are frozen (kept out of later collections; garbage
    # among them is still freed when its last reference goes) before the collector is switched
    # back on, so that neither re-enabling it nor exiting starts a pass over ~10^6 objects (0.06 s
    # and 0.3 s).
    from carkinetics.studies.run import check_run_output

    check_run_output(output)  # before anything is computed (or a helper started)
    output = Path(output)
    was_enabled = gc.isenabled()
    gc.disable()
    from carkinetics.plots.render import FigureHelper

    # started first: the helper imports matplotlib while this process starts up (see render.py)
    with FigureHelper() as figures:
        try:
            _run(scenario, output, n, seed, jobs, chunk_size, trajectories, figures)
        finally:
            if was_enabled:
                gc.freeze()
                gc.enable()


def _run(scenario, output, n, seed, jobs, chunk_size, trajectories, figures):
    from carkinetics.studies.run import is_cohort_run, run_population, run_typical
    from carkinetics.scenario.load import load_scenario

    sc = load_scenario(scenario)
    if not is_cohort_run(sc, n):
        if seed is not None or jobs is not None or chunk_size is not None or trajectories:
            raise click.UsageError("--seed, --jobs, --chunk-size and --trajectories need a cohort "
                                   "(--n, or [population] in the scenario)")
        summary = run_typical(sc, output)
        click.echo(f"{sc.name}: {summary['status']} ({summary['n_steps']} steps, "
                   f"{summary['n_rhs_evals']} right-hand-side evaluations)")
        for f in summary["files"]:
            click.echo(f"  wrote {f}")
        return
    progress = _PatientProgress(sc.name)
    try:
        result = run_population(sc, output, n=n, seed=seed, jobs=jobs, chunk_size=chunk_size,
                                trajectories=trajectories, progress=progress, figures=figures)
    finally:
        progress.close()
    info = result.info
    arms = ", ".join(f"{a} {v['n']}" for a, v in info["arms"].items())
    click.echo(f"{sc.name}: {info['n_patients']} virtual patients (seed {info['seed']}; {arms}) in "
               f"{info['timings']['total_s']:.1f} s, {info['patients_per_second']:,.0f} patients/s")
    if info["n_failed"]:
        click.echo(f"  warning: {info['n_failed']} patients failed to integrate ({info['status']}); their "
                   f"endpoints are NaN and they are left out of the bands", err=True)
    if info["clipped_to_bounds"]:
        click.echo(f"  note: parameter draws clipped to the model's bounds: {info['clipped_to_bounds']}", err=True)
    for f in result.files:
        click.echo(f"  wrote {f}")


# ---- end run ----------------------------------------------------------------------------------


@main.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of model files (default: ./models and the shipped models).")
def models(folder):
    """List the available models."""
    from carkinetics.model.spec import load_model, model_search_paths

    folders = [folder] if folder else model_search_paths()
    seen = set()
    for f in folders:
        if not f.is_dir():
            continue
        for path in sorted(f.glob("*.toml")):
            if path.stem in seen:
                continue
            seen.add(path.stem)
            try:
                m = load_model(path)
                click.echo(f"{path.stem:20s} {m.n_states:3d} states {m.n_parameters:4d} parameters  {m.description}")
            except CarKineticsError as err:
                click.echo(f"{path.stem:20s} INVALID: {str(err).splitlines()[0]}")
    if not seen:
        raise click.ClickException(f"no model files found in {', '.join(str(f) for f in folders)}")


# ---- validate (issue 5: carkinetics/validate.py) ---------------------------------------------
@main.command()
@click.argument("scenarios", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", "-o", "output", type=str, default=None, metavar="DIRECTORY",
              help="Folder for validation.csv, validation.png and validation.json (files of an earlier run there "
                   "are removed; a folder with other files is refused).")
@click.option("--n", "n", type=click.IntRange(1), default=2000, show_default=True,
              help="Virtual patients per seed scenario.")
@click.option("--seed", type=click.IntRange(0), default=1, show_default=True, help="Random seed.")
@click.option("--jobs", "-j", type=click.IntRange(1), default=None, help="Threads (default: all cores).")
def validate(scenarios, output, n, seed, jobs):
    """Run the seed scenarios (default: every shipped scenario with [targets]) and compare
    each simulated endpoint with its reported value and 95% interval.

    The exit status is 0 whatever the verdicts: they are data.
    """
    from carkinetics.io.atomic import check_output_dir
    from carkinetics.studies.validate import VALIDATION_FILES, run_validation, verdict_counts

    if output is not None:
        check_output_dir(output, clean=True, known=VALIDATION_FILES)  # before anything is simulated
        output = Path(output)
    table = run_validation(scenarios or None, n=n, seed=seed, jobs=jobs, output=output,
                           progress_factory=lambda sc, total: _PatientProgress(sc.name))
    fmt = "{:<34s} {:<8s} {:>9s} [{:>9s}, {:>9s}]  {:>9s} [{:>9s}, {:>9s}]  {}"
    click.echo(fmt.format("target", "role", "reported", "lower", "upper", "simulated", "MC lo", "MC hi", "verdict"))

    def g(x):
        return "" if x != x else f"{x:.4g}"

    for r in table.itertuples():
        verdict = {True: "inside", False: "OUTSIDE"}.get(r.inside, "no interval")
        click.echo(fmt.format(r.target_id, r.role, g(r.reported), g(r.reported_lower), g(r.reported_upper),
                              g(r.simulated), g(r.mc_lower), g(r.mc_upper), verdict))
    c = verdict_counts(table)
    share = c["inside"] / c["outcome_rows"] if c["outcome_rows"] else float("nan")
    click.echo(f"{c['inside']} of {c['outcome_rows']} outcome rows inside the reported 95% interval "
               f"({share:.0%}); {c['outside']} outside, {c['no_interval']} without an interval; "
               f"{c['inputs']} rows are protocol inputs")
    if output is not None:
        for f in ("validation.csv", "validation.png", "validation.json"):
            click.echo(f"  wrote {Path(output) / f}")


# ---- end validate -----------------------------------------------------------------------------


# ---- fit (issue 4: carkinetics/fit.py) -------------------------------------------------------
def _progress_bars():
    """A ``progress(done, total, label)`` callback drawing one click progress bar per label on stderr."""
    bars = {}

    def progress(done, total, label):
        bar = bars.get(label)
        if bar is None:
            bar = bars[label] = click.progressbar(length=total, label=f"{label:>20s}", file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)
        if done >= total:
            bar.__exit__(None, None, None)
            del bars[label]

    return progress


@main.command()
@click.argument("model")
@click.argument("data", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--estimate", "-e", required=True, help="Comma-separated parameters to estimate.")
@click.option("--targets", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Fit reported summary numbers (a targets.csv-style table) instead of DATA.")
@click.option("--target-ids", default=None, help="Comma-separated target_id rows of --targets to fit (default all).")
@click.option("--starts", default=10, show_default=True, type=click.IntRange(1),
              help="Multi-start: starts per patient (Latin hypercube), or optimiser runs for --targets.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--sigma", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Known residual SD on the log scale (default: estimated).")
@click.option("--patient", default=None, help="Fit only this patient of DATA.")
@click.option("--method", type=click.Choice(["iterative-two-stage", "two-stage"]), default="iterative-two-stage",
              show_default=True, help="Population method when DATA has several patients.")
@click.option("--profile/--no-profile", default=True, show_default=True,
              help="Profile-likelihood intervals (individual fits).")
@click.option("--bootstrap", default=0, type=click.IntRange(0),
              help="Parametric bootstrap replicates (individual fits).")
@click.option("--n", "n", default=200, show_default=True, type=click.IntRange(2), help="Cohort size for --targets.")
@click.option("--output", "-o", "output", type=str, required=True, metavar="DIRECTORY",
              help="Folder for the results (created; files are replaced atomically).")
def fit(model, data, estimate, targets, target_ids, starts, seed, sigma, patient, method, profile, bootstrap, n,
        output):
    """Fit MODEL to DATA (long CSV) or to reported numbers (--targets); write estimates, plots, calibrated model."""
    import warnings

    from carkinetics.fit import individual as fitting
    from carkinetics.io.atomic import check_output_dir
    from carkinetics.model.spec import load_model

    if (data is None) == (targets is None):
        raise click.UsageError("give either DATA (observations) or --targets FILE (reported numbers)")
    check_output_dir(output)  # before anything is fitted
    output = Path(output)
    m = load_model(model)
    progress = _progress_bars()
    command = "carkinetics fit " + " ".join(sys.argv[2:])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", fitting.NonIdentifiableWarning)
        if targets is not None:
            select = [t.strip() for t in target_ids.split(",")] if target_ids else None
            tg, sha = fitting.load_target_table(targets, select=select)
            result = fitting.fit_targets(m, tg, estimate, n=n, seed=seed, starts=starts, progress=progress,
                                         targets_path=str(targets), targets_sha256=sha)
            click.echo(f"{len(tg)} targets, cohort of {n}: objective {result.objective:.4g}, "
                       f"{result.n_at_best}/{len(result.starts)} runs at the best optimum")
        else:
            from carkinetics.scenario.data import load_data

            ds = load_data(data, m)
            click.echo(f"{data}: {ds.summary()}")
            if patient is not None or len(ds.ids) == 1:
                result = fitting.fit_individual(m, ds, estimate, patient=patient, sigma=sigma, starts=starts,
                                                seed=seed, progress=progress)
                if profile:
                    fitting.profile_likelihood(result, progress=progress)
                if bootstrap:
                    fitting.parametric_bootstrap(result, bootstrap, seed=seed, progress=progress)
                click.echo(f"-2 log L = {result.objective:.4f}, sigma = {result.sigma:.3g}, "
                           f"{result.n_at_best}/{result.n_starts} starts at the best optimum")
            else:
                result = fitting.fit_population(m, ds, estimate, method=method, sigma=sigma, starts=starts,
                                                seed=seed, progress=progress)
                click.echo(f"{result.method}: {len(result.individual)} patients, sigma = {result.sigma:.3g}")
    for w in caught:
        click.echo(f"Warning: {w.message}", err=True)
    table = result.table()
    for _, row in table.iterrows():
        if row["parameter"] == "sigma":
            continue
        est = row.get("typical", row.get("estimate"))
        lo, hi = row.get("lower", float("nan")), row.get("upper", float("nan"))
        click.echo(f"  {row['parameter']:24s} {est:12.5g}   95% [{lo:.4g}, {hi:.4g}]")
    files = fitting.write_fit(result, output, command=command)
    click.echo(f"wrote {len(files)} files to {output}")
# ---- end fit ----------------------------------------------------------------------------------

# ---- sweeps, sensitivity and figures (issue 6) -------------------------------------------


def _int_list(text):
    if text is None:
        return None
    try:
        return [int(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated point ids, got {text!r}") from None


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", "-o", "output", type=str, required=True,
              help="Results folder (grid.csv, summary.csv, km.csv, points/, sweep.json, figures/).")
@click.option("--n", "n", type=click.IntRange(min=1), default=None,
              help="Virtual patients per grid point (default: [sweep] n, then [population] size).")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Seed; the same virtual patients at every grid point (common random numbers).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Threads (per Dask task on Dask).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None,
              help="Patients simulated at once (memory); results do not depend on it.")
@click.option("--per-patient/--no-per-patient", default=None,
              help="Also write each point's per-patient table (points/<id>/patients.csv.gz).")
@click.option("--resume", is_flag=True, help="Continue an interrupted sweep in OUTPUT (finished points are kept).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on Dask: 'local' for a local cluster or a scheduler address (tcp://host:8786). "
                   "Needs pip install 'carkinetics[distributed]'.")
@click.option("--dask-workers", type=click.IntRange(min=1), default=None, help="Workers of --scheduler local.")
@click.option("--points", "points", default=None, metavar="IDS", help="Only these grid points (e.g. 0,3,5).")
@click.option("--progress/--no-progress", default=True, help="Progress line on stderr.")
@click.option("--plots/--no-plots", default=True, help="Draw the figures when the sweep is complete.")
def sweep(scenario, output, n, seed, jobs, chunk_size, per_patient, resume, scheduler, dask_workers, points,
          progress, plots):
    """Run a virtual cohort at every point of the scenario's [sweep] grid."""
    from carkinetics.scenario.load import load_scenario
    from carkinetics.studies.sweep import check_output_folder
    from carkinetics.studies.sweep import sweep as run_sweep

    check_output_folder(output)  # a bad -o is refused before anything is read or computed
    point_ids = _int_list(points)
    sc = load_scenario(scenario)
    output = Path(output)
    try:
        result = run_sweep(sc, output, n=n, seed=seed, jobs=jobs, chunk_size=chunk_size, per_patient=per_patient,
                           resume=resume, scheduler=scheduler, dask_workers=dask_workers,
                           progress=progress, points=point_ids)
    except KeyboardInterrupt:
        import json

        try:
            info = json.loads((output / "sweep.json").read_text(encoding="utf-8"))
            finished, command = len(info["finished"]), info["resume_command"]
        except (OSError, ValueError, KeyError, TypeError):
            finished = command = None
        if finished:
            click.echo(f"\ninterrupted: {finished} of {info['n_points']} grid points finished and kept in "
                       f"{output}; continue with: {command}", err=True)
        else:
            click.echo("\ninterrupted before any grid point finished", err=True)
        sys.exit(130)
    info = result.info
    click.echo(f"{sc.name}: {len(info['finished'])} of {info['n_points']} grid points finished "
               f"({info['status']}), results in {output}")
    if plots and info["status"] == "complete":
        from carkinetics.plots.studies import plot_results

        files = plot_results(output)
        click.echo(f"  {len(files)} figures in {output / 'figures'}")


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--outcome", required=True,
              help="endpoint, endpoint:statistic (e.g. cmax:median) or endpoint@day (survival at a day).")
@click.option("--output", "-o", "output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Results folder (tornado.csv, global.csv, sensitivity.json, figures/).")
@click.option("--method", "methods", default="tornado,prcc", show_default=True,
              help="Comma-separated: tornado, prcc, sobol.")
@click.option("--parameters", default=None, metavar="NAMES",
              help="Comma-separated parameters (default: every parameter with bounds).")
@click.option("--fold", type=click.FloatRange(min=1.0, min_open=True), default=None,
              help="Range typical/FOLD .. typical*FOLD (within bounds) instead of the model's bounds.")
@click.option("--n", "n", type=click.IntRange(min=1), default=200, show_default=True,
              help="Virtual patients per tornado run.")
@click.option("--samples", type=click.IntRange(min=8), default=None,
              help="Latin-hypercube samples for PRCC (default 4096) or base samples for Sobol, a power of 2 "
                   "(default 256).")
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None)
@click.option("--keep-unreachable", is_flag=True, default=False,
              help="Also simulate parameters that cannot reach the outcome (only in unused outputs or in events "
                   "after its day); they are flagged either way.")
@click.option("--plots/--no-plots", default=True)
def sensitivity(scenario, outcome, output, methods, parameters, fold, n, samples, seed, jobs, keep_unreachable,
                plots):
    """Which parameters drive an outcome: tornado (one at a time) and PRCC or Sobol (global)."""
    from carkinetics.scenario.load import load_scenario
    from carkinetics.studies.sensitivity import run_sensitivity

    sc = load_scenario(scenario)
    names = [p for p in parameters.replace(" ", "").split(",") if p] if parameters else None
    res = run_sensitivity(sc, outcome, output, methods=[m for m in methods.replace(" ", "").split(",") if m],
                          parameters=names, fold=fold, n=n, n_samples=samples, seed=seed, jobs=jobs,
                          progress=True, keep_unreachable=keep_unreachable)
    for line in res.report_lines():
        click.echo(line)
    if plots:
        from carkinetics.plots.studies import plot_results

        files = plot_results(output)
        click.echo(f"  {len(files)} figures in {output / 'figures'}")


@main.command()
@click.argument("results", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--format", "formats", default="png,pdf", show_default=True, help="Comma-separated: png, pdf, svg.")
def plot(results, formats):
    """Redraw every figure of a saved sweep or sensitivity folder (nothing is simulated)."""
    from carkinetics.plots.studies import plot_results

    from carkinetics.io.atomic import check_output_dir

    fmts = tuple(f for f in formats.replace(" ", "").split(",") if f)
    bad = [f for f in fmts if f not in ("png", "pdf", "svg")]
    if bad:
        raise click.BadParameter(f"unknown format(s) {bad}; expected png, pdf or svg", param_hint="--format")
    check_output_dir(results / "figures")  # before anything is drawn
    files = plot_results(results, formats=fmts)
    click.echo(f"{len(files)} figures in {results / 'figures'}")

# ---- end of sweeps, sensitivity and figures ----------------------------------------------


# ---- calibration across products (issue 5) -----------------------------------------------


@main.command()
@click.argument("calibration", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", "-o", "output", type=str, default=None,
              help="Folder for the parameter sets and the record (default: results/calibration/<name>).")
@click.option("--write-parameter-sets", is_flag=True,
              help="Write into the folder named by [calibration] output in the file (e.g. models/calibrated/<name>), "
                   "replacing the parameter sets the scenarios read. Not with --output.")
@click.option("--n", "n", default=None, type=click.IntRange(2), help="Virtual patients per scenario (default: file).")
@click.option("--method", type=click.Choice(["nelder-mead", "differential_evolution"]), default=None,
              help="Optimiser (default: file).")
@click.option("--maxiter", default=None, type=click.IntRange(1),
              help="Iteration budget: generations (differential evolution) or iterations per estimate (Nelder-Mead).")
@click.option("--jobs", "-j", default=None, type=click.IntRange(1), help="Threads (default: all cores).")
@click.option("--dry-run", is_flag=True, help="Check the file and list estimates and targets; simulate nothing.")
def calibrate(calibration, output, write_parameter_sets, n, method, maxiter, jobs, dry_run):
    """Fit one parameter set per product to the reported targets of the products' seed scenarios.

    Results go to --output (default results/calibration/<name>); the parameter sets the
    scenarios read (the file's [calibration] output) are replaced only with --write-parameter-sets.
    """
    import shlex

    from carkinetics.studies.calibrate import calibrate as run_calibration
    from carkinetics.studies.calibrate import check_calibration_output, default_output, load_calibration, write_calibration
    from carkinetics.studies.sweep import check_output_folder

    if write_parameter_sets and output is not None:
        raise click.UsageError("--write-parameter-sets writes to the folder of [calibration] output in the file; "
                               "give either it or --output")
    if output is not None:
        check_output_folder(output)  # before the file is read: a bad -o is refused at once
    cal = load_calibration(calibration)
    if write_parameter_sets:
        if cal.output is None:
            raise click.UsageError(f"--write-parameter-sets: {calibration} names no folder of parameter sets "
                                   f"([calibration] output)")
        out = cal.output
    else:
        out = Path(output) if output is not None else default_output(cal)
    out = check_calibration_output(cal, out)  # before anything is fitted
    click.echo(f"{cal.name}: {len(cal.products)} products, {len(cal.estimates)} estimates "
               f"({', '.join(cal.labels)}), {len(cal.targets)} targets, {len(cal.excluded)} excluded, "
               f"{len(cal.fixed)} documented as fixed")
    if dry_run:
        for t in cal.targets:
            click.echo(f"  {t.target_id:40s} {t.product:12s} {t.statistic:20s} {t.reported:<10.4g} se {t.se:.3g} "
                       f"({t.se_source})")
        for tid, why in cal.excluded.items():
            click.echo(f"  excluded {tid}: {why}")
        click.echo(f"would write to {os.path.normpath(out)}")
        return

    def progress(line):
        click.echo("\r" + line, nl=False, err=True)

    result = run_calibration(cal, n=n, method=method, maxiter=maxiter, jobs=jobs, progress=progress)
    click.echo("", err=True)
    click.echo(f"objective {result.objective_initial:.4g} -> {result.objective:.4g} after {result.n_evaluations} "
               f"evaluations ({result.seconds:.0f} s); {int((result.comparison['inside'] == True).sum())} of "  # noqa: E712
               f"{int(result.comparison['inside'].notna().sum())} targets inside their reported interval "
               f"(before: {int((result.comparison['inside_initial'] == True).sum())})")  # noqa: E712
    for _, row in result.table().iterrows():
        flag = "  (at a bound)" if row["at_bound"] else ""
        click.echo(f"  {row['parameter']:32s} {row['product']:14s} {row['initial']:11.4g} -> {row['estimate']:11.4g}"
                   f"{flag}")
    files = write_calibration(result, out, command=shlex.join(["carkinetics", "calibrate", *sys.argv[2:]]))
    click.echo(f"wrote {len(files)} files to {os.path.normpath(out)}")
    if not write_parameter_sets and cal.output is not None:
        same = os.path.realpath(out) == os.path.realpath(cal.output)
        if not same:
            click.echo(f"  the scenarios still read the parameter sets in {os.path.normpath(cal.output)} (unchanged); "
                       f"to replace them, copy the product files there after review, or run "
                       f"{shlex.join(['carkinetics', 'calibrate', str(calibration), '--write-parameter-sets'])}")

# ---- end of calibration ---------------------------------------------------------------------


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
