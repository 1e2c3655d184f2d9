"""Run scenarios: each group of scenarios (same dt, method, tables) is one batch of :mod:`sdsim.batch`.

The dict-form helpers (``parameter_batch``, ``calibrated_params``, ``scenario_levers``) remain for callers that
hold parameters as plain dicts; they are thin forms of the typed pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .batch import BatchResult, LeverPlan, ParamBatch, calibrate_batch, require_solved, simulate_batch
from .calibrate import CalibrationResult, calibrate
from .compiler import Compiled
from .engine import Run, TimeGrid
from .errors import InputError, ModelError
from .scenario import Scenario, policy_start
from .timefuncs import TimeFunction


@dataclass
class ScenarioRun:
    """One scenario's result: its yearly records (n = 1) and the parameters it ran with."""

    scenario: Scenario
    run: Run
    params: dict[str, float]
    calibration: CalibrationResult | None  # None when recalibrate is false


def parameter_batch(cm: Compiled, overrides: list[dict[str, float]]) -> dict[str, Any]:
    """Baseline values of every parameter and fact, with per-run overrides as (n,) arrays (engine form of
    :meth:`sdsim.batch.ParamBatch.from_overrides`)."""
    return ParamBatch.from_overrides(cm, overrides).as_dict()


def lever_baseline(cm: Compiled, params: dict[str, Any]) -> dict[str, Any]:
    """Baseline lever values (numbers or (n,) arrays) taken from ``params``."""
    return {k: params[k] for k in cm.model.levers}


def calibrated_params(
    cm: Compiled, params: dict[str, Any], dt: float, method: str, strict: bool = True, workers: int | None = None
) -> tuple[dict[str, Any], CalibrationResult]:
    """Solve the free parameters; with ``strict``, a set with no solution is an InputError (dict form of
    :func:`sdsim.batch.calibrate_batch`).

    ``workers``: processes solving chunks of a large batch (default: every available core).
    """
    res = calibrate(cm, params, lever_baseline(cm, params), dt, method, workers=workers)
    if strict:
        require_solved(res)
    return res.params, res


def scenario_levers(
    cm: Compiled,
    grid: TimeGrid,
    params: dict[str, Any],
    functions: dict[str, TimeFunction] | None = None,
    settings: dict[str, np.ndarray] | None = None,
    first_year: int | None = None,
) -> dict[str, np.ndarray]:
    """(steps + 1, n) lever schedules of a batch, as every scenario run uses them (dict form of
    :meth:`sdsim.batch.LeverPlan.schedules`).

    Baseline lever values come from ``params`` (numbers or (n,) arrays) and hold through the
    calibration window and the years of history; a scenario's time ``functions`` act from calendar
    year ``first_year`` (default: the model's policy start, the first year after its history;
    docs/spec.md §3). ``settings`` maps levers to (n,) constant values that replace the scenario's
    setting from then on (policy sensitivity); a NaN entry keeps the scenario's setting for that run.
    """
    return LeverPlan(functions or {}, first_year, settings or {}).schedules(cm, grid, params)


def table_key(sc: Scenario) -> tuple:
    """The scenario's table overrides as a hashable key (scenarios with equal keys share a compiled model)."""
    return tuple(sorted((k, tuple(v)) for k, v in sc.tables.items()))


def run_scenarios(cm: Compiled, scenarios: list[Scenario]) -> list[ScenarioRun]:
    """Run scenarios, batched by (dt, method, table overrides): one calibration and one integration per batch.

    A scenario's ``tables`` replace graphical functions' y values for its calibration and its run.
    """
    out: dict[int, ScenarioRun] = {}
    groups: dict[tuple[float, str, tuple], list[int]] = {}
    for i, sc in enumerate(scenarios):
        groups.setdefault((sc.dt, sc.method, table_key(sc)), []).append(i)
    for (dt, method, _), idx in groups.items():
        group = [scenarios[i] for i in idx]
        for j, r in enumerate(_run_group(cm, group, dt, method)):
            out[idx[j]] = r
    return [out[i] for i in range(len(scenarios))]


