"""Issue 12: model files never run code.

The kernel generator writes Python source from a model. Only validated ASCII names
(mangled with a prefix), numbers written by ``repr`` and free text escaped by one
quoting function may reach it. These tests put line breaks, quotes, backslashes and
other separators into every text field of a model file and into the file's name, and
check that the result is either a clean ModelFileError or a kernel whose code (its
syntax tree, comments aside) is exactly that of the unmodified model; importing it does
not run anything.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import tomllib

import numpy as np
import pytest
from click.testing import CliRunner

from carkinetics import ModelFileError, SolverOptions, load_model, simulate
from carkinetics.model import codegen
from carkinetics.errors import CarKineticsError
from carkinetics.model.spec import model_from_dict

from conftest import MODELS
from reference import reference_solve, scaled_error

SENTINEL = "ck_pwned_sentinel"
# every character that ends a line for Python, a terminal or an editor, plus quotes,
# backslash and NUL
BREAKS = ["\n", "\r", "\r\n", "'", '"', "\\", "\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c", "\x00"]
BREAK_IDS = [repr(b) for b in BREAKS]


def _payload(brk: str) -> str:
    return (f"tiny{brk}import os; os.system('touch {SENTINEL}'){brk}#{brk}' + __import__('os')"
            f".system('touch {SENTINEL}') + '{brk}\"\"\"{brk}")


def _toml_string(text: str) -> str:
    # JSON string escapes (\n \r \" \\ \f \uXXXX) are valid TOML basic-string escapes
    return json.dumps(text, ensure_ascii=True)


def _ast_of(source: str) -> ast.Module:
    return ast.parse(compile(source, "<kernel>", "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True))


def assert_inert(source: str, clean_source: str) -> None:
    """``source`` compiles, no statement mentions the sentinel, and its code equals the clean one."""
    tree = _ast_of(source)
    assert SENTINEL not in ast.unparse(tree)  # unparse drops comments: the sentinel is in none of the code
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            assert {a.name.split(".")[0] for a in node.names} <= {"math", "numpy", "numba", "types", "intrinsic",
                                                                "njit"} | _TEMPLATE_IMPORTS
        elif isinstance(node, ast.Call):
            assert ast.unparse(node.func) not in ("os.system", "__import__", "exec", "eval", "system")
    # comments aside, the kernel is exactly the kernel of the unmodified model
    assert ast.dump(tree) == _clean_dump(clean_source)
    # the text can only have reached comments, each on one line of printable ASCII
    head = source.partition(_TEMPLATE_MARK)[0]
    assert head.isascii() and all(line.isprintable() for line in head.split("\n"))


_TEMPLATE_MARK = "# ---------------------------------------------------------------------- engine"
_TEMPLATE_IMPORTS = {a.name.split(".")[0] for node in ast.walk(ast.parse(codegen.engine_source()))
                     if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
_DUMPS: dict[str, str] = {}


def _clean_dump(source: str) -> str:
    if source not in _DUMPS:
        _DUMPS[source] = ast.dump(_ast_of(source))
    return _DUMPS[source]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh folder as working directory (where the payload would create its file) and kernel cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARKINETICS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture(scope="module")
def clean_multiphasic():
    model = load_model(MODELS / "multiphasic.toml")
    return model, codegen.generate_source(model)


# ---- free text in every field ----------------------------------------------------------------

# (table path, key) of every free-text field of a model file (multiphasic has them all)
TEXT_FIELDS = [
    ("model", "name"), ("model", "description"), ("model", "notes"), ("model", "references"),
    ("model", "time_unit"), ("model", "version"),
    ("states.expanding", "unit"), ("states.expanding", "description"), ("states.expanding", "notes"),
    ("parameters.tmax", "unit"), ("parameters.tmax", "description"), ("parameters.tmax", "source"),
    ("parameters.tmax", "symbol"), ("parameters.tmax", "notes"),
    ("outputs.transgene", "unit"), ("outputs.transgene", "description"), ("outputs.transgene", "notes"),
]


def _with_field(text: str, table: str, key: str, value: str) -> str:
    """The model file with ``key = value`` set in ``[table]`` (replaced or added)."""
    value_toml = f"[{_toml_string(value)}]" if key == "references" else _toml_string(value)
    lines = text.split("\n")
    start = lines.index(f"[{table}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    block = [ln for ln in lines[start + 1:end] if not ln.startswith(f"{key} =")]
    if key == "references":  # a multi-line array in multiphasic.toml: drop its lines
        out, skipping = [], False
        for ln in lines[start + 1:end]:
            if ln.startswith("references ="):
                skipping = not ln.rstrip().endswith("]")
                continue
            if skipping:
                skipping = not ln.startswith("]")
                continue
            out.append(ln)
        block = out
    return "\n".join(lines[:start + 1] + [f"{key} = {value_toml}"] + block + lines[end:])


def _check_error(err: ModelFileError) -> None:
    assert isinstance(err, CarKineticsError)
    for p in err.problems:  # one printable line per problem, whatever the file held
        assert str(p).isprintable(), repr(str(p))


@pytest.mark.parametrize("table, key", TEXT_FIELDS, ids=[f"{t}.{k}" for t, k in TEXT_FIELDS])
def test_text_fields_never_reach_code(workdir, clean_multiphasic, table, key):
    clean_model, clean_source = clean_multiphasic
    text = (MODELS / "multiphasic.toml").read_text(encoding="utf-8")
    for brk in BREAKS:
        evil = _with_field(text, table, key, _payload(brk))
        assert tomllib.loads(evil)[table.split(".")[0]]  # still valid TOML
        path = workdir / "multiphasic.toml"
        path.write_text(evil, encoding="utf-8")
        try:
            model = load_model(path)
        except ModelFileError as err:
            _check_error(err)
            assert key in ("name", "time_unit"), repr(brk)  # one-line labels; other text is accepted
            continue
        if table == "model" and key in ("description", "references"):
            assert getattr(model, key) in (_payload(brk), (_payload(brk),)), repr(brk)  # kept as written
        assert_inert(codegen.generate_source(model), clean_source)
        assert not (workdir / SENTINEL).exists()


@pytest.mark.parametrize("brk", BREAKS, ids=BREAK_IDS)
def test_model_name_is_inert_even_unvalidated(workdir, clean_multiphasic, brk):
    """The exploit of issue 12, with load_model's check of the name bypassed: codegen alone is safe."""
    clean_model, clean_source = clean_multiphasic
    evil = dataclasses.replace(clean_model, name=_payload(brk), _kernel=None)
    source = codegen.generate_source(evil)
    assert_inert(source, clean_source)
    path, _ = codegen.kernel_path(evil)
    assert path.name.isascii() and path.parent == codegen.cache_dir()
    codegen.build_kernel(evil)  # writes and imports the module
    assert not (workdir / SENTINEL).exists()


