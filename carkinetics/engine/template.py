# The integrator kernels of carkinetics.
#
# This file is not imported as it stands: the code generator (carkinetics/codegen.py)
# appends its text, from the line after "END OF STUB", to the numba functions it
# generates for one model (model_rhs, model_rhs_lanes, model_jac, model_initial,
# model_outputs and the constants N_STATES, N_PARAMS, N_OUTPUTS), writes the result to
# the kernel cache keyed by a content hash, and imports it. Numba compiles each model
# once and caches the machine code on disk; parameters are arrays, so one compilation
# serves every patient, fit step and sweep draw.
#
# Patients in SIMD lanes. Each thread integrates up to LANES patients side by side.
# Every lane has its own time, step size, events, outputs and method; the Tsit5 stages
# and the model's right-hand side run as loops over lanes that LLVM vectorises, and the
# transcendental functions are branch-free (fdlibm algorithms, below) so they vectorise
# too. A lane whose patient turns stiff takes scalar RODAS4 steps while the others go
# on. When a patient finishes, the next one of the thread's block takes its lane. Each
# patient's arithmetic is the same whichever lane, block or thread it runs in, so
# results are bit-identical for any number of threads; a single simulation is the same
# engine with one lane.
#
# Methods
#   TSIT5  Tsitouras 5(4) explicit Runge-Kutta pair with its free 4th-order
#          interpolant (Tsitouras, Comput Math Appl 62:770-775, 2011).
#   RODAS  RODAS4, 6-stage L-stable stiffly accurate Rosenbrock method of order 4(3)
#          with 3rd-order dense output (Hairer & Wanner, Solving ODEs II, 2nd ed.,
#          Springer 1996, sec. IV.7; coefficients of Hairer's rodas.f), with the
#          analytic Jacobian generated from the model's expressions.
#   AUTO   TSIT5, switching a patient to RODAS when its step is held by stability
#          (spectral radius of the Jacobian, checked when Hairer's cheap DOPRI5
#          estimate or a periodic timer raises suspicion) and back when the explicit
#          method would be stable at the step the accuracy allows.
#
# Integration is piecewise between event times; events add to, multiply or set
# states and set parameters, optionally only when a condition (a small stack program,
# see expressions.to_program) holds on the state just before the events of that time.
# A population with an extinction threshold that falls below it becomes exactly zero
# and stays zero (its derivative is held at zero) until an event raises it again; a
# population that starts below its threshold (a memory pool at zero, say) may grow
# from inflow until it reaches the threshold (see NEW/ALIVE/EXTINCT).
#
# Nothing in this file checks user input: carkinetics.simulation.simulate validates everything
# before calling the kernels.

# ---------------------------------------------------------------------- STUB (not used)
import math

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

N_STATES = 1
N_PARAMS = 1
N_OUTPUTS = 1
NONAUTONOMOUS = False


def model_rhs(t, y, p, dy):  # pragma: no cover - replaced by generated code
    dy[0] = 0.0


def model_rhs_lanes(t, y, p, out, s, nl):  # pragma: no cover
    for lane in range(nl):
        out[s, 0, lane] = 0.0


def model_jac(t, y, p, jac, dfdt):  # pragma: no cover
    jac[0, 0] = 0.0


def model_initial(p, y):  # pragma: no cover
    y[0] = 0.0


def model_outputs(t, y, p, out):  # pragma: no cover
    out[0] = y[0]


# ---------------------------------------------------------------------- END OF STUB

_JIT = dict(cache=True, error_model="numpy", nogil=True)
_HOT = dict(_JIT, inline="always")

# patients integrated side by side per thread (a multiple of the SIMD width)
LANES = 16

# events within this many units of rounding of the current time are applied together with
# those due now (more than the 16 of the smallest step allowed, so no shorter segment is left)
EVENT_MERGE_ULPS = 64.0

# status codes (keep in sync with carkinetics/result.py STATUS_MESSAGES)
OK = 0
MAX_STEPS = 1
STEP_TOO_SMALL = 2
NON_FINITE = 3
SINGULAR = 4

# life cycle of a population with an extinction threshold (``ext`` arrays, one entry
# per state plus a last entry counting the extinct states):
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

