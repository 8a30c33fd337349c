"""Model files: loading, names and every error message of the loader."""

import numpy as np
import pytest

from carkinetics import ModelFileError, load_model
from carkinetics.model.spec import model_from_dict

from conftest import DATA, MODELS

BAD = DATA / "bad"


def test_shipped_models_load(multiphasic):
    assert multiphasic.state_names == ("expanding", "persisting")
    assert multiphasic.output_names == ("transgene",)
    p = multiphasic.parameter("cmax")
    assert p.value == 24000.0 and p.unit == "copies/\u00b5g gDNA" and "Stein" in p.source
    assert p.iiv_log_sd == pytest.approx(np.sqrt(0.65), abs=1e-3)


def test_every_model_file_validates():
    for path in sorted(MODELS.glob("*.toml")):
        model = load_model(path)
        assert model.n_states > 0
        for par in model.parameters:
            assert par.source, f"{path.name}: parameter {par.name} has no source"
            assert par.unit and par.description


def test_bare_name_resolves_to_shipped_model():
    assert load_model("multiphasic").name == "multiphasic"


def test_unknown_model_name_suggests():
    with pytest.raises(ModelFileError, match="did you mean 'multiphasic'"):
        load_model("multiphasc")


def test_missing_file():
    with pytest.raises(ModelFileError, match="model file not found"):
        load_model(DATA / "models" / "nope.toml")


def test_toml_syntax_error_names_file_and_line():
    with pytest.raises(ModelFileError, match=r"bad_toml_syntax\.toml: not valid TOML: .*line 2"):
        load_model(BAD / "bad_toml_syntax.toml")


def _problems(name):
    with pytest.raises(ModelFileError) as info:
        load_model(BAD / name)
    err = info.value
    assert err.path.endswith(name)
    return [str(p) for p in err.problems]


def test_sections_problems_all_reported():
    probs = _problems("bad_sections.toml")
    assert any("paramters" in p and "did you mean 'parameters'" in p for p in probs)
    assert any(p.startswith("model.autor") for p in probs)
    assert any(p == "odes: missing section [odes]" for p in probs)
    assert any("state 'a' has no right-hand side" in p for p in probs)


def test_parameter_problems_all_reported():
    probs = _problems("bad_parameters.toml")
    text = "\n".join(probs)
    assert "parameters.a0.vaule: 'vaule' is not a parameter key (did you mean 'value'?)" in text
    assert "parameters.a0.unit: missing" in text
    assert "parameters.a0.source: missing" in text
    assert "parameters.k.value: 5.0 is outside bounds [0.0, 1.0]" in text
    assert "parameters.m.bounds: lower bound 1.0 must be below upper bound 0.1" in text
    assert "parameters.m.iiv_log_sd: expected a number >= 0" in text
    assert "parameters.m.status" in text and "did you mean 'published'" in text
    assert len(probs) == 7


def test_expression_problems_all_reported():
    probs = _problems("bad_expressions.toml")
    text = "\n".join(probs)
    assert "expressions.stimulus: 'later_thing' is used before it is defined" in text
    assert "expressions.sneaky: only plain function calls are allowed" in text
    assert "expressions.typo_fn: unknown function 'exq'" in text and "did you mean 'exp'" in text
    assert "expressions.broken: cannot parse 'rate * (1 +'" in text
    assert "odes.effector: unknown name 'efector' in 'rate * efector' (did you mean 'effector'?)" in text
    assert len(probs) == 5


def test_structure_problems_all_reported():
    probs = _problems("bad_structure.toml")
    text = "\n".join(probs)
    assert "states.t: 't' is reserved" in text
    assert "parameters.a: 'a' is already declared in [states]" in text
    assert "odes.c: 'c' is not a declared state" in text
    assert "odes.b: state 'b' has no right-hand side" in text
    assert "states.a.initial: unknown name 'b' in 'b * 2' (initial values may use parameters only)" in text
    assert "states.a.extinction: expected a threshold >= 0" in text
    assert "outputs.total: missing 'expression'" in text


