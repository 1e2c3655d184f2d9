"""Extreme-condition corners (``checks.yaml``, section ``corners``): one re-calibrated batch, pass/fail rows.

The batch holds ``vertices`` seeded random vertices of the uncertainty ranges (every uncertainty at its
low or high end), ``lhs`` Latin-hypercube points, all-low and all-high; every row is re-calibrated and
run to ``end`` under baseline policies (a scenario's parameter overrides apply, its levers do not).
Each expectation becomes one row of the check table: how many calibrated runs satisfy it, with the
first failure. Rows that cannot be calibrated are counted and shown, never judged. A ``downturn``
repeats the same design with lever settings (GDP falling) and its own expectations.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import qmc

from .batch import BatchResult, LeverPlan, ParamBatch, run_batch
from .checkspec import Corners, Expectation
from .compiler import Compiled
from .engine import Run, TimeGrid
from .scenario import policy_start
from .sensitivity import define_problem, require_recalibration
from .timefuncs import TimeFunction

if TYPE_CHECKING:
    from .scenario import Scenario
    from .validity import Row


def corner_design(problem_d: int, vertices: int, lhs: int, seed: int) -> np.ndarray:
    """(vertices + lhs + 2, d) unit-hypercube rows: random vertices, a Latin hypercube, all-low, all-high."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, size=(vertices, problem_d)).astype(float)
    cube = qmc.LatinHypercube(problem_d, rng=rng).random(lhs) if lhs else np.empty((0, problem_d))
    return np.vstack([corners, cube, np.zeros((1, problem_d)), np.ones((1, problem_d))])


def _values(cm: Compiled, run: Run, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(years, (years, n) values) of ``name``, without the undefined first year of annual totals."""
    y = run.get(name)
    if name in cm.rates or name in cm.model.annual:
        return run.years[1:], y[1:]
    return run.years, y


def failing(cm: Compiled, e: Expectation, run: Run, ref_year: int, start_default: int) -> tuple[np.ndarray, str]:
    """(n,) True where expectation ``e`` fails, and a sentence describing the first failure."""
    m = cm.model
    names = list(m.stocks) if e.variables == "stocks" else \
        [*m.stocks, *m.flows, *m.aux, *m.annual] if e.variables == "all" else list(e.variables)
    names = [n for n in names if n not in e.exempt]
    bad_any = np.zeros(run.n, dtype=bool)
    first = ""
    for name in names:
        years, y = _values(cm, run, name)
        start = e.start if e.start is not None else start_default
        if e.test == "finite":
            bad = ~np.isfinite(y)
        elif e.test == "nonnegative":
            bad = ~(y >= 0)
        elif e.test == "between":
            lo, hi = (_bound(cm, run, b, years) for b in e.bounds)  # type: ignore[union-attr]
            bad = ~((y >= lo) & (y <= hi))
        elif e.test == "max_growth":
            ref = y[list(years).index(ref_year)]
            prev = np.maximum(y[:-1], ref)
            g = np.diff(y, axis=0) / np.where(prev > 0, prev, np.inf)
            bad = np.zeros_like(y, dtype=bool)
            bad[1:] = (years[1:, None] >= start) & ~(g <= e.rate)  # type: ignore[operator]
        else:
            sel = years >= start
            d = np.diff(y[sel], axis=0)
            bad = np.zeros_like(y, dtype=bool)
            bad[np.flatnonzero(sel)[1:]] = ~(d < 0) if e.test == "decreasing" else ~(d > 0)
        runs = bad.any(axis=0)
        if runs.any() and not first:
            j = int(np.flatnonzero(runs)[0])
            k = int(np.flatnonzero(bad[:, j])[0])
            first = f"{name} = {y[k, j]:.4g} in {years[k]} (run {j})"
        bad_any |= runs
    return bad_any, first


def _bound(cm: Compiled, run: Run, bound: float | str, years: np.ndarray) -> np.ndarray:
    if isinstance(bound, str):
        by, bv = _values(cm, run, bound)
        idx = np.searchsorted(by, years)
        return bv[np.clip(idx, 0, by.size - 1)]
    return np.full((years.size, 1), float(bound))


def describe(e: Expectation) -> str:
    """Short text of an expectation."""
    what = e.variables if isinstance(e.variables, str) else ", ".join(e.variables)
    if e.test == "between":
        lo, hi = e.bounds  # type: ignore[misc]
        return f"{what} in [{lo if isinstance(lo, str) else format(lo, 'g')}, {hi if isinstance(hi, str) else format(hi, 'g')}]"
    if e.test == "max_growth":
        ex = f" (exempt: {', '.join(e.exempt)})" if e.exempt else ""
        return f"{what} grow at most {e.rate:.0%}/yr from {e.start}{ex}"
    return f"{what} {e.test}" + (f" from {e.start}" if e.start is not None else "")


def _run(cm: Compiled, sc: Scenario, names: list[str], x: np.ndarray, end: int) -> BatchResult:
    """The design ``x`` (one column per name in ``names``) re-calibrated and run to ``end``: the calibrated rows."""
    cm = cm.with_tables(sc.tables)  # the scenario's graphical functions, for calibration and runs
    batch = ParamBatch.from_design(cm, sc.parameters, {k: x[:, j] for j, k in enumerate(names)})
    grid = TimeGrid(cm.model.calibration.start, end, sc.dt)
    return run_batch(cm, batch, grid, sc.method, LeverPlan(sc.levers, policy_start(sc, cm.model)), only_ok=True)


def corner_rows(cm: Compiled, spec: Corners, sc: Scenario, row_type: type[Row], lang: str = "en") -> list[Row]:
    """One pass/fail row per corner expectation (and per downturn expectation)."""
    model = cm.model
    problem = define_problem(model, sc)
    u = corner_design(problem.d, spec.vertices, spec.lhs, spec.seed)
    u_x = problem.transform(u)
    ref_year = model.calibration.end
    rows = []
    # the corners test the model's assumptions under baseline policies (the scenario's parameter overrides
    # apply, its levers do not: a policy step may legitimately move a stock faster than the growth bound)
    base = dataclasses.replace(sc, end=spec.end, levers={})
    batches = [("corners", base, spec.expect)]
    if spec.downturn_levers:
        levers = {k: TimeFunction("constant", value=v) for k, v in spec.downturn_levers.items()}
        batches.append(("downturn", dataclasses.replace(base, levers=levers), spec.downturn_expect))
    require_recalibration(sc)
    for tag, scen, expect in batches:
        exp = _run(cm, scen, problem.names, u_x, spec.end)
        n_ok, n = int(exp.ok.sum()), exp.ok.size
        setting = "" if tag == "corners" else " with " + ", ".join(f"{k} = {v:g}" for k, v in spec.downturn_levers.items())
        for e in expect:
            bad, first = failing(cm, e, exp.run, ref_year, ref_year + 1)
            k = int(bad.sum())
            measured = f"{n_ok - k}/{n_ok} calibrated runs" + (f" ({n - n_ok} of {n} not calibratable)" if n > n_ok else "")
            rows.append(row_type("corners", f"{tag}: {describe(e)}", measured, "all", k == 0,
                                 [first] if first else [], f"{spec.label(lang)}{setting}"))
    return rows
