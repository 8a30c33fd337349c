"""Visual predictive checks: binning, censored percentiles, replicate intervals, prediction correction.

The conventions are those of the R ``vpc`` package (Keizer et al.):

* observation times are grouped into bins (quantile bins by default, or explicit edges); a bin
  is drawn at the mean of its observation times (``"mean"``), their median or the middle of its
  edges;
* in each bin the 5th, 50th and 95th percentiles of the observed values are computed
  (R's type-7 quantile); with a lower limit of quantification, censored values count as
  ``-inf`` and a percentile that falls on a censored value is not reported (``vpc::quantile_cens``);
* the same percentiles are computed for each of R replicate trials simulated with the study's
  design (same subjects per arm, same sampling times); the 2.5th and 97.5th percentiles of
  each simulated percentile across the replicates give its 95 % interval. Simulated
  percentiles are computed on all simulated values (the intervals are drawn in full, below
  the limit too);
* the fraction of observations below the limit is compared with its simulated interval;
* prediction correction (pcVPC, Bergstrand et al. 2011, AAPS J 13:143): each observed and
  simulated value is multiplied by ``PRED_bin / PRED_i``, ``PRED_i`` the typical patient's
  prediction at the observation and ``PRED_bin`` the median of ``PRED`` in its bin.

Residual error (:class:`carkinetics.model.residual_error.ResidualError`) is added to simulated
values before they are compared.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from carkinetics.errors import CarKineticsError

#: Percentiles of the observations and simulations shown in a VPC.
DEFAULT_PERCENTILES = (0.05, 0.5, 0.95)
#: Default number of quantile bins (fewer when there are fewer distinct times).
DEFAULT_BINS = 8
#: Without a number of bins, at most this many distinct times get one bin each (nominal times).
MAX_NOMINAL_TIMES = 15
#: Interval of the simulated percentiles across replicate trials.
DEFAULT_INTERVAL = (0.025, 0.975)
BIN_CENTRES = ("mean", "median", "middle")


class VPCError(CarKineticsError, ValueError):
    """Inputs of a visual predictive check are invalid (error model, bins, shapes)."""


def bin_edges(times, bins=None) -> np.ndarray:
    """Edges of the time bins of a VPC.

    Parameters
    ----------
    times : array_like
        Observation times.
    bins : int or sequence of float, optional
        An int: that many quantile bins, their edges midway between distinct times; when the
        times take at most that many distinct values, one bin per distinct time. None: one
        bin per distinct time when there are at most :data:`MAX_NOMINAL_TIMES` (nominal
        sampling times), else :data:`DEFAULT_BINS` quantile bins. A sequence: the edges
        themselves (increasing; times outside them are left out).

    Returns
    -------
    ndarray
        Increasing edges; bin ``k`` is ``[edges[k], edges[k + 1])``, the last one closed.
    """
    t = np.asarray(times, dtype=float)
    if bins is not None and not isinstance(bins, (int, np.integer)):
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
            raise VPCError(f"bin edges must be at least two increasing finite numbers, got {list(bins)!r}")
        return edges
    if bins is not None and (isinstance(bins, bool) or int(bins) < 1):
        raise VPCError(f"the number of bins must be a whole number >= 1, got {bins!r}")
    if t.size == 0:
        raise VPCError("no observation times to bin")
    distinct = np.unique(t)
    if bins is None and distinct.size <= MAX_NOMINAL_TIMES or bins is not None and distinct.size <= int(bins):
        if distinct.size == 1:
            return np.array([distinct[0], distinct[0] + 1.0])
        mids = (distinct[:-1] + distinct[1:]) / 2
        return np.concatenate([[distinct[0]], mids, [distinct[-1]]])
    n = DEFAULT_BINS if bins is None else int(bins)
    inner = np.quantile(t, np.linspace(0, 1, n + 1)[1:-1])
    # each edge midway between two distinct times: observations at one time stay in one bin
    i = np.clip(np.searchsorted(distinct, inner), 1, distinct.size - 1)
    inner = (distinct[i - 1] + distinct[i]) / 2
    return np.unique(np.concatenate([[distinct[0]], inner, [distinct[-1]]]))


def assign_bins(times, edges) -> np.ndarray:
    """Bin index of each time (``-1`` outside the edges); the last bin includes its upper edge."""
    t = np.asarray(times, dtype=float)
    k = np.searchsorted(edges, t, side="right") - 1
    k[t == edges[-1]] = len(edges) - 2
    k[(t < edges[0]) | (t > edges[-1])] = -1
    return k.astype(np.int64)


def bin_centres(times, index, edges, how="mean") -> np.ndarray:
    """Where each bin is drawn: the mean or median of its times, or the middle of its edges."""
    if how not in BIN_CENTRES:
        raise VPCError(f"bin centre must be one of {list(BIN_CENTRES)}, got {how!r}")
    t = np.asarray(times, dtype=float)
    out = (edges[:-1] + edges[1:]) / 2
    if how == "middle":
        return out
    for k in range(len(edges) - 1):
        sel = t[index == k]
        if sel.size:
            out[k] = sel.mean() if how == "mean" else np.median(sel)
    return out


def censored_percentile(values, censored, q) -> float:
    """R's type-7 quantile with censored values counted as ``-inf``; NaN when it falls on one.

    The quantile is the interpolation between the sorted values at ranks ``floor(h)`` and
    ``floor(h) + 1``, ``h = (n - 1) q``: NaN (not reported) when the lower one is censored,
    as ``vpc::quantile_cens``.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return np.nan
    x = np.where(np.asarray(censored, dtype=bool) | np.isnan(x), -np.inf, x)
    x = np.sort(x)
    h = (x.size - 1) * q
    lo = int(np.floor(h))
    hi = min(lo + 1, x.size - 1)
    if not np.isfinite(x[lo]):
        return np.nan
    return float(x[lo] + (h - lo) * (x[hi] - x[lo]))


