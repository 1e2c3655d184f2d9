"""Model validity tests (Sterman, Business Dynamics ch. 21; Barlas 1996): each returns table rows.

Structure tests: dimensional consistency, numbers without a home, provenance, declared feedback
loops. Behaviour tests: mass balance, dt and method convergence, reality checks (extreme
conditions declared in checks.yaml), calibration, reproduced figures, and reported comparisons
that never fail. :func:`run_checks` runs them all for a scenario, the simulations in a few batches.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import expressions as ex
from . import loops as lp
from . import units
from .batch import BatchResult, LeverPlan, ParamBatch
from .batch import run_batch as pipeline
from .calibrate import CalibrationResult
from .checkspec import CheckSpec, Expectation, Figure, RealityCheck, load_checks
from .compiler import Compiled, compile_model
from .engine import Run, TimeGrid, series_values
from .goals import evaluate
from .history import hindcast
from .model import Model, Parameter
from .scenario import Scenario, policy_start


@dataclass
class Row:
    """One line of the check table. ``passed`` is None for a reported figure that is not judged."""

    group: str
    name: str
    measured: str
    threshold: str
    passed: bool | None
    details: list[str] = field(default_factory=list)
    about: str = ""  # what the row tests, for a legend under the table


def _pct(x: float) -> str:
    return f"{100 * x:.3g} %"


# ------------------------------------------------------------------------------------ structure


def dimensional(model: Model) -> Row:
    """Every unit string reads, every equation's units combine, flows are their stocks' units per year."""
    rep = units.check_model(model)
    n = len(rep.issues)
    return Row("structure", "dimensional consistency",
               f"{n} error{'s' * (n != 1)} in {rep.equations} equations, {rep.declared} unit strings", "0 errors",
               n == 0, [str(i) for i in rep.issues])


def literal_numbers(model: Model) -> Row:
    """Equations contain no numbers other than 0 and 1."""
    issues = units.literals(model)
    n = len(issues)
    return Row("structure", "numbers in equations", f"{n} literal{'s' * (n != 1)} other than 0, 1", "0", n == 0,
               [str(i) for i in issues])


def provenance(model: Model) -> Row:
    """Every parameter has units and a provenance; assumptions a range or fixed; calibrated ones are solved."""
    pfile = str(model.directory / "parameters.yaml")
    free = {f.name for f in model.calibration.free}
    problems = []
    for p in model.params.values():
        where = f"{pfile}: {'levers' if p.is_lever else 'parameters'}.{p.name}"
        if not p.units.strip():
            problems.append(f"{where}: no units")
        need = {"seed": p.quote, "derived": p.formula, "external": p.source}.get(p.provenance, "x")
        if not need:
            problems.append(f"{where}: provenance {p.provenance} without its quote/formula/source")
        if p.provenance == "assumption" and p.range is None and not p.fixed:
            problems.append(f"{where}: an assumption needs a range (or fixed: true)")
        if p.provenance == "calibrated" and p.name not in free:
            problems.append(f"{where}: marked calibrated but not a free parameter in calibration.yaml")
        if p.provenance != "calibrated" and p.name in free:
            problems.append(f"{where}: solved by calibration.yaml but its provenance is {p.provenance}")
        if p.is_lever and p.policy_range is None:
            problems.append(f"{where}: a lever needs a policy_range")
    n = len(problems)
    return Row("structure", "provenance", f"{n} gap{'s' * (n != 1)} in {len(model.params)} parameters", "0", n == 0,
               problems)


def declared_loops(spec: CheckSpec, found: Sequence[lp.Loop]) -> Row:
    """Each loop declared in checks.yaml is in the equation graph with its declared polarity."""
    problems = []
    named = {lo.name: lo for lo in found if lo.name}
    for d in spec.loops:
        lo = named.get(d.name)
        if lo is None:
            problems.append(f"{d.name}: no loop {'→'.join(d.cycle or d.through or [])} in the equation graph")
        elif lo.polarity != d.polarity:
            problems.append(f"{d.name}: polarity {lo.polarity}, declared {d.polarity}: {lo.path()}")
    ok = len(spec.loops) - len(problems)
    return Row("structure", "declared feedback loops",
               f"{ok}/{len(spec.loops)} found with their polarity ({len(found)} loops in all)",
               "all", not problems, problems)


# ------------------------------------------------------------------------------------ behaviour


def mass_balance(cm: Compiled, runs: Sequence[tuple[str, Run]], tol: float) -> Row:
    """Stock change over the run = integrated inflows - outflows, relative to the flows' throughput."""
    worst, where = 0.0, ""
    for label, run in runs:
        for name in cm.stocks:
            st = cm.model.stocks[name]
            s = run.get(name)
            ins = sum((run.get(f)[1:] for f in st.inflows), np.zeros_like(s[1:]))
            outs = sum((run.get(f)[1:] for f in st.outflows), np.zeros_like(s[1:]))
            change = s[-1] - s[0]
            net = (ins - outs).sum(axis=0)
            scale = np.maximum(np.abs(change), (ins + outs).sum(axis=0))
            err = np.where(scale > 0, np.abs(change - net) / np.where(scale > 0, scale, 1.0),
                           np.where(change == net, 0.0, np.inf))
            err = np.where(np.isfinite(err), err, np.inf)
            e = float(err.max())
            if e > worst or not where:
                worst, where = e, f"{name}, {label}"
    return Row("behaviour", "mass balance", f"max rel. error {worst:.1e} ({where})", f"<= {tol:g}", worst <= tol,
               [] if worst <= tol else [f"{where}: stock change and integrated net flow differ by {worst:.3g} "
                                        "of the throughput"])


