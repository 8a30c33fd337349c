"""The constants the numba kernel shares with Python, one table per kind.

Each table lists ``(name, value, description)``. The code generator writes each entry into
the kernel as ``NAME = value  # description`` (:func:`kernel_source`), and the Python side
reads the same tables: status messages (:data:`STATUS_MESSAGES`), counter names, method and
action codes. A constant is added or changed here and nowhere else.
"""

from __future__ import annotations

from typing import NamedTuple


class Constant(NamedTuple):
    """One named integer or float of the kernel.

    Attributes
    ----------
    name : str
        Name in the kernel (an upper-case identifier).
    value : int or float
        Its value.
    description : str
        What it means; for a status code, the message users see.
    """

    name: str
    value: int | float
    description: str


def _table(*rows) -> tuple[Constant, ...]:
    return tuple(Constant(*row) for row in rows)


#: Tuning of the lane engine.
ENGINE = _table(
    ("LANES", 16, "patients integrated side by side per thread (a multiple of the SIMD width)"),
    ("EVENT_MERGE_ULPS", 64.0, "events within this many units of rounding of the current time are applied "
                               "with those due now (more than the 16 of the smallest step allowed, so no "
                               "shorter segment is left)"),
    ("ROOT_TIME_TOL", 1e-12, "a root (triggered event, random event, jump) is located to this relative time"),
    ("RETURN_FRACTION", 0.5, "a continuous stochastic state becomes discrete again at this fraction of its threshold"),
    ("MAX_CASCADE", 16, "rounds of triggered events that the actions of others (or a jump) set off at one time"),
    ("JUMPS_PER_STEP", 64, "births and deaths of small clones fired inside one accepted step at most (the step "
                           "ends at the next one)"),
    ("JUMP_RATE_TOL", 1e-4, "inside a step, a clone's propensity follows a cubic that must match its midpoint "
                            "value to this fraction of its largest value (else the step ends at the jump)"),
)

#: Outcome of a patient's integration; the description is the message users see.
STATUS = _table(
    ("OK", 0, "ok"),
    ("MAX_STEPS", 1, "too many steps (raise SolverOptions.max_steps, or the problem is stiff: use "
                     "method='auto' or 'rodas4')"),
    ("STEP_TOO_SMALL", 2, "step size became too small (the solution may blow up or be discontinuous)"),
    ("NON_FINITE", 3, "a state became infinite or NaN"),
    ("SINGULAR", 4, "the Rosenbrock iteration matrix stayed singular"),
)

#: Life cycle of a population with an extinction threshold (``ext`` arrays: one entry per
#: state plus a last entry counting the extinct states).
LIFE = _table(
    ("NEW", 0, "below its threshold since the start, accumulates inflow from other states"),
    ("ALIVE", 1, "has reached its threshold"),
    ("EXTINCT", 2, "fell below its threshold: exactly zero, derivative held at zero until an event "
                   "raises it to its threshold again"),
)

#: Integration methods (``SolverOptions.method`` names them).
METHODS = _table(
    ("TSIT5", 0, "tsit5"),
    ("RODAS", 1, "rodas4"),
    ("AUTO", 2, "auto"),
)

#: Solver counters per patient; the description is the counter's name in results.
COUNTERS = _table(
    ("C_ACCEPTED", 0, "n_steps"),
    ("C_REJECTED", 1, "n_rejected"),
    ("C_RHS", 2, "n_rhs_evals"),
    ("C_JAC", 3, "n_jac_evals"),
    ("C_LU", 4, "n_lu"),
    ("C_STIFF_SWITCHES", 5, "n_stiff_switches"),
    ("C_STIFF_STEPS", 6, "n_stiff_steps"),
    ("C_JUMPS", 7, "n_jumps"),
    ("N_COUNTERS", 8, "number of counters"),
)

#: Kinds of event actions; the description is the kind's name in a schedule.
ACTIONS = _table(
    ("ACT_ADD", 0, "add"),
    ("ACT_MULTIPLY", 1, "multiply"),
    ("ACT_SET", 2, "set"),
    ("ACT_SET_PARAMETER", 3, "set_parameter"),
)

#: Float fields of a lane's bookkeeping (columns of ``LF``).
LANE_FLOATS = _table(
    ("F_H", 0, "step size for the next attempt"),
    ("F_TEND", 1, "end of the current segment (next event, breakpoint or the last output time)"),
    ("F_LOGFAC", 2, "Tsit5 PI controller memory: 0.04 * log(err of the last accepted step)"),
    ("F_HACC", 3, "RODAS predictive controller memory: last accepted step ..."),
    ("F_ERRACC", 4, "... and its error"),
    ("N_LF", 5, "number of float fields"),
)

#: Integer fields of a lane's bookkeeping (columns of ``LI``).
LANE_INTS = _table(
    ("I_PAT", 0, "patient in this lane (-1: lane idle)"),
    ("I_MODE", 1, "TSIT5 or RODAS"),
    ("I_KOUT", 2, "next output time index"),
    ("I_JE", 3, "next event (index into the lane's event order)"),
    ("I_INIT", 4, "0: ready; 1: needs f(t, y); 2: needs f(t, y) and an initial step size"),
    ("I_REJECT", 5, "the last attempt was rejected"),
    ("I_HIT", 6, "the step being tried ends the segment"),
    ("I_NSTIFF", 7, "consecutive steps flagged stiff by the cheap test"),
    ("I_NNONSTIFF", 8, "consecutive RODAS steps at which TSIT5 would be stable"),
    ("I_NCHECK", 9, "accepted TSIT5 steps since the last Jacobian check"),
    ("I_FIRST_RODAS", 10, "no accepted RODAS step yet in this segment"),
    ("I_JACFRESH", 11, "the Jacobian in the lane's scratch is taken at the lane's (t, y)"),
    ("I_ROOT", 12, "1: the last accepted step stopped at a root (model event, jump); its actions are due"),
    ("I_RNG", 13, "random numbers the patient has drawn so far (the counter of its stream)"),
    ("I_STIFF_WAIT", 14, "steps flagged stiff in a row before the Jacobian decides (doubles after each RODAS "
                         "episode that did not pay, back to STIFF_WAIT0 after one that did)"),
    ("I_EPISODE", 15, "the patient's RODAS steps when its current RODAS episode began"),
    ("N_LI", 16, "number of integer fields"),
)

