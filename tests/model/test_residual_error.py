"""Residual error models: the command-line form, the model-file section, their standard deviations."""

import dataclasses

import numpy as np
import pytest

from carkinetics.errors import ModelFileError, ProblemCollector
from carkinetics.model.residual_error import (ErrorModelError, ResidualError, model_residual_errors,
                                              parse_residual_error, parse_residual_error_section)


def test_error_models_parse_and_have_their_standard_deviations():
    assert parse_residual_error("none") == ResidualError()
    assert parse_residual_error("proportional:0.2") == ResidualError("proportional", proportional=0.2)
    assert parse_residual_error("additive:5") == ResidualError("additive", additive=5.0)
    assert parse_residual_error("combined:0.2,5") == ResidualError("combined", proportional=0.2, additive=5.0)
    assert parse_residual_error("lognormal:0.3") == ResidualError("exponential", log_sd=0.3)
    assert parse_residual_error("combined:0.2,5").describe() == "combined:0.2,5"
    rng = np.random.default_rng(1)
    y = np.full(200_000, 100.0)
    assert np.std(parse_residual_error("proportional:0.2").apply(y, rng)) == pytest.approx(20.0, rel=0.02)
    assert np.std(parse_residual_error("additive:7").apply(y, rng)) == pytest.approx(7.0, rel=0.02)
    assert np.std(parse_residual_error("combined:0.2,15").apply(y, rng)) == pytest.approx(25.0, rel=0.02)  # 3-4-5
    assert np.std(np.log(parse_residual_error("exponential:0.3").apply(y, rng))) == pytest.approx(0.3, rel=0.02)
    assert np.array_equal(ResidualError().apply(y, rng), y)


@pytest.mark.parametrize("text, message", [
    ("poisson:1", "not an error model"), ("proportional", "not an error model"),
    ("proportional:abc", "must be numbers"), ("combined:0.2", "takes 2 value"), ("additive:-1", ">= 0")])
def test_bad_error_models_are_refused_naming_the_option(text, message):
    with pytest.raises(ErrorModelError, match=message) as info:
        parse_residual_error(text, "--error")
    assert str(info.value).startswith("--error: ")


def test_the_model_file_section_is_validated_per_output():
    errs = ProblemCollector("m.toml", ModelFileError)
    found = parse_residual_error_section({"transgene": {"model": "combined", "proportional": 0.2, "additive": 5}},
                                         ["transgene"], errs)
    assert not errs and found == {"transgene": ResidualError("combined", proportional=0.2, additive=5.0)}
    errs = ProblemCollector("m.toml", ModelFileError)
    parse_residual_error_section({"transgen": {"model": "proportional", "proportional": 0.2},
                                  "transgene": {"model": "exponential", "proportional": 0.2, "sd": 1}},
                                 ["transgene"], errs)
    text = "\n".join(str(p) for p in errs.problems)
    assert "residual_error.transgen: 'transgen' is not an output of the model (did you mean 'transgene'?)" in text
    assert "residual_error.transgene.sd: 'sd' is not a key of a residual error" in text
    assert "residual_error.transgene.log_sd: the exponential model needs log_sd" in text
    assert "['proportional'] are not used by the exponential model" in text


def test_a_model_reads_its_section_from_its_file(tmp_path, linear_model):
    text = linear_model.path.read_text() + '\n[residual_error.total]\nmodel = "proportional"\nproportional = 0.1\n'
    (tmp_path / "m.toml").write_text(text)
    with_section = dataclasses.replace(linear_model, path=tmp_path / "m.toml")
    assert model_residual_errors(with_section) == {"total": ResidualError("proportional", proportional=0.1)}
    assert model_residual_errors(linear_model) == {}
