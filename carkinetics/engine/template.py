# The integrator kernels of carkinetics.
#
# This file is not imported as it stands: the code generator (carkinetics/codegen.py)
# appends its text, from the line after "END OF STUB", to the numba functions it
# generates for one model (model_rhs, model_jac, model_initial, model_outputs and the
# constants N_STATES, N_PARAMS, N_OUTPUTS), writes the result to the kernel cache keyed
# by a content hash, and imports it. Numba compiles each model once and caches the
# machine code on disk; parameters are arrays, so one compilation serves every
# patient, fit step and sweep draw.
#
# Methods
#   TSIT5  Tsitouras 5(4) explicit Runge-Kutta pair with its free 4th-order
#          interpolant (Tsitouras, Comput Math Appl 62:770-775, 2011).
#   RODAS  RODAS4, 6-stage L-stable stiffly accurate Rosenbrock method of order 4(3)
#          with 3rd-order dense output (Hairer & Wanner, Solving ODEs II, 2nd ed.,
#          Springer 1996, sec. IV.7; coefficients of Hairer's rodas.f), with the
#          analytic Jacobian generated from the model's expressions.
#   AUTO   starts with TSIT5 and switches to RODAS when stiffness is detected
#          (Hairer's DOPRI5 test h*|lambda| from the last two stages), and back when
#          the spectral radius estimate says the explicit method is stable at the
#          step the accuracy allows.
#
# Integration is piecewise between event times; events add to, multiply or set
# states and set parameters, optionally only when a condition (a small stack program,
# see expressions.to_program) holds on the state just before the events of that time.
# A population with an extinction threshold that falls below it becomes exactly zero
# and stays zero (its derivative is held at zero) until an event raises it again; a
# population that starts below its threshold (a memory pool at zero, say) may grow
# from inflow until it reaches the threshold (see NEW/ALIVE/EXTINCT).
#
# Nothing in this file checks user input: carkinetics.simulate validates everything
# before calling the kernels.

# ---------------------------------------------------------------------- STUB (not used)
import math

import numpy as np
from numba import njit, prange

N_STATES = 1
N_PARAMS = 1
N_OUTPUTS = 1
NONAUTONOMOUS = False


def model_rhs(t, y, p, dy):  # pragma: no cover - replaced by generated code
    dy[0] = 0.0


def model_jac(t, y, p, jac, dfdt):  # pragma: no cover
    jac[0, 0] = 0.0


def model_initial(p, y):  # pragma: no cover
    y[0] = 0.0


def model_outputs(t, y, p, out):  # pragma: no cover
    out[0] = y[0]


# ---------------------------------------------------------------------- END OF STUB

@njit(cache=True, error_model="numpy", nogil=True)
def _hill(x, k, n):
    """x**n / (k**n + x**n) for x > 0, else 0."""
    if x <= 0.0:
        return 0.0
    return 1.0 / (1.0 + (k / x) ** n)


@njit(cache=True, error_model="numpy", nogil=True)
def _hill_dx(x, k, n):
    if x <= 0.0:
        if n == 1.0:
            return 1.0 / k
        return 0.0 if n > 1.0 else math.inf
    h = _hill(x, k, n)
    return n * h * (1.0 - h) / x


@njit(cache=True, error_model="numpy", nogil=True)
def _hill_dk(x, k, n):
    h = _hill(x, k, n)
    return -n * h * (1.0 - h) / k


@njit(cache=True, error_model="numpy", nogil=True)
def _hill_dn(x, k, n):
    if x <= 0.0:
        return 0.0
    h = _hill(x, k, n)
    return h * (1.0 - h) * math.log(x / k)


# status codes (keep in sync with carkinetics/result.py STATUS_MESSAGES)
OK = 0
MAX_STEPS = 1
STEP_TOO_SMALL = 2
NON_FINITE = 3
SINGULAR = 4

# life cycle of a population with an extinction threshold (the ``ext`` arrays):
# NEW: below its threshold since the start, accumulates inflow from other states;
# ALIVE: has reached its threshold; EXTINCT: fell below it, is exactly zero and its
# derivative is held at zero until an event raises it to its threshold again.
NEW = 0
ALIVE = 1
EXTINCT = 2

# methods
TSIT5 = 0
RODAS = 1
AUTO = 2

# counters per patient
C_ACCEPTED = 0
C_REJECTED = 1
C_RHS = 2
C_JAC = 3
C_LU = 4
C_STIFF_SWITCHES = 5
C_STIFF_STEPS = 6
N_COUNTERS = 7

# event action kinds
ACT_ADD = 0
ACT_MULTIPLY = 1
ACT_SET = 2
ACT_SET_PARAMETER = 3

