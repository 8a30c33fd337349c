"""Files written for a fit: tables, figures, calibrated model and provenance."""

from __future__ import annotations

from collections.abc import Mapping

from carkinetics.io.toml import dumps_toml, toml_key, toml_value


def fit_provenance(result, command=""):
    """Provenance of a fit: data/target file and its hash, objective, date, software versions."""
    from carkinetics.io.provenance import provenance

    kind = {"FitResult": "individual fit", "PopulationFit": getattr(result, "method", "population fit"),
            "TargetFitResult": "fit to reported targets"}[type(result).__name__]
    from carkinetics.io.provenance import file_sha256

    info = {"kind": kind, "model": str(result.model.path), "model_sha256": file_sha256(result.model.path),
            "estimated": list(result.space.names), "objective": float(result.objective),
            "objective_definition": ("-2 log-likelihood (constants included)" if kind != "fit to reported targets"
                                     else "weighted sum of squared standardised distances")}
    if hasattr(result, "targets_path"):
        info.update(data=result.targets_path, data_sha256=result.targets_sha256, cohort_size=result.cohort_size,
                    cohort_seed=result.seed)
    else:
        info.update(data=result.data_path, data_sha256=result.data_sha256)
    if command:
        info["command"] = command
    return provenance(info)


def calibrated_model_text(model, estimates: Mapping, prov: Mapping) -> str:
    """The model file with fitted values (status ``fitted``) and provenance in ``[model].notes``."""
    import tomllib

    from pathlib import Path

    # (Model.source_text is not the file text in this engine version: read the file)
    data = tomllib.loads(Path(model.path).read_text(encoding="utf-8"))
    date = prov.get("created", "")
    for name, value in estimates.items():
        par = data["parameters"][name]
        old = par.get("value")
        par["value"] = float(value)
        par["status"] = "fitted"
        par["source"] = (f"fitted by carkinetics {prov.get('carkinetics', '')} on {date} ({prov.get('kind', '')}, "
                         f"data {prov.get('data', '')}); model-file value was {old}: {par.get('source', '')}")
    meta = data.setdefault("model", {})
    note = (f"Calibrated by carkinetics {prov.get('carkinetics', '')} on {date}: {prov.get('kind', '')} of "
            f"{', '.join(estimates)} to {prov.get('data', '')} (sha256 {prov.get('data_sha256', '')}); "
            f"objective {prov.get('objective', float('nan')):.6g}.")
    meta["notes"] = (meta.get("notes", "") + "\n" + note).strip()
    header = ["# Calibrated model written by `carkinetics fit`.", "# Provenance:"]
    header += [f"#   {k}: {v}" for k, v in prov.items()]
    return "\n".join(header) + "\n\n" + dumps_toml(data)


def calibrated_parameters_text(model, estimates: Mapping, prov: Mapping) -> str:
    """A ``[parameters]`` table for a scenario file, with provenance as comments."""
    lines = ["# Calibrated parameter values: paste into a scenario's [parameters] table, or name the",
             "# calibrated model file next to this one as the scenario's model.", "# Provenance:"]
    lines += [f"#   {k}: {v}" for k, v in prov.items()]
    lines += ["", "[parameters]"]
    lines += [f"{toml_key(n)} = {toml_value(float(v))}  # {model.parameter(n).unit}" for n, v in estimates.items()]
    return "\n".join(lines) + "\n"


