"""Visual predictive check of a scenario against its observed data (``[data]``).

Replicate trials of the study's size are simulated from the scenario: for each arm, as many
virtual patients as the data has subjects in that arm, each sampled at the times of its
observed subject (``vpc_simulation``). Residual error is added, and the binned statistics of
:mod:`carkinetics.stats.vpc` compare the observed percentiles and BLQ fractions with their
intervals across replicates (``run_vpc``). ``write_vpc`` writes ``vpc.csv``, ``vpc.png`` and
``vpc.json``.

The arm of each subject is the data's ``arm`` column (a per-subject column of the data file);
without it every subject belongs to the scenario's only arm. Doses come from the scenario's
events, not from dose rows of the data.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from carkinetics.errors import DataError, FileProblem, ScenarioError
from carkinetics.model.residual_error import ResidualError, model_residual_errors, parse_residual_error
from carkinetics.scenario.population import DEFAULT_ARM
from carkinetics.scenario.sampling import cohort_design, resolve_seed
from carkinetics.stats.vpc import (DEFAULT_INTERVAL, DEFAULT_PERCENTILES, VPCError, assign_bins, bin_edges, binned_vpc,
                                   prediction_correction)

#: Files ``carkinetics vpc`` writes.
VPC_FILES = ("vpc.csv", "vpc.png", "vpc.json")
#: Largest number of replicate trials.
MAX_REPLICATES = 10_000
#: Sub-stream of the residual error's random numbers (apart from the patients' streams).
_ERROR_STREAM = 0x5EC


@dataclass
class VPCResult:
    """A visual predictive check.

    Attributes
    ----------
    strata : dict of (str, str) to BinnedVPC
        By ``(observable, arm)``.
    points : dict of (str, str) to tuple of ndarray
        Observed ``(times, values, censored, lloq)`` of each stratum (values prediction-corrected
        when asked).
    table : pandas.DataFrame
        The statistics, one row per stratum, bin and statistic (what ``vpc.csv`` holds).
    info : dict
        Settings and counts (what ``vpc.json`` holds).
    """

    strata: dict
    points: dict
    table: object
    info: dict = field(default_factory=dict)


def observed_subjects(scenario):
    """The observations of a scenario's ``[data]`` file with each subject's arm.

    Returns
    -------
    obs : pandas.DataFrame
        ``id, time, observable, value, lloq, censored, arm``.
    arms : list of str
        The arms with subjects, in the scenario's order.

    Raises
    ------
    ScenarioError, DataError
        No ``[data]``; several arms and no ``arm`` column; an arm the scenario does not have.
    """
    from carkinetics.scenario.data import load_data

    if scenario.data_file is None:
        raise ScenarioError(scenario.path, [FileProblem("data", "a visual predictive check needs observed data: "
                                                                "add [data] file = \"observations.csv\"")])
    data = load_data(scenario.data_file, scenario.model)
    obs = data.observations[["id", "time", "observable", "value", "lloq", "censored"]].copy()
    names = list(scenario.arms.names) if scenario.arms is not None else [DEFAULT_ARM]
    column = next((c for c in data.covariates.columns if str(c).strip().lower() == "arm"), None)
    if column is None:
        if len(names) > 1:
            raise DataError(data.path, [FileProblem("column 'arm'", f"the scenario has arms {names}: add a column "
                                                                    f"'arm' giving each subject's arm")])
        obs["arm"] = names[0]
    else:
        arm_of = {pid: str(a).strip() for pid, a in data.covariates[column].items()}
        unknown = sorted({a for a in arm_of.values() if a not in names})
        if unknown:
            raise DataError(data.path, [FileProblem(f"column '{column}'", f"{unknown} are not arms of scenario "
                                                                          f"'{scenario.name}' (arms: {names})")])
        obs["arm"] = obs["id"].map(arm_of)
    used = [a for a in names if (obs["arm"] == a).any()]
    return obs.reset_index(drop=True), used


def _simulate_arm(scenario, arm, obs, seed, start, replicates, jobs):
    """Simulated values (replicates, n_rows) at the rows of ``obs`` (one arm), and the typical prediction."""
    from carkinetics.cohort.chunk import ChunkSimulator, default_chunk_size, saved_series

    times = np.unique(np.concatenate([[scenario.times[0]], obs["time"].to_numpy(float)]))
    sc = dataclasses.replace(scenario, times=times)
    design = cohort_design(sc, seed, arms=None if arm == DEFAULT_ARM else [arm])
    outputs = sorted(set(obs["observable"]))
    ids = list(dict.fromkeys(obs["id"]))
    n_subjects = len(ids)
    subject = obs["id"].map({pid: i for i, pid in enumerate(ids)}).to_numpy()
    tidx = np.searchsorted(times, obs["time"].to_numpy(float))
    names = obs["observable"].to_numpy()
    simulator = ChunkSimulator(sc, design, outputs, jobs=jobs)
    # whole replicate trials per chunk, about 64 MB of saved values; only the sampled values are kept
    per_chunk = max(1, default_chunk_size(times.size, len(outputs)) // n_subjects)
    sim = np.full((replicates, len(obs)), np.nan)
    for r0 in range(0, replicates, per_chunk):
        r1 = min(replicates, r0 + per_chunk)
        a = start + r0 * n_subjects
        chunk = simulator.chunk(a, a + (r1 - r0) * n_subjects)
        for o in outputs:
            values = np.full(((r1 - r0) * n_subjects, times.size), np.nan)
            for _, idx, res in chunk.sims:
                ok = res.status == 0
                values[idx[ok]] = saved_series(res, o)[ok]
            rows = np.flatnonzero(names == o)
            cube = values.reshape(r1 - r0, n_subjects, times.size)
            sim[r0:r1, rows] = cube[:, subject[rows], tidx[rows]]
    typical = design.typical_patients()
    tsim = ChunkSimulator(sc, typical, outputs, jobs=jobs)
    draws, uniforms = tsim.draw(0, 1)
    typical_run = tsim.run(draws, uniforms).sims[0][2]
    pred = np.empty(len(obs))
    for o in outputs:
        rows = np.flatnonzero(names == o)
        pred[rows] = saved_series(typical_run, o)[0][tidx[rows]]
    return sim, pred


def vpc_simulation(scenario, obs, arms, replicates, seed, error=None, jobs=None):
    """Simulated observations of replicate trials with the observed study's design.

    Parameters
    ----------
    scenario : Scenario
    obs : pandas.DataFrame
        From :func:`observed_subjects`.
    arms : list of str
    replicates : int
    seed : int
    error : ResidualError or dict of str to ResidualError, optional
        One model for every output, or one per output (an output not listed: none).
    jobs : int, optional

    Returns
    -------
    sim : ndarray, shape (replicates, len(obs))
        Simulated observations (residual error added; NaN for failed simulations).
    pred : ndarray, shape (len(obs),)
        The typical patient's prediction at each observation.
    """
    sim = np.full((replicates, len(obs)), np.nan)
    pred = np.full(len(obs), np.nan)
    start = 0
    for arm in arms:
        rows = np.flatnonzero(obs["arm"].to_numpy() == arm)
        part = obs.iloc[rows]
        sim[:, rows], pred[rows] = _simulate_arm(scenario, arm, part, seed, start, replicates, jobs)
        start += replicates * part["id"].nunique()
    rng = np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, _ERROR_STREAM])))
    names = obs["observable"].to_numpy()
    for o in dict.fromkeys(names):
        rows = np.flatnonzero(names == o)
        model = error.get(o, ResidualError()) if isinstance(error, dict) else (error or ResidualError())
        sim[:, rows] = model.apply(sim[:, rows], rng)
    return sim, pred


def describe_error(error) -> str:
    """An error model, or one per output (``transgene proportional:0.2``), as text."""
    if isinstance(error, dict):
        return "; ".join(f"{o} {e.describe()}" for o, e in error.items()) or "none"
    return (error or ResidualError()).describe()


def run_vpc(scenario, replicates=200, seed=None, *, error=None, pred_corr=False, bins=None, centre="mean",
            percentiles=DEFAULT_PERCENTILES, interval=DEFAULT_INTERVAL, jobs=None) -> VPCResult:
    """Visual predictive check of a scenario against its ``[data]``.

    Parameters
    ----------
    scenario : Scenario
        With ``[data]`` (and, for several arms, an ``arm`` column in the data).
    replicates : int
        Replicate trials simulated.
    seed : int, optional
        Default: ``[population] seed``, else a fresh one (recorded in ``info``).
    error : ResidualError or dict of str to ResidualError, optional
        Residual error added to simulated values: one model for every output, or one per
        output. Default: the model file's ``[residual_error]`` section, else none.
    pred_corr : bool
        Prediction-corrected VPC (Bergstrand 2011).
    bins : int or sequence of float, optional
        Number of quantile bins, or bin edges (see :func:`carkinetics.stats.vpc.bin_edges`).
    centre : str
        Where a bin is drawn: ``mean``, ``median`` or ``middle``.
    percentiles, interval : tuple of float
    jobs : int, optional
        Engine threads.

    Returns
    -------
    VPCResult
    """
    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) or \
            not 1 <= replicates <= MAX_REPLICATES:
        raise VPCError(f"replicates must be a whole number from 1 to {MAX_REPLICATES:,}, got {replicates!r}")
    seed = resolve_seed(scenario, seed)
    source = "argument"
    if error is None:
        error = model_residual_errors(scenario.model)
        source = "model file" if error else "none"
    obs, arms = observed_subjects(scenario)
    sim, pred = vpc_simulation(scenario, obs, arms, int(replicates), seed, error, jobs)
    lloq = obs["lloq"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        sim_cens = sim < lloq[None, :]
    strata, points = {}, {}
    for o in dict.fromkeys(obs["observable"]):
        of = (obs["observable"] == o).to_numpy()
        edges = bin_edges(obs["time"].to_numpy(float)[of], bins)
        for arm in arms:
            rows = np.flatnonzero(of & (obs["arm"] == arm).to_numpy())
            if not rows.size:
                continue
            t = obs["time"].to_numpy(float)[rows]
            factor = None
            if pred_corr:
                factor = prediction_correction(pred[rows], assign_bins(t, edges), len(edges) - 1)
            y = obs["value"].to_numpy(float)[rows]
            c = obs["censored"].to_numpy(bool)[rows]
            strata[(o, arm)] = binned_vpc(t, y, c, sim[:, rows], sim_cens[:, rows], edges=edges, factor=factor,
                                          qs=percentiles, interval=interval, centre=centre)
            points[(o, arm)] = (t, y if factor is None else y * factor, c, lloq[rows])
    table = vpc_table(strata)
    inside = table["inside"].dropna()
    info = {"scenario": str(scenario.path), "data": str(scenario.data_file), "seed": seed,
            "replicates": int(replicates), "error": describe_error(error), "error_source": source,
            "pred_corr": bool(pred_corr),
            "percentiles": list(percentiles), "interval": list(interval), "bin_centre": centre,
            "arms": {a: int(obs.loc[obs["arm"] == a, "id"].nunique()) for a in arms},
            "n_observations": len(obs), "n_censored": int(obs["censored"].sum()),
            "n_failed_values": int(np.isnan(sim).sum()),
            "percentiles_inside": int(inside.sum()), "percentiles_reported": len(inside),
            "time_unit": scenario.model.time_unit, "log_scale": bool(scenario.plot_log),
            "units": {o.name: o.unit for o in scenario.model.outputs}}
    return VPCResult(strata, points, table, info)


def vpc_table(strata):
    """The statistics of every stratum as one long table (the rows of ``vpc.csv``).

    Columns ``observable, arm, bin, time_lower, time_upper, time, n_obs, n_blq, statistic,
    observed, sim_lower, sim_median, sim_upper, inside``; ``statistic`` is ``p5``, ``p50``,
    ``p95`` (the percentiles) or ``blq_fraction``.
    """
    import pandas as pd

    rows = []
    for (o, arm), b in strata.items():
        inside = b.inside()
        for k in range(len(b.centres)):
            head = (o, arm, k + 1, b.edges[k], b.edges[k + 1], b.centres[k], int(b.n_obs[k]), int(b.n_blq[k]))
            for j, q in enumerate(b.qs):
                rows.append(head + (f"p{100 * q:g}", b.observed[k, j], *b.simulated[:, k, j], inside[k, j]))
            lo, med, hi = b.blq_simulated[:, k]
            ob = b.blq_observed[k]
            rows.append(head + ("blq_fraction", ob, lo, med, hi, float(lo <= ob <= hi) if np.isfinite(ob) else np.nan))
    cols = ["observable", "arm", "bin", "time_lower", "time_upper", "time", "n_obs", "n_blq", "statistic",
            "observed", "sim_lower", "sim_median", "sim_upper", "inside"]
    table = pd.DataFrame(rows, columns=cols)
    table.loc[table["statistic"] == "blq_fraction", "inside"] = np.nan  # percentiles only in the coverage
    table["blq_inside"] = [float(lo <= ob <= hi) if s == "blq_fraction" and np.isfinite(ob) else np.nan
                           for s, ob, lo, hi in zip(table["statistic"], table["observed"], table["sim_lower"],
                                                    table["sim_upper"])]
    return table


def write_vpc(result, output, formats=("png",)) -> list:
    """Write ``vpc.csv``, ``vpc.png`` and ``vpc.json`` into the folder ``output`` (atomically).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    from carkinetics.io.atomic import atomic_output_dir

    output = Path(output)
    with atomic_output_dir(output, clean=True, known=VPC_FILES) as stage:
        names = write_vpc_files(result, stage, formats)
    return [output / name for name in names]