# workspace rows
W_K1 = 0
W_K2 = 1
W_K3 = 2
W_K4 = 3
W_K5 = 4
W_K6 = 5
W_K7 = 6
W_YNEW = 7
W_TMP = 8
W_ERR = 9
W_Y6 = 10
W_DFDT = 11
W_CONT3 = 12
W_CONT4 = 13
W_INTERP = 14
W_Y = 15
N_WORK = 16

# ---- Tsit5 tableau (Tsitouras 2011) -------------------------------------------------
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
# stability interval of Tsit5 on the negative real axis (|R(z)| = 1 at z = -T_STAB),
# computed from the tableau; used by the stiffness switch
T_STAB = 3.5
# automatic switching: to RODAS when h * rho(J) > STIFF_ON * T_STAB, back to Tsit5 when
# the RODAS step satisfies h * rho(J) < STIFF_OFF * T_STAB for 10 steps (hysteresis)
STIFF_ON = 0.7
STIFF_OFF = 0.5

# ---- RODAS4 (Hairer & Wanner; rodas.f) ----------------------------------------------
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

_JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(**_JIT)
def _f(t, y, p, ext, dy, counters):
    """Right-hand side with extinct states held at zero."""
    model_rhs(t, y, p, dy)
    for i in range(N_STATES):
        if ext[i] == EXTINCT:
            dy[i] = 0.0
    counters[C_RHS] += 1


@njit(**_JIT)
def _stage_time(tt, t_end):
    """Time at which a stage is evaluated: the left limit at the end of a segment.

    Segments end at events and breakpoints, where parameters or switches such as
    ``where(t < tmax, ...)`` change; a step ending there must see the values from
    the left, the next segment starts with those from the right.
    """
    if tt >= t_end:
        return np.nextafter(t_end, -np.inf)
    return tt


@njit(**_JIT)
def _norm(err, y0, y1, rtol, atol, ext):
    """Weighted RMS norm of ``err`` (scipy/Hairer convention)."""
    s = 0.0
    for i in range(N_STATES):
        if ext[i] == EXTINCT:
            continue
        sc = atol[i] + rtol * max(abs(y0[i]), abs(y1[i]))
        r = err[i] / sc
        s += r * r
    return math.sqrt(s / N_STATES)


@njit(**_JIT)
def _initial_step(t, t_end, y, f0, p, ext, rtol, atol, W, counters, order):
    """Initial step size (Hairer, Norsett & Wanner, sec. II.4; as scipy)."""
    span = t_end - t
    if span <= 0.0:
        return 0.0
    d0 = _norm(y, y, y, rtol, atol, ext)
    d1 = _norm(f0, y, y, rtol, atol, ext)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = 1e-6
    else:
        h0 = 0.01 * d0 / d1
    h0 = min(h0, span)
    ytmp = W[W_TMP]
    f1 = W[W_K2]
    for i in range(N_STATES):
        ytmp[i] = y[i] + h0 * f0[i]
    _f(_stage_time(t + h0, t_end), ytmp, p, ext, f1, counters)
    for i in range(N_STATES):
        W[W_ERR, i] = f1[i] - f0[i]
    d2 = _norm(W[W_ERR], y, y, rtol, atol, ext) / h0
    if not (d2 == d2):  # NaN: the trial point overflowed
        return 1e-6 * span
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1.0))
    return min(100.0 * h0, h1, span)


# ---------------------------------------------------------------------- Tsit5


@njit(**_JIT)
def _tsit5_step(t, h, t_end, y, p, ext, rtol, atol, W, counters):
    """One Tsit5 trial step from (t, y) with k1 = f(t, y) in W[W_K1].

    Fills W_K2..W_K7, W_Y6 (stage-6 state) and W_YNEW; returns the error norm.
    Stages at the end of a segment see the left limit of time (see _stage_time).
    """
    t1 = _stage_time(t + h, t_end)
    k1 = W[W_K1]
    k2 = W[W_K2]
    k3 = W[W_K3]
    k4 = W[W_K4]
    k5 = W[W_K5]
    k6 = W[W_K6]
    k7 = W[W_K7]
    tmp = W[W_TMP]
    y6 = W[W_Y6]
    ynew = W[W_YNEW]
    err = W[W_ERR]
    for i in range(N_STATES):
        tmp[i] = y[i] + h * T_A21 * k1[i]
    _f(t + T_C2 * h, tmp, p, ext, k2, counters)
    for i in range(N_STATES):
        tmp[i] = y[i] + h * (T_A31 * k1[i] + T_A32 * k2[i])
    _f(t + T_C3 * h, tmp, p, ext, k3, counters)
    for i in range(N_STATES):
        tmp[i] = y[i] + h * (T_A41 * k1[i] + T_A42 * k2[i] + T_A43 * k3[i])
    _f(t + T_C4 * h, tmp, p, ext, k4, counters)
    for i in range(N_STATES):
        tmp[i] = y[i] + h * (T_A51 * k1[i] + T_A52 * k2[i] + T_A53 * k3[i] + T_A54 * k4[i])
    _f(t + T_C5 * h, tmp, p, ext, k5, counters)
    for i in range(N_STATES):
        y6[i] = y[i] + h * (T_A61 * k1[i] + T_A62 * k2[i] + T_A63 * k3[i] + T_A64 * k4[i] + T_A65 * k5[i])
    _f(t1, y6, p, ext, k6, counters)
    for i in range(N_STATES):
        ynew[i] = y[i] + h * (T_B1 * k1[i] + T_B2 * k2[i] + T_B3 * k3[i] + T_B4 * k4[i]
                              + T_B5 * k5[i] + T_B6 * k6[i])
    _f(t1, ynew, p, ext, k7, counters)
    for i in range(N_STATES):
        err[i] = h * (T_E1 * k1[i] + T_E2 * k2[i] + T_E3 * k3[i] + T_E4 * k4[i]
                      + T_E5 * k5[i] + T_E6 * k6[i] + T_E7 * k7[i])
    return _norm(err, y, ynew, rtol, atol, ext)


