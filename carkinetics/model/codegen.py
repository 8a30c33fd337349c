"""Generate, cache and import the numba kernel of a model.

For each model the generator writes one Python module: the model's right-hand
side, analytic Jacobian, initial values and outputs as numba functions, followed by
the engine: the constants of :mod:`carkinetics.engine.constants` and the engine's
source files (``ENGINE_FILES``, see :mod:`carkinetics.engine`). The module is stored
in the kernel cache under a name that hashes its full text together with the numba,
numpy and Python versions, so a changed model, a changed engine or an upgraded numba
can never pick up a stale compilation; numba caches the machine code next to it.

The cache lives in ``$CARKINETICS_CACHE_DIR`` or, by default,
``~/.cache/carkinetics/kernels``. Deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import os
import sys
import tempfile
import threading
from pathlib import Path

from carkinetics.engine.constants import kernel_source as constants_source
from carkinetics.errors import ModelFileError
from carkinetics.model import expressions as ex

_ENGINE_DIR = Path(__file__).resolve().parent.parent / "engine"
#: Source files of the engine, in the order the kernel module concatenates them (after the
#: model's functions and the constants of :mod:`carkinetics.engine.constants`).
ENGINE_FILES = ("jit.py", "vmath.py", "linalg.py", "system.py", "tsit5.py", "rodas4.py", "roots.py", "jumps.py",
                "events.py", "lanes.py", "driver.py")
# numba options of the model's functions: like the engine's leaf functions (engine/jit.py),
# they neither allocate nor return arrays, so they borrow their arrays without reference counting
_MODEL_JIT = 'cache=True, error_model="numpy", nogil=True, _nrt=False'
_ENGINE_MARK = "# ---------------------------------------------------------------------- engine"
_lock = threading.Lock()
_loaded: dict[str, object] = {}


def cache_dir() -> Path:
    """Folder of generated kernels (created when needed)."""
    env = os.environ.get("CARKINETICS_CACHE_DIR")
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "carkinetics"
    return base / "kernels"


_OPCODE_WORDS = {"+": "ADD", "-": "SUB", "*": "MUL", "/": "DIV", "**": "POW", "<": "LT", "<=": "LE", ">": "GT",
                 ">=": "GE", "==": "EQ", "!=": "NE"}


def _opcode_source() -> str:
    """``OP_<NAME> = code`` for every opcode of the condition programs (:data:`expressions.OPCODES`)."""
    lines = ["# opcodes of condition programs (carkinetics.model.expressions.OPCODES)"]
    for name, code in ex.OPCODES.items():
        lines.append(f"OP_{_OPCODE_WORDS.get(name, name.upper())} = {code!r}  # {name}")
    return "\n".join(lines) + "\n"


def engine_source() -> str:
    """The engine part of every kernel module.

    Returns
    -------
    str
        The constants (:func:`carkinetics.engine.constants.kernel_source`), then the text
        of each file of ``ENGINE_FILES`` in order, each after a comment naming it.
    """
    parts = [f"# {'-' * 70} engine/constants.py (the assignments generated from its tables)\n\n"
             f"{constants_source()}\n{_opcode_source()}"]
    for name in ENGINE_FILES:
        text = (_ENGINE_DIR / name).read_text(encoding="utf-8")
        parts.append(f"# {'-' * 70} engine/{name}\n\n{text}")
    return "\n\n".join(parts)


# ----------------------------------------------------------------------------------------
# source generation
# ----------------------------------------------------------------------------------------


# ---- what of a model may enter generated code ---------------------------------------------
# Only validated names (ASCII identifiers, see expressions.name_problem), always mangled
# with a prefix (s_, p_, x_) or used in comments after a check, numbers written by repr(),
# and free text (model name, file name) through _inert. Nothing else from a model file.

_TEXT_LIMIT = 120  # characters of free text kept in a comment


def _inert(text) -> str:
    """Free text for a comment of generated code: the one way text enters a kernel.

    ``ascii()`` escapes quotes, backslashes, every line break Python or an editor knows
    (``\\n \\r \\x0b \\x0c \\x1c-\\x1e \\x85 \\u2028 \\u2029``), NUL and all non-ASCII; the
    result is one line of printable ASCII in quotes, inert in a comment.
    """
    text = str(text)
    if len(text) > _TEXT_LIMIT:
        text = text[:_TEXT_LIMIT] + "..."
    out = ascii(text)
    if not (out.isascii() and out.isprintable()):  # cannot happen: ascii() escapes all of it
        raise RuntimeError(f"unsafe text for generated code: {out!r}")
    return out


def _slug(text, limit: int = 40) -> str:
    """ASCII letters, digits and _ only (file and module names)."""
    out = "".join(c if (c.isascii() and c.isalnum()) else "_" for c in str(text))[:limit].strip("_")
    return out or "model"


def _check_names(model) -> None:
    """ModelFileError unless every name that enters generated code is a valid identifier.

    load_model already checks them; this guards models built in other ways.
    """
    problems = []
    for section, names in (("states", model.state_names), ("parameters", model.parameter_names),
                           ("expressions", list(model.expressions)), ("outputs", model.output_names)):
        for n in names:
            why = ex.name_problem(n)
            if why is None and n in _RESERVED:
                why = f"'{n}' is reserved"
            if why is not None:
                problems.append((f"{section}.{_inert(n)[1:-1]}", why))
    if problems:
        from carkinetics.errors import FileProblem

        raise ModelFileError(model.path, [FileProblem(k, m) for k, m in problems])


_RESERVED = {"t", "pi"} | set(ex.FUNCTIONS)


def _mangle(model):
    _check_names(model)
    states = {n: f"s_{n}" for n in model.state_names}
    params = {n: f"p_{n}" for n in model.parameter_names}
    exprs = {n: f"x_{n}" for n in model.expressions}

    def rename(name):
        if name == "t":
            return "t"
        if name in states:
            return states[name]
        if name in params:
            return params[name]
        if name in exprs:
            return exprs[name]
        raise KeyError(name)

    return rename


def _dependencies(model):
    """For each intermediate expression: the states and whether ``t`` it depends on."""
    state_set = set(model.state_names)
    deps: dict[str, set] = {}
    for name, expr in model.expressions.items():
        d = set()
        for n in ex.names(expr):
            if n in state_set or n == "t":
                d.add(n)
            elif n in deps:
                d |= deps[n]
        deps[name] = d
    return deps


def _needed(exprs_needed, model):
    """Close a set of expression names under their dependencies (in model order)."""
    need = set(exprs_needed)
    for name in reversed(list(model.expressions)):
        if name in need:
            need |= {n for n in ex.names(model.expressions[name]) if n in model.expressions}
    return [n for n in model.expressions if n in need]


def _preamble(model, rename, used_names, indent="    "):
    lines = []
    for i, n in enumerate(model.state_names):
        if n in used_names:
            lines.append(f"{indent}{rename(n)} = y[{i}]")
    for i, n in enumerate(model.parameter_names):
        if n in used_names:
            lines.append(f"{indent}{rename(n)} = p[{i}]")
    return lines


class _Lines:
    """Lines of generated code; ``keys`` maps a line's index to the key of the model file it
    comes from (to name that key when the line does not compile)."""

    def __init__(self, lines):
        self.lines = list(lines)
        self.keys: dict[int, str] = {}

    def add(self, *lines) -> None:
        self.lines.extend(lines)

    def put(self, line: str, key: str) -> None:
        self.keys[len(self.lines)] = key
        self.lines.append(line)


def _names_of(exprs) -> set:
    out = set()
    for e in exprs:
        out |= ex.names(e)
    return out


def _names_read(model, exprs) -> set:
    """The names ``exprs`` read, directly or through the model's expressions they need."""
    return _names_of(list(exprs) + [model.expressions[n] for n in _needed(_names_of(exprs), model)])


