"""Running a scenario from start to files: what ``carkinetics run`` does."""

from __future__ import annotations

from pathlib import Path

from .io import atomic_output_dir, file_sha256, provenance, write_json
from .simulate import simulate


def run_typical(scenario, output_dir) -> dict:
    """Simulate the scenario's typical patient; write ``trajectory.csv``, ``outputs.png``, ``run.json``.

    Returns a summary dict (also written as ``run.json``).
    """
    from .plots import plot_trajectory, save_figure

    trajectory = simulate(scenario.model, scenario.schedule(), scenario.times,
                          parameters=scenario.parameter_vector(), options=scenario.solver, t0=scenario.t0)
    summary = {
        "scenario": str(scenario.path),
        "scenario_sha256": file_sha256(scenario.path),
        "model": str(scenario.model.path),
        "model_sha256": scenario.model.content_hash,
        "kind": "typical patient",
        "status": trajectory.message,
        "n_steps": trajectory.n_steps,
        "n_rhs_evals": trajectory.n_rhs_evals,
        "events_applied": dict(zip(trajectory.event_names, map(bool, trajectory.events_applied))),
        "provenance": provenance(),
    }
    with atomic_output_dir(output_dir) as staging:
        trajectory.to_wide().to_csv(staging / "trajectory.csv", index=False)
        fig = plot_trajectory(trajectory, scenario.plot_outputs, scenario.plot_log,
                              title=f"{scenario.name}: typical patient")
        save_figure(fig, staging / "outputs", ("png",))
        write_json(staging / "run.json", summary)
    summary["files"] = [str(Path(output_dir) / f) for f in ("trajectory.csv", "outputs.png", "run.json")]
    return summary
