"""Observation datasets for fitting: loading, NONMEM-style column mapping, validation.

A dataset is a long CSV table, one row per record::

    id,time,observable,value,lloq
    P01,1,transgene,12.5,50        # 12.5 < 50: censored (below the limit), not dropped
    P01,4,transgene,230,50
    P02,1,transgene,,50            # empty value with BLQ=1 is also accepted (see below)

Recognised columns (names are case-insensitive; the NONMEM spelling is an alias):

============  ==========================  ====================================================
canonical     aliases                     meaning
============  ==========================  ====================================================
``id``        ``ID``, ``patient``,        patient identifier (any text)
              ``subject``, ``USUBJID``
``time``      ``TIME``                    days after the reference time (CAR-T infusion), >= 0
``observable````DVID``, ``output``        an output name of the model, or its 1-based number
``value``     ``DV``                      observed value (output units)
``lloq``      ``LLOQ``, ``LOQ``           lower limit of quantification; a value below it is
                                          censored (M3 likelihood), never dropped
``blq``       ``BLQ``, ``CENS``           1 = below the limit: the row is censored at ``lloq``
                                          (or at ``DV`` when there is no ``lloq``, Monolix style)
``amt``       ``AMT``                     dose amount (state units) on dose rows
``evid``      ``EVID``                    0 observation, 1 dose, 2 other (ignored); 3/4 (reset)
                                          are not supported
``mdv``       ``MDV``                     1 = no observation on this row (ignored unless a dose)
``cmt``       ``CMT``                     dose rows: the state dosed (name or 1-based number in
                                          model-file order); observation rows without an
                                          ``observable`` column: the output (name or number)
``addl``,     ``ADDL``, ``II``            additional doses: ADDL more doses every II days
``ii``
============  ==========================  ====================================================

``RATE`` and ``SS`` are recognised and rejected when non-zero (zero-order infusions and
steady-state doses are not modelled: CAR-T doses are jumps). Any other column is a
per-patient covariate: it must be constant within a patient; a numeric covariate whose name
is a model parameter sets that parameter for the patient (held fixed in fits).

Without ``evid`` every row with a ``value`` is an observation and a row with ``amt > 0``
and no value is a dose. Without ``observable``/``dvid``/``cmt`` the model must have a
single output. All problems in a file are reported together, each with its line number
(line 1 is the header).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from carkinetics.errors import DataError, FileProblem, ProblemCollector, suggestion

if TYPE_CHECKING:
    import pandas as pd

    from carkinetics.model.spec import Model

ALIASES = {
    "id": ("id", "patient", "subject", "usubjid", "patient_id"),
    "time": ("time",),
    "observable": ("observable", "dvid", "output"),
    "value": ("value", "dv"),
    "lloq": ("lloq", "loq"),
    "blq": ("blq", "cens"),
    "amt": ("amt",),
    "evid": ("evid",),
    "mdv": ("mdv",),
    "cmt": ("cmt",),
    "addl": ("addl",),
    "ii": ("ii",),
    "rate": ("rate",),
    "ss": ("ss",),
}
_MISSING = {"", ".", "na", "nan", "NA", "NaN"}
#: Longest patient id (characters): study subject ids are tens of characters; a longer "id" is
#: a misplaced column or a broken file, and would be copied into every table and plot.
MAX_ID_LENGTH = 256
#: Most additional doses one row may ask for (ADDL), and most doses of one patient after
#: expansion: CAR-T protocols have one to a few infusions; ADDL = 1e9 would fill the memory.
MAX_ADDL = 10_000
MAX_DOSES_PER_PATIENT = 10_000
#: Largest time (days after the reference time) of a data row or an expanded dose.
MAX_TIME = 1e6


#: Most columns a data or target table may have (NONMEM columns plus covariates).
MAX_COLUMNS = 1000


def read_csv_table(path, error_class=DataError, what="file", **read_kw):
    """A CSV file as a DataFrame of strings, read through :func:`~carkinetics.errors.read_input_text`.

    Folders, devices, files over the input size limit and text that is not UTF-8 raise
    ``error_class`` naming the file, as do tables pandas cannot parse and headers that repeat
    a column name (pandas would rename the second ``x`` to ``x.1`` silently).
    """
    import csv
    import io

    import pandas as pd

    from carkinetics.errors import read_input_text

    text = read_input_text(path, error_class, what)
    comment = read_kw.get("comment")
    header = None
    for row in csv.reader(io.StringIO(text), skipinitialspace=bool(read_kw.get("skipinitialspace"))):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if comment and row[0].lstrip().startswith(comment):
            continue
        header = row
        break
    if header is not None:
        if len(header) > MAX_COLUMNS:
            raise error_class(path, [FileProblem("header", f"{len(header):,} columns; a table may have at most "
                                                           f"{MAX_COLUMNS:,}")])
        names = [h.strip() for h in header]
        dups = sorted({h for h in names if names.count(h) > 1})
        if dups:
            raise error_class(path, [FileProblem("header", f"duplicate column names {dups}: each column "
                                                           f"must appear once")])
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, **read_kw), text
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        raise error_class(path, [f"not a readable CSV table: {str(err).strip()}"]) from None


@dataclass
class Dataset:
    """A validated observation dataset.

    Attributes
    ----------
    observations : pandas.DataFrame
        Columns ``id, time, observable, value, lloq, censored, line``; ``value`` of a
        censored row is the reported number or NaN, ``lloq`` is NaN when none was given.
        Sorted by patient (in order of first appearance) and time.
    doses : pandas.DataFrame
        Columns ``id, time, state, amount, line`` (``ADDL``/``II`` expanded).
    covariates : pandas.DataFrame
        One row per patient (index ``id``), one column per covariate.
    ids : list of str
        Patients with at least one observation, in order of first appearance.
    path : str
        Source file (or ``"<frame>"``); ``sha256`` its content hash.
    """

    observations: object
    doses: object
    covariates: object
    ids: list
    path: str = "<frame>"
    sha256: str = ""
    column_map: dict = field(default_factory=dict)

    @property
    def n_observations(self) -> int:
        """Number of observation rows (censored ones included)."""
        return len(self.observations)

    @property
    def n_censored(self) -> int:
        """Number of censored observation rows."""
        return int(self.observations["censored"].sum())

    def patient(self, pid):
        """Observations and doses of one patient: ``(obs_frame, dose_frame)``."""
        obs = self.observations[self.observations["id"] == pid]
        doses = self.doses[self.doses["id"] == pid]
        return obs, doses

    def parameter_overrides(self, model, pid) -> dict:
        """Covariates of patient ``pid`` that name a parameter of ``model``."""
        if pid not in self.covariates.index:
            return {}
        row = self.covariates.loc[pid]
        return {c: float(row[c]) for c in self.covariates.columns
                if c in model.parameter_names and isinstance(row[c], (int, float, np.floating, np.integer))
                and math.isfinite(float(row[c]))}

    def schedule(self, pid, extra_events=()):
        """The patient's doses (plus ``extra_events``) as a :class:`~carkinetics.simulation.schedule.Schedule`."""
        from carkinetics.simulation.schedule import Dose, Schedule

        events = list(extra_events)
        d = self.doses[self.doses["id"] == pid]
        for t, s, a in zip(d["time"], d["state"], d["amount"]):
            events.append(Dose(float(t), str(s), float(a), name=f"dose {s}"))
        return Schedule(sorted(events, key=lambda e: e.time))

    def summary(self) -> str:
        """One line: patients, observations (censored), doses."""
        return (f"{len(self.ids)} patients, {self.n_observations} observations "
                f"({self.n_censored} censored), {len(self.doses)} doses")


