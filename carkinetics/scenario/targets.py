"""The [targets] section of a scenario: which reported numbers it reproduces, and how each is computed.

Target ids are rows of a reference target table (:mod:`carkinetics.scenario.reference`): the
shipped one, or the one given to ``carkinetics validate --reference``; :func:`check_target_ids`
checks them against the table in use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from carkinetics.errors import ScenarioError, suggestion
from carkinetics.scenario.reference import default_targets_path

COHORT_STATISTICS = ("proportion", "km_estimate", "cumulative_incidence", "median", "mean", "geometric_mean")
ROLES = ("outcome", "input")
_KEYS = {"endpoint", "statistic", "arm", "among", "time", "role", "note", "hand_set"}


@dataclass(frozen=True)
class TargetSpec:
    """How one reported number is computed from a virtual cohort."""

    target_id: str
    endpoint: str
    statistic: str | None  # None: the reference row's statistic
    arms: tuple[str, ...] | None
    among: str | None
    time: float | None
    role: str
    note: str = ""
    hand_set: str = ""  # the constants of the scenario, set by hand for this trial, that make this row


def parse_targets(raw, context) -> dict:
    """Parse ``[targets.<target_id>]`` tables into :class:`TargetSpec` values.

    Parameters
    ----------
    raw : object
        The ``[targets]`` table as read.
    context : SectionContext
        The scenario being parsed; problems go to ``context.errors``.

    Returns
    -------
    dict of str to TargetSpec
        By target id, in file order (entries with problems left out).
    """
    errs = context.errors
    if not isinstance(raw, dict):
        errs.add("targets", "expected tables [targets.<target_id>] with at least 'endpoint'")
        return {}
    specs = {}
    for tid, spec in raw.items():
        key = f"targets.{tid}"
        if not isinstance(spec, dict):
            errs.add(key, "expected a table with at least 'endpoint'")
            continue
        errs.unknown_keys(key, spec, _KEYS, "a key of a [targets] entry")
        endpoint = spec.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            errs.add(f"{key}.endpoint", f"expected the name of an endpoint column, got {endpoint!r}")
            continue
        stat = spec.get("statistic")
        if stat is not None and stat not in COHORT_STATISTICS:
            errs.add(f"{key}.statistic", f"'{stat}' is not one of {', '.join(COHORT_STATISTICS)}"
                                         f"{suggestion(str(stat), COHORT_STATISTICS)}")
        arm = spec.get("arm")
        arms = None
        if arm is not None:
            arms = (arm,) if isinstance(arm, str) else tuple(arm) if isinstance(arm, list) else None
            if arms is None or not all(isinstance(a, str) for a in arms):
                errs.add(f"{key}.arm", f"expected an arm name or a list of arm names, got {arm!r}")
                arms = None
        among = spec.get("among")
        if among is not None and not isinstance(among, str):
            errs.add(f"{key}.among", f"expected the name of a 0/1 endpoint column, got {among!r}")
            among = None
        time = spec.get("time")
        if time is not None and (isinstance(time, bool) or not isinstance(time, (int, float))
                                 or not math.isfinite(time) or time < 0):
            errs.add(f"{key}.time", f"expected a day >= 0, got {time!r}")
            time = None
        role = spec.get("role", "outcome")
        if role not in ROLES:
            errs.add(f"{key}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
            role = "outcome"
        hand_set = spec.get("hand_set", "")
        if not isinstance(hand_set, str):
            errs.add(f"{key}.hand_set", f"expected a text naming the constants set by hand that make this row, "
                                        f"got {hand_set!r}")
            hand_set = ""
        specs[tid] = TargetSpec(str(tid), endpoint, stat, arms, among,
                                None if time is None else float(time), role, str(spec.get("note", "")),
                                hand_set)
    return specs


def check_target_ids(scenario, reference) -> None:
    """Refuse a scenario without ``[targets]``, or with target ids that are not rows of ``reference``.

    Parameters
    ----------
    scenario : Scenario
    reference : pandas.DataFrame
        The reference target table (:func:`carkinetics.scenario.reference.load_targets`;
        its file is named in messages).

    Raises
    ------
    ScenarioError
        Naming the scenario, each unknown target (with a close match) and the table.
    """
    specs = scenario.target_specs
    if not specs:
        raise ScenarioError(scenario.path, ["targets: this scenario declares no [targets.<id>] to validate"])
    known = list(reference["target_id"])
    table = reference.attrs.get("path") or str(default_targets_path())
    problems = [f"targets.{tid}: '{tid}' is not a target_id of the reference table {table}"
                f"{suggestion(tid, known)}" for tid in specs if tid not in set(known)]
    if problems:
        raise ScenarioError(scenario.path, problems)