def write_vpc_files(result, folder, formats=("png",)) -> list:
    """Write ``vpc.csv``, ``vpc.<format>`` and ``vpc.json`` into an existing folder; return their names."""
    from carkinetics.io.csv import write_csv
    from carkinetics.plots.cohort import save_figure
    from carkinetics.plots.vpc import plot_vpc

    folder = Path(folder)
    write_csv(result.table, folder / "vpc.csv")
    fig = plot_vpc(result.strata, result.points, result.info)
    save_figure(fig, folder / "vpc", formats=formats)
    (folder / "vpc.json").write_text(json.dumps(result.info, indent=2, default=str) + "\n")
    return ["vpc.csv", *(f"vpc.{f}" for f in formats), "vpc.json"]


def scenario_vpc(scenario, folder, seed=None, jobs=None) -> list:
    """The VPC a scenario's ``[data] vpc`` asks for, written into ``folder``; the file names ([] without one)."""
    settings = scenario.data.vpc if scenario.data is not None else None
    if settings is None:
        return []
    error = None if settings.error is None else parse_residual_error(settings.error, "data.vpc.error")
    result = run_vpc(scenario, settings.replicates, seed, error=error, pred_corr=settings.pred_corr,
                     bins=settings.bins, jobs=jobs)
    return write_vpc_files(result, folder)