def _num(text):
    """Parse a number; None for missing; raises ValueError for non-numeric text."""
    s = str(text).strip()
    if s in _MISSING:
        return None
    return float(s)


def load_data(path: str | Path, model: Model, *, covariates: str | Path | None = None,
              frame: pd.DataFrame | None = None) -> Dataset:
    """Read and validate an observation dataset for ``model``.

    Parameters
    ----------
    path : str or Path
        The CSV file (see the module docstring for the columns). When ``frame`` is
        given, ``path`` is only used in messages.
    model : Model
        Observables are checked against ``model.output_names``, dosed compartments
        against ``model.state_names``.
    covariates : str or Path, optional
        A per-patient CSV (``id`` plus covariate columns). When given, every ``id``
        of the dataset must be listed in it ("unknown id" otherwise).
    frame : pandas.DataFrame, optional
        Use this table instead of reading ``path``.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Listing every bad row (missing or unknown id, negative or non-numeric time,
        unknown observable, missing value, ...) with its line number.
    """
    import pandas as pd

    frame, sha = _read_frame(path, frame)
    errs = ProblemCollector(str(path), DataError)
    cmap, used = _map_columns(frame, errs)
    errs.raise_if_any()
    cov_table = _read_covariate_file(covariates, errs) if covariates is not None else {}
    rows = _RowReader(frame, cmap, used, model, cov_table)
    for i in range(len(frame)):
        rows.read(i, errs)
    if not errs and not rows.obs_rows:
        errs.add("", "no observations (every row is a dose, EVID = 2 or MDV = 1)")
    covs = _check_covariates(rows.cov_values, cov_table, model, errs)
    errs.raise_if_any()

    order = rows.order
    obs = pd.DataFrame(rows.obs_rows, columns=["id", "time", "observable", "value", "lloq", "censored", "line"])
    obs["_o"] = obs["id"].map(order)
    obs = obs.sort_values(["_o", "time", "line"], kind="stable").drop(columns="_o").reset_index(drop=True)
    doses = pd.DataFrame(rows.dose_rows, columns=["id", "time", "state", "amount", "line"])
    doses = doses.sort_values(["id", "time", "line"], kind="stable").reset_index(drop=True)
    cov = pd.DataFrame.from_dict(covs, orient="index")
    cov.index.name = "id"
    ids = sorted(order, key=order.get)
    return Dataset(obs, doses, cov, ids, path=str(path), sha256=sha, column_map=cmap)


