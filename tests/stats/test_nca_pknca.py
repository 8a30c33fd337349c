"""Terminal phase of the non-compartmental analysis against PKNCA's own test values.

The reference values are copied from the tests of the R package PKNCA
(github.com/billdenney/pknca, commit 1e1285fb12e14dd013b5738856c23088065dc595);
each test names the file and quotes the values. R's ``expect_equal(x, y,
tolerance=tol)`` is a relative tolerance, used here as ``rel=tol``. The analytic
cases (an exponential decay) are exact.
"""

import math

import numpy as np
import pytest

import carkinetics.stats.nca as nca

LN2 = math.log(2.0)

# tests/testthat/test-half.life.R: conc=c(1, 0.5, 0.25, 0.1251), time=c(0, 1, 2, 3)
HL_TIMES = np.array([0.0, 1.0, 2.0, 3.0])
HL_CONC = np.array([1.0, 0.5, 0.25, 0.1251])


def test_half_life_excludes_tmax_by_default_pknca():
    # test-half.life.R: pk.calc.half.life(conc=c(1, 0.5, 0.25, 0.1251), time=c(0, 1, 2, 3),
    #   min.hl.points=3, allow.tmax.in.half.life=FALSE)$half.life == 1.000577 (tolerance=0.00001)
    fit = nca.lambda_z(HL_TIMES, HL_CONC)
    assert fit.half_life == pytest.approx(1.000577, rel=1e-5)
    assert fit.n_points == 3 and fit.time_first == 1.0 and fit.tlast == 3.0


def test_half_life_with_tmax_allowed_takes_the_most_points_within_the_factor_pknca():
    # test-half.life.R: allow.tmax.in.half.life=TRUE, adj.r.squared.factor=0.1 (also 0.01):
    #   data.frame(lambda.z=0.6929073, r.squared=0.9999999, adj.r.squared=0.9999999,
    #              lambda.z.time.first=0, lambda.z.n.points=4, clast.pred=0.12507,
    #              half.life=1.000346, span.ratio=2.998962), tolerance=0.0001
    for factor in (0.1, 0.01):
        fit = nca.lambda_z(HL_TIMES, HL_CONC, allow_tmax=True, adj_r2_factor=factor)
        assert fit.lambda_z == pytest.approx(0.6929073, rel=1e-4)
        assert fit.r_squared == pytest.approx(0.9999999, rel=1e-4)
        assert fit.adj_r_squared == pytest.approx(0.9999999, rel=1e-4)
        assert fit.time_first == 0.0 and fit.n_points == 4
        assert fit.clast_pred == pytest.approx(0.12507, rel=1e-4)
        assert fit.half_life == pytest.approx(1.000346, rel=1e-5)
        assert fit.span_ratio == pytest.approx(2.998962, rel=1e-4)


def test_half_life_simple_decay_and_too_few_points_pknca():
    # test-half.life.R: conc=c(1, 0.5, 0.25), time=c(0, 1, 2), min.hl.points=3,
    #   allow.tmax.in.half.life=TRUE -> half.life 1; min.hl.points=4 -> too few points (NA)
    t, c = [0.0, 1.0, 2.0], [1.0, 0.5, 0.25]
    assert nca.lambda_z(t, c, allow_tmax=True).half_life == pytest.approx(1.0, rel=1e-12)
    assert np.isnan(nca.lambda_z(t, c, min_points=4, allow_tmax=True).half_life)
    assert np.isnan(nca.lambda_z(t, c).half_life)  # Tmax excluded: two points left


def test_two_point_half_life_pknca():
    # test-half.life.R "two-point half-life succeeds (fix #114)": conc=c(1, 0.5), time=c(0, 1),
    #   min.hl.points=2, allow.tmax.in.half.life=TRUE -> lambda.z=log(2), r.squared=1,
    #   adj.r.squared=NA, lambda.z.n.points=2, clast.pred=0.5, half.life=1, span.ratio=1
    fit = nca.lambda_z([0.0, 1.0], [1.0, 0.5], min_points=2, allow_tmax=True)
    assert fit.lambda_z == pytest.approx(LN2, rel=1e-12) and fit.r_squared == pytest.approx(1.0)
    assert np.isnan(fit.adj_r_squared) and fit.n_points == 2
    assert fit.clast_pred == pytest.approx(0.5) and fit.half_life == pytest.approx(1.0)
    assert fit.span_ratio == pytest.approx(1.0)


