"""Simulating a cohort chunk by chunk: per-arm events, one chunk of patients, the engine thread.

:class:`ChunkSimulator` draws the patients ``start..stop-1`` of a cohort design and simulates
them arm by arm with :func:`~carkinetics.simulation.simulate.simulate_batch`;
:func:`endpoint_values` reduces a simulated chunk to its status and endpoint columns. Both are
shared by :func:`carkinetics.cohort.pipeline.run_cohort` and the typical patients of
:mod:`carkinetics.studies.typical_patients`. :class:`EngineThreads` simulates the chunks in threads of
their own, so that their reduction overlaps the simulation.

Every result is independent of the chunk size and of the number of threads: the patients'
random numbers depend only on the seed and the patient index, and the engine's arithmetic
per patient is the same in any batch.
"""

from __future__ import annotations

import threading
import time as _time
from dataclasses import dataclass, field

import numpy as np

from carkinetics.cohort.bands import output_planes
from carkinetics.engine.constants import ACTION_ORDER
from carkinetics.errors import CarKineticsError, FileProblem, ScenarioError
from carkinetics.model import expressions
from carkinetics.scenario.events import check_arguments, event_times
from carkinetics.scenario.population import DEFAULT_ARM

#: Finished chunks that may wait for their reduction: at most this many, and this many bytes.
QUEUE_CHUNKS, QUEUE_BYTES = 4, 100e6
#: Target size of one chunk's saved outputs (bytes; up to QUEUE_CHUNKS + 2 chunks are alive at once, fewer
#: the larger they are). 64 MB since the chunks' arrays are reused (OutputBlocks): 100,000 patients of the
#: two-year T-ALL scenario, three paired runs, 3 % less CPU and wall time than 32 MB (the reductions' numpy
#: calls serve twice the patients), 40 MB more memory; 96 and 128 MB were slower again
CHUNK_BYTES = 64e6
#: Largest chunk of saved values (patients x times x outputs, 8 bytes each) simulated at once.
MAX_CHUNK_GIB = 2.0
#: Order in which the actions of one event are applied, by kind.
KIND_ORDER = {kind: i for i, kind in enumerate(ACTION_ORDER)}


class CohortError(CarKineticsError, ValueError):
    """A cohort run cannot start (no size, unknown output, bad chunk size...)."""


def default_chunk_size(n_times: int, n_saved: int) -> int:
    """Patients per chunk: about 64 MB of saved values, a multiple of 4096 where possible.

    Parameters
    ----------
    n_times : int
        Output times per patient.
    n_saved : int
        Outputs and states saved per patient and time.

    Returns
    -------
    int
    """
    size = int(CHUNK_BYTES / (8.0 * max(1, n_times) * max(1, n_saved)))
    if size >= 4096:
        return min(16384, size - size % 4096)
    return max(16, size)


def check_chunk_size(chunk_size, n_times, n_saved, path) -> int:
    """The chunk size as an int, or the default one when it is None.

    Parameters
    ----------
    chunk_size : int or None
        Patients simulated at once.
    n_times, n_saved : int
        Output times, and outputs and states saved, per patient.
    path : path-like
        The scenario file, for the message.

    Returns
    -------
    int

    Raises
    ------
    CohortError
        If it is not a whole number >= 1, or a chunk would hold more than :data:`MAX_CHUNK_GIB`.
    """
    if chunk_size is None:
        chunk_size = default_chunk_size(n_times, n_saved)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise CohortError(f"chunk_size must be a whole number >= 1, got {chunk_size!r}")
    chunk_size = int(chunk_size)
    chunk_gib = 8.0 * chunk_size * n_times * max(1, n_saved) / 1024**3
    if chunk_gib > MAX_CHUNK_GIB:
        raise CohortError(f"{path}: chunk_size = {chunk_size:,} patients x {n_times:,} output times x "
                          f"{max(1, n_saved)} saved outputs needs {chunk_gib:,.1f} GiB per chunk; at most "
                          f"{MAX_CHUNK_GIB:g} GiB (choose a smaller chunk size)")
    return chunk_size


