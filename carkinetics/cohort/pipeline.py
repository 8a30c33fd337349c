"""Virtual cohorts: simulate N patients in chunks and reduce them as they stream.

:func:`run_cohort` draws the patients of a scenario (:mod:`carkinetics.scenario.population`),
simulates them chunk by chunk (:mod:`carkinetics.cohort.chunk`), and keeps only what is small:
the per-patient table (covariates, varying parameters, status, endpoints) and, per arm, output
and output time, a histogram of the values from which the quantile bands are read
(:mod:`carkinetics.cohort.bands`). Memory therefore does not grow with N beyond the patient
table (N x its columns, allocated once: :mod:`carkinetics.cohort.table`) and the Kaplan-Meier
table (a row per distinct event time).

An engine thread draws and simulates the chunks while the calling thread reduces the
finished ones (and, for ``carkinetics run``, streams their rows to ``patients.csv``), so
that the reductions overlap the simulation (see docs/cohorts.md, "Speed and memory").

Every result is independent of the chunk size and of the number of threads: the
patients' random numbers depend only on the seed and the patient index, the engine's
arithmetic per patient is the same in any batch, chunks are reduced in patient order,
and histogram counts are sums.
"""

from __future__ import annotations

import sys
import threading
import time as _time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from carkinetics.cohort.bands import BAND_RESOLUTION, BandHistograms, band_table
from carkinetics.cohort.chunk import (QUEUE_BYTES, QUEUE_CHUNKS, ChunkSimulator, CohortError, EngineThreads,
                                      check_chunk_size, endpoint_values, saved_planes, saved_series)
from carkinetics.cohort.result import CohortResult
from carkinetics.cohort.table import PatientColumns
from carkinetics.errors import ScenarioError, suggestion
from carkinetics.io.csv import write_csv
from carkinetics.scenario.observations import load_observations
from carkinetics.scenario.population import DEFAULT_ARM, MAX_POPULATION
from carkinetics.scenario.sampling import cohort_design

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from carkinetics.scenario.load import Scenario

_SWITCH_INTERVAL = 0.0005  # s: interpreter-lock hand-over while the engine thread runs