# tests/testthat/test-pk.calc.all.R "Ensure that options are respected during pk.nca call":
#   conc.data <- c(0, 1, 2, 1.3, 0.4, 0.35, 0.125); time.data <- c(0, 1, 2, 4, 8, 24, 48)
#   aucinf.obs (end=Inf) = 24.54319 with auc.method="linear", 23.68317 with "lin up/log down"
#   (tolerance=0.0001)
OPT_TIMES = np.array([0.0, 1.0, 2.0, 4.0, 8.0, 24.0, 48.0])
OPT_CONC = np.array([0.0, 1.0, 2.0, 1.3, 0.4, 0.35, 0.125])


def test_aucinf_obs_with_automatic_lambda_z_pknca():
    assert nca.auc_inf(OPT_TIMES, OPT_CONC, method="linear") == pytest.approx(24.54319, rel=1e-4)
    assert nca.auc_inf(OPT_TIMES, OPT_CONC) == pytest.approx(23.68317, rel=1e-4)
    # the chosen fit is the last three points (8, 24, 48): recompute it by hand with numpy
    slope, icpt = np.polyfit(OPT_TIMES[4:], np.log(OPT_CONC[4:]), 1)
    fit = nca.lambda_z(OPT_TIMES, OPT_CONC)
    assert fit.n_points == 3 and fit.lambda_z == pytest.approx(-slope, rel=1e-12)
    assert fit.clast_pred == pytest.approx(math.exp(icpt + slope * 48.0), rel=1e-12)
    pred = nca.auc_inf(OPT_TIMES, OPT_CONC, kind="pred")
    assert pred == pytest.approx(nca.auc_last(OPT_TIMES, OPT_CONC) + fit.clast_pred / fit.lambda_z, rel=1e-12)


# tests/testthat/test-auc.R "Confirm BLQ in the middle or end are calculated correctly" with
#   conc.blq=list(first="keep", middle="drop", last="keep"), conc=c(0, 2, 0, 1, 2, 1, 0, 0),
#   time=0:7, lambda.z=1:
#   linear:          AUCinf=1+3+1.5+1.5+1, AUClast=1+3+1.5+1.5, AUCall=1+3+1.5+1.5+0.5
#   lin up/log down: AUCinf=1+2/log(2)+1.5+1/log(2)+1, AUClast=1+2/log(2)+1.5+1/log(2),
#                    AUCall=1+2/log(2)+1.5+1/log(2)+0.5
BLQ_TIMES = np.arange(8.0)
BLQ_CONC = np.array([0, 2, 0, 1, 2, 1, 0, 0], dtype=float)


@pytest.mark.parametrize("method, last", [("linear", 1 + 3 + 1.5 + 1.5),
                                          ("lin-up/log-down", 1 + 2 / LN2 + 1.5 + 1 / LN2)])
def test_auclast_aucall_aucinf_with_blq_pknca(method, last):
    assert nca.auc_last(BLQ_TIMES, BLQ_CONC, method=method) == pytest.approx(last, rel=1e-14)
    assert nca.auc_all(BLQ_TIMES, BLQ_CONC, method=method) == pytest.approx(last + 0.5, rel=1e-14)
    assert nca.auc_inf(BLQ_TIMES, BLQ_CONC, method=method, lambda_z=1.0) == pytest.approx(last + 1, rel=1e-14)
    # a limit of quantification gives the same zeros (values below it are BLQ)
    conc = np.where(BLQ_CONC == 0, 0.01, BLQ_CONC)
    assert nca.auc_last(BLQ_TIMES, conc, method=method, lloq=0.1) == pytest.approx(last, rel=1e-14)
    assert nca.auc_all(BLQ_TIMES, conc, method=method, lloq=0.1) == pytest.approx(last + 0.5, rel=1e-14)


def test_aucall_equals_existing_auc_over_the_whole_grid():
    # the existing auc() covers the whole window like AUCall (an independent code path)
    rows = np.array([BLQ_CONC, [0, 1, 3, 2, 1, 0.5, 0.2, 0.0]])
    for method in nca.AUC_METHODS:
        np.testing.assert_allclose(nca.auc_all(BLQ_TIMES, rows, method=method, lloq=0.1),
                                   nca.auc(BLQ_TIMES, rows, method=method, lloq=0.1), rtol=1e-13)


def test_auc_edge_cases_pknca():
    # test-auc.R: conc=c(0, 1, 0), time=0:2, method="linear": AUClast=0.5, AUCall=1,
    #   AUCinf (lambda.z=1)=1.5; conc=c(0, 1, rep(0, 5)), time=0:6: the same values
    for t, c in (([0, 1, 2], [0, 1, 0]), (np.arange(7.0), [0, 1, 0, 0, 0, 0, 0])):
        assert nca.auc_last(t, c, method="linear") == 0.5
        assert nca.auc_all(t, c, method="linear") == 1.0
        assert nca.auc_inf(t, c, method="linear", lambda_z=1.0) == 1.5
    # test-auc.R: all concentrations 0 -> 0; a single concentration -> NA
    assert nca.auc_last([2, 3], [0, 0]) == 0.0 and nca.auc_inf([2, 3], [0, 0], lambda_z=1.0) == 0.0
    assert np.isnan(nca.auc_last([0.0, 1.0], [1.0, 2.0], start=0.5))


