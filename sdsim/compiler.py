"""Compile a Model once into Python functions over numpy arrays.

Every quantity is an array with one entry per run (or a scalar shared by all runs). The
generated code is built only from checked expression trees (see :mod:`expressions`).

Generated functions:

* ``init(P, LV, SR, time)`` -> (initial stock values, frozen ``initial()`` auxiliaries and the
  initial values of ``delay_fixed`` outputs);
* ``build(P, LV, SR, FZ, dt)`` -> ``(rates, rates_rec)``: ``rates(k, time, S, F, D, tk=None,
  first=True)`` fills the rate rows ``F`` (flows, then auxiliaries recorded as annual totals) and
  the stock derivatives ``D`` from the stock rows ``S``; ``rates_rec(k, time, S, F, D, A)`` also
  fills the auxiliary rows ``A``. ``time`` is the time of the evaluation (an RK4 stage's time),
  ``tk`` the start of step ``k`` (default ``time``): levers and series are read at index ``k``,
  ``step()`` and ``pulse()`` at ``tk`` (their breaks lie on the step grid), ``time`` and ``ramp()``
  at ``time``. ``first`` marks the step's first evaluation, the one whose inputs ``delay_fixed``
  records;
* ``build_scalar(...)``: the same for one run over Python floats and lists (about ten times less
  overhead per step than numpy on arrays of one element);
* ``annual(NS)`` -> annual outputs from yearly records.

``P`` maps parameter and fact names to numbers or (n,) arrays; ``LV`` and ``SR`` map lever and
series names to (steps + 1, m) arrays indexed by the step counter ``k``.

Graphical functions (``tables:``) are module constants of the generated code (``_TX_<name>``,
``_TY_<name>``); :meth:`Compiled.with_tables` gives the same model with other y values.

``delay_fixed(x, T, x0)`` (see :mod:`stockfns`) keeps a ring buffer of ``T / dt`` entries per run,
created by ``build``: its output at step k is the buffer slot ``k mod m`` (x0 for k < m), read on the
step's first evaluation before the equations and held for the step's other (RK4) evaluations; x is
written into that slot after the equations, on the first evaluation only.
So the output at t is x(t − T) exactly, and within a step (all RK4 stages) the output is held.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import compiler_deps as deps
from . import expressions as ex
from .errors import ModelError
from .model import Model


def _step(t: float, h: Any, s: Any) -> Any:
    """``h`` once ``t >= s``, else 0."""
    if np.ndim(s) == 0:
        return h if t >= s else h * 0.0
    on = t >= s
    if on.all():  # the usual case: every run shares the start time
        return h
    return np.where(on, h, 0.0)


def _ramp(t: float, slope: Any, start: Any, end: Any) -> Any:
    """Vensim RAMP: 0 before start, slope * (t - start) until end, then constant."""
    return slope * (np.minimum(np.maximum(t, start), end) - start)


def _pulse(t: float, start: Any, width: Any) -> Any:
    """1 while ``start <= t < start + width``, else 0."""
    return np.where((t >= start) & (t < start + width), 1.0, 0.0)


def _interp(x: Any, xs: np.ndarray, ys: np.ndarray) -> Any:
    """Graphical function: linear between points, flat outside."""
    return np.interp(x, xs, ys)


def _step_s(t: float, h: float, s: float) -> float:
    """Scalar :func:`_step`."""
    return h if t >= s else 0.0


def _ramp_s(t: float, slope: float, start: float, end: float) -> float:
    """Scalar :func:`_ramp`."""
    return slope * (min(max(t, start), end) - start)


def _pulse_s(t: float, start: float, width: float) -> float:
    """Scalar :func:`_pulse`."""
    return 1.0 if start <= t < start + width else 0.0


def _interp_s(x: float, xs: list[float], ys: list[float]) -> float:
    """Scalar :func:`_interp` (same points, same flat extrapolation; NaN in, NaN out like numpy.interp)."""
    if x != x:  # NaN: a failed run propagates NaN instead of indexing past the table
        return x
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def _delay_steps(value: Any, dt: float | None, where: str) -> int:
    """Number of steps of a ``delay_fixed`` delay time (years): a whole number >= 1, equal in every run."""
    v = np.unique(np.asarray(value, dtype=float))
    if dt is None:
        raise ModelError(f"{where}: delay_fixed() needs the time step (pass dt to build)")
    if v.size != 1:
        raise ModelError(f"{where}: delay_fixed() delay time differs between runs ({v.min():g} to {v.max():g} "
                         "years); it must be the same in one batch")
    steps = float(v[0]) / dt
    if not (steps >= 1 and abs(steps - round(steps)) < 1e-9):
        raise ModelError(f"{where}: delay_fixed() delay time {float(v[0]):g} years is not a whole number (>= 1) of "
                         f"steps of dt = {dt:g}")
    return round(steps)


_RUNTIME = {
    "_delay_steps": _delay_steps,
    "_np": np, "_m": math, "_step": _step, "_ramp": _ramp, "_pulse": _pulse, "_interp": _interp,
    "_step_s": _step_s, "_ramp_s": _ramp_s, "_pulse_s": _pulse_s, "_interp_s": _interp_s,
}


@dataclass
class Compiled:
    """A compiled model: names in row order and the generated functions."""

    model: Model
    stocks: list[str]
    rates: list[str]  # flows, then auxiliaries with annual_total (recorded as annual totals)
    aux: list[str]  # auxiliaries recorded at year ends
    annual_names: list[str]
    init: Callable[..., tuple[dict[str, Any], dict[str, Any]]]
    build: Callable[..., tuple[Callable, Callable]]
    build_scalar: Callable[..., tuple[Callable, Callable]]  # same functions over Python floats (n = 1)
    annual: Callable[[dict[str, Any]], dict[str, Any]]
    source: str
    table_y: dict[str, list[float]] | None = None  # y values of the graphical functions this code uses

    @property
    def flows(self) -> list[str]:
        """Flow names (the first rows of the rate block)."""
        return [r for r in self.rates if r in self.model.flows]

    def with_tables(self, y: dict[str, list[float]]) -> Compiled:
        """The same compiled model with other y values of some graphical functions (same x)."""
        if not y:
            return self
        ys = {**(self.table_y or {}), **{k: [float(v) for v in vals] for k, vals in y.items()}}
        ns = _namespace(self.model, ys)
        exec(compile(self.source, f"<compiled model {self.model.directory}>", "exec"), ns)  # noqa: S102
        return dataclasses.replace(self, init=ns["init"], build=ns["build"], build_scalar=ns["build_scalar"],
                                   annual=ns["annual"], table_y=ys)


def _v(name: str) -> str:
    return f"v_{name}"


_SCALES: dict[str, str] = {}  # scale parameter of a table -> its source, for the model being compiled


def _rename(names: set[str], held: bool = False) -> dict[str, str]:
    """Source names: ``v_<name>``, ``time``; with ``held``, step() and pulse() read the step's start ``tk``."""
    rn = {n: _v(n) for n in names}
    rn["time"] = "time"
    rn.update(_SCALES)
    if held:
        rn[ex.HELD_TIME] = "tk"
    return rn


