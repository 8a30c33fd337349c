"""Results of simulations: :class:`Trajectory` (one patient) and :class:`BatchResult`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from carkinetics.engine.constants import COUNTER_NAMES, STATUS_MESSAGES

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from carkinetics.model.spec import Model

def status_message(code: int) -> str:
    """The message of a status code (:data:`STATUS_MESSAGES`), or "unknown status <code>"."""
    return STATUS_MESSAGES.get(int(code), f"unknown status {code}")


@dataclass
class Trajectory:
    """States and outputs of one simulation at the requested times.

    Attributes
    ----------
    times : ndarray, shape (n_times,)
        Output times (model time unit). Values at an event time are taken after
        the event (right-continuous).
    states : ndarray, shape (n_times, n_states)
    outputs : ndarray, shape (n_times, n_outputs)
    parameters : ndarray, shape (n_parameters,)
    status : int
        0 on success; see :data:`STATUS_MESSAGES`.
    events_applied : ndarray of bool, shape (n_events,)
        Whether each event fired (False when its condition did not hold or it was
        after the last output time).
    """

    model: Model
    times: np.ndarray
    states: np.ndarray
    outputs: np.ndarray
    parameters: np.ndarray
    status: int = 0
    counters: np.ndarray = field(default_factory=lambda: np.zeros(len(COUNTER_NAMES), dtype=np.int64))
    events_applied: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    event_names: list[str] = field(default_factory=list)
    #: Number of times each of the model's own events (``model.event_names``) fired.
    model_event_count: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: Time each model event first fired (NaN: never).
    model_event_time: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def message(self) -> str:
        return status_message(self.status)

    @property
    def success(self) -> bool:
        return self.status == 0

    def __getattr__(self, name: str) -> int:
        if name in COUNTER_NAMES:
            return int(self.__dict__["counters"][COUNTER_NAMES.index(name)])
        raise AttributeError(name)

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.model.state_names

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.model.output_names

    def __getitem__(self, name: str) -> np.ndarray:
        """Time course of a state or an output, by name."""
        if name in self.model.output_names:
            return self.outputs[:, self.model.output_names.index(name)]
        if name in self.model.state_names:
            return self.states[:, self.model.state_names.index(name)]
        from carkinetics.errors import suggestion

        raise KeyError(f"'{name}' is neither a state nor an output of model '{self.model.name}'"
                       f"{suggestion(name, self.model.state_names + self.model.output_names)}")

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per time and variable (``time, variable, kind, unit, value``)."""
        import pandas as pd

        frames = []
        units = {s.name: s.unit for s in self.model.states} | {o.name: o.unit for o in self.model.outputs}
        for kind, names, arr in (("state", self.model.state_names, self.states),
                                 ("output", self.model.output_names, self.outputs)):
            if arr.size == 0:
                continue
            n_t, n_v = arr.shape
            frames.append(pd.DataFrame({
                "time": np.repeat(self.times, n_v),
                "variable": np.tile(np.array(names, dtype=object), n_t),
                "kind": kind,
                "unit": np.tile(np.array([units[n] for n in names], dtype=object), n_t),
                "value": arr.reshape(-1),
            }))
        return pd.concat(frames, ignore_index=True)

    def to_wide(self) -> pd.DataFrame:
        """Wide table: one row per time, one column per state and output."""
        import pandas as pd

        data = {"time": self.times}
        for i, n in enumerate(self.model.state_names):
            data[n] = self.states[:, i]
        for i, n in enumerate(self.model.output_names):
            data[n] = self.outputs[:, i]
        return pd.DataFrame(data)


