"""The numba integrator kernels.

``template.py`` holds the integrators (Tsit5, RODAS4, automatic switching), the
event loop and the batch drivers. It is compiled once per model, together with the
model's generated right-hand side, by :mod:`carkinetics.model.codegen`.
"""
