"""The safe arithmetic language of model and scenario files.

Expressions are parsed with :mod:`ast` and checked against a whitelist; nothing in
a file is ever executed as Python. A parsed :class:`Expr` can be

* emitted as numba source for the generated kernel (:func:`to_source`),
* evaluated on numpy arrays for per-patient quantities (:func:`evaluate`),
* differentiated symbolically for the Jacobian of the stiff solver (:func:`diff`),
* compiled to a small stack program that the kernel interprets for event
  conditions (:func:`to_program`).

Grammar: numbers; names (states, parameters, expressions, covariates, ``t``);
``+ - * / **``; unary ``-``; comparisons ``< <= > >= == !=`` (chained too);
``and``, ``or``, ``not``; ``a if c else b``; and the functions in
:data:`FUNCTIONS`.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

import numpy as np

from carkinetics.errors import ExpressionError, printable, suggestion

# name -> (min args, max args or None for any, description)
FUNCTIONS: dict[str, tuple[int, int | None, str]] = {
    "exp": (1, 1, "exp(x)"),
    "log": (1, 1, "natural logarithm"),
    "log10": (1, 1, "base-10 logarithm"),
    "log1p": (1, 1, "log(1 + x)"),
    "expm1": (1, 1, "exp(x) - 1"),
    "sqrt": (1, 1, "square root"),
    "abs": (1, 1, "absolute value"),
    "tanh": (1, 1, "hyperbolic tangent"),
    "sin": (1, 1, "sine (radians)"),
    "cos": (1, 1, "cosine (radians)"),
    "min": (2, None, "smallest argument"),
    "max": (2, None, "largest argument"),
    "where": (3, 3, "where(condition, value_if_true, value_if_false)"),
    "hill": (3, 3, "hill(x, half_saturation, coefficient) = x^n / (K^n + x^n), 0 for x <= 0"),
    "clip": (3, 3, "clip(x, lower, upper)"),
    "step": (1, 1, "1 if x > 0 else 0"),
    "pow": (2, 2, "pow(x, y) = x ** y"),
}

CONSTANTS = {"pi": math.pi}

#: Longest expression text accepted (characters, after stripping blanks).
MAX_EXPRESSION_LENGTH = 10_000
#: Deepest nesting accepted (parentheses, and levels of the parsed tree). Real model
#: expressions are a few levels deep; the limit keeps the parser, the recursive tree
#: walks and the generated kernel (Python allows 200 nested parentheses) in bounds.
MAX_DEPTH = 100

#: Longest name (state, parameter, expression, output, covariate) accepted.
MAX_NAME_LENGTH = 64
#: Prefixes of the dotted names a scenario's endpoints may read (``fired.transplant``: 1 if
#: the event named transplant fired; ``time_of.transplant``: when; ``arm.hsct``: 1 in that
#: arm). Any other attribute access is refused; model files know no dotted names.
NAMESPACES = ("fired", "time_of", "arm")


def name_problem(name) -> str | None:
    """Why ``name`` cannot name a state, parameter, expression or output, or None if it can.

    Names enter generated code (mangled with a prefix), so they are ASCII identifiers
    only: letters, digits and ``_``, starting with a letter, at most
    :data:`MAX_NAME_LENGTH` characters, not a Python keyword. ASCII only, because
    Python folds look-alike letters together (``ℌ`` is read as ``H``).
    """
    import keyword

    if not isinstance(name, str) or not name:
        return f"expected a non-empty name, got {printable(repr(name), 200)}"
    shown = printable(name, 40)
    if len(name) > MAX_NAME_LENGTH:
        return f"'{shown}' is {len(name):,} characters long; names may have at most {MAX_NAME_LENGTH}"
    if not name.isascii():
        bad = next(c for c in name if not c.isascii())
        return (f"'{shown}' contains the non-ASCII character {ascii(bad)}; names may use ASCII letters, "
                f"digits and _ only")
    if name.startswith("_"):
        return f"'{shown}': names must not start with '_'"
    if not name.isidentifier() or keyword.iskeyword(name):
        return f"'{shown}' is not a valid name (letters, digits and _, not starting with a digit)"
    return None


_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_CMPOPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


# ----------------------------------------------------------------------------------------
# Tree
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """A node of a parsed expression.

    ``op`` is one of ``num``, ``var``, ``+ - * / **``, ``neg``, a comparison
    operator, ``and``, ``or``, ``not``, ``where`` or a function name from
    :data:`FUNCTIONS`. ``value`` holds the number of a ``num`` node or the name of
    a ``var`` node.
    """

    op: str
    args: tuple = ()
    value: object = None

    # -- convenient constructors, with light simplification ---------------------------
    @staticmethod
    def num(v: float) -> "Expr":
        """A number literal."""
        return Expr("num", (), float(v))

    @staticmethod
    def var(name: str) -> "Expr":
        """A reference to the name ``name``."""
        return Expr("var", (), name)

    def is_num(self, v: float | None = None) -> bool:
        """Whether this is a number literal (equal to ``v``, when given)."""
        return self.op == "num" and (v is None or self.value == v)

    @property
    def is_bool(self) -> bool:
        """Whether this is a comparison or a logical operation."""
        return self.op in _CMP_NAMES or self.op in ("and", "or", "not")

    def __str__(self) -> str:  # readable form, used in messages and generated comments
        return to_text(self)


_CMP_NAMES = set(_CMPOPS.values())


def names(expr: Expr) -> set[str]:
    """All variable names referenced by ``expr``."""
    out: set[str] = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if node.op == "var":
            out.add(node.value)
        stack.extend(node.args)
    return out


def calls(expr: Expr) -> set[str]:
    """All function names called in ``expr``."""
    out: set[str] = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if node.op in FUNCTIONS:
            out.add(node.op)
        stack.extend(node.args)
    return out


# ----------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------


def parse(text, known_names=None) -> Expr:
    """Parse an expression string (or a number) into an :class:`Expr`.

    Parameters
    ----------
    text : str or float
        The expression, e.g. ``"rho * E * A / (K + A)"``.
    known_names : collection of str, optional
        When given, every name must be one of these (or ``t``/``pi``); an unknown
        name raises with a close-match suggestion.

    Raises
    ------
    ExpressionError
        If the text is not valid Python syntax, uses a construct outside the
        whitelist, calls an unknown function or names an unknown variable.
    """
    if isinstance(text, bool):
        raise ExpressionError(f"expected a number or an expression string, got {text!r}")
    if isinstance(text, (int, float)):
        return Expr.num(_finite(text, None))
    if not isinstance(text, str):
        raise ExpressionError(f"expected a number or an expression string, got {type(text).__name__} "
                              f"{printable(repr(text), 200)}")
    source = text.strip()
    if not source:
        raise ExpressionError("empty expression")
    _check_text(source)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as err:
        col = f" at column {err.offset}" if err.offset else ""
        raise ExpressionError(f"cannot parse '{printable(source, 200)}'{col}: {err.msg}") from None
    except ValueError as err:
        raise ExpressionError(f"cannot parse '{printable(source, 200)}': {err}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"'{printable(source, 200)}' is nested too deeply to parse "
                              f"(at most {MAX_DEPTH} levels)") from None
    _check_depth(tree.body, source, lambda n: ast.iter_child_nodes(n), lambda n: isinstance(n, ast.expr))
    expr = _convert(tree.body, source)
    _check_depth(expr, source, lambda n: n.args, lambda n: True)
    if known_names is not None:
        allowed = set(known_names) | {"t"} | set(CONSTANTS)
        for name in sorted(names(expr)):
            if name not in allowed:
                raise ExpressionError(f"unknown name '{name}' in '{source}'{suggestion(name, allowed)}")
    return expr


def _convert(node, source: str) -> Expr:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExpressionError(f"only numbers are allowed as constants, got {printable(repr(node.value), 200)} "
                                  f"in '{printable(source, 200)}'")
        return Expr.num(_finite(node.value, source))
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return Expr.num(CONSTANTS[node.id])
        if node.id in FUNCTIONS:
            raise ExpressionError(f"'{node.id}' is a function and must be called, in '{source}'")
        return Expr.var(node.id)
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id in NAMESPACES):
        return Expr.var(f"{node.value.id}.{node.attr}")
    if isinstance(node, ast.BinOp):
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise ExpressionError(
                f"operator '{type(node.op).__name__}' is not allowed in '{source}' (allowed: + - * / **)"
            )
        return Expr(op, (_num(_convert(node.left, source)), _num(_convert(node.right, source))))
    if isinstance(node, ast.UnaryOp):
        operand = _convert(node.operand, source)
        if isinstance(node.op, ast.USub):
            return Expr("neg", (_num(operand),))
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return Expr("not", (operand,))
        raise ExpressionError(f"unary operator '{type(node.op).__name__}' is not allowed in '{source}'")
    if isinstance(node, ast.Compare):
        parts = []
        left = _convert(node.left, source)
        for op_node, right_node in zip(node.ops, node.comparators):
            op = _CMPOPS.get(type(op_node))
            if op is None:
                raise ExpressionError(f"comparison '{type(op_node).__name__}' is not allowed in '{source}'")
            right = _convert(right_node, source)
            parts.append(Expr(op, (_num(left), _num(right))))
            left = right
        out = parts[0]
        for part in parts[1:]:
            out = Expr("and", (out, part))
        return out
    if isinstance(node, ast.BoolOp):
        op = "and" if isinstance(node.op, ast.And) else "or"
        values = [_convert(v, source) for v in node.values]
        out = values[0]
        for v in values[1:]:
            out = Expr(op, (out, v))
        return out
    if isinstance(node, ast.IfExp):
        return Expr("where", (_convert(node.test, source), _num(_convert(node.body, source)),
                              _num(_convert(node.orelse, source))))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise ExpressionError(f"only plain function calls are allowed in '{source}'")
        fname = node.func.id
        if fname not in FUNCTIONS:
            raise ExpressionError(
                f"unknown function '{fname}' in '{source}'{suggestion(fname, FUNCTIONS)}; "
                f"allowed: {', '.join(sorted(FUNCTIONS))}"
            )
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise ExpressionError(f"'{fname}' takes positional arguments only, in '{source}'")
        lo, hi, _ = FUNCTIONS[fname]
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise ExpressionError(f"'{fname}' takes {want} arguments, got {n}, in '{source}'")
        args = [_convert(a, source) for a in node.args]
        if fname == "where":
            return Expr("where", (args[0], _num(args[1]), _num(args[2])))
        if fname == "pow":
            return Expr("**", (_num(args[0]), _num(args[1])))
        if fname in ("min", "max"):  # n-ary -> nested binary
            out = _num(args[0])
            for a in args[1:]:
                out = Expr(fname, (out, _num(a)))
            return out
        return Expr(fname, tuple(_num(a) for a in args))
    kind = type(node).__name__
    hint = {
        "Attribute": "attribute access",
        "Subscript": "indexing",
        "Lambda": "lambda",
        "JoinedStr": "strings",
        "List": "lists",
        "Tuple": "tuples",
        "Dict": "dicts",
        "NamedExpr": "assignment",
    }.get(kind, kind)
    raise ExpressionError(f"{hint} is not allowed in expressions, in '{source}'")


def _finite(value, source) -> float:
    """A number literal as a finite float, or ExpressionError (too large, inf, nan)."""
    where = f" in '{printable(source, 200)}'" if source is not None else ""
    try:
        v = float(value)
    except OverflowError:
        exponent = int(abs(value).bit_length() * math.log10(2.0))
        raise ExpressionError(f"number of about 1e{exponent} is too large (the largest is about 1.8e308)"
                              f"{where}") from None
    if not math.isfinite(v):
        raise ExpressionError(f"expected a finite number, got {printable(repr(value), 200)}{where}")
    return v


def _check_text(source: str) -> None:
    """Length, characters and parenthesis depth, before the parser may recurse on them."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression is {len(source):,} characters long; at most "
                              f"{MAX_EXPRESSION_LENGTH:,} are allowed ('{printable(source, 60)}')")
    for i, ch in enumerate(source):
        if not ch.isascii():
            raise ExpressionError(f"character {ascii(ch)} at column {i + 1} of '{printable(source, 200)}' is not "
                                  f"ASCII; names, numbers and operators must be ASCII")
    level = 0
    for ch in source:
        if ch in "([{":
            level += 1
            if level > MAX_DEPTH:
                raise ExpressionError(f"'{printable(source, 200)}' nests parentheses more than {MAX_DEPTH} "
                                      f"levels deep")
        elif ch in ")]}":
            level -= 1


