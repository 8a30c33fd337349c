"""The numba integrator kernels, as source files compiled together with each model.

The files of this package other than :mod:`~carkinetics.engine.constants` are not imported
as they stand: :mod:`carkinetics.model.codegen` writes one module per model from the
model's generated functions (``model_rhs``, ``model_rhs_lanes``, ``model_jac``,
``model_initial``, ``model_outputs`` and ``N_STATES``, ``N_PARAMS``, ``N_OUTPUTS``), the
constants of :mod:`~carkinetics.engine.constants`, and these files in this order:

``jit``      numba options; plain Python when ``NUMBA_DISABLE_JIT=1``
``vmath``    branch-free (vectorisable) log, exp, pow and Hill functions
``linalg``   LU factorisation and solves, spectral radius
``system``   the model's right-hand side and Jacobian as the integrators see them
``tsit5``    Tsit5 tableau, a trial step in every lane at once, dense output
``rodas4``   RODAS4 tableau, a trial step, dense output, a lane's RODAS4 attempt
``roots``    roots of an accepted step (model events, stochastic jumps), random streams
``events``   condition programs; events, outputs and segments at a lane's boundary
``lanes``    lane bookkeeping: patients entering and leaving lanes, step sizes
``driver``   the lane loop and the serial and parallel entry points
"""