def write_fit(result, output_dir, *, command="", plots=True, formats=("png",)) -> list:
    """Write a fit's tables, figures, calibrated model and provenance into ``output_dir`` (atomically).

    Files: ``estimates.csv`` (estimates with intervals), ``starts.csv``, ``residuals.csv``,
    ``profiles.csv`` and ``bootstrap.csv`` (when computed), ``individual_estimates.csv`` and
    ``typical.csv`` (population fits), ``comparison.csv`` (target fits),
    ``calibrated_model.toml`` (a model file a scenario can name), ``calibrated_parameters.toml``
    (a ``[parameters]`` table), ``fit.json`` (summary and provenance) and goodness-of-fit plots.
    Returns the list of file names written.
    """
    import pandas as pd

    from carkinetics.io.atomic import atomic_output_dir
    from carkinetics.io.results import write_json
    from carkinetics.plots.cohort import save_figure

    prov = fit_provenance(result, command)
    kind = type(result).__name__
    files = []
    if kind == "PopulationFit":
        estimates = dict(zip(result.typical["parameter"], result.typical["typical"]))
    else:
        estimates = dict(result.estimates)
    summary = {"provenance": prov, "estimates": estimates}
    with atomic_output_dir(output_dir) as out:
        def csv(df, name):
            df.to_csv(out / name, index=False)
            files.append(name)

        figs = []
        if kind == "FitResult":
            csv(result.table(), "estimates.csv")
            csv(result.starts, "starts.csv")
            csv(result.residuals, "residuals.csv")
            summary.update(sigma=result.sigma, n_starts=result.n_starts, n_at_best=result.n_at_best,
                           converged=result.converged, n_observations=result.n_observations,
                           n_censored=result.n_censored)
            fits = [result]
            residuals = result.residuals
        elif kind == "PopulationFit":
            csv(result.typical, "typical.csv")
            csv(result.typical, "estimates.csv")
            csv(result.estimates, "individual_estimates.csv")
            if result.history is not None:
                csv(result.history, "iterations.csv")
            fits = list(result.individual.values())
            residuals = pd.concat([r.residuals for r in fits], ignore_index=True)
            csv(residuals, "residuals.csv")
            csv(pd.concat([r.starts.assign(id=r.patient) for r in fits], ignore_index=True), "starts.csv")
            summary.update(method=result.method, sigma=result.sigma, n_patients=len(fits),
                           failed=result.failed, converged=result.converged)
        else:
            csv(result.table(), "estimates.csv")
            csv(result.starts, "starts.csv")
            csv(result.comparison, "comparison.csv")
            summary.update(n_runs=len(result.starts), n_at_best=result.n_at_best, converged=result.converged)
            fits, residuals = [], None
        profiles = getattr(result, "profiles", {}) or {}
        if profiles:
            csv(pd.concat([pd.DataFrame({"parameter": p.name, "value": p.values, "objective": p.objective,
                                         "rise": p.objective - p.minimum}) for p in profiles.values()]),
                "profiles.csv")
            summary["profiles"] = {p.name: {"lower": p.lower, "upper": p.upper, "identifiable": p.identifiable}
                                   for p in profiles.values()}
        if getattr(result, "bootstrap", None) is not None:
            csv(result.bootstrap, "bootstrap.csv")
        (out / "calibrated_model.toml").write_text(calibrated_model_text(result.model, estimates, prov),
                                                   encoding="utf-8")
        (out / "calibrated_parameters.toml").write_text(calibrated_parameters_text(result.model, estimates, prov),
                                                        encoding="utf-8")
        files += ["calibrated_model.toml", "calibrated_parameters.toml"]
        write_json(out / "fit.json", summary)
        files.append("fit.json")
        if plots:
            from carkinetics.plots import fit as fitplots

            if residuals is not None:
                figs += [("obs_vs_pred", fitplots.plot_observed_vs_predicted(residuals)),
                         ("residuals_vs_time", fitplots.plot_residuals_vs_time(residuals)),
                         ("individual_fits", fitplots.plot_individual_fits(fits))]
            if profiles:
                figs.append(("profiles", fitplots.plot_profiles(profiles)))
            if kind == "TargetFitResult":
                figs.append(("targets", fitplots.plot_target_comparison(result.comparison)))
            for name, fig in figs:
                save_figure(fig, out / name, formats)  # closes the figure
                files += [f"{name}.{f}" for f in formats]
    return files
