"""Covariate distributions of a virtual population and the parser of one covariate table.

A ``[population.covariates.NAME]`` table names a distribution (:data:`DISTRIBUTIONS`,
or an alias in :data:`DISTRIBUTION_ALIASES`) and its parameters; :func:`parse_covariate`
validates it into a :class:`Covariate`, whose :meth:`Covariate.ppf` turns one uniform per
patient into its value (inverse CDF of the possibly truncated distribution).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from carkinetics.errors import is_number, suggestion

#: Keys every covariate table accepts besides its distribution's parameters.
_COMMON_COV_KEYS = {"distribution", "unit", "description", "notes", "source"}


def _ndtr(x):
    from scipy.special import ndtr

    return ndtr(x)


def _ndtri(p):
    from scipy.special import ndtri

    return ndtri(p)


@dataclass(frozen=True)
class Covariate:
    """One covariate: a named distribution, drawn by inverse CDF from one uniform per patient.

    Attributes
    ----------
    name, distribution : str
    params : dict
        The distribution's parameters as written (after conversion to floats).
    lower, upper : float
        Truncation bounds (``-inf``/``inf`` when absent); the distribution is
        truncated (renormalised), not clipped.
    unit, description : str
    """

    name: str
    distribution: str
    params: dict
    lower: float = -math.inf
    upper: float = math.inf
    unit: str = ""
    description: str = ""

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Values for uniforms ``u`` in (0, 1) (the inverse CDF of the truncated distribution)."""
        u = np.asarray(u, dtype=float)
        d, p = self.distribution, self.params
        if d == "constant":
            return np.full(u.shape, p["value"])
        if d == "bernoulli":
            return (u < p["p"]).astype(float)
        if d == "categorical":
            cum = np.cumsum(p["probabilities"])
            cum[-1] = 1.0
            k = np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)
            return np.asarray(p["values"], dtype=float)[k]
        # continuous: truncate through the CDF of the bounds
        lo, hi = self.lower, self.upper
        if d in ("normal", "truncnormal", "lognormal"):
            if d == "lognormal":
                loc, scale = math.log(p["median"]), p["sd_log"]
                lo = math.log(lo) if lo > 0 else -math.inf
                hi = math.log(hi) if hi < math.inf else math.inf
            else:
                loc, scale = p["mean"], p["sd"]
            if scale == 0:
                z = np.full(u.shape, loc)
                return np.exp(z) if d == "lognormal" else z
            f_lo = _ndtr((lo - loc) / scale) if lo > -math.inf else 0.0
            f_hi = _ndtr((hi - loc) / scale) if hi < math.inf else 1.0
            z = loc + scale * _ndtri(f_lo + u * (f_hi - f_lo))
            z = np.clip(z, lo, hi)  # rounding at the bounds
            return np.exp(z) if d == "lognormal" else z
        if d == "uniform":
            return p["lower"] + u * (p["upper"] - p["lower"])
        if d == "loguniform":
            a, b = math.log(p["lower"]), math.log(p["upper"])
            return np.exp(a + u * (b - a))
        if d == "beta":
            from scipy.special import betainc, betaincinv

            a, b = p["alpha"], p["beta"]
            f_lo = float(betainc(a, b, max(lo, 0.0))) if lo > 0 else 0.0
            f_hi = float(betainc(a, b, min(hi, 1.0))) if hi < 1 else 1.0
            return np.clip(betaincinv(a, b, f_lo + u * (f_hi - f_lo)), max(lo, 0.0), min(hi, 1.0))
        raise AssertionError(d)

    @property
    def typical(self) -> float:
        """The median of the (truncated) distribution: the value of the typical patient."""
        return float(self.ppf(np.array([0.5]))[0])


