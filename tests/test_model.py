"""Model files: loading, names and every error message of the loader."""

import numpy as np
import pytest

from carkinetics import ModelFileError, load_model
from carkinetics.model import model_from_dict

from conftest import DATA, MODELS

BAD = DATA / "bad"


def test_shipped_models_load(multiphasic):
    assert multiphasic.state_names == ("expanding", "persisting")
    assert multiphasic.output_names == ("transgene",)
    p = multiphasic.parameter("cmax")
    assert p.value == 24000.0 and p.unit == "copies/ug gDNA" and "Stein" in p.source
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

    from carkinetics.model import load_model, resolve_model_path

    path = resolve_model_path("multiphasic")
    model = load_model(path)
    assert model.content_hash == hashlib.sha256(path.read_text(encoding="utf-8").encode()).hexdigest()
