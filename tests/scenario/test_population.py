"""Virtual populations (issue 3, part 1): variability, correlation, covariates, arms, variables.

Sampled distributions are compared with scipy's and with the requested moments, with
tolerances of several standard errors at the sample sizes used; reproducibility is
checked bit for bit.
"""

import math

import numpy as np
import pytest
from scipy import stats

from carkinetics import ScenarioError
from carkinetics.scenario.sampling import BLOCK, cohort_design, sample_population
from carkinetics.scenario.load import load_scenario

from conftest import DATA

LINEAR = str(DATA / "models" / "linear.toml")
SCEN = DATA / "scenarios"


def _problems(exc_info):
    return "\n".join(str(p) for p in exc_info.value.problems)


# ---------------------------------------------------------------------------------------
# variability and correlation
# ---------------------------------------------------------------------------------------


def test_log_normal_sds_and_correlations_match_the_request(inline_scenario):
    sc = inline_scenario(population={
        "variability": {"k_ab": 0.5, "k_ba": 0.25, "k_bc": 0.0, "decay_c": 0.4},
        "correlation": {"parameters": ["k_ab", "k_ba", "decay_c"],
                        "matrix": [[1, 0.6, -0.3], [0.6, 1, 0.2], [-0.3, 0.2, 1]]}})
    n = 200_000
    df = sample_population(sc, n, seed=3)
    m = sc.model
    logs = {p: np.log(df[f"param_{p}"].to_numpy()) for p in ("k_ab", "k_ba", "decay_c")}
    # SD of a normal sample: standard error sd / sqrt(2 n) (0.16% here); allow 1%
    for p, sd in (("k_ab", 0.5), ("k_ba", 0.25), ("decay_c", 0.4)):
        assert np.std(logs[p]) == pytest.approx(sd, rel=0.01)
        # median of a log-normal = the typical value (SE of the mean of logs: sd / sqrt(n))
        assert np.mean(logs[p]) == pytest.approx(math.log(m.parameter(p).value), abs=4 * sd / math.sqrt(n))
    # correlation: standard error (1 - r^2) / sqrt(n) < 0.0023; allow 0.01
    r = np.corrcoef(np.stack([logs["k_ab"], logs["k_ba"], logs["decay_c"]]))
    np.testing.assert_allclose(r, [[1, 0.6, -0.3], [0.6, 1, 0.2], [-0.3, 0.2, 1]], atol=0.01)
    # SD 0: exactly the typical value; untouched parameters too
    assert np.all(df["param_k_bc"] == m.parameter("k_bc").value)
    assert np.all(df["param_growth_a"] == m.parameter("growth_a").value)


def test_model_variability_is_the_default_and_can_be_switched_off(inline_scenario):
    sc = inline_scenario()
    df = sample_population(sc, 100_000, seed=5)
    # linear.toml: iiv_log_sd = 0.3 for k_ab and k_bc, none for the others
    for p in ("k_ab", "k_bc"):
        assert np.std(np.log(df[f"param_{p}"])) == pytest.approx(0.3, rel=0.015)
    assert df["param_k_ba"].nunique() == 1
    off = inline_scenario(population={"model_variability": False, "variability": {"k_ba": 0.1}})
    df = sample_population(off, 50_000, seed=5)
    assert df["param_k_ab"].nunique() == 1 and df["param_k_bc"].nunique() == 1
    assert np.std(np.log(df["param_k_ba"])) == pytest.approx(0.1, rel=0.02)


def test_covariance_gives_the_sds_on_its_diagonal(inline_scenario):
    cov = [[0.25, 0.05], [0.05, 0.04]]  # SDs 0.5 and 0.2, correlation 0.5
    sc = inline_scenario(population={"covariance": {"parameters": ["k_ab", "k_ba"], "matrix": cov}})
    df = sample_population(sc, 200_000, seed=9)
    x = np.log(df[["param_k_ab", "param_k_ba"]].to_numpy())
    np.testing.assert_allclose(np.cov(x.T), cov, rtol=0.02, atol=5e-4)


