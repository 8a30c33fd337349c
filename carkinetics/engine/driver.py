"""The lane driver: patients integrated side by side, and the kernel's entry point run_range.

Patients in SIMD lanes. Each thread integrates up to LANES patients side by side.
Every lane has its own time, step size, events, outputs and method; the Tsit5 stages
and the model's right-hand side run as loops over lanes that LLVM vectorises, and the
transcendental functions are branch-free (fdlibm algorithms, see vmath) so they vectorise
too. A lane whose patient turns stiff takes scalar RODAS4 steps while the others go
on. When a patient finishes, the next one of the thread's block takes its lane. Each
patient's arithmetic is the same whichever lane, block or thread it runs in, so
results are bit-identical for any number of threads; a single simulation is the same
engine with one lane.

Methods
  TSIT5  Tsitouras 5(4) explicit Runge-Kutta pair with its free 4th-order
         interpolant (Tsitouras, Comput Math Appl 62:770-775, 2011).
  RODAS  RODAS4, 6-stage L-stable stiffly accurate Rosenbrock method of order 4(3)
         with 3rd-order dense output (Hairer & Wanner, Solving ODEs II, 2nd ed.,
         Springer 1996, sec. IV.7; coefficients of Hairer's rodas.f), with the
         analytic Jacobian generated from the model's expressions.
  AUTO   TSIT5, switching a patient to RODAS when its step is held by stability
         (spectral radius of the Jacobian, checked when Hairer's cheap DOPRI5
         estimate or a periodic timer raises suspicion) and back when the explicit
         method would be stable at the step the accuracy allows.

Integration is piecewise between event times; events add to, multiply or set
states and set parameters, optionally only when a condition (a small stack program,
see expressions.to_program) holds on the state just before the events of that time.
A population with an extinction threshold that falls below it becomes exactly zero
and stays zero (its derivative is held at zero) until an event raises it again; a
population that starts below its threshold (a memory pool at zero, say) may grow
from inflow until it reaches the threshold (see NEW/ALIVE/EXTINCT).

Nothing in the engine checks user input: carkinetics.simulation.simulate validates everything
before calling the kernels.
"""