# per-lane bookkeeping fields: floats (LF) and integers (LI)
F_H = 0  # step size for the next attempt
F_TEND = 1  # end of the current segment (next event, breakpoint or the last output time)
F_LOGFAC = 2  # Tsit5 PI controller memory: 0.04 * log(err of the last accepted step)
F_HACC = 3  # RODAS predictive controller memory: last accepted step ...
F_ERRACC = 4  # ... and its error
N_LF = 5
I_PAT = 0  # patient in this lane (-1: lane idle)
I_MODE = 1  # TSIT5 or RODAS
I_KOUT = 2  # next output time index
I_JE = 3  # next event (index into the lane's event order)
I_INIT = 4  # 0: ready; 1: needs f(t, y); 2: needs f(t, y) and an initial step size
I_REJECT = 5  # the last attempt was rejected
I_HIT = 6  # the step being tried ends the segment
I_NSTIFF = 7  # consecutive steps flagged stiff by the cheap test
I_NNONSTIFF = 8  # consecutive RODAS steps at which TSIT5 would be stable
I_NCHECK = 9  # accepted TSIT5 steps since the last Jacobian check
I_FIRST_RODAS = 10  # no accepted RODAS step yet in this segment
I_JACFRESH = 11  # the Jacobian in the lane's scratch is taken at the lane's (t, y)
N_LI = 12


# ---------------------------------------------------------------------- vectorisable math
#
# log and exp as straight-line code (the algorithms of fdlibm's e_log.c and e_exp.c,
# Sun Microsystems 1993), so that loops over lanes containing them vectorise. Accuracy
# within 1 ulp over the whole double range, special values as in C99 (tests compare
# them with numpy). Every path of the engine uses them, so a patient's arithmetic does
# not depend on whether it ran in a vectorised loop.


# With NUMBA_DISABLE_JIT=1 the engine runs as plain Python (njit returns the function
# itself, prange is range), to debug it. Only the bitcast intrinsics below need a Python
# version, and ``math`` becomes _PythonMath: numba's math with error_model="numpy"
# returns inf or nan where Python's raises, and floor of a non-finite number is the
# int64 minimum (x86) where Python's raises; _vexp and _vpow rely on both. The compiled
# engine is untouched (the same intrinsics and math as without these lines).
from numba import config as _numba_config  # noqa: E402

_math_module = math


class _PythonMath:
    """:mod:`math` as compiled by numba (error_model="numpy"), for the pure-Python engine."""

    def __getattr__(self, name):
        return getattr(_math_module, name)

    @staticmethod
    def floor(x):
        return _math_module.floor(x) if _math_module.isfinite(x) else -9223372036854775808

    @staticmethod
    def _wrap(name):
        f, uf = getattr(_math_module, name), getattr(np, name)

        def call(*args):
            try:
                return f(*args)
            except (ValueError, OverflowError, ZeroDivisionError):  # inf or nan, as numba returns
                with np.errstate(all="ignore"):
                    return float(uf(*args))

        return staticmethod(call)


for _name in ("exp", "expm1", "log", "log10", "log1p", "sqrt", "sin", "cos", "tanh"):
    setattr(_PythonMath, _name, _PythonMath._wrap(_name))

if _numba_config.DISABLE_JIT:
    math = _PythonMath()  # noqa: F811


def _bitcast_python(x, dtype_from, dtype_to):
    a = np.asarray(x, dtype=dtype_from).view(dtype_to)
    return a[()] if a.ndim == 0 else a


def _intrinsic_or(python_version):
    """``numba.extending.intrinsic``, or ``python_version`` when numba's JIT is disabled."""
    def decorate(definition):
        return python_version if _numba_config.DISABLE_JIT else intrinsic(definition)

    return decorate


@_intrinsic_or(lambda x: _bitcast_python(x, np.float64, np.int64))
def _as_int64(typingctx, x):
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return sig, codegen


@_intrinsic_or(lambda x: _bitcast_python(x, np.int64, np.float64))
def _as_float64(typingctx, x):
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e00
LG1 = 6.666666666666735130e-01
LG2 = 3.999999999940941908e-01
LG3 = 2.857142874366239149e-01
LG4 = 2.222219843214978396e-01
LG5 = 1.818357216161805012e-01
LG6 = 1.531383769920937332e-01
LG7 = 1.479819860511658591e-01
EP1 = 1.66666666666666019037e-01
EP2 = -2.77777777770155933842e-03
EP3 = 6.61375632143793436117e-05
EP4 = -1.65339022054652515390e-06
EP5 = 4.13813679705723846039e-08


