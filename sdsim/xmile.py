"""XMILE 1.0 export of a compiled model with one scenario's values.

The file holds the model as Stella, Vensim and PySD read it: stocks with their inflows and
outflows, flows, auxiliaries (graphical functions attached to auxiliaries), units, documentation
and sim specs (start, stop, dt, method). Every parameter is written with the value the scenario
runs with, the calibrated free parameters included, so the file reproduces this engine's run.

The engine's semantics are mapped exactly (PySD's Euler agrees to rounding):

* levers are held constant within a step (sampled at t_k); a scenario's time function acts from
  ``t >= active_from`` (the end of the calibration window), the lever's baseline value before.
  Constants and steps become ``IF TIME >= ... THEN ... ELSE ...``; pulses add their size during
  [Y-1, Y); tables and ramps become a graphical function of TIME (``<lever>_schedule``, points at
  Y - 0.5, linear between, flat outside);
* ``step(h, s)`` becomes ``STEP(h, s)`` when ``s`` is a constant on the dt grid (where XMILE's,
  Vensim's and PySD's conventions all agree with ``h once t >= s``), otherwise an IF THEN ELSE;
  ``ramp`` and ``pulse`` become explicit MIN/MAX and IF THEN ELSE expressions of TIME;
* ``initial(x)`` becomes ``INIT(x)``; ``log`` becomes ``LN``; ``**`` becomes ``^``;
* a graphical function (``tables:``) becomes a named ``<gf>`` (continuous: linear between points,
  flat outside) and ``lookup(T, x)`` the call ``T(x)``; a table with a scale s (``y_scale_range``)
  is called as ``1 + s * (T(x) - 1)`` with s written as a constant;
* smooth/smooth3/delay1/delay3 are written as the explicit hidden stocks and flows they compile to
  (:mod:`stockfns`), so any tool integrates them like the rest; ``delay_fixed(x, T, x0)`` becomes
  ``DELAY(x, T, x0)``, XMILE's pipeline delay (PySD's DELAY FIXED: the value of x T earlier, x0
  before);
* a flow that drains (or fills) more than one stock is written once per stock, the copies
  (``<flow>_<stock>``) equal to the original, because an XMILE flow has one source and one sink;
* an annual series (GDP) becomes a step function of TIME (nested IF THEN ELSE, exact in every
  tool; PySD ignores a graphical function's ``discrete`` type): the value of the calendar year in
  progress, t in [Y-1, Y). Annual outputs (integrals over a calendar year divided by a series,
  e.g. R&D intensity) have no XMILE form without DT; they are left out and listed in
  :attr:`XmileExport.notes`.

Non-negativity is switched off for every stock and flow (``<non_negative>false</non_negative>``),
as in the engine.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from . import __version__
from . import expressions as ex
from .compiler import Compiled
from .engine import TimeGrid, lever_schedules, series_values
from .errors import ModelError
from .model import Model
from .runner import run_scenarios
from .scenario import Scenario, policy_start
from .timefuncs import TimeFunction

XMILE_NS = "http://docs.oasis-open.org/xmile/ns/XMILE/v1.0"
METHOD_NAMES = {"euler": "Euler", "rk4": "RK4"}
#: XMILE built-in names a model name must not shadow (compared case-insensitively).
RESERVED = {
    "time", "dt", "starttime", "stoptime", "pi", "inf", "nan", "e", "if", "then", "else", "and", "or",
    "not", "mod", "init", "step", "ramp", "pulse", "min", "max", "exp", "ln", "log10", "sqrt", "abs",
    "int", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "safediv", "smth1", "smth3", "delay",
    "delay1", "delay3", "trend", "forcst", "random", "normal", "lookup", "previous", "self",
}

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "^"}
_PREC = {ast.Add: 2, ast.Sub: 2, ast.Mult: 3, ast.Div: 3, ast.Pow: 5}
_CMP = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "=", ast.NotEq: "<>"}
_ATOM = 9


def num(v: float) -> str:
    """Shortest text that reads back as exactly ``v`` (integers without a decimal point)."""
    v = float(v)
    if not np.isfinite(v):
        raise ModelError(f"cannot write the non-finite number {v!r} to XMILE")
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _wrap(text: str, prec: int, need: int) -> str:
    return f"({text})" if prec < need else text


class _Emitter:
    """Turns checked expression trees into XMILE equation text."""

    def __init__(self, consts: dict[str, float], grid: TimeGrid, scaled: set[str] | None = None) -> None:
        self.consts = consts
        self.grid = grid
        self.scaled = scaled or set()  # tables with a y-scale parameter

    def _const(self, node: ast.AST) -> float | None:
        """Value of a literal or a constant's name, else None."""
        if isinstance(node, ast.Constant):
            return float(node.value)  # type: ignore[arg-type]  # parse() admits int and float constants only
        if isinstance(node, ast.Name) and node.id in self.consts:
            return self.consts[node.id]
        return None

    def _on_grid(self, node: ast.AST) -> bool:
        v = self._const(node)
        if v is None:
            return False
        k = (v - self.grid.start) / self.grid.dt
        return bool(k == round(k))

    def text(self, expr: ex.Expr) -> str:
        """XMILE text of a whole equation (``initial(x)`` -> ``INIT(x)``)."""
        return self.emit(expr.tree)[0]

    def emit(self, node: ast.AST) -> tuple[str, int]:
        """(text, precedence) of ``node``; operands are parenthesised so evaluation order is kept."""
        if isinstance(node, ast.Constant):
            v = float(node.value)  # type: ignore[arg-type]  # parse() admits int and float constants only
            return (num(v), _ATOM) if v >= 0 else (f"({num(v)})", _ATOM)
        if isinstance(node, ast.Name):
            return ("TIME" if node.id == "time" else node.id), _ATOM
        if isinstance(node, ast.BinOp):
            op = type(node.op)
            p = _PREC[op]
            lt, lp = self.emit(node.left)
            rt, rp = self.emit(node.right)
            if op is ast.Pow:  # keep ^ unambiguous whatever a tool's associativity
                return f"{_wrap(lt, lp, _ATOM)} ^ {_wrap(rt, rp, _ATOM)}", p
            return f"{_wrap(lt, lp, p)} {_BINOPS[op]} {_wrap(rt, rp, p + 1)}", p
        if isinstance(node, ast.UnaryOp):
            t, p = self.emit(node.operand)
            sign = "-" if isinstance(node.op, ast.USub) else "+"
            return f"({sign}{_wrap(t, p, _ATOM)})", _ATOM
        if isinstance(node, ast.Compare):
            lt, lp = self.emit(node.left)
            rt, rp = self.emit(node.comparators[0])
            return f"{_wrap(lt, lp, 2)} {_CMP[type(node.ops[0])]} {_wrap(rt, rp, 2)}", 1
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        return self._call(node.func.id, node.args), _ATOM

    def _call(self, name: str, args: list[ast.expr]) -> str:
        if name == "lookup":
            table = args[0].id  # type: ignore[attr-defined]
            call = f"{table}({self.emit(args[1])[0]})"
            return f"(1 + {ex.table_scale_name(table)} * ({call} - 1))" if table in self.scaled else call
        a = [self.emit(x)[0] for x in args]
        if name in ("min", "max"):
            out = a[0]
            for b in a[1:]:
                out = f"{name.upper()}({out}, {b})"
            return out
        if name == "clip":
            return f"MIN(MAX({a[0]}, {a[1]}), {a[2]})"
        if name in ("abs", "exp", "sqrt"):
            return f"{name.upper()}({a[0]})"
        if name == "log":
            return f"LN({a[0]})"
        if name == "if_then_else":
            return f"(IF {a[0]} THEN {a[1]} ELSE {a[2]})"
        if name == "step":
            if self._on_grid(args[1]):
                return f"STEP({a[0]}, {a[1]})"
            return f"(IF TIME >= {a[1]} THEN {a[0]} ELSE 0)"
        if name == "ramp":
            # engine: slope * (min(max(t, start), end) - start), Vensim RAMP semantics
            return f"({_wrap(a[0], self.emit(args[0])[1], 3)} * (MIN(MAX(TIME, {a[1]}), {a[2]}) - {a[1]}))"
        if name == "pulse":
            return f"(IF TIME >= {a[0]} AND TIME < {a[0]} + {a[1]} THEN 1 ELSE 0)"
        if name == "initial":
            return f"INIT({a[0]})"
        raise ModelError(f"function {name}() has no XMILE form")  # pragma: no cover - parse() rejects others