def _state_indices(model, exprs) -> list[int]:
    """Indices of the states that ``exprs`` read, directly or through the model's expressions."""
    used = _names_read(model, exprs)
    return [i for i, n in enumerate(model.state_names) if n in used]


def _scalar_source(e, rename) -> str:
    """Per-patient scalar code: libm, helpers not inlined."""
    return ex.to_source(e, rename, vector_math=False)


def _lane_source(e, rename) -> str:
    """Code of the lanes: branch-free inlined math that vectorises."""
    return ex.to_source(e, rename, vector_math=True)


def _header(model, uses_t) -> list[str]:
    return [
        f"# carkinetics kernel for model {_inert(model.name)}, file {_inert(model.path.name)}.",
        "# Generated code: do not edit. Regenerated whenever the model, the engine or numba changes.",
        f"# model sha256: {_inert(model.content_hash)[1:-1]}",
        "import math",
        "",
        "import numpy as np",
        "from numba import njit, types",
        "from numba.extending import intrinsic",
        "",
        f"N_STATES = {model.n_states}",
        f"N_PARAMS = {model.n_parameters}",
        f"N_OUTPUTS = {model.n_outputs}",
        f"NONAUTONOMOUS = {bool(uses_t)}",
        "",
    ]


def _write_rhs(out, model, rename, rhs_exprs, used) -> None:
    out.add(f'@njit({_MODEL_JIT}, inline="always")',
            "def model_rhs(t, y, p, dy):")
    out.add(*_preamble(model, rename, used))
    for n in rhs_exprs:
        out.put(f"    {rename(n)} = {_scalar_source(model.expressions[n], rename)}", f"expressions.{n}")
    for i, n in enumerate(model.state_names):
        out.put(f"    dy[{i}] = {_scalar_source(model.odes[n], rename)}  # d{n}/dt", f"odes.{n}")
    out.add("")


