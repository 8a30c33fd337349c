"""``carkinetics calibrate``: fit one parameter set per product to reported targets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click


@click.command()
@click.argument("calibration", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", "-o", "output", type=str, default=None,
              help="Folder for the parameter sets and the record (default: results/calibration/<name>).")
@click.option("--write-parameter-sets", is_flag=True,
              help="Write into the folder named by [calibration] output in the file (e.g. models/calibrated/<name>), "
                   "replacing the parameter sets the scenarios read. Not with --output.")
@click.option("--n", "n", default=None, type=click.IntRange(2), help="Virtual patients per scenario (default: file).")
@click.option("--method", type=click.Choice(["nelder-mead", "differential_evolution"]), default=None,
              help="Optimiser (default: file).")
@click.option("--maxiter", default=None, type=click.IntRange(0),
              help="Iteration budget: generations (differential evolution) or iterations per estimate (Nelder-Mead); "
                   "0: no optimisation, the start is the result (with --start-from, to profile or sample an earlier "
                   "run's estimates).")
@click.option("--starts", default=None, type=click.IntRange(1),
              help="Optimiser runs (default: file): the model's values, then Latin-hypercube points (Nelder-Mead) "
                   "or seeds (differential evolution); the record says how many reach the best objective.")
@click.option("--objective", type=click.Choice(["distance", "likelihood"]), default=None,
              help="What is minimised (default: file): squared standardised distances, or -log likelihood of the "
                   "reported numbers (binomial, log(-log) normal, censoring-aware medians).")
@click.option("--start-from", "start_from", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIRECTORY", help="Start from the estimates of an earlier run of this calibration (its results "
                                        "folder, with calibration.json) instead of the scenarios' parameter sets.")
@click.option("--uncertainty", is_flag=True,
              help="After the fit: profile-likelihood intervals of every estimate, an identifiability report "
                   "(flat profiles, estimates at bounds, correlations) and a sample of parameter sets "
                   "(intervals.csv, profiles.csv/png, uncertainty.json, parameter_sample.csv).")
@click.option("--samples", default=200, show_default=True, type=click.IntRange(1),
              help="Parameter sets drawn for parameter_sample.csv (with --uncertainty).")
@click.option("--sir-proposals", default=0, show_default=True, type=click.IntRange(0),
              help="Draw parameter_sample.csv by sampling importance resampling from this many proposals (one "
                   "evaluation each; with --uncertainty): the sample follows the likelihood where it is not "
                   "quadratic. 0: draws from the normal approximation.")
@click.option("--profiles-from", "profiles_from", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIRECTORY", help="With --uncertainty: read the profiles of an earlier --uncertainty run at the "
                                        "same optimum (same estimates, cohort size, seed and calibration file) instead "
                                        "of recomputing them, e.g. to draw a new sample.")
@click.option("--profile-maxiter", default=40, show_default=True, type=click.IntRange(1),
              help="Nelder-Mead iterations over the other estimates at each profile point (with --uncertainty); "
                   "fewer is faster but can only narrow the intervals.")
@click.option("--jobs", "-j", default=None, type=click.IntRange(1), help="Threads (default: all cores).")
@click.option("--dry-run", is_flag=True, help="Check the file and list estimates and targets; simulate nothing.")
def calibrate(calibration, output, write_parameter_sets, n, method, maxiter, starts, objective, start_from,
              uncertainty, samples, sir_proposals, profiles_from, profile_maxiter, jobs, dry_run):
    """Fit one parameter set per product to the reported targets of the products' seed scenarios.

    Results go to --output (default results/calibration/<name>); the parameter sets the
    scenarios read (the file's [calibration] output) are replaced only with --write-parameter-sets.
    """
    import shlex

    from carkinetics.studies.calibrate import CalibrationError, start_from_record
    from carkinetics.studies.calibrate import calibrate as run_calibration
    from carkinetics.studies.calibration_file import load_calibration
    from carkinetics.studies.calibration_output import check_calibration_output, default_output, write_calibration
    from carkinetics.studies.sweep_result import check_output_folder

    _check_options(uncertainty, profiles_from, sir_proposals, samples, write_parameter_sets, output)
    if output is not None:
        check_output_folder(output)  # before the file is read: a bad -o is refused at once
    cal = load_calibration(calibration)
    if objective is not None:
        cal.objective = objective
    if write_parameter_sets:
        if cal.output is None:
            raise click.UsageError(f"--write-parameter-sets: {calibration} names no folder of parameter sets "
                                   f"([calibration] output)")
        out = cal.output
    else:
        out = Path(output) if output is not None else default_output(cal)
    out = check_calibration_output(cal, out)  # before anything is fitted
    start = None
    if start_from is not None:
        try:
            start = start_from_record(cal, start_from)
        except CalibrationError as err:
            raise click.UsageError(f"--start-from: {err}") from None
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
        """Redraw the optimiser's progress line on stderr."""
        click.echo("\r" + line, nl=False, err=True)

    result = run_calibration(cal, n=n, method=method, starts=starts, maxiter=maxiter, jobs=jobs, progress=progress,
                             start=start, started_from=str(start_from or ""))
    click.echo("", err=True)
    if uncertainty:
        result.uncertainty = _uncertainty(result, jobs=jobs, samples=samples, maxiter=profile_maxiter,
                                          proposals=sir_proposals, profiles_from=profiles_from, progress=progress)
    click.echo(f"objective {result.objective_initial:.4g} -> {result.objective:.4g} after {result.n_evaluations} "
               f"evaluations ({result.seconds:.0f} s); {int((result.comparison['inside'] == True).sum())} of "  # noqa: E712
               f"{int(result.comparison['inside'].notna().sum())} targets inside their reported interval "
               f"(before: {int((result.comparison['inside_initial'] == True).sum())}); objective: {cal.objective}; "  # noqa: E712
               f"{result.n_at_best} of {len(result.starts)} optimiser runs reached the best")
    for _, row in result.table().iterrows():
        flag = "  (at a bound)" if row["at_bound"] else ""
        click.echo(f"  {row['parameter']:32s} {row['product']:14s} {row['initial']:11.4g} -> {row['estimate']:11.4g}"
                   f"{flag}")
    if result.uncertainty is not None:
        _echo_uncertainty(result.uncertainty, cal.labels)
    files = write_calibration(result, out, command=shlex.join(["carkinetics", "calibrate", *sys.argv[2:]]))
    click.echo(f"wrote {len(files)} files to {os.path.normpath(out)}")
    if not write_parameter_sets and cal.output is not None:
        same = os.path.realpath(out) == os.path.realpath(cal.output)
        if not same:
            click.echo(f"  the scenarios still read the parameter sets in {os.path.normpath(cal.output)} (unchanged); "
                       f"to replace them, copy the product files there after review, or run "
                       f"{shlex.join(['carkinetics', 'calibrate', str(calibration), '--write-parameter-sets'])}")


def _echo_uncertainty(unc, labels):
    """Print the profile intervals, the identifiability report and how the sample was drawn."""
    click.echo(f"profile-likelihood {unc.level:.0%} intervals ({unc.n_evaluations} evaluations):")
    for r in unc.intervals.itertuples():
        lo = "bound" if r.lower_flat else f"{r.lower:.4g}"
        hi = "bound" if r.upper_flat else f"{r.upper:.4g}"
        click.echo(f"  {r.label:40s} {r.estimate:11.4g}  [{lo}, {hi}]")
    for note in unc.identifiability(labels):
        click.echo(f"  identifiability: {note}")
    if unc.sampling:
        sm = unc.sampling
        click.echo(f"  parameter sample: {len(unc.sample)} sets by {sm['method']} from {sm['proposals']} "
                   f"proposals (effective sample size {sm['effective_sample_size']:.0f}, largest weight "
                   f"{sm['max_weight_share']:.1%})")
        if sm.get("warning"):
            click.echo(f"  warning: {sm['warning']}", err=True)


def _uncertainty(result, **kw):
    """The calibration's uncertainty (profiles, sample); a --profiles-from that does not fit is a usage error."""
    from carkinetics.studies.calibrate import CalibrationError
    from carkinetics.studies.calibration_uncertainty import calibration_uncertainty

    try:
        unc = calibration_uncertainty(result, **kw)
    except CalibrationError as err:
        raise click.UsageError(str(err)) from None
    click.echo("", err=True)
    return unc


def _check_options(uncertainty, profiles_from, sir_proposals, samples, write_parameter_sets, output):
    """Usage errors among the options, before anything is read."""
    if profiles_from is not None and not uncertainty:
        raise click.UsageError("--profiles-from needs --uncertainty")
    if sir_proposals and sir_proposals < samples:
        raise click.UsageError(f"--sir-proposals {sir_proposals} is fewer than --samples {samples}")
    if write_parameter_sets and output is not None:
        raise click.UsageError("--write-parameter-sets writes to the folder of [calibration] output in the file; "
                               "give either it or --output")
