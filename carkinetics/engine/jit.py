"""How the engine is compiled: numba options of its functions, and plain Python when
NUMBA_DISABLE_JIT=1 (to debug it).
"""

_ALLOC = dict(cache=True, error_model="numpy", nogil=True)  # the functions that allocate arrays
# Every other function neither allocates nor returns an array: compiled without numba's
# reference counting (``_nrt=False``), its array arguments are borrowed from the caller, which
# holds them for the call. With it, each call took and gave back a reference to each array
# argument (two atomic operations each): 40 % of the engine's time on the T-ALL model, whose
# root and jump functions are called many times per step with a dozen arrays each.
_JIT = dict(_ALLOC, _nrt=False)
_HOT = dict(_JIT, inline="always")  # small functions of the hot loops, inlined

# With NUMBA_DISABLE_JIT=1 the engine runs as plain Python (njit returns the function
# itself), to debug it. Only the bitcast intrinsics below need a Python
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
