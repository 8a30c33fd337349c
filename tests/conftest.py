"""Shared fixtures: repository paths and session-wide compiled models."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
MODELS = ROOT / "models"
SCENARIOS = ROOT / "scenarios"
FIT_DATA = DATA / "fit"
TOY_SWEEP = DATA / "sweep" / "toy_sweep.toml"


@pytest.fixture(scope="session")
def root():
    return ROOT


def _load(path):
    from carkinetics import load_model

    return load_model(path)


@pytest.fixture(scope="session")
def linear_model():
    return _load(DATA / "models" / "linear.toml")


@pytest.fixture(scope="session")
def forced_model():
    return _load(DATA / "models" / "forced.toml")


@pytest.fixture(scope="session")
def extinction_model():
    return _load(DATA / "models" / "extinction.toml")


@pytest.fixture(scope="session")
def fast_exchange_model():
    return _load(DATA / "models" / "fast_exchange.toml")


@pytest.fixture(scope="session")
def robertson_model():
    return _load(DATA / "models" / "robertson.toml")


@pytest.fixture(scope="session")
def multiphasic():
    return _load(MODELS / "multiphasic.toml")


@pytest.fixture(scope="module")
def decay():
    """One-compartment decay model of the fitting tests (tests/data/fit/decay.toml)."""
    return _load(FIT_DATA / "decay.toml")


@pytest.fixture(scope="module")
def toy():
    """The toy sweep scenario (tests/data/sweep/toy_sweep.toml): 2 doses x transplant or none x 2
    donor arms, 40 virtual patients per point; one per test module (tests may modify it)."""
    from carkinetics.scenario.load import load_scenario

    return load_scenario(TOY_SWEEP)


@pytest.fixture
def inline_times():
    """Output times of :func:`inline_scenario` (a test module may override this fixture)."""
    return {"end": 10}


@pytest.fixture
def inline_scenario(inline_times):
    """Build a scenario of the linear test model from sections given as keyword dicts.

    A dict section is merged into the minimal header's section of that name
    (``scenario={"targets": [...]}`` adds a key to ``[scenario]``); ``path`` is the file the
    scenario pretends to be (default ``tests/data/scenarios/inline.toml``).
    """
    from carkinetics.scenario.load import scenario_from_dict

    def build(path=None, **sections):
        data = {"scenario": {"name": "t", "model": str(DATA / "models" / "linear.toml")}, "times": dict(inline_times)}
        for name, value in sections.items():
            if isinstance(value, dict) and isinstance(data.get(name), dict):
                data[name] = {**data[name], **value}
            else:
                data[name] = value
        return scenario_from_dict(data, path or DATA / "scenarios" / "inline.toml")

    return build
