"""Typical patients of a scenario at given parameter values, one per row (the global sensitivity samples)."""

from __future__ import annotations

import numpy as np

from carkinetics.stats.sensitivity_indices import SensitivityError


def simulate_typical(scenario, values, names, *, seed=1, jobs=None, arms=None, variables=None, patient=None):
    """Typical patients of a scenario with the given parameter values, one per row.

    Each patient is the scenario's typical patient (covariates at their typical values,
    no between-patient variability), in the arm the cohort's seed assigns to it, with
    the parameters ``names`` set to the row of ``values``; random events (hazards) use
    the uniforms of the cohort's patient with the same index.

    Parameters
    ----------
    scenario : Scenario
    values : array_like, shape (n, k)
    names : sequence of str, length k
    seed, jobs, arms, variables :
        As for :func:`carkinetics.cohort.pipeline.run_cohort`.
    patient : int, optional
        Every row is this cohort patient's typical patient (its arm, the uniforms of its
        random events): the outcome is then a deterministic function of ``values``, as
        Sobol indices need. Default: row ``i`` is patient ``i``.

    Returns
    -------
    pandas.DataFrame
        ``patient``, ``arm``, ``status`` and the endpoint columns.
    """
    import pandas as pd

    from carkinetics.cohort.chunk import ChunkSimulator, endpoint_values
    from carkinetics.scenario.sampling import cohort_design

    es = scenario.endpoints
    if es is None:
        raise SensitivityError(f"{scenario.path}: the scenario has no [endpoints]")
    X = np.asarray(values, float)
    n = X.shape[0]
    design = cohort_design(scenario, seed, variables=variables, arms=arms).typical_patients()
    simulator = ChunkSimulator(scenario, design, list(es.outputs_needed), jobs=jobs, uniform_streams=es.uniform_streams)
    if patient is None:
        draws, uniforms = simulator.draw(0, n)
    else:
        draws, uniforms = _repeated_patient(simulator, int(patient), n)
    cols = [scenario.model.parameter_index(nm) for nm in names]
    params = draws.parameters.copy()
    params[:, cols] = X
    draws.parameters = params
    status, ep = endpoint_values(simulator.run(draws, uniforms), es, list(es.columns), scenario.times,
                                 scenario.horizon)
    table = pd.DataFrame({"patient": draws.index, "arm": np.asarray(design.arm_names, dtype=object)[draws.arm],
                          "status": status})
    for c in es.columns:
        table[c] = ep[c]
    return table


def _repeated_patient(simulator, patient, n):
    """Draws and uniforms of ``n`` copies of one cohort patient."""
    import dataclasses

    one, one_uniforms = simulator.draw(patient, patient + 1)
    rep = (lambda v: np.repeat(v, n, axis=0) if isinstance(v, np.ndarray) else v)
    draws = dataclasses.replace(one, index=rep(one.index), arm=rep(one.arm),
                                covariates={k: rep(v) for k, v in one.covariates.items()},
                                variables={k: rep(v) for k, v in one.variables.items()},
                                parameters=rep(one.parameters))
    return draws, np.repeat(one_uniforms, n, axis=0)
