"""``carkinetics check``: validate model and scenario files without running them."""

from __future__ import annotations

from pathlib import Path

import click

from carkinetics.errors import CarKineticsError


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--reference", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="TABLE.csv",
              help="Check scenarios' target ids against this reference table instead of the shipped one.")
def check(files, reference):
    """Validate model or scenario files without running them (all problems at once)."""
    from carkinetics.scenario.load import check_file
    from carkinetics.scenario.reference import reference_table

    failed = []
    with reference_table(reference):
        for f in files:
            try:
                click.echo(check_file(f))
            except CarKineticsError as err:
                failed.append(str(err))
    if failed:
        raise click.ClickException("\n".join(failed))
