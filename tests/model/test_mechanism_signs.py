"""Expected signs of the T-ALL model's mechanisms (the probes of benchmarks/probe_mechanisms.py).

Each probe runs a seed scenario at a low and a high setting of one mechanism with the same
patients and random numbers; every expected sign the probe declares (from the literature or
the model's declared assumption) is asserted on a small cohort. The helpers that turn the
patient tables into differences and sign checks are tested against hand-computed values.
"""

from __future__ import annotations

import importlib.util
import math
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT

_PATH = ROOT / "benchmarks" / "probe_mechanisms.py"
_spec = importlib.util.spec_from_file_location("probe_mechanisms", _PATH)
pm = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("probe_mechanisms", pm)
_spec.loader.exec_module(pm)

N_PATIENTS = 300  # per setting; common random numbers make the signs robust at this size
#: Probes whose effect is small at the calibrated values: more patients, so that noise does not
#: cross the tolerance (dose: the median peak moves by -3 % [-6 %, +1 %] from 2.5e5 to 4e6/kg at
#: 1,500 patients with the version-2 calibration, -7 % [-15 %, +11 %] at 300).
PROBE_PATIENTS = {"dose": 1500}
#: Expected signs the calibrated model does not show (reported, not hidden: docs/models.md).
NOT_SHOWN = {
    ("immunogenicity", "agneg"): (
        "with the version-2 calibration (kill_max 4.26/day) the antigen-negative share of relapses no longer "
        "falls when transgene immunity shortens persistence: +0.010 [-0.020, +0.042] and -0.002 [-0.034, +0.030] "
        "at 1,500 patients (seeds 1, 2): not distinguishable from 0 at these parameters"),
    ("rejection", "relapse"): (
        "with the clinical outcome model's links (stop 27) rejection of the product lowers relapse before death "
        "among responders: -0.030 [-0.052, -0.007] and -0.019 [-0.042, +0.005] at 1,500 patients (seeds 1, 2); "
        "the outcome counts relapses before death, which the shared death links now compete with; not explained "
        "yet"),
}
SEED = 1
_RESULTS: dict = {}


def _result(name):
    if name not in _RESULTS:
        _RESULTS[name] = pm.run_probe(pm.find_probe(name), PROBE_PATIENTS.get(name, N_PATIENTS), SEED, jobs=2,
                                      n_boot=300)
    return _RESULTS[name]


SIGN_CASES = [pytest.param(p.name, key, sign, id=f"{p.name}-{key}",
                           marks=[pytest.mark.xfail(strict=False, reason=NOT_SHOWN[(p.name, key)])]
                           if (p.name, key) in NOT_SHOWN else [])
              for p in pm.PROBES for key, sign in p.expected.items()]


@pytest.mark.parametrize("probe_name, outcome, sign", SIGN_CASES)
def test_mechanism_sign(probe_name, outcome, sign):
    res = _result(probe_name)
    eff = res["outcomes"][outcome]
    label = pm.OUTCOMES[outcome].label
    assert eff["check"] in ("✓", "(✓)"), (
        f"probe {probe_name} ({res['low']} -> {res['high']}): {label} expected {sign}, got "
        f"{eff['low']:.4g} -> {eff['high']:.4g} (diff {eff['diff']:+.4g}, 95% CI {eff['lo']:+.4g} to "
        f"{eff['hi']:+.4g}); source: {res['source']}")


def test_every_probe_has_a_source_and_valid_signs():
    names = [p.name for p in pm.PROBES]
    assert len(names) == len(set(names))
    assert len(pm.PROBES) >= 17
    for probe in pm.PROBES:
        assert probe.source.strip()
        for key, sign in probe.expected.items():
            assert key in pm.OUTCOMES
            assert sign in ("+", "-", ">=", "<=", "0")


def test_transplant_day_probe_is_reported_without_sign():
    res = _result("transplant_day")
    assert not pm.find_probe("transplant_day").expected
    for key in ("chimerism", "gvhd", "relapse", "efs"):
        eff = res["outcomes"][key]
        assert eff["check"] is None
        assert math.isfinite(eff["low"]) and math.isfinite(eff["high"])


def test_settings_reach_the_scenario():
    """The low and high scenarios carry the probe's edits and the probe endpoints."""
    low = pm.build_scenario(pm.find_probe("transplant"), "low")
    high = pm.build_scenario(pm.find_probe("transplant"), "high")
    assert low.horizon == pm.HORIZON and high.horizon == pm.HORIZON
    assert "transplant" not in [ev.get("do") for ev in low.raw.get("events", [])]
    assert "transplant" in [ev.get("do") for ev in high.raw.get("events", [])]
    # chimerism is read 100 days after the transplant day of the setting that has one (S3: day 30)
    assert low.raw["endpoints"]["probe_chimerism"]["day"] == 130.0
    dysfunction = pm.find_probe("dysfunction")
    lo = pm.build_scenario(dysfunction, "low").raw["parameters"]["car_dysfunction_rate"]
    hi = pm.build_scenario(dysfunction, "high").raw["parameters"]["car_dysfunction_rate"]
    assert (lo, hi) == (0.002, 0.05)


