"""Solver options."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import CarKineticsError

METHODS = {"tsit5": 0, "rodas4": 1, "auto": 2}


class OptionsError(CarKineticsError, ValueError):
    """Invalid solver options."""


@dataclass(frozen=True)
class SolverOptions:
    """How to integrate.

    Parameters
    ----------
    method : {'auto', 'tsit5', 'rodas4'}
        ``tsit5``: explicit 5(4) pair (non-stiff). ``rodas4``: L-stable Rosenbrock
        method with analytic Jacobian (stiff). ``auto``: Tsit5, switching to RODAS4
        while the problem is stiff.
    rtol : float
        Relative tolerance (1e-13 <= rtol < 1).
    atol : float or mapping of state name to float, optional
        Absolute tolerance in state units. By default each state uses its model
        ``atol``; otherwise ``rtol`` times its extinction threshold for populations
        with a threshold (relative accuracy down to one cell), else 1e-12.
    max_steps : int
        Accepted plus rejected steps allowed per patient.
    max_step : float
        Largest step size (model time units).
    raise_on_failure : bool
        :func:`simulate` raises :class:`SolverError` when integration fails;
        batches always flag the patient instead.
    extinction : bool
        Apply the model's extinction thresholds (default). ``False`` integrates the
        plain ODE, with populations free to fall below one cell.
    """

    method: str = "auto"
    rtol: float = 1e-6
    atol: float | Mapping | None = None
    max_steps: int = 200_000
    max_step: float = math.inf
    raise_on_failure: bool = True
    extinction: bool = True

    def __post_init__(self):
        if self.method not in METHODS:
            from .errors import suggestion

            raise OptionsError(f"`method` must be one of {sorted(METHODS)}, got {self.method!r}"
                               f"{suggestion(str(self.method), METHODS)}")
        if not (isinstance(self.rtol, (int, float)) and 1e-13 <= self.rtol < 1):
            raise OptionsError(f"`rtol` must be a number in [1e-13, 1), got {self.rtol!r}")
        if not (isinstance(self.max_steps, int) and self.max_steps > 0):
            raise OptionsError(f"`max_steps` must be a positive integer, got {self.max_steps!r}")
        if not (self.max_step > 0):
            raise OptionsError(f"`max_step` must be positive, got {self.max_step!r}")
        a = self.atol
        if a is not None and not isinstance(a, Mapping):
            if not (isinstance(a, (int, float)) and a > 0 and math.isfinite(a)):
                raise OptionsError(f"`atol` must be a positive number or a mapping of state to number, got {a!r}")

    @property
    def method_code(self) -> int:
        return METHODS[self.method]

    def atol_vector(self, model) -> np.ndarray:
        """Absolute tolerance per state of ``model``."""
        out = np.empty(model.n_states)
        for i, s in enumerate(model.states):
            if s.atol is not None:
                out[i] = s.atol
            elif s.extinction > 0:
                out[i] = self.rtol * s.extinction
            else:
                out[i] = 1e-12
        if isinstance(self.atol, Mapping):
            for name, v in self.atol.items():
                if name not in model.state_names:
                    from .errors import suggestion

                    raise OptionsError(f"atol: '{name}' is not a state of model '{model.name}'"
                                       f"{suggestion(name, model.state_names)}")
                if not (isinstance(v, (int, float)) and v > 0):
                    raise OptionsError(f"atol[{name!r}] must be positive, got {v!r}")
                out[model.state_names.index(name)] = v
        elif self.atol is not None:
            out[:] = float(self.atol)
        return out
