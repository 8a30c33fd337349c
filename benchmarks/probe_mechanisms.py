"""Mechanism probes of the T-ALL model: what each mechanism does to the clinical outcomes.

A probe runs one seed scenario twice, at a low and a high setting of one mechanism (a
parameter, an event argument, or an event removed), with the same patients and random
numbers (common random numbers: same seed, same N), over two years. It reports, low -> high
and as the paired difference with a 95% bootstrap interval over patients:

* median CAR-T peak (cells/uL), CR on the response day, relapse by 2 years among CR, the
  antigen-negative share of those relapses, CD4 aplasia (days < 200/uL in days 0-30),
  antigen-positive normal T cells at day 90 (CD7+/CD5+ aplasia), whole-blood donor
  chimerism 100 days after the transplant (transplant probes), EFS and OS at 2 years;
* outcomes particular to a probe (cytokine level on day 0, CAR-T detectable at 1 year,
  cumulative GVHD hazard in the 100 days after the transplant, edited share of the
  antigen-negative T cells at day 180).

Each probe declares the expected sign of the outcomes its mechanism should move, with the
literature source or "assumption"; the table marks a confirmed sign with ✓, the right
direction without a significant difference with (✓), and a contradicted sign with ✗.

Usage::

    python benchmarks/probe_mechanisms.py                      # N = 2000 per setting, print the table
    python benchmarks/probe_mechanisms.py --write-docs         # ... and replace the block in docs/models.md
    python benchmarks/probe_mechanisms.py --n 300 --only dose --json /tmp/probes.json

The probe definitions (:data:`PROBES`) and :func:`run_probe` are also used by
``tests/model/test_mechanism_signs.py``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import sys
import time
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
DOCS = ROOT / "docs" / "models.md"
HORIZON = 730.0
START_MARK = "<!-- probe-table:start -->"
END_MARK = "<!-- probe-table:end -->"
DELETE = object()  # an event edit that removes the argument

S1 = "seed_s1_pan2024_cd5.toml"
S2 = "seed_s2_pan2021_cd7.toml"
S3 = "seed_s3_hu2024_cd7_haplo.toml"


@dataclass(frozen=True)
class Scale:
    """A parameter setting relative to the scenario's typical value (``factor`` times it)."""

    factor: float


@dataclass(frozen=True)
class Setting:
    """One arm of a probe: edits of the scenario file's tables.

    Parameters
    ----------
    label : str
        Shown in the table.
    parameters : dict
        Parameter name -> value (written into ``[parameters]``, like ``--set``) or :class:`Scale`.
    events : dict
        Intervention (``do``) -> {argument: value}; ``DELETE`` removes the argument (e.g. ``if``).
    remove_events : tuple of str
        Interventions whose events are removed.
    drop_population_parameters : tuple of str
        Entries of ``[population.parameters]`` removed (so a parameter setting reaches everyone).
    """

    label: str
    parameters: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)
    remove_events: tuple = ()
    drop_population_parameters: tuple = ()


@dataclass(frozen=True)
class Probe:
    """A mechanism probe: one scenario at a low and a high setting, with expected signs.

    Parameters
    ----------
    name : str
        Short identifier (``--only``).
    mechanism : str
        What is varied, in words.
    scenario : str
        Seed scenario file in ``scenarios/``.
    low, high : Setting
        The two settings (applied on top of ``base``).
    expected : dict
        Outcome key -> expected sign of high - low: ``"+"``, ``"-"``, ``">="`` (up or equal),
        ``"<="`` (down or equal), ``"0"`` (about equal). Empty: reported, no expected sign.
    source : str
        Literature source of the expected signs, or "assumption".
    base : Setting
        Edits common to both settings.
    arms : tuple of str or None
        Simulate only these arms of the scenario.
    extra : tuple of str
        Probe-specific outcome keys reported besides the standard ones.
    """

    name: str
    mechanism: str
    scenario: str
    low: Setting
    high: Setting
    expected: dict
    source: str
    base: Setting = Setting("base")
    arms: tuple | None = None
    extra: tuple = ()


@dataclass(frozen=True)
class Outcome:
    """How an outcome is read from the patient table.

    ``stat`` is ``"median"`` or ``"mean"`` of ``column``; ``among`` restricts the mean to the
    patients of each arm with ``cr == 1`` (``"cr"``), with a relapse after CR (``"relapsed"``),
    or to the patients transplanted in either arm (``"transplanted"``). ``kind`` sets the
    format and the tolerance of "about equal": ``"share"`` (absolute 0.05), else relative.
    """

    key: str
    label: str
    column: str
    stat: str
    among: str | None = None
    kind: str = "level"