# ---------------------------------------------------------------- helpers, hand-computed


def _tables():
    low = pd.DataFrame({"car_peak": [1.0, 2.0, 3.0, 4.0], "cr": [1, 1, 0, 1],
                        "relapse_after_cr": [1, 0, 0, 0], "transplanted": [0, 0, 0, 0]})
    high = pd.DataFrame({"car_peak": [2.0, 4.0, 6.0, 8.0], "cr": [1, 1, 1, 1],
                         "relapse_after_cr": [0, 0, 0, 1], "transplanted": [1, 0, 0, 0]})
    return {"low": low, "high": high}


def test_paired_effect_hand_computed():
    peak = pm.paired_effect(_tables(), pm.OUTCOMES["peak"], n_boot=200)
    assert peak["low"] == pytest.approx(2.5) and peak["high"] == pytest.approx(5.0)
    assert peak["diff"] == pytest.approx(2.5)
    # every resample has high = 2 x low, so the difference is the low median, between 1 and 4
    assert 1.0 <= peak["lo"] <= peak["hi"] <= 4.0
    relapse = pm.paired_effect(_tables(), pm.OUTCOMES["relapse"], n_boot=200)
    assert relapse["low"] == pytest.approx(1 / 3) and relapse["high"] == pytest.approx(1 / 4)
    assert (relapse["n_low"], relapse["n_high"]) == (3, 4)


def test_paired_effect_transplanted_mask_is_the_union():
    tables = _tables()
    tables["low"]["probe_chimerism"] = [0.0, 0.0, 0.0, 0.0]
    tables["high"]["probe_chimerism"] = [0.9, 0.0, 0.0, 0.0]
    eff = pm.paired_effect(tables, pm.OUTCOMES["chimerism"], n_boot=50)
    assert (eff["low"], eff["high"], eff["n_low"], eff["n_high"]) == (0.0, pytest.approx(0.9), 1, 1)


@pytest.mark.parametrize("expected, diff, lo, hi, tol, mark", [
    ("+", 2.0, 1.0, 3.0, 0.1, "✓"),
    ("+", 2.0, -1.0, 3.0, 0.1, "(✓)"),
    ("+", 0.0, -1.0, 1.0, 0.1, "✗"),
    ("+", -2.0, -3.0, -1.0, 0.1, "✗"),
    ("-", -2.0, -3.0, -1.0, 0.1, "✓"),
    ("-", 1.0, 0.5, 1.5, 0.1, "✗"),
    (">=", 0.0, 0.0, 0.0, 0.1, "✓"),
    (">=", -0.01, -0.02, -0.005, 0.1, "✓"),  # significant but within a fifth of the tolerance
    (">=", -0.05, -0.06, -0.04, 0.1, "✗"),
    (">=", -0.2, -0.5, 0.1, 0.1, "✗"),
    ("<=", 0.05, -0.01, 0.1, 0.1, "✓"),
    ("<=", 0.5, 0.3, 0.7, 0.1, "✗"),
    ("0", 0.01, -0.02, 0.03, 0.05, "✓"),
    ("0", 0.01, -0.2, 0.2, 0.05, "(✓)"),
    ("0", 0.2, 0.1, 0.3, 0.05, "✗"),
    ("+", math.nan, math.nan, math.nan, 0.1, "✗"),
])
def test_check_sign(expected, diff, lo, hi, tol, mark):
    assert pm.check_sign(expected, {"diff": diff, "lo": lo, "hi": hi}, tol) == mark


def test_write_docs_replaces_only_the_block(tmp_path):
    doc = tmp_path / "models.md"
    doc.write_text("# Title\n\nbefore\n")
    pm.write_docs("first\n", doc)
    text = doc.read_text()
    assert text.startswith("# Title\n\nbefore\n\n## Mechanism probes\n\n")
    assert f"{pm.START_MARK}\nfirst\n{pm.END_MARK}" in text
    doc.write_text(text + "\nafter\n")
    pm.write_docs("second\n", doc)
    text = doc.read_text()
    assert "first" not in text and f"{pm.START_MARK}\nsecond\n{pm.END_MARK}" in text
    assert text.count(pm.START_MARK) == 1 and text.endswith("\nafter\n")
    assert text.startswith("# Title\n\nbefore\n")


def test_bootstrap_interval_covers_a_known_difference():
    rng = np.random.default_rng(3)
    x = rng.normal(size=400)
    tables = {"low": pd.DataFrame({"t_aplasia_days": x}),
              "high": pd.DataFrame({"t_aplasia_days": x + 1.0 + 0.1 * rng.normal(size=400)})}
    eff = pm.paired_effect(tables, pm.OUTCOMES["aplasia"], n_boot=500)
    # paired: the interval is that of the mean of 1 + 0.1 e (sd 0.1/sqrt(400) = 0.005)
    assert eff["lo"] < 1.0 < eff["hi"] or abs(eff["diff"] - 1.0) < 0.02
    assert eff["hi"] - eff["lo"] < 0.05
