"""The results of a sweep: :class:`SweepResult`, and the folder a sweep writes and :func:`load_sweep` reads.

The folder layout is described in :mod:`carkinetics.studies.sweep`. Each finished grid point is
written atomically (:func:`write_point`), then ``summary.csv`` and ``km.csv`` are rebuilt from the
finished points (:func:`write_combined`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from carkinetics.errors import is_number, suggestion
from carkinetics.scenario.grid import SweepError, SweepSpec
from carkinetics.stats.outcome import split_outcome

if TYPE_CHECKING:
    import pandas as pd

SUMMARY_COLUMNS = ["point", "arm", "endpoint", "statistic", "value", "lower", "upper", "n"]
KM_COLUMNS = ["point", "arm", "endpoint", "time", "survival", "lower", "upper", "n_at_risk", "n"]


@dataclass
class SweepResult:
    """The aggregated results of a sweep.

    Attributes
    ----------
    grid : pandas.DataFrame
        ``point`` and one column per axis (labels as written in the scenario).
    summary : pandas.DataFrame
        Long table: point, arm, endpoint, statistic, value, lower, upper, n.
    km : pandas.DataFrame
        Kaplan-Meier summaries on a fixed time grid: point, arm, endpoint, time,
        survival, lower, upper, n_at_risk.
    info : dict
        Provenance and settings (the content of ``sweep.json``).
    path : pathlib.Path or None
        The results folder, if written.
    """

    grid: pd.DataFrame
    summary: pd.DataFrame
    km: pd.DataFrame
    info: dict[str, Any]
    path: Path | None = None

    @property
    def axis_names(self) -> list[str]:
        """The grid's axes, in order."""
        return [a["name"] for a in self.info.get("sweep", {}).get("axes", [])]

    @property
    def axis_kinds(self) -> dict[str, str]:
        """Axis name -> kind (variable, parameter, arm, options)."""
        return {a["name"]: a["kind"] for a in self.info.get("sweep", {}).get("axes", [])}

    @property
    def endpoint_kinds(self) -> dict[str, str]:
        """Endpoint column -> kind (binary, continuous, time)."""
        return dict(self.info.get("endpoint_kinds", {}))

    def parse_outcome(self, spec: str) -> tuple[str, str]:
        """Split ``endpoint``, ``endpoint:statistic`` or ``endpoint@day`` into (endpoint, statistic).

        ``endpoint@day`` is Kaplan-Meier survival at that day (statistic ``survival@day``).

        Parameters
        ----------
        spec : str
            An outcome (:mod:`carkinetics.stats.outcome`).

        Returns
        -------
        (endpoint, statistic) : tuple of str

        Raises
        ------
        SweepError
            For an endpoint the sweep does not have, or a day that is not a number.
        """
        spec = str(spec)
        try:
            endpoint, statistic, day = split_outcome(spec)
        except ValueError as err:
            raise SweepError(f"'{spec}': {err}") from None
        if day is not None:
            return endpoint, f"survival@{day:g}"
        if statistic is not None:
            return endpoint, statistic
        s = self.summary
        if spec not in set(s["endpoint"]):
            if spec in set(self.km["endpoint"]):
                horizon = float(self.km["time"].max())
                return spec, f"survival@{min(365.0, horizon):g}"
            raise SweepError(f"'{spec}' is not an endpoint of this sweep"
                             f"{suggestion(spec, sorted(set(s['endpoint'])))}")
        return spec, default_statistic(spec, self.endpoint_kinds, set(s.loc[s["endpoint"] == spec, "statistic"]))

    def outcome(self, endpoint: str, statistic: str | None = None, arm: str | None = None) -> pd.DataFrame:
        """One statistic at every grid point, beside the axis values.

        Parameters
        ----------
        endpoint : str
            An endpoint column (e.g. ``cr_d28``).
        statistic : str, optional
            Default: ``proportion`` for binary endpoints, ``median`` otherwise.
        arm : str, optional
            Only this arm (summary group).

        Returns
        -------
        pandas.DataFrame
            Columns: point, the axes, arm, value, lower, upper, n.
        """
        if statistic is not None and statistic.startswith("survival@"):
            return self._km_outcome(endpoint, float(statistic.split("@", 1)[1]), arm)
        s = self.summary
        if endpoint not in set(s["endpoint"]):
            raise SweepError(f"'{endpoint}' is not an endpoint of this sweep"
                             f"{suggestion(endpoint, sorted(set(s['endpoint'])))}")
        statistic = statistic or default_statistic(endpoint, self.endpoint_kinds,
                                                   set(s.loc[s["endpoint"] == endpoint, "statistic"]))
        rows = s[(s["endpoint"] == endpoint) & (s["statistic"] == statistic)]
        if rows.empty:
            have = sorted(set(s.loc[s["endpoint"] == endpoint, "statistic"]))
            raise SweepError(f"'{statistic}' is not a statistic of '{endpoint}'{suggestion(statistic, have)} "
                             f"(available: {', '.join(have)})")
        if arm is not None:
            rows = rows[rows["arm"] == arm]
        on = ["point", "arm"] if "arm" in self.grid.columns else ["point"]
        out = self.grid.merge(rows.drop(columns=["endpoint", "statistic"]), on=on, how="inner")
        return out.sort_values(on).reset_index(drop=True)

    def _km_outcome(self, endpoint, day, arm=None):
        km = self.km[self.km["endpoint"] == endpoint]
        if km.empty:
            have = sorted(set(self.km["endpoint"]))
            raise SweepError(f"'{endpoint}' has no Kaplan-Meier summary{suggestion(endpoint, have)} "
                             f"(time-to-event endpoints: {', '.join(have)})")
        times = np.unique(km["time"].to_numpy(float))
        hit = np.isclose(times, day, rtol=0, atol=1e-6)
        if not hit.any():
            raise SweepError(f"day {day:g} is not one of the Kaplan-Meier summary days of this sweep; add it to "
                             f"[sweep] km_times (days available: {_fmt_days(times)})")
        rows = km[np.isclose(km["time"].to_numpy(float), day, rtol=0, atol=1e-6)]
        rows = rows.rename(columns={"survival": "value"}).drop(columns=["endpoint", "time", "n_at_risk"])
        if arm is not None:
            rows = rows[rows["arm"] == arm]
        on = ["point", "arm"] if "arm" in self.grid.columns else ["point"]
        out = self.grid.merge(rows, on=on, how="inner")
        return out.sort_values(on).reset_index(drop=True)


