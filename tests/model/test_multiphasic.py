"""The Stein 2019 multiphasic model: integrated curve vs its analytic solution."""

import numpy as np
import pytest

from carkinetics import SolverOptions, simulate, simulate_batch


def stein_analytic(p, t):
    foldx, tmax, cmax, alpha, fb, beta = p
    t = np.asarray(t, float)
    rho = np.log(foldx) / tmax
    tau = t - tmax
    before = cmax / foldx * np.exp(rho * np.minimum(t, tmax))
    after = (1 - fb) * cmax * np.exp(-alpha * tau) + fb * cmax * np.exp(-beta * tau)
    return np.where(t < tmax, before, after)


@pytest.mark.parametrize("method", ["tsit5", "rodas4", "auto"])
def test_typical_curve_matches_analytic_solution(multiphasic, method):
    times = np.concatenate([np.linspace(0, 730, 731), [9.3]])
    times.sort()
    traj = simulate(multiphasic, None, times, options=SolverOptions(method=method, rtol=1e-8))
    exact = stein_analytic(multiphasic.default_parameters(), times)
    np.testing.assert_allclose(traj["transgene"], exact, rtol=2e-6)


def test_typical_curve_reproduces_the_published_typical_values(multiphasic):
    # targets.csv stein_typical_d7 ... d730 (derived from the Stein 2019 typical parameters)
    days = [7, 14, 21, 28, 60, 90, 180, 365, 730]
    published = [3110, 11400, 3850, 1370, 168, 147, 110, 60.7, 18.9]
    traj = simulate(multiphasic, None, [0] + days)
    np.testing.assert_allclose(traj["transgene"][1:], published, rtol=0.006)  # 3 significant figures
    assert traj["transgene"][0] == pytest.approx(24000 / 3900)


def test_population_matches_analytic_solution_patient_by_patient(multiphasic):
    rng = np.random.default_rng(5)
    sd = np.array([p.iiv_log_sd for p in multiphasic.parameters])
    params = multiphasic.default_parameters() * np.exp(rng.normal(size=(300, 6)) * sd)
    params[:, 4] = np.minimum(params[:, 4], 0.5)
    times = np.linspace(0, 365, 74)
    batch = simulate_batch(multiphasic, None, times, params, n_threads=1)
    exact = np.array([stein_analytic(p, times) for p in params])
    np.testing.assert_allclose(batch.output("transgene"), exact, rtol=1e-4)
    assert batch.success.all()