def _namespace(model: Model, table_y: dict[str, list[float]]) -> dict[str, Any]:
    """Globals of the generated code: runtime helpers and the graphical functions' points."""
    namespace: dict[str, Any] = dict(_RUNTIME)
    per_var = {n: v.table for n, v in {**model.flows, **model.aux}.items() if v.table is not None}
    for n, (xs, ys) in per_var.items():
        namespace[f"_T_{n}_x"] = np.asarray(xs, dtype=float)
        namespace[f"_T_{n}_y"] = np.asarray(ys, dtype=float)
        namespace[f"_T_{n}_x_s"] = [float(x) for x in xs]
        namespace[f"_T_{n}_y_s"] = [float(y) for y in ys]
    for n, t in model.tables.items():
        ys = table_y.get(n, t.y)
        namespace[f"_TX_{n}"] = np.asarray(t.x, dtype=float)
        namespace[f"_TY_{n}"] = np.asarray(ys, dtype=float)
        namespace[f"_TX_{n}_s"] = [float(x) for x in t.x]
        namespace[f"_TY_{n}_s"] = [float(y) for y in ys]
    return namespace


def _value_expr(var: Any, scalar: bool = False, expr: ex.Expr | None = None, held: bool = False) -> str:
    """Source computing a flow or auxiliary (graphical functions included); ``expr`` replaces its equation."""
    e = expr if expr is not None else ex.inner(var.expr)
    src = ex.to_source(e, _rename(e.names, held), scalar)
    if var.table is not None:
        suffix = "_s" if scalar else ""
        src = f"_interp{suffix}({src}, _T_{var.name}_x{suffix}, _T_{var.name}_y{suffix})"
    return src


def compile_model(model: Model) -> Compiled:
    """Order, classify and compile the model's equations (once per model)."""
    _SCALES.clear()
    _SCALES.update({ex.table_scale_name(t): _v(ex.table_scale_name(t)) for t, tb in model.tables.items()
                    if tb.y_scale_range is not None})
    try:
        return _compile(model)
    finally:
        _SCALES.clear()


