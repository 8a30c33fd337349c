"""Naive baselines and scores of ``carkinetics validate``, against hand computations and scipy;
the basis of each row (input, hand-set, fitted, predicted) and the labels of the shipped seeds."""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from carkinetics.scenario.targets import TargetSpec
from carkinetics.stats import scores
from carkinetics.studies import baselines as bl
from carkinetics.studies.validate import basis_of, fitted_target_ids, seed_scenarios

REPO = Path(__file__).resolve().parents[2]


def _ref(rows):
    cols = ["target_id", "trial", "arm", "quantity", "statistic", "value", "lower", "upper", "k", "n"]
    return pd.DataFrame(rows, columns=cols)


REFERENCE = _ref([
    # trial S1: a whole arm and a subgroup of it
    ("a1", "Paper 1", "S1", "relapse", "proportion", 0.25, 0.1, 0.5, 4, 16),
    ("a1sub", "Paper 1", "S1-HSCT", "relapse", "proportion", 0.0, 0.0, 0.49, 0, 4),
    # trial S2 and its long-term follow-up: one trial
    ("b1", "Paper 2", "S2", "relapse", "proportion", 0.1, 0.03, 0.3, 2, 20),
    ("b2", "Paper 2b", "LTFU-S2", "relapse", "proportion", 0.3, 0.15, 0.54, 6, 20),
    # trial S3: a Kaplan-Meier estimate (no k), and a name of the same event pooled with another
    ("c1", "Paper 3", "S3", "relapse", "km_estimate", 0.4, 0.2, 0.6, None, 10),
    ("c2", "Paper 3", "S3", "crs_grade3", "proportion", 0.3, 0.1, 0.6, 3, 10),
    ("d1", "Paper 4", "S4", "crs_grade3_4", "proportion", 0.1, 0.03, 0.3, 2, 20),
    # a quantity only one trial reports
    ("e1", "Paper 4", "S4", "car_peak", "median", 300.0, None, None, None, 12),
])


def test_binomial_loglik_and_brier_against_scipy_and_patient_sums():
    for k, n, p in [(0, 16, 0.2), (7, 20, 0.35), (20, 20, 0.9), (3, 43, 0.01)]:
        assert scores.binomial_loglik(k, n, p) == pytest.approx(scipy.stats.binom.logpmf(k, n, p), rel=1e-12)
        outcomes = np.r_[np.ones(k), np.zeros(n - k)]
        assert scores.brier(k, n, p) == pytest.approx(np.mean((outcomes - p) ** 2), rel=1e-12)
    assert math.isnan(scores.binomial_loglik(1, float("nan"), 0.5)) and math.isnan(scores.brier(1, 0, 0.5))
    assert scores.shrunk(1.0, 999) == pytest.approx(999.5 / 1000) and scores.shrunk(0.0, 1) == 0.25


def test_trials_categories_and_the_pooled_rate_of_the_other_trials():
    assert [bl.trial_of(a) for a in ("S1", "S1-noHSCT", "LTFU-S2", "S5-CR-no2ndHSCT")] == ["S1", "S1", "S2", "S5"]
    assert bl.trial_of("tisa-responders", "Kymriah SmPC") == "Kymriah SmPC"
    assert bl.category("cr_or_cri") == "response" and bl.category("os") == "survival"
    assert bl.category("crs_grade3_4") == "toxicity" and bl.category("something_new") == "other"
    pool = bl._fraction_rows(REFERENCE)
    # for S2 (either of its rows): S1 by its whole arm (16, not the subgroup of 4) and S3 (k = 0.4 x 10)
    rate, n, trials = bl.pooled_rate(pool, "relapse", "S2")
    assert (rate, n, trials) == (pytest.approx((4 + 4) / (16 + 10)), 26.0, "S1,S3")
    # for S1: S2's larger row (ties: the first, b1) and S3
    rate, n, trials = bl.pooled_rate(pool, "relapse", "S1")
    assert rate == pytest.approx((2 + 4) / 30) and trials == "S2,S3"
    # grade 3 and grade 3-4 CRS are one event for pooling
    assert bl.pooled_rate(pool, "crs_grade3", "S3")[:2] == (pytest.approx(0.1), 20.0)
    assert bl.pooled_rate(pool, "crs_grade3_4", "S4")[:2] == (pytest.approx(0.3), 10.0)
    assert bl.pooled_rate(pool, "car_peak", "S1")[1] == 0.0


def _table(rows):
    cols = ["scenario", "target_id", "role", "basis", "statistic", "reported", "simulated", "n_simulated",
            "n_reported"]
    return pd.DataFrame(rows, columns=cols)


