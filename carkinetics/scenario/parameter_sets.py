"""Parameter-set files: a product's parameter values (e.g. from ``carkinetics calibrate``) in TOML.

A scenario names one or more with ``[scenario] parameter_set = "..."``, an arm with
``[arms.NAME] parameter_set = "..."`` and a named option of a sweep axis with
``parameter_set = "..."``; the scenario's (or arm's, or option's) own values apply on top.

**Parameter samples.** ``carkinetics calibrate --uncertainty`` writes, beside the parameter
sets, ``parameter_sample.csv``: one row per draw of the estimates from their uncertainty, one
column per estimate label (``name`` for a value shared by all products, ``name[product]`` for a
product's own). :func:`read_parameter_sample` reads it; inside ``with parameter_draw(sample,
k):`` every parameter-set file of the sample's folder reads as if the calibration had
estimated draw ``k`` (its shared values, and the values of the file's own product, named by the
file's ``[calibration] product``), so that a scenario loaded there is the scenario under that
draw: this is how ``--replicates`` propagates parameter uncertainty.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carkinetics.errors import ProblemCollector, ScenarioError, is_number, parse_toml, read_input_text
from carkinetics.scenario.parsing import parameter_items


def load_parameter_set(path, model) -> dict:
    """Parameter values from a parameter-set file: a TOML file with a ``[parameters]`` table.

    Such files are written by ``carkinetics calibrate`` (one per product, with the fit's
    provenance in comments and in a ``[calibration]`` table, which is not read here); a
    scenario names one with ``[scenario] parameter_set = "..."`` and its own
    ``[parameters]`` apply on top.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    model : Model
        The model whose parameters the file sets.

    Returns
    -------
    dict of str to float
        Parameter name -> value.

    Raises
    ------
    ScenarioError
        Naming the file: not TOML, no ``[parameters]`` table, unknown parameters, values
        that are not finite numbers within the model's bounds.
    """
    path = Path(path)
    errs = ProblemCollector(path, ScenarioError)
    data = parse_toml(read_input_text(path, ScenarioError, "TOML file"), path, ScenarioError)
    if not isinstance(data.get("parameters"), dict):
        raise ScenarioError(path, ["parameters: a parameter-set file needs a [parameters] table of "
                                   "parameter = value"])
    for k in data:
        if k not in ("parameters", "calibration"):
            errs.unknown_name(k, k, ("parameters", "calibration"), "a section of a parameter-set file")
    _check_provenance_numbers(data.get("calibration"), "calibration", errs)
    out = {}
    numeric_parameters(parameter_items(data["parameters"], "parameters", model, errs, "value"), model, errs, out)
    errs.raise_if_any()
    drawn = _DRAW.get()
    if drawn is not None and path.resolve().parent == drawn.sample.folder:
        product = set_product(data)
        own = sorted({lb for lb in drawn.sample.labels if "[" in lb and lb.partition("[")[0] in out})
        if product is None and own:
            raise ScenarioError(path, [f"calibration.product: the parameter sample {drawn.sample.path} has values "
                                       f"per product ({', '.join(own)}) but this set names no product "
                                       f"([calibration] product = \"...\"), so its draw is unknown"])
        out.update(drawn.sample.values_for(drawn.index, product, model))
        drawn.read.append(path.resolve())
    return out


def set_product(data):
    """The product a parameter-set file's ``[calibration]`` record names (None without one)."""
    cal = data.get("calibration")
    product = cal.get("product") if isinstance(cal, dict) else None
    return product if isinstance(product, str) and product else None


