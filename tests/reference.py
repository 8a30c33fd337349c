"""Independent reference solutions with scipy's Radau, piecewise between events.

The right-hand side is the plain-Python translation of the model's expressions
(carkinetics.model.codegen.python_rhs); events and breakpoints are applied between
solve_ivp calls; nothing of the numba kernel is used.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from carkinetics.model import expressions as ex
from carkinetics.model.codegen import python_rhs


def reference_solve(model, schedule, times, parameters=None, rtol=1e-10, atol=1e-12, t0=None,
                    method="Radau"):
    """States at ``times`` (n_times, n_states), no extinction thresholds."""
    f = python_rhs(model)
    p = model.default_parameters() if parameters is None else np.asarray(parameters, float).copy()
    y = model.initial_state(p)
    times = np.asarray(times, float)
    events = sorted(enumerate(schedule), key=lambda ie: (ie[1].time, ie[0]))
    breaks = [float(b) for b in model.breakpoint_times(p)[0]] if model.breakpoints else []
    start = times[0] if t0 is None else t0
    if events:
        start = min(start, events[0][1].time)
    boundaries = sorted({e.time for _, e in events} | {b for b in breaks if b > start} | {times[-1]})
    boundaries = [b for b in boundaries if start <= b <= times[-1]]
    out = np.full((len(times), model.n_states), np.nan)
    t = start
    k = 0
    ev_i = 0
    for tb in [start] + [b for b in boundaries if b > start]:
        if tb > t:
            t_left = np.nextafter(tb, -np.inf)
            pp = p.copy()

            def rhs(tt, yy, pp=pp, t_left=t_left):
                return f(min(tt, t_left), yy, pp)

            mask = (times > t) & (times < tb)
            sol = solve_ivp(rhs, (t, tb), y, method=method, rtol=rtol, atol=atol, dense_output=True)
            assert sol.success, sol.message
            if mask.any():
                out[mask] = sol.sol(times[mask]).T
            y = sol.sol(tb)
            t = tb
        # events at t (conditions on the state before them)
        group = []
        while ev_i < len(events) and events[ev_i][1].time <= t:
            group.append(events[ev_i][1])
            ev_i += 1
        fire = []
        for e in group:
            if e.when is None:
                fire.append(True)
            else:
                env = model.environment(y, p, t)
                fire.append(bool(ex.evaluate(model.parse_condition(e.when), env)))
        for e, go in zip(group, fire):
            if not go:
                continue
            for a in e.actions:
                if a.kind == "set_parameter":
                    p[model.parameter_names.index(a.target)] = a.value
                    continue
                j = model.state_names.index(a.target)
                if a.kind == "add":
                    y[j] += a.value
                elif a.kind == "multiply":
                    y[j] *= a.value
                else:
                    y[j] = a.value
        at = times == t
        out[at] = y
    return out


def scaled_error(y, y_ref, rtol, atol):
    """|y - y_ref| / (atol + rtol |y_ref|), elementwise (scipy's compute_error idea)."""
    return np.abs(y - y_ref) / (atol + rtol * np.abs(y_ref))
