"""Per-patient endpoints computed from model outputs, vectorised over patients.

A scenario declares its endpoints in ``[endpoints.NAME]`` tables and combines
time-to-event endpoints into survival outcomes in ``[outcomes.NAME]`` tables.
Both sections are parsed into one :class:`EndpointSet`
(:func:`~carkinetics.scenario.endpoint_parser.parse_endpoints`); the cohort runner calls
:meth:`EndpointSet.compute` on each chunk of simulated patients, with the model
outputs on the scenario's output grid, and gets one column per endpoint.

Endpoint types (the registry :data:`ENDPOINT_TYPES`):

========================  =============================================================
``cmax`` / ``tmax``       maximum of an output in a window and the first time it is reached
``cmin`` / ``tmin``       minimum (nadir) and the first time it is reached
``auc``                   area under the curve over [start, end], linear-up/log-down or linear
``tlast``                 last output time with a value at or above the limit of quantification
``half_life``             terminal half-life ln 2 / lambda_z in [start, end] (PKNCA's point selection)
``auc_inf``               AUC extrapolated to infinity, AUClast + Clast / lambda_z (PKNCA's aucinf.obs)
``level``                 value at a day (interpolated between output times)
``first_above``           first time an output rises above a threshold after a day (time + event)
``first_below``           first time an output falls below a threshold after a day (time + event)
``time_above``            time spent above a threshold in [start, end]
``time_below``            time spent below a threshold in [start, end]
``condition``             whether a condition on outputs holds at a day or at another event (binary)
``value``                 an expression of outputs at a day or at another event (continuous)
``hazard``                a random event drawn from a hazard expression (time + event)
``event_time``            when a protocol event (``[[events]]`` name) fired (time + event)
``bernoulli``             a random yes/no event with a probability given by an expression (binary)
========================  =============================================================

The non-compartmental metrics are those of :mod:`carkinetics.stats.nca`, which
follows the conventions of the R package PKNCA (its default options).

Time-to-event endpoints give two columns, ``NAME`` (event time, or the end of the
window when censored) and ``NAME_event`` (1 event, 0 censored). A value of NaN
means "not applicable": the patient's simulation failed (a NaN in an output the
endpoint uses), the patient is not in the endpoint's ``among`` subgroup, or a
reference event (``after = "remission"``) did not happen.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from carkinetics.model import expressions as ex
from carkinetics.errors import CarKineticsError, FileProblem, ScenarioError, suggestion
from carkinetics.stats.nca import (auc, auc_inf, cmax, cmin, first_crossing, hazard_event_times, interpolate,
                                   lambda_z, time_beyond, tlast)


class EndpointError(CarKineticsError, ValueError):
    """An endpoint could not be computed (outside a scenario: no file to name)."""


#: Endpoint type -> (keys it accepts beyond the common ones, required keys, kind, description)
ENDPOINT_TYPES: dict[str, tuple[frozenset, frozenset, str, str]] = {
    "cmax": (frozenset({"output", "start", "end", "lloq"}), frozenset({"output"}), "continuous",
             "maximum of an output over [start, end]"),
    "tmax": (frozenset({"output", "start", "end", "lloq"}), frozenset({"output"}), "continuous",
             "first time of the maximum over [start, end]"),
    "cmin": (frozenset({"output", "start", "end"}), frozenset({"output"}), "continuous",
             "minimum (nadir) of an output over [start, end]"),
    "tmin": (frozenset({"output", "start", "end"}), frozenset({"output"}), "continuous",
             "first time of the minimum over [start, end]"),
    "auc": (frozenset({"output", "start", "end", "method", "lloq"}), frozenset({"output"}), "continuous",
            "area under the curve over [start, end]"),
    "tlast": (frozenset({"output", "start", "end", "lloq"}), frozenset({"output"}), "continuous",
              "last output time with a quantifiable value"),
    "level": (frozenset({"output", "day", "lloq", "below_lloq", "interpolation"}), frozenset({"output", "day"}),
              "continuous", "value of an output at a day"),
    "first_above": (frozenset({"output", "threshold", "after", "end", "interpolation", "report_at", "origin"}),
                    frozenset({"output", "threshold"}), "time",
                    "first time an output rises above a threshold after a day"),
    "first_below": (frozenset({"output", "threshold", "after", "end", "interpolation", "report_at", "origin"}),
                    frozenset({"output", "threshold"}), "time",
                    "first time an output falls below a threshold after a day"),
    "time_above": (frozenset({"output", "threshold", "start", "end", "interpolation"}),
                   frozenset({"output", "threshold"}), "continuous", "time spent above a threshold"),
    "time_below": (frozenset({"output", "threshold", "start", "end", "interpolation"}),
                   frozenset({"output", "threshold"}), "continuous", "time spent below a threshold"),
    "condition": (frozenset({"expr", "day", "at", "otherwise", "interpolation"}), frozenset({"expr"}), "binary",
                  "whether a condition on outputs holds at a day or at another endpoint's event time"),
    "value": (frozenset({"expr", "day", "at", "otherwise", "interpolation"}), frozenset({"expr"}), "continuous",
              "an expression of outputs at a day or at another endpoint's event time"),
    "bernoulli": (frozenset({"probability", "day", "at", "interpolation"}), frozenset({"probability"}), "binary",
                  "random yes/no event with a probability given by an expression (e.g. severe CRS from Cmax)"),
    "event_time": (frozenset({"event", "report_at", "origin"}), frozenset({"event"}), "time",
                   "when an event of the protocol fired (e.g. the transplant); censored at the horizon if it did not"),
    "hazard": (frozenset({"hazard", "start", "end", "report_at", "origin"}), frozenset({"hazard"}), "time",
               "random event drawn from a hazard (1/day) integrated along the trajectory"),
    "half_life": (frozenset({"output", "start", "end", "lloq"}), frozenset({"output"}), "continuous",
                  "terminal half-life (day) of an output after its peak in [start, end] (e.g. CAR-T contraction)"),
    "auc_inf": (frozenset({"output", "start", "end", "method", "lloq"}), frozenset({"output"}), "continuous",
                "area under the curve from start extrapolated to infinity with the terminal slope"),
}

#: Rules that combine time-to-event endpoints into an outcome.
COMBINE_RULES = {"first": "the earliest of the events (e.g. death from any cause); censored at the "
                          "earliest censoring time of a component that has not had its event"}

#: What a ``level`` endpoint reports below its ``lloq``: 0, or NaN (missing).
BELOW_LLOQ = ("zero", "missing")


@dataclass(frozen=True)
class Endpoint:
    """One declared endpoint (or outcome), validated.

    ``options`` holds the type's settings (numbers, method names); ``times`` holds
    time settings that may be a number or the name of a time-to-event endpoint
    (``after``, ``start``, ``at``); ``expr`` the parsed condition, value or hazard.
    """

    name: str
    type: str  # an ENDPOINT_TYPES key, or "outcome"
    key: str  # where it was declared, e.g. "endpoints.relapse"
    kind: str  # "continuous", "binary" or "time"
    output: str | None = None
    options: dict = field(default_factory=dict)
    times: dict = field(default_factory=dict)  # key -> float or endpoint name
    expr: ex.Expr | None = None
    among: ex.Expr | None = None
    events: tuple[str, ...] = ()  # outcomes: component endpoints
    report_at: tuple[float, ...] = ()
    description: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        """Its output columns: ``NAME``, and ``NAME_event`` for a time-to-event endpoint."""
        if self.type == "outcome":
            return (self.name, f"{self.name}_event", f"{self.name}_cause")
        return (self.name, f"{self.name}_event") if self.kind == "time" else (self.name,)

    def names_read(self) -> set[str]:
        """The names its expressions (``expr`` and ``among``) read."""
        return set().union(*(ex.names(e) for e in (self.expr, self.among) if e is not None))

    def references(self) -> set[str]:
        """Names of the endpoints this one needs first."""
        refs = {v for v in self.times.values() if isinstance(v, str)}
        refs |= {base_name(n) for n in self.names_read()}
        refs |= set(self.events)
        return refs

    def outputs_used(self, output_names) -> set[str]:
        """The model outputs it reads, among ``output_names``."""
        used = {self.output} if self.output else set()
        if self.expr is not None:
            used |= {n for n in ex.names(self.expr) if n in output_names}
        return used


def stream_id(name: str) -> int:
    """The random-number sub-stream of a random endpoint: a stable 32-bit number from its name.

    A patient's draw for an endpoint then depends only on the seed, the patient and the
    endpoint's name: not on which other endpoints a scenario declares, or in what order.

    >>> stream_id("relapse") == stream_id("relapse") != stream_id("os")
    True
    """
    return zlib.crc32(name.encode("utf-8"))


def base_name(column: str) -> str:
    """The endpoint a column belongs to: ``NAME`` for ``NAME_event``, else the column itself.

    Parameters
    ----------
    column : str
        An endpoint column name.

    Returns
    -------
    str
    """
    return column[:-len("_event")] if column.endswith("_event") else column


class EndpointSet:
    """The endpoints and outcomes of a scenario, in evaluation order.

    A scenario's ``[endpoints]`` and ``[outcomes]`` give one set,
    ``scenario.endpoints``: outcomes are endpoints of type ``"outcome"``.

    Attributes
    ----------
    endpoints : tuple of Endpoint
        In evaluation order (every endpoint after those it refers to).
    columns : tuple of str
        Output column names, in declaration order (endpoints, then outcomes); a
        time-to-event endpoint gives ``NAME`` and ``NAME_event``.
    kinds : dict of str to str
        Column -> "binary", "continuous", "time" or "event_flag".
    outputs_needed : tuple of str
        Model outputs the endpoints read.
    n_uniforms : int
        Uniform random numbers needed per patient (one per hazard or bernoulli endpoint).
    uniform_columns : dict of str to int
        Hazard or bernoulli endpoint -> column of ``uniforms`` it uses (declaration order).
    report_at : dict of str to tuple of float
        Time column -> days at which summaries report Kaplan-Meier survival.
    """

    def __init__(self, endpoints, output_names=(), declared_order=None):
        self.endpoints = tuple(endpoints)
        by_name = {e.name: e for e in self.endpoints}
        order = declared_order or [e.name for e in self.endpoints]
        self.declared = tuple(by_name[n] for n in order if n in by_name)
        self.columns = tuple(c for e in self.declared for c in e.columns)
        kinds = {}
        for e in self.declared:
            kinds[e.name] = e.kind
            if e.kind == "time":
                kinds[f"{e.name}_event"] = "event_flag"
            if e.type == "outcome":
                kinds[f"{e.name}_cause"] = "cause"
        self.kinds = kinds
        #: Outcome -> the names of its causes: ``NAME_cause`` = k for the k-th (1-based), 0 censored.
        self.causes = {e.name: e.events for e in self.declared if e.type == "outcome"}
        needed = []
        for e in self.declared:
            for o in sorted(e.outputs_used(output_names)):
                if o not in needed:
                    needed.append(o)
        self.outputs_needed = tuple(needed)
        hazards = [e.name for e in self.declared if e.type in ("hazard", "bernoulli")]
        self.uniform_columns = {name: i for i, name in enumerate(hazards)}
        self.n_uniforms = len(hazards)
        #: The random-number stream of each column of ``uniforms``: from the endpoint's name.
        self.uniform_streams = tuple(stream_id(name) for name in hazards)
        self.report_at = {e.name: e.report_at for e in self.declared if e.kind == "time"}
        self.descriptions = {e.name: e.description for e in self.declared}
        self._output_names = tuple(output_names)
        self.path = None  # the scenario file that declares them, named by errors in compute()
        #: Model parameters the expressions read -> the model's value (used where ``compute`` is
        #: not given each patient's; the cohort runner always gives them).
        self.parameter_defaults = {}

    def __len__(self) -> int:
        return len(self.endpoints)

    def __getitem__(self, name) -> Endpoint:
        for e in self.endpoints:
            if e.name == name:
                return e
        raise KeyError(f"'{name}' is not an endpoint{suggestion(name, [e.name for e in self.endpoints])}")

    def __repr__(self) -> str:
        return f"EndpointSet({', '.join(f'{e.name}:{e.type}' for e in self.declared)})"

    def _error(self, e: Endpoint, err: Exception) -> CarKineticsError:
        """An error in computing endpoint ``e``, naming the scenario file and the endpoint's key."""
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        if self.path is not None:
            return ScenarioError(self.path, [FileProblem(e.key, f"could not be computed: {message}")])
        return EndpointError(f"{e.key}: could not be computed: {message}")

    def compute(self, times, outputs, uniforms, horizon, patient=None) -> dict:
        """Compute every endpoint for a chunk of patients.

        Parameters
        ----------
        times : array_like, shape (T,)
            Output times (day), strictly increasing.
        outputs : mapping of str to ndarray, shape (n, T)
            Model outputs on the grid, patients in rows; at least
            :attr:`outputs_needed`. A row with NaN in an output an endpoint uses
            gives NaN for that endpoint (failed simulation).
        uniforms : ndarray, shape (n, n_uniforms)
            Uniform random numbers in (0, 1), column ``uniform_columns[name]`` for
            hazard endpoint ``name``.
        horizon : float
            End of follow-up (day): the default end of every window and the
            censoring time of time-to-event endpoints without their own ``end``.
        patient : mapping of str to ndarray, shape (n,), optional
            Patient-level names the expressions may read: model parameters (default: the
            model's values, :attr:`parameter_defaults`), covariates, variables,
            ``arm.NAME`` (1 in that arm), ``fired.EVENT`` (1 if the event fired) and
            ``time_of.EVENT`` (its time; NaN if it did not fire).

        Returns
        -------
        dict of str to ndarray, shape (n,)
            One float array per column of :attr:`columns`.
        """
        times = np.asarray(times, dtype=float)
        missing = [o for o in self.outputs_needed if o not in outputs]
        if missing:
            raise KeyError(f"outputs {missing} are needed by the endpoints but were not given")
        arrays = {o: np.asarray(outputs[o], dtype=float) for o in self.outputs_needed}
        n = next(iter(arrays.values())).shape[0] if arrays else np.shape(uniforms)[0]
        for o, a in arrays.items():
            if a.shape != (n, times.size):
                raise ValueError(f"output '{o}' has shape {a.shape}, expected ({n}, {times.size})")
        u = np.zeros((n, 0)) if uniforms is None else np.asarray(uniforms, dtype=float)
        if u.ndim == 1 and self.n_uniforms == 1:
            u = u[:, None]
        if u.ndim != 2 or u.shape[0] != n or u.shape[1] < self.n_uniforms:
            raise ValueError(f"uniforms has shape {u.shape}, the endpoints need ({n}, {self.n_uniforms})")
        horizon = min(float(horizon), float(times[-1]))
        given = {**self.parameter_defaults, **(patient or {})}
        state = _State(times, arrays, u, horizon, n, self.uniform_columns,
                       patient={k: np.broadcast_to(np.asarray(v, dtype=float), (n,)) for k, v in given.items()})
        row_nan = {}

        def nan_rows(o):
            """Rows of output ``o`` with a NaN: where its maximum over the whole grid is NaN
            (a Cmax over the whole grid has it already; else one pass, no n x T temporary)."""
            if o not in row_nan:
                peak = state.cache.get(("cmax", o, None, float(times[-1]), None))
                a = arrays[o]
                row_nan[o] = (np.isnan(peak[0]) if peak is not None else
                              np.isnan(a.max(axis=1)) if a.shape[1] else np.zeros(n, dtype=bool))
            return row_nan[o]

        with np.errstate(all="ignore"):
            for e in self.endpoints:
                try:
                    cols = _COMPUTE[e.type](e, state)
                except (CarKineticsError, ArithmeticError, ValueError, TypeError, KeyError) as err:
                    raise self._error(e, err) from None
                # a failed patient (NaN anywhere in an output used) or a NaN endpoint used in
                # the expression gives NaN, even where where() or a window would hide it
                bad = np.zeros(n, dtype=bool)
                for o in e.outputs_used(arrays):
                    bad |= nan_rows(o)
                if e.expr is not None:
                    for name in ex.names(e.expr):
                        if name in state.results:
                            bad |= np.isnan(state.results[name])
                        elif name in state.patient:
                            bad |= np.isnan(state.patient[name])
                if e.among is not None:
                    bad |= ~_among(e.among, {**state.patient, **state.results})
                if "origin" in e.options:  # time counted from a protocol event; NaN where it did not fire
                    origin = state.patient[f"time_of.{e.options['origin']}"]  # or the event came first
                    cols[e.name] = cols[e.name] - origin
                    state.origins[e.name] = origin
                    bad |= np.isnan(origin) | (cols[e.name] < 0)
                cols = {c: np.where(bad, np.nan, v) for c, v in cols.items()}
                for c, v in cols.items():
                    state.results[c] = np.asarray(v, dtype=float)
        return {c: state.results[c] for c in self.columns}


