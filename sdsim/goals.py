"""Goal attainment: value in the goal year, met or not, first year met, gap, probability."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .engine import Run
from .model import Goal, Model


@dataclass
class GoalStatus:
    """Attainment of one goal over a batch of n runs (arrays of shape (n,))."""

    goal: Goal
    value: np.ndarray  # value in the goal year
    met: np.ndarray  # bool
    first_year: np.ndarray  # first year (after the calibration window) the test holds; 0 = never
    probability: np.ndarray  # P(met): 0/1, or a Poisson law on the expected count
    value_reported: np.ndarray | None = None  # the published indicator in the goal year (reporting scope in force)
    threshold_reported: np.ndarray | None = None  # threshold x the scope factor: the goal in the published scope
    rebased_target: float | None = None  # the district's re-based target of the published indicator
    rebased_year: int | None = None

    @property
    def gap(self) -> np.ndarray:
        """value - threshold (negative: short of the goal)."""
        return self.value - self.goal.threshold

    @property
    def gap_pct(self) -> np.ndarray:
        """gap as a percentage of the threshold."""
        return 100.0 * self.gap / self.goal.threshold


def holds(goal: Goal, values: np.ndarray) -> np.ndarray:
    """Whether ``values`` pass the goal's test."""
    return values >= goal.threshold if goal.test == ">=" else values > goal.threshold


def poisson_probability(goal: Goal, expected: np.ndarray) -> np.ndarray:
    """P(count passes the test) when the count is Poisson with mean ``expected``."""
    # N >= T  <=>  N > ceil(T) - 1;   N > T  <=>  N > floor(T)   (N an integer count)
    k = np.ceil(goal.threshold) - 1 if goal.test == ">=" else np.floor(goal.threshold)
    return poisson_sf(int(k), np.maximum(expected, 0.0))


def poisson_sf(k: int, mu: np.ndarray) -> np.ndarray:
    """P(N > k) for N ~ Poisson(mu) (scipy.special.pdtrc, to a few units in the last place, without importing scipy).

    Below the mode (mu < k + 1) the upper tail is summed directly (its terms fall geometrically, no
    cancellation, so small probabilities keep their relative precision); above it, 1 - P(N <= k) (>= about
    1/2, no cancellation to speak of).
    """
    mu = np.asarray(mu, dtype=float)
    if k < 0:
        return np.where(np.isnan(mu), np.nan, 1.0)
    with np.errstate(all="ignore"):
        term = np.exp(-mu)  # P(N = 0)
        lower = term.copy()
        for i in range(1, k + 1):
            term = term * mu / i
            lower = lower + term
        upper = np.zeros_like(mu)
        small = mu < k + 1
        if small.any():
            t = term[small] * mu[small] / (k + 1)  # P(N = k + 1)
            acc = t.copy()
            m = mu[small]
            j = k + 2
            while True:  # terms shrink at least by m / (k + 2) < 1 per step
                t = t * m / j
                acc = acc + t
                if not (t > 1e-17 * acc).any():
                    break
                j += 1
            upper[small] = acc
        out = np.where(small, upper, 1.0 - lower)
    return np.where(np.isnan(mu), np.nan, out)


def evaluate(model: Model, run: Run, from_year: int | None = None, params: dict[str, Any] | None = None
             ) -> dict[str, GoalStatus]:
    """Status of every goal for every run in ``run``.

    Goals are judged in the scope they were set in (the goal variable). Where a goal names a
    ``reported`` indicator, the published value in the goal year is added, with the threshold scaled
    by ``threshold_scale`` (taken from ``params``, default the model's value) and the latest re-based
    target of that indicator up to the goal year (history.yaml, kind target).
    """
    start = from_year if from_year is not None else model.calibration.end
    out = {}
    for name, g in model.goals.items():
        series = run.get(g.variable)
        value = run.at(g.variable, g.year)
        met = holds(g, value)
        sel = run.years >= start
        ok = holds(g, np.nan_to_num(series[sel], nan=-np.inf))
        first = np.where(ok.any(axis=0), run.years[sel][ok.argmax(axis=0)], 0)
        prob = poisson_probability(g, value) if g.poisson else met.astype(float)
        st = GoalStatus(g, value, met, first, prob)
        if g.reported is not None:
            st.value_reported = run.at(g.reported, g.year)
            scale = 1.0
            if g.threshold_scale is not None:
                scale = (params or {}).get(g.threshold_scale, model.params[g.threshold_scale].value)
            st.threshold_reported = np.broadcast_to(g.threshold * np.asarray(scale, dtype=float), value.shape).copy()
            st.rebased_target, st.rebased_year = rebased_target(model, g)
        out[name] = st
    return out


def rebased_target(model: Model, goal: Goal) -> tuple[float | None, int | None]:
    """The district's re-based target of the goal's published indicator: the latest up to the goal year, else the
    first after it (history.yaml, kind target)."""
    if model.history is None or goal.reported is None:
        return None, None
    rows = model.history.targets_for(goal.reported)
    if not rows:
        return None, None
    before = [r for r in rows if r.time <= goal.year]
    r = before[-1] if before else rows[0]
    return r.value, int(round(r.time))