@njit(**_JIT)
def _tsit5_interp(theta, h, y, W, out):
    """Free 4th-order interpolant of Tsit5 at t + theta*h (Tsitouras 2011)."""
    th = theta
    th2 = th * th
    b1 = -1.0530884977290216 * th * (th - 1.3299890189751412) * (th2 - 1.4364028541716351 * th + 0.7139816917074209)
    b2 = 0.1017 * th2 * (th2 - 2.1966568338249754 * th + 1.2949852507374631)
    b3 = 2.490627285651252793 * th2 * (th2 - 2.38535645472061657 * th + 1.57803468208092486)
    b4 = -16.54810288924490272 * (th - 1.21712927295533244) * (th - 0.61620406037800089) * th2
    b5 = 47.37952196281928122 * (th - 1.203071208372362603) * (th - 0.658047292653547382) * th2
    b6 = -34.87065786149660974 * (th - 1.2) * (th - 0.666666666666666667) * th2
    b7 = 2.5 * (th - 1.0) * (th - 0.6) * th2
    for i in range(N_STATES):
        out[i] = y[i] + h * (b1 * W[W_K1, i] + b2 * W[W_K2, i] + b3 * W[W_K3, i] + b4 * W[W_K4, i]
                             + b5 * W[W_K5, i] + b6 * W[W_K6, i] + b7 * W[W_K7, i])


# ---------------------------------------------------------------------- RODAS4


@njit(**_JIT)
def _lu_factor(A, piv):
    """In-place LU factorisation with partial pivoting; returns False if singular."""
    n = A.shape[0]
    for k in range(n):
        m = k
        big = abs(A[k, k])
        for i in range(k + 1, n):
            v = abs(A[i, k])
            if v > big:
                big = v
                m = i
        piv[k] = m
        if big == 0.0 or not (big == big):
            return False
        if m != k:
            for j in range(n):
                tmpv = A[k, j]
                A[k, j] = A[m, j]
                A[m, j] = tmpv
        inv = 1.0 / A[k, k]
        for i in range(k + 1, n):
            A[i, k] *= inv
            f = A[i, k]
            if f != 0.0:
                for j in range(k + 1, n):
                    A[i, j] -= f * A[k, j]
    return True


@njit(**_JIT)
def _lu_solve(A, piv, b):
    n = A.shape[0]
    for k in range(n):
        m = piv[k]
        if m != k:
            tmpv = b[k]
            b[k] = b[m]
            b[m] = tmpv
    for i in range(n):
        s = b[i]
        for j in range(i):
            s -= A[i, j] * b[j]
        b[i] = s
    for i in range(n - 1, -1, -1):
        s = b[i]
        for j in range(i + 1, n):
            s -= A[i, j] * b[j]
        b[i] = s / A[i, i]


@njit(**_JIT)
def _jacobian(t, y, p, ext, J, dfdt, counters):
    for i in range(N_STATES):
        dfdt[i] = 0.0
        for j in range(N_STATES):
            J[i, j] = 0.0
    model_jac(t, y, p, J, dfdt)
    for i in range(N_STATES):
        if ext[i] == EXTINCT:
            dfdt[i] = 0.0
            for j in range(N_STATES):
                J[i, j] = 0.0
    counters[C_JAC] += 1