def test_values_are_clipped_to_the_model_bounds_and_counted(inline_scenario):
    # k_ab bounds [0, 10]; typical 0.3 with SD 2: P(> 10) = 1 - Phi(ln(33.3) / 2) = 4.0%
    sc = inline_scenario(population={"variability": {"k_ab": 2.0}})
    design = cohort_design(sc, 1)
    draws = design.draw(0, 50_000)
    k_ab = draws.parameters[:, sc.model.parameter_index("k_ab")]
    assert k_ab.max() == 10.0
    expected = stats.norm.sf(math.log(10 / 0.3) / 2.0)
    n_clipped = draws.n_clipped[sc.model.parameter_index("k_ab")]
    assert n_clipped == np.sum(k_ab == 10.0)
    assert n_clipped / 50_000 == pytest.approx(expected, abs=4 * math.sqrt(expected / 50_000))


# ---------------------------------------------------------------------------------------
# covariates
# ---------------------------------------------------------------------------------------

_COVARIATES = {
    "w_normal": ({"distribution": "normal", "mean": 70, "sd": 12}, stats.norm(70, 12)),
    "w_trunc": ({"distribution": "truncnormal", "mean": 70, "sd": 12, "lower": 60, "upper": 100},
                stats.truncnorm((60 - 70) / 12, (100 - 70) / 12, loc=70, scale=12)),
    "blasts": ({"distribution": "lognormal", "median": 1e9, "sd_log": 1.2}, stats.lognorm(1.2, scale=1e9)),
    "lymph": ({"distribution": "lognormal", "geometric_mean": 800, "geometric_sd": 2.0},
              stats.lognorm(math.log(2.0), scale=800)),
    "u": ({"distribution": "uniform", "lower": 2, "upper": 5}, stats.uniform(2, 3)),
    "lu": ({"distribution": "loguniform", "lower": 1e5, "upper": 1e7}, stats.loguniform(1e5, 1e7)),
    "frac": ({"distribution": "beta", "alpha": 2, "beta": 5}, stats.beta(2, 5)),
    "frac_t": ({"distribution": "beta", "alpha": 2, "beta": 5, "upper": 0.5}, None),  # CDF below
}


def test_covariates_follow_their_distributions(inline_scenario):
    n = 40_000
    pop = {"covariates": {k: v[0] for k, v in _COVARIATES.items()}}
    df = sample_population(inline_scenario(population=pop), n, seed=21)
    # Kolmogorov-Smirnov: the 0.1% critical value of D is 1.95 / sqrt(n)
    crit = 1.95 / math.sqrt(n)
    for name, (_, dist) in _COVARIATES.items():
        x = df[name].to_numpy()
        if dist is None:  # truncated beta by hand: CDF renormalised on [0, 0.5]
            ref = stats.beta(2, 5)

            def cdf(v, ref=ref):
                return ref.cdf(np.minimum(v, 0.5)) / ref.cdf(0.5)
        else:
            cdf = dist.cdf
        assert stats.kstest(x, cdf).statistic < crit, name
    assert df["w_trunc"].between(60, 100).all()
    assert df["frac_t"].max() <= 0.5


def test_lognormal_from_arithmetic_mean_and_sd(inline_scenario):
    df = sample_population(inline_scenario(population={"covariates": {
        "weight": {"distribution": "lognormal", "mean": 40.0, "sd": 20.0}}}), 200_000, seed=2)
    # arithmetic moments of the sample: SE of the mean 20 / sqrt(n) = 0.045
    assert df["weight"].mean() == pytest.approx(40.0, abs=0.25)
    assert df["weight"].std() == pytest.approx(20.0, rel=0.03)


def test_discrete_covariates(inline_scenario):
    n = 100_000
    df = sample_population(inline_scenario(population={"covariates": {
        "prior_hsct": {"distribution": "bernoulli", "p": 0.3},
        "grade": {"distribution": "categorical", "values": [1, 2, 4], "probabilities": [0.5, 0.3, 0.2]},
        "site": {"distribution": "choice", "values": [7, 8]},
        "dose": {"distribution": "constant", "value": 2.5}}}), n, seed=4)
    se = lambda p: math.sqrt(p * (1 - p) / n)  # noqa: E731
    assert set(df["prior_hsct"].unique()) == {0.0, 1.0}
    assert df["prior_hsct"].mean() == pytest.approx(0.3, abs=4 * se(0.3))
    for v, p in ((1, 0.5), (2, 0.3), (4, 0.2)):
        assert (df["grade"] == v).mean() == pytest.approx(p, abs=4 * se(p))
    assert (df["site"] == 7).mean() == pytest.approx(0.5, abs=4 * se(0.5))
    assert (df["dose"] == 2.5).all()


