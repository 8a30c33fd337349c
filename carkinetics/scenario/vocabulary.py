"""Endpoint vocabularies: standard endpoint definitions a scenario imports in one section.

A vocabulary file (``carkinetics/vocabularies/clinical.toml`` ships with carkinetics) has
``[arguments]`` (name -> ``default``, ``unit``, ``description``) and ``[endpoints.NAME]`` /
``[outcomes.NAME]`` tables written as in a scenario, where ``{argument}`` stands for an
argument's value. A scenario imports it with::

    [vocabulary]
    use = "clinical"        # a shipped vocabulary, or a path to a vocabulary file
    response_day = 30       # arguments: the trial's clinical definitions
    only = ["cr", "os"]     # optional: just these endpoints

The vocabulary's endpoints come first in the patient table, then the scenario's own; an
endpoint or outcome the scenario declares itself replaces the vocabulary's of the same
name. Endpoints that need what the scenario lacks (an output its model does not have, an
event it does not declare, an endpoint left out) are left out, unless ``only`` names them.
Nothing in a vocabulary is code: placeholders are replaced by numbers, then every table
is validated like a scenario's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from carkinetics.errors import (ExpressionError, FileProblem, ScenarioError, is_number, parse_toml, read_input_text,
                                suggestion)
from carkinetics.model import expressions as ex
from carkinetics.scenario.endpoints import base_name

#: Folder of the vocabularies shipped with carkinetics.
VOCABULARY_DIR = Path(__file__).resolve().parent.parent / "vocabularies"
#: An argument default that leaves the key out of the table (a window then ends at the horizon).
HORIZON = "horizon"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECTION_KEYS = {"use", "only", "notes"}
_FILE_KEYS = {"vocabulary", "arguments", "endpoints", "outcomes"}


@dataclass
class Vocabulary:
    """A vocabulary file, read.

    Attributes
    ----------
    name, description : str
    path : pathlib.Path
    arguments : dict of str to dict
        Argument -> ``{"default": number, "unit": str, "description": str}``.
    endpoints, outcomes : dict of str to dict
        The tables as written (with placeholders).
    """

    name: str
    description: str
    path: Path
    arguments: dict
    endpoints: dict
    outcomes: dict


@dataclass
class VocabularyUse:
    """What a scenario's ``[vocabulary]`` section imports.

    Attributes
    ----------
    vocabulary : Vocabulary
    arguments : dict of str to float
        Every argument's value (the scenario's, else the default).
    included : tuple of str
        The vocabulary endpoints and outcomes the scenario gets (the others were left out or replaced).
    left_out : dict of str to str
        Endpoint -> why it was left out.
    """

    vocabulary: Vocabulary
    arguments: dict
    included: tuple = ()
    left_out: dict = field(default_factory=dict)


def shipped_vocabularies() -> list[str]:
    """Names of the vocabularies shipped with carkinetics."""
    return sorted(p.stem for p in VOCABULARY_DIR.glob("*.toml"))


def load_vocabulary(name_or_path, base: Path | None = None) -> Vocabulary:
    """Read and check a vocabulary file: a shipped name (``"clinical"``) or a path (relative to ``base``).

    Raises
    ------
    ScenarioError
        Naming the vocabulary file, the key and what was expected.
    """
    text = str(name_or_path)
    if text in shipped_vocabularies():
        path = VOCABULARY_DIR / f"{text}.toml"
    else:
        path = Path(text)
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise ScenarioError(path, [f"no such vocabulary file; the shipped vocabularies are "
                                       f"{', '.join(shipped_vocabularies())}"])
    data = parse_toml(read_input_text(path, ScenarioError, "vocabulary file"), path, ScenarioError)
    problems = []
    for key in data:
        if key not in _FILE_KEYS:
            problems.append((key, f"not a section of a vocabulary file (expected {sorted(_FILE_KEYS)})"))
    head = data.get("vocabulary", {})
    arguments = {}
    for arg, spec in (data.get("arguments") or {}).items():
        if not isinstance(spec, dict) or not (is_number(spec.get("default")) or spec.get("default") == HORIZON):
            problems.append((f"arguments.{arg}", f"expected {{ default = number or \"{HORIZON}\", unit, "
                                                 f"description }}"))
            continue
        default = HORIZON if spec["default"] == HORIZON else float(spec["default"])
        arguments[arg] = {"default": default, "unit": str(spec.get("unit", "")),
                          "description": str(spec.get("description", ""))}
    tables = {}
    for section in ("endpoints", "outcomes"):
        tables[section] = data.get(section) or {}
        for name, table in tables[section].items():
            if not isinstance(table, dict):
                problems.append((f"{section}.{name}", "expected a table"))
                continue
            for key, value in table.items():
                for used in _placeholders(value):
                    if used not in arguments:
                        problems.append((f"{section}.{name}.{key}", f"'{{{used}}}' is not an argument of the "
                                                                    f"vocabulary{suggestion(used, arguments)}"))
    if problems:
        raise ScenarioError(path, [FileProblem(k, m) for k, m in problems])
    return Vocabulary(str(head.get("name", path.stem)), str(head.get("description", "")), path, arguments,
                      tables["endpoints"], tables["outcomes"])


def _placeholders(value) -> list:
    if isinstance(value, str):
        return _PLACEHOLDER.findall(value)
    if isinstance(value, list):
        return [p for v in value for p in _placeholders(v)]
    return []


def _fill(value, arguments):
    """A table value with its placeholders replaced: ``"{x}"`` -> the number, else the text with numbers."""
    if isinstance(value, list):
        return [_fill(v, arguments) for v in value]
    if not isinstance(value, str):
        return value
    whole = _PLACEHOLDER.fullmatch(value)
    if whole:
        return arguments[whole.group(1)]
    return _PLACEHOLDER.sub(lambda m: repr(float(arguments[m.group(1)])), value)


def _is_horizon(value: str, arguments) -> bool:
    whole = _PLACEHOLDER.fullmatch(value)
    return bool(whole) and arguments.get(whole.group(1)) == HORIZON


def parse_vocabulary(raw, context) -> VocabularyUse | None:
    """The ``[vocabulary]`` section's parser (see :data:`~carkinetics.scenario.schema.SECTIONS`).

    Records the vocabulary's filled endpoint and outcome tables in
    ``context.vocabulary_tables`` (``{"endpoints": ..., "outcomes": ...}``) for the endpoint parser.
    """
    errs = context.errors
    if not isinstance(raw, dict):
        errs.add("vocabulary", "expected a table with use = \"clinical\" (or a vocabulary file)")
        return None
    if "use" not in raw or not isinstance(raw["use"], str):
        errs.add("vocabulary.use", f"missing: the name of a shipped vocabulary ({', '.join(shipped_vocabularies())}) "
                                   f"or the path of a vocabulary file")
        return None
    try:
        vocabulary = load_vocabulary(raw["use"], context.path.parent)
    except ScenarioError as err:
        errs.add("vocabulary.use", str(err))
        return None
    arguments = {k: v["default"] for k, v in vocabulary.arguments.items()}
    for key, value in raw.items():
        if key in _SECTION_KEYS:
            continue
        if key not in vocabulary.arguments:
            errs.add(f"vocabulary.{key}", f"'{key}' is not an argument of vocabulary '{vocabulary.name}'"
                                          f"{suggestion(key, vocabulary.arguments)} (its arguments: "
                                          f"{', '.join(vocabulary.arguments)})")
        elif not is_number(value):
            errs.add(f"vocabulary.{key}", f"expected a number ({vocabulary.arguments[key]['unit']}), got {value!r}")
        else:
            arguments[key] = float(value)
    only = raw.get("only")
    known = list(vocabulary.endpoints) + list(vocabulary.outcomes)
    if only is not None:
        if not isinstance(only, list) or not all(isinstance(n, str) for n in only):
            errs.add("vocabulary.only", "expected a list of endpoint names")
            only = None
        else:
            for n in only:
                if n not in known:
                    errs.add("vocabulary.only", f"'{n}' is not an endpoint of vocabulary '{vocabulary.name}'"
                                                f"{suggestion(n, known)}")
    use = VocabularyUse(vocabulary, arguments)
    own = set((context.tables.get("endpoints") or {})) | set((context.tables.get("outcomes") or {}))
    tables = {section: {name: {k: _fill(v, arguments) for k, v in table.items()
                               if not (isinstance(v, str) and _is_horizon(v, arguments))}
                        for name, table in getattr(vocabulary, section).items() if name not in own}
              for section in ("endpoints", "outcomes")}
    left_out = _beyond_horizon(tables, float(context.times[-1]))
    left_out.update(_unavailable(tables, context, own, left_out))
    if only is not None:
        for n in only:
            if n in left_out:
                errs.add("vocabulary.only", f"'{n}' cannot be computed in this scenario: {left_out[n]}")
        left_out.update({n: "not in `only`" for n in known if n not in only and n not in left_out})
    for section in tables:
        tables[section] = {n: t for n, t in tables[section].items() if n not in left_out}
    use.included = tuple(n for section in tables for n in tables[section])
    use.left_out = left_out
    context.vocabulary_tables = tables
    return use


def _requirements(table) -> set:
    """The names an endpoint table needs: outputs, expression names, endpoints and events it refers to."""
    needs = set()
    for key in ("output", "at", "after", "start"):
        if isinstance(table.get(key), str):
            needs.add(table[key])
    for key in ("expr", "hazard", "probability", "among"):
        if isinstance(table.get(key), str):
            try:
                needs |= {n if "." in n else base_name(n) for n in ex.names(ex.parse(table[key]))}
            except ExpressionError:  # reported by the endpoint parser
                pass
    needs |= set(table.get("events") or [])
    for key in ("event", "origin"):
        if isinstance(table.get(key), str):
            needs.add(f"fired.{table[key]}")
    return needs - {"t"}


def _beyond_horizon(tables, horizon) -> dict:
    """Vocabulary endpoints read on a day after the horizon -> why; windows ending after it end at it."""
    left_out = {}
    for section in tables.values():
        for name, table in section.items():
            if is_number(table.get("end")) and table["end"] > horizon:
                del table["end"]
            if isinstance(table.get("report_at"), list):  # report days after the horizon are dropped
                table["report_at"] = [d for d in table["report_at"] if not (is_number(d) and d > horizon)]
                if not table["report_at"]:
                    del table["report_at"]
            late = [f"{k} = {table[k]:g}" for k in ("day", "start", "after")
                    if is_number(table.get(k)) and table[k] > horizon]
            if late:
                left_out[name] = f"{', '.join(late)} is after the horizon (day {horizon:g})"
    return left_out


def _unavailable(tables, context, own, left_out) -> dict:
    """Vocabulary endpoints that need names the scenario lacks -> why (left out together with those needing them)."""
    available = set(context.model.output_names) | context.patient_names() | set(own)
    names = {n: t for section in tables.values() for n, t in section.items()}
    left_out = dict(left_out)
    changed = True
    while changed:
        changed = False
        for name, table in names.items():
            if name in left_out:
                continue
            missing = sorted(n for n in _requirements(table)
                             if n not in available and (n not in names or n in left_out))
            if missing:
                left_out[name] = f"needs {', '.join(missing)}"
                changed = True
    return left_out
