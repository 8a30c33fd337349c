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

Layout: subpackages in layers, each importing only from those listed before it
(``errors``, ``progress``, ``version`` and ``io`` are the ground floor):

- ``engine``: the numba integrator sources (Tsit5, RODAS4, events, batch driver) and the
  constants they share with Python, generated from one table;
- ``model``: the model language (safe expressions), model files and their validation, code
  generation of one cached kernel per model;
- ``simulation``: events and schedules, solver options, :func:`simulate`, results;
- ``stats``: intervals, Kaplan-Meier, quantiles, Latin hypercube sampling, the outcome grammar
  (``endpoint:statistic@day``), cohort summaries;
- ``scenario``: scenario files (one ordered schema of sections), the virtual population,
  endpoints, observed data, the reference table of reported numbers;
- ``plots``: figures, one module per family; matplotlib is imported inside the functions;
- ``cohort``: virtual cohorts: the one chunk loop, streaming quantile bands, results on disk;
- ``fit``: parameter spaces, problems, likelihoods, optimisers, uncertainty, population and
  target fits;
- ``studies``: runs, sweeps (local or on Dask), sensitivity, validation, calibration;
- ``cli``: the ``carkinetics`` command, one module per command;
- ``io``: atomic output folders, termination signals, provenance, result records (JSON/CSV),
  the fast CSV writer, the TOML writer.
"""

from carkinetics.errors import (CarKineticsError as CarKineticsError, ModelFileError as ModelFileError,
                                ScenarioError as ScenarioError, SolverError as SolverError)
from carkinetics.model.load import load_model as load_model
from carkinetics.model.spec import Model as Model
from carkinetics.simulation.options import SolverOptions as SolverOptions
from carkinetics.simulation.result import BatchResult as BatchResult, Trajectory as Trajectory
from carkinetics.simulation.schedule import Action as Action, Dose as Dose, Event as Event, Schedule as Schedule
from carkinetics.simulation.simulate import simulate as simulate, simulate_batch as simulate_batch
from carkinetics.version import __version__ as __version__

#: Public names imported on first use (they need pandas), each from the module that owns it.
_LAZY = ("load_scenario", "run_cohort", "load_cohort_result", "sample_population", "sweep", "load_sweep",
         "load_data", "load_targets")

__all__ = [
    "Action", "BatchResult", "CarKineticsError", "Dose", "Event", "Model", "ModelFileError",
    "Schedule", "ScenarioError", "SolverError", "SolverOptions", "Trajectory", "load_model",
    "simulate", "simulate_batch", *_LAZY,
]


def _import_lazy(name):
    if name == "load_scenario":
        from carkinetics.scenario.load import load_scenario as value
    elif name == "run_cohort":
        from carkinetics.cohort.pipeline import run_cohort as value
    elif name == "load_cohort_result":
        from carkinetics.cohort.result import load_cohort_result as value
    elif name == "sample_population":
        from carkinetics.scenario.sampling import sample_population as value
    elif name == "sweep":
        from carkinetics.studies.sweep import sweep as value
    elif name == "load_sweep":
        from carkinetics.studies.sweep_result import load_sweep as value
    elif name == "load_data":
        from carkinetics.scenario.data import load_data as value
    else:
        from carkinetics.scenario.reference import load_targets as value
    return value


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'carkinetics' has no attribute '{name}'")
    value = _import_lazy(name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
