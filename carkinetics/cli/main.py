"""The ``carkinetics`` command group: its commands, and input errors shown as ``Error: ...``.

Each command lives in a module of its own (``carkinetics.cli.run`` holds ``carkinetics run``,
and so on): it parses its options, calls the library and prints.
"""

from __future__ import annotations

import errno
import os
import sys

import click

from carkinetics.cli.calibrate import calibrate
from carkinetics.cli.check import check
from carkinetics.cli.fit import fit
from carkinetics.cli.models import models
from carkinetics.cli.plot import plot
from carkinetics.cli.run import run
from carkinetics.cli.sensitivity import sensitivity
from carkinetics.cli.sweep import sweep
from carkinetics.cli.validate import validate
from carkinetics.cli.vpc import vpc
from carkinetics.errors import CarKineticsError

#: Errors of a file that cannot be read or written (no space, permissions): not bugs.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
               errno.ENAMETOOLONG}


class CommandGroup(click.Group):
    """Turn input errors into ``Error: ...`` and exit status 1, without a traceback."""

    def invoke(self, ctx):
        """See :meth:`click.Group.invoke`."""
        try:
            return super().invoke(ctx)
        except CarKineticsError as err:
            raise click.ClickException(str(err)) from None
        except FileNotFoundError as err:
            raise click.ClickException(str(err)) from None
        except OSError as err:  # a file that cannot be read or written (no space, permissions): not a bug
            if err.filename is None and err.errno not in DISK_ERRNOS:
                raise
            where = f"{os.fsdecode(err.filename)}: " if err.filename is not None else ""
            raise click.ClickException(f"{where}{err.strerror or err}") from None


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="carkinetics")
def main():
    """carkinetics: CAR-T cell kinetics for protocol design in T-cell leukaemia."""


for command in (calibrate, check, fit, models, plot, run, sensitivity, sweep, validate, vpc):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