@dataclass
class _State:
    times: np.ndarray
    outputs: dict
    uniforms: np.ndarray
    horizon: float
    n: int
    uniform_columns: dict
    results: dict = field(default_factory=dict)
    eval_times: dict = field(default_factory=dict)  # binary endpoint -> time it refers to
    cache: dict = field(default_factory=dict)  # shared intermediate results (Cmax for Tmax)
    patient: dict = field(default_factory=dict)  # patient-level names: covariates, fired.EVENT, ...
    origins: dict = field(default_factory=dict)  # endpoint counted from an event -> that event's day

    def day(self, name):
        """The day of a time-to-event endpoint's time (its value plus its origin's day, if it has one)."""
        return self.results[name] + self.origins[name] if name in self.origins else self.results[name]

    def end(self, e: Endpoint) -> float:
        end = e.times.get("end")
        return self.horizon if end is None else min(float(end), self.horizon)

    def start(self, e: Endpoint, key="start"):
        value = e.times.get(key)
        if value is None:
            return float(self.times[0])
        if isinstance(value, str):  # a reference event: its time where it happened, else NaN
            return np.where(self.results[f"{value}_event"] == 1.0, self.day(value), np.nan)
        return float(value)

    def env_at(self, expr: ex.Expr, at, method) -> dict:
        env = {"t": np.broadcast_to(np.asarray(at, dtype=float), (self.n,))}
        for name in ex.names(expr):
            if name in self.outputs:
                env[name] = interpolate(self.times, self.outputs[name], at, method)
            elif name in self.results:
                env[name] = self.results[name]
            elif name in self.patient:
                env[name] = self.patient[name]
        return env

    def env_grid(self, expr: ex.Expr) -> dict:
        env = {"t": self.times[None, :]}
        for name in ex.names(expr):
            if name in self.outputs:
                env[name] = self.outputs[name]
            elif name in self.results:
                env[name] = self.results[name][:, None]
            elif name in self.patient:
                env[name] = self.patient[name][:, None]
        return env


