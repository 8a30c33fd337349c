"""carkinetics: CAR-T cell kinetics for protocol design in T-cell leukaemia.

The public API:

- :func:`load_model` reads and validates a declarative model file;
- :func:`simulate` runs one patient, :func:`simulate_batch` many in parallel;
- :class:`Schedule`, :class:`Event`, :class:`Action`, :func:`Dose` describe events;
- :class:`SolverOptions` chooses the integrator and tolerances;
- :func:`load_scenario` reads a scenario file (protocol + question).
"""

from .errors import (CarKineticsError as CarKineticsError, ModelFileError as ModelFileError,
                     ScenarioError as ScenarioError, SolverError as SolverError)
from .model import Model as Model, load_model as load_model
from .options import SolverOptions as SolverOptions
from .result import BatchResult as BatchResult, Trajectory as Trajectory
from .schedule import Action as Action, Dose as Dose, Event as Event, Schedule as Schedule
from .simulate import simulate as simulate, simulate_batch as simulate_batch

__version__ = "0.1.0"