def _fmt_days(times) -> str:
    t = [f"{x:g}" for x in times]
    return ", ".join(t) if len(t) <= 12 else ", ".join(t[:6] + ["..."] + t[-3:])


def default_statistic(endpoint, kinds, available) -> str:
    """``proportion`` for binary endpoints, ``median`` (or the first available) otherwise.

    Parameters
    ----------
    endpoint : str
    kinds : dict
        Endpoint column -> kind.
    available : set of str
        The statistics the summary holds for the endpoint.

    Returns
    -------
    str
    """
    kind = kinds.get(endpoint)
    for stat in (("proportion",) if kind == "binary" else ()) + ("proportion", "median", "value"):
        if stat in available:
            return stat
    return sorted(available)[0]


def load_sweep(path: str | Path) -> SweepResult:
    """Read a sweep results folder written by :func:`carkinetics.studies.sweep.sweep` (finished points only).

    Parameters
    ----------
    path : path
        The folder.

    Returns
    -------
    SweepResult

    Raises
    ------
    SweepError
        When the folder holds no ``sweep.json``.
    """
    import pandas as pd

    from carkinetics.io.results import read_result_json
    from carkinetics.io.tables import table_name

    path = Path(path)
    meta_path = path / "sweep.json"
    if not meta_path.exists():
        raise SweepError(f"{path}: not a sweep results folder (no sweep.json)")
    info = read_result_json(meta_path)
    grid = _read_grid(path / "grid.csv")
    finished = sorted(info.get("finished", []))
    fmt = sweep_table_format(info)
    summaries, kms = [], []
    for pid in finished:
        folder = path / "points" / f"{pid:04d}"
        summaries.append(_read_point_table(folder / table_name("summary", fmt)))
        kms.append(_read_point_table(folder / table_name("km", fmt)))
    summary = (pd.concat(summaries, ignore_index=True) if summaries
               else pd.DataFrame(columns=SUMMARY_COLUMNS))
    km = pd.concat(kms, ignore_index=True) if kms else pd.DataFrame(columns=KM_COLUMNS)
    for df in (summary, km):
        if "arm" in df.columns:
            df["arm"] = df["arm"].astype(str)
    return SweepResult(grid=grid, summary=summary, km=km, info=info, path=path)


