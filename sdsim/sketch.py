"""Per-variable, per-year percentiles of an ensemble without holding the ensemble.

A *stream* is one variable in one year; an ensemble of n runs gives n values per stream. Chunks of
runs are added as ``(S, m)`` arrays (S streams, m runs) and forgotten. Two modes:

* **exact** (when every value fits in :data:`EXACT_BYTES`): the values are kept and the percentiles
  are exactly those of :func:`numpy.percentile` (equal weights) or
  :func:`sdsim.conditioning.weighted_percentiles` (unequal weights): error 0.
* **binned** (larger ensembles): per stream a fixed-bin histogram of :data:`BINS` equal bins over the
  0.5-99.5 % band (:data:`PILOT_BAND`) of a *pilot* chunk (the first chunk of the design, the same
  whatever the number of workers) widened by :data:`MARGIN` of its span on each side, plus an
  underflow and an overflow bin (outliers do not coarsen the bins), the
  exact minimum and maximum and a flag for non-finite values. Weights are quantised to integers
  (``round(w / w_max * WEIGHT_SCALE)``) so that bin sums are exact integers: the result does not
  depend on the order in which chunks are added (nor on the number of workers).

  **Error bound.** A percentile is an interpolation between two order statistics (numpy's linear
  rule for equal weights; the weighted Hazen rule for unequal weights, whose two neighbours have
  their cumulative-weight midpoints within ``w_max`` of the target). Each order statistic lies in
  the bin where the cumulative weight crosses its rank, which the histogram knows exactly; so the
  true percentile and the estimate (a linear interpolation inside those bins) both lie between the
  lower edge of the first bin and the upper edge of the last: ``|estimate - exact| <= bound`` with
  ``bound = upper edge(last bin) - lower edge(first bin)``, normally one or two bin widths, i.e.
  about ``(1 + 2 MARGIN) / BINS`` = 0.04 % of the pilot's band. The under- and overflow bins span
  [minimum, range low] and [range high, maximum], so a percentile falling there still has an honest
  (wider) bound. Every bound is computed and the largest is reported (:meth:`Quantiles.result`).

Memory: exact mode ``8 S n`` bytes (at most :data:`EXACT_BYTES`); binned mode ``8 S (BINS + 2)``
bytes per worker slot, whatever n.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

EXACT_BYTES = 128 * 2**20  # keep every value (exact percentiles) when the values take at most this
BINS = 4096  # histogram bins per stream in binned mode
PILOT_BAND = (0.5, 99.5)  # the pilot chunk's percentiles that set the binned range (outliers fall outside)
MARGIN = 0.25  # the pilot band is widened by this share of its span on each side
WEIGHT_SCALE = 2**32  # weights are quantised to integers of this resolution (w_max -> WEIGHT_SCALE)


def is_exact(streams: int, runs: int, limit: int = EXACT_BYTES) -> bool:
    """Whether ``runs`` values of ``streams`` streams fit in ``limit`` bytes (then percentiles are exact)."""
    return 8 * streams * runs <= limit


@dataclass
class Result:
    """Percentiles ``(S, Q)`` with their error bounds ``(S, Q)`` (0 in exact mode; NaN where undefined)."""

    values: np.ndarray
    bound: np.ndarray
    exact: bool

    def describe(self) -> dict[str, Any]:
        """How the percentiles were computed and their largest error bound (for the manifest)."""
        b = self.bound[np.isfinite(self.bound)]
        if self.exact:
            return {"method": "exact (every value kept)", "max_abs_error": 0.0}
        good = np.isfinite(self.values).all(axis=1) & np.isfinite(self.bound).all(axis=1)
        v, bd = self.values[good], self.bound[good].max(axis=1)
        scale = np.abs(v).max(axis=1) if v.size else np.zeros(0)
        span = v.max(axis=1) - v.min(axis=1) if v.size else np.zeros(0)
        rel_scale = np.where(scale > 0, bd / np.where(scale > 0, scale, 1.0), 0.0)
        wide = span > 1e-6 * scale  # streams whose percentiles differ (a near-constant stream has no useful span)
        rel_span = bd[wide] / span[wide]
        return {"method": f"fixed-bin histograms ({BINS} bins over the pilot chunk's {PILOT_BAND[0]:g}-{PILOT_BAND[1]:g} % "
                          f"band widened by {MARGIN:g} of its span each side, plus under/overflow bins with the exact "
                          "extremes)",
                "error_rule": "|estimate - exact percentile| <= the span of the bins holding the two order "
                              "statistics it interpolates (computed for every value)",
                "max_abs_error_bound": float(b.max()) if b.size else 0.0,
                "max_error_bound_relative_to_the_value": float(rel_scale.max()) if rel_scale.size else 0.0,
                "error_bound_relative_to_the_percentiles_span": {
                    "median": float(np.median(rel_span)) if rel_span.size else 0.0,
                    "max": float(rel_span.max()) if rel_span.size else 0.0,
                    "note": "over the streams whose percentiles differ by more than 1e-6 of their size"}}


class Quantiles:
    """Percentiles of ``streams`` streams over runs added chunk by chunk.

    ``rows`` (exact mode): the number of runs that may be added (values are stored at their row
    positions, so chunks may come in any order); ``slots``: independent accumulators (one per
    worker) in binned mode; ``shared``: allocate in shared memory (forked workers write in place).
    """

    def __init__(self, streams: int, rows: int, exact: bool, slots: int = 1, shared: bool = False) -> None:
        from . import parallel

        alloc = parallel.shared_empty if shared else np.empty
        self.streams, self.rows, self.exact, self.slots = streams, rows, exact, slots
        self.lo = np.zeros(streams)
        self.width = np.ones(streams)
        self.ranged = False
        if exact:
            self.values = alloc((streams, rows))
            self.values.fill(np.nan)
            self.taken = alloc((rows,), bool)
            self.taken.fill(False)
            self.weight = alloc((rows,))
            self.weight.fill(0.0)
        else:
            self.counts = alloc((slots, streams, BINS + 2), np.int64)
            self.counts.fill(0)
            self.vmin = alloc((slots, streams))
            self.vmin.fill(np.inf)
            self.vmax = alloc((slots, streams))
            self.vmax.fill(-np.inf)
            self.bad = alloc((slots, streams), bool)
            self.bad.fill(False)

    def set_range(self, pilot: np.ndarray) -> None:
        """The bins from a pilot chunk ``(S, m)``: its central PILOT_BAND percentiles widened by MARGIN of their
        span on each side (values outside fall in the under/overflow bins, which keep honest bounds)."""
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN stream (a flow's first year)
            finite = np.where(np.isfinite(pilot), pilot, np.nan)
            if pilot.shape[1]:
                lo, hi = np.nanpercentile(finite, PILOT_BAND, axis=1)
            else:
                lo = hi = np.full(self.streams, np.nan)
        lo = np.where(np.isfinite(lo), lo, 0.0)
        hi = np.where(np.isfinite(hi), hi, 0.0)
        span = hi - lo
        # a constant pilot: a span of 1e-9 of its size (at least 1e-300), so the bins stay finite and positive
        span = np.where(span > 0, span, np.maximum(np.abs(hi) * 1e-9, 1e-300))
        self.lo = lo - MARGIN * span
        self.width = span * (1 + 2 * MARGIN) / BINS
        self.ranged = True

    def add(self, values: np.ndarray, rows: np.ndarray, weights: np.ndarray | None = None, slot: int = 0) -> None:
        """Add the runs ``rows`` (design positions, exact mode) with values ``(S, m)`` and weights ``(m,)``
        (None: 1 each; in binned mode weights must already be the quantised integers of :func:`quantise`)."""
        m = values.shape[1]
        if m == 0:
            return
        if self.exact:
            self.values[:, rows] = values
            self.taken[rows] = True
            self.weight[rows] = 1.0 if weights is None else weights
            return
        if not self.ranged:
            raise RuntimeError("internal: set_range (the pilot chunk) must come before add in binned mode")
        w = np.ones(m, np.int64) if weights is None else np.asarray(weights, np.int64)
        pos = w > 0
        if not pos.all():
            values, w = values[:, pos], w[pos]
            m = values.shape[1]
            if m == 0:
                return
        block = max(1, (1 << 20) // m)  # streams binned together: buffers of about 8 MB, reused
        fbuf, ibuf = np.empty(min(block, self.streams) * m), np.empty(min(block, self.streams) * m, np.intp)
        for a in range(0, self.streams, block):
            self._add_block(values[a:a + block], w if weights is not None else None, slot, a, fbuf, ibuf)

    def _add_block(self, values: np.ndarray, w: np.ndarray | None, slot: int, a: int, fbuf: np.ndarray,
                   ibuf: np.ndarray) -> None:
        k, m = values.shape
        bad = ~np.isfinite(values).all(axis=1)
        self.bad[slot, a:a + k] |= bad
        # extremes (a stream holding a non-finite value gives NaN whatever they are; fmin/fmax keep the others)
        self.vmin[slot, a:a + k] = np.fmin(self.vmin[slot, a:a + k], values.min(axis=1))
        self.vmax[slot, a:a + k] = np.fmax(self.vmax[slot, a:a + k], values.max(axis=1))
        b = fbuf[:k * m].reshape(k, m)
        with np.errstate(invalid="ignore", over="ignore"):
            np.subtract(values, self.lo[a:a + k, None], out=b)
            b /= self.width[a:a + k, None]
            np.floor(b, out=b)
            np.maximum(b, -1.0, out=b)  # -1 underflow, 0..BINS-1 bins, BINS overflow (shifted by 1 below)
            np.minimum(b, float(BINS), out=b)
        if bad.any():  # NaN: any bin (the stream's result is NaN)
            b[bad] = np.nan_to_num(b[bad], nan=-1.0, posinf=float(BINS), neginf=-1.0)
        b += (np.arange(k) * (BINS + 2) + 1.0)[:, None]
        idx = ibuf[:k * m]
        np.copyto(idx, b.ravel(), casting="unsafe")
        if w is None:
            flat = np.bincount(idx, minlength=k * (BINS + 2))
        else:  # integer weights <= WEIGHT_SCALE, at most 2**20 runs per chunk: the float sums are exact integers
            flat = np.rint(np.bincount(idx, weights=np.broadcast_to(w.astype(float), b.shape).ravel(),
                                       minlength=k * (BINS + 2))).astype(np.int64)
        self.counts[slot, a:a + k] += flat.reshape(k, BINS + 2)

    def result(self, qs: tuple[float, ...] | list[float], weighted: bool = False,
               weights: np.ndarray | None = None) -> Result:
        """Percentiles ``qs`` (0-100) of every stream: numpy's rule (equal weights) or the weighted Hazen rule.

        Exact mode: ``weights`` (over the design rows, None: the weights given to :meth:`add`) select
        and weigh the runs. A stream holding a non-finite value gives NaN (as the exact functions do).
        """
        from .conditioning import weighted_percentiles

        q = np.asarray(qs, dtype=float)
        if self.exact:
            w = self.weight if weights is None else weights
            sel = self.taken & (w > 0)
            v = self.values[:, sel]
            if not weighted:
                out = np.full((self.streams, q.size), np.nan)
                good = np.isfinite(v).all(axis=1)
                if good.any() and v.shape[1]:
                    out[good] = np.percentile(v[good], q, axis=1).T
            else:
                out = weighted_percentiles(v, w[sel], list(q))
            return Result(out, np.where(np.isfinite(out), 0.0, np.nan), True)
        counts = self.counts.sum(axis=0)  # exact integer sums: independent of the slots' order
        vmin, vmax = self.vmin.min(axis=0), self.vmax.max(axis=0)
        bad = np.asarray(self.bad.any(axis=0))
        return _binned(counts, self.lo, self.width, vmin, vmax, bad, q, weighted)


def quantise(w: np.ndarray, w_max: float) -> np.ndarray:
    """Weights as integers ``round(w / w_max * WEIGHT_SCALE)`` (positive weights stay >= 1)."""
    iw = np.rint(np.asarray(w, float) / w_max * WEIGHT_SCALE).astype(np.int64)
    return np.where(np.asarray(w) > 0, np.maximum(iw, 1), 0)


def _binned(counts: np.ndarray, lo: np.ndarray, width: np.ndarray, vmin: np.ndarray, vmax: np.ndarray,
            bad: np.ndarray, q: np.ndarray, weighted: bool) -> Result:
    s = counts.shape[0]
    cum = np.cumsum(counts, axis=1).astype(float)  # (S, B + 2)
    total = cum[:, -1]
    edges_lo = lo[:, None] + width[:, None] * np.arange(-1, BINS + 1)[None, :]  # lower edge of each bin
    edges_hi = edges_lo + width[:, None]
    edges_lo[:, 0] = np.minimum(vmin, lo)  # underflow: [minimum, range low]
    edges_hi[:, 0] = lo
    edges_lo[:, -1] = lo + width * BINS  # overflow: [range high, maximum]
    edges_hi[:, -1] = np.maximum(vmax, edges_lo[:, -1])
    rows = np.arange(s)
    wmax = np.full(s, float(WEIGHT_SCALE))  # the largest quantised weight (see quantise)
    values = np.full((s, q.size), np.nan)
    bound = np.full((s, q.size), np.nan)

    def bin_of(mass: np.ndarray, strict: bool) -> np.ndarray:
        """First bin whose cumulative weight is > mass (strict) or >= mass."""
        return np.array([np.searchsorted(cum[i], mass[i], side="right" if strict else "left") for i in rows],
                        dtype=np.int64).clip(0, BINS + 1) if s else np.zeros(0, np.int64)

    def at(mass: np.ndarray) -> np.ndarray:
        """The value at cumulative weight ``mass``: linear inside its bin."""
        b = bin_of(mass, False)
        before = np.where(b > 0, cum[rows, b - 1], 0.0)
        c = counts[rows, b].astype(float)
        frac = np.clip(np.where(c > 0, (mass - before) / np.where(c > 0, c, 1.0), 0.5), 0.0, 1.0)
        return edges_lo[rows, b] + frac * (edges_hi[rows, b] - edges_lo[rows, b])

    with np.errstate(invalid="ignore", divide="ignore"):
        for k, qq in enumerate(q / 100):
            if weighted:  # weighted Hazen: the neighbours' midpoints lie within w_max of q * W
                target = qq * total
                m1, m2 = np.clip(target - wmax, 0, total), np.clip(target + wmax, 0, total)
                est = at(np.clip(target, 0, total))
            else:  # numpy: order statistics floor(h) and ceil(h), h = (n - 1) q, at cumulative count j + 1/2
                h = (total - 1) * qq
                f, c = np.floor(h), np.ceil(h)
                m1, m2 = f + 0.5, c + 0.5
                est = at(m1) + (h - f) * (at(m2) - at(m1))
            b1, b2 = bin_of(m1, True), bin_of(m2, False)
            values[:, k] = est
            bound[:, k] = edges_hi[rows, b2] - edges_lo[rows, np.minimum(b1, b2)]
    values = np.clip(values, vmin[:, None], vmax[:, None])  # never outside the values seen
    const = vmin == vmax  # every value the same: that value, exactly
    values[const] = vmin[const, None]
    bound[const] = 0.0
    empty = (total <= 0) | bad
    values[empty] = np.nan
    bound[empty] = np.nan
    return Result(values, bound, False)
