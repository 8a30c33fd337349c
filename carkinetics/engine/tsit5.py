"""Tsit5: the Tsitouras 5(4) tableau, one trial step in every lane at once, and the weights of
its dense output."""

T_C2 = 0.161
T_C3 = 0.327
T_C4 = 0.9
T_C5 = 0.9800255409045096857298102862870245954942137979563024768854764293221195950761080302604
T_A21 = 0.161
T_A31 = -0.8480655492356988544426874250230774675121177393430391537369234245294192976164141156943e-2
T_A32 = 0.3354806554923569885444268742502307746751211773934303915373692342452941929761641411569
T_A41 = 2.897153057105493432130432594192938764924887287701866490314866693455023795137503079289
T_A42 = -6.359448489975074843148159912383825625952700647415626703305928850207288721235210244366
T_A43 = 4.362295432869581411017727318190886861027813359713760212991062156752264926097707165077
T_A51 = 5.325864828439256604428877920840511317836476253097040101202360397727981648835607691791
T_A52 = -11.74888356406282787774717033978577296188744178259862899288666928009020615663593781589
T_A53 = 7.495539342889836208304604784564358155658679161518186721010132816213648793440552049753
T_A54 = -0.9249506636175524925650207933207191611349983406029535244034750452930469056411389539635e-1
T_A61 = 5.861455442946420028659251486982647890394337666164814434818157239052507339770711679748
T_A62 = -12.92096931784710929170611868178335939541780751955743459166312250439928519268343184452
T_A63 = 8.159367898576158643180400794539253485181918321135053305748355423955009222648673734986
T_A64 = -0.7158497328140099722453054252582973869127213147363544882721139659546372402303777878835e-1
T_A65 = -0.2826905039406838290900305721271224146717633626879770007617876201276764571291579142206e-1
T_B1 = 0.9646076681806522951816731316512876333711995238157997181903319145764851595234062815396e-1
T_B2 = 0.01
T_B3 = 0.4798896504144995747752495322905965199130404621990332488332634944254542060153074523509
T_B4 = 1.379008574103741893192274821856872770756462643091360525934940067397245698027561293331
T_B5 = -3.290069515436080679901047585711363850115683290894936158531296799594813811049925401677
T_B6 = 2.324710524099773982415355918398765796109060233222962411944060046314465391054716027841
# error weights: b (5th order) minus b-hat (4th order)
T_E1 = T_B1 - 0.9468075576583945807478876255758922856117527357724631226139574065785592789071067303271e-1
T_E2 = T_B2 - 0.9183565540343253096776363936645313759813746240984095238905939532922955247253608687270e-2
T_E3 = T_B3 - 0.4877705284247615707855642599631228241516691959761363774365216240304071651579571959813
T_E4 = T_B4 - 1.234297566930478985655109673884237654035539930748192848315425833500484878378061439761
T_E5 = T_B5 + 2.707712349983525454881109975059321670689605166938197378763992255714444407154902012702
T_E6 = T_B6 - 1.866628418170587035753719399566211498666255505244122593996591602841258328965767580089
T_E7 = -1.0 / 66.0
T_C = (0.0, T_C2, T_C3, T_C4, T_C5, 1.0, 1.0)
# stability interval of Tsit5 on the negative real axis (|R(z)| = 1 at z = -T_STAB),
# computed from the tableau; used by the stiffness switch
T_STAB = 3.5
# automatic switching: to RODAS when h * rho(J) > STIFF_ON * T_STAB, back to Tsit5 when
# the RODAS step satisfies h * rho(J) < STIFF_OFF * T_STAB for NONSTIFF_STEPS steps in a row.
# STIFF_OFF > 1: RODAS is kept only while its step is well beyond the explicit stability limit.
# On the T-ALL model a RODAS step (Jacobian, LU, six stages, one lane at a time) costs about
# 12 Tsit5 lane steps of a batch (6.9 against 0.55 us, benchmarks/README.md, stop 37) and
# RODAS at rtol 1e-6 takes more steps than Tsit5 where neither is limited by stability; at
# STIFF_OFF = 2 the marginally stiff patients of a two-year cohort spent 10 RODAS steps each
# for nothing (0.86x the speed of Tsit5 alone); 4 keeps the switch for problems whose RODAS
# step grows far beyond the explicit limit (tests/engine/test_engine.py) and costs the T-ALL
# cohort 0.92-0.97x of Tsit5 alone. (Was 0.5 and 10 steps before stop 24: 0.62x.)
STIFF_ON = 0.7
STIFF_OFF = 4.0
NONSTIFF_STEPS = 3
# Back-off of the switch: a lane that is only marginally stiff (its stable explicit step close
# to the step the accuracy allows) is flagged by every stability-limited Tsit5 step, switched
# to RODAS, and switched back after NONSTIFF_STEPS RODAS steps that were not worth their cost.
# After each such episode the lane waits twice as many flagged steps (and twice as long between
# periodic checks, STIFF_CHECK_EVERY at first) before the Jacobian decides again, up to
# STIFF_WAIT_MAX; an episode that paid (a RODAS step well beyond the explicit limit) resets it.
# The periodic check (every STIFF_CHECK_EVERY accepted Tsit5 steps) is a safety net for
# stiffness the cheap test does not see; at 100 steps it started half of the T-ALL cohort's
# RODAS episodes, none of which paid (5.7 -> 2.8 RODAS steps per patient at 300).
STIFF_WAIT0 = 3
STIFF_WAIT_MAX = 96
STIFF_CHECK_EVERY = 300



