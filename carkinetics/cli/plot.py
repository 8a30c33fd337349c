"""``carkinetics plot``: redraw the figures of a saved sweep or sensitivity folder."""

from __future__ import annotations

from pathlib import Path

import click

from carkinetics.cli.common import comma_separated


@click.command()
@click.argument("results", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--format", "formats", default="png,pdf", show_default=True, help="Comma-separated: png, pdf, svg.")
def plot(results, formats):
    """Redraw every figure of a saved sweep or sensitivity folder (nothing is simulated)."""
    from carkinetics.io.atomic import check_output_dir
    from carkinetics.studies.figures import plot_results

    fmts = tuple(comma_separated(formats))
    bad = [f for f in fmts if f not in ("png", "pdf", "svg")]
    if bad:
        raise click.BadParameter(f"unknown format(s) {bad}; expected png, pdf or svg", param_hint="--format")
    check_output_dir(results / "figures")  # before anything is drawn
    files = plot_results(results, formats=fmts)
    click.echo(f"{len(files)} figures in {results / 'figures'}")