def _write_rhs_lanes(out, model, rename, deps, rhs_exprs, used) -> None:
    """The same right-hand side for many patients at once: one loop over lanes (columns of
    y and p, into out[s]) that LLVM vectorises."""
    def rename_lanes(name):
        return "t_lane" if name == "t" else rename(name)

    out.add(f'@njit({_MODEL_JIT}, inline="always")',
            "def model_rhs_lanes(t, y, p, out, s, nl):",
            "    for lane in range(nl):")
    if "t" in used or any("t" in deps[n] for n in rhs_exprs):
        out.add("        t_lane = t[lane]")
    for i, n in enumerate(model.state_names):
        if n in used:
            out.add(f"        {rename(n)} = y[{i}, lane]")
    for i, n in enumerate(model.parameter_names):
        if n in used:
            out.add(f"        {rename(n)} = p[{i}, lane]")
    for n in rhs_exprs:
        out.put(f"        {rename(n)} = {_lane_source(model.expressions[n], rename_lanes)}", f"expressions.{n}")
    for i, n in enumerate(model.state_names):
        out.put(f"        out[s, {i}, lane] = {_lane_source(model.odes[n], rename_lanes)}  # d{n}/dt", f"odes.{n}")
    out.add("")


def _write_jacobian(out, model, rename, deps, rhs_exprs, used, uses_t) -> None:
    """The Jacobian: chain rule through intermediate expressions.

    The derivative of expression n with respect to state (or t) wrt is the local jd<k>,
    numbered: in the trees it is the variable "<jd k>", which no name of a model can spell,
    so neither a parameter nor another expression/state pair can ever reach it.
    """
    state_names = model.state_names
    jac_lines = []
    dnames: dict[tuple[str, str], str] = {}  # (expression, wrt) -> placeholder variable
    jac_locals: dict[str, str] = {}  # placeholder variable -> local in the generated code

    def dvar_for(wrt):
        def dvar(name):
            if name == wrt:
                return ex.ONE
            if name in model.expressions and (name, wrt) in dnames:
                return ex.Expr.var(dnames[(name, wrt)])
            return ex.ZERO
        return dvar

    jac_used = set(used)
    for n in rhs_exprs:
        for wrt in [s for s in state_names if s in deps[n]] + (["t"] if "t" in deps[n] else []):
            d = ex.diff(model.expressions[n], wrt, dvar_for(wrt))
            if d.is_num(0.0):
                continue
            k = len(jac_lines)
            placeholder = f"<jd {k}>"
            dnames[(n, wrt)] = placeholder
            jac_locals[placeholder] = f"jd{k}"
            jac_lines.append((f"jd{k}", d, n, wrt))
            jac_used |= ex.names(d)
    entries = []
    for i, n in enumerate(state_names):
        for j, wrt in enumerate(state_names):
            d = ex.diff(model.odes[n], wrt, dvar_for(wrt))
            if not d.is_num(0.0):
                entries.append((f"jac[{i}, {j}]", d, n))
                jac_used |= ex.names(d)
        if uses_t:
            d = ex.diff(model.odes[n], "t", dvar_for("t"))
            if not d.is_num(0.0):
                entries.append((f"dfdt[{i}]", d, n))
                jac_used |= ex.names(d)

    def rename_jac(name):
        if name in jac_locals:
            return jac_locals[name]
        return rename(name)

    out.add(f'@njit({_MODEL_JIT})',
            "def model_jac(t, y, p, jac, dfdt):",
            "    # entries not assigned here are zero (the caller clears jac and dfdt)")
    out.add(*_preamble(model, rename, jac_used))
    for n in rhs_exprs:
        out.put(f"    {rename(n)} = {_scalar_source(model.expressions[n], rename)}", f"expressions.{n}")
    for local, d, n, wrt in jac_lines:
        out.put(f"    {local} = {_scalar_source(d, rename_jac)}  # d{n}/d{wrt}", f"expressions.{n}")
    for target, d, n in entries:
        out.put(f"    {target} = {_scalar_source(d, rename_jac)}", f"odes.{n}")
    out.add("    return", "")