def goal_values(model: Model, run: Run) -> dict[str, float]:
    """Goal indicators in the goal year (first run of the batch)."""
    return {g: float(st.value[0]) for g, st in evaluate(model, run).items()}


def convergence(name: str, ref: dict[str, float], other: dict[str, float], tol: float, what: str) -> Row:
    """Largest relative difference between two sets of goal indicators."""
    worst, at = 0.0, ""
    for g, v in ref.items():
        scale = abs(v) if v != 0 else 1.0
        d = abs(other[g] - v) / scale
        if not np.isfinite(d):
            d = np.inf
        if d >= worst:
            worst, at = d, g
    details = [] if worst < tol else [f"{at}: {ref[at]:.6g} vs {other[at]:.6g} ({what})"]
    return Row("behaviour", name, f"max {_pct(worst)} ({at})", f"< {_pct(tol)}", worst < tol, details)


def calibration_row(model: Model, res: CalibrationResult, tol: float) -> Row:
    """Every target reproduced within ``tol`` with every free parameter inside its bounds."""
    r = np.abs(res.residuals[0])
    j = int(np.nanargmax(r)) if np.isfinite(r).any() else 0
    worst = float(r[j]) if np.isfinite(r).all() else np.inf
    ok = bool(res.ok[0]) and worst <= tol
    details = []
    if not res.ok[0]:
        details.append(f"no solution inside the bounds: {res.reason[0]}")
    if worst > tol:
        details.append(f"{res.target_names[j]}: relative residual {worst:.3g}")
    cal = model.calibration
    bounds = "" if res.ok[0] else "; outside bounds"
    n = len(cal.targets)
    return Row("behaviour", f"calibration {cal.end} ({n} target{'s' * (n != 1)})",
               f"max rel. residual {worst:.1e} ({res.target_names[j]}){bounds}", f"<= {tol:g}, in bounds", ok, details)


def figure_value(cm: Compiled, fig: Figure, run: Run) -> float:
    """The model's value of a behaviour figure in ``run`` (first run)."""
    year = fig.year
    assert year is not None, fig.name  # the checks loader requires a year for every kind but rate_at_start
    if fig.kind == "variable":
        return float(run.at(fig.variable, year)[0])
    if fig.kind == "change_of":
        return float(run.at(fig.variable, year)[0] - run.at(fig.variable, year - 1)[0])
    st = cm.model.stocks[fig.variable]
    return float(sum(run.at(f, year)[0] for f in st.inflows))