def _check_depth(root, source, children, counts) -> None:
    """ExpressionError if the tree at ``root`` is more than MAX_DEPTH levels deep (no recursion)."""
    stack = [(root, 1 if counts(root) else 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(f"'{printable(source, 200)}' is nested more than {MAX_DEPTH} levels deep; "
                                  f"split it into intermediate expressions")
        for child in children(node):
            stack.append((child, depth + (1 if counts(child) else 0)))


def _num(e: Expr) -> Expr:
    """Use a boolean as a number (1.0/0.0)."""
    if e.is_bool:
        return Expr("where", (e, Expr.num(1.0), Expr.num(0.0)))
    return e


# ----------------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------------

_PREC = {"or": 1, "and": 2, "not": 3, "<": 4, "<=": 4, ">": 4, ">=": 4, "==": 4, "!=": 4,
         "+": 5, "-": 5, "*": 6, "/": 6, "neg": 7, "**": 8}


def to_text(e: Expr) -> str:
    """Readable expression text (re-parseable)."""
    return _text(e, 0)


def _text(e: Expr, parent: int) -> str:
    op = e.op
    if op == "num":
        return _fmt_num(e.value)
    if op == "var":
        return e.value
    if op in FUNCTIONS or op == "where":
        return f"{op}({', '.join(_text(a, 0) for a in e.args)})"
    prec = _PREC[op]
    if op == "neg":
        s = "-" + _text(e.args[0], prec)
    elif op == "not":
        s = "not " + _text(e.args[0], prec)
    elif op == "**":
        s = f"{_text(e.args[0], prec + 1)} ** {_text(e.args[1], prec)}"
    else:
        s = f"{_text(e.args[0], prec)} {op} {_text(e.args[1], prec + 1)}"
    return f"({s})" if prec <= parent else s


def _fmt_num(v: float) -> str:
    if math.isinf(v):
        return "(1e999)" if v > 0 else "(-1e999)"
    if math.isnan(v):
        raise ExpressionError("NaN constant in expression")
    r = repr(float(v))
    return r


# ----------------------------------------------------------------------------------------
# Numba source
# ----------------------------------------------------------------------------------------


def to_source(e: Expr, rename, vector_math: bool = False) -> str:
    """Python/numba source for ``e``; ``rename(name)`` maps variable names to locals.

    Helpers ``_hill``, ``_hill_dx``, ``_hill_dk``, ``_hill_dn`` must exist in the
    namespace. With ``vector_math`` (the lane kernel), ``exp``, ``log``, non-integer
    powers and ``hill`` call the engine's branch-free ``_vexp``, ``_vlog``, ``_vpow``
    and ``_vhill*`` so that loops over patients vectorise; otherwise :mod:`math`.
    """
    return _src(e, rename, vector_math)


_INT_POWERS = {2.0: "({x} * {x})", 3.0: "({x} * {x} * {x})", 4.0: "(({x} * {x}) * ({x} * {x}))",
               -1.0: "(1.0 / {x})", -2.0: "(1.0 / ({x} * {x}))"}
# Small powers repeat their base; a longer base is written once, with ** (else nested
# squares, ((x**2)**2)**2..., would double the code at every level).
_REPEAT_LIMIT = 1000


def _src(e: Expr, rn, vm=False) -> str:
    op = e.op
    a = e.args
    if vm is not False:
        rn = _VM(rn) if not isinstance(rn, _VM) else rn
    if op == "num":
        return _num_src(e.value)
    if op == "var":
        return rn(e.value)
    if op in ("+", "-", "*", "/"):
        return f"({_src(a[0], rn)} {op} {_src(a[1], rn)})"
    if op == "**":
        if a[1].op == "num" and a[1].value in _INT_POWERS:
            base = _src(a[0], rn)
            if len(base) <= _REPEAT_LIMIT or a[1].value == -1.0:
                return _INT_POWERS[a[1].value].format(x=base)
            return f"({base} ** {_num_src(a[1].value)})"
        if a[1].is_num(0.5):
            return f"math.sqrt({_src(a[0], rn)})"
        if a[1].is_num(1.0):
            return _src(a[0], rn)
        if isinstance(rn, _VM):
            return f"_vpow({_src(a[0], rn)}, {_src(a[1], rn)})"
        return f"({_src(a[0], rn)} ** {_src(a[1], rn)})"
    if op == "neg":
        return f"(-{_src(a[0], rn)})"
    if op in _CMP_NAMES:
        return f"({_src(a[0], rn)} {op} {_src(a[1], rn)})"
    if op in ("and", "or"):
        return f"({_bool_src(a[0], rn)} {op} {_bool_src(a[1], rn)})"
    if op == "not":
        return f"(not {_bool_src(a[0], rn)})"
    if op == "where":
        return f"({_src(a[1], rn)} if {_bool_src(a[0], rn)} else {_src(a[2], rn)})"
    if isinstance(rn, _VM) and op in ("exp", "log"):
        return f"_v{op}({_src(a[0], rn)})"
    if isinstance(rn, _VM) and op == "log10":
        return f"(_vlog({_src(a[0], rn)}) / 2.302585092994046)"
    if op in ("exp", "log", "log10", "log1p", "expm1", "sqrt", "tanh", "sin", "cos"):
        return f"math.{op}({_src(a[0], rn)})"
    if op == "abs":
        return f"abs({_src(a[0], rn)})"
    if op in ("min", "max"):
        return f"{op}({_src(a[0], rn)}, {_src(a[1], rn)})"
    if op == "clip":
        return f"min(max({_src(a[0], rn)}, {_src(a[1], rn)}), {_src(a[2], rn)})"
    if op == "step":
        return f"(1.0 if {_src(a[0], rn)} > 0.0 else 0.0)"
    if op in ("hill", "_hill_dx", "_hill_dk", "_hill_dn"):
        name = "_hill" if op == "hill" else op
        if isinstance(rn, _VM):
            name = "_v" + name[1:]  # the inlined, branch-free versions for the lanes
        return f"{name}({', '.join(_src(x, rn) for x in a)})"
    raise AssertionError(f"unhandled op {op}")


class _VM:
    """A rename function marked for vector math (see to_source)."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, name):
        return self.fn(name)


def _bool_src(e: Expr, rn) -> str:
    if e.is_bool:
        return _src(e, rn)
    return f"({_src(e, rn)} != 0.0)"


def _num_src(v: float) -> str:
    # parsed literals are finite; inf and nan can only come from folding constants in diff()
    if math.isinf(v):
        return "math.inf" if v > 0 else "(-math.inf)"
    if math.isnan(v):
        return "math.nan"
    return repr(float(v))


# ----------------------------------------------------------------------------------------
# numpy evaluation
# ----------------------------------------------------------------------------------------


def evaluate(e: Expr, env) -> np.ndarray | float:
    """Evaluate ``e`` with numpy, names looked up in the mapping ``env``.

    Values in ``env`` may be scalars or arrays that broadcast together. Booleans
    come back as boolean arrays.
    """
    with np.errstate(all="ignore"):
        return _ev(e, env)


def _ev(e: Expr, env):
    op = e.op
    a = e.args
    if op == "num":
        return e.value
    if op == "var":
        try:
            return env[e.value]
        except KeyError:
            raise ExpressionError(f"unknown name '{e.value}'{suggestion(e.value, list(env))}") from None
    if op == "+":
        return _ev(a[0], env) + _ev(a[1], env)
    if op == "-":
        return _ev(a[0], env) - _ev(a[1], env)
    if op == "*":
        return _ev(a[0], env) * _ev(a[1], env)
    if op == "/":
        return np.divide(_ev(a[0], env), _ev(a[1], env))
    if op == "**":
        return np.power(np.asarray(_ev(a[0], env), dtype=float), _ev(a[1], env))
    if op == "neg":
        return -_ev(a[0], env)
    if op in _CMP_NAMES:
        x, y = _ev(a[0], env), _ev(a[1], env)
        return {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
                "==": np.equal, "!=": np.not_equal}[op](x, y)
    if op == "and":
        return np.logical_and(_truth(_ev(a[0], env)), _truth(_ev(a[1], env)))
    if op == "or":
        return np.logical_or(_truth(_ev(a[0], env)), _truth(_ev(a[1], env)))
    if op == "not":
        return np.logical_not(_truth(_ev(a[0], env)))
    if op == "where":
        return np.where(_truth(_ev(a[0], env)), _ev(a[1], env), _ev(a[2], env))
    if op in ("exp", "log", "log10", "log1p", "expm1", "sqrt", "tanh", "abs", "sin", "cos"):
        return getattr(np, op)(_ev(a[0], env))
    if op == "min":
        return np.minimum(_ev(a[0], env), _ev(a[1], env))
    if op == "max":
        return np.maximum(_ev(a[0], env), _ev(a[1], env))
    if op == "clip":
        return np.minimum(np.maximum(_ev(a[0], env), _ev(a[1], env)), _ev(a[2], env))
    if op == "step":
        return np.where(_ev(a[0], env) > 0, 1.0, 0.0)
    if op == "hill":
        return hill(_ev(a[0], env), _ev(a[1], env), _ev(a[2], env))
    if op in ("_hill_dx", "_hill_dk", "_hill_dn"):
        x, k, n = (np.asarray(_ev(v, env), dtype=float) for v in a)
        h = hill(x, k, n)
        if op == "_hill_dx":
            return np.where(x > 0, n * h * (1 - h) / np.where(x > 0, x, 1.0), 0.0)
        if op == "_hill_dk":
            return -n * h * (1 - h) / k
        return np.where(x > 0, h * (1 - h) * np.log(np.where(x > 0, x, 1.0) / k), 0.0)
    raise AssertionError(f"unhandled op {op}")


def _truth(v):
    v = np.asarray(v)
    return v if v.dtype == bool else v != 0


def hill(x, k, n):
    """Hill function ``x**n / (k**n + x**n)`` for ``x > 0``, else 0 (numpy)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(all="ignore"):
        safe = np.where(x > 0, x, 1.0)
        out = 1.0 / (1.0 + np.power(k / safe, n))
    return np.where(x > 0, out, 0.0)


# ----------------------------------------------------------------------------------------
# Symbolic differentiation
# ----------------------------------------------------------------------------------------

ZERO = Expr.num(0.0)
ONE = Expr.num(1.0)


def add(x: Expr, y: Expr) -> Expr:
    """``x + y``, simplified when either is a number."""
    if x.is_num(0.0):
        return y
    if y.is_num(0.0):
        return x
    if x.op == "num" and y.op == "num":
        return Expr.num(x.value + y.value)
    return Expr("+", (x, y))


def sub(x: Expr, y: Expr) -> Expr:
    """``x - y``, simplified when either is a number."""
    if y.is_num(0.0):
        return x
    if x.is_num(0.0):
        return neg(y)
    if x.op == "num" and y.op == "num":
        return Expr.num(x.value - y.value)
    return Expr("-", (x, y))


def mul(x: Expr, y: Expr) -> Expr:
    """``x * y``, simplified when either is a number."""
    if x.is_num(0.0) or y.is_num(0.0):
        return ZERO
    if x.is_num(1.0):
        return y
    if y.is_num(1.0):
        return x
    if x.op == "num" and y.op == "num":
        return Expr.num(x.value * y.value)
    return Expr("*", (x, y))


def div(x: Expr, y: Expr) -> Expr:
    """``x / y``, simplified when ``x`` is 0 or ``y`` is 1."""
    if x.is_num(0.0):
        return ZERO
    if y.is_num(1.0):
        return x
    return Expr("/", (x, y))


def neg(x: Expr) -> Expr:
    """``-x``, simplified when ``x`` is a number."""
    if x.op == "num":
        return Expr.num(-x.value)
    if x.op == "neg":
        return x.args[0]
    return Expr("neg", (x,))


def where(c: Expr, x: Expr, y: Expr) -> Expr:
    """``where(c, x, y)``: ``x`` where ``c`` holds, else ``y`` (just ``x`` when both branches are equal)."""
    if x == y:
        return x
    return Expr("where", (c, x, y))


def substitute(e: Expr, mapping) -> Expr:
    """``e`` with each name in ``mapping`` replaced by its expression, simplified.

    Sums, products and quotients with 0 or 1 and operations on two numbers are folded
    (:func:`add`, :func:`mul`, ...), comparisons of two numbers become 1 or 0 and
    ``where`` with a number as its condition becomes the branch it selects; every fold
    is exact in floating point.

    Parameters
    ----------
    e : Expr
    mapping : mapping of str to Expr

    Returns
    -------
    Expr
    """
    if e.op == "var":
        return mapping.get(e.value, e)
    if not e.args:
        return e
    args = tuple(substitute(a, mapping) for a in e.args)
    folds = {"+": add, "-": sub, "*": mul, "/": div}
    if e.op in folds:
        return folds[e.op](*args)
    if e.op == "neg":
        return neg(args[0])
    if e.op == "where":
        if args[0].op == "num":
            return args[1] if args[0].value != 0.0 else args[2]
        return where(*args)
    if e.op in _CMP_NAMES and all(a.op == "num" for a in args):
        return Expr.num(1.0 if _truth(_ev(Expr(e.op, args), {})) else 0.0)
    return Expr(e.op, args, e.value)


def diff(e: Expr, var: str, dvar=None) -> Expr:
    """Symbolic derivative of ``e`` with respect to the variable ``var``.

    ``dvar(name)`` returns the derivative of another variable ``name`` with respect
    to ``var`` as an :class:`Expr` (chain rule through intermediate expressions);
    by default other names are treated as constants.
    """
    if dvar is None:
        def dvar(name):
            """1 for ``var`` itself, 0 for any other name."""
            return ONE if name == var else ZERO
    return _d(e, dvar)


def _d(e: Expr, dv) -> Expr:
    op = e.op
    a = e.args
    if op == "num" or e.is_bool or op == "step":
        return ZERO
    if op == "var":
        return dv(e.value)
    if op == "+":
        return add(_d(a[0], dv), _d(a[1], dv))
    if op == "-":
        return sub(_d(a[0], dv), _d(a[1], dv))
    if op == "neg":
        return neg(_d(a[0], dv))
    if op == "*":
        return add(mul(_d(a[0], dv), a[1]), mul(a[0], _d(a[1], dv)))
    if op == "/":
        du, dw = _d(a[0], dv), _d(a[1], dv)
        if dw.is_num(0.0):
            return div(du, a[1])
        return div(sub(mul(du, a[1]), mul(a[0], dw)), mul(a[1], a[1]))
    if op == "**":
        base, ex = a
        db, de = _d(base, dv), _d(ex, dv)
        if de.is_num(0.0):
            if db.is_num(0.0):
                return ZERO
            if ex.op == "num":
                if ex.value == 1.0:
                    return db
                power = base if ex.value == 2.0 else Expr("**", (base, Expr.num(ex.value - 1.0)))
                return mul(mul(Expr.num(ex.value), power), db)
            return mul(mul(ex, Expr("**", (base, sub(ex, ONE)))), db)
        # general: b^e * (de*log(b) + e*db/b)
        return mul(e, add(mul(de, Expr("log", (base,))), div(mul(ex, db), base)))
    if op == "where":
        return where(a[0], _d(a[1], dv), _d(a[2], dv))
    du = _d(a[0], dv) if a else ZERO
    if op == "exp":
        return mul(e, du)
    if op == "expm1":
        return mul(Expr("exp", (a[0],)), du)
    if op == "log":
        return div(du, a[0])
    if op == "log1p":
        return div(du, add(ONE, a[0]))
    if op == "log10":
        return div(du, mul(a[0], Expr.num(math.log(10.0))))
    if op == "sqrt":
        return div(du, mul(Expr.num(2.0), e))
    if op == "tanh":
        return mul(sub(ONE, mul(e, e)), du)
    if op == "sin":
        return mul(Expr("cos", (a[0],)), du)
    if op == "cos":
        return neg(mul(Expr("sin", (a[0],)), du))
    if op == "abs":
        if du.is_num(0.0):
            return ZERO
        return mul(where(Expr(">=", (a[0], ZERO)), ONE, Expr.num(-1.0)), du)
    if op in ("min", "max"):
        d0, d1 = du, _d(a[1], dv)
        cmp = "<=" if op == "min" else ">="
        return where(Expr(cmp, (a[0], a[1])), d0, d1)
    if op == "clip":
        x, lo, hi = a
        dlo, dhi = _d(lo, dv), _d(hi, dv)
        return where(Expr("<=", (x, lo)), dlo, where(Expr(">=", (x, hi)), dhi, du))
    if op == "hill":
        x, k, n = a
        dk, dn = _d(k, dv), _d(n, dv)
        out = mul(Expr("_hill_dx", a), du)
        out = add(out, mul(Expr("_hill_dk", a), dk))
        out = add(out, mul(Expr("_hill_dn", a), dn))
        return out
    if op in ("_hill_dx", "_hill_dk", "_hill_dn"):
        raise ExpressionError("second derivatives of hill() are not supported")
    raise AssertionError(f"no derivative rule for {op}")


# ----------------------------------------------------------------------------------------
# Stack programs for in-kernel conditions
# ----------------------------------------------------------------------------------------

# opcodes of condition programs; codegen writes them into every kernel as OP_<NAME> constants (interpreted in engine/events.py)
OPCODES = {
    "const": 0, "state": 1, "param": 2, "time": 3,
    "+": 4, "-": 5, "*": 6, "/": 7, "**": 8, "neg": 9,
    "<": 10, "<=": 11, ">": 12, ">=": 13, "==": 14, "!=": 15,
    "and": 16, "or": 17, "not": 18,
    "exp": 19, "log": 20, "log10": 21, "sqrt": 22, "abs": 23, "min": 24, "max": 25,
    "where": 26, "hill": 27, "clip": 28, "step": 29, "tanh": 30, "log1p": 31, "expm1": 32,
    "sin": 33, "cos": 34,
}


def to_program(e: Expr, slot) -> tuple[list[tuple[int, int]], list[float], int]:
    """Compile ``e`` to a stack program.

    ``slot(name)`` returns ``("state", index)``, ``("param", index)``,
    ``("time", 0)`` or ``("expr", Expr)`` (an intermediate expression to inline).

    Returns (instructions as (opcode, argument) pairs, constants, max stack depth).
    """
    code: list[tuple[int, int]] = []
    consts: list[float] = []

    def emit(node: Expr) -> int:
        """Append the instructions of ``node``; return the stack depth this subtree needs."""
        op = node.op
        if op == "num":
            consts.append(node.value)
            code.append((OPCODES["const"], len(consts) - 1))
            return 1
        if op == "var":
            kind, ref = slot(node.value)
            if kind == "expr":
                return emit(ref)
            code.append((OPCODES[kind], int(ref)))
            return 1
        depth = 0
        for i, arg in enumerate(node.args):
            depth = max(depth, i + emit(arg))
        code.append((OPCODES[op], len(node.args)))
        return max(depth, 1)

    try:
        depth = emit(e)
    except RecursionError:  # intermediate expressions are inlined: chains of them add up
        raise ExpressionError(f"condition '{printable(to_text(e), 200)}' is nested too deeply once its "
                              f"intermediate expressions are inlined") from None
    return code, consts, depth