def _compile(model: Model) -> Compiled:
    p = deps.plan(model)
    lines: list[str] = []
    _emit_init(p, lines.append)
    for fname, scalar in (("build", False), ("build_scalar", True)):  # numpy arrays / Python floats (one run)
        _emit_build(p, lines.append, fname, scalar)
    ann_order = _emit_annual(p, lines.append)
    source = "\n".join(lines) + "\n"
    namespace = _namespace(model, {})
    code = compile(source, f"<compiled model {model.directory}>", "exec")
    exec(code, namespace)  # noqa: S102 - source generated from whitelisted expression trees
    return Compiled(
        model=model,
        stocks=p.stocks,
        rates=p.rates,
        aux=p.rec_aux,
        annual_names=list(ann_order),
        init=namespace["init"],
        build=namespace["build"],
        build_scalar=namespace["build_scalar"],
        annual=namespace["annual"],
        source=source,
    )


Emit = Callable[[str], None]  # appends one line of generated source


def _emit_init(p: deps.Plan, w: Emit) -> None:
    """``init(P, LV, SR, time)``: initial stock values, frozen auxiliaries and delay_fixed initial values."""
    model = p.model
    w("def init(P, LV, SR, time):")
    for n in sorted(p.consts):
        w(f"    {_v(n)} = P[{n!r}]")
    for n in sorted(p.levers):
        w(f"    {_v(n)} = LV[{n!r}][0]")
    for n in sorted(p.series):
        w(f"    {_v(n)} = SR[{n!r}][0]")
    for n in p.init_order:
        if n.startswith("stock:"):
            s = n[6:]
            w(f"    {_v(s)} = {ex.to_source(model.stocks[s].expr, _rename(model.stocks[s].expr.names))}")
        elif n in p.frozen:
            w(f"    {_v(n)} = {_value_expr(p.aux_all[n])}")
        elif n in p.delays:
            x0 = p.delays[n].fixed_delay[1]  # type: ignore[index]
            w(f"    {_v(n)} = {ex.to_source(x0, _rename(x0.names))}")
        else:
            w(f"    {_v(n)} = {_value_expr(p.computed[n])}")
    w("    return {" + ", ".join(f"{s!r}: {_v(s)}" for s in p.stocks) + "}, {"
      + ", ".join(f"{n!r}: {_v(n)}" for n in [*p.frozen, *p.delays]) + "}")
    w("")


def _emit_build(p: deps.Plan, w: Emit, fname: str, scalar: bool) -> None:
    """``build``/``build_scalar(P, LV, SR, FZ, dt)``: the once-per-batch values, then ``rates`` and ``rates_rec``."""
    w(f"def {fname}(P, LV, SR, FZ, dt=None):")
    for n in sorted(p.consts):
        w(f"    {_v(n)} = P[{n!r}]")
    for n in p.frozen:
        w(f"    {_v(n)} = FZ[{n!r}]")
    for n in sorted(p.levers):
        w(f"    L_{n} = LV[{n!r}]")
    for n in sorted(p.series):
        w(f"    R_{n} = SR[{n!r}]")
    emit_once_per_batch(p, w, scalar)
    for n, v in p.delays.items():
        T = v.fixed_delay[0]  # type: ignore[index]
        where = f"{p.sfile}: " + next((f.path for f in p.model.stock_functions if f.output == n), n)
        w(f"    M_{n} = _delay_steps({ex.to_source(T, _rename(T.names))}, dt, {where!r})")
        w(f"    B_{n} = [FZ[{n!r}]] * M_{n}")
        w(f"    H_{n} = [FZ[{n!r}]]")
    w("    def rates(k, time, S, F, D, tk=None, first=True):")
    _emit_rates(p, w, False, scalar)
    w("    def rates_rec(k, time, S, F, D, A):")
    _emit_rates(p, w, True, scalar)
    w("    return rates, rates_rec")
    w("")


def emit_once_per_batch(p: deps.Plan, w: Emit, scalar: bool, pad: str = "    ") -> None:
    """The values computed once per batch before the first step: static auxiliaries, then the hoisted
    parameter-only subexpressions (also used by :mod:`sdsim.kernel`, indented by ``pad``)."""
    for n in p.order:
        if n in p.static:
            w(f"{pad}{_v(n)} = {_value_expr(p.computed[n], scalar)}")
    for name, node in p.hoisted.values():
        sub = ex.subtree(node)
        w(f"{pad}{_v(name)} = {ex.to_source(sub, _rename(sub.names), scalar)}")


def _emit_rates(p: deps.Plan, w: Emit, record: bool, scalar: bool) -> None:
    """Body of ``rates`` (``record`` False: the equations the rates need) or ``rates_rec`` (all, recorded in A)."""
    nodes = [n for n in p.order if n not in p.static and (record or n in p.need)]
    _emit_inputs(p, w, nodes, record)
    written = _emit_equations(p, w, nodes, scalar)
    for r, i in p.rate_index.items():
        if r not in written:
            w(f"        F[{i}] = {_v(r)}")
    _emit_derivatives(p, w, scalar)
    if record:
        for i, n in enumerate(p.rec_aux):
            w(f"        A[{i}] = {_v(n)}")
    # delay_fixed: record the input of step k (first evaluation only) in the slot just read
    for n, v in p.delays.items():
        src = ex.to_source(v.expr, _rename(v.expr.names, True), scalar)
        value = f"float({src})" if scalar else f"_np.array({src}, dtype=float)"
        if record:
            w(f"        B_{n}[k % M_{n}] = {value}")
        else:
            w("        if first:")
            w(f"            B_{n}[k % M_{n}] = {value}")