class ArmEvents:
    """The schedule of one arm and the expressions behind its per-patient event arrays.

    Parameters
    ----------
    scenario : Scenario
    arm_name : str
        An arm of the scenario, or :data:`~carkinetics.scenario.population.DEFAULT_ARM`.
    typical_env : dict
        Names usable in event expressions at the typical patient's values (with the
        arm's variables), for the arm's schedule.
    """

    def __init__(self, scenario, arm_name, typical_env):
        self.path = scenario.path
        self.specs = scenario.events_for_arm(None if arm_name == DEFAULT_ARM else arm_name)
        self.schedule = scenario.schedule(typical_env, None if arm_name == DEFAULT_ARM else arm_name)
        self.action_exprs = []
        for s in self.specs:
            for kind, target, e in sorted(s.actions, key=lambda a: KIND_ORDER[a[0]]):
                self.action_exprs.append(e)
        # constant expressions need no per-patient arrays
        self.constant = all(e.op == "num" for e in self.action_exprs) and all(
            s.time.op == "num" and s.condition is None for s in self.specs)

    def arrays(self, env, n):
        """Per-patient event times and action values, shape (n, n_events) and (n, n_actions).

        Parameters
        ----------
        env : dict
            Name -> value or array of ``n`` values (:meth:`Draws.env
            <carkinetics.scenario.sampling.Draws.env>`).
        n : int
            Patients.

        Returns
        -------
        tuple of ndarray or (None, None)
            (None, None) when every expression is a constant (the schedule's own values).
        """
        for spec in self.specs:
            try:
                check_arguments(spec, env, n)
            except ValueError as err:
                raise ScenarioError(self.path, [FileProblem(spec.key, str(err))]) from None
        if self.constant:
            return None, None
        times = np.empty((n, len(self.specs)))
        for j, spec in enumerate(self.specs):
            times[:, j] = event_times(spec, env, n)
        values = np.empty((n, len(self.action_exprs)))
        for j, e in enumerate(self.action_exprs):
            values[:, j] = np.broadcast_to(np.asarray(expressions.evaluate(e, env), dtype=float), (n,))
        return times, values


@dataclass
class Chunk:
    """Patients of one chunk, drawn and simulated.

    Attributes
    ----------
    draws : carkinetics.scenario.sampling.Draws
    uniforms : ndarray, shape (n, n_uniforms)
        Random numbers of the endpoints' random events.
    sims : list of (int, ndarray, BatchResult)
        Per arm with patients: the arm's index, the rows of its patients in the chunk and
        their simulation.
    draw_seconds, simulate_seconds : float
        Time spent drawing (with the event arrays) and simulating (s).
    patient : dict of str to ndarray, shape (n,)
        What endpoints may read of each patient besides outputs (:meth:`ChunkSimulator.patient_values`).
    blocks : (ndarray, ndarray) or None
        The reused arrays the simulations' saved values lie in (:class:`OutputBlocks`), handed
        back by :meth:`ChunkSimulator.release`; None when the chunk has arrays of its own.
    """

    draws: object
    uniforms: np.ndarray
    sims: list
    draw_seconds: float = 0.0
    simulate_seconds: float = 0.0
    patient: dict = field(default_factory=dict)
    blocks: tuple | None = None


class OutputBlocks:
    """Arrays for the chunks' saved states and outputs, handed out again once a chunk is reduced.

    A chunk's saved values (a few tens of MB) are above the size glibc's ``malloc`` keeps in
    its heap (32 MB at most), so each fresh array was memory newly mapped by the kernel,
    cleared page by page on first touch and unmapped after the chunk: measured on the two-year
    T-ALL cohort, ``clear_page_erms`` alone took 3 % of the run's CPU and system time 8 %.
    :meth:`take` returns a free pair of (rows, n_times, saved states) and (rows, n_times, saved
    outputs) arrays or makes one; :meth:`give` returns it. The arrays alive are those of the
    chunks being simulated or waiting, as without reuse. Thread-safe.
    """

    def __init__(self, n_times: int, n_states: int, n_outputs: int):
        self.shape = (int(n_times), int(n_states), int(n_outputs))
        self._free = []
        self._lock = threading.Lock()
        self.n_made = 0

    def take(self, rows: int):
        """A pair of arrays with ``rows`` patients (views of the first rows of a larger free pair)."""
        n_t, n_s, n_o = self.shape
        with self._lock:
            while self._free:
                pair = self._free.pop()
                if pair[0].shape[0] >= rows:
                    return pair[0][:rows], pair[1][:rows], pair
            self.n_made += 1
        pair = (np.empty((rows, n_t, n_s)), np.empty((rows, n_t, n_o)))
        return pair[0], pair[1], pair

    def give(self, pair) -> None:
        """Hand a pair from :meth:`take` back (its third item), to be written over."""
        with self._lock:
            self._free.append(pair)