def _lognormal_params(raw, add):
    """median & sd_log, or geometric_mean & geometric_sd, or mean & sd (arithmetic)."""
    if "median" in raw or "sd_log" in raw:
        return {"median": raw.get("median"), "sd_log": raw.get("sd_log")}, ("median", "sd_log")
    if "geometric_mean" in raw or "geometric_sd" in raw:
        gm, gsd = raw.get("geometric_mean"), raw.get("geometric_sd")
        if is_number(gsd) and gsd < 1:
            add("geometric_sd", f"a geometric SD is a factor >= 1, got {gsd}")
            return None, ()
        sd_log = math.log(gsd) if is_number(gsd) else gsd
        return {"median": gm, "sd_log": sd_log}, ("geometric_mean", "geometric_sd")
    if "mean" in raw or "sd" in raw:
        mean, sd = raw.get("mean"), raw.get("sd")
        if is_number(mean) and is_number(sd) and mean > 0 and sd >= 0:
            cv = sd / mean
            if cv > 1e100:  # (sd / mean) ** 2 would overflow: the same formulas, factored by cv
                inv2 = cv ** -2
                return ({"median": mean / (cv * math.sqrt(1 + inv2)),
                         "sd_log": math.sqrt(2 * math.log(cv) + math.log1p(inv2))}, ("mean", "sd"))
            cv2 = cv ** 2
            return {"median": mean / math.sqrt(1 + cv2), "sd_log": math.sqrt(math.log1p(cv2))}, ("mean", "sd")
        return {"median": mean, "sd_log": sd}, ("mean", "sd")
    return {"median": None, "sd_log": None}, ("median", "sd_log")


#: Distribution -> (required keys, optional keys, description for messages).
DISTRIBUTIONS = {
    "constant": ({"value"}, set(), "value"),
    "normal": ({"mean", "sd"}, {"lower", "upper"}, "mean, sd; optional lower/upper truncation"),
    "truncnormal": ({"mean", "sd"}, {"lower", "upper"}, "mean, sd and at least one of lower/upper"),
    "lognormal": (set(), {"median", "sd_log", "geometric_mean", "geometric_sd", "mean", "sd", "lower", "upper"},
                  "median & sd_log, or geometric_mean & geometric_sd, or mean & sd (arithmetic); "
                  "optional lower/upper truncation"),
    "uniform": ({"lower", "upper"}, set(), "lower, upper"),
    "loguniform": ({"lower", "upper"}, set(), "lower > 0, upper"),
    "beta": ({"alpha", "beta"}, {"lower", "upper"}, "alpha, beta; optional lower/upper truncation within [0, 1]"),
    "bernoulli": ({"p"}, set(), "p (probability of 1; values are 0 or 1)"),
    "categorical": ({"values"}, {"probabilities"}, "values (numbers), probabilities (default: equal)"),
}
#: Other names of distributions.
DISTRIBUTION_ALIASES = {"choice": "categorical", "truncated_normal": "truncnormal", "log_normal": "lognormal",
                        "fixed": "constant"}

def _distribution_params(dist, raw, add):
    """The parameters of a ``dist`` covariate from its table (None after a recorded problem)."""
    required, optional, expects = DISTRIBUTIONS[dist]
    ok = True
    params = {}
    if dist == "lognormal":
        conv, given = _lognormal_params(raw, add)
        if conv is None:
            return None
        for k in given:
            if k not in raw:
                add(k, f"missing: a lognormal covariate needs {expects}")
                ok = False
        if not ok:
            return None
        for k in given:
            if not is_number(raw[k]):
                add(k, f"expected a number, got {raw[k]!r}")
                ok = False
        if not ok:
            return None
        if not conv["median"] > 0:
            add(given[0], f"must be > 0, got {raw[given[0]]}")
            return None
        if not conv["sd_log"] >= 0:
            add(given[1], f"must be >= 0, got {raw[given[1]]}")
            return None
        params = conv
    elif dist == "categorical":
        values = raw["values"]
        if not isinstance(values, list) or not values or not all(is_number(v) for v in values):
            add("values", f"expected a non-empty list of numbers (use arms for named groups), got {values!r}")
            return None
        probs = raw.get("probabilities", [1.0 / len(values)] * len(values))
        if (not isinstance(probs, list) or len(probs) != len(values) or not all(is_number(q) for q in probs)
                or any(q < 0 for q in probs) or abs(sum(probs) - 1) > 1e-6):
            add("probabilities", f"expected {len(values)} probabilities >= 0 that sum to 1, got {probs!r}")
            return None
        params = {"values": [float(v) for v in values], "probabilities": np.array(probs, dtype=float)}
    else:
        for k in sorted(required | (optional - {"lower", "upper"})):
            if k in raw:
                if not is_number(raw[k]):
                    add(k, f"expected a number, got {raw[k]!r}")
                    ok = False
                else:
                    params[k] = float(raw[k])
        if not ok:
            return None
    return params


