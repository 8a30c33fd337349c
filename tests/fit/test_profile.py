"""Profile likelihood, Laplace covariance and parameter samples against a quadratic log-likelihood.

For ``f(x) = 0.5 (x - mu)' A (x - mu)`` (a normal log-likelihood) the profile of ``x_j`` is
``0.5 (x_j - mu_j)^2 / S_jj`` with ``S = A^-1``: its 95 % interval is ``mu_j +- 1.96 sqrt(S_jj)``,
the Hessian is ``A`` and the normal approximation is exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from carkinetics.fit.profile import laplace_covariance, profile_likelihood, rise, sample_parameter_sets, sir_sample

S = np.array([[0.04, -0.03, 0.0], [-0.03, 0.09, 0.01], [0.0, 0.01, 0.25]])  # correlation -0.5 between 0 and 1
A = np.linalg.inv(S)
MU = np.array([0.2, -1.0, 0.5])
LO, HI = np.full(3, -5.0), np.full(3, 5.0)


def f(x):
    d = np.asarray(x) - MU
    return float(0.5 * d @ A @ d)


def test_rise_is_half_the_chi_square_quantile():
    from scipy.stats import chi2

    assert rise(0.95) == pytest.approx(chi2.ppf(0.95, 1) / 2) and rise(0.95) == pytest.approx(1.959964**2 / 2)


def test_profile_intervals_of_a_quadratic_are_the_normal_intervals():
    intervals, points = profile_likelihood(f, MU, LO, HI, ["a", "b", "c"], step=0.05, maxiter=400)
    half = 1.959963984540054 * np.sqrt(np.diag(S))
    assert np.log(intervals["lower"].to_numpy()) == pytest.approx(MU - half, abs=2e-3)
    assert np.log(intervals["upper"].to_numpy()) == pytest.approx(MU + half, abs=2e-3)
    assert not intervals[["lower_flat", "upper_flat", "at_bound"]].to_numpy().any()
    # the profile points lie on 0.5 (x_j - mu_j)^2 / S_jj (the others re-optimised, not held)
    b = points[points["name"] == "b"]
    expect = 0.5 * (np.log(b["value"]) - MU[1]) ** 2 / S[1, 1]
    assert b["profile"].to_numpy() == pytest.approx(expect.to_numpy(), abs=1e-3)


def test_a_parameter_the_objective_ignores_is_flat_and_an_optimum_at_a_bound_is_flagged():
    def g(x):
        return float(0.5 * (x[0] - 0.3) ** 2 / 0.01)

    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    intervals, _ = profile_likelihood(g, [0.3, 0.0], lo, hi, ["fixed_by_data", "ignored"], step=0.1)
    row = intervals.set_index("name")
    assert row.loc["ignored", "lower_flat"] and row.loc["ignored", "upper_flat"]
    assert row.loc["ignored", "lower"] == pytest.approx(np.exp(-1.0))
    assert not row.loc["fixed_by_data", "lower_flat"]
    at_edge, _ = profile_likelihood(lambda x: float((x[0] - 1.0) ** 2), [1.0], lo[:1], hi[:1], ["x"])
    assert at_edge.loc[0, "at_bound"] and at_edge.loc[0, "upper_flat"]
    _, _, eig = laplace_covariance(g, [0.3, 0.0], lo, hi)
    assert min(eig) == pytest.approx(0.0, abs=1e-6) and max(eig) == pytest.approx(100.0, rel=1e-4)


def test_laplace_covariance_and_samples_recover_the_normal():
    cov, corr, eig = laplace_covariance(f, MU, LO, HI, step=0.05)
    assert cov == pytest.approx(S, abs=1e-8)
    assert corr[0, 1] == pytest.approx(-0.5, abs=1e-6)
    assert sorted(eig) == pytest.approx(sorted(np.linalg.eigvalsh(A)), rel=1e-6)
    x = sample_parameter_sets(MU, cov, LO, HI, 20000, seed=3)
    assert x.shape == (20000, 3)
    assert x.mean(axis=0) == pytest.approx(MU, abs=0.015)
    assert np.cov(x.T) == pytest.approx(S, abs=0.01)
    # inside a narrow box every draw stays inside
    lo, hi = MU - 0.1, MU + 0.1
    y = sample_parameter_sets(MU, cov, lo, hi, 500, seed=4)
    assert np.all((y >= lo) & (y <= hi))


def test_sir_sample_of_a_quadratic_recovers_the_normal():
    x, info = sir_sample(f, MU, S, LO, HI, 2000, 20000, inflation=2.0, seed=5)
    assert x.shape == (2000, 3) and info["proposals"] == 20000 and info["n_failed"] == 0
    assert x.mean(axis=0) == pytest.approx(MU, abs=0.03)
    assert np.cov(x.T) == pytest.approx(S, abs=0.02)
    # an inflated normal proposal of a normal target keeps a large effective sample
    assert info["effective_sample_size"] > 0.3 * 20000


def test_sir_sample_follows_a_one_sided_likelihood_the_normal_approximation_misses():
    """x0 ~ N(0, 0.2^2); x1 flat on [0, 1] and falling as exp(-50 x1^2) below 0, in the box [-1, 1].
    At the optimum x1 = 0.5 the Hessian is flat in x1, so the normal approximation spreads x1 over
    the whole box; the SIR sample must follow the exact marginal (computed by quadrature)."""
    from scipy.integrate import quad

    def g(x):
        return float(0.5 * x[0] ** 2 / 0.04 + 50.0 * min(x[1], 0.0) ** 2)

    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    x_best = np.array([0.0, 0.5])
    cov, _, _ = laplace_covariance(g, x_best, lo, hi, step=0.05)
    x, info = sir_sample(g, x_best, cov, lo, hi, 1500, 15000, seed=7)

    def dens(t):
        return np.exp(-50.0 * min(t, 0.0) ** 2)

    z = quad(dens, -1, 1, points=[0.0])[0]
    mean = quad(lambda t: t * dens(t), -1, 1, points=[0.0])[0] / z
    below = quad(dens, -1, -0.1)[0] / z  # exact P(x1 < -0.1), about 3 %
    assert x[:, 1].mean() == pytest.approx(mean, abs=0.03)
    assert np.mean(x[:, 1] < -0.1) == pytest.approx(below, abs=0.02)
    assert np.std(x[:, 0]) == pytest.approx(0.2, rel=0.1)
    normal = sample_parameter_sets(x_best, cov, lo, hi, 1500, seed=7)
    assert np.mean(normal[:, 1] < -0.1) > 3 * below  # what SIR corrects


def test_sir_needs_at_least_as_many_proposals_as_draws_and_resamples_with_replacement_when_the_weights_are_few():
    from carkinetics.fit.errors import FitError

    with pytest.raises(FitError, match="at least as many proposals"):
        sir_sample(f, MU, S, LO, HI, 10, 5)
    with pytest.raises(FitError, match="not finite at any"):
        sir_sample(lambda x: np.inf if np.any(np.asarray(x) != MU) else 0.0, MU, S, LO, HI, 5, 20)
    # a likelihood 10x narrower (in sd) than the proposal: few effective draws
    x, info = sir_sample(f, MU, S, LO, HI, 200, 400, scale=100.0, inflation=1.0, seed=1)
    assert info["effective_sample_size"] < 200 and info["with_replacement"] and "warning" in info
    assert np.std(x[:, 0]) < 2 * np.sqrt(S[0, 0] / 100)  # not spread by forced distinct draws


def test_a_fit_short_of_the_optimum_is_reported():
    import pandas as pd

    from carkinetics.studies.calibration_uncertainty import CalibrationUncertainty

    off = MU + np.array([0.2, 0.0, 0.0])  # not the optimum: profiles find lower values
    intervals, points = profile_likelihood(f, off, LO, HI, ["a", "b", "c"], step=0.05, maxiter=200)
    assert points["profile"].min() < -0.1
    cov, corr, eig = laplace_covariance(f, MU, LO, HI)
    unc = CalibrationUncertainty(intervals.rename(columns={"name": "label"}), points.rename(columns={"name": "label"}),
                                 cov, corr, eig, pd.DataFrame(), 0.95, 1.0, 0)
    notes = unc.identifiability(["a", "b", "c"])
    assert any("did not reach the optimum" in n for n in notes)
    # at the optimum nothing is flagged for this well-determined quadratic
    intervals, points = profile_likelihood(f, MU, LO, HI, ["a", "b", "c"], step=0.05, maxiter=200)
    unc = CalibrationUncertainty(intervals.rename(columns={"name": "label"}), points.rename(columns={"name": "label"}),
                                 cov, corr, eig, pd.DataFrame(), 0.95, 1.0, 0)
    assert unc.identifiability(["a", "b", "c"]) == []