@dataclass
class XmileExport:
    """An exported model: the XMILE text and what a reader should know about it."""

    text: str
    stocks: list[str]
    flows: list[str]  # flows written, copies included
    aux: list[str]  # auxiliaries written (constants, levers, schedules, series included)
    years: list[int]  # year ends start..stop
    notes: list[str] = field(default_factory=list)


def _comment(text: str) -> str:
    """An XML comment (``--`` is not allowed inside one)."""
    body = escape(text)
    while "--" in body:  # '---' -> '- --' would still hold '--'; repeat until none is left
        body = body.replace("--", "- -")
    return f"<!-- {body.rstrip('-')} -->"


def _doc(*parts: str) -> str:
    return " | ".join(p.strip() for p in parts if p and p.strip())


def _var(kind: str, name: str, eqn: str, units: str = "", doc: str = "", extra: str = "") -> str:
    lines = [f"      <{kind} name={quoteattr(name)}>", f"        <eqn>{escape(eqn)}</eqn>"]
    if extra:
        lines.append(extra)
    if units:
        lines.append(f"        <units>{escape(units)}</units>")
    if doc:
        lines.append(f"        <doc>{escape(doc)}</doc>")
    lines.append(f"      </{kind}>")
    return "\n".join(lines)


def _gf(xs: list[float], ys: list[float]) -> str:
    """A continuous graphical function: linear between points, flat outside (the engine's table)."""
    return (
        '        <gf type="continuous">\n'
        f"          <xpts>{','.join(num(x) for x in xs)}</xpts>\n"
        f"          <ypts>{','.join(num(y) for y in ys)}</ypts>\n"
        "        </gf>"
    )


