"""Running tasks on Dask: a local cluster or a running scheduler, one task per item, results as they complete."""

from __future__ import annotations

import uuid

from carkinetics.scenario.grid import SweepError


def import_distributed():
    """Import ``distributed`` or explain how to install it.

    Returns
    -------
    module
        The ``distributed`` package.

    Raises
    ------
    SweepError
        When ``distributed`` is not installed, with the command that installs it.
    """
    try:
        import distributed
    except ImportError:
        raise SweepError("running on Dask needs the optional dependency 'distributed': "
                         "pip install 'carkinetics[distributed]' (or pip install 'dask[distributed]')") from None
    return distributed


def run_dask(task, items, finish, *, scheduler, n_workers=None, key=lambda item: item, prefix="carkinetics"):
    """Submit ``task(*args)`` for each ``(item, args)`` and call ``finish(result)`` as each completes.

    Parameters
    ----------
    task : callable
        A module-level function (it is pickled by reference).
    items : sequence of (object, tuple)
        An item and the arguments of its task.
    finish : callable
        Called with each task's result, in the order they complete.
    scheduler : str or distributed.Client
        ``"local"`` for a local cluster of ``n_workers`` single-threaded processes, the address of
        a scheduler (``tcp://host:8786``), or a client to use.
    n_workers : int, optional
        Workers of the local cluster (default 2).
    key : callable, optional
        The item's part of the task's Dask key.
    prefix : str, optional
        Start of every task's Dask key.

    Raises
    ------
    SweepError
        When ``distributed`` is not installed.
    """
    distributed = import_distributed()
    cluster = None
    if scheduler == "local":
        cluster = distributed.LocalCluster(n_workers=n_workers or 2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
    elif isinstance(scheduler, str):
        client = distributed.Client(scheduler)
    else:
        client = scheduler  # an existing distributed.Client
    try:
        run_id = uuid.uuid4().hex[:12]
        futures = [client.submit(task, *args, pure=False, key=f"{prefix}-{run_id}-{key(item)}")
                   for item, args in items]
        try:
            for fut in distributed.as_completed(futures):
                finish(fut.result())
        finally:
            for fut in futures:
                fut.cancel()
    finally:
        if client is not scheduler:
            client.close()
        if cluster is not None:
            cluster.close()