def sweep_table_format(info) -> str:
    """The format of a sweep's tables (``"csv"`` or ``"parquet"``), from its record (``sweep.json``).

    Parameters
    ----------
    info : dict
        The record; sweeps recorded without ``table_format`` wrote CSV.

    Returns
    -------
    str
    """
    fmt = info.get("table_format", "csv") if isinstance(info, dict) else "csv"
    return fmt if fmt in ("csv", "parquet") else "csv"


def _read_point_table(path):
    """A summary or Kaplan-Meier table of a grid point (CSV: "NA" and the like stay text)."""
    from carkinetics.io.tables import read_table

    return read_table(path, keep_default_na=False, na_values=[""])


def _read_grid(path):
    from carkinetics.io.results import read_result_csv

    grid = read_result_csv(path, keep_default_na=False, na_values=[""])
    for col in grid.columns:
        if col != "point" and grid[col].dtype == object:
            grid[col] = grid[col].astype(str)
    return grid


def grid_frame(spec: SweepSpec, ids=None):
    """The grid as a table: ``point`` and one column per axis (labels).

    Parameters
    ----------
    spec : SweepSpec
    ids : list of int, optional
        Only these points (default: the whole grid).

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    points = spec.points(ids)
    rows = [{"point": p.id, **p.labels} for p in points]
    df = pd.DataFrame(rows, columns=["point"] + spec.axis_names)
    for a in spec.axes:
        if not all(is_number(v) for v in a.labels):
            df[a.name] = df[a.name].astype(str)
    return df


def check_output_folder(output) -> Path:
    """Refuse a results folder that cannot be one, before anything is computed; return it.

    An empty path, an existing file or device (``/dev/null``), a path below a file, a
    broken symbolic link, or a folder that cannot be created or written
    (:func:`carkinetics.io.atomic.check_output_dir`; files already in the folder are left alone: a
    sweep adds points to its folder).
    """
    from carkinetics.io import atomic as io

    if not isinstance(output, (str, bytes, os.PathLike)):
        raise SweepError(f"the output folder must be a path, got {output!r}")
    io.check_output_dir(output)
    return Path(os.fsdecode(os.fspath(output)))


#: What a sweep writes in its folder (anything else there is not the sweep's).
SWEEP_FILES = {"grid.csv", "summary.csv", "km.csv", "summary.parquet", "km.parquet", "sweep.json", "points",
               "figures", "replicates", "draws.csv", "effects.csv"}


def holds_only_sweep_files(out: Path) -> bool:
    """Whether ``out`` is missing or holds nothing but a sweep's files (and hidden ones)."""
    if not out.exists():
        return True
    return all(p.name in SWEEP_FILES or p.name.startswith(".") for p in out.iterdir())


def remove_stale_staging(out: Path) -> None:
    """Staging folders and temporary files that a killed run left (atomic writes never finished):
    beside and inside the folder, and in ``points/``."""
    from carkinetics.io import atomic as io

    io.remove_orphaned_partials(out)  # only those of processes no longer running
    io.remove_orphaned_partials(out / "points")
    for f in list(out.glob(".grid.csv.*tmp")) + list(out.glob(".sweep.json.*.tmp")):
        if f.is_file():
            f.unlink(missing_ok=True)