def _truncation(dist, raw, params, add):
    """``(lower, upper)`` of a ``dist`` covariate (None after a recorded problem)."""
    lower, upper = -math.inf, math.inf
    if dist in ("uniform", "loguniform"):
        lower, upper = params["lower"], params["upper"]
        if not lower < upper:
            add("upper", f"upper = {upper:g} must be greater than lower = {lower:g}")
            return None
        if dist == "loguniform" and lower <= 0:
            add("lower", f"a loguniform covariate needs lower > 0, got {lower:g}")
            return None
    else:
        for k in ("lower", "upper"):
            if k in raw:
                if not is_number(raw[k]):
                    add(k, f"expected a number, got {raw[k]!r}")
                    return None
        lower = float(raw.get("lower", -math.inf))
        upper = float(raw.get("upper", math.inf))
        if not lower < upper:
            add("upper", f"upper = {upper:g} must be greater than lower = {lower:g}")
            return None
    return lower, upper


def _valid_settings(dist, raw, params, add) -> bool:
    """Whether the parameter values and text keys of a ``dist`` covariate are valid (else a problem
    is recorded)."""
    if dist == "truncnormal" and "lower" not in raw and "upper" not in raw:
        add("", "a truncnormal covariate needs lower and/or upper (or use 'normal')")
        return False
    if dist in ("normal", "truncnormal") and params["sd"] < 0:
        add("sd", f"must be >= 0, got {params['sd']:g}")
        return False
    if dist == "beta":
        for k in ("alpha", "beta"):
            if params[k] <= 0:
                add(k, f"must be > 0, got {params[k]:g}")
                return False
    if dist == "bernoulli" and not 0 <= params["p"] <= 1:
        add("p", f"a probability in [0, 1], got {params['p']:g}")
        return False
    for k in ("unit", "description", "notes", "source"):
        if k in raw and not isinstance(raw[k], str):
            add(k, f"expected a string, got {raw[k]!r}")
            return False
    return True


def parse_covariate(name, raw, key, add_problem) -> Covariate | None:
    """Parse one ``[population.covariates.NAME]`` table into a :class:`Covariate`.

    Parameters
    ----------
    name : str
        The covariate's name.
    raw : object
        The table as read.
    key : str
        Where the table is in the file (``population.covariates.NAME``), for problems.
    add_problem : callable
        ``add_problem(key, message)`` records a problem.

    Returns
    -------
    Covariate or None
        None when the table has a problem (recorded).
    """
    def add(k, msg):
        add_problem(f"{key}.{k}" if k else key, msg)

    if not isinstance(raw, dict):
        add("", "expected a table with at least 'distribution'")
        return None
    dist = raw.get("distribution")
    names = sorted(DISTRIBUTIONS) + sorted(DISTRIBUTION_ALIASES)
    if not isinstance(dist, str) or dist not in names:
        add("distribution", f"unknown distribution {dist!r}; expected one of {', '.join(sorted(DISTRIBUTIONS))}"
                            f"{suggestion(str(dist), names)}")
        return None
    dist = DISTRIBUTION_ALIASES.get(dist, dist)
    required, optional, expects = DISTRIBUTIONS[dist]
    ok = True
    for k in raw:
        if k not in _COMMON_COV_KEYS | required | optional:
            add(k, f"'{k}' is not a key of a {dist} covariate (expected {expects})"
                   f"{suggestion(k, sorted(required | optional))}")
            ok = False
    for k in sorted(required):
        if k not in raw:
            add(k, f"missing: a {dist} covariate needs {expects}")
            ok = False
    if not ok:
        return None
    params = _distribution_params(dist, raw, add)
    if params is None:
        return None
    bounds = _truncation(dist, raw, params, add)
    if bounds is None or not _valid_settings(dist, raw, params, add):
        return None
    lower, upper = bounds
    cov = Covariate(name, dist, params, lower, upper, str(raw.get("unit", "")), str(raw.get("description", "")))
    # a truncation window with (numerically) no mass
    if dist in ("normal", "truncnormal", "lognormal", "beta"):
        probe = cov.ppf(np.array([1e-12, 0.5, 1 - 1e-12]))
        if not np.all(np.isfinite(probe)):
            add("", f"the bounds [{lower:g}, {upper:g}] leave no probability mass in this distribution")
            return None
    return cov
