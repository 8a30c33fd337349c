"""Roots of an accepted step (triggered events, hazard clocks, stochastic jumps), their
actions, and each patient's stream of random numbers.

A model with events or stochastic states has root functions g_r(t, y)
(:func:`carkinetics.model.model_events.kernel_system`): a trigger's expression, a clock's
cumulative hazard minus its Exp(1) draw, a continuous stochastic state minus half its
threshold. After every accepted step the engine evaluates them at the new point; a root
whose sign changed in its direction is located on the step's dense output (Illinois
regula falsi, Dahlquist & Bjorck 1974; Hairer, Norsett & Wanner, sec. II.6), the lane stops
at the earliest one, and every root crossed by then acts, in root order (model events in
file order, then stochastic states); births and deaths of discrete states may instead fire
inside the step (jumps.py). A model without events or stochastic states has
N_ROOTS = 0 and none of this code is compiled into its loops.

Random numbers: patient i's stream is SplitMix64 (Steele, Lea & Flood, OOPSLA 2014) started
at its key (``Problem.rng_key``, from the run's seed and the patient's index in the
cohort); the n-th draw of a patient is a function of (key, n) only, so results do not
depend on threads, lanes or chunks, and a patient can be simulated alone.
"""

_SM_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_SM_M1 = np.uint64(0xBF58476D1CE4E5B9)
_SM_M2 = np.uint64(0x94D049BB133111EB)


@njit(**_JIT)
def _uniform(key, counter):
    """The counter-th number of the stream ``key``: a double in (0, 1)."""
    z = key + np.uint64(counter) * _SM_GAMMA
    z = (z ^ (z >> np.uint64(30))) * _SM_M1
    z = (z ^ (z >> np.uint64(27))) * _SM_M2
    z = z ^ (z >> np.uint64(31))
    return (np.float64(z >> np.uint64(11)) + 0.5) * 1.1102230246251565e-16


if _numba_config.DISABLE_JIT:
    def _uniform(key, counter):  # noqa: F811
        """The same numbers in plain Python (NUMBA_DISABLE_JIT=1): Python integers wrapped to 64 bits."""
        m = 0xFFFFFFFFFFFFFFFF
        z = (int(key) + int(counter) * 0x9E3779B97F4A7C15) & m
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
        z ^= z >> 31
        return ((z >> 11) + 0.5) * 1.1102230246251565e-16


@njit(**_JIT)
def _lane_draw(li, LI, key):
    """The lane's patient's next uniform number."""
    LI[li, I_RNG] += 1
    return _uniform(key, LI[li, I_RNG])


@njit(**_JIT)
def _dense_state(mode, li, s, h, Y, K, y0, ynew, cont3, cont4, out):
    """Dense output at fraction ``s`` of the step: Tsit5 (lane arrays) or RODAS4 (scratch)."""
    if mode == TSIT5:
        b1, b2, b3, b4, b5, b6, b7 = _tsit5_interp_weights(s)
        for i in range(N_STATES):
            out[i] = Y[i, li] + h * (b1 * K[0, i, li] + b2 * K[1, i, li] + b3 * K[2, i, li] + b4 * K[3, i, li]
                                     + b5 * K[4, i, li] + b6 * K[5, i, li] + b7 * K[6, i, li])
    else:
        _rodas_interp(s, y0, ynew, cont3, cont4, out)


@njit(**_JIT)
def _dense_states(li, s, h, Y, K, idx, lo, hi, out):
    """Tsit5 dense output at fraction ``s`` of the step of the states ``idx[lo:hi]`` only (each
    the same operations as in :func:`_dense_state`: the same bits)."""
    b1, b2, b3, b4, b5, b6, b7 = _tsit5_interp_weights(s)
    for m in range(lo, hi):
        i = idx[m]
        out[i] = Y[i, li] + h * (b1 * K[0, i, li] + b2 * K[1, i, li] + b3 * K[2, i, li] + b4 * K[3, i, li]
                                 + b5 * K[4, i, li] + b6 * K[5, i, li] + b7 * K[6, i, li])


