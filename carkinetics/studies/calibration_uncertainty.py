"""Uncertainty of a calibration: profile intervals, identifiability, a sample of parameter sets.

After :func:`carkinetics.studies.calibrate.calibrate`, :func:`calibration_uncertainty` profiles
the objective (as a negative log-likelihood: the ``likelihood`` objective as it is, the
``distance`` objective halved) around the optimum, parameter by parameter, with the same
virtual cohorts (common random numbers), and builds the normal approximation of the
log-parameters from the Hessian at the optimum (:mod:`carkinetics.fit.profile`). The report
says what the data do not fix: flat profile sides, estimates at a bound, strongly correlated
pairs and near-zero Hessian eigenvalues. The sample (``parameter_sample.csv``) is what
``--replicates`` style propagation draws from: one row per parameter set, one column per
estimate label, each row inside the bounds.

The normal approximation can be narrower than the profile where the profile is not
quadratic; the intervals reported per parameter are the profile ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Absolute correlation above which a pair of estimates is reported as poorly separated.
STRONG_CORRELATION = 0.9
#: A profile point this much (log-likelihood units) below the fit means the fit missed the optimum.
NOT_AT_OPTIMUM = 0.1


@dataclass
class CalibrationUncertainty:
    """Profile intervals, Laplace covariance and a parameter sample of one calibration."""

    intervals: object  # pandas.DataFrame: label, estimate, lower, upper, flat sides, at_bound
    points: object  # pandas.DataFrame: label, value, profile (rise of -log L)
    covariance: np.ndarray  # log-parameters
    correlation: np.ndarray
    eigenvalues: np.ndarray
    sample: object  # pandas.DataFrame: draw, one column per estimate label (natural scale)
    level: float
    scale: float
    n_evaluations: int
    sampling: dict = None  # how the sample was drawn (method; for SIR its effective sample size)
    profiles_from: str = None  # the folder whose profiles were read instead of recomputed

    def identifiability(self, labels) -> list:
        """What the data do not fix, as sentences (empty when nothing is flagged)."""
        notes = []
        below = self.points[self.points["profile"] < -NOT_AT_OPTIMUM]
        if not below.empty:
            worst = below.loc[below["profile"].idxmin()]
            notes.append(f"the fit did not reach the optimum: the profile of {worst['label']} found a point "
                         f"{-worst['profile']:.2f} log-likelihood units better (at {worst['value']:.4g}); the intervals "
                         f"are relative to the fit, not to the optimum: refit (--start-from) before reading them")
        for r in self.intervals.itertuples():
            sides = [s for s, flat in (("lower", r.lower_flat), ("upper", r.upper_flat)) if flat]
            if sides:
                notes.append(f"{r.label}: profile flat on the {' and '.join(sides)} side (the {self.level:.0%} "
                             f"interval reaches the bound: the targets do not bound it there)")
            if r.at_bound:
                notes.append(f"{r.label}: estimate at a bound ({r.estimate:.4g})")
        k = len(labels)
        for i in range(k):
            for j in range(i + 1, k):
                c = float(self.correlation[i, j])
                if abs(c) >= STRONG_CORRELATION:
                    notes.append(f"{labels[i]} and {labels[j]}: correlation {c:+.2f} (normal approximation): "
                                 f"the targets fix a combination of the two, not each")
        top = float(np.max(self.eigenvalues)) if len(self.eigenvalues) else 0.0
        small = int(np.sum(self.eigenvalues < 1e-6 * max(top, 1e-300)))
        if small:
            notes.append(f"{small} Hessian eigenvalue(s) below 1e-6 of the largest: directions the targets do not fix")
        return notes

    def to_dict(self, labels) -> dict:
        """The record for ``uncertainty.json``."""
        return {"level": self.level, "objective_scale_to_minus_log_likelihood": self.scale,
                "n_evaluations": self.n_evaluations,
                "intervals": self.intervals.to_dict(orient="records"),
                "correlation": {a: {b: float(self.correlation[i, j]) for j, b in enumerate(labels)}
                                for i, a in enumerate(labels)},
                "log_parameter_sd": {a: float(math.sqrt(self.covariance[i, i])) for i, a in enumerate(labels)},
                "hessian_eigenvalues": [float(v) for v in self.eigenvalues],
                "identifiability": self.identifiability(labels),
                "sample_size": int(len(self.sample)),
                "sampling": dict(self.sampling or {"method": "normal approximation"}),
                **({"profiles_from": self.profiles_from} if self.profiles_from else {})}


def calibration_uncertainty(result, *, n=None, jobs=None, level=0.95, samples=200, step=0.1, max_points=6,
                            maxiter=40, seed=None, proposals=0, profiles_from=None,
                            progress=None) -> CalibrationUncertainty:
    """Profile intervals, identifiability and a parameter sample at a calibration's optimum.

    Parameters
    ----------
    result : CalibrationResult
    n, jobs :
        Virtual patients per scenario (default: the fit's) and threads.
    level : float
        Interval level.
    samples : int
        Parameter sets in the sample.
    proposals : int
        With more than 0, the sample is drawn by sampling importance resampling from this many
        proposals (:func:`carkinetics.fit.profile.sir_sample`; one objective evaluation each),
        which follows the likelihood where it is not quadratic; with 0, from the normal
        approximation (fast, but it spreads over the whole box along directions the Hessian
        finds flat, even where a profile bounds the estimate).
    profiles_from : path, optional
        The folder of an earlier ``--uncertainty`` run of this calibration at the same optimum
        (the same estimates, patients per scenario, seed and calibration file): its profiles
        are read instead of recomputed (they are deterministic given those), e.g. to draw a
        new sample. Refused (:class:`~carkinetics.studies.calibrate.CalibrationError`) otherwise.
    step, max_points, maxiter :
        First profile step (log scale, doubling), points per side, Nelder-Mead iterations over
        the other estimates at each profile point (:func:`carkinetics.fit.profile.profile_likelihood`).
    seed : int, optional
        Seed of the sample (default: the calibration's).

    Returns
    -------
    CalibrationUncertainty
    """
    import pandas as pd

    from carkinetics.fit.profile import laplace_covariance, profile_likelihood, sample_parameter_sets, sir_sample
    from carkinetics.studies.calibrate import JointCohorts

    cal = result.calibration
    joint = JointCohorts(cal, n=n or result.n, jobs=jobs)
    scale = 1.0 if cal.objective == "likelihood" else 0.5
    lo = np.array([e.log_lower for e in cal.estimates])
    hi = np.array([e.log_upper for e in cal.estimates])

    def f(x):
        return float(joint.objective(np.asarray(x, float)[None, :])[0])

    labels = cal.labels
    if profiles_from is not None:
        intervals, points = read_profiles(profiles_from, result, level)
    else:
        intervals, points = profile_likelihood(f, result.x, lo, hi, labels, level=level, step=step,
                                               max_points=max_points, maxiter=maxiter, scale=scale, progress=progress)
    cov, corr, eig = laplace_covariance(f, result.x, lo, hi, scale=scale)
    seed = cal.seed if seed is None else seed
    if proposals:
        draws, sampling = sir_sample(f, result.x, cov, lo, hi, samples, proposals, scale=scale, seed=seed,
                                     progress=progress)
    else:
        draws, sampling = sample_parameter_sets(result.x, cov, lo, hi, samples, seed=seed), None
    sample = pd.DataFrame(np.exp(draws), columns=labels)
    sample.insert(0, "draw", np.arange(len(sample)))
    return CalibrationUncertainty(intervals=intervals.rename(columns={"name": "label"}),
                                  points=points.rename(columns={"name": "label"}), covariance=cov,
                                  correlation=corr, eigenvalues=eig, sample=sample, level=level, scale=scale,
                                  n_evaluations=joint.n_evaluations, sampling=sampling,
                                  profiles_from=None if profiles_from is None else str(profiles_from))


def read_profiles(folder, result, level):
    """The profiles (intervals.csv, profiles.csv) of an earlier run at this result's optimum.

    Raises
    ------
    CalibrationError
        Naming what differs: the estimates, the patients per scenario, the seed, the
        calibration file, the level, or missing files.
    """
    import json
    from pathlib import Path

    import pandas as pd

    from carkinetics.io.provenance import file_sha256
    from carkinetics.studies.calibrate import CalibrationError

    folder = Path(folder)
    files = [folder / x for x in ("calibration.json", "intervals.csv", "profiles.csv", "uncertainty.json")]
    missing = [str(x) for x in files if not x.is_file()]
    if missing:
        raise CalibrationError(f"--profiles-from {folder}: no profiles there ({', '.join(missing)} missing)")
    record = json.loads(files[0].read_text(encoding="utf-8"))
    prov = record.get("provenance", {})
    cal = result.calibration
    problems = []
    est = record.get("estimates", {})
    for label, value in zip(cal.labels, np.exp(result.x)):
        then = est.get(label)
        if then is None or not math.isclose(float(then), float(value), rel_tol=1e-9):
            problems.append(f"estimate {label} {then} there, {value} now")
    if prov.get("patients_per_scenario") != result.n:
        problems.append(f"{prov.get('patients_per_scenario')} patients per scenario there, {result.n} now")
    if prov.get("seed") != cal.seed:
        problems.append(f"seed {prov.get('seed')} there, {cal.seed} now")
    if prov.get("calibration_sha256") != file_sha256(cal.path):
        problems.append("the calibration file has changed")
    unc = json.loads(files[3].read_text(encoding="utf-8"))
    if unc.get("level") != level:
        problems.append(f"level {unc.get('level')} there, {level} now")
    if problems:
        raise CalibrationError(f"--profiles-from {folder}: not the profiles of this optimum: " + "; ".join(problems))
    from carkinetics.io.results import exact_float_csv_kw

    intervals = pd.read_csv(files[1], **exact_float_csv_kw())  # the numbers as written, to the last digit
    points = pd.read_csv(files[2], **exact_float_csv_kw())
    for col in ("lower_flat", "upper_flat", "at_bound"):
        intervals[col] = intervals[col].astype(str).str.lower().eq("true")
    if list(intervals["label"]) != list(cal.labels):
        raise CalibrationError(f"--profiles-from {folder}: intervals.csv lists {list(intervals['label'])}, "
                               f"this calibration estimates {list(cal.labels)}")
    return intervals, points


def plot_profiles(unc: CalibrationUncertainty, title=""):
    """One panel per estimate: the profile (rise of -log L) against the value, the interval marked."""
    from carkinetics.fit.profile import rise
    from carkinetics.plots.style import pyplot

    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    plt = pyplot()
    labels = list(unc.intervals["label"])
    k = len(labels)
    cols = min(4, k)
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, r in zip(axes.flat, unc.intervals.itertuples()):
        p = unc.points[unc.points["label"] == r.label].sort_values("value")
        ax.plot(p["value"], p["profile"], "o-", ms=3, color="tab:blue")
        ax.axhline(rise(unc.level), color="0.5", lw=0.8, ls=":")
        ax.axvspan(r.lower, r.upper, color="tab:blue", alpha=0.12)
        ax.axvline(r.estimate, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        flat = " (flat: " + ", ".join(s for s, f in (("lower", r.lower_flat), ("upper", r.upper_flat)) if f) + ")" \
            if (r.lower_flat or r.upper_flat) else ""
        ax.set_title(f"{r.label}{flat}", fontsize=8)
        ax.set_ylabel("rise of -log L", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[k:]:
        ax.set_visible(False)
    fig.suptitle(title or f"Profile likelihood ({unc.level:.0%} intervals shaded)", fontsize=9)
    fig.tight_layout()
    return fig
