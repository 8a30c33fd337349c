"""Events: condition programs and what happens at a lane's segment boundary."""


@njit(**_JIT)
def _run_program(code, consts, start, stop, cstart, t, y, p, stack):
    """Evaluate a condition program (see expressions.to_program) -> float.

    The OP_* codes are generated from carkinetics.model.expressions.OPCODES.
    """
    sp = 0
    for pc in range(start, stop):
        op = code[pc, 0]
        arg = code[pc, 1]
        if op == OP_CONST:
            stack[sp] = consts[cstart + arg]
            sp += 1
        elif op == OP_STATE:
            stack[sp] = y[arg]
            sp += 1
        elif op == OP_PARAM:
            stack[sp] = p[arg]
            sp += 1
        elif op == OP_TIME:
            stack[sp] = t
            sp += 1
        elif (op == OP_NEG or op == OP_NOT or op == OP_EXP or op == OP_LOG or op == OP_LOG10 or op == OP_SQRT
              or op == OP_ABS or op == OP_STEP or op == OP_TANH or op == OP_LOG1P or op == OP_EXPM1 or op == OP_SIN
              or op == OP_COS):
            a = stack[sp - 1]
            if op == OP_NEG:
                r = -a
            elif op == OP_NOT:
                r = 1.0 if a == 0.0 else 0.0
            elif op == OP_EXP:
                r = math.exp(a)
            elif op == OP_LOG:
                r = math.log(a) if a > 0.0 else (-math.inf if a == 0.0 else math.nan)
            elif op == OP_LOG10:
                r = math.log10(a) if a > 0.0 else (-math.inf if a == 0.0 else math.nan)
            elif op == OP_SQRT:
                r = math.sqrt(a) if a >= 0.0 else math.nan
            elif op == OP_ABS:
                r = abs(a)
            elif op == OP_STEP:
                r = 1.0 if a > 0.0 else 0.0
            elif op == OP_TANH:
                r = math.tanh(a)
            elif op == OP_LOG1P:
                r = math.log1p(a) if a > -1.0 else math.nan
            elif op == OP_EXPM1:
                r = math.expm1(a)
            elif op == OP_SIN:
                r = math.sin(a)
            else:
                r = math.cos(a)
            stack[sp - 1] = r
        elif op == OP_WHERE or op == OP_HILL or op == OP_CLIP:
            a = stack[sp - 3]
            b = stack[sp - 2]
            c = stack[sp - 1]
            sp -= 2
            if op == OP_WHERE:
                r = b if a != 0.0 else c
            elif op == OP_HILL:
                r = _hill(a, b, c)
            else:
                r = min(max(a, b), c)
            stack[sp - 1] = r
        else:
            a = stack[sp - 2]
            b = stack[sp - 1]
            sp -= 1
            if op == OP_ADD:
                r = a + b
            elif op == OP_SUB:
                r = a - b
            elif op == OP_MUL:
                r = a * b
            elif op == OP_DIV:
                r = a / b if b != 0.0 else (math.nan if a == 0.0 else math.copysign(math.inf, a) * math.copysign(1.0, b))
            elif op == OP_POW:
                r = a ** b
            elif op == OP_LT:
                r = 1.0 if a < b else 0.0
            elif op == OP_LE:
                r = 1.0 if a <= b else 0.0
            elif op == OP_GT:
                r = 1.0 if a > b else 0.0
            elif op == OP_GE:
                r = 1.0 if a >= b else 0.0
            elif op == OP_EQ:
                r = 1.0 if a == b else 0.0
            elif op == OP_NE:
                r = 1.0 if a != b else 0.0
            elif op == OP_AND:
                r = 1.0 if (a != 0.0 and b != 0.0) else 0.0
            elif op == OP_OR:
                r = 1.0 if (a != 0.0 or b != 0.0) else 0.0
            elif op == OP_MIN:
                r = min(a, b)
            else:
                r = max(a, b)
            stack[sp - 1] = r
    return stack[0]