OUTCOMES = {o.key: o for o in (
    Outcome("peak", "CAR-T peak (median, /µL)", "car_peak", "median"),
    Outcome("cr", "CR", "cr", "mean", kind="share"),
    Outcome("relapse", "Relapse by 2 y among CR", "relapse_after_cr", "mean", "cr", "share"),
    Outcome("agneg", "Antigen-negative share of relapses", "relapse_antigen_negative", "mean", "relapsed", "share"),
    Outcome("aplasia", "CD4 < 200/µL, days 0-30 (mean)", "t_aplasia_days", "mean"),
    Outcome("tpos90", "Antigen+ T cells d90 (median, /µL)", "probe_tpos_d90", "median"),
    Outcome("chimerism", "Whole-blood donor chimerism, transplant + 100 d", "probe_chimerism", "mean",
            "transplanted", "share"),
    Outcome("efs", "EFS 2 y", "probe_efs_2y", "mean", kind="share"),
    Outcome("os", "OS 2 y", "probe_os_2y", "mean", kind="share"),
    Outcome("cytokine0", "Homeostatic cytokine d0 (median, fold)", "probe_cytokine_d0", "median"),
    Outcome("car1y", "CAR-T detectable at 1 y", "probe_car_1y", "mean", kind="share"),
    Outcome("gvhd", "Cumulative GVHD hazard, transplant to + 100 d (mean)", "probe_gvhd", "mean", "transplanted"),
    Outcome("edited180", "Edited share of antigen-negative T, d180 (median)", "probe_edited_d180", "median",
            kind="share"),
)}
STANDARD = ("peak", "cr", "relapse", "agneg", "aplasia", "tpos90", "chimerism", "efs", "os")
TABLE_COLUMNS = ("peak", "cr", "relapse", "agneg", "aplasia", "tpos90", "chimerism", "efs")