def test_covariates_and_variables_in_parameter_expressions(inline_scenario):
    sc = inline_scenario(
        variables={"reference_weight": 60.0},
        population={"model_variability": False,
                    "covariates": {"weight": {"distribution": "uniform", "lower": 30, "upper": 90}},
                    "parameters": {"decay_c": "decay_c * (weight / reference_weight) ** 0.75"}})
    df = sample_population(sc, 1000, seed=1)
    typical = sc.model.parameter("decay_c").value
    np.testing.assert_allclose(df["param_decay_c"], typical * (df["weight"] / 60.0) ** 0.75, rtol=1e-14)
    # a run-time override of the variable
    df2 = sample_population(sc, 1000, seed=1, variables={"reference_weight": 30.0})
    np.testing.assert_allclose(df2["param_decay_c"], typical * (df2["weight"] / 30.0) ** 0.75, rtol=1e-14)


# ---------------------------------------------------------------------------------------
# arms
# ---------------------------------------------------------------------------------------


def _arm_scenario(build):
    return build(
        variables={"dose": 1.0},
        population={"model_variability": False, "variability": {"k_ab": 0.3},
                    "covariates": {"weight": {"distribution": "uniform", "lower": 40, "upper": 80}},
                    "parameters": {"k_bc": "k_bc * weight / 60"}},
        arms={"previous_donor": {"share": 3},
              "new_donor": {"share": 1, "parameters": {"k_bc": 0.2, "growth_a": "growth_a * 2 + dose"},
                            "variables": {"dose": 0.5}}})


def test_arm_shares_and_parameters(inline_scenario):
    sc = _arm_scenario(inline_scenario)
    n = 40_000
    df = sample_population(sc, n, seed=8)
    p_new = 0.25
    assert (df["arm"] == "new_donor").mean() == pytest.approx(p_new, abs=4 * math.sqrt(p_new * (1 - p_new) / n))
    m = sc.model
    new = df["arm"] == "new_donor"
    # arm value first, then the covariate expression on it, then variability (none on k_bc)
    np.testing.assert_allclose(df.loc[new, "param_k_bc"], 0.2 * df.loc[new, "weight"] / 60, rtol=1e-14)
    np.testing.assert_allclose(df.loc[~new, "param_k_bc"], m.parameter("k_bc").value * df.loc[~new, "weight"] / 60,
                               rtol=1e-14)
    # the arm's expression sees the typical value and the arm's own variables
    assert np.all(df.loc[new, "param_growth_a"] == m.parameter("growth_a").value * 2 + 0.5)
    assert np.all(df.loc[~new, "param_growth_a"] == m.parameter("growth_a").value)


def test_arm_subset_renormalises_and_keeps_patients(inline_scenario):
    sc = _arm_scenario(inline_scenario)
    only = sample_population(sc, 2000, seed=8, arms=["new_donor"])
    assert (only["arm"] == "new_donor").all()
    both = sample_population(sc, 2000, seed=8)
    # covariates and variability do not depend on the arm assignment
    np.testing.assert_array_equal(only["weight"], both["weight"])
    np.testing.assert_array_equal(only["param_k_ab"], both["param_k_ab"])


def test_unknown_overrides_are_refused(inline_scenario):
    sc = _arm_scenario(inline_scenario)
    with pytest.raises(ScenarioError) as info:
        cohort_design(sc, 1, variables={"dosee": 2.0}, parameters={"k_abb": 1.0}, arms=["new_donr"])
    text = _problems(info)
    assert "variables.dosee: 'dosee' is not a variable of this scenario (did you mean 'dose'?)" in text
    assert "parameters.k_abb: 'k_abb' is not a parameter of model 'linear' (did you mean 'k_ab'?)" in text
    assert "arms: 'new_donr' is not an arm of this scenario (did you mean 'new_donor'?)" in text


# ---------------------------------------------------------------------------------------
# reproducible random streams
# ---------------------------------------------------------------------------------------


