"""Command line: parse, call the library, print. No logic of its own."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import CarKineticsError


class _Group(click.Group):
    """Turn input errors into ``Error: ...`` and exit status 1, without a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CarKineticsError as err:
            raise click.ClickException(str(err)) from None
        except FileNotFoundError as err:
            raise click.ClickException(str(err)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="carkinetics")
def main():
    """carkinetics: CAR-T cell kinetics for protocol design in T-cell leukaemia."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def check(files):
    """Validate model or scenario files without running them (all problems at once)."""
    from .scenario import check_file

    failed = []
    for f in files:
        try:
            click.echo(check_file(f))
        except CarKineticsError as err:
            failed.append(str(err))
    if failed:
        raise click.ClickException("\n".join(failed))


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", "-o", "output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the results (created; files are replaced atomically).")
def run(scenario, output):
    """Simulate a scenario and write its results and plots to OUTPUT."""
    from .run import run_typical
    from .scenario import load_scenario

    sc = load_scenario(scenario)
    summary = run_typical(sc, output)
    click.echo(f"{sc.name}: {summary['status']} ({summary['n_steps']} steps, "
               f"{summary['n_rhs_evals']} right-hand-side evaluations)")
    for f in summary["files"]:
        click.echo(f"  wrote {f}")


@main.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of model files (default: ./models and the shipped models).")
def models(folder):
    """List the available models."""
    from .model import load_model, model_search_paths

    folders = [folder] if folder else model_search_paths()
    seen = set()
    for f in folders:
        if not f.is_dir():
            continue
        for path in sorted(f.glob("*.toml")):
            if path.stem in seen:
                continue
            seen.add(path.stem)
            try:
                m = load_model(path)
                click.echo(f"{path.stem:20s} {m.n_states:3d} states {m.n_parameters:4d} parameters  {m.description}")
            except CarKineticsError as err:
                click.echo(f"{path.stem:20s} INVALID: {str(err).splitlines()[0]}")
    if not seen:
        raise click.ClickException(f"no model files found in {', '.join(str(f) for f in folders)}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