def simulate_observations(scenario, n_subjects, times, seed, error=None, lloq=None):
    """A synthetic dataset from a scenario: ``n_subjects`` virtual patients sampled at ``times``.

    The patients are those of the scenario's population (seed ``seed``), the arm of each is
    drawn by the arms' shares; values below ``lloq`` are kept as reported and marked by the
    ``lloq`` column (censored when read).

    Returns
    -------
    pandas.DataFrame
        ``id, time, observable, value[, lloq], arm`` (one row per subject, time and output
        of the model).
    """
    import pandas as pd

    design = cohort_design(scenario, seed)
    arms = [design.arm_names[k] for k in design.draw(0, n_subjects).arm]
    frame = pd.DataFrame({"id": np.repeat([f"S{i + 1:03d}" for i in range(n_subjects)], len(times)),
                          "time": np.tile(np.asarray(times, float), n_subjects),
                          "observable": scenario.model.output_names[0],
                          "arm": np.repeat(arms, len(times))})
    keep_arm = scenario.arms is not None
    obs = frame.assign(value=0.0, lloq=np.nan, censored=False)
    order = list(dict.fromkeys(a for a in design.arm_names if a in arms))
    sc = dataclasses.replace(scenario, data=None)
    sim, _ = vpc_simulation(sc, obs, order, 1, seed, error)
    frame["value"] = [float(f"{v:.4g}") for v in sim[0]]
    if lloq is not None:
        frame["lloq"] = lloq
    return frame[["id", "time", "observable", "value", *(["lloq"] if lloq is not None else []),
                  *(["arm"] if keep_arm else [])]]