def saved_series(result, name):
    """The values of a saved output or state of a batch result, shape (n, n_times)."""
    return result.output(name) if name in result.output_names else result.state(name)


def saved_planes(result, names) -> dict:
    """Contiguous (n, n_times) values of saved outputs or states of a batch result, by name.

    The outputs are gathered from the result's (patient, time, output) block in one pass
    (:func:`carkinetics.cohort.bands.output_planes`): one strided copy per output read every
    cache line of the block once per output, and cost the reduction more than its counting.
    """
    outputs = [name for name in names if name in result.output_names]
    planes = dict(zip(outputs, output_planes(result.outputs, [result.output_names.index(n) for n in outputs])))
    return {name: planes[name] if name in planes else np.ascontiguousarray(result.state(name)) for name in names}


class ChunkSimulator:
    """Draws and simulates chunks of a cohort design's patients, arm by arm.

    Parameters
    ----------
    scenario : Scenario
    design : carkinetics.scenario.sampling.CohortDesign
    outputs : sequence of str
        Outputs and states of the model to save.
    jobs : int, optional
        Threads of the engine (default: all cores).
    uniform_streams : sequence of int
        The random-number streams of the endpoints' random events (one uniform per patient each).
    reuse_outputs : bool
        Simulate into arrays that :meth:`release` hands back for later chunks (:class:`OutputBlocks`):
        for a caller that reduces each chunk and drops it (a chunk's results are written over
        once it is released).
    """

    def __init__(self, scenario, design, outputs, *, jobs=None, uniform_streams=(), reuse_outputs=False):
        from carkinetics.simulation.simulate import simulate_batch  # looked up per run (tests replace it)

        model = scenario.model
        self.scenario = scenario
        self.design = design
        self.model = model
        self.jobs = jobs
        self.uniform_streams = tuple(uniform_streams)
        self._simulate_batch = simulate_batch
        typical_env = scenario.default_env()
        typical_env.update(design.variables)
        self.arm_events = [ArmEvents(scenario, a.name, {**typical_env, **a.variables}) for a in design.arms]
        self.endpoint_parameters = endpoint_parameters(scenario.endpoints, model)
        self.save_outputs = [x for x in outputs if x in model.output_names]
        self.save_states = [x for x in outputs if x not in model.output_names]
        self.blocks = (OutputBlocks(len(scenario.times), len(self.save_states), len(self.save_outputs))
                       if reuse_outputs else None)

    def draw(self, start, stop):
        """Draws and uniforms of the patients ``start..stop-1``."""
        draws = self.design.draw(start, stop)
        uniforms = (self.design.uniforms(start, stop, self.uniform_streams) if self.uniform_streams
                    else np.zeros((stop - start, 0)))
        return draws, uniforms

    def arm_inputs(self, draws):
        """``(arm index, patient rows, event times, action values)`` of each arm with patients."""
        names = self.model.parameter_names
        inputs = []
        for k, arm_ev in enumerate(self.arm_events):
            mask = draws.arm == k
            idx = np.flatnonzero(mask)
            if idx.size:
                inputs.append((k, idx, *arm_ev.arrays(draws.env(names, mask), idx.size)))
        return inputs

    def simulate(self, draws, inputs, kernel_ready=None, n_threads=None, blocks=None):
        """Simulate the patients of ``draws`` arm by arm; return ``(sims, seconds)`` (see :class:`Chunk`).

        ``kernel_ready``: a :class:`threading.Event` set once the compiled kernel is loaded; while
        it is not set, two patients are simulated first (loading the kernel is ~0.4 s of
        interpreter work, done before the calling thread's imports compete with it for the
        interpreter lock). ``n_threads``: the engine's threads for this chunk (default: the
        simulator's ``jobs``). ``blocks``: (states, outputs) arrays with a row per patient of the
        chunk to simulate into (each arm's patients in consecutive rows), or None.
        """
        simulate_batch = self._simulate_batch
        times = self.scenario.times
        # the engine's random streams (random events, stochastic states) are keyed by the
        # run's seed and each patient's index in the cohort
        kwargs = dict(options=self.scenario.solver, t0=self.scenario.t0,
                      n_threads=self.jobs if n_threads is None else n_threads,
                      save_states=self.save_states, save_outputs=self.save_outputs, seed=self.design.seed)
        index = np.asarray(draws.index, dtype=np.int64)
        sims = []
        seconds = 0.0
        row = 0
        for k, idx, ev_times, act_values in inputs:
            out = None
            if blocks is not None:
                out = (blocks[0][row:row + idx.size], blocks[1][row:row + idx.size])
                row += idx.size
            ta = _time.perf_counter()
            schedule = self.arm_events[k].schedule
            if kernel_ready is not None and not kernel_ready.is_set() and idx.size > 2:
                try:
                    simulate_batch(self.model, schedule, times, draws.parameters[idx[:2]],
                                   event_times=None if ev_times is None else ev_times[:2],
                                   action_values=None if act_values is None else act_values[:2],
                                   patient_index=index[idx[:2]], **kwargs)
                finally:
                    kernel_ready.set()
            res = simulate_batch(self.model, schedule, times, draws.parameters[idx], event_times=ev_times,
                                 action_values=act_values, patient_index=index[idx], out=out, **kwargs)
            if kernel_ready is not None:
                kernel_ready.set()
            seconds += _time.perf_counter() - ta
            sims.append((k, idx, res))
        return sims, seconds

    def run(self, draws, uniforms, kernel_ready=None, draw_seconds=0.0, n_threads=None) -> Chunk:
        """Simulate drawn patients (see :meth:`simulate` for ``kernel_ready`` and ``n_threads``).

        Parameters
        ----------
        draws : carkinetics.scenario.sampling.Draws
        uniforms : ndarray, shape (n, n_uniforms)
        kernel_ready : threading.Event, optional
        draw_seconds : float
            Time spent drawing them (s), added to the time of the event arrays.
        n_threads : int, optional
            The engine's threads (default: the simulator's ``jobs``).

        Returns
        -------
        Chunk
        """
        t0 = _time.perf_counter()
        inputs = self.arm_inputs(draws)
        draw_seconds += _time.perf_counter() - t0
        pair = None
        if self.blocks is not None:
            *views, pair = self.blocks.take(uniforms.shape[0])
        try:
            sims, simulate_seconds = self.simulate(draws, inputs, kernel_ready, n_threads,
                                                   None if pair is None else views)
            patient = self.patient_values(draws, sims, {k: ev_times for k, _, ev_times, _ in inputs})
        except BaseException:
            if pair is not None:
                self.blocks.give(pair)
            raise
        return Chunk(draws, uniforms, sims, draw_seconds, simulate_seconds, patient, pair)

    def release(self, chunk: Chunk) -> None:
        """Drop a reduced chunk's simulations and hand its arrays back to be written over (with
        ``reuse_outputs``; nothing may refer to its saved values any more)."""
        chunk.sims = None
        if chunk.blocks is not None and self.blocks is not None:
            self.blocks.give(chunk.blocks)
        chunk.blocks = None

    def endpoint_parameter_values(self, draws) -> dict:
        """Each drawn patient's value of every model parameter the endpoints read."""
        return {name: np.array(draws.parameters[:, self.model.parameter_index(name)], dtype=float)
                for name in self.endpoint_parameters}

    def patient_values(self, draws, sims, event_times) -> dict:
        """The patient-level names endpoints may read, for the simulated patients of a chunk.

        Covariates and variables; the parameters the endpoints read (each patient's value);
        ``arm.NAME`` (1 in that arm, else 0); ``fired.EVENT`` (1 if an
        event of that name fired for the patient) and ``time_of.EVENT`` (the first time one did;
        NaN if none did), for the scenario's events and the model's own (triggered, random).

        Parameters
        ----------
        draws : carkinetics.scenario.sampling.Draws
        sims : list of (int, ndarray, BatchResult)
            Per arm: its index, the rows of its patients and their simulation.
        event_times : dict of int to ndarray or None
            Per arm: the patients' event times, shape (n_arm, n_events) (None: the schedule's).

        Returns
        -------
        dict of str to ndarray, shape (n,)
        """
        n = draws.arm.size
        values = {name: np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy()
                  for name, v in {**draws.covariates, **draws.variables}.items()}
        values.update(self.endpoint_parameter_values(draws))
        for k, arm in enumerate(self.design.arms):
            if arm.name != DEFAULT_ARM:
                values[f"arm.{arm.name}"] = (draws.arm == k).astype(float)
        names = list(dict.fromkeys([e.name for e in self.scenario.events] + list(self.model.event_names)))
        for name in names:
            values[f"fired.{name}"] = np.zeros(n)
            values[f"time_of.{name}"] = np.full(n, np.nan)
        for k, idx, res in sims:
            schedule = self.arm_events[k].schedule
            times = (np.broadcast_to([e.time for e in schedule], (idx.size, len(schedule)))
                     if event_times.get(k) is None else event_times[k])
            applied = np.asarray(res.events_applied, dtype=bool)[:, :len(schedule)]
            for j, event in enumerate(schedule):
                fired = applied[:, j]
                first = values[f"time_of.{event.name}"][idx]
                values[f"time_of.{event.name}"][idx] = np.where(fired, np.fmin(first, times[:, j]), first)
                values[f"fired.{event.name}"][idx] = np.maximum(values[f"fired.{event.name}"][idx], fired)
            for j, name in enumerate(self.model.event_names):
                fired = res.model_event_count[:, j] > 0
                first = values[f"time_of.{name}"][idx]
                values[f"time_of.{name}"][idx] = np.where(fired, np.fmin(first, res.model_event_time[:, j]), first)
                values[f"fired.{name}"][idx] = np.maximum(values[f"fired.{name}"][idx], fired)
        return values

    def timed_draw(self, start, stop):
        """``(draws, uniforms, seconds)`` of the patients ``start..stop-1``: :meth:`draw` and its time."""
        t0 = _time.perf_counter()
        draws, uniforms = self.draw(start, stop)
        return draws, uniforms, _time.perf_counter() - t0

    def chunk(self, start, stop, kernel_ready=None) -> Chunk:
        """Draw and simulate the patients ``start..stop-1`` (see :meth:`simulate` for ``kernel_ready``)."""
        draws, uniforms, seconds = self.timed_draw(start, stop)
        return self.run(draws, uniforms, kernel_ready, seconds)


