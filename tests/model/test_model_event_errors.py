"""Model files with stochastic states and model events: each mistake gives a ModelFileError
naming the file and the key, and ``carkinetics run`` turns it into one ``Error:`` line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from carkinetics import ModelFileError, load_model
from carkinetics.cli.main import main

_BASE = """
[model]
name = "m"
{model}

[states.cells]
unit = "cells"
description = "A small population"
initial = 3
{cells}

[states.drug]
unit = "mg"
description = "A decaying amount"
initial = 10

[parameters.b]
value = 0.5
unit = "1/day"
description = "birth"
source = "test"
bounds = [0, 10]

[parameters.d]
value = 0.3
unit = "1/day"
description = "death"
source = "test"
bounds = [0, 10]

[parameters.shift]
value = 1.0
unit = "1"
description = "a parameter that may be negative"
source = "test"
bounds = [-5, 5]

[odes]
drug = "-d * drug"
{odes}

[events.ev]
description = "an event"
{event}
"""

_GOOD_CELLS = 'stochastic = { below = 100, gain = "b * cells", loss = "d * cells" }'
_GOOD_EVENT = 'hazard = "b * drug"\nadd = { drug = 1 }'


def _text(model="", cells=_GOOD_CELLS, odes="", event=_GOOD_EVENT):
    return _BASE.format(model=model, cells=cells, odes=odes, event=event)


def _error(tmp_path, **parts):
    path = tmp_path / "bad_model.toml"
    path.write_text(_text(**parts), encoding="utf-8")
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    return str(info.value)


def test_the_base_model_is_valid(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text(_text(), encoding="utf-8")
    model = load_model(path)
    assert model.is_stochastic and tuple(model.stochastic_states) == ("cells",)
    assert list(model.events) == ["ev"]
    trig = tmp_path / "trigger.toml"
    trig.write_text(_text(event='trigger = "drug - 5"\ndirection = "down"\nmultiply = { drug = 0.5 }'),
                    encoding="utf-8")
    assert list(load_model(trig).events) == ["ev"]


@pytest.mark.parametrize("parts, keys, words", [
    ({"cells": 'stochastic = { below = 100, loss = "d * cells" }'}, ["states.cells.stochastic"], ["gain"]),
    ({"cells": 'stochastic = { below = 100, gain = "b * cells" }'}, ["states.cells.stochastic"], ["loss"]),
    ({"cells": _GOOD_CELLS + "\nextinction = 1"}, ["states.cells.extinction"], []),
    ({"event": 'trigger = "drug - nonesuch"\nadd = { drug = 1 }'}, ["events.ev.trigger"], ["nonesuch"]),
    ({"event": 'hazard = "b - d"\nadd = { drug = 1 }'}, ["events.ev.hazard"], ["can be negative"]),
    ({"event": 'hazard = "shift * drug"\nadd = { drug = 1 }'}, ["events.ev.hazard"], ["can be negative"]),
    ({"cells": 'stochastic = { below = 100, gain = "b * cells - d", loss = "d * cells" }'},
     ["states.cells.stochastic"], ["can be negative"]),
    ({"event": 'trigger = "drug - 5"\nterminal = true'}, ["model.after_terminal"], []),
    ({"event": 'trigger = "drug - 5"\nhazard = "b"\nadd = { drug = 1 }'}, ["events.ev"], ["trigger", "hazard"]),
    ({"event": 'add = { drug = 1 }'}, ["events.ev"], ["trigger", "hazard"]),
    ({"event": 'trigger = "drug - 5"\ndirection = "sideways"\nadd = { drug = 1 }'}, ["events.ev.direction"],
     ["sideways"]),
    ({"event": 'trigger = "drug < 5"\nadd = { drug = 1 }'}, ["events.ev.trigger"], ["condition", "drug - 5"]),
])
def test_model_file_errors_name_file_and_key(tmp_path, parts, keys, words):
    message = _error(tmp_path, **parts)
    assert "bad_model.toml" in message, message
    assert any(k in message for k in keys), message
    for word in words:
        assert word in message, message
    assert "Traceback" not in message


def test_stochastic_state_in_odes_names_the_state(tmp_path):
    message = _error(tmp_path, odes='cells = "(b - d) * cells"')
    assert "odes.cells" in message or "states.cells" in message, message


def test_hazard_wrapped_in_max_is_accepted(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(_text(event='hazard = "max(0, b - d)"\nadd = { drug = 1 }'), encoding="utf-8")
    assert list(load_model(path).events) == ["ev"]


def test_cli_run_with_a_bad_model_gives_one_error_line(tmp_path):
    model = tmp_path / "bad_model.toml"
    model.write_text(_text(event='hazard = "b - d"\nadd = { drug = 1 }'), encoding="utf-8")
    scenario = tmp_path / "scen.toml"
    scenario.write_text(f"""
[scenario]
name = "scen"
model = "{model.as_posix()}"

[times]
end = 10
step = 1
""", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(scenario), "-o", str(out)])
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert "scen.toml" in errors[0], result.output
    assert "bad_model.toml: events.ev.hazard: 'b - d' can be negative" in result.output, result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_parameter_without_bounds_is_not_trusted_as_non_negative(tmp_path):
    """A parameter without bounds may be set to anything (a scenario, an override, an action):
    a hazard proportional to it can be negative."""
    text = _text(event='hazard = "free * drug"\nadd = { drug = 1 }').replace(
        "[odes]", '[parameters.free]\nvalue = 0.1\nunit = "1/day"\ndescription = "x"\nsource = "test"\n\n[odes]')
    path = tmp_path / "bad_model.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModelFileError, match="events.ev.hazard: 'free \\* drug' can be negative"):
        load_model(path)


def test_scenario_event_named_like_a_model_event_is_refused(tmp_path):
    from carkinetics import ScenarioError
    from carkinetics.scenario.load import load_scenario

    model = tmp_path / "good.toml"
    model.write_text(_text(), encoding="utf-8")
    scenario = tmp_path / "scen.toml"
    scenario.write_text(f"""
[scenario]
name = "scen"
model = "{model.as_posix()}"

[times]
end = 10
step = 1

[[events]]
name = "ev"
time = 1
add = {{ drug = 1 }}
""", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"events\[0\]\.name: 'ev' is the name of an event of model"):
        load_scenario(scenario)