def test_any_split_of_the_patients_gives_the_same_draws(inline_scenario):
    sc = _arm_scenario(inline_scenario)
    design = cohort_design(sc, 123)
    n = 2 * BLOCK + 777
    whole = design.draw(0, n)
    cuts = [0, 1, 999, BLOCK - 1, BLOCK + 5, 2 * BLOCK, n]
    parts = [design.draw(a, b) for a, b in zip(cuts[:-1], cuts[1:])]
    np.testing.assert_array_equal(np.concatenate([p.parameters for p in parts]), whole.parameters)
    np.testing.assert_array_equal(np.concatenate([p.arm for p in parts]), whole.arm)
    np.testing.assert_array_equal(np.concatenate([p.covariates["weight"] for p in parts]), whole.covariates["weight"])
    np.testing.assert_array_equal(np.concatenate([design.uniforms(a, b, 3) for a, b in zip(cuts[:-1], cuts[1:])]),
                                  design.uniforms(0, n, 3))
    # a design keeps the last block of each stream: chunks asked for out of order, one block
    # twice, by a fresh design, are still the same patients (nothing drawn changes a kept block)
    fresh = cohort_design(sc, 123)
    for k in (4, 0, 1, 5, 2, 3, 2):
        a, b = cuts[k], cuts[k + 1]
        drawn = fresh.draw(a, b)
        drawn.parameters *= 2.0  # a caller changing its draws in place
        np.testing.assert_array_equal(fresh.draw(a, b).parameters, whole.parameters[a:b])
        np.testing.assert_array_equal(fresh.uniforms(a, b, 3), design.uniforms(0, n, 3)[a:b])
    # another seed, other patients
    other = cohort_design(sc, 124).draw(0, 100)
    assert not np.array_equal(other.parameters, whole.parameters[:100])


def test_streams_are_separate(inline_scenario):
    base = inline_scenario(population={"variability": {"k_ab": 0.4}})
    more = inline_scenario(population={"variability": {"k_ab": 0.4, "k_ba": 0.2},
                                 "covariates": {"weight": {"distribution": "normal", "mean": 70, "sd": 10}}},
                     arms={"x": {"share": 1}, "y": {"share": 1}})
    a = sample_population(base, 5000, seed=77)
    b = sample_population(more, 5000, seed=77)
    # adding variability elsewhere, a covariate and arms leaves k_ab of every patient unchanged
    np.testing.assert_array_equal(a["param_k_ab"], b["param_k_ab"])
    # uniforms of the first random event do not depend on how many there are
    d = cohort_design(base, 77)
    np.testing.assert_array_equal(d.uniforms(0, 100, 1)[:, 0], d.uniforms(0, 100, 4)[:, 0])


def test_seed_from_the_scenario_or_fresh(inline_scenario):
    sc = load_scenario(SCEN / "cohort_linear.toml")
    assert cohort_design(sc).seed == 11
    assert cohort_design(sc, 5).seed == 5
    fresh = inline_scenario()
    s1, s2 = cohort_design(fresh).seed, cohort_design(fresh).seed
    assert s1 != s2 and s1 >= 0


# ---------------------------------------------------------------------------------------
# scenario sections: variables in events, bad sections
# ---------------------------------------------------------------------------------------


def test_variables_and_typical_covariates_in_the_typical_schedule(inline_scenario):
    sc = inline_scenario(variables={"dose_per_kg": 1e4, "day": {"value": 12, "unit": "day"}},
                   population={"covariates": {"weight": {"distribution": "lognormal", "median": 65,
                                                         "sd_log": 0.3, "lower": 20}}},
                   events=[{"name": "dose", "time": "day", "add": {"a": "dose_per_kg * weight"}}])
    event = sc.schedule()[0]
    assert event.time == 12
    # the typical patient has the median weight: the truncation at 20 kg (z = -3.9) moves it
    # by a tiny amount, computed here from the truncated CDF
    z_lo = math.log(20 / 65) / 0.3
    median = 65 * math.exp(0.3 * stats.norm.ppf(stats.norm.cdf(z_lo) + 0.5 * stats.norm.sf(z_lo)))
    assert event.actions[0].value == pytest.approx(1e4 * median, rel=1e-12)


