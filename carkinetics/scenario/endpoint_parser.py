"""The parser of a scenario's ``[endpoints.NAME]`` and ``[outcomes.NAME]`` tables.

Outcomes refer to endpoints, so both sections are parsed together by
:func:`parse_endpoints` into one :class:`~carkinetics.scenario.endpoints.EndpointSet`,
each table checked against the registry of endpoint types
(:data:`~carkinetics.scenario.endpoints.ENDPOINT_TYPES`).
"""

from __future__ import annotations

import re

import numpy as np

from carkinetics.model import expressions as ex
from carkinetics.errors import ExpressionError, is_number, suggestion
from carkinetics.scenario.endpoints import (BELOW_LLOQ, COMBINE_RULES, ENDPOINT_TYPES, Endpoint, EndpointSet,
                                            base_name)
from carkinetics.stats.nca import AUC_METHODS, INTERPOLATIONS

#: Keys every endpoint table accepts, and the keys of an outcome table.
_COMMON_KEYS = frozenset({"type", "description", "notes", "among"})
_OUTCOME_KEYS = frozenset({"combine", "events", "among", "report_at", "origin", "description", "notes"})
#: An endpoint or outcome name.
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Parser:
    """Parses [endpoints] and [outcomes] together (outcomes refer to endpoints)."""

    def __init__(self, context):
        self.errs = context.errors
        self.model = context.model
        self.times = np.asarray(context.times, dtype=float)
        self.outputs = tuple(self.model.output_names)
        imported = context.vocabulary_tables
        own_endpoints = context.tables.get("endpoints", {})
        own_outcomes = context.tables.get("outcomes", {})
        # the vocabulary's endpoints first, then the scenario's own (which replace them by name)
        self.raw_endpoints = ({**imported.get("endpoints", {}), **own_endpoints} if isinstance(own_endpoints, dict)
                              else own_endpoints)
        self.raw_outcomes = ({**imported.get("outcomes", {}), **own_outcomes} if isinstance(own_outcomes, dict)
                             else own_outcomes)
        self.patient_names = context.patient_names()
        self.protocol_events = list(context.protocol_events)

    # -- helpers ----------------------------------------------------------------------
    def number(self, spec, k, key, *, positive=False):
        value = spec[k]
        if not is_number(value):
            self.errs.add(f"{key}.{k}", f"expected a finite number, got {value!r}")
            return None
        if positive and not value > 0:
            self.errs.add(f"{key}.{k}", f"expected a number > 0, got {value!r}")
            return None
        return float(value)

    def day(self, spec, k, key):
        """A day within the output times."""
        value = self.number(spec, k, key)
        if value is None:
            return None
        lo, hi = float(self.times[0]), float(self.times[-1])
        if not lo <= value <= hi:
            self.errs.add(f"{key}.{k}", f"{value:g} is outside the output times [{lo:g}, {hi:g}] (day)")
            return None
        return value

    def day_or_event(self, spec, k, key):
        value = spec[k]
        if isinstance(value, str):
            return value  # checked once every endpoint is known
        return self.day(spec, k, key)

    def choice(self, spec, k, key, allowed):
        value = spec[k]
        if value not in allowed:
            self.errs.add(f"{key}.{k}", f"expected one of {list(allowed)}, got {value!r}"
                                        f"{suggestion(str(value), allowed)}")
            return None
        return value

    def days_list(self, spec, k, key):
        value = spec[k]
        if not isinstance(value, list) or not all(is_number(v) for v in value):
            self.errs.add(f"{key}.{k}", f"expected a list of days (numbers), got {value!r}")
            return None
        bad = [v for v in value if not float(self.times[0]) <= v <= float(self.times[-1])]
        if bad:
            self.errs.add(f"{key}.{k}", f"{bad} outside the output times "
                                        f"[{float(self.times[0]):g}, {float(self.times[-1]):g}] (day)")
            return None
        return tuple(float(v) for v in value)

    def check_name(self, name, key):
        if not _NAME_RE.match(name) or name in ex.FUNCTIONS or name in ("t", "pi"):
            self.errs.add(key, f"'{name}' cannot name an endpoint: use letters, digits and _ (not starting "
                               f"with a digit), and not a function name, 't' or 'pi'")
            return False
        if name in self.outputs:
            self.errs.add(key, f"'{name}' is already an output of model '{self.model.name}'; endpoint names "
                               f"must differ from output names (both can appear in expressions)")
            return False
        return True  # an endpoint named as a model parameter hides it from the endpoints' expressions

    # -- sections ---------------------------------------------------------------------
    def parse(self) -> EndpointSet:
        raw_ep, raw_out = self.raw_endpoints, self.raw_outcomes
        specs = []
        if not isinstance(raw_ep, dict):
            self.errs.add("endpoints", "expected tables [endpoints.NAME] with a 'type'")
            raw_ep = {}
        if not isinstance(raw_out, dict):
            self.errs.add("outcomes", "expected tables [outcomes.NAME] with 'events'")
            raw_out = {}
        declared = []
        for name, spec in raw_ep.items():
            key = f"endpoints.{name}"
            if not isinstance(spec, dict):
                self.errs.add(key, f"expected a table with a 'type' (one of {sorted(ENDPOINT_TYPES)}), "
                                   f"got {spec!r}")
                continue
            if name in declared or not self.check_name(name, key):
                continue
            declared.append(name)
            specs.append((name, key, spec, "endpoint"))
        for name, spec in raw_out.items():
            key = f"outcomes.{name}"
            if not isinstance(spec, dict):
                self.errs.add(key, f"expected a table with 'events' (a list of endpoint names), got {spec!r}")
                continue
            if name in declared:
                self.errs.add(key, f"'{name}' is already declared as an endpoint; outcome names must differ")
                continue
            if not self.check_name(name, key):
                continue
            declared.append(name)
            specs.append((name, key, spec, "outcome"))
        columns = set(declared) | {f"{n}_event" for n in declared}
        for n in declared:
            if n.endswith("_event") and base_name(n) in declared:
                self.errs.add(f"endpoints.{n}", f"'{n}' clashes with the event column of '{base_name(n)}'")
        self.columns = columns
        self.names = declared
        endpoints = []
        for name, key, spec, what in specs:
            ep = self.endpoint(name, key, spec) if what == "endpoint" else self.outcome(name, key, spec)
            if ep is not None:
                endpoints.append(ep)
        by_name = {e.name: e for e in endpoints}
        self.check_references(by_name)
        ordered = self.order(by_name)
        endpoint_set = EndpointSet(ordered, self.outputs, declared_order=[n for n in declared if n in by_name])
        read = set().union(*(e.names_read() for e in ordered))
        endpoint_set.parameter_defaults = {p.name: p.value for p in self.model.parameters
                                           if p.name in read and p.name not in endpoint_set.columns}
        return endpoint_set

    def common(self, name, key, spec, allowed):
        self.errs.unknown_keys(key, spec, allowed, f"a key of {key}")
        among = None
        if "among" in spec:
            among = self.expression(spec, "among", key, allow_outputs=False)
        description = spec.get("description", "")
        if not isinstance(description, str):
            self.errs.add(f"{key}.description", f"expected a string, got {description!r}")
            description = ""
        return among, description

    def expression(self, spec, k, key, *, allow_outputs=True):
        text = spec[k]
        if is_number(text) and k in ("hazard", "probability"):
            if k == "hazard" and text < 0:
                self.errs.add(f"{key}.{k}", f"a hazard is a rate >= 0, got {text}")
                return None
            if k == "probability" and not 0 <= text <= 1:
                self.errs.add(f"{key}.{k}", f"a probability is in [0, 1], got {text}")
                return None
            return ex.Expr.num(float(text))
        if not isinstance(text, str):
            self.errs.add(f"{key}.{k}", f"expected an expression string, got {text!r}")
            return None
        try:
            expr = ex.parse(text)
        except ExpressionError as err:
            self.errs.add(f"{key}.{k}", str(err))
            return None
        allowed = set(self.columns) | self.patient_names | ({"t"} | set(self.outputs) if allow_outputs else set())
        what = ("model outputs, t, other endpoints" if allow_outputs else "other endpoints") + (
            ", model parameters, covariates, variables, arm.ARM, fired.EVENT and time_of.EVENT")
        ok = True
        for nm in sorted(ex.names(expr)):
            if nm not in allowed:
                hint = ""
                if nm in self.model.state_names:
                    hint = f"; '{nm}' is a state of the model: declare an output for it"
                self.errs.add(f"{key}.{k}", f"unknown name '{nm}' in '{text}'{suggestion(nm, allowed)} "
                                            f"(this expression may use {what}{hint})")
                ok = False
        return expr if ok else None

    def endpoint(self, name, key, spec):
        typ = spec.get("type")
        if typ is not None and not isinstance(typ, str):
            self.errs.add(f"{key}.type", f"expected a string, one of {sorted(ENDPOINT_TYPES)}, got {typ!r}")
            return None
        if typ is None:
            self.errs.add(f"{key}.type", f"missing; expected one of {sorted(ENDPOINT_TYPES)}")
            return None
        if typ not in ENDPOINT_TYPES:
            self.errs.add(f"{key}.type", f"{typ!r} is not an endpoint type{suggestion(str(typ), ENDPOINT_TYPES)}; "
                                         f"expected one of {sorted(ENDPOINT_TYPES)}")
            return None
        keys, required, kind, _ = ENDPOINT_TYPES[typ]
        among, description = self.common(name, key, spec, keys | _COMMON_KEYS)
        ok = True
        for k in sorted(required):
            if k not in spec:
                self.errs.add(f"{key}.{k}", f"missing (required for type '{typ}')")
                ok = False
        output = None
        if "output" in spec:
            output = spec["output"]
            if output not in self.outputs:
                self.errs.add(f"{key}.output", f"{output!r} is not an output of model '{self.model.name}'"
                                               f"{suggestion(str(output), self.outputs)}; outputs: "
                                               f"{list(self.outputs)}")
                ok = False
        options, times = {}, {}
        if "threshold" in spec:
            options["threshold"] = self.number(spec, "threshold", key)
            ok &= options["threshold"] is not None
        if "lloq" in spec:
            options["lloq"] = self.number(spec, "lloq", key, positive=True)
            ok &= options["lloq"] is not None
        if "method" in spec:
            options["method"] = self.choice(spec, "method", key, AUC_METHODS)
            ok &= options["method"] is not None
        if "interpolation" in spec:
            options["interpolation"] = self.choice(spec, "interpolation", key, INTERPOLATIONS)
            ok &= options["interpolation"] is not None
        if "below_lloq" in spec:
            options["below_lloq"] = self.choice(spec, "below_lloq", key, BELOW_LLOQ)
            ok &= options["below_lloq"] is not None
            if "lloq" not in spec:
                self.errs.add(f"{key}.below_lloq", "needs 'lloq'")
        for k in ("start", "end", "day"):
            if k in spec:
                # a hazard may start at another endpoint's event (e.g. death after relapse)
                by_event = typ == "hazard" and k == "start"
                times[k] = self.day_or_event(spec, k, key) if by_event else self.day(spec, k, key)
                ok &= times[k] is not None
        for k in ("after", "at"):
            if k in spec:
                times[k] = self.day_or_event(spec, k, key)
                ok &= times[k] is not None
        if typ in ("condition", "value", "bernoulli") and "day" in spec and "at" in spec:
            self.errs.add(key, f"give one of 'day' (a number) or 'at' (the name of a time-to-event "
                               f"endpoint) for type '{typ}', not both")
            ok = False
        start, end = times.get("start"), times.get("end")
        if is_number(start) and is_number(end) and not start < end:
            self.errs.add(f"{key}.end", f"end = {end:g} must be after start = {start:g}")
            ok = False
        elif is_number(start) and end is None and not start < self.times[-1]:
            self.errs.add(f"{key}.start", f"start = {start:g} must be before the last output time "
                                          f"{float(self.times[-1]):g}")
            ok = False
        expr = None
        k = next((k for k in ("expr", "hazard", "probability") if k in spec), None)
        if k is not None:
            expr = self.expression(spec, k, key)
            ok &= expr is not None
            if expr is not None and typ == "condition" and not expr.is_bool:
                self.errs.add(f"{key}.expr", f"expected a condition (a comparison such as "
                                             f"'blast_fraction < 0.05'), got '{spec[k]}'")
                ok = False
            timeless = typ in ("condition", "value", "bernoulli") and "day" not in spec and "at" not in spec
            if expr is not None and timeless and ex.names(expr) & (set(self.outputs) | {"t"}):
                self.errs.add(key, f"'{spec[k]}' reads model outputs or t: give 'day' (a number) or 'at' "
                                   f"(the name of a time-to-event endpoint) to say when")
                ok = False
        report_at = self.report_days(spec, key)
        ok &= report_at is not None
        if typ == "event_time" and "event" in spec:
            options["event"] = self.protocol_event(spec, "event", key)
            ok &= options["event"] is not None
        if "otherwise" in spec:
            options["otherwise"] = self.number(spec, "otherwise", key)
            ok &= options["otherwise"] is not None
            if "at" not in spec:
                self.errs.add(f"{key}.otherwise", "needs 'at' (the value where the event named by 'at' did "
                                                  "not happen)")
                ok = False
            elif typ == "condition" and options["otherwise"] not in (0.0, 1.0, None):
                self.errs.add(f"{key}.otherwise", "a condition is 0 or 1")
                ok = False
        if "origin" in spec:
            if kind != "time":
                self.errs.add(f"{key}.origin", f"only time-to-event endpoints have an origin ('{typ}' is {kind})")
                ok = False
            else:
                options["origin"] = self.protocol_event(spec, "origin", key)
                ok &= options["origin"] is not None
        if not ok:
            return None
        return Endpoint(name=name, type=typ, key=key, kind=kind, output=output, options=options, times=times,
                        expr=expr, among=among, report_at=report_at, description=description)

    def outcome(self, name, key, spec):
        among, description = self.common(name, key, spec, _OUTCOME_KEYS)
        ok = True
        combine = spec.get("combine", "first")
        if not isinstance(combine, str) or combine not in COMBINE_RULES:
            self.errs.add(f"{key}.combine", f"expected one of {sorted(COMBINE_RULES)}, got {combine!r}"
                                            f"{suggestion(str(combine), COMBINE_RULES)}")
            ok = False
        events = spec.get("events")
        if not isinstance(events, list) or not events or not all(isinstance(v, str) for v in events):
            self.errs.add(f"{key}.events", f"expected a non-empty list of endpoint names, got {events!r}")
            return None
        for comp in events:
            if comp not in self.names:
                self.errs.add(f"{key}.events", f"'{comp}' is not an endpoint of this scenario"
                                               f"{suggestion(comp, self.names)}")
                ok = False
        report_at = self.report_days(spec, key)
        ok &= report_at is not None
        options = {"combine": combine}
        if "origin" in spec:
            options["origin"] = self.protocol_event(spec, "origin", key)
            ok &= options["origin"] is not None
        if not ok:
            return None  # the problems are recorded; keep checking the component names
        return Endpoint(name=name, type="outcome", key=key, kind="time", events=tuple(events), among=among,
                        report_at=report_at, description=description, options=options)

    def protocol_event(self, spec, k, key):
        """The protocol event named by ``spec[k]`` (e.g. ``origin = "transplant"``), or None."""
        value = spec[k]
        if not isinstance(value, str) or value not in self.protocol_events:
            self.errs.add(f"{key}.{k}", f"expected the name of an event of this scenario "
                                           f"({', '.join(self.protocol_events) or 'none declared'}), got {value!r}"
                                           f"{suggestion(str(value), self.protocol_events)}")
            return None
        return value

    def report_days(self, spec, key):
        """``report_at`` of a time-to-event endpoint or outcome (default: the horizon), or None after a problem."""
        horizon = (float(self.times[-1]),)
        if "report_at" not in spec:
            return horizon
        days = self.days_list(spec, "report_at", key)
        return None if days is None else days or horizon  # an empty list: the horizon

    def check_references(self, by_name):
        for e in list(by_name.values()):
            for k, v in e.times.items():
                if not isinstance(v, str):
                    continue
                target = by_name.get(v)
                if target is None:
                    self.errs.add(f"{e.key}.{k}", f"'{v}' is not a time-to-event endpoint of this scenario"
                                                  f"{suggestion(v, self.names)}; expected a number (day) or "
                                                  f"the name of a time-to-event endpoint")
                    by_name.pop(e.name, None)
                elif target.kind != "time":
                    self.errs.add(f"{e.key}.{k}", f"'{v}' is a {target.kind} endpoint, not a time-to-event one "
                                                  f"(expected a number or a time-to-event endpoint)")
                    by_name.pop(e.name, None)
            if e.type == "outcome":
                for comp in e.events:
                    target = by_name.get(comp)
                    timed_binary = target is not None and target.kind == "binary" and (
                        "day" in target.times or "at" in target.times)
                    if target is not None and not (target.kind == "time" or timed_binary):
                        self.errs.add(f"{e.key}.events", f"'{comp}' is a {target.kind} endpoint of type "
                                                         f"'{target.type}'; expected time-to-event endpoints, or "
                                                         f"conditions with a 'day' or 'at' (an event then when "
                                                         f"true)")
                        by_name.pop(e.name, None)

    def order(self, by_name):
        """Topological order (declaration order where free); report cycles."""
        done, ordered, visiting = set(), [], []

        def visit(name):
            if name in done or name not in by_name:
                return
            if name in visiting:
                cycle = visiting[visiting.index(name):] + [name]
                self.errs.add(by_name[name].key, f"endpoints refer to each other in a cycle: "
                                                 f"{' -> '.join(cycle)}")
                return
            visiting.append(name)
            for ref in sorted(by_name[name].references()):
                if ref != name:
                    visit(ref)
                else:
                    self.errs.add(by_name[name].key, f"'{name}' refers to itself")
            visiting.pop()
            done.add(name)
            ordered.append(by_name[name])

        for name in by_name:
            visit(name)
        return ordered


def parse_endpoints(raw, context) -> EndpointSet:
    """Parse ``[endpoints.NAME]`` and ``[outcomes.NAME]`` together into one :class:`EndpointSet`.

    Outcomes refer to endpoints, so both tables are parsed at once (the schema lists
    both sections with this parser, which runs once per scenario).

    Parameters
    ----------
    raw : object
        The ``[endpoints]`` or ``[outcomes]`` table as read (whichever the file has
        first); both are taken from ``context.tables``.
    context : SectionContext
        The scenario being parsed; problems go to ``context.errors``.

    Returns
    -------
    EndpointSet
        The endpoints and outcomes, in evaluation order.
    """
    endpoint_set = _Parser(context).parse()
    endpoint_set.path = context.path
    return endpoint_set
