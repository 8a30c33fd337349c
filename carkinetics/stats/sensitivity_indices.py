"""Sensitivity statistics: PRCC with bootstrap intervals, Sobol indices and their significance.

- :func:`latin_hypercube`: a Latin-hypercube sample of a box (log-uniform where a range
  spans more than :data:`LOG_RANGE_FACTOR`, :func:`default_log`).
- :func:`prcc`: the partial rank correlation coefficient (PRCC) of each input with an
  output, with a bootstrap interval (:func:`prcc_with_replicates` also returns the
  bootstrap replicates).
- :func:`sobol`: first-order and total Sobol indices through :func:`scipy.stats.sobol_indices`.
- :func:`flag_significance`: which indices are distinguishable from those of an inert
  :data:`DUMMY` input, sampled like the others and never given to the model.

References
----------
Marino S, Hogue IB, Ray CJ, Kirschner DE (2008). A methodology for performing global
uncertainty and sensitivity analysis in systems biology. J Theor Biol 254:178-196,
doi:10.1016/j.jtbi.2008.04.011 (LHS-PRCC).
Saltelli A et al. (2010). Variance based sensitivity analysis of model output. Comput
Phys Commun 181:259-270, doi:10.1016/j.cpc.2009.09.018 (the estimator of
``scipy.stats.sobol_indices``).
"""

from __future__ import annotations

import warnings

import numpy as np

from carkinetics.errors import CarKineticsError
from carkinetics.stats.sampling import latin_hypercube as sample_latin_hypercube, scipy_rng

#: A parameter range wider than this factor is sampled log-uniformly.
LOG_RANGE_FACTOR = 10.0
GLOBAL_COLUMNS = ["parameter", "index", "value", "lower", "upper", "p_value"]
#: Name of the inert parameter added to every global analysis: sampled like the others
#: (uniform on [0, 1]) and never given to the model, so its index shows how large an index
#: sampling noise alone gives.
DUMMY = "(dummy)"
#: Sobol indices below this are negligible (not flagged significant).
SOBOL_NEGLIGIBLE = 0.01


class SensitivityError(CarKineticsError, ValueError):
    """A sensitivity analysis cannot run as asked (unknown outcome, parameter, range)."""


class SensitivityWarning(UserWarning):
    """A sensitivity analysis ran but its statistics may be unreliable (too few samples)."""


def latin_hypercube(lower, upper, n, seed=0, log=None) -> np.ndarray:
    """A Latin-hypercube sample of ``n`` points in a box.

    Parameters
    ----------
    lower, upper : array_like, shape (k,)
        The box; ``lower < upper``.
    n : int
        Number of points.
    seed : int
    log : array_like of bool, shape (k,), optional
        Sample these coordinates uniformly in log (needs ``lower > 0``). Default: where
        ``upper / lower > LOG_RANGE_FACTOR``.

    Returns
    -------
    ndarray, shape (n, k)
    """
    lo = np.asarray(lower, float)
    hi = np.asarray(upper, float)
    if lo.shape != hi.shape or lo.ndim != 1 or not np.all(hi > lo):
        raise SensitivityError("latin_hypercube: need lower < upper, one value per parameter")
    log = default_log(lo, hi) if log is None else np.asarray(log, bool)
    if np.any(log & (lo <= 0)):
        raise SensitivityError("latin_hypercube: log-uniform sampling needs lower > 0")
    return sample_latin_hypercube(lo, hi, n, seed, log)