def test_error_message_lists_every_problem_with_file():
    with pytest.raises(ModelFileError) as info:
        load_model(BAD / "bad_parameters.toml")
    lines = str(info.value).splitlines()
    assert lines[0].endswith("7 problems in model file")
    assert all("bad_parameters.toml: parameters." in line for line in lines[1:])


def test_parameter_vector_rejects_unknown_override(multiphasic):
    with pytest.raises(KeyError, match="did you mean 'cmax'"):
        multiphasic.parameter_vector({"cmx": 1.0})


def test_cell_states_default_to_one_cell_extinction(linear_model):
    assert list(linear_model.extinction_thresholds()) == [1.0, 1.0, 1.0]


def test_model_from_dict_minimal():
    model = model_from_dict({"states": {"x": {"unit": "u", "description": "x", "initial": 2.0}},
                             "odes": {"x": "-x"}}, "inline.toml")
    assert model.name == "inline" and model.state_names == ("x",)
    assert model.extinction_thresholds()[0] == 0.0


def test_models_pickle_without_kernel(linear_model):
    import pickle

    clone = pickle.loads(pickle.dumps(linear_model))
    assert clone.state_names == linear_model.state_names
    assert clone._kernel is None


def test_content_hash_is_the_file_hash():
    import hashlib

    from carkinetics.model.load import load_model, resolve_model_path

    path = resolve_model_path("multiphasic")
    model = load_model(path)
    assert model.content_hash == hashlib.sha256(path.read_text(encoding="utf-8").encode()).hexdigest()


# ---- values and names that would reach generated code (issue 12) ------------------------------

_STATE = {"unit": "cells", "description": "x", "initial": 1.0}
_PARAM = {"value": 2.0, "unit": "1/day", "description": "rate", "source": "test"}


def _doc(**changes):
    doc = {"model": {"name": "m"}, "states": {"x": dict(_STATE)}, "parameters": {"k": dict(_PARAM)},
           "odes": {"x": "-k * x"}}
    for path, value in changes.items():
        *tables, key = path.split("__")
        node = doc
        for t in tables:
            node = node.setdefault(t, {})
        node[key] = value
    return doc


def _dict_problems(doc):
    with pytest.raises(ModelFileError) as info:
        model_from_dict(doc, "m.toml")
    probs = [str(p) for p in info.value.problems]
    assert all(p.isprintable() for p in probs), probs
    return probs


def _toml_problems(tmp_path, text):
    path = tmp_path / "m.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    return [str(p) for p in info.value.problems]


_TOML = """
[model]
name = "m"
{model}
[states.x]
unit = "cells"
description = "x"
initial = {initial}
[parameters.k]
value = {value}
unit = "1/day"
description = "rate"
source = "test"
{bounds}
[odes]
x = "-k * x"
"""


def _toml(initial="1.0", value="2.0", bounds="", model=""):
    return _TOML.format(initial=initial, value=value, bounds=bounds, model=model)


@pytest.mark.parametrize("initial, message", [
    ("nan", "states.x.initial: expected a finite number, got nan"),
    ("inf", "states.x.initial: expected a finite number, got inf"),
    ("-inf", "states.x.initial: expected a finite number, got -inf"),
    ('"1e999"', "states.x.initial: expected a finite number, got inf"),
    ("-5", "states.x.initial: expected a value >= 0, got -5"),
    ('"-5"', "states.x.initial: expected a value >= 0, got -5"),
    ('"2 - 7"', "states.x.initial: expected a value >= 0, got 2 - 7"),
    ('"-k"', "states.x.initial: '-k' is -2.0 at the parameters' typical values; initial values must be finite"),
    ('"k / 0"', "states.x.initial: 'k / 0' is inf at the parameters' typical values"),
    ('"t"', "states.x.initial: time 't' cannot be used here (initial values may use parameters only)"),
    ("1" + "0" * 30, "states.x.initial: whole number of about 1e30 is too large"),
])
def test_bad_initial_values(tmp_path, initial, message):
    probs = _toml_problems(tmp_path, _toml(initial=initial))
    assert any(p.startswith(message) for p in probs), probs


