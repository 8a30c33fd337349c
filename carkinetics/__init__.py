"""carkinetics: CAR-T cell kinetics for protocol design in T-cell leukaemia.

The public API (everything in ``__all__``):

- :func:`load_model` reads and validates a declarative model file (:class:`Model`);
- :func:`simulate` runs one patient (:class:`Trajectory`), :func:`simulate_batch` many in
  parallel (:class:`BatchResult`);
- :class:`Schedule`, :class:`Event`, :class:`Action`, :func:`Dose` describe events;
- :class:`SolverOptions` chooses the integrator and tolerances;
- :func:`load_scenario` reads a scenario file (protocol + question);
- :func:`run_cohort` simulates a virtual cohort of a scenario, :func:`load_cohort_result`
  reads one back; :func:`sample_population` draws patients without simulating;
- :func:`sweep` runs a protocol grid, :func:`load_sweep` reads one back;
- :func:`load_data` reads a NONMEM-style data file, :func:`load_targets` the reference table;
- :class:`CarKineticsError` is the base of every input error (:class:`ModelFileError`,
  :class:`ScenarioError`), :class:`SolverError` a failed integration.

The engine and the model loader are imported with the package; the rest is imported on
first use, so ``import carkinetics`` stays light for the command line.
"""

from carkinetics.errors import (CarKineticsError as CarKineticsError, ModelFileError as ModelFileError,
                     ScenarioError as ScenarioError, SolverError as SolverError)
from carkinetics.model.spec import Model as Model, load_model as load_model
from carkinetics.simulation.options import SolverOptions as SolverOptions
from carkinetics.simulation.result import BatchResult as BatchResult, Trajectory as Trajectory
from carkinetics.simulation.schedule import Action as Action, Dose as Dose, Event as Event, Schedule as Schedule
from carkinetics.simulation.simulate import simulate as simulate, simulate_batch as simulate_batch

__version__ = "0.1.0"

#: Public names imported on first use: name -> module.
_LAZY = {
    "load_scenario": "scenario.load",
    "run_cohort": "cohort.pipeline",
    "load_cohort_result": "cohort.pipeline",
    "sample_population": "scenario.population",
    "sweep": "studies.sweep",
    "load_sweep": "studies.sweep",
    "load_data": "fit.data",
    "load_targets": "fit.reference",
}

__all__ = [
    "Action", "BatchResult", "CarKineticsError", "Dose", "Event", "Model", "ModelFileError",
    "Schedule", "ScenarioError", "SolverError", "SolverOptions", "Trajectory", "load_model",
    "simulate", "simulate_batch", *_LAZY,
]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'carkinetics' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
