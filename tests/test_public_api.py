"""The package's public names: what the README and docstrings promise can be imported."""

import ast
import pathlib
import subprocess
import sys

import carkinetics

PACKAGE = pathlib.Path(carkinetics.__file__).parent
SUBPACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))


def test_every_public_name_imports_and_is_documented():
    for name in carkinetics.__all__:
        obj = getattr(carkinetics, name)
        assert (obj.__doc__ or "").strip(), f"carkinetics.{name} has no docstring"
        assert name in carkinetics.__doc__, f"carkinetics.{name} is not listed in the package docstring"


def test_every_public_name_comes_from_a_documented_module():
    for name in carkinetics.__all__:
        module = sys.modules[getattr(carkinetics, name).__module__]
        assert (module.__doc__ or "").strip(), f"{module.__name__} (of carkinetics.{name}) has no module docstring"


def test_every_module_has_a_docstring():
    undocumented = [str(p.relative_to(PACKAGE.parent)) for p in sorted(PACKAGE.rglob("*.py"))
                    if not (ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) or "").strip()]
    assert not undocumented, f"modules without a docstring: {undocumented}"


def test_package_docstring_names_every_subpackage():
    missing = [name for name in SUBPACKAGES if f"``{name}``" not in carkinetics.__doc__]
    assert SUBPACKAGES and not missing, f"subpackages not described in the package docstring: {missing}"


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
