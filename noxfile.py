"""Test environments for developers (``pip install nox``; CI runs the same pair in .ci/run).

    nox -s tests-newest     # the newest releases of every dependency
    nox -s tests-oldest     # the lower bounds of pyproject.toml (ci/constraints-oldest.txt)
    nox -s tests-oldest -- -m "not slow" -x     # arguments after -- go to pytest

Each session installs the package with its test extra into its own virtual environment and
runs the suite from an empty numba kernel cache, as CI does.
"""

import tempfile

import nox

nox.options.sessions = ["tests-newest", "tests-oldest"]
nox.options.reuse_existing_virtualenvs = False

PYTHON = "3.11"


def _pytest(session):
    cache = tempfile.mkdtemp(prefix="carkinetics-cache-")
    session.run("python", "-c", "import numpy, scipy, numba, pandas, matplotlib; "
                "print('numpy', numpy.__version__, 'scipy', scipy.__version__, 'numba', numba.__version__, "
                "'pandas', pandas.__version__, 'matplotlib', matplotlib.__version__)")
    session.run("python", "-m", "pytest", *session.posargs,
                env={"CARKINETICS_CACHE_DIR": cache, "MPLBACKEND": "Agg"})


@nox.session(name="tests-newest", python=PYTHON)
def tests_newest(session):
    """The suite on the newest release of every dependency."""
    session.install("--upgrade", "--upgrade-strategy", "eager", ".[test]")
    _pytest(session)


@nox.session(name="tests-oldest", python=PYTHON)
def tests_oldest(session):
    """The suite on the oldest supported versions (the floors of pyproject.toml)."""
    session.install("-c", "ci/constraints-oldest.txt", ".[test]")
    _pytest(session)
