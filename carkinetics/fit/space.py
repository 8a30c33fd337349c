"""The estimated parameters of a fit: names, model indices and log-scale bounds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from carkinetics.errors import suggestion
from carkinetics.fit.errors import FitError
from carkinetics.stats.sampling import latin_hypercube


@dataclass
class ParameterSpace:
    """The estimated parameters: names, model indices, log-scale bounds.

    Build it with :meth:`build`, which checks the names and bounds against the model.
    """

    model: object
    names: tuple
    index: np.ndarray
    log_lower: np.ndarray
    log_upper: np.ndarray

    @classmethod
    def build(cls, model, estimate, bounds=None, base=None):
        """The space of ``estimate`` (names, or one comma-separated string) of ``model``.

        Bounds come from ``bounds`` (name to ``(lower, upper)``), else the model file, else three
        decades either side of the value in ``base`` (default: the model's values); a
        non-positive lower bound is moved three decades below the value. Every problem is
        reported at once as a :class:`~carkinetics.fit.errors.FitError`.
        """
        if isinstance(estimate, str):
            estimate = [s.strip() for s in estimate.split(",") if s.strip()]
        estimate = list(estimate)
        if not estimate:
            raise FitError("no parameters to estimate: give at least one name")
        errs = []
        bounds = dict(bounds or {})
        for b in bounds:
            if b not in estimate:
                errs.append(f"bounds given for '{b}', which is not estimated")
        lo, hi, idx = [], [], []
        base = model.default_parameters() if base is None else np.asarray(base, float)
        for name in estimate:
            if name not in model.parameter_names:
                errs.append(f"'{name}' is not a parameter of model '{model.name}'"
                            f"{suggestion(name, model.parameter_names)}")
                continue
            if estimate.count(name) > 1:
                errs.append(f"'{name}' is listed twice")
                continue
            par = model.parameter(name)
            value = float(base[model.parameter_index(name)])
            b = bounds.get(name, par.bounds)
            if b is None:
                if value <= 0:
                    errs.append(f"'{name}' has no bounds and a non-positive value {value}: give bounds")
                    continue
                b = (value / 1e3, value * 1e3)
            b_lo, b_hi = float(b[0]), float(b[1])
            if b_lo <= 0:
                # log scale needs a positive lower bound: three decades below the typical value
                b_lo = min(value, b_hi) * 1e-3 if value > 0 else b_hi * 1e-6
            if not (0 < b_lo < b_hi) or not math.isfinite(b_hi):
                errs.append(f"'{name}': bounds [{b[0]}, {b[1]}] are not a positive interval (log scale)")
                continue
            idx.append(model.parameter_index(name))
            lo.append(math.log(b_lo))
            hi.append(math.log(b_hi))
        if errs:
            raise FitError("cannot estimate the requested parameters:\n  " + "\n  ".join(errs))
        return cls(model, tuple(estimate), np.array(idx, dtype=np.int64), np.array(lo), np.array(hi))

    @property
    def size(self) -> int:
        """Number of estimated parameters."""
        return len(self.names)

    def clip(self, x):
        """Log-parameters ``x`` clipped into the bounds."""
        return np.clip(x, self.log_lower, self.log_upper)

    def latin_hypercube(self, n, seed):
        """``n`` seeded Latin-hypercube points in the log-bounds box (n x k)."""
        if n <= 0:
            return np.zeros((0, self.size))
        return latin_hypercube(self.log_lower, self.log_upper, n, seed)