def _stepwise(years: list[int], values: list[float]) -> str:
    """Year Y's value for t in [Y-1, Y), as nested IF THEN ELSE on TIME.

    A discrete graphical function would say the same, but PySD 3.14 interpolates every
    graphical function attached to an auxiliary linearly, whatever its type.
    """
    eqn = num(values[-1])
    for y, v in zip(reversed(years[:-1]), reversed(values[:-1]), strict=True):
        eqn = _ite(f"TIME < {num(y)}", num(v), eqn)
    return eqn


def _ite(cond: str, a: str, b: str) -> str:
    """``IF cond THEN a ELSE b`` (just ``a`` when both branches agree); nested IFs are parenthesised."""
    if a == b:
        return a
    a, b = (f"({x})" if x.startswith("IF ") else x for x in (a, b))
    return f"IF {cond} THEN {a} ELSE {b}"


def _lever_equation(name: str, fn: TimeFunction, base: float, active: float,
                    grid: TimeGrid) -> tuple[str, tuple[list[float], list[float]] | None]:
    """XMILE equation of a lever under a scenario time function, and its schedule table if any.

    Mirrors :meth:`TimeFunction.values` followed by ``np.where(t >= active, vals, base)``.
    """
    b = num(base)
    on = f"TIME >= {num(active)}"
    if fn.kind == "constant":
        return _ite(on, num(fn.value), b), None
    if fn.kind == "step":
        before = b if fn.from_value is None else num(fn.from_value)
        at = fn.at - 1  # calendar year Y starts at t = Y - 1
        if at <= active:  # already stepped when the lever becomes active
            return _ite(on, num(fn.to), b), None
        return _ite(f"TIME >= {num(at)}", num(fn.to), _ite(on, before, b)), None
    if fn.kind == "pulse":
        window = f"TIME >= {num(fn.at - 1)} AND TIME < {num(fn.at)}"
        pulse = f"{b} + (IF {window} THEN {num(fn.size)} ELSE 0)"
        if fn.at - 1 >= active:  # the pulse year starts after activation: one condition less
            return pulse, None
        return _ite(on, f"({pulse})", b), None
    xs = [float(y) - 0.5 for y, _ in fn.points]
    ys = [float(v) for _, v in fn.points]
    lo, hi = float(grid.start), float(grid.end)
    if xs[0] > lo:  # flat outside: explicit end points keep tools from warning about extrapolation
        xs.insert(0, lo)
        ys.insert(0, ys[0])
    if xs[-1] < hi:
        xs.append(hi)
        ys.append(ys[-1])
    return _ite(on, f"{name}_schedule", b), (xs, ys)


