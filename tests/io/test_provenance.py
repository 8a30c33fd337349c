"""Provenance of result files: the command line, the package version and the git commit."""

from __future__ import annotations

import os
import sys
import time

import pytest

from carkinetics.io import provenance as prov
from carkinetics.version import __version__

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _fake_git(tmp_path, body):
    """A ``git`` executable first on PATH that runs ``body`` (sh) and logs its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git = bin_dir / "git"
    git.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path / "calls"}"\n{body}\n')
    git.chmod(0o755)
    return bin_dir


@pytest.fixture
def checkout(tmp_path):
    pkg = tmp_path / "repo" / "carkinetics"
    pkg.mkdir(parents=True)
    return pkg


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script as git")
def test_commit_of_the_checkout_the_package_runs_from(tmp_path, checkout, monkeypatch):
    bin_dir = _fake_git(tmp_path, f'echo "{checkout.parent}"\necho {COMMIT}')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert prov.git_commit(checkout) == COMMIT
    assert (tmp_path / "calls").read_text().split() == ["-C", str(checkout), "rev-parse", "--show-toplevel", "HEAD"]


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script as git")
@pytest.mark.parametrize("body", [
    'echo "/somewhere/else"\necho ' + COMMIT,  # an installed copy inside another repository
    "echo 'fatal: not a git repository' >&2\nexit 128",  # not a checkout
    'echo "{top}"\necho not-a-hash',  # unexpected output
    "exec sleep 5",  # hangs: cut by the timeout
])
def test_no_commit_outside_a_checkout_of_the_package(tmp_path, checkout, monkeypatch, body):
    bin_dir = _fake_git(tmp_path, body.replace("{top}", str(checkout.parent)))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(prov, "GIT_TIMEOUT", 0.5)
    start = time.monotonic()
    assert prov.git_commit(checkout) is None
    assert time.monotonic() - start < 4


def test_no_commit_without_git(tmp_path, checkout, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert prov.git_commit(checkout) is None


def test_provenance_records_command_version_and_commit(monkeypatch):
    argv = ["/usr/bin/carkinetics", "run", "a scenario.toml", "--n", "5", "-o", "out"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(prov, "git_commit", lambda package_dir=None: COMMIT)
    info = prov.provenance({"extra": 1})
    assert info["command"] == argv and info["command"] is not argv
    assert info["carkinetics"] == __version__ and info["git_commit"] == COMMIT and info["extra"] == 1
    monkeypatch.setattr(prov, "git_commit", lambda package_dir=None: None)
    assert prov.provenance()["git_commit"] is None