def _write_initial(out, model, rename) -> None:
    out.add(f'@njit({_MODEL_JIT})', "def model_initial(p, y):")
    out.add(*_preamble(model, rename, _names_of([s.initial for s in model.states])))
    for i, s in enumerate(model.states):
        out.put(f"    y[{i}] = {_scalar_source(s.initial, rename)}  # {s.name}", f"states.{s.name}.initial")
    out.add("")


def _write_outputs(out, model, rename) -> None:
    out.add(f'@njit({_MODEL_JIT})', "def model_outputs(t, y, p, out):")
    out_exprs = _needed({n for o in model.outputs for n in ex.names(o.expression)}, model)
    out_used = _names_of([o.expression for o in model.outputs] + [model.expressions[n] for n in out_exprs])
    out.add(*_preamble(model, rename, out_used))
    for n in out_exprs:
        out.put(f"    {rename(n)} = {_scalar_source(model.expressions[n], rename)}", f"expressions.{n}")
    for i, o in enumerate(model.outputs):
        out.put(f"    out[{i}] = {_scalar_source(o.expression, rename)}  # {o.name}", f"outputs.{o.name}.expression")
    if not model.outputs:
        out.add("    return")
    out.add("")


def _int_array(values) -> str:
    return f"np.array({[int(v) for v in values] or [0]!r}, dtype=np.int64)"


def _float_array(values) -> str:
    return f"np.array({[float(v) for v in values] or [0.0]!r}, dtype=np.float64)"