def _read_frame(path, frame):
    """The table as strings and its file's SHA-256 (``""`` for an in-memory ``frame``)."""
    from carkinetics.io.provenance import file_sha256

    if frame is None:
        p = Path(path)
        frame, _ = read_csv_table(p, DataError, "file", skipinitialspace=True, comment="#")
        return frame, file_sha256(p)  # a regular file of bounded size: checked by read_csv_table
    columns = [str(c) for c in frame.columns]
    dups = sorted({c for c in columns if columns.count(c) > 1})
    if dups:
        raise DataError(str(path), [FileProblem("header", f"duplicate column names {dups}: each column "
                                                          f"must appear once")])
    return frame.astype(str), ""


def _map_columns(frame, errs) -> tuple[dict, set]:
    """Canonical column name -> column of ``frame`` (through :data:`ALIASES`), and the columns used."""
    lower = {}
    for c in frame.columns:
        key = str(c).strip().lower()
        if key in lower:
            errs.add(f"column '{c}'", f"duplicate column (case-insensitive) with '{lower[key]}'")
        lower[key] = c
    cmap = {}
    used = set()
    for canon, names in ALIASES.items():
        found = [lower[n] for n in names if n in lower]
        if len(found) > 1:
            errs.add(f"column '{found[1]}'", f"both '{found[0]}' and '{found[1]}' give the {canon} column; keep one")
        if found:
            cmap[canon] = found[0]
            used.add(found[0])
    for canon in ("id", "time"):
        if canon not in cmap:
            errs.add(f"column '{canon}'", f"missing required column '{canon}' (aliases: {', '.join(ALIASES[canon])}); "
                     f"columns found: {', '.join(map(str, frame.columns))}")
    if "value" not in cmap and "amt" not in cmap:
        errs.add("column 'value'", "missing column 'value' (alias DV): a dataset needs observations")
    return cmap, used


