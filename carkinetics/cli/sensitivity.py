"""``carkinetics sensitivity``: which parameters drive an outcome."""

from __future__ import annotations

from pathlib import Path

import click

from carkinetics.cli.common import comma_separated


@click.command()
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
    names = comma_separated(parameters) if parameters else None
    res = run_sensitivity(sc, outcome, output, methods=comma_separated(methods),
                          parameters=names, fold=fold, n=n, n_samples=samples, seed=seed, jobs=jobs,
                          progress=True, keep_unreachable=keep_unreachable)
    for line in res.report_lines():
        click.echo(line)
    if plots:
        from carkinetics.studies.figures import plot_results

        files = plot_results(output)
        click.echo(f"  {len(files)} figures in {output / 'figures'}")