@njit(**_HOT)
def _vlog(x):
    """Natural logarithm (fdlibm e_log.c), branch-free."""
    tiny = x < 2.2250738585072014e-308
    xs = x * 18014398509481984.0 if tiny else x  # scale subnormals by 2^54
    bits = _as_int64(xs)
    e = (bits >> 52) - 1023
    m = _as_float64((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)  # mantissa in [1, 2)
    big = m > 1.4142135623730951
    m = m * 0.5 if big else m
    e = e + 1 if big else e
    e = e - 54 if tiny else e
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7))) + w * (LG2 + w * (LG4 + w * LG6))
    hfsq = 0.5 * f * f
    dk = float(e)
    out = dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)
    out = -math.inf if x == 0.0 else out
    out = math.inf if x == math.inf else out
    return math.nan if (x < 0.0 or x != x) else out


@njit(**_HOT)
def _vexp(x):
    """Exponential (fdlibm e_exp.c), branch-free."""
    xc = min(max(x, -746.0), 710.0)
    k = math.floor(xc * INV_LN2 + 0.5)
    hi = xc - k * LN2_HI
    lo = k * LN2_LO
    r = hi - lo
    z = r * r
    c = r - z * (EP1 + z * (EP2 + z * (EP3 + z * (EP4 + z * EP5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    ki = np.int64(k)
    k1 = ki >> 1  # scale by 2^k in two factors, each a normal number
    k2 = ki - k1
    y = y * _as_float64((k1 + 1023) << 52) * _as_float64((k2 + 1023) << 52)
    y = math.inf if x > 709.782712893384 else y
    y = 0.0 if x < -745.1332191019412 else y
    return x if x != x else y


@njit(**_HOT)
def _vpow(x, y):
    """x ** y with C99 signs and special values.

    Integer exponents up to 64 in magnitude by binary powering (exact where the
    result is representable), others as exp(y log |x|).
    """
    ax = abs(x)
    r = _vexp(y * _vlog(ax))
    yi = math.floor(y)
    integral = yi == y
    small = integral and abs(yi) <= 64.0
    e = np.int64(abs(yi)) if small else np.int64(0)
    ri = 1.0
    b = ax
    for k in range(7):  # branch-free binary powering, unrolled
        ri = ri * b if (e >> k) & 1 == 1 else ri
        b = b * b
    ri = 1.0 / ri if yi < 0.0 else ri
    r = ri if small else r
    odd = integral and (abs(yi) < 9007199254740992.0) and (np.int64(yi) & 1) == 1
    r = -r if (x < 0.0 and odd) else r
    r = math.nan if (x < 0.0 and not integral) else r
    r = 1.0 if y == 0.0 else r
    return r


@njit(**_HOT)
def _vhill(x, k, n):
    """x**n / (k**n + x**n) for x > 0, else 0 (branch-free math, inlined: lanes)."""
    return 1.0 / (1.0 + _vexp(n * _vlog(k / x))) if x > 0.0 else 0.0


@njit(**_HOT)
def _vhill_dx(x, k, n):
    h = _vhill(x, k, n)
    d = n * h * (1.0 - h) / x
    at0 = (1.0 / k) if n == 1.0 else (0.0 if n > 1.0 else math.inf)
    return d if x > 0.0 else at0


@njit(**_HOT)
def _vhill_dk(x, k, n):
    h = _vhill(x, k, n)
    return -n * h * (1.0 - h) / k


@njit(**_HOT)
def _vhill_dn(x, k, n):
    h = _vhill(x, k, n)
    return h * (1.0 - h) * _vlog(x / k) if x > 0.0 else 0.0


# Scalar versions for the per-patient code (RODAS4 right-hand side and Jacobian,
# outputs, initial values, conditions): libm math and not inlined, so that a
# Jacobian with a hundred Hill terms does not inline a hundred copies of exp and
# log (which made LLVM take minutes to compile a 16-state model).
@njit(**_JIT)
def _hill(x, k, n):
    """x**n / (k**n + x**n) for x > 0, else 0."""
    return 1.0 / (1.0 + math.exp(n * math.log(k / x))) if x > 0.0 else 0.0


@njit(**_JIT)
def _hill_dx(x, k, n):
    if x <= 0.0:
        return (1.0 / k) if n == 1.0 else (0.0 if n > 1.0 else math.inf)
    h = _hill(x, k, n)
    return n * h * (1.0 - h) / x


@njit(**_JIT)
def _hill_dk(x, k, n):
    h = _hill(x, k, n)
    return -n * h * (1.0 - h) / k


@njit(**_JIT)
def _hill_dn(x, k, n):
    if x <= 0.0:
        return 0.0
    h = _hill(x, k, n)
    return h * (1.0 - h) * math.log(x / k)


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
T_C = (0.0, T_C2, T_C3, T_C4, T_C5, 1.0, 1.0)
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



# ---------------------------------------------------------------------- scalar helpers


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
def _spectral_radius(J, v, w):
    """Power-iteration estimate of the spectral radius of J (a few iterations)."""
    for i in range(N_STATES):
        v[i] = 1.0 + 0.1 * i
    rho = 0.0
    for _ in range(6):
        nv = 0.0
        nold = 0.0
        for i in range(N_STATES):
            s = 0.0
            for j in range(N_STATES):
                s += J[i, j] * v[j]
            w[i] = s
            nv += s * s
            nold += v[i] * v[i]
        nv = math.sqrt(nv)
        nold = math.sqrt(nold)
        if nv == 0.0 or nold == 0.0:
            return 0.0
        rho = nv / nold
        for i in range(N_STATES):
            v[i] = w[i] / nv
    return rho


@njit(**_HOT)
def _solve_stage(LU, piv, g, J, closed):
    """Solve the stage system (I/(gamma h) - J) x = g in place, keeping exact zeros exact.

    A set of components whose right-hand sides are exactly zero and whose rows of J couple
    only to each other (e.g. populations that are exactly zero and grow only from
    themselves: CAR-T never infused) has the exact solution zero. Pivoting in the LU solve
    would mix the other components' round-off into it and seed those populations with
    ~1e-16 of their neighbours: cells from nothing. The largest such set is found by
    peeling off components coupled to the outside; ``closed`` (1.0 = in the set) is scratch.
    """
    n = N_STATES
    for i in range(n):
        closed[i] = 1.0 if g[i] == 0.0 else 0.0
    changed = True
    while changed:
        changed = False
        for i in range(n):
            if closed[i] == 1.0:
                for j in range(n):
                    if j != i and closed[j] == 0.0 and J[i, j] != 0.0:
                        closed[i] = 0.0
                        changed = True
                        break
    _lu_solve(LU, piv, g)
    for i in range(n):
        if closed[i] == 1.0:
            g[i] = 0.0


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
    s1 = 1.0 - s
    for i in range(N_STATES):
        out[i] = y[i] * s1 + s * (ynew[i] + s1 * (cont3[i] + s * cont4[i]))


@njit(**_JIT)
def _record(tau, ystate, p, i_pat, k, state_idx, output_idx, out_states, out_outputs, otmp):
    """Store the state (and outputs) of patient i_pat at output time index k."""
    for j in range(state_idx.shape[0]):
        out_states[i_pat, k, j] = ystate[state_idx[j]]
    if output_idx.shape[0] > 0:
        model_outputs(tau, ystate, p, otmp)
        for j in range(output_idx.shape[0]):
            out_outputs[i_pat, k, j] = otmp[output_idx[j]]


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



# ---------------------------------------------------------------------- lanes: vector work


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


# ---------------------------------------------------------------------- lanes: bookkeeping
#
# Arrays are passed one by one: numba takes an (atomic) reference count for every
# array unpacked from a tuple, and in per-lane, per-step code that cost more than the
# integration itself. Lane arrays: Y (n, LANES); K, XS (7, n, LANES); PL
# (n_params, LANES); EXT (n + 1, LANES); T, HS, TS1, ERRN (LANES,); LF, LI per-lane
# fields (LANES, N_LF / N_LI); ORDER (LANES, n_events); JL (LANES, n, n), DFL (LANES, n).

LOGFAC0 = 0.04 * math.log(1e-4)  # PI controller memory at the start of a segment


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
def _lane_at_time(li, Y, PL, EXT, T, LF, LI, ORDER, y1, p1, ext1, otmp, stack, cond, times, ev_time,
                  ev_cond, act_start, act_kind, act_target, act_value, prog_code, prog_const, prog_start,
                  prog_cstart, thr, state_idx, output_idx, out_states, out_outputs, status, applied, final):
    """At the lane's current time: apply due events, record outputs, start a segment.

    Conditions are evaluated on the state before any event of this time; values
    recorded at an event time are those after the events. Finishes the patient at
    the last output time.
    """
    i_pat = LI[li, I_PAT]
    t = T[li]
    _lane_get(li, Y, PL, EXT, y1, p1, ext1)
    n_ev = ev_time.shape[1]
    je = LI[li, I_JE]
    st = OK
    # events closer than a few rounding errors to t happen now: a segment that short
    # would end the patient with STEP_TOO_SMALL (two event times meant to coincide,
    # computed along different paths, such as 10 and 80 - 70.0 may differ by 1e-14)
    t_due = t + EVENT_MERGE_ULPS * 2.220446049250313e-16 * max(abs(t), 1.0)
    if je < n_ev and ev_time[i_pat, ORDER[li, je]] <= t_due:
        g0 = je
        while je < n_ev and ev_time[i_pat, ORDER[li, je]] <= t_due:
            je += 1
        for g in range(g0, je):
            c = ev_cond[ORDER[li, g]]
            if c < 0:
                cond[g] = True
            else:
                val = _run_program(prog_code, prog_const, prog_start[c], prog_start[c + 1], prog_cstart[c],
                                   t, y1, p1, stack)
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
        for i in range(N_STATES):
            if not (y1[i] - y1[i] == 0.0):
                st = NON_FINITE
    LI[li, I_JE] = je
    _lane_put(li, Y, PL, EXT, y1, p1, ext1)
    if st != OK:
        _lane_finish(li, st, Y, LI, out_states, out_outputs, status, final)
        return
    kout = LI[li, I_KOUT]
    while kout < times.shape[0] and times[kout] <= t:
        _record(times[kout], y1, p1, i_pat, kout, state_idx, output_idx, out_states, out_outputs, otmp)
        kout += 1
    LI[li, I_KOUT] = kout
    t_final = times[times.shape[0] - 1]
    if t >= t_final:
        _lane_finish(li, OK, Y, LI, out_states, out_outputs, status, final)
        return
    tend = t_final
    if je < n_ev and ev_time[i_pat, ORDER[li, je]] < tend:
        tend = ev_time[i_pat, ORDER[li, je]]
    LF[li, F_TEND] = tend
    LF[li, F_H] = 0.0
    LF[li, F_LOGFAC] = LOGFAC0
    LI[li, I_INIT] = 2
    LI[li, I_REJECT] = 0
    LI[li, I_NSTIFF] = 0
    LI[li, I_NNONSTIFF] = 0
    LI[li, I_NCHECK] = 0
    LI[li, I_FIRST_RODAS] = 1
    LI[li, I_JACFRESH] = 0


@njit(**_JIT)
def _lane_start(li, i_pat, Y, PL, EXT, T, LF, LI, ORDER, y1, p1, ext1, otmp, stack, cond, t0, times,
                params, ev_time, ev_cond, act_start, act_kind, act_target, act_value, prog_code, prog_const,
                prog_start, prog_cstart, thr, method, state_idx, output_idx, out_states, out_outputs, status,
                counters, applied, final):
    """Put patient i_pat into lane li: initial state, sorted events, events at t0."""
    LI[li, I_PAT] = i_pat
    for j in range(p1.shape[0]):
        p1[j] = params[i_pat, j]
    model_initial(p1, y1)
    _init_life(y1, ext1, thr)
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
    T[li] = t0
    LI[li, I_KOUT] = 0
    LI[li, I_JE] = 0
    LI[li, I_MODE] = RODAS if method == RODAS else TSIT5
    _lane_put(li, Y, PL, EXT, y1, p1, ext1)
    _lane_at_time(li, Y, PL, EXT, T, LF, LI, ORDER, y1, p1, ext1, otmp, stack, cond, times, ev_time, ev_cond,
                  act_start, act_kind, act_target, act_value, prog_code, prog_const, prog_start, prog_cstart,
                  thr, state_idx, output_idx, out_states, out_outputs, status, applied, final)


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
def _lanes_init(nl, Y, K, PL, EXT, T, LF, LI, y1, p1, ext1, f0, f1, tmp1, rtol, atol, counters):
    """f(t, y) for lanes that start a segment (or whose state changed), and initial steps.

    Scalar, lane by lane: a lane needs this a few times per patient, and keeping it
    out of the vectorised path keeps one copy of the right-hand side in the kernel.
    """
    for li in range(nl):
        i_pat = LI[li, I_PAT]
        if i_pat < 0 or LI[li, I_INIT] == 0:
            continue
        _lane_get(li, Y, PL, EXT, y1, p1, ext1)
        _f(T[li], y1, p1, ext1, f0)
        counters[i_pat, C_RHS] += 1
        for i in range(N_STATES):
            K[0, i, li] = f0[i]
        if LI[li, I_INIT] == 2:
            order = 5.0 if LI[li, I_MODE] == TSIT5 else 4.0
            LF[li, F_H] = _initial_step(T[li], LF[li, F_TEND], y1, f0, p1, ext1, rtol, atol, tmp1, f1, order)
            counters[i_pat, C_RHS] += 1
        LI[li, I_INIT] = 0


@njit(**_JIT)
def _lane_step_size(li, Y, T, TS1, LF, LI, hmax, max_steps, out_states, out_outputs, status, counters, final):
    """Step size for the lane's next attempt (sets I_HIT and TS1), or -1.0 on failure."""
    i_pat = LI[li, I_PAT]
    if counters[i_pat, C_ACCEPTED] + counters[i_pat, C_REJECTED] >= max_steps:
        _lane_finish(li, MAX_STEPS, Y, LI, out_states, out_outputs, status, final)
        return -1.0
    t = T[li]
    tend = LF[li, F_TEND]
    h = min(LF[li, F_H], hmax)
    hit = 0
    if t + 1.01 * h >= tend:
        h = tend - t
        hit = 1
    if h <= 16.0 * 2.220446049250313e-16 * max(abs(t), 1.0):
        _lane_finish(li, STEP_TOO_SMALL, Y, LI, out_states, out_outputs, status, final)
        return -1.0
    LI[li, I_HIT] = hit
    TS1[li] = _stage_time(t + h, tend)
    return h


@njit(**_JIT)
def _lane_stiff_check(li, t_new, h, YNEW, PL, EXT, LI, JL, DFL, y1, p1, ext1, v, w, counters):
    """Spectral radius of the Jacobian at the lane's new point; switch to RODAS if stiff.

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
        counters[i_pat, C_STIFF_SWITCHES] += 1
        LI[li, I_FIRST_RODAS] = 1
        LI[li, I_NNONSTIFF] = 0


@njit(**_JIT)
def _lane_rodas(li, Y, K, PL, EXT, T, LF, LI, JL, DFL, y1, p1, ext1, f0, g1, g2, g3, g4, g5, g6, ft, tmp1,
                ynew1, cont3, cont4, interp, v, w, LU, piv, otmp, TS1, times, thr, atol, rtol, method, hmax,
                max_steps, state_idx, output_idx, out_states, out_outputs, status, counters, final):
    """One RODAS4 attempt for the lane (scalar), with its bookkeeping."""
    n = N_STATES
    h = _lane_step_size(li, Y, T, TS1, LF, LI, hmax, max_steps, out_states, out_outputs, status, counters, final)
    if h < 0.0:
        return
    i_pat = LI[li, I_PAT]
    t = T[li]
    tend = LF[li, F_TEND]
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
            _lane_finish(li, NON_FINITE, Y, LI, out_states, out_outputs, status, final)
            return
    t_new = tend if LI[li, I_HIT] == 1 else t + h
    kout = LI[li, I_KOUT]
    while kout < times.shape[0] and times[kout] <= t_new and times[kout] < tend:
        tau = times[kout]
        if tau == t_new:
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
    for i in range(n):
        if thr[i] > 0.0:
            if ext1[i] == ALIVE:
                if ynew1[i] < thr[i]:
                    ynew1[i] = 0.0
                    ext1[i] = EXTINCT
                    ext1[n] += 1
            elif ext1[i] == NEW:
                if ynew1[i] >= thr[i]:
                    ext1[i] = ALIVE
                elif ynew1[i] < 0.0:
                    ynew1[i] = 0.0
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
        # back to Tsit5 when it would be stable at the step the accuracy allows,
        # for 10 steps in a row
        if hnew * _spectral_radius(J, v, w) < STIFF_OFF * T_STAB:
            LI[li, I_NNONSTIFF] += 1
            if LI[li, I_NNONSTIFF] >= 10:
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


# ---------------------------------------------------------------------- drivers


@njit(**_JIT)
def _run_range(start, stop, prob, res):
    """Simulate patients start..stop-1, LANES at a time, in the calling thread."""
    (t0, times, params, ev_time, ev_cond, act_start, act_kind, act_target, act_value, prog_code,
     prog_const, prog_start, prog_cstart, thr, atol, rtol, method, hmax, max_steps, state_idx,
     output_idx) = prob
    (out_states, out_outputs, status, counters, applied, final) = res
    n = N_STATES
    n_par = params.shape[1]
    n_ev = ev_time.shape[1]
    nl = min(LANES, stop - start)
    L = LANES
    n_times = times.shape[0]
    n_save_states = state_idx.shape[0]
    n_save_outputs = output_idx.shape[0]
    # lane arrays
    Y = np.zeros((n, L))
    K = np.zeros((7, n, L))  # stage derivatives
    XS = np.zeros((7, n, L))  # stage inputs
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
    FIN = np.zeros(L)  # 1.0 where the trial state is finite
    NUM = np.zeros(L)  # stiffness estimate: |k7 - k6|^2 ...
    DEN = np.zeros(L)  # ... and |ynew - y6|^2
    ACPT = np.zeros(L)  # 1.0 where the Tsit5 step was accepted
    CHG = np.zeros(L)  # number of states set to zero by extinction in the step
    TNEW = np.zeros(L)
    LF = np.zeros((L, N_LF))
    LI = np.zeros((L, N_LI), dtype=np.int64)
    ORDER = np.zeros((L, max(n_ev, 1)), dtype=np.int64)
    JL = np.zeros((L, n, n))
    DFL = np.zeros((L, n))
    # scratch for the lane being handled
    y1 = np.zeros(n)
    p1 = np.zeros(n_par)
    ext1 = np.zeros(n + 1, dtype=np.int32)
    f0 = np.zeros(n)
    g1 = np.zeros(n)
    g2 = np.zeros(n)
    g3 = np.zeros(n)
    g4 = np.zeros(n)
    g5 = np.zeros(n)
    g6 = np.zeros(n)
    ft = np.zeros(n)
    tmp1 = np.zeros(n)
    ynew1 = np.zeros(n)
    cont3 = np.zeros(n)
    cont4 = np.zeros(n)
    interp = np.zeros(n)
    v = np.zeros(n)
    w = np.zeros(n)
    LU = np.zeros((n, n))
    piv = np.zeros(n, dtype=np.int64)
    otmp = np.zeros(max(N_OUTPUTS, 1))
    stack = np.zeros(64)
    cond = np.zeros(max(n_ev, 1), dtype=np.bool_)
    for li in range(L):
        LI[li, I_PAT] = -1
    next_pat = start
    while True:
        active = 0
        for li in range(nl):
            while LI[li, I_PAT] < 0 and next_pat < stop:
                _lane_start(li, next_pat, Y, PL, EXT, T, LF, LI, ORDER, y1, p1, ext1, otmp, stack, cond, t0,
                            times, params, ev_time, ev_cond, act_start, act_kind, act_target, act_value,
                            prog_code, prog_const, prog_start, prog_cstart, thr, method, state_idx, output_idx,
                            out_states, out_outputs, status, counters, applied, final)
                next_pat += 1
            if LI[li, I_PAT] >= 0:
                active += 1
        if active == 0:
            break
        need_init = False
        for li in range(nl):
            need_init = need_init or (LI[li, I_PAT] >= 0 and LI[li, I_INIT] > 0)
        if need_init:
            _lanes_init(nl, Y, K, PL, EXT, T, LF, LI, y1, p1, ext1, f0, g1, tmp1, rtol, atol, counters)
        # step sizes for the lanes taking Tsit5 steps (idle lanes and lanes taking
        # RODAS steps get HS = 0 and compute harmless garbage in the vector step)
        for li in range(nl):
            HS[li] = 0.0
            i_pat = LI[li, I_PAT]
            if i_pat < 0 or LI[li, I_MODE] != TSIT5:
                continue
            if counters[i_pat, C_ACCEPTED] + counters[i_pat, C_REJECTED] >= max_steps:
                _lane_finish(li, MAX_STEPS, Y, LI, out_states, out_outputs, status, final)
                continue
            t = T[li]
            tend = LF[li, F_TEND]
            h = min(LF[li, F_H], hmax)
            hit = 0
            if t + 1.01 * h >= tend:
                h = tend - t
                hit = 1
            if h <= 16.0 * 2.220446049250313e-16 * max(abs(t), 1.0):
                _lane_finish(li, STEP_TOO_SMALL, Y, LI, out_states, out_outputs, status, final)
                continue
            LI[li, I_HIT] = hit
            TS1[li] = _stage_time(t + h, tend)
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
                            counters, final)
                if LI[li, I_PAT] >= 0 and T[li] >= LF[li, F_TEND]:
                    _lane_at_time(li, Y, PL, EXT, T, LF, LI, ORDER, y1, p1, ext1, otmp, stack, cond, times,
                                  ev_time, ev_cond, act_start, act_kind, act_target, act_value, prog_code,
                                  prog_const, prog_start, prog_cstart, thr, state_idx, output_idx, out_states,
                                  out_outputs, status, applied, final)
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
                    LF[li, F_H] = h / min(10.0, math.exp(0.17 * math.log(err)) / 0.9)
                LI[li, I_REJECT] = 1
                continue
            if FIN[li] == 0.0:  # inf or NaN in an accepted state
                _lane_finish(li, NON_FINITE, Y, LI, out_states, out_outputs, status, final)
                continue
            ACPT[li] = 1.0
            t_new = tend if LI[li, I_HIT] == 1 else t + h
            TNEW[li] = t_new
            # dense output for output times inside the step (strictly before the segment end)
            kout = LI[li, I_KOUT]
            while kout < n_times and times[kout] <= t_new and times[kout] < tend:
                tau = times[kout]
                if tau == t_new:
                    for i in range(n):
                        interp[i] = YNEW[i, li]
                else:
                    # Tsit5's free 4th-order interpolant (Tsitouras 2011)
                    th = (tau - t) / h
                    th2 = th * th
                    b1 = -1.0530884977290216 * th * (th - 1.3299890189751412) * (
                        th2 - 1.4364028541716351 * th + 0.7139816917074209)
                    b2 = 0.1017 * th2 * (th2 - 2.1966568338249754 * th + 1.2949852507374631)
                    b3 = 2.490627285651252793 * th2 * (th2 - 2.38535645472061657 * th + 1.57803468208092486)
                    b4 = -16.54810288924490272 * (th - 1.21712927295533244) * (th - 0.61620406037800089) * th2
                    b5 = 47.37952196281928122 * (th - 1.203071208372362603) * (th - 0.658047292653547382) * th2
                    b6 = -34.87065786149660974 * (th - 1.2) * (th - 0.666666666666666667) * th2
                    b7 = 2.5 * (th - 1.0) * (th - 0.6) * th2
                    for i in range(n):
                        interp[i] = Y[i, li] + h * (b1 * K[0, i, li] + b2 * K[1, i, li] + b3 * K[2, i, li]
                                                    + b4 * K[3, i, li] + b5 * K[4, i, li] + b6 * K[5, i, li]
                                                    + b7 * K[6, i, li])
                for i in range(n):
                    if thr[i] > 0.0 and interp[i] < thr[i] and (EXT[i, li] == EXTINCT or (
                            EXT[i, li] == ALIVE and YNEW[i, li] < thr[i])):
                        interp[i] = 0.0
                for j in range(n_save_states):
                    out_states[i_pat, kout, j] = interp[state_idx[j]]
                if n_save_outputs > 0:
                    for j in range(n_par):
                        p1[j] = PL[j, li]
                    model_outputs(tau, interp, p1, otmp)
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
                if LI[li, I_NSTIFF] >= 3 or LI[li, I_NCHECK] >= 100:
                    LI[li, I_NSTIFF] = 0
                    LI[li, I_NCHECK] = 0
                    _lane_stiff_check(li, t_new, h, YNEW, PL, EXT, LI, JL, DFL, y1, p1, ext1, v, w, counters)
            # step-size control: DOPRI5's PI controller, fac = err^0.17 / err_old^0.04
            fac = math.exp(0.17 * math.log(max(err, 1e-10)) - LF[li, F_LOGFAC])
            fac = max(0.1, min(5.0, fac / 0.9))
            hnew = h / fac
            LF[li, F_LOGFAC] = 0.04 * math.log(max(err, 1e-4))
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
            if T[li] >= LF[li, F_TEND]:
                _lane_at_time(li, Y, PL, EXT, T, LF, LI, ORDER, y1, p1, ext1, otmp, stack, cond, times,
                              ev_time, ev_cond, act_start, act_kind, act_target, act_value, prog_code,
                              prog_const, prog_start, prog_cstart, thr, state_idx, output_idx, out_states,
                              out_outputs, status, applied, final)


@njit(**_JIT)
def run_serial(prob, res):
    """Simulate all patients in the calling thread."""
    _run_range(0, prob[2].shape[0], prob, res)


@njit(cache=True, error_model="numpy", nogil=True, parallel=True)
def run_parallel(prob, res, block):
    """Simulate patients in parallel, in blocks of ``block`` patients.

    Each patient's arithmetic is independent of the others', so results do not
    depend on the number of threads or on how blocks are scheduled.
    """
    n_pat = prob[2].shape[0]
    n_blocks = (n_pat + block - 1) // block
    for b in prange(n_blocks):
        start = b * block
        _run_range(start, min(n_pat, start + block), prob, res)
