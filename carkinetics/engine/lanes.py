"""Lane bookkeeping: the lane arrays, a patient entering and leaving a lane, starting a
segment, step sizes, stiffness checks."""

# The arrays of a thread's lanes travel as one named tuple (Lanes), the scratch vectors of
# the lane being handled as another (Work), the kernel's inputs and outputs as Problem and
# Results: they reach the helpers that run a few times per patient (_lane_start,
# _lane_at_time, _lanes_init). Numba takes an atomic reference count for every array taken
# from a tuple, so the helpers that run at every step take their arrays one by one:
# _lanes_tsit5, _step_size (numbers only), _lane_rodas and _rodas_step, _lane_stiff_check,
# _record, _lane_finish, _lane_get and _lane_put (with the tuples, the engine was measurably
# slower).
Lanes = namedtuple("Lanes", [
    "Y",  # (n, LANES) state
    "K",  # (7, n, LANES) Tsit5 stage derivatives
    "XS",  # (7, n, LANES) Tsit5 stage inputs; XS[5] is the stage-6 state, XS[6] the new state
    "PL",  # (n_params, LANES) parameters
    "EXT",  # (n + 1, LANES) life cycle (NEW, ALIVE, EXTINCT) and the number of extinct states
    "T",  # (LANES,) time
    "HS",  # (LANES,) Tsit5 step being tried (0: none)
    "TS",  # (LANES,) time of the stage being evaluated
    "TS1",  # (LANES,) time of the last stages (the left limit at a segment end)
    "ACC",  # (LANES,) error sums
    "ERRN",  # (LANES,) error norm of the trial step
    "FIN",  # (LANES,) 1.0 where the trial state is finite
    "NUM",  # (LANES,) stiffness estimate: |k7 - k6|^2 ...
    "DEN",  # (LANES,) ... and |ynew - y6|^2
    "ACPT",  # (LANES,) 1.0 where the Tsit5 step was accepted
    "CHG",  # (LANES,) number of states set to zero by extinction in the step
    "TNEW",  # (LANES,) time at the end of the accepted step
    "LF",  # (LANES, N_LF) float fields F_*
    "LI",  # (LANES, N_LI) integer fields I_*
    "ORDER",  # (LANES, n_events) the patient's events sorted by time
    "JL",  # (LANES, n, n) Jacobian
    "DFL",  # (LANES, n) time derivative of the right-hand side
    "GL",  # (N_ROOTS, LANES) root functions at the lane's (t, y)
    "RHIT",  # (LANES, N_ROOTS) roots crossed by the last accepted step, to act on
])
Work = namedtuple("Work", [
    "y1", "p1", "ext1",  # state, parameters and life cycle of the lane being handled
    "f0", "g1", "g2", "g3", "g4", "g5", "g6", "ft", "tmp1", "ynew1", "cont3", "cont4",  # RODAS4 stages
    "interp",  # dense output
    "v", "w",  # power iteration
    "LU", "piv",  # iteration matrix
    "otmp",  # outputs
    "stack",  # condition programs
    "cond",  # conditions of the events due now
    "gnew", "gtmp",  # root functions at the end of a step and inside it
    "rdone",  # roots that acted at the current time (each acts once per time)
    "quad", "qa",  # (N_STOCH, 9) counts and clocks tracked inside a step, (N_STOCH, 5) propensities (see jumps)
    "jumps", "jn",  # (JUMPS_PER_STEP, 3) jumps fired inside the step: fraction, state, count; (1,) their number
])

LOG_1E4 = -9.210340371976182  # log(1e-4), as _vlog gives it (the PI controller's floor: tested)
LOGFAC0 = 0.04 * LOG_1E4  # PI controller memory at the start of a segment