def _among(expr, results):
    env = {n: results[n] for n in ex.names(expr)}
    value = np.asarray(ex.evaluate(expr, env))
    nan = np.zeros(np.shape(value), dtype=bool)
    for v in env.values():
        nan = nan | np.isnan(v)
    truth = value if value.dtype == bool else (value != 0)
    return truth & ~nan


def _c_cmax(e, s):
    args = (e.output, e.times.get("start"), s.end(e), e.options.get("lloq"))
    if ("cmax",) + args not in s.cache:  # Cmax and Tmax of the same output share one pass
        s.cache[("cmax",) + args] = cmax(s.times, s.outputs[e.output], *args[1:])
    peak, tpeak = s.cache[("cmax",) + args]
    return {e.name: peak if e.type == "cmax" else tpeak}


def _c_cmin(e, s):
    args = (e.output, e.times.get("start"), s.end(e))
    if ("cmin",) + args not in s.cache:
        s.cache[("cmin",) + args] = cmin(s.times, s.outputs[e.output], *args[1:])
    low, tlow = s.cache[("cmin",) + args]
    return {e.name: low if e.type == "cmin" else tlow}


def _c_auc(e, s):
    return {e.name: auc(s.times, s.outputs[e.output], e.times.get("start"), s.end(e),
                        e.options.get("method", "lin-up/log-down"), e.options.get("lloq"))}


