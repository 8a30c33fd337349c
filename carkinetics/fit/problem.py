"""One patient's fitting problem: observations, schedule and the forward model."""

from __future__ import annotations

import numpy as np

from carkinetics.errors import DataError, suggestion
from carkinetics.fit.errors import FitError
from carkinetics.fit.likelihood import censored_residuals, max_likelihood_sigma, minus_two_log_likelihood
from carkinetics.simulation.options import SolverOptions


def default_options() -> SolverOptions:
    """Solver options for fitting: tight tolerances so finite differences are smooth.

    With ``rtol = 1e-8`` the simulated outputs are accurate to about 1e-7 relative;
    central differences with step ``h = 1e-3`` in log-parameter then have truncation
    error ~h^2 = 1e-6 and rounding/solver noise ~1e-7/h = 1e-4 relative, far below the
    residual scale (sigma ~ 0.1-1 on the log scale).
    """
    return SolverOptions(method="auto", rtol=1e-8, raise_on_failure=False)


FD_STEP = 1e-3


class PatientProblem:
    """One patient's observations and the forward model that predicts them from log-parameters.

    :meth:`predict` simulates the patient's schedule for log-parameter vectors, :meth:`transform`
    puts predictions on the fitting scale ``g`` (log, floored, or identity), and
    :meth:`residuals_from` / :meth:`objective_from` / :meth:`best_sigma` evaluate the censored
    likelihood of :mod:`carkinetics.fit.likelihood` on the patient's data: ``residuals_from``
    returns ``r`` with ``sum(r**2) + n_unc * log(2 pi sigma^2) = -2 log L``. ``prior`` (set by the
    iterative two-stage method) adds a normal prior on the log-parameters.
    """

    def __init__(self, model, dataset, pid, space, *, base=None, events=(), options=None, scale=None,
                 n_threads=None):
        from carkinetics.simulation.simulate import check_times

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
        self.times = check_times(np.unique(self.obs["time"].to_numpy(float)))
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

    def full_parameters(self, X):
        """Full parameter vectors (M, n_parameters) for M log-parameter vectors of the estimated ones."""
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
        """Residuals for predictions ``g(f)`` (see :func:`~carkinetics.fit.likelihood.censored_residuals`)."""
        return censored_residuals(self.gy, gpred, self.censored, sigma)

    def objective_from(self, gpred, sigma):
        """-2 log L (with constants) for predictions g(f) and residual SD sigma."""
        return minus_two_log_likelihood(self.gy, gpred, self.censored, self.n_uncensored, sigma)

    def best_sigma(self, gpred, lo=1e-4, hi=1e2):
        """Maximum-likelihood residual SD for fixed predictions."""
        if self.n_uncensored == 0:
            raise FitError(f"patient '{self.pid}': every observation is censored; the residual SD cannot be "
                           f"estimated (give sigma)")
        return max_likelihood_sigma(self.gy, gpred, self.censored, self.n_uncensored, lo, hi)
