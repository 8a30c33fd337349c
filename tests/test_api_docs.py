"""The API reference (docs/api) documents every public name and builds with Sphinx without a warning."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import carkinetics
from conftest import ROOT

API = ROOT / "docs" / "api"


def test_every_public_name_is_in_the_api_reference():
    text = (API / "index.rst").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. auto(?:function|class|exception):: carkinetics\.(\w+)$", text, re.M))
    missing = sorted(set(carkinetics.__all__) - documented - {"__version__"})
    assert not missing, f"public names missing from docs/api/index.rst: {missing}"


def test_the_api_reference_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    run = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(API),
                          str(tmp_path / "html")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "WARNING" not in run.stderr, run.stderr[-3000:]
    html = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    for name in ("simulate_batch", "run_cohort", "load_scenario", "aalen_johansen"):
        assert f'id="carkinetics.{name}"' in html or f"carkinetics.stats.competing.{name}" in html, name