def test_sections_are_parsed_in_schema_order_whatever_the_file_order(inline_scenario):
    # [sweep] comes before [variables] in the file; variables are still parsed first, so a sweep
    # axis on a variable that was refused is refused too (it once depended on the import order).
    with pytest.raises(ScenarioError) as info:
        inline_scenario(sweep={"axes": {"dose": [1, 2]}}, variables={"dose": "x"})
    assert _problems(info).splitlines() == [
        "variables.dose: expected a finite number, got 'x'",
        "sweep.axes.dose: 'dose' is not a [variables] entry, a parameter of model 'linear', or 'arm'; for named "
        "option sets write a table [sweep.axes.dose] with one sub-table per option"]


def test_bad_population_sections_are_all_reported():
    with pytest.raises(ScenarioError) as info:
        load_scenario(SCEN / "population_bad.toml")
    text = _problems(info)
    expected = [
        "variables.k_ab: variable 'k_ab' has the name of a parameter",
        "variables.dose: expected a finite number, got 'lots'",
        "population.sise: 'sise' is not a key of [population] (did you mean 'size'?)",
        "population.size: expected a whole number of patients >= 1, got 0",
        "population.seed: expected a whole number >= 0, got -1",
        "population.variability.k_abb: 'k_abb' is not a parameter of model 'linear' (did you mean 'k_ab'?)",
        "population.variability.k_bc: expected a log-normal SD >= 0",
        "population.covariates.weight.distribution: unknown distribution 'lognormall'; expected one of",
        "(did you mean 'lognormal'?)",
        "population.covariates.height.sd_log: missing",
        "population.covariates.k_ba: covariate 'k_ba' has the name of a parameter",
        "population.covariates.age.upper: upper = 5 must be greater than lower = 10",
        "population.covariates.sex.probabilities: expected 2 probabilities >= 0 that sum to 1, got [0.5, 0.6]",
        "population.covariates.bmi: a truncnormal covariate needs lower and/or upper",
        "population.covariates.score.scale: 'scale' is not a key of a normal covariate",
        "population.correlation.parameters: 'k_ba' has no between-patient variability (SD 0)",
        "population.parameters.decay_c: unknown name 'wieght'",
        "arms.all: 'all' is reserved for the whole cohort",
        "arms.donor.share: expected the arm's share of the cohort (a number > 0",
        "arms.donor.parameters.growth_b: 'growth_b' is not a parameter of model 'linear' (did you mean 'growth_a'?)",
        "arms.donor.variables.dose_per_kg: 'dose_per_kg' is not a variable of this scenario",
        "events[0].arms: 'donr' is not an arm of this scenario (did you mean 'donor'?)",
        "events[0].add.a: unknown name 'dose_per_kg'",
    ]
    for e in expected:
        assert e in text, e


def test_correlation_matrix_not_positive_definite():
    with pytest.raises(ScenarioError, match=r"population\.correlation\.matrix: the correlation matrix is not positive "
                                            r"definite \(smallest eigenvalue of the correlation -0\.8\)"):
        load_scenario(SCEN / "population_notpd.toml")


@pytest.mark.parametrize("block, message", [
    ({"parameters": ["k_ab", "k_bc"], "matrix": [[1, 0.5], [0.4, 1]]}, "the matrix is not symmetric: row 1, column 2"),
    ({"parameters": ["k_ab", "k_bc"], "matrix": [[2, 0.5], [0.5, 1]]}, "a correlation matrix has 1 on the diagonal"),
    ({"parameters": ["k_ab", "k_bc"], "matrix": [[1, 0.5]]}, "expected a 2 x 2 matrix of numbers"),
    ({"parameters": ["k_ab"], "matrix": [[1]]}, "expected a list of at least two distinct parameter names"),
    ({"parameters": ["k_ab", "k_bcc"], "matrix": [[1, 0], [0, 1]]}, "'k_bcc' is not a parameter of model 'linear'"),
])
def test_bad_correlation_blocks(inline_scenario, block, message):
    with pytest.raises(ScenarioError, match="population.correlation") as info:
        inline_scenario(population={"correlation": block})
    assert message in _problems(info)


def test_covariance_and_variability_for_the_same_parameter(inline_scenario):
    with pytest.raises(ScenarioError) as info:
        inline_scenario(population={"variability": {"k_ab": 0.1},
                              "covariance": {"parameters": ["k_ab", "k_bc"], "matrix": [[0.1, 0], [0, 0.1]]}})
    assert "the SD of 'k_ab' is given twice" in _problems(info)