@dataclass(frozen=True)
class ParameterSample:
    """Draws of a calibration's estimates (``parameter_sample.csv``), as read by :func:`read_parameter_sample`.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    labels : tuple of str
        Estimate labels: ``name`` (shared by all products) or ``name[product]``.
    values : numpy.ndarray, shape (n_draws, n_labels)
        Natural-scale values.
    draws : numpy.ndarray of int
        The ``draw`` column.
    """

    path: Path
    labels: tuple
    values: np.ndarray
    draws: np.ndarray
    #: Other samples whose columns were joined, draw k to draw k (the clinical outcome links' own).
    joined: tuple = ()

    @property
    def folder(self) -> Path:
        """The folder whose parameter-set files the draws replace."""
        return self.path.resolve().parent

    def __len__(self) -> int:
        return len(self.values)

    def check(self, model, replicates: int) -> None:
        """Refuse the first ``replicates`` draws if a value is outside the model's bounds, or a
        column names a product that no parameter-set file of the sample's folder declares
        (before anything is simulated)."""
        products = set()
        for f in sorted(self.folder.glob("*.toml")):
            try:
                products.add(set_product(parse_toml(f.read_text(encoding="utf-8"), f, ScenarioError)))
            except (OSError, UnicodeDecodeError, ScenarioError):
                continue
        problems = []
        for label in self.labels:
            _, bracket, rest = label.partition("[")
            if bracket and rest[:-1] not in products:
                problems.append(f"column '{label}': no parameter set in {self.folder} declares product "
                                f"'{rest[:-1]}' ([calibration] product), so its values would reach nothing")
        for j, label in enumerate(self.labels):
            par = model.parameter(label.partition("[")[0])
            if not par.bounds:
                continue
            col = self.values[:replicates, j]
            bad = np.nonzero((col < par.bounds[0]) | (col > par.bounds[1]))[0]
            if bad.size:
                problems.append(f"draw {int(self.draws[bad[0]])}, column '{label}': {col[bad[0]]} is outside the "
                                f"model's bounds [{par.bounds[0]}, {par.bounds[1]}]")
        if problems:
            raise ScenarioError(self.path, problems)

    def values_for(self, k: int, product, model) -> dict:
        """Parameter name -> value of draw ``k`` for a set of ``product`` (shared values and its own)."""
        out = {}
        for j, label in enumerate(self.labels):
            name, _, rest = label.partition("[")
            if rest and rest[:-1] != product:
                continue
            out[name] = float(self.values[k, j])
        for name, value in out.items():
            par = model.parameter(name)
            if par.bounds and not (par.bounds[0] <= value <= par.bounds[1]):
                raise ScenarioError(self.path, [f"draw {int(self.draws[k])}: {name} = {value} is outside the "
                                                f"model's bounds [{par.bounds[0]}, {par.bounds[1]}]"])
        return out


def join_outcome_sample(sample: ParameterSample, model) -> ParameterSample:
    """``sample`` with the draws of the model's clinical outcome links joined, draw k to draw k.

    The links are calibrated apart from the kinetics (stage 2, kinetics fixed), so their
    sample lies beside their own record (``[outcome_model] calibration`` of the outcome file,
    :attr:`Model.outcome_calibration`); its shared columns apply to every parameter set, like
    the kinetic sample's shared ones. The joint draw treats the two stages' uncertainties as
    independent. Unchanged when the model has no calibrated outcome sample or ``sample``
    already has outcome columns.
    """
    record = getattr(model, "outcome_calibration", None)
    path = Path(record) / "parameter_sample.csv" if record is not None else None
    outcome = set(getattr(model, "outcome_parameters", ()))
    if path is None or not path.is_file() or any(lb.partition("[")[0] in outcome for lb in sample.labels):
        return sample
    other = read_parameter_sample(path, model)
    cols = [j for j, lb in enumerate(other.labels) if lb in outcome]
    n = min(len(sample), len(other))
    return ParameterSample(path=sample.path, labels=sample.labels + tuple(other.labels[j] for j in cols),
                           values=np.hstack([sample.values[:n], other.values[:n][:, cols]]), draws=sample.draws[:n],
                           joined=sample.joined + (other.path,))


def sample_sha256(sample: ParameterSample) -> str:
    """SHA-256 of the sample's file, with those of the samples joined to it (a change of either is seen)."""
    import hashlib

    from carkinetics.io.provenance import file_sha256

    if not sample.joined:
        return file_sha256(sample.path)
    return hashlib.sha256(" ".join(file_sha256(p) for p in (sample.path,) + sample.joined).encode()).hexdigest()