@njit(**_ALLOC)
def run_range(start, stop, prob, res):
    """Simulate patients start..stop-1, LANES at a time, in the calling thread.

    The kernel's one entry point. It releases the interpreter lock (``nogil``), so Python
    threads each running a range of patients run in parallel
    (carkinetics.simulation.simulate._run_kernel). One entry point called only from Python
    is compiled once per model: the numba ``prange`` loop of parallel runs had its own
    compilation (about 22 s on the T-ALL model, which numba links and optimises again), and a
    serial wrapper passing a constant start made numba compile this function and its callees
    twice (a literal argument is a type of its own). benchmarks/bench_compile.py measures it.
    """
    times = prob.times
    thr = prob.thr
    rtol = prob.rtol
    atol = prob.atol
    method = prob.method
    hmax = prob.hmax
    max_steps = prob.max_steps
    state_idx = prob.state_idx
    output_idx = prob.output_idx
    out_states = res.out_states
    out_outputs = res.out_outputs
    counters = res.counters
    status = res.status
    final = res.final
    n = N_STATES
    n_par = prob.params.shape[1]
    nl = min(LANES, stop - start)
    n_times = times.shape[0]
    n_save_states = state_idx.shape[0]
    n_save_outputs = output_idx.shape[0]
    n_ev = prob.ev_time.shape[1]
    L = LANES
    # the lane arrays are allocated here, where the vectorised loops below use them
    Y = np.zeros((n, L))
    K = np.zeros((7, n, L))
    XS = np.zeros((7, n, L))
    Y6 = XS[5]  # the stage-6 state (for the stiffness estimate)
    YNEW = XS[6]  # the new state
    PL = np.zeros((n_par, L))
    EXT = np.zeros((n + 1, L), dtype=np.int32)
    T = np.zeros(L)
    HS = np.zeros(L)
    TS = np.zeros(L)
    TS1 = np.zeros(L)
    ACC = np.zeros(L)
    ERRN = np.zeros(L)
    FIN = np.zeros(L)
    NUM = np.zeros(L)
    DEN = np.zeros(L)
    ACPT = np.zeros(L)
    CHG = np.zeros(L)
    TNEW = np.zeros(L)
    LERR = np.zeros(L)  # log of the error norm (at least 1e-10), for the step-size control
    LF = np.zeros((L, N_LF))
    LI = np.zeros((L, N_LI), dtype=np.int64)
    for li in range(L):
        LI[li, I_PAT] = -1
    lanes = Lanes(Y, K, XS, PL, EXT, T, HS, TS, TS1, ACC, ERRN, FIN, NUM, DEN, ACPT, CHG, TNEW, LF, LI,
                  np.zeros((L, max(n_ev, 1)), dtype=np.int64), np.zeros((L, n, n)), np.zeros((L, n)),
                  np.zeros((max(N_ROOTS, 1), L)), np.zeros((L, max(N_ROOTS, 1)), dtype=np.bool_))
    work = _work_new(n_par, n_ev)
    JL = lanes.JL
    DFL = lanes.DFL
    # scratch of the lane being handled, one by one for the RODAS4 step (see _lane_rodas)
    y1, p1, ext1, f0, ynew1, interp = work.y1, work.p1, work.ext1, work.f0, work.ynew1, work.interp
    g1, g2, g3, g4, g5, g6, ft, tmp1 = work.g1, work.g2, work.g3, work.g4, work.g5, work.g6, work.ft, work.tmp1
    cont3, cont4, v, w, LU, piv, otmp = work.cont3, work.cont4, work.v, work.w, work.LU, work.piv, work.otmp
    GL, RHIT, gnew, gtmp, mev_count = lanes.GL, lanes.RHIT, work.gnew, work.gtmp, res.mev_count
    quad, jumps, jn = work.quad, work.jumps, work.jn
    next_pat = start
    while True:
        active = 0
        for li in range(nl):
            while LI[li, I_PAT] < 0 and next_pat < stop:
                _lane_start(li, next_pat, lanes, work, prob, res)
                next_pat += 1
            if LI[li, I_PAT] >= 0:
                active += 1
        if active == 0:
            break
        need_init = False
        for li in range(nl):
            need_init = need_init or (LI[li, I_PAT] >= 0 and LI[li, I_INIT] > 0)
        if need_init:
            _lanes_init(nl, lanes, work, prob, res)
        # step sizes for the lanes taking Tsit5 steps (idle lanes and lanes taking
        # RODAS steps get HS = 0 and compute harmless garbage in the vector step)
        for li in range(nl):
            HS[li] = 0.0
            i_pat = LI[li, I_PAT]
            if i_pat < 0 or LI[li, I_MODE] != TSIT5:
                continue
            h, hit, ts1, st = _step_size(T[li], LF[li, F_TEND], LF[li, F_H], hmax,
                                         counters[i_pat, C_ACCEPTED] + counters[i_pat, C_REJECTED], max_steps)
            if st != OK:
                _lane_finish(li, st, Y, LI, out_states, out_outputs, status, final)
                continue
            LI[li, I_HIT] = hit
            TS1[li] = ts1
            HS[li] = h
        _lanes_tsit5(T, HS, TS, TS1, Y, K, XS, PL, EXT, ACC, ERRN, rtol, atol, nl)
        # ---- after the trial step, vectorised over lanes: finiteness of the new state
        # and the sums of Hairer's stiffness estimate
        for lane in range(nl):
            FIN[lane] = 1.0
            NUM[lane] = 0.0
            DEN[lane] = 0.0
        for i in range(n):
            for lane in range(nl):
                FIN[lane] = FIN[lane] if YNEW[i, lane] - YNEW[i, lane] == 0.0 else 0.0
                d1 = K[6, i, lane] - K[5, i, lane]
                d2 = YNEW[i, lane] - Y6[i, lane]
                NUM[lane] += d1 * d1
                DEN[lane] += d2 * d2
        # the logarithm the step-size control needs, for all lanes at once (branch-free: a call
        # of the C library's log and exp per lane and step cost 3 % of the engine's time)
        for lane in range(nl):
            e = ERRN[lane]
            LERR[lane] = _vlog(e if e > 1e-10 else 1e-10)
        # ---- per lane: accept or reject, outputs, step-size control (inline: this runs
        # for every lane at every step, and calls with many arrays cost more than it)
        for li in range(nl):
            ACPT[li] = 0.0
            i_pat = LI[li, I_PAT]
            if i_pat < 0:
                continue
            if LI[li, I_MODE] == RODAS:
                _lane_rodas(li, Y, K, PL, EXT, T, LF, LI, JL, DFL, y1, p1, ext1, f0, g1, g2, g3, g4, g5, g6, ft,
                            tmp1, ynew1, cont3, cont4, interp, v, w, LU, piv, otmp, TS1, times, thr, atol, rtol,
                            method, hmax, max_steps, state_idx, output_idx, out_states, out_outputs, status,
                            counters, final, GL, RHIT, gnew, gtmp, mev_count)
                if N_ROOTS > 0 and LI[li, I_PAT] >= 0 and LI[li, I_ROOT] == 1:
                    _lane_at_root(li, lanes, work, prob, res)
                elif N_ROOTS > 0 and LI[li, I_PAT] >= 0 and LI[li, I_INIT] == 1:  # extinction at the step end
                    _lane_after_clip(li, lanes, work, prob, res)
                if LI[li, I_PAT] >= 0 and T[li] >= LF[li, F_TEND]:
                    _lane_at_time(li, lanes, work, prob, res)
                continue
            if HS[li] <= 0.0:
                continue
            counters[i_pat, C_RHS] += 6
            err = ERRN[li]
            h = HS[li]
            t = T[li]
            tend = LF[li, F_TEND]
            if not (err <= 1.0):  # rejected (also when err is NaN: a trial step overflowed)
                counters[i_pat, C_REJECTED] += 1
                if not (err == err) or err > 1e300:
                    LF[li, F_H] = h * 0.1
                else:
                    LF[li, F_H] = h / min(10.0, _vexp(0.17 * LERR[li]) / 0.9)  # err > 1: LERR = log(err)
                LI[li, I_REJECT] = 1
                continue
            if FIN[li] == 0.0:  # inf or NaN in an accepted state
                _lane_finish(li, np.int64(NON_FINITE), Y, LI, out_states, out_outputs, status, final)
                continue
            ACPT[li] = 1.0
            t_new = tend if LI[li, I_HIT] == 1 else t + h
            if N_ROOTS > 0:
                # a root crossed in the step: the lane stops there (the outputs up to it are
                # still interpolated from this step), unless the roots are jumps that fire inside it
                # the lane's parameters and new state are read in place (columns of PL and YNEW):
                # copied out only when a root was crossed
                s_root = _lane_roots_tsit5(li, t, h, t_new, PL, YNEW, Y, K, y1, cont3, cont4, GL, RHIT, gnew, gtmp,
                                           tmp1, mev_count, i_pat, quad)
                jn[0] = 0
                if N_STOCH > 0 and s_root >= 0.0:  # births and deaths of small clones inside the step
                    for j in range(n_par):
                        p1[j] = PL[j, li]
                    s_root = _jumps_in_step(li, t, h, t_new, s_root, lanes, work, prob, res)
                if jn[0] > 0 and not (0.0 <= s_root < (t_new - t) / h):
                    for i in range(n):
                        YNEW[i, li] = ynew1[i]  # the end of the step with the counts its jumps left
                if s_root >= 0.0:
                    LI[li, I_ROOT] = 1
                    if s_root < (t_new - t) / h:
                        t_new = t + s_root * h
                        for i in range(n):
                            YNEW[i, li] = tmp1[i]
            TNEW[li] = t_new
            # dense output for output times inside the step (strictly before the segment end)
            kout = LI[li, I_KOUT]
            while kout < n_times and times[kout] <= t_new and times[kout] < tend:
                tau = times[kout]
                if tau == t_new:
                    for i in range(n):
                        interp[i] = YNEW[i, li]
                else:
                    b1, b2, b3, b4, b5, b6, b7 = _tsit5_interp_weights((tau - t) / h)
                    for i in range(n):
                        interp[i] = Y[i, li] + h * (b1 * K[0, i, li] + b2 * K[1, i, li] + b3 * K[2, i, li]
                                                    + b4 * K[3, i, li] + b5 * K[4, i, li] + b6 * K[5, i, li]
                                                    + b7 * K[6, i, li])
                if N_ROOTS > 0 and jn[0] > 0 and tau != t_new:  # each count from its jump on
                    for k in range(jn[0]):
                        if jumps[k, 0] < (tau - t) / h:
                            interp[int(jumps[k, 1])] = jumps[k, 2]
                for i in range(n):
                    if thr[i] > 0.0 and interp[i] < thr[i] and (EXT[i, li] == EXTINCT or (
                            EXT[i, li] == ALIVE and YNEW[i, li] < thr[i])):
                        interp[i] = 0.0
                for j in range(n_save_states):
                    out_states[i_pat, kout, j] = interp[state_idx[j]]
                if n_save_outputs > 0:
                    _lane_outputs(tau, interp, PL, li, otmp)
                    for j in range(n_save_outputs):
                        out_outputs[i_pat, kout, j] = otmp[output_idx[j]]
                kout += 1
            LI[li, I_KOUT] = kout
            counters[i_pat, C_ACCEPTED] += 1
            # stiffness: Hairer's cheap estimate h*|lambda| ~ h*|k7 - k6| / |ynew - y6| each
            # step; when it (or a periodic timer) raises suspicion, the spectral radius of
            # the analytic Jacobian decides
            if method == AUTO:
                if DEN[li] > 0.0 and h * math.sqrt(NUM[li] / DEN[li]) > STIFF_ON * T_STAB:
                    LI[li, I_NSTIFF] += 1
                else:
                    LI[li, I_NSTIFF] = 0
                LI[li, I_NCHECK] += 1
                wait = LI[li, I_STIFF_WAIT]
                if LI[li, I_NSTIFF] >= wait or LI[li, I_NCHECK] >= (STIFF_CHECK_EVERY // STIFF_WAIT0) * wait:
                    LI[li, I_NSTIFF] = 0
                    LI[li, I_NCHECK] = 0
                    _lane_stiff_check(li, t_new, h, YNEW, PL, EXT, LI, JL, DFL, y1, p1, ext1, v, w, counters)
            # step-size control: DOPRI5's PI controller, fac = err^0.17 / err_old^0.04
            fac = _vexp(0.17 * LERR[li] - LF[li, F_LOGFAC])
            fac = max(0.1, min(5.0, fac / 0.9))
            hnew = h / fac
            LF[li, F_LOGFAC] = 0.04 * (LERR[li] if err >= 1e-4 else LOG_1E4)
            if LI[li, I_REJECT] == 1:
                hnew = min(hnew, h)
            LI[li, I_REJECT] = 0
            LF[li, F_H] = hnew
            T[li] = t_new
        # ---- accepted lanes, vectorised: extinction (a population below its threshold
        # becomes exactly zero), the new state, and FSAL (k1 of the next step = k7)
        for lane in range(nl):
            CHG[lane] = 0.0
        for i in range(n):
            if thr[i] > 0.0:
                for lane in range(nl):
                    yv = YNEW[i, lane]
                    e = EXT[i, lane]
                    ok = ACPT[lane] > 0.0
                    die = ok and e == ALIVE and yv < thr[i]
                    clip = ok and e == NEW and yv < 0.0
                    YNEW[i, lane] = 0.0 if (die or clip) else yv
                    EXT[i, lane] = EXTINCT if die else (ALIVE if (ok and e == NEW and yv >= thr[i]) else e)
                    EXT[n, lane] += 1 if die else 0
                    CHG[lane] += 1.0 if (die or clip) else 0.0
        for i in range(n):
            for lane in range(nl):
                ok = ACPT[lane] > 0.0
                Y[i, lane] = YNEW[i, lane] if ok else Y[i, lane]
                K[0, i, lane] = K[6, i, lane] if (ok and CHG[lane] == 0.0) else K[0, i, lane]
        # ---- per lane: a changed state needs f at the new point; a segment may end
        for li in range(nl):
            if ACPT[li] == 0.0 or LI[li, I_PAT] < 0:
                continue
            if CHG[li] > 0.0:
                LI[li, I_INIT] = 1
                LI[li, I_JACFRESH] = 0
            if N_ROOTS > 0 and LI[li, I_ROOT] == 1:
                _lane_at_root(li, lanes, work, prob, res)
                if LI[li, I_PAT] < 0:
                    continue
            elif N_ROOTS > 0 and CHG[li] > 0.0:  # extinction at the step end: a jump triggers may see
                _lane_after_clip(li, lanes, work, prob, res)
                if LI[li, I_PAT] < 0:
                    continue
            if T[li] >= LF[li, F_TEND]:
                _lane_at_time(li, lanes, work, prob, res)