@njit(**_JIT)
def _rodas_step(t, h, t_end, y, p, ext, rtol, atol, W, J, LU, piv, counters):
    """One RODAS4 trial step with J = df/dy and W[W_DFDT] = df/dt at (t, y).

    W[W_K1] must hold f(t, y). Stage vectors go to W_K2..W_K7, the solution to
    W_YNEW and the dense-output vectors to W_CONT3, W_CONT4. Returns the error norm,
    or -1.0 if the iteration matrix is singular.
    """
    n = N_STATES
    inv_gh = 1.0 / (R_GAMMA * h)
    for i in range(n):
        for j in range(n):
            LU[i, j] = -J[i, j]
        LU[i, i] += inv_gh
    counters[C_LU] += 1
    if not _lu_factor(LU, piv):
        return -1.0
    f0 = W[W_K1]
    dfdt = W[W_DFDT]
    g1 = W[W_K2]
    g2 = W[W_K3]
    g3 = W[W_K4]
    g4 = W[W_K5]
    g5 = W[W_K6]
    g6 = W[W_ERR]
    ft = W[W_K7]
    tmp = W[W_TMP]
    ynew = W[W_YNEW]
    inv_h = 1.0 / h
    t1 = _stage_time(t + h, t_end)
    # stage 1
    for i in range(n):
        g1[i] = f0[i] + h * R_D1 * dfdt[i]
    _lu_solve(LU, piv, g1)
    # stage 2
    for i in range(n):
        tmp[i] = y[i] + R_A21 * g1[i]
    _f(t + R_C2 * h, tmp, p, ext, ft, counters)
    for i in range(n):
        g2[i] = ft[i] + h * R_D2 * dfdt[i] + R_C21 * g1[i] * inv_h
    _lu_solve(LU, piv, g2)
    # stage 3
    for i in range(n):
        tmp[i] = y[i] + R_A31 * g1[i] + R_A32 * g2[i]
    _f(t + R_C3 * h, tmp, p, ext, ft, counters)
    for i in range(n):
        g3[i] = ft[i] + h * R_D3 * dfdt[i] + (R_C31 * g1[i] + R_C32 * g2[i]) * inv_h
    _lu_solve(LU, piv, g3)
    # stage 4
    for i in range(n):
        tmp[i] = y[i] + R_A41 * g1[i] + R_A42 * g2[i] + R_A43 * g3[i]
    _f(t + R_C4 * h, tmp, p, ext, ft, counters)
    for i in range(n):
        g4[i] = ft[i] + h * R_D4 * dfdt[i] + (R_C41 * g1[i] + R_C42 * g2[i] + R_C43 * g3[i]) * inv_h
    _lu_solve(LU, piv, g4)
    # stage 5
    for i in range(n):
        tmp[i] = y[i] + R_A51 * g1[i] + R_A52 * g2[i] + R_A53 * g3[i] + R_A54 * g4[i]
    _f(t1, tmp, p, ext, ft, counters)
    for i in range(n):
        g5[i] = ft[i] + (R_C51 * g1[i] + R_C52 * g2[i] + R_C53 * g3[i] + R_C54 * g4[i]) * inv_h
    _lu_solve(LU, piv, g5)
    # stage 6 (embedded error)
    for i in range(n):
        tmp[i] += g5[i]
    _f(t1, tmp, p, ext, ft, counters)
    for i in range(n):
        g6[i] = ft[i] + (R_C61 * g1[i] + R_C62 * g2[i] + R_C63 * g3[i] + R_C64 * g4[i] + R_C65 * g5[i]) * inv_h
    _lu_solve(LU, piv, g6)
    for i in range(n):
        ynew[i] = tmp[i] + g6[i]
        W[W_CONT3, i] = R_D21 * g1[i] + R_D22 * g2[i] + R_D23 * g3[i] + R_D24 * g4[i] + R_D25 * g5[i]
        W[W_CONT4, i] = R_D31 * g1[i] + R_D32 * g2[i] + R_D33 * g3[i] + R_D34 * g4[i] + R_D35 * g5[i]
    return _norm(g6, y, ynew, rtol, atol, ext)


@njit(**_JIT)
def _rodas_interp(s, y, ynew, W, out):
    s1 = 1.0 - s
    for i in range(N_STATES):
        out[i] = y[i] * s1 + s * (ynew[i] + s1 * (W[W_CONT3, i] + s * W[W_CONT4, i]))


@njit(**_JIT)
def _spectral_radius(J, W):
    """Power-iteration estimate of the spectral radius of J (a few iterations)."""
    v = W[W_TMP]
    w = W[W_INTERP]
    for i in range(N_STATES):
        v[i] = 1.0 + 0.1 * i
    rho = 0.0
    for _ in range(6):
        nv = 0.0
        for i in range(N_STATES):
            s = 0.0
            for j in range(N_STATES):
                s += J[i, j] * v[j]
            w[i] = s
            nv += s * s
        nv = math.sqrt(nv)
        nold = 0.0
        for i in range(N_STATES):
            nold += v[i] * v[i]
        nold = math.sqrt(nold)
        if nv == 0.0 or nold == 0.0:
            return 0.0
        rho = nv / nold
        for i in range(N_STATES):
            v[i] = w[i] / nv
    return rho