def test_aumc_pknca():
    # test-auc.R "pk.calc.aumc": conc=c(0, 1, 1, 0.5), time=0:3, interval=c(0, 3):
    #   linear: 3.75; lin up/log down: 2-0.5/log(0.5)+0.5/(log(0.5)^2);
    #   AUCinf with lambda.z=1 (lin up/log down): 2-0.5/log(0.5)+0.5/(log(0.5)^2)+1.5+0.5
    t, c = np.arange(4.0), np.array([0, 1, 1, 0.5])
    log_last = 2 - 0.5 / math.log(0.5) + 0.5 / math.log(0.5) ** 2
    assert nca.aumc(t, c, method="linear") == pytest.approx(3.75, rel=1e-14)
    assert nca.aumc(t, c) == pytest.approx(log_last, rel=1e-14)
    assert nca.aumc(t, c, kind="inf_obs", lambda_z=1.0) == pytest.approx(log_last + 1.5 + 0.5, rel=1e-14)


def test_mrt_pknca_formula():
    # test-pk.calc.simple.R: pk.calc.mrt(auc=1, aumc=2) == 2 (MRT = AUMC / AUC)
    t, c = np.arange(4.0), np.array([0, 1, 1, 0.5])
    assert nca.mrt(t, c, kind="last", method="linear") == pytest.approx(3.75 / (0.5 + 1 + 0.75), rel=1e-14)
    assert np.isnan(nca.mrt([0.0, 1.0, 2.0], [0.0, 0.0, 0.0], kind="last"))  # AUC 0: no MRT


# ----------------------------------------------------------------------------------------
# analytic cases
# ----------------------------------------------------------------------------------------

def test_mono_exponential_gives_k_exactly_and_closed_form_areas():
    k, c0 = 0.23, 50.0
    t = np.array([0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 18.0, 24.0])
    c = c0 * np.exp(-k * t)
    fit = nca.lambda_z(t, c)
    assert fit.lambda_z == pytest.approx(k, rel=1e-12)
    assert fit.half_life == pytest.approx(LN2 / k, rel=1e-12)
    assert fit.n_points == t.size - 1  # every point after Tmax (t = 0): the most points win ties
    assert fit.r_squared == pytest.approx(1.0, abs=1e-12)
    assert fit.intercept == pytest.approx(math.log(c0), rel=1e-12)
    assert fit.clast_pred == pytest.approx(c[-1], rel=1e-12)
    # the log-down trapezoid is exact, so AUCinf = C0 / k and MRT = 1 / k, AUMCinf = C0 / k^2
    assert nca.auc_inf(t, c) == pytest.approx(c0 / k, rel=1e-12)
    assert nca.auc_inf(t, c, kind="pred") == pytest.approx(c0 / k, rel=1e-12)
    assert nca.aumc(t, c, kind="inf_obs") == pytest.approx(c0 / k ** 2, rel=1e-12)
    assert nca.mrt(t, c) == pytest.approx(1 / k, rel=1e-12)
    last = c0 / k * (1 - math.exp(-k * 24.0))
    assert nca.auc_last(t, c) == pytest.approx(last, rel=1e-12)
    # moments about the window's start: the decay from day 5 has MRT 1/k again
    assert nca.mrt(t, c, start=5.0) == pytest.approx(1 / k, rel=1e-12)


def _pknca_reference(t, c, min_points=3, factor=1e-4):
    """A direct transcription of pk.calc.half.life (R/half.life.R) with numpy.polyfit: fits of
    the last i points after Tmax for i = min.hl.points..n, mask_best = lambda.z > 0 &
    adj.r.squared > max(adj.r.squared) - factor, then the most points."""
    t, c = np.asarray(t, float), np.asarray(c, float)
    keep = (t > t[np.argmax(c)]) & (c > 0)
    t, y = t[keep][::-1], np.log(c[keep])[::-1]  # order(-time)
    fits = []
    for i in range(min_points, t.size + 1):
        slope, icpt = np.polyfit(t[:i], y[:i], 1)
        resid = y[:i] - (icpt + slope * t[:i])
        r2 = 1 - np.sum(resid ** 2) / np.sum((y[:i] - y[:i].mean()) ** 2)
        fits.append((-slope, 1 - (1 - r2) * (i - 1) / (i - 2), i))
    best = max(f[1] for f in fits)
    ok = [f for f in fits if f[0] > 0 and f[1] > best - factor]
    return max(ok, key=lambda f: f[2]) if ok else None