def _write_dynamics(out, model, ks, rename) -> None:
    """Root functions, model events and jump propensities of a model with events or stochastic
    states (:func:`carkinetics.model.model_events.kernel_system`); empty stubs otherwise, which
    the engine never calls (its code for them is removed at compile time: ``N_ROOTS == 0``)."""
    events = list(model.events.values()) if ks is not None else []
    roots = ks.roots if ks is not None else ()
    stoch = ks.stochastic if ks is not None else ()
    clocks = ks.event_clock if ks is not None else ()
    out.add("# model events, stochastic states and their root functions (carkinetics.model.model_events)",
            f"N_ROOTS = {len(roots)}", f"N_MODEL_EVENTS = {len(events)}", f"N_STOCH = {len(stoch)}",
            f"AFTER_TERMINAL_HOLD = {model.after_terminal == 'hold'}",
            f"ROOT_KIND = {_int_array(r[0] for r in roots)}", f"ROOT_DIR = {_int_array(r[1] for r in roots)}",
            f"ROOT_REF = {_int_array(r[2] for r in roots)}",
            f"EVENT_REPEAT = {_int_array(e.repeat for e in events)}",
            f"EVENT_TERMINAL = {_int_array(e.terminal for e in events)}",
            f"EVENT_CLOCK_STATE = {_int_array(c[0] for c in clocks)}",
            f"EVENT_CLOCK_PARAM = {_int_array(c[1] for c in clocks)}",
            f"STOCH_STATE = {_int_array(q[0] for q in stoch)}", f"STOCH_BELOW = {_float_array(q[1] for q in stoch)}",
            f"STOCH_MODE = {_int_array(q[2] for q in stoch)}", f"STOCH_CLOCK = {_int_array(q[3] for q in stoch)}",
            f"STOCH_DRAW = {_int_array(q[4] for q in stoch)}")
    # the states each root function reads (root r: ROOT_DEPS[ROOT_DEPS_AT[r]:ROOT_DEPS_AT[r + 1]])
    # and those the propensities read: a root search and the jumps' propensity fits interpolate
    # only these
    root_exprs = [r[3] for r in roots]
    need = _needed(_names_of(root_exprs), model)
    deps = [_state_indices(model, [e]) for e in root_exprs]
    prop_exprs = [e for st in (model.stochastic.values() if ks is not None else []) for e in (st.gain, st.loss)]
    out.add(f"ROOT_DEPS = {_int_array(i for d in deps for i in d)}",
            f"ROOT_DEPS_AT = {_int_array(itertools.accumulate([0] + [len(d) for d in deps]))}",
            f"PROP_STATES = {_int_array(_state_indices(model, prop_exprs))}", "")
    # roots
    out.add(f'@njit({_MODEL_JIT})', "def model_roots(t, y, p, g):")
    out.add(*_preamble(model, rename, _names_read(model, root_exprs)))
    for n in need:
        out.put(f"    {rename(n)} = {_scalar_source(model.expressions[n], rename)}", f"expressions.{n}")
    for r, e in enumerate(root_exprs):
        out.add(f"    g[{r}] = {_scalar_source(e, rename)}")
    out.add("    return", "")
    # actions of model events
    out.add(f'@njit({_MODEL_JIT})', "def model_apply_event(k, t, y, p):",
            "    # action values are evaluated on the state before the event, then applied in order")
    state_index = {n: i for i, n in enumerate(model.state_names)}
    param_index = {n: i for i, n in enumerate(model.parameter_names)}
    for k, event in enumerate(events):
        if not event.actions:
            continue
        values = [a[2] for a in event.actions]
        out.add(f"    if k == {k}:  # {_inert(event.name)}")
        need = _needed(_names_of(values), model)
        out.add(*_preamble(model, rename, _names_of(values + [model.expressions[n] for n in need]), "        "))
        for n in need:
            out.put(f"        {rename(n)} = {_scalar_source(model.expressions[n], rename)}", f"expressions.{n}")
        for a, (kind, target, value) in enumerate(event.actions):
            out.put(f"        v{a} = {_scalar_source(value, rename)}", f"events.{event.name}.{kind}.{target}")
        for a, (kind, target, _value) in enumerate(event.actions):
            if kind == "set_parameter":
                out.add(f"        p[{param_index[target]}] = v{a}")
            else:
                i = state_index[target]
                op = {"add": f"y[{i}] + v{a}", "multiply": f"y[{i}] * v{a}", "set": f"v{a}"}[kind]
                out.add(f"        y[{i}] = {op}")
    out.add("    return", "")
    # jump propensities of stochastic states
    out.add(f'@njit({_MODEL_JIT})', "def model_propensities(q, t, y, p):")
    for q, st in enumerate(model.stochastic.values() if ks is not None else []):
        exprs = [st.gain, st.loss]
        need = _needed(_names_of(exprs), model)
        out.add(f"    if q == {q}:  # {_inert(st.name)}")
        out.add(*_preamble(model, rename, _names_of(exprs + [model.expressions[n] for n in need]), "        "))
        for n in need:
            out.put(f"        {rename(n)} = {_scalar_source(model.expressions[n], rename)}", f"expressions.{n}")
        out.put(f"        return {_scalar_source(st.gain, rename)}, {_scalar_source(st.loss, rename)}",
                f"states.{st.name}.stochastic")
    out.add("    return 0.0, 0.0", "")


