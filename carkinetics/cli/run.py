"""``carkinetics run``: simulate a scenario's typical patient or a virtual cohort."""

from __future__ import annotations

from pathlib import Path

import click

from carkinetics.cli.common import PatientProgress, apply_settings, parse_settings, replicates_options, set_option
from carkinetics.io.tables import TABLE_FORMATS, TableFormatError, check_table_format


@click.command()
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
              help="Patients simulated at once (default: about 64 MB of outputs per chunk).")
@click.option("--trajectories", is_flag=True, default=False,
              help="Also write every patient's trajectory (trajectories.csv; large).")
@click.option("--format", "table_format", type=click.Choice(TABLE_FORMATS), default="csv", show_default=True,
              help="Format of the patient table and the bands of a cohort (patients.parquet, bands.parquet). "
                   "Parquet needs pip install 'carkinetics[parquet]'.")
@replicates_options
@set_option
def run(scenario, output, n, seed, jobs, chunk_size, trajectories, table_format, replicates, parameter_sample,
        settings):
    """Simulate a scenario (its typical patient, or a virtual cohort) and write results and plots to OUTPUT."""
    import gc

    # No garbage collections during the run: each full pass walks every object of numba, pandas
    # and matplotlib (~0.2 s of a 3 s run), and a run makes little cyclic garbage (a few objects
    # per chunk). Afterwards the objects alive are frozen (kept out of later collections; garbage
    # among them is still freed when its last reference goes) before the collector is switched
    # back on, so that neither re-enabling it nor exiting starts a pass over ~10^6 objects (0.06 s
    # and 0.3 s).
    from carkinetics.studies.run import check_run_output

    try:
        check_table_format(table_format)  # Parquet without pyarrow: refused before anything is written
    except TableFormatError as err:
        raise click.UsageError(str(err)) from None
    overrides = parse_settings(settings)
    if replicates is not None or parameter_sample is not None:
        return _run_replicates(scenario, output, n, seed, jobs, chunk_size, trajectories, table_format, replicates,
                               parameter_sample, overrides)
    check_run_output(output)  # before anything is computed (or a helper started)
    output = Path(output)
    was_enabled = gc.isenabled()
    gc.disable()
    from carkinetics.plots.render import FigureHelper

    # started first: the helper imports matplotlib while this process starts up (see plots/render.py)
    with FigureHelper() as figures:
        try:
            _run(scenario, output, n, seed, jobs, chunk_size, trajectories, figures, overrides, table_format)
        finally:
            if was_enabled:
                gc.freeze()
                gc.enable()


def _run(scenario, output, n, seed, jobs, chunk_size, trajectories, figures, overrides, table_format="csv"):
    """Run the scenario (with the ``--set`` values) and print what was simulated and written."""
    from carkinetics.studies.run import is_cohort_run, run_population, run_typical
    from carkinetics.scenario.load import load_scenario

    sc = apply_settings(load_scenario(scenario), overrides)  # before the output folder is made
    if not is_cohort_run(sc, n):
        if seed is not None or jobs is not None or chunk_size is not None or trajectories or table_format != "csv":
            raise click.UsageError("--seed, --jobs, --chunk-size, --trajectories and --format need a cohort "
                                   "(--n, or [population] in the scenario)")
        summary = run_typical(sc, output, overrides=overrides)
        click.echo(f"{sc.name}: {summary['status']} ({summary['n_steps']} steps, "
                   f"{summary['n_rhs_evals']} right-hand-side evaluations)")
        for f in summary["files"]:
            click.echo(f"  wrote {f}")
        return
    progress = PatientProgress(sc.name)
    try:
        result = run_population(sc, output, n=n, seed=seed, jobs=jobs, chunk_size=chunk_size,
                                trajectories=trajectories, progress=progress, figures=figures,
                                overrides=overrides, table_format=table_format, keep_parameters=False)
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


def _run_replicates(scenario, output, n, seed, jobs, chunk_size, trajectories, table_format, replicates,
                    parameter_sample, overrides):
    """``run --replicates K``: the cohort under K parameter draws, summarised over them."""
    from carkinetics.scenario.load import load_scenario
    from carkinetics.studies.replicates import run_replicates
    from carkinetics.studies.run import is_cohort_run

    if replicates is None:
        raise click.UsageError("--parameter-sample needs --replicates K")
    if trajectories or table_format != "csv":
        raise click.UsageError("--trajectories and --format parquet are not available with --replicates")
    sc = apply_settings(load_scenario(scenario), overrides)  # a bad --set is a usage error, before anything runs
    if not is_cohort_run(sc, n):
        raise click.UsageError("--replicates needs a cohort (--n, or [population] or [arms] in the scenario)")

    def progress(k, total):
        click.echo(f"{sc.name}: parameter draw {k + 1} of {total}", err=True)

    info = run_replicates(scenario, output, replicates=replicates, sample_path=parameter_sample, n=n, seed=seed,
                          jobs=jobs, chunk_size=chunk_size, overrides=overrides, progress=progress)
    click.echo(f"{sc.name}: {info['replicates']} parameter draws x {info['n_patients_per_replicate']} virtual "
               f"patients (seed {info['seed']}; the same patients under every draw; sample {info['parameter_sample']})"
               f" in {info['seconds']:.1f} s")
    for f in info["files"]:
        click.echo(f"  wrote {f}")