def figure_label(cm: Compiled, fig: Figure) -> str:
    """A figure's label: its description, e.g. 'HTE change <year>'."""
    if fig.en:
        return fig.en
    what = {"variable": "", "change_of": "change of ", "inflows_of": "inflows of ", "rate_at_start": "rate at t0 of "}
    return f"{what[fig.kind]}{fig.variable}{' ' + str(fig.year) if fig.year else ''}"


def behaviour_row(cm: Compiled, fig: Figure, value: float, target: float, tol: float) -> Row:
    """A reproduced figure: model value vs the observed one."""
    err = abs(value - target) / (abs(target) if target else 1.0)
    ok = bool(err <= tol)
    return Row("behaviour", figure_label(cm, fig), f"{value:,.6g} vs {target:,.6g} ({fig.value_name})",
               f"rel. <= {tol:g}", ok, [] if ok else [f"relative error {err:.3g}"])


def comparison_row(cm: Compiled, fig: Figure, value: float, target: float) -> Row:
    """A reported comparison: model vs reported figure with the deviation; never fails."""
    dev = (value - target) / target if target else np.nan
    note = [fig.note] if fig.note else []
    return Row("reported", figure_label(cm, fig), f"model {value:,.4g} vs reported {target:,.4g}: {dev:+.1%}",
               "(reported only)", None, [], note[0] if note else "")


def rates_at_start(cm: Compiled, params: dict[str, Any], levers: dict[str, np.ndarray], grid: TimeGrid) -> dict:
    """Flows and auxiliaries at t0 (instantaneous rates), from the compiled model's own functions."""
    sr_step, _ = series_values(cm, grid, levers)
    s0, frozen = cm.init(params, levers, sr_step, float(grid.start))
    n = max([np.size(v) for v in s0.values()] + [1])
    S = np.empty((len(cm.stocks), n))
    for i, s in enumerate(cm.stocks):
        S[i] = s0[s]
    F = np.empty((len(cm.rates), n))
    D = np.empty((len(cm.stocks), n))
    A = np.empty((len(cm.aux), n))
    _, rates_rec = cm.build(params, levers, sr_step, frozen, grid.dt)
    rates_rec(0, float(grid.start), S, F, D, A)
    out = {r: F[i] for i, r in enumerate(cm.rates)}
    out.update({a: A[i] for i, a in enumerate(cm.aux)})
    return out


# --------------------------------------------------------------------------------- reality checks


def forced_model(model: Model, names: Sequence[str]) -> Model:
    """A copy of ``model`` in which each variable in ``names`` can be forced, per run, from a given time.

    ``x`` becomes ``if_then_else(xforce_on_x * (time >= xforce_from_x) > 0, xforce_value_x, x)``; the
    three new constants are parameters, so forced and free runs share one batch (Vensim's Reality
    Check overrides a variable the same way).
    """
    m = copy.copy(model)
    m.flows, m.aux, m.params = dict(model.flows), dict(model.aux), dict(model.params)
    for name in names:
        group = m.flows if name in m.flows else m.aux
        var = group[name]
        on, start, value = (f"xforce_{k}_{name}" for k in ("on", "from", "value"))
        # the compiled tree (smooth/delay calls already replaced by their hidden structure)
        text = f"if_then_else({on} * (time >= {start}) > 0, {value}, ({ast.unparse(var.expr.tree)}))"
        group[name] = dataclasses.replace(var, expr=ex.parse(text, name))
        for p in (on, start, value):
            m.params[p] = Parameter(p, 0.0, var.units if p == value else "dmnl", "assumption", fixed=True)
    return m


@dataclass
class Case:
    """One run of the reality-check batch."""

    check: RealityCheck
    label: str
    levers: dict[str, float] = field(default_factory=dict)
    parameters: dict[str, float] = field(default_factory=dict)


def _lever_value(p: Parameter, word: float | str) -> float:
    if not isinstance(word, str):
        return float(word)
    lo, hi = p.policy_range or (p.value, p.value)
    return {"baseline": p.value, "policy_low": lo, "policy_high": hi, "limit_low": p.limits[0],
            "limit_high": p.limits[1]}[word]