def test_model_name_with_line_break_is_a_model_file_error(workdir):
    text = (MODELS / "multiphasic.toml").read_text(encoding="utf-8")
    path = workdir / "tiny.toml"
    path.write_text(_with_field(text, "model", "name", _payload("\n")), encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"model\.name: .*line break '\\n'; a model name is one line") as info:
        load_model(path)
    _check_error(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("brk", [b for b in BREAKS if b != "\x00"], ids=[repr(b) for b in BREAKS if b != "\x00"])
@pytest.mark.parametrize("named", [True, False], ids=["named", "unnamed"])
def test_file_name_is_inert(workdir, clean_multiphasic, brk, named):
    """A model file whose own name holds quotes and line breaks (no [model] name: the name is the file's)."""
    clean_model, clean_source = clean_multiphasic
    text = (MODELS / "multiphasic.toml").read_text(encoding="utf-8")
    if not named:
        text = text.replace('name = "multiphasic"\n', "")
    path = workdir / f"m{brk}import os; os.system('touch {SENTINEL}'){brk}#'.toml"
    path.write_text(text, encoding="utf-8")
    model = load_model(path)
    assert model.name.isprintable()
    source = codegen.generate_source(model)
    assert_inert(source, clean_source)
    codegen.build_kernel(model)
    assert not (workdir / SENTINEL).exists()


def test_cli_run_rejects_the_exploit(workdir):
    """The reproduction of issue 12: `carkinetics run` on a scenario using the model."""
    from carkinetics.cli.main import main

    text = (MODELS / "multiphasic.toml").read_text(encoding="utf-8")
    (workdir / "models").mkdir()
    (workdir / "models" / "tiny.toml").write_text(_with_field(text, "model", "name", _payload("\n")),
                                                  encoding="utf-8")
    (workdir / "s.toml").write_text('[scenario]\nname = "s"\nmodel = "models/tiny.toml"\n\n'
                                    '[times]\nstart = 0\nend = 10\nstep = 1\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["run", str(workdir / "s.toml"), "--output", str(workdir / "out")])
    assert result.exit_code == 1, result.output
    assert "Error:" in result.output and "Traceback" not in result.output
    assert "model.name" in result.output
    assert not (workdir / SENTINEL).exists()


def test_names_that_reach_code_are_checked_by_codegen_too(workdir, clean_multiphasic):
    """A Model built without load_model cannot smuggle a name into the kernel."""
    clean_model, _ = clean_multiphasic
    state = dataclasses.replace(clean_model.states[0], name="x\nimport os\n#")
    evil = dataclasses.replace(clean_model, states=(state,) + clean_model.states[1:], _kernel=None)
    with pytest.raises(ModelFileError, match="is not a valid name"):
        codegen.generate_source(evil)
    out = dataclasses.replace(clean_model.outputs[0], name="o\u2028import os")
    evil = dataclasses.replace(clean_model, outputs=(out,), _kernel=None)
    with pytest.raises(ModelFileError, match="non-ASCII"):
        codegen.generate_source(evil)


# ---- the cache key covers everything that reaches the source ----------------------------------


def test_kernel_cache_key_changes_with_everything_in_the_source(workdir, monkeypatch):
    text = (MODELS / "multiphasic.toml").read_text(encoding="utf-8")

    def path_of(file_text, file_name="multiphasic.toml"):
        folder = workdir / f"v{len(list(workdir.iterdir()))}"
        folder.mkdir()
        p = folder / file_name
        p.write_text(file_text, encoding="utf-8")
        return codegen.kernel_path(load_model(p))[0]

    base = path_of(text)
    assert path_of(text) == base  # same model, same kernel
    variants = {
        "model name": text.replace('name = "multiphasic"', 'name = "multiphasic2"'),
        "expression": text.replace('"fb * (alpha - beta)"', '"fb * (alpha - 2 * beta)"'),
        "ode": text.replace("- beta * persisting", "- 0.5 * beta * persisting"),
        "initial value": text.replace('initial = "cmax / fold_expansion"', 'initial = "cmax / fold_expansion / 2"'),
        "comment only (file hash)": text + "\n# a comment\n",
        "parameter value (file hash)": text.replace("value = 9.3", "value = 9.4"),
    }
    seen = {base}
    for what, variant in variants.items():
        assert variant != text, what
        p = path_of(variant)
        assert p not in seen, what
        seen.add(p)
    p = path_of(text, "other_name.toml")
    assert p not in seen, "file name"
    seen.add(p)
    # the whole source: a change in the engine changes the key too
    body = codegen.engine_source()
    monkeypatch.setattr(codegen, "engine_source", lambda: body + "\n# changed\n")
    assert path_of(text) not in seen


def test_kernel_file_name_is_an_ascii_slug(workdir, clean_multiphasic):
    clean_model, _ = clean_multiphasic
    for name in ["Modèle ℌ", "../../etc/passwd", "a b\tc", "ℌℌℌ", "x" * 500]:
        path, _ = codegen.kernel_path(dataclasses.replace(clean_model, name=name, _kernel=None))
        assert path.parent == codegen.cache_dir()
        stem = path.stem
        assert stem.isascii() and all(c.isalnum() or c == "_" for c in stem), stem
        assert len(path.name) < 100


# ---- Jacobian locals cannot collide with names of the model ----------------------------------

# Named so that the old locals d_<expression>__<state> collide: the parameter d_r__x is the
# name of the derivative of r with respect to x, and the expressions a (w.r.t. state y__z)
# and a__y (w.r.t. state z) share the name d_a__y__z.
COLLIDING = {
    "states": {
        "x": {"unit": "cells", "description": "x", "initial": 1000.0},
        "z": {"unit": "cells", "description": "z", "initial": 500.0},
        "y__z": {"unit": "cells", "description": "y", "initial": 800.0},
    },
    "parameters": {
        "k": {"value": 0.5, "unit": "1/day", "description": "slow", "source": "test"},
        "d_r__x": {"value": 40.0, "unit": "1/day", "description": "fast", "source": "test"},
        "kz": {"value": 30.0, "unit": "1/day", "description": "fast", "source": "test"},
        "ky": {"value": 0.2, "unit": "1/day", "description": "slow", "source": "test"},
    },
    "expressions": {"r": "k * x", "a": "ky * y__z", "a__y": "kz * z"},
    "odes": {"x": "-r - d_r__x * x", "z": "-a__y + 0.1 * x", "y__z": "-a + 0.1 * z"},
    "outputs": {"total": {"expression": "x + z + y__z", "unit": "cells"}},
}


@pytest.fixture(scope="module")
def colliding_model(tmp_path_factory):
    return model_from_dict(COLLIDING, tmp_path_factory.mktemp("m") / "colliding.toml")


def test_jacobian_matches_finite_differences_with_colliding_names(colliding_model):
    model = colliding_model
    f = codegen.python_rhs(model)
    p = model.default_parameters()
    y = np.array([700.0, 300.0, 900.0])
    jac = np.zeros((3, 3))
    model.kernel.model_jac(0.0, y, p, jac, np.zeros(3))
    numeric = np.empty((3, 3))
    for j in range(3):
        h = 1e-3
        up, down = y.copy(), y.copy()
        up[j] += h
        down[j] -= h
        numeric[:, j] = (np.array(f(0.0, up, p)) - np.array(f(0.0, down, p))) / (2 * h)
    np.testing.assert_allclose(jac, numeric, rtol=1e-8, atol=1e-10)
    assert jac[0, 0] == pytest.approx(-40.5)
    assert jac[2, 2] == pytest.approx(-0.2) and jac[1, 1] == pytest.approx(-30.0)


def test_rodas4_with_colliding_names_against_radau(colliding_model):
    model = colliding_model
    times = np.linspace(0.0, 5.0, 51)
    opts = SolverOptions(method="rodas4", rtol=1e-8, extinction=False)
    traj = simulate(model, [], times, options=opts)
    atol = opts.atol_vector(model)
    ref = reference_solve(model, [], times, rtol=1e-12, atol=atol * 1e-4)
    err = scaled_error(traj.states, ref, 1e-8, atol)
    assert err.max() < 30, f"max tolerance-scaled error {err.max():.1f}"


def test_generated_locals_are_numbered(colliding_model):
    source = codegen.generate_source(colliding_model)
    head = source.partition(_TEMPLATE_MARK)[0]
    assert "\n    d_r__x =" not in head and "d_a__y__z" not in head
    assert "    jd0 = " in head and "p_d_r__x" in head


# ---- expressions whose code Python cannot compile ---------------------------------------------


def test_too_deep_generated_code_is_a_model_file_error(tmp_path):
    deep = "x/" * 99 + "x"  # 100 levels: accepted, but the derivative nests beyond Python's limit
    model = model_from_dict({"states": {"x": {"unit": "u", "description": "x", "initial": 2.0}},
                             "expressions": {"r": deep}, "odes": {"x": "-r"}}, tmp_path / "deep.toml")
    with pytest.raises(ModelFileError, match=r"deep\.toml: expressions\.r: the generated code .* too deeply"):
        codegen.generate_source(model)


def test_nested_small_powers_do_not_double_the_code(tmp_path):
    nested = "(" * 60 + "x" + "**2)" * 60  # each square repeated its base: 2**60 copies of x
    model = model_from_dict({"states": {"x": {"unit": "u", "description": "x", "initial": 0.5}},
                             "expressions": {"r": nested}, "odes": {"x": "-r"}}, tmp_path / "sq.toml")
    source = codegen.generate_source(model)
    assert len(source) < 1_000_000
    _ast_of(source)


def test_shipped_model_kernels_are_ascii_with_numbered_locals():
    """The kernels of the shipped models: valid, ASCII, numbered Jacobian locals only."""
    for path in sorted(MODELS.glob("*.toml")):
        source = codegen.generate_source(load_model(path))
        head = source.partition(_TEMPLATE_MARK)[0]
        assert head.isascii()
        assert not [ln for ln in head.splitlines() if ln.startswith("    d_")]
        _ast_of(source)