@njit(**_JIT)
def _root_state(mode, li, s, h, Y, K, y0, ynew, cont3, cont4, out, corr, quad, r):
    """The state the roots are searched on at fraction s: the dense output, with the counts and
    clocks of jumps fired inside the step when ``corr`` (see jumps.py). For a root ``r >= 0`` of a
    Tsit5 step, only the states root function r reads (``ROOT_DEPS``) are made, the others of
    ``out`` are left as they were: a search for root r evaluates it a dozen times and needs the
    whole state once, where it ends (``r = -1``)."""
    if mode == TSIT5 and r >= 0:
        _dense_states(li, s, h, Y, K, ROOT_DEPS, ROOT_DEPS_AT[r], ROOT_DEPS_AT[r + 1], out)
    else:
        _dense_state(mode, li, s, h, Y, K, y0, ynew, cont3, cont4, out)
    if corr:
        _apply_quad(s, h, quad, out)


@njit(**_JIT)
def _crossed(direction, g0, g1):
    """Whether g went from g0 to g1 across zero in ``direction`` (+1 up, -1 down, 0 either)."""
    up = g0 < 0.0 and g1 >= 0.0
    down = g0 > 0.0 and g1 <= 0.0
    if direction > 0:
        return up
    if direction < 0:
        return down
    return up or down


@njit(**_JIT)
def _root_active(r, i_pat, count):
    """A model event that fired and does not repeat has no root any more."""
    if ROOT_KIND[r] == R_TRIGGER or ROOT_KIND[r] == R_HAZARD:
        return EVENT_REPEAT[ROOT_REF[r]] == 1 or count[i_pat, ROOT_REF[r]] == 0
    return True


@njit(**_JIT)
def _lane_roots_tsit5(li, t, h, t_new, PL, YNEW, Y, K, y0, cont3, cont4, GL, RHIT, gnew, gtmp, out, count, i_pat,
                      quad):
    """:func:`_lane_roots` after a Tsit5 step of lane li, its parameters and new state read in
    place. The column views are made here, where no reference to them is counted: made in the
    driver, which counts them, they cost four atomic instructions per step."""
    return _lane_roots(TSIT5, li, t, h, t_new, PL[:, li], YNEW[:, li], Y, K, y0, cont3, cont4, GL, RHIT, gnew, gtmp,
                       out, count, i_pat, 0.0, False, quad)


@njit(**_JIT)
def _lane_roots(mode, li, t, h, t_new, p, ynew, Y, K, y0, cont3, cont4, GL, RHIT, gnew, gtmp, out, count, i_pat, s0, corr,
                quad):
    """The first root crossed in the accepted step from t to t_new (after fraction s0 of it:
    GL then holds the root functions there; ``corr``: the dense state with the counts and
    clocks tracked in ``quad``, see :mod:`jumps`).

    Returns the fraction s of the step (0 < s <= s_end = (t_new - t) / h) at which the lane
    stops (exactly s_end when the root is within ROOT_TIME_TOL of the end of the step),
    with the state there in ``out``, and marks in RHIT every root crossed by then; or -1.0
    when no root was crossed (GL then holds g at t_new). A root is located to
    ROOT_TIME_TOL relative time; s is the end of the final bracket, so the crossing has
    happened at s.
    """
    model_roots(t_new, ynew, p, gnew)
    s_end = (t_new - t) / h
    tol = ROOT_TIME_TOL * max(abs(t_new), 1.0) / h
    s_best = -1.0
    for r in range(N_ROOTS):
        RHIT[li, r] = False
        d = ROOT_DIR[r]
        if not _root_active(r, i_pat, count) or not _crossed(d, GL[r, li], gnew[r]):
            continue
        lo, glo, hi, ghi = s0, GL[r, li], s_end, gnew[r]
        if s_best > 0.0:  # only a root before the earliest found so far matters
            _root_state(mode, li, s_best, h, Y, K, y0, ynew, cont3, cont4, out, corr, quad, r)
            model_roots(t + s_best * h, out, p, gtmp)
            if not _crossed(d, glo, gtmp[r]):
                continue
            hi, ghi = s_best, gtmp[r]
        side = 0
        for _ in range(200):
            if hi - lo <= tol:
                break
            sm = 0.5 * (lo + hi)
            if ghi != glo:
                sf = (lo * ghi - hi * glo) / (ghi - glo)
                if lo < sf < hi:
                    sm = sf
            _root_state(mode, li, sm, h, Y, K, y0, ynew, cont3, cont4, out, corr, quad, r)
            model_roots(t + sm * h, out, p, gtmp)
            gm = gtmp[r]
            if _crossed(d, glo, gm):
                hi, ghi = sm, gm
                if side == -1:
                    glo *= 0.5  # Illinois: the retained end's value is halved
                side = -1
            else:
                lo, glo = sm, gm
                if side == 1:
                    ghi *= 0.5
                side = 1
        s_best = hi
    if s_best >= 0.0 and s_end - s_best <= tol:
        s_best = s_end  # no sliver of a step is left before the end of the step
    if s_best < 0.0:
        for r in range(N_ROOTS):
            GL[r, li] = gnew[r]
        return -1.0
    if s_best >= s_end:
        for i in range(N_STATES):
            out[i] = ynew[i]
        for r in range(N_ROOTS):
            gtmp[r] = gnew[r]
    else:
        _root_state(mode, li, s_best, h, Y, K, y0, ynew, cont3, cont4, out, corr, quad, np.int64(-1))
        model_roots(t + s_best * h, out, p, gtmp)
    for r in range(N_ROOTS):
        RHIT[li, r] = _root_active(r, i_pat, count) and _crossed(ROOT_DIR[r], GL[r, li], gtmp[r])
    return s_best