_KOCH = "Kochenderfer 2017 JCO 35:1803 (IL-15 after Cy/Flu with expansion); Hirayama 2019 Blood 133:1876"
PROBES = (
    Probe("dose", "CAR+ dose per kg (infusion dose_per_kg)", S2,
          Setting("2.5e5/kg", events={"car_t_infusion": {"dose_per_kg": 2.5e5}}),
          Setting("4e6/kg", events={"car_t_infusion": {"dose_per_kg": 4e6}}),
          {"peak": ">="},
          "dose weakly related to expansion in CAR-T trials (Mueller 2018 Clin Cancer Res; models.md): "
          "more cells must not give a lower peak"),
    Probe("lymphodepletion", "Lymphodepletion intensity (log-kill)", S2,
          Setting("intensity 0.5", events={"lymphodepletion": {"intensity": 0.5}}),
          Setting("intensity 1.5", events={"lymphodepletion": {"intensity": 1.5}}),
          {"cytokine0": "+", "peak": ">="},
          _KOCH + "; the log-kill also removes blasts (less antigen), so the peak must not fall (it need not rise)",
          extra=("cytokine0",)),
    Probe("lymphodepletion_depth", "Lymphocyte depletion alone (lymphodepletion_survival of T and NK cells)", S2,
          Setting("20% survive", parameters={"lymphodepletion_survival": 0.2}),
          Setting("0.4% survive", parameters={"lymphodepletion_survival": 0.004}),
          {"cytokine0": "+", "peak": "+"}, _KOCH, extra=("cytokine0",)),
    Probe("cytokine", "Cytokine-driven CAR-T proliferation (car_cytokine_proliferation)", S2,
          Setting("off (0)", parameters={"car_cytokine_proliferation": 0.0}),
          Setting("model value"),
          {"peak": "+"}, _KOCH),
    Probe("exhaustion", "Terminal exhaustion of stimulated effectors (car_exhaustion)", S2,
          Setting("0.01/day", parameters={"car_exhaustion": 0.01}),
          Setting("0.3/day", parameters={"car_exhaustion": 0.3}),
          {"peak": "<=", "cr": "-"},
          "Kirouac 2023 (exhaustion limits expansion; rates 0.1-0.36/day); assumption"),
    Probe("dysfunction", "Functional exhaustion under antigen (car_dysfunction_rate)", S2,
          Setting("0.002/day", parameters={"car_dysfunction_rate": 0.002}),
          Setting("0.05/day", parameters={"car_dysfunction_rate": 0.05}),
          {"peak": "-", "relapse": "+", "agneg": "-"},
          "chronic antigen drives CAR-T dysfunction (Good 2021 Cell 184:6081; Fraietta 2018 Nat Med 24:563); "
          "antigen-positive relapse when CAR-T fail before the blasts are gone"),
    Probe("immunogenicity", "Loss of CAR-T persistence by transgene immunity (car_immunogenicity), all with EMD", S2,
          Setting("0", parameters={"car_immunogenicity": 0.0}),
          Setting("0.5/day", parameters={"car_immunogenicity": 0.5}),
          {"car1y": "-", "agneg": "-"},
          "transgene-directed immunity shortens CAR-T persistence (Turtle 2016 J Clin Invest 126:2123); loss "
          "of persistence precedes antigen-positive relapse (Finney 2019 J Clin Invest 129:2123): more of the "
          "relapses are antigen-positive. Relapse among CR itself barely moves in this model (residual "
          "disease is mostly gone, or antigen-negative, before persistence is lost), so it carries no "
          "expected sign; residual disease that outlives the CAR-T is extramedullary here, hence the EMD base",
          base=Setting("EMD", parameters={"emd_present": 1.0}, drop_population_parameters=("emd_present",)),
          extra=("car1y",)),
    Probe("antigen_negative_initial", "Pre-existing antigen-negative blasts (antigen_negative_blasts_initial)", S2,
          Setting("0.001", parameters={"antigen_negative_blasts_initial": 1e-3}),
          Setting("1000", parameters={"antigen_negative_blasts_initial": 1e3}),
          {"relapse": "+", "agneg": "+"},
          "Iwasa 2003 Proc R Soc B 270:2573 (escape from pre-existing resistant cells)"),
    Probe("antigen_loss", "Antigen loss per blast division (antigen_loss_rate), no pre-existing negatives", S2,
          Setting("0", parameters={"antigen_loss_rate": 0.0}),
          Setting("1e-8", parameters={"antigen_loss_rate": 1e-8}),
          {"agneg": "+"},
          "Iwasa 2003 (resistance arising by mutation during expansion); assumption",
          base=Setting("no pre-existing", parameters={"antigen_negative_blasts_initial": 0.0})),
    Probe("editing", "Editing efficiency of the product (infusion edited_fraction)", S2,
          Setting("50% edited", events={"car_t_infusion": {"edited_fraction": 0.5}}),
          Setting("99% edited", events={"car_t_infusion": {"edited_fraction": 0.99}}),
          {"peak": "+"},
          "fratricide of unedited CD7 CAR-T limits expansion (Gomes-Silva 2017 Blood 130:285)"),
    Probe("product_gvl", "Graft-versus-leukaemia of the donor product (product_gvl)", S2,
          Setting("off", parameters={"product_gvl": 0.0}),
          Setting("on", parameters={"product_gvl": 1.0}),
          {"relapse": "<="},
          "declared mechanism (donor-derived product carries donor T cells: Pan 2021); weak GVL of donor "
          "lymphocytes in ALL (Collins 1997 JCO 15:433)"),
    Probe("emd", "Extramedullary disease (emd_present)", S2,
          Setting("no EMD", parameters={"emd_present": 0.0}),
          Setting("EMD", parameters={"emd_present": 1.0}),
          {"cr": "0", "relapse": "+", "efs": "-"},
          "assumption (EMD reached less well by CAR-T; marrow response read without EMD)",
          base=Setting("everyone", drop_population_parameters=("emd_present",))),
    Probe("emd_access", "CAR-T access to extramedullary sites (emd_car_access), all with EMD", S2,
          Setting("0.05", parameters={"emd_car_access": 0.05}),
          Setting("1", parameters={"emd_car_access": 1.0}),
          {"relapse": "-"},
          "assumption (EMD responds less often to CAR-T than marrow disease)",
          base=Setting("EMD", parameters={"emd_present": 1.0}, drop_population_parameters=("emd_present",))),
    Probe("rejection", "Host-versus-product rejection (rejection_rate), new-donor product", S2,
          Setting("0/day", parameters={"rejection_rate": 0.0}),
          Setting("1/day", parameters={"rejection_rate": 1.0}),
          {"car1y": "-", "relapse": "+"},
          "Derippe 2022 (host-versus-graft limits allogeneic CAR-T persistence); assumption",
          base=Setting("new donor", parameters={"product_alloreactivity": 0.3, "product_allogeneic": 1.0},
                       drop_population_parameters=("rejection_rate", "product_alloreactivity")),
          extra=("car1y",)),
    Probe("transplant", "Transplant without conditioning vs no transplant", S3,
          Setting("no transplant", remove_events=("transplant",)),
          Setting("transplant, no conditioning"),
          {"chimerism": "+", "relapse": "<="},
          "Hu 2024 NEJM (haplo HSCT without conditioning after CD7 CAR-T: donor engraftment); GVL of a "
          "graft (Horowitz 1990 Blood 75:555), weak in ALL (Collins 1997)",
          extra=("gvhd",)),
    Probe("conditioning", "Transplant conditioning none -> myeloablative", S3,
          Setting("none", events={"transplant": {"conditioning": "none"}}),
          Setting("myeloablative", events={"transplant": {"conditioning": "myeloablative"}}),
          {"chimerism": ">="},
          "myeloablation of host haematopoiesis gives full donor chimerism (standard HSCT); assumption",
          extra=("gvhd",)),
    Probe("host_t", "Host T cells escaping CAR-T at transplant (normal_t_antigen_negative_fraction)", S3,
          Setting("1%", parameters={"normal_t_antigen_negative_fraction": 0.01}),
          Setting("30%", parameters={"normal_t_antigen_negative_fraction": 0.3}),
          {"chimerism": "-"},
          "graft failure by residual host T cells (Olsson 2013 Leukemia 27:2184); CAR-T depletion of "
          "host T permits engraftment without conditioning (Hu 2024)"),
    Probe("donor_type", "Donor and prophylaxis: matched sibling + PTCy -> haploidentical, none", S3,
          Setting("sibling, PTCy", events={"transplant": {"donor_type": "matched_sibling", "prophylaxis": "ptcy"}}),
          Setting("haplo, none", events={"transplant": {"donor_type": "haploidentical", "prophylaxis": "none"}}),
          {"gvhd": "+", "relapse": "<="},
          "aGVHD by donor type (Jagasia 2012 Blood 119:296) and prophylaxis (Luznik 2008); GVL goes with "
          "GVHD (Horowitz 1990 Blood 75:555)", extra=("gvhd",)),
    Probe("transplant_day", "Transplant day 30 -> 90 (everyone in remission transplanted)", S2,
          Setting("day 30", events={"transplant": {"at": 30.0, "if": DELETE}}),
          Setting("day 90", events={"transplant": {"at": 90.0, "if": DELETE}}),
          {},
          "reported, no expected sign: later, fewer CAR-T are left to attack graft T cells, but "
          "there is more time to relapse before it", extra=("gvhd", "car1y")),
    Probe("cd5_product_t", "Cytokine-driven expansion of edited non-CAR product T (CD5 product)", S1,
          Setting("off (0)", parameters={"product_t_cytokine_proliferation": 0.0}),
          Setting("model value"),
          {"edited180": "+"},
          "Pan 2024 Nat Med (CD5-negative T cells after CD5 CAR-T were mostly gene-edited product cells)",
          arms=("hsct", "no_hsct"), extra=("edited180",)),
)


