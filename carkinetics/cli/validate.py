"""``carkinetics validate``: compare the seed scenarios with their reported targets."""

from __future__ import annotations

from pathlib import Path

import click

from carkinetics.cli.common import PatientProgress, parse_settings, set_option


@click.command()
@click.argument("scenarios", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", "-o", "output", type=str, default=None, metavar="DIRECTORY",
              help="Folder for validation.csv, validation.png and validation.json (files of an earlier run there "
                   "are removed; a folder with other files is refused).")
@click.option("--n", "n", type=click.IntRange(1), default=2000, show_default=True,
              help="Virtual patients per seed scenario.")
@click.option("--seed", type=click.IntRange(0), default=1, show_default=True, help="Random seed.")
@click.option("--jobs", "-j", type=click.IntRange(1), default=None, help="Threads (default: all cores).")
@click.option("--reference", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="TABLE.csv",
              help="A reference target table (the format of carkinetics/reference/README.md) that replaces the "
                   "shipped one: the scenarios' target ids are looked up, and scored, in it.")
@click.option("--cross-validate", "cross", type=click.Path(dir_okay=False, path_type=Path), multiple=True,
              metavar="CALIBRATION.toml",
              help="Leave-one-trial-out: refit this calibration without each of its trials in turn and predict the "
                   "trial (and its other seed scenarios, e.g. a long-term follow-up) with the refit; every row is "
                   "out of sample. Writes folds.csv too. Repeat it for a calibration in stages (the kinetics, then "
                   "the clinical outcome links): each fold refits every stage in order, a later one with the "
                   "earlier ones' refitted values fixed.")
@click.option("--fit-n", type=click.IntRange(2), default=None,
              help="With --cross-validate: virtual patients per scenario of each refit (default: the file's).")
@click.option("--maxiter", type=click.IntRange(1), default=None,
              help="With --cross-validate: Nelder-Mead iterations per estimate of each refit (default: the file's).")
@click.option("--starts", type=click.IntRange(1), default=1, show_default=True,
              help="With --cross-validate: optimiser runs of each refit.")
@set_option
def validate(scenarios, output, n, seed, jobs, reference, cross, fit_n, maxiter, starts, settings):
    """Run the seed scenarios (default: every shipped scenario with [targets]) and compare
    each simulated endpoint with its reported value and 95% interval.

    The exit status is 0 whatever the verdicts: they are data.
    """
    from carkinetics.errors import DataError
    from carkinetics.io.atomic import check_output_dir
    from carkinetics.scenario.overrides import OverrideError
    from carkinetics.scenario.reference import load_targets
    from carkinetics.studies.baselines import score_summary
    from carkinetics.studies.validate import VALIDATION_FILES, run_validation, verdict_counts

    overrides = parse_settings(settings)
    if cross:
        if scenarios or reference is not None or overrides:
            raise click.UsageError("--cross-validate takes the calibration's scenarios and reference table: give no "
                                   "scenario, --reference or --set with it")
        _cross_validate(list(cross), output, n, seed, jobs, fit_n, maxiter, starts)
        return
    if fit_n is not None or maxiter is not None or starts != 1:
        raise click.UsageError("--fit-n, --maxiter and --starts go with --cross-validate")
    if output is not None:
        check_output_dir(output, clean=True, known=VALIDATION_FILES)  # before anything is simulated
        output = Path(output)
    if reference is not None:
        try:
            load_targets(reference)  # a bad table is a bad option: refused before any scenario is read
        except DataError as err:
            raise click.UsageError(f"--reference: {err}") from None
    try:
        table = run_validation(scenarios or None, n=n, seed=seed, jobs=jobs, output=output,
                               progress_factory=lambda sc, total: PatientProgress(sc.name), overrides=overrides,
                               reference=reference)
    except OverrideError as err:
        raise click.UsageError(str(err)) from None
    fmt = "{:<34s} {:<9s} {:>9s} [{:>9s}, {:>9s}]  {:>9s} [{:>9s}, {:>9s}]  {:>9s}  {}"
    click.echo(fmt.format("target", "basis", "reported", "lower", "upper", "simulated", "MC lo", "MC hi", "pooled",
                          "verdict"))

    def g(x):
        """A number for the table: 4 significant digits, empty for NaN."""
        return "" if x != x else f"{x:.4g}"

    for r in table.itertuples():
        verdict = {True: "inside", False: "OUTSIDE"}.get(r.inside, "no interval")
        click.echo(fmt.format(r.target_id, r.basis, g(r.reported), g(r.reported_lower), g(r.reported_upper),
                              g(r.simulated), g(r.mc_lower), g(r.mc_upper), g(r.baseline_pooled), verdict))
    c = verdict_counts(table)
    share = c["inside"] / c["outcome_rows"] if c["outcome_rows"] else float("nan")
    click.echo(f"{c['inside']} of {c['outcome_rows']} outcome rows inside the reported 95% interval "
               f"({share:.0%}); {c['outside']} outside, {c['no_interval']} without an interval; "
               f"{c['inputs']} rows are protocol inputs")
    click.echo("  by basis: " + "; ".join(f"{b} {v['inside']} of {v['rows']} inside"
                                           for b, v in c["by_basis"].items() if v["rows"]))
    sections = [("all outcome rows", None)]
    if set(table.loc[table["role"] == "outcome", "basis"]) - {"predicted"}:
        sections.append(("predicted rows only", ["predicted"]))
    for label, basis in sections:
        _echo_scores(score_summary(table, basis=basis), label)
    if output is not None:
        for f in ("validation.csv", "validation.png", "validation.json"):
            click.echo(f"  wrote {Path(output) / f}")