def default_log(lower, upper) -> np.ndarray:
    """Whether each range is sampled in log: positive and wider than :data:`LOG_RANGE_FACTOR`.

    Parameters
    ----------
    lower, upper : array_like, shape (k,)

    Returns
    -------
    numpy.ndarray of bool, shape (k,)
    """
    lo = np.asarray(lower, float)
    hi = np.asarray(upper, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (lo > 0) & (hi / np.where(lo > 0, lo, 1.0) > LOG_RANGE_FACTOR)


def _prcc_values(X, y) -> np.ndarray:
    """PRCC of every column of X with y, from the inverse of the rank correlation matrix."""
    from scipy.stats import rankdata

    R = np.column_stack([rankdata(X, axis=0), rankdata(y)])
    C = np.corrcoef(R, rowvar=False)
    k = X.shape[1]
    try:
        P = np.linalg.inv(C)
    except np.linalg.LinAlgError:
        P = np.linalg.pinv(C)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = -P[:k, k] / np.sqrt(P[np.arange(k), np.arange(k)] * P[k, k])
    return np.clip(r, -1.0, 1.0)


def prcc(X, y, names=None, n_boot=500, level=0.95, seed=0):
    """Partial rank correlation coefficients of each input with an output.

    The PRCC of input ``i`` is the correlation between the residuals of the ranks of
    ``x_i`` and of ``y`` after linear regression on the ranks of all other inputs
    (Marino et al. 2008); it is computed here from the inverse of the rank correlation
    matrix, which is algebraically the same.

    Parameters
    ----------
    X : array_like, shape (n, k)
        Inputs (e.g. a Latin-hypercube sample of parameters).
    y : array_like, shape (n,)
        Output; rows where it is NaN are left out.
    names : sequence of str, optional
    n_boot : int
        Bootstrap resamples (rows drawn with replacement) for the percentile interval;
        0 for none.
    level : float
        Confidence level of the interval.
    seed : int

    Returns
    -------
    pandas.DataFrame
        Columns parameter, index (``"prcc"``), value, lower, upper, p_value (two-sided
        t test of zero partial correlation with ``n - 2 - (k - 1)`` degrees of freedom).
    """
    return prcc_with_replicates(X, y, names, n_boot, level, seed)[0]


def prcc_with_replicates(X, y, names=None, n_boot=500, level=0.95, seed=0):
    """:func:`prcc` and its bootstrap replicates.

    Parameters
    ----------
    X, y, names, n_boot, level, seed :
        As for :func:`prcc`.

    Returns
    -------
    table : pandas.DataFrame
        As :func:`prcc`.
    boots : numpy.ndarray, shape (n_boot, k), or None
        The PRCC of every bootstrap resample (None without bootstrap).
    """
    import pandas as pd
    from scipy import stats

    X = np.asarray(X, float)
    y = np.asarray(y, float)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise SensitivityError(f"prcc: X must be (n, k) and y (n,), got {X.shape} and {y.shape}")
    ok = np.isfinite(y) & np.all(np.isfinite(X), axis=1)
    X, y = X[ok], y[ok]
    n, k = X.shape
    names = list(names) if names is not None else [f"x{i}" for i in range(k)]
    if n < k + 3 or np.ptp(y) == 0:
        value = np.full(k, np.nan)
    else:
        value = _prcc_values(X, y)
    dof = n - 2 - (k - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = value * np.sqrt(dof / (1 - value ** 2))
    p = 2 * stats.t.sf(np.abs(t), dof) if dof > 0 else np.full(k, np.nan)
    lower = np.full(k, np.nan)
    upper = np.full(k, np.nan)
    boots = None
    if n_boot and np.all(np.isfinite(value)):
        rng = np.random.default_rng(seed)
        boots = np.empty((n_boot, k))
        for b in range(n_boot):
            idx = rng.integers(0, n, n)
            yb = y[idx]
            boots[b] = _prcc_values(X[idx], yb) if np.ptp(yb) > 0 else np.nan
        a = (1 - level) / 2
        lower, upper = np.nanquantile(boots, [a, 1 - a], axis=0)
    table = pd.DataFrame({"parameter": names, "index": "prcc", "value": value, "lower": lower, "upper": upper,
                          "p_value": p}, columns=GLOBAL_COLUMNS)
    return table, boots


def sobol(func, lower, upper, n=256, names=None, seed=0, log=None, n_boot=200, level=0.95):
    """First-order and total Sobol indices of ``func`` over a box, by :func:`scipy.stats.sobol_indices`.

    Parameters
    ----------
    func : callable
        ``func(X)`` with ``X`` of shape (m, k) (one row per sample) returns m outputs.
    lower, upper : array_like, shape (k,)
    n : int
        Base sample size, a power of 2; ``func`` is evaluated at ``n * (k + 2)`` points.
    names : sequence of str, optional
    seed : int
    log : array_like of bool, optional
        Log-uniform coordinates (default as in :func:`latin_hypercube`).
    n_boot : int
        Bootstrap resamples for the intervals.

    Returns
    -------
    pandas.DataFrame
        Columns parameter, index (``"first_order"`` or ``"total"``), value, lower,
        upper, p_value (NaN).
    """
    import pandas as pd
    from scipy import stats

    lo = np.asarray(lower, float)
    hi = np.asarray(upper, float)
    k = lo.size
    names = list(names) if names is not None else [f"x{i}" for i in range(k)]
    if n < 2 or (n & (n - 1)) != 0:
        raise SensitivityError(f"sobol: n must be a power of 2, got {n}")
    log = default_log(lo, hi) if log is None else np.asarray(log, bool)
    dists = [stats.loguniform(lo[i], hi[i]) if log[i] else stats.uniform(lo[i], hi[i] - lo[i]) for i in range(k)]

    def f(x):  # scipy passes (k, m) and wants (1, m), a writable array (it centres it in place)
        return np.array(func(np.asarray(x).T), dtype=float, copy=True).reshape(1, -1)

    res = stats.sobol_indices(func=f, n=int(n), dists=dists, **scipy_rng(seed, "random_state"))
    rows = []
    if n_boot:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # an input the function ignores has indices exactly 0 in every resample: BCa is
            # degenerate there (NaN, with warnings); its interval is [0, 0]
            warnings.simplefilter("ignore")
            boot = res.bootstrap(confidence_level=level, n_resamples=int(n_boot))
        ci = {"first_order": boot.first_order.confidence_interval, "total": boot.total_order.confidence_interval}
    first = np.reshape(res.first_order, (-1, k))[0]
    total = np.reshape(res.total_order, (-1, k))[0]
    for idx, values in (("first_order", first), ("total", total)):
        for i, name in enumerate(names):
            lo_i = float(np.ravel(ci[idx].low)[i]) if n_boot else np.nan
            hi_i = float(np.ravel(ci[idx].high)[i]) if n_boot else np.nan
            if n_boot and values[i] == 0 and not (np.isfinite(lo_i) and np.isfinite(hi_i)):
                lo_i = hi_i = 0.0
            rows.append((name, idx, float(values[i]), lo_i, hi_i, np.nan))
    return pd.DataFrame(rows, columns=GLOBAL_COLUMNS)


def flag_significance(table, level=0.95, boots=None):
    """Add columns rank, rank_lower, rank_upper and significant, judged against :data:`DUMMY`.

    PRCC: ``dummy_bound`` is the largest ``|PRCC|`` in the dummy's bootstrap interval (its
    ``|value|`` without bootstrap); a parameter is significant when its whole interval
    lies beyond ``+-dummy_bound`` and its p-value is below ``(1 - level) / k`` (Bonferroni
    over the ``k`` sampled parameters). Sobol: per index (first order, total), a
    parameter is significant when the lower end of its interval is above the upper end
    of the dummy's (without intervals: its value above the dummy's) and the index is at
    least :data:`SOBOL_NEGLIGIBLE` (the Saltelli/Jansen estimators give an input the
    function ignores exactly 0, so the dummy alone would flag every tiny effect).
    Ranks (PRCC with bootstrap replicates ``boots``): the rank of ``|PRCC|`` among the
    sampled parameters (1 the largest, the dummy left out) and its bootstrap interval.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`prcc` or :func:`sobol`, with a :data:`DUMMY` row per index.
    level : float
        Confidence level of the intervals.
    boots : numpy.ndarray, shape (n_boot, k), optional
        PRCC bootstrap replicates (:func:`prcc_with_replicates`), for the rank intervals.

    Returns
    -------
    pandas.DataFrame
        A copy of ``table`` with the four columns; ``attrs["dummy_bound"]`` (index -> bound)
        and ``attrs["significance"]`` (index -> the rule, in words).
    """
    t = table.copy()
    t["rank"] = np.nan
    t["rank_lower"] = np.nan
    t["rank_upper"] = np.nan
    t["significant"] = False
    rules = {}
    bounds = {}
    for idx in dict.fromkeys(t["index"]):
        rows = t.index[t["index"] == idx]
        sub = t.loc[rows]
        is_dummy = (sub["parameter"] == DUMMY).to_numpy()
        if not is_dummy.any():
            continue
        d = sub[is_dummy].iloc[0]
        real = ~is_dummy
        k = int(real.sum())
        v = sub["value"].to_numpy(float)
        lo = sub["lower"].to_numpy(float)
        hi = sub["upper"].to_numpy(float)
        with np.errstate(invalid="ignore"):
            if idx == "prcc":
                has_ci = np.isfinite(d["lower"]) and np.isfinite(d["upper"])
                bound = max(abs(d["lower"]), abs(d["upper"])) if has_ci else abs(d["value"])
                alpha = (1 - level) / max(k, 1)
                beyond = (lo > bound) | (hi < -bound) if has_ci else np.abs(v) > bound
                sig = beyond & (sub["p_value"].to_numpy(float) < alpha)
                rules[idx] = (f"|PRCC| interval beyond the dummy's bound {bound:.3f} and p < {alpha:.2g} "
                              f"(Bonferroni over {k})")
            else:
                # the estimators give an input the model ignores exactly 0, so the dummy bounds
                # only the estimator's bias; SOBOL_NEGLIGIBLE screens out tiny but real effects
                has_ci = np.isfinite(d["upper"]) and np.isfinite(d["lower"])
                bound = d["upper"] if has_ci else d["value"]
                sig = ((lo > bound) if has_ci else (v > bound)) & (v >= SOBOL_NEGLIGIBLE)
                rules[idx] = (f"{idx}: interval above the dummy's upper bound {bound:.3f} and index >= "
                              f"{SOBOL_NEGLIGIBLE:g}")
        if not np.isfinite(bound):
            rules[idx] = f"{idx}: no finite index for the dummy: nothing flagged"
        bounds[idx] = float(bound)
        sig = np.where(real, sig, False)
        t.loc[rows, "significant"] = sig.astype(bool)
        # rank by |value| among the real parameters
        a = np.where(real & np.isfinite(v), np.abs(v), -np.inf)
        order = np.argsort(-a, kind="stable")
        rank = np.empty(len(a))
        rank[order] = np.arange(1, len(a) + 1)
        rank = np.where(real & np.isfinite(v), rank, np.nan)
        t.loc[rows, "rank"] = rank
        if idx == "prcc" and boots is not None and boots.shape[1] == len(sub):
            b = np.where(real[None, :], np.abs(boots), -np.inf)
            b = np.where(np.isfinite(b), b, -np.inf)
            # rank within each replicate: 1 + number of real parameters with a larger |PRCC|
            r = 1 + (b[:, None, :] > b[:, :, None]).sum(axis=2)
            a_ = (1 - level) / 2
            rl, ru = np.quantile(r, [a_, 1 - a_], axis=0)
            t.loc[rows, "rank_lower"] = np.where(real, rl, np.nan)
            t.loc[rows, "rank_upper"] = np.where(real, ru, np.nan)
    t["significant"] = t["significant"].astype(bool)
    t.attrs["dummy_bound"] = bounds
    t.attrs["significance"] = rules
    return t