def cases(model: Model, spec: CheckSpec) -> list[Case]:
    """Expand the reality checks into runs (``each_lever`` gives one run per lever)."""
    out = []
    for rc in spec.reality:
        levers = {k: _lever_value(model.levers[k], v) for k, v in rc.levers.items()}
        params = {}
        for k, v in rc.parameters.items():
            p = model.params[k]
            params[k] = float(v) if not isinstance(v, str) else p.range[0 if v == "low" else 1]  # type: ignore[index]
        if rc.each_lever is None:
            out.append(Case(rc, rc.name, levers, params))
            continue
        for name, p in model.levers.items():
            if "factor" in rc.each_lever:
                f = rc.each_lever["factor"]
                base = p.value if p.value != 0 else (p.policy_range or (0.0, 0.0))[1]
                v = float(np.clip(f * base, *p.limits))
                label = f"{name} x{f:g}" + (" (of its policy maximum)" if p.value == 0 else "")
            else:
                v = _lever_value(p, rc.each_lever["at"])
                label = f"{name} at {rc.each_lever['at']} ({v:g})"
            out.append(Case(rc, label, {**levers, name: v}, params))
    return out


def _series(cm: Compiled, run: Run, name: str, j: int) -> tuple[np.ndarray, np.ndarray]:
    """(years, values) of ``name`` in run j, without the undefined first year of annual totals."""
    y = run.get(name)[:, j]
    years = run.years
    if name in cm.rates or name in cm.model.annual:
        return years[1:], y[1:]
    return years, y


def expectation_holds(cm: Compiled, e: Expectation, run: Run, j: int, start_default: int) -> str:
    """'' when ``e`` holds in run j, else a sentence saying where it fails."""
    m = cm.model
    names = list(m.stocks) if e.variables == "stocks" else \
        [*m.stocks, *m.flows, *m.aux, *m.annual] if e.variables == "all" else list(e.variables)
    for name in names:
        years, y = _series(cm, run, name, j)
        if e.test == "finite":
            bad = ~np.isfinite(y)
            if bad.any():
                return f"{name} is {y[bad][0]} in {years[bad][0]}"
            continue
        if not np.isfinite(y).all():
            return f"{name} is not finite in {years[~np.isfinite(y)][0]}"
        if e.test == "nonnegative":
            if (y < 0).any():
                k = int(np.argmax(y < 0))
                return f"{name} = {y[k]:.4g} < 0 in {years[k]}"
        elif e.test == "between":
            bounds = e.bounds
            assert bounds is not None, name  # the checks loader requires bounds for 'between'
            lo, hi = (_bound_values(cm, run, b, name, j) for b in bounds)
            outside = np.flatnonzero((y < lo) | (y > hi))
            if outside.size:
                i = int(outside[0])
                return (f"{name} = {y[i]:.6g} outside [{_show(bounds[0], lo, i)}, "
                        f"{_show(bounds[1], hi, i)}] in {years[i]}")
        else:
            start = e.start if e.start is not None else start_default
            sel = years >= start
            ys, yr = y[sel], years[sel]
            d = np.diff(ys)
            bad = d >= 0 if e.test == "decreasing" else d <= 0
            if bad.any():
                k = int(np.argmax(bad))
                verb = "did not fall" if e.test == "decreasing" else "did not rise"
                return f"{name} {verb}: {ys[k]:.6g} ({yr[k]}) -> {ys[k + 1]:.6g} ({yr[k + 1]})"
    return ""


def _bound_values(cm: Compiled, run: Run, bound: float | str, name: str, j: int) -> np.ndarray:
    """A bound as values aligned with ``name``'s years (a number, or another variable's values)."""
    mine, _ = _series(cm, run, name, j)
    if isinstance(bound, str):
        years, y = _series(cm, run, bound, j)
        return np.interp(mine, years, y)
    return np.full(mine.size, float(bound))


def _show(bound: float | str, values: np.ndarray, i: int) -> str:
    return f"{bound} = {values[i]:.6g}" if isinstance(bound, str) else f"{bound:g}"


