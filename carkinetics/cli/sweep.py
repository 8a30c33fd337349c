"""``carkinetics sweep``: a virtual cohort at every point of a scenario's grid."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from carkinetics.cli.common import apply_settings, parse_settings, replicates_options, set_option
from carkinetics.io.tables import TABLE_FORMATS, TableFormatError, check_table_format

def _int_list(text):
    """Comma-separated grid point ids as a list of ints (None for None)."""
    if text is None:
        return None
    try:
        return [int(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated point ids, got {text!r}") from None


@click.command()
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
@click.option("--format", "table_format", type=click.Choice(TABLE_FORMATS), default="csv", show_default=True,
              help="Format of the summary, Kaplan-Meier and per-patient tables (summary.parquet, km.parquet, "
                   "points/<id>/patients.parquet; grid.csv stays CSV). Parquet needs "
                   "pip install 'carkinetics[parquet]'.")
@replicates_options
@set_option
def sweep(scenario, output, n, seed, jobs, chunk_size, per_patient, resume, scheduler, dask_workers, points,
          progress, plots, table_format, replicates, parameter_sample, settings):
    """Run a virtual cohort at every point of the scenario's [sweep] grid."""
    from carkinetics.scenario.load import load_scenario
    from carkinetics.studies.sweep_result import check_output_folder
    from carkinetics.studies.sweep import sweep as run_sweep

    try:
        check_table_format(table_format)  # Parquet without pyarrow: refused before anything is written
    except TableFormatError as err:
        raise click.UsageError(str(err)) from None
    check_output_folder(output)  # a bad -o is refused before anything is read or computed
    point_ids = _int_list(points)
    overrides = parse_settings(settings)
    sc = apply_settings(load_scenario(scenario), overrides, sweep=True)
    output = Path(output)
    if parameter_sample is not None and replicates is None:
        raise click.UsageError("--parameter-sample needs --replicates K")
    if replicates is not None and scheduler is not None:
        raise click.UsageError("--replicates runs on this machine: it cannot be combined with --scheduler")
    try:
        if replicates is not None:
            from carkinetics.studies.replicates import sweep_replicates

            result = sweep_replicates(scenario, output, replicates=replicates, sample_path=parameter_sample, n=n,
                                      seed=seed, jobs=jobs, chunk_size=chunk_size, per_patient=per_patient,
                                      resume=resume, progress=progress, points=point_ids, overrides=overrides,
                                      table_format=table_format)
        else:
            result = run_sweep(sc, output, n=n, seed=seed, jobs=jobs, chunk_size=chunk_size, per_patient=per_patient,
                               resume=resume, scheduler=scheduler, dask_workers=dask_workers,
                               progress=progress, points=point_ids, overrides=overrides, table_format=table_format)
    except KeyboardInterrupt:
        import json

        if replicates is not None:
            from carkinetics.studies.replicates import replicates_progress

            started, command = replicates_progress(output)
            if command:
                click.echo(f"\ninterrupted: {started} of {replicates} parameter draws started, their finished grid "
                           f"points kept in {output / 'replicates'}; continue with: {command}", err=True)
            else:
                click.echo("\ninterrupted before any grid point finished", err=True)
            sys.exit(130)

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
    reps = f" under {replicates} parameter draws" if replicates is not None else ""
    click.echo(f"{sc.name}: {len(info['finished'])} of {info['n_points']} grid points finished{reps} "
               f"({info['status']}), results in {output}")
    if replicates is not None and info["status"] == "complete" and (output / "effects.csv").is_file():
        _echo_effects(output / "effects.csv", replicates)
    if plots and info["status"] == "complete":
        from carkinetics.studies.figures import plot_results

        files = plot_results(output)
        click.echo(f"  {len(files)} figures in {output / 'figures'}")


def _echo_effects(path, replicates):
    """Print the paired design effects of a --replicates sweep (effects.csv)."""
    import pandas as pd

    eff = pd.read_csv(path, keep_default_na=False, na_values=[""])
    if eff.empty:
        return
    click.echo(f"design effects over {replicates} parameter draws, each level against the axis's first with the other "
               f"axes held, paired within each draw (the same patients): median, the 95% range of the draws, how "
               f"many draws it raises / lowers the outcome; [95% interval with an upper bound of the Monte Carlo "
               f"error]: {path}")
    for r in eff.itertuples():
        click.echo(f"  {r.outcome:24s} {r.axis} {r.level} vs {r.reference}: {r.value:+.3g} (draws {r.draws_lower:+.3g} "
                   f"to {r.draws_upper:+.3g}; up in {r.share_positive:.0%}, down in {r.share_negative:.0%}) "
                   f"[{r.lower:+.3g}, {r.upper:+.3g}]")