def endpoint_parameters(endpoints, model) -> tuple:
    """The model parameters that the expressions of ``endpoints`` read, in model order (an
    endpoint of the same name hides a parameter): those of ``endpoints.parameter_defaults``,
    which the endpoint parser collects."""
    read = getattr(endpoints, "parameter_defaults", None) or {}
    return tuple(p for p in model.parameter_names if p in read)


def endpoint_values(chunk, endpoints, columns, times, horizon, planes=None):
    """Status and endpoint values of a simulated chunk's patients (NaN for failed patients).

    Parameters
    ----------
    chunk : Chunk
    endpoints : object or None
        The scenario's endpoints (``compute``, ``outputs_needed``); None for none.
    columns : sequence of str
        The endpoint columns to return.
    times : ndarray
        Output times (model time unit).
    horizon : float
        The scenario's horizon (model time unit).
    planes : list of dict, optional
        Per simulation of ``chunk.sims``, the (n, n_times) values of the outputs the endpoints
        read (default: gathered here, :func:`saved_planes`).

    Returns
    -------
    status : ndarray of int64, shape (n,)
    values : dict of str to ndarray, shape (n,)
    """
    m = chunk.uniforms.shape[0]
    status = np.zeros(m, dtype=np.int64)
    values = {col: np.full(m, np.nan) for col in columns}
    for j, (_, idx, res) in enumerate(chunk.sims):
        status[idx] = res.status
        ok = res.status == 0
        if endpoints:
            saved = planes[j] if planes is not None else saved_planes(res, endpoints.outputs_needed)
            vals = endpoints.compute(times, saved, chunk.uniforms[idx], horizon,
                                     patient={name: v[idx] for name, v in chunk.patient.items()})
            for col in columns:
                values[col][idx] = np.where(ok, np.asarray(vals[col], dtype=float), np.nan)
    return status, values