def reality_rows(cm: Compiled, run: Run, batch: Sequence[Case], start_default: int, lang: str = "en") -> list[Row]:
    """One row per reality check: how many of its runs behave as expected."""
    rows = []
    for rc in dict.fromkeys(c.check.name for c in batch):
        idx = [j for j, c in enumerate(batch) if c.check.name == rc]
        check = batch[idx[0]].check
        fails, failing = [], set()
        for j in idx:
            for e in check.expect:
                msg = expectation_holds(cm, e, run, j, start_default)
                if msg:
                    failing.add(j)
                    fails.append(f"{batch[j].label}: {msg}" if len(idx) > 1 else msg)
        n_ok = len(idx) - len(failing)
        if len(idx) > 1:
            measured = f"{n_ok}/{len(idx)} runs as expected"
        else:
            measured = "as expected" if not fails else f"{len(fails)} expectation{'s' * (len(fails) != 1)} failed"
        rows.append(Row("reality check", f"reality: {rc}", measured, "as declared", not fails, fails,
                        f"{check.label(lang)}. Expected: {_expect_text(check)}"))
    return rows


def _expect_text(rc: RealityCheck) -> str:
    parts = []
    for e in rc.expect:
        what = e.variables if isinstance(e.variables, str) else ", ".join(e.variables)
        if e.test == "between":
            lo, hi = e.bounds  # type: ignore[misc]
            parts.append(f"{what} in [{lo if isinstance(lo, str) else format(lo, 'g')}, "
                         f"{hi if isinstance(hi, str) else format(hi, 'g')}]")
        else:
            parts.append(f"{what} {e.test}")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------- batches


def run_batch(
    cm: Compiled,
    sc: Scenario,
    overrides: Sequence[dict[str, float]],
    lever_settings: Sequence[dict[str, float]],
    dt: float,
    method: str,
) -> BatchResult:
    """Calibrate and integrate one run per entry of ``overrides`` under scenario ``sc`` (:func:`sdsim.batch.run_batch`).

    ``lever_settings`` are constants that replace the scenario's levers from the end of the
    calibration window (MODEL_SPEC §3); overrides are parameter values (recalibrated unless the
    scenario says ``recalibrate: false``, in which case they apply after the calibration).
    """
    cm = cm.with_tables(sc.tables)  # the scenario's graphical functions, for calibration and runs
    cal = cm.model.calibration
    before = [{**sc.parameters, **o} for o in overrides] if sc.recalibrate else [dict(o) for o in overrides]
    grid = TimeGrid(cal.start, sc.end, dt)
    # reality-check settings act from the end of the calibration window, the scenario's levers from its policy start
    plans = [LeverPlan(sc.levers, policy_start(sc, cm.model), settings, settings_from=cal.end) for settings in lever_settings]
    fixed = {} if sc.recalibrate else sc.parameters
    return pipeline(cm, ParamBatch.from_overrides(cm, before), grid, method, plans, fixed=fixed)


def baseline_scenario(model: Model) -> Scenario:
    """The model's own values, no lever changes, to the goal year."""
    year = max((g.year for g in model.goals.values()), default=model.calibration.end + 1)
    return Scenario(name="model", file="", start=model.calibration.start, end=year, dt=model.dt)


# ------------------------------------------------------------------------------------- all checks


def loop_samples(cm: Compiled, sc: Scenario, spec: CheckSpec | None = None
                 ) -> tuple[list[lp.Loop], dict[str, Any]]:
    """Loops of the model with link signs from the scenario's run (levers at their policy maximum as
    fallback for links inactive there), and the scenario run's calibrated parameters."""
    high = {k: (p.policy_range or (p.value, p.value))[1] for k, p in cm.model.levers.items()}
    b = run_batch(cm, sc, [{}, {}], [{}, high], sc.dt, sc.method)
    base = lp.states(cm, b.params.row(0).as_dict(), b.lever_columns([0]), b.grid, b.run.select([0]))
    alt = lp.states(cm, b.params.row(1).as_dict(), b.lever_columns([1]), b.grid, b.run.select([1]))
    return lp.find_loops(cm, [base], [alt], spec.loops if spec else ()), b.params.row(0).as_dict()