def _run_group(base_cm: Compiled, group: list[Scenario], dt: float, method: str) -> list[ScenarioRun]:
    """Scenarios sharing dt, method and table overrides: one calibration, one integration."""
    cm = base_cm.with_tables(group[0].tables)
    cal = cm.model.calibration
    batch = ParamBatch.from_overrides(cm, [sc.parameters if sc.recalibrate else {} for sc in group])
    with np.errstate(all="ignore"):  # failures are detected and reported, not printed by numpy
        solved, res = calibrate_batch(cm, batch, dt, method)
    for j in map(int, np.flatnonzero(~res.ok)):
        sc = group[j if res.ok.size > 1 else 0]
        if not sc.parameters or not _model_calibrates(cm, dt, method):
            # the model's own values fail too: a model error, not the scenario's parameters
            raise ModelError(f"calibration to {cal.end} has no solution with the model's own values "
                             f"({res.reason[j]}); check the model's equations (e.g. log(0), division by zero) "
                             "and calibration.yaml", str(cm.model.directory), "calibration")
        raise InputError(f"calibration to {cal.end} has no solution under this scenario's parameters "
                         f"({res.reason[j]}){_hint(sc)}", sc.file or None, "parameters")
    fixed_runs = [j for j, sc in enumerate(group) if not sc.recalibrate]
    if fixed_runs:
        # recalibrate: false -> keep the calibration of the model's own values, then override
        own, _ = calibrate_batch(base_cm, ParamBatch.from_overrides(cm, [{}]), dt, method, strict=True)
        for j in fixed_runs:
            solved = solved.with_run_values(j, {f.name: own.value(f.name, 0) for f in cal.free})
            solved = solved.with_run_values(j, group[j].parameters)
    grid = TimeGrid(cal.start, max(sc.end for sc in group), dt)
    plans = [LeverPlan(sc.levers, policy_start(sc, cm.model)) for sc in group]
    with np.errstate(all="ignore"):
        _, run = simulate_batch(cm, solved, grid, method, plans)
    for j, sc in enumerate(group):
        check_stable(cm, run, j, sc)
    result = BatchResult(solved, res, np.broadcast_to(res.ok, (len(group),)), {}, grid, run, np.arange(len(group)))
    out = []
    for j, sc in enumerate(group):
        one = trim(run.select([j]), sc.end - cal.start + 1)
        out.append(ScenarioRun(sc, one, solved.row_values(j), result.calibration_row(j) if sc.recalibrate else None))
    return out


def _model_calibrates(cm: Compiled, dt: float, method: str) -> bool:
    """Whether the model's own parameter values can be calibrated."""
    with np.errstate(all="ignore"):
        _, res = calibrate_batch(cm, ParamBatch.from_overrides(cm, [{}]), dt, method)
    return bool(np.all(res.ok))


def _hint(sc: Scenario) -> str:
    """The scenario's out-of-range settings, the likely cause of a failure."""
    return f"; check: {'; '.join(sc.warnings)}" if sc.warnings else ""


def check_stable(cm: Compiled, run: Run, j: int, sc: Scenario) -> None:
    """InputError when run j left the numerically meaningful range (a stock negative beyond rounding, relative to its
    calibrated size, or not finite).

    With Euler a stock goes negative when an outflow rate times dt exceeds 1, e.g. a lever set to
    150 where 1.5 was meant; the message names the stock, the year and the scenario's unusual values.
    """
    stocks = run.stocks[:, :, j]
    start = stocks[: cm.model.calibration.end - cm.model.calibration.start + 1]  # calibrated, sane
    scale = np.nanmax(np.abs(np.where(np.isfinite(start), start, 0.0)), axis=0) + 1.0
    bad = ~np.isfinite(stocks) | (stocks < -1e-6 * scale)
    if not bad.any():
        return
    y, i = np.argwhere(bad)[0]
    if not sc.levers and not sc.parameters and not sc.overrides:
        raise ModelError(
            f"the model's own values give {cm.stocks[i]} = {stocks[y, i]:.4g} at the end of {run.years[y]} "
            "(not finite or negative); check the model's equations (e.g. log(0), division by zero)",
            str(cm.model.directory), f"stocks.{cm.stocks[i]}")
    raise InputError(
        f"the run is numerically unstable: {cm.stocks[i]} = {stocks[y, i]:.4g} at the end of {run.years[y]} "
        f"(a flow drains a stock faster than one step of dt = 1/{round(1 / sc.dt)} allows; use plausible lever "
        f"and parameter values or a smaller dt){_hint(sc)}", sc.file or None,
    )


def trim(run: Run, n_years: int) -> Run:
    """The first ``n_years`` years of ``run``."""
    return Run(
        years=run.years[:n_years], names=run.names, stocks=run.stocks[:n_years], rates=run.rates[:n_years],
        aux=run.aux[:n_years], annual={k: v[:n_years] for k, v in run.annual.items()},
        series={k: v[:n_years] for k, v in run.series.items()},
    )