# ---------------------------------------------------------------------- outputs


@njit(**_JIT)
def _record(tau, ystate, p, i_pat, k, state_idx, output_idx, out_states, out_outputs, otmp):
    """Store the state (and outputs) at output time index k."""
    for j in range(state_idx.shape[0]):
        out_states[i_pat, k, j] = ystate[state_idx[j]]
    if output_idx.shape[0] > 0:
        model_outputs(tau, ystate, p, otmp)
        for j in range(output_idx.shape[0]):
            out_outputs[i_pat, k, j] = otmp[output_idx[j]]


@njit(**_JIT)
def _fill_nan(i_pat, k_out, out_states, out_outputs):
    for k in range(k_out, out_states.shape[1]):
        for j in range(out_states.shape[2]):
            out_states[i_pat, k, j] = np.nan
    for k in range(k_out, out_outputs.shape[1]):
        for j in range(out_outputs.shape[2]):
            out_outputs[i_pat, k, j] = np.nan


# ---------------------------------------------------------------------- one segment


@njit(**_JIT)
def _segment(t, t_end, y, p, ext, thr, rtol, atol, method, mode, h, hmax, max_steps,
             W, J, LU, piv, times, k_out, i_pat, state_idx, output_idx, out_states, out_outputs,
             otmp, counters):
    """Integrate from t to t_end (no events inside).

    Records outputs at times[k] with t < times[k] < t_end. Returns
    (status, k_out, mode, h) where h is a suggestion for the next segment.
    """
    n = N_STATES
    k1 = W[W_K1]
    ynew = W[W_YNEW]
    interp = W[W_INTERP]
    n_times = times.shape[0]
    _f(t, y, p, ext, k1, counters)
    if h <= 0.0:
        h = _initial_step(t, t_end, y, k1, p, ext, rtol, atol, W, counters, 5.0 if mode == TSIT5 else 4.0)
    facold = 1e-4
    reject = False
    n_stiff = 0
    n_nonstiff = 0
    n_since_check = 0
    h_acc = 0.0
    err_acc = 1.0
    first_rodas = True
    jac_fresh = False
    while t < t_end:
        if counters[C_ACCEPTED] + counters[C_REJECTED] >= max_steps:
            return MAX_STEPS, k_out, mode, h
        if h > hmax:
            h = hmax
        hit_end = False
        if t + 1.01 * h >= t_end:
            h = t_end - t
            hit_end = True
        if h <= 16.0 * 2.220446049250313e-16 * max(abs(t), 1.0):
            return STEP_TOO_SMALL, k_out, mode, h
        if mode == TSIT5:
            err = _tsit5_step(t, h, t_end, y, p, ext, rtol, atol, W, counters)
        else:
            if not jac_fresh:
                _jacobian(t, y, p, ext, J, W[W_DFDT], counters)
                jac_fresh = True
            err = _rodas_step(t, h, t_end, y, p, ext, rtol, atol, W, J, LU, piv, counters)
            if err < 0.0:  # singular iteration matrix: shrink the step
                counters[C_REJECTED] += 1
                h *= 0.25
                reject = True
                continue
        if not (err <= 1.0):  # rejected (also when err is NaN: a trial step overflowed)
            counters[C_REJECTED] += 1
            if not (err == err) or err > 1e300:
                h *= 0.1
            elif mode == TSIT5:
                fac11 = err ** 0.17
                h = h / min(10.0, fac11 / 0.9)
            else:
                h = h / min(6.0, max(0.2, err ** 0.25 / 0.9))
            reject = True
            continue
        # ---- accepted
        step_mode = mode
        jac_at_new = False
        for i in range(n):
            if not (ynew[i] - ynew[i] == 0.0):  # inf or NaN in an accepted state
                return NON_FINITE, k_out, mode, h
        t_new = t_end if hit_end else t + h
        # dense output for outputs inside the step (strictly before t_end)
        while k_out < n_times and times[k_out] <= t_new and times[k_out] < t_end:
            tau = times[k_out]
            if tau == t_new:
                for i in range(n):
                    interp[i] = ynew[i]
            elif mode == TSIT5:
                _tsit5_interp((tau - t) / h, h, y, W, interp)
            else:
                _rodas_interp((tau - t) / h, y, ynew, W, interp)
            for i in range(n):
                if thr[i] > 0.0 and interp[i] < thr[i] and (ext[i] == EXTINCT or (
                        ext[i] == ALIVE and ynew[i] < thr[i])):
                    interp[i] = 0.0
            _record(tau, interp, p, i_pat, k_out, state_idx, output_idx,
                    out_states, out_outputs, otmp)
            k_out += 1
        # extinction
        changed = False
        for i in range(n):
            if thr[i] > 0.0:
                if ext[i] == ALIVE:
                    if ynew[i] < thr[i]:
                        ynew[i] = 0.0
                        ext[i] = EXTINCT
                        changed = True
                elif ext[i] == NEW:
                    if ynew[i] >= thr[i]:
                        ext[i] = ALIVE
                    elif ynew[i] < 0.0:
                        ynew[i] = 0.0
                        changed = True
        counters[C_ACCEPTED] += 1
        if mode == TSIT5:
            # stiffness test: Hairer's cheap DOPRI5 estimate h*|lambda| ~ h*|k7-k6|/|ynew-y6|
            # each step; when it (or a periodic timer) raises suspicion, the spectral
            # radius of the analytic Jacobian decides: switch when the step is held at
            # more than STIFF_ON of the explicit stability interval
            if method == AUTO:
                num = 0.0
                den = 0.0
                for i in range(n):
                    d1 = W[W_K7, i] - W[W_K6, i]
                    d2 = ynew[i] - W[W_Y6, i]
                    num += d1 * d1
                    den += d2 * d2
                if den > 0.0 and h * math.sqrt(num / den) > STIFF_ON * T_STAB:
                    n_stiff += 1
                else:
                    n_stiff = 0
                n_since_check += 1
                if n_stiff >= 3 or n_since_check >= 50:
                    n_stiff = 0
                    n_since_check = 0
                    _jacobian(t_new, ynew, p, ext, J, W[W_DFDT], counters)
                    jac_at_new = not changed
                    if h * _spectral_radius(J, W) > STIFF_ON * T_STAB:
                        mode = RODAS
                        counters[C_STIFF_SWITCHES] += 1
                        first_rodas = True
                        n_nonstiff = 0
            # step-size control (DOPRI5 PI controller, beta = 0.04)
            fac11 = err ** 0.17
            fac = fac11 / facold ** 0.04
            fac = max(0.1, min(5.0, fac / 0.9))
            hnew = h / fac
            facold = max(err, 1e-4)
        else:
            counters[C_STIFF_STEPS] += 1
            fac = max(1.0 / 6.0, min(5.0, err ** 0.25 / 0.9))
            if not first_rodas:  # Gustafsson's predictive controller (as rodas.f)
                facgus = (h_acc / h) * (err * err / err_acc) ** 0.25 / 0.9
                facgus = max(1.0 / 6.0, min(5.0, facgus))
                fac = max(fac, facgus)
            first_rodas = False
            h_acc = h
            err_acc = max(1e-2, err)
            hnew = h / fac
            if method == AUTO:
                # back to the explicit method when it would be stable at the step the
                # accuracy allows, for 10 steps in a row
                if hnew * _spectral_radius(J, W) < STIFF_OFF * T_STAB:
                    n_nonstiff += 1
                    if n_nonstiff >= 10:
                        mode = TSIT5
                        n_nonstiff = 0
                        n_since_check = 0
                        facold = 1e-4
                else:
                    n_nonstiff = 0
        if reject:
            hnew = min(hnew, h)
        reject = False
        t = t_new
        for i in range(n):
            y[i] = ynew[i]
        if t < t_end:
            # FSAL: Tsit5's last stage is f(t_new, y_new), valid unless a state went
            # extinct or the step was taken by RODAS
            if step_mode == RODAS or changed:
                _f(t, y, p, ext, k1, counters)
            else:
                for i in range(n):
                    k1[i] = W[W_K7, i]
        jac_fresh = jac_at_new  # a Jacobian taken at the new point serves the next RODAS step
        h = hnew
    return OK, k_out, mode, h