@njit(**_HOT)
def _lanes_f(t, y, p, ext, out, s, nl):
    """out[s] = f(t[l], y[:, l]) for the first nl lanes, extinct states held at zero."""
    model_rhs_lanes(t, y, p, out, s, nl)
    n_ext = 0
    for lane in range(nl):
        n_ext += ext[N_STATES, lane]
    if n_ext > 0:
        for i in range(N_STATES):
            for lane in range(nl):
                out[s, i, lane] = 0.0 if ext[i, lane] == EXTINCT else out[s, i, lane]


@njit(**_HOT)
def _lanes_tsit5(T, HS, TS, TS1, Y, K, XS, P, EXT, ACC, ERRN, rtol, atol, nl):
    """One Tsit5 trial step in every lane at once (lane l from T[l] with step HS[l]).

    K[0] holds f(T, Y). Stage s (1..6) evaluates f at XS[s] = Y + HS * sum_j a_sj K[j]
    into K[s]; XS[5] is the stage-6 state and XS[6] the new state. Stages 6 and 7 are
    evaluated at TS1 (the left limit at a segment end). The loop over stages keeps a
    single copy of the (inlined, vectorised) right-hand side in the kernel. Lanes with
    HS = 0 (idle, or taking RODAS steps) compute harmless garbage. Fills ERRN with each
    lane's error norm.
    """
    n = N_STATES
    for s in range(1, 7):
        for lane in range(nl):
            TS[lane] = TS1[lane] if s >= 5 else T[lane] + T_C[s] * HS[lane]
        # the stage input, written out per stage (a generic sum over the tableau is
        # measurably slower); the right-hand side below has one call site
        if s == 1:
            for i in range(n):
                for lane in range(nl):
                    XS[1, i, lane] = Y[i, lane] + HS[lane] * (T_A21 * K[0, i, lane])
        elif s == 2:
            for i in range(n):
                for lane in range(nl):
                    XS[2, i, lane] = Y[i, lane] + HS[lane] * (T_A31 * K[0, i, lane] + T_A32 * K[1, i, lane])
        elif s == 3:
            for i in range(n):
                for lane in range(nl):
                    XS[3, i, lane] = Y[i, lane] + HS[lane] * (T_A41 * K[0, i, lane] + T_A42 * K[1, i, lane]
                                                              + T_A43 * K[2, i, lane])
        elif s == 4:
            for i in range(n):
                for lane in range(nl):
                    XS[4, i, lane] = Y[i, lane] + HS[lane] * (T_A51 * K[0, i, lane] + T_A52 * K[1, i, lane]
                                                              + T_A53 * K[2, i, lane] + T_A54 * K[3, i, lane])
        elif s == 5:
            for i in range(n):
                for lane in range(nl):
                    XS[5, i, lane] = Y[i, lane] + HS[lane] * (T_A61 * K[0, i, lane] + T_A62 * K[1, i, lane]
                                                              + T_A63 * K[2, i, lane] + T_A64 * K[3, i, lane]
                                                              + T_A65 * K[4, i, lane])
        else:
            for i in range(n):
                for lane in range(nl):
                    XS[6, i, lane] = Y[i, lane] + HS[lane] * (T_B1 * K[0, i, lane] + T_B2 * K[1, i, lane]
                                                              + T_B3 * K[2, i, lane] + T_B4 * K[3, i, lane]
                                                              + T_B5 * K[4, i, lane] + T_B6 * K[5, i, lane])
        _lanes_f(TS, XS[s], P, EXT, K, s, nl)
    for lane in range(nl):
        ACC[lane] = 0.0
    for i in range(n):
        for lane in range(nl):
            e = HS[lane] * (T_E1 * K[0, i, lane] + T_E2 * K[1, i, lane] + T_E3 * K[2, i, lane]
                            + T_E4 * K[3, i, lane] + T_E5 * K[4, i, lane] + T_E6 * K[5, i, lane]
                            + T_E7 * K[6, i, lane])
            sc = atol[i] + rtol * max(abs(Y[i, lane]), abs(XS[6, i, lane]))
            r = e / sc
            ACC[lane] += 0.0 if EXT[i, lane] == EXTINCT else r * r
    for lane in range(nl):
        ERRN[lane] = math.sqrt(ACC[lane] / n)


@njit(**_HOT)
def _tsit5_interp_weights(th):
    """Weights of Tsit5's free 4th-order interpolant at the fraction th of the step (Tsitouras 2011)."""
    th2 = th * th
    b1 = -1.0530884977290216 * th * (th - 1.3299890189751412) * (
        th2 - 1.4364028541716351 * th + 0.7139816917074209)
    b2 = 0.1017 * th2 * (th2 - 2.1966568338249754 * th + 1.2949852507374631)
    b3 = 2.490627285651252793 * th2 * (th2 - 2.38535645472061657 * th + 1.57803468208092486)
    b4 = -16.54810288924490272 * (th - 1.21712927295533244) * (th - 0.61620406037800089) * th2
    b5 = 47.37952196281928122 * (th - 1.203071208372362603) * (th - 0.658047292653547382) * th2
    b6 = -34.87065786149660974 * (th - 1.2) * (th - 0.666666666666666667) * th2
    b7 = 2.5 * (th - 1.0) * (th - 0.6) * th2
    return b1, b2, b3, b4, b5, b6, b7
