"""Naive baselines and proper scores for ``carkinetics validate``.

"Inside the reported 95 % interval" on 10-20 patients is weak evidence: a wide interval holds
many predictions, good and bad. So every fraction row of a validation (a proportion, a
Kaplan-Meier estimate or a cumulative incidence with a reported denominator) is also scored,
for the model and for two predictors that know no biology:

* **pooled**: the pooled rate of the same quantity (the reference table's ``quantity``, with the
  names of :data:`POOL_AS` taken as one: CR/CRi and CR, grade 3 and grade 3-4 CRS, neurotoxicity
  and ICANS, disease-free, event-free and progression-free survival, cumulative incidence of
  relapse and relapse) in the *other* trials, whatever their follow-up, ``sum(k) / sum(n)`` over one row per trial (the row with the largest
  denominator: the whole arm rather than a subgroup). A trial is the seed arm a row belongs to
  (``S2`` and its two-year follow-up ``LTFU-S2`` are one trial). No other trial reports the
  quantity: no pooled prediction.
* **constant**: 0.5 for every row.

Scores, each against the reported ``k`` of ``n`` (``k = value x n`` where the paper gives a
fraction only, as for a Kaplan-Meier estimate, which is then scored as a proportion of ``n``
without censoring):

* the binomial log-likelihood ``log C(n, k) + k log p + (n - k) log(1 - p)`` (higher is better;
  summed over rows it is the log-likelihood of the reported data under the predictor, rows
  treated as independent);
* the Brier score per patient ``(k (1 - p)^2 + (n - k) p^2) / n`` (lower is better).

A prediction of exactly 0 or 1 is not allowed to be infinitely wrong: a predictor estimated
from ``k`` events in ``m`` patients predicts ``p = (k + 0.5) / (m + 1)`` (the virtual cohort
for the model, the pooled trials for the baseline).
"""

from __future__ import annotations

import math
import re

import numpy as np

from carkinetics.scenario.reference import FRACTION_STATISTICS
from carkinetics.stats.scores import binomial_loglik, brier, shrunk

#: The clinical question each reported quantity answers (rows are summed by these).
CATEGORIES = {
    "response": ("cr_or_cri", "complete_remission", "orr", "mrd_negative_cr"),
    "relapse": ("relapse", "cir", "antigen_negative_relapse", "antigen_negative_fraction_of_relapses"),
    "survival": ("os", "pfs", "dfs", "efs_and_os", "in_remission"),
    "death by cause": ("infection_death", "infection_death_early_post_hsct", "infection_death_late", "tma_death",
                       "non_relapse_death", "crs_death"),
    "toxicity": ("crs_any", "crs_grade1_2", "crs_grade3", "crs_grade3_4", "crs_grade3plus", "neurotoxicity_any",
                 "neurotoxicity_grade1_2", "icans_any", "gvhd_grade1_2", "agvhd_grade2", "agvhd_any",
                 "viral_activation_grade1_2", "infection_grade3", "cytopenia_grade3_4"),
    "transplant": ("consolidative_hsct", "full_donor_chimerism", "autologous_hematopoiesis"),
}
_CATEGORY_OF = {q: c for c, qs in CATEGORIES.items() for q in qs}

#: Quantities that the trials name differently for the same clinical event: pooled together.
POOL_AS = {"cr_or_cri": "complete_remission", "crs_grade3": "crs_grade3plus", "crs_grade3_4": "crs_grade3plus",
           "neurotoxicity_any": "icans_any", "neurotoxicity_grade1_2": "icans_any",
           "dfs": "pfs", "efs_and_os": "pfs", "cir": "relapse"}

#: The constant predictor.
CONSTANT = 0.5

#: Columns :func:`score_rows` adds to a validation table.
SCORE_COLUMNS = ["category", "trial", "reported_k", "baseline_pooled", "baseline_pooled_n", "baseline_pooled_trials",
                 "loglik_model", "loglik_pooled", "loglik_constant", "brier_model", "brier_pooled", "brier_constant"]


def category(quantity) -> str:
    """The category of a reported quantity (``other`` when it is none of :data:`CATEGORIES`).

    >>> category("complete_remission"), category("car_peak")
    ('response', 'other')
    """
    return _CATEGORY_OF.get(str(quantity), "other")


def trial_of(arm, trial="") -> str:
    """The trial a reference row belongs to: its seed arm (``S1`` ... ``S5``), else its source.

    >>> trial_of("S1-noHSCT"), trial_of("LTFU-S2"), trial_of("tisa-responders", "Kymriah SmPC")
    ('S1', 'S2', 'Kymriah SmPC')
    """
    m = re.search(r"(?<![A-Za-z0-9])S\d+", str(arm))
    return m.group(0) if m else str(trial)


def _fraction_rows(reference):
    """Reference rows usable for pooling: a fraction with a denominator, tagged with their trial."""
    ref = reference.copy()
    value = ref["value"].astype(float)
    n = ref["n"].astype(float)
    ok = ref["statistic"].isin(FRACTION_STATISTICS) & np.isfinite(value) & np.isfinite(n) & (n > 0)
    ref = ref[ok].copy()
    ref["_trial"] = [trial_of(a, t) for a, t in zip(ref["arm"], ref["trial"])]
    ref["_quantity"] = [POOL_AS.get(q, q) for q in ref["quantity"].astype(str)]
    ref["_n"] = ref["n"].astype(float)
    ref["_k"] = ref["value"].astype(float) * ref["_n"]
    return ref