def run_cohort(scenario: Scenario, n: int | None = None, seed: int | None = None, *, jobs: int | None = None,
               chunk_size: int | None = None, variables: Mapping[str, float] | None = None,
               parameters: Mapping[str, float] | None = None, arms: Sequence[str] | None = None,
               keep_trajectories: bool | str | Path = False, bands: bool = True,
               progress: Callable[[int, int], object] | None = None, patients_csv: str | Path | None = None,
               while_simulating: Callable[[], object] | None = None,
               on_bands: Callable[[CohortResult], object] | None = None, keep_parameters: bool = True) -> CohortResult:
    """Simulate a virtual cohort of a scenario and reduce it as it streams.

    Parameters
    ----------
    scenario : Scenario
        From :func:`carkinetics.scenario.load.load_scenario`.
    n : int, optional
        Number of patients (default: ``[population] size``).
    seed : int, optional
        Default: ``[population] seed``, else a fresh random seed (recorded in
        ``result.info["seed"]``). The same seed gives the same cohort whatever
        ``jobs`` and ``chunk_size``.
    jobs : int, optional
        Threads of the engine (default: all cores).
    chunk_size : int, optional
        Patients simulated at once (default: about 64 MB of saved outputs per chunk, at most 16,384).
    variables : mapping of str to float, optional
        Overrides of the scenario's ``[variables]``.
    parameters : mapping of str to float, optional
        Overrides of typical parameter values (before arms, covariates, variability).
    arms : sequence of str, optional
        Simulate only these arms (shares renormalised).
    keep_trajectories : bool or path-like
        True: keep every trajectory of the band outputs in ``result.trajectories``
        (memory N x n_times x outputs); a path: stream them to that CSV file instead.
    bands : bool
        Compute quantile bands of the plot outputs (``[plot] outputs``, default all).
    progress : callable(n_done, n_total), optional
        Called after each chunk.
    patients_csv : path-like, optional
        Also stream the patient table to this CSV file as the chunks are reduced (the
        bytes :meth:`CohortResult.write` would write; it is then not written again by
        :meth:`CohortResult.write_into` into the same folder).
    while_simulating : callable(), optional
        Called in a helper thread while the engine simulates the first chunks (e.g.
        imports needed later for the files and plots); an exception it raises is
        raised by ``run_cohort``.
    on_bands : callable(CohortResult), optional
        Called as soon as the quantile bands are known, before the summaries: with a
        partial result holding the bands, the observations and the figures' ``info`` (for
        a figure helper process that draws while the rest is computed).
    keep_parameters : bool
        False (only with ``patients_csv``): the varying parameters' columns (``param_NAME``)
        go to ``patients_csv`` only, not into ``result.patients``; 8 bytes per patient and
        parameter are not held (248 MB at 10^6 patients of the T-ALL model).

    Returns
    -------
    CohortResult

    Raises
    ------
    ScenarioError, CohortError
        For an unknown variable, parameter, arm or output, no cohort size, or bad sizes.
    """
    t_begin = _time.perf_counter()
    design = cohort_design(scenario, seed, variables=variables, parameters=parameters, arms=arms)
    n = _check_size(scenario, design, n, jobs)
    endpoints = scenario.endpoints
    band_names, traj_names, needed = _saved_names(scenario, bands, keep_trajectories, endpoints)
    chunk_size = check_chunk_size(chunk_size, len(scenario.times), len(needed), scenario.path)
    streams = tuple(getattr(endpoints, "uniform_streams", ())) if endpoints else ()
    simulator = ChunkSimulator(scenario, design, needed, jobs=jobs, uniform_streams=streams, reuse_outputs=True)
    if not keep_parameters and patients_csv is None:
        raise CohortError("keep_parameters=False needs patients_csv: the parameters would be written nowhere")
    reducer = _ChunkReducer(scenario, design, endpoints, band_names, traj_names, keep_trajectories, n,
                            keep_parameters)
    _simulate_and_reduce(simulator, reducer, n, chunk_size, len(needed), progress=progress,
                         patients_csv=patients_csv, while_simulating=while_simulating, endpoints=endpoints)

    t_post = _time.perf_counter()
    bands_table = (band_table(reducer.histograms, band_names, design.arm_names, scenario.times, DEFAULT_ARM)
                   if band_names else None)
    reducer.band_sets = None  # the histograms (190 MB for the 24 outputs of the two-year T-ALL scenario) go now
    observed, data_file = _observations(scenario)
    if on_bands is not None and bands_table is not None:
        on_bands(CohortResult(None, None, bands_table, None, _figure_info(scenario, n, band_names), None, observed))
    patients = reducer.table.frame()
    reducer.table = None
    summary, km = _summaries(patients, endpoints, design.arm_names)
    trajectories = reducer.trajectories()
    t_end = _time.perf_counter()

    info = _run_info(scenario, design, n, chunk_size, jobs, patients, reducer.n_clipped, band_names, endpoints,
                     data_file, {"total_s": t_end - t_begin, "draw_s": reducer.t_draw, "simulate_s": reducer.t_sim,
                                 "reduce_s": reducer.t_reduce, "finalise_s": t_end - t_post})
    return CohortResult(patients, summary, bands_table, km, info, trajectories, observed,
                        streamed_csv=Path(patients_csv) if patients_csv is not None else None)


def _check_size(scenario, design, n, jobs) -> int:
    """The number of patients (default: ``[population] size``), after checking it and ``jobs``."""
    if n is None:
        n = design.spec.size
    if n is None:
        raise CohortError(f"{scenario.path}: no cohort size: set 'size' in [population] or pass n (--n)")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_POPULATION:
        raise CohortError(f"the number of patients must be a whole number from 1 to {MAX_POPULATION:,}, "
                          f"got {n!r}")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1):
        raise CohortError(f"jobs must be a whole number >= 1, got {jobs!r}")
    return int(n)


