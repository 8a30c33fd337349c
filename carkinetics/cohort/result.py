"""The result of a virtual cohort run: :class:`CohortResult`, its files, and reading them back."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carkinetics.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from carkinetics.plots.render import FigureHelper

#: Files ``carkinetics run`` writes (typical patient or cohort). The output folder belongs to the
#: run: the files of an earlier run are replaced or removed, files carkinetics did not write make
#: it refuse before it computes (:func:`carkinetics.io.atomic.atomic_output_dir` with ``clean=True``).
#: These names are recognised as an earlier run's in a folder without manifest (written before
#: manifests were kept).
RUN_FILES = ("trajectory.csv", "outputs.png", "run.json", "patients.csv", "summary.csv", "bands.csv", "km.csv",
             "observed.csv", "trajectories.csv", "bands.png", "km.png", "cif.png", "patients.parquet", "bands.parquet",
             "vpc.csv", "vpc.png", "vpc.json")


class _Sender:
    """Hands figures over to a :class:`~carkinetics.plots.render.FigureHelper` from a thread;
    :meth:`join` waits and raises what the thread raised (making a figure's arguments)."""

    def __init__(self, figures, jobs):
        self._error = None
        self._thread = threading.Thread(target=self._send, args=(figures, jobs), name="carkinetics-figures",
                                        daemon=True)
        self._thread.start()

    def _send(self, figures, jobs):
        try:
            figures.send(jobs)
        except BaseException as err:  # raised by join() in the calling thread
            self._error = err

    def join(self):
        self._thread.join()
        if self._error is not None:
            raise self._error


@dataclass
class CohortResult:
    """What :func:`carkinetics.cohort.pipeline.run_cohort` returns.

    Attributes
    ----------
    patients : pandas.DataFrame
        One row per patient: ``patient`` (0-based index), ``arm``, covariates, the
        parameters that vary between patients (``param_NAME``), ``status`` (0 = solved;
        see :data:`carkinetics.simulation.result.STATUS_MESSAGES`) and the endpoint columns (NaN for
        failed patients).
    summary : pandas.DataFrame
        Cohort summaries of the endpoints per arm (:func:`carkinetics.stats.summary.summarise`),
        of the patients with status 0. Empty without ``[endpoints]``.
    bands : pandas.DataFrame or None
        Long table ``arm, output, time, n, q05, q25, q50, q75, q95``; arm ``all`` is the
        whole cohort (listed separately only when there are several arms).
    km : pandas.DataFrame
        Kaplan-Meier curves ``arm, endpoint, time, survival, lower, upper, n_at_risk``
        of each time-to-event endpoint, per arm (``arm`` and ``endpoint`` categorical: at
        10^6 patients the table has millions of rows).
    info : dict
        Provenance and run facts (seed, n, chunk size, threads, timings, failures,
        clipped parameter draws, units), written as ``run.json``.
    trajectories : pandas.DataFrame or None
        With ``keep_trajectories=True``: ``patient, arm, time`` and one column per
        band output.
    observed : pandas.DataFrame or None
        The scenario's ``[data]`` observations, for the visual predictive check.
    files : list of Path
        Files written by :meth:`write` (or ``carkinetics run``).
    streamed_csv : Path or None
        Where :func:`~carkinetics.cohort.pipeline.run_cohort` streamed ``patients.csv`` (its
        ``patients_csv``), if anywhere.
    """

    patients: pd.DataFrame | None
    summary: pd.DataFrame | None
    bands: pd.DataFrame | None
    km: pd.DataFrame | None
    info: dict[str, Any]
    trajectories: pd.DataFrame | None = None
    observed: pd.DataFrame | None = None
    files: list[Path] = field(default_factory=list)
    streamed_csv: Path | None = field(default=None, repr=False)

    @staticmethod
    def _table(t, plain):
        """``t``, or with ``plain`` its columns as numpy arrays (for :mod:`carkinetics.plots.render`)."""
        return None if t is None else ({str(c): _plain_column(t[c]) for c in t.columns} if plain else t)

    def _bands_kwargs(self, plain=False) -> dict:
        """Arguments of :func:`~carkinetics.plots.cohort.plot_cohort_bands` for this result."""
        return dict(bands=self._table(self.bands, plain), outputs=self.info.get("band_outputs"),
                    log_scale=self.info.get("log_scale", True), observed=self._table(self.observed, plain),
                    units=self.info.get("units"), time_unit=self.info.get("time_unit", ""),
                    descriptions=self.info.get("output_descriptions"),
                    references=self.info.get("output_references"),
                    title=f"{self.info.get('scenario_name', '')}: {self.info.get('n_patients', '')} virtual patients")

    def _km_kwargs(self, plain=False) -> dict:
        """Arguments of :func:`~carkinetics.plots.cohort.plot_kaplan_meier` for this result."""
        return dict(km=self._table(self.km, plain), time_unit=self.info.get("time_unit", ""),
                    title=f"{self.info.get('scenario_name', '')}: Kaplan-Meier",
                    descriptions=self.info.get("endpoint_descriptions"), origins=self.info.get("endpoint_origins"))

    def _competing_causes(self) -> dict:
        """Outcome -> its cause names, of the outcomes with more than one cause (in ``patients``)."""
        causes = self.info.get("outcome_causes") or {}
        if self.patients is None:
            return {}
        return {k: v for k, v in causes.items() if len(v) > 1 and f"{k}_cause" in self.patients.columns}

    def _cif_kwargs(self, plain=False) -> dict:
        """Arguments of :func:`~carkinetics.plots.cohort.plot_cumulative_incidence` for this result."""
        causes = self._competing_causes()
        cols = [c for c in ("arm", "status", *causes, *(f"{k}_cause" for k in causes)) if c in self.patients.columns]
        return dict(patients=self._table(self.patients[cols], plain), causes=causes,
                    time_unit=self.info.get("time_unit", ""),
                    title=f"{self.info.get('scenario_name', '')}: cumulative incidence",
                    descriptions=self.info.get("endpoint_descriptions"), origins=self.info.get("endpoint_origins"),
                    arms=list(self.info.get("arms") or []))

    def figure_args(self, plain: bool = False,
                    skip: Collection[str] = ()) -> list[tuple[str, str, dict[str, Any]]]:
        """``(function name, file name, kwargs)`` of each figure of :meth:`write_into` whose
        function is not in ``skip``; with ``plain``, tables as mappings of numpy arrays (what
        the figure helper process of :mod:`carkinetics.plots.render` is sent)."""
        return [(function, file, kwargs(plain)) for function, file, kwargs in self._figures(skip)]

    def figure_jobs(self, folder: Path, skip: Collection[str] = ()) -> list:
        """``(function name, path in folder, kwargs maker)`` of each figure not in ``skip``, with
        plain tables: what :meth:`FigureHelper.send <carkinetics.plots.render.FigureHelper.send>`
        takes, each figure's arguments made only when it is sent."""
        return [(function, Path(folder) / file, functools.partial(kwargs, True))
                for function, file, kwargs in self._figures(skip)]

    def _figures(self, skip: Collection[str] = ()) -> list:
        """``(function name, file name, kwargs maker)`` of each figure not in ``skip``: what to
        draw, without making the arguments (the cumulative incidence's copy the patients' columns)."""
        figures = []
        if self.bands is not None and len(self.bands) and "plot_cohort_bands" not in skip:
            figures.append(("plot_cohort_bands", "bands.png", self._bands_kwargs))
        if self.km is not None and len(self.km) and "plot_kaplan_meier" not in skip:
            figures.append(("plot_kaplan_meier", "km.png", self._km_kwargs))
        if self._competing_causes() and "plot_cumulative_incidence" not in skip:
            figures.append(("plot_cumulative_incidence", "cif.png", self._cif_kwargs))
        return figures

    def plot_bands(self, outputs: Sequence[str] | None = None) -> Figure:
        """Median and 5-95% / 25-75% bands per arm over time, with the observations if any."""
        from carkinetics.plots.cohort import plot_cohort_bands

        kwargs = self._bands_kwargs()
        if outputs:
            kwargs["outputs"] = outputs
        return plot_cohort_bands(**kwargs)

    def plot_km(self) -> Figure:
        """Kaplan-Meier curves of each time-to-event endpoint, per arm."""
        from carkinetics.plots.cohort import plot_kaplan_meier

        return plot_kaplan_meier(**self._km_kwargs())

    def write_into(self, folder: str | Path, plots: bool = True, figures: FigureHelper | None = None,
                   table_format: str = "csv") -> list[str]:
        """Write the result files into an existing folder (no staging); return their names.

        ``figures``: a :class:`carkinetics.plots.render.FigureHelper` that draws the plots in
        its own process while the tables are written (else, or if it fails, they are drawn here).
        ``table_format``: ``"csv"`` or ``"parquet"`` (needs pyarrow), the format of the patient
        table and the bands (``patients.parquet``, ``bands.parquet``); the other tables are CSV.
        """
        # imported here, not with the module: ``carkinetics run`` reads RUN_FILES before it starts
        # the figure helper, and the CSV writer imports numba (0.15 s)
        from carkinetics.io.csv import write_csv
        from carkinetics.io.results import write_json
        from carkinetics.io.tables import check_table_format, table_name, write_table
        from carkinetics.plots import cohort as plotting

        check_table_format(table_format, "table_format")
        folder = Path(folder)
        patients_file = table_name("patients", table_format)
        names = [patients_file, "summary.csv"]
        to_draw = self._figures() if plots else []  # their arguments made only to draw them here
        sender = None
        if figures is not None and to_draw:  # the figures not handed over yet (see run_cohort's on_bands)
            # handed over from a thread while the tables are written here: the helper reads a figure's
            # tables only once it has drawn the one before (the bands, sent while the summaries were made)
            sender = _Sender(figures, self.figure_jobs(folder, skip=figures.sent))
        streamed = self.streamed_csv is not None and Path(self.streamed_csv) == folder / "patients.csv"
        if table_format != "csv":
            if streamed:  # streamed while simulating, but the table is written in another format
                (folder / "patients.csv").unlink(missing_ok=True)
            write_table(self.patients, folder / patients_file, table_format)
        elif not (streamed and (folder / "patients.csv").exists()):
            write_csv(self.patients, folder / "patients.csv")
        write_csv(self.summary, folder / "summary.csv")
        if self.bands is not None:
            bands_file = table_name("bands", table_format)
            write_table(self.bands, folder / bands_file, table_format)
            names.append(bands_file)
        if self.km is not None and len(self.km):
            write_csv(self.km, folder / "km.csv")
            names.append("km.csv")
        if self.observed is not None:
            write_csv(self.observed, folder / "observed.csv")
            names.append("observed.csv")
        if self.trajectories is not None:
            write_csv(self.trajectories, folder / "trajectories.csv")
            names.append("trajectories.csv")
        elif (folder / "trajectories.csv").exists():
            names.append("trajectories.csv")
        if sender is not None:
            sender.join()  # raises what making a figure's arguments raised
        # fixed margins and one draw per figure (no tight bounding box): cheap at any N
        if to_draw and not (figures is not None and figures.wait()):
            for function, file, kwargs in self.figure_args():
                plotting.save_figure(getattr(plotting, function)(**kwargs), folder / file, ("png",), tight=False,
                                     dpi=120)
        names += [file for _, file, _ in to_draw]
        names.append("run.json")
        self.info["files"] = names
        self.info["table_format"] = table_format
        write_json(folder / "run.json", self.info)
        return names

    def write(self, directory: str | Path, plots: bool = True, table_format: str = "csv") -> list[Path]:
        """Write ``patients.csv``, ``summary.csv``, ``bands.csv``, ``km.csv``, plots and
        ``run.json`` into ``directory``, atomically.

        As for ``carkinetics run``, the folder belongs to the result: the files of an earlier
        run there are replaced or removed, and a folder holding files carkinetics did not
        write is refused (:class:`carkinetics.io.atomic.OutputError`). ``table_format``:
        ``"parquet"`` writes ``patients.parquet`` and ``bands.parquet`` instead (needs pyarrow)."""
        from carkinetics.io.atomic import atomic_output_dir
        from carkinetics.io.tables import check_table_format

        check_table_format(table_format, "table_format")  # before the folder is touched
        with atomic_output_dir(directory, clean=True, known=RUN_FILES) as staging:
            names = self.write_into(staging, plots=plots, table_format=table_format)
        self.files = [Path(directory) / n for n in names]
        return self.files


def load_cohort_result(directory: str | Path) -> CohortResult:
    """Read a result folder written by :meth:`CohortResult.write` (or ``carkinetics run --n``).

    The patient table and the bands are read from ``patients.parquet`` and ``bands.parquet``
    when the run wrote Parquet (``--format parquet``).

    Raises
    ------
    DataError
        If the folder lacks ``run.json`` or ``patients.csv`` (or ``patients.parquet``).
    """
    import pandas as pd

    from carkinetics.io.results import read_result_csv, read_result_json
    from carkinetics.io.tables import read_table

    d = Path(directory)
    patients_file = "patients.parquet" if (d / "patients.parquet").exists() else "patients.csv"
    missing = [f for f in ("run.json", patients_file) if not (d / f).exists()]
    if missing:
        raise DataError(d, [f"not a cohort result folder: missing {', '.join(missing)}"])
    info = read_result_json(d / "run.json")

    def read(name):
        p = d / name
        if name.endswith(".csv") and (d / f"{name[:-4]}.parquet").exists():
            p = d / f"{name[:-4]}.parquet"
        if not p.exists():
            return None
        return read_table(p) if p.suffix == ".parquet" else read_result_csv(p)

    patients = read("patients.csv")
    patients["arm"] = patients["arm"].astype(str)
    bands = read("bands.csv")
    if bands is not None and len(bands):
        bands["arm"] = bands["arm"].astype(str)
    km = read("km.csv")
    if km is None:
        km = pd.DataFrame(columns=["arm", "endpoint", "time", "survival", "lower", "upper", "n_at_risk"])
    elif len(km):  # categorical, in the order the curves come, as run_cohort makes them
        for name in ("arm", "endpoint"):
            text = km[name].astype(str)
            km[name] = pd.Categorical(text, categories=pd.unique(text))
    observed = read("observed.csv")
    summary = read("summary.csv")
    return CohortResult(patients, summary if summary is not None else pd.DataFrame(), bands, km, info,
                        observed=observed, files=sorted(p for p in d.iterdir() if not p.name.startswith(".")))


def _plain_column(col):
    """A column as a numpy array; text as an object array whose equal values are one object.

    ``Series.to_numpy`` of a text column (Arrow-backed strings, pandas >= 3) makes a new Python
    string per row, and pickling those for the figure helper memoises each one: the arm and
    endpoint columns of a Kaplan-Meier table with 4.6 million rows (10^6 patients) cost about
    1 GB that way. Factorised, the array holds references to a few strings.
    """
    import numpy as np
    import pandas as pd

    if col.dtype.kind in "biufcmM":
        return col.to_numpy()
    if isinstance(col.dtype, pd.CategoricalDtype):  # its own codes (a byte a row), a missing value last
        labels = np.append(np.asarray(col.cat.categories, dtype=object), np.nan)
        return labels[col.cat.codes.to_numpy()]
    codes, uniques = pd.factorize(col, use_na_sentinel=False)
    return np.asarray(uniques, dtype=object)[codes]

