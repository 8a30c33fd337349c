"""Simulate one patient (:func:`simulate`) or many in parallel (:func:`simulate_batch`)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from carkinetics.engine.constants import ACTION_CODES, COUNTER_NAMES
from carkinetics.errors import CarKineticsError, FileProblem, ScenarioError, SolverError
from carkinetics.model.spec import bound_slack
from carkinetics.simulation.options import SolverOptions
from carkinetics.simulation.result import BatchResult, Trajectory, status_message
from carkinetics.simulation.schedule import as_schedule

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import ArrayLike

    from carkinetics.model.spec import Model
    from carkinetics.simulation.schedule import Event, Schedule


class SimulationInputError(CarKineticsError, ValueError):
    """Inputs to simulate / simulate_batch are inconsistent."""


class ScenarioInputError(ScenarioError, SimulationInputError):
    """A value of a scenario's event, found wrong while simulating (e.g. a per-patient amount):
    names the scenario file and the event's key."""


#: Largest number of output times of one simulation (and of a scenario's [times]). Two years
#: every 10 minutes is 105,000 times; a daily grid is 731. Memory grows with it everywhere: a
#: patient's results are n_times x (states + outputs) doubles, a cohort's bands and plots keep
#: per-time histograms (a 50-patient cohort of the multiphasic model on 730,000 times took
#: 6 GB), the trajectory file has a row per time.
MAX_OUTPUT_TIMES = 100_000
#: Largest magnitude of a time (output time, event time, data time), in days: 1e6 days is
#: 2,700 years, far beyond any follow-up; "never" placeholders such as 100,000 days still fit.
MAX_TIME = 1e6
#: Largest memory of the results of one call of :func:`simulate_batch` (patients x output
#: times x saved variables doubles); cohorts are simulated in chunks well below it.
MAX_RESULT_BYTES = 8 * 1024**3


def _action_error(table, a, message):
    """An error about action ``a`` of ``table``: naming its scenario file and key when known."""
    source = table.act_sources[a] if a < len(table.act_sources) else None
    if source is not None:
        return ScenarioInputError(source[0], [FileProblem(source[1], message)])
    return SimulationInputError(f"{table.act_labels[a]}: {message}")


def _event_error(table, schedule, e, message):
    ev = schedule[e] if e < len(schedule) else None
    source = getattr(ev, "source", None)
    if source is not None:
        return ScenarioInputError(source[0], [FileProblem(f"{source[1]}.time", message)])
    return SimulationInputError(f"{table.names[e]}: {message}")