def test_lognormal_from_a_huge_arithmetic_sd_does_not_overflow(inline_scenario):
    # (sd / mean) ** 2 overflows a float for sd / mean > 1e154 (it raised OverflowError); the
    # exact conversion: median = mean / sqrt(1 + cv^2) = 1e-300, sd_log = sqrt(log(1 + cv^2))
    # = sqrt(2 log 1e300) to double precision.
    sc = inline_scenario(population={"size": 10, "covariates": {
        "weight": {"distribution": "lognormal", "mean": 1.0, "sd": 1e300}}})
    params = sc.population.covariates["weight"].params
    assert params["median"] == pytest.approx(1e-300, rel=1e-12)
    assert params["sd_log"] == pytest.approx(math.sqrt(2 * math.log(1e300)), rel=1e-12)


# ---------------------------------------------------------------------------------------
# an arm's parameter set
# ---------------------------------------------------------------------------------------


def _two_arm_scenario(tmp_path, boost_arm):
    """cohort_linear.toml with its boost arm replaced by ``boost_arm`` (TOML lines), in tmp_path."""
    text = (SCEN / "cohort_linear.toml").read_text()
    old = 'parameters = { growth_a = 0.0 }\nvariables = { dose_per_kg = 2.0e4 }\n'
    assert old in text
    text = text.replace(old, boost_arm + 'variables = { dose_per_kg = 2.0e4 }\n')
    text = text.replace('"../models/linear.toml"', f'"{LINEAR}"')
    text = text.replace('"cohort_observations.csv"', f'"{SCEN / "cohort_observations.csv"}"')
    path = tmp_path / f"s{len(list(tmp_path.glob('s*.toml')))}.toml"
    path.write_text(text)
    return path


def test_arm_parameter_set_equals_the_values_written_in_the_arm(tmp_path):
    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "product.toml").write_text("# a calibrated product\n[parameters]\nk_ab = 0.6\n"
                                                   "growth_a = 0.01\n\n[calibration]\nobjective = 1.5\n")
    with_set = load_scenario(_two_arm_scenario(tmp_path, 'parameter_set = "sets/product.toml"\n'
                                                         'parameters = { growth_a = 0.0 }\n'))
    written = load_scenario(_two_arm_scenario(tmp_path, 'parameters = { k_ab = 0.6, growth_a = 0.0 }\n'))
    plain = load_scenario(_two_arm_scenario(tmp_path, 'parameters = { growth_a = 0.0 }\n'))
    arm = with_set.arms.arms["boost"]
    assert arm.parameter_set == tmp_path / "sets" / "product.toml"
    assert arm.parameters["growth_a"].value == 0.0  # the arm's own value over the set's 0.01
    a, b = sample_population(with_set, 400, seed=9), sample_population(written, 400, seed=9)
    c = sample_population(plain, 400, seed=9)
    assert a.equals(b)
    boost, control = a["arm"] == "boost", a["arm"] == "control"
    assert boost.sum() > 100 and control.sum() > 100
    # k_ab (log-normal SD 0.3 around its typical value) is 0.6 / 0.3 = 2x in the boost arm only
    np.testing.assert_allclose(a.loc[boost, "param_k_ab"], 2 * c.loc[boost, "param_k_ab"], rtol=1e-12)
    np.testing.assert_array_equal(a.loc[control, "param_k_ab"], c.loc[control, "param_k_ab"])
    assert (a.loc[boost, "param_growth_a"] == 0.0).all()


def test_bad_arm_parameter_sets_are_reported(tmp_path):
    (tmp_path / "bad.toml").write_text("[parameters]\nk_ab = 50.0\nk_abb = 1.0\n")
    for line, parts in (('parameter_set = "missing.toml"\n', ["arms.boost.parameter_set",
                                                              "parameter-set file 'missing.toml' not found"]),
                        ('parameter_set = 3\n', ["arms.boost.parameter_set", "expected the path"]),
                        ('parameter_set = "bad.toml"\n', ["arms.boost.parameter_set", "bad.toml",
                                                          "outside the model's bounds", "did you mean 'k_ab'"])):
        with pytest.raises(ScenarioError) as err:
            load_scenario(_two_arm_scenario(tmp_path, line))
        for part in parts:
            assert part in str(err.value), (part, str(err.value))
