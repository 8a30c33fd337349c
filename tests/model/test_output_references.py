"""Clinical reference lines of model outputs (``reference`` entries): parsing, validation, shipped models."""

from __future__ import annotations

import math

import pytest

from carkinetics.errors import ModelFileError
from carkinetics.model.load import load_model, resolve_model_path
from carkinetics.model.spec import model_from_dict


def _doc(reference):
    out = {"expression": "x", "unit": "fraction", "description": "a fraction"}
    if reference is not None:
        out["reference"] = reference
    return {"model": {"name": "m"}, "states": {"x": {"unit": "cells", "description": "x", "initial": 1.0}},
            "odes": {"x": "-x"}, "outputs": {"y": out}}


def _problems(reference):
    with pytest.raises(ModelFileError) as info:
        model_from_dict(_doc(reference), "m.toml")
    return [str(p) for p in info.value.problems]


def test_references_are_parsed_in_order():
    model = model_from_dict(_doc([{"value": 0.05, "label": "CR: blasts < 5%"}, {"value": 1, "label": " one "}]),
                            "m.toml")
    assert model.output("y").references == ((0.05, "CR: blasts < 5%"), (1.0, "one"))
    assert isinstance(model.output("y").references[1][0], float)


def test_no_reference_means_none():
    assert model_from_dict(_doc(None), "m.toml").output("y").references == ()


def test_negative_references_are_allowed_for_log10_outputs():
    model = model_from_dict(_doc([{"value": -4, "label": "MRD 1e-4"}]), "m.toml")
    assert model.output("y").references == ((-4.0, "MRD 1e-4"),)


@pytest.mark.parametrize("reference, key, words", [
    ({"value": 0.05, "label": "CR"}, "outputs.y.reference", "expected a list of tables"),
    ([0.05], "outputs.y.reference[0]", "expected a table"),
    ([{"label": "CR"}], "outputs.y.reference[0].value", "missing (expected a number)"),
    ([{"value": "0.05", "label": "CR"}], "outputs.y.reference[0].value", "expected a finite number"),
    ([{"value": True, "label": "CR"}], "outputs.y.reference[0].value", "expected a finite number"),
    ([{"value": math.inf, "label": "CR"}], "outputs.y.reference[0].value", "expected a finite number"),
    ([{"value": 0.05}], "outputs.y.reference[0].label", "missing (expected a string)"),
    ([{"value": 0.05, "label": 5}], "outputs.y.reference[0].label", "expected a string"),
    ([{"value": 0.05, "label": "  "}], "outputs.y.reference[0].label", "non-empty string"),
    ([{"value": 0.05, "label": "CR"}, {"value": 0.1, "label": "x", "colour": "red"}],
     "outputs.y.reference[1].colour", "reference key"),
])
def test_bad_references_are_named(reference, key, words):
    problems = _problems(reference)
    assert len(problems) == 1, problems
    assert key in problems[0] and words in problems[0], problems


def test_bad_reference_in_a_model_file(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('[model]\nname = "m"\n[states.x]\nunit = "cells"\ndescription = "x"\ninitial = 1.0\n'
                    '[odes]\nx = "-x"\n[outputs.y]\nexpression = "x"\nunit = "cells"\n'
                    'reference = [{ value = 1.0, label = "ok" }, { value = "high", label = "bad" }]\n',
                    encoding="utf-8")
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    text = str(info.value)
    assert "m.toml" in text and "outputs.y.reference[1].value" in text and "'high'" in text


@pytest.mark.parametrize("name", ["cart_tall", "cart_ball"])
def test_shipped_leukaemia_models_declare_clinical_references(name):
    model = load_model(resolve_model_path(name))
    refs = {o.name: dict((v, lab) for v, lab in o.references) for o in model.outputs}
    # CR: < 5% blasts; flow MRD negativity: < 1e-4 (the same levels on the log10 scale)
    assert set(refs["marrow_blast_fraction"]) == {0.05, 1e-4}
    assert "CR" in refs["marrow_blast_fraction"][0.05] and "MRD" in refs["marrow_blast_fraction"][1e-4]
    assert sorted(refs["mrd_log10"]) == pytest.approx([-4.0, math.log10(0.05)])
    assert set(refs["cd4_per_ul"]) == {200.0}
    assert set(refs["car_t_per_ul"]) == {0.1}  # car_lloq of the clinical vocabulary
    assert refs["transgene_copies_per_ug"] == {}  # no sourced qPCR LLOQ
    # every reference of an output that is never negative is drawable on a log axis
    assert all(v > 0 for o, r in refs.items() if o != "mrd_log10" for v in r)


@pytest.mark.parametrize("name", ["cart_tall", "cart_ball", "multiphasic"])
def test_shipped_models_write_micro_units(name):
    model = load_model(resolve_model_path(name))
    texts = [o.unit for o in model.outputs] + [o.description for o in model.outputs]
    texts += [s.unit for s in model.states] + [p.unit for p in model.parameters]
    assert not [t for t in texts if "/uL" in t or "/ug" in t or t == "uL" or " per ug" in t]
    units = {o.name: o.unit for o in model.outputs}
    if name == "multiphasic":
        assert units["transgene"] == "copies/\u00b5g gDNA"
    else:
        assert units["car_t_per_ul"] == "cells/\u00b5L" and units["transgene_copies_per_ug"] == "copies/\u00b5g gDNA"
