"""One batch pipeline: a typed parameter batch, calibration, lever schedules, integration.

Every command runs batches the same way: a :class:`ParamBatch` (``n`` runs; each parameter and fact
either one value shared by all runs or an (n,) array of per-run values) is calibrated to the
calibration window (:func:`sdsim.calibrate.calibrate`, the free parameters solved per run), each run
gets its lever schedules (:class:`LeverPlan`: baseline values through the calibration window and the
years of history, the scenario's time functions from its policy start, optional per-run constant
settings), and all runs are integrated in one :func:`sdsim.engine.simulate` call. :func:`run_batch`
does the three steps; ``run``, ``compare``, ``check`` (:mod:`sdsim.validity`, :mod:`sdsim.corners`),
``optimize``, the Python API and the tests use it.

Values are in the model's units (those of ``parameters.yaml`` and ``observed.yaml``); times in
calendar years.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .calibrate import CalibrationResult, calibrate
from .compiler import Compiled
from .engine import Run, TimeGrid, lever_schedules, simulate
from .errors import InputError
from .timefuncs import TimeFunction

Value = float | np.ndarray  # one value shared by every run, or an (n,) float array of per-run values


# ------------------------------------------------------------------------------------ the batch


@dataclass(frozen=True)
class ParamBatch:
    """``n`` parameter sets: every parameter and fact as a shared number or an (n,) float array.

    A one-element array in a batch of more than one run is a shared value (stored as a float);
    any other length is an error. Arrays are never modified in place by the methods below.
    """

    n: int
    values: Mapping[str, Value] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"a parameter batch needs at least one run, got n = {self.n}")
        clean: dict[str, Value] = {}
        for k, v in self.values.items():
            clean[k] = _normal(k, v, self.n)
        object.__setattr__(self, "values", clean)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_values(cls, values: Mapping[str, Any], n: int | None = None) -> ParamBatch:
        """A batch from a mapping of numbers and (n,) arrays (``n``: default the longest array, else 1)."""
        if n is None:
            n = max([int(np.size(v)) for v in values.values()] + [1])
        return cls(n, dict(values))

    @classmethod
    def from_overrides(cls, cm: Compiled, overrides: Sequence[Mapping[str, float]]) -> ParamBatch:
        """The model's baseline values with one run per entry of ``overrides`` (name -> value).

        A name overridden in any run becomes an (n,) array (the baseline value in the other runs);
        the rest stay shared numbers.
        """
        if not overrides:
            raise ValueError("from_overrides needs at least one run (a list with one dict per run)")
        base = cm.model.base_values()
        out: dict[str, Value] = dict(base)
        names = {k for o in overrides for k in o}
        for name in names:
            out[name] = np.array([o.get(name, base[name]) for o in overrides], dtype=float)
        return cls(len(overrides), out)

    @classmethod
    def from_design(cls, cm: Compiled, overrides: Mapping[str, float], columns: Mapping[str, Any],
                    n: int | None = None) -> ParamBatch:
        """One parameter set (the baseline with ``overrides``) run once per row of a design.

        ``columns`` maps parameter names to (n,) per-run values (NaN: the set's own value); every
        other value is shared by all runs. ``n`` is needed only without columns (a design of lever
        settings alone: ``n`` runs of the same parameter set).
        """
        central = cls.from_overrides(cm, [overrides])
        cols = {k: np.array(v, dtype=float) for k, v in columns.items()}
        sizes = {v.shape for v in cols.values()} | ({(n,)} if n is not None else set())
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise ValueError(f"design columns must be 1-d and of one length (n = {n}), got shapes {sorted(sizes)}")
        n = next(iter(sizes))[0]
        for k, v in cols.items():
            v[np.isnan(v)] = central.value(k, 0)
        return central.repeat(n).with_values(cols)

    @classmethod
    def concat(cls, batches: Sequence[ParamBatch]) -> ParamBatch:
        """The runs of ``batches`` one after the other (a value shared by all of them stays shared)."""
        if not batches:
            raise ValueError("concat needs at least one batch")
        names = list(batches[0].values)
        for b in batches[1:]:
            if set(b.values) != set(names):
                diff = sorted(set(b.values) ^ set(names))
                raise ValueError(f"batches to concatenate name different parameters: {', '.join(diff[:5])}")
        out: dict[str, Value] = {}
        for k in names:
            vals = [b.values[k] for b in batches]
            if all(not isinstance(v, np.ndarray) for v in vals) and all(v == vals[0] for v in vals):
                out[k] = vals[0]
            else:
                out[k] = np.concatenate([b.column(k) for b in batches])
        return cls(sum(b.n for b in batches), out)

    # -- access -------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Value:
        return self.values[name]

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def __iter__(self) -> Iterator[str]:
        """The names of the parameters and facts (the number of runs is ``n``)."""
        return iter(self.values)

    def column(self, name: str) -> np.ndarray:
        """(n,) values of ``name`` (a shared value repeated; a copy)."""
        v = self.values[name]
        return np.array(v, dtype=float) if isinstance(v, np.ndarray) else np.full(self.n, float(v))

    def shared(self, name: str) -> bool:
        """True when every run has the same value of ``name`` by construction (a number, not an array)."""
        return not isinstance(self.values[name], np.ndarray)

    @property
    def uniform(self) -> bool:
        """True when no parameter varies between runs (every run is the same parameter set)."""
        return all(not isinstance(v, np.ndarray) for v in self.values.values())

    def value(self, name: str, j: int) -> float:
        """Run j's value of ``name``."""
        v = self.values[name]
        return float(v[j]) if isinstance(v, np.ndarray) else float(v)

    def as_dict(self) -> dict[str, Value]:
        """The engine's form: name -> number or (n,) array (a new dict; arrays are shared, not copied)."""
        return dict(self.values)

    # -- selection and changes ----------------------------------------------------------------
    def take(self, idx: Any) -> ParamBatch:
        """The runs ``idx`` (integer indices, possibly repeated, or an (n,) bool mask), in that order."""
        sel = np.asarray(idx)
        if sel.dtype == bool:
            if sel.shape != (self.n,):
                raise ValueError(f"a mask must have one entry per run ({self.n}), got shape {sel.shape}")
            sel = np.flatnonzero(sel)
        sel = sel.astype(int).reshape(-1)
        if sel.size == 0:
            raise ValueError("take needs at least one run")
        if sel.min() < -self.n or sel.max() >= self.n:
            raise IndexError(f"run index out of range for a batch of {self.n}")
        out = {k: (v[sel] if isinstance(v, np.ndarray) else v) for k, v in self.values.items()}
        return ParamBatch(sel.size, out)

    def row(self, j: int) -> ParamBatch:
        """Run j alone, as a batch of one run (its per-run values as (1,) arrays)."""
        return self.take([j])

    def row_values(self, j: int) -> dict[str, float]:
        """Run j's values as numbers."""
        return {k: self.value(k, j) for k in self.values}

    def with_values(self, values: Mapping[str, Any]) -> ParamBatch:
        """A copy with ``values`` (numbers or (n,) arrays) replacing or adding entries."""
        return ParamBatch(self.n, {**self.values, **values})

    def replace(self, **values: Any) -> ParamBatch:
        """Keyword form of :meth:`with_values`."""
        return self.with_values(values)

    def with_run_values(self, j: int, values: Mapping[str, float]) -> ParamBatch:
        """A copy in which run j takes ``values`` (the other runs keep theirs)."""
        out: dict[str, Value] = {}
        for k, v in values.items():
            col = self.column(k)
            col[j] = float(v)
            out[k] = col
        return self.with_values(out)

    def repeat(self, n: int) -> ParamBatch:
        """A uniform batch (every run the same, n = 1) as ``n`` runs of the same values."""
        if self.n != 1:
            raise ValueError(f"repeat needs a batch of one run, got {self.n}")
        return ParamBatch(n, {k: (float(v[0]) if isinstance(v, np.ndarray) else v) for k, v in self.values.items()})


def _normal(name: str, v: Any, n: int) -> Value:
    """A value in its normal form: a float, or an (n,) float array."""
    if isinstance(v, np.ndarray) or isinstance(v, list | tuple):
        a = np.asarray(v, dtype=float)
        if a.ndim == 0:
            return float(a)
        if a.ndim != 1:
            raise ValueError(f"parameter {name!r}: expected a number or a 1-d array, got shape {a.shape}")
        if a.size == n:
            return a
        if a.size == 1:
            return float(a[0])
        raise ValueError(f"parameter {name!r} has {a.size} values for a batch of {n} runs")
    if isinstance(v, bool) or not isinstance(v, int | float | np.number):
        raise ValueError(f"parameter {name!r}: expected a number or an array, got {type(v).__name__}")
    return float(v)


# -------------------------------------------------------------------------------- lever schedules


@dataclass(frozen=True)
class LeverPlan:
    """How a run's levers move: baseline values, a scenario's time functions, constant settings.

    ``functions`` act from calendar year ``first_year`` (default: the model's policy start, the first
    year after its history; never inside the calibration window). ``settings`` maps levers to (n,)
    constants (or one number for every run) that replace the lever from time ``settings_from``
    (default: when the functions start acting); a NaN entry keeps the run's schedule.
    """

    functions: Mapping[str, TimeFunction] = field(default_factory=dict)
    first_year: int | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    settings_from: float | None = None

    def active_from(self, cm: Compiled) -> float:
        """The time (years) from which the functions act: the end of the year before ``first_year``."""
        cal = cm.model.calibration
        return max(cal.end, (self.first_year if self.first_year is not None else cal.lever_start) - 1)

    def schedules(self, cm: Compiled, grid: TimeGrid, batch: ParamBatch | Mapping[str, Any]) -> dict[str, np.ndarray]:
        """(steps + 1, n) schedules of every lever for the runs of ``batch``."""
        values = batch.values if isinstance(batch, ParamBatch) else batch
        end = self.active_from(cm)
        out = lever_schedules(cm, grid, {k: values[k] for k in cm.model.levers}, dict(self.functions) or None,
                              active_from=end)
        after = grid.times[:, None] >= (end if self.settings_from is None else self.settings_from)
        for name, setting in self.settings.items():
            v = np.atleast_1d(np.asarray(setting, dtype=float))[None, :]
            out[name] = np.where(after & ~np.isnan(v), v, out[name])
        return out


Levers = LeverPlan | Sequence[LeverPlan] | Mapping[str, np.ndarray]


def schedules(cm: Compiled, grid: TimeGrid, batch: ParamBatch, levers: Levers) -> dict[str, np.ndarray]:
    """(steps + 1, n) lever schedules: one plan for the whole batch, one plan per run, or ready schedules."""
    if isinstance(levers, LeverPlan):
        return levers.schedules(cm, grid, batch)
    if isinstance(levers, Mapping):
        return dict(levers)
    plans = list(levers)
    if len(plans) != batch.n:
        raise ValueError(f"{len(plans)} lever plans for a batch of {batch.n} runs")
    cols = [p.schedules(cm, grid, batch.row_values(j)) for j, p in enumerate(plans)]
    return {k: np.concatenate([c[k] for c in cols], axis=1) for k in cm.model.levers}


# -------------------------------------------------------------------------------------- pipeline


@dataclass
class BatchResult:
    """A calibrated, integrated batch.

    ``params`` holds every run's values with the free parameters solved; ``calibration`` is the
    solve (None without calibration; a single solve shared by every run when the batch was uniform);
    ``ok`` (n,) marks the runs that reproduce the calibration targets inside the bounds; ``run`` holds
    the runs ``simulated`` (every run, or only the ok ones), in row order.
    """

    params: ParamBatch
    calibration: CalibrationResult | None
    ok: np.ndarray
    levers: dict[str, np.ndarray]
    grid: TimeGrid
    run: Run
    simulated: np.ndarray  # (m,) indices of the runs in ``run``
    timings: dict[str, float] = field(default_factory=dict)  # seconds: calibrate_s, simulate_s

    @property
    def n(self) -> int:
        """Runs in the batch."""
        return self.params.n

    @property
    def reason(self) -> np.ndarray:
        """(n,) why a run could not be calibrated ('' when it could)."""
        if self.calibration is None:
            return np.full(self.n, "", dtype=object)
        return np.broadcast_to(self.calibration.reason, (self.n,)).copy()

    def lever_columns(self, idx: Any) -> dict[str, np.ndarray]:
        """(steps + 1, m) lever schedules of the simulated runs at positions ``idx`` of ``run``."""
        return {k: v[:, idx] if v.shape[1] > 1 else v for k, v in self.levers.items()}

    def calibration_row(self, j: int) -> CalibrationResult | None:
        """Run j's calibration as a result of one set (a shared solve gives its single set)."""
        res = self.calibration
        if res is None:
            return None
        k = j if res.ok.size > 1 else 0
        return CalibrationResult(
            params={f: (v[k : k + 1] if np.ndim(v) else v) for f, v in res.params.items()},
            ok=res.ok[k : k + 1], reason=res.reason[k : k + 1], target_names=res.target_names,
            targets=res.targets[k : k + 1], achieved=res.achieved[k : k + 1], iterations=res.iterations,
        )


def require_solved(res: CalibrationResult) -> None:
    """InputError naming the first set of ``res`` that has no solution inside the bounds."""
    if not res.ok.all():
        i = int(np.flatnonzero(~res.ok)[0])
        raise InputError(f"calibration has no solution for this parameter set: {res.reason[i]}")


def calibrate_batch(cm: Compiled, batch: ParamBatch, dt: float, method: str, *, strict: bool = False,
                    workers: int | None = None) -> tuple[ParamBatch, CalibrationResult]:
    """Solve the free parameters of every run (baseline levers through the window; ``dt`` in years).

    A uniform batch is solved once and the solution shared. With ``strict``, a run without a
    solution is an :class:`InputError`. ``workers``: processes solving chunks of a large batch.
    """
    values = batch.as_dict()
    res = calibrate(cm, values, {k: values[k] for k in cm.model.levers}, dt, method, workers=workers)
    if strict:
        require_solved(res)
    free = {f.name: res.params[f.name] for f in cm.model.calibration.free}
    return batch.with_values(free), res


def simulate_batch(cm: Compiled, batch: ParamBatch, grid: TimeGrid, method: str, levers: Levers = LeverPlan(),
                   workers: int | None = None) -> tuple[dict[str, np.ndarray], Run]:
    """Lever schedules and one integration of every run of ``batch``."""
    lv = schedules(cm, grid, batch, levers)
    return lv, simulate(cm, batch.as_dict(), lv, grid, method, n=batch.n, workers=workers)


def run_batch(
    cm: Compiled,
    batch: ParamBatch,
    grid: TimeGrid,
    method: str,
    levers: Levers = LeverPlan(),
    *,
    calibrate: bool = True,
    strict: bool = False,
    only_ok: bool = False,
    fixed: Mapping[str, float] | None = None,
    workers: int | None = None,
    on_stage: Callable[[str, int], None] | None = None,
) -> BatchResult:
    """Calibrate (unless ``calibrate`` is false), schedule the levers and integrate every run of ``batch``.

    ``levers``: one :class:`LeverPlan` for all runs, one per run, or ready (steps + 1, n) schedules.
    ``fixed``: values set in every run after the calibration (not re-calibrated: ``recalibrate: false``).
    ``strict``: a run without a calibration solution is an InputError; ``only_ok``: integrate only the
    runs that were calibrated (``result.simulated`` lists them; an InputError when there are none).
    ``on_stage(stage, runs)`` is called before "calibrate" and "simulate" and at the end ("done"), e.g. for a
    progress bar; ``result.timings`` holds the seconds of each stage.
    Numpy's floating-point warnings are silenced: failures are detected from the results and reported.
    The pipeline depends only on the runs it is given, so a large design can be run chunk by chunk
    with the same results.
    """
    timings: dict[str, float] = {}
    with np.errstate(all="ignore"):
        res: CalibrationResult | None = None
        solved = batch
        if calibrate:
            _stage(on_stage, "calibrate", batch.n)
            t0 = time.perf_counter()
            solved, res = calibrate_batch(cm, batch, grid.dt, method, strict=strict, workers=workers)
            timings["calibrate_s"] = time.perf_counter() - t0
        if fixed:
            solved = solved.with_values({k: np.full(batch.n, float(v)) for k, v in fixed.items()})
        ok = np.ones(batch.n, bool) if res is None else np.broadcast_to(res.ok, (batch.n,)).copy()
        sim = np.arange(batch.n)
        sub, plan = solved, levers
        if only_ok and not ok.all():
            sim = np.flatnonzero(ok)
            if sim.size == 0:
                reason = "" if res is None else f"; first reason: {np.atleast_1d(res.reason)[0]}"
                raise InputError(f"no sample could be calibrated to {cm.model.calibration.end} ({batch.n} tried{reason})")
            sub = solved.take(sim)
            plan = _take_levers(levers, sim)
        _stage(on_stage, "simulate", sub.n)
        t0 = time.perf_counter()
        lv, run = simulate_batch(cm, sub, grid, method, plan, workers)
        timings["simulate_s"] = time.perf_counter() - t0
        _stage(on_stage, "done", sub.n)
    return BatchResult(solved, res, ok, lv, grid, run, sim, timings)


def _stage(on_stage: Callable[[str, int], None] | None, name: str, runs: int) -> None:
    if on_stage is not None:
        on_stage(name, runs)


def _take_levers(levers: Levers, idx: np.ndarray) -> Levers:
    """The lever plan of the runs ``idx``."""
    if isinstance(levers, LeverPlan):
        settings = {k: (np.asarray(v, float)[idx] if np.size(v) > 1 else v) for k, v in levers.settings.items()}
        return LeverPlan(levers.functions, levers.first_year, settings, levers.settings_from)
    if isinstance(levers, Mapping):
        return {k: v[:, idx] if v.shape[1] > 1 else v for k, v in levers.items()}
    plans = list(levers)
    return [plans[i] for i in idx]
