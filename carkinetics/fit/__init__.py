"""Fitting models to observations and to reported summary numbers.

Three kinds of fit, all on log-parameters within the model file's bounds:

- :func:`fit_individual`: one patient's observations (a :class:`~carkinetics.scenario.data.Dataset`),
  maximum likelihood with log-normal residuals (``log y = log f + eps``, ``eps ~ N(0, sigma^2)``),
  censored points (below the LLOQ) entering through ``P(y < LLOQ)`` (Beal's M3 method),
  ``scipy.optimize.least_squares`` from a seeded Latin-hypercube of starts. The Jacobian is
  central differences computed with one :func:`~carkinetics.simulation.simulate.simulate_batch` call.
- :func:`fit_population`: individual fits summarised by the standard two-stage method
  (geometric mean of the individual estimates with a t-based 95% interval on the log scale),
  refined by the iterative two-stage method.
- :func:`fit_targets`: reported statistics (median Cmax, geometric-mean AUC, proportions, ...)
  matched by a virtual cohort simulated with common random numbers, minimised with
  ``scipy.optimize.differential_evolution`` (several seeded runs).

Uncertainty: :func:`profile_likelihood` (95% intervals where ``-2 log L`` rises by 3.84
above its minimum, the residual SD re-estimated at each point when it is estimated) and
:func:`parametric_bootstrap`. :func:`write_fit` writes tables, plots and a calibrated model
file with provenance.

Modules:

- :mod:`~carkinetics.fit.errors`: :class:`FitError`, :class:`NonIdentifiableWarning`;
- :mod:`~carkinetics.fit.space`: :class:`ParameterSpace`, the estimated parameters and their log-bounds;
- :mod:`~carkinetics.fit.problem`: :class:`PatientProblem`, one patient's data and forward model;
- :mod:`~carkinetics.fit.likelihood`: the censored log-normal likelihood and the ML residual SD;
- :mod:`~carkinetics.fit.optimise`: the local least-squares fit and the target-distance minimiser;
- :mod:`~carkinetics.fit.individual`: :func:`fit_individual` and :class:`FitResult`;
- :mod:`~carkinetics.fit.uncertainty`: :func:`profile_likelihood`, :func:`parametric_bootstrap`;
- :mod:`~carkinetics.fit.population`: :func:`fit_population` and :class:`PopulationFit`;
- :mod:`~carkinetics.fit.synthetic`: :func:`synthetic_data`;
- :mod:`~carkinetics.fit.cohort_simulators`: :class:`CRNCohort`, :class:`ScenarioCohort` and their outputs;
- :mod:`~carkinetics.fit.targets`: :class:`Target`, :func:`load_target_table`, quantities and statistics;
- :mod:`~carkinetics.fit.target_fit`: :func:`fit_targets`, :func:`target_distance`, :class:`TargetFitResult`;
- :mod:`~carkinetics.fit.output`: :func:`write_fit`, provenance and calibrated model files.
"""

from carkinetics.fit.cohort_simulators import (CohortOutputs as CohortOutputs, CRNCohort as CRNCohort,
                                               PatientTables as PatientTables, ScenarioCohort as ScenarioCohort)
from carkinetics.fit.errors import FitError as FitError, NonIdentifiableWarning as NonIdentifiableWarning
from carkinetics.fit.individual import FitResult as FitResult, fit_individual as fit_individual
from carkinetics.fit.optimise import BEST_TOLERANCE as BEST_TOLERANCE, minimise_distance as minimise_distance
from carkinetics.fit.output import (calibrated_model_text as calibrated_model_text,
                                    calibrated_parameters_text as calibrated_parameters_text,
                                    fit_provenance as fit_provenance, write_fit as write_fit)
from carkinetics.fit.population import (PopulationFit as PopulationFit, fit_population as fit_population,
                                        two_stage_summary as two_stage_summary)
from carkinetics.fit.problem import PatientProblem as PatientProblem, default_options as default_options
from carkinetics.fit.space import ParameterSpace as ParameterSpace
from carkinetics.fit.synthetic import synthetic_data as synthetic_data
from carkinetics.fit.target_fit import (TargetFitResult as TargetFitResult, fit_targets as fit_targets,
                                        target_distance as target_distance)
from carkinetics.fit.targets import (FITTED_STATISTICS as FITTED_STATISTICS, QUANTITIES as QUANTITIES,
                                     Target as Target, load_target_table as load_target_table,
                                     simulated_statistics as simulated_statistics)
from carkinetics.fit.uncertainty import (CHI2_1_95 as CHI2_1_95, Profile as Profile,
                                         parametric_bootstrap as parametric_bootstrap,
                                         profile_likelihood as profile_likelihood)

__all__ = [
    "BEST_TOLERANCE", "CHI2_1_95", "CRNCohort", "CohortOutputs", "FitError", "FitResult", "NonIdentifiableWarning",
    "ParameterSpace", "PatientProblem", "PatientTables", "PopulationFit", "Profile", "QUANTITIES", "FITTED_STATISTICS",
    "ScenarioCohort", "Target", "TargetFitResult", "calibrated_model_text", "calibrated_parameters_text",
    "default_options", "fit_individual", "fit_population", "fit_provenance", "fit_targets", "load_target_table",
    "minimise_distance", "parametric_bootstrap", "profile_likelihood", "simulated_statistics", "synthetic_data",
    "target_distance", "two_stage_summary", "write_fit",
]
