"""Vectorisable math: branch-free log, exp, pow and Hill functions (fdlibm), and scalar Hill
functions."""

# log and exp as straight-line code (the algorithms of fdlibm's e_log.c and e_exp.c,
# Sun Microsystems 1993), so that loops over lanes containing them vectorise. Accuracy
# within 1 ulp over the whole double range, special values as in C99 (tests compare
# them with numpy). Every path of the engine uses them, so a patient's arithmetic does
# not depend on whether it ran in a vectorised loop.

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
