"""Individual fits: one patient's observations by maximum likelihood from several starts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from carkinetics.errors import suggestion
from carkinetics.fit.errors import FitError
from carkinetics.fit.optimise import BEST_TOLERANCE, fit_once
from carkinetics.fit.problem import FD_STEP, PatientProblem
from carkinetics.fit.space import ParameterSpace
from carkinetics.fit.uncertainty import profile_likelihood


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
        ``at_best`` (within :data:`~carkinetics.fit.optimise.BEST_TOLERANCE` of the best), and the estimates.
    n_at_best : int
        How many starts reached the best optimum.
    covariance_log : ndarray or None
        Wald covariance of the log-parameters from the Jacobian (``(J^T J)^-1``).
    profiles : dict of str to Profile
        From :func:`~carkinetics.fit.uncertainty.profile_likelihood`.
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
        Default :func:`~carkinetics.fit.problem.default_options` (rtol 1e-8).
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
        x, sg, obj, conv, nfev, msg = fit_once(problem, x0, sigma)
        rows.append({"start": s, **{f"start_{n}": math.exp(v) for n, v in zip(space.names, x0)},
                     "objective": obj, "converged": conv, "nfev": nfev, "sigma": sg, "message": msg,
                     **{n: math.exp(v) for n, v in zip(space.names, x)}})
        if np.isfinite(obj) and (best is None or obj < best[2]):
            best = (x, sg, obj, conv)
        if progress is not None:
            progress(s + 1, len(X0), "starts")
    if best is None:
        raise FitError(f"patient '{patient}': every start failed (simulation failures or NaN objective)")
    starts_df = pd.DataFrame(rows)
    starts_df["at_best"] = (starts_df["objective"] - best[2]) <= BEST_TOLERANCE
    x, sg, obj, conv = best
    result = FitResult(model=model, space=space, patient=str(patient),
                       estimates={n: float(math.exp(v)) for n, v in zip(space.names, x)}, x=x, sigma=float(sg),
                       sigma_estimated=sigma is None, objective=float(obj),
                       n_observations=len(problem.y), n_censored=int(problem.censored.sum()),
                       residuals=residual_table(problem, x, sg), starts=starts_df,
                       n_at_best=int(starts_df["at_best"].sum()), converged=bool(conv), problem=problem,
                       data_path=dataset.path, data_sha256=dataset.sha256)
    result.covariance_log = wald_covariance(problem, x, sg)
    if profile:
        names = space.names if profile is True else profile
        profile_likelihood(result, names, progress=progress)
    return result


def residual_table(problem, x, sigma):
    """One row per observation: ``id, time, observable, value, lloq, censored, pred, residual``.

    ``pred`` is the prediction at log-parameters ``x`` and ``residual`` = (g(value) - g(pred)) /
    ``sigma`` (the limit for censored points).
    """
    pred = problem.predict(x)[0]
    g = problem.transform(pred)
    df = problem.obs[["id", "time", "observable", "value", "lloq", "censored"]].copy()
    df["pred"] = pred
    df["residual"] = (problem.gy - g) / sigma
    return df


def wald_covariance(problem, x, sigma):
    """Wald covariance ``(J^T J)^-1`` (pseudo-inverse) of the log-parameters ``x``.

    ``J`` is the central-difference Jacobian of ``problem.residuals_from`` at residual SD
    ``sigma`` (prior residuals, when ``problem.prior`` is set, are not included). None when
    the pseudo-inverse fails.
    """
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
