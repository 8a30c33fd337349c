"""Fitting models to data and to reported summary numbers.

Three kinds of fit, all on log-parameters within the model file's bounds:

- :func:`fit_individual`: one patient's observations (a :class:`~carkinetics.scenario.data.Dataset`),
  maximum likelihood with log-normal residuals (``log y = log f + eps``, ``eps ~ N(0, sigma^2)``),
  censored points (below the LLOQ) entering through ``P(y < LLOQ)`` (Beal's M3 method),
  ``scipy.optimize.least_squares`` from a seeded Latin-hypercube of starts. The Jacobian is
  central differences computed with one :func:`~carkinetics.simulate_batch` call.
- :func:`fit_population`: the standard two-stage method: individual fits, then the typical
  value of each parameter as the geometric mean of the individual estimates with a t-based
  95% interval on the log scale.
- :func:`fit_targets`: reported statistics (median Cmax, geometric-mean AUC, proportions, ...)
  matched by a virtual cohort simulated with common random numbers, minimised with
  ``scipy.optimize.differential_evolution`` (several seeded runs).

Uncertainty: :func:`profile_likelihood` (95% intervals where ``-2 log L`` rises by 3.84
above its minimum, the residual SD re-estimated at each point when it is estimated) and
:func:`parametric_bootstrap`. :func:`write_fit` writes tables, plots and a calibrated model
file with provenance.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from carkinetics.errors import CarKineticsError, DataError, ProblemCollector, suggestion
from carkinetics.simulation.options import SolverOptions

CHI2_1_95 = 3.841458820694124  # scipy.stats.chi2.ppf(0.95, 1)
BEST_TOLERANCE = 0.01  # starts within this of the best -2 log L "reached the best optimum"
LOG_2PI = math.log(2.0 * math.pi)


class FitError(CarKineticsError, ValueError):
    """A fit cannot be set up as requested (unknown parameter, bad bounds, no data...)."""


class NonIdentifiableWarning(UserWarning):
    """A profile likelihood stays below the 95% threshold up to a bound: not identifiable."""


def default_options() -> SolverOptions:
    """Solver options for fitting: tight tolerances so finite differences are smooth.

    With ``rtol = 1e-8`` the simulated outputs are accurate to about 1e-7 relative;
    central differences with step ``h = 1e-3`` in log-parameter then have truncation
    error ~h^2 = 1e-6 and rounding/solver noise ~1e-7/h = 1e-4 relative, far below the
    residual scale (sigma ~ 0.1-1 on the log scale).
    """
    return SolverOptions(method="auto", rtol=1e-8, raise_on_failure=False)


FD_STEP = 1e-3


# ---------------------------------------------------------------------------------------
# parameter space
# ---------------------------------------------------------------------------------------
@dataclass
class ParameterSpace:
    """The estimated parameters: names, model indices, log-scale bounds."""

    model: object
    names: tuple
    index: np.ndarray
    log_lower: np.ndarray
    log_upper: np.ndarray

    @classmethod
    def build(cls, model, estimate, bounds=None, base=None):
        if isinstance(estimate, str):
            estimate = [s.strip() for s in estimate.split(",") if s.strip()]
        estimate = list(estimate)
        if not estimate:
            raise FitError("no parameters to estimate: give at least one name")
        errs = []
        bounds = dict(bounds or {})
        for b in bounds:
            if b not in estimate:
                errs.append(f"bounds given for '{b}', which is not estimated")
        lo, hi, idx = [], [], []
        base = model.default_parameters() if base is None else np.asarray(base, float)
        for name in estimate:
            if name not in model.parameter_names:
                errs.append(f"'{name}' is not a parameter of model '{model.name}'"
                            f"{suggestion(name, model.parameter_names)}")
                continue
            if estimate.count(name) > 1:
                errs.append(f"'{name}' is listed twice")
                continue
            par = model.parameter(name)
            value = float(base[model.parameter_index(name)])
            b = bounds.get(name, par.bounds)
            if b is None:
                if value <= 0:
                    errs.append(f"'{name}' has no bounds and a non-positive value {value}: give bounds")
                    continue
                b = (value / 1e3, value * 1e3)
            b_lo, b_hi = float(b[0]), float(b[1])
            if b_lo <= 0:
                # log scale needs a positive lower bound: three decades below the typical value
                b_lo = min(value, b_hi) * 1e-3 if value > 0 else b_hi * 1e-6
            if not (0 < b_lo < b_hi) or not math.isfinite(b_hi):
                errs.append(f"'{name}': bounds [{b[0]}, {b[1]}] are not a positive interval (log scale)")
                continue
            idx.append(model.parameter_index(name))
            lo.append(math.log(b_lo))
            hi.append(math.log(b_hi))
        if errs:
            raise FitError("cannot estimate the requested parameters:\n  " + "\n  ".join(errs))
        return cls(model, tuple(estimate), np.array(idx, dtype=np.int64), np.array(lo), np.array(hi))

    @property
    def size(self) -> int:
        return len(self.names)

    def clip(self, x):
        return np.clip(x, self.log_lower, self.log_upper)

    def latin_hypercube(self, n, seed):
        """``n`` seeded Latin-hypercube points in the log-bounds box (n x k)."""
        from scipy.stats import qmc

        if n <= 0:
            return np.zeros((0, self.size))
        u = qmc.LatinHypercube(d=self.size, seed=np.random.default_rng(seed)).random(n)
        return self.log_lower + u * (self.log_upper - self.log_lower)


# ---------------------------------------------------------------------------------------
# one patient's problem
# ---------------------------------------------------------------------------------------
class PatientProblem:
    """Residuals of one patient's observations as a function of log-parameters.

    ``residuals(x, sigma)`` returns the vector ``r`` with ``sum(r**2) + n_unc * log(2 pi sigma^2)
    = -2 log L``: for an uncensored observation ``r = (g(y) - g(f)) / sigma`` (``g = log`` or
    identity), for a censored one ``r = sqrt(-2 log Phi((g(LLOQ) - g(f)) / sigma))``.
    """

    def __init__(self, model, dataset, pid, space, *, base=None, events=(), options=None, scale=None,
                 n_threads=None):
        from carkinetics.simulation.simulate import _check_times

        self.model, self.space, self.pid = model, space, pid
        self.options = options or default_options()
        obs, _ = dataset.patient(pid)
        if obs.empty:
            raise FitError(f"patient '{pid}' has no observations{suggestion(str(pid), dataset.ids)}")
        base = model.default_parameters() if base is None else np.array(base, float)
        for name, v in dataset.parameter_overrides(model, pid).items():
            if model.parameter_index(name) in space.index:
                continue  # estimated: the covariate is the starting value only
            base[model.parameter_index(name)] = v
        self.base = base
        self.schedule = dataset.schedule(pid, events)
        # initial values apply at day 0 (the infusion) or at the first earlier event (lymphodepletion)
        self.t0 = min([0.0] + [e.time for e in self.schedule])
        self.obs = obs.reset_index(drop=True)
        self.times = _check_times(np.unique(self.obs["time"].to_numpy(float)))
        self.outputs = sorted(set(self.obs["observable"]))
        self.t_index = np.searchsorted(self.times, self.obs["time"].to_numpy(float))
        self.o_index = np.array([self.outputs.index(o) for o in self.obs["observable"]])
        scale = dict(scale or {})
        self.log_scale = np.array([scale.get(o, "log") == "log" for o in self.obs["observable"]])
        y = self.obs["value"].to_numpy(float)
        self.y = y
        self.censored = self.obs["censored"].to_numpy(bool)
        self.lloq = self.obs["lloq"].to_numpy(float)
        bad = self.log_scale & ~self.censored & ~(y > 0)
        if bad.any():
            lines = ", ".join(str(v) for v in self.obs["line"][bad])
            raise DataError(dataset.path, [f"line {ln}: value must be > 0 for a log-scale fit of "
                                           f"'{self.obs['observable'][i]}' (give an lloq to censor it, or fit "
                                           f"that observable on the linear scale)"
                                           for ln, i in zip(lines.split(", "), np.flatnonzero(bad))])
        # floor for predictions on the log scale: 1e-6 of the smallest positive level seen
        pos = np.concatenate([y[(y > 0) & ~self.censored], self.lloq[self.censored & (self.lloq > 0)]])
        self.floor = (pos.min() if pos.size else 1.0) * 1e-6
        gy = np.where(self.log_scale, np.log(np.where(y > 0, y, 1.0)), y)
        gl = np.where(self.log_scale, np.log(np.where(self.lloq > 0, self.lloq, 1.0)), self.lloq)
        self.gy = np.where(self.censored, gl, gy)  # censored: the limit
        self.n_uncensored = int((~self.censored).sum())
        self.n_threads = n_threads
        self.n_simulations = 0
        self.prior = None  # (mu, omega) on the log scale: MAP fits of the iterative two-stage method

    # -- simulation --------------------------------------------------------------------
    def full_parameters(self, X):
        X = np.atleast_2d(X)
        P = np.repeat(self.base[None, :], X.shape[0], axis=0)
        P[:, self.space.index] = np.exp(X)
        return P

    def predict(self, X) -> np.ndarray:
        """Predictions (M, n_obs) for M log-parameter vectors (one ``simulate_batch`` call)."""
        from carkinetics.simulation.simulate import simulate_batch

        P = self.full_parameters(X)
        threads = self.n_threads if self.n_threads is not None else (1 if P.shape[0] < 32 else None)
        batch = simulate_batch(self.model, self.schedule, self.times, P, options=self.options, t0=self.t0,
                               n_threads=threads, save_states=False, save_outputs=self.outputs)
        self.n_simulations += P.shape[0]
        pred = batch.outputs[:, self.t_index, self.o_index]
        pred[batch.status != 0] = np.nan
        return pred

    def transform(self, pred):
        """g(prediction): log (floored) or identity; NaN (failed simulation) -> the floor."""
        pred = np.where(np.isfinite(pred), pred, self.floor)
        return np.where(self.log_scale, np.log(np.maximum(pred, self.floor)), pred)

    def residuals_from(self, gpred, sigma):
        from scipy.special import log_ndtr

        z = (self.gy - gpred) / sigma
        r = np.where(self.censored, 0.0, z)
        if self.censored.any():
            c = self.censored
            r_c = np.sqrt(np.maximum(-2.0 * log_ndtr(z[..., c]), 0.0))
            r = r.copy()
            r[..., c] = r_c
        return r

    def objective_from(self, gpred, sigma):
        """-2 log L (with constants) for predictions g(f) and residual SD sigma."""
        r = self.residuals_from(gpred, sigma)
        return float(np.sum(r ** 2) + self.n_uncensored * (LOG_2PI + 2.0 * math.log(sigma)))

    def best_sigma(self, gpred, lo=1e-4, hi=1e2):
        """Maximum-likelihood residual SD for fixed predictions."""
        from scipy.optimize import minimize_scalar

        if self.n_uncensored == 0:
            raise FitError(f"patient '{self.pid}': every observation is censored; the residual SD cannot be "
                           f"estimated (give sigma)")
        e = (self.gy - gpred)[~self.censored]
        s_closed = math.sqrt(max(float(np.mean(e ** 2)), lo ** 2))
        if not self.censored.any():
            return min(s_closed, hi)
        res = minimize_scalar(lambda s: self.objective_from(gpred, math.exp(s)),
                              bounds=(math.log(lo), math.log(hi)), method="bounded",
                              options={"xatol": 1e-6})
        return float(math.exp(res.x))


# ---------------------------------------------------------------------------------------
# least squares with batched Jacobian and sigma alternation
# ---------------------------------------------------------------------------------------
def _least_squares(problem: PatientProblem, x0, sigma, fixed_mask=None, fixed_values=None, max_nfev=200):
    """Minimise -2 log L over the free log-parameters for a fixed sigma.

    ``fixed_mask`` (bool, k) holds some log-parameters at ``fixed_values`` (profiles).
    """
    from scipy.optimize import least_squares

    space = problem.space
    k = space.size
    free = np.ones(k, bool) if fixed_mask is None else ~np.asarray(fixed_mask, bool)
    xf = np.array(x0, float)
    if fixed_mask is not None:
        xf[~free] = fixed_values
    lo, hi = space.log_lower[free], space.log_upper[free]
    cache = {}
    prior = problem.prior

    def full(z):
        x = xf.copy()
        x[free] = z
        return x

    def fun(z):
        key = z.tobytes()
        if key not in cache:
            cache.clear()
            r = problem.residuals_from(problem.transform(problem.predict(full(z))[0]), sigma)
            if prior is not None:
                r = np.concatenate([r, ((full(z) - prior[0]) / prior[1])[free]])
            cache[key] = r
        return cache[key]

    def jac(z):
        n = free.sum()
        X = np.repeat(full(z)[None, :], 2 * n, axis=0)
        cols = np.flatnonzero(free)
        for j, c in enumerate(cols):
            X[2 * j, c] += FD_STEP
            X[2 * j + 1, c] -= FD_STEP
        g = problem.transform(problem.predict(X))
        R = problem.residuals_from(g, sigma)
        J = np.nan_to_num((R[0::2] - R[1::2]).T / (2 * FD_STEP))
        if prior is not None:
            J = np.vstack([J, np.diag(1.0 / prior[1][free])])
        return J

    if free.sum() == 0:
        r = fun(np.zeros(0))
        return full(np.zeros(0)), r, None
    z0 = np.clip(np.asarray(x0, float)[free], lo, hi)
    res = least_squares(fun, z0, jac=jac, bounds=(lo, hi), method="trf", x_scale=1.0,
                        ftol=1e-10, xtol=1e-10, gtol=1e-10, max_nfev=max_nfev)
    return full(res.x), res.fun, res


def _fit_once(problem, x0, sigma_fixed, fixed_mask=None, fixed_values=None, max_nfev=200, max_alternations=6):
    """One local fit: least squares for theta, alternating with the ML sigma if it is estimated."""
    sigma = sigma_fixed if sigma_fixed is not None else 0.5
    x = np.array(x0, float)
    res = None
    converged = True
    nfev = 0
    for _ in range(max_alternations):
        x, r, res = _least_squares(problem, x, sigma, fixed_mask, fixed_values, max_nfev=max_nfev)
        if res is not None:
            nfev += res.nfev
            converged = converged and res.status > 0
        if sigma_fixed is not None:
            break
        g = problem.transform(problem.predict(x)[0])
        new = problem.best_sigma(g)
        done = abs(math.log(new / sigma)) < 1e-4
        sigma = new
        if done:
            break
    else:
        converged = False
    g = problem.transform(problem.predict(x)[0])
    obj = problem.objective_from(g, sigma)
    if problem.prior is not None:
        obj += float(np.sum(((x - problem.prior[0]) / problem.prior[1]) ** 2))
    msg = res.message if res is not None else "no free parameters"
    return x, sigma, obj, bool(converged and np.isfinite(obj)), nfev, msg


# ---------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------
@dataclass
class Profile:
    """A profile likelihood of one parameter.

    ``values`` are parameter values (natural scale), ``objective`` the minimised ``-2 log L``
    at each; ``lower``/``upper`` the 95% limits (NaN when the profile does not rise by 3.84
    before the bound: then ``flat_lower``/``flat_upper`` is true).
    """

    name: str
    values: np.ndarray
    objective: np.ndarray
    minimum: float
    lower: float
    upper: float
    flat_lower: bool
    flat_upper: bool
    threshold: float = CHI2_1_95

    @property
    def identifiable(self) -> bool:
        return not (self.flat_lower or self.flat_upper)


@dataclass
class FitResult:
    """Result of :func:`fit_individual`.

    Attributes
    ----------
    estimates : dict
        Estimated parameters (natural scale).
    x : ndarray
        The same on the log scale.
    sigma : float
        Residual SD (log scale for log-scale observables); ``sigma_estimated`` says whether
        it was estimated (then it is part of the likelihood).
    objective : float
        ``-2 log L`` at the optimum, constants included.
    residuals : pandas.DataFrame
        One row per observation: ``id, time, observable, value, lloq, censored, pred, residual``
        (``residual`` = (g(value) - g(pred)) / sigma; for censored points the limit is used).
    starts : pandas.DataFrame
        One row per start: its log-parameters, the final objective, ``converged``, ``nfev``,
        ``at_best`` (within :data:`BEST_TOLERANCE` of the best), and the estimates.
    n_at_best : int
        How many starts reached the best optimum.
    covariance_log : ndarray or None
        Wald covariance of the log-parameters from the Jacobian (``(J^T J)^-1``).
    profiles : dict of str to Profile
    bootstrap : pandas.DataFrame or None
        One row per bootstrap replicate (estimates), when run.
    """

    model: object
    space: ParameterSpace
    patient: str
    estimates: dict
    x: np.ndarray
    sigma: float
    sigma_estimated: bool
    objective: float
    n_observations: int
    n_censored: int
    residuals: object
    starts: object
    n_at_best: int
    converged: bool
    covariance_log: object = None
    profiles: dict = field(default_factory=dict)
    bootstrap: object = None
    problem: PatientProblem | None = field(default=None, repr=False)
    data_path: str = ""
    data_sha256: str = ""

    @property
    def n_starts(self) -> int:
        return len(self.starts)

    def at_bound(self) -> np.ndarray:
        """Whether each estimate is within 0.001 (log scale) of a bound."""
        return (np.abs(self.x - self.space.log_lower) < 1e-3) | (np.abs(self.x - self.space.log_upper) < 1e-3)

    def table(self):
        """Estimates with 95% intervals: profile likelihood where computed, bootstrap, Wald."""
        import pandas as pd

        rows = []
        for j, name in enumerate(self.space.names):
            par = self.model.parameter(name)
            est = self.estimates[name]
            row = {"parameter": name, "estimate": est, "unit": par.unit, "initial": par.value,
                   "lower_bound": math.exp(self.space.log_lower[j]), "upper_bound": math.exp(self.space.log_upper[j])}
            row["at_bound"] = bool(self.at_bound()[j])
            if self.covariance_log is not None and np.isfinite(self.covariance_log[j, j]):
                se = math.sqrt(max(self.covariance_log[j, j], 0.0))
                row.update(se_log=se, wald_lower=est * math.exp(-min(1.959963984540054 * se, 700.0)),
                           wald_upper=est * math.exp(min(1.959963984540054 * se, 700.0)))
            if name in self.profiles:
                pr = self.profiles[name]
                row.update(lower=pr.lower, upper=pr.upper, ci_method="profile likelihood",
                           identifiable=pr.identifiable)
            elif self.bootstrap is not None and name in self.bootstrap:
                v = self.bootstrap[name].dropna().to_numpy()
                row.update(lower=float(np.quantile(v, 0.025)), upper=float(np.quantile(v, 0.975)),
                           ci_method="parametric bootstrap (percentile)")
            elif "wald_lower" in row:
                row.update(lower=row["wald_lower"], upper=row["wald_upper"], ci_method="Wald (log scale)")
            if self.bootstrap is not None and name in self.bootstrap:
                v = self.bootstrap[name].dropna().to_numpy()
                row.update(bootstrap_lower=float(np.quantile(v, 0.025)),
                           bootstrap_upper=float(np.quantile(v, 0.975)))
            rows.append(row)
        rows.append({"parameter": "sigma", "estimate": self.sigma, "unit": "log scale" ,
                     "ci_method": "estimated" if self.sigma_estimated else "fixed"})
        return pd.DataFrame(rows)


def _progress(progress, done, total, label):
    if progress is not None:
        progress(done, total, label)


# ---------------------------------------------------------------------------------------
# individual fits
# ---------------------------------------------------------------------------------------
def fit_individual(model, dataset, estimate, *, patient=None, sigma=None, starts=10, seed=0, bounds=None,
                   initial=None, include_initial=True, events=(), options=None, scale=None, n_threads=None,
                   profile=None, progress=None) -> FitResult:
    """Fit one patient's observations by maximum likelihood from several starts.

    Parameters
    ----------
    model : Model
    dataset : Dataset
        From :func:`carkinetics.scenario.data.load_data`.
    estimate : sequence of str or str
        Parameters to estimate (comma-separated string allowed); the others stay at the
        model's values (or at per-patient covariates that name them).
    patient : str, optional
        Which patient (default: the only one in ``dataset``).
    sigma : float, optional
        Known residual SD (log scale). Default: estimated by maximum likelihood.
    starts : int
        Number of starts: a seeded Latin hypercube in the log-bounds box (plus the
        initial values first when ``include_initial``).
    seed : int
    bounds : mapping of str to (lower, upper), optional
        Override the model file's bounds.
    initial : mapping of str to float, optional
        Initial values (default: the model's typical values).
    events : sequence of Event
        Events for every patient in addition to the dataset's doses.
    options : SolverOptions, optional
        Default :func:`default_options` (rtol 1e-8).
    scale : mapping of observable to {'log', 'linear'}, optional
        Residual scale per observable (default log).
    profile : sequence of str or True, optional
        Compute profile-likelihood intervals for these parameters (True: all).
    progress : callable(done, total, label), optional

    Returns
    -------
    FitResult
    """
    import pandas as pd

    ids = dataset.ids
    if patient is None:
        if len(ids) != 1:
            raise FitError(f"the dataset has {len(ids)} patients: name one (patient=...) or use fit_population")
        patient = ids[0]
    if patient not in ids:
        raise FitError(f"patient '{patient}' is not in the dataset{suggestion(str(patient), ids)}")
    base = model.parameter_vector(initial or {})
    space = ParameterSpace.build(model, estimate, bounds, base)
    if sigma is not None and not (sigma > 0):
        raise FitError(f"sigma must be positive, got {sigma}")
    problem = PatientProblem(model, dataset, patient, space, base=base, events=events, options=options,
                             scale=scale, n_threads=n_threads)
    v0 = base[space.index]
    x_init = space.clip(np.where(v0 > 0, np.log(np.where(v0 > 0, v0, 1.0)), space.log_lower))
    for name, v in dataset.parameter_overrides(model, patient).items():
        if name in space.names:
            x_init[space.names.index(name)] = math.log(v)
    n_lhs = starts - 1 if include_initial else starts
    X0 = space.latin_hypercube(max(n_lhs, 0), seed)
    if include_initial:
        X0 = np.vstack([x_init[None, :], X0])
    if X0.shape[0] == 0:
        raise FitError("starts must be >= 1")
    rows, best = [], None
    for s, x0 in enumerate(X0):
        x, sg, obj, conv, nfev, msg = _fit_once(problem, x0, sigma)
        rows.append({"start": s, **{f"start_{n}": math.exp(v) for n, v in zip(space.names, x0)},
                     "objective": obj, "converged": conv, "nfev": nfev, "sigma": sg, "message": msg,
                     **{n: math.exp(v) for n, v in zip(space.names, x)}})
        if np.isfinite(obj) and (best is None or obj < best[2]):
            best = (x, sg, obj, conv)
        _progress(progress, s + 1, len(X0), "starts")
    if best is None:
        raise FitError(f"patient '{patient}': every start failed (simulation failures or NaN objective)")
    starts_df = pd.DataFrame(rows)
    starts_df["at_best"] = (starts_df["objective"] - best[2]) <= BEST_TOLERANCE
    x, sg, obj, conv = best
    result = FitResult(model=model, space=space, patient=str(patient),
                       estimates={n: float(math.exp(v)) for n, v in zip(space.names, x)}, x=x, sigma=float(sg),
                       sigma_estimated=sigma is None, objective=float(obj),
                       n_observations=len(problem.y), n_censored=int(problem.censored.sum()),
                       residuals=_residual_table(problem, x, sg), starts=starts_df,
                       n_at_best=int(starts_df["at_best"].sum()), converged=bool(conv), problem=problem,
                       data_path=dataset.path, data_sha256=dataset.sha256)
    result.covariance_log = _wald_covariance(problem, x, sg)
    if profile:
        names = space.names if profile is True else profile
        profile_likelihood(result, names, progress=progress)
    return result


def _residual_table(problem, x, sigma):
    pred = problem.predict(x)[0]
    g = problem.transform(pred)
    df = problem.obs[["id", "time", "observable", "value", "lloq", "censored"]].copy()
    df["pred"] = pred
    df["residual"] = (problem.gy - g) / sigma
    return df


def _wald_covariance(problem, x, sigma):
    X = np.repeat(x[None, :], 2 * len(x), axis=0)
    for j in range(len(x)):
        X[2 * j, j] += FD_STEP
        X[2 * j + 1, j] -= FD_STEP
    R = problem.residuals_from(problem.transform(problem.predict(X)), sigma)
    J = np.nan_to_num((R[0::2] - R[1::2]).T / (2 * FD_STEP))
    try:
        return np.linalg.pinv(J.T @ J)
    except np.linalg.LinAlgError:
        return None


# ---------------------------------------------------------------------------------------
# profile likelihood
# ---------------------------------------------------------------------------------------
def profile_likelihood(result: FitResult, names=None, *, threshold=CHI2_1_95, max_points=30, progress=None):
    """Profile-likelihood 95% intervals for chosen parameters of an individual fit.

    For each parameter the log-value is fixed on a grid walking out from the estimate in
    both directions; at each point the other parameters (and sigma, when it was estimated)
    are re-optimised, warm-started from the neighbouring point. The interval is where
    ``-2 log L`` stays within ``threshold`` (3.84 = chi-square(1) 95%) of the minimum; the
    crossing is found by linear interpolation between grid points.

    Scaling: the objective is the full ``-2 log L``. With a known ``sigma`` it equals
    ``SSR / sigma^2 + const`` (SSR on the log scale), so the threshold 3.84 corresponds to
    an SSR rise of ``3.84 sigma^2``; with ``sigma`` estimated it is profiled out too (for
    uncensored data ``n log(SSR/n) + const``). A profile that stays below the threshold up
    to a bound is flat on that side: the limit is NaN and a
    :class:`NonIdentifiableWarning` is emitted.

    Returns
    -------
    dict of str to Profile (also stored in ``result.profiles``)
    """
    problem = result.problem
    space = result.space
    names = list(space.names if names is None else names)
    for n in names:
        if n not in space.names:
            raise FitError(f"cannot profile '{n}': it is not estimated (estimated: {', '.join(space.names)})")
    sigma_fixed = None if result.sigma_estimated else result.sigma
    out = {}
    se = np.sqrt(np.clip(np.diag(result.covariance_log), 0, None)) if result.covariance_log is not None \
        else np.full(space.size, 0.2)
    for pi, name in enumerate(names):
        j = space.names.index(name)
        mask = np.zeros(space.size, bool)
        mask[j] = True
        pts = {result.x[j]: result.objective}
        limits = {}
        flat = {}
        for direction in (-1, 1):
            step = float(np.clip(se[j] / 2 if np.isfinite(se[j]) else 0.2, 0.02, 0.5))
            x_prev = result.x.copy()
            v = result.x[j]
            obj_prev = result.objective
            bound = space.log_lower[j] if direction < 0 else space.log_upper[j]
            limits[direction] = math.nan
            flat[direction] = False
            for _ in range(max_points):
                v_new = v + direction * step
                at_bound = (v_new <= bound) if direction < 0 else (v_new >= bound)
                if at_bound:
                    v_new = bound
                x, sg, obj, conv, _, _ = _fit_once(problem, x_prev, sigma_fixed, mask, [v_new], max_nfev=100)
                pts[v_new] = obj
                delta = obj - result.objective
                if delta >= threshold:
                    limits[direction] = math.exp(_refine_crossing(problem, sigma_fixed, mask, x_prev, v, v_new,
                                                                  obj_prev, obj, result.objective + threshold, pts))
                    break
                if at_bound:
                    flat[direction] = True
                    break
                # adapt the step to the curvature: aim at ~1/3 of the threshold per step
                rise = obj - obj_prev
                if rise < 0.3:
                    step *= 2.0
                elif rise > 1.5:
                    step *= 0.5
                v, obj_prev, x_prev = v_new, obj, x
            else:
                flat[direction] = True
        vals = np.array(sorted(pts))
        prof = Profile(name=name, values=np.exp(vals), objective=np.array([pts[v] for v in vals]),
                       minimum=result.objective, lower=limits[-1], upper=limits[1],
                       flat_lower=flat[-1], flat_upper=flat[1], threshold=threshold)
        if not prof.identifiable:
            sides = " and ".join(s for s, f in (("below", flat[-1]), ("above", flat[1])) if f)
            warnings.warn(f"profile of '{name}' is flat {sides} the estimate (-2 log L rises by less than "
                          f"{threshold:.2f} up to the bound): '{name}' is not identifiable from these data",
                          NonIdentifiableWarning, stacklevel=2)
        out[name] = prof
        result.profiles[name] = prof
        _progress(progress, pi + 1, len(names), "profiles")
    return out


def _refine_crossing(problem, sigma_fixed, mask, x_start, v_in, v_out, obj_in, obj_out, level, pts, tol=1e-4):
    """Where the profile crosses ``level`` between ``v_in`` (below) and ``v_out`` (above).

    Regula falsi (Illinois variant) on the re-optimised profile, to ``tol`` in log-value.
    """
    a, fa, b, fb = v_in, obj_in - level, v_out, obj_out - level
    side = 0
    x_warm = x_start
    for _ in range(12):
        c = b - fb * (b - a) / (fb - fa) if fb != fa else 0.5 * (a + b)
        if not (min(a, b) < c < max(a, b)):
            c = 0.5 * (a + b)
        x, _, obj, _, _, _ = _fit_once(problem, x_warm, sigma_fixed, mask, [c], max_nfev=100)
        pts[c] = obj
        fc = obj - level
        if abs(b - a) < tol or abs(fc) < 1e-5:
            return c
        if fc < 0:
            a, fa, x_warm = c, fc, x
            if side == -1:
                fb /= 2
            side = -1
        else:
            b, fb = c, fc
            if side == 1:
                fa /= 2
            side = 1
        if abs(b - a) < tol:
            break
    return a - fa * (b - a) / (fb - fa) if fb != fa else 0.5 * (a + b)


# ---------------------------------------------------------------------------------------
# parametric bootstrap
# ---------------------------------------------------------------------------------------
def parametric_bootstrap(result: FitResult, n=100, seed=0, progress=None):
    """Refit ``n`` datasets simulated from the fitted model (same times, censoring rule).

    Each replicate draws ``g(y*) = g(f(theta_hat)) + sigma_hat * eps``; a replicate value below
    the observation's LLOQ is censored at that LLOQ. Fits start at the estimate (one start).
    Returns a DataFrame (one row per replicate: estimates, sigma, objective, converged),
    also stored in ``result.bootstrap``.
    """
    import pandas as pd

    problem = result.problem
    rng = np.random.default_rng(seed)
    g_hat = problem.transform(problem.predict(result.x)[0])
    saved = (problem.gy.copy(), problem.censored.copy(), problem.n_uncensored)
    lloq = problem.lloq
    glloq = np.where(problem.log_scale, np.log(np.where(lloq > 0, lloq, 1.0)), lloq)
    rows = []
    try:
        for b in range(n):
            gy = g_hat + result.sigma * rng.standard_normal(g_hat.shape)
            cens = np.isfinite(lloq) & (gy < glloq)
            problem.gy = np.where(cens, glloq, gy)
            problem.censored = cens
            problem.n_uncensored = int((~cens).sum())
            sigma_fixed = None if result.sigma_estimated else result.sigma
            try:
                x, sg, obj, conv, _, _ = _fit_once(problem, result.x, sigma_fixed)
                rows.append({"replicate": b, **{nm: math.exp(v) for nm, v in zip(result.space.names, x)},
                             "sigma": sg, "objective": obj, "converged": conv})
            except FitError:
                rows.append({"replicate": b, "converged": False})
            _progress(progress, b + 1, n, "bootstrap")
    finally:
        problem.gy, problem.censored, problem.n_uncensored = saved
    result.bootstrap = pd.DataFrame(rows)
    return result.bootstrap


# ---------------------------------------------------------------------------------------
# population: standard two-stage
# ---------------------------------------------------------------------------------------
@dataclass
class PopulationFit:
    """Result of :func:`fit_population` (standard two-stage method).

    Attributes
    ----------
    individual : dict of str to FitResult
    estimates : pandas.DataFrame
        One row per patient: the individual estimates, objective, sigma, n_at_best.
    typical : pandas.DataFrame
        One row per parameter: ``typical`` (geometric mean of the individual estimates),
        ``lower``/``upper`` (t-based 95% interval of the mean log-estimate), ``omega``
        (SD of the log-estimates: between-patient plus estimation variability), ``n``.
    """

    model: object
    space: ParameterSpace
    individual: dict
    estimates: object
    typical: object
    data_path: str = ""
    data_sha256: str = ""
    failed: list = field(default_factory=list)
    method: str = "standard two-stage"
    sigma: float = math.nan
    sts_typical: object = None
    history: object = None
    converged: bool = True

    @property
    def objective(self) -> float:
        return float(sum(r.objective for r in self.individual.values()))

    def table(self):
        return self.typical.copy()


def two_stage_summary(log_estimates, names, level=0.95):
    """Typical values from individual log-estimates (rows: patients): geometric mean and t-CI."""
    import pandas as pd
    from scipy import stats

    L = np.asarray(log_estimates, float)
    n = L.shape[0]
    rows = []
    tq = stats.t.ppf(0.5 + level / 2, n - 1) if n > 1 else math.nan
    for j, name in enumerate(names):
        v = L[:, j]
        m = float(v.mean())
        sd = float(v.std(ddof=1)) if n > 1 else math.nan
        half = tq * sd / math.sqrt(n) if n > 1 else math.nan
        rows.append({"parameter": name, "typical": math.exp(m), "lower": math.exp(m - half),
                     "upper": math.exp(m + half), "omega": sd, "n": n,
                     "ci_method": f"standard two-stage, t({n - 1}) on log estimates"})
    return pd.DataFrame(rows)


def fit_population(model, dataset, estimate, *, method="iterative-two-stage", sigma=None, starts=10, seed=0,
                   bounds=None, initial=None, events=(), options=None, scale=None, n_threads=None,
                   progress=None) -> PopulationFit:
    """Fit every patient, then summarise by the standard two-stage method.

    Each patient is fitted with :func:`fit_individual` (same starts, seeded per patient).
    The typical value of a parameter is the geometric mean of its individual estimates,
    with a 95% interval from the t distribution of the mean log-estimate. Known bias of the
    method: the SD of the log-estimates (``omega``) includes estimation error, so it
    overstates between-patient variability (and widens the interval) when individual data
    are sparse; individual estimates pushed to a bound by uninformative data bias the mean.
    Patients whose fit fails are listed in ``failed`` and left out.
    """
    import pandas as pd

    results, failed = {}, []
    space = ParameterSpace.build(model, estimate, bounds, model.parameter_vector(initial or {}))
    for i, pid in enumerate(dataset.ids):
        try:
            results[pid] = fit_individual(model, dataset, estimate, patient=pid, sigma=sigma, starts=starts,
                                          seed=(seed, i), bounds=bounds, initial=initial, events=events,
                                          options=options, scale=scale, n_threads=n_threads)
        except FitError as err:
            failed.append((pid, str(err)))
        _progress(progress, i + 1, len(dataset.ids), "patients")
    if not results:
        raise FitError("every individual fit failed:\n  " + "\n  ".join(f"{p}: {m}" for p, m in failed))
    est = pd.DataFrame([{"id": pid, **r.estimates, "sigma": r.sigma, "objective": r.objective,
                         "n_at_best": r.n_at_best, "converged": r.converged,
                         "at_bound": ",".join(n for n, a in zip(space.names, r.at_bound()) if a)}
                        for pid, r in results.items()])
    L = np.log(est[list(space.names)].to_numpy(float))
    typical = two_stage_summary(L, space.names)
    pop = PopulationFit(model, space, results, est, typical, dataset.path, dataset.sha256, failed,
                        method="standard two-stage")
    if method in ("iterative", "iterative-two-stage", "its"):
        _iterative_two_stage(pop, sigma, progress=progress)
    elif method not in ("standard", "two-stage", "sts"):
        raise FitError(f"method must be 'iterative-two-stage' or 'two-stage', got {method!r}")
    return pop


def _data_covariance(problem, x, sigma):
    """(J^T J)^-1 of the data residuals only (pseudo-inverse): the estimate's sampling covariance."""
    prior, problem.prior = problem.prior, None
    try:
        return _wald_covariance(problem, x, sigma)
    finally:
        problem.prior = prior


def _iterative_two_stage(pop, sigma_fixed, max_iterations=40, tol=1e-3, progress=None):
    """Refine a standard two-stage fit by the iterative two-stage (empirical Bayes) method.

    Each patient is refitted by MAP with the current population prior ``N(mu, diag(omega^2))``
    on the log-parameters and a pooled residual SD; then ``mu`` = mean of the MAP estimates,
    ``omega_j^2`` = mean of ``(x_ij - mu_j)^2 + C_ij`` (``C_i`` the posterior covariance), the
    EM-like update of Steimer et al. (1984) / Prevost. The 95% interval of each typical value
    uses ``SE_j^2 = 1 / sum_i 1 / (omega_j^2 + Gamma_ij)`` (``Gamma_i`` the data-only covariance
    of patient i's estimate), with t(n-1) quantiles.
    """
    import pandas as pd
    from scipy import stats
    from scipy.optimize import minimize_scalar

    space = pop.space
    pids = list(pop.individual)
    n = len(pids)
    probs = [pop.individual[p].problem for p in pids]
    X = np.array([pop.individual[p].x for p in pids])
    mu = X.mean(axis=0)
    omega = np.maximum(X.std(axis=0, ddof=1), 0.05)
    sig = sigma_fixed if sigma_fixed is not None else \
        float(np.sqrt(np.mean([r.sigma ** 2 for r in pop.individual.values()])))
    history = []
    converged = False
    for it in range(max_iterations):
        C = np.zeros((n, space.size))
        for i, pr in enumerate(probs):
            pr.prior = (mu, omega)
            x, _, _, _, _, _ = _fit_once(pr, X[i], sig, max_nfev=60)
            X[i] = x
        for i, pr in enumerate(probs):
            G = _data_covariance(pr, X[i], sig)
            info = np.linalg.pinv(G) if G is not None else np.zeros((space.size, space.size))
            C[i] = np.diag(np.linalg.inv(info + np.diag(1.0 / omega ** 2)))
        if sigma_fixed is None:
            gs = [pr.transform(pr.predict(X[i])[0]) for i, pr in enumerate(probs)]
            tot = lambda ls: sum(pr.objective_from(g, math.exp(ls)) for pr, g in zip(probs, gs))  # noqa: E731
            sig = float(math.exp(minimize_scalar(tot, bounds=(math.log(1e-3), math.log(10.0)), method="bounded",
                                                 options={"xatol": 1e-6}).x))
        mu_new = X.mean(axis=0)
        omega_new = np.sqrt(np.maximum(np.mean((X - mu_new) ** 2 + C, axis=0), 1e-6))
        change = max(np.max(np.abs(mu_new - mu)), np.max(np.abs(np.log(omega_new / omega))))
        mu, omega = mu_new, omega_new
        history.append({"iteration": it + 1, "sigma": sig, "change": change,
                        **{f"mu_{nm}": math.exp(v) for nm, v in zip(space.names, mu)},
                        **{f"omega_{nm}": v for nm, v in zip(space.names, omega)}})
        _progress(progress, it + 1, max_iterations, "iterative two-stage")
        if change < tol:
            converged = True
            break
    # data-only covariance at the final MAP estimates -> SE of mu
    gam = np.zeros((n, space.size))
    for i, pr in enumerate(probs):
        pr.prior = None
        G = _data_covariance(pr, X[i], sig)
        gam[i] = np.diag(G) if G is not None else np.inf
    gam = np.where(np.isfinite(gam) & (gam >= 0), gam, np.inf)
    se = np.sqrt(1.0 / np.sum(1.0 / (omega ** 2 + gam), axis=0))
    tq = stats.t.ppf(0.975, n - 1)
    pop.typical = pd.DataFrame({"parameter": list(space.names), "typical": np.exp(mu),
                                "lower": np.exp(mu - tq * se), "upper": np.exp(mu + tq * se), "omega": omega,
                                "se_log": se, "n": n,
                                "ci_method": f"iterative two-stage, t({n - 1}) with SE from omega and the "
                                             f"individual information"})
    pop.sts_typical = typical_sts = two_stage_summary(np.log(pop.estimates[list(space.names)].to_numpy(float)),
                                                      space.names)
    del typical_sts
    for i, p in enumerate(pids):
        pop.estimates.loc[pop.estimates["id"] == p, list(space.names)] = np.exp(X[i])
        # the individual results now hold the final (MAP) estimates, for residuals and plots
        r, pr = pop.individual[p], probs[i]
        r.x = X[i].copy()
        r.estimates = {nm: float(math.exp(v)) for nm, v in zip(space.names, X[i])}
        r.sigma, r.sigma_estimated = sig, sigma_fixed is None
        r.objective = pr.objective_from(pr.transform(pr.predict(X[i])[0]), sig)
        r.residuals = _residual_table(pr, X[i], sig)
        r.covariance_log = None
    pop.estimates["sigma"] = sig
    pop.estimates["objective"] = [pop.individual[p].objective for p in pids]
    pop.sigma = sig
    pop.method = "iterative two-stage"
    pop.history = pd.DataFrame(history)
    pop.converged = converged


# ---------------------------------------------------------------------------------------
# synthetic data
# ---------------------------------------------------------------------------------------
def synthetic_data(model, parameters, times, *, observable=None, sigma=0.5, lloq=None, seed=0, events=(),
                   options=None, ids=None):
    """Simulated observations in the dataset format (for tests, power and recovery studies).

    Parameters
    ----------
    parameters : array (N, n_parameters)
        One parameter vector per patient.
    times : array_like
        Sampling times (days), the same for every patient.
    observable : str, optional
        Output observed (default: the model's first output).
    sigma : float
        Residual SD on the log scale: ``y = f * exp(sigma * eps)``.
    lloq : float, optional
        Lower limit of quantification: ``lloq`` column filled, values below it kept (censored).
    seed : int

    Returns
    -------
    pandas.DataFrame
        Columns ``id, time, observable, value[, lloq]`` (one row per observation).
    """
    import pandas as pd

    from carkinetics.simulation.simulate import simulate_batch

    observable = observable or model.output_names[0]
    P = np.atleast_2d(np.asarray(parameters, float))
    times = np.asarray(times, float)
    events = list(events)
    batch = simulate_batch(model, events, times, P, options=options or default_options(),
                           t0=min([0.0] + [e.time for e in events]),
                           save_states=False, save_outputs=[observable])
    f = batch.output(observable)
    rng = np.random.default_rng(seed)
    y = f * np.exp(sigma * rng.standard_normal(f.shape))
    ids = ids or [f"P{i + 1:03d}" for i in range(P.shape[0])]
    df = pd.DataFrame({"id": np.repeat(ids, len(times)), "time": np.tile(times, P.shape[0]),
                       "observable": observable, "value": y.reshape(-1)})
    if lloq is not None:
        df["lloq"] = float(lloq)
    return df


# ---------------------------------------------------------------------------------------
# fits to reported summary numbers
# ---------------------------------------------------------------------------------------
STATISTICS = ("median", "mean", "geometric_mean", "geometric_cv_percent", "proportion", "typical_value")
#: Largest target timepoint and cohort horizon (days): 100 years. The cohort of a target fit is
#: simulated on a daily grid to the last timepoint, for every patient of every candidate.
MAX_TARGET_DAY = 36_500.0
TARGET_REQUIRED = ("quantity", "statistic", "value")
SOFT_WIDTH = 0.1  # width (log units, or output units on the linear scale) of smoothed indicators


@dataclass
class Target:
    """One reported number to match (a row of a target table)."""

    target_id: str
    quantity: str
    statistic: str
    value: float
    lower: float = math.nan
    upper: float = math.nan
    ci_method: str = "none"
    n: float = math.nan
    timepoint: float = math.nan
    output: str = ""
    threshold: float = math.nan
    direction: str = "above"
    se: float = math.nan
    weight: float = 1.0
    line: int = 0

    @property
    def log_scale(self) -> bool:
        return self.statistic not in ("proportion",) and self.value > 0

    def standard_error(self):
        """(se on the fitting scale, how it was obtained)."""
        h = (lambda v: math.log(v)) if self.log_scale else (lambda v: v)
        if math.isfinite(self.se) and self.se > 0:
            return self.se, "given"
        ok = math.isfinite(self.lower) and math.isfinite(self.upper) and self.upper > self.lower
        if ok and self.log_scale and self.lower <= 0:
            ok = False
        if ok and self.ci_method in ("reported", "wilson"):
            return (h(self.upper) - h(self.lower)) / (2 * 1.959963984540054), f"95% interval ({self.ci_method})"
        if ok and self.ci_method == "range" and self.statistic == "median" and math.isfinite(self.n) and self.n > 1:
            # range/4 approximates the SD of log values; SE of a median = 1.2533 SD / sqrt(n)
            return (1.2533 * (h(self.upper) - h(self.lower)) / 4 / math.sqrt(self.n),
                    "range/4 as SD, SE of the median")
        if self.statistic == "proportion" and math.isfinite(self.n) and self.n > 0:
            p = min(max(self.value, 0.0), 1.0)
            return math.sqrt((p * (1 - p) + 1 / (4 * self.n)) / self.n), "binomial with n"
        return (0.1 if self.log_scale else 0.05), "default (no interval)"


def _builtin_quantities():
    def peak(ctx, tg):
        return ctx.peak()[0]

    def tmax(ctx, tg):
        return ctx.peak()[1]

    def auc(end):
        def f(ctx, tg):
            return ctx.auc(0.0, end)
        return f

    def level(ctx, tg):
        return ctx.at(tg.output or ctx.kinetic, tg.timepoint)

    def indicator(ctx, tg):
        return ctx.indicator(tg.output or ctx.kinetic, tg.timepoint, tg.threshold, tg.direction)

    return {"car_peak": peak, "car_cmax": peak, "car_tmax": tmax, "car_auc_0_28": auc(28.0),
            "car_level": level, "car_persistence": indicator, "threshold": indicator}


QUANTITIES = _builtin_quantities()


class CohortOutputs:
    """Simulated outputs of S cohorts of n patients, with endpoint helpers used by quantities.

    ``outputs[name]`` has shape (S, n, T) at ``times``. ``typical[name]`` (S, T) holds the
    typical patient of each parameter set (all random effects zero), when simulated.
    """

    def __init__(self, times, outputs, kinetic, typical=None, soft_width=SOFT_WIDTH):
        self.times = np.asarray(times, float)
        self.outputs = outputs
        self.kinetic = kinetic
        self.typical = typical or {}
        self.soft_width = soft_width
        self._peak = None

    def _y(self, name):
        if name not in self.outputs:
            raise FitError(f"output '{name}' was not simulated (simulated: {', '.join(self.outputs)})")
        return self.outputs[name]

    def peak(self):
        """(Cmax, Tmax) per patient, refined by a parabola through log-values around the grid maximum."""
        if self._peak is None:
            y = self._y(self.kinetic)
            ly = np.log(np.maximum(y, 1e-300))
            T = len(self.times)
            j = np.clip(np.argmax(ly, axis=-1), 1, T - 2)
            take = lambda a, k: np.take_along_axis(a, k[..., None], axis=-1)[..., 0]  # noqa: E731
            y0, y1, y2 = take(ly, j - 1), take(ly, j), take(ly, j + 1)
            t0, t1, t2 = self.times[j - 1], self.times[j], self.times[j + 1]
            den = (t0 - t1) * (t0 - t2) * (t1 - t2)
            a = (t2 * (y1 - y0) + t1 * (y0 - y2) + t0 * (y2 - y1)) / den
            b = (t2 ** 2 * (y0 - y1) + t1 ** 2 * (y2 - y0) + t0 ** 2 * (y1 - y2)) / den
            with np.errstate(divide="ignore", invalid="ignore"):
                tv = np.where(a < 0, -b / (2 * a), t1)
            tv = np.clip(tv, t0, t2)
            c = y1 - a * t1 ** 2 - b * t1
            lv = np.maximum(a * tv ** 2 + b * tv + c, y1)
            self._peak = (np.exp(lv), tv)
        return self._peak

    def auc(self, start, end):
        """AUC from ``start`` to ``end`` (linear-up/log-down trapezoids on the output grid)."""
        y = self._y(self.kinetic)
        sel = (self.times >= start) & (self.times <= end)
        t, v = self.times[sel], y[..., sel]
        dt = np.diff(t)
        a, b = v[..., :-1], v[..., 1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            logd = (a - b) * dt / np.log(np.maximum(a, 1e-300) / np.maximum(b, 1e-300))
        down = (b < a) & (b > 0)
        return np.sum(np.where(down, logd, (a + b) * dt / 2), axis=-1)

    def at(self, name, t):
        y = self._y(name)
        k = np.searchsorted(self.times, t)
        if k >= len(self.times) or not np.isclose(self.times[k], t):
            raise FitError(f"time {t} is not on the simulation grid")
        return y[..., k]

    def indicator(self, name, t, threshold, direction="above"):
        """Smoothed indicator of ``output > threshold`` (or below) at ``t``: a logistic in log-ratio."""
        from scipy.special import expit

        v = self.at(name, t)
        z = (np.log(np.maximum(v, 1e-300)) - math.log(threshold)) / self.soft_width
        return expit(z if direction == "above" else -z)


def load_target_table(path, *, quantities=None, select=None, frame=None):
    """Read a table of reported numbers to fit (the ``targets.csv`` layout or a subset).

    Required columns: ``quantity``, ``statistic``, ``value``. Optional: ``target_id``,
    ``lower``, ``upper``, ``ci_method``, ``n``, ``timepoint_days``, ``output`` (model output
    the quantity is computed from), ``threshold`` and ``direction`` (for proportions of
    patients above/below a level), ``se`` (standard error on the fitting scale), ``weight``.
    ``select`` keeps only the listed ``target_id`` s. Every problem is reported at once.
    """
    from carkinetics.io.atomic import file_sha256

    quantities = {**QUANTITIES, **(quantities or {})}
    sha = ""
    if frame is None:
        from carkinetics.scenario.data import read_csv_table

        frame, _ = read_csv_table(path, DataError, "file")
        sha = file_sha256(path)  # a regular file of bounded size: checked by read_csv_table
    else:
        columns = [str(c) for c in frame.columns]
        dups = sorted({c for c in columns if columns.count(c) > 1})
        if dups:
            raise DataError(str(path), [f"header: duplicate column names {dups}"])
    errs = ProblemCollector(str(path), DataError)
    cols = {c.strip().lower(): c for c in frame.columns}
    for c in TARGET_REQUIRED:
        if c not in cols:
            errs.add(f"column '{c}'", f"missing required column (columns found: {', '.join(frame.columns)})")
    errs.raise_if_any()
    out = []
    found = set()

    def num(row, name, line, default=math.nan):
        if name not in cols:
            return default
        s = str(row[cols[name]]).strip()
        if s in ("", "NA", "nan", "."):
            return default
        try:
            v = float(s)
        except ValueError:
            errs.add(f"line {line}", f"{name} {s!r} is not a number")
            return default
        if not math.isfinite(v):
            errs.add(f"line {line}", f"{name} {s!r} is not a finite number")
            return default
        return v

    for i, row in frame.iterrows():
        line = int(i) + 2
        tid = str(row[cols["target_id"]]).strip() if "target_id" in cols else f"row{line}"
        if select is not None and tid not in select:
            continue
        found.add(tid)
        q = str(row[cols["quantity"]]).strip()
        st = str(row[cols["statistic"]]).strip()
        n_before = len(errs.problems)
        if q not in quantities:
            errs.add(f"line {line}", f"quantity '{q}' has no simulator definition{suggestion(q, quantities)} "
                                     f"(known: {', '.join(sorted(quantities))})")
        if st not in STATISTICS:
            errs.add(f"line {line}", f"statistic '{st}' cannot be fitted{suggestion(st, STATISTICS)} "
                                     f"(fittable: {', '.join(STATISTICS)})")
        value = num(row, "value", line)
        if not math.isfinite(value):
            errs.add(f"line {line}", "value is missing")
        tp = num(row, "timepoint_days", line)
        thr = num(row, "threshold", line)
        direction = str(row[cols["direction"]]).strip() if "direction" in cols else ""
        direction = direction or "above"
        if direction not in ("above", "below"):
            errs.add(f"line {line}", f"direction must be 'above' or 'below', got {direction!r}")
        if quantities.get(q) in (QUANTITIES["car_persistence"],) and not (math.isfinite(tp) and math.isfinite(thr)):
            errs.add(f"line {line}", f"quantity '{q}' needs timepoint_days and threshold")
        if q == "car_level" and not math.isfinite(tp):
            errs.add(f"line {line}", "quantity 'car_level' needs timepoint_days")
        if st == "proportion" and math.isfinite(value) and not (0 <= value <= 1):
            errs.add(f"line {line}", f"a proportion must be in [0, 1], got {value}")
        if math.isfinite(tp) and not 0 <= tp <= MAX_TARGET_DAY:
            errs.add(f"line {line}", f"timepoint_days {tp:g} must be in [0, {MAX_TARGET_DAY:g}] (days after infusion)")
        for col_name, low in (("weight", 0.0), ("se", 0.0), ("n", 0.0)):
            v = num(row, col_name, line)
            if math.isfinite(v) and v < low:
                errs.add(f"line {line}", f"{col_name} must be >= {low:g}, got {v:g}")
        if len(errs.problems) > n_before:
            continue
        out.append(Target(target_id=tid, quantity=q, statistic=st, value=value, lower=num(row, "lower", line),
                          upper=num(row, "upper", line),
                          ci_method=str(row[cols["ci_method"]]).strip() if "ci_method" in cols else "none",
                          n=num(row, "n", line), timepoint=tp,
                          output=str(row[cols["output"]]).strip() if "output" in cols else "",
                          threshold=thr, direction=direction, se=num(row, "se", line),
                          weight=num(row, "weight", line, 1.0), line=line))
    if select is not None:
        for tid in select:
            if tid not in found:
                errs.add("target_id", f"'{tid}' is not in the table{suggestion(tid, list(found))}")
    if not out and not errs:
        errs.add("", "no targets to fit")
    errs.raise_if_any()
    return out, sha


class CRNCohort:
    """A virtual cohort with common random numbers, built on :func:`simulate_batch`.

    The standard normal draws ``z`` (n x P) are drawn once from ``seed``; for a typical
    parameter vector ``theta`` patient i has ``theta * exp(iiv_sd * z_i)``. Calling the
    cohort with S typical vectors (S x P) simulates all S x n patients (plus S typical
    patients) in one batch and returns :class:`CohortOutputs`.

    Parameters
    ----------
    model : Model
    n : int
        Patients per cohort.
    seed : int
    events : sequence of Event or Schedule
        The protocol (the same for every patient).
    times : array_like, optional
        Output grid (default: every 0.1 day to day 35, then daily to ``horizon``).
    iiv : mapping of parameter to log-SD, optional
        Overrides of the model's ``iiv_log_sd``.
    kinetic : str, optional
        The output used by the kinetic quantities (default: the first output).
    """

    def __init__(self, model, n=200, seed=0, *, events=(), times=None, horizon=60.0, iiv=None, options=None,
                 kinetic=None, outputs=None, soft_width=SOFT_WIDTH, extra_times=()):
        self.model = model
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 2 <= n <= 10_000_000:
            raise FitError(f"a cohort needs a whole number of patients in [2, 10,000,000], got {n!r}")
        self.n = int(n)
        if not (isinstance(horizon, (int, float, np.integer, np.floating)) and not isinstance(horizon, bool)
                and math.isfinite(horizon) and 0 < horizon <= MAX_TARGET_DAY):
            raise FitError(f"the cohort horizon must be a number of days in (0, {MAX_TARGET_DAY:g}], got {horizon!r}")
        sd = np.array([p.iiv_log_sd for p in model.parameters], float)
        for name, v in (iiv or {}).items():
            sd[model.parameter_index(name)] = float(v)
        self.iiv_sd = sd
        self.z = np.random.default_rng(seed).standard_normal((self.n, model.n_parameters))
        from carkinetics.simulation.schedule import as_schedule

        self.events = as_schedule(events)
        self.t0 = min([0.0] + [e.time for e in self.events])
        if times is None:
            times = np.concatenate([np.round(np.arange(0, 35.0001, 0.1), 10),
                                    np.arange(36.0, max(horizon, 36.0) + 1.0, 1.0), np.asarray(extra_times, float)])
        self.times = np.unique(np.asarray(times, float))
        self.options = options or SolverOptions(rtol=1e-6, raise_on_failure=False)
        self.kinetic = kinetic or model.output_names[0]
        self.output_names = list(outputs or model.output_names)
        self.soft_width = soft_width

    def parameters(self, typical):
        typical = np.atleast_2d(typical)
        S = typical.shape[0]
        pat = typical[:, None, :] * np.exp(self.iiv_sd * self.z)[None, :, :]
        allp = np.concatenate([pat, typical[:, None, :]], axis=1)  # last: the typical patient
        return allp.reshape(S * (self.n + 1), -1)

    def __call__(self, typical) -> CohortOutputs:
        from carkinetics.simulation.simulate import simulate_batch

        typical = np.atleast_2d(typical)
        S = typical.shape[0]
        P = self.parameters(typical)
        batch = simulate_batch(self.model, self.events, self.times, P, options=self.options, t0=self.t0,
                               save_states=False, save_outputs=self.output_names)
        outs = {}
        typ = {}
        for name in self.output_names:
            y = batch.output(name).reshape(S, self.n + 1, -1).copy()
            bad = (batch.status != 0).reshape(S, self.n + 1)
            y[bad] = np.nan
            outs[name] = y[:, :-1]
            typ[name] = y[:, -1]
        return CohortOutputs(self.times, outs, self.kinetic, typ, self.soft_width)


def _statistic(values, statistic, typical_values=None):
    """Statistic over patients (axis 1) of per-patient values (S, n); NaN-aware."""
    v = np.asarray(values, float)
    if statistic == "median":
        return np.nanmedian(v, axis=1)
    if statistic == "mean":
        return np.nanmean(v, axis=1)
    if statistic == "proportion":
        return np.nanmean(v, axis=1)
    lv = np.log(np.maximum(v, 1e-300))
    if statistic == "geometric_mean":
        return np.exp(np.nanmean(lv, axis=1))
    if statistic == "geometric_cv_percent":
        return 100 * np.sqrt(np.expm1(np.nanvar(lv, axis=1, ddof=1)))
    if statistic == "typical_value":
        return typical_values
    raise FitError(f"statistic '{statistic}' is not supported")


def simulated_statistics(cohort_outputs, targets, quantities=None):
    """Simulated value of each target (array T x S) for cohort outputs of S parameter sets."""
    quantities = {**QUANTITIES, **(quantities or {})}
    rows = []
    for tg in targets:
        fn = quantities[tg.quantity]
        per = fn(cohort_outputs, tg)
        typ = None
        if tg.statistic == "typical_value":
            if not hasattr(cohort_outputs, "typical"):
                raise FitError(f"target '{tg.target_id}': this cohort simulator has no typical patient "
                               f"(statistic typical_value needs the default CRNCohort)")
            typ_ctx = CohortOutputs(cohort_outputs.times, {k: v[:, None, :] for k, v in cohort_outputs.typical.items()},
                                    cohort_outputs.kinetic, soft_width=cohort_outputs.soft_width)
            typ = np.asarray(fn(typ_ctx, tg))[:, 0]
        rows.append(_statistic(per, tg.statistic, typ))
    return np.array(rows)


@dataclass
class TargetFitResult:
    """Result of :func:`fit_targets`.

    ``comparison`` has one row per target: reported value, interval, standard error used,
    simulated value at the optimum and its contribution to the objective. ``starts`` has
    one row per optimiser run (seed, objective, estimates); ``n_at_best`` counts runs
    within :data:`BEST_TOLERANCE` of the best objective.
    """

    model: object
    space: ParameterSpace
    estimates: dict
    x: np.ndarray
    objective: float
    comparison: object
    starts: object
    n_at_best: int
    converged: bool
    cohort_size: int
    seed: int
    method: str
    targets_path: str = ""
    targets_sha256: str = ""

    def table(self):
        import pandas as pd

        rows = []
        for j, name in enumerate(self.space.names):
            par = self.model.parameter(name)
            vals = self.starts[name].to_numpy(float)[self.starts["at_best"].to_numpy(bool)]
            rows.append({"parameter": name, "estimate": self.estimates[name], "unit": par.unit,
                         "initial": par.value, "lower_bound": math.exp(self.space.log_lower[j]),
                         "upper_bound": math.exp(self.space.log_upper[j]),
                         "spread_at_best": float(np.max(vals) / np.min(vals) - 1) if len(vals) else math.nan})
        return pd.DataFrame(rows)


def target_distance(simulated, observed, se, log_scale, weight):
    """Distance of simulated statistics (K x S: K targets, S candidates) to reported ones.

    ``sum_k w_k ((h(sim_k) - h(obs_k)) / se_k)^2`` with ``h = log`` where ``log_scale`` and the
    identity elsewhere; ``observed`` is already on that scale. A statistic that could not be
    computed (NaN, e.g. no patient in its subgroup) counts as 1000 standard errors away.
    """
    st = np.asarray(simulated, float)
    logs = np.asarray(log_scale, bool)[:, None]
    h = np.where(logs, np.log(np.maximum(np.where(np.isfinite(st), st, 1e-300), 1e-300)), st)
    d = (h - np.asarray(observed, float)[:, None]) / np.asarray(se, float)[:, None]
    d = np.where(np.isfinite(d), d, 1e3)
    return np.sum(np.asarray(weight, float)[:, None] * d ** 2, axis=0)


def _initial_simplex(x0, lo, hi, fraction):
    """Nelder-Mead simplex: ``x0`` and one vertex per coordinate moved by ``fraction`` of its range,
    towards the farther bound (so every vertex lies inside the box)."""
    k = len(x0)
    step = fraction * (hi - lo)
    sim = np.repeat(x0[None, :], k + 1, axis=0)
    for i in range(k):
        sim[i + 1, i] += step[i] if hi[i] - x0[i] >= x0[i] - lo[i] else -step[i]
    return sim


def minimise_distance(objective, lo, hi, x_init, names, *, method="differential_evolution", starts=3, seed=0,
                      popsize=10, maxiter=200, tol=1e-7, polish_maxiter=4000, progress=None, counter=None):
    """Minimise a distance over a box in log-parameter space: the optimiser of the target fits.

    ``objective(X)`` takes candidates in rows (S x k, log scale) and returns S distances.
    ``method="differential_evolution"`` runs ``scipy.optimize.differential_evolution``
    (vectorised: a generation is one call, Sobol initialisation) ``starts`` times with seeds
    ``seed+1, seed+2, ...``, each polished by bounded Nelder-Mead; ``"nelder-mead"`` runs
    bounded Nelder-Mead from ``x_init`` and then from seeded Latin-hypercube points
    (``polish_maxiter`` iterations at most per Nelder-Mead run).

    Returns
    -------
    (starts, x, n_at_best) : (pandas.DataFrame, ndarray, int)
        One row per optimiser run (run, seed, objective, converged, n_evaluations, start and
        final values by name, ``at_best``); the best point; how many runs reached the best
        objective within :data:`BEST_TOLERANCE`.
    """
    import pandas as pd
    from scipy.optimize import differential_evolution, minimize

    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    counter = counter if counter is not None else [0]
    k = len(lo)

    def one(x):
        return float(objective(np.asarray(x, float)[None, :])[0])

    rows = []
    for s in range(starts):
        counter[0] = 0
        if method == "differential_evolution":
            res = differential_evolution(lambda x: objective(x.T) if x.ndim == 2 else objective(x[None, :])[0],
                                         list(zip(lo, hi)), seed=seed + 1 + s, popsize=popsize, maxiter=maxiter,
                                         tol=tol, atol=1e-6, polish=False, vectorized=True, updating="deferred",
                                         init="sobol")
            x0, start = res.x, None
        elif method == "nelder-mead":
            if s == 0:
                start = np.clip(np.asarray(x_init, float), lo, hi)
            else:
                from scipy.stats import qmc

                u = qmc.LatinHypercube(d=k, seed=np.random.default_rng(seed)).random(starts)[s]
                start = lo + u * (hi - lo)
            x0 = start
        else:
            raise FitError(f"method must be 'differential_evolution' or 'nelder-mead', got {method!r}")
        options = {"xatol": 1e-6, "fatol": 1e-8, "maxiter": polish_maxiter, "adaptive": k > 3}
        if method == "nelder-mead":
            # a simplex spanning a tenth of each log-range: scipy's default (5 % of each
            # coordinate) is almost nothing for log-values near 0 (parameters near 1)
            options["initial_simplex"] = _initial_simplex(np.asarray(x0, float), lo, hi, 0.1)
        pol = minimize(one, x0, method="Nelder-Mead", bounds=list(zip(lo, hi)), options=options)
        f0 = one(x0)
        x = pol.x if pol.fun <= f0 else np.asarray(x0, float)
        obj = min(float(pol.fun), f0)
        conv = bool(pol.success and (method != "differential_evolution" or res.success))
        rows.append({"run": s, "seed": seed + 1 + s if method == "differential_evolution" else seed,
                     "objective": obj, "converged": conv, "n_evaluations": counter[0],
                     **({f"start_{nm}": math.exp(v) for nm, v in zip(names, start)} if start is not None else {}),
                     **{nm: math.exp(v) for nm, v in zip(names, x)}, "_x": x})
        _progress(progress, s + 1, starts, "optimiser runs")
    table = pd.DataFrame(rows)
    b = int(table["objective"].idxmin())
    table["at_best"] = table["objective"] - table.loc[b, "objective"] <= BEST_TOLERANCE
    x = np.asarray(table.loc[b, "_x"], float)
    return table.drop(columns="_x"), x, int(table["at_best"].sum())


def fit_targets(model, targets, estimate, *, cohort=None, n=200, seed=0, events=(), bounds=None, initial=None,
                quantities=None, starts=3, method="differential_evolution", popsize=10, maxiter=200, tol=1e-7,
                progress=None, targets_path="", targets_sha256="") -> TargetFitResult:
    """Fit typical parameter values so a virtual cohort reproduces reported statistics.

    The distance is ``sum_k w_k ((h(sim_k) - h(obs_k)) / se_k)^2`` with ``h = log`` for
    positive statistics (medians, means, geometric means) and the identity for proportions;
    ``se_k`` comes from the reported interval (:meth:`Target.standard_error`). The cohort
    uses common random numbers (the same draws at every step), proportions use smoothed
    indicators, and the optimiser is ``scipy.optimize.differential_evolution`` (vectorised:
    a whole generation is one simulation batch), run ``starts`` times with seeds
    ``seed+1, seed+2, ...`` and polished by bounded Nelder-Mead; ``method="nelder-mead"``
    runs Nelder-Mead from a seeded Latin hypercube of starts instead.

    Parameters
    ----------
    targets : list of Target
        From :func:`load_target_table`.
    cohort : callable, optional
        ``cohort(typical (S x P)) -> CohortOutputs``; default a :class:`CRNCohort` of ``n``
        patients with ``seed`` and ``events`` (any cohort runner can be plugged in).
    """
    import pandas as pd

    base = model.parameter_vector(initial or {})
    space = ParameterSpace.build(model, estimate, bounds, base)
    if cohort is None:
        extra = [t.timepoint for t in targets if math.isfinite(t.timepoint)]
        horizon = max([60.0] + extra)
        cohort = CRNCohort(model, n, seed, events=events, horizon=horizon, extra_times=extra)
    obs, se, logs, w, how = [], [], [], [], []
    for tg in targets:
        s, h = tg.standard_error()
        obs.append(math.log(tg.value) if tg.log_scale else tg.value)
        se.append(s)
        logs.append(tg.log_scale)
        w.append(tg.weight)
        how.append(h)
    obs, se, logs, w = map(np.asarray, (obs, se, logs, w))
    n_eval = [0]

    def sims(X):
        X = np.atleast_2d(X)
        P = np.repeat(base[None, :], X.shape[0], axis=0)
        P[:, space.index] = np.exp(X)
        return simulated_statistics(cohort(P), targets, quantities)  # (K, S)

    def objective(X):
        X = np.atleast_2d(X)
        n_eval[0] += X.shape[0]
        return target_distance(sims(X), obs, se, logs, w)

    lo, hi = space.log_lower, space.log_upper
    x_init = space.clip(np.log(np.maximum(base[space.index], np.exp(lo))))
    starts_df, x, n_best = minimise_distance(objective, lo, hi, x_init, space.names, method=method, starts=starts,
                                             seed=seed, popsize=popsize, maxiter=maxiter, tol=tol,
                                             progress=progress, counter=n_eval)
    best = starts_df.loc[int(starts_df["objective"].idxmin())]
    st = sims(x[None, :])[:, 0]
    comp = pd.DataFrame({"target_id": [t.target_id for t in targets], "quantity": [t.quantity for t in targets],
                         "statistic": [t.statistic for t in targets], "reported": [t.value for t in targets],
                         "lower": [t.lower for t in targets], "upper": [t.upper for t in targets],
                         "simulated": st, "scale": np.where(logs, "log", "linear"), "se": se, "se_source": how})
    hs = np.where(logs, np.log(np.maximum(st, 1e-300)), st)
    comp["contribution"] = w * ((hs - obs) / se) ** 2
    return TargetFitResult(model=model, space=space,
                           estimates={nm: float(math.exp(v)) for nm, v in zip(space.names, x)},
                           x=x, objective=float(best["objective"]), comparison=comp,
                           starts=starts_df, n_at_best=n_best,
                           converged=bool(best["converged"]), cohort_size=getattr(cohort, "n", 0), seed=seed,
                           method=method, targets_path=str(targets_path), targets_sha256=targets_sha256)


# ---------------------------------------------------------------------------------------
# outputs: calibrated model file, tables, plots
# ---------------------------------------------------------------------------------------
def _toml_key(k):
    import re

    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_value(k)


def _toml_value(v):
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps_toml(data: Mapping, _prefix=()) -> str:
    """Serialise nested tables of strings, numbers, booleans and lists as TOML."""
    lines = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    if _prefix and (scalars or not tables):
        lines.append("[" + ".".join(_toml_key(p) for p in _prefix) + "]")
    for k, v in scalars.items():
        lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    if scalars or (_prefix and not tables):
        lines.append("")
    for k, v in tables.items():
        lines.append(dumps_toml(v, _prefix + (k,)))
    return "\n".join(lines)


def fit_provenance(result, command=""):
    """Provenance of a fit: data/target file and its hash, objective, date, software versions."""
    from carkinetics.io.atomic import provenance

    kind = {"FitResult": "individual fit", "PopulationFit": getattr(result, "method", "population fit"),
            "TargetFitResult": "fit to reported targets"}[type(result).__name__]
    from carkinetics.io.atomic import file_sha256

    info = {"kind": kind, "model": str(result.model.path), "model_sha256": file_sha256(result.model.path),
            "estimated": list(result.space.names), "objective": float(result.objective),
            "objective_definition": ("-2 log-likelihood (constants included)" if kind != "fit to reported targets"
                                     else "weighted sum of squared standardised distances")}
    if hasattr(result, "targets_path"):
        info.update(data=result.targets_path, data_sha256=result.targets_sha256, cohort_size=result.cohort_size,
                    cohort_seed=result.seed)
    else:
        info.update(data=result.data_path, data_sha256=result.data_sha256)
    if command:
        info["command"] = command
    return provenance(info)


def calibrated_model_text(model, estimates: Mapping, prov: Mapping) -> str:
    """The model file with fitted values (status ``fitted``) and provenance in ``[model].notes``."""
    import tomllib

    from pathlib import Path

    # (Model.source_text is not the file text in this engine version: read the file)
    data = tomllib.loads(Path(model.path).read_text(encoding="utf-8"))
    date = prov.get("created", "")
    for name, value in estimates.items():
        par = data["parameters"][name]
        old = par.get("value")
        par["value"] = float(value)
        par["status"] = "fitted"
        par["source"] = (f"fitted by carkinetics {prov.get('carkinetics', '')} on {date} ({prov.get('kind', '')}, "
                         f"data {prov.get('data', '')}); model-file value was {old}: {par.get('source', '')}")
    meta = data.setdefault("model", {})
    note = (f"Calibrated by carkinetics {prov.get('carkinetics', '')} on {date}: {prov.get('kind', '')} of "
            f"{', '.join(estimates)} to {prov.get('data', '')} (sha256 {prov.get('data_sha256', '')}); "
            f"objective {prov.get('objective', float('nan')):.6g}.")
    meta["notes"] = (meta.get("notes", "") + "\n" + note).strip()
    header = ["# Calibrated model written by `carkinetics fit`.", "# Provenance:"]
    header += [f"#   {k}: {v}" for k, v in prov.items()]
    return "\n".join(header) + "\n\n" + dumps_toml(data)


def calibrated_parameters_text(model, estimates: Mapping, prov: Mapping) -> str:
    """A ``[parameters]`` table for a scenario file, with provenance as comments."""
    lines = ["# Calibrated parameter values: paste into a scenario's [parameters] table, or name the",
             "# calibrated model file next to this one as the scenario's model.", "# Provenance:"]
    lines += [f"#   {k}: {v}" for k, v in prov.items()]
    lines += ["", "[parameters]"]
    lines += [f"{_toml_key(n)} = {_toml_value(float(v))}  # {model.parameter(n).unit}" for n, v in estimates.items()]
    return "\n".join(lines) + "\n"


def write_fit(result, output_dir, *, command="", plots=True, formats=("png",)) -> list:
    """Write a fit's tables, figures, calibrated model and provenance into ``output_dir`` (atomically).

    Files: ``estimates.csv`` (estimates with intervals), ``starts.csv``, ``residuals.csv``,
    ``profiles.csv`` and ``bootstrap.csv`` (when computed), ``individual_estimates.csv`` and
    ``typical.csv`` (population fits), ``comparison.csv`` (target fits),
    ``calibrated_model.toml`` (a model file a scenario can name), ``calibrated_parameters.toml``
    (a ``[parameters]`` table), ``fit.json`` (summary and provenance) and goodness-of-fit plots.
    Returns the list of file names written.
    """
    import pandas as pd

    from carkinetics.io.atomic import atomic_output_dir, write_json
    from carkinetics.plots.cohort import save_figure

    prov = fit_provenance(result, command)
    kind = type(result).__name__
    files = []
    if kind == "PopulationFit":
        estimates = dict(zip(result.typical["parameter"], result.typical["typical"]))
    else:
        estimates = dict(result.estimates)
    summary = {"provenance": prov, "estimates": estimates}
    with atomic_output_dir(output_dir) as out:
        def csv(df, name):
            df.to_csv(out / name, index=False)
            files.append(name)

        figs = []
        if kind == "FitResult":
            csv(result.table(), "estimates.csv")
            csv(result.starts, "starts.csv")
            csv(result.residuals, "residuals.csv")
            summary.update(sigma=result.sigma, n_starts=result.n_starts, n_at_best=result.n_at_best,
                           converged=result.converged, n_observations=result.n_observations,
                           n_censored=result.n_censored)
            fits = [result]
            residuals = result.residuals
        elif kind == "PopulationFit":
            csv(result.typical, "typical.csv")
            csv(result.typical, "estimates.csv")
            csv(result.estimates, "individual_estimates.csv")
            if result.history is not None:
                csv(result.history, "iterations.csv")
            fits = list(result.individual.values())
            residuals = pd.concat([r.residuals for r in fits], ignore_index=True)
            csv(residuals, "residuals.csv")
            csv(pd.concat([r.starts.assign(id=r.patient) for r in fits], ignore_index=True), "starts.csv")
            summary.update(method=result.method, sigma=result.sigma, n_patients=len(fits),
                           failed=result.failed, converged=result.converged)
        else:
            csv(result.table(), "estimates.csv")
            csv(result.starts, "starts.csv")
            csv(result.comparison, "comparison.csv")
            summary.update(n_runs=len(result.starts), n_at_best=result.n_at_best, converged=result.converged)
            fits, residuals = [], None
        profiles = getattr(result, "profiles", {}) or {}
        if profiles:
            csv(pd.concat([pd.DataFrame({"parameter": p.name, "value": p.values, "objective": p.objective,
                                         "rise": p.objective - p.minimum}) for p in profiles.values()]),
                "profiles.csv")
            summary["profiles"] = {p.name: {"lower": p.lower, "upper": p.upper, "identifiable": p.identifiable}
                                   for p in profiles.values()}
        if getattr(result, "bootstrap", None) is not None:
            csv(result.bootstrap, "bootstrap.csv")
        (out / "calibrated_model.toml").write_text(calibrated_model_text(result.model, estimates, prov),
                                                   encoding="utf-8")
        (out / "calibrated_parameters.toml").write_text(calibrated_parameters_text(result.model, estimates, prov),
                                                        encoding="utf-8")
        files += ["calibrated_model.toml", "calibrated_parameters.toml"]
        write_json(out / "fit.json", summary)
        files.append("fit.json")
        if plots:
            from carkinetics.plots import fit as fitplots

            if residuals is not None:
                figs += [("obs_vs_pred", fitplots.plot_observed_vs_predicted(residuals)),
                         ("residuals_vs_time", fitplots.plot_residuals_vs_time(residuals)),
                         ("individual_fits", fitplots.plot_individual_fits(fits))]
            if profiles:
                figs.append(("profiles", fitplots.plot_profiles(profiles)))
            if kind == "TargetFitResult":
                figs.append(("targets", fitplots.plot_target_comparison(result.comparison)))
            for name, fig in figs:
                save_figure(fig, out / name, formats)  # closes the figure
                files += [f"{name}.{f}" for f in formats]
    return files


# ---------------------------------------------------------------------------------------
# adapter: a scenario's virtual cohort (carkinetics.cohort.pipeline.run_cohort) as the cohort simulator
# ---------------------------------------------------------------------------------------
class PatientTables:
    """Per-patient endpoint tables of S cohorts (the output of :class:`ScenarioCohort`)."""

    def __init__(self, frames):
        self.frames = frames

    def column(self, name):
        """(S, n) values of one endpoint column (NaN for failed patients)."""
        if name not in self.frames[0].columns:
            raise FitError(f"'{name}' is not a column of the cohort's patient table"
                           f"{suggestion(name, list(self.frames[0].columns))}")
        return np.array([f[name].to_numpy(float) for f in self.frames])


class ScenarioCohort:
    """Use :func:`carkinetics.cohort.pipeline.run_cohort` of a scenario as the cohort of :func:`fit_targets`.

    Every call runs the scenario's cohort with the same ``n`` and ``seed`` (so the same
    random draws: common random numbers) with the estimated parameters overridden, and
    returns the per-patient endpoint tables. Targets name endpoint columns as their
    ``quantity`` (or as ``output``); :meth:`quantities` gives the mapping to pass to
    :func:`load_target_table` and :func:`fit_targets`. Endpoint indicators from the scenario
    are not smoothed: proportions are step functions, which differential evolution tolerates.
    """

    def __init__(self, scenario, n, seed, names, *, jobs=None, arms=None):
        self.scenario, self.n, self.seed, self.names = scenario, int(n), int(seed), list(names)
        self.jobs, self.arms = jobs, arms
        self._columns = None

    def __call__(self, typical):
        from carkinetics.cohort.pipeline import run_cohort

        model = self.scenario.model
        frames = []
        for row in np.atleast_2d(typical):
            over = {nm: float(row[model.parameter_index(nm)]) for nm in self.names}
            res = run_cohort(self.scenario, self.n, self.seed, jobs=self.jobs, parameters=over, arms=self.arms,
                             bands=False)
            frames.append(res.patients)
        return PatientTables(frames)

    def quantities(self):
        """``{column: quantity function}`` for every numeric column of the patient table."""
        if self._columns is None:
            probe = self(self.scenario.parameter_vector()[None, :]).frames[0]
            import pandas as pd

            self._columns = [c for c in probe.columns if pd.api.types.is_numeric_dtype(probe[c])]
        return {c: (lambda ctx, tg, c=c: ctx.column(c)) for c in self._columns}