def generate_source(model) -> str:
    """Full text of the kernel module of ``model``.

    Parameters
    ----------
    model : Model
        A loaded model.

    Returns
    -------
    str
        The model's functions (``model_rhs``, ``model_rhs_lanes``, ``model_jac``,
        ``model_initial``, ``model_outputs``) and sizes, then the engine.

    Raises
    ------
    ModelFileError
        If a name of the model cannot enter code, or an expression's generated code is
        too deeply nested or too large for Python to compile.
    """
    ks = model.kernel_system()
    if ks is not None:
        model = ks.model
    rename = _mangle(model)
    deps = _dependencies(model)
    uses_t = any("t" in ex.names(e) for e in model.odes.values()) or any(
        "t" in deps[n] for e in model.odes.values() for n in ex.names(e) if n in deps)
    rhs_exprs = _needed({n for e in model.odes.values() for n in ex.names(e)}, model)
    used = _names_of(list(model.odes.values()) + [model.expressions[n] for n in rhs_exprs])
    out = _Lines(_header(model, uses_t))
    _write_rhs(out, model, rename, rhs_exprs, used)
    _write_rhs_lanes(out, model, rename, deps, rhs_exprs, used)
    _write_jacobian(out, model, rename, deps, rhs_exprs, used, uses_t)
    _write_initial(out, model, rename)
    _write_outputs(out, model, rename)
    _write_dynamics(out, model, ks, rename)
    out.add(_ENGINE_MARK)
    head = "\n".join(out.lines)
    _check_generated(model, head, out.lines, out.keys)
    return f"{head}\n\n{engine_source()}"


def _check_generated(model, head: str, lines, keys) -> None:
    """The generated part of a kernel must be plain ASCII lines that Python can compile.

    Anything else is a bug (RuntimeError), except expressions whose generated code is
    nested too deeply (their derivatives grow) or too large for Python: a ModelFileError
    naming the key of each.
    """
    if not head.isascii() or any(not line.isprintable() for line in lines):
        raise RuntimeError(f"generated kernel of {model.path} contains unsafe characters")
    try:
        compile(head, "<carkinetics kernel>", "exec", dont_inherit=True)
        return
    except (SyntaxError, RecursionError, MemoryError, ValueError) as err:
        first = err
    problems = {}
    for i, key in keys.items():
        try:
            compile(lines[i].strip(), "<carkinetics kernel line>", "exec", dont_inherit=True)
        except (SyntaxError, RecursionError, MemoryError, ValueError) as err:
            why = getattr(err, "msg", None) or type(err).__name__
            problems.setdefault(key, f"the generated code of this expression or of its derivative is too "
                                     f"deeply nested or too large for Python to compile ({why}); split it "
                                     f"into intermediate [expressions]")
    if not problems:
        raise RuntimeError(f"generated kernel of {model.path} does not compile: {first}") from first
    from carkinetics.errors import FileProblem

    raise ModelFileError(model.path, [FileProblem(k, m) for k, m in problems.items()])


