"""Shared fixtures: repository paths and session-wide compiled models."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
MODELS = ROOT / "models"
SCENARIOS = ROOT / "scenarios"


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
