"""Population fits: the standard and iterative two-stage methods."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from carkinetics.fit.errors import FitError
from carkinetics.fit.individual import fit_individual, residual_table, wald_covariance
from carkinetics.fit.optimise import fit_once
from carkinetics.fit.space import ParameterSpace


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
        """Sum of the individual ``-2 log L``."""
        return float(sum(r.objective for r in self.individual.values()))

    def table(self):
        """The typical values with their intervals (a copy of ``typical``)."""
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

    Each patient is fitted with :func:`~carkinetics.fit.individual.fit_individual` (same starts, seeded per patient).
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
        if progress is not None:
            progress(i + 1, len(dataset.ids), "patients")
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
        return wald_covariance(problem, x, sigma)
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
            x, _, _, _, _, _ = fit_once(pr, X[i], sig, max_nfev=60)
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
        if progress is not None:
            progress(it + 1, max_iterations, "iterative two-stage")
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
        r.residuals = residual_table(pr, X[i], sig)
        r.covariance_log = None
    pop.estimates["sigma"] = sig
    pop.estimates["objective"] = [pop.individual[p].objective for p in pids]
    pop.sigma = sig
    pop.method = "iterative two-stage"
    pop.history = pd.DataFrame(history)
    pop.converged = converged