# ---------------------------------------------------------------------- conditions


@njit(**_JIT)
def _run_program(code, consts, start, stop, cstart, t, y, p, stack):
    """Evaluate a condition program (see expressions.to_program) -> float."""
    sp = 0
    for pc in range(start, stop):
        op = code[pc, 0]
        arg = code[pc, 1]
        if op == 0:
            stack[sp] = consts[cstart + arg]
            sp += 1
        elif op == 1:
            stack[sp] = y[arg]
            sp += 1
        elif op == 2:
            stack[sp] = p[arg]
            sp += 1
        elif op == 3:
            stack[sp] = t
            sp += 1
        elif op == 9 or op == 18 or (op >= 19 and op <= 23) or (op >= 29 and op <= 34):
            a = stack[sp - 1]
            if op == 9:
                r = -a
            elif op == 18:
                r = 1.0 if a == 0.0 else 0.0
            elif op == 19:
                r = math.exp(a)
            elif op == 20:
                r = math.log(a) if a > 0.0 else (-math.inf if a == 0.0 else math.nan)
            elif op == 21:
                r = math.log10(a) if a > 0.0 else (-math.inf if a == 0.0 else math.nan)
            elif op == 22:
                r = math.sqrt(a) if a >= 0.0 else math.nan
            elif op == 23:
                r = abs(a)
            elif op == 29:
                r = 1.0 if a > 0.0 else 0.0
            elif op == 30:
                r = math.tanh(a)
            elif op == 31:
                r = math.log1p(a) if a > -1.0 else math.nan
            elif op == 32:
                r = math.expm1(a)
            elif op == 33:
                r = math.sin(a)
            else:
                r = math.cos(a)
            stack[sp - 1] = r
        elif op == 26 or op == 27 or op == 28:
            a = stack[sp - 3]
            b = stack[sp - 2]
            c = stack[sp - 1]
            sp -= 2
            if op == 26:
                r = b if a != 0.0 else c
            elif op == 27:
                r = _hill(a, b, c)
            else:
                r = min(max(a, b), c)
            stack[sp - 1] = r
        else:
            a = stack[sp - 2]
            b = stack[sp - 1]
            sp -= 1
            if op == 4:
                r = a + b
            elif op == 5:
                r = a - b
            elif op == 6:
                r = a * b
            elif op == 7:
                r = a / b if b != 0.0 else (math.nan if a == 0.0 else math.copysign(math.inf, a) * math.copysign(1.0, b))
            elif op == 8:
                r = a ** b
            elif op == 10:
                r = 1.0 if a < b else 0.0
            elif op == 11:
                r = 1.0 if a <= b else 0.0
            elif op == 12:
                r = 1.0 if a > b else 0.0
            elif op == 13:
                r = 1.0 if a >= b else 0.0
            elif op == 14:
                r = 1.0 if a == b else 0.0
            elif op == 15:
                r = 1.0 if a != b else 0.0
            elif op == 16:
                r = 1.0 if (a != 0.0 and b != 0.0) else 0.0
            elif op == 17:
                r = 1.0 if (a != 0.0 or b != 0.0) else 0.0
            elif op == 24:
                r = min(a, b)
            else:
                r = max(a, b)
            stack[sp - 1] = r
    return stack[0]