#: Kinds of root functions (model events and stochastic states, :mod:`carkinetics.model.model_events`).
ROOT_KINDS = _table(
    ("R_TRIGGER", 0, "a triggered model event: its expression crossed zero"),
    ("R_HAZARD", 1, "a random model event: its cumulative hazard reached its Exp(1) draw"),
    ("R_JUMP", 2, "a discrete stochastic state: its cumulative propensity reached its Exp(1) draw (a birth or a death)"),
    ("R_RETURN", 3, "a continuous stochastic state fell to half its threshold: it becomes discrete"),
)

#: Every table, in the order the kernel defines them.
TABLES = (
    ("tuning of the lane engine", ENGINE),
    ("status codes", STATUS),
    ("life cycle of a population with an extinction threshold", LIFE),
    ("methods", METHODS),
    ("counters per patient", COUNTERS),
    ("event action kinds", ACTIONS),
    ("per-lane bookkeeping: float fields (LF)", LANE_FLOATS),
    ("per-lane bookkeeping: integer fields (LI)", LANE_INTS),
    ("kinds of root functions", ROOT_KINDS),
)

#: Fields of the kernel's input (``Problem``), each with what it holds.
PROBLEM_FIELDS = (
    ("t0", "start of integration"),
    ("times", "(n_times,) output times"),
    ("params", "(N, n_params) parameters per patient"),
    ("ev_time", "(N, n_events) event times per patient (breakpoints last)"),
    ("ev_cond", "(n_events,) condition program of each event, -1: none"),
    ("act_start", "(n_events + 1,) first action of each event"),
    ("act_kind", "(n_actions,) ACT_* code of each action"),
    ("act_target", "(n_actions,) state or parameter index of each action"),
    ("act_value", "(N, n_actions) value of each action per patient"),
    ("prog_code", "(n_ops, 2) condition programs: opcode and argument"),
    ("prog_const", "constants of the condition programs"),
    ("prog_start", "(n_programs + 1,) first op of each program"),
    ("prog_cstart", "(n_programs,) first constant of each program"),
    ("thr", "(n_states,) extinction thresholds (0: none)"),
    ("atol", "(n_states,) absolute tolerances"),
    ("rtol", "relative tolerance"),
    ("method", "TSIT5, RODAS or AUTO"),
    ("hmax", "largest step"),
    ("max_steps", "largest number of step attempts per patient"),
    ("state_idx", "indices of the states saved"),
    ("output_idx", "indices of the outputs saved"),
    ("rng_key", "(N,) uint64 key of each patient's random stream"),
)

#: Fields of the kernel's output (``Results``), filled in place.
RESULTS_FIELDS = (
    ("out_states", "(N, n_times, n_saved_states) saved states"),
    ("out_outputs", "(N, n_times, n_saved_outputs) saved outputs"),
    ("status", "(N,) status code per patient"),
    ("counters", "(N, N_COUNTERS) solver counters per patient"),
    ("applied", "(N, n_events) 1 where an event fired"),
    ("final", "(N, n_states) state at the end"),
    ("mev_count", "(N, n_model_events) number of times each model event fired"),
    ("mev_time", "(N, n_model_events) time of its first firing (NaN: never)"),
)

#: Status code -> message.
STATUS_MESSAGES = {c.value: c.description for c in STATUS}

#: Names of the counters, in the order of the kernel's counter array.
COUNTER_NAMES = tuple(c.description for c in COUNTERS if c.name != "N_COUNTERS")

#: Method name (``SolverOptions.method``) -> method code.
METHOD_CODES = {c.description: c.value for c in METHODS}

#: Action kind name -> action code.
ACTION_CODES = {c.description: c.value for c in ACTIONS}

#: The order in which the actions of one event apply: conditioning before grafting.
ACTION_ORDER = ("multiply", "set", "add", "set_parameter")


def _tuple_source(class_name: str, fields, what: str) -> list[str]:
    lines = [f"# {what}: a named tuple of"]
    lines += [f"#   {name}: {doc}" for name, doc in fields]
    lines.append(f"{class_name} = namedtuple({class_name!r}, {[name for name, _ in fields]!r})")
    return lines


def kernel_source() -> str:
    """The kernel's definitions of every constant and of its input and output tuples.

    Returns
    -------
    str
        Python source: ``NAME = value  # description`` per constant, one comment line
        per table, then the ``Problem`` and ``Results`` named tuples.
    """
    lines = ["from collections import namedtuple", ""]
    for title, table in TABLES:
        lines.append(f"# {title}")
        for c in table:
            lines.append(f"{c.name} = {c.value!r}  # {c.description}")
        lines.append("")
    lines += _tuple_source("Problem", PROBLEM_FIELDS, "inputs of run_range")
    lines.append("")
    lines += _tuple_source("Results", RESULTS_FIELDS, "outputs of run_range, filled in place")
    lines.append("")
    return "\n".join(lines) + "\n"