@njit(**_JIT)
def _lane_at_time(li, lanes, work, prob, res):
    """At the lane's current time: apply due events, record outputs, start a segment.

    Conditions are evaluated on the state before any event of this time; values
    recorded at an event time are those after the events. Finishes the patient at
    the last output time.
    """
    Y, PL, EXT, T, LF, LI, ORDER = lanes.Y, lanes.PL, lanes.EXT, lanes.T, lanes.LF, lanes.LI, lanes.ORDER
    y1, p1, ext1 = work.y1, work.p1, work.ext1
    times, ev_time = prob.times, prob.ev_time
    i_pat = LI[li, I_PAT]
    t = T[li]
    _lane_get(li, Y, PL, EXT, y1, p1, ext1)
    n_ev = ev_time.shape[1]
    je = LI[li, I_JE]
    st = np.int64(OK)
    terminal = False
    # events closer than a few rounding errors to t happen now: a segment that short
    # would end the patient with STEP_TOO_SMALL (two event times meant to coincide,
    # computed along different paths, such as 10 and 80 - 70.0 may differ by 1e-14)
    t_due = t + EVENT_MERGE_ULPS * 2.220446049250313e-16 * max(abs(t), 1.0)
    if je < n_ev and ev_time[i_pat, ORDER[li, je]] <= t_due:
        # (the arrays of events are taken from the tuples only here: each costs a reference count)
        stack, cond, ev_cond, thr, applied = work.stack, work.cond, prob.ev_cond, prob.thr, res.applied
        act_start, act_kind, act_target, act_value = prob.act_start, prob.act_kind, prob.act_target, prob.act_value
        g0 = je
        while je < n_ev and ev_time[i_pat, ORDER[li, je]] <= t_due:
            je += 1
        if N_ROOTS > 0:  # the model's triggers before the events (see _after_jump)
            model_roots(t, y1, p1, work.gnew)
        for g in range(g0, je):
            c = ev_cond[ORDER[li, g]]
            if c < 0:
                cond[g] = True
            else:
                val = _run_program(prob.prog_code, prob.prog_const, prob.prog_start[c], prob.prog_start[c + 1],
                                   prob.prog_cstart[c], t, y1, p1, stack)
                cond[g] = val != 0.0 and val == val
        for g in range(g0, je):
            if not cond[g]:
                continue
            e = ORDER[li, g]
            applied[i_pat, e] = 1
            for a in range(act_start[e], act_start[e + 1]):
                kind = act_kind[a]
                j = act_target[a]
                val = act_value[i_pat, a]
                if kind == ACT_SET_PARAMETER:
                    p1[j] = val
                    continue
                if kind == ACT_ADD:
                    y1[j] += val
                elif kind == ACT_MULTIPLY:
                    y1[j] *= val
                else:
                    y1[j] = val
                if thr[j] > 0.0:
                    if y1[j] >= thr[j]:
                        if ext1[j] == EXTINCT:
                            ext1[N_STATES] -= 1
                        ext1[j] = ALIVE
                    else:
                        y1[j] = 0.0
                        if ext1[j] == ALIVE:
                            ext1[j] = EXTINCT
                            ext1[N_STATES] += 1
        if N_ROOTS > 0:
            done = work.rdone
            for r in range(N_ROOTS):
                done[r] = False
            _regimes(li, y1, p1, LI, prob.rng_key[i_pat])
            terminal = _after_jump(li, i_pat, t, y1, p1, ext1, LI, lanes.RHIT, prob.rng_key[i_pat], res.mev_count,
                                   res.mev_time, thr, work.gnew, work.gtmp, done)
        for i in range(N_STATES):
            if not (y1[i] - y1[i] == 0.0):
                st = NON_FINITE
    LI[li, I_JE] = je
    _lane_put(li, Y, PL, EXT, y1, p1, ext1)
    if st != OK:
        _lane_finish(li, st, Y, LI, res.out_states, res.out_outputs, res.status, res.final)
        return
    if N_ROOTS > 0 and terminal:  # _lane_terminate records this time's values (after the events)
        _lane_terminate(li, t, y1, p1, lanes, work, prob, res)
        return
    kout = LI[li, I_KOUT]
    while kout < times.shape[0] and times[kout] <= t:
        _record(times[kout], y1, p1, i_pat, kout, prob.state_idx, prob.output_idx, res.out_states, res.out_outputs,
                work.otmp)
        kout += 1
    LI[li, I_KOUT] = kout
    t_final = times[times.shape[0] - 1]
    if t >= t_final:
        _lane_finish(li, np.int64(OK), Y, LI, res.out_states, res.out_outputs, res.status, res.final)
        return
    tend = t_final
    if je < n_ev and ev_time[i_pat, ORDER[li, je]] < tend:
        tend = ev_time[i_pat, ORDER[li, je]]
    LF[li, F_TEND] = tend
    _segment_restart(li, LF, LI)


@njit(**_JIT)
def _segment_restart(li, LF, LI):
    """The lane starts integrating afresh from its (t, y): f, an initial step, controllers reset."""
    LF[li, F_H] = 0.0
    LF[li, F_LOGFAC] = LOGFAC0
    LI[li, I_INIT] = 2
    LI[li, I_REJECT] = 0
    LI[li, I_NSTIFF] = 0
    LI[li, I_NNONSTIFF] = 0
    LI[li, I_NCHECK] = 0
    LI[li, I_FIRST_RODAS] = 1
    LI[li, I_JACFRESH] = 0