def _c_tlast(e, s):
    return {e.name: tlast(s.times, s.outputs[e.output], e.options.get("lloq"), e.times.get("start"), s.end(e))}


def _c_level(e, s):
    v = interpolate(s.times, s.outputs[e.output], e.times["day"], e.options.get("interpolation", "lin-up/log-down"))
    lloq = e.options.get("lloq")
    if lloq is not None:
        v = np.where(v < lloq, 0.0 if e.options.get("below_lloq", "zero") == "zero" else np.nan, v)
    return {e.name: v}


def _c_first(e, s):
    direction = "above" if e.type == "first_above" else "below"
    time, event = first_crossing(s.times, s.outputs[e.output], e.options["threshold"], direction,
                                 s.start(e, "after"), s.end(e), e.options.get("interpolation", "lin-up/log-down"))
    return {e.name: time, f"{e.name}_event": event}


def _c_time_beyond(e, s):
    direction = "above" if e.type == "time_above" else "below"
    return {e.name: time_beyond(s.times, s.outputs[e.output], e.options["threshold"], direction,
                                e.times.get("start"), s.end(e), e.options.get("interpolation", "lin-up/log-down"))}


def _c_at(e, s):
    if "at" in e.times:
        at = s.start(e, "at")
    elif "day" in e.times:
        at = np.full(s.n, float(e.times["day"]))
    else:  # an expression of other endpoints only: no time to read outputs at
        at = None
    method = e.options.get("interpolation", "lin-up/log-down")
    env = s.env_at(e.expr, np.nan if at is None else at, method)
    value = np.broadcast_to(np.asarray(ex.evaluate(e.expr, env), dtype=float), (s.n,))
    bad = np.zeros(s.n, dtype=bool) if at is None else np.isnan(at)
    for name in ex.names(e.expr):
        if name != "t":
            bad = bad | np.isnan(env[name])
    if at is not None:
        s.eval_times[e.name] = at
    if "otherwise" in e.options and at is not None:  # the reference event did not happen: a value, not NaN
        missing_at = np.isnan(at)
        value = np.where(missing_at, e.options["otherwise"], value)
        bad = bad & ~missing_at
    if e.type == "bernoulli":  # probability -> a yes/no draw with this endpoint's uniform
        wrong = ~bad & ~((value >= -1e-12) & (value <= 1 + 1e-12))  # NaN too, where its inputs are numbers
        if wrong.any():
            i = int(np.argmax(wrong))
            raise ValueError(f"the probability is {value[i]:g} for patient {i} of the chunk ({int(wrong.sum())} "
                             f"patients outside [0, 1]); write it so it stays in [0, 1], e.g. min(1, ...)")
        value = (s.uniforms[:, s.uniform_columns[e.name]] < np.clip(value, 0.0, 1.0)).astype(float)
    return {e.name: np.where(bad, np.nan, value)}


