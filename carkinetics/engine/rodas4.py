"""RODAS4: the Rosenbrock tableau, one trial step, dense output, and a lane's RODAS4 attempt."""

R_GAMMA = 0.25
R_C2 = 0.386
R_C3 = 0.21
R_C4 = 0.63
R_D1 = 0.25
R_D2 = -0.1043
R_D3 = 0.1035
R_D4 = -0.3620000000000023e-01
R_A21 = 0.1544000000000000e01
R_A31 = 0.9466785280815826
R_A32 = 0.2557011698983284
R_A41 = 0.3314825187068521e01
R_A42 = 0.2896124015972201e01
R_A43 = 0.9986419139977817
R_A51 = 0.1221224509226641e01
R_A52 = 0.6019134481288629e01
R_A53 = 0.1253708332932087e02
R_A54 = -0.6878860361058950
R_C21 = -0.5668800000000000e01
R_C31 = -0.2430093356833875e01
R_C32 = -0.2063599157091915
R_C41 = -0.1073529058151375
R_C42 = -0.9594562251023355e01
R_C43 = -0.2047028614809616e02
R_C51 = 0.7496443313967647e01
R_C52 = -0.1024680431464352e02
R_C53 = -0.3399990352819905e02
R_C54 = 0.1170890893206160e02
R_C61 = 0.8083246795921522e01
R_C62 = -0.7981132988064893e01
R_C63 = -0.3152159432874371e02
R_C64 = 0.1631930543123136e02
R_C65 = -0.6058818238834054e01
R_D21 = 0.1012623508344586e02
R_D22 = -0.7487995877610167e01
R_D23 = -0.3480091861555747e02
R_D24 = -0.7992771707568823e01
R_D25 = 0.1025137723295662e01
R_D31 = -0.6762803392801253
R_D32 = 0.6087714651680015e01
R_D33 = 0.1643084320892478e02
R_D34 = 0.2476722511418386e02
R_D35 = -0.6594389125716872e01



@njit(**_JIT)
def _rodas_step(t, h, t_end, y, p, ext, rtol, atol, f0, dfdt, g1, g2, g3, g4, g5, g6, ft, tmp, ynew,
                cont3, cont4, J, LU, piv):
    """One RODAS4 trial step with J = df/dy and dfdt = df/dt at (t, y).

    f0 must hold f(t, y). Fills the stage vectors g1..g6 (g6 is the error estimate),
    the solution ynew and the dense-output vectors cont3, cont4. Returns the error
    norm, or -1.0 if the iteration matrix is singular.
    """
    n = N_STATES
    inv_gh = 1.0 / (R_GAMMA * h)
    for i in range(n):
        for j in range(n):
            LU[i, j] = -J[i, j]
        LU[i, i] += inv_gh
    if not _lu_factor(LU, piv):
        return -1.0
    inv_h = 1.0 / h
    t1 = _stage_time(t + h, t_end)
    for i in range(n):
        g1[i] = f0[i] + h * R_D1 * dfdt[i]
    _solve_stage(LU, piv, g1, J, cont4)
    for i in range(n):
        tmp[i] = y[i] + R_A21 * g1[i]
    _f(t + R_C2 * h, tmp, p, ext, ft)
    for i in range(n):
        g2[i] = ft[i] + h * R_D2 * dfdt[i] + R_C21 * g1[i] * inv_h
    _solve_stage(LU, piv, g2, J, cont4)
    for i in range(n):
        tmp[i] = y[i] + R_A31 * g1[i] + R_A32 * g2[i]
    _f(t + R_C3 * h, tmp, p, ext, ft)
    for i in range(n):
        g3[i] = ft[i] + h * R_D3 * dfdt[i] + (R_C31 * g1[i] + R_C32 * g2[i]) * inv_h
    _solve_stage(LU, piv, g3, J, cont4)
    for i in range(n):
        tmp[i] = y[i] + R_A41 * g1[i] + R_A42 * g2[i] + R_A43 * g3[i]
    _f(t + R_C4 * h, tmp, p, ext, ft)
    for i in range(n):
        g4[i] = ft[i] + h * R_D4 * dfdt[i] + (R_C41 * g1[i] + R_C42 * g2[i] + R_C43 * g3[i]) * inv_h
    _solve_stage(LU, piv, g4, J, cont4)
    for i in range(n):
        tmp[i] = y[i] + R_A51 * g1[i] + R_A52 * g2[i] + R_A53 * g3[i] + R_A54 * g4[i]
    _f(t1, tmp, p, ext, ft)
    for i in range(n):
        g5[i] = ft[i] + (R_C51 * g1[i] + R_C52 * g2[i] + R_C53 * g3[i] + R_C54 * g4[i]) * inv_h
    _solve_stage(LU, piv, g5, J, cont4)
    for i in range(n):
        tmp[i] += g5[i]
    _f(t1, tmp, p, ext, ft)
    for i in range(n):
        g6[i] = ft[i] + (R_C61 * g1[i] + R_C62 * g2[i] + R_C63 * g3[i] + R_C64 * g4[i] + R_C65 * g5[i]) * inv_h
    _solve_stage(LU, piv, g6, J, cont4)
    for i in range(n):
        ynew[i] = tmp[i] + g6[i]
        cont3[i] = R_D21 * g1[i] + R_D22 * g2[i] + R_D23 * g3[i] + R_D24 * g4[i] + R_D25 * g5[i]
        cont4[i] = R_D31 * g1[i] + R_D32 * g2[i] + R_D33 * g3[i] + R_D34 * g4[i] + R_D35 * g5[i]
    return _norm(g6, y, ynew, rtol, atol, ext)


