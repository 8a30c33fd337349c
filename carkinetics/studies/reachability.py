"""Which parameters can reach a sensitivity outcome, by the model's structure and the event times.

Parameters that cannot change the outcome (only in outputs the outcome does not read,
only in events after the last day it reads) are not simulated by the tornado or the
global analyses and are reported with the reason (:func:`reachability`).
"""

from __future__ import annotations

import math

from carkinetics.stats.outcome import Outcome
from carkinetics.studies.sensitivity_inputs import parameter_ranges, parse_outcome


def _name_closure(start, model) -> set:
    """``start`` and every name reachable from it through the model's named expressions and outputs."""
    from carkinetics.model import expressions as ex

    defs = dict(model.expressions)
    defs.update({o.name: o.expression for o in model.outputs})
    out, stack = set(), list(start)
    while stack:
        name = stack.pop()
        if name in out:
            continue
        out.add(name)
        e = defs.get(name)
        if e is not None:
            stack.extend(ex.names(e))
    return out


def _endpoint_last_day(e, horizon) -> float:
    """The last day at which endpoint ``e`` itself reads model outputs (-inf: reads none itself;
    the endpoints it refers to are followed separately)."""
    if e.type == "outcome":
        return -math.inf
    if e.type in ("condition", "value", "bernoulli", "level"):
        day = e.times.get("day")
        return float(day) if day is not None and not isinstance(day, str) else -math.inf
    end = e.times.get("end")
    return min(float(end), horizon) if end is not None and not isinstance(end, str) else horizon


def outcome_reads(scenario, outcome):
    """What the per-patient outcome reads: (model outputs and states, last day read).

    Follows the outcome's endpoint and every endpoint it refers to (``at``, ``after``,
    ``start``, names in its expression, ``among``, an outcome's events). The last day is the
    latest window end (the horizon when a window is open), ``day`` of a condition, value,
    bernoulli or level endpoint; for ``endpoint@day`` (event-free at the day) no later than
    the first output time at or after the day.

    Parameters
    ----------
    scenario : Scenario
    outcome : str or Outcome

    Returns
    -------
    reads : set of str
        Model outputs and states the outcome reads.
    last : float
        The last day read (``-inf`` when it reads none).
    """
    es = scenario.endpoints
    out = outcome if isinstance(outcome, Outcome) else parse_outcome(outcome, es)
    model = scenario.model
    horizon = float(scenario.times[-1])
    names = set(model.output_names) | set(model.state_names)
    by = {e.name: e for e in es.endpoints}
    seen, stack, reads, last = set(), [out.endpoint], set(), -math.inf
    while stack:
        name = stack.pop()
        name = name[:-len("_event")] if name.endswith("_event") and name not in by else name
        if name in seen or name not in by:
            continue
        seen.add(name)
        e = by[name]
        used = e.outputs_used(names)
        reads |= used
        if used:
            last = max(last, _endpoint_last_day(e, horizon))
        stack.extend(e.references())
    if out.statistic == "survival" and out.day is not None:
        later = scenario.times[scenario.times >= out.day]
        last = min(last, float(later[0]) if later.size else horizon)
    return reads, last


def _event_earliest(spec, scenario, design, varied) -> float:
    """Earliest time event ``spec`` can happen: its time expression evaluated over every
    combination of the values its names can take (variables with arm settings and
    overrides; constant, bernoulli and categorical covariates; parameters the patients do
    not vary). ``-inf`` when a name can take a continuum of values (a continuous
    covariate, a sampled or variable parameter) or there are too many combinations."""
    import itertools

    from carkinetics.model import expressions as ex

    used = sorted(ex.names(spec.time))
    if not used:
        return float(ex.evaluate(spec.time, {}))
    model = scenario.model
    spec_pop = design.spec
    touched = set(spec_pop.parameters) | {p for a in design.arms for p in a.parameters}
    candidates = []
    for name in used:
        if name in design.variables:
            vals = {float(design.variables[name])} | {float(a.variables[name]) for a in design.arms
                                                       if name in a.variables}
        elif name in spec_pop.covariates:
            cov = spec_pop.covariates[name]
            if cov.distribution == "constant":
                vals = {float(cov.params["value"])}
            elif cov.distribution == "bernoulli":
                vals = {0.0, 1.0}
            elif cov.distribution == "categorical":
                vals = {float(v) for v in cov.params["values"]}
            else:
                return -math.inf
        elif name in model.parameter_names:
            i = model.parameter_index(name)
            if name in varied or name in touched or design.sd[i] > 0:
                return -math.inf
            vals = {float(design.typical[i])}
        else:
            return -math.inf
        candidates.append(sorted(vals))
    if math.prod(len(c) for c in candidates) > 100_000:
        return -math.inf
    times = [float(ex.evaluate(spec.time, dict(zip(used, combo)))) for combo in itertools.product(*candidates)]
    return min(times)


