"""Seeded Latin-hypercube sampling of a box."""

from __future__ import annotations

import numpy as np


def scipy_rng(seed, old_name: str) -> dict:
    """The keyword argument that hands scipy a seeded generator: ``{"rng": Generator}`` for
    scipy >= 1.15, else ``{old_name: Generator}`` (``seed`` or ``random_state``: scipy 1.13-1.14
    do not know ``rng``). Both spellings draw the same stream from the same generator.

    Parameters
    ----------
    seed : int or sequence of int
        Seed of ``numpy.random.default_rng``.
    old_name : str
        The keyword the scipy function took before ``rng``.

    Returns
    -------
    dict
    """
    import scipy

    major, minor = (int(x) for x in scipy.__version__.split(".")[:2])
    gen = np.random.default_rng(seed)
    return {"rng": gen} if (major, minor) >= (1, 15) else {old_name: gen}


def latin_hypercube(lower, upper, n, seed=0, log=None) -> np.ndarray:
    """A seeded Latin-hypercube sample of ``n`` points in the box ``[lower, upper]``.

    The unit-cube points are ``scipy.stats.qmc.LatinHypercube(d=k)`` seeded with ``np.random.default_rng(seed)``;
    each coordinate is then scaled linearly, or log-uniformly where ``log`` is true.

    Parameters
    ----------
    lower, upper : array_like, shape (k,)
        The box (in the units of the coordinates).
    n : int
        Number of points.
    seed : int or sequence of int
        Seed of ``numpy.random.default_rng``.
    log : array_like of bool, shape (k,), optional
        Sample these coordinates uniformly in log (they need ``lower > 0``). Default: none.

    Returns
    -------
    ndarray, shape (n, k)

    Examples
    --------
    >>> latin_hypercube([0.0, 1.0], [1.0, 100.0], 4, seed=0, log=[False, True]).shape
    (4, 2)
    """
    from scipy.stats import qmc

    lo = np.asarray(lower, float)
    hi = np.asarray(upper, float)
    u = qmc.LatinHypercube(d=lo.size, **scipy_rng(seed, "seed")).random(int(n))
    if log is None or not np.any(log):
        return lo + u * (hi - lo)
    log = np.asarray(log, bool)
    out = np.empty_like(u)
    lin = ~log
    out[:, lin] = lo[lin] + u[:, lin] * (hi[lin] - lo[lin])
    a, b = np.log(lo[log]), np.log(hi[log])
    out[:, log] = np.exp(a + u[:, log] * (b - a))
    return out
