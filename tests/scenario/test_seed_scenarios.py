"""Seed-trial scenarios (scenarios/seed_*.toml): they load, and their [targets] are consistent.

Every target id must be a row of the reference table (carkinetics/reference/targets.csv),
every target's endpoint / among column must be an endpoint column or covariate of the
scenario, arms named by a target must exist, and every seed arm row of the trial that a
scenario covers must be listed (issue 5: one [targets] entry per reported row).
"""


import pytest

from carkinetics.scenario.load import load_scenario
from carkinetics.scenario.reference import load_targets

from conftest import ROOT

SEEDS = sorted((ROOT / "scenarios").glob("seed_*.toml"))
PREFIX = {"seed_s1": "S1", "seed_s2": "S2", "seed_s3": "S3", "seed_s4": "S4", "seed_s5": "S5", "seed_s2ltfu": "LTFU"}
#: Rows of a covered arm that its scenario cannot compare yet, each with the reason (said in the scenario too).
NOT_COVERED: dict = {}  # target id -> why no seed scenario compares it (none left)


def _columns(sc):
    cols = set(sc.endpoints.columns) if sc.endpoints is not None else set()
    pop = sc.population
    cov = getattr(pop, "covariates", None) or {}
    cols |= set(cov)
    return cols


def test_seed_scenarios_exist():
    assert len(SEEDS) >= 4


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_seed_scenario_targets(path):
    sc = load_scenario(path)
    specs = sc.target_specs
    assert specs, "no [targets]"
    ref = load_targets().set_index("target_id")
    unknown = [t for t in specs if t not in ref.index]
    assert not unknown
    cols = _columns(sc)
    arms = set(sc.arms.names if sc.arms else [])
    for tid, spec in specs.items():
        assert spec.endpoint in cols, (tid, spec.endpoint)
        if spec.among:
            assert spec.among in cols, (tid, spec.among)
        for a in spec.arms or ():
            assert not arms or a in arms, (tid, a)
    # every row of the trial's seed arms is covered
    arm = PREFIX["_".join(path.stem.split("_")[:2])]
    rows = set(ref.index[ref["arm"].str.split("-").str[0] == arm]) - set(NOT_COVERED)
    assert rows == set(specs), sorted(rows ^ set(specs))