def observed_percentiles(values, censored, index, n_bins, qs=DEFAULT_PERCENTILES) -> np.ndarray:
    """Censored percentiles (:func:`censored_percentile`) of each bin, shape (n_bins, len(qs))."""
    out = np.full((n_bins, len(qs)), np.nan)
    v = np.asarray(values, dtype=float)
    c = np.asarray(censored, dtype=bool)
    for k in range(n_bins):
        sel = index == k
        for j, q in enumerate(qs):
            out[k, j] = censored_percentile(v[sel], c[sel], q)
    return out


def simulated_percentiles(values, index, n_bins, qs=DEFAULT_PERCENTILES) -> np.ndarray:
    """Percentiles of each bin of each replicate trial, shape (n_replicates, n_bins, len(qs)).

    ``values`` has shape (n_replicates, n_observations); NaN values (failed simulations) are
    left out.
    """
    v = np.asarray(values, dtype=float)
    out = np.full((v.shape[0], n_bins, len(qs)), np.nan)
    for k in range(n_bins):
        sel = v[:, index == k]
        if sel.shape[1]:
            with warnings.catch_warnings():  # a replicate whose values all failed: NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                out[:, k, :] = np.nanquantile(sel, qs, axis=1).T
    return out


def blq_fractions(censored, index, n_bins) -> np.ndarray:
    """Fraction of censored observations per bin; ``censored`` of shape (n,) or (n_replicates, n)."""
    c = np.atleast_2d(np.asarray(censored, dtype=float))
    out = np.full((c.shape[0], n_bins), np.nan)
    for k in range(n_bins):
        sel = index == k
        if sel.any():
            out[:, k] = c[:, sel].mean(axis=1)
    return out if np.ndim(censored) > 1 else out[0]


