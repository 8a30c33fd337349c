"""The package's public names: what the README and docstrings promise can be imported."""

import subprocess
import sys

import carkinetics


def test_every_public_name_imports_and_is_documented():
    for name in carkinetics.__all__:
        obj = getattr(carkinetics, name)
        assert (obj.__doc__ or "").strip(), f"carkinetics.{name} has no docstring"
        assert name in carkinetics.__doc__, f"carkinetics.{name} is not listed in the package docstring"


def test_names_from_the_package_docstring_import():
    from carkinetics import load_scenario, run_cohort, sweep  # noqa: F401  (the docstring promises them)


def test_unknown_name_is_an_attribute_error():
    try:
        carkinetics.no_such_name  # noqa: B018
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("expected AttributeError")


def test_import_stays_light():
    # the command line imports the package first: cohorts, sweeps, pandas come on first use
    code = ("import sys, carkinetics; heavy = [m for m in ('pandas', 'matplotlib', 'carkinetics.cohort.pipeline', "
            "'carkinetics.studies.sweep') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
