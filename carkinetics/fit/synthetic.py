"""Synthetic observations in the dataset format."""

from __future__ import annotations

import numpy as np

from carkinetics.fit.problem import default_options


def synthetic_data(model, parameters, times, *, observable=None, sigma=0.5, lloq=None, seed=0, events=(),
                   options=None, ids=None):
    """Simulated observations in the dataset format (for tests, power and recovery studies).

    Parameters
    ----------
    parameters : array (N, n_parameters)
        One parameter vector per patient.
    times : array_like
        Sampling times (days), the same for every patient.
    observable : str, optional
        Output observed (default: the model's first output).
    sigma : float
        Residual SD on the log scale: ``y = f * exp(sigma * eps)``.
    lloq : float, optional
        Lower limit of quantification: ``lloq`` column filled, values below it kept (censored).
    seed : int

    Returns
    -------
    pandas.DataFrame
        Columns ``id, time, observable, value[, lloq]`` (one row per observation).
    """
    import pandas as pd

    from carkinetics.simulation.simulate import simulate_batch

    observable = observable or model.output_names[0]
    P = np.atleast_2d(np.asarray(parameters, float))
    times = np.asarray(times, float)
    events = list(events)
    batch = simulate_batch(model, events, times, P, options=options or default_options(),
                           t0=min([0.0] + [e.time for e in events]),
                           save_states=False, save_outputs=[observable])
    f = batch.output(observable)
    rng = np.random.default_rng(seed)
    y = f * np.exp(sigma * rng.standard_normal(f.shape))
    ids = ids or [f"P{i + 1:03d}" for i in range(P.shape[0])]
    df = pd.DataFrame({"id": np.repeat(ids, len(times)), "time": np.tile(times, P.shape[0]),
                       "observable": observable, "value": y.reshape(-1)})
    if lloq is not None:
        df["lloq"] = float(lloq)
    return df
