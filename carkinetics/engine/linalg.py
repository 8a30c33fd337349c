"""Small dense linear algebra: LU factorisation and solve, stage solves, spectral radius."""

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
