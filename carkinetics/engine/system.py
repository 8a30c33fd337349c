"""The model's ODE system as the integrators see it: extinct states held at zero, stage times,
error norm, Jacobian, initial life cycle and step size, recording of outputs."""

@njit(**_JIT)
def _stage_time(tt, t_end):
    """Time at which a stage is evaluated: the left limit at the end of a segment.

    Segments end at events and breakpoints, where parameters or switches such as
    ``where(t < tmax, ...)`` change; a step ending there must see the values from
    the left, the next segment starts with those from the right.
    """
    return np.nextafter(t_end, -np.inf) if tt >= t_end else tt


@njit(**_JIT)
def _f(t, y, p, ext, dy):
    """Right-hand side of one patient with extinct states held at zero."""
    model_rhs(t, y, p, dy)
    if ext[N_STATES] > 0:
        for i in range(N_STATES):
            if ext[i] == EXTINCT:
                dy[i] = 0.0


@njit(**_JIT)
def _norm(err, y0, y1, rtol, atol, ext):
    """Weighted RMS norm of ``err`` (scipy/Hairer convention)."""
    s = 0.0
    for i in range(N_STATES):
        sc = atol[i] + rtol * max(abs(y0[i]), abs(y1[i]))
        r = err[i] / sc
        s += 0.0 if ext[i] == EXTINCT else r * r
    return math.sqrt(s / N_STATES)



@njit(**_JIT)
def _jacobian(t, y, p, ext, J, dfdt):
    for i in range(N_STATES):
        dfdt[i] = 0.0
        for j in range(N_STATES):
            J[i, j] = 0.0
    model_jac(t, y, p, J, dfdt)
    if ext[N_STATES] > 0:
        for i in range(N_STATES):
            if ext[i] == EXTINCT:
                dfdt[i] = 0.0
                for j in range(N_STATES):
                    J[i, j] = 0.0



@njit(**_JIT)
def _init_life(y, ext, thr):
    """Initial life cycle: populations below their threshold start at zero (NEW)."""
    ext[N_STATES] = 0
    for i in range(N_STATES):
        ext[i] = ALIVE
        if thr[i] > 0.0 and y[i] < thr[i]:
            y[i] = 0.0
            ext[i] = NEW



@njit(**_JIT)
def _initial_step(t, t_end, y, f0, p, ext, rtol, atol, ytmp, f1, order):
    """Initial step size (Hairer, Norsett & Wanner, sec. II.4; as scipy)."""
    span = t_end - t
    d0 = 0.0
    d1 = 0.0
    for i in range(N_STATES):
        if ext[i] == EXTINCT:
            continue
        sc = atol[i] + rtol * abs(y[i])
        d0 += (y[i] / sc) ** 2
        d1 += (f0[i] / sc) ** 2
    d0 = math.sqrt(d0 / N_STATES)
    d1 = math.sqrt(d1 / N_STATES)
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    h0 = min(h0, span)
    for i in range(N_STATES):
        ytmp[i] = y[i] + h0 * f0[i]
    _f(_stage_time(t + h0, t_end), ytmp, p, ext, f1)
    d2 = 0.0
    for i in range(N_STATES):
        if ext[i] == EXTINCT:
            continue
        sc = atol[i] + rtol * abs(y[i])
        d2 += ((f1[i] - f0[i]) / sc) ** 2
    d2 = math.sqrt(d2 / N_STATES) / h0
    if not (d2 == d2):  # the trial point overflowed
        h1 = 1e-6 * span
    elif d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1.0))
    return min(100.0 * h0, h1, span)



@njit(**_JIT)
def _lane_outputs(tau, ystate, PL, li, otmp):
    """The model's outputs at ``ystate`` with lane li's parameters, read in place (its column of
    PL): the view is made here, where no reference to it is counted; a copy of the parameters
    for each step with an output time cost as much as the outputs."""
    model_outputs(tau, ystate, PL[:, li], otmp)


@njit(**_JIT)
def _record(tau, ystate, p, i_pat, k, state_idx, output_idx, out_states, out_outputs, otmp):
    """Store the state (and outputs) of patient i_pat at output time index k."""
    for j in range(state_idx.shape[0]):
        out_states[i_pat, k, j] = ystate[state_idx[j]]
    if output_idx.shape[0] > 0:
        model_outputs(tau, ystate, p, otmp)
        for j in range(output_idx.shape[0]):
            out_outputs[i_pat, k, j] = otmp[output_idx[j]]