def previous_sweep(out: Path):
    """The ``sweep.json`` in ``out`` if at least one of its grid points finished, else None.

    A sweep whose every point failed or was interrupted left nothing to keep: the folder is
    used afresh (sweep.json is only written once a point finished; older versions wrote it at
    the start).
    """
    meta = out / "sweep.json"
    if not meta.is_file():
        return None
    try:
        old = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise SweepError(f"{meta}: cannot read the record of the sweep in {out} ({err}); choose another "
                         f"--output folder") from None
    if not isinstance(old, dict):
        raise SweepError(f"{meta}: not the record of a sweep; choose another --output folder")
    finished = old.get("finished", [])
    fmt = sweep_table_format(old)
    finished = [p for p in finished if isinstance(p, int) and not isinstance(p, bool)
                and all((out / "points" / f"{p:04d}" / f).is_file() for f in (f"summary.{fmt}", f"km.{fmt}"))] \
        if isinstance(finished, list) else []
    if not finished:
        return None
    old["finished"] = finished
    return old


#: The file of a grid point's per-patient table, per table format.
PATIENT_FILES = {"csv": "patients.csv.gz", "parquet": "patients.parquet"}


def write_point(out, point, res, table_format="csv") -> None:
    """Write one finished grid point's tables in ``out/points/<id>/`` (atomically).

    Parameters
    ----------
    out : pathlib.Path
        The sweep's folder.
    point : GridPoint
    res : dict
        :func:`carkinetics.studies.sweep.run_point`'s result.
    table_format : str
        ``"csv"`` (``summary.csv``, ``km.csv``, ``patients.csv.gz``) or ``"parquet"``
        (``summary.parquet``, ``km.parquet``, ``patients.parquet``; needs pyarrow).
    """
    from carkinetics.io.atomic import atomic_output_dir
    from carkinetics.io.tables import write_table

    with atomic_output_dir(out / "points" / point.folder) as staging:
        if table_format == "csv":
            res["summary"].to_csv(staging / "summary.csv", index=False)
            res["km"].to_csv(staging / "km.csv", index=False)
            if res["patients"] is not None:
                res["patients"].to_csv(staging / PATIENT_FILES["csv"], index=False)
        else:
            write_table(res["summary"], staging / f"summary.{table_format}", table_format)
            write_table(res["km"], staging / f"km.{table_format}", table_format)
            if res["patients"] is not None:
                write_table(res["patients"], staging / PATIENT_FILES[table_format], table_format)
    for fmt, name in PATIENT_FILES.items():  # a per-patient table left by an earlier, failed run is not this point's
        if res["patients"] is None or fmt != table_format:
            (out / "points" / point.folder / name).unlink(missing_ok=True)


def write_combined(out, info) -> None:
    """Rewrite summary.csv and km.csv (or .parquet) from the finished points (atomically).

    Parameters
    ----------
    out : pathlib.Path
        The sweep's folder.
    info : dict
        The sweep's record (``finished``: the ids of the finished points; ``table_format``:
        the format of its tables, :func:`sweep_table_format`).
    """
    import pandas as pd

    from carkinetics.io.atomic import atomic_output_dir
    from carkinetics.io.results import exact_float_csv_kw
    from carkinetics.io.tables import read_table, write_table

    fmt = sweep_table_format(info)
    with atomic_output_dir(out) as staging:
        for stem, cols in (("summary", SUMMARY_COLUMNS), ("km", KM_COLUMNS)):
            name = f"{stem}.{fmt}"
            if fmt == "csv":
                frames = [pd.read_csv(out / "points" / f"{p:04d}" / name, keep_default_na=False, na_values=[""],
                                      **exact_float_csv_kw())
                          for p in sorted(info["finished"])]
            else:
                frames = [read_table(out / "points" / f"{p:04d}" / name) for p in sorted(info["finished"])]
            df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
            if fmt == "csv":
                df.to_csv(staging / name, index=False)
            else:
                write_table(df, staging / name, fmt)