def _check_names(model: Model, extra: list[str]) -> None:
    seen: dict[str, str] = {}
    for n in [*model.variables, *model.params, *model.facts, *model.series, *extra]:
        key = n.lower()
        if key in RESERVED:
            raise ModelError(f"name '{n}' is an XMILE built-in; rename it to export the model")
        if key in seen and seen[key] != n:
            raise ModelError(f"names '{seen[key]}' and '{n}' differ only by case, which XMILE ignores")
        seen[key] = n


def _param_doc(model: Model, name: str, calibrated: set[str]) -> str:
    if name in model.params:
        p = model.params[name]
        prov = f"provenance: {p.provenance}"
        if name in calibrated:
            prov = f"calibrated by sdsim so the run reproduces {model.calibration.end} (calibration.yaml)"
        src = p.quote or p.formula or p.source
        rng = f"range [{num(p.range[0])}, {num(p.range[1])}]" if p.range and p.uncertain else ""
        return _doc(p.en, p.zh, p.note, prov, src, rng)
    f = model.facts[name]
    return _doc(f.en, f.zh, f.note, f"observed ({f.provenance})", f.quote or f.formula or f.source)


@dataclass
class _Usage:
    """What the equations use: the constants, levers, series and graphical functions an export writes."""

    consts: list[str]  # parameters (not levers) and facts
    levers: list[str]
    series: list[str]
    tables: set[str]
    table_y: dict[str, list[float]]  # y values of the used tables in this scenario


def _usage(cm: Compiled, scaled: set[str]) -> _Usage:
    model = cm.model
    used: set[str] = set()
    tables_used: set[str] = set()
    for v in [*model.stocks.values(), *model.flows.values(), *model.aux.values()]:
        used |= v.expr.names
        tables_used |= v.expr.tables
        if v.fixed_delay is not None:
            used |= v.fixed_delay[0].names | v.fixed_delay[1].names
    used |= {ex.table_scale_name(t) for t in tables_used & scaled}
    table_y = {t: (cm.table_y or {}).get(t, model.tables[t].y) for t in tables_used}
    used_consts = [n for n in [*model.params, *model.facts] if n in used and n not in model.levers]
    used_levers = [n for n in model.levers if n in used]
    annual_names: set[str] = set()
    for a in model.annual.values():
        annual_names |= a.expr.names
    used_series = [n for n in model.series if n in used | annual_names]
    return _Usage(used_consts, used_levers, used_series, tables_used, table_y)


def _flow_copies(model: Model) -> tuple[dict[tuple[str, str], str], list[tuple[str, str, str]]]:
    """Flows with more than one source (or sink) stock get one copy per extra stock.

    Returns (stock, flow) -> the flow name written for that stock, and the copies (name, original, stock).
    """
    src: dict[str, list[str]] = {f: [] for f in model.flows}
    snk: dict[str, list[str]] = {f: [] for f in model.flows}
    for st in model.stocks.values():
        for f in st.outflows:
            src[f].append(st.name)
        for f in st.inflows:
            snk[f].append(st.name)
    rename: dict[tuple[str, str], str] = {}
    copies: list[tuple[str, str, str]] = []
    for f in model.flows:
        for stocks in (src[f], snk[f]):
            for s in stocks[1:]:
                cname = f"{f}_{s}"
                rename[(s, f)] = cname
                copies.append((cname, f, s))
    return rename, copies