def _saved_names(scenario, bands, keep_trajectories, endpoints):
    """Outputs of the bands, of the kept trajectories, and every output or state to save."""
    model = scenario.model
    band_names = list(scenario.plot_outputs) if bands else []
    traj_names = list(scenario.plot_outputs) if keep_trajectories else []
    needed = list(dict.fromkeys(band_names + traj_names + list(endpoints.outputs_needed if endpoints else ())))
    known = set(model.output_names) | set(model.state_names)
    unknown = [x for x in needed if x not in known]
    if unknown:
        raise ScenarioError(scenario.path, [f"'{x}' is not an output or state of model '{model.name}'"
                                            f"{suggestion(x, known)}" for x in unknown])
    return band_names, traj_names, needed


class _ChunkReducer:
    """What is kept of the simulated chunks: the patient table, band histograms, trajectories, counters."""

    def __init__(self, scenario, design, endpoints, band_names, traj_names, keep_trajectories, n,
                 keep_parameters=True):
        self.scenario = scenario
        self.design = design
        self.endpoints = endpoints
        self.band_names = band_names
        self.traj_names = traj_names
        n_times = len(scenario.times)
        self.band_sets = [BandHistograms(n_times, len(band_names)) for _ in design.arms]  # per arm
        self.columns = list(endpoints.columns) if endpoints else []
        taken = {"patient", "arm", "status", *design.covariate_names, *(f"param_{p}" for p in design.varying)}
        clash = [c for c in self.columns if c in taken]
        if clash:
            raise ScenarioError(scenario.path, [f"endpoints.{c}: the endpoint column '{c}' has the name of a "
                                                f"covariate or another column of the patient table; rename one "
                                                f"of them" for c in clash])
        self.traj_path = None
        self.traj_frames = []
        if keep_trajectories and not isinstance(keep_trajectories, bool):
            self.traj_path = Path(keep_trajectories)
            self.traj_path.parent.mkdir(parents=True, exist_ok=True)
            self.traj_path.write_text("")
        self.table = PatientColumns(n)
        # the columns written to patients.csv but not held in the table (none: all are held)
        self.not_held = set() if keep_parameters else {f"param_{p}" for p in design.varying}
        self.n_clipped = np.zeros(scenario.model.n_parameters, dtype=np.int64)
        self.t_draw = self.t_sim = self.t_reduce = 0.0

    def reduce(self, chunk, start, csv_file=None):
        """Reduce a simulated chunk (its outputs are dropped); append its rows to ``csv_file``."""
        self.t_draw += chunk.draw_seconds
        self.t_sim += chunk.simulate_seconds
        tb = _time.perf_counter()
        times = self.scenario.times
        draws = chunk.draws
        m = chunk.uniforms.shape[0]
        self.n_clipped += draws.n_clipped
        traj = {name: np.empty((m, len(times))) for name in self.traj_names}
        planes = []
        for k, idx, res in chunk.sims:
            ok = res.status == 0
            planes.append(self._count_bands(k, res, ok))
            for name in self.traj_names:
                traj[name][idx] = saved_series(res, name)
        status, ep_values = endpoint_values(chunk, self.endpoints, self.columns, times, self.scenario.horizon,
                                            planes=planes)
        chunk.sims = res = planes = None  # free this chunk's outputs before the next one arrives
        table = self.design.columns(draws)  # a DataFrame per chunk would cost ~3 ms
        table["status"] = status
        for col in self.columns:
            table[col] = ep_values[col]
        if csv_file is not None:
            write_csv(table, csv_file, header=(start == 0))
        self.table.add({k: v for k, v in table.items() if k not in self.not_held}, start)
        if self.traj_names:
            self._add_trajectories(draws, traj, start, m)
        self.t_reduce += _time.perf_counter() - tb

    def _count_bands(self, k, res, ok) -> dict:
        """Count the band outputs of ``res`` (arm k) in their histograms; return the (patient, time)
        planes of the outputs the endpoints read, those among the band outputs copied in the same
        pass over the block (a second pass cost 15-30 us per patient), the others gathered."""
        need = list(self.endpoints.outputs_needed) if self.endpoints else []
        fused = {}
        for block, columns, slots in self._band_columns(res):
            todo = [j for j, s in enumerate(slots) if self.band_names[s] in need]
            planes = np.empty((len(todo), block.shape[0], block.shape[1])) if todo else None
            plane_of = np.full(len(columns), -1, dtype=np.int64)
            for m, j in enumerate(todo):
                plane_of[j] = m
                fused[self.band_names[slots[j]]] = planes[m]
            self.band_sets[k].add(block, columns, slots, ok, planes, plane_of if todo else None)
        rest = [x for x in need if x not in fused]
        return {**fused, **saved_planes(res, rest)} if rest else fused

    def _band_columns(self, res):
        """``(block, columns, slots)``: the band outputs saved in ``res.outputs``, then those saved in
        ``res.states`` (plotted states), their columns in that block and their histograms."""
        for block, saved in ((res.outputs, res.output_names), (res.states, res.state_names)):
            slots = [s for s, name in enumerate(self.band_names) if name in saved]
            if slots:
                yield block, [saved.index(self.band_names[s]) for s in slots], slots

    @property
    def histograms(self):
        """The band histograms by (arm index, output name)."""
        return {(k, name): hs.histogram(s) for k, hs in enumerate(self.band_sets)
                for s, name in enumerate(self.band_names)}

    def _add_trajectories(self, draws, traj, start, m):
        import pandas as pd

        times = self.scenario.times
        tf = pd.DataFrame({"patient": np.repeat(draws.index, len(times)),
                           "arm": np.repeat(np.asarray(self.design.arm_names, dtype=object)[draws.arm], len(times)),
                           "time": np.tile(times, m)})
        for name in self.traj_names:
            tf[name] = traj[name].reshape(-1)
        if self.traj_path is not None:
            with open(self.traj_path, "ab") as f:
                write_csv(tf, f, header=(start == 0))
        else:
            self.traj_frames.append(tf)

    def trajectories(self):
        """The kept trajectories as one table, or None."""
        import pandas as pd

        return pd.concat(self.traj_frames, ignore_index=True) if self.traj_frames else None