def _c_hazard(e, s):
    env = s.env_grid(e.expr)
    h = np.broadcast_to(np.asarray(ex.evaluate(e.expr, env), dtype=float), (s.n, s.times.size))
    inputs_nan = np.zeros(s.n, dtype=bool)  # failed patients: NaN outputs give a NaN hazard (and endpoint)
    for name in ex.names(e.expr):
        if name != "t":
            v = np.asarray(env[name], dtype=float)
            inputs_nan |= np.isnan(v).any(axis=1) if v.ndim == 2 else np.isnan(v).reshape(-1)
    # a rate >= 0; outputs that are 0 in exact arithmetic may come out of the solver at -1e-15
    wrong = ~inputs_nan & ~(h >= -1e-9).all(axis=1)
    if wrong.any():
        i = int(np.argmax(wrong))
        j = int(np.argmax(~(h[i] >= -1e-9)))
        raise ValueError(f"the hazard is {h[i, j]:g} at t = {s.times[j]:g} for patient {i} of the chunk "
                         f"({int(wrong.sum())} patients with a negative or NaN hazard); a hazard is a rate >= 0")
    u = s.uniforms[:, s.uniform_columns[e.name]]
    time, event = hazard_event_times(s.times, h, u, s.start(e), s.end(e))
    return {e.name: time, f"{e.name}_event": event}