# ---------------------------------------------------------------------- one patient


@njit(**_JIT)
def _init_life(y, ext, thr):
    """Initial life cycle: populations below their threshold start at zero (NEW)."""
    for i in range(N_STATES):
        ext[i] = ALIVE
        if thr[i] > 0.0 and y[i] < thr[i]:
            y[i] = 0.0
            ext[i] = NEW


@njit(**_JIT)
def _run_patient(i_pat, t0, times, params, ev_time, ev_cond, act_start, act_kind, act_target,
                 act_value, prog_code, prog_const, prog_start, prog_cstart, thr, atol, rtol, method,
                 hmax, max_steps, state_idx, output_idx, out_states, out_outputs, status, counters,
                 applied, final, W, J, LU, piv, ext, order, cond, stack, otmp, p):
    n = N_STATES
    y = W[W_Y]
    for j in range(p.shape[0]):
        p[j] = params[i_pat, j]
    cnt = counters[i_pat]
    for c in range(cnt.shape[0]):
        cnt[c] = 0
    model_initial(p, y)
    _init_life(y, ext, thr)
    n_ev = ev_time.shape[1]
    for e in range(n_ev):
        order[e] = e
        applied[i_pat, e] = 0
    # stable insertion sort of this patient's events by time
    for a in range(1, n_ev):
        e = order[a]
        te = ev_time[i_pat, e]
        b = a - 1
        while b >= 0 and ev_time[i_pat, order[b]] > te:
            order[b + 1] = order[b]
            b -= 1
        order[b + 1] = e
    t = t0
    t_final = times[times.shape[0] - 1]
    k_out = 0
    je = 0
    mode = RODAS if method == RODAS else TSIT5
    h = 0.0
    st = OK
    while True:
        if je < n_ev and ev_time[i_pat, order[je]] <= t:
            g0 = je
            while je < n_ev and ev_time[i_pat, order[je]] <= t:
                je += 1
            # conditions are evaluated on the state before any event of this time
            for g in range(g0, je):
                e = order[g]
                c = ev_cond[e]
                if c < 0:
                    cond[g] = True
                else:
                    v = _run_program(prog_code, prog_const, prog_start[c], prog_start[c + 1],
                                     prog_cstart[c], t, y, p, stack)
                    cond[g] = v != 0.0 and v == v
            for g in range(g0, je):
                if not cond[g]:
                    continue
                e = order[g]
                applied[i_pat, e] = 1
                for a in range(act_start[e], act_start[e + 1]):
                    kind = act_kind[a]
                    j = act_target[a]
                    v = act_value[i_pat, a]
                    if kind == ACT_SET_PARAMETER:
                        p[j] = v
                        continue
                    if kind == ACT_ADD:
                        y[j] += v
                    elif kind == ACT_MULTIPLY:
                        y[j] *= v
                    else:
                        y[j] = v
                    if thr[j] > 0.0:
                        if y[j] >= thr[j]:
                            ext[j] = ALIVE
                        else:
                            y[j] = 0.0
                            if ext[j] == ALIVE:
                                ext[j] = EXTINCT
            h = 0.0
            for i in range(n):
                if not (y[i] - y[i] == 0.0):
                    st = NON_FINITE
            if st != OK:
                break
        while k_out < times.shape[0] and times[k_out] <= t:
            _record(times[k_out], y, p, i_pat, k_out, state_idx, output_idx,
                    out_states, out_outputs, otmp)
            k_out += 1
        if t >= t_final:
            break
        t_next = t_final
        if je < n_ev and ev_time[i_pat, order[je]] < t_next:
            t_next = ev_time[i_pat, order[je]]
        st, k_out, mode, h = _segment(t, t_next, y, p, ext, thr, rtol, atol, method, mode, h, hmax,
                                      max_steps, W, J, LU, piv, times, k_out, i_pat, state_idx,
                                      output_idx, out_states, out_outputs, otmp, cnt)
        if st != OK:
            break
        t = t_next
    if st != OK:
        _fill_nan(i_pat, k_out, out_states, out_outputs)
    status[i_pat] = st
    for i in range(n):
        final[i_pat, i] = y[i]


