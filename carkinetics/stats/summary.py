"""Cohort summaries: every endpoint of an endpoint set summarised per arm into one long table.

:func:`summarise` reads only an endpoint set's ``kinds`` (column -> binary, continuous, time,
event_flag, cause), ``report_at`` (column -> Kaplan-Meier days) and, if it has one, ``causes``
(time column -> names of its competing causes), and uses the intervals of
:mod:`carkinetics.stats.intervals`, :mod:`carkinetics.stats.quantiles`,
:mod:`carkinetics.stats.km` and :mod:`carkinetics.stats.competing`.

Missing values (NaN: a failed simulation, a patient outside an endpoint's
``among`` subgroup, a reference event that did not happen) are left out of every
statistic and counted in a ``missing`` row per endpoint and group.
"""

from __future__ import annotations

import numpy as np

from carkinetics.stats.competing import aalen_johansen
from carkinetics.stats.intervals import INTERVALS, mean_interval, proportion_interval, two_sided_z
from carkinetics.stats.km import kaplan_meier
from carkinetics.stats.quantiles import QUANTILES, quantile_interval_sorted

SUMMARY_COLUMNS = ["group", "endpoint", "statistic", "value", "lower", "upper", "n"]


def _fmt_day(t: float) -> str:
    return f"{t:g}"


def _add_cause_rows(add, col, time, code, names, days, level):
    """Add the cumulative-incidence rows of time column ``col`` with competing ``names``."""
    ok = ~np.isnan(time) & ~np.isnan(code)
    n = int(ok.sum())
    codes = tuple(range(1, len(names) + 1))
    bad = sorted(set(np.unique(code[ok]).tolist()) - {0.0, *map(float, codes)})
    if bad:
        raise ValueError(f"column '{col}_cause' must hold 0 (censored) or a cause code from 1 to {len(names)} "
                         f"({', '.join(names)}), got {bad[0]:g}")
    ci = aalen_johansen(time[ok], code[ok], level, causes=codes)
    for k, name in zip(codes, names):
        for day in days:
            add(f"cif_{name}_at_{_fmt_day(day)}", *ci.at(day, k), count=n)
    for k, name in zip(codes, names):
        add(f"events_{name}", float((code[ok] == k).sum()), count=n)


def summarise(patients, endpoint_set, by="arm", level=0.95, interval="wilson"):
    """Summarise every endpoint per group (arm) into one long table.

    Statistics by kind of endpoint:

    * binary: ``proportion`` (Wilson or Clopper-Pearson interval);
    * continuous: ``median``, ``q05``, ``q25``, ``q75``, ``q95`` (distribution-free
      intervals, :func:`quantile_interval`), ``mean`` (t interval) and ``geomean``
      (t interval on logs; NaN unless every value is > 0);
    * time-to-event: ``km_median`` (Brookmeyer-Crowley interval), ``km_at_<day>``
      at each of the endpoint's ``report_at`` days (log-log band), and ``events``
      (number of events, value only);
    * a time-to-event endpoint with competing causes (a key of the endpoint set's
      ``causes``, whose ``NAME_cause`` column holds 0 for censored and ``k`` for the
      ``k``-th cause): ``cif_<cause>_at_<day>`` for each cause at each ``report_at``
      day (Aalen-Johansen cumulative incidence, :func:`aalen_johansen`, log-log band;
      ``n`` counts patients with a time and a cause code) and ``events_<cause>``
      (number of events of that cause, value only);
    * every endpoint: ``missing`` (number of NaN values, value only).

    Parameters
    ----------
    patients : pandas.DataFrame
        One row per patient with the endpoint set's columns (and the ``by`` column).
    endpoint_set : EndpointSet
        Gives the columns, their kinds, the Kaplan-Meier report days and, in an
        optional attribute ``causes`` (dict of time column to tuple of cause names,
        code ``k`` naming ``causes[col][k - 1]``), the competing causes.
    by : str or None
        Grouping column (default "arm"); None, or a column the table lacks, gives
        one group "all".
    level : float
        Confidence level of every interval.
    interval : {"wilson", "clopper-pearson"}
        Interval for proportions.

    Returns
    -------
    pandas.DataFrame
        Columns ``group, endpoint, statistic, value, lower, upper, n``, where ``n``
        is the number of patients with a value (non-missing) in the group.
    """
    import pandas as pd

    if interval not in INTERVALS:
        raise ValueError(f"`interval` must be one of {list(INTERVALS)}, got {interval!r}")
    two_sided_z(level)
    causes = getattr(endpoint_set, "causes", None) or {}
    for col in causes:
        if endpoint_set.kinds.get(col) != "time":
            raise ValueError(f"`causes` of the endpoint set names '{col}', which is not a time-to-event endpoint")
    if by is not None and by in patients.columns:
        # only the columns summarised are split into groups (a cohort's table also holds every
        # varying parameter: at 10^6 patients the groups would copy all of it)
        used = [by, *endpoint_set.kinds, *(f"{c}_{x}" for c in endpoint_set.kinds for x in ("event", "cause"))]
        used = [c for c in dict.fromkeys(used) if c in patients.columns]
        groups = [(str(g), sub) for g, sub in patients[used].groupby(by, sort=False)]
    else:
        groups = [("all", patients)]
    rows = []
    for group, sub in groups:
        for col, kind in endpoint_set.kinds.items():
            if kind in ("event_flag", "cause") or col not in sub.columns:
                continue
            x = sub[col].to_numpy(dtype=float)
            if kind == "time":
                flag = sub[f"{col}_event"].to_numpy(dtype=float)
                ok = ~np.isnan(x) & ~np.isnan(flag)
            else:
                ok = ~np.isnan(x)
            n = int(ok.sum())
            n_missing = int(x.size - n)

            def add(stat, value, lower=np.nan, upper=np.nan, count=n):
                rows.append((group, col, stat, float(value), float(lower), float(upper), int(count)))

            if kind == "binary":
                k = int((x[ok] != 0).sum())
                lo, hi = proportion_interval(k, n, level, interval)
                add("proportion", k / n if n else np.nan, lo, hi)
            elif kind == "continuous":
                xs = np.sort(x[ok])  # once for every quantile
                for stat, q in QUANTILES.items():
                    add(stat, *quantile_interval_sorted(xs, q, level))
                add("mean", *mean_interval(x[ok], level))
                add("geomean", *mean_interval(x[ok], level, geometric=True))
            elif kind == "time":
                km = kaplan_meier(x[ok], flag[ok], level)
                add("km_median", *km.median())
                for day in endpoint_set.report_at.get(col, ()):
                    add(f"km_at_{_fmt_day(day)}", *km.at(day))
                add("events", float((flag[ok] == 1).sum()))
                if col in causes and f"{col}_cause" in sub.columns:
                    _add_cause_rows(add, col, x, sub[f"{col}_cause"].to_numpy(dtype=float), causes[col],
                                    endpoint_set.report_at.get(col, ()), level)
            add("missing", n_missing, count=x.size)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