@njit(**_ALLOC)
def _work_new(n_par, n_ev):
    """Zeroed scratch vectors for the lane being handled."""
    n = N_STATES
    return Work(
        np.zeros(n), np.zeros(n_par), np.zeros(n + 1, dtype=np.int32),
        np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n),
        np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n),
        np.zeros(n),
        np.zeros(n), np.zeros(n),
        np.zeros((n, n)), np.zeros(n, dtype=np.int64),
        np.zeros(max(N_OUTPUTS, 1)),
        np.zeros(64),
        np.zeros(max(n_ev, 1), dtype=np.bool_),
        np.zeros(max(N_ROOTS, 1)), np.zeros(max(N_ROOTS, 1)), np.zeros(max(N_ROOTS, 1), dtype=np.bool_),
        np.zeros((max(N_STOCH, 1), 9)), np.zeros((max(N_STOCH, 1), 5)),
        np.zeros((JUMPS_PER_STEP, 3)), np.zeros(1, dtype=np.int64))


@njit(**_JIT)
def _lane_get(li, Y, PL, EXT, y1, p1, ext1):
    for i in range(N_STATES):
        y1[i] = Y[i, li]
    for j in range(p1.shape[0]):
        p1[j] = PL[j, li]
    for i in range(N_STATES + 1):
        ext1[i] = EXT[i, li]


@njit(**_JIT)
def _lane_put(li, Y, PL, EXT, y1, p1, ext1):
    for i in range(N_STATES):
        Y[i, li] = y1[i]
    for j in range(p1.shape[0]):
        PL[j, li] = p1[j]
    for i in range(N_STATES + 1):
        EXT[i, li] = ext1[i]


@njit(**_JIT)
def _lane_finish(li, st, Y, LI, out_states, out_outputs, status, final):
    """End the patient in lane li with status st; the lane becomes idle."""
    i_pat = LI[li, I_PAT]
    if st != OK:
        for k in range(LI[li, I_KOUT], out_states.shape[1]):
            for j in range(out_states.shape[2]):
                out_states[i_pat, k, j] = np.nan
            for j in range(out_outputs.shape[2]):
                out_outputs[i_pat, k, j] = np.nan
    status[i_pat] = st
    for i in range(N_STATES):
        final[i_pat, i] = Y[i, li]
    LI[li, I_PAT] = -1


@njit(**_JIT)
def _lane_start(li, i_pat, lanes, work, prob, res):
    """Put patient i_pat into lane li: initial state, sorted events, events at t0."""
    LI = lanes.LI
    ORDER = lanes.ORDER
    y1 = work.y1
    p1 = work.p1
    ext1 = work.ext1
    params = prob.params
    ev_time = prob.ev_time
    counters = res.counters
    applied = res.applied
    LI[li, I_PAT] = i_pat
    for j in range(p1.shape[0]):
        p1[j] = params[i_pat, j]
    model_initial(p1, y1)
    if N_ROOTS > 0:
        _init_dynamics(li, i_pat, y1, p1, LI, prob.rng_key[i_pat], res.mev_count, res.mev_time)
    _init_life(y1, ext1, prob.thr)
    for c in range(N_COUNTERS):
        counters[i_pat, c] = 0
    n_ev = ev_time.shape[1]
    for e in range(n_ev):
        ORDER[li, e] = e
        applied[i_pat, e] = 0
    for a in range(1, n_ev):  # stable insertion sort of this patient's events by time
        e = ORDER[li, a]
        te = ev_time[i_pat, e]
        b = a - 1
        while b >= 0 and ev_time[i_pat, ORDER[li, b]] > te:
            ORDER[li, b + 1] = ORDER[li, b]
            b -= 1
        ORDER[li, b + 1] = e
    lanes.T[li] = prob.t0
    LI[li, I_KOUT] = 0
    LI[li, I_JE] = 0
    LI[li, I_MODE] = RODAS if prob.method == RODAS else TSIT5
    LI[li, I_STIFF_WAIT] = STIFF_WAIT0
    _lane_put(li, lanes.Y, lanes.PL, lanes.EXT, y1, p1, ext1)
    _lane_at_time(li, lanes, work, prob, res)