@njit(**_JIT)
def _run_range(start, stop, t0, times, params, ev_time, ev_cond, act_start, act_kind, act_target,
               act_value, prog_code, prog_const, prog_start, prog_cstart, thr, atol, rtol, method,
               hmax, max_steps, state_idx, output_idx, out_states, out_outputs, status, counters,
               applied, final):
    n = N_STATES
    W = np.zeros((N_WORK, n))
    J = np.zeros((n, n))
    LU = np.zeros((n, n))
    piv = np.zeros(n, dtype=np.int64)
    ext = np.zeros(n, dtype=np.int8)
    n_ev = ev_time.shape[1]
    order = np.zeros(max(n_ev, 1), dtype=np.int64)
    cond = np.zeros(max(n_ev, 1), dtype=np.bool_)
    stack = np.zeros(64)
    otmp = np.zeros(max(N_OUTPUTS, 1))
    pbuf = np.zeros(params.shape[1])
    for i_pat in range(start, stop):
        _run_patient(i_pat, t0, times, params, ev_time, ev_cond, act_start, act_kind, act_target,
                     act_value, prog_code, prog_const, prog_start, prog_cstart, thr, atol, rtol, method,
                     hmax, max_steps, state_idx, output_idx, out_states, out_outputs, status, counters,
                     applied, final, W, J, LU, piv, ext, order, cond, stack, otmp, pbuf)


@njit(**_JIT)
def run_serial(t0, times, params, ev_time, ev_cond, act_start, act_kind, act_target, act_value,
               prog_code, prog_const, prog_start, prog_cstart, thr, atol, rtol, method, hmax,
               max_steps, state_idx, output_idx, out_states, out_outputs, status, counters, applied,
               final):
    """Simulate all patients in the calling thread."""
    _run_range(0, params.shape[0], t0, times, params, ev_time, ev_cond, act_start, act_kind,
               act_target, act_value, prog_code, prog_const, prog_start, prog_cstart, thr, atol, rtol,
               method, hmax, max_steps, state_idx, output_idx, out_states, out_outputs, status,
               counters, applied, final)


@njit(cache=True, error_model="numpy", nogil=True, parallel=True)
def run_parallel(t0, times, params, ev_time, ev_cond, act_start, act_kind, act_target, act_value,
                 prog_code, prog_const, prog_start, prog_cstart, thr, atol, rtol, method, hmax,
                 max_steps, state_idx, output_idx, out_states, out_outputs, status, counters, applied,
                 final, block):
    """Simulate patients in parallel, in blocks of ``block`` patients.

    Each patient is integrated on its own, so results do not depend on the number
    of threads or on how blocks are scheduled.
    """
    n_pat = params.shape[0]
    n_blocks = (n_pat + block - 1) // block
    for b in prange(n_blocks):
        start = b * block
        stop = min(n_pat, start + block)
        _run_range(start, stop, t0, times, params, ev_time, ev_cond, act_start, act_kind,
                   act_target, act_value, prog_code, prog_const, prog_start, prog_cstart, thr, atol,
                   rtol, method, hmax, max_steps, state_idx, output_idx, out_states, out_outputs,
                   status, counters, applied, final)