def find_probe(name: str) -> Probe:
    """The probe called ``name``.

    Parameters
    ----------
    name : str

    Returns
    -------
    Probe

    Raises
    ------
    SystemExit
        With the known names, when there is no such probe.
    """
    for probe in PROBES:
        if probe.name == name:
            return probe
    raise SystemExit(f"Error: --only {name}: no such probe; expected one of {', '.join(p.name for p in PROBES)}")


def _events_of(data, do):
    return [ev for ev in data.get("events", []) if ev.get("do") == do]


def _transplant_day(data):
    days = [float(ev["at"]) for ev in _events_of(data, "transplant")]
    return min(days) if days else None


def _typical(data, path, name):
    """Typical value of a parameter in the scenario (parameter set and [parameters] applied)."""
    from carkinetics.scenario.load import scenario_from_dict

    scenario = scenario_from_dict(copy.deepcopy(data), path)
    if name in scenario.parameters:
        return float(scenario.parameters[name])
    return float(scenario.model.parameter(name).value)


def _apply(data, path, setting):
    """Apply a setting's edits to the scenario tables (in place)."""
    pop_pars = data.get("population", {}).get("parameters", {})
    for name in setting.drop_population_parameters:
        pop_pars.pop(name, None)
    for name, value in setting.parameters.items():
        if isinstance(value, Scale):
            value = value.factor * _typical(data, path, name)
        data.setdefault("parameters", {})[name] = float(value)
    data["events"] = [ev for ev in data.get("events", []) if ev.get("do") not in setting.remove_events]
    for do, edits in setting.events.items():
        events = _events_of(data, do)
        if not events:
            raise SystemExit(f"Error: probe setting '{setting.label}': the scenario has no '{do}' event")
        for ev in events:
            for key, value in edits.items():
                if value is DELETE:
                    ev.pop(key, None)
                else:
                    ev[key] = value