def pooled_rate(pool, quantity, trial) -> tuple[float, float, str]:
    """Pooled rate of ``quantity`` in the trials other than ``trial``.

    Parameters
    ----------
    pool : pandas.DataFrame
        :func:`_fraction_rows` of the reference table.
    quantity, trial : str

    Returns
    -------
    (rate, n, trials) : tuple
        ``sum(k) / sum(n)`` over one row per other trial (the largest ``n``), the pooled
        ``n`` and the trials pooled (comma separated); NaN, 0 and "" when none reports it.
    """
    quantity = POOL_AS.get(str(quantity), str(quantity))
    rows = pool[(pool["_quantity"] == quantity) & (pool["_trial"] != trial)]
    if rows.empty:
        return math.nan, 0.0, ""
    rows = rows.sort_values("_n", ascending=False, kind="stable").drop_duplicates("_trial")
    n = float(rows["_n"].sum())
    return float(rows["_k"].sum() / n), n, ",".join(sorted(rows["_trial"]))


def score_rows(table, reference):
    """Add the baselines and scores of every row to a validation table.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`carkinetics.studies.validate.validate_scenario` rows.
    reference : pandas.DataFrame
        The reference table the rows were taken from.

    Returns
    -------
    pandas.DataFrame
        ``table`` with :data:`SCORE_COLUMNS` (NaN where a row is not a fraction with a reported
        denominator).
    """
    pool = _fraction_rows(reference)
    by_id = reference.set_index("target_id")
    out = {c: [] for c in SCORE_COLUMNS}
    for r in table.itertuples(index=False):
        ref = by_id.loc[r.target_id]
        trial = trial_of(ref["arm"], ref["trial"])
        n = float(r.n_reported) if r.n_reported == r.n_reported else math.nan
        fraction = r.statistic in FRACTION_STATISTICS
        scored = fraction and math.isfinite(n) and n > 0 and math.isfinite(r.reported)
        k_ref = float(ref.get("k")) if _finite(ref.get("k")) else (r.reported * n if scored else math.nan)
        pooled, pooled_n, trials = pooled_rate(pool, ref["quantity"], trial) if fraction else (math.nan, 0.0, "")
        p_model = shrunk(r.simulated, float(r.n_simulated)) if scored else math.nan
        p_pooled = shrunk(pooled, pooled_n) if scored and pooled_n > 0 else math.nan
        p_const = CONSTANT if scored else math.nan
        out["category"].append(category(ref["quantity"]))
        out["trial"].append(trial)
        out["reported_k"].append(k_ref if scored else math.nan)
        out["baseline_pooled"].append(pooled)
        out["baseline_pooled_n"].append(pooled_n)
        out["baseline_pooled_trials"].append(trials)
        for name, p in (("model", p_model), ("pooled", p_pooled), ("constant", p_const)):
            out[f"loglik_{name}"].append(binomial_loglik(k_ref, n, p) if scored else math.nan)
            out[f"brier_{name}"].append(brier(k_ref, n, p) if scored else math.nan)
    scored_table = table.copy()
    for c in SCORE_COLUMNS:
        scored_table[c] = out[c]
    return scored_table


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def score_summary(table, basis=None):
    """Sums of the scores by category: the model against the naive baselines.

    Only outcome rows scored by all three predictors count (a row whose quantity no other
    trial reports has no pooled prediction and is left out of every sum, so the three sums
    are over the same rows).

    Parameters
    ----------
    table : pandas.DataFrame
        A scored validation table (:func:`score_rows`).
    basis : sequence of str, optional
        Only rows of these bases (``predicted``, ``fitted``, ``hand-set``).

    Returns
    -------
    pandas.DataFrame
        One row per category and an ``all`` row: ``rows``, ``loglik_model``, ``loglik_pooled``,
        ``loglik_constant``, ``brier_model``, ``brier_pooled``, ``brier_constant`` (means),
        ``model_beats_pooled`` (rows where the model's log-likelihood is the higher).
    """
    import pandas as pd

    t = table[(table["role"] == "outcome") & np.isfinite(table["loglik_model"].astype(float))
              & np.isfinite(table["loglik_pooled"].astype(float))]
    if basis is not None:
        t = t[t["basis"].isin(list(basis))]
    rows = []
    groups = [(c, t[t["category"] == c]) for c in [*CATEGORIES, "other"]] + [("all", t)]
    for name, g in groups:
        if g.empty:
            continue
        rows.append({"category": name, "rows": len(g),
                     **{f"loglik_{p}": float(g[f"loglik_{p}"].sum()) for p in ("model", "pooled", "constant")},
                     **{f"brier_{p}": float(g[f"brier_{p}"].mean()) for p in ("model", "pooled", "constant")},
                     "model_beats_pooled": int((g["loglik_model"] > g["loglik_pooled"]).sum())})
    return pd.DataFrame(rows, columns=["category", "rows", "loglik_model", "loglik_pooled", "loglik_constant",
                                       "brier_model", "brier_pooled", "brier_constant", "model_beats_pooled"])