@dataclass
class BatchResult:
    """Results of :func:`carkinetics.simulate_batch` for N patients.

    ``states`` (N, n_times, n_saved_states) and ``outputs`` (N, n_times,
    n_saved_outputs) hold what was requested; failed patients have ``status != 0``
    and NaN from the failure onwards.
    """

    model: Model
    times: np.ndarray
    parameters: np.ndarray
    states: np.ndarray
    outputs: np.ndarray
    state_names: tuple[str, ...]
    output_names: tuple[str, ...]
    status: np.ndarray
    counters: np.ndarray
    events_applied: np.ndarray
    final_states: np.ndarray
    event_names: list[str] = field(default_factory=list)
    #: (N, n_model_events) number of times each of the model's own events (``model.event_names``) fired.
    model_event_count: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    #: (N, n_model_events) time each model event first fired (NaN: never).
    model_event_time: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def model_event_names(self) -> tuple[str, ...]:
        """Names of the model's own events, the columns of :attr:`model_event_count` and :attr:`model_event_time`."""
        return self.model.event_names

    @property
    def n_patients(self) -> int:
        return self.parameters.shape[0]

    @property
    def success(self) -> np.ndarray:
        return self.status == 0

    def counter(self, name: str) -> np.ndarray:
        """(N,) values of one solver counter, by name (see :data:`COUNTER_NAMES`)."""
        return self.counters[:, COUNTER_NAMES.index(name)]

    def output(self, name: str) -> np.ndarray:
        """(N, n_times) time courses of one saved output (KeyError with a suggestion if not saved)."""
        return self.outputs[:, :, self._index(name, self.output_names, "output")]

    def state(self, name: str) -> np.ndarray:
        """(N, n_times) time courses of one saved state (KeyError with a suggestion if not saved)."""
        return self.states[:, :, self._index(name, self.state_names, "state")]

    def _index(self, name, saved, what) -> int:
        if name in saved:
            return list(saved).index(name)
        from carkinetics.errors import suggestion

        model = self.model
        known = model.output_names if what == "output" else model.state_names
        why = ("was not saved (simulate_batch save_outputs / save_states)" if name in known
               else f"is not {'an' if what == 'output' else 'a'} {what} of model '{model.name}'")
        raise KeyError(f"'{name}' {why}{suggestion(name, list(saved) or known)}")

    def trajectory(self, i: int) -> Trajectory:
        """Patient ``i`` as a :class:`Trajectory` (only the saved variables are filled)."""
        model = self.model
        states = np.full((len(self.times), model.n_states), np.nan)
        for j, n in enumerate(self.state_names):
            states[:, model.state_names.index(n)] = self.states[i, :, j]
        outputs = np.full((len(self.times), model.n_outputs), np.nan)
        for j, n in enumerate(self.output_names):
            outputs[:, model.output_names.index(n)] = self.outputs[i, :, j]
        return Trajectory(model, self.times, states, outputs, self.parameters[i], int(self.status[i]),
                          self.counters[i].copy(), self.events_applied[i].astype(bool), self.event_names)

    def failures(self) -> list[tuple[int, str]]:
        """Indices and messages of failed patients."""
        idx = np.flatnonzero(self.status != 0)
        return [(int(i), status_message(self.status[i])) for i in idx]

    def _saved_variables(self, variables):
        """(name, (N, n_times) array) of each saved state, then each saved output; ``variables``: only these."""
        saved = [(n, self.states[:, :, j]) for j, n in enumerate(self.state_names)]
        saved += [(n, self.outputs[:, :, j]) for j, n in enumerate(self.output_names)]
        if variables is None:
            return saved
        by_name = dict(saved)
        picked = []
        for name in dict.fromkeys([variables] if isinstance(variables, str) else variables):
            if name not in by_name:
                what = "output" if name in self.model.output_names else "state"
                self._index(name, self.output_names if what == "output" else self.state_names, what)
            picked.append((name, by_name[name]))
        return picked

    def to_frame(self, variables: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Long, patient-keyed table of the saved time courses: ``patient, time, variable, value``.

        One row per patient, time and variable, ordered by patient, then time, then variable
        (the saved states, then the saved outputs, in their order); failed patients keep their
        rows (NaN from the failure onwards; see :attr:`status`). ``variable`` is categorical
        (its categories in that order), ``patient`` the 0-based index in the batch.

        Parameters
        ----------
        variables : str or sequence of str, optional
            Only these saved states or outputs (default: all saved ones).

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        KeyError
            For a name that is not saved, with a suggestion.
        """
        import pandas as pd

        saved = self._saved_variables(variables)
        n, n_t, n_v = self.n_patients, len(self.times), len(saved)
        values = np.empty((n, n_t, n_v))
        for j, (_, arr) in enumerate(saved):
            values[:, :, j] = arr
        names = [name for name, _ in saved]
        return pd.DataFrame({
            "patient": np.repeat(np.arange(n, dtype=np.int64), n_t * n_v),
            "time": np.tile(np.repeat(np.asarray(self.times, dtype=float), n_v), n),
            "variable": pd.Categorical.from_codes(np.tile(np.arange(n_v), n * n_t), categories=names),
            "value": values.reshape(-1),
        })

    def to_xarray(self, variables: str | Sequence[str] | None = None) -> xr.Dataset:
        """The saved time courses as an :class:`xarray.Dataset` (needs xarray).

        One data variable of dimensions ``(patient, time)`` per saved state and output (with
        its ``unit`` and ``kind`` as attributes), and ``status`` (dimension ``patient``);
        coordinates ``patient`` (0-based) and ``time``.

        Parameters
        ----------
        variables : str or sequence of str, optional
            Only these saved states or outputs (default: all saved ones).

        Returns
        -------
        xarray.Dataset

        Raises
        ------
        ImportError
            Without xarray.
        KeyError
            For a name that is not saved, with a suggestion.
        """
        import xarray as xr

        model = self.model
        units = {s.name: s.unit for s in model.states} | {o.name: o.unit for o in model.outputs}
        data = {}
        for name, arr in self._saved_variables(variables):
            kind = "state" if name in self.state_names else "output"
            data[name] = (("patient", "time"), np.asarray(arr, dtype=float), {"unit": units.get(name, ""),
                                                                               "kind": kind})
        data["status"] = (("patient",), np.asarray(self.status))
        return xr.Dataset(data, coords={"patient": np.arange(self.n_patients, dtype=np.int64),
                                        "time": np.asarray(self.times, dtype=float)},
                          attrs={"model": str(getattr(model, "name", ""))})
