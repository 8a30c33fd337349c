"""Every figure of a saved sweep or sensitivity folder, redrawn from its files: :func:`plot_results`."""

from __future__ import annotations

from pathlib import Path

from carkinetics.io.atomic import atomic_output_dir
from carkinetics.io.results import read_result_csv, read_result_json
from carkinetics.plots.studies import (chunks, default_km_endpoints, default_outcomes, km_point_groups, km_targets,
                                       plot_global_sensitivity, plot_heatmap, plot_km, plot_outcome_curves,
                                       plot_tornado, save_figure)
from carkinetics.scenario.grid import SweepError
from carkinetics.stats.sensitivity_indices import DUMMY
from carkinetics.studies.sweep_result import load_sweep


def plot_results(path, formats=("png", "pdf"), targets_table=None) -> list:
    """Regenerate every figure of a saved sweep or sensitivity folder into ``path/figures``.

    Nothing is simulated.

    Parameters
    ----------
    path : path
        A folder written by :func:`carkinetics.studies.sweep.sweep` or
        :func:`carkinetics.studies.sensitivity.run_sensitivity`.
    formats : sequence of str, optional
        File formats of each figure.
    targets_table : pandas.DataFrame, optional
        Reference table for the reported points on Kaplan-Meier figures (default: the shipped one).

    Returns
    -------
    list of pathlib.Path
        The files written.

    Raises
    ------
    SweepError
        When the folder holds neither ``sweep.json`` nor ``sensitivity.json``.
    """
    path = Path(path)
    written = []
    if (path / "sweep.json").exists():
        written += _plot_sweep(path, formats, targets_table)
    if (path / "sensitivity.json").exists():
        written += _plot_sensitivity(path, formats)
    if not written and not (path / "sweep.json").exists() and not (path / "sensitivity.json").exists():
        raise SweepError(f"{path}: no sweep.json or sensitivity.json: not a sweep or sensitivity results folder")
    return written


def _plot_sweep(path, formats, targets_table):
    result = load_sweep(path)
    if result.summary.empty:
        return []
    spec_plots = result.info.get("sweep", {}).get("plots", {})
    outcomes = list(spec_plots.get("outcomes") or default_outcomes(result))
    written = []
    with atomic_output_dir(path / "figures") as staging:
        names = []
        if result.axis_names:
            for k, chunk in enumerate(chunks(outcomes, 4)):
                fig = plot_outcome_curves(result, chunk)
                names += save_figure(fig, staging / f"outcomes_{k + 1}", formats)
        pairs = spec_plots.get("heatmaps")
        if pairs is None:
            axes = result.axis_names
            pairs = [axes[:2]] if len(axes) >= 2 else []
        for pair in pairs:
            for spec in outcomes:
                fig = plot_heatmap(result, spec, pair[0], pair[1])
                names += save_figure(fig, staging / f"heatmap_{_safe(spec)}_{pair[0]}_{pair[1]}", formats)
        km_endpoints = spec_plots.get("km_endpoints") or default_km_endpoints(result, outcomes)
        targets = _scenario_targets(result, targets_table)
        for ep in km_endpoints:
            tg = km_targets(targets[0], targets[1], ep) if targets else None
            for k, ids in enumerate(km_point_groups(result)):
                fig = plot_km(result, ep, points=ids, targets=tg)
                names += save_figure(fig, staging / f"km_{ep}_{k + 1}", formats)
        written = [path / "figures" / p.name for p in names]
    return written


def _scenario_targets(result, targets_table):
    """(scenario [targets] specs, reference table) for KM overlays, or None."""
    try:
        from carkinetics.scenario.load import load_scenario
        from carkinetics.scenario.reference import load_targets

        sc = load_scenario(result.info["scenario"])
        specs = sc.target_specs
        if not specs:
            return None
        ref = targets_table if targets_table is not None else load_targets()
        return specs, ref
    except Exception:  # noqa: BLE001 - plots must not fail because the scenario moved
        return None


def _safe(text) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(text))


def _plot_sensitivity(path, formats):
    info = read_result_json(path / "sensitivity.json")
    label = info.get("outcome_label", info.get("outcome"))
    with atomic_output_dir(path / "figures") as staging:
        names = []
        if (path / "tornado.csv").exists():
            t = read_result_csv(path / "tornado.csv")
            names += save_figure(plot_tornado(t, outcome=label), staging / "tornado", formats)
        if (path / "global.csv").exists():
            g = read_result_csv(path / "global.csv")
            names += save_figure(plot_global_sensitivity(g, outcome=label, dummy=DUMMY), staging / "global_sensitivity", formats)
    return [path / "figures" / p.name for p in names]