@njit(**_JIT)
def _lanes_init(nl, lanes, work, prob, res):
    """f(t, y) for lanes that start a segment (or whose state changed), and initial steps.

    Scalar, lane by lane: a lane needs this a few times per patient, and keeping it
    out of the vectorised path keeps one copy of the right-hand side in the kernel.
    """
    K = lanes.K
    T = lanes.T
    LF = lanes.LF
    LI = lanes.LI
    y1 = work.y1
    p1 = work.p1
    ext1 = work.ext1
    f0 = work.f0
    Y, PL, EXT, tmp1, f1 = lanes.Y, lanes.PL, lanes.EXT, work.tmp1, work.g1
    rtol, atol = prob.rtol, prob.atol
    counters = res.counters
    for li in range(nl):
        i_pat = LI[li, I_PAT]
        if i_pat < 0 or LI[li, I_INIT] == 0:
            continue
        _lane_get(li, Y, PL, EXT, y1, p1, ext1)
        _f(T[li], y1, p1, ext1, f0)
        counters[i_pat, C_RHS] += 1
        for i in range(N_STATES):
            K[0, i, li] = f0[i]
        if N_ROOTS > 0:
            gl = lanes.GL
            model_roots(T[li], y1, p1, work.gnew)
            for r in range(N_ROOTS):
                gl[r, li] = work.gnew[r]
        if LI[li, I_INIT] == 2:
            order = 5.0 if LI[li, I_MODE] == TSIT5 else 4.0
            LF[li, F_H] = _initial_step(T[li], LF[li, F_TEND], y1, f0, p1, ext1, rtol, atol, tmp1, f1, order)
            counters[i_pat, C_RHS] += 1
        LI[li, I_INIT] = 0


@njit(**_HOT)
def _step_size(t, tend, h_next, hmax, n_attempts, max_steps):
    """Size of a lane's next attempt from time t in a segment ending at tend.

    Returns ``(h, hit, ts1, status)``: the step, 1 if it ends the segment, the time of the
    last stages (the left limit at the segment end), and OK or the status that ends the
    patient. Runs for every lane at every step, so it takes and returns numbers only: an
    inlined function with array arguments costs a reference count per array and call.
    """
    if n_attempts >= max_steps:
        return 0.0, 0, 0.0, MAX_STEPS
    h = min(h_next, hmax)
    hit = 0
    if t + 1.01 * h >= tend:
        h = tend - t
        hit = 1
    if h <= 16.0 * 2.220446049250313e-16 * max(abs(t), 1.0):
        return 0.0, 0, 0.0, STEP_TOO_SMALL
    return h, hit, _stage_time(t + h, tend), OK


@njit(**_JIT)
def _lane_stiff_check(li, t_new, h, YNEW, PL, EXT, LI, JL, DFL, y1, p1, ext1, v, w, counters):
    """Spectral radius of the Jacobian at the lane's new point; switch to RODAS if stiff.

    Called from the step loop: its arrays come one by one (see _step_size).

    The Jacobian is not kept for the first RODAS step: extinction may still change the
    state at the end of this step.
    """
    for i in range(N_STATES):
        y1[i] = YNEW[i, li]
    for j in range(p1.shape[0]):
        p1[j] = PL[j, li]
    for i in range(N_STATES + 1):
        ext1[i] = EXT[i, li]
    i_pat = LI[li, I_PAT]
    J = JL[li]
    _jacobian(t_new, y1, p1, ext1, J, DFL[li])
    counters[i_pat, C_JAC] += 1
    LI[li, I_JACFRESH] = 0
    if h * _spectral_radius(J, v, w) > STIFF_ON * T_STAB:
        LI[li, I_MODE] = RODAS
        LI[li, I_EPISODE] = counters[i_pat, C_STIFF_STEPS]
        counters[i_pat, C_STIFF_SWITCHES] += 1
        LI[li, I_FIRST_RODAS] = 1
        LI[li, I_NNONSTIFF] = 0