def check_times(times) -> np.ndarray:
    """Check output times and return them as a contiguous float array.

    Parameters
    ----------
    times : array_like, shape (n_times,)
        Output times in the model's time unit (day).

    Returns
    -------
    ndarray, shape (n_times,)
        The times as float64.

    Raises
    ------
    SimulationInputError
        If ``times`` is missing, empty, not 1-d, longer than :data:`MAX_OUTPUT_TIMES`, not
        finite, beyond :data:`MAX_TIME` or not strictly increasing.
    """
    if times is None:
        raise SimulationInputError("`times` is required: the output times (model time unit)")
    arr = np.atleast_1d(np.asarray(times, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise SimulationInputError("`times` must be a non-empty 1-d sequence of output times")
    if arr.size > MAX_OUTPUT_TIMES:
        raise SimulationInputError(f"{arr.size:,} output times; at most {MAX_OUTPUT_TIMES:,} are allowed")
    if not np.all(np.isfinite(arr)):
        raise SimulationInputError("`times` must be finite")
    if np.abs(arr).max() > MAX_TIME:
        raise SimulationInputError(f"output time {arr[np.argmax(np.abs(arr))]:g} is beyond +-{MAX_TIME:g} days")
    if arr.size > 1 and not np.all(np.diff(arr) > 0):
        raise SimulationInputError("`times` must be strictly increasing")
    return np.ascontiguousarray(arr)


def _parameter_vector(model, parameters) -> np.ndarray:
    if parameters is None:
        return model.default_parameters()
    if isinstance(parameters, Mapping):
        try:
            return model.parameter_vector(parameters)
        except KeyError as err:
            raise SimulationInputError(err.args[0]) from None
    arr = np.asarray(parameters, dtype=float)
    if arr.shape != (model.n_parameters,):
        raise SimulationInputError(f"`parameters` must be a mapping or an array of shape "
                                   f"({model.n_parameters},), got shape {arr.shape}")
    return arr.copy()


def _select(names_all, request, what) -> np.ndarray:
    if request is True or request is None:
        return np.arange(len(names_all), dtype=np.int64)
    if request is False:
        return np.zeros(0, dtype=np.int64)
    idx = []
    for name in request:
        if name not in names_all:
            from carkinetics.errors import suggestion

            raise SimulationInputError(f"'{name}' is not {what}{suggestion(name, names_all)}")
        idx.append(names_all.index(name))
    return np.array(idx, dtype=np.int64)


def _thread_count(n_threads) -> int:
    """Threads for a batch: ``n_threads``, checked, at most ``numba.config.NUMBA_NUM_THREADS``
    (the cores, or the environment's ``NUMBA_NUM_THREADS``); all of them when None."""
    import numba

    if n_threads is None:
        return int(numba.config.NUMBA_NUM_THREADS)
    n = int(n_threads)
    if n < 1:
        raise SimulationInputError(f"`n_threads` must be >= 1, got {n_threads}")
    return min(n, int(numba.config.NUMBA_NUM_THREADS))


def simulate(model: Model, events: Schedule | Event | Iterable[Event] | None = None, times: ArrayLike | None = None,
             parameters: Mapping[str, float] | ArrayLike | None = None, options: SolverOptions | None = None,
             t0: float | None = None, seed: int = 0) -> Trajectory:
    """Simulate CAR-T cell kinetics for one patient and one schedule of events.

    Parameters
    ----------
    model : Model
        From :func:`carkinetics.load_model`.
    events : Schedule, Event or sequence of Event, optional
        Doses and other events; see :mod:`carkinetics.simulation.schedule`.
    times : array_like, shape (n_times,)
        Output times in the model's time unit (day), strictly increasing.
    parameters : mapping of str to float, or array of shape (n_parameters,), optional
        Overrides of the model's typical values by name (finite and within each parameter's
        bounds, else :class:`~carkinetics.model.spec.ParameterValueError`), or a full vector, used
        as given (build one with ``model.parameter_vector(overrides, check_bounds=False)`` to
        switch a mechanism off outside its bounds on purpose).
    options : SolverOptions, optional
    t0 : float, optional
        Start of integration (initial values apply here). Default: day 0, or the first
        output time or event if one is earlier (output times that start later, e.g.
        observation days, do not move the start).
    seed : int, optional
        Seed of the random stream of a model with random events or stochastic states (the
        patient is patient 0 of that seed, as in :func:`simulate_batch`).

    Returns
    -------
    Trajectory
        States and outputs at ``times``, the status and solver counters.

    Raises
    ------
    SimulationInputError
        If ``times`` is not increasing or a name is unknown.
    SolverError
        If integration fails and ``options.raise_on_failure`` is true.

    Examples
    --------
    >>> from carkinetics import load_model, simulate, Dose
    >>> model = load_model("models/multiphasic.toml")              # doctest: +SKIP
    >>> traj = simulate(model, [], times=[0, 9.3, 28])              # doctest: +SKIP
    >>> round(float(traj["transgene"][1]))                          # doctest: +SKIP
    24000
    """
    options = options or SolverOptions()
    p = _parameter_vector(model, parameters)
    batch = simulate_batch(model, events, times, p[None, :], options=options, t0=t0, n_threads=1, seed=seed)
    status = int(batch.status[0])
    traj = Trajectory(model, batch.times, batch.states[0], batch.outputs[0], p, status,
                      batch.counters[0].copy(), batch.events_applied[0].astype(bool), batch.event_names,
                      batch.model_event_count[0].copy(), batch.model_event_time[0].copy())
    if status != 0 and options.raise_on_failure:
        t_fail = batch.times[np.argmax(np.isnan(batch.states[0]).any(axis=1))]
        where = f"{options.source}: " if getattr(options, "source", "") else ""
        raise SolverError(f"{where}integration of model '{model.name}' failed near t = {t_fail:g}: "
                          f"{status_message(status)}", status)
    return traj



def simulate_batch(model: Model, events: Schedule | Event | Iterable[Event] | None, times: ArrayLike,
                   parameters: ArrayLike | pd.DataFrame, *, event_times: ArrayLike | None = None,
                   action_values: ArrayLike | None = None, options: SolverOptions | None = None,
                   t0: float | None = None, n_threads: int | None = None,
                   save_states: bool | Sequence[str] = True, save_outputs: bool | Sequence[str] = True,
                   block: int | None = None, seed: int = 0, patient_index: ArrayLike | None = None,
                   out: tuple[np.ndarray, np.ndarray] | None = None) -> BatchResult:
    """Simulate N patients in parallel on all cores.

    Parameters
    ----------
    model : Model
    events : Schedule or sequence of Event
        The schedule shared by all patients; per-patient times and amounts can be
        overridden with ``event_times`` and ``action_values``.
    times : array_like, shape (n_times,)
        Output times, common to all patients.
    parameters : array_like, shape (N, n_parameters), or pandas.DataFrame
        One parameter vector per patient (see :attr:`Model.parameter_names`); a DataFrame
        is matched by column name (one row per patient, typical values for the parameters
        it has no column for; a column that is not a parameter is refused).
    event_times : array_like, shape (N, n_events), optional
        Per-patient event times (default: the schedule's).
    action_values : array_like, shape (N, n_actions), optional
        Per-patient action amounts, in the flattened order of
        ``Schedule.expand(model).act_labels`` (default: the schedule's).
    options : SolverOptions, optional
    t0 : float, optional
        Common start time (default: day 0, or the earliest output or event time if one is earlier).
    n_threads : int, optional
        Number of threads (default: all cores). Results are identical for any
        number of threads.
    block : int, optional
        Patients a thread takes at a time (default: as few blocks as keep the threads
        evenly busy). Results are identical for any block size.
    save_states, save_outputs : bool or sequence of str
        Which states and outputs to keep at the output times (all by default).
        Memory is N x n_times x (saved variables) doubles; nothing else grows with
        the number of steps.
    seed : int, optional
        Seed of the random streams of a model with random events or stochastic states
        (ignored by a deterministic model).
    patient_index : array_like of int, shape (N,), optional
        Each patient's index in its cohort (default ``0..N-1``): patient ``i`` draws from the
        stream of ``(seed, patient_index[i])``, so a patient simulated alone or in any chunk
        of a cohort gets the same numbers.

    Returns
    -------
    BatchResult
        Failed patients are flagged in ``status`` (never raised).
    """
    options = options or SolverOptions()
    times = check_times(times)
    params = _parameter_matrix(model, parameters)
    n_pat = params.shape[0]
    schedule = as_schedule(events)
    table = schedule.expand(model)
    n_events = table.n_events
    ev_time, act_value = _event_values(model, table, schedule, n_pat, event_times, action_values)
    t0 = _start_time(times, ev_time, n_events, t0)
    ev_time = _with_breakpoints(model, table, params, ev_time, t0)
    s_idx = _select(model.state_names, save_states, "a state")
    o_idx = _select(model.output_names, save_outputs, "an output")
    _check_result_size(n_pat, len(times), len(s_idx) + len(o_idx))
    system = model.kernel_system().model if model.has_dynamics else model
    thr = system.extinction_thresholds() if options.extinction else np.zeros(system.n_states)
    atol = options.atol_vector(system)
    keys = random_keys(seed, n_pat if patient_index is None else patient_index, n_pat)
    kernel = model.kernel
    kparams = params
    if system is not model:
        kparams = np.zeros((n_pat, system.n_parameters))
        kparams[:, :model.n_parameters] = params
    n_mev = len(model.events)
    prob = kernel.Problem(**_read_only(dict(
        t0=float(t0), times=times, params=kparams, ev_time=ev_time, ev_cond=table.cond,
        act_start=table.act_start, act_kind=table.act_kind, act_target=table.act_target,
        act_value=np.ascontiguousarray(act_value, dtype=float), prog_code=table.prog_code,
        prog_const=table.prog_const, prog_start=table.prog_start, prog_cstart=table.prog_cstart,
        thr=thr, atol=atol, rtol=float(options.rtol), method=int(options.method_code),
        hmax=float(options.max_step if math.isfinite(options.max_step) else 1e300),
        max_steps=int(options.max_steps), state_idx=s_idx, output_idx=o_idx, rng_key=keys)))
    out_states, out_outputs = _out_arrays(out, (n_pat, len(times)), len(s_idx), len(o_idx))
    res = kernel.Results(
        out_states=out_states, out_outputs=out_outputs,
        status=np.zeros(n_pat, dtype=np.int64), counters=np.zeros((n_pat, len(COUNTER_NAMES)), dtype=np.int64),
        applied=np.zeros((n_pat, ev_time.shape[1]), dtype=np.int8), final=np.zeros((n_pat, system.n_states)),
        mev_count=np.zeros((n_pat, max(n_mev, 1)), dtype=np.int64), mev_time=np.full((n_pat, max(n_mev, 1)), np.nan))
    _run_kernel(kernel, prob, res, n_threads, block)
    return BatchResult(model, times, params, res.out_states, res.out_outputs,
                       tuple(model.state_names[i] for i in s_idx), tuple(model.output_names[i] for i in o_idx),
                       res.status, res.counters, res.applied[:, :n_events].astype(bool),
                       res.final[:, :model.n_states], table.names, res.mev_count[:, :n_mev], res.mev_time[:, :n_mev])


def random_keys(seed: int, patient_index, n_pat: int) -> np.ndarray:
    """Keys of the patients' random streams: SplitMix64 of the seed's key and each patient index.

    Parameters
    ----------
    seed : int
        The run's seed (any integer; reduced modulo 2**64).
    patient_index : int or array_like of int
        The patients' indices in their cohort, or N for ``0..N-1``.
    n_pat : int
        Number of patients (the length ``patient_index`` must have).

    Returns
    -------
    ndarray of uint64, shape (N,)
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise SimulationInputError(f"`seed` must be an integer, got {seed!r}")
    if np.ndim(patient_index) == 0:
        index = np.arange(int(patient_index), dtype=np.uint64)
    else:
        raw = np.asarray(patient_index)
        if raw.shape != (n_pat,) or not np.issubdtype(raw.dtype, np.integer) or (raw < 0).any():
            raise SimulationInputError(f"`patient_index` must be {n_pat} integers >= 0, got shape {raw.shape}")
        index = raw.astype(np.uint64)
    base = _splitmix(np.array([int(seed) % 2**64], dtype=np.uint64) ^ np.uint64(0x5DEECE66D))[0]
    with np.errstate(over="ignore"):
        return _splitmix(base + (index + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15))


def _splitmix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function (Steele, Lea & Flood 2014), elementwise on uint64."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _parameter_matrix(model, parameters) -> np.ndarray:
    """Parameters of N patients as a contiguous (N, n_parameters) float array, checked.

    A pandas DataFrame is matched by column name: a column per parameter the patients vary,
    the model's typical value for the others; a column that names no parameter is refused.
    """
    if hasattr(parameters, "columns") and hasattr(parameters, "to_numpy"):
        parameters = _parameters_from_frame(model, parameters)
    params = np.ascontiguousarray(np.asarray(parameters, dtype=float))
    if params.ndim != 2 or params.shape[1] != model.n_parameters:
        raise SimulationInputError(f"`parameters` must have shape (N, {model.n_parameters}), got {params.shape}")
    if not np.all(np.isfinite(params)):
        bad = np.argwhere(~np.isfinite(params))[0]
        raise SimulationInputError(f"parameter '{model.parameter_names[bad[1]]}' of patient {bad[0]} "
                                   f"is not finite ({params[bad[0], bad[1]]})")
    return params


def _parameters_from_frame(model, frame) -> np.ndarray:
    """An (N, n_parameters) matrix from a DataFrame's columns, matched by name (typical values elsewhere)."""
    from carkinetics.errors import suggestion

    unknown = [str(c) for c in frame.columns if c not in model.parameter_names]
    if unknown:
        raise SimulationInputError(f"`parameters` column '{unknown[0]}' is not a parameter of model '{model.name}'"
                                   f"{suggestion(unknown[0], model.parameter_names)}")
    params = np.tile(model.default_parameters(), (len(frame), 1))
    for name in frame.columns:
        params[:, model.parameter_index(name)] = frame[name].to_numpy(dtype=float)
    return params


def _event_values(model, table, schedule, n_pat, event_times, action_values):
    """Per-patient event times (N, n_events) and action values (N, n_actions), checked."""
    E, A = table.n_events, table.n_actions
    ev_time = np.broadcast_to(table.time, (n_pat, E)) if event_times is None else np.asarray(event_times, float)
    if ev_time.shape != (n_pat, E):
        raise SimulationInputError(f"`event_times` must have shape ({n_pat}, {E}), got {ev_time.shape}")
    act_value = (np.broadcast_to(table.act_value, (n_pat, A)) if action_values is None
                 else np.asarray(action_values, float))
    if act_value.shape != (n_pat, A):
        raise SimulationInputError(f"`action_values` must have shape ({n_pat}, {A}), got {act_value.shape}")
    if E:
        bad_t = ~np.isfinite(ev_time) | (np.abs(ev_time) > MAX_TIME)
        if bad_t.any():
            i, e = np.argwhere(bad_t)[0]
            raise _event_error(table, schedule, e, f"event time for patient {i} is {ev_time[i, e]:g}: not a finite "
                                                   f"number within +-{MAX_TIME:g} days")
    if A:
        _check_action_values(model, table, act_value)
    return ev_time, act_value


def _check_action_values(model, table, act_value) -> None:
    """Action values must be finite, amounts non-negative and parameters within their bounds."""
    if not np.all(np.isfinite(act_value)):
        i, a = np.argwhere(~np.isfinite(act_value))[0]
        raise _action_error(table, a, f"value for patient {i} is not finite ({act_value[i, a]})")
    on_states = [ACTION_CODES["add"], ACTION_CODES["multiply"], ACTION_CODES["set"]]
    neg = (act_value < 0) & np.isin(table.act_kind, on_states)[None, :]
    if neg.any():
        i, a = np.argwhere(neg)[0]
        raise _action_error(table, a, f"value for patient {i} is negative ({act_value[i, a]:g}); doses, "
                                      f"factors and values set must be >= 0 (states are amounts)")
    is_par = table.act_kind == ACTION_CODES["set_parameter"]
    if is_par.any():
        lo = np.array([p.bounds[0] if p.bounds else -np.inf for p in model.parameters])
        hi = np.array([p.bounds[1] if p.bounds else np.inf for p in model.parameters])
        tgt = table.act_target
        slack_lo = bound_slack(lo[tgt])  # rounding of values computed at a bound
        slack_hi = bound_slack(hi[tgt])
        out = is_par[None, :] & ((act_value < (lo[tgt] - slack_lo)[None, :])
                                 | (act_value > (hi[tgt] + slack_hi)[None, :]))
        if out.any():
            i, a = np.argwhere(out)[0]
            raise _action_error(table, a, f"value for patient {i} is {act_value[i, a]:g}, outside the bounds "
                                          f"of parameter '{model.parameter_names[tgt[a]]}' "
                                          f"[{lo[tgt[a]]:g}, {hi[tgt[a]]:g}]")


def _start_time(times, ev_time, n_events, t0):
    """The start of integration: ``t0``, checked; by default day 0, or the first output time or event
    when one comes before it (a model's initial values hold at day 0, not at the first output time)."""
    start = times[0] if n_events == 0 else min(times[0], float(ev_time.min()))
    if t0 is None:
        return min(0.0, float(start))
    if not (isinstance(t0, (int, float, np.integer, np.floating)) and math.isfinite(t0) and abs(t0) <= MAX_TIME):
        raise SimulationInputError(f"t0 must be a finite time within +-{MAX_TIME:g} days, got {t0!r}")
    if t0 > start:
        raise SimulationInputError(f"t0 = {t0} is after the first output time or event ({start})")
    return t0


def _with_breakpoints(model, table, params, ev_time, t0) -> np.ndarray:
    """Event times with the model's breakpoints appended (events without actions: integration
    restarts there); extends ``table``'s conditions and action starts to match."""
    n_bp = len(model.breakpoints)
    if n_bp:
        bp = model.breakpoint_times(params)
        bp = np.where(np.isfinite(bp) & (bp > t0), bp, np.inf)  # outside the horizon: never reached
        ev_time = np.concatenate([ev_time, bp], axis=1)
        table.cond = np.concatenate([table.cond, -np.ones(n_bp, dtype=np.int64)])
        table.act_start = np.concatenate([table.act_start,
                                          np.full(n_bp, table.act_start[-1], dtype=np.int64)])
    return np.ascontiguousarray(ev_time, dtype=float)


def _read_only(fields: dict) -> dict:
    """The kernel's inputs with every array as a read-only view (the arrays themselves untouched).

    numba compiles a function once per combination of argument types, and a read-only array
    is a type of its own: the broadcast event times of a single patient are read-only, a
    cohort's are not, and so a process that ran both compiled every engine function that
    takes the inputs twice. Read-only views always give one type, and the engine cannot write
    into its inputs (a write would not compile).
    """
    out = {}
    for name, value in fields.items():
        if isinstance(value, np.ndarray):
            value = value.view()
            value.flags.writeable = False
        out[name] = value
    return out


def _out_arrays(out, shape, n_states, n_outputs):
    """The arrays the saved states and outputs are written into: ``out``'s, checked, or new ones."""
    if out is None:
        return np.empty((*shape, n_states)), np.empty((*shape, n_outputs))
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise SimulationInputError("`out` must be a pair of arrays (saved states, saved outputs)")
    arrays = []
    for what, a, n in (("states", out[0], n_states), ("outputs", out[1], n_outputs)):
        want = (*shape, n)
        if not (isinstance(a, np.ndarray) and a.dtype == np.float64 and a.shape == want
                and a.flags.c_contiguous and a.flags.writeable):
            got = (f"{a.dtype} array of shape {a.shape}" + ("" if a.flags.c_contiguous else ", not C-contiguous")
                   + ("" if a.flags.writeable else ", read-only")) if isinstance(a, np.ndarray) else type(a).__name__
            raise SimulationInputError(f"`out` {what}: expected a writeable C-contiguous float64 array of shape "
                                       f"{want} (patients, output times, saved {what}), got {got}")
        arrays.append(a)
    if arrays[0].size and arrays[1].size and np.shares_memory(arrays[0], arrays[1]):
        raise SimulationInputError("`out`: the states' and the outputs' arrays share memory; give two separate arrays")
    return arrays


def _check_result_size(n_pat, n_times, n_saved) -> None:
    n_bytes = 8.0 * n_pat * n_times * n_saved
    if n_bytes > MAX_RESULT_BYTES:
        raise SimulationInputError(
            f"{n_pat:,} patients x {n_times:,} output times x {n_saved} saved variables need "
            f"{n_bytes / 1024**3:,.1f} GiB, more than the {MAX_RESULT_BYTES / 1024**3:g} GiB allowed in one batch; "
            f"simulate fewer patients at once, fewer output times or fewer saved variables")


def _run_kernel(kernel, prob, res, n_threads, block) -> None:
    """Run the kernel in this thread (one thread or one patient) or on ``n_threads`` threads.

    The kernel's ``run_range`` releases the interpreter lock, so Python threads, each taking
    the next block of patients when done with one, run in parallel; a patient's results do
    not depend on its block or thread.
    """
    n_pat = prob.params.shape[0]
    n = _thread_count(n_threads)
    if block is not None and (isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1):
        raise SimulationInputError(f"`block` must be a whole number of patients >= 1, got {block!r}")
    if n == 1 or n_pat == 1:
        kernel.run_range(0, n_pat, prob, res)
        return
    if block is None:
        # as few blocks as the balance between threads allows: every block ends with its lanes
        # emptying one by one, so one block per thread for a small batch (a cohort chunk of 226
        # patients on 2 threads: blocks of 113, where blocks of 28 kept the threads busy 80 % of
        # the time), else blocks of at most 16 lane-fulls, as many for each thread
        n_blocks = n * -(-n_pat // (n * 16 * kernel.LANES))
        block = max(kernel.LANES, -(-n_pat // n_blocks))
    block = int(block)
    starts = iter(range(0, n_pat, block))
    lock = threading.Lock()
    errors = []

    def work():
        try:
            while not errors:
                with lock:
                    start = next(starts, None)
                if start is None:
                    return
                kernel.run_range(start, min(n_pat, start + block), prob, res)
        except BaseException as err:  # noqa: BLE001 (raised again in the calling thread)
            errors.append(err)

    helpers = [threading.Thread(target=work, name="carkinetics-batch", daemon=True)
               for _ in range(min(n, -(-n_pat // block)) - 1)]
    for t in helpers:
        t.start()
    work()
    for t in helpers:
        t.join()
    if errors:
        raise errors[0]