def _c_event_time(e, s):
    name = e.options["event"]
    fired = s.patient[f"fired.{name}"] == 1.0
    time = np.where(fired, s.patient[f"time_of.{name}"], s.horizon)
    return {e.name: time, f"{e.name}_event": fired.astype(float)}


def _c_outcome(e, s):
    event_time = np.full(s.n, np.inf)
    censor_time = np.full(s.n, s.horizon)
    known = np.zeros(s.n, dtype=bool)
    cause = np.zeros(s.n)
    for code, comp in enumerate(e.events, start=1):
        t = s.day(comp)
        if f"{comp}_event" in s.results:  # time-to-event component
            flag = s.results[f"{comp}_event"]
            t_ev = np.where(flag == 1.0, t, np.inf)
            t_cens = np.where(flag == 0.0, t, np.inf)
        else:  # binary component: an event at the time it was assessed when it is 1
            flag = t
            t_ev = np.where(flag == 1.0, s.eval_times[comp], np.inf)
            t_cens = np.full(s.n, np.inf)
        ok = ~np.isnan(flag) & ~(np.isnan(t_ev) & (flag == 1.0))
        cause = np.where(ok & (t_ev < event_time), float(code), cause)  # the first cause wins ties
        event_time = np.where(ok, np.minimum(event_time, t_ev), event_time)
        censor_time = np.where(ok, np.minimum(censor_time, t_cens), censor_time)
        known |= ok
    event = event_time <= censor_time
    time = np.where(event, event_time, censor_time)
    return {e.name: np.where(known, time, np.nan), f"{e.name}_event": np.where(known, event.astype(float), np.nan),
            f"{e.name}_cause": np.where(known, np.where(event, cause, 0.0), np.nan)}


