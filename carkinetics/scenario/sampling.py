"""Reproducible drawing of a scenario's virtual patients, and the seed of a run.

A patient's parameters are built in this order: the model's typical values with the
scenario's ``[parameters]`` (and run-time overrides); the arm's ``parameters``; the
``[population.parameters]`` expressions; then between-patient variability,
``value * exp(eta)`` with ``eta ~ Normal(0, sd^2)`` (correlated within the block);
finally values are clipped to the model's ``bounds`` (clipped draws are counted). Values
the user wrote (constants, expressions of ``[arms]`` and ``[population.parameters]``, run-time
overrides) must lie within the bounds: only the random draws are clipped.

Random numbers are reproducible per patient, whatever the chunk size or number of
threads: patient ``i`` takes its numbers from block ``i // BLOCK`` of its stream, a
counter-based Philox generator seeded with ``(seed, stream, sub-stream, block)``.
Streams are separate for parameters, covariates (one sub-stream per covariate name),
arm assignment and random events, so adding a covariate or an arm does not change
the parameter draws of any patient.
"""

from __future__ import annotations

import copy
import dataclasses
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from carkinetics.model import expressions as ex
from carkinetics.model.spec import bound_slack as _slack
from carkinetics.errors import CarKineticsError, FileProblem, ScenarioError, is_number, suggestion
from carkinetics.scenario.covariates import Covariate
from carkinetics.scenario.population import (DEFAULT_ARM, MAX_POPULATION, MAX_SEED, Arm, PopulationSpec,
                                             effective_sds, outside_bounds)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd

    from carkinetics.scenario.load import Scenario

#: Patients per block of a random stream: patient ``i`` takes its numbers from block ``i // BLOCK``.
BLOCK = 4096
#: Stream numbers of the random numbers of parameters, covariates, arm assignment and random events.
STREAMS = {"parameters": 1, "covariates": 2, "arms": 3, "events": 4}


class PopulationError(CarKineticsError, ValueError):
    """Run-time population settings (seed, overrides, arm subset) are invalid."""


def _block_generator(seed: int, stream: int, sub: int, block: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, stream, sub, block])))