def test_scores_of_model_pooled_and_constant_and_their_sums():
    table = _table([
        ("s2", "b1", "outcome", "predicted", "proportion", 0.1, 0.1, 999, 20),
        ("s3", "c1", "outcome", "fitted", "km_estimate", 0.4, 0.9, 999, 10),
        ("s4", "e1", "outcome", "predicted", "median", 300.0, 310.0, 999, 12),
        ("s1", "a1", "input", "input", "proportion", 0.25, 0.25, 999, 16),
    ])
    scored = bl.score_rows(table, REFERENCE).set_index("target_id")
    p_model = (0.1 * 999 + 0.5) / 1000
    p_pooled = (8 + 0.5) / 27  # S1 4 of 16, S3 4 of 10
    assert scored.loc["b1", "loglik_model"] == pytest.approx(scipy.stats.binom.logpmf(2, 20, p_model))
    assert scored.loc["b1", "loglik_pooled"] == pytest.approx(scipy.stats.binom.logpmf(2, 20, p_pooled))
    assert scored.loc["b1", "loglik_constant"] == pytest.approx(scipy.stats.binom.logpmf(2, 20, 0.5))
    assert scored.loc["b1", "brier_model"] == pytest.approx((2 * (1 - p_model) ** 2 + 18 * p_model ** 2) / 20)
    # a Kaplan-Meier estimate without k: k = value x n, a fractional binomial
    from scipy.special import gammaln

    p9 = (0.9 * 999 + 0.5) / 1000
    expect = gammaln(11) - gammaln(5) - gammaln(7) + 4 * math.log(p9) + 6 * math.log(1 - p9)
    assert scored.loc["c1", "reported_k"] == pytest.approx(4.0)
    assert scored.loc["c1", "loglik_model"] == pytest.approx(expect)
    assert scored.loc["c1", "trial"] == "S3" and scored.loc["c1", "category"] == "relapse"
    # a median is not scored
    assert np.isnan(scored.loc["e1", ["loglik_model", "loglik_pooled", "brier_model"]].astype(float)).all()
    # sums over outcome rows scored by all three, by category; the input row is left out
    summary = bl.score_summary(scored.reset_index()).set_index("category")
    assert list(summary.index) == ["relapse", "all"] and summary.loc["all", "rows"] == 2
    assert summary.loc["all", "loglik_model"] == pytest.approx(scored.loc[["b1", "c1"], "loglik_model"].sum())
    assert summary.loc["all", "model_beats_pooled"] == 1  # b1 right on, c1 far off
    only = bl.score_summary(scored.reset_index(), basis=["predicted"]).set_index("category")
    assert only.loc["all", "rows"] == 1


def test_a_row_s_basis_and_the_record_of_the_fit(tmp_path):
    def spec(role="outcome", hand_set=""):
        return TargetSpec("t1", "cr", None, None, None, None, role, "", hand_set)

    assert basis_of(spec(role="input", hand_set="x 0.1"), {"t1"}) == "input"
    assert basis_of(spec(hand_set="x 0.1"), {"t1"}) == "hand-set"
    assert basis_of(spec(), {"t1"}) == "fitted" and basis_of(spec(), {"t2"}) == "predicted"

    folder = tmp_path / "calibrated"
    folder.mkdir()
    (folder / "product.toml").write_text("[parameters]\n")
    pd.DataFrame({"target_id": ["t1", "t2"], "weight": [1.0, 0.0]}).to_csv(folder / "comparison.csv", index=False)

    class Sc:
        path = tmp_path / "s.toml"
        parameter_sets = (folder / "product.toml", tmp_path / "elsewhere.toml")

    assert fitted_target_ids(Sc) == {"t1"}  # weight 0: not fitted; a set without a record: nothing


def test_hand_set_must_be_a_text(tmp_path):
    from carkinetics.errors import ScenarioError
    from carkinetics.scenario.load import load_scenario
    from conftest import DATA

    (tmp_path / "m.toml").write_text((DATA / "models" / "linear.toml").read_text())
    (tmp_path / "s.toml").write_text('[scenario]\nmodel = "m.toml"\n[times]\nend = 10\nstep = 1\n'
                                     '[targets.s2_cr]\nendpoint = "cr"\nhand_set = 0.1\n')
    with pytest.raises(ScenarioError) as err:
        load_scenario(tmp_path / "s.toml")
    assert "targets.s2_cr.hand_set" in str(err.value) and "expected a text" in str(err.value)


#: Clinical arguments of the vocabulary that are hazards or probabilities, and the endpoints they make.
_CLINICAL_ARGUMENTS = {
    "crs_grade3plus_at_reference": {"crs_grade3plus", "crs_g12"},
    "icans_at_reference": {"icans_any"},
    "gvhd_multiplier": {"gvhd_grade2plus"},
    "infection_death_hazard": {"died_of_infection"},
    "other_nrm_hazard": {"died_of_other_nrm"},
}


@pytest.mark.parametrize("path", seed_scenarios(), ids=lambda p: p.name)
def test_every_row_made_by_a_constant_set_in_the_scenario_says_so(path):
    """A target whose endpoint is a hazard or probability written as a number in the scenario, or a
    vocabulary endpoint whose clinical constant the scenario sets, is labelled ``hand_set``."""
    data = tomllib.loads(path.read_text())
    made = set()
    for name, ep in data.get("endpoints", {}).items():
        text = str(ep.get("hazard", ep.get("probability", "")))
        if ep.get("type") in ("hazard", "bernoulli") and re.search(r"\d", text):
            made.add(name)
    for arg, endpoints in _CLINICAL_ARGUMENTS.items():
        if arg in data.get("vocabulary", {}):
            made |= endpoints
    for tid, t in data.get("targets", {}).items():
        endpoint = re.sub(r"_event$", "", t["endpoint"])
        if endpoint in made and t.get("role") != "input":
            assert t.get("hand_set"), f"{path.name}: targets.{tid} ({endpoint}) is made by a hand-set constant"