def _add_endpoints(data, transplant_day):
    ends = data.setdefault("endpoints", {})
    ends["probe_tpos_d90"] = {"type": "level", "output": "t_antigen_positive_per_ul", "day": 90}
    ends["probe_cytokine_d0"] = {"type": "level", "output": "homeostatic_cytokine", "day": 0}
    ends["probe_car_1y"] = {"type": "condition", "expr": "car_t_per_ul > 0.1", "day": 365}
    ends["probe_edited_d180"] = {"type": "level", "output": "edited_share_of_antigen_negative_t", "day": 180}
    ends["probe_efs_2y"] = {"type": "condition", "expr": "efs_event == 0 or efs > 729.5"}
    ends["probe_os_2y"] = {"type": "condition", "expr": "os_event == 0 or os > 729.5"}
    if transplant_day is not None:
        day = min(transplant_day + 100.0, HORIZON)
        ends["probe_chimerism"] = {"type": "level", "output": "whole_blood_donor_chimerism", "day": day}
        ends["probe_gvhd"] = {"type": "auc", "output": "gvhd_hazard", "start": transplant_day, "end": day}


def build_scenario(probe: Probe, which: str):
    """The scenario of one setting of a probe, read fresh from its file.

    Parameters
    ----------
    probe : Probe
    which : {"low", "high"}

    Returns
    -------
    Scenario
        The seed scenario with the horizon at 730 days, the probe's base and setting edits
        and the probe endpoints (``probe_*``). The transplant-relative endpoints use the
        setting's transplant day, or the other setting's when this one has no transplant.
    """
    from carkinetics.scenario.load import scenario_from_dict

    path = SCENARIOS / probe.scenario
    raw = tomllib.loads(path.read_text())
    raw["times"]["end"] = HORIZON
    days = {}
    tables = {}
    for name in ("low", "high"):
        data = copy.deepcopy(raw)
        _apply(data, path, probe.base)
        _apply(data, path, getattr(probe, name))
        tables[name] = data
        days[name] = _transplant_day(data)
    other = "high" if which == "low" else "low"
    day = days[which] if days[which] is not None else days[other]
    data = tables[which]
    _add_endpoints(data, day)
    return scenario_from_dict(data, path)


def simulate(probe: Probe, n: int, seed: int, jobs: int = 2) -> dict:
    """Patient tables of both settings of a probe (same seed and N: common random numbers).

    Parameters
    ----------
    probe : Probe
    n : int
        Patients per setting.
    seed : int
    jobs : int

    Returns
    -------
    dict
        ``{"low": DataFrame, "high": DataFrame}``.
    """
    import carkinetics

    out = {}
    for which in ("low", "high"):
        scenario = build_scenario(probe, which)
        arms = list(probe.arms) if probe.arms else None
        result = carkinetics.run_cohort(scenario, n=n, seed=seed, jobs=jobs, arms=arms, bands=False)
        out[which] = result.patients.reset_index(drop=True)
    return out


def _column(df, name):
    if name in df.columns:
        return np.nan_to_num(df[name].to_numpy(dtype=float), nan=0.0)
    return np.zeros(len(df))


def _mask(df, among, union):
    if among == "cr":
        return _column(df, "cr") > 0.5
    if among == "relapsed":
        return _column(df, "relapse_after_cr") > 0.5
    if among == "transplanted":
        return union
    return np.ones(len(df), dtype=bool)