@njit(**_JIT)
def _stochastic_round(x, u):
    """floor(x) + 1 with probability frac(x), else floor(x): an integer with mean x (x >= 0)."""
    x = max(x, 0.0)
    fl = math.floor(x)
    return fl + (1.0 if u < x - fl else 0.0)


@njit(**_JIT)
def _init_dynamics(li, i_pat, y, p, LI, key, count, tfirst):
    """At a patient's start: no model event fired yet, fresh Exp(1) draws for every clock,
    stochastic states below their threshold rounded to a count and made discrete."""
    LI[li, I_RNG] = 0
    for k in range(N_MODEL_EVENTS):
        count[i_pat, k] = 0
        tfirst[i_pat, k] = np.nan
        if EVENT_CLOCK_PARAM[k] >= 0:
            y[EVENT_CLOCK_STATE[k]] = 0.0
            p[EVENT_CLOCK_PARAM[k]] = -math.log(_lane_draw(li, LI, key))
    for q in range(N_STOCH):
        j = STOCH_STATE[q]
        if y[j] < STOCH_BELOW[q]:
            y[j] = _stochastic_round(y[j], _lane_draw(li, LI, key))
            p[STOCH_MODE[q]] = 1.0
        else:
            p[STOCH_MODE[q]] = 0.0
        y[STOCH_CLOCK[q]] = 0.0
        p[STOCH_DRAW[q]] = -math.log(_lane_draw(li, LI, key))


@njit(**_JIT)
def _regimes(li, y, p, LI, key):
    """After a jump of the state (an event's actions): each stochastic state in the regime its
    new value calls for. A continuous state below half its threshold, or a discrete one that
    is no longer a whole number, is rounded stochastically and becomes discrete with a fresh
    clock; a discrete state at or above its threshold becomes continuous."""
    for q in range(N_STOCH):
        j = STOCH_STATE[q]
        x = y[j]
        discrete = p[STOCH_MODE[q]] > 0.5
        if discrete and x >= STOCH_BELOW[q]:
            p[STOCH_MODE[q]] = 0.0
        elif (not discrete and x < RETURN_FRACTION * STOCH_BELOW[q]) or (discrete and x != math.floor(x)):
            y[j] = _stochastic_round(x, _lane_draw(li, LI, key))
            p[STOCH_MODE[q]] = 1.0
            y[STOCH_CLOCK[q]] = 0.0
            p[STOCH_DRAW[q]] = -math.log(_lane_draw(li, LI, key))