def build_xmile(
    cm: Compiled,
    values: dict[str, float],
    grid: TimeGrid,
    method: str = "euler",
    levers: dict[str, TimeFunction] | None = None,
    active_from: float | None = None,
    name: str = "model",
    title: str = "",
) -> XmileExport:
    """XMILE text of ``cm`` with parameter ``values`` and scenario lever time functions ``levers``.

    ``values`` maps every parameter, lever (baseline value) and fact to a number in its model
    units (free parameters already calibrated). Lever functions act from ``t >= active_from``
    (default: the end of the calibration window); ``grid`` gives start, stop and dt (years).
    """
    model = cm.model
    levers = levers or {}
    active = float(max(model.calibration.end, model.calibration.lever_start - 1) if active_from is None else active_from)
    consts = {k: float(v) for k, v in values.items() if k not in model.levers}
    scaled = {t for t, tb in model.tables.items() if tb.y_scale_range is not None}
    em = _Emitter(consts, grid, scaled)
    u = _usage(cm, scaled)
    rename, copies = _flow_copies(model)
    schedules = [f"{n}_schedule" for n in u.levers if n in levers and levers[n].kind in ("ramp", "table")]
    lever_parts = [f"{n}_{part}" for n in u.levers for part in ("baseline", "policy")]
    _check_names(model, [c[0] for c in copies] + schedules + lever_parts + list(model.tables))

    notes: list[str] = []
    out: list[str] = []
    w = out.append
    _write_header(w, grid, method, name, title)
    _write_stocks_flows(w, model, em, rename, copies, notes)
    _write_auxiliaries(w, model, em)
    _write_tables(w, model, u)
    _write_levers(w, model, u, values, levers, active, grid, notes)
    w("      <!-- constants: parameters and observed facts -->")
    calibrated = {f.name for f in model.calibration.free}
    for n in u.consts:
        units = model.params[n].units if n in model.params else model.facts[n].units
        w(_var("aux", n, num(values[n]), units, _param_doc(model, n, calibrated)))
    _write_series(w, cm, u, values, levers, active, grid)
    for a in model.annual.values():
        notes.append(f"annual output '{a.name}' ({a.expr.text}, per calendar year) has no XMILE form and is "
                     "not exported")
        w("      " + _comment(f"annual output {a.name} = {a.expr.text} over each calendar year: not expressible "
                              "in XMILE without DT; not exported"))
    w("    </variables>")
    w("  </model>")
    w("</xmile>")

    flows = [*model.flows, *(c[0] for c in copies)]
    aux = [*model.aux, *u.levers, *lever_parts, *schedules, *u.consts, *u.series]
    return XmileExport("\n".join(out) + "\n", list(model.stocks), flows, aux,
                       [int(y) for y in grid.years], notes)


Write = Callable[[str], None]  # appends one piece of XMILE text


def _write_header(w: Write, grid: TimeGrid, method: str, name: str, title: str) -> None:
    """The XML declaration, header, sim specs and the opening of the variables."""
    w('<?xml version="1.0" encoding="utf-8"?>')
    w(f'<xmile version="1.0" xmlns="{XMILE_NS}">')
    w("  <header>")
    w("    <vendor>sdsim</vendor>")
    w(f'    <product version="{__version__}" lang="en">sdsim</product>')
    w(f"    <name>{escape(name)}</name>")
    w("  </header>")
    w(f'  <sim_specs method="{METHOD_NAMES[method]}" time_units="year">')
    w(f"    <start>{num(grid.start)}</start>")
    w(f"    <stop>{num(grid.end)}</stop>")
    w(f"    <dt>{num(grid.dt)}</dt>")
    w("  </sim_specs>")
    w("  <model>")
    w("    <variables>")
    w("      " + _comment(f"{name}: {title}" if title else name)
      + "\n      " + _comment(f"Exported by sdsim {__version__} with this scenario's parameter values and calibrated "
                              "free parameters; time in years, t = Y is the end of year Y."))


