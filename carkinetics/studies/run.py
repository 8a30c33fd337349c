"""Running a scenario from start to files: what ``carkinetics run`` does."""

from __future__ import annotations

from pathlib import Path

from carkinetics.cohort.result import RUN_FILES
from carkinetics.io.atomic import atomic_output_dir, check_output_dir
from carkinetics.io.provenance import file_sha256, provenance
from carkinetics.io.results import write_json
from carkinetics.scenario.overrides import apply_overrides
from carkinetics.simulation.simulate import simulate


def check_run_output(output_dir):
    """Refuse an output folder ``carkinetics run`` cannot write, or one holding files it did not
    write (:func:`carkinetics.io.atomic.check_output_dir`), before anything is computed."""
    return check_output_dir(output_dir, clean=True, known=RUN_FILES)


def run_typical(scenario, output_dir, overrides=None) -> dict:
    """Simulate the scenario's typical patient; write ``trajectory.csv``, ``outputs.png``, ``run.json``.

    ``overrides`` (NAME -> value, as ``--set``) are applied to the scenario
    (:func:`~carkinetics.scenario.overrides.apply_overrides`) and recorded in ``run.json``.
    Returns a summary dict (also written as ``run.json``).
    """
    from carkinetics.plots.cohort import plot_trajectory, save_figure

    check_run_output(output_dir)
    scenario = apply_overrides(scenario, overrides)
    trajectory = simulate(scenario.model, scenario.schedule(), scenario.times,
                          parameters=scenario.parameter_vector(), options=scenario.solver, t0=scenario.t0)
    summary = {
        "scenario": str(scenario.path),
        "scenario_sha256": file_sha256(scenario.path),
        "model": str(scenario.model.path),
        "model_sha256": scenario.model.content_hash,
        "kind": "typical patient",
        "overrides": dict(overrides or {}),
        "status": trajectory.message,
        "n_steps": trajectory.n_steps,
        "n_rhs_evals": trajectory.n_rhs_evals,
        "events_applied": dict(zip(trajectory.event_names, map(bool, trajectory.events_applied))),
        "provenance": provenance(),
    }
    with atomic_output_dir(output_dir, clean=True, known=RUN_FILES) as staging:
        trajectory.to_wide().to_csv(staging / "trajectory.csv", index=False)
        fig = plot_trajectory(trajectory, scenario.plot_outputs, scenario.plot_log,
                              title=f"{scenario.name}: typical patient")
        save_figure(fig, staging / "outputs", ("png",))
        write_json(staging / "run.json", summary)
    summary["files"] = [str(Path(output_dir) / f) for f in ("trajectory.csv", "outputs.png", "run.json")]
    return summary


def is_cohort_run(scenario, n=None) -> bool:
    """Whether ``carkinetics run`` simulates a cohort: ``--n`` given, or [population] / [arms]."""
    return n is not None or scenario.population is not None or scenario.arms is not None


def run_population(scenario, output_dir, *, n=None, seed=None, jobs=None, chunk_size=None, trajectories=False,
                   progress=None, plots=True, figures=None, overrides=None, table_format="csv", keep_parameters=True):
    """Simulate the scenario's virtual cohort and write its tables and plots to ``output_dir``.

    Writes, atomically: ``patients.csv`` (one row per patient: arm, covariates, varying
    parameters, status, endpoints), ``summary.csv`` (endpoint summaries per arm),
    ``bands.csv`` (quantiles of each plot output over time per arm), ``km.csv`` (when
    there are time-to-event endpoints), ``trajectories.csv`` (only with
    ``trajectories=True``: streamed to disk chunk by chunk), ``observed.csv`` (the
    scenario's ``[data]``), ``bands.png``, ``km.png`` and ``run.json`` (provenance).

    Parameters
    ----------
    scenario : Scenario
    output_dir : path-like
    n, seed, jobs, chunk_size, progress :
        As for :func:`carkinetics.cohort.pipeline.run_cohort`.
    trajectories : bool
        Also write every patient's trajectory of the plot outputs (large: N x n_times rows).
    plots : bool
        Draw ``bands.png`` and ``km.png``.
    figures : carkinetics.plots.render.FigureHelper, optional
        A helper process that draws the plots (started early by ``carkinetics run``, so that
        matplotlib is imported while this process starts up); default: drawn here.
    overrides : dict of str to float, optional
        Values set as with ``--set`` (variables, parameters, covariates): applied to the
        scenario (:func:`~carkinetics.scenario.overrides.apply_overrides`) and recorded as
        ``overrides`` in ``run.json``.
    table_format : str, optional
        ``"csv"``, or ``"parquet"`` (needs pyarrow) for ``patients.parquet`` and ``bands.parquet``
        instead of ``patients.csv`` and ``bands.csv``.
    keep_parameters : bool
        False: the returned ``result.patients`` does without the varying parameters'
        columns (``param_NAME``), which ``patients.csv`` has (it is written while simulating,
        chunk by chunk): they are never held (8 bytes per patient and parameter: 248 MB at
        10^6 patients of the T-ALL model). What ``carkinetics run`` does. Only with
        ``table_format="csv"``.

    Returns
    -------
    CohortResult
        With ``files`` set to the paths written.
    """
    from carkinetics.cohort.pipeline import run_cohort
    from carkinetics.io.tables import check_table_format
    from carkinetics.studies.vpc import scenario_vpc

    check_table_format(table_format, "table_format")  # refused before the folder is made
    output_dir = Path(output_dir)
    scenario = apply_overrides(scenario, overrides)  # refused before the folder is made

    def prepare():
        if plots and figures is None:  # most of matplotlib's import (~0.4 s) while the engine simulates;
            # pyplot (and the choice of its backend) is left to the calling thread, when the figures are drawn
            import matplotlib.backends.backend_agg  # noqa: F401
            import matplotlib.figure  # noqa: F401

    # the folder is checked (and files of others in it refused) before anything is simulated
    with atomic_output_dir(output_dir, clean=True, known=RUN_FILES) as staging:
        def draw_bands(partial):  # the helper draws the bands while the summaries are computed here
            figures.send(partial.figure_jobs(staging))

        try:
            result = run_cohort(scenario, n=n, seed=seed, jobs=jobs, chunk_size=chunk_size,
                                keep_trajectories=(staging / "trajectories.csv") if trajectories else False,
                                progress=progress, while_simulating=prepare,
                                patients_csv=staging / "patients.csv" if table_format == "csv" else None,
                                on_bands=draw_bands if plots and figures is not None else None,
                                keep_parameters=keep_parameters or table_format != "csv")
            result.info["overrides"] = dict(overrides or {})
            names = result.write_into(staging, plots=plots, figures=figures, table_format=table_format)
            names = list(names) + scenario_vpc(scenario, staging, seed=result.info.get("seed"), jobs=jobs)
        except BaseException:
            if figures is not None:  # failed or interrupted: the helper stops now, not after its figures
                figures.kill()
            raise
        finally:
            if figures is not None:  # it writes into the staging folder: done before the folder goes
                figures.close()
    result.files = [output_dir / f for f in names]
    return result
