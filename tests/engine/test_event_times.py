"""Event times that differ only by rounding (issue 12: a 1.4e-14-day segment failed every patient)."""

import numpy as np
import pytest

from carkinetics import Dose, SolverOptions, simulate

TIMES = np.linspace(0, 60, 61)
OPTS = SolverOptions(rtol=1e-8)


@pytest.mark.parametrize("method", ["tsit5", "rodas4"])
def test_events_a_rounding_error_apart_act_as_one_time(linear_model, method):
    t_other = 80 - 70.0 + 1.4e-14  # "day 10" reached along another path
    assert 0 < t_other - 10.0 < 1e-13
    opts = SolverOptions(rtol=1e-8, method=method)
    near = simulate(linear_model, [Dose(10.0, "b", 3e5), Dose(t_other, "b", 2e5)], TIMES, options=opts)
    same = simulate(linear_model, [Dose(10.0, "b", 3e5), Dose(10.0, "b", 2e5)], TIMES, options=opts)
    assert near.status == 0, near.message
    np.testing.assert_allclose(near.states, same.states, rtol=1e-12)


def test_events_further_apart_stay_separate(linear_model):
    # 1e-6 days apart: a real segment, integrated (state grows/decays in between)
    res = simulate(linear_model, [Dose(10.0, "b", 3e5), Dose(10.0 + 1e-6, "b", 2e5)], TIMES, options=OPTS)
    assert res.status == 0
    assert list(res.events_applied) == [True, True]
