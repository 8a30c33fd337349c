"""The safe expression language: whitelist, numba source, numpy, derivatives, programs."""

import math

import numpy as np
import pytest

from carkinetics.model import expressions as ex
from carkinetics.errors import ExpressionError


@pytest.mark.parametrize("text, message", [
    ("__import__('os').system('ls')", "only plain function calls"),
    ("a.b", "attribute access is not allowed"),
    ("x[0]", "indexing is not allowed"),
    ("lambda: 1", "lambda is not allowed"),
    ("open('f')", "unknown function 'open'"),
    ("exq(1)", "did you mean 'exp'"),
    ("'text'", "only numbers are allowed"),
    ("True", "only numbers are allowed"),
    ("a % 2", "operator 'Mod' is not allowed"),
    ("a // 2", "operator 'FloorDiv' is not allowed"),
    ("exp(1, 2)", "'exp' takes 1 arguments, got 2"),
    ("min(1)", "'min' takes at least 2 arguments"),
    ("exp(x=1)", "positional arguments only"),
    ("(x := 2)", "assignment is not allowed"),
    ("1 +", "cannot parse"),
    ("", "empty expression"),
    ("exp", "is a function and must be called"),
])
def test_rejects_everything_outside_the_whitelist(text, message):
    with pytest.raises(ExpressionError, match=message):
        ex.parse(text)


def test_unknown_name_with_suggestion():
    with pytest.raises(ExpressionError, match="did you mean 'effector'"):
        ex.parse("2 * efector", known_names={"effector", "memory"})


def test_nothing_is_executed():
    # a name that would run code if evaluated by Python is just an unknown name here
    e = ex.parse("os + sys")
    assert ex.names(e) == {"os", "sys"}


def _env(rng):
    return {"x": rng.uniform(0.5, 3.0, 50), "y": rng.uniform(0.2, 2.0, 50), "k": rng.uniform(0.5, 2.0, 50)}


EXPRESSIONS = [
    "x * y + 3 / x - y ** 2",
    "exp(-k * x) * log(y + 1)",
    "hill(x, k, 2.5) * y",
    "hill(x, k, y)",
    "min(x, y, k) + max(x, 2 * y)",
    "where(x > y, x ** 3, sqrt(y))",
    "x if x < 1.5 else y * x",
    "clip(x * y, 0.8, 2.0)",
    "log10(x) + log1p(y) + expm1(0.1 * k) + tanh(x - y) + sin(x) * cos(y)",
    "-x / (1 + (y / k) ** 2)",
    "abs(x - y) * k",
    "pow(x, y) + step(x - 1.0)",
]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_numba_source_matches_numpy(text):
    rng = np.random.default_rng(0)
    env = _env(rng)
    expr = ex.parse(text)
    src = ex.to_source(expr, lambda n: n)
    namespace = {"math": math, "_hill": lambda x, k, n: 0.0 if x <= 0 else 1.0 / (1.0 + (k / x) ** n)}
    fn = eval(f"lambda x, y, k: {src}", namespace)  # generated from a whitelisted tree
    expected = ex.evaluate(expr, env)
    got = np.array([fn(a, b, c) for a, b, c in zip(env["x"], env["y"], env["k"])])
    np.testing.assert_allclose(got, expected, rtol=1e-13)


