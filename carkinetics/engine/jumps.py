"""Births and deaths of small clones inside an accepted Tsit5 step.

A discrete stochastic state (a clone counted cell by cell) jumps when its clock, the integral
of its total propensity, reaches an Exp(1) draw (:mod:`roots`). Ending the step at every jump
and starting the next afresh costs a Tsit5 step per jump, and a slowly growing clone makes
about (b + d) / (b - d) jumps per cell it gains: most of a T-ALL patient's steps were such
restarts. Here the step is kept: its jumps are fired one after another inside it, the other
states following the step's dense output, while each discrete state's count is held at its
value after its last jump and each discrete clock is the integral of its propensity with the
counts as they now are, by a cubic through the propensity at four equally spaced points of
the rest of the step (the same draws in the same order as the jump-by-jump path, so a
patient's events are the same up to the integration error).

What this neglects, and how it is kept within the step's own error tolerance:

* the counts' effect on the other states over the rest of the step (one cell of a clone of at
  most ``below`` cells): the right-hand side of the other states with the counts as they are
  at the stop, against the step's own, times the time since the first jump, must stay below
  ``atol + rtol * |y|`` for every state, or the step is taken back to its first jump and ends
  there (the jump-by-jump path, with the same random numbers);
* the cubic's error: the propensity at the midpoint of the rest of the step must agree with
  the cubic there to ``JUMP_RATE_TOL`` of the largest propensity, or the step ends at that
  jump.

A jump that would make the state continuous (``below`` reached) or carry a triggered event
across zero, a root that is not a jump, a state with an extinction threshold, and more than
``JUMPS_PER_STEP`` jumps end the step there too, before the jump: ``_lane_at_root`` then acts
on the roots as it always has. The saved outputs inside the step see each count from its jump
on. The clocks are integrated again by the ODE from the step's end.
"""

# columns of Work.quad, per stochastic state: its count and clock inside the step
Q_ON = 0  # 1.0: the state is discrete and tracked from Q_S0 on
Q_COUNT = 1  # its count since its last jump
Q_S0 = 2  # fraction of the step where the cubic starts (the last jump of any state)
Q_SPAN = 3  # time from there to the end of the step
Q_BASE = 4  # the clock at Q_S0
Q_A0 = 5  # the propensity at Q_S0 and its forward differences at steps of a third (Q_A0 .. Q_A0 + 3)


@njit(**_JIT)
def _quad_clock(s, h, qrow):
    """A tracked state's clock at fraction s: its value at Q_S0 plus the integral of the cubic."""
    span = qrow[Q_SPAN]
    if span <= 0.0:
        return qrow[Q_BASE]
    u = 3.0 * (s - qrow[Q_S0]) * h / span
    u2 = u * u
    u3 = u2 * u
    a0, d1, d2, d3 = qrow[Q_A0], qrow[Q_A0 + 1], qrow[Q_A0 + 2], qrow[Q_A0 + 3]
    return qrow[Q_BASE] + span / 3.0 * (a0 * u + d1 * u2 / 2.0 + d2 * (u3 / 3.0 - u2 / 2.0) / 2.0
                                        + d3 * (u2 * u2 / 4.0 - u3 + u2) / 6.0)


@njit(**_JIT)
def _apply_quad(s, h, quad, out):
    """The dense state ``out`` at fraction s with the tracked counts and clocks."""
    for q in range(N_STOCH):
        if quad[q, Q_ON] > 0.5:
            out[STOCH_STATE[q]] = quad[q, Q_COUNT]
            out[STOCH_CLOCK[q]] = _quad_clock(s, h, quad[q])


