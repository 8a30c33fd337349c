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
    return model_from_dict(parse_toml(text, p, ModelFileError), p, text)
