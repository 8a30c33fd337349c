"""Virtual-cohort simulators of target fits.

A cohort simulator is a callable ``cohort(typical (S x P)) -> outputs`` that simulates one virtual
cohort per row of typical parameter values, with the same random draws at every call (common
random numbers). :class:`CRNCohort` simulates a model with log-normal between-patient variability
and returns :class:`CohortOutputs`; :class:`ScenarioCohort` runs a scenario's cohort and returns
its per-patient endpoint tables (:class:`PatientTables`).
"""

from __future__ import annotations

import math

import numpy as np

from carkinetics.errors import suggestion
from carkinetics.fit.errors import FitError
from carkinetics.simulation.options import SolverOptions

#: Largest target timepoint and cohort horizon (days): 100 years. The cohort of a target fit is
#: simulated on a daily grid to the last timepoint, for every patient of every candidate.
MAX_TARGET_DAY = 36_500.0
SOFT_WIDTH = 0.1  # width (log units, or output units on the linear scale) of smoothed indicators


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
        """Values of output ``name`` at grid time ``t`` (S, n)."""
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


class CRNCohort:
    """A virtual cohort with common random numbers, built on :func:`~carkinetics.simulation.simulate.simulate_batch`.

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
        """Patient parameter vectors (S * (n + 1), P) for S typical vectors (last of each cohort: the typical)."""
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
    """Use :func:`carkinetics.cohort.pipeline.run_cohort` of a scenario as the cohort of
    :func:`~carkinetics.fit.target_fit.fit_targets`.

    Every call runs the scenario's cohort with the same ``n`` and ``seed`` (so the same
    random draws: common random numbers) with the estimated parameters overridden, and
    returns the per-patient endpoint tables. Targets name endpoint columns as their
    ``quantity`` (or as ``output``); :meth:`quantities` gives the mapping to pass to
    :func:`~carkinetics.fit.targets.load_target_table` and
    :func:`~carkinetics.fit.target_fit.fit_targets`. Endpoint indicators from the scenario are
    not smoothed: proportions are step functions, which differential evolution tolerates.
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