def _echo_scores(summary, label):
    """Print a score summary (:func:`carkinetics.studies.baselines.score_summary`) as a table."""
    if summary.empty:
        click.echo(f"No scores ({label}): no row has a naive baseline (no other trial of the reference table "
                   "reports the same quantity as a fraction with its denominator).")
        return
    click.echo(f"Binomial log-likelihood of the reported numbers, {label} with a naive baseline "
               "(higher is better; pooled = the same quantity in the other trials, constant = 0.5):")
    sfmt = "  {:<15s} {:>4s}  {:>9s} {:>9s} {:>9s}  {:>15s}"
    click.echo(sfmt.format("category", "rows", "model", "pooled", "constant", "model > pooled"))
    for s in summary.itertuples():
        click.echo(sfmt.format(s.category, str(s.rows), f"{s.loglik_model:.2f}", f"{s.loglik_pooled:.2f}",
                               f"{s.loglik_constant:.2f}", f"{s.model_beats_pooled} of {s.rows}"))


def _cross_validate(calibration, output, n, seed, jobs, fit_n, maxiter, starts):
    """``validate --cross-validate``: leave-one-trial-out refits and their out-of-sample scores."""
    from carkinetics.io.atomic import check_output_dir
    from carkinetics.studies.cross_validate import CROSS_VALIDATION_FILES, loto_summary, run_cross_validation
    from carkinetics.studies.validate import verdict_counts

    if output is not None:
        check_output_dir(output, clean=True, known=CROSS_VALIDATION_FILES)
        output = Path(output)
    table, fits = run_cross_validation(calibration, n=n, seed=seed, jobs=jobs, output=output, fit_n=fit_n,
                                       maxiter=maxiter, starts=starts,
                                       progress=lambda line: click.echo(line, err=True))
    fmt = "{:<34s} {:<6s} {:>9s} [{:>9s}, {:>9s}]  {:>9s}  {:>9s}  {}"
    click.echo(fmt.format("target", "fold", "reported", "lower", "upper", "predicted", "pooled", "verdict"))

    def g(x):
        """A number for the table: 4 significant digits, empty for NaN."""
        return "" if x != x else f"{x:.4g}"

    for r in table.itertuples():
        verdict = {True: "inside", False: "OUTSIDE"}.get(r.inside, "no interval")
        click.echo(fmt.format(r.target_id, str(r.left_out), g(r.reported), g(r.reported_lower), g(r.reported_upper),
                              g(r.simulated), g(r.baseline_pooled), verdict))
    c = verdict_counts(table)
    click.echo(f"Out of sample: {c['inside']} of {c['outcome_rows']} outcome rows inside the reported 95% interval; "
               f"{len(fits)} refits ({int(fits['n_evaluations'].sum())} evaluations, {fits['seconds'].sum():.0f} s)")
    _echo_scores(loto_summary(table), "out-of-sample rows")
    if output is not None:
        for f in CROSS_VALIDATION_FILES:
            click.echo(f"  wrote {output / f}")
