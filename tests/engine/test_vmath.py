"""The engine's branch-free log, exp and pow against numpy (ulps and special values)."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def kernel(linear_model):
    return linear_model.kernel


def _ulps(got, ref):
    finite = np.isfinite(ref) & (ref != 0)
    return np.abs(got[finite] - ref[finite]) / np.spacing(np.abs(ref[finite]))


def test_log_within_one_ulp(kernel):
    rng = np.random.default_rng(0)
    x = np.concatenate([np.exp(rng.uniform(-740, 705, 20_000)), rng.uniform(0.5, 2.0, 5_000),
                        [5e-324, 1e-310, 2.2250738585072014e-308, 1.0, 2.0, 0.5, 1e308]])
    got = np.array([kernel._vlog(v) for v in x])
    assert _ulps(got, np.log(x)).max() <= 1.0


def test_exp_within_one_ulp(kernel):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-745, 709.7, 20_000), rng.uniform(-1, 1, 5_000), [0.0, 1.0, -1.0]])
    got = np.array([kernel._vexp(v) for v in x])
    ref = np.exp(x)
    normal = ref > 2.2250738585072014e-308  # subnormal results: absolute error below the smallest normal
    assert _ulps(got[normal], ref[normal]).max() <= 1.0
    assert np.all(np.abs(got[~normal] - ref[~normal]) <= 2 * 5e-324)


@pytest.mark.parametrize("x, expected", [
    (0.0, -np.inf), (-1.0, np.nan), (np.inf, np.inf), (np.nan, np.nan)])
def test_log_special_values(kernel, x, expected):
    np.testing.assert_equal(kernel._vlog(x), expected)


@pytest.mark.parametrize("x, expected", [
    (-np.inf, 0.0), (np.inf, np.inf), (710.0, np.inf), (-746.0, 0.0), (np.nan, np.nan)])
def test_exp_special_values(kernel, x, expected):
    np.testing.assert_equal(kernel._vexp(x), expected)


def test_pow_matches_numpy(kernel):
    rng = np.random.default_rng(2)
    x = rng.uniform(0.01, 100, 2000)
    y = rng.uniform(-5, 5, 2000)
    got = np.array([kernel._vpow(a, b) for a, b in zip(x, y)])
    np.testing.assert_allclose(got, x ** y, rtol=5e-15)
    assert kernel._vpow(-2.0, 3.0) == -8.0
    assert kernel._vpow(-2.0, 2.0) == 4.0
    assert np.isnan(kernel._vpow(-2.0, 0.5))
    assert kernel._vpow(0.0, 2.0) == 0.0
    assert kernel._vpow(5.0, 0.0) == 1.0


@pytest.mark.parametrize("name", ["_hill", "_vhill"])
def test_hill(kernel, name):
    hill = getattr(kernel, name)
    assert hill(0.0, 2.0, 3.0) == 0.0
    assert hill(2.0, 2.0, 3.0) == pytest.approx(0.5, rel=1e-15)
    assert hill(6.0, 2.0, 2.0) == pytest.approx(36.0 / 40.0, rel=1e-15)


@pytest.mark.parametrize("prefix", ["_", "_v"])
def test_hill_derivatives_against_finite_differences(kernel, prefix):
    hill = getattr(kernel, prefix + "hill")
    x, k, n, h = 3.0, 2.0, 2.5, 1e-6
    dx = (hill(x + h, k, n) - hill(x - h, k, n)) / (2 * h)
    dk = (hill(x, k + h, n) - hill(x, k - h, n)) / (2 * h)
    dn = (hill(x, k, n + h) - hill(x, k, n - h)) / (2 * h)
    assert getattr(kernel, prefix + "hill_dx")(x, k, n) == pytest.approx(dx, rel=1e-8)
    assert getattr(kernel, prefix + "hill_dk")(x, k, n) == pytest.approx(dk, rel=1e-8)
    assert getattr(kernel, prefix + "hill_dn")(x, k, n) == pytest.approx(dn, rel=1e-8)


def test_the_step_size_controls_floor_is_the_kernels_log_of_1e_4(kernel):
    # the PI controller's memory takes log(max(err, 1e-4)) as LOG_1E4 below the floor, vlog(err) above
    assert kernel.LOG_1E4 == kernel._vlog(1e-4) == np.log(1e-4)