def _read_covariate_file(covariates, errs) -> dict:
    """Patient id -> {covariate: text} from a per-patient covariate file."""
    cov_table = {}
    cp = Path(covariates)
    ctab, _ = read_csv_table(cp, DataError, "covariate file", skipinitialspace=True)
    idc = next((c for c in ctab.columns if c.strip().lower() in ALIASES["id"]), None)
    if idc is None:
        errs.add("covariates", f"{covariates}: no id column")
        errs.raise_if_any()
    for _, r in ctab.iterrows():
        cov_table[str(r[idc]).strip()] = {c: r[c] for c in ctab.columns if c != idc}
    return cov_table


class _RowReader:
    """Reads the rows of a data table one by one: doses, observations and covariates.

    Every problem of a row is collected and recorded as one ``line N`` entry; good rows
    are kept in :attr:`obs_rows` and :attr:`dose_rows`.
    """

    def __init__(self, frame, cmap, used, model, cov_table):
        self.frame = frame
        self.cmap = cmap
        self.model = model
        self.cov_table = cov_table
        self.cov_cols = [c for c in frame.columns if c not in used]
        self.outputs = list(model.output_names)
        self.states = list(model.state_names)
        self.obs_rows, self.dose_rows, self.cov_values = [], [], {}
        self.n_doses = {}
        self.order = {}

    def col(self, canon, i):
        """Text of the ``canon`` column on row ``i``, or None if the table has no such column."""
        c = self.cmap.get(canon)
        return None if c is None else self.frame[c].iat[i]

    def resolve(self, text, names, what):
        """``(name, None)`` for a name or 1-based number among ``names``, else ``(None, message)``."""
        s = str(text).strip()
        if s in names:
            return s, None
        try:
            k = float(s)
        except ValueError:
            return None, f"'{s}' is not {what} of model '{self.model.name}'{suggestion(s, names)}"
        if math.isfinite(k) and k == int(k) and 1 <= int(k) <= len(names):
            return names[int(k) - 1], None
        return None, f"{s} is not {what} of model '{self.model.name}': give a name or a number 1..{len(names)}"

    def numeric(self, canon, i, bad, default=None):
        """The number in the ``canon`` column on row ``i`` (``default`` if absent, empty or bad)."""
        raw = self.col(canon, i)
        if raw is None:
            return default
        try:
            v = _num(raw)
        except ValueError:
            bad.append(f"{self.cmap[canon]} {raw!r} is not a number")
            return default
        if v is not None and not math.isfinite(v):
            bad.append(f"{self.cmap[canon]} {raw!r} is not a finite number")
            return default
        return default if v is None else v

    def read(self, i, errs) -> None:
        """Read row ``i`` (file line ``i + 2``): keep it, or record its problems in ``errs``."""
        line = i + 2
        bad = []
        pid = self._patient_id(i, bad)
        t = self._time(i, bad)
        evid = self.numeric("evid", i, bad)
        mdv = self.numeric("mdv", i, bad, 0.0)
        amt = self.numeric("amt", i, bad)
        blq = self.numeric("blq", i, bad, 0.0)
        lloq = self.numeric("lloq", i, bad)
        for canon in ("rate", "ss"):
            v = self.numeric(canon, i, bad, 0.0)
            if v:
                bad.append(f"{self.cmap[canon]} = {v:g} is not supported (doses are instantaneous; use 0)")
        raw_value = self.col("value", i)
        try:
            value = _num(raw_value) if raw_value is not None else None
        except ValueError:
            bad.append(f"value {raw_value!r} is not a number")
            value = math.nan
        if evid is None:
            evid = 1.0 if (amt is not None and amt > 0 and value is None) else 0.0
        if evid not in (0.0, 1.0, 2.0):
            bad.append(f"EVID {evid:g} is not supported (0 observation, 1 dose, 2 other)")
        rec = None
        if evid == 1.0:
            self._dose(i, pid, t, amt, line, bad)
        elif evid == 0.0 and mdv != 1.0:
            rec = self._observation(i, pid, t, value, raw_value, blq, lloq, line, bad)
        if pid not in _MISSING:
            self._covariates(i, pid, line, bad)
        if bad:
            errs.add(f"line {line}", "; ".join(bad))
        elif rec is not None:
            self.obs_rows.append(rec)
            self.order.setdefault(pid, len(self.order))

    def _patient_id(self, i, bad) -> str:
        pid = str(self.col("id", i)).strip()
        if pid in _MISSING:
            bad.append("missing patient id")
        elif len(pid) > MAX_ID_LENGTH:
            bad.append(f"patient id of {len(pid):,} characters (at most {MAX_ID_LENGTH}): '{pid[:40]}...'")
            pid = ""  # not kept: nothing below refers to it
        elif self.cov_table and pid not in self.cov_table:
            bad.append(f"unknown patient id '{pid}' (not in the covariate file{suggestion(pid, self.cov_table)})")
        return pid

    def _time(self, i, bad):
        t = None
        try:
            t = _num(self.col("time", i))
            if t is None:
                bad.append("missing time")
            elif not math.isfinite(t):
                bad.append(f"time {self.col('time', i)!r} is not finite")
                t = None
            elif t < 0:
                bad.append(f"negative time {t:g} (times are days after the reference time, >= 0)")
                t = None
            elif t > MAX_TIME:
                bad.append(f"time {t:g} is beyond {MAX_TIME:g} days (the largest time carkinetics accepts)")
                t = None
        except ValueError:
            bad.append(f"time {self.col('time', i)!r} is not a number")
        return t

    def _dose(self, i, pid, t, amt, line, bad) -> None:
        if amt is None or not math.isfinite(amt) or amt < 0:
            bad.append(f"dose row needs AMT >= 0, got {self.col('amt', i)!r}")
        cmt = self.col("cmt", i)
        state = None
        if cmt is None or str(cmt).strip() in _MISSING:
            if len(self.states) == 1:
                state = self.states[0]
            else:
                bad.append("dose row needs CMT: the state dosed (name or 1-based number)")
        else:
            state, msg = self.resolve(cmt, self.states, "a state")
            if msg:
                bad.append(msg)
        addl = self.numeric("addl", i, bad, 0.0)
        ii = self.numeric("ii", i, bad, 0.0)
        if addl and (addl < 0 or addl != int(addl) or not ii or ii <= 0):
            bad.append(f"ADDL = {addl:g} needs a whole number >= 0 and II > 0 (got II = {ii:g})")
            addl = 0
        elif addl > MAX_ADDL:
            bad.append(f"ADDL = {addl:g} asks for {addl:,.0f} additional doses; at most {MAX_ADDL:,} per row")
            addl = 0
        elif addl and t is not None and t + addl * ii > MAX_TIME:
            bad.append(f"ADDL = {addl:g} doses every II = {ii:g} days end at day {t + addl * ii:g}, beyond "
                       f"{MAX_TIME:g} days")
            addl = 0
        self.n_doses[pid] = self.n_doses.get(pid, 0) + int(addl) + 1
        if self.n_doses[pid] > MAX_DOSES_PER_PATIENT and not bad:
            bad.append(f"patient '{pid}' has {self.n_doses[pid]:,} doses by this row (ADDL expanded); at most "
                       f"{MAX_DOSES_PER_PATIENT:,} per patient")
        if not bad:
            for k in range(int(addl) + 1):
                self.dose_rows.append((pid, t + k * ii, state, amt, line))

    def _observation(self, i, pid, t, value, raw_value, blq, lloq, line, bad):
        outputs = self.outputs
        if "observable" in self.cmap:
            name, msg = self.resolve(self.col("observable", i), outputs, "an output")
        elif "cmt" in self.cmap and str(self.col("cmt", i)).strip() not in _MISSING:
            name, msg = self.resolve(self.col("cmt", i), outputs, "an output")
        elif len(outputs) == 1:
            name, msg = outputs[0], None
        else:
            name, msg = None, (f"no observable column and model '{self.model.name}' has several outputs "
                               f"({', '.join(outputs)}): add a column 'observable'")
        if msg:
            bad.append(msg)
        if lloq is not None and (not math.isfinite(lloq) or lloq <= 0):
            bad.append(f"lloq {self.col('lloq', i)!r} must be a positive number")
            lloq = None
        censored = False
        if blq == 1.0:
            if lloq is None:
                if value is None or not math.isfinite(value):
                    bad.append("BLQ/CENS = 1 needs the limit: an lloq column or the limit in DV")
                else:
                    lloq = value
            censored = True
        elif blq not in (0.0, None):
            bad.append(f"{self.cmap['blq']} must be 0 or 1, got {blq:g}")
        if value is None or (value is not None and math.isnan(value)):
            if not censored and value is None:
                bad.append("missing value (NaN) on an observation row; mark a censored point with "
                           "BLQ = 1, or set MDV = 1 / EVID = 2 to skip the row")
            value = math.nan
        elif not math.isfinite(value):
            bad.append(f"value {raw_value!r} is not finite")
        elif lloq is not None and value < lloq:
            censored = True
        return (pid, t, name, value, math.nan if lloq is None else lloq, censored, line)

    def _covariates(self, i, pid, line, bad) -> None:
        """Covariates must be constant within a patient."""
        seen = self.cov_values.setdefault(pid, {})
        for c in self.cov_cols:
            v = str(self.frame[c].iat[i]).strip()
            if v in _MISSING:
                continue
            if c in seen and seen[c][0] != v:
                bad.append(f"covariate '{c}' = {v!r} differs from {seen[c][0]!r} on line {seen[c][1]} "
                           f"(covariates must be constant within a patient)")
            else:
                seen.setdefault(c, (v, line))


