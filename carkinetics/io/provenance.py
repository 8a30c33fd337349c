"""Provenance of result files: software versions, the command line, the git commit, time stamps and
checksums of inputs."""

from __future__ import annotations

import datetime
import hashlib
import os
import subprocess
import sys
from pathlib import Path

#: Seconds ``git rev-parse`` may take before the commit is recorded as unknown.
GIT_TIMEOUT = 2.0


def provenance(extra=None) -> dict:
    """Software versions and time stamp for result files.

    Parameters
    ----------
    extra : dict, optional
        Further entries, added to (and overriding) the ones collected here.

    Returns
    -------
    dict
        ``carkinetics``, ``numpy``, ``scipy``, ``numba`` and ``python`` versions, ``command``
        (the command line, ``sys.argv``), ``git_commit`` (:func:`git_commit`: the commit of
        the git checkout carkinetics runs from, else None) and the ``created`` time stamp
        (UTC, ISO 8601, seconds), then ``extra``.
    """
    import platform

    import numba
    import numpy
    import scipy

    from carkinetics.version import __version__

    info = {
        "carkinetics": __version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "python": platform.python_version(),
        "command": [str(a) for a in sys.argv],
        "git_commit": git_commit(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    info.update(extra or {})
    return info


def file_sha256(path) -> str:
    """The SHA-256 checksum of a file, read in blocks of 1 MiB.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.

    Returns
    -------
    str
        The checksum as 64 hexadecimal digits.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit(package_dir=None):
    """The commit (``git rev-parse HEAD``) of the git checkout the package runs from, or None.

    Only when ``package_dir`` is the top folder of a checkout's ``carkinetics/`` (an installed
    copy inside some other repository is not attributed to that repository's commit); None
    without git, outside a checkout, or when git takes more than :data:`GIT_TIMEOUT` seconds.

    Parameters
    ----------
    package_dir : str or pathlib.Path, optional
        The package's folder (default: the folder of the running ``carkinetics``).

    Returns
    -------
    str or None
        40 (or 64) hexadecimal digits.
    """
    folder = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent.parent
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(["git", "-C", str(folder), "rev-parse", "--show-toplevel", "HEAD"],
                              capture_output=True, text=True, timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL,
                              env=env, check=False)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    lines = done.stdout.split()
    if done.returncode != 0 or len(lines) != 2:
        return None
    top, commit = lines
    try:
        same = Path(top).resolve() == folder.resolve().parent
    except OSError:
        return None
    if not same or len(commit) not in (40, 64) or any(c not in "0123456789abcdef" for c in commit):
        return None
    return commit
