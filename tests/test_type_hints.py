"""Type hints of the public API: every parameter and every return value is annotated.

The public API is ``carkinetics.__all__``, the public methods of the classes it returns
(Model, Trajectory, BatchResult, Schedule, SolverOptions, Scenario, CohortResult,
SweepResult, KaplanMeier, CumulativeIncidence) and a few functions documented for direct
import. The annotations must also resolve with :func:`typing.get_type_hints` (names imported
only for type checking, such as pandas, resolve because the checker sees the ``TYPE_CHECKING``
imports as well).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import typing

import pytest

import carkinetics

#: Extra public functions outside ``__all__``: (module, name).
EXTRA_FUNCTIONS = [
    ("carkinetics.simulation.event_table", "schedule_to_frame"),
    ("carkinetics.simulation.event_table", "schedule_from_frame"),
    ("carkinetics.stats.km", "kaplan_meier"),
    ("carkinetics.stats.competing", "aalen_johansen"),
]

#: Classes returned by the public functions, whose public methods are part of the API.
RETURNED_CLASSES = [
    ("carkinetics.scenario.load", "Scenario"),
    ("carkinetics.cohort.result", "CohortResult"),
    ("carkinetics.studies.sweep_result", "SweepResult"),
    ("carkinetics.stats.km", "KaplanMeier"),
    ("carkinetics.stats.competing", "CumulativeIncidence"),
]

#: Error classes: their constructors live in ``carkinetics.errors``; checked there separately.
ERROR_NAMES = {"CarKineticsError", "ModelFileError", "ScenarioError", "SolverError"}


def _public_objects():
    objects = {}
    for name in carkinetics.__all__:
        objects[f"carkinetics.{name}"] = getattr(carkinetics, name)
    for module, name in EXTRA_FUNCTIONS + RETURNED_CLASSES:
        objects[f"{module}.{name}"] = getattr(importlib.import_module(module), name)
    return objects


def _own_methods(cls):
    """(qualified name, function) of every public method, property getter and ``__init__``
    defined by ``cls`` itself (inherited methods of ``Sequence``, ``Exception`` are not its API)."""
    found = []
    for attr, value in vars(cls).items():
        if attr.startswith("_") and attr != "__init__":
            continue
        if isinstance(value, property):
            value = value.fget
        elif isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value):
            found.append((f"{cls.__qualname__}.{attr}", value))
    return found


def _callables():
    found = []
    for qualname, obj in _public_objects().items():
        if qualname.rsplit(".", 1)[1] in ERROR_NAMES:
            continue
        if inspect.isclass(obj):
            found.extend((f"{obj.__module__}.{name}", func) for name, func in _own_methods(obj))
        else:
            found.append((qualname, obj))
    return found


CALLABLES = _callables()


#: Optional dependencies a ``TYPE_CHECKING`` block may name (their hints resolve only when installed).
OPTIONAL_MODULES = {"xarray"}


def _type_check_namespace(func):
    """The module globals of ``func`` plus what its ``if TYPE_CHECKING:`` block imports, and the
    optional modules of that block that are not installed."""
    module = sys.modules[func.__module__]
    namespace = dict(module.__dict__)
    tree = ast.parse(inspect.getsource(module))
    missing = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                try:
                    exec(compile(ast.Module([statement], []), module.__file__, "exec"), namespace)  # noqa: S102
                except ImportError:
                    if getattr(statement, "module", None) or not all(
                            a.name.split(".")[0] in OPTIONAL_MODULES for a in statement.names):
                        raise
                    missing.update(a.asname or a.name for a in statement.names)
    return namespace, missing


def test_the_list_covers_the_api():
    names = {name for name, _ in CALLABLES}
    # a few hand-picked members of each group: a typo in the collection would drop a whole group
    for expected in ["carkinetics.load_model", "carkinetics.simulate", "carkinetics.Dose",
                     "carkinetics.model.spec.Model.parameter_vector",
                     "carkinetics.simulation.result.BatchResult.to_frame",
                     "carkinetics.simulation.schedule.Schedule.shifted",
                     "carkinetics.simulation.options.SolverOptions.atol_vector",
                     "carkinetics.scenario.load.Scenario.schedule",
                     "carkinetics.cohort.result.CohortResult.write",
                     "carkinetics.studies.sweep_result.SweepResult.outcome",
                     "carkinetics.stats.km.kaplan_meier", "carkinetics.load_sweep"]:
        assert expected in names, f"{expected} is missing from the checked API"


@pytest.mark.parametrize("qualname, func", CALLABLES, ids=[name for name, _ in CALLABLES])
def test_every_parameter_and_return_is_annotated(qualname, func):
    signature = inspect.signature(func)
    missing = [p.name for i, p in enumerate(signature.parameters.values())
               if p.annotation is inspect.Parameter.empty and not (i == 0 and p.name in ("self", "cls"))]
    assert not missing, f"{qualname}: parameters without a type annotation: {missing}"
    assert signature.return_annotation is not inspect.Signature.empty, f"{qualname}: no return annotation"


@pytest.mark.parametrize("qualname, func", CALLABLES, ids=[name for name, _ in CALLABLES])
def test_annotations_resolve(qualname, func):
    namespace, missing = _type_check_namespace(func)
    if any(name in str(annotation) for name in missing for annotation in func.__annotations__.values()):
        pytest.skip(f"{qualname} names an optional module that is not installed: {sorted(missing)}")
    hints = typing.get_type_hints(func, globalns=namespace)
    parameters = [p for p in inspect.signature(func).parameters if p not in ("self", "cls")]
    assert set(parameters) <= set(hints), f"{qualname}: unresolved hints for {set(parameters) - set(hints)}"
    assert "return" in hints


def _error_constructors():
    found = []
    for name in sorted(ERROR_NAMES):
        init = getattr(carkinetics, name).__init__
        if inspect.isfunction(init):  # not Exception's own constructor
            found.append((f"carkinetics.{name}.__init__", init))
    return found


@pytest.mark.parametrize("qualname, func", _error_constructors(), ids=[n for n, _ in _error_constructors()])
def test_error_constructors_are_annotated(qualname, func):
    test_every_parameter_and_return_is_annotated(qualname, func)
    test_annotations_resolve(qualname, func)


def test_annotations_do_not_import_pandas():
    # ``from __future__ import annotations`` keeps the hints as strings: no pandas on import
    import subprocess

    code = ("import sys, carkinetics, carkinetics.simulation.event_table, carkinetics.stats.km; "
            "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
