"""The T-ALL model v2 outcomes over two years: the seed scenarios, dose, lymphodepletion,
graft-versus-leukaemia switched off, and transplant without conditioning.

Each T-ALL seed scenario (S1-S4) is run as shipped with its horizon extended to two years
(730 days); settings are applied as ``carkinetics run --set NAME=VALUE`` applies them
(:mod:`carkinetics.scenario.overrides`), with the same seed and patients at every setting
(common random numbers). Rows:

* per seed scenario: CR on the response day, relapse by two years among patients in CR and
  its antigen-negative share (> 50 % antigen-negative blasts at relapse), relapse-free
  survival at two years among responders (no relapse and alive; deaths from the scenario's
  clinical vocabulary), the share with no blast left at two years (cured), median CAR-T peak,
  CAR-T detectable (> 0.1/µL) at one year, and for transplanted patients whole-blood donor
  chimerism 100 days after the transplant;
* S2 at five doses (2.5e5 -> 4e6 CAR+/kg) and five depths of lymphodepletion
  (``lymphodepletion_survival``), with product graft-versus-leukaemia on and off, and two
  editing efficiencies with it off;
* S3 with and without its transplant (haploidentical, no conditioning).

Usage::

    python benchmarks/tall_v2_bar.py                 # N = 2000 per row (about 3 minutes on 2 cores)
    python benchmarks/tall_v2_bar.py --n 500 --json out.json

The script is not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from carkinetics import run_cohort  # noqa: E402
from carkinetics.scenario.load import scenario_from_dict  # noqa: E402
from carkinetics.scenario.overrides import apply_overrides, check_overrides  # noqa: E402

HORIZON = 730.0
SEEDS = {"S1": "seed_s1_pan2024_cd5.toml", "S2": "seed_s2_pan2021_cd7.toml",
         "S3": "seed_s3_hu2024_cd7_haplo.toml", "S4": "seed_s4_xiao2025_cd7_auto.toml"}


def _scenario(name, sets=None, drop_transplant=False):
    path = ROOT / "scenarios" / SEEDS[name]
    data = tomllib.loads(path.read_text())
    data["times"]["end"] = HORIZON
    if drop_transplant:
        data["events"] = [ev for ev in data["events"] if ev.get("do") != "transplant"]
    ends = data.setdefault("endpoints", {})
    ends["bar_blasts_end"] = {"type": "level", "output": "blasts_total", "day": HORIZON}
    ends["bar_car_365"] = {"type": "level", "output": "car_t_per_ul", "day": 365.0}
    tx = [ev for ev in data.get("events", []) if ev.get("do") == "transplant"]
    if tx:
        ends["bar_chimerism"] = {"type": "level", "output": "whole_blood_donor_chimerism",
                                 "day": float(tx[0]["at"]) + 100.0}
    sc = scenario_from_dict(data, path)
    if sets:
        check_overrides(sc, sets)
        sc = apply_overrides(sc, sets)
    return sc


def summarise(P) -> dict:
    """Outcome shares of one cohort's patient table (see the module docstring)."""
    cr = P["cr"].to_numpy() == 1
    rel = (P["relapse_event"].to_numpy() == 1) & cr & (P["relapse"].to_numpy() < P["os"].to_numpy())
    neg = rel & (P["antigen_negative_share_at_relapse"].to_numpy() > 0.5)
    alive = (P["os_event"].to_numpy() == 0) | (P["os"].to_numpy() >= HORIZON)
    out = {"n": int(len(P)), "cr": float(cr.mean()),
           "relapse_among_cr": float(rel[cr].mean()) if cr.any() else float("nan"),
           "antigen_negative_share_of_relapses": float(neg.sum() / rel.sum()) if rel.any() else float("nan"),
           "rfs_2y_among_cr": float((~rel & alive)[cr].mean()) if cr.any() else float("nan"),
           "no_relapse_2y_among_cr": float((~rel)[cr].mean()) if cr.any() else float("nan"),
           "cured": float((P["bar_blasts_end"].to_numpy() < 0.5).mean()),
           "car_peak_median": float(np.median(P["car_peak"].to_numpy())),
           "car_detectable_1y": float((P["bar_car_365"].to_numpy() > 0.1).mean())}
    if "bar_chimerism" in P and "transplanted" in P:
        tr = P["transplanted"].to_numpy() == 1
        out["transplanted"] = float(tr.mean())
        chim = P["bar_chimerism"].to_numpy()[tr]
        out["chimerism_over_90_among_transplanted"] = float((chim > 0.9).mean()) if tr.any() else float("nan")
        out["chimerism_median_among_transplanted"] = float(np.median(chim)) if tr.any() else float("nan")
    return out


def _row(label, name, n, seed, sets=None, drop_transplant=False):
    t0 = time.perf_counter()
    res = run_cohort(_scenario(name, sets, drop_transplant), n=n, seed=seed, jobs=2)
    out = summarise(res.patients)
    out.update(label=label, scenario=name, sets=sets or {}, seconds=time.perf_counter() - t0)
    print(f"# {label}: {out['seconds']:.1f} s", file=sys.stderr)
    return out


def rows(n, seed):
    """Every row of the table (dicts of :func:`summarise` plus label and settings)."""
    out = [_row(f"{k} as shipped", k, n, seed) for k in SEEDS]
    for gvl in (1.0, 0.0):
        for dose in (2.5e5, 5e5, 1e6, 2e6, 4e6):
            out.append(_row(f"S2 dose {dose:g}/kg, product GVL {'on' if gvl else 'off'}", "S2", n, seed,
                            {"dose_per_kg": dose, "product_gvl": gvl}))
    for ld in (0.2, 0.05, 0.02, 0.005, 0.001):
        out.append(_row(f"S2 lymphodepletion survival {ld:g}", "S2", n, seed, {"lymphodepletion_survival": ld}))
    for ed in (0.5, 0.99):
        out.append(_row(f"S2 editing {ed:g}, product GVL off", "S2", n, seed,
                        {"product_edited_fraction": ed, "product_gvl": 0.0}))
    out.append(_row("S3 without the transplant", "S3", n, seed, drop_transplant=True))
    return out


def table(results) -> str:
    """Markdown table of :func:`rows`."""
    head = ("| Row | CR | Relapse by 2 y among CR | Antigen-negative share of relapses | RFS 2 y among CR "
            "| No relapse 2 y among CR | Cured (no blast at 2 y) | Median CAR-T peak /µL | CAR-T > 0.1/µL at 1 y "
            "| WB chimerism > 90 % at +100 d (transplanted) |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in results:
        chim = (f"{r['chimerism_over_90_among_transplanted']:.3f} (of {r['transplanted']:.3f})"
                if "transplanted" in r and r.get("transplanted", 0) > 0 else "—")
        lines.append(f"| {r['label']} | {r['cr']:.3f} | {r['relapse_among_cr']:.3f} | "
                     f"{r['antigen_negative_share_of_relapses']:.3f} | {r['rfs_2y_among_cr']:.3f} | "
                     f"{r['no_relapse_2y_among_cr']:.3f} | {r['cured']:.3f} | {r['car_peak_median']:.1f} | "
                     f"{r['car_detectable_1y']:.3f} | {chim} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="patients per row (default 2000)")
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--json", type=Path, help="write the rows as JSON")
    args = ap.parse_args(argv)
    res = rows(args.n, args.seed)
    print(f"{args.n} patients per row, seed {args.seed}, horizon {HORIZON:g} days\n")
    print(table(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