@pytest.mark.parametrize("text", EXPRESSIONS)
@pytest.mark.parametrize("var", ["x", "y", "k"])
def test_derivative_matches_central_differences(text, var):
    rng = np.random.default_rng(1)
    env = _env(rng)
    expr = ex.parse(text)
    d = ex.diff(expr, var)
    analytic = np.broadcast_to(ex.evaluate(d, env), env["x"].shape)
    h = 1e-6 * np.maximum(1.0, np.abs(env[var]))
    up = dict(env, **{var: env[var] + h})
    down = dict(env, **{var: env[var] - h})
    numeric = (ex.evaluate(expr, up) - ex.evaluate(expr, down)) / (2 * h)
    # kinks (where, min, max, clip, abs, step) are only differentiable away from them
    smooth = np.ones_like(numeric, dtype=bool)
    if any(f in text for f in ("where", "min", "max", "clip", "abs", "step", " if ")):
        for other in (up, down):
            smooth &= np.isclose(ex.evaluate(expr, other), ex.evaluate(expr, env) +
                                 (other[var] - env[var]) * analytic, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(analytic[smooth], numeric[smooth], rtol=1e-5, atol=1e-8)


def test_hill_is_zero_for_non_positive_x_and_half_at_k():
    assert ex.hill(0.0, 2.0, 3.0) == 0.0
    assert ex.hill(-1.0, 2.0, 3.0) == 0.0
    assert ex.hill(2.0, 2.0, 3.0) == pytest.approx(0.5)
    assert ex.hill(4.0, 2.0, 1.0) == pytest.approx(4.0 / 6.0)


def test_chained_comparison_and_boolean_logic():
    e = ex.parse("0 < x <= 2 and not y > 1")
    env = {"x": np.array([0.0, 1.0, 2.0, 3.0, 1.0]), "y": np.array([0.0, 0.5, 0.5, 0.5, 2.0])}
    assert list(ex.evaluate(e, env)) == [False, True, True, False, False]


def test_program_matches_numpy():
    texts = ["x * y - k / x > 1.0", "where(x > 1, hill(y, k, 2), log(x)) + min(x, y) * sqrt(k)",
             "not (x < y or k >= 1.5)", "clip(x, 1, 2) ** 2 - tanh(y) + exp(-k) + log10(x) + abs(y - 1)"]
    rng = np.random.default_rng(2)
    env = _env(rng)
    for text in texts:
        expr = ex.parse(text)
        slots = {"x": ("state", 0), "y": ("state", 1), "k": ("param", 0)}
        code, consts, depth = ex.to_program(expr, slots.__getitem__)
        expected = np.asarray(ex.evaluate(expr, env), dtype=float)
        got = np.array([_interpret(code, consts, [a, b], [c]) for a, b, c in
                        zip(env["x"], env["y"], env["k"])])
        np.testing.assert_allclose(got, expected, rtol=1e-13)
        assert depth <= 8


def _interpret(code, consts, y, p):
    """Reference interpreter of stack programs (mirrors the kernel's)."""
    ops = {v: k for k, v in ex.OPCODES.items()}
    stack = []
    for op, arg in code:
        name = ops[op]
        if name == "const":
            stack.append(consts[arg])
        elif name == "state":
            stack.append(y[arg])
        elif name == "param":
            stack.append(p[arg])
        else:
            args = [stack.pop() for _ in range(arg)][::-1]
            node = ex.Expr(name, tuple(ex.Expr.num(a) for a in args))
            stack.append(float(ex.evaluate(node, {})))
    return stack[0]


def test_text_round_trip():
    for text in EXPRESSIONS:
        e = ex.parse(text)
        assert ex.parse(ex.to_text(e)) == e


# ---- limits (issue 12): nothing a file holds may crash the parser or the code generator ------


@pytest.mark.parametrize("text, message", [
    ("x" * 10_001, "10,001 characters long; at most 10,000"),
    ("(" * 101 + "x" + ")" * 101, "nests parentheses more than 100 levels"),
    ("(" * 300 + "x" + ")" * 300, "nests parentheses more than 100 levels"),
    ("-" * 5000 + "x", "nested too deeply to parse"),  # RecursionError inside ast.parse
    ("+".join(["x"] * 3000), "nested too deeply to parse"),
    ("**".join(["x"] * 3000), "nested too deeply to parse"),  # MemoryError inside ast.parse
    ("+".join(["x"] * 101), "nested more than 100 levels deep"),
    ("not " * 500 + "x", "nested more than 100 levels deep"),
    ("min(" + ", ".join(["x"] * 150) + ")", "nested more than 100 levels deep"),  # flat call, nested tree
    (" and ".join(["x"] * 150), "nested more than 100 levels deep"),
])
def test_rejects_overlong_and_deeply_nested_expressions(text, message):
    with pytest.raises(ExpressionError, match=message) as info:
        ex.parse(text)
    assert len(str(info.value)) < 600  # the text is shortened in the message


def test_accepts_nesting_up_to_the_limit():
    e = ex.parse("+".join(["x"] * 99))
    assert ex.names(e) == {"x"}
    assert ex.parse("(" * 99 + "x" + ")" * 99) == ex.Expr.var("x")


@pytest.mark.parametrize("value, message", [
    ("1" + "0" * 400, "number of about 1e400 is too large"),
    ("-1" + "0" * 400, "number of about 1e400 is too large"),
    ("1" + "0" * 5000, "cannot parse"),  # beyond Python's digit limit for integer literals
    (10**400, "number of about 1e400 is too large"),
    ("1e999", "expected a finite number, got inf"),
    ("2 * 1e999", "expected a finite number, got inf"),
    (float("nan"), "expected a finite number, got nan"),
    (float("inf"), "expected a finite number, got inf"),
    (float("-inf"), "expected a finite number, got -inf"),
])
def test_rejects_huge_and_non_finite_numbers(value, message):
    with pytest.raises(ExpressionError, match=message):
        ex.parse(value)


def test_largest_finite_numbers_are_accepted():
    assert ex.parse("1" + "0" * 308).value == 1e308
    assert ex.parse(10**300).value == 1e300


def test_rejects_non_ascii_names():
    # Python folds look-alike letters: 'ℌ' would be read as the name 'H'
    with pytest.raises(ExpressionError, match=r"character '\\u210c' at column 1 .* is not ASCII"):
        ex.parse("ℌ * 2", known_names={"H"})
    assert ex.names(ex.parse("H * 2", known_names={"H"})) == {"H"}


@pytest.mark.parametrize("name, message", [
    ("ℌ", "non-ASCII character '\\\\u210c'"),
    ("x" * 65, "65 characters long; names may have at most 64"),
    ("x" * 10_000, "10,000 characters long"),
    ("if", "not a valid name"),
    ("1a", "not a valid name"),
    ("a b", "not a valid name"),
    ("a\nb", "not a valid name"),
    ("_a", "must not start with '_'"),
    ("", "non-empty name"),
    (5, "non-empty name"),
])
def test_name_problem(name, message):
    why = ex.name_problem(name)
    assert why is not None and why.isprintable()
    assert message.replace("\\\\", "\\") in why


def test_valid_names():
    for name in ["x", "k_ab", "H", "car_t__memory", "x" * 64, "match", "case"]:
        assert ex.name_problem(name) is None


def test_folded_constants_give_valid_source():
    # diff() folds constants; inf - inf is nan, which must still be valid code
    assert ex.to_source(ex.Expr.num(float("nan")), str) == "math.nan"
    assert ex.to_source(ex.Expr.num(float("-inf")), str) == "(-math.inf)"


def test_nested_squares_are_not_repeated_without_bound():
    e = ex.parse("(" * 60 + "x" + "**2)" * 60)
    assert len(ex.to_source(e, str)) < 20_000
    assert len(ex.to_source(ex.diff(e, "x"), str)) < 200_000


def test_program_of_too_deep_inlined_expressions():
    def slot(name):  # a chain of 5000 intermediate expressions, each inlined
        i = int(name[1:])
        if i == 5000:
            return ("state", 0)
        return ("expr", ex.Expr("+", (ex.Expr.var(f"v{i + 1}"), ex.ONE)))

    with pytest.raises(ExpressionError, match="nested too deeply"):
        ex.to_program(ex.Expr.var("v0"), slot)
