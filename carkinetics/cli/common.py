"""What several commands share: the cohort progress line, comma-separated option values and ``--set``."""

from __future__ import annotations

from pathlib import Path

import click

from carkinetics.progress import Progress


class PatientProgress:
    """A ``progress(done, total)`` callback for one cohort: a progress line on stderr.

    The line (:class:`~carkinetics.progress.Progress`) counts from the moment this object is
    made, shows the patients simulated and the patients per second, and ends when ``done``
    reaches ``total``.

    Parameters
    ----------
    label : str
        Written first on the line (the scenario's name).
    """

    def __init__(self, label):
        self.line = Progress(1, label=label, unit="cohort")
        self.drawn = False

    def __call__(self, done, total):
        """``done`` of the cohort's ``total`` patients simulated."""
        self.line.total = total
        self.drawn = True
        self.line(done)
        if done >= total:
            self.line.point_done(done)
            self.close()

    def close(self):
        """End the line (if anything was drawn)."""
        if self.drawn:
            self.line.close()
            self.drawn = False


def comma_separated(text) -> list:
    """The items of a comma-separated option value, spaces removed, empty items dropped.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of str
    """
    return [item for item in text.replace(" ", "").split(",") if item]


def set_option(command):
    """The repeatable ``--set NAME=VALUE`` option (its values reach the command as ``settings``)."""
    return click.option(
        "--set", "settings", multiple=True, metavar="NAME=VALUE",
        help="Set a scenario variable, a model parameter or a covariate (then the same for every patient) "
             "to a number, as if written in the scenario file; repeatable. Recorded in the results.")(command)


def parse_settings(texts) -> dict:
    """The ``--set`` values as NAME -> number; a malformed one is a usage error (exit status 2).

    Parameters
    ----------
    texts : tuple of str

    Returns
    -------
    dict of str to float
    """
    from carkinetics.scenario.overrides import OverrideError, parse_set_options

    try:
        return parse_set_options(texts)
    except OverrideError as err:
        raise click.UsageError(str(err)) from None


def apply_settings(scenario, overrides, sweep=False):
    """The scenario with the ``--set`` values; a name or value it does not accept is a usage error
    (exit status 2).

    Parameters
    ----------
    scenario : Scenario
    overrides : dict of str to float
    sweep : bool, optional
        Also refuse names that the scenario's ``[sweep]`` grid sets.

    Returns
    -------
    Scenario
    """
    from carkinetics.scenario.overrides import OverrideError, apply_overrides, check_not_swept

    try:
        if sweep:
            check_not_swept(scenario, overrides)
        return apply_overrides(scenario, overrides)
    except OverrideError as err:
        raise click.UsageError(str(err)) from None


def replicates_options(f):
    """``--replicates K`` and ``--parameter-sample FILE`` (parameter uncertainty propagated)."""
    f = click.option("--parameter-sample", "parameter_sample", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, metavar="FILE",
                     help="With --replicates: the sample of parameter sets to draw from (default: the "
                          "parameter_sample.csv beside the scenario's parameter sets, written by carkinetics "
                          "calibrate --uncertainty).")(f)
    f = click.option("--replicates", type=click.IntRange(1), default=None, metavar="K",
                     help="Propagate parameter uncertainty: simulate under each of K parameter sets drawn from the "
                          "calibration's sample (the same virtual patients under each); every outcome is reported "
                          "with an interval over the draws.")(f)
    return f
