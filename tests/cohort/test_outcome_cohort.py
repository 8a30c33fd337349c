"""OutcomeCohort: a cohort simulated once, its endpoints recomputed under other outcome-link values,
against run_cohort (the reference: a fresh simulation with those values)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carkinetics.cohort.chunk import CohortError
from carkinetics.cohort.pipeline import OutcomeCohort, run_cohort
from carkinetics.scenario.load import load_scenario

ROOT = Path(__file__).resolve().parents[2]
S1 = ROOT / "scenarios" / "seed_s1_pan2024_cd5.toml"


@pytest.fixture(scope="module")
def s1():
    return load_scenario(S1)


@pytest.fixture(scope="module")
def cohort(s1):
    return OutcomeCohort(s1, 48, 11)


def test_same_table_as_a_fresh_simulation(s1, cohort):
    over = {"infection_death_rate": 0.004, "crs_severe_odds": 2.0, "tma_death_rate": 0.002, "gvhd_scale": 30.0}
    reused = cohort.patients(over)
    fresh = run_cohort(s1, 48, 11, parameters=over, bands=False).patients
    pd.testing.assert_frame_equal(reused, fresh)
    base = cohort.patients()
    assert not base["died_of_infection"].equals(reused["died_of_infection"])  # the links did change something


def test_a_kinetic_parameter_is_refused(cohort):
    with pytest.raises(CohortError, match="change the simulated patients"):
        cohort.patients({"kill_max": 2.0})


def test_infection_deaths_rise_with_the_link_patient_by_patient(cohort):
    # common random numbers: a higher hazard brings each patient's infection death earlier, and
    # the other causes stay put, so every death of the lower rate is one of the higher rate
    low = cohort.patients({"infection_death_rate": 5e-4})["died_of_infection"].to_numpy()
    high = cohort.patients({"infection_death_rate": 5e-3})["died_of_infection"].to_numpy()
    ok = ~np.isnan(low)
    assert np.all(high[ok] >= low[ok]) and high[ok].sum() > low[ok].sum()


def test_crs_grade3_follows_the_logistic_link_of_the_peak(s1):
    """Share of grade >= 3 CRS = mean of odds r^s / (1 + odds r^s) over the patients' simulated
    peaks (r = peak / reference), computed here with numpy: within 4 binomial standard errors."""
    cohort = OutcomeCohort(s1, 300, 3)
    odds, s, ref = 0.5, 1.0, 100.0
    table = cohort.patients({"crs_severe_odds": odds, "crs_peak_exponent": s})
    infused = table["car_detected"] == 1
    peak = table.loc[infused, "car_peak"].to_numpy()
    q = odds * (peak / ref) ** s
    p = q / (1 + q)
    got = table.loc[infused, "crs_grade3plus"].to_numpy()
    se = np.sqrt(np.sum(p * (1 - p))) / p.size
    assert abs(got.mean() - p.mean()) < 4 * se
    # the sign: patients above the median peak have more grade >= 3 CRS than those below
    above = peak > np.median(peak)
    assert got[above].mean() > got[~above].mean()


@pytest.mark.parametrize("parameter, column, low, high", [
    ("tma_death_rate", "other_nrm_death_event", 1e-4, 2e-3),
    ("leukaemia_death_rate", "leukaemia_death_event", 0.005, 0.1),
    ("gvhd_scale", "gvhd_any_event", 1.0, 30.0),
    ("gvhd_grade2plus_share", "gvhd_grade2plus", 0.1, 0.9),
    ("serious_infection_rate", "serious_infection", 1e-3, 3e-2),
    ("viral_reactivation_rate", "viral_reactivation", 1e-3, 3e-2),
    ("crs_any_odds", "crs_any", 0.5, 20.0),
    ("crs_severe_odds", "crs_grade3plus", 0.05, 1.0),
    ("icans_odds", "icans_any", 0.05, 1.0),
])
def test_the_sign_of_every_link(cohort, parameter, column, low, high):
    """Each link raises its own event patient by patient (common random numbers: the same
    uniform decides the event at both values), and strictly for some patient."""
    a = cohort.patients({parameter: low})[column].to_numpy()
    b = cohort.patients({parameter: high})[column].to_numpy()
    ok = ~np.isnan(a) & ~np.isnan(b)
    assert np.all(b[ok] >= a[ok]) and b[ok].sum() > a[ok].sum()
