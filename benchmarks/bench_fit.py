"""Fitting benchmarks: the Stein 2019 recovery bar and the mechanistic-model timing bar.

1. ``population``: 30 synthetic patients from the Stein 2019 multiphasic model
   (``models/multiphasic.toml``: typical values and log-normal between-patient SDs
   ``iiv_log_sd`` from Table 1 via nlmixr2lib), log-normal residual error with SD 0.5 on the
   log scale, qPCR-like lower limit of quantification 50 copies/ug (censored, M3), 16 samples
   per patient on days 1-730. All six parameters are estimated; the population method is
   the iterative two-stage method started from the standard two-stage fit (both reported).
   Bar: every true typical value inside its reported 95% interval.
2. ``mechanistic``: a 4-parameter individual fit with 20 Latin-hypercube starts to one
   synthetic patient of the mechanistic CAR-T model (``models/cart_tall.toml`` when present,
   else ``benchmarks/models/cart_benchmark.toml``). Bar: seconds, not minutes, on 2 cores.

Usage::

    python benchmarks/bench_fit.py [--part population|mechanistic|all] [--seeds 1 2 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STEIN_TIMES = np.array([1, 2, 4, 7, 10, 14, 21, 28, 42, 56, 90, 180, 270, 365, 540, 730], float)


def population(seed=1, starts=6, verbose=True):
    from carkinetics import load_model
    from carkinetics.scenario.data import load_data
    from carkinetics.fit import fit_population, synthetic_data

    model = load_model(ROOT / "models" / "multiphasic.toml")
    sd = np.array([p.iiv_log_sd for p in model.parameters])
    rng = np.random.default_rng(seed)
    params = model.default_parameters() * np.exp(rng.standard_normal((30, model.n_parameters)) * sd)
    df = synthetic_data(model, params, STEIN_TIMES, sigma=0.5, lloq=50.0, seed=seed + 100)
    ds = load_data(f"synthetic-stein-seed{seed}", model, frame=df)
    t0 = time.perf_counter()
    pop = fit_population(model, ds, list(model.parameter_names), starts=starts, seed=0)
    elapsed = time.perf_counter() - t0
    truth = dict(zip(model.parameter_names, model.default_parameters()))
    out = {"seed": seed, "n_patients": 30, "n_observations": ds.n_observations, "n_censored": ds.n_censored,
           "starts_per_patient": starts, "seconds": elapsed, "sigma_true": 0.5, "sigma_estimated": pop.sigma,
           "its_iterations": len(pop.history), "its_converged": pop.converged}
    for label, tab in (("standard_two_stage", pop.sts_typical), ("iterative_two_stage", pop.typical)):
        rows = {}
        for _, r in tab.iterrows():
            tv = truth[r["parameter"]]
            rows[r["parameter"]] = {"true": tv, "estimate": r["typical"], "lower": r["lower"], "upper": r["upper"],
                                    "omega": r["omega"], "inside": bool(r["lower"] <= tv <= r["upper"])}
        out[label] = rows
        out[f"{label}_all_inside"] = all(v["inside"] for v in rows.values())
    if verbose:
        print(f"population seed {seed}: {ds.summary()}, {elapsed:.1f} s, sigma {pop.sigma:.3f}")
        for label in ("standard_two_stage", "iterative_two_stage"):
            print(f"  {label}: all true values inside: {out[label + '_all_inside']}")
            for name, r in out[label].items():
                print(f"    {name:15s} true {r['true']:<10.4g} est {r['estimate']:<10.4g} "
                      f"95% [{r['lower']:.4g}, {r['upper']:.4g}] omega {r['omega']:.3f} "
                      f"{'ok' if r['inside'] else 'OUT'}")
    return out


def mechanistic(starts=20, verbose=True):
    from carkinetics import Action, Event, load_model
    from carkinetics.scenario.data import load_data
    from carkinetics.fit import fit_individual, synthetic_data

    path = ROOT / "models" / "cart_tall.toml"
    if not path.is_file():
        path = ROOT / "benchmarks" / "models" / "cart_benchmark.toml"
    model = load_model(path)
    dose = 1e6 * 60  # CAR+ cells: 1e6/kg at 60 kg
    if model.name == "cart_benchmark":
        events = [Event(0.0, [Action("add", "effector_neg", 0.95 * dose), Action("add", "effector_pos", 0.05 * dose)],
                        name="infusion")]
        estimate = ["rho", "death_effector", "kill_max", "memory_formation"]
        observables = ["car_t_blood"]
    else:
        p = dict(zip(model.parameter_names, model.default_parameters()))
        ld, ldl = p["lymphodepletion_survival"], p["lymphodepletion_leukaemia_survival"]
        ed, mem = p["product_edited_fraction"], p["product_memory_fraction"]
        events = [Event(-5.0, [Action("multiply", s, ld) for s in ("normal_t_pos", "normal_t_neg", "nk_pos", "nk_neg")]
                        + [Action("multiply", s, ldl) for s in ("leukaemia_pos", "leukaemia_neg")],
                        name="lymphodepletion"),
                  Event(0.0, [Action("add", "car_effector_neg", dose * ed * (1 - mem)),
                              Action("add", "car_memory_neg", dose * ed * mem),
                              Action("add", "car_effector_pos", dose * (1 - ed) * (1 - mem)),
                              Action("add", "car_memory_pos", dose * (1 - ed) * mem),
                              Action("add", "product_t_neg", dose * p["product_noncar_ratio"] * ed)],
                        name="infusion")]
        estimate = ["car_proliferation_max", "car_effector_death", "kill_max", "car_memory_formation"]
        observables = ["car_t_per_ul"]
    times = np.array([1, 4, 7, 10, 14, 17, 21, 28, 42, 56, 90], float)
    truth = model.default_parameters()
    for name, f in zip(estimate, (1.1, 0.8, 1.3, 1.5)):
        truth[model.parameter_index(name)] *= f
    df = synthetic_data(model, truth[None, :], times, observable=observables[0], sigma=0.3, lloq=1.0, seed=3,
                        events=events, ids=["patient"])
    ds = load_data("synthetic-mechanistic", model, frame=df)
    # compile/warm-up outside the timing
    fit_individual(model, ds, estimate, starts=1, events=events)
    t0 = time.perf_counter()
    res = fit_individual(model, ds, estimate, starts=starts, seed=0, events=events, include_initial=False)
    elapsed = time.perf_counter() - t0
    out = {"model": str(path.relative_to(ROOT)), "estimated": estimate, "starts": starts, "seconds": elapsed,
           "n_simulations": res.problem.n_simulations, "n_at_best": res.n_at_best,
           "n_converged": int(res.starts["converged"].sum()), "n_observations": ds.n_observations,
           "n_censored": ds.n_censored, "cores": os.cpu_count(),
           "estimates": res.estimates, "truth": {n: float(truth[model.parameter_index(n)]) for n in estimate}}
    if verbose:
        print(f"mechanistic ({out['model']}): {starts} starts x {len(estimate)} parameters in {elapsed:.2f} s "
              f"({res.problem.n_simulations} patient simulations, {os.cpu_count()} cores); "
              f"{res.n_at_best}/{starts} starts at the best optimum, {out['n_converged']} converged")
        for n in estimate:
            print(f"    {n:24s} true {out['truth'][n]:<10.4g} est {res.estimates[n]:.4g}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["population", "mechanistic", "all"], default="all")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--starts", type=int, default=6, help="starts per patient (population part)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    report = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()}}
    if args.part in ("mechanistic", "all"):
        report["mechanistic"] = mechanistic()
    if args.part in ("population", "all"):
        report["population"] = [population(s, args.starts) for s in args.seeds]
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