@njit(**_JIT)
def _rodas_interp(s, y, ynew, cont3, cont4, out):
    """RODAS4's dense output (1 - s) y + s ynew + s (1 - s) (cont3 + s cont4), written as
    y + s ((ynew - y) + (1 - s)(cont3 + s cont4)): a state that the step left unchanged (a
    counter of events, a population held at zero) is read back exactly, where the first form
    gives y (1 - s) + s y, off by an ulp for some s (an event counted inside a RODAS step then
    added one to 73.99999999999997)."""
    s1 = 1.0 - s
    for i in range(N_STATES):
        out[i] = y[i] + s * ((ynew[i] - y[i]) + s1 * (cont3[i] + s * cont4[i]))



@njit(**_JIT)
def _lane_rodas(li, Y, K, PL, EXT, T, LF, LI, JL, DFL, y1, p1, ext1, f0, g1, g2, g3, g4, g5, g6, ft, tmp1,
                ynew1, cont3, cont4, interp, v, w, LU, piv, otmp, TS1, times, thr, atol, rtol, method, hmax,
                max_steps, state_idx, output_idx, out_states, out_outputs, status, counters, final, GL, RHIT, gnew,
                gtmp, mev_count):
    """One RODAS4 attempt for the lane (scalar), with its bookkeeping.

    Runs at every step of a stiff patient: its arrays come one by one, not as the named
    tuples of the colder helpers (each array taken from a tuple costs an atomic reference
    count, which made RODAS4 steps measurably slower).
    """
    n = N_STATES
    i_pat = LI[li, I_PAT]
    t = T[li]
    tend = LF[li, F_TEND]
    h, hit, ts1, st = _step_size(t, tend, LF[li, F_H], hmax,
                                 counters[i_pat, C_ACCEPTED] + counters[i_pat, C_REJECTED], max_steps)
    if st != OK:
        _lane_finish(li, st, Y, LI, out_states, out_outputs, status, final)
        return
    LI[li, I_HIT] = hit
    TS1[li] = ts1
    _lane_get(li, Y, PL, EXT, y1, p1, ext1)
    for i in range(n):
        f0[i] = K[0, i, li]
    J = JL[li]
    dfdt = DFL[li]
    if LI[li, I_JACFRESH] == 0:
        _jacobian(t, y1, p1, ext1, J, dfdt)
        counters[i_pat, C_JAC] += 1
        LI[li, I_JACFRESH] = 1
    counters[i_pat, C_LU] += 1
    err = _rodas_step(t, h, tend, y1, p1, ext1, rtol, atol, f0, dfdt, g1, g2, g3, g4, g5, g6, ft, tmp1, ynew1,
                      cont3, cont4, J, LU, piv)
    counters[i_pat, C_RHS] += 5
    if err < 0.0:  # singular iteration matrix: shrink the step
        counters[i_pat, C_REJECTED] += 1
        LF[li, F_H] = h * 0.25
        LI[li, I_REJECT] = 1
        return
    if not (err <= 1.0):
        counters[i_pat, C_REJECTED] += 1
        if not (err == err) or err > 1e300:
            LF[li, F_H] = h * 0.1
        else:
            LF[li, F_H] = h / min(6.0, max(0.2, math.sqrt(math.sqrt(err)) / 0.9))
        LI[li, I_REJECT] = 1
        return
    for i in range(n):
        if not (ynew1[i] - ynew1[i] == 0.0):
            _lane_finish(li, np.int64(NON_FINITE), Y, LI, out_states, out_outputs, status, final)
            return
    t_new = tend if LI[li, I_HIT] == 1 else t + h
    t_step = t_new  # the end of the step taken (outputs interpolate in it even when a root stops the lane earlier)
    s_root = -1.0
    if N_ROOTS > 0:
        # no jumps fire inside a RODAS step: no tracked counts (corr False; GL stands for the unused quad)
        s_root = _lane_roots(RODAS, li, t, h, t_new, p1, ynew1, Y, K, y1, cont3, cont4, GL, RHIT, gnew, gtmp, tmp1,
                             mev_count, i_pat, 0.0, False, GL)
        if s_root >= 0.0:
            LI[li, I_ROOT] = 1
            if s_root < (t_new - t) / h:
                t_new = t + s_root * h
            else:
                s_root = -1.0  # the root is at the end of the step: the state there is ynew1
    kout = LI[li, I_KOUT]
    while kout < times.shape[0] and times[kout] <= t_new and times[kout] < tend:
        tau = times[kout]
        if tau == t_step:
            for i in range(n):
                interp[i] = ynew1[i]
        else:
            _rodas_interp((tau - t) / h, y1, ynew1, cont3, cont4, interp)
        for i in range(n):
            if thr[i] > 0.0 and interp[i] < thr[i] and (ext1[i] == EXTINCT or (
                    ext1[i] == ALIVE and ynew1[i] < thr[i])):
                interp[i] = 0.0
        _record(tau, interp, p1, i_pat, kout, state_idx, output_idx, out_states, out_outputs, otmp)
        kout += 1
    LI[li, I_KOUT] = kout
    if s_root >= 0.0:
        for i in range(n):
            ynew1[i] = tmp1[i]
    clipped = False
    for i in range(n):
        if thr[i] > 0.0:
            if ext1[i] == ALIVE:
                if ynew1[i] < thr[i]:
                    ynew1[i] = 0.0
                    ext1[i] = EXTINCT
                    ext1[n] += 1
                    clipped = True
            elif ext1[i] == NEW:
                if ynew1[i] >= thr[i]:
                    ext1[i] = ALIVE
                elif ynew1[i] < 0.0:
                    ynew1[i] = 0.0
                    clipped = True
    if N_ROOTS > 0 and clipped and s_root < 0.0 and LI[li, I_ROOT] == 0:
        LI[li, I_INIT] = 1  # the driver lets the triggers see the extinction (_lane_after_clip)
    counters[i_pat, C_ACCEPTED] += 1
    counters[i_pat, C_STIFF_STEPS] += 1
    fac = max(1.0 / 6.0, min(5.0, math.sqrt(math.sqrt(err)) / 0.9))
    if LI[li, I_FIRST_RODAS] == 0:  # Gustafsson's predictive controller (as rodas.f)
        facgus = (LF[li, F_HACC] / h) * math.sqrt(math.sqrt(err * err / LF[li, F_ERRACC])) / 0.9
        fac = max(fac, max(1.0 / 6.0, min(5.0, facgus)))
    LI[li, I_FIRST_RODAS] = 0
    LF[li, F_HACC] = h
    LF[li, F_ERRACC] = max(1e-2, err)
    hnew = h / fac
    if method == AUTO:
        # back to Tsit5 when the RODAS step the accuracy allows is below STIFF_OFF times
        # Tsit5's stable step, NONSTIFF_STEPS steps in a row: a RODAS step (Jacobian, LU,
        # six stages, one lane at a time) costs several Tsit5 lane steps (see STIFF_OFF)
        if hnew * _spectral_radius(J, v, w) < STIFF_OFF * T_STAB:
            LI[li, I_NNONSTIFF] += 1
            if LI[li, I_NNONSTIFF] >= NONSTIFF_STEPS:
                # the episode paid if any of its steps was worth its cost (it lasted longer than
                # the NONSTIFF_STEPS steps that end it): the next check waits STIFF_WAIT0 flagged
                # steps again; otherwise twice as many as this one did (up to STIFF_WAIT_MAX)
                paid = counters[i_pat, C_STIFF_STEPS] - LI[li, I_EPISODE] > NONSTIFF_STEPS
                LI[li, I_STIFF_WAIT] = STIFF_WAIT0 if paid else min(2 * LI[li, I_STIFF_WAIT], STIFF_WAIT_MAX)
                LI[li, I_MODE] = TSIT5
                LI[li, I_NNONSTIFF] = 0
                LI[li, I_NCHECK] = 0
                LF[li, F_LOGFAC] = LOGFAC0
        else:
            LI[li, I_NNONSTIFF] = 0
    if LI[li, I_REJECT] == 1:
        hnew = min(hnew, h)
    LI[li, I_REJECT] = 0
    LI[li, I_JACFRESH] = 0
    T[li] = t_new
    _lane_put(li, Y, PL, EXT, ynew1, p1, ext1)
    if t_new < tend:
        _f(t_new, ynew1, p1, ext1, f0)
        counters[i_pat, C_RHS] += 1
        for i in range(n):
            K[0, i, li] = f0[i]
    LF[li, F_H] = hnew