def _name_id(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def _stream(seed, stream, sub, start, stop, draw, cache=None):
    """Rows ``start..stop-1`` of a per-block stream; ``draw(gen, BLOCK)`` makes one block.

    ``cache``: a dict keeping the last block made of each (stream, sub), for a caller that
    always draws that stream with the same ``draw``: chunks smaller than a block (226 patients
    of the two-year T-ALL scenario) then make each block once, not once per chunk (the
    parameters' block of normal numbers, made 18 times over, was 29 us per patient).
    """
    parts = []
    for b in range(start // BLOCK, (stop - 1) // BLOCK + 1):
        kept = cache.get((stream, sub)) if cache is not None else None
        if kept is not None and kept[0] == b:
            block = kept[1]
        else:
            block = draw(_block_generator(seed, stream, sub, b), BLOCK)
            if cache is not None:
                cache[(stream, sub)] = (b, block)
        lo = max(start, b * BLOCK) - b * BLOCK
        hi = min(stop, (b + 1) * BLOCK) - b * BLOCK
        parts.append(block[lo:hi])
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _uniform_open(gen, shape):
    # doubles k / 2^53 shifted by half a step: strictly inside (0, 1)
    return gen.random(shape) + 2.0 ** -54


@dataclass
class Draws:
    """Patients ``start..stop-1`` of a cohort.

    Attributes
    ----------
    index : ndarray of int64
    arm : ndarray of int64
        Index into :attr:`CohortDesign.arm_names`.
    covariates : dict of str to ndarray
    variables : dict of str to float or ndarray
        Per-patient values where an arm overrides them.
    parameters : ndarray, shape (n, n_parameters)
        Individual parameter vectors (after variability and clipping to bounds).
    n_clipped : ndarray of int64, shape (n_parameters,)
        How many draws of each parameter were clipped to the model's bounds.
    """

    index: np.ndarray
    arm: np.ndarray
    covariates: dict
    variables: dict
    parameters: np.ndarray
    n_clipped: np.ndarray

    def env(self, names, mask=None) -> dict:
        """Name -> values for event expressions (individual parameters, covariates, variables)."""
        sel = (lambda v: v) if mask is None else (lambda v: v[mask] if isinstance(v, np.ndarray) else v)
        env = {n: sel(self.parameters[:, i]) for i, n in enumerate(names)}
        env.update({k: sel(v) for k, v in self.covariates.items()})
        env.update({k: sel(v) for k, v in self.variables.items()})
        return env


class CohortDesign:
    """Everything needed to draw patients of one scenario reproducibly.

    Build with :func:`cohort_design`; :meth:`draw` gives any range of patients, the
    same values whatever the ranges asked for.
    """

    def __init__(self, scenario, seed, variables=None, parameters=None, arms=None):
        model = scenario.model
        self.scenario = scenario
        self.model = model
        self.seed = int(seed)
        self._blocks = {}  # the last block of each random stream (see _stream)
        spec = scenario.population or PopulationSpec()
        self.spec = spec
        var_sec = scenario.variables
        base_vars = dict(var_sec.values) if var_sec is not None else {}
        problems = []
        for name, value in (variables or {}).items():
            if name not in base_vars:
                problems.append(f"variables.{name}: '{name}' is not a variable of this scenario"
                                f"{suggestion(name, base_vars)}")
            elif not is_number(value):
                problems.append(f"variables.{name}: expected a finite number, got {value!r}")
            else:
                base_vars[name] = float(value)
        typical = scenario.parameter_vector()
        self.parameter_overrides = {}
        for name, value in (parameters or {}).items():
            if name not in model.parameter_names:
                problems.append(f"parameters.{name}: '{name}' is not a parameter of model '{model.name}'"
                                f"{suggestion(name, model.parameter_names)}")
            elif not is_number(value):
                problems.append(f"parameters.{name}: expected a finite number, got {value!r}")
            elif outside_bounds(model, name, value):
                problems.append(f"parameters.{name}: {outside_bounds(model, name, value)}")
            else:
                par = model.parameter(name)
                value = float(np.clip(value, *par.bounds)) if par.bounds else float(value)  # rounding only
                typical[model.parameter_index(name)] = value
                self.parameter_overrides[name] = value
        arms_sec = scenario.arms
        all_arms = dict(arms_sec.arms) if arms_sec is not None else {}
        if arms is not None:
            arms = [arms] if isinstance(arms, str) else list(arms)
            for a in arms:
                if a not in all_arms:
                    problems.append(f"arms: '{a}' is not an arm of this scenario{suggestion(a, all_arms)}"
                                    if all_arms else f"arms: this scenario has no [arms] (asked for '{a}')")
            chosen = {a: all_arms[a] for a in all_arms if a in arms}
        else:
            chosen = all_arms
        if problems:
            raise ScenarioError(scenario.path, problems)
        self.variables = base_vars
        self.typical = typical
        self.arms = list(chosen.values()) if chosen else [Arm(DEFAULT_ARM, 1.0)]
        self.arm_names = tuple(a.name for a in self.arms)
        shares = np.array([a.share for a in self.arms], dtype=float)
        self.cum_shares = np.cumsum(shares / shares.sum())
        self.cum_shares[-1] = 1.0

        sds = effective_sds(model, spec)
        block = spec.correlation
        if block is not None and block.sds is not None:
            sds.update(dict(zip(block.parameters, block.sds)))
        self.sd = np.array([sds[n] for n in model.parameter_names], dtype=float)
        self.block_index = (np.array([model.parameter_index(n) for n in block.parameters])
                            if block is not None else None)
        self.block_cholesky = block.cholesky if block is not None else None
        lo = np.array([p.bounds[0] if p.bounds else -np.inf for p in model.parameters])
        hi = np.array([p.bounds[1] if p.bounds else np.inf for p in model.parameters])
        self.lower, self.upper = lo, hi
        touched = set(spec.parameters)
        for a in self.arms:
            touched |= set(a.parameters)
        self.varying = tuple(n for i, n in enumerate(model.parameter_names) if self.sd[i] > 0 or n in touched)
        self.covariate_names = tuple(spec.covariates)
        self.arm_variable_names = tuple(sorted({v for a in self.arms for v in a.variables}))

    def typical_patients(self) -> CohortDesign:
        """A copy of this design whose patients are all typical.

        Covariates are at their typical values and there is no between-patient variability;
        arms, variables and the random numbers of random events are those of this design.

        Returns
        -------
        CohortDesign
        """
        spec = self.spec
        typical_covs = {k: Covariate(k, "constant", {"value": c.typical}) for k, c in spec.covariates.items()}
        typical = copy.copy(self)
        typical.spec = dataclasses.replace(spec, covariates=typical_covs)
        typical.sd = np.zeros_like(self.sd)
        return typical

    # -- drawing -----------------------------------------------------------------------------
    def draw(self, start: int, stop: int) -> Draws:
        """Patients ``start..stop-1`` (0-based)."""
        model, seed = self.model, self.seed
        n = stop - start
        index = np.arange(start, stop, dtype=np.int64)
        u_arm = _stream(seed, STREAMS["arms"], 0, start, stop, _uniform_open, self._blocks)
        arm = np.minimum(np.searchsorted(self.cum_shares, u_arm, side="right"), len(self.arms) - 1).astype(np.int64)
        covs = {}
        for name, cov in self.spec.covariates.items():
            u = _stream(seed, STREAMS["covariates"], _name_id(name), start, stop, _uniform_open, self._blocks)
            covs[name] = cov.ppf(u)
        variables = dict(self.variables)
        for v in self.arm_variable_names:
            arr = np.full(n, self.variables[v])
            for k, a in enumerate(self.arms):
                if v in a.variables:
                    arr[arm == k] = a.variables[v]
            variables[v] = arr
        P = np.tile(self.typical, (n, 1))
        names = model.parameter_names

        def env_of(P, mask=None):
            sel = (lambda v: v) if mask is None else (lambda v: v[mask] if isinstance(v, np.ndarray) else v)
            env = {nm: sel(P[:, i]) for i, nm in enumerate(names)}
            env.update({k: sel(v) for k, v in covs.items()})
            env.update({k: sel(v) for k, v in variables.items()})
            return env

        # arm settings, then covariate expressions: each set evaluated on the values before it
        for k, a in enumerate(self.arms):
            if not a.parameters:
                continue
            mask = arm == k
            if not mask.any():
                continue
            env = env_of(P, mask)
            new = {nm: self._evaluate(e, env, int(mask.sum()), f"arms.{a.name}.parameters.{nm}")
                   for nm, e in a.parameters.items()}
            for nm, val in new.items():
                self._check_values(nm, val, index[mask], f"arms.{a.name}.parameters.{nm}")
                j = model.parameter_index(nm)
                P[mask, j] = np.clip(val, self.lower[j], self.upper[j])  # rounding at a bound only
        if self.spec.parameters:
            env = env_of(P)
            new = {nm: self._evaluate(e, env, n, f"population.parameters.{nm}")
                   for nm, e in self.spec.parameters.items()}
            for nm, val in new.items():
                self._check_values(nm, val, index, f"population.parameters.{nm}")
                j = model.parameter_index(nm)
                P[:, j] = np.clip(val, self.lower[j], self.upper[j])  # rounding at a bound only
        # between-patient variability
        if np.any(self.sd > 0):
            z = _stream(seed, STREAMS["parameters"], 0, start, stop,
                        lambda g, b: g.standard_normal((b, model.n_parameters)), self._blocks)
            if self.block_index is not None:
                z = z.copy()
                z[:, self.block_index] = z[:, self.block_index] @ self.block_cholesky.T
            with np.errstate(over="ignore"):
                P = P * np.exp(z * self.sd)
        if not np.all(np.isfinite(P)):
            i, j = np.argwhere(~np.isfinite(P))[0]
            raise PopulationError(f"{self.scenario.path}: parameter '{names[j]}' of patient {start + i} is not "
                                  f"finite ({P[i, j]}); check the expressions in [population.parameters] and "
                                  f"[arms]")
        n_clipped = (P < self.lower).sum(axis=0) + (P > self.upper).sum(axis=0)
        P = np.clip(P, self.lower, self.upper)
        return Draws(index, arm, covs, variables, P, n_clipped.astype(np.int64))

    def _evaluate(self, expr, env, n, key) -> np.ndarray:
        """Values of a parameter expression for ``n`` patients; an error names the file and key."""
        try:
            with np.errstate(all="ignore"):
                return _as_column(ex.evaluate(expr, env), n)
        except (CarKineticsError, ArithmeticError, ValueError, TypeError) as err:
            raise ScenarioError(self.scenario.path, [FileProblem(key, str(err))]) from None

    def _check_values(self, name, values, index, key) -> None:
        """A parameter value written in the scenario (before variability) must be finite and within
        the model's bounds: it is an error, not clipped."""
        j = self.model.parameter_index(name)
        lo, hi = self.lower[j], self.upper[j]
        bad = ~np.isfinite(values) | (values < lo - _slack(lo)) | (values > hi + _slack(hi))
        if bad.any():
            k = int(np.argmax(bad))
            raise ScenarioError(self.scenario.path, [FileProblem(
                key, f"{name} = {values[k]:g} for patient {int(index[k])} is not finite or outside the model's "
                     f"bounds [{self.lower[j]:g}, {self.upper[j]:g}] ({int(bad.sum())} of {len(values)} patients "
                     f"in this chunk); values written in a scenario are not clipped, only random draws are")])

    def uniforms(self, start: int, stop: int, streams) -> np.ndarray:
        """Uniforms in (0, 1) for random events (hazards), shape (stop - start, len(streams)).

        Column ``j`` comes from its own sub-stream ``streams[j]`` (an endpoint's
        :func:`~carkinetics.scenario.endpoints.stream_id`, from its name), so adding, removing or
        reordering random events leaves the others' draws unchanged. An int ``k`` stands for
        the streams ``0..k-1``.
        """
        streams = range(max(0, int(streams))) if isinstance(streams, (int, np.integer)) else list(streams)
        out = np.empty((stop - start, len(streams)))
        for j, sub in enumerate(streams):
            out[:, j] = _stream(self.seed, STREAMS["events"], int(sub), start, stop, _uniform_open, self._blocks)
        return out

    def columns(self, draws: Draws) -> dict:
        """The patient table columns of ``draws`` by name: patient, arm (a pandas Categorical),
        covariates, varying parameters.

        Each column owns its data: a varying parameter's column is copied out of the parameter
        matrix, since a view would keep the whole matrix (every parameter of every patient of
        the chunk) alive for as long as the table is kept, as a cohort run keeps it to the end.
        """
        import pandas as pd

        data = {"patient": draws.index,
                "arm": pd.Categorical.from_codes(draws.arm, categories=list(self.arm_names))}
        for k in self.covariate_names:
            data[k] = draws.covariates[k]
        for nm in self.varying:
            data[f"param_{nm}"] = draws.parameters[:, self.model.parameter_index(nm)].copy()
        return data

    def table(self, draws: Draws):
        """The patient table of ``draws`` (:meth:`columns` as a DataFrame)."""
        import pandas as pd

        return pd.DataFrame(self.columns(draws))


def _as_column(v, n) -> np.ndarray:
    return np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy()


def resolve_seed(scenario, seed=None) -> int:
    """The seed of a run: ``seed``, else ``[population] seed``, else a fresh random one."""
    if seed is None:
        spec = scenario.population
        seed = spec.seed if spec is not None else None
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2 ** 63))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise PopulationError(f"seed must be a whole number in [0, 2**63 - 1], got {seed!r}")
    return int(seed)


