"""Cohort summaries: every endpoint of an endpoint set summarised per arm into one long table.

:func:`summarise` reads only an endpoint set's ``kinds`` (column -> binary, continuous, time,
event_flag) and ``report_at`` (column -> Kaplan-Meier days) and uses the intervals of
:mod:`carkinetics.stats.intervals`, :mod:`carkinetics.stats.quantiles` and
:mod:`carkinetics.stats.km`.

Missing values (NaN: a failed simulation, a patient outside an endpoint's
``among`` subgroup, a reference event that did not happen) are left out of every
statistic and counted in a ``missing`` row per endpoint and group.
"""

from __future__ import annotations

import numpy as np

from carkinetics.stats.intervals import INTERVALS, mean_interval, proportion_interval, two_sided_z
from carkinetics.stats.km import kaplan_meier
from carkinetics.stats.quantiles import QUANTILES, quantile_interval_sorted

SUMMARY_COLUMNS = ["group", "endpoint", "statistic", "value", "lower", "upper", "n"]


def _fmt_day(t: float) -> str:
    return f"{t:g}"


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
    * every endpoint: ``missing`` (number of NaN values, value only).

    Parameters
    ----------
    patients : pandas.DataFrame
        One row per patient with the endpoint set's columns (and the ``by`` column).
    endpoint_set : EndpointSet
        Gives the columns, their kinds and the Kaplan-Meier report days.
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
    if by is not None and by in patients.columns:
        groups = [(str(g), sub) for g, sub in patients.groupby(by, sort=False)]
    else:
        groups = [("all", patients)]
    rows = []
    for group, sub in groups:
        for col, kind in endpoint_set.kinds.items():
            if kind == "event_flag" or col not in sub.columns:
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
            add("missing", n_missing, count=x.size)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