def _engine_threads(simulator, n, chunk_size, starts, kernel_ready, depth):
    """The threads that draw and simulate the chunks: one per engine thread (``jobs``), each
    simulating whole chunks on one core, or one thread on all of them when there is one chunk."""
    import numba

    jobs = simulator.jobs if simulator.jobs is not None else numba.config.NUMBA_NUM_THREADS
    workers = max(1, min(int(jobs), numba.config.NUMBA_NUM_THREADS, len(starts)))
    n_threads = 1 if workers > 1 else None

    def draw(start):
        return simulator.timed_draw(start, min(n, start + chunk_size))

    def simulate(drawn):
        draws, uniforms, seconds = drawn
        return simulator.run(draws, uniforms, kernel_ready, seconds, n_threads=n_threads)

    return EngineThreads(draw, simulate, starts, depth, workers=workers, ready=kernel_ready)


def _simulate_and_reduce(simulator, reducer, n, chunk_size, n_saved, *, progress, patients_csv, while_simulating,
                         endpoints):
    """Simulate the chunks of ``n`` patients and reduce them in patient order.

    Engine threads (one per core of ``jobs``; :class:`~carkinetics.cohort.chunk.EngineThreads`)
    draw the chunks in patient order and simulate them side by side, each chunk on one core
    (the engine releases the GIL); this thread takes them in the same order and reduces them
    (endpoints, histograms, the patient table and its CSV lines). A thread takes a new chunk
    only while fewer than ``depth + 1`` are being simulated or wait (about 100 MB of outputs),
    so at most depth + 2 chunks of outputs are alive. Chunks are drawn and reduced in patient
    order and each patient's arithmetic is the same in any thread, so the results do not
    depend on the timing. With jobs=1 everything runs in this thread, one chunk at a time.
    """
    jobs = simulator.jobs
    starts = list(range(0, n, chunk_size))
    kernel_ready = threading.Event()
    engine = None
    if (len(starts) > 1 or while_simulating is not None) and (jobs is None or jobs > 1):
        chunk_bytes = 8.0 * chunk_size * len(simulator.scenario.times) * max(1, n_saved)
        engine = _engine_threads(simulator, n, chunk_size, starts, kernel_ready,
                                 depth=max(1, min(QUEUE_CHUNKS, int(QUEUE_BYTES // chunk_bytes))))
    csv_file = None
    importer = None
    import_errors = []
    switch_interval = sys.getswitchinterval()
    try:
        if engine is not None:
            # between chunks the engine thread needs the interpreter lock for a moment; while this
            # thread runs Python it would wait up to the switch interval (5 ms) for it, with one
            # core idle: ask for the lock to be handed over sooner (restored below)
            sys.setswitchinterval(min(switch_interval, _SWITCH_INTERVAL))
            engine.start()
            while not kernel_ready.wait(0.005) and engine.is_alive():
                pass  # the engine thread loads the compiled kernel (interpreter work: nothing else meanwhile)
        # imports needed from here on, while the engine works on the first chunks: pandas now,
        # the rest in a helper thread while this one goes on with the chunks (mostly in code
        # that releases the GIL)
        import pandas  # noqa: F401

        def import_later():
            try:
                if endpoints:
                    from scipy import special  # noqa: F401  (summary statistics)
                if while_simulating is not None:
                    while_simulating()
            except BaseException as err:  # re-raised in the calling thread
                import_errors.append(err)

        if engine is None:  # one thread (jobs=1): everything in this one
            import_later()
        else:
            importer = threading.Thread(target=import_later, name="carkinetics-imports", daemon=True)
            importer.start()
        if patients_csv is not None:
            csv_file = open(patients_csv, "wb")
        for start in starts:
            stop = min(n, start + chunk_size)
            chunk = simulator.chunk(start, stop) if engine is None else engine.get()
            reducer.reduce(chunk, start, csv_file)
            simulator.release(chunk)  # its arrays are written over by a later chunk
            chunk = None
            if progress is not None:
                progress(stop, n)
    finally:
        if csv_file is not None:
            csv_file.close()
        if engine is not None:
            engine.close()
            sys.setswitchinterval(switch_interval)
        if importer is not None:
            importer.join()
    if import_errors:
        raise import_errors[0]


def _observations(scenario):
    """The scenario's ``[data]`` observations and their file, or (None, None)."""
    if scenario.data_file is None:
        return None, None
    return load_observations(scenario.data_file, scenario.model), scenario.data_file


def _summaries(patients, endpoints, arm_names):
    """Summaries of the endpoints per arm (and of the whole cohort), and Kaplan-Meier curves."""
    import pandas as pd

    if endpoints:
        from carkinetics.stats.summary import summarise

        summary = summarise(patients, endpoints, by="arm")
        if len(arm_names) > 1:
            summary = pd.concat([summary, summarise(patients, endpoints, by=None)], ignore_index=True)
    else:
        summary = pd.DataFrame()
    return summary, _km_table(patients, endpoints, arm_names)


def _km_table(patients, endpoints, arm_names):
    """Kaplan-Meier curves of each time-to-event endpoint, per arm (and of the whole cohort)."""
    import pandas as pd

    cols = ["arm", "endpoint", "time", "survival", "lower", "upper", "n_at_risk"]
    if not endpoints:
        return pd.DataFrame(columns=cols)
    from carkinetics.stats.km import kaplan_meier

    kinds = dict(endpoints.kinds)
    time_cols = [c for c in endpoints.columns if kinds.get(c) == "time"]
    if not time_cols:
        return pd.DataFrame(columns=cols)
    # the simulated patients, only the columns the curves need (the whole table is not copied:
    # at 10^6 patients it holds every varying parameter)
    needed = ["arm"] + [x for c in time_cols for x in (c, f"{c}_event") if x in patients.columns]
    patients = patients.loc[patients["status"].to_numpy() == 0, needed]
    curves = []
    groups = [(a, patients[patients["arm"] == a]) for a in arm_names]
    if len(arm_names) > 1:
        groups.append((DEFAULT_ARM, patients))
    for c in time_cols:
        ev_col = f"{c}_event"
        for a, df in groups:
            if len(df) == 0:
                continue
            t = df[c].to_numpy(dtype=float)
            e = df[ev_col].to_numpy(dtype=float) if ev_col in df.columns else np.isfinite(t).astype(float)
            keep = np.isfinite(t)
            curves.append((a, c, kaplan_meier(t[keep], e[keep])))
    if not curves:
        return pd.DataFrame(columns=cols)
    # each column allocated once (a row per distinct event time: 4.6 million rows at 10^6
    # patients), not a DataFrame per curve and their concatenation; arm and endpoint categorical
    sizes = [len(km.time) for _, _, km in curves]
    table = {key: _repeated_category([curve[i] for curve in curves], sizes) for i, key in enumerate(cols[:2])}
    for field in cols[2:]:
        table[field] = np.concatenate([getattr(km, field) for _, _, km in curves]).astype(float, copy=False)
    curves = None
    return pd.DataFrame(table, copy=False)


def _repeated_category(values, sizes):
    """``values[i]`` repeated ``sizes[i]`` times, as a categorical column (a byte a row, not a
    string object)."""
    import pandas as pd

    categories = list(dict.fromkeys(v for v, size in zip(values, sizes) if size))  # as read back from km.csv
    categories += [v for v in dict.fromkeys(values) if v not in categories]
    codes = np.array([categories.index(v) for v in values], dtype=np.int8 if len(categories) < 128 else np.int32)
    return pd.Categorical.from_codes(np.repeat(codes, sizes), categories=categories)


def _figure_info(scenario, n, band_names) -> dict:
    """The fields of ``run.json`` the figures use."""
    model = scenario.model
    declared = scenario.endpoints.declared if scenario.endpoints else ()
    return {"scenario_name": scenario.name, "n_patients": n, "band_outputs": band_names,
            "log_scale": bool(scenario.plot_log), "time_unit": model.time_unit,
            "units": {s.name: s.unit for s in model.states} | {o.name: o.unit for o in model.outputs},
            "output_descriptions": ({s.name: s.description for s in model.states if s.description}
                                    | {o.name: o.description for o in model.outputs if o.description}),
            "output_references": {o.name: [[v, label] for v, label in o.references]
                                  for o in model.outputs if o.references},
            "endpoint_descriptions": {e.name: e.description for e in declared if e.description},
            "endpoint_origins": {e.name: e.options["origin"] for e in declared if "origin" in e.options},
            "outcome_causes": {e.name: list(e.events) for e in declared if e.type == "outcome"}}


def _run_info(scenario, design, n, chunk_size, jobs, patients, n_clipped, band_names, endpoints, data_file,
              timings) -> dict:
    import numba

    from carkinetics.io.provenance import file_sha256, provenance
    from carkinetics.simulation.result import status_message

    model = scenario.model
    status_counts = patients["status"].value_counts().sort_index()
    shares = np.diff(np.concatenate([[0.0], design.cum_shares]))
    info = {
        "kind": "virtual cohort",
        "scenario": str(scenario.path),
        "scenario_sha256": file_sha256(scenario.path) if Path(scenario.path).exists() else None,
        "model": str(model.path),
        "model_name": model.name,
        "model_sha256": model.content_hash,
        "seed": design.seed,
        "chunk_size": chunk_size,
        "jobs": int(jobs) if jobs is not None else int(numba.config.NUMBA_NUM_THREADS),
        "arms": {a: {"share": float(s), "n": int((patients["arm"] == a).sum())}
                 for a, s in zip(design.arm_names, shares)},
        "variables": design.variables,
        "parameter_overrides": design.parameter_overrides,
        "varying_parameters": list(design.varying),
        "log_normal_sd": {nm: float(sd) for nm, sd in zip(model.parameter_names, design.sd) if sd > 0},
        "clipped_to_bounds": {nm: int(c) for nm, c in zip(model.parameter_names, n_clipped) if c},
        "covariates": list(design.covariate_names),
        "n_failed": int((patients["status"] != 0).sum()),
        "status": {status_message(int(s)): int(c) for s, c in status_counts.items()},
        "band_resolution": BAND_RESOLUTION,
        "endpoints": ({c: endpoints.kinds.get(c, "") for c in endpoints.columns} if endpoints else {}),
        "data_file": str(data_file) if data_file else None,
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "patients_per_second": round(n / timings["total_s"], 1) if timings["total_s"] > 0 else None,
        "provenance": provenance(),
        **_figure_info(scenario, n, band_names),
    }
    return info


class OutcomeCohort:
    """A scenario's virtual cohort simulated once, its patient table recomputed under other
    values of the clinical outcome model's parameters (which only endpoints read).

    The model's equations, outputs and events never read its outcome parameters
    (``[model] outcome_parameters``), so changing them changes no trajectory: only the
    endpoints. A calibration of the outcome links (kinetic parameters fixed) therefore
    simulates each scenario once and recomputes the endpoints at each evaluation:
    :meth:`patients` gives the table :func:`run_cohort` would give with the same ``n``,
    ``seed`` and ``parameters`` (tests/cohort/test_outcome_cohort.py), in a fraction of the
    time.

    Parameters
    ----------
    scenario : Scenario
    n, seed : int
        The cohort (common random numbers: the same patients at every call).
    parameters : mapping of str to float, optional
        Typical values of the first simulation (outcome parameters among them are free to change).
    jobs : int, optional
        Threads of the engine.
    """

    def __init__(self, scenario, n, seed, parameters=None, *, jobs=None):
        self.scenario, self.seed = scenario, seed
        design = cohort_design(scenario, seed, parameters=parameters)
        self.n = _check_size(scenario, design, n, jobs)
        self.endpoints = scenario.endpoints
        _, _, needed = _saved_names(scenario, False, False, self.endpoints)
        streams = tuple(getattr(self.endpoints, "uniform_streams", ())) if self.endpoints else ()
        self.simulator = ChunkSimulator(scenario, design, needed, jobs=jobs, uniform_streams=streams)
        self.chunk = self.simulator.chunk(0, self.n)
        model = scenario.model
        self._kinetic = np.array([i for i, p in enumerate(model.parameter_names)
                                  if p not in model.outcome_parameters], dtype=np.int64)

    def patients(self, parameters=None):
        """The patient table with the typical values ``parameters`` (their outcome ones may differ
        from the first simulation's; a kinetic one that differs raises :class:`CohortError`)."""
        from dataclasses import replace

        design = cohort_design(self.scenario, self.seed, parameters=parameters)
        draws = design.draw(0, self.n)
        old = self.chunk.draws
        same = (np.array_equal(draws.arm, old.arm) and np.array_equal(
            draws.parameters[:, self._kinetic], old.parameters[:, self._kinetic], equal_nan=True))
        if not same:
            raise CohortError(f"{self.scenario.path}: these parameter values change the simulated patients "
                              f"(a kinetic parameter, or one the scenario computes from an outcome parameter): "
                              f"simulate them with run_cohort")
        patient = {**self.chunk.patient, **self.simulator.endpoint_parameter_values(draws)}
        chunk = replace(self.chunk, draws=draws, sims=list(self.chunk.sims), patient=patient)
        reducer = _ChunkReducer(self.scenario, design, self.endpoints, [], [], False, self.n)
        reducer.reduce(chunk, 0)
        return reducer.table.frame()