def read_parameter_sample(path, model) -> ParameterSample:
    """Read and check a ``parameter_sample.csv`` (written by ``carkinetics calibrate --uncertainty``).

    Parameters
    ----------
    path : path-like
    model : Model
        The model whose parameters the labels name.

    Returns
    -------
    ParameterSample

    Raises
    ------
    ScenarioError
        Naming the file: not a CSV table with a ``draw`` column and one column per estimate,
        labels that are not parameters of the model (``name`` or ``name[product]``), values
        that are not finite positive numbers, or no rows.
    """
    import io

    import pandas as pd

    path = Path(path)
    text = read_input_text(path, ScenarioError, "parameter sample (CSV)")
    try:
        df = pd.read_csv(io.StringIO(text))
    except (ValueError, pd.errors.ParserError) as err:
        raise ScenarioError(path, [f"not a CSV table: {err}"]) from None
    problems = []
    if "draw" not in df.columns:
        problems.append("expected a 'draw' column (the draw's number) and one column per estimate")
    labels = [c for c in df.columns if c != "draw"]
    if not labels:
        problems.append("no estimate columns")
    if df.empty:
        problems.append("no draws (the table has no rows)")
    for label in labels:
        name, bracket, rest = str(label).partition("[")
        if (bracket and (not rest.endswith("]") or len(rest) < 2)) or name not in model.parameter_names:
            problems.append(f"column '{label}': expected a parameter of model '{model.name}', as NAME or "
                            f"NAME[product]")
    if problems:
        raise ScenarioError(path, problems)
    values = df[labels].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ScenarioError(path, [f"row {i + 1}, column '{labels[j]}': expected a finite positive number, got "
                                   f"{df[labels[j]].iloc[i]!r}"])
    draws = pd.to_numeric(df["draw"], errors="coerce").to_numpy()
    if not np.all(np.isfinite(draws)):
        raise ScenarioError(path, ["column 'draw': expected whole numbers"])
    return ParameterSample(path=path, labels=tuple(map(str, labels)), values=values, draws=draws.astype(int))


@dataclass
class _Draw:
    sample: ParameterSample
    index: int
    read: list  # the parameter-set files read under this draw (resolved paths)


_DRAW: contextvars.ContextVar = contextvars.ContextVar("carkinetics_parameter_draw", default=None)


@contextlib.contextmanager
def parameter_draw(sample: ParameterSample, k: int):
    """Inside the block, parameter-set files of the sample's folder read as draw ``k`` of the sample.

    Yields the list of the parameter-set files read under the draw (resolved paths), filled as
    they are read: empty after a scenario was loaded means the draw changed nothing.
    """
    state = _Draw(sample=sample, index=int(k), read=[])
    token = _DRAW.set(state)
    try:
        yield state.read
    finally:
        _DRAW.reset(token)


def numeric_parameters(items, model, errs, out: dict) -> None:
    """Check ``(name, value, key)`` entries as finite numbers within the model's bounds into ``out``.

    Parameters
    ----------
    items : iterable of (str, object, str)
        Parameter name, value as read, key in the file.
    model : Model
    errs : ProblemCollector
        Where problems are recorded.
    out : dict
        Receives name -> float for the valid entries.
    """
    for nm, value, key in items:
        if not is_number(value):
            errs.add(key, f"expected a finite number, got {value!r}")
            continue
        par = model.parameter(nm)
        if par.bounds and not (par.bounds[0] <= value <= par.bounds[1]):
            errs.add(key, f"{value} is outside the model's bounds [{par.bounds[0]}, {par.bounds[1]}] "
                          f"({par.unit})")
            continue
        out[nm] = float(value)


def _check_provenance_numbers(value, key, errs) -> None:
    """A parameter set's ``[calibration]`` record is not used, but a NaN or infinite number in it
    means the file did not come from a finished calibration: refuse it."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_provenance_numbers(v, f"{key}.{k}", errs)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_provenance_numbers(v, f"{key}[{i}]", errs)
    elif isinstance(value, float) and not math.isfinite(value):
        errs.add(key, f"{value!r} in the record of the calibration: the file is not from a finished calibration")