def run_checks(model: Model, cm: Compiled, sc: Scenario | None = None, lang: str = "en") -> list[Row]:
    """Every check of the table, for scenario ``sc`` (default: the model's own values)."""
    sc = sc or baseline_scenario(model)
    spec = load_checks(model)
    tol = spec.tolerances
    rows = [dimensional(model), literal_numbers(model), provenance(model)]
    found, _ = loop_samples(cm, sc, spec)
    rows.append(declared_loops(spec, found))

    # the scenario at its dt, at dt halved `dt_halvings` times, and with the other integration method
    other = "rk4" if sc.method == "euler" else "euler"
    variants = [(sc.dt / 2**h, sc.method) for h in range(spec.dt_halvings + 1)] + [(sc.dt, other)]
    batches = {v: run_batch(cm, sc, [{}], [{}], *v) for v in variants}
    ref = batches[variants[0]]
    rows.append(mass_balance(cm, [(f"dt 1/{round(1 / d)} {m}", b.run) for (d, m), b in batches.items()],
                             tol["mass_balance"]))
    vals = {v: goal_values(model, b.run) for v, b in batches.items()}
    fine = variants[spec.dt_halvings]
    rows.append(convergence(f"dt convergence (dt/{2**spec.dt_halvings}, re-calibrated)", vals[fine],
                            vals[variants[0]], tol["dt_convergence"],
                            f"dt 1/{round(1 / fine[0])} vs 1/{round(1 / sc.dt)}"))
    rows.append(convergence(f"{sc.method} vs {other} (dt 1/{round(1 / sc.dt)})", vals[variants[-1]], vals[variants[0]],
                            tol["method_agreement"], f"{other} vs {sc.method}"))

    batch = cases(model, spec)
    forced = sorted({v for rc in spec.reality for v in rc.force})
    cmf = compile_model(forced_model(model, forced)) if forced else cm
    overrides, lever_sets = [], []
    for c in batch:
        o = dict(c.parameters)
        for v in forced:
            on = v in c.check.force
            o.update({f"xforce_on_{v}": float(on), f"xforce_from_{v}": float(model.calibration.end),
                      f"xforce_value_{v}": c.check.force.get(v, 0.0)})
        overrides.append(o)
        lever_sets.append(c.levers)
    if batch:
        rb = run_batch(cmf, sc, overrides, lever_sets, sc.dt, sc.method)
        rows += reality_rows(cmf, rb.run, batch, model.calibration.end, lang)

    if model.calibration.targets and ref.calibration is not None:  # a model without calibration has no calibration row
        rows.append(calibration_row(model, ref.calibration, tol["calibration"]))
    values = model.base_values()
    values.update(sc.parameters)
    for fig in spec.behaviour:
        rows.append(behaviour_row(cm, fig, figure_value(cm, fig, ref.run), values[fig.value_name], tol["behaviour"]))
    if spec.comparisons:
        start = rates_at_start(cm, ref.params.row(0).as_dict(), ref.levers, ref.grid)
        for fig in spec.comparisons:
            got = float(start[fig.variable][0]) if fig.kind == "rate_at_start" else figure_value(cm, fig, ref.run)
            rows.append(comparison_row(cm, fig, got, values[fig.value_name]))
    if model.history is not None:
        rows += hindcast_rows(model, ref.run)
    if spec.corners is not None:
        from .corners import corner_rows  # scipy.stats only when corners are checked

        rows += corner_rows(cm, spec.corners, sc, Row, lang)
    return rows


def hindcast_rows(model: Model, run: Run) -> list[Row]:
    """Each observation of history.yaml beside the model's value (information, never judged)."""
    rows = []
    for h in hindcast(model.history, run):
        r = h.row
        when = f"t = {r.t:g}" if r.t is not None else f"({r.period[0]:g}, {r.period[1]:g}]"  # type: ignore[index]
        lo, hi = r.bounds  # type: ignore[misc]
        inside = {True: "inside", False: "outside", None: "not comparable"}[h.inside]
        note = f", {h.note}" if h.note else ""
        rows.append(Row("hindcast", f"hindcast: {r.variable} {when}",
                        f"model {h.model:,.4g} vs {r.value:,.4g} ({h.difference:+.1%}), {inside}{note}",
                        f"[{lo:,.4g}, {hi:,.4g}]", None, [], f"{r.id} ({r.scope} scope): {r.source}"))
    return rows


def all_passed(rows: Sequence[Row]) -> bool:
    """True when no judged row failed."""
    return all(r.passed is not False for r in rows)
