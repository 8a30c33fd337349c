"""BatchResult.to_frame (long, patient-keyed) and to_xarray, against hand-built small results."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from carkinetics.engine.constants import COUNTER_NAMES
from carkinetics.simulation.result import BatchResult


def _model():
    var = lambda name, unit: SimpleNamespace(name=name, unit=unit)  # noqa: E731
    states = [var("A", "cells"), var("S", "cells")]
    outputs = [var("B", "cells/uL"), var("C", "1")]
    return SimpleNamespace(name="toy", states=states, outputs=outputs, state_names=["A", "S"],
                           output_names=["B", "C"])


@pytest.fixture
def batch():
    """2 patients, 3 times; saved: state A, outputs B and C; patient 1 failed from the last time on."""
    times = np.array([0.0, 1.5, 7.0])
    a = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, np.nan]])
    b = np.array([[0.1, 0.2, 0.3], [-0.0, 5e-324, np.nan]])
    c = np.array([[100.0, 200.0, 300.0], [1e300, -1.0, np.nan]])
    return BatchResult(model=_model(), times=times, parameters=np.zeros((2, 1)), states=a[:, :, None],
                       outputs=np.stack([b, c], axis=2), state_names=("A",), output_names=("B", "C"),
                       status=np.array([0, 3]), counters=np.zeros((2, len(COUNTER_NAMES)), dtype=np.int64),
                       events_applied=np.zeros((2, 0)), final_states=np.zeros((2, 2)))


def test_to_frame_is_long_and_patient_keyed(batch):
    frame = batch.to_frame()
    values = {"A": batch.states[:, :, 0], "B": batch.outputs[:, :, 0], "C": batch.outputs[:, :, 1]}
    expected = [(i, t, v, values[v][i, k]) for i in range(2) for k, t in enumerate(batch.times) for v in "ABC"]
    assert list(frame.columns) == ["patient", "time", "variable", "value"]
    assert len(frame) == len(expected) == 18
    assert frame["patient"].tolist() == [e[0] for e in expected]
    assert frame["time"].tolist() == [e[1] for e in expected]
    assert frame["variable"].astype(str).tolist() == [e[2] for e in expected]
    np.testing.assert_array_equal(frame["value"].to_numpy().view(np.uint64),
                                  np.array([e[3] for e in expected]).view(np.uint64))  # NaN, -0.0 bit for bit
    assert frame["patient"].dtype == np.int64 and frame["time"].dtype == np.float64
    assert isinstance(frame["variable"].dtype, pd.CategoricalDtype)
    assert list(frame["variable"].cat.categories) == ["A", "B", "C"]
    # a patient's rows, pivoted back, are its time courses
    wide = frame[frame["patient"] == 1].pivot(index="time", columns="variable", values="value")
    np.testing.assert_array_equal(wide["C"].to_numpy(), values["C"][1])


def test_to_frame_selected_variables(batch):
    frame = batch.to_frame(["C", "A"])
    assert frame["variable"].astype(str).tolist()[:2] == ["C", "A"] and len(frame) == 12
    assert frame[frame["variable"] == "C"]["value"].tolist()[:3] == [100.0, 200.0, 300.0]
    assert batch.to_frame("B")["value"].tolist()[:3] == [0.1, 0.2, 0.3]


def test_to_frame_unknown_or_unsaved_names(batch):
    with pytest.raises(KeyError, match="'S' was not saved"):
        batch.to_frame(["S"])
    with pytest.raises(KeyError, match="'D' is not a state of model 'toy'"):
        batch.to_frame(["D"])


def test_to_xarray(batch):
    pytest.importorskip("xarray")
    ds = batch.to_xarray()
    assert set(ds.data_vars) == {"A", "B", "C", "status"}
    assert ds["B"].dims == ("patient", "time") and ds["status"].dims == ("patient",)
    assert ds["patient"].values.tolist() == [0, 1] and ds["time"].values.tolist() == [0.0, 1.5, 7.0]
    assert float(ds["C"].sel(patient=0, time=1.5)) == 200.0
    assert np.isnan(float(ds["A"].sel(patient=1, time=7.0)))
    assert ds["B"].attrs == {"unit": "cells/uL", "kind": "output"} and ds["A"].attrs["kind"] == "state"
    assert ds["status"].values.tolist() == [0, 3]
    # the same numbers as the long table
    long = batch.to_frame()
    back = ds[["A", "B", "C"]].to_dataframe().reset_index().melt(id_vars=["patient", "time"], var_name="variable")
    merged = long.assign(variable=long["variable"].astype(str)).merge(back, on=["patient", "time", "variable"])
    np.testing.assert_array_equal(merged["value_x"].to_numpy(), merged["value_y"].to_numpy())