def _terminal(e, s):
    """The terminal-phase fit of an endpoint's output and window (shared by half_life and auc_inf)."""
    key = ("terminal", e.output, e.times.get("start"), s.end(e), e.options.get("lloq"))
    if key not in s.cache:
        s.cache[key] = lambda_z(s.times, s.outputs[e.output], e.times.get("start"), s.end(e), e.options.get("lloq"))
    return s.cache[key]


def _c_half_life(e, s):
    return {e.name: _terminal(e, s).half_life}


def _c_auc_inf(e, s):
    return {e.name: auc_inf(s.times, s.outputs[e.output], e.times.get("start"), s.end(e),
                            e.options.get("method", "lin-up/log-down"), e.options.get("lloq"),
                            lambda_z=_terminal(e, s).lambda_z)}


_COMPUTE = {
    "cmax": _c_cmax, "tmax": _c_cmax, "cmin": _c_cmin, "tmin": _c_cmin, "auc": _c_auc, "tlast": _c_tlast,
    "level": _c_level, "first_above": _c_first, "first_below": _c_first, "time_above": _c_time_beyond,
    "time_below": _c_time_beyond, "condition": _c_at, "value": _c_at, "bernoulli": _c_at, "hazard": _c_hazard,
    "event_time": _c_event_time, "outcome": _c_outcome,
}
_COMPUTE.update({"half_life": _c_half_life, "auc_inf": _c_auc_inf})
