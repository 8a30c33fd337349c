"""The legal top-level sections of a scenario file, in the order they are parsed.

Each :class:`Section` names its table, the :class:`~carkinetics.scenario.load.Scenario`
attribute it fills and its parser. :func:`~carkinetics.scenario.load.scenario_from_dict`
refuses any other top-level table and parses the sections in the order of
:data:`SECTIONS`: later sections may use the names earlier ones declare (populations
use variables, arms use covariates, sweeps use variables and arms, events use all
of them).

Examples
--------
>>> from carkinetics.scenario.schema import SECTIONS
>>> [s.name for s in SECTIONS][:4]
['scenario', 'times', 'parameters', 'solver']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from carkinetics.scenario.endpoint_parser import parse_endpoints
from carkinetics.scenario.events import parse_event_section
from carkinetics.scenario.grid import parse_sweep
from carkinetics.scenario.observations import parse_data
from carkinetics.scenario.population import parse_arms, parse_population, parse_variables
from carkinetics.scenario.targets import parse_targets
from carkinetics.scenario.vocabulary import parse_vocabulary


@dataclass(frozen=True)
class Section:
    """One legal top-level section of a scenario file.

    Attributes
    ----------
    name : str
        The table's name in the file.
    description : str
        What the section holds, in one line.
    parse : callable or None
        ``parse(table, context) -> object``, given the table as read and the
        :class:`~carkinetics.scenario.parsing.SectionContext`; it records problems in
        ``context.errors``. None for the core sections (``[scenario]``, ``[times]``,
        ``[parameters]``, ``[solver]``, ``[plot]``), which
        :func:`~carkinetics.scenario.load.scenario_from_dict` reads itself.
    attribute : str
        The :class:`~carkinetics.scenario.load.Scenario` attribute that holds the parsed
        section ("" for core sections). Sections parsed together share one attribute,
        and their parser runs once.
    """

    name: str
    description: str
    parse: Callable | None = None
    attribute: str = ""


#: The legal sections, in parse order. Events come after the sections whose names
#: event expressions and ``arms`` may use, and before the endpoints that read them.
SECTIONS: tuple[Section, ...] = (
    Section("scenario", "name, description, model, reported targets and parameter sets of the scenario"),
    Section("times", "output times: start, end and step, or values"),
    Section("parameters", "overrides of the model's parameter values"),
    Section("solver", "solver method and tolerances"),
    Section("variables", "named scenario constants usable in expressions", parse_variables, "variables"),
    Section("population", "virtual population: size, seed, variability, covariates", parse_population,
            "population"),
    Section("arms", "named shares of the cohort with their own parameters and variables", parse_arms, "arms"),
    Section("events", "the protocol: interventions by name (do) and actions (add, multiply, set, set_parameter)",
            parse_event_section, "events"),
    Section("vocabulary", "a standard endpoint vocabulary (use = \"clinical\") and its clinical definitions",
            parse_vocabulary, "vocabulary"),
    Section("endpoints", "per-patient endpoints computed from model outputs", parse_endpoints, "endpoints"),
    Section("outcomes", "survival outcomes combining time-to-event endpoints (parsed with [endpoints])",
            parse_endpoints, "endpoints"),
    Section("targets", "how each reported target the scenario reproduces is computed", parse_targets,
            "target_specs"),
    Section("sweep", "the grid of protocol choices a sweep runs", parse_sweep, "sweep"),
    Section("data", "observed data shown in visual predictive checks", parse_data, "data"),
    Section("plot", "outputs and scale of the scenario's figure"),
)

#: Section name -> :class:`Section`.
SECTIONS_BY_NAME: dict[str, Section] = {s.name: s for s in SECTIONS}