@njit(**_JIT)
def _fit_rates(li, t, h, s, s_end, Y, K, p, y, ynode, quad, qa):
    """Cubics of every tracked state's propensity over [s, s_end] with the counts of ``y`` (the
    state at s after its jumps), written to ``qa`` (a0 and its forward differences); False if
    one misses its midpoint value by more than JUMP_RATE_TOL of its largest value."""
    for k in range(5):
        x = (0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0, 0.5)[k]
        sk = s + x * (s_end - s)
        _dense_states(li, sk, h, Y, K, PROP_STATES, np.int64(0), PROP_STATES.shape[0], ynode)  # the states the propensities read
        for q in range(N_STOCH):
            if quad[q, Q_ON] > 0.5:
                ynode[STOCH_STATE[q]] = y[STOCH_STATE[q]]
        for q in range(N_STOCH):
            if quad[q, Q_ON] > 0.5:
                gain, loss = model_propensities(q, t + sk * h, ynode, p)
                qa[q, k] = gain + loss
    for q in range(N_STOCH):
        if quad[q, Q_ON] < 0.5:
            continue
        a0, a1, a2, a3, am = qa[q, 0], qa[q, 1], qa[q, 2], qa[q, 3], qa[q, 4]
        d1, d2, d3 = a1 - a0, a2 - 2.0 * a1 + a0, a3 - 3.0 * a2 + 3.0 * a1 - a0
        mid = a0 + 1.5 * d1 + 0.375 * d2 - 0.0625 * d3
        scale = max(abs(a0), abs(a1), abs(a2), abs(a3), abs(am))
        if not (abs(mid - am) <= JUMP_RATE_TOL * scale):
            return False
        qa[q, 0], qa[q, 1], qa[q, 2], qa[q, 3] = a0, d1, d2, d3
    return True


@njit(**_JIT)
def _fire_in_step(li, i_pat, ts, y, p, LI, RHIT, key, count, thr, gb, ga):
    """The jumps marked in RHIT at time ts, on ``y`` and ``p`` (``ga``: the root functions after
    them); False when one of them must end the step instead (the caller takes back what was
    fired): a root that is not a jump, a state with an extinction threshold, ``below`` reached,
    a trigger carried across."""
    for r in range(N_ROOTS):
        if RHIT[li, r] and (ROOT_KIND[r] != R_JUMP or thr[STOCH_STATE[ROOT_REF[r]]] > 0.0):
            return False
    model_roots(ts, y, p, gb)
    ok = True
    for r in range(N_ROOTS):
        if not RHIT[li, r]:
            continue
        q = ROOT_REF[r]
        _jump(li, q, ts, y, p, LI, key)
        ok = ok and y[STOCH_STATE[q]] < STOCH_BELOW[q]
    if ok:
        model_roots(ts, y, p, ga)
        for r in range(N_ROOTS):
            if ROOT_KIND[r] == R_TRIGGER and _root_active(r, i_pat, count) and _crossed(ROOT_DIR[r], gb[r], ga[r]):
                ok = False
    return ok


@njit(**_JIT)
def _coupling_ok(li, t, h, s_first, s_stop, s_end, y, p, ext, Y, K, atol, rtol, quad, fc, fu, yu):
    """Whether the counts held inside the step moved the other states' right-hand side, times
    the time since the first jump, by less than atol + rtol |y| each. ``fc`` is left holding f
    at the stop with the counts (the next step's first stage when the stop is the step's end)."""
    _f(t + s_stop * h, y, p, ext, fc)
    if s_stop >= s_end:
        for i in range(N_STATES):
            fu[i] = K[6, i, li]
    else:
        _dense_state(TSIT5, li, s_stop, h, Y, K, yu, yu, yu, yu, yu)
        _f(t + s_stop * h, yu, p, ext, fu)
    dt = (s_stop - s_first) * h
    for i in range(N_STATES):
        tracked = False
        for q in range(N_STOCH):
            if quad[q, Q_ON] > 0.5 and (i == STOCH_STATE[q] or i == STOCH_CLOCK[q]):
                tracked = True
        sc = atol[i] + rtol * max(abs(Y[i, li]), abs(y[i]))
        if not tracked and not (abs(fc[i] - fu[i]) * dt <= sc):
            return False
    return True