@njit(**_JIT)
def _jump(li, q, t, y, p, LI, key):
    """A birth or death of stochastic state q at time t (a birth with probability
    gain / (gain + loss), one uniform draw), then its clock restarted with a fresh Exp(1) draw."""
    j = STOCH_STATE[q]
    gain, loss = model_propensities(q, t, y, p)
    u = _lane_draw(li, LI, key)
    if gain + loss > 0.0:
        if u * (gain + loss) < gain:
            y[j] = y[j] + 1.0
        else:
            y[j] = max(0.0, y[j] - 1.0)
    y[STOCH_CLOCK[q]] = 0.0
    p[STOCH_DRAW[q]] = -math.log(_lane_draw(li, LI, key))


@njit(**_JIT)
def _fire_roots(li, i_pat, t, y, p, ext, LI, RHIT, key, count, tfirst, thr):
    """Actions of the roots marked in RHIT, in root order; returns True if one is terminal."""
    terminal = False
    for r in range(N_ROOTS):
        if not RHIT[li, r]:
            continue
        RHIT[li, r] = False
        kind = ROOT_KIND[r]
        q = ROOT_REF[r]
        if kind == R_TRIGGER or kind == R_HAZARD:
            if count[i_pat, q] == 0:
                tfirst[i_pat, q] = t
            count[i_pat, q] += 1
            model_apply_event(q, t, y, p)
            _regimes(li, y, p, LI, key)
            if kind == R_HAZARD:
                y[EVENT_CLOCK_STATE[q]] = 0.0
                p[EVENT_CLOCK_PARAM[q]] = -math.log(_lane_draw(li, LI, key))
            if EVENT_TERMINAL[q] == 1:
                terminal = True
        elif kind == R_JUMP:
            _jump(li, q, t, y, p, LI, key)
            if y[STOCH_STATE[q]] >= STOCH_BELOW[q]:
                p[STOCH_MODE[q]] = 0.0
        else:  # R_RETURN
            j = STOCH_STATE[q]
            y[j] = _stochastic_round(y[j], _lane_draw(li, LI, key))
            p[STOCH_MODE[q]] = 1.0
            y[STOCH_CLOCK[q]] = 0.0
            p[STOCH_DRAW[q]] = -math.log(_lane_draw(li, LI, key))
    for i in range(N_STATES):  # populations with an extinction threshold after the actions
        if thr[i] > 0.0:
            if y[i] >= thr[i]:
                if ext[i] == EXTINCT:
                    ext[N_STATES] -= 1
                ext[i] = ALIVE
            elif ext[i] == ALIVE:
                y[i] = 0.0
                ext[i] = EXTINCT
                ext[N_STATES] += 1
    return terminal


@njit(**_JIT)
def _after_jump(li, i_pat, t, y, p, ext, LI, RHIT, key, count, tfirst, thr, gb, ga, done):
    """Triggered events whose expression a jump of the state (an event's actions, a birth or
    death) moved across zero in their direction fire at once, in order; so may the events
    those actions trigger in turn (at most MAX_CASCADE rounds). ``gb`` holds the root
    functions before the jump; ``done`` the roots that already acted at this time (each acts
    at most once per time). Returns True if one of them is terminal."""
    terminal = False
    for _ in range(MAX_CASCADE):
        model_roots(t, y, p, ga)
        hit = False
        for r in range(N_ROOTS):
            RHIT[li, r] = (ROOT_KIND[r] == R_TRIGGER and not done[r] and _root_active(r, i_pat, count)
                           and _crossed(ROOT_DIR[r], gb[r], ga[r]))
            done[r] = done[r] or RHIT[li, r]
            hit = hit or RHIT[li, r]
            gb[r] = ga[r]
        if not hit:
            break
        terminal = _fire_roots(li, i_pat, t, y, p, ext, LI, RHIT, key, count, tfirst, thr) or terminal
        if terminal:
            break
    return terminal