def replicate_interval(stat, interval=DEFAULT_INTERVAL) -> np.ndarray:
    """Lower bound, median and upper bound of a statistic across replicates (axis 0).

    Returns
    -------
    ndarray, shape (3, ...)
    """
    s = np.asarray(stat, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(s, [interval[0], 0.5, interval[1]], axis=0)


def prediction_correction(pred, index, n_bins) -> np.ndarray:
    """Factors ``PRED_bin / PRED_i`` of the prediction-corrected VPC (Bergstrand 2011).

    Parameters
    ----------
    pred : array_like, shape (n,)
        The typical patient's prediction at each observation (> 0).
    index : array_like of int, shape (n,)
        Bin of each observation.
    n_bins : int

    Returns
    -------
    ndarray, shape (n,)
        Multiply observed and simulated values by it; NaN outside the bins or where the
        prediction is not positive.
    """
    p = np.asarray(pred, dtype=float)
    factor = np.full(p.shape, np.nan)
    ok = np.isfinite(p) & (p > 0)
    for k in range(n_bins):
        sel = (index == k) & ok
        if sel.any():
            factor[sel] = np.median(p[sel]) / p[sel]
    return factor


@dataclass
class BinnedVPC:
    """The statistics of one stratum (an observable in an arm) of a VPC.

    Attributes
    ----------
    edges, centres : ndarray
        Bin edges (n_bins + 1) and the time each bin is drawn at (n_bins).
    n_obs, n_blq : ndarray of int, shape (n_bins,)
        Observations and censored observations per bin.
    qs : tuple of float
        The percentiles (fractions).
    observed : ndarray, shape (n_bins, n_q)
        Observed percentiles (NaN where censored).
    simulated : ndarray, shape (3, n_bins, n_q)
        Lower bound, median and upper bound of the simulated percentiles.
    blq_observed : ndarray, shape (n_bins,)
    blq_simulated : ndarray, shape (3, n_bins)
    """

    edges: np.ndarray
    centres: np.ndarray
    n_obs: np.ndarray
    n_blq: np.ndarray
    qs: tuple
    observed: np.ndarray
    simulated: np.ndarray
    blq_observed: np.ndarray
    blq_simulated: np.ndarray

    def inside(self) -> np.ndarray:
        """Whether each reported observed percentile lies in its simulated interval (NaN where not reported)."""
        lo, _, hi = self.simulated
        ok = (self.observed >= lo) & (self.observed <= hi)
        return np.where(np.isnan(self.observed), np.nan, ok.astype(float))


def binned_vpc(times, observed, censored, simulated, sim_censored, *, edges, factor=None, qs=DEFAULT_PERCENTILES,
               interval=DEFAULT_INTERVAL, centre="mean") -> BinnedVPC:
    """The statistics of a VPC of one stratum.

    Parameters
    ----------
    times : array_like, shape (n,)
        Observation times.
    observed : array_like, shape (n,)
        Observed values (any number for censored ones).
    censored : array_like of bool, shape (n,)
        Observations below their limit of quantification.
    simulated : array_like, shape (n_replicates, n)
        Simulated observations (residual error included) at the same times.
    sim_censored : array_like of bool, shape (n_replicates, n)
        Simulated observations below the limit.
    edges : ndarray
        Bin edges (:func:`bin_edges`).
    factor : array_like, shape (n,), optional
        Prediction correction factors (:func:`prediction_correction`).
    qs, interval : tuple of float
    centre : str
        One of :data:`BIN_CENTRES`.

    Returns
    -------
    BinnedVPC
    """
    t = np.asarray(times, dtype=float)
    y = np.asarray(observed, dtype=float)
    c = np.asarray(censored, dtype=bool)
    s = np.asarray(simulated, dtype=float)
    sc = np.asarray(sim_censored, dtype=bool)
    if s.ndim != 2 or s.shape[1] != t.size or sc.shape != s.shape or y.shape != t.shape or c.shape != t.shape:
        raise VPCError(f"shapes do not match: {t.size} times, observed {y.shape}, censored {c.shape}, "
                       f"simulated {s.shape}, simulated censored {sc.shape}")
    index = assign_bins(t, edges)
    n_bins = len(edges) - 1
    if factor is not None:
        f = np.asarray(factor, dtype=float)
        y, s = y * f, s * f
    return BinnedVPC(
        edges=np.asarray(edges, dtype=float), centres=bin_centres(t, index, edges, centre),
        n_obs=np.bincount(index[index >= 0], minlength=n_bins)[:n_bins],
        n_blq=np.bincount(index[(index >= 0) & c], minlength=n_bins)[:n_bins], qs=tuple(qs),
        observed=observed_percentiles(y, c, index, n_bins, qs),
        simulated=replicate_interval(simulated_percentiles(s, index, n_bins, qs), interval),
        blq_observed=blq_fractions(c, index, n_bins),
        blq_simulated=replicate_interval(blq_fractions(sc, index, n_bins), interval))
