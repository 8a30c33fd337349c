"""Solver options."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from carkinetics.engine.constants import METHOD_CODES
from carkinetics.errors import CarKineticsError

if TYPE_CHECKING:
    from carkinetics.model.spec import Model

#: Method name -> the kernel's method code.
METHODS = METHOD_CODES

#: Largest ``max_steps``: the kernel counts steps in a 64-bit integer, and a billion steps of
#: one patient already take minutes; larger values are typing mistakes (``10**30`` overflowed).
MAX_STEPS = 10**9


def _is_real(x) -> bool:
    """A float or an int (not a bool): what numeric solver options may be."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


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
    atol: float | Mapping[str, float] | None = None
    max_steps: int = 200_000
    max_step: float = math.inf
    raise_on_failure: bool = True
    extinction: bool = True
    #: Where the options were read (``"path: solver"``), named by failure messages; not compared.
    source: str = field(default="", compare=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.method, str) or self.method not in METHODS:
            from carkinetics.errors import suggestion

            raise OptionsError(f"`method` must be one of {sorted(METHODS)}, got {self.method!r}"
                               f"{suggestion(str(self.method), METHODS)}")
        if not (_is_real(self.rtol) and 1e-13 <= self.rtol < 1):
            raise OptionsError(f"`rtol` must be a number in [1e-13, 1), got {self.rtol!r}")
        if not (isinstance(self.max_steps, (int, np.integer)) and not isinstance(self.max_steps, bool)
                and 0 < self.max_steps <= MAX_STEPS):
            raise OptionsError(f"`max_steps` must be a whole number in [1, {MAX_STEPS:_}], got {self.max_steps!r}")
        if not (_is_real(self.max_step) and self.max_step > 0):
            raise OptionsError(f"`max_step` must be a positive number (model time units), got {self.max_step!r}")
        for flag in ("raise_on_failure", "extinction"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise OptionsError(f"`{flag}` must be true or false, got {getattr(self, flag)!r}")
        a = self.atol
        if a is not None and not isinstance(a, Mapping):
            if not (_is_real(a) and a > 0 and math.isfinite(a)):
                raise OptionsError(f"`atol` must be a positive number or a mapping of state to number, got {a!r}")

    @property
    def method_code(self) -> int:
        return METHODS[self.method]

    def atol_vector(self, model: Model) -> np.ndarray:
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
                    from carkinetics.errors import suggestion

                    raise OptionsError(f"atol: '{name}' is not a state of model '{model.name}'"
                                       f"{suggestion(name, model.state_names)}")
                if not (_is_real(v) and v > 0 and math.isfinite(v)):
                    raise OptionsError(f"atol[{name!r}] must be a positive finite number, got {v!r}")
                out[model.state_names.index(name)] = v
        elif self.atol is not None:
            out[:] = float(self.atol)
        return out