def used_names(p: deps.Plan, nodes: list[str], record: bool) -> set[str]:
    """Names one evaluation of the equations ``nodes`` reads (with ``record``, the recorded auxiliaries too),
    delay_fixed inputs included (also used by :mod:`sdsim.kernel`)."""
    used: set[str] = set()
    for n in nodes:
        used |= p.dyn_expr[n].names
    for v in p.delays.values():
        used |= v.expr.names
    if record:
        used |= set(p.rec_aux)
    return used


def _emit_inputs(p: deps.Plan, w: Emit, nodes: list[str], record: bool) -> None:
    """Rate function inputs: the step's start ``tk``, stocks, held delay_fixed outputs, the levers and series used."""
    used = used_names(p, nodes, record)
    if p.held and not record:
        w("        if tk is None:")
        w("            tk = time")
    elif p.held:
        w("        tk = time")
    for s, i in p.stock_index.items():
        w(f"        {_v(s)} = S[{i}]")
    for n in p.delays:  # the output of step k, held for all its evaluations (the slot is overwritten below)
        if record:
            w(f"        H_{n}[0] = B_{n}[k % M_{n}]")
        else:
            w("        if first:")
            w(f"            H_{n}[0] = B_{n}[k % M_{n}]")
        w(f"        {_v(n)} = H_{n}[0]")
    for n in sorted(p.levers & used):
        w(f"        {_v(n)} = L_{n}[k]")
    for n in sorted(p.series & used):
        w(f"        {_v(n)} = R_{n}[k]")


def _emit_equations(p: deps.Plan, w: Emit, nodes: list[str], scalar: bool) -> set[str]:
    """The dynamic equations ``nodes`` in order; returns the rates computed straight into their row of F."""
    rate_index = p.rate_index
    written: set[str] = set()  # rates computed straight into their row of F (numpy only)
    for n in nodes:
        var = p.computed[n]
        into = None
        e = p.dyn_expr[n]
        if not scalar and n in rate_index and var.table is None:
            into = ex.to_source_into(e, _rename(e.names, held=True), f"F[{rate_index[n]}]")
        if into:
            w(f"        {into}")
            w(f"        {_v(n)} = F[{rate_index[n]}]")
            written.add(n)
        else:
            w(f"        {_v(n)} = {_value_expr(var, scalar, e, held=True)}")
    return written


def _emit_derivatives(p: deps.Plan, w: Emit, scalar: bool) -> None:
    """Stock derivatives ``D[i]`` = inflows - outflows (numpy: accumulated in place in the row, no temporaries)."""
    for s, i in p.stock_index.items():
        st = p.model.stocks[s]
        terms = [("+", f) for f in st.inflows] + [("-", f) for f in st.outflows]
        if scalar or not terms:
            ins = " + ".join(_v(f) for f in st.inflows) or "0.0"
            outs = " - ".join(_v(f) for f in st.outflows)
            w(f"        D[{i}] = {ins}{' - ' + outs if outs else ''}")
            continue
        (sign0, f0), rest = terms[0], terms[1:]
        if rest:
            fn = "add" if rest[0][0] == "+" else "subtract"
            first = _v(f0) if sign0 == "+" else f"-{_v(f0)}"
            w(f"        _np.{fn}({first}, {_v(rest[0][1])}, out=D[{i}])")
            rest = rest[1:]
        else:
            w(f"        D[{i}] = {_v(f0) if sign0 == '+' else '-' + _v(f0)}")
        for sign, f in rest:
            w(f"        D[{i}] {sign}= {_v(f)}")


def _emit_annual(p: deps.Plan, w: Emit) -> list[str]:
    """``annual(NS)``: the annual outputs from yearly records; returns their order."""
    ann = p.model.annual
    ann_order = deps.order({n: v.expr.names & set(ann) for n, v in ann.items()}, "annual outputs", p.sfile)
    w("def annual(NS):")
    names_needed: set[str] = set()
    for v in ann.values():
        names_needed |= v.expr.names
    for n in sorted(names_needed - set(ann)):
        w(f"    {_v(n)} = NS[{n!r}]")
    out = []
    for n in ann_order:
        w(f"    {_v(n)} = {ex.to_source(ann[n].expr, _rename(ann[n].expr.names))}")
        out.append(f"{n!r}: {_v(n)}")
    w("    return {" + ", ".join(out) + "}")
    return ann_order