def reachability(scenario, outcome, parameters=None, *, variables=None, arms=None):
    """Which parameters can change the outcome, by the model's structure and the event times.

    A parameter *can* reach the outcome when it enters (directly or through named
    expressions) an output or state the outcome reads; or, when the outcome reads any
    state, the right-hand side of an ODE or a state's initial value; or an event (its
    time, its values or its ``when``) that can happen no later than the last day the
    outcome reads (:func:`outcome_reads`); or the ``[population.parameters]`` or
    ``[arms]`` expression of a parameter that can reach it. Everything else cannot: a
    parameter only in outputs the outcome does not read (unit conversions), or only in
    events after the outcome's day (a transplant at day 45 for remission at day 28). An
    event time that cannot be bounded (it depends on a sampled parameter or a continuous
    covariate) counts as early: when unsure, the parameter is kept.

    Parameters
    ----------
    scenario : Scenario
    outcome : str or Outcome
    parameters : sequence of str, optional
        Default every model parameter.
    variables, arms :
        As for :func:`carkinetics.cohort.pipeline.run_cohort` (the variable values and arms whose
        events count).

    Returns
    -------
    pandas.DataFrame
        Columns parameter, reachable (bool), reason (why not; empty when reachable);
        ``attrs["last_day"]`` and ``attrs["reads"]``.
    """
    import pandas as pd

    from carkinetics.model import expressions as ex
    from carkinetics.scenario.sampling import cohort_design

    model = scenario.model
    es = scenario.endpoints
    out = outcome if isinstance(outcome, Outcome) else parse_outcome(outcome, es)
    names = list(model.parameter_names) if parameters is None else list(parameters)
    params = set(model.parameter_names)
    states = set(model.state_names)
    reads, last = outcome_reads(scenario, out)
    read_names = _name_closure(reads, model)
    reach = read_names & params
    late = {}  # parameter -> [(event, earliest day)]
    design = cohort_design(scenario, None, variables=variables, arms=arms)
    arm_names = None if arms is None else set([arms] if isinstance(arms, str) else arms)
    if read_names & states:
        dyn = set()
        for e in model.odes.values():
            dyn |= ex.names(e)
        for st in model.states:
            dyn |= ex.names(st.initial)
        for b in model.breakpoints:
            dyn |= ex.names(b)
        reach |= _name_closure(dyn, model) & params
        for spec in scenario.events:
            if spec.arms is not None and arm_names is not None and not (set(spec.arms) & arm_names):
                continue
            used = set(ex.names(spec.time))
            for _, _, value in spec.actions:
                used |= ex.names(value)
            if spec.when:
                used |= ex.names(model.parse_condition(spec.when))
            used = _name_closure(used, model) & params
            t = _event_earliest(spec, scenario, design, set(names))
            if t <= last:
                reach |= used
            else:
                for p in used:
                    late.setdefault(p, []).append((spec.name, t))
    # parameters computed from others ([population.parameters], [arms]): the others reach too
    edges = [(q, e) for q, e in design.spec.parameters.items()]
    edges += [(q, e) for a in design.arms for q, e in a.parameters.items()]
    changed = True
    while changed:
        changed = False
        for q, e in edges:
            if q in reach:
                new = (ex.names(e) & params) - reach
                if new:
                    reach |= new
                    changed = True
    output_uses = {o.name: _name_closure([o.name], model) & params for o in model.outputs}
    rows = []
    for p in names:
        if p in reach:
            rows.append((p, True, ""))
            continue
        parts = []
        outs = [o for o, ps in output_uses.items() if p in ps]
        if outs:
            parts.append(f"enters only outputs the outcome does not read ({', '.join(outs)})")
        if p in late:
            evs = ", ".join(f"'{n}' (day >= {t:g})" for n, t in late[p])
            parts.append(f"{'and' if outs else 'enters only'} event(s) {evs} after day {last:g}, the last day "
                         f"the outcome reads")
        if not parts:
            parts.append("not used by the model equations, the outputs the outcome reads or an event before "
                         f"day {last:g}")
        rows.append((p, False, " ".join(parts)))
    table = pd.DataFrame(rows, columns=["parameter", "reachable", "reason"])
    table.attrs["last_day"] = last
    table.attrs["reads"] = sorted(reads)
    return table


def outcome_ranges_and_reach(scenario, outcome, parameters=None, fold=None, *, variables=None, arms=None):
    """What a tornado and a global analysis both start from: the outcome, the ranges, reachability.

    Parameters
    ----------
    scenario : Scenario
    outcome : str or Outcome
        Parsed against the scenario's endpoints if a string.
    parameters, fold
        As :func:`~carkinetics.studies.sensitivity_inputs.parameter_ranges`.
    variables, arms
        As :func:`reachability`.

    Returns
    -------
    (Outcome, pandas.DataFrame, dict, dict)
        The outcome; the parameter ranges; parameter -> reachable (bool); parameter -> reason.
    """
    out = outcome if isinstance(outcome, Outcome) else parse_outcome(outcome, scenario.endpoints)
    ranges = parameter_ranges(scenario, parameters, fold)
    reach = reachability(scenario, out, ranges["parameter"].tolist(), variables=variables, arms=arms)
    return out, ranges, dict(zip(reach["parameter"], reach["reachable"])), dict(zip(reach["parameter"], reach["reason"]))
