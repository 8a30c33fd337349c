"""``carkinetics vpc``: visual predictive check of a scenario against its observed data."""

from __future__ import annotations

from pathlib import Path

import click

from carkinetics.cli.common import comma_separated


def _bins(text):
    """``--bins``: a number of bins, or comma-separated bin edges (None when not given)."""
    if text is None:
        return None
    items = comma_separated(text)
    try:
        if len(items) == 1:
            n = int(items[0])
            if n < 1:
                raise ValueError
            return n
        return [float(x) for x in items]
    except ValueError:
        raise click.BadParameter(f"expected a number of bins (e.g. 8) or comma-separated bin edges "
                                 f"(e.g. 0,7,14,28,90,365), got {text!r}", param_hint="--bins") from None


@click.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", "-o", "output", type=str, required=True, metavar="DIRECTORY",
              help="Folder for vpc.csv, vpc.png and vpc.json (created; files of an earlier check there are "
                   "replaced; a folder with other files is refused).")
@click.option("--replicates", type=click.IntRange(1, 10_000), default=200, show_default=True,
              help="Replicate trials simulated, each of the observed study's size and sampling times.")
@click.option("--seed", type=click.IntRange(0), default=None,
              help="Random seed (default: [population] seed, else a fresh one, kept in vpc.json).")
@click.option("--error", "error", default=None, metavar="MODEL",
              help="Residual error added to simulated values of every output: none, additive:A (output units), "
                   "proportional:B (0.2 = 20 %), combined:B,A (variances added), or exponential:S "
                   "(log-normal, SD S of the log; aliases lognormal:S, log:S). Default: the model file's "
                   "[residual_error] section, else none.")
@click.option("--pred-corr", is_flag=True, default=False,
              help="Prediction-corrected VPC (Bergstrand 2011): values scaled by PRED_bin / PRED of the "
                   "typical patient.")
@click.option("--bins", default=None, metavar="N|EDGES",
              help="Number of quantile bins, or comma-separated bin edges (default: one bin per sampling "
                   "time when there are at most 15, else 8 quantile bins).")
@click.option("--bin-centre", type=click.Choice(["mean", "median", "middle"]), default="mean", show_default=True,
              help="Where a bin is drawn: mean or median of its times, or the middle of its edges.")
@click.option("--jobs", "-j", type=click.IntRange(1), default=None, help="Engine threads (default: all cores).")
def vpc(scenario, output, replicates, seed, error, pred_corr, bins, bin_centre, jobs):
    """Visual predictive check: observed percentiles of the scenario's [data] over simulated 95 % intervals."""
    from carkinetics.io.atomic import check_output_dir
    from carkinetics.scenario.load import load_scenario
    from carkinetics.model.residual_error import parse_residual_error
    from carkinetics.studies.vpc import VPC_FILES, run_vpc, write_vpc

    error_model = parse_residual_error(error, "--error") if error is not None else None
    edges = _bins(bins)
    check_output_dir(output, clean=True, known=VPC_FILES)  # before anything is simulated
    sc = load_scenario(scenario)
    result = run_vpc(sc, replicates, seed, error=error_model, pred_corr=pred_corr, bins=edges, centre=bin_centre,
                     jobs=jobs)
    files = write_vpc(result, output)
    info = result.info
    arms = ", ".join(f"{a} {n}" for a, n in info["arms"].items())
    click.echo(f"{sc.name}: {'prediction-corrected ' if pred_corr else ''}VPC of {info['n_observations']} "
               f"observations ({info['n_censored']} below LLOQ; subjects per arm: {arms}), {replicates} replicate "
               f"trials (seed {info['seed']}), residual error {info['error']}")
    click.echo(f"  observed percentiles inside their simulated 95 % intervals: {info['percentiles_inside']} of "
               f"{info['percentiles_reported']}")
    if info["n_failed_values"]:
        click.echo(f"  warning: {info['n_failed_values']} simulated observations are missing (failed simulations); "
                   f"they are left out of the percentiles", err=True)
    for f in files:
        click.echo(f"  wrote {f}")
