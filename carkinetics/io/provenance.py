"""Provenance of result files: software versions, time stamps and checksums of inputs."""

from __future__ import annotations

import datetime
import hashlib


def provenance(extra=None) -> dict:
    """Software versions and time stamp for result files.

    Parameters
    ----------
    extra : dict, optional
        Further entries, added to (and overriding) the ones collected here.

    Returns
    -------
    dict
        ``carkinetics``, ``numpy``, ``scipy``, ``numba`` and ``python`` versions and the
        ``created`` time stamp (UTC, ISO 8601, seconds), then ``extra``.
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