class EngineThreads:
    """Draws and simulates the chunks in ``workers`` threads; :meth:`get` returns them in order.

    Each thread takes the next chunk start and draws its patients (``draw(start)``, in patient
    order, one thread at a time: the draws share the design's random-number blocks), then
    simulates them (``simulate(drawn)``; the engine releases the interpreter lock) while the
    other threads simulate theirs. Independent threads, each simulating a whole chunk in its
    own lanes, keep the cores busy where one chunk split between threads waits at its end for
    the slower half (and a thread sharing its core with the reductions is the slower half).
    At most ``depth + 1`` chunks are being simulated or wait to be taken (a thread waits for
    :meth:`get` before it takes another), as with one thread and a queue of ``depth``. An
    exception in a thread is raised by :meth:`get` when that chunk's turn comes; the threads
    take no new chunk after one.

    Parameters
    ----------
    draw : callable(int)
        Draws the chunk starting at a patient index (called in order, one at a time).
    simulate : callable(object)
        Simulates what ``draw`` returned.
    starts : iterable of int
        The chunks' first patients.
    depth : int
        Finished chunks that may wait.
    workers : int
        Threads.
    ready : threading.Event, optional
        Set once the engine is loaded: the threads but the first wait for it before they
        simulate (the first chunk loads it).
    """

    def __init__(self, draw, simulate, starts, depth, workers=1, ready=None):
        self._draw, self._simulate, self._ready = draw, simulate, ready
        self._starts = list(starts)
        self._limit = max(1, int(depth)) + 1
        self._next = 0  # the next chunk a thread takes
        self._taken = 0  # the next chunk get() returns
        self._done = {}  # chunk -> (ok, chunk or exception)
        self._failed = False
        self._stop = False
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._run, args=(w,), name="carkinetics-engine", daemon=True)
                         for w in range(max(1, min(int(workers), len(self._starts))))]

    def start(self):
        """Start simulating."""
        for t in self._threads:
            t.start()

    def is_alive(self):
        """Whether a thread is still running."""
        return any(t.is_alive() for t in self._threads)

    def _take(self):
        """The next chunk's index and its draws, or None when there is none to take."""
        with self._cond:
            while not (self._stop or self._failed) and self._next < len(self._starts) \
                    and self._next - self._taken >= self._limit:
                self._cond.wait()
            if self._stop or self._failed or self._next >= len(self._starts):
                return None
            i = self._next
            self._next += 1
            try:
                return i, True, self._draw(self._starts[i])
            except BaseException as err:  # handed to get() in this chunk's turn
                self._failed = True
                return i, False, err

    def _run(self, w):
        while True:
            taken = self._take()
            if taken is None:
                return
            i, ok, item = taken
            if ok:
                try:
                    if w > 0 and self._ready is not None:
                        while not self._ready.wait(0.05):
                            if self._stop:
                                return
                    item = self._simulate(item)
                except BaseException as err:  # handed to get() in this chunk's turn
                    ok, item = False, err
            with self._cond:
                self._done[i] = (ok, item)
                self._failed = self._failed or not ok
                self._cond.notify_all()
            item = None

    def get(self):
        """The next chunk (waits for it), or the exception raised while making it."""
        with self._cond:
            i = self._taken
            while i not in self._done:
                if not self.is_alive():
                    raise RuntimeError(f"the engine threads ended before chunk {i}")
                self._cond.wait(0.05)
            ok, item = self._done.pop(i)
            self._taken += 1
            self._cond.notify_all()
        if not ok:
            raise item
        return item

    def close(self):
        """Stop after the chunks being simulated (if any) and wait for the threads."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for t in self._threads:
            while t.is_alive():
                t.join(0.05)
        self._done.clear()  # free the outputs of chunks nobody took