def test_terminal_phase_of_a_biexponential_follows_the_rule_and_rows_are_independent():
    # rise to a peak at day 1, then fast (k=1.5) and slow (k=0.05) phases; a second row is a
    # plain decay and a third row has a NaN
    t = np.concatenate([[0.0, 1.0], np.arange(2.0, 61.0, 2.0)])
    late = t[t >= 1]
    peak = 100 * np.exp(-1.5 * (late - 1)) + 2 * np.exp(-0.05 * (late - 1))
    row0 = np.concatenate([[0.0], peak])
    row1 = 10 * np.exp(-0.1 * t)
    row2 = row1.copy()
    row2[5] = np.nan
    fit = nca.lambda_z(t, np.vstack([row0, row1, row2]))
    lam, _, n_ref = _pknca_reference(t, row0)
    assert fit.n_points[0] == n_ref and fit.lambda_z[0] == pytest.approx(lam, rel=1e-10)
    assert fit.lambda_z[0] == pytest.approx(0.05, rel=5e-3)  # close to the slow phase
    assert fit.time_first[0] >= 4.0  # the fast phase is (mostly) left out
    assert fit.lambda_z[1] == pytest.approx(0.1, rel=1e-12)
    assert np.isnan(fit.lambda_z[2]) and np.isnan(fit.half_life[2])
    # one row at a time gives the same numbers
    assert nca.lambda_z(t, row0).lambda_z == fit.lambda_z[0]


def test_point_selection_matches_a_transcription_of_pknca_on_noisy_curves():
    rng = np.random.default_rng(3)
    t = np.array([0.0, 0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24, 36, 48])
    rows = []
    for _ in range(40):
        ka, k = rng.uniform(0.8, 3.0), rng.uniform(0.05, 0.4)
        c = (np.exp(-k * t) - np.exp(-ka * t)) * np.exp(rng.normal(0, 0.15, t.size))
        rows.append(np.where(t == 0, 0.0, c))
    rows = np.array(rows)
    fit = nca.lambda_z(t, rows)
    for i, c in enumerate(rows):
        ref = _pknca_reference(t, c)
        if ref is None:
            assert np.isnan(fit.lambda_z[i])
        else:
            assert fit.n_points[i] == ref[2] and fit.lambda_z[i] == pytest.approx(ref[0], rel=1e-9)
            assert fit.adj_r_squared[i] == pytest.approx(ref[1], rel=1e-9)


def test_no_fit_when_rising_or_flat_and_blq_points_are_left_out():
    t = np.arange(6.0)
    assert np.isnan(nca.lambda_z(t, np.exp(0.1 * t)).lambda_z)  # Tmax is the last point
    assert np.isnan(nca.lambda_z(t, [5.0, 4.0, 4.0, 4.0, 4.0, 4.0]).lambda_z)  # flat: lambda_z = 0
    assert np.isnan(nca.auc_inf(t, [5.0, 4.0, 4.0, 4.0, 4.0, 4.0]))
    # values below the LLOQ at the end do not enter the fit
    c = 8.0 * 0.5 ** t
    c_blq = c.copy()
    c_blq[-1] = 0.01
    fit = nca.lambda_z(t, c_blq, lloq=0.2)
    assert fit.tlast == 4.0 and fit.n_points == 4 and fit.half_life == pytest.approx(1.0, rel=1e-12)
    assert fit.clast_obs == pytest.approx(0.5)


def test_selection_rule_uses_the_best_adjusted_r2_of_all_fits():
    # PKNCA keeps the fit with the most points whose adjusted r2 is within the factor of the
    # best one; a large factor lets the 5-point fit (with the curved early point) win
    t = np.arange(6.0)
    c = np.array([10.0, 6.0, 2.0, 1.0, 0.5, 0.25])
    tight = nca.lambda_z(t, c)
    loose = nca.lambda_z(t, c, adj_r2_factor=0.5)
    assert tight.n_points == 4 and tight.half_life == pytest.approx(1.0, rel=1e-12)
    assert loose.n_points == 5
    # independent check of the 5-point fit
    slope, _ = np.polyfit(t[1:], np.log(c[1:]), 1)
    assert loose.lambda_z == pytest.approx(-slope, rel=1e-12)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="min_points"):
        nca.lambda_z([0, 1, 2], [3, 2, 1], min_points=1)
    with pytest.raises(ValueError, match="kind"):
        nca.auc_inf([0, 1, 2], [3, 2, 1], kind="observed")
    with pytest.raises(ValueError, match="method"):
        nca.auc_last([0, 1, 2], [3, 2, 1], method="lin-log")