@pytest.mark.parametrize("breakpoints, message", [
    ('["t"]', "model.breakpoints[0]: time 't' cannot be used here (breakpoints may use parameters only)"),
    ("[nan]", "model.breakpoints[0]: expected a finite number, got nan"),
    ("[1.0, inf]", "model.breakpoints[1]: expected a finite number, got inf"),
    ('["k / 0"]', "model.breakpoints[0]: 'k / 0' is inf at the parameters' typical values; breakpoints must be finite"),
    ('["log(k - 2)"]', "model.breakpoints[0]: 'log(k - 2)' is -inf"),
    ("[true]", "model.breakpoints[0]: expected a number or an expression string"),
    ('"k"', "model.breakpoints: expected a list"),
])
def test_bad_breakpoints(tmp_path, breakpoints, message):
    probs = _toml_problems(tmp_path, _toml(model=f"breakpoints = {breakpoints}"))
    assert any(p.startswith(message) for p in probs), probs


def test_good_breakpoints(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(_toml(model='breakpoints = ["k", 3.5, "2 * k"]'), encoding="utf-8")
    model = load_model(path)
    assert model.breakpoint_times(model.default_parameters()).tolist() == [[2.0, 3.5, 4.0]]


@pytest.mark.parametrize("value, bounds, message", [
    ("nan", "", "parameters.k.value: expected a finite number, got nan"),
    ("inf", "", "parameters.k.value: expected a finite number, got inf"),
    ("1" + "0" * 30, "", "parameters.k.value: whole number of about 1e30 is too large"),
    ("1" + "0" * 400, "", "parameters.k.value: whole number of about 1e400 is too large"),
    ("2.0", "bounds = [0.0, inf]", "parameters.k.bounds: expected [lower, upper] (two finite numbers)"),
    ("2.0", "bounds = [nan, 1.0]", "parameters.k.bounds: expected [lower, upper] (two finite numbers)"),
    ("2.0", "bounds = [0.0, 1.0]", "parameters.k.value: 2.0 is outside bounds [0.0, 1.0]"),
    ("2.0", "bounds = [3.0, 1.0]", "parameters.k.bounds: lower bound 3.0 must be below upper bound 1.0"),
    ("2.0", 'bounds = [0, "x"]', "parameters.k.bounds: expected [lower, upper]"),
])
def test_bad_parameter_values_and_bounds(tmp_path, value, bounds, message):
    probs = _toml_problems(tmp_path, _toml(value=value, bounds=bounds))
    assert any(p.startswith(message) for p in probs), probs


@pytest.mark.parametrize("changes, message", [
    ({"model__name": 5}, "model.name: expected a non-empty string, got 5"),
    ({"model__name": "  "}, "model.name: expected a non-empty string"),
    ({"model__name": "x" * 201}, "model.name: is 201 characters long; a model name may have at most 200"),
    ({"model__name": "a\rb"}, "model.name: 'a\\rb' contains the control character or line break '\\r'"),
    ({"model__name": "a\u2028b"}, "model.name: 'a\\u2028b' contains the control character or line break"),
    ({"model__description": 5}, "model.description: expected a string, got 5"),
    ({"model__notes": ["a"]}, "model.notes: expected a string"),
    ({"model__time_unit": "day\nimport os"}, "model.time_unit: expected a unit such as 'day'"),
    ({"model__version": 1.5}, "model.version: expected a string"),
    ({"states__x__notes": 1}, "states.x.notes: expected a string, got 1"),
    ({"states__x__atol": float("inf")}, "states.x.atol: expected a positive absolute tolerance"),
    ({"outputs__o": {"expression": "x", "unit": "cells", "notes": 2}}, "outputs.o.notes: expected a string"),
    ({"expressions__e": {"expression": "x", "unit": 3}}, "expressions.e.unit: expected a string, got 3"),
])
def test_bad_model_fields(changes, message):
    probs = _dict_problems(_doc(**changes))
    assert any(p.startswith(message) for p in probs), probs


@pytest.mark.parametrize("name, message", [
    ("ℌ", "states.ℌ: 'ℌ' contains the non-ASCII character '\\u210c'; names may use ASCII letters"),
    ("x" * 10_000, "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... (10,000 characters)' is 10,000 characters long"),
    ("a\nimport os\n#", "states.a\\nimport os\\n#: 'a\\nimport os\\n#' is not a valid name"),
    ("lambda", "states.lambda: 'lambda' is not a valid name"),
    ("pi", "states.pi: 'pi' is reserved"),
    ("_x", "states._x: '_x': names must not start with '_'"),
])
def test_bad_state_names(name, message):
    doc = _doc()
    doc["states"][name] = dict(_STATE)
    doc["odes"][name] = "-k"
    probs = _dict_problems(doc)
    assert any(message in p for p in probs), probs
    assert all(len(p) < 3000 for p in probs)


def test_look_alike_names_are_not_two_names():
    """'H' and 'ℌ' are the same name to Python: only the ASCII one is accepted."""
    doc = _doc()
    doc["states"]["H"] = dict(_STATE)
    doc["states"]["ℌ"] = dict(_STATE)
    doc["odes"]["H"] = "-k * H"
    doc["odes"]["ℌ"] = "-2 * k * H"
    probs = _dict_problems(doc)
    assert [p for p in probs if "non-ASCII" in p] and len(probs) == 1, probs
    doc = _doc()
    doc["states"]["H"] = dict(_STATE)
    doc["odes"]["H"] = "-k * ℌ"
    probs = _dict_problems(doc)
    assert probs == ["odes.H: character '\\u210c' at column 6 of '-k * ℌ' is not ASCII; names, numbers and "
                     "operators must be ASCII"]


def test_expression_limits_name_the_key():
    probs = _dict_problems(_doc(expressions__long="+".join(["x"] * 6000)))
    assert any(p.startswith("expressions.long: expression is 11,999 characters long") for p in probs), probs
    probs = _dict_problems(_doc(expressions__deep="+".join(["x"] * 150)))
    assert any(p.startswith("expressions.deep: 'x+x+") and "nested more than 100 levels" in p for p in probs)
    probs = _dict_problems(_doc(odes__x="-" * 5000 + "x"))
    assert any(p.startswith("odes.x: '----") and "nested too deeply to parse" in p for p in probs), probs
    probs = _dict_problems(_doc(outputs__o={"expression": "1" + "0" * 400 + " * x", "unit": "cells"}))
    assert any(p.startswith("outputs.o.expression: number of about 1e400 is too large") for p in probs), probs


def test_whole_numbers_beyond_int64_anywhere():
    probs = _dict_problems(_doc(states__x__extinction=10**19, model__version=-(10**40)))
    assert any(p.startswith("states.x.extinction: whole number of about 1e19 is too large") for p in probs)
    assert any(p.startswith("model.version: whole number of about 1e40") for p in probs), probs


def test_file_name_with_line_breaks_gives_a_printable_default_name(tmp_path):
    path = tmp_path / "a\nb'c.toml"
    path.write_text(_toml().replace('name = "m"\n', ""), encoding="utf-8")
    model = load_model(path)
    assert model.name == "a\\nb'c"


@pytest.mark.parametrize("value, message", [
    (1e12, r"fold_expansion = 1e\+12 is outside the model's bounds \[2, 1e\+07\]"),
    (1.0, r"outside the model's bounds \[2, 1e\+07\]"),
    (float("nan"), "expected a finite number"),
    (float("inf"), "expected a finite number"),
    ("ten", "expected a number"),
])
def test_parameter_overrides_through_the_api_are_checked(multiphasic, value, message):
    from carkinetics.model.spec import ParameterValueError

    with pytest.raises(ParameterValueError, match=message):
        multiphasic.parameter_vector({"fold_expansion": value})


def test_parameter_overrides_at_a_bound_are_accepted(multiphasic):
    lo, hi = multiphasic.parameter("fold_expansion").bounds
    i = multiphasic.parameter_index("fold_expansion")
    assert multiphasic.parameter_vector({"fold_expansion": lo})[i] == lo
    # a value computed to be at the bound may differ from it by rounding
    assert multiphasic.parameter_vector({"fold_expansion": float(np.exp(np.log(hi)))})[i] == pytest.approx(hi)