@njit(**_JIT)
def _jumps_in_step(li, t, h, t_new, s1, lanes, work, prob, res):
    """Fire the jumps of an accepted Tsit5 step inside it, from its first root at fraction s1
    (marked in RHIT, the state there in work.tmp1). Returns the fraction where the lane stops
    with roots due (marked in RHIT, the state there in work.tmp1), or -1.0 when the step runs to
    its end (the state there in work.ynew1). work.jumps holds the jumps fired, work.jn[0] their
    number; the lane's parameters (the new draws) and, at the end, its first stage are updated."""
    Y, K, PL, EXT, GL, RHIT, LI = lanes.Y, lanes.K, lanes.PL, lanes.EXT, lanes.GL, lanes.RHIT, lanes.LI
    p, ext, out, yend, quad, qa = work.p1, work.ext1, work.tmp1, work.ynew1, work.quad, work.qa
    jumps, ysave, dsave = work.jumps, work.g2, work.g3
    i_pat = LI[li, I_PAT]
    key = prob.rng_key[i_pat]
    counters = res.counters
    s_end = (t_new - t) / h
    if s1 >= s_end:
        return s1
    rng0 = LI[li, I_RNG]
    for r in range(N_ROOTS):
        work.rdone[r] = RHIT[li, r]
    for i in range(N_STATES + 1):
        ext[i] = EXT[i, li]
    for q in range(N_STOCH):
        quad[q, Q_ON] = 1.0 if p[STOCH_MODE[q]] > 0.5 else 0.0
        quad[q, Q_COUNT] = out[STOCH_STATE[q]]
    jn = 0
    s = s1
    while True:
        n_hit = 0
        for r in range(N_ROOTS):
            n_hit += 1 if RHIT[li, r] else 0
        if s >= s_end or jn + n_hit > JUMPS_PER_STEP:
            break
        rng_before = LI[li, I_RNG]
        for i in range(N_STATES):
            ysave[i] = out[i]
        for q in range(N_STOCH):
            dsave[q] = p[STOCH_DRAW[q]]
        if not (_fire_in_step(li, i_pat, t + s * h, out, p, LI, RHIT, key, res.mev_count, prob.thr, work.gnew,
                              work.gtmp)
                and _fit_rates(li, t, h, s, s_end, Y, K, p, out, work.interp, quad, qa)):
            LI[li, I_RNG] = rng_before  # what was fired is taken back: the step ends before these jumps
            for i in range(N_STATES):
                out[i] = ysave[i]
            for q in range(N_STOCH):
                p[STOCH_DRAW[q]] = dsave[q]
            break
        for r in range(N_ROOTS):
            if RHIT[li, r]:
                q = ROOT_REF[r]
                jumps[jn, 0] = s
                jumps[jn, 1] = STOCH_STATE[q]
                jumps[jn, 2] = out[STOCH_STATE[q]]
                jn += 1
        for q in range(N_STOCH):
            if quad[q, Q_ON] > 0.5:
                quad[q, Q_COUNT] = out[STOCH_STATE[q]]
                quad[q, Q_BASE] = out[STOCH_CLOCK[q]]
                quad[q, Q_S0] = s
                quad[q, Q_SPAN] = (s_end - s) * h
                for k in range(4):
                    quad[q, Q_A0 + k] = qa[q, k]
        for r in range(N_ROOTS):
            GL[r, li] = work.gtmp[r]  # the root functions just after the jumps
        _dense_state(TSIT5, li, s_end, h, Y, K, yend, yend, yend, yend, yend)
        _apply_quad(s_end, h, quad, yend)
        s = _lane_roots(TSIT5, li, t, h, t_new, p, yend, Y, K, yend, yend, yend, GL, RHIT, work.gnew, work.gtmp,
                        out, res.mev_count, i_pat, s, True, quad)
        if s < 0.0:
            break
    work.jn[0] = jn
    if jn == 0:
        return s1  # nothing fired: the lane stops at the first root, as before
    s_stop = s_end if s < 0.0 else s
    y_stop = yend if s < 0.0 else out
    if not _coupling_ok(li, t, h, s1, s_stop, s_end, y_stop, p, ext, Y, K, prob.atol, prob.rtol, quad, work.f0,
                        work.g1, work.g4):
        # taken back to the first jump, which the lane stops at: the same random numbers follow
        work.jn[0] = 0
        LI[li, I_RNG] = rng0
        for j in range(p.shape[0]):
            p[j] = PL[j, li]
        for r in range(N_ROOTS):
            RHIT[li, r] = work.rdone[r]
        _dense_state(TSIT5, li, s1, h, Y, K, out, out, out, out, out)
        return s1
    counters[i_pat, C_JUMPS] += jn
    for j in range(p.shape[0]):
        PL[j, li] = p[j]
    if s < 0.0:
        for i in range(N_STATES):
            K[6, i, li] = work.f0[i]  # FSAL: the next step starts from f at the end with the counts
    return s