def rhs_function_source(model, name: str = "rhs", signature: str = "t, y, p, dy") -> str:
    """Source of a function writing the right-hand side into ``dy``.

    The same code as the kernel's ``model_rhs``, without a decorator: peers in the
    benchmarks wrap it (a numba ``cfunc`` for numbalsoda, whose order is
    ``"t, y, dy, p"``); ``y``, ``p`` and ``dy`` may be arrays or C pointers.
    """
    rename = _mangle(model)
    rhs_exprs = _needed({n for e in model.odes.values() for n in ex.names(e)}, model)
    used = set()
    for e in list(model.odes.values()) + [model.expressions[n] for n in rhs_exprs]:
        used |= ex.names(e)
    if sorted(a.strip() for a in signature.split(",")) != ["dy", "p", "t", "y"]:
        raise ValueError(f"signature must name t, y, p and dy, got {signature!r}")
    if not (name.isascii() and name.isidentifier()):
        raise ValueError(f"function name must be an ASCII identifier, got {name!r}")
    lines = [f"def {name}({signature}):"]
    lines.extend(_preamble(model, rename, used))
    for n in rhs_exprs:
        lines.append(f"    {rename(n)} = {ex.to_source(model.expressions[n], rename)}")
    for i, n in enumerate(model.state_names):
        lines.append(f"    dy[{i}] = {ex.to_source(model.odes[n], rename)}")
    return "\n".join(lines) + "\n"


def python_rhs_source(model, name: str = "rhs") -> str:
    """Plain-Python right-hand side ``rhs(t, y, p) -> list`` (for peers such as scipy).

    Used by the benchmarks and the Radau cross-check tests: the same expressions as
    the kernel, run by the Python interpreter.
    """
    body = rhs_function_source(model, "_rhs_into")
    return "\n".join([
        "import math", "", _HILL_PY, "", body,
        f"def {name}(t, y, p):",
        f"    dy = [0.0] * {model.n_states}",
        "    _rhs_into(t, y, p, dy)",
        "    return dy", "",
    ])


_HILL_PY = '''def _hill(x, k, n):
    if x <= 0.0:
        return 0.0
    return 1.0 / (1.0 + (k / x) ** n)'''


def python_rhs(model):
    """Compile :func:`python_rhs_source` into a function (no numba)."""
    namespace: dict = {}
    exec(compile(python_rhs_source(model), f"<carkinetics rhs {_slug(model.name)}>", "exec"), namespace)  # noqa: S102
    return namespace["rhs"]


# ----------------------------------------------------------------------------------------
# cache
# ----------------------------------------------------------------------------------------


def kernel_path(model) -> Path:
    import numba
    import numpy

    source = generate_source(model)
    key = "\n".join([source, numba.__version__, numpy.__version__, sys.version])
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir() / f"ck_{_slug(model.name)}_{digest}.py", source


def build_kernel(model):
    """Generate (if needed), import and return the kernel module of ``model``."""
    path, source = kernel_path(model)
    key = str(path)
    with _lock:
        if key in _loaded:
            return _loaded[key]
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != source:
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(source)
            if path.exists():  # another process wrote it meanwhile: keep theirs (same text)
                os.unlink(tmp)
            else:
                os.replace(tmp, path)
        modname = f"_carkinetics_kernel_{path.stem}"
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        spec.loader.exec_module(module)
        _loaded[key] = module
        return module