def _write_stocks_flows(w: Write, model: Model, em: _Emitter, rename: dict[tuple[str, str], str],
                        copies: list[tuple[str, str, str]], notes: list[str]) -> None:
    """Stocks (with their inflows and outflows), flows and the flow copies."""
    w("      <!-- stocks -->")
    nonneg = "        <non_negative>false</non_negative>"
    for s in model.stocks.values():
        body = [f"        <inflow>{escape(rename.get((s.name, f), f))}</inflow>" for f in s.inflows]
        body += [f"        <outflow>{escape(rename.get((s.name, f), f))}</outflow>" for f in s.outflows]
        body.append(nonneg)
        w(_var("stock", s.name, em.text(s.expr), s.units, _doc(s.en, s.zh, s.note), "\n".join(body)))

    w("      <!-- flows -->")
    for f in model.flows.values():
        w(_var("flow", f.name, em.text(f.expr), f.units, _doc(f.en, f.zh, f.note), nonneg))
    for cname, orig, stock in copies:
        f = model.flows[orig]
        doc = _doc(f.en, f"copy of {orig} for stock {stock}: an XMILE flow has one source and one sink")
        w(_var("flow", cname, orig, f.units, doc, nonneg))
    if copies:
        notes.append("flows written once per stock (XMILE flows have one source and one sink): "
                     + ", ".join(f"{c} = {o}" for c, o, _ in copies))


def _write_auxiliaries(w: Write, model: Model, em: _Emitter) -> None:
    """Auxiliaries (graphical functions attached; delay_fixed as XMILE's pipeline DELAY)."""
    w("      <!-- auxiliaries -->")
    for a in model.aux.values():
        extra = _gf(*a.table) if a.table is not None else ""
        eqn = em.text(a.expr)
        if a.fixed_delay is not None:  # XMILE's pipeline delay
            delay, x0 = a.fixed_delay
            eqn = f"DELAY({eqn}, {em.text(delay)}, {em.text(x0)})"
        w(_var("aux", a.name, eqn, a.units, _doc(a.en, a.zh, a.note), extra))


def _write_tables(w: Write, model: Model, u: _Usage) -> None:
    """The named graphical functions the equations call (with this scenario's y values)."""
    if u.tables:
        w("      <!-- graphical functions: linear between points, flat outside; called as name(x) -->")
    for t in model.tables:
        if t not in u.tables:
            continue
        tb = model.tables[t]
        doc = _doc(tb.en, tb.zh, tb.note, f"x in {tb.x_units}, y in {tb.units}",
                   f"y values of this scenario: {u.table_y[t]}" if u.table_y[t] != tb.y else "")
        w(f"      <gf name={quoteattr(t)} type=\"continuous\">\n"
          f"        <xpts>{','.join(num(x) for x in tb.x)}</xpts>\n"
          f"        <ypts>{','.join(num(y) for y in u.table_y[t])}</ypts>\n"
          f"        <units>{escape(tb.units)}</units>\n"
          f"        <doc>{escape(doc)}</doc>\n"
          "      </gf>")


def _write_levers(w: Write, model: Model, u: _Usage, values: dict[str, float], levers: dict[str, TimeFunction],
                  active: float, grid: TimeGrid, notes: list[str]) -> None:
    """Each used lever L as L_baseline, L_policy and L = IF TIME >= active THEN L_policy ELSE L_baseline."""
    start_year = int(round(active)) + 1
    w("      " + _comment(
        f"levers (policy inputs): each lever L = IF TIME >= {num(active)} THEN L_policy ELSE L_baseline. "
        f"To try another policy, override L_policy (e.g. PySD run(params={{'L_policy': value}})): it acts from "
        f"{start_year} (t >= {num(active)}), so {start_year - 1}, the calibration year, is unchanged. Overriding L "
        f"itself would also change {start_year - 1} and break the calibration; L_baseline is today's level, "
        "used in calibration"))
    timed = [n for n in u.levers if _write_lever(w, model, n, float(values[n]), levers.get(n), active, grid)]
    if timed:
        notes.append(f"levers with scenario time functions (acting from t >= {num(active)}): {', '.join(timed)}")


