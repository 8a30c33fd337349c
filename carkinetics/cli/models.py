"""``carkinetics models``: list the available models."""

from __future__ import annotations

from pathlib import Path

import click

from carkinetics.errors import CarKineticsError


@click.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of model files (default: ./models and the shipped models).")
def models(folder):
    """List the available models."""
    from carkinetics.model.load import load_model, model_files, model_search_paths

    folders = [folder] if folder else model_search_paths()
    files = model_files(folders)
    for path in files:
        try:
            m = load_model(path)
            click.echo(f"{path.stem:20s} {m.n_states:3d} states {m.n_parameters:4d} parameters  {m.description}")
        except CarKineticsError as err:
            click.echo(f"{path.stem:20s} INVALID: {str(err).splitlines()[0]}")
    if not files:
        raise click.ClickException(f"no model files found in {', '.join(str(f) for f in folders)}")