def cohort_design(scenario, seed=None, *, variables=None, parameters=None, arms=None) -> CohortDesign:
    """Prepare the reproducible drawing of a scenario's virtual patients.

    Parameters
    ----------
    scenario : Scenario
    seed : int, optional
        Default: ``[population] seed``, else a fresh random seed (see ``design.seed``).
    variables : mapping of str to float, optional
        Overrides of ``[variables]``.
    parameters : mapping of str to float, optional
        Overrides of typical parameter values (before arms, covariates and variability).
    arms : sequence of str, optional
        Only these arms, their shares renormalised.

    Raises
    ------
    ScenarioError
        For unknown variables, parameters or arms.
    """
    return CohortDesign(scenario, resolve_seed(scenario, seed), variables, parameters, arms)


def sample_population(scenario: Scenario, n: int, seed: int | None = None, *, start: int = 0,
                      variables: Mapping[str, float] | None = None, parameters: Mapping[str, float] | None = None,
                      arms: Sequence[str] | None = None) -> pd.DataFrame:
    """Draw patients ``start .. start + n - 1`` of a scenario's population, without simulating.

    Returns
    -------
    pandas.DataFrame
        ``patient``, ``arm``, the covariates, and every model parameter (individual
        values, as ``param_NAME``).

    Examples
    --------
    >>> from carkinetics.scenario.load import load_scenario                     # doctest: +SKIP
    >>> df = sample_population(load_scenario("scenarios/multiphasic_cohort.toml"), 10_000, seed=1)  # doctest: +SKIP
    """
    import pandas as pd

    design = cohort_design(scenario, seed, variables=variables, parameters=parameters, arms=arms)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_POPULATION:
        raise PopulationError(f"n must be a whole number in [1, {MAX_POPULATION:,}], got {n!r}")
    draws = design.draw(int(start), int(start) + int(n))
    df = design.table(draws)
    for i, nm in enumerate(scenario.model.parameter_names):
        col = f"param_{nm}"
        if col not in df.columns:
            df[col] = draws.parameters[:, i]
    cols = ["patient", "arm", *design.covariate_names] + [f"param_{nm}" for nm in scenario.model.parameter_names]
    return pd.DataFrame(df[cols])
