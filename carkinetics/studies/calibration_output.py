"""The outputs of a calibration: parameter-set files, tables, provenance and the comparison figure.

:func:`write_calibration` writes one parameter-set file per product (``[parameters]``,
read by a scenario's ``[scenario] parameter_set``), the comparison of every target before
and after, the optimiser runs and ``calibration.json`` (provenance: file hashes, cohort
size, seed, objective, versions, command) to a results folder: ``carkinetics calibrate``
writes to ``--output``, by default ``results/calibration/<name>`` (:func:`default_output`).
The file's ``[calibration] output`` names the folder of the parameter sets that scenarios
read (e.g. ``models/calibrated/...``): it is written only when asked
(``--write-parameter-sets``), never by default.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from carkinetics.studies.calibrate import CalibrationError, CalibrationResult
from carkinetics.studies.calibration_file import Calibration


def default_output(cal: Calibration) -> Path:
    """Where ``carkinetics calibrate`` writes without ``--output``: ``results/calibration/<name>``.

    Relative to the current folder. Never the parameter sets the scenarios read (the
    file's ``[calibration] output``): those are replaced only when asked.

    Parameters
    ----------
    cal : Calibration

    Returns
    -------
    pathlib.Path
    """
    return Path("results") / "calibration" / cal.name


#: Files :func:`write_calibration` writes besides one ``<product>.toml`` per product.
RECORD_FILES = ("estimates.csv", "comparison.csv", "starts.csv", "calibration.json", "comparison.png")
#: Files of the uncertainty analysis (``calibrate --uncertainty``), written beside the record.
UNCERTAINTY_FILES = ("intervals.csv", "profiles.csv", "parameter_sample.csv", "uncertainty.json", "profiles.png")


def calibration_files(cal: Calibration) -> list:
    """Names of the files a calibration writes into its folder.

    Parameters
    ----------
    cal : Calibration

    Returns
    -------
    list of str
        One ``<product>.toml`` per product, then :data:`RECORD_FILES` and :data:`UNCERTAINTY_FILES`.
    """
    return [f"{p}.toml" for p in cal.products] + list(RECORD_FILES) + list(UNCERTAINTY_FILES)


def check_calibration_output(cal: Calibration, directory) -> Path:
    """Refuse a folder the calibration cannot write to, before anything is fitted.

    Also a folder holding files that no carkinetics run wrote (the folder belongs to the
    calibration: the files of an earlier calibration there are replaced, and those it does not
    write again removed).

    Parameters
    ----------
    cal : Calibration
    directory : path

    Returns
    -------
    pathlib.Path

    Raises
    ------
    SweepError
        For a path that cannot be a folder.
    OutputError
        For a folder that cannot be written, or holds files that no carkinetics run wrote.
    """
    from carkinetics.io import atomic as io
    from carkinetics.studies.sweep_result import check_output_folder

    directory = check_output_folder(directory)
    io.check_output_dir(directory, clean=True, known=calibration_files(cal))
    return directory


def calibration_provenance(result: CalibrationResult, command="") -> dict:
    """Where a calibration came from: files and their hashes, settings, objective, versions.

    Parameters
    ----------
    result : CalibrationResult
    command : str, optional
        The command line that ran the calibration.

    Returns
    -------
    dict
    """
    from carkinetics.io.provenance import file_sha256, provenance
    from carkinetics.scenario.reference import default_targets_path

    cal = result.calibration
    ref = cal.reference_path or default_targets_path()
    scen = {sc.path.name: file_sha256(sc.path) for scs in cal.products.values() for sc in scs}
    sets = {str(p): file_sha256(p) for scs in cal.products.values() for sc in scs
            for p in getattr(sc, "parameter_sets", ())}
    info = {"kind": "joint calibration to reported targets (carkinetics calibrate)",
            "calibration_file": str(cal.path), "calibration_sha256": file_sha256(cal.path),
            "model": str(cal.model.path), "model_sha256": file_sha256(cal.model.path),
            "reference_table": str(ref), "reference_sha256": file_sha256(ref), "scenarios_sha256": scen,
            "parameter_sets_read_sha256": sets,
            "patients_per_scenario": result.n, "seed": cal.seed, "method": cal.method,
            "objective": result.objective, "objective_initial": result.objective_initial,
            "objective_kind": cal.objective, "started_from": result.started_from or "the scenarios' parameter sets",
            "objective_definition": (
                "sum over targets of weight * -log L: binomial for fractions, normal on log(-log) for Kaplan-Meier "
                "estimates with a usable interval, n/2 events by a reported median time, else half the squared "
                "standardised distance (carkinetics.studies.calibration_objective)"
                if cal.objective == "likelihood" else
                "sum over targets of weight * ((h(simulated) - h(reported)) / se)^2, "
                "h = log for positive statistics, identity for probabilities"),
            "n_targets": len(cal.targets), "n_evaluations": result.n_evaluations,
            "optimiser_runs_at_best": f"{result.n_at_best} of {len(result.starts)}",
            "seconds": round(result.seconds, 1)}
    if command:
        info["command"] = command
    return provenance(info)


def parameter_set_text(result: CalibrationResult, product: str, prov: dict) -> str:
    """The parameter-set file of one product (read by ``[scenario] parameter_set``).

    Parameters
    ----------
    result : CalibrationResult
    product : str
    prov : dict
        :func:`calibration_provenance`.

    Returns
    -------
    str
        TOML text.
    """
    from carkinetics.io.toml import toml_value

    cal = result.calibration
    lines = [f"# Calibrated parameter set of product '{product}' ({cal.name}), written by `carkinetics calibrate`.",
             "# A scenario uses it with  [scenario] parameter_set = \"<path of this file>\"; its own",
             "# [parameters] apply on top. Do not edit by hand: re-run the calibration.",
             f"# Calibration file: {cal.path.name} (sha256 {prov['calibration_sha256'][:16]}...)",
             f"# Model: {Path(cal.model.path).name} (sha256 {prov['model_sha256'][:16]}...)",
             f"# Fitted to {len(cal.targets)} reported targets of "
             f"{', '.join(sorted({t.scenario.name for t in cal.targets}))}",
             f"# Objective {result.objective:.4g} (initial {result.objective_initial:.4g}); "
             f"{result.n} virtual patients per scenario, seed {cal.seed}; created {prov.get('created', '')}",
             "# Full provenance, the comparison of every target and the fixed parameters: calibration.json",
             "", "[calibration]", f"name = {toml_value(cal.name)}", f"product = {toml_value(product)}",
             f"created = {toml_value(str(prov.get('created', '')))}",
             f"objective = {toml_value(float(result.objective))}", "", "[parameters]"]
    for e, v in zip(cal.estimates, result.x):
        if not e.applies_to(product):
            continue
        par = cal.model.parameter(e.parameter)
        scope = "shared by all products" if e.product is None else f"specific to {product}"
        lines.append(f"{e.parameter} = {toml_value(float(math.exp(v)))}  # {par.unit}; fitted, {scope}; "
                     f"model file value {par.value}")
    return "\n".join(lines) + "\n"


def plot_calibration(result: CalibrationResult):
    """Reported value with its interval against the simulated value before and after, per target.

    Parameters
    ----------
    result : CalibrationResult

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comp = result.comparison
    k = len(comp)
    fig, ax = plt.subplots(figsize=(8, 0.3 * k + 1.5), dpi=200)
    y = np.arange(k)[::-1]
    rep = comp["reported"].to_numpy(float)
    lo = comp["reported_lower"].to_numpy(float)
    hi = comp["reported_upper"].to_numpy(float)
    scale = np.where(comp["scale"] == "log", rep, 1.0)
    norm = lambda v: np.where(comp["scale"] == "log", v / scale, v)  # noqa: E731
    ok = np.isfinite(lo) & np.isfinite(hi)
    ax.hlines(y[ok], norm(lo)[ok], norm(hi)[ok], color="0.6", lw=3, label="reported 95% interval")
    ax.plot(norm(rep), y, "k|", ms=10, label="reported")
    ax.plot(norm(comp["simulated_initial"].to_numpy(float)), y, "o", mfc="none", color="tab:grey",
            label="before calibration")
    ax.plot(norm(comp["simulated"].to_numpy(float)), y, "o", color="tab:blue", label="calibrated")
    ax.set_yticks(y, comp["target_id"])
    ax.set_xlabel("probability (proportions) or simulated / reported (other statistics)")
    ax.set_title(f"Calibration {result.calibration.name}: objective {result.objective_initial:.3g} -> "
                 f"{result.objective:.3g}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def write_calibration(result: CalibrationResult, directory, *, command="", plots=True) -> list:
    """Write the parameter set of each product and the calibration's record (atomically) to ``directory``.

    ``directory`` is required: a results folder (:func:`default_output`), or, to replace the
    parameter sets the scenarios read, the file's ``[calibration] output``
    (``result.calibration.output``) passed explicitly.

    Files: ``<product>.toml`` (one per product: ``[parameters]`` with the calibrated values),
    ``estimates.csv``, ``comparison.csv`` (every target: reported, simulated before and
    after, standard error and its source, contribution), ``starts.csv`` (optimiser runs),
    ``calibration.json`` (provenance, estimates, fixed parameters with reasons, excluded
    targets with reasons) and ``comparison.png``.

    Parameters
    ----------
    result : CalibrationResult
    directory : path
    command : str, optional
        The command line, recorded in ``calibration.json``.
    plots : bool, optional
        Also draw ``comparison.png``.

    Returns
    -------
    list
        The files written.
    """
    from carkinetics.io.atomic import atomic_output_dir
    from carkinetics.io.results import write_json
    from carkinetics.plots.cohort import save_figure

    cal = result.calibration
    if directory is None:
        raise CalibrationError(f"{cal.path}: no output folder: pass a results folder (e.g. "
                               f"{default_output(cal)}), or the calibration's output ({cal.output}) to "
                               f"replace the parameter sets the scenarios read")
    directory = Path(directory)
    prov = calibration_provenance(result, command)
    files = []
    with atomic_output_dir(directory, clean=True, known=calibration_files(cal)) as tmp:
        for product in cal.products:
            (tmp / f"{product}.toml").write_text(parameter_set_text(result, product, prov), encoding="utf-8")
            files.append(f"{product}.toml")
        result.table().to_csv(tmp / "estimates.csv", index=False)
        result.comparison.to_csv(tmp / "comparison.csv", index=False)
        result.starts.to_csv(tmp / "starts.csv", index=False)
        files += ["estimates.csv", "comparison.csv", "starts.csv"]
        model = cal.model
        info = {"provenance": prov, "estimates": result.estimates,
                "parameter_sets": {p: result.parameter_set(p) for p in cal.products},
                "products": {p: [sc.path.name for sc in scs] for p, scs in cal.products.items()},
                "fixed": {p: {"value": model.parameter(p).value, "unit": model.parameter(p).unit,
                              "source": model.parameter(p).source, "reason": r} for p, r in cal.fixed.items()},
                "excluded_targets": cal.excluded,
                "targets_inside_reported_interval": {
                    "initial": int(np.sum(result.comparison["inside_initial"] == True)),  # noqa: E712
                    "calibrated": int(np.sum(result.comparison["inside"] == True)),  # noqa: E712
                    "with_interval": int(result.comparison["inside"].notna().sum())}}
        unc = result.uncertainty
        if unc is not None:
            info["uncertainty"] = {"intervals_file": "intervals.csv", "sample_file": "parameter_sample.csv",
                                   "identifiability": unc.identifiability(cal.labels)}
            unc.intervals.to_csv(tmp / "intervals.csv", index=False)
            unc.points.to_csv(tmp / "profiles.csv", index=False)
            unc.sample.to_csv(tmp / "parameter_sample.csv", index=False)
            write_json(tmp / "uncertainty.json", unc.to_dict(cal.labels))
            files += ["intervals.csv", "profiles.csv", "parameter_sample.csv", "uncertainty.json"]
        write_json(tmp / "calibration.json", info)
        files.append("calibration.json")
        if plots:
            import matplotlib.pyplot as plt

            fig = plot_calibration(result)
            save_figure(fig, tmp / "comparison.png")
            plt.close(fig)
            files.append("comparison.png")
            if unc is not None:
                from carkinetics.studies.calibration_uncertainty import plot_profiles

                fig = plot_profiles(unc, title=f"Calibration {cal.name}: profile likelihood "
                                               f"({unc.level:.0%} intervals shaded)")
                save_figure(fig, tmp / "profiles.png")
                plt.close(fig)
                files.append("profiles.png")
    return files