def _write_lever(w: Write, model: Model, n: str, base: float, fn: TimeFunction | None, active: float,
                 grid: TimeGrid) -> bool:
    """One lever's variables (and its schedule); True when a scenario time function sets it."""
    start_year = int(round(active)) + 1
    p = model.levers[n]
    doc = _doc(p.en, p.zh, p.note, f"lever; baseline value {num(base)}")
    w(_var("aux", f"{n}_baseline", num(base), p.units,
           _doc(f"baseline (today's level) of {n}, in force through {start_year - 1}; the free parameters are "
                "calibrated with it")))
    if fn is None:
        policy = f"{n}_baseline"
        pdoc = f"policy setting of {n} from {start_year} (t >= {num(active)}): the baseline; override to try a policy"
        table = None
    else:
        eqn, table = _lever_equation(n, fn, base, active, grid)
        spec = str(fn.to_yaml()).replace("'", "")
        policy = eqn
        pdoc = f"policy setting of {n} from {start_year} (t >= {num(active)}): scenario {spec}; override to try another"
        doc = _doc(doc, f"scenario: {spec}, acting from t >= {num(active)}")
    w(_var("aux", f"{n}_policy", policy, p.units, pdoc))
    w(_var("aux", n, f"IF TIME >= {num(active)} THEN {n}_policy ELSE {n}_baseline", p.units,
           _doc(doc, f"= {n}_policy from {start_year}, {n}_baseline before; override {n}_policy, not {n}")))
    if fn is None:
        return False
    if table is not None:
        w(_var("aux", f"{n}_schedule", "TIME", p.units,
               _doc(f"schedule of {n}: points at mid-year (Y - 0.5), linear between, flat outside"),
               _gf(*table)))
    return True


def _write_series(w: Write, cm: Compiled, u: _Usage, values: dict[str, float], levers: dict[str, TimeFunction],
                  active: float, grid: TimeGrid) -> None:
    """Annual series as step functions of TIME: the value of the calendar year in progress."""
    if not u.series:
        return
    model = cm.model
    w("      <!-- annual series: value of the calendar year in progress, t in [Y-1, Y) -> year Y -->")
    bl = {k: values[k] for k in model.levers}
    lv = lever_schedules(cm, grid, bl, levers, active_from=active)
    per_step, _ = series_values(cm, grid, lv)
    spy = grid.steps_per_year
    for n in u.series:
        s = model.series[n]
        years = list(range(grid.start + 1, grid.end + 2))  # calendar years the steps fall in
        vals = [float(per_step[n][min((y - 1 - grid.start) * spy, grid.n_steps), 0]) for y in years]
        doc = _doc(s.en, s.zh, f"annual series: observed {min(s.values)}-{max(s.values)}, then grown by "
                   f"{s.growth}; year Y's value holds for t in [Y-1, Y); values computed by sdsim")
        w(_var("aux", n, _stepwise(years, vals), s.units, doc))


def export_scenario(cm: Compiled, sc: Scenario) -> XmileExport:
    """The XMILE export of scenario ``sc``: its parameters, calibrated free parameters and levers."""
    res = run_scenarios(cm, [sc])[0]
    cal = cm.model.calibration
    grid = TimeGrid(cal.start, sc.end, sc.dt)
    start = max(cal.end, policy_start(sc, cm.model) - 1)
    return build_xmile(cm.with_tables(sc.tables), dict(res.params), grid, sc.method, sc.levers, start,
                       name=sc.name, title=sc.label())


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a unique temporary file in the same folder, then rename)."""
    import tempfile

    from .results import clean_stale

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent)
    fd, name = tempfile.mkstemp(prefix=f".{path.name[:100]}.tmp-{os.getpid()}-", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
