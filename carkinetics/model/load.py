"""Finding and reading model files: search folders, names, and :func:`load_model`.

A model is given by a path or by a bare name looked up in ``./models`` and among the
models shipped with carkinetics; :func:`load_model` reads the file and hands the parsed
document to :func:`carkinetics.model.spec.model_from_dict` for validation.
"""

from __future__ import annotations

from pathlib import Path

from carkinetics.errors import ModelFileError, parse_toml, read_input_text, suggestion
from carkinetics.model.spec import Model, model_from_dict


def model_search_paths() -> list[Path]:
    """Folders searched for a model given by bare name: ./models, then the shipped models.

    Returns
    -------
    list of pathlib.Path
        ``./models`` (of the working folder), the ``models`` folder beside the package, the
        models shipped inside the package; each once, whether it exists or not.
    """
    here = Path(__file__).resolve().parent.parent  # the package folder
    paths = [Path.cwd() / "models", here.parent / "models", here / "_data" / "models"]
    out = []
    for p in paths:
        if p not in out:
            out.append(p)
    return out


def model_files(folders) -> list[Path]:
    """The model files in ``folders``, by name: the first file of each name, in search order.

    Parameters
    ----------
    folders : list of pathlib.Path
        Folders to search (e.g. :func:`model_search_paths`); missing ones are skipped.

    Returns
    -------
    list of pathlib.Path
        The ``*.toml`` files, sorted by name within each folder.
    """
    seen = set()
    files = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            if path.stem not in seen:
                seen.add(path.stem)
                files.append(path)
    return files


def resolve_model_path(name_or_path, base: Path | None = None) -> Path:
    """Find a model file from a path (relative to ``base``) or a bare model name.

    Parameters
    ----------
    name_or_path : str or pathlib.Path
        A path (it ends in ``.toml``, exists or holds a folder separator), or the bare name
        of a model in one of the :func:`model_search_paths`.
    base : pathlib.Path, optional
        The folder a relative path is relative to.

    Returns
    -------
    pathlib.Path
        The model file.

    Raises
    ------
    FileNotFoundError
        If there is no such file or no model of that name (with a suggestion of a close name).
    """
    text = str(name_or_path)
    candidate = Path(text)
    if base is not None and not candidate.is_absolute():
        candidate = base / candidate
    if candidate.suffix == ".toml" or candidate.exists() or "/" in text or "\\" in text:
        if not candidate.exists():
            raise FileNotFoundError(f"model file not found: {candidate}")
        return candidate
    searched = model_search_paths()
    for folder in searched:
        p = folder / f"{text}.toml"
        if p.exists():
            return p
    known = sorted({p.stem for folder in searched if folder.is_dir() for p in folder.glob("*.toml")})
    raise FileNotFoundError(
        f"no model named '{text}' in {', '.join(str(f) for f in searched)}{suggestion(text, known)}"
    )


def load_model(path: str | Path) -> Model:
    """Load and validate a model file.

    Parameters
    ----------
    path : str or pathlib.Path
        Path to a ``.toml`` model file, or the bare name of a model in ``./models``
        or among the models shipped with carkinetics.

    Returns
    -------
    Model
        The validated model; its numba kernel is compiled (or loaded from the disk
        cache) on first simulation.

    Raises
    ------
    ModelFileError
        Listing every problem in the file: key, offending value, what was expected.
    FileNotFoundError
        If the file does not exist.
    """
    try:
        p = resolve_model_path(path)
    except FileNotFoundError as err:
        raise ModelFileError(str(path), [str(err)]) from None
    except OSError as err:  # a name too long for the file system, a loop of links, ...
        raise ModelFileError(str(path), [f"cannot open the model file: {err.strerror or err}"]) from None
    text = read_input_text(p, ModelFileError, "model file")
    data = parse_toml(text, p, ModelFileError)
    outcome, outcome_text, record = read_outcome_parameters(data, p)
    if outcome_text:  # the model is its file and its outcome model: both key the kernel cache and provenance
        text = f"{text}\n# ---- outcome parameters ----\n{outcome_text}"
    model = model_from_dict(data, p, text, outcome_parameters=outcome)
    model.outcome_calibration = record
    return model


#: Sections of an outcome-parameter file.
_OUTCOME_FILE_KEYS = {"outcome_model", "parameters"}
_OUTCOME_HEAD_KEYS = {"name", "description", "references", "notes", "calibration"}


def read_outcome_parameters(data: dict, path: Path) -> tuple[dict | None, str, Path | None]:
    """The ``[parameters]`` tables of the clinical outcome model a model file names.

    A model file names it with ``[model] outcome_parameters = "outcomes/clinical.toml"``
    (relative to the model file). The file (data, like a model file) has ``[outcome_model]``
    (``name``, ``description``, ``references``, ``notes``, and ``calibration``: the folder of
    the calibration that estimated the values, relative to the file) and ``[parameters.NAME]``
    tables written as a model's parameters; they become parameters of the model that only
    endpoints read (a scenario's clinical vocabulary, :mod:`carkinetics.scenario.vocabulary`).

    Returns
    -------
    (dict or None, str, pathlib.Path or None)
        The parameter tables (None without ``outcome_parameters``), the file's text, and the
        folder of the calibration record of its values (``validate`` reads which targets
        they were fitted to from its ``comparison.csv``).

    Raises
    ------
    ModelFileError
        Naming the model file, the key and what was expected.
    """
    meta = data.get("model")
    ref = meta.get("outcome_parameters") if isinstance(meta, dict) else None
    if ref is None:
        return None, "", None
    if not isinstance(ref, str) or not ref.strip():
        raise ModelFileError(str(path), [f"model.outcome_parameters: expected the path of an outcome-parameter file "
                                         f"(relative to the model file), got {ref!r}"])
    file = (path.parent / ref)
    if not file.is_file():
        raise ModelFileError(str(path), [f"model.outcome_parameters: no file {file}"])
    text = read_input_text(file, ModelFileError, "outcome-parameter file")
    doc = parse_toml(text, file, ModelFileError)
    problems = [f"{k}: not a section of an outcome-parameter file (expected {sorted(_OUTCOME_FILE_KEYS)})"
                for k in doc if k not in _OUTCOME_FILE_KEYS]
    head = doc.get("outcome_model", {})
    if not isinstance(head, dict):
        problems.append(f"outcome_model: expected a table, got {head!r}")
    else:
        problems += [f"outcome_model.{k}: not a key of [outcome_model] (expected {sorted(_OUTCOME_HEAD_KEYS)})"
                     for k in head if k not in _OUTCOME_HEAD_KEYS]
    params = doc.get("parameters")
    if not isinstance(params, dict) or not params:
        problems.append("parameters: expected [parameters.NAME] tables (value, unit, description, source, bounds)")
    record = head.get("calibration") if isinstance(head, dict) else None
    if record is not None and not isinstance(record, str):
        problems.append(f"outcome_model.calibration: expected the path of a calibration's folder, got {record!r}")
    if problems:
        raise ModelFileError(str(file), problems)
    return params, text, (file.parent / record if record else None)