def _stat(values, mask, stat, idx):
    """Statistic of ``values`` over ``mask`` for the sample (row 0: all patients) and resamples."""
    if stat == "median":
        x = np.where(mask, values, np.nan)[idx]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN resamples give NaN
            return np.nanmedian(x, axis=1)
    m = mask.astype(float)[idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (values[idx] * m).sum(axis=1) / m.sum(axis=1)


def paired_effect(tables: dict, outcome: Outcome, n_boot: int = 1000, seed: int = 0) -> dict:
    """Low and high value of an outcome and their difference with a paired 95% bootstrap interval.

    Parameters
    ----------
    tables : dict
        ``{"low": DataFrame, "high": DataFrame}`` of the same patients (row i = patient i).
    outcome : Outcome
    n_boot : int
        Bootstrap resamples of the patients (the same resample for both settings).
    seed : int

    Returns
    -------
    dict
        ``low``, ``high``, ``diff`` (high - low), ``lo``, ``hi`` (2.5% and 97.5% bootstrap
        quantiles of the difference), ``n_low``, ``n_high`` (patients the outcome is read in);
        NaN where undefined (e.g. no relapse).
    """
    low, high = tables["low"], tables["high"]
    n = len(low)
    union = (_column(low, "transplanted") > 0.5) | (_column(high, "transplanted") > 0.5)
    rng = np.random.default_rng(seed)
    idx = np.vstack([np.arange(n)[None, :], rng.integers(0, n, size=(n_boot, n))])
    res = {}
    for which, df in (("low", low), ("high", high)):
        mask = _mask(df, outcome.among, union)
        res[which] = _stat(_column(df, outcome.column), mask, outcome.stat, idx)
        res["n_" + which] = int(mask.sum())
    diff = res["high"] - res["low"]
    boot = diff[1:][np.isfinite(diff[1:])]
    lo, hi = (np.quantile(boot, [0.025, 0.975]) if boot.size > 0.5 * n_boot else (math.nan, math.nan))
    return {"low": float(res["low"][0]), "high": float(res["high"][0]), "diff": float(diff[0]),
            "lo": float(lo), "hi": float(hi), "n_low": res["n_low"], "n_high": res["n_high"]}


def tolerance(outcome: Outcome, effect: dict) -> float:
    """Size of a difference that counts as "about equal" for an outcome.

    Parameters
    ----------
    outcome : Outcome
    effect : dict
        From :func:`paired_effect`.

    Returns
    -------
    float
        0.05 for shares; 5% of the larger of the two values otherwise.
    """
    if outcome.kind == "share":
        return 0.05
    return 0.05 * max(abs(effect["low"]), abs(effect["high"]), 1e-12)


def check_sign(expected: str, effect: dict, tol: float) -> str:
    """Whether an observed difference agrees with an expected sign.

    Parameters
    ----------
    expected : {"+", "-", ">=", "<=", "0"}
    effect : dict
        From :func:`paired_effect` (``diff``, ``lo``, ``hi``).
    tol : float
        From :func:`tolerance`: the size of an "about equal" difference.

    Returns
    -------
    str
        ``"✓"`` the expected sign holds (for ``+``/``-``: the 95% interval excludes 0 on the
        expected side); ``"(✓)"`` right direction, interval includes 0 (or about equal with a
        wide interval); ``"✗"`` contradicted (wrong direction or no difference for ``+``/``-``;
        for ``>=``/``<=``: opposite by more than ``tol``, or significantly opposite by more than
        a fifth of it; for ``0``: a difference beyond ``tol``) or undefined (no patients to
        read it in).
    """
    d, lo, hi = effect["diff"], effect["lo"], effect["hi"]
    if not math.isfinite(d):
        return "✗"
    if expected in ("-", "<="):
        flipped = {"diff": -d, "lo": -hi, "hi": -lo}
        return check_sign("+" if expected == "-" else ">=", flipped, tol)
    if expected == "+":
        if math.isfinite(lo) and lo > 0:
            return "✓"
        return "(✓)" if d > 0 else "✗"
    if expected == ">=":
        significant = math.isfinite(hi) and hi < 0
        return "✗" if (significant and d < -0.2 * tol) or d < -tol else "✓"
    if expected == "0":
        if abs(d) > tol:
            return "✗"
        return "✓" if math.isfinite(lo) and lo >= -tol and hi <= tol else "(✓)"
    raise ValueError(f"unknown expected sign {expected!r}: expected one of +, -, >=, <=, 0")


def outcome_keys(probe: Probe, tables: dict | None = None) -> tuple:
    """Outcome keys reported for a probe: the standard ones (chimerism only with a transplant), then its extras.

    Parameters
    ----------
    probe : Probe
    tables : dict, optional
        Patient tables; chimerism is left out when neither has a transplant endpoint.

    Returns
    -------
    tuple of str
    """
    keys = [k for k in STANDARD if k != "chimerism"]
    if tables is None or any("probe_chimerism" in df.columns for df in tables.values()):
        if tables is None or any(_column(df, "transplanted").any() for df in tables.values()):
            keys.insert(keys.index("efs"), "chimerism")
    keys += [k for k in probe.extra if k not in keys]
    keys += [k for k in probe.expected if k not in keys]
    return tuple(keys)


def run_probe(probe: Probe, n: int, seed: int, jobs: int = 2, n_boot: int = 1000) -> dict:
    """Simulate a probe and summarise every outcome with its expected sign and check.

    Parameters
    ----------
    probe : Probe
    n, seed, jobs : int
        Patients per setting, seed (common to both settings), engine threads.
    n_boot : int
        Bootstrap resamples.

    Returns
    -------
    dict
        ``name``, ``mechanism``, ``scenario``, ``low``, ``high`` (labels), ``source``, ``n``,
        ``seed``, and ``outcomes``: key -> :func:`paired_effect` plus ``expected`` (or None)
        and ``check`` (or None).
    """
    tables = simulate(probe, n, seed, jobs)
    outcomes = {}
    for key in outcome_keys(probe, tables):
        outcome = OUTCOMES[key]
        effect = paired_effect(tables, outcome, n_boot=n_boot, seed=seed)
        expected = probe.expected.get(key)
        effect["expected"] = expected
        effect["check"] = check_sign(expected, effect, tolerance(outcome, effect)) if expected else None
        outcomes[key] = effect
    return {"name": probe.name, "mechanism": probe.mechanism, "scenario": probe.scenario,
            "low": probe.low.label, "high": probe.high.label, "base": probe.base.label,
            "source": probe.source, "n": n, "seed": seed, "outcomes": outcomes}


_ARROWS = {"+": "↑", "-": "↓", ">=": "↑ or =", "<=": "↓ or =", "0": "≈"}


def _fmt(value, kind):
    if not math.isfinite(value):
        return "–"
    if kind == "share":
        return f"{100 * value:.1f}%"
    return f"{value:.3g}"


def _fmt_diff(effect, kind):
    scale, unit = (100.0, " pp") if kind == "share" else (1.0, "")

    def one(v):
        return "–" if not math.isfinite(v) else f"{scale * v:+.3g}"

    return f"{one(effect['diff'])}{unit} [{one(effect['lo'])}, {one(effect['hi'])}]"


def format_cell(effect: dict | None, outcome: Outcome) -> str:
    """One table cell: ``low → high``, the difference with its 95% interval, and the sign check.

    Parameters
    ----------
    effect : dict or None
        From :func:`run_probe` (None: not reported for this probe).
    outcome : Outcome

    Returns
    -------
    str
    """
    if effect is None:
        return "·"
    text = f"{_fmt(effect['low'], outcome.kind)} → {_fmt(effect['high'], outcome.kind)}<br>" \
           f"Δ {_fmt_diff(effect, outcome.kind)}"
    if effect.get("expected"):
        text += f"<br>exp. {_ARROWS[effect['expected']]} **{effect['check']}**"
    return text


def markdown_tables(results: list, digest: str = "") -> str:
    """The probe tables in Markdown: the probes with their sources, then the effects.

    Parameters
    ----------
    results : list of dict
        From :func:`run_probe`.
    digest : str
        From :func:`inputs_digest`, named in the text (which model and scenarios the table is of).

    Returns
    -------
    str
    """
    if not results:
        return ""
    n, seed = results[0]["n"], results[0]["seed"]
    lines = [f"Generated by `python benchmarks/probe_mechanisms.py --n {n} --seed {seed} --write-docs`: "
             f"{n} virtual patients per setting, the same patients and random numbers at the low and the "
             "high setting, horizon 730 days" + (f" (inputs digest `{digest}`: model file, parameter "
                                                  "sets, seed scenarios)" if digest else "") + ". Cells: low → high; Δ = high − low with its paired "
             "bootstrap 95% interval (pp: percentage points); exp.: the expected sign, **✓** confirmed "
             "(interval on the expected side), **(✓)** right direction but not significant, **✗** "
             "contradicted (the model disagrees with the expected sign); \"or =\" and ≈ allow a difference "
             "within 5% (5 pp for shares), \"or =\" also a significant one within 1% (1 pp). Relapse is among patients in CR "
             "on the response day, its antigen-negative share among those relapses; chimerism is among "
             "patients transplanted at either setting; `·` not reported for that probe.", "",
             "| Probe | Mechanism | Scenario | Low → high | Expected signs | Source |",
             "|---|---|---|---|---|---|"]
    for r in results:
        exp = ", ".join(f"{OUTCOMES[k].label.split(' (')[0]} {_ARROWS[v]}" for k, v in
                        find_probe(r["name"]).expected.items()) or "reported, no expected sign"
        base = "" if r["base"] == "base" else f" ({r['base']})"
        lines.append(f"| `{r['name']}` | {r['mechanism']} | {r['scenario'].split('_')[1].upper()}{base} | "
                     f"{r['low']} → {r['high']} | {exp} | {r['source']} |")
    cols = list(TABLE_COLUMNS) + ["other"]
    heads = [OUTCOMES[k].label for k in TABLE_COLUMNS] + ["Other"]
    lines += ["", "| Probe | " + " | ".join(heads) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in results:
        cells = [format_cell(r["outcomes"].get(k), OUTCOMES[k]) for k in TABLE_COLUMNS]
        others = [f"{OUTCOMES[k].label}: {format_cell(e, OUTCOMES[k])}" for k, e in r["outcomes"].items()
                  if k not in TABLE_COLUMNS]
        cells.append("<br>".join(others) or "·")
        lines.append(f"| `{r['name']}` | " + " | ".join(cells) + " |")
    failing = [(r["name"], k) for r in results for k, e in r["outcomes"].items() if e.get("check") == "✗"]
    lines += ["", "Contradicted signs: " + (", ".join(f"`{p}` {OUTCOMES[k].label}" for p, k in failing)
                                            if failing else "none") + "."]
    return "\n".join(lines) + "\n"


def write_docs(block: str, path: Path = DOCS) -> None:
    """Replace the probe block of ``docs/models.md`` (or append it as a new section).

    Parameters
    ----------
    block : str
        Markdown placed between the markers.
    path : pathlib.Path
    """
    text = path.read_text()
    body = f"{START_MARK}\n{block}{END_MARK}"
    if START_MARK in text and END_MARK in text:
        head, rest = text.split(START_MARK, 1)
        _, tail = rest.split(END_MARK, 1)
        text = head + body + tail
    else:
        text = text.rstrip("\n") + "\n\n## Mechanism probes\n\n" + body + "\n"
    path.write_text(text)


def inputs_digest() -> str:
    """A digest of the files the probes read: the model, its parameter sets, the seed scenarios.

    Returns
    -------
    str
        First 12 hex digits of the SHA-256 over the files' names and bytes (changes when the
        model or a scenario is edited).
    """
    files = [ROOT / "models" / "cart_tall.toml"]
    files += sorted((ROOT / "models" / "calibrated" / "cart_tall").glob("*.toml"))
    files += sorted(SCENARIOS.glob("seed_s*.toml"))
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:12]


def main(argv=None) -> int:
    """Command line: run the probes, print the table, optionally write docs and JSON.

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    int
        Exit status (0).
    """
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="virtual patients per setting (default 2000)")
    ap.add_argument("--seed", type=int, default=1, help="seed, common to both settings (default 1)")
    ap.add_argument("--jobs", type=int, default=2, help="engine threads (default 2)")
    ap.add_argument("--write-docs", action="store_true", help="replace the probe block in docs/models.md")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--only", action="append", help="run only this probe (repeatable)")
    args = ap.parse_args(argv)
    if args.n < 10:
        raise SystemExit(f"Error: --n {args.n}: expected at least 10 patients per setting")
    probes = [find_probe(name) for name in args.only] if args.only else list(PROBES)
    digest = inputs_digest()
    results = []
    for probe in probes:
        t0 = time.perf_counter()
        results.append(run_probe(probe, args.n, args.seed, args.jobs))
        print(f"# {probe.name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    block = markdown_tables(results, digest)
    print(block)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, allow_nan=True))
    if inputs_digest() != digest:
        print("Error: models/cart_tall.toml, a parameter set or a seed scenario changed during the run: "
              "the probes mix model versions; run again (docs/models.md not written)", file=sys.stderr)
        return 1
    if args.write_docs:
        write_docs(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
