"""``carkinetics fit``: fit a model to observations or to reported summary numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from carkinetics.progress import ProgressBars


@click.command()
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

    from carkinetics.fit import (NonIdentifiableWarning, fit_individual, fit_population, fit_targets,
                                 load_target_table, parametric_bootstrap, profile_likelihood, write_fit)
    from carkinetics.io.atomic import check_output_dir
    from carkinetics.model.load import load_model

    if (data is None) == (targets is None):
        raise click.UsageError("give either DATA (observations) or --targets FILE (reported numbers)")
    check_output_dir(output)  # before anything is fitted
    output = Path(output)
    m = load_model(model)
    progress = ProgressBars()
    command = "carkinetics fit " + " ".join(sys.argv[2:])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NonIdentifiableWarning)
        if targets is not None:
            select = [t.strip() for t in target_ids.split(",")] if target_ids else None
            tg, sha = load_target_table(targets, select=select)
            result = fit_targets(m, tg, estimate, n=n, seed=seed, starts=starts, progress=progress,
                                 targets_path=str(targets), targets_sha256=sha)
            click.echo(f"{len(tg)} targets, cohort of {n}: objective {result.objective:.4g}, "
                       f"{result.n_at_best}/{len(result.starts)} runs at the best optimum")
        else:
            from carkinetics.scenario.data import load_data

            ds = load_data(data, m)
            click.echo(f"{data}: {ds.summary()}")
            if patient is not None or len(ds.ids) == 1:
                result = fit_individual(m, ds, estimate, patient=patient, sigma=sigma, starts=starts,
                                        seed=seed, progress=progress)
                if profile:
                    profile_likelihood(result, progress=progress)
                if bootstrap:
                    parametric_bootstrap(result, bootstrap, seed=seed, progress=progress)
                click.echo(f"-2 log L = {result.objective:.4f}, sigma = {result.sigma:.3g}, "
                           f"{result.n_at_best}/{result.n_starts} starts at the best optimum")
            else:
                result = fit_population(m, ds, estimate, method=method, sigma=sigma, starts=starts,
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
    files = write_fit(result, output, command=command)
    click.echo(f"wrote {len(files)} files to {output}")