@njit(**_JIT)
def _lane_terminate(li, t, y1, p1, lanes, work, prob, res):
    """End the patient at a terminal model event: the saved values after t are NaN, or held at
    their values at t (``[model] after_terminal``); the status is OK."""
    LI = lanes.LI
    i_pat = LI[li, I_PAT]
    times = prob.times
    out_states, out_outputs = res.out_states, res.out_outputs
    kout = LI[li, I_KOUT]
    while kout < times.shape[0] and times[kout] <= t:  # the terminal time itself: after the actions
        _record(times[kout], y1, p1, i_pat, kout, prob.state_idx, prob.output_idx, out_states, out_outputs,
                work.otmp)
        kout += 1
    for k in range(kout, times.shape[0]):
        if AFTER_TERMINAL_HOLD:
            _record(t, y1, p1, i_pat, k, prob.state_idx, prob.output_idx, out_states, out_outputs, work.otmp)
        else:
            for j in range(out_states.shape[2]):
                out_states[i_pat, k, j] = np.nan
            for j in range(out_outputs.shape[2]):
                out_outputs[i_pat, k, j] = np.nan
    LI[li, I_KOUT] = times.shape[0]
    _lane_finish(li, np.int64(OK), lanes.Y, LI, out_states, out_outputs, res.status, res.final)


@njit(**_JIT)
def _lane_after_clip(li, lanes, work, prob, res):
    """After a step whose end set a population to zero (extinction): the triggers that this
    jump carried across zero fire (``GL`` still holds the root functions before it)."""
    Y, PL, EXT, T, LI = lanes.Y, lanes.PL, lanes.EXT, lanes.T, lanes.LI
    y1, p1, ext1 = work.y1, work.p1, work.ext1
    i_pat = LI[li, I_PAT]
    t = T[li]
    _lane_get(li, Y, PL, EXT, y1, p1, ext1)
    gb = work.gnew
    done = work.rdone
    for r in range(N_ROOTS):
        gb[r] = lanes.GL[r, li]
        done[r] = False
    terminal = _after_jump(li, i_pat, t, y1, p1, ext1, LI, lanes.RHIT, prob.rng_key[i_pat], res.mev_count,
                           res.mev_time, prob.thr, gb, work.gtmp, done)
    _lane_put(li, Y, PL, EXT, y1, p1, ext1)
    LI[li, I_INIT] = max(LI[li, I_INIT], 1)
    if terminal:
        _lane_terminate(li, t, y1, p1, lanes, work, prob, res)


@njit(**_JIT)
def _lane_at_root(li, lanes, work, prob, res):
    """After a step that stopped at a root: its actions (and the triggered events they cause),
    then the integration carries on (or the patient ends at a terminal event)."""
    Y, PL, EXT, T, LI = lanes.Y, lanes.PL, lanes.EXT, lanes.T, lanes.LI
    y1, p1, ext1 = work.y1, work.p1, work.ext1
    i_pat = LI[li, I_PAT]
    t = T[li]
    LI[li, I_ROOT] = 0
    _lane_get(li, Y, PL, EXT, y1, p1, ext1)
    key = prob.rng_key[i_pat]
    gb = work.gnew
    model_roots(t, y1, p1, gb)
    done = work.rdone
    for r in range(N_ROOTS):
        done[r] = lanes.RHIT[li, r]
        if done[r] and ROOT_KIND[r] == R_JUMP:
            res.counters[i_pat, C_JUMPS] += 1
    terminal = _fire_roots(li, i_pat, t, y1, p1, ext1, LI, lanes.RHIT, key, res.mev_count, res.mev_time, prob.thr)
    if not terminal:
        terminal = _after_jump(li, i_pat, t, y1, p1, ext1, LI, lanes.RHIT, key, res.mev_count, res.mev_time,
                               prob.thr, gb, work.gtmp, done)
    _lane_put(li, Y, PL, EXT, y1, p1, ext1)
    for i in range(N_STATES):
        if not (y1[i] - y1[i] == 0.0):
            _lane_finish(li, np.int64(NON_FINITE), Y, LI, res.out_states, res.out_outputs, res.status, res.final)
            return
    if terminal:
        _lane_terminate(li, t, y1, p1, lanes, work, prob, res)
        return
    # the step size carries on (a jump moves the state by one cell); f is evaluated afresh
    LI[li, I_INIT] = max(LI[li, I_INIT], 1)
    LI[li, I_JACFRESH] = 0
    LI[li, I_FIRST_RODAS] = 1