def _check_covariates(cov_values, cov_table, model, errs) -> dict:
    """Patient id -> {covariate: value}; numeric covariates naming parameters must lie within bounds."""
    covs = {}
    for pid, seen in cov_values.items():
        row = {}
        if pid in cov_table:
            for c, v in cov_table[pid].items():
                seen.setdefault(c, (str(v).strip(), 0))
        for c, (v, line) in seen.items():
            try:
                row[c] = float(v)
                if not math.isfinite(row[c]):
                    errs.add(f"line {line}" if line else f"covariates '{c}'",
                             f"covariate '{c}' = {v!r} for patient '{pid}' is not a finite number")
                    continue
            except ValueError:
                row[c] = v
                if c in model.parameter_names:
                    errs.add(f"line {line}" if line else f"covariates '{c}'",
                             f"covariate '{c}' sets a model parameter and must be a number, got {v!r}")
            else:
                par = model.parameter(c) if c in model.parameter_names else None
                if par is not None and par.bounds and not (par.bounds[0] <= row[c] <= par.bounds[1]):
                    errs.add(f"line {line}", f"covariate '{c}' = {row[c]:g} for patient '{pid}' is outside the "
                                             f"parameter's bounds [{par.bounds[0]:g}, {par.bounds[1]:g}]")
        covs[pid] = row
    return covs


def dataset_from_frame(frame, model, name="<frame>") -> Dataset:
    """Validate an in-memory table (same columns as a CSV file) as a :class:`Dataset`."""
    return load_data(name, model, frame=frame)
